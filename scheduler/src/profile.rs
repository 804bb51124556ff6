//! A scheduling profile: the enabled plugins in upstream's order and the scores' weights.

use std::sync::Arc;

use crate::framework::{FilterPlugin, ScorePlugin};
use crate::plugins::image_locality::ImageLocality;
use crate::plugins::inter_pod_affinity::InterPodAffinity;
use crate::plugins::node_affinity::NodeAffinity;
use crate::plugins::node_name::NodeName;
use crate::plugins::node_ports::NodePorts;
use crate::plugins::node_resources::{BalancedAllocation, NodeResourcesFit};
use crate::plugins::node_unschedulable::NodeUnschedulable;
use crate::plugins::pod_topology_spread::PodTopologySpread;
use crate::plugins::taint_toleration::TaintToleration;
use crate::plugins::volume_binding::VolumeBinding;
use crate::plugins::volume_restrictions::VolumeRestrictions;

/// The scheduler name pods get by default.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// A score plugin and its weight.
#[derive(Clone)]
pub struct WeightedScore {
    /// The plugin.
    pub plugin: Arc<dyn ScorePlugin>,
    /// What its normalised score is multiplied by.
    pub weight: i64,
}

/// A scheduling profile (one `profiles[]` entry of a KubeSchedulerConfiguration).
#[derive(Clone)]
pub struct Profile {
    /// The `spec.schedulerName` this profile serves.
    pub scheduler_name: String,
    /// Filter plugins, run in order; a node's first rejection is its reason.
    pub filters: Vec<Arc<dyn FilterPlugin>>,
    /// Score plugins with weights.
    pub scores: Vec<WeightedScore>,
    /// Percentage of nodes to find feasible before scoring; `None` or 0: adaptive.
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Whether DefaultPreemption (PostFilter) runs.
    pub preemption: bool,
}

impl Profile {
    /// Upstream's default profile (`default_plugins.go`): filters NodeUnschedulable, NodeName,
    /// TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit, VolumeRestrictions,
    /// VolumeBinding, PodTopologySpread, InterPodAffinity; scores TaintToleration 3, NodeAffinity 2, NodeResourcesFit 1,
    /// PodTopologySpread 2, InterPodAffinity 2, NodeResourcesBalancedAllocation 1,
    /// ImageLocality 1.
    pub fn default_profile() -> Profile {
        let score = |plugin: Arc<dyn ScorePlugin>, weight| WeightedScore { plugin, weight };
        Profile {
            scheduler_name: DEFAULT_SCHEDULER_NAME.into(),
            filters: vec![
                Arc::new(NodeUnschedulable),
                Arc::new(NodeName),
                Arc::new(TaintToleration),
                Arc::new(NodeAffinity),
                Arc::new(NodePorts),
                Arc::new(NodeResourcesFit),
                Arc::new(VolumeRestrictions),
                Arc::new(VolumeBinding),
                Arc::new(PodTopologySpread),
                Arc::new(InterPodAffinity),
            ],
            scores: vec![
                score(Arc::new(TaintToleration), 3),
                score(Arc::new(NodeAffinity), 2),
                score(Arc::new(NodeResourcesFit), 1),
                score(Arc::new(PodTopologySpread), 2),
                score(Arc::new(InterPodAffinity), 2),
                score(Arc::new(BalancedAllocation), 1),
                score(Arc::new(ImageLocality), 1),
            ],
            percentage_of_nodes_to_score: None,
            preemption: true,
        }
    }
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("scheduler_name", &self.scheduler_name)
            .field(
                "filters",
                &self.filters.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .field(
                "scores",
                &self
                    .scores
                    .iter()
                    .map(|s| (s.plugin.name(), s.weight))
                    .collect::<Vec<_>>(),
            )
            .field("percentage_of_nodes_to_score", &self.percentage_of_nodes_to_score)
            .field("preemption", &self.preemption)
            .finish()
    }
}
