//! Quota usage as upstream's quota evaluators (`pkg/quota/v1/evaluator/core`) compute it, for
//! ResourceQuota admission and the quota controller: what one object uses (object counts
//! `count/<resource>[.<group>]` and the core names `pods`, `services`, `requests.cpu`,
//! `limits.memory`, `requests.storage`, ...), which objects a quota resource name counts, and
//! which objects a quota's scopes select.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::quantity::Quantity;
use crate::resources::{ResourceList, pod_requests_and_limits_json};

/// The compute resources a pod's quota counts by their plain name too (`cpu` = `requests.cpu`).
pub const PLAIN_REQUESTS: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// `count/<resource>` for the core group, `count/<resource>.<group>` otherwise.
pub fn count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// Requests and limits of a pod (or one container) as quota names.
pub fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    for (k, v) in requests {
        out.insert(format!("requests.{k}"), *v);
        if PLAIN_REQUESTS.contains(&k.as_str()) || k.starts_with("hugepages-") {
            out.insert(k.clone(), *v);
        }
    }
    for (k, v) in limits {
        if PLAIN_REQUESTS.contains(&k.as_str()) {
            out.insert(format!("limits.{k}"), *v);
        }
    }
    out
}

fn pod_is_terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// What one object uses of a quota: its object counts and, for pods, services and PVCs, the
/// resources upstream's evaluators count.
pub fn usage(group: &str, resource: &str, obj: &Value) -> ResourceList {
    let one = Quantity::count(1);
    let mut out = ResourceList::new();
    let is_core = |r: &str| group.is_empty() && resource == r;
    if is_core("pods") && pod_is_terminal(obj) {
        return out;
    }
    out.insert(count_name(group, resource), one);
    let legacy = [
        "pods",
        "services",
        "configmaps",
        "secrets",
        "replicationcontrollers",
        "resourcequotas",
        "persistentvolumeclaims",
    ];
    if group.is_empty() && legacy.contains(&resource) {
        out.insert(resource.to_string(), one);
    }
    if is_core("pods") {
        let (requests, limits) = pod_requests_and_limits_json(obj).unwrap_or_default();
        out.extend(compute_usage(&requests, &limits));
    } else if is_core("services") {
        let kind = obj
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        let ports = obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let lb_node_ports = obj
            .pointer("/spec/allocateLoadBalancerNodePorts")
            .and_then(Value::as_bool)
            != Some(false);
        if kind == "LoadBalancer" {
            out.insert("services.loadbalancers".into(), one);
        }
        if kind == "NodePort" || (kind == "LoadBalancer" && lb_node_ports) {
            out.insert("services.nodeports".into(), Quantity::count(ports as i64));
        }
    } else if is_core("persistentvolumeclaims") {
        let storage = obj
            .pointer("/spec/resources/requests/storage")
            .and_then(Quantity::from_json);
        if let Some(s) = storage {
            out.insert("requests.storage".into(), s);
        }
        let class = obj
            .pointer("/spec/storageClassName")
            .or_else(|| obj.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !class.is_empty() {
            let prefix = format!("{class}.storageclass.storage.k8s.io/");
            out.insert(format!("{prefix}persistentvolumeclaims"), one);
            if let Some(s) = storage {
                out.insert(format!("{prefix}requests.storage"), s);
            }
        }
    }
    out
}

/// The resources (group, resource) whose objects a quota resource name counts, for recomputing
/// usage.
pub fn counted_resources(hard: &ResourceList) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for name in hard.keys() {
        let core = |r: &str| ("".to_string(), r.to_string());
        let row = if let Some(rest) = name.strip_prefix("count/") {
            match rest.split_once('.') {
                Some((r, g)) => (g.to_string(), r.to_string()),
                None => core(rest),
            }
        } else if name.starts_with("services") {
            core("services")
        } else if name == "persistentvolumeclaims"
            || name == "requests.storage"
            || name.contains(".storageclass.storage.k8s.io/")
        {
            core("persistentvolumeclaims")
        } else if matches!(
            name.as_str(),
            "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas"
        ) {
            core(name)
        } else {
            core("pods")
        };
        out.insert(row);
    }
    out
}

fn scopes(quota: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    let selector = quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for expr in selector {
        let field = |k: &str| expr.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let values = expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        out.push((field("scopeName"), field("operator"), values));
    }
    out
}

/// Whether a pod is BestEffort (no container requests or limits cpu or memory).
fn best_effort(pod: &Value) -> bool {
    let containers = ["containers", "initContainers"].into_iter().flat_map(|f| {
        pod.pointer(&format!("/spec/{f}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    });
    !containers.into_iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c.pointer(&format!("/resources/{k}"))
                .and_then(Value::as_object)
                .is_some_and(|m| m.contains_key("cpu") || m.contains_key("memory"))
        })
    })
}

/// Whether the quota's scopes select the object: every scope must match; only pods match scopes
/// (upstream's evaluators of other resources match no scope).
pub fn selects(quota: &Value, group: &str, resource: &str, obj: &Value) -> bool {
    let scopes = scopes(quota);
    if scopes.is_empty() {
        return true;
    }
    if !(group.is_empty() && resource == "pods") {
        return false;
    }
    scopes.iter().all(|(scope, op, values)| {
        let terminating = obj
            .pointer("/spec/activeDeadlineSeconds")
            .and_then(Value::as_i64)
            .is_some_and(|s| s >= 0);
        let holds = match scope.as_str() {
            "Terminating" => terminating,
            "NotTerminating" => !terminating,
            "BestEffort" => best_effort(obj),
            "NotBestEffort" => !best_effort(obj),
            "PriorityClass" => {
                let class = obj.pointer("/spec/priorityClassName").and_then(Value::as_str);
                return match op.as_str() {
                    "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
                    "NotIn" => class.is_none_or(|c| !values.iter().any(|v| v == c)),
                    "Exists" => class.is_some_and(|c| !c.is_empty()),
                    "DoesNotExist" => class.is_none_or(str::is_empty),
                    _ => false,
                };
            }
            _ => false,
        };
        match op.as_str() {
            "Exists" | "In" => holds,
            "DoesNotExist" | "NotIn" => !holds,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn pod_usage_counts_requests_limits_and_objects() {
        let pod = json!({"spec": {"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "250m", "memory": "64Mi", "hugepages-2Mi": "2Mi"},
            "limits": {"cpu": "1", "example.com/gpu": "1"}}}]}});
        let u = usage("", "pods", &pod);
        assert_eq!(u["pods"], Quantity::count(1));
        assert_eq!(u["count/pods"], Quantity::count(1));
        assert_eq!(u["cpu"], q("250m"));
        assert_eq!(u["requests.cpu"], q("250m"));
        assert_eq!(u["requests.memory"], q("64Mi"));
        assert_eq!(u["hugepages-2Mi"], q("2Mi"));
        assert_eq!(u["limits.cpu"], q("1"));
        assert!(!u.contains_key("limits.example.com/gpu"));
        let done = json!({"spec": pod["spec"], "status": {"phase": "Succeeded"}});
        assert!(usage("", "pods", &done).is_empty());
    }

    #[test]
    fn services_claims_and_other_objects() {
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 1}, {"port": 2}]}});
        let u = usage("", "services", &lb);
        assert_eq!(u["services.loadbalancers"], Quantity::count(1));
        assert_eq!(u["services.nodeports"], Quantity::count(2));
        let pvc =
            json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}});
        let u = usage("", "persistentvolumeclaims", &pvc);
        assert_eq!(u["requests.storage"], q("1Gi"));
        assert_eq!(u["fast.storageclass.storage.k8s.io/requests.storage"], q("1Gi"));
        let u = usage("apps", "deployments", &json!({}));
        assert_eq!(u.keys().collect::<Vec<_>>(), ["count/deployments.apps"]);
    }

    #[test]
    fn counted_resources_and_scopes() {
        let hard: ResourceList = [
            "count/deployments.apps",
            "requests.cpu",
            "services.nodeports",
            "secrets",
        ]
        .into_iter()
        .map(|k| (k.to_string(), Quantity::count(1)))
        .collect();
        let rows: Vec<_> = counted_resources(&hard).into_iter().collect();
        assert_eq!(
            rows,
            [
                ("".into(), "pods".into()),
                ("".into(), "secrets".into()),
                ("".into(), "services".into()),
                ("apps".into(), "deployments".into())
            ]
        );
        let quota = json!({"spec": {"scopes": ["BestEffort"]}});
        let pod = json!({"spec": {"containers": [{"name": "a"}]}});
        assert!(selects(&quota, "", "pods", &pod));
        assert!(!selects(&quota, "", "services", &json!({})));
        let quota = json!({"spec": {"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        assert!(selects(
            &quota,
            "",
            "pods",
            &json!({"spec": {"priorityClassName": "high"}})
        ));
        assert!(!selects(&quota, "", "pods", &json!({"spec": {}})));
    }
}
