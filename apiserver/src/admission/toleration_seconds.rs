//! Upstream's DefaultTolerationSeconds admission plugin: a new pod that does not tolerate the
//! `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable` NoExecute taints gets
//! tolerations for them, bounded by a number of seconds (300 by default), so the node lifecycle
//! controller evicts it that long after its node goes away.

use serde_json::{Value, json};

/// The taint a node that is not ready carries.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint a node the control plane cannot reach carries.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// True when `toleration` already covers the NoExecute taint `key` as upstream's plugin
/// decides: the same key or none, and the NoExecute effect or none.
fn tolerates(toleration: &Value, key: &str) -> bool {
    let field = |name: &str| toleration.get(name).and_then(Value::as_str).unwrap_or("");
    matches!(field("effect"), "" | "NoExecute") && (field("key").is_empty() || field("key") == key)
}

/// Adds the default tolerations `pod` lacks.
pub fn add_defaults(pod: &mut Value, not_ready_seconds: i64, unreachable_seconds: i64) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for (key, seconds) in [(NOT_READY, not_ready_seconds), (UNREACHABLE, unreachable_seconds)] {
        if !list.iter().any(|t| tolerates(t, key)) {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": seconds}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pod: &Value) -> Vec<(String, i64)> {
        pod["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or("").to_string(),
                    t["tolerationSeconds"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }

    #[test]
    fn a_pod_without_tolerations_gets_both() {
        let mut pod = json!({"spec": {"containers": []}});
        add_defaults(&mut pod, 300, 200);
        assert_eq!(
            keys(&pod),
            [(NOT_READY.to_string(), 300), (UNREACHABLE.to_string(), 200)]
        );
        assert_eq!(pod["spec"]["tolerations"][0]["effect"], "NoExecute");
        assert_eq!(pod["spec"]["tolerations"][0]["operator"], "Exists");
    }

    #[test]
    fn existing_tolerations_are_kept() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}});
        add_defaults(&mut pod, 300, 300);
        assert_eq!(
            keys(&pod),
            [(NOT_READY.to_string(), 5), (UNREACHABLE.to_string(), 300)]
        );
    }

    #[test]
    fn wildcards_and_other_effects() {
        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_defaults(&mut all, 300, 300);
        assert_eq!(all["spec"]["tolerations"].as_array().unwrap().len(), 1);
        let mut no_schedule = json!({"spec": {"tolerations": [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}]}});
        add_defaults(&mut no_schedule, 300, 300);
        assert_eq!(no_schedule["spec"]["tolerations"].as_array().unwrap().len(), 3);
        let mut any_effect = json!({"spec": {"tolerations": [{"key": UNREACHABLE, "operator": "Exists"}]}});
        add_defaults(&mut any_effect, 300, 300);
        assert_eq!(
            keys(&any_effect),
            [(UNREACHABLE.to_string(), -1), (NOT_READY.to_string(), 300)]
        );
    }
}
