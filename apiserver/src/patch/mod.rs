//! PATCH bodies: JSON patch (RFC 6902), merge patch (RFC 7386), strategic merge patch
//! ([`smp`]) and apply patches (server-side apply: [`crate::apply`]; [`apply`] here only
//! serves views without field management, such as the scale subresource, with a strategic
//! merge).

pub mod smp;

use serde_json::Value;

use crate::codec::MediaType;
use crate::error::ApiError;

/// The patch types of upstream's PATCH endpoint, by Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// The patch type of a Content-Type header; anything else is 415.
    pub fn from_content_type(ct: Option<&str>) -> Result<PatchType, ApiError> {
        let ct = ct.unwrap_or("");
        match MediaType::parse(ct).essence.as_str() {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" => Ok(PatchType::Apply),
            _ => Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"
                ),
            )),
        }
    }
}

/// Decodes a patch body (YAML accepted for apply patches).
pub fn decode(kind: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    let format = if kind == PatchType::Apply {
        crate::codec::BodyFormat::Yaml
    } else {
        crate::codec::BodyFormat::Json
    };
    let v = crate::codec::decode(format, body)?;
    match (kind, &v) {
        (PatchType::Json, Value::Array(_)) => Ok(v),
        (PatchType::Json, _) => Err(ApiError::bad_request("json patch must be a list of operations")),
        (_, Value::Object(_)) => Ok(v),
        _ => Err(ApiError::bad_request("patch body must be a JSON object")),
    }
}

/// The fields an apply patch body sets twice (`data.a`, `spec.containers[0].name`), for
/// `fieldValidation` (upstream strict-decodes apply bodies). Bodies that do not decode have
/// none (their decoding error is reported elsewhere).
pub fn duplicate_fields(kind: PatchType, body: &[u8]) -> Vec<String> {
    if kind != PatchType::Apply {
        return Vec::new();
    }
    let found = std::cell::RefCell::new(Vec::new());
    let seed = dup::Seed {
        path: String::new(),
        found: &found,
    };
    let decoded = match serde_yaml_ng::Deserializer::from_slice(body).next() {
        Some(doc) => serde::de::DeserializeSeed::deserialize(seed, doc).is_ok(),
        None => false,
    };
    if decoded { found.into_inner() } else { Vec::new() }
}

/// A deserializer seed that builds nothing but records keys seen twice in a map.
mod dup {
    use std::cell::RefCell;
    use std::fmt;

    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    pub(super) struct Seed<'a> {
        pub(super) path: String,
        pub(super) found: &'a RefCell<Vec<String>>,
    }

    impl Seed<'_> {
        fn child(&self, path: String) -> Self {
            Seed {
                path,
                found: self.found,
            }
        }
    }

    impl<'de> DeserializeSeed<'de> for Seed<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Seed<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_none<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while seq
                .next_element_seed(self.child(format!("{}[{i}]", self.path)))?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{key}", self.path)
                };
                if !seen.insert(key) {
                    self.found.borrow_mut().push(path.clone());
                }
                map.next_value_seed(self.child(path))?;
            }
            Ok(())
        }
    }
}

/// Applies a decoded patch to `current`, returning the patched object.
pub fn apply(kind: PatchType, current: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match kind {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            // A `test` of an absent path against null succeeds, as upstream's patcher (and kube-rs
            // finalizer helpers) expect.
            let ops: Vec<_> = ops
                .0
                .into_iter()
                .filter(|op| match op {
                    json_patch::PatchOperation::Test(t) => {
                        !(t.value.is_null() && doc.pointer(t.path.as_str()).is_none())
                    }
                    _ => true,
                })
                .collect();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchType::Merge => json_patch::merge(&mut doc, patch),
        PatchType::Strategic | PatchType::Apply => {
            smp::apply(&mut doc, patch)
                .map_err(|e| ApiError::bad_request(format!("invalid strategic merge patch: {e}")))?;
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_with_kube_rs_finalizer_test_op() {
        let cur = json!({"metadata": {"name": "x"}});
        let p = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
        ]);
        let out = apply(PatchType::Json, &cur, &p).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
        let failing = json!([{"op": "test", "path": "/metadata/name", "value": "y"}]);
        assert_eq!(apply(PatchType::Json, &cur, &failing).unwrap_err().code(), 422);
        assert_eq!(
            apply(PatchType::Json, &cur, &json!([{"op": "nope"}]))
                .unwrap_err()
                .code(),
            400
        );
    }

    #[test]
    fn duplicate_fields_of_apply_bodies() {
        let yaml = b"data:\n  a: x\n  a: y\nlist:\n- {n: 1, n: 2}\n";
        assert_eq!(duplicate_fields(PatchType::Apply, yaml), ["data.a", "list[0].n"]);
        let json = br#"{"data": {"a": "x", "b": "y"}, "data": {}}"#;
        assert_eq!(duplicate_fields(PatchType::Apply, json), ["data"]);
        assert!(duplicate_fields(PatchType::Apply, b"a: [").is_empty());
        assert!(duplicate_fields(PatchType::Merge, json).is_empty());
    }

    #[test]
    fn merge_patch_and_content_types() {
        let cur = json!({"data": {"a": "1", "b": "2"}});
        let out = apply(PatchType::Merge, &cur, &json!({"data": {"a": null, "c": "3"}})).unwrap();
        assert_eq!(out, json!({"data": {"b": "2", "c": "3"}}));
        assert_eq!(
            PatchType::from_content_type(Some("application/merge-patch+json; charset=utf-8")).unwrap(),
            PatchType::Merge
        );
        assert_eq!(
            PatchType::from_content_type(Some("application/json"))
                .unwrap_err()
                .code(),
            415
        );
        assert_eq!(decode(PatchType::Merge, b"[1]").unwrap_err().code(), 400);
        assert_eq!(
            decode(PatchType::Apply, b"data:\n  a: b\n").unwrap()["data"]["a"],
            "b"
        );
    }
}
