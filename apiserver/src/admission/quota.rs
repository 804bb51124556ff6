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
use crate::descriptor::ResourceDescriptor;
use api_util::quota::compute_usage;
pub use api_util::quota::counted_resources;

/// The quota resources that require every container to state a request or limit.
const CONTAINER_MUST_SPECIFY: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// What one object uses of a quota ([`api_util::quota::usage`]).
pub fn usage(desc: &ResourceDescriptor, obj: &Value) -> Resources {
    api_util::quota::usage(&desc.group, &desc.resource, obj)
}

/// Whether the quota's scopes select the object ([`api_util::quota::selects`]).
pub fn selects(quota: &Value, desc: &ResourceDescriptor, obj: &Value) -> bool {
    api_util::quota::selects(quota, &desc.group, &desc.resource, obj)
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
    if desc.group.is_empty()
        && desc.resource == "pods"
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
