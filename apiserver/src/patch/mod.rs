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

/// Decodes a patch body (YAML accepted for apply patches) and its strict decoding errors, as
/// upstream reports them per `fieldValidation`: fields set twice, and for JSON patches fields
/// an operation does not have (`json patch unknown field "[0].foo"`).
pub fn decode(kind: PatchType, body: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    let format = if kind == PatchType::Apply {
        crate::codec::BodyFormat::Yaml
    } else {
        crate::codec::BodyFormat::Json
    };
    let (v, mut strict) = crate::codec::decode_strict(format, body)?;
    match (kind, &v) {
        (PatchType::Json, Value::Array(ops)) => {
            for (i, op) in ops.iter().enumerate() {
                for k in op.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !matches!(k.as_str(), "op" | "path" | "from" | "value") {
                        strict.push(format!("unknown field \"[{i}].{k}\""));
                    }
                }
            }
            let strict = strict.into_iter().map(|e| format!("json patch {e}")).collect();
            Ok((v, strict))
        }
        (PatchType::Json, _) => Err(ApiError::bad_request("json patch must be a list of operations")),
        (_, Value::Object(_)) => Ok((v, strict)),
        _ => Err(ApiError::bad_request("patch body must be a JSON object")),
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
    fn strict_errors_of_patch_bodies() {
        let yaml = b"data:\n  a: x\n  a: y\nlist:\n- {n: 1, n: 2}\n";
        let (v, errs) = decode(PatchType::Apply, yaml).unwrap();
        assert_eq!(v["data"]["a"], "y");
        assert_eq!(
            crate::strict::warnings(&errs),
            [
                "line 3: key \"a\" already set in map",
                "line 5: key \"n\" already set in map"
            ]
        );
        let json = br#"{"data": {"a": "x", "b": "y"}, "data": {}}"#;
        assert_eq!(
            decode(PatchType::Merge, json).unwrap().1,
            ["duplicate field \"data\""]
        );
        assert!(decode(PatchType::Apply, b"a: [").is_err());
        let ops = br#"[{"op": "add", "path": "/a", "value": 1, "valu": 2, "op": "add"}]"#;
        assert_eq!(
            decode(PatchType::Json, ops).unwrap().1,
            [
                "json patch duplicate field \"[0].op\"",
                "json patch unknown field \"[0].valu\""
            ]
        );
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
            decode(PatchType::Apply, b"data:\n  a: b\n").unwrap().0["data"]["a"],
            "b"
        );
    }
}
