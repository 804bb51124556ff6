//! `resource.Quantity` values in built-in objects: the shared [`api_util::quantity`] type, and
//! upstream's decoding errors for malformed quantities in built-in types.

use serde_json::Value;

pub use api_util::quantity::{FORMAT_ERROR, Quantity, SUFFIX_ERROR, decode_error, display};

/// Maps whose values are quantities, named by their last keys (array indices skipped):
/// container and pod `resources`, pod `overhead`, PV/PVC/node capacities, quota amounts and
/// limit range bounds.
const QUANTITY_MAPS: &[&[&str]] = &[
    &["resources", "limits"],
    &["resources", "requests"],
    &["spec", "overhead"],
    &["overhead", "podFixed"],
    &["capacity"],
    &["allocatable"],
    &["allocatedResources"],
    &["hard"],
    &["used"],
    &["limits", "max"],
    &["limits", "min"],
    &["limits", "default"],
    &["limits", "defaultRequest"],
    &["limits", "maxLimitRequestRatio"],
];

/// Single quantity fields, named by their last keys.
const QUANTITY_FIELDS: &[&[&str]] = &[&["emptyDir", "sizeLimit"], &["maximumVolumeSize"]];

/// API groups whose built-in types carry the quantities above (other groups embed free-form
/// JSON that may use the same key names).
const QUANTITY_GROUPS: [&str; 5] = ["", "apps", "batch", "storage.k8s.io", "node.k8s.io"];

/// The decoding error of the first malformed quantity in a built-in object of `group`: upstream
/// rejects such objects while decoding (400), before validation.
pub fn malformed(group: &str, obj: &Value) -> Option<&'static str> {
    if !QUANTITY_GROUPS.contains(&group) {
        return None;
    }
    let mut keys = Vec::new();
    find_malformed(obj, &mut keys)
}

fn find_malformed<'a>(v: &'a Value, keys: &mut Vec<&'a str>) -> Option<&'static str> {
    let ends_with = |patterns: &[&[&str]], keys: &[&str]| patterns.iter().any(|p| keys.ends_with(p));
    match v {
        Value::Object(map) => {
            if ends_with(QUANTITY_MAPS, keys)
                && let Some(e) = map.values().find_map(decode_error)
            {
                return Some(e);
            }
            for (k, child) in map {
                keys.push(k);
                let found = if ends_with(QUANTITY_FIELDS, keys) {
                    decode_error(child)
                } else {
                    find_malformed(child, keys)
                };
                keys.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Value::Array(items) => items.iter().find_map(|i| find_malformed(i, keys)),
        // `capacity` of a CSIStorageCapacity is a single quantity.
        Value::String(_) if keys.as_slice() == ["capacity"] => decode_error(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_quantities_fail_decoding() {
        use serde_json::json;
        let pod = |cpu: Value| json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": cpu, "memory": "1Gi"}}}]}});
        assert_eq!(malformed("", &pod(json!("500m"))), None);
        assert_eq!(malformed("", &pod(json!(2))), None);
        assert_eq!(malformed("", &pod(json!(" 1 "))), None);
        assert_eq!(malformed("", &pod(json!("abc"))), Some(FORMAT_ERROR));
        assert_eq!(malformed("", &pod(json!(""))), Some(FORMAT_ERROR));
        assert_eq!(malformed("", &pod(json!("32MMi"))), Some(SUFFIX_ERROR));
        let deploy = json!({"spec": {"template": {"spec": {"volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1X"}}]}}}});
        assert_eq!(malformed("apps", &deploy), Some(FORMAT_ERROR));
        let limits = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "lots"}}]}});
        assert_eq!(malformed("", &limits), Some(FORMAT_ERROR));
        assert_eq!(
            malformed("", &json!({"spec": {"hard": {"pods": "ten"}}})),
            Some(FORMAT_ERROR)
        );
        // Other groups' free-form JSON with the same key names is left alone.
        let crd =
            json!({"spec": {"versions": [{"schema": {"properties": {"limits": {"default": {"a": "b"}}}}}]}});
        assert_eq!(malformed("apiextensions.k8s.io", &crd), None);
        // A ConfigMap's data is not a quantity map.
        assert_eq!(malformed("", &json!({"data": {"capacity": "lots"}})), None);
    }
}
