//! ResourceQuota admission (upstream `plugin/pkg/admission/resourcequota` with the evaluators of
//! `pkg/quota/v1/evaluator/core`, on by default): a create is counted against every matching
//! quota of its namespace (object counts `count/<resource>[.<group>]` and the core names `pods`,
//! `services`, `requests.cpu`, `limits.memory`, `requests.storage`, ...), refused with a 403 when
//! a quota would be exceeded, else recorded in the quota's `status.used` by a compare-and-swap
//! update before the object is stored. Updates of Services and PVCs are charged what they use
//! beyond the old object (checked against the stored quotas, recorded after the write).
//!
//! There is no quota controller yet: writing a quota mirrors `spec.hard` into `status.hard` and
//! recomputes `status.used` from the namespace's objects, and a delete gives the object's usage
//! back. The controller-manager's quota controller must still recompute `status.used` (pods
//! turning terminal, updates that lower usage, races between concurrent updates, crashes
//! between charging and storing, and periodically), as upstream's does.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::amount::{self, Amount, Resources};
use super::limit_range::pod_resources;
use crate::descriptor::ResourceDescriptor;

/// The compute resources a pod's quota counts by their plain name too (`cpu` = `requests.cpu`).
const PLAIN_REQUESTS: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// The quota resources that require every container to state a request or limit.
const CONTAINER_MUST_SPECIFY: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// `count/<resource>` for the core group, `count/<resource>.<group>` otherwise.
pub fn count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

fn is_core(desc: &ResourceDescriptor, resource: &str) -> bool {
    desc.group.is_empty() && desc.resource == resource
}

/// Requests and limits of a pod (or one container) as quota names.
fn compute_usage(requests: &Resources, limits: &Resources) -> Resources {
    let mut out = Resources::new();
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
pub fn usage(desc: &ResourceDescriptor, obj: &Value) -> Resources {
    let one = Amount::count(1);
    let mut out = Resources::new();
    if is_core(desc, "pods") && pod_is_terminal(obj) {
        return out;
    }
    out.insert(count_name(&desc.group, &desc.resource), one);
    let legacy = [
        "pods",
        "services",
        "configmaps",
        "secrets",
        "replicationcontrollers",
        "resourcequotas",
        "persistentvolumeclaims",
    ];
    if desc.group.is_empty() && legacy.contains(&desc.resource.as_str()) {
        out.insert(desc.resource.clone(), one);
    }
    if is_core(desc, "pods") {
        let (requests, limits) = pod_resources(obj);
        out.extend(compute_usage(&requests, &limits));
    } else if is_core(desc, "services") {
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
            out.insert("services.nodeports".into(), Amount::count(ports as i64));
        }
    } else if is_core(desc, "persistentvolumeclaims") {
        let storage = obj
            .pointer("/spec/resources/requests/storage")
            .and_then(Amount::from_json);
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
pub fn counted_resources(hard: &Resources) -> BTreeSet<(String, String)> {
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
pub fn selects(quota: &Value, desc: &ResourceDescriptor, obj: &Value) -> bool {
    let scopes = scopes(quota);
    if scopes.is_empty() {
        return true;
    }
    if !is_core(desc, "pods") {
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

/// Upstream's "must specify" check: with cpu or memory under quota, every container states the
/// request or limit the quota counts.
fn container_constraints(hard: &Resources, pod: &Value) -> Option<String> {
    let required: BTreeSet<&str> = hard
        .keys()
        .map(String::as_str)
        .filter(|k| CONTAINER_MUST_SPECIFY.contains(k))
        .collect();
    if required.is_empty() {
        return None;
    }
    let mut missing: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    for field in ["containers", "initContainers"] {
        for c in pod
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            let has = compute_usage(
                &amount::resources(c.pointer("/resources/requests")),
                &amount::resources(c.pointer("/resources/limits")),
            );
            for r in &required {
                if !has.contains_key(*r) {
                    missing.entry(r).or_default().insert(name.clone());
                }
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| format!("{r} for: {}", names.iter().cloned().collect::<Vec<_>>().join(",")))
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// Checks a create against one quota: the usage to add to it (empty when the quota does not
/// count the object), or upstream's refusal text.
pub fn charge(
    quota: &Value,
    desc: &ResourceDescriptor,
    obj: &Value,
    usage: &Resources,
) -> Result<Resources, String> {
    let name = quota
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let hard = amount::resources(quota.pointer("/status/hard"));
    let requested: Resources = usage
        .iter()
        .filter(|(k, _)| hard.contains_key(*k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    if requested.is_empty() || !selects(quota, desc, obj) {
        return Ok(Resources::new());
    }
    if is_core(desc, "pods")
        && let Some(err) = container_constraints(&hard, obj)
    {
        return Err(format!("failed quota: {name}: {err}"));
    }
    let used = amount::resources(quota.pointer("/status/used"));
    let exceeded: Vec<&String> = requested
        .iter()
        .filter(|(k, v)| used.get(*k).copied().unwrap_or_default() + **v > hard[*k])
        .map(|(k, _)| k)
        .collect();
    if exceeded.is_empty() {
        return Ok(requested);
    }
    let only = |list: &Resources| -> Resources {
        list.iter()
            .filter(|(k, _)| exceeded.contains(k))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    Err(format!(
        "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
        amount::render(&only(&requested)),
        amount::render(&only(&used)),
        amount::render(&only(&hard))
    ))
}

/// `status.used` plus (or minus, `refund`) `delta`.
pub fn add_used(quota: &mut Value, delta: &Resources, refund: bool) {
    let mut used = amount::resources(quota.pointer("/status/used"));
    for (k, v) in delta {
        let cur = used.get(k).copied().unwrap_or_default();
        let next = if refund {
            (cur - *v).max(Amount::default())
        } else {
            cur + *v
        };
        used.insert(k.clone(), next);
    }
    set_status(quota, None, &used);
}

/// Sets `status.used` (and `status.hard` when given).
pub fn set_status(quota: &mut Value, hard: Option<&Resources>, used: &Resources) {
    if !quota.get("status").is_some_and(Value::is_object) {
        quota["status"] = json!({});
    }
    if let Some(hard) = hard {
        quota["status"]["hard"] = amount::to_json(hard);
    }
    quota["status"]["used"] = amount::to_json(used);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::ResourceTable;

    fn table() -> ResourceTable {
        let t = ResourceTable::new();
        for r in crate::builtin::rows() {
            t.install(r);
        }
        t
    }

    fn quota(hard: Value, used: Value) -> Value {
        json!({"metadata": {"name": "q"}, "spec": {"hard": hard}, "status": {"hard": hard, "used": used}})
    }

    #[test]
    fn pods_count_requests_limits_and_objects() {
        let t = table();
        let pods = t.lookup("", "v1", "pods").unwrap();
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m"}}}]}});
        let u = usage(&pods, &pod);
        assert_eq!(
            amount::render(&u),
            "count/pods=1,cpu=500m,limits.cpu=500m,memory=64Mi,pods=1,requests.cpu=500m,requests.memory=64Mi"
        );
        let done = json!({"spec": {}, "status": {"phase": "Succeeded"}});
        assert!(usage(&pods, &done).is_empty());
    }

    #[test]
    fn services_pvcs_and_generic_counts() {
        let t = table();
        let svc = t.lookup("", "v1", "services").unwrap();
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            amount::render(&usage(&svc, &lb)),
            "count/services=1,services=1,services.loadbalancers=1,services.nodeports=2"
        );
        let pvcs = t.lookup("", "v1", "persistentvolumeclaims").unwrap();
        let pvc =
            json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "5Gi"}}}});
        let u = usage(&pvcs, &pvc);
        assert_eq!(
            u["fast.storageclass.storage.k8s.io/requests.storage"].to_string(),
            "5Gi"
        );
        assert_eq!(u["requests.storage"].to_string(), "5Gi");
        let deploys = t.lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(
            amount::render(&usage(&deploys, &json!({}))),
            "count/deployments.apps=1"
        );
        let hard = amount::resources(Some(
            &json!({"count/deployments.apps": "1", "requests.cpu": "1", "services.nodeports": "1"}),
        ));
        let rows: Vec<_> = counted_resources(&hard).into_iter().collect();
        assert_eq!(
            rows,
            [
                ("".into(), "pods".into()),
                ("".into(), "services".into()),
                ("apps".into(), "deployments".into())
            ]
        );
    }

    #[test]
    fn charges_within_hard_and_refuses_with_upstreams_message() {
        let t = table();
        let cms = t.lookup("", "v1", "configmaps").unwrap();
        let q = quota(
            json!({"configmaps": "2", "pods": "5"}),
            json!({"configmaps": "1", "pods": "0"}),
        );
        let u = usage(&cms, &json!({}));
        let added = charge(&q, &cms, &json!({}), &u).unwrap();
        assert_eq!(amount::render(&added), "configmaps=1");
        let full = quota(json!({"configmaps": "1"}), json!({"configmaps": "1"}));
        assert_eq!(
            charge(&full, &cms, &json!({}), &u).unwrap_err(),
            "exceeded quota: q, requested: configmaps=1, used: configmaps=1, limited: configmaps=1"
        );
        let other = quota(json!({"secrets": "1"}), json!({"secrets": "1"}));
        assert!(charge(&other, &cms, &json!({}), &u).unwrap().is_empty());
        let mut q = q;
        add_used(&mut q, &added, false);
        assert_eq!(q["status"]["used"], json!({"configmaps": "2", "pods": "0"}));
        add_used(&mut q, &added, true);
        assert_eq!(q["status"]["used"]["configmaps"], "1");
    }

    #[test]
    fn compute_quotas_require_container_requests_and_honour_scopes() {
        let t = table();
        let pods = t.lookup("", "v1", "pods").unwrap();
        let q = quota(json!({"requests.cpu": "1", "limits.memory": "1Gi"}), json!({}));
        let pod =
            json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]}});
        assert_eq!(
            charge(&q, &pods, &pod, &usage(&pods, &pod)).unwrap_err(),
            "failed quota: q: must specify limits.memory for: c"
        );
        let mut best_effort_only = quota(json!({"pods": "0"}), json!({"pods": "0"}));
        best_effort_only["spec"]["scopes"] = json!(["BestEffort"]);
        assert!(
            charge(&best_effort_only, &pods, &pod, &usage(&pods, &pod))
                .unwrap()
                .is_empty()
        );
        let bare = json!({"spec": {"containers": [{"name": "c"}]}});
        assert!(charge(&best_effort_only, &pods, &bare, &usage(&pods, &bare)).is_err());
    }
}
