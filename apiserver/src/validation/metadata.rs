//! `metadata` rules every object follows: label and annotation syntax, the annotation size limit,
//! `generateName`, finalizer names and owner references (upstream `ValidateObjectMeta`).

use serde_json::{Map, Value};

use super::field::{Errs, child, index, list, string};
use super::names;

/// Upstream's limit on the summed size of annotation keys and values.
pub const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// Checks a label map (object labels, selectors' `matchLabels`, node selectors).
pub fn labels(map: Option<&Map<String, Value>>, path: &str, errs: &mut Errs) {
    for (k, v) in map.into_iter().flatten() {
        errs.invalid_each(path, k, names::qualified_name(k));
        let v = v.as_str().unwrap_or("");
        errs.invalid_each(path, v, names::label_value(v));
    }
}

/// Checks annotation keys and their total size.
pub fn annotations(map: Option<&Map<String, Value>>, path: &str, errs: &mut Errs) {
    let mut total = 0;
    for (k, v) in map.into_iter().flatten() {
        errs.invalid_each(path, k, names::qualified_name(&k.to_lowercase()));
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_LIMIT {
        errs.too_long(path, ANNOTATIONS_LIMIT);
    }
}

/// Checks a `LabelSelector` (`matchLabels`, `matchExpressions`).
pub fn label_selector(sel: &Value, path: &str, errs: &mut Errs) {
    labels(
        sel.get("matchLabels").and_then(Value::as_object),
        &child(path, "matchLabels"),
        errs,
    );
    for (i, expr) in list(sel, "matchExpressions").iter().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        let values = list(expr, "values");
        let op = string(expr, "operator");
        if !set_operator_values(op, values.len(), &p, errs) {
            errs.invalid_str(child(&p, "operator"), op, "not a valid selector operator");
        }
        let key = string(expr, "key");
        errs.invalid_each(&child(&p, "key"), key, names::qualified_name(key));
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            errs.invalid_each(&index(&child(&p, "values"), j), v, names::label_value(v));
        }
    }
}

/// Checks the `values` of a selector requirement at `path` whose operator is a set operator
/// (`In`, `NotIn`, `Exists`, `DoesNotExist`); false for any other operator (checked by the caller).
pub(crate) fn set_operator_values(op: &str, values: usize, path: &str, errs: &mut Errs) -> bool {
    match op {
        "In" | "NotIn" if values == 0 => errs.required(
            child(path, "values"),
            "must be specified when `operator` is 'In' or 'NotIn'",
        ),
        "Exists" | "DoesNotExist" if values > 0 => errs.forbidden(
            child(path, "values"),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
        _ => return false,
    }
    true
}

/// The metadata rules of create and update alike.
pub fn validate(obj: &Value, errs: &mut Errs) {
    let Some(meta) = obj.get("metadata") else {
        return;
    };
    let generate = string(meta, "generateName");
    if !generate.is_empty() {
        // The generated suffix follows the prefix: a trailing '-' is fine.
        let masked = match generate.strip_suffix('-') {
            Some(rest) if !rest.is_empty() => format!("{rest}a"),
            _ => generate.to_string(),
        };
        errs.invalid_each(
            "metadata.generateName",
            generate,
            names::dns1123_subdomain(&masked),
        );
    }
    labels(
        meta.get("labels").and_then(Value::as_object),
        "metadata.labels",
        errs,
    );
    annotations(
        meta.get("annotations").and_then(Value::as_object),
        "metadata.annotations",
        errs,
    );
    owner_references(list(meta, "ownerReferences"), errs);
    let finalizers: Vec<&str> = list(meta, "finalizers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for f in &finalizers {
        errs.invalid_each("metadata.finalizers", f, names::qualified_name(f));
    }
    if finalizers.contains(&"orphan") && finalizers.contains(&"foregroundDeletion") {
        errs.invalid(
            "metadata.finalizers",
            &Value::from(finalizers.clone()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        );
    }
}

fn owner_references(refs: &[Value], errs: &mut Errs) {
    let mut controller: Option<String> = None;
    for (i, r) in refs.iter().enumerate() {
        let p = index("metadata.ownerReferences", i);
        let api_version = string(r, "apiVersion");
        if api_version.is_empty() {
            errs.required(child(&p, "apiVersion"), "must not be empty");
        } else if api_version.split('/').count() > 2 || api_version.ends_with('/') {
            errs.invalid_str(
                child(&p, "apiVersion"),
                api_version,
                "must be <group>/<version> or <version>",
            );
        }
        for field in ["kind", "name", "uid"] {
            if string(r, field).is_empty() {
                errs.required(child(&p, field), "must not be empty");
            }
        }
        if api_version == "v1" && string(r, "kind") == "Event" {
            errs.invalid(&p, r, "/v1, Kind=Event is disallowed from being an owner");
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let this = format!("{}/{}", string(r, "kind"), string(r, "name"));
            match &controller {
                Some(first) => errs.invalid(
                    "metadata.ownerReferences",
                    &Value::from(refs.to_vec()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                ),
                None => controller = Some(this),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(obj: Value) -> Vec<(String, String)> {
        let mut errs = Errs::default();
        validate(&obj, &mut errs);
        errs.0.into_iter().map(|e| (e.field, e.message)).collect()
    }

    #[test]
    fn valid_metadata_passes() {
        let obj = json!({"metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "web", "empty": ""},
            "annotations": {"Example.COM/Thing": "v"}, "finalizers": ["kubernetes", "example.com/f"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]}});
        assert_eq!(check(obj), []);
    }

    #[test]
    fn label_and_annotation_errors() {
        let errs = check(json!({"metadata": {"labels": {"bad key": "v", "k": "-v"}}}));
        assert_eq!(errs.len(), 2);
        assert!(
            errs[0]
                .1
                .starts_with("Invalid value: \"bad key\": name part must consist of")
        );
        assert!(
            errs[1]
                .1
                .starts_with("Invalid value: \"-v\": a valid label must be an empty string")
        );
        assert!(errs.iter().all(|e| e.0 == "metadata.labels"));
        let big = "x".repeat(ANNOTATIONS_LIMIT);
        assert_eq!(
            check(json!({"metadata": {"annotations": {"a": big}}})),
            [(
                "metadata.annotations".to_string(),
                "Too long: may not be more than 262144 bytes".to_string()
            )]
        );
    }

    #[test]
    fn owner_references_and_finalizers() {
        let errs = check(
            json!({"metadata": {"generateName": "Bad-", "finalizers": ["a/b/c"], "ownerReferences": [
            {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": true},
            {"kind": "B", "name": "b", "controller": true}]}}),
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.generateName",
                "metadata.ownerReferences[1].apiVersion",
                "metadata.ownerReferences[1].uid",
                "metadata.ownerReferences",
                "metadata.finalizers"
            ]
        );
        assert_eq!(errs[1].1, "Required value: must not be empty");
        assert!(
            errs[3]
                .1
                .ends_with("Found \"true\" in references for A/a and B/b")
        );
    }

    #[test]
    fn selectors() {
        let mut errs = Errs::default();
        label_selector(
            &json!({"matchExpressions": [{"key": "k", "operator": "In"}, {"key": "k", "operator": "Bad"}]}),
            "spec.selector",
            &mut errs,
        );
        assert_eq!(errs.0[0].field, "spec.selector.matchExpressions[0].values");
        assert_eq!(
            errs.0[1].message,
            "Invalid value: \"Bad\": not a valid selector operator"
        );
    }
}
