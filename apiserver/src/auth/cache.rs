//! The RBAC caches: one list-then-watch loop per RBAC resource keeps [`Policy`] current (a change
//! is visible as soon as its watch event arrives), and the ClusterRole loop doubles as the
//! aggregation controller: a ClusterRole with an `aggregationRule` gets the union of the rules of
//! the ClusterRoles its selectors pick.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::PolicyRule;
use parking_lot::RwLock;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::rbac::{Binding, Policy, rules_of};
use crate::descriptor::ResourceDescriptor;
use crate::patch::PatchType;
use crate::registry::meta_str;
use crate::registry::{ListOptions, Registry, WatchOptions, WriteOptions};

/// The RBAC resources the authorizer caches.
pub const RESOURCES: [&str; 4] = ["roles", "clusterroles", "rolebindings", "clusterrolebindings"];
const GROUP: &str = "rbac.authorization.k8s.io";

/// Tracks how many caches have their initial state; cancels the loops when dropped.
#[derive(Debug)]
pub struct Synced {
    count: tokio::sync::watch::Sender<usize>,
    stop: CancellationToken,
    started: std::sync::atomic::AtomicBool,
}

impl Default for Synced {
    fn default() -> Self {
        Synced {
            count: tokio::sync::watch::channel(0).0,
            stop: CancellationToken::new(),
            started: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Drop for Synced {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Synced {
    /// Waits until every cache has listed its resource once.
    pub async fn wait(&self) {
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|n| *n >= RESOURCES.len()).await;
    }
}

/// Puts (or with `None`, removes) one object into the policy.
fn apply(policy: &mut Policy, resource: &str, ns: &str, name: &str, obj: Option<&Value>) {
    let (ns, name) = (ns.to_string(), name.to_string());
    match resource {
        "roles" => match obj {
            Some(o) => {
                policy.roles.insert((ns, name), rules_of(o));
            }
            None => {
                policy.roles.remove(&(ns, name));
            }
        },
        "clusterroles" => match obj {
            Some(o) => {
                policy.cluster_roles.insert(name, rules_of(o));
            }
            None => {
                policy.cluster_roles.remove(&name);
            }
        },
        "rolebindings" => {
            let in_ns = policy.role_bindings.entry(ns.clone()).or_default();
            match obj.and_then(Binding::from_object) {
                Some(b) => {
                    in_ns.insert(name, b);
                }
                None => {
                    in_ns.remove(&name);
                    if in_ns.is_empty() {
                        policy.role_bindings.remove(&ns);
                    }
                }
            }
        }
        _ => match obj.and_then(Binding::from_object) {
            Some(b) => {
                policy.cluster_role_bindings.insert(name, b);
            }
            None => {
                policy.cluster_role_bindings.remove(&name);
            }
        },
    }
}

fn clear(policy: &mut Policy, resource: &str) {
    match resource {
        "roles" => policy.roles.clear(),
        "clusterroles" => policy.cluster_roles.clear(),
        "rolebindings" => policy.role_bindings.clear(),
        _ => policy.cluster_role_bindings.clear(),
    }
}

/// Starts the cache loops of a server (once; they stop when `synced` is dropped).
pub fn start(
    registry: &Registry,
    table: &crate::descriptor::ResourceTable,
    policy: &Arc<RwLock<Policy>>,
    synced: &Synced,
) {
    if synced.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    for resource in RESOURCES {
        let Some(desc) = table.lookup(GROUP, "v1", resource) else {
            tracing::warn!(resource, "RBAC resource not served; its cache stays empty");
            synced.count.send_modify(|n| *n += 1);
            continue;
        };
        let r = Reflector {
            registry: registry.clone(),
            desc,
            policy: policy.clone(),
            count: synced.count.clone(),
            counted: false,
            raw: BTreeMap::new(),
        };
        let stop = synced.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = r.run() => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// A list-then-watch loop over one RBAC resource.
struct Reflector {
    registry: Registry,
    desc: Arc<ResourceDescriptor>,
    policy: Arc<RwLock<Policy>>,
    count: tokio::sync::watch::Sender<usize>,
    counted: bool,
    /// ClusterRoles as stored (for aggregation); empty for other resources.
    raw: BTreeMap<String, Value>,
}

impl Reflector {
    fn resource(&self) -> &str {
        &self.desc.resource
    }

    fn is_cluster_roles(&self) -> bool {
        self.desc.resource == "clusterroles"
    }

    async fn run(mut self) {
        loop {
            match self.list_and_watch().await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(resource = self.resource(), error = %e, "RBAC cache: relisting");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn list_and_watch(&mut self) -> Result<(), crate::ApiError> {
        let page = self
            .registry
            .list_page(&self.desc, "", &ListOptions::default())
            .await?;
        {
            let mut policy = self.policy.write();
            clear(&mut policy, &self.desc.resource);
            for item in &page.items {
                apply(
                    &mut policy,
                    &self.desc.resource,
                    meta_str(item, "namespace"),
                    meta_str(item, "name"),
                    Some(item),
                );
            }
        }
        if self.is_cluster_roles() {
            self.raw = page
                .items
                .iter()
                .map(|o| (meta_str(o, "name").to_string(), o.clone()))
                .collect();
            self.aggregate().await;
        }
        if !self.counted {
            self.counted = true;
            self.count.send_modify(|n| *n += 1);
        }
        let mut rv = page.revision;
        loop {
            let opts = WatchOptions {
                resource_version: Some(rv),
                allow_bookmarks: true,
                ..Default::default()
            };
            let mut events = self.registry.watch(self.desc.clone(), "", opts).await?;
            while let Some(ev) = events.next().await {
                let obj = &ev["object"];
                if let Ok(n) = meta_str(obj, "resourceVersion").parse::<u64>() {
                    rv = rv.max(n);
                }
                let (ns, name) = (meta_str(obj, "namespace"), meta_str(obj, "name"));
                match ev["type"].as_str() {
                    Some("ADDED" | "MODIFIED") => {
                        apply(&mut self.policy.write(), &self.desc.resource, ns, name, Some(obj));
                        if self.is_cluster_roles() {
                            self.raw.insert(name.to_string(), obj.clone());
                            self.aggregate().await;
                        }
                    }
                    Some("DELETED") => {
                        apply(&mut self.policy.write(), &self.desc.resource, ns, name, None);
                        if self.is_cluster_roles() {
                            self.raw.remove(name);
                            self.aggregate().await;
                        }
                    }
                    Some("ERROR") => {
                        return Err(crate::ApiError::expired(
                            obj["message"].as_str().unwrap_or("watch error").to_string(),
                        ));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Writes the aggregated rules of every ClusterRole with an aggregationRule whose stored rules
    /// differ.
    async fn aggregate(&self) {
        for (name, rules) in aggregated_updates(&self.raw) {
            let patch = json!({"rules": rules});
            let res = self
                .registry
                .patch(
                    &self.desc,
                    "",
                    &name,
                    PatchType::Merge,
                    &patch,
                    &WriteOptions::default(),
                    None,
                )
                .await;
            match res {
                Ok(_) => tracing::info!(clusterrole = %name, "updated aggregated rules"),
                Err(e) => tracing::warn!(clusterrole = %name, error = %e, "aggregating rules failed"),
            }
        }
    }
}

/// Whether a `metav1.LabelSelector` object matches `labels` (an empty selector matches nothing
/// here, as upstream's aggregation treats it).
fn selector_matches(sel: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    !api_util::labels::json_selector_is_empty(sel) && api_util::labels::json_selector_matches(sel, labels)
}

/// The `(name, rules)` of each aggregated ClusterRole whose stored rules are not the union of
/// its selected roles' rules (sorted by role name, duplicates dropped).
pub fn aggregated_updates(roles: &BTreeMap<String, Value>) -> Vec<(String, Vec<PolicyRule>)> {
    let empty = serde_json::Map::new();
    let mut out = Vec::new();
    for (name, role) in roles {
        let Some(selectors) = role
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
        else {
            continue;
        };
        let mut rules: Vec<PolicyRule> = Vec::new();
        for (other_name, other) in roles {
            if other_name == name {
                continue;
            }
            let labels = other
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            if selectors.iter().any(|s| selector_matches(s, labels)) {
                for r in rules_of(other) {
                    if !rules.contains(&r) {
                        rules.push(r);
                    }
                }
            }
        }
        if rules_of(role) != rules {
            out.push((name.clone(), rules));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregation_unions_selected_roles() {
        let mut roles = BTreeMap::new();
        roles.insert(
            "view".to_string(),
            json!({"metadata": {"name": "view", "labels": {"agg-edit": "true"}},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg-view": "true"}}]}}),
        );
        roles.insert(
            "edit".to_string(),
            json!({"metadata": {"name": "edit"},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg-edit": "true"}}]}}),
        );
        roles.insert(
            "a".to_string(),
            json!({"metadata": {"name": "a", "labels": {"agg-view": "true"}},
                "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}),
        );
        roles.insert(
            "b".to_string(),
            json!({"metadata": {"name": "b", "labels": {"agg-view": "true"}},
                "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
                          {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]}),
        );
        let updates = aggregated_updates(&roles);
        assert_eq!(updates.len(), 1, "{updates:?}");
        assert_eq!(updates[0].0, "view");
        assert_eq!(updates[0].1.len(), 2);
        // Once view has its rules, edit (selecting view) follows; then nothing changes.
        roles.get_mut("view").unwrap()["rules"] = serde_json::to_value(&updates[0].1).unwrap();
        let updates = aggregated_updates(&roles);
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].0, "edit");
        roles.get_mut("edit").unwrap()["rules"] = serde_json::to_value(&updates[0].1).unwrap();
        assert!(aggregated_updates(&roles).is_empty());
    }

    #[test]
    fn selectors() {
        let labels = json!({"a": "1", "b": "2"});
        let labels = labels.as_object().unwrap();
        assert!(selector_matches(&json!({"matchLabels": {"a": "1"}}), labels));
        assert!(!selector_matches(&json!({"matchLabels": {"a": "2"}}), labels));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "b", "operator": "In", "values": ["2", "3"]}]}),
            labels
        ));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "c", "operator": "Exists"}]}),
            labels
        ));
        assert!(!selector_matches(&json!({}), labels));
    }
}
