//! Upstream's Priority admission plugin: a pod's `priorityClassName` (or the global default
//! class) becomes its `spec.priority` and `spec.preemptionPolicy`; a pod may not claim a
//! different value itself. The system classes (`system-node-critical`,
//! `system-cluster-critical`) are created at start.

use serde_json::{Value, json};

use super::{Registry, row};
use crate::error::{ApiError, ApiResult, GroupResource};
use crate::registry::{ListOptions, WriteOptions};

/// The system classes upstream creates, with their values.
pub const SYSTEM_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

const DEFAULT_POLICY: &str = "PreemptLowerPriority";

/// What a class gives a pod: its name (possibly empty), value and preemption policy.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    name: String,
    value: i64,
    policy: String,
}

fn class_of(pc: &Value) -> Resolved {
    Resolved {
        name: pc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        value: pc.get("value").and_then(Value::as_i64).unwrap_or(0),
        policy: pc
            .get("preemptionPolicy")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_POLICY)
            .to_string(),
    }
}

/// The class a pod naming `name` (empty: none) gets among `classes`; `Err` names a missing one.
pub(crate) fn resolve(name: &str, classes: &[Value]) -> Result<Resolved, String> {
    if name.is_empty() {
        // The global default with the lowest value, else priority 0 and no class.
        return Ok(classes
            .iter()
            .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
            .map(class_of)
            .min_by_key(|c| c.value)
            .unwrap_or(Resolved {
                name: String::new(),
                value: 0,
                policy: DEFAULT_POLICY.into(),
            }));
    }
    classes
        .iter()
        .find(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
        .map(class_of)
        .ok_or_else(|| format!("no PriorityClass with name {name} was found"))
}

/// Sets the pod's priority from its class, or explains (403) why it cannot have it.
pub(crate) fn apply(pod: &mut Value, classes: &[Value]) -> Result<(), String> {
    let named = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let class = resolve(&named, classes)?;
    if let Some(given) = pod.pointer("/spec/priority").and_then(Value::as_i64)
        && given != class.value
    {
        return Err(format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
            class.value
        ));
    }
    if let Some(given) = pod.pointer("/spec/preemptionPolicy").and_then(Value::as_str)
        && given != class.policy
    {
        return Err(format!(
            "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
            class.policy
        ));
    }
    let spec = &mut pod["spec"];
    if named.is_empty() && !class.name.is_empty() {
        spec["priorityClassName"] = json!(class.name);
    }
    spec["priority"] = json!(class.value);
    spec["preemptionPolicy"] = json!(class.policy);
    Ok(())
}

/// Admits a pod create: its priority from its class.
pub(super) async fn admit_pod(reg: &Registry, name: &str, pod: &mut Value) -> ApiResult<()> {
    let classes = match row(reg, "scheduling.k8s.io", "priorityclasses") {
        Some(desc) => {
            let any = ListOptions {
                resource_version: Some(0),
                ..Default::default()
            };
            reg.list_page(&desc, "", &any).await?.items
        }
        None => Vec::new(),
    };
    apply(pod, &classes).map_err(|why| ApiError::forbidden(&GroupResource::new("", "pods"), name, &why))
}

/// Creates the system PriorityClasses that do not exist yet.
pub async fn ensure_system_classes(reg: &Registry) -> ApiResult<()> {
    let Some(desc) = row(reg, "scheduling.k8s.io", "priorityclasses") else {
        return Ok(());
    };
    for (name, value, description) in SYSTEM_CLASSES {
        let body = json!({"apiVersion": desc.api_version(), "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description});
        let opts = WriteOptions {
            field_manager: "kube-apiserver".into(),
            ..WriteOptions::default()
        };
        match reg.create(&desc, "", body, &opts).await {
            Ok(_) => tracing::info!(class = name, "created system priority class"),
            Err(e) if e.reason() == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<Value> {
        vec![
            json!({"metadata": {"name": "high"}, "value": 1000}),
            json!({"metadata": {"name": "polite"}, "value": 500, "preemptionPolicy": "Never"}),
        ]
    }

    #[test]
    fn the_class_sets_priority_and_policy() {
        let mut pod = json!({"spec": {"priorityClassName": "high"}});
        apply(&mut pod, &classes()).unwrap();
        assert_eq!(pod["spec"]["priority"], 1000);
        assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        let mut pod = json!({"spec": {"priorityClassName": "polite"}});
        apply(&mut pod, &classes()).unwrap();
        assert_eq!(pod["spec"]["preemptionPolicy"], "Never");
    }

    #[test]
    fn without_a_class_the_global_default_or_zero() {
        let mut pod = json!({"spec": {}});
        apply(&mut pod, &classes()).unwrap();
        assert_eq!(pod["spec"]["priority"], 0);
        assert!(pod["spec"].get("priorityClassName").is_none());
        let mut with_default = classes();
        with_default.push(json!({"metadata": {"name": "d"}, "value": 7, "globalDefault": true}));
        let mut pod = json!({"spec": {}});
        apply(&mut pod, &with_default).unwrap();
        assert_eq!(pod["spec"]["priority"], 7);
        assert_eq!(pod["spec"]["priorityClassName"], "d");
    }

    #[test]
    fn missing_classes_and_other_values_are_refused() {
        let mut pod = json!({"spec": {"priorityClassName": "nope"}});
        assert_eq!(
            apply(&mut pod, &classes()).unwrap_err(),
            "no PriorityClass with name nope was found"
        );
        let mut pod = json!({"spec": {"priority": 5}});
        assert!(apply(&mut pod, &classes()).unwrap_err().starts_with(
            "the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 0"
        ));
        let mut same = json!({"spec": {"priorityClassName": "high", "priority": 1000}});
        apply(&mut same, &classes()).unwrap();
    }
}
