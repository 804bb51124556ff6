//! The Node restriction (upstream's Node authorizer and NodeRestriction admission, reduced): a
//! kubelet (`system:node:<name>` in `system:nodes`) may only change its own Node and Lease, change
//! or delete pods bound to it, read the secrets, configmaps and claims those pods use, and request
//! tokens for their ServiceAccounts. Other requests are left to RBAC.

use serde_json::Value;

use super::Attributes;
use crate::ApiServer;
use crate::error::{ApiError, ApiResult};
use crate::registry::ListOptions;
use crate::selector::FieldSelector;

/// The group of kubelets.
pub const NODES_GROUP: &str = "system:nodes";
/// Prefix of kubelet user names.
pub const NODE_PREFIX: &str = "system:node:";
const NO_RELATIONSHIP: &str = "no relationship found between node '{node}' and this object";

/// The node a user is the kubelet of.
pub fn node_of(a: &Attributes) -> Option<&str> {
    if !a.user.groups.iter().any(|g| g == NODES_GROUP) {
        return None;
    }
    a.user.name.strip_prefix(NODE_PREFIX).filter(|n| !n.is_empty())
}

/// Whether a pod spec refers to an object of `kind` (`secret`, `configmap`, `pvc`) named `name`.
pub fn pod_references(spec: &Value, kind: &str, name: &str) -> bool {
    fn walk(v: &Value, kind: &str, name: &str) -> bool {
        match v {
            Value::Object(map) => map.iter().any(|(k, child)| {
                let named = |field: &str| child.get(field).and_then(Value::as_str) == Some(name);
                let hit = match (kind, k.as_str()) {
                    ("secret", "secretName") => child.as_str() == Some(name),
                    ("secret", "secretKeyRef" | "secretRef" | "secret") => named("name"),
                    ("secret", "imagePullSecrets") => child.as_array().is_some_and(|a| {
                        a.iter()
                            .any(|s| s.get("name").and_then(Value::as_str) == Some(name))
                    }),
                    ("configmap", "configMapKeyRef" | "configMapRef" | "configMap") => named("name"),
                    ("pvc", "persistentVolumeClaim") => named("claimName"),
                    _ => false,
                };
                hit || walk(child, kind, name)
            }),
            Value::Array(items) => items.iter().any(|i| walk(i, kind, name)),
            _ => false,
        }
    }
    walk(spec, kind, name)
}

/// The pods of `namespace` bound to `node`.
async fn pods_on(api: &ApiServer, namespace: &str, node: &str) -> ApiResult<Vec<Value>> {
    let desc = api
        .table
        .lookup("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let opts = ListOptions {
        fields: FieldSelector::parse(&format!("spec.nodeName={node}"), &desc)?,
        ..Default::default()
    };
    let list = api.registry.list(&desc, namespace, &opts).await?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

/// Refuses what a kubelet may not do beyond its RBAC role.
pub async fn restrict(api: &ApiServer, a: &Attributes) -> ApiResult<()> {
    let Some(node) = node_of(a) else {
        return Ok(());
    };
    if !a.resource_request {
        return Ok(());
    }
    let deny = |reason: String| Err(a.forbidden_because(&reason));
    let no_relationship = || deny(NO_RELATIONSHIP.replace("{node}", node));
    let named_write = matches!(a.verb.as_str(), "update" | "patch" | "delete");
    match (a.group.as_str(), a.resource.as_str()) {
        ("", "nodes") if named_write && a.name != node => deny(format!(
            "node {node:?} is not allowed to modify node {:?}",
            a.name
        )),
        ("coordination.k8s.io", "leases") if !a.name.is_empty() || named_write => {
            if a.namespace == "kube-node-lease" && a.name == node {
                Ok(())
            } else {
                deny(format!(
                    "can only access node lease with the same name as the requesting node {node:?}"
                ))
            }
        }
        ("", kind @ ("secrets" | "configmaps" | "persistentvolumeclaims")) if a.subresource.is_empty() => {
            if a.name.is_empty() || !matches!(a.verb.as_str(), "get" | "list" | "watch") {
                return no_relationship();
            }
            let kind = match kind {
                "secrets" => "secret",
                "configmaps" => "configmap",
                _ => "pvc",
            };
            let pods = pods_on(api, &a.namespace, node).await?;
            if pods.iter().any(|p| pod_references(&p["spec"], kind, &a.name)) {
                Ok(())
            } else {
                no_relationship()
            }
        }
        ("", "serviceaccounts") if a.subresource == "token" => {
            let pods = pods_on(api, &a.namespace, node).await?;
            let uses = |p: &Value| {
                p.pointer("/spec/serviceAccountName")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    == a.name
            };
            if pods.iter().any(uses) {
                Ok(())
            } else {
                no_relationship()
            }
        }
        ("", "pods") if (named_write && !a.name.is_empty()) || a.subresource == "status" => {
            let pods = pods_on(api, &a.namespace, node).await?;
            let bound =
                |p: &Value| p.pointer("/metadata/name").and_then(Value::as_str) == Some(a.name.as_str());
            if pods.iter().any(bound) {
                Ok(())
            } else {
                deny(format!("node {node:?} can only modify pods bound to it"))
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_references_every_kind_of_use() {
        let spec = json!({
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol-secret"}},
                {"name": "b", "configMap": {"name": "vol-cm"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "d", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-cm"}}]}},
            ],
            "containers": [{"name": "x", "env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}],
                "envFrom": [{"secretRef": {"name": "from-secret"}}, {"configMapRef": {"name": "from-cm"}}]}],
        });
        for s in ["pull", "vol-secret", "proj-secret", "env-secret", "from-secret"] {
            assert!(pod_references(&spec, "secret", s), "{s}");
        }
        for c in ["vol-cm", "proj-cm", "env-cm", "from-cm"] {
            assert!(pod_references(&spec, "configmap", c), "{c}");
        }
        assert!(pod_references(&spec, "pvc", "data"));
        assert!(!pod_references(&spec, "secret", "vol-cm"));
        assert!(!pod_references(&spec, "secret", "other"));
        assert!(!pod_references(&spec, "configmap", "vol-secret"));
    }
}
