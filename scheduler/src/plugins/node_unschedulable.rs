//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods tolerating the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use super::taints::tolerated;
use crate::framework::{CycleState, FilterPlugin, Status};
use crate::snapshot::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "NodeUnschedulable";
/// Upstream's reason.
pub const REASON: &str = "node(s) were unschedulable";

/// The NodeUnschedulable plugin.
#[derive(Debug, Default)]
pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, _state: &CycleState) -> Result<(), Status> {
        if !node.unschedulable {
            return Ok(());
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if tolerated(pod.tolerations(), &taint) {
            Ok(())
        } else {
            Err(Status::unresolvable(NAME, REASON))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod, run_filter};
    use serde_json::json;

    #[test]
    fn cordoned_nodes_need_the_toleration() {
        let cordoned = node("n", json!({"spec": {"unschedulable": true}}));
        let plain = pod("p", json!({}));
        assert_eq!(
            run_filter(&NodeUnschedulable, &plain, &cordoned),
            Err(Status::unresolvable(NAME, REASON))
        );
        assert_eq!(
            run_filter(&NodeUnschedulable, &plain, &node("n", json!({}))),
            Ok(())
        );
        let tolerating = pod(
            "p",
            json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(run_filter(&NodeUnschedulable, &tolerating, &cordoned), Ok(()));
    }
}
