//! Type checking of built-in objects: a round trip through the k8s-openapi type rejects wrongly
//! typed fields (400) and drops unknown ones, which the caller reports per `fieldValidation`
//! ([`crate::strict::settle`]).

use serde_json::Value;

use crate::descriptor::ResourceDescriptor;
use crate::error::ApiError;
use crate::query::FieldValidation;

/// Checks `obj` against the row's type. Returns the normalized object and the strict decoding
/// errors of its unknown fields (`unknown field "spec.x"`; none looked for under `Ignore`).
pub fn check(
    desc: &ResourceDescriptor,
    obj: Value,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let Some(round_trip) = desc.round_trip else {
        return Ok((obj, Vec::new()));
    };
    let undecodable = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = desc.kind,
            version = desc.version
        ))
    };
    let mut out = round_trip(&obj).map_err(|e| undecodable(&e))?;
    // The typed round trip keeps quantities as strings; upstream parses them while decoding.
    if let Some(e) = crate::validation::quantity::malformed(&desc.group, &out) {
        return Err(undecodable(&e));
    }
    let mut unknown = Vec::new();
    if validation != FieldValidation::Ignore {
        unknown_fields(&obj, &out, "", &mut unknown);
    }
    drop_empty_metadata(&mut out);
    let messages = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
    Ok((out, messages))
}

/// [`check`], then unknown fields settled per `validation` ([`crate::strict::settle`]): a 400
/// under `Strict`, warnings under `Warn`. For writes with no hooks of their own (reviews,
/// bindings).
pub fn check_settled(
    desc: &ResourceDescriptor,
    obj: Value,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let (out, unknown) = check(desc, obj, validation)?;
    let warnings = crate::strict::settle(validation, &unknown, || crate::strict::Failure::Body {
        kind: &desc.kind,
        version: &desc.version,
    })?;
    Ok((out, warnings))
}

/// Go omits empty maps and lists of `ObjectMeta` (all `omitempty`): a patch that removes the
/// last label leaves no `labels: {}` behind.
fn drop_empty_metadata(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, v| {
            let empty = match v {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            !(empty
                && matches!(
                    k.as_str(),
                    "labels" | "annotations" | "finalizers" | "ownerReferences"
                ))
        });
    }
}

/// Paths present (non-null) in `input` but missing from the typed round trip `output`.
pub fn unknown_fields(input: &Value, output: &Value, path: &str, found: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match o.get(k) {
                    Some(ov) => unknown_fields(v, ov, &p, found),
                    None if v.is_null() => {}
                    None => found.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) if i.len() == o.len() => {
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                unknown_fields(iv, ov, &format!("{path}[{n}]"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployments() -> ResourceDescriptor {
        crate::builtin::rows()
            .into_iter()
            .find(|d| d.resource == "deployments" && d.group == "apps")
            .unwrap()
    }

    #[test]
    fn unknown_fields_per_validation_mode() {
        let d = deployments();
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "bogus": 1},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "imagee": "x"}]}}, "foo": null}
        });
        let (out, warnings) = check(&d, obj.clone(), FieldValidation::Warn).unwrap();
        assert_eq!(
            warnings,
            [
                "unknown field \"metadata.bogus\"",
                "unknown field \"spec.template.spec.containers[0].imagee\""
            ]
        );
        assert!(out["metadata"].get("bogus").is_none());
        let (_, errors) = check(&d, obj.clone(), FieldValidation::Strict).unwrap();
        assert_eq!(errors, warnings);
        let (_, warnings) = check(&d, obj, FieldValidation::Ignore).unwrap();
        assert!(warnings.is_empty());
    }

    #[test]
    fn empty_metadata_maps_are_dropped_as_go_omits_them() {
        let d = deployments();
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {}, "annotations": {"a": "b"}, "finalizers": []}});
        let (out, warnings) = check(&d, obj, FieldValidation::Strict).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(out["metadata"], json!({"name": "x", "annotations": {"a": "b"}}));
    }

    #[test]
    fn wrong_types_are_bad_requests() {
        let d = deployments();
        let err = check(
            &d,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "3"}}),
            FieldValidation::Warn,
        )
        .unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(
            err.message()
                .contains("cannot be handled as a Deployment: spec.replicas"),
            "{}",
            err.message()
        );
    }
}
