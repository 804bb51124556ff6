//! Cluster changes that may make an unschedulable pod schedulable, and which plugins' rejections
//! each one can resolve (upstream's `ClusterEvent`s and the plugins' `EventsToRegister`).

use std::collections::{BTreeMap, BTreeSet};

use crate::snapshot::{NodeInfo, PodInfo};

/// What changed on an updated node (upstream's `ActionType` bits for node updates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeChange {
    /// `status.allocatable` changed.
    pub allocatable: bool,
    /// Labels changed.
    pub labels: bool,
    /// Taints or `spec.unschedulable` changed.
    pub taints: bool,
    /// Conditions changed.
    pub conditions: bool,
}

impl NodeChange {
    /// Compares two versions of a node.
    pub fn between(old: &NodeInfo, new: &NodeInfo) -> NodeChange {
        let conditions = |n: &NodeInfo| {
            n.node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|cs| {
                    cs.iter()
                        .map(|c| (c.type_.clone(), c.status.clone()))
                        .collect::<BTreeMap<_, _>>()
                })
                .unwrap_or_default()
        };
        NodeChange {
            allocatable: old.allocatable != new.allocatable,
            labels: old.labels != new.labels,
            taints: old.taints != new.taints || old.unschedulable != new.unschedulable,
            conditions: conditions(old) != conditions(new),
        }
    }

    /// True when nothing scheduling looks at changed.
    pub fn is_empty(&self) -> bool {
        *self == NodeChange::default()
    }
}

/// A change in the cluster the scheduler reacts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A node appeared.
    NodeAdd,
    /// A node changed.
    NodeUpdate(NodeChange),
    /// A node went away.
    NodeDelete,
    /// A pod was bound to (or assumed on) a node.
    AssignedPodAdd,
    /// A pod on a node changed its labels.
    AssignedPodLabelUpdate,
    /// A pod on a node lowered its requests.
    AssignedPodScaleDown,
    /// A pod left its node (deleted or terminated).
    AssignedPodDelete,
    /// A namespace's labels changed (namespace selectors of affinity terms).
    NamespaceChange,
    /// A PersistentVolumeClaim was added or changed.
    PvcChange,
    /// A PersistentVolume was added or changed.
    PvChange,
    /// A StorageClass was added.
    StorageClassAdd,
}

impl ClusterEvent {
    /// The event's label in logs and metrics, as upstream names them.
    pub fn label(&self) -> &'static str {
        match self {
            ClusterEvent::NodeAdd => "NodeAdd",
            ClusterEvent::NodeUpdate(_) => "NodeUpdate",
            ClusterEvent::NodeDelete => "NodeDelete",
            ClusterEvent::AssignedPodAdd => "AssignedPodAdd",
            ClusterEvent::AssignedPodLabelUpdate => "AssignedPodUpdate",
            ClusterEvent::AssignedPodScaleDown => "AssignedPodUpdate",
            ClusterEvent::AssignedPodDelete => "AssignedPodDelete",
            ClusterEvent::NamespaceChange => "NamespaceUpdate",
            ClusterEvent::PvcChange => "PersistentVolumeClaimChange",
            ClusterEvent::PvChange => "PersistentVolumeChange",
            ClusterEvent::StorageClassAdd => "StorageClassAdd",
        }
    }

    /// True when the event can resolve a rejection by `plugin` (its `EventsToRegister`).
    /// Plugins this scheduler does not know are assumed interested in everything.
    pub fn may_help(&self, plugin: &str) -> bool {
        use ClusterEvent::*;
        let node_update = |c: &NodeChange, wanted: NodeChange| {
            (c.allocatable && wanted.allocatable)
                || (c.labels && wanted.labels)
                || (c.taints && wanted.taints)
                || (c.conditions && wanted.conditions)
        };
        let nc = |allocatable, labels, taints| NodeChange {
            allocatable,
            labels,
            taints,
            conditions: false,
        };
        match plugin {
            "NodeUnschedulable" => match self {
                NodeAdd => true,
                NodeUpdate(c) => node_update(c, nc(false, false, true)),
                _ => false,
            },
            "NodeName" => matches!(self, NodeAdd),
            "TaintToleration" => match self {
                NodeAdd => true,
                NodeUpdate(c) => node_update(c, nc(false, false, true)),
                _ => false,
            },
            "NodeAffinity" => match self {
                NodeAdd => true,
                NodeUpdate(c) => node_update(c, nc(false, true, false)),
                _ => false,
            },
            "NodePorts" => matches!(self, NodeAdd | AssignedPodDelete),
            "NodeResourcesFit" => match self {
                NodeAdd | AssignedPodDelete | AssignedPodScaleDown => true,
                NodeUpdate(c) => node_update(c, nc(true, false, false)),
                _ => false,
            },
            "PodTopologySpread" => match self {
                NodeAdd | NodeDelete | AssignedPodAdd | AssignedPodLabelUpdate | AssignedPodDelete => true,
                NodeUpdate(c) => node_update(c, nc(false, true, true)),
                _ => false,
            },
            "InterPodAffinity" => match self {
                NodeAdd | AssignedPodAdd | AssignedPodLabelUpdate | AssignedPodDelete | NamespaceChange => {
                    true
                }
                NodeUpdate(c) => node_update(c, nc(false, true, false)),
                _ => false,
            },
            "VolumeRestrictions" => matches!(self, NodeAdd | AssignedPodDelete | PvcChange),
            "VolumeBinding" => match self {
                NodeAdd | PvcChange | PvChange | StorageClassAdd => true,
                NodeUpdate(c) => node_update(c, nc(false, true, false)),
                _ => false,
            },
            _ => true,
        }
    }

    /// True when the event may help a pod rejected by `plugins` (none recorded: any event may).
    pub fn may_help_any(&self, plugins: &BTreeSet<&'static str>) -> bool {
        plugins.is_empty() || plugins.iter().any(|p| self.may_help(p))
    }
}

/// How an assigned pod's update matters to pending pods.
pub fn assigned_pod_update(old: &PodInfo, new: &PodInfo) -> Option<ClusterEvent> {
    if old.labels != new.labels {
        return Some(ClusterEvent::AssignedPodLabelUpdate);
    }
    let lower = |a: i64, b: i64| b < a;
    let (o, n) = (&old.requests, &new.requests);
    if lower(o.milli_cpu, n.milli_cpu) || lower(o.memory, n.memory) || o.scalar != n.scalar {
        return Some(ClusterEvent::AssignedPodScaleDown);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::node;
    use serde_json::json;

    #[test]
    fn node_changes_are_classified() {
        let a = node("a", json!({}));
        let tainted = node(
            "a",
            json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
        );
        let c = NodeChange::between(&tainted, &a);
        assert!(c.taints && !c.labels && !c.allocatable);
        let bigger = node("a", json!({"status": {"allocatable": {"cpu": "8"}}}));
        assert!(NodeChange::between(&a, &bigger).allocatable);
        let cordoned = node("a", json!({"spec": {"unschedulable": true}}));
        assert!(NodeChange::between(&cordoned, &a).taints);
        assert!(NodeChange::between(&a, &a).is_empty());
    }

    #[test]
    fn events_help_only_the_plugins_that_registered_for_them() {
        let taint = ClusterEvent::NodeUpdate(NodeChange {
            taints: true,
            ..Default::default()
        });
        assert!(taint.may_help("TaintToleration"));
        assert!(!taint.may_help("NodeAffinity"));
        assert!(!ClusterEvent::AssignedPodAdd.may_help("NodeResourcesFit"));
        assert!(ClusterEvent::AssignedPodDelete.may_help("NodeResourcesFit"));
        assert!(ClusterEvent::AssignedPodAdd.may_help("InterPodAffinity"));
        assert!(ClusterEvent::NodeAdd.may_help_any(&BTreeSet::new()));
        assert!(!ClusterEvent::NodeDelete.may_help_any(&["NodeResourcesFit"].into()));
    }
}
