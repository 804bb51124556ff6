//! The scheduling framework's extension points (upstream's `framework.Plugin` interfaces):
//! PreFilter computes per-pod state once and may narrow the nodes, Filter rules nodes out,
//! PreScore / Score / NormalizeScore rank the feasible ones.

use std::any::{Any, TypeId};
use std::collections::{BTreeSet, HashMap};

use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// The highest score a plugin gives a node (upstream's `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// Why a node (or the pod) is rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Rejected, but preempting pods on the node may help.
    Unschedulable,
    /// Rejected, and preemption cannot help.
    UnschedulableAndUnresolvable,
}

/// A rejection: its code, the reasons shown to users and the plugin that rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Whether preemption may help.
    pub code: Code,
    /// The reasons, each counted in the failure message.
    pub reasons: Vec<String>,
    /// The rejecting plugin.
    pub plugin: &'static str,
}

impl Status {
    /// A rejection preemption may resolve.
    pub fn unschedulable(plugin: &'static str, reason: impl Into<String>) -> Status {
        Status {
            code: Code::Unschedulable,
            reasons: vec![reason.into()],
            plugin,
        }
    }

    /// A rejection preemption cannot resolve.
    pub fn unresolvable(plugin: &'static str, reason: impl Into<String>) -> Status {
        Status {
            code: Code::UnschedulableAndUnresolvable,
            reasons: vec![reason.into()],
            plugin,
        }
    }

    /// The reasons joined as upstream's `Status.Message`.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// Per-cycle state plugins hand from one extension point to the next, one value per type.
#[derive(Default)]
pub struct CycleState {
    values: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl CycleState {
    /// Stores a plugin's state.
    pub fn write<T: Any + Send + Sync>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// A plugin's state, if written this cycle.
    pub fn read<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>()).and_then(|v| v.downcast_ref())
    }
}

/// What a PreFilter decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreFilterResult {
    /// Run Filter on every node.
    AllNodes,
    /// Only these nodes can fit; Filter runs on them.
    Nodes(BTreeSet<String>),
    /// The plugin has nothing to check for this pod: its Filter is skipped.
    Skip,
}

/// A plugin that rules nodes out.
pub trait FilterPlugin: Send + Sync {
    /// The plugin's name (as in a KubeSchedulerConfiguration).
    fn name(&self) -> &'static str;

    /// Computes per-pod state once per cycle; a rejection here rejects the pod on every node.
    fn pre_filter(
        &self,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
        _state: &mut CycleState,
    ) -> Result<PreFilterResult, Status> {
        Ok(PreFilterResult::AllNodes)
    }

    /// Checks one node.
    fn filter(&self, pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Status>;
}

/// What a PreScore decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreScore {
    /// Score the nodes.
    Score,
    /// Nothing to score for this pod: the plugin's scores are left out.
    Skip,
}

/// A plugin that ranks feasible nodes.
pub trait ScorePlugin: Send + Sync {
    /// The plugin's name.
    fn name(&self) -> &'static str;

    /// Computes per-pod state once per cycle from the feasible nodes.
    fn pre_score(
        &self,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
        _feasible: &[&NodeInfo],
        _state: &mut CycleState,
    ) -> PreScore {
        PreScore::Score
    }

    /// The node's raw score.
    fn score(&self, pod: &PodInfo, node: &NodeInfo, snapshot: &Snapshot, state: &CycleState) -> i64;

    /// Maps raw scores (in the order of `nodes`) to `0..=MAX_NODE_SCORE`, when the raw ones are not.
    fn normalize(&self, _nodes: &[&NodeInfo], _scores: &mut [i64], _state: &CycleState) {}
}

/// Upstream's `DefaultNormalizeScore`: scales scores so the highest becomes
/// [`MAX_NODE_SCORE`], reversed (`MAX - score`) when `reverse`; all zero stays zero (or all
/// `MAX` when reversed).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_normalize_as_upstream() {
        // Upstream's helper table: {10,20,30,40} -> {25,50,75,100}; reversed {75,50,25,0}.
        let mut s = [10, 20, 30, 40];
        default_normalize(&mut s, false);
        assert_eq!(s, [25, 50, 75, 100]);
        let mut s = [10, 20, 30, 40];
        default_normalize(&mut s, true);
        assert_eq!(s, [75, 50, 25, 0]);
        let mut s = [0, 0];
        default_normalize(&mut s, true);
        assert_eq!(s, [100, 100]);
        let mut s = [0, 0];
        default_normalize(&mut s, false);
        assert_eq!(s, [0, 0]);
    }
}
