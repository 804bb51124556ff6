//! Keelson's strategic merge patch for built-in types: maps merge recursively, `null` deletes,
//! lists with a merge key merge element by element, other lists are replaced. Directives:
//! `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>`.
//!
//! k8s-openapi does not carry the `x-kubernetes-patch-merge-key` metadata, so the merge keys of the
//! common lists are in [`list_strategy`], chosen by field name and the path above it.

use serde_json::{Map, Value};

/// How a list field merges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// Replaced wholesale (the default).
    Replace,
    /// Elements matched by this key are merged; others appended.
    MergeKey(&'static str),
    /// A list of scalars merged as a set (e.g. `metadata.finalizers`).
    MergePrimitives,
}

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The merge strategy of list `field` under the map at `path` (map keys from the root, list
/// fields included, indices left out).
pub fn list_strategy(path: &[String], field: &str) -> ListStrategy {
    use ListStrategy::*;
    let parent = path.last().map(String::as_str).unwrap_or("");
    match field {
        f if CONTAINER_LISTS.contains(&f) => MergeKey("name"),
        "env" | "volumes" | "imagePullSecrets" | "resourceClaims" => MergeKey("name"),
        "volumeMounts" => MergeKey("mountPath"),
        "volumeDevices" => MergeKey("devicePath"),
        "hostAliases" => MergeKey("ip"),
        "conditions" => MergeKey("type"),
        "ownerReferences" => MergeKey("uid"),
        "topologySpreadConstraints" => MergeKey("topologyKey"),
        "addresses" if parent == "status" => MergeKey("type"),
        "ports" if CONTAINER_LISTS.contains(&parent) => MergeKey("containerPort"),
        "ports" if path.len() == 1 && parent == "spec" => MergeKey("port"),
        "finalizers" if path.len() == 1 && parent == "metadata" => MergePrimitives,
        _ => Replace,
    }
}

/// Applies a strategic merge patch to `original` in place.
pub fn apply(original: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(patch) = patch else {
        return Err("strategic merge patch must be a JSON object".into());
    };
    if !original.is_object() {
        *original = Value::Object(Map::new());
    }
    let mut path = Vec::new();
    match merge_map(original, patch, &mut path)? {
        MapOutcome::Keep => Ok(()),
        MapOutcome::Delete => {
            *original = Value::Object(Map::new());
            Ok(())
        }
    }
}

enum MapOutcome {
    Keep,
    Delete,
}

fn merge_map(
    orig: &mut Value,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<MapOutcome, String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(MapOutcome::Delete),
        Some("replace") => {
            *orig = strip_directives(&Value::Object(patch.clone()));
            return Ok(MapOutcome::Keep);
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other:?}")),
    }
    if !orig.is_object() {
        *orig = Value::Object(Map::new());
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    let mut retain: Option<Vec<String>> = None;
    for (key, pv) in patch {
        if key == "$patch" {
            continue;
        }
        if key == "$retainKeys" {
            let keys = pv
                .as_array()
                .ok_or("$retainKeys must be a list")?
                .iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect();
            retain = Some(keys);
            continue;
        }
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            orders.push((field.to_string(), pv.as_array().cloned().unwrap_or_default()));
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = pv.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = orig.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            return Err(format!("unknown directive {key:?}"));
        }
        let Some(obj) = orig.as_object_mut() else {
            return Err("internal: not an object".into());
        };
        match pv {
            Value::Null => {
                obj.remove(key);
            }
            Value::Object(pm) => {
                path.push(key.clone());
                let slot = obj.entry(key.clone()).or_insert(Value::Null);
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                let outcome = merge_map(slot, pm, path)?;
                path.pop();
                if matches!(outcome, MapOutcome::Delete) {
                    obj.remove(key);
                }
            }
            Value::Array(pl) => {
                let strategy = list_strategy(path, key);
                path.push(key.clone());
                let existing = obj.remove(key);
                let merged = merge_list(existing, pl, &strategy, path)?;
                path.pop();
                obj.insert(key.clone(), merged);
            }
            scalar => {
                obj.insert(key.clone(), scalar.clone());
            }
        }
    }
    if let (Some(keys), Some(obj)) = (retain, orig.as_object_mut()) {
        obj.retain(|k, _| keys.contains(k));
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = orig.get_mut(&field) {
            let strategy = list_strategy(path, &field);
            reorder(list, &order, &strategy);
        }
    }
    Ok(MapOutcome::Keep)
}

fn merge_list(
    existing: Option<Value>,
    patch: &[Value],
    strategy: &ListStrategy,
    path: &mut Vec<String>,
) -> Result<Value, String> {
    let replace_marker = |v: &Value| {
        v.as_object()
            .is_some_and(|m| m.len() == 1 && m.get("$patch") == Some(&Value::from("replace")))
    };
    if patch.iter().any(replace_marker) {
        let items = patch
            .iter()
            .filter(|v| !replace_marker(v))
            .map(strip_directives)
            .collect();
        return Ok(Value::Array(items));
    }
    let mut list = match existing {
        Some(Value::Array(l)) => l,
        _ => Vec::new(),
    };
    match strategy {
        ListStrategy::Replace => Ok(Value::Array(patch.iter().map(strip_directives).collect())),
        ListStrategy::MergePrimitives => {
            for v in patch {
                if !list.contains(v) {
                    list.push(v.clone());
                }
            }
            Ok(Value::Array(list))
        }
        ListStrategy::MergeKey(mk) => {
            for pv in patch {
                let Some(pm) = pv.as_object() else {
                    list.push(pv.clone());
                    continue;
                };
                let key_value = pm.get(*mk);
                let pos = key_value.and_then(|kv| list.iter().position(|e| e.get(*mk) == Some(kv)));
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(p) = pos {
                        list.remove(p);
                    }
                    continue;
                }
                match pos {
                    Some(p) => {
                        if let MapOutcome::Delete = merge_map(&mut list[p], pm, path)? {
                            list.remove(p);
                        }
                    }
                    None => list.push(strip_directives(pv)),
                }
            }
            Ok(Value::Array(list))
        }
    }
}

/// Orders `list` as `order` says (elements not named keep their relative order, at the end).
fn reorder(list: &mut [Value], order: &[Value], strategy: &ListStrategy) {
    let position = |v: &Value| -> usize {
        let found = match strategy {
            ListStrategy::MergeKey(mk) => order
                .iter()
                .position(|o| o.get(*mk).is_some() && o.get(*mk) == v.get(*mk)),
            _ => order.iter().position(|o| o == v),
        };
        found.unwrap_or(usize::MAX)
    };
    list.sort_by_key(position);
}

/// The patch value with every `$` directive removed (what a new element becomes).
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(l) => Value::Array(l.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(mut orig: Value, patch: Value) -> Value {
        apply(&mut orig, &patch).unwrap();
        orig
    }

    fn deployment() -> Value {
        json!({"metadata": {"name": "web", "finalizers": ["a"], "labels": {"app": "web", "x": "1"}},
            "spec": {"replicas": 1, "template": {"spec": {
                "containers": [
                    {"name": "nginx", "image": "nginx:1", "ports": [{"containerPort": 80, "name": "http"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "volumeMounts": [{"mountPath": "/data", "name": "d"}], "args": ["a", "b"]},
                    {"name": "sidecar", "image": "busybox"}],
                "volumes": [{"name": "d", "emptyDir": {}}]}}}})
    }

    #[test]
    fn merges_containers_by_name_and_keeps_others() {
        let out = patched(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2", "args": ["c"]}]}}}}),
        );
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs.as_array().unwrap().len(), 2);
        assert_eq!(cs[0]["image"], "nginx:2");
        assert_eq!(cs[0]["args"], json!(["c"]), "plain lists are replaced");
        assert_eq!(cs[0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(cs[1]["name"], "sidecar");
    }

    #[test]
    fn nested_keys_env_ports_volumes() {
        let out = patched(
            deployment(),
            json!({"spec": {"template": {"spec": {
                "containers": [{"name": "nginx",
                    "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}, {"name": "A", "$patch": "delete"}],
                    "ports": [{"containerPort": 443}],
                    "volumeMounts": [{"mountPath": "/data", "readOnly": true}]}],
                "volumes": [{"name": "e", "emptyDir": {}}]}}}}),
        );
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["env"],
            json!([{"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
        );
        assert_eq!(
            c["ports"],
            json!([{"containerPort": 80, "name": "http"}, {"containerPort": 443}])
        );
        assert_eq!(
            c["volumeMounts"],
            json!([{"mountPath": "/data", "name": "d", "readOnly": true}])
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn directives() {
        // $patch: delete on a list element, null deletes a field, $patch: replace on a map.
        let out = patched(
            deployment(),
            json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}, "finalizers": ["b"]},
                   "spec": {"replicas": null, "template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert!(out["spec"].get("replicas").is_none());
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // $patch: replace on a list.
        let out = patched(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "x"}])
        );
        // $setElementOrder and $deleteFromPrimitiveList.
        let out = patched(
            deployment(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
                   "spec": {"template": {"spec": {
                       "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}],
                       "containers": [{"name": "nginx", "image": "nginx:3"}]}}}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!([]));
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            (cs[0]["name"].as_str(), cs[1]["image"].as_str()),
            (Some("sidecar"), Some("nginx:3"))
        );
        // $retainKeys.
        let out = patched(
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn service_ports_merge_on_port() {
        let out = patched(
            json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}),
            json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}),
        );
        assert_eq!(
            out["spec"]["ports"][1],
            json!({"port": 443, "name": "https", "targetPort": 8443})
        );
    }

    #[test]
    fn bad_patches_are_errors() {
        let mut v = json!({});
        assert!(apply(&mut v, &json!([1])).is_err());
        assert!(apply(&mut v, &json!({"$patch": "explode"})).is_err());
        assert!(apply(&mut v, &json!({"$bogus": 1})).is_err());
    }
}
