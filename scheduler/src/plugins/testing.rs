//! Helpers for the plugins' table tests.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::framework::{CycleState, FilterPlugin, PreFilterResult, Status};
use crate::snapshot::tests::merge;
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// A node with 4 CPUs, 8Gi, 110 pods and its hostname label, merged with `extra`.
pub fn node_obj(name: &str, extra: Value) -> Node {
    let mut v = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

/// [`node_obj`] as a [`NodeInfo`] without pods.
pub fn node(name: &str, extra: Value) -> NodeInfo {
    NodeInfo::new(node_obj(name, extra))
}

/// A pod in `default` with one container `c` (image nginx, no requests), merged with `extra`.
pub fn pod_obj(name: &str, extra: Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

/// [`pod_obj`] as a [`PodInfo`].
pub fn pod(name: &str, extra: Value) -> PodInfo {
    PodInfo::new(pod_obj(name, extra))
}

/// Runs PreFilter (against a snapshot holding just `node`) and Filter.
pub fn run_filter(plugin: &dyn FilterPlugin, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    let mut snapshot = Snapshot::new([(*node.node).clone()], [], []);
    for p in &node.pods {
        snapshot.assume(p.clone(), &node.name).unwrap();
    }
    let mut state = CycleState::default();
    match plugin.pre_filter(pod, &snapshot, &mut state)? {
        PreFilterResult::Skip => Ok(()),
        _ => plugin.filter(pod, snapshot.node(&node.name).unwrap(), &state),
    }
}

/// Runs PreFilter against `snapshot`, then Filter on every node; the result per node name.
pub fn filter_all(
    plugin: &dyn FilterPlugin,
    pod: &PodInfo,
    snapshot: &Snapshot,
) -> Vec<(String, Result<(), Status>)> {
    let mut state = CycleState::default();
    let pre = plugin.pre_filter(pod, snapshot, &mut state);
    snapshot
        .nodes()
        .iter()
        .map(|n| {
            let r = match &pre {
                Err(s) => Err(s.clone()),
                Ok(PreFilterResult::Skip) => Ok(()),
                Ok(PreFilterResult::Nodes(names)) if !names.contains(&n.name) => {
                    Err(Status::unresolvable("PreFilter", "not in PreFilterResult"))
                }
                Ok(_) => plugin.filter(pod, n, &state),
            };
            (n.name.clone(), r)
        })
        .collect()
}

/// Runs PreScore, Score and NormalizeScore over every node of `snapshot`; `None` when PreScore
/// skips.
pub fn score_all(
    plugin: &dyn crate::framework::ScorePlugin,
    pod: &PodInfo,
    snapshot: &Snapshot,
) -> Option<Vec<i64>> {
    let nodes: Vec<&NodeInfo> = snapshot.nodes().iter().collect();
    let mut state = CycleState::default();
    if plugin.pre_score(pod, snapshot, &nodes, &mut state) == crate::framework::PreScore::Skip {
        return None;
    }
    let mut scores: Vec<i64> = nodes
        .iter()
        .map(|n| plugin.score(pod, n, snapshot, &state))
        .collect();
    plugin.normalize(&nodes, &mut scores, &state);
    Some(scores)
}
