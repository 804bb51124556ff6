//! The scheduler's cache (upstream's `internal/cache`): the [`Snapshot`] kept up to date from
//! the informers, plus the pods the scheduler assumed on a node before their binding is
//! confirmed by the watch. Each change reports the [`ClusterEvent`] it amounts to, for the
//! queue.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::cluster_event::{ClusterEvent, NodeChange, assigned_pod_update};
use crate::preemption::Pdb;
use crate::queue::PodKey;
use crate::selector::Selector;
use crate::snapshot::{NodeInfo, PodInfo, Snapshot, SnapshotError};

#[derive(Clone, Debug)]
struct Placed {
    node: String,
    assumed: bool,
}

/// Nodes, assigned and assumed pods, namespaces and PodDisruptionBudgets.
#[derive(Debug, Default)]
pub struct Cache {
    snapshot: Snapshot,
    pods: HashMap<PodKey, Placed>,
    /// Pods bound to nodes the cache does not know (yet), by node name.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    pdbs: HashMap<PodKey, Pdb>,
}

fn key(pod: &PodInfo) -> PodKey {
    (pod.namespace.clone(), pod.name.clone())
}

/// True for pods that no longer use their node's resources (`Succeeded` or `Failed`).
pub fn is_terminal(pod: &PodInfo) -> bool {
    matches!(
        pod.pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// The claims, volumes and classes, to update from their informers.
    pub fn volumes_mut(&mut self) -> &mut crate::volumes::Volumes {
        self.snapshot.volumes_mut()
    }

    /// The snapshot scheduling cycles read.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The PodDisruptionBudgets.
    pub fn pdbs(&self) -> impl Iterator<Item = &Pdb> {
        self.pdbs.values()
    }

    /// A node was added or changed.
    pub fn set_node(&mut self, node: Node) -> Option<ClusterEvent> {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.snapshot.node(&name) {
            Some(old) => {
                let change = NodeChange::between(old, &NodeInfo::new(node.clone()));
                self.snapshot.add_node(node);
                (!change.is_empty()).then_some(ClusterEvent::NodeUpdate(change))
            }
            None => {
                self.snapshot.add_node(node);
                for pod in self.orphans.remove(&name).unwrap_or_default() {
                    let _ = self.snapshot.assume(pod, &name);
                }
                Some(ClusterEvent::NodeAdd)
            }
        }
    }

    /// A node went away; its pods wait (as orphans) until they are deleted too.
    pub fn delete_node(&mut self, name: &str) -> Option<ClusterEvent> {
        let info = self.snapshot.remove_node(name)?;
        if !info.pods.is_empty() {
            self.orphans.insert(name.to_string(), info.pods);
        }
        Some(ClusterEvent::NodeDelete)
    }

    /// The nodes after a relist: those missing from `names` are deleted.
    pub fn retain_nodes(&mut self, names: &std::collections::HashSet<String>) -> Vec<ClusterEvent> {
        let gone: Vec<String> = self
            .snapshot
            .nodes()
            .iter()
            .filter(|n| !names.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        gone.iter().filter_map(|n| self.delete_node(n)).collect()
    }

    /// A pod bound to a node (from the watch): confirms an assumption, or adds / updates it.
    /// Terminal pods are removed.
    pub fn set_assigned_pod(&mut self, pod: Arc<PodInfo>) -> Option<ClusterEvent> {
        let k = key(&pod);
        if is_terminal(&pod) {
            return self.remove_pod(&k);
        }
        let node = pod.node_name.clone().unwrap_or_default();
        let previous = match self.pods.get(&k) {
            Some(placed) => {
                let assumed = placed.assumed;
                let old = self.take(&k);
                if assumed { None } else { old }
            }
            None => None,
        };
        self.place(pod.clone(), &node, false);
        match previous {
            Some(old) => assigned_pod_update(&old, &pod),
            None => Some(ClusterEvent::AssignedPodAdd),
        }
    }

    /// Removes the pod `key` (deleted, terminal, or its assumption undone) from wherever it is
    /// counted.
    fn take(&mut self, k: &PodKey) -> Option<Arc<PodInfo>> {
        let placed = self.pods.remove(k)?;
        if let Some(p) = self.snapshot.forget(&k.0, &k.1) {
            return Some(p);
        }
        let list = self.orphans.get_mut(&placed.node)?;
        let i = list.iter().position(|p| p.namespace == k.0 && p.name == k.1)?;
        let p = list.swap_remove(i);
        if list.is_empty() {
            self.orphans.remove(&placed.node);
        }
        Some(p)
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: &str, assumed: bool) {
        let k = key(&pod);
        self.pods.insert(
            k,
            Placed {
                node: node.to_string(),
                assumed,
            },
        );
        if let Err(SnapshotError::NodeNotFound(_)) = self.snapshot.assume(pod.clone(), node) {
            self.orphans.entry(node.to_string()).or_default().push(pod);
        }
    }

    /// A pod left its node (deleted or terminal).
    pub fn remove_pod(&mut self, k: &PodKey) -> Option<ClusterEvent> {
        self.take(k).map(|_| ClusterEvent::AssignedPodDelete)
    }

    /// The assigned pods after a relist: those missing from `keys` are removed; assumed pods
    /// stay (their bindings may still be under way).
    pub fn retain_pods(&mut self, keys: &std::collections::HashSet<PodKey>) -> Vec<ClusterEvent> {
        let gone: Vec<PodKey> = self
            .pods
            .iter()
            .filter(|(k, p)| !p.assumed && !keys.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        gone.iter().filter_map(|k| self.remove_pod(k)).collect()
    }

    /// Counts `pod` on `node` before its binding is confirmed.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) -> Result<(), SnapshotError> {
        let k = key(&pod);
        if self.pods.contains_key(&k) {
            return Err(SnapshotError::AlreadyAssigned(k.0, k.1));
        }
        self.snapshot.assume(pod, node)?;
        self.pods.insert(
            k,
            Placed {
                node: node.to_string(),
                assumed: true,
            },
        );
        Ok(())
    }

    /// Undoes an assumption whose binding failed; a pod the watch already confirmed stays.
    pub fn forget_assumed(&mut self, k: &PodKey) -> bool {
        if self.pods.get(k).is_some_and(|p| p.assumed) {
            self.take(k);
            return true;
        }
        false
    }

    /// True when `k` is assumed and not yet confirmed.
    pub fn is_assumed(&self, k: &PodKey) -> bool {
        self.pods.get(k).is_some_and(|p| p.assumed)
    }

    /// The node the pod `k` is counted on, assumed or bound.
    pub fn node_of(&self, k: &PodKey) -> Option<&str> {
        self.pods.get(k).map(|p| p.node.as_str())
    }

    /// A namespace was added or changed: affinity terms' namespace selectors may match
    /// differently.
    pub fn set_namespace(&mut self, ns: &Namespace) -> Option<ClusterEvent> {
        let name = ns.metadata.name.as_deref()?;
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        if self.snapshot.namespace_labels(name) == &labels {
            return None;
        }
        self.snapshot.set_namespace(ns);
        Some(ClusterEvent::NamespaceChange)
    }

    /// A PodDisruptionBudget was added or changed.
    pub fn set_pdb(&mut self, pdb: &PodDisruptionBudget) {
        let k = (
            pdb.metadata.namespace.clone().unwrap_or_default(),
            pdb.metadata.name.clone().unwrap_or_default(),
        );
        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()).filter(|s| {
            s.match_labels.as_ref().is_some_and(|m| !m.is_empty())
                || s.match_expressions.as_ref().is_some_and(|e| !e.is_empty())
        });
        self.pdbs.insert(
            k.clone(),
            Pdb {
                namespace: k.0,
                name: k.1,
                selector: Selector::from_label_selector(selector),
                disruptions_allowed: pdb
                    .status
                    .as_ref()
                    .map_or(0, |s| s.disruptions_allowed.unwrap_or(0)),
                disrupted_pods: pdb
                    .status
                    .as_ref()
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default(),
            },
        );
    }

    /// A PodDisruptionBudget was deleted.
    pub fn delete_pdb(&mut self, namespace: &str, name: &str) {
        self.pdbs.remove(&(namespace.to_string(), name.to_string()));
    }

    /// The PodDisruptionBudgets after a relist.
    pub fn retain_pdbs(&mut self, keys: &std::collections::HashSet<PodKey>) {
        self.pdbs.retain(|k, _| keys.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node_obj, pod};
    use serde_json::json;

    fn bound(name: &str, node: &str, cpu: &str) -> Arc<PodInfo> {
        Arc::new(pod(
            name,
            json!({"spec": {"nodeName": node, "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]}}),
        ))
    }

    fn k(name: &str) -> PodKey {
        ("default".into(), name.into())
    }

    #[test]
    fn assumed_pods_are_confirmed_or_forgotten() {
        let mut c = Cache::new();
        assert_eq!(c.set_node(node_obj("a", json!({}))), Some(ClusterEvent::NodeAdd));
        let p = Arc::new(pod(
            "p",
            json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "1"}}}]}}),
        ));
        c.assume(p, "a").unwrap();
        assert!(c.is_assumed(&k("p")));
        assert_eq!(c.snapshot().node("a").unwrap().requested.milli_cpu, 1000);
        // The watch confirms: counted once, no longer assumed, and a failed binding reported
        // late does not undo it.
        c.set_assigned_pod(bound("p", "a", "1"));
        assert!(!c.is_assumed(&k("p")));
        assert!(!c.forget_assumed(&k("p")));
        assert_eq!(c.snapshot().node("a").unwrap().pods.len(), 1);
        // Another assumption whose binding fails is forgotten.
        let q = Arc::new(pod("q", json!({})));
        c.assume(q, "a").unwrap();
        assert!(c.forget_assumed(&k("q")));
        assert_eq!(c.snapshot().node("a").unwrap().pods.len(), 1);
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_the_node() {
        let mut c = Cache::new();
        c.set_assigned_pod(bound("p", "late", "500m"));
        c.set_node(node_obj("late", json!({})));
        assert_eq!(c.snapshot().node("late").unwrap().requested.milli_cpu, 500);
        c.delete_node("late");
        assert_eq!(c.node_of(&k("p")), Some("late"));
        c.set_node(node_obj("late", json!({})));
        assert_eq!(c.snapshot().node("late").unwrap().pods.len(), 1);
        assert_eq!(c.remove_pod(&k("p")), Some(ClusterEvent::AssignedPodDelete));
        assert!(c.snapshot().node("late").unwrap().pods.is_empty());
    }

    #[test]
    fn updates_report_what_changed() {
        let mut c = Cache::new();
        c.set_node(node_obj("a", json!({})));
        assert_eq!(
            c.set_assigned_pod(bound("p", "a", "1")),
            Some(ClusterEvent::AssignedPodAdd)
        );
        assert_eq!(c.set_assigned_pod(bound("p", "a", "1")), None);
        assert_eq!(
            c.set_assigned_pod(bound("p", "a", "500m")),
            Some(ClusterEvent::AssignedPodScaleDown)
        );
        let done = Arc::new(pod(
            "p",
            json!({"spec": {"nodeName": "a"}, "status": {"phase": "Succeeded"}}),
        ));
        assert_eq!(c.set_assigned_pod(done), Some(ClusterEvent::AssignedPodDelete));
        assert!(c.snapshot().node("a").unwrap().pods.is_empty());
        assert_eq!(
            c.set_node(node_obj("a", json!({"metadata": {"labels": {"zone": "z"}}}))),
            Some(ClusterEvent::NodeUpdate(NodeChange {
                labels: true,
                ..Default::default()
            }))
        );
        assert_eq!(
            c.set_node(node_obj("a", json!({"metadata": {"labels": {"zone": "z"}}}))),
            None
        );
    }
}
