//! TaintToleration: a node's `NoSchedule` / `NoExecute` taints keep out pods that do not
//! tolerate them; `PreferNoSchedule` taints a pod does not tolerate lower the node's score.

use super::taints::{tolerates, untolerated_no_schedule};
use crate::framework::{CycleState, FilterPlugin, ScorePlugin, Status, default_normalize};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// The plugin's name.
pub const NAME: &str = "TaintToleration";

/// The TaintToleration plugin.
#[derive(Debug, Default)]
pub struct TaintToleration;

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, _state: &CycleState) -> Result<(), Status> {
        match untolerated_no_schedule(&node.taints, pod.tolerations()) {
            None => Ok(()),
            Some(t) => Err(Status::unresolvable(
                NAME,
                format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    t.key,
                    t.value.as_deref().unwrap_or("")
                ),
            )),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The number of `PreferNoSchedule` taints not tolerated by a toleration with effect
    /// `PreferNoSchedule` or none.
    fn score(&self, pod: &PodInfo, node: &NodeInfo, _snapshot: &Snapshot, _state: &CycleState) -> i64 {
        let tolerations: Vec<_> = pod
            .tolerations()
            .iter()
            .filter(|t| matches!(t.effect.as_deref(), None | Some("") | Some("PreferNoSchedule")))
            .collect();
        node.taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
            .count() as i64
    }

    /// Fewer intolerable taints score higher.
    fn normalize(&self, _nodes: &[&NodeInfo], scores: &mut [i64], _state: &CycleState) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, node_obj, pod, run_filter, score_all};
    use serde_json::json;

    fn tainted(name: &str, taints: serde_json::Value) -> serde_json::Value {
        let _ = name;
        json!({"spec": {"taints": taints}})
    }

    #[test]
    fn filter_reports_the_untolerated_taint() {
        let n = node(
            "n",
            tainted(
                "n",
                json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
            ),
        );
        assert_eq!(
            run_filter(&TaintToleration, &pod("p", json!({})), &n),
            Err(Status::unresolvable(
                NAME,
                "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
            ))
        );
        let n = node(
            "n",
            tainted(
                "n",
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]),
            ),
        );
        assert_eq!(
            run_filter(&TaintToleration, &pod("p", json!({})), &n),
            Err(Status::unresolvable(
                NAME,
                "node(s) had untolerated taint {dedicated: gpu}"
            ))
        );
        let tol = pod(
            "p",
            json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu"}]}}),
        );
        assert_eq!(run_filter(&TaintToleration, &tol, &n), Ok(()));
        // PreferNoSchedule never filters.
        let soft = node(
            "n",
            tainted("n", json!([{"key": "a", "effect": "PreferNoSchedule"}])),
        );
        assert_eq!(run_filter(&TaintToleration, &pod("p", json!({})), &soft), Ok(()));
    }

    #[test]
    fn score_counts_intolerable_prefer_no_schedule_taints() {
        // Upstream's table: the node with fewer intolerable PreferNoSchedule taints wins.
        let snapshot = crate::Snapshot::new(
            [
                node_obj("none", json!({})),
                node_obj(
                    "one",
                    tainted(
                        "one",
                        json!([{"key": "a", "value": "1", "effect": "PreferNoSchedule"}]),
                    ),
                ),
                node_obj(
                    "two",
                    tainted(
                        "two",
                        json!([
                            {"key": "a", "value": "1", "effect": "PreferNoSchedule"},
                            {"key": "b", "value": "2", "effect": "PreferNoSchedule"}
                        ]),
                    ),
                ),
                node_obj(
                    "tolerated",
                    tainted(
                        "tolerated",
                        json!([{"key": "c", "value": "3", "effect": "PreferNoSchedule"}]),
                    ),
                ),
            ],
            [],
            [],
        );
        let p = pod(
            "p",
            json!({"spec": {"tolerations": [
                {"key": "c", "operator": "Equal", "value": "3", "effect": "PreferNoSchedule"},
                {"key": "b", "operator": "Exists", "effect": "NoSchedule"}
            ]}}),
        );
        assert_eq!(
            score_all(&TaintToleration, &p, &snapshot),
            Some(vec![100, 50, 0, 100])
        );
    }
}
