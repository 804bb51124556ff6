//! Per-type behaviour the generic registry consults: name rules, create-time defaults of `status`,
//! and the few validations clients and conformance rely on. Keyed by group/resource; everything
//! not listed gets the generic behaviour.

use serde_json::{Value, json};

use crate::descriptor::ResourceDescriptor;
use crate::error::FieldError;

/// The namespace finalizer the namespace controller removes.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

fn is(desc: &ResourceDescriptor, group: &str, resource: &str) -> bool {
    desc.group == group && desc.resource == resource
}

/// True for the `namespaces` row.
pub fn is_namespace(desc: &ResourceDescriptor) -> bool {
    is(desc, "", "namespaces")
}

/// True for the `pods` row.
pub fn is_pod(desc: &ResourceDescriptor) -> bool {
    is(desc, "", "pods")
}

/// Resources whose `status` is owned by a controller and cleared on create.
fn clears_status_on_create(desc: &ResourceDescriptor) -> bool {
    matches!(
        (desc.group.as_str(), desc.resource.as_str()),
        (
            "apps",
            "deployments" | "replicasets" | "statefulsets" | "daemonsets"
        ) | ("batch", "jobs" | "cronjobs")
            | (
                "",
                "replicationcontrollers" | "services" | "persistentvolumeclaims" | "resourcequotas"
            )
            | ("autoscaling", "horizontalpodautoscalers")
            | ("policy", "poddisruptionbudgets")
            | ("apiextensions.k8s.io", "customresourcedefinitions")
            | ("networking.k8s.io", "ingresses")
            | ("certificates.k8s.io", "certificatesigningrequests")
    )
}

/// Create-time defaults (upstream `PrepareForCreate`).
pub fn prepare_for_create(desc: &ResourceDescriptor, obj: &mut Value) {
    if is_namespace(desc) {
        obj["status"] = json!({"phase": "Active"});
        let name = obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
        if let Some(labels) = ensure_object(&mut obj["metadata"], "labels") {
            labels.insert("kubernetes.io/metadata.name".into(), name);
        }
        if obj
            .pointer("/spec/finalizers")
            .is_none_or(|f| f.as_array().is_none_or(Vec::is_empty))
        {
            obj["spec"] = json!({"finalizers": [NAMESPACE_FINALIZER]});
        }
    } else if is_pod(desc) {
        obj["status"] = json!({"phase": "Pending"});
        // Upstream's pod strategy: a gated pod says so until its gates are gone.
        let gated = obj
            .pointer("/spec/schedulingGates")
            .and_then(Value::as_array)
            .is_some_and(|g| !g.is_empty());
        if gated {
            obj["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                "reason": "SchedulingGated", "lastProbeTime": null,
                "lastTransitionTime": crate::registry::now_rfc3339(),
                "message": "Scheduling is blocked due to non-empty scheduling gates"}]);
        }
    } else if clears_status_on_create(desc)
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
}

fn ensure_object<'a>(parent: &'a mut Value, key: &str) -> Option<&'a mut serde_json::Map<String, Value>> {
    let map = parent.as_object_mut()?;
    let slot = map.entry(key.to_string()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut()
}

/// Which rule names of a resource follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameRule {
    /// RFC 1123 subdomain (most resources).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Label1035,
    /// Only not `.`/`..` and no `/` or `%` (RBAC).
    PathSegment,
}

fn name_rule(desc: &ResourceDescriptor) -> NameRule {
    match (desc.group.as_str(), desc.resource.as_str()) {
        ("", "namespaces") => NameRule::Label,
        ("", "services") => NameRule::Label1035,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        ("", "events") | ("events.k8s.io", "events") => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// Every reason a name breaks the resource's rule (upstream's messages).
pub fn name_messages(desc: &ResourceDescriptor, name: &str) -> Vec<String> {
    use crate::validation::names;
    match name_rule(desc) {
        NameRule::PathSegment if name == "." || name == ".." => vec![format!("may not be '{name}'")],
        NameRule::PathSegment => ["/", "%"]
            .iter()
            .filter(|c| name.contains(**c))
            .map(|c| format!("may not contain '{c}'"))
            .collect(),
        NameRule::Label => names::dns1123_label(name),
        NameRule::Label1035 => names::dns1035_label(name),
        NameRule::Subdomain => names::dns1123_subdomain(name),
    }
}

/// Checks a name against the resource's rule; returns the (first) reason when it is not valid.
pub fn validate_name(desc: &ResourceDescriptor, name: &str) -> Option<String> {
    name_messages(desc, name).into_iter().next()
}

fn name_errors(desc: &ResourceDescriptor, obj: &Value) -> Vec<FieldError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    name_messages(desc, name)
        .iter()
        .map(|why| FieldError::invalid("metadata.name", &Value::from(name), why))
        .collect()
}

/// Validations of a new object (beyond type checking): the name, then [`crate::validation`].
pub fn validate(desc: &ResourceDescriptor, obj: &Value) -> Vec<FieldError> {
    let mut errs = name_errors(desc, obj);
    errs.extend(crate::validation::validate(desc, obj));
    errs
}

/// Validations of an update against the stored object.
pub fn validate_update(desc: &ResourceDescriptor, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = name_errors(desc, new);
    errs.extend(crate::validation::validate_update(desc, new, old));
    errs
}

/// Validations of a `status` subresource write.
pub fn validate_status(desc: &ResourceDescriptor, new: &Value) -> Vec<FieldError> {
    crate::validation::validate_status(desc, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(resource: &str) -> ResourceDescriptor {
        crate::builtin::rows()
            .into_iter()
            .find(|d| d.resource == resource && d.version == "v1")
            .unwrap()
    }

    #[test]
    fn names_follow_the_resource_rule() {
        assert!(validate_name(&row("configmaps"), "a.b-c").is_none());
        assert!(validate_name(&row("configmaps"), "A").is_some());
        assert!(validate_name(&row("namespaces"), "a.b").is_some());
        assert!(validate_name(&row("services"), "1abc").is_some());
        assert!(validate_name(&row("clusterroles"), "system:admin").is_none());
        assert!(validate_name(&row("clusterroles"), "a/b").is_some());
    }

    #[test]
    fn config_keys_and_immutability() {
        let cm = row("configmaps");
        let errs = validate(
            &cm,
            &json!({"metadata": {"name": "x"}, "data": {"": "v", "ok": "v"}}),
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "data[]");
        let old = json!({"metadata": {"name": "x"}, "data": {"a": "1"}, "immutable": true});
        let new = json!({"metadata": {"name": "x"}, "data": {"a": "2"}, "immutable": true});
        assert_eq!(validate_update(&cm, &new, &old).len(), 1);
        assert!(validate_update(&cm, &old, &old).is_empty());
    }

    #[test]
    fn namespace_defaults() {
        let mut ns = json!({"metadata": {"name": "team"}});
        prepare_for_create(&row("namespaces"), &mut ns);
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team");
    }
}
