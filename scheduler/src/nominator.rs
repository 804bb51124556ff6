//! Pods nominated to a node by preemption, waiting for their victims to go (upstream's
//! nominator): scheduling cycles of other pods count them on that node.

use std::collections::HashMap;
use std::sync::Arc;

use crate::queue::PodKey;
use crate::schedule::Nominated;
use crate::snapshot::PodInfo;

/// The nominations.
#[derive(Debug, Default)]
pub struct Nominator {
    by_node: Nominated,
    node_of: HashMap<PodKey, String>,
}

/// `status.nominatedNodeName`, if set.
pub fn nominated_node(pod: &PodInfo) -> Option<&str> {
    pod.pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl Nominator {
    /// Nominates `pod` to `node` (replacing an earlier nomination or version of it).
    pub fn set(&mut self, pod: Arc<PodInfo>, node: &str) {
        let key = (pod.namespace.clone(), pod.name.clone());
        self.remove(&key);
        self.node_of.insert(key, node.to_string());
        self.by_node.entry(node.to_string()).or_default().push(pod);
    }

    /// A newer version of a pending pod: its own `nominatedNodeName` wins when set; otherwise a
    /// nomination made by this scheduler (not yet visible on the pod) is kept, with the new
    /// version.
    pub fn update(&mut self, pod: Arc<PodInfo>) {
        let key = (pod.namespace.clone(), pod.name.clone());
        let node = nominated_node(&pod)
            .map(str::to_string)
            .or_else(|| self.node_of.get(&key).cloned());
        if let Some(node) = node {
            self.set(pod, &node);
        }
    }

    /// The pod was bound, deleted or is no longer ours.
    pub fn remove(&mut self, key: &PodKey) {
        let Some(node) = self.node_of.remove(key) else {
            return;
        };
        if let Some(list) = self.by_node.get_mut(&node) {
            list.retain(|p| !(p.namespace == key.0 && p.name == key.1));
            if list.is_empty() {
                self.by_node.remove(&node);
            }
        }
    }

    /// The nominations by node.
    pub fn by_node(&self) -> &Nominated {
        &self.by_node
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::pod;
    use serde_json::json;

    #[test]
    fn nominations_follow_the_pods() {
        let mut n = Nominator::default();
        n.set(Arc::new(pod("p", json!({}))), "a");
        // A version without the field keeps the in-memory nomination; one with it moves it.
        n.update(Arc::new(pod("p", json!({"metadata": {"labels": {"v": "2"}}}))));
        assert_eq!(n.by_node()["a"][0].labels["v"], "2");
        n.update(Arc::new(pod("p", json!({"status": {"nominatedNodeName": "b"}}))));
        assert!(!n.by_node().contains_key("a"));
        assert_eq!(n.by_node()["b"].len(), 1);
        n.remove(&("default".into(), "p".into()));
        assert!(n.by_node().is_empty());
        // Pods never nominated are not tracked.
        n.update(Arc::new(pod("q", json!({}))));
        assert!(n.by_node().is_empty());
    }
}
