//! PodTopologySpread: `topologySpreadConstraints` keep matching pods evenly spread over
//! topology domains. `DoNotSchedule` constraints filter (`maxSkew`, `minDomains`,
//! `nodeAffinityPolicy`, `nodeTaintsPolicy`, `matchLabelKeys`), `ScheduleAnyway` ones score.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{PodSpec, TopologySpreadConstraint};

use super::node_affinity::required_matches;
use super::taints::untolerated_no_schedule;
use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, PreFilterResult, PreScore, ScorePlugin, Status,
};
use crate::selector::Selector;
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// The plugin's name.
pub const NAME: &str = "PodTopologySpread";
/// Upstream's reason when placing the pod would exceed a constraint's skew.
pub const REASON_CONSTRAINTS_NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
/// Upstream's reason when the node lacks a constraint's topology label.
pub const REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const HOSTNAME: &str = "kubernetes.io/hostname";

/// A constraint with its selector converted and defaults applied.
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: Selector,
    min_domains: i64,
    honor_node_affinity: bool,
    honor_taints: bool,
}

impl Constraint {
    fn new(c: &TopologySpreadConstraint, pod: &PodInfo) -> Constraint {
        let mut selector = Selector::from_label_selector(c.label_selector.as_ref());
        for key in c.match_label_keys.iter().flatten() {
            if let Some(v) = pod.labels.get(key) {
                selector.and_equals(key, v);
            }
        }
        Constraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }

    /// Whether `node` counts for this constraint under its node inclusion policies.
    fn includes(&self, pod: &PodInfo, spec: &PodSpec, node: &NodeInfo) -> bool {
        (!self.honor_node_affinity || required_matches(spec, node))
            && (!self.honor_taints || untolerated_no_schedule(&node.taints, pod.tolerations()).is_none())
    }
}

fn constraints(pod: &PodInfo, when: &str) -> Vec<Constraint> {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.when_unsatisfiable == when)
        .map(|c| Constraint::new(c, pod))
        .collect()
}

fn has_all_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    constraints
        .iter()
        .all(|c| node.labels.contains_key(&c.topology_key))
}

/// Pods on `node` in `namespace`, not terminating, that `selector` selects.
fn count_matching(node: &NodeInfo, selector: &Selector, namespace: &str) -> i64 {
    node.pods
        .iter()
        .filter(|p| !p.terminating && p.namespace == namespace && selector.matches(&p.labels))
        .count() as i64
}

fn empty_spec() -> &'static PodSpec {
    static EMPTY: std::sync::OnceLock<PodSpec> = std::sync::OnceLock::new();
    EMPTY.get_or_init(PodSpec::default)
}

/// The PodTopologySpread plugin (no cluster-level default constraints yet).
#[derive(Debug, Default)]
pub struct PodTopologySpread;

/// Filter state: matching pods per domain of each hard constraint.
struct FilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: domain value → matching pods.
    counts: Vec<HashMap<String, i64>>,
}

impl FilterState {
    /// The global minimum of a constraint (0 while fewer than `minDomains` domains exist).
    fn min_match(&self, i: usize) -> i64 {
        let domains = &self.counts[i];
        if (domains.len() as i64) < self.constraints[i].min_domains {
            return 0;
        }
        domains.values().copied().min().unwrap_or(0)
    }
}

impl FilterPlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        state: &mut CycleState,
    ) -> Result<PreFilterResult, Status> {
        let constraints = constraints(pod, "DoNotSchedule");
        if constraints.is_empty() {
            return Ok(PreFilterResult::Skip);
        }
        let spec = pod.pod.spec.as_ref().unwrap_or_else(|| empty_spec());
        let mut counts = vec![HashMap::new(); constraints.len()];
        for node in snapshot.nodes() {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !c.includes(pod, spec, node) {
                    continue;
                }
                let value = node.labels[&c.topology_key].clone();
                *counts[i].entry(value).or_insert(0) += count_matching(node, &c.selector, &pod.namespace);
            }
        }
        state.write(FilterState { constraints, counts });
        Ok(PreFilterResult::AllNodes)
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Status> {
        let Some(s) = state.read::<FilterState>() else {
            return Ok(());
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Err(Status::unresolvable(NAME, REASON_NODE_LABEL_NOT_MATCH));
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let matching = s.counts[i].get(value).copied().unwrap_or(0);
            if matching + self_match - s.min_match(i) > c.max_skew {
                return Err(Status::unschedulable(NAME, REASON_CONSTRAINTS_NOT_MATCH));
            }
        }
        Ok(())
    }
}

/// Score state: the soft constraints, matching pods per domain, nodes left unscored and each
/// constraint's weight (`ln(domains + 2)`, so constraints over few domains are not drowned).
struct ScoreState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
    ignored: BTreeSet<String>,
    weights: Vec<f64>,
}

impl ScorePlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        feasible: &[&NodeInfo],
        state: &mut CycleState,
    ) -> PreScore {
        let constraints = constraints(pod, "ScheduleAnyway");
        if constraints.is_empty() || snapshot.is_empty() {
            return PreScore::Skip;
        }
        let spec = pod.pod.spec.as_ref().unwrap_or_else(|| empty_spec());
        let mut counts = vec![HashMap::new(); constraints.len()];
        let mut ignored = BTreeSet::new();
        for node in feasible {
            if !has_all_keys(node, &constraints) {
                ignored.insert(node.name.clone());
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key != HOSTNAME {
                    counts[i].entry(node.labels[&c.topology_key].clone()).or_insert(0);
                }
            }
        }
        let weights = constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == HOSTNAME {
                    feasible.len() - ignored.len()
                } else {
                    counts[i].len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        for node in snapshot.nodes() {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !c.includes(pod, spec, node) {
                    continue;
                }
                if let Some(n) = counts[i].get_mut(&node.labels[&c.topology_key]) {
                    *n += count_matching(node, &c.selector, &pod.namespace);
                }
            }
        }
        state.write(ScoreState {
            constraints,
            counts,
            ignored,
            weights,
        });
        PreScore::Score
    }

    /// The matching pods in the node's domains, weighted; fewer is better (see `normalize`).
    fn score(&self, pod: &PodInfo, node: &NodeInfo, _snapshot: &Snapshot, state: &CycleState) -> i64 {
        let Some(s) = state.read::<ScoreState>() else {
            return 0;
        };
        if s.ignored.contains(&node.name) {
            return 0;
        }
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == HOSTNAME {
                count_matching(node, &c.selector, &pod.namespace)
            } else {
                s.counts[i].get(value).copied().unwrap_or(0)
            };
            score += count as f64 * s.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    /// `100 * (max + min - score) / max` over the scored nodes; ignored nodes get 0.
    fn normalize(&self, nodes: &[&NodeInfo], scores: &mut [i64], state: &CycleState) {
        let Some(s) = state.read::<ScoreState>() else {
            return;
        };
        let counted = || {
            nodes
                .iter()
                .zip(scores.iter())
                .filter(|(n, _)| !s.ignored.contains(&n.name))
                .map(|(_, &v)| v)
        };
        let min = counted().min().unwrap_or(0);
        let max = counted().max().unwrap_or(0).max(0);
        for (n, score) in nodes.iter().zip(scores.iter_mut()) {
            *score = if s.ignored.contains(&n.name) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *score) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{filter_all, node_obj, pod, pod_obj, score_all};
    use serde_json::{Value, json};

    fn zoned(name: &str, zone: &str) -> k8s_openapi::api::core::v1::Node {
        node_obj(name, json!({"metadata": {"labels": {"zone": zone}}}))
    }

    fn foo_on(name: &str, node: &str) -> k8s_openapi::api::core::v1::Pod {
        pod_obj(
            name,
            json!({"metadata": {"labels": {"foo": ""}}, "spec": {"nodeName": node}}),
        )
    }

    fn spread(constraints: Value) -> PodInfo {
        pod(
            "p",
            json!({"metadata": {"labels": {"foo": ""}}, "spec": {"topologySpreadConstraints": constraints}}),
        )
    }

    fn constraint(key: &str, max_skew: i32, when: &str, extra: Value) -> Value {
        let mut v = json!({"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchExpressions": [{"key": "foo", "operator": "Exists"}]}});
        crate::snapshot::tests::merge(&mut v, extra);
        v
    }

    fn ok_nodes(res: Vec<(String, Result<(), Status>)>) -> Vec<String> {
        res.into_iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n)
            .collect()
    }

    /// Upstream's canonical layout: zone1 = {node-a: 2 pods, node-b: 1}, zone2 = {node-x: 0,
    /// node-y: 2}... here reduced to its zone totals.
    fn cluster() -> Snapshot {
        Snapshot::new(
            [
                zoned("node-a", "zone1"),
                zoned("node-b", "zone1"),
                zoned("node-x", "zone2"),
                zoned("node-y", "zone2"),
            ],
            [
                foo_on("p-a1", "node-a"),
                foo_on("p-a2", "node-a"),
                foo_on("p-b1", "node-b"),
                foo_on("p-y1", "node-y"),
            ],
            [],
        )
    }

    #[test]
    fn max_skew_per_zone_and_node() {
        // zone1 has 3, zone2 has 1: with maxSkew 1 only zone2 fits.
        let p = spread(json!([constraint("zone", 1, "DoNotSchedule", json!({}))]));
        assert_eq!(
            ok_nodes(filter_all(&PodTopologySpread, &p, &cluster())),
            ["node-x", "node-y"]
        );
        // Per node: counts 2,1,0,1; min 0 → node-x only (0+1-0 <= 1), node-b/node-y 1+1-0 = 2 > 1.
        let p = spread(json!([constraint(HOSTNAME, 1, "DoNotSchedule", json!({}))]));
        assert_eq!(
            ok_nodes(filter_all(&PodTopologySpread, &p, &cluster())),
            ["node-x"]
        );
        // Both: the intersection.
        let p = spread(json!([
            constraint("zone", 1, "DoNotSchedule", json!({})),
            constraint(HOSTNAME, 1, "DoNotSchedule", json!({}))
        ]));
        assert_eq!(
            ok_nodes(filter_all(&PodTopologySpread, &p, &cluster())),
            ["node-x"]
        );
        // A pod the selector does not select adds no skew of its own.
        let p = pod(
            "p",
            json!({"spec": {"topologySpreadConstraints": [constraint("zone", 2, "DoNotSchedule", json!({}))]}}),
        );
        assert_eq!(ok_nodes(filter_all(&PodTopologySpread, &p, &cluster())).len(), 4);
    }

    #[test]
    fn missing_label_is_unresolvable() {
        let s = Snapshot::new([zoned("a", "z1"), node_obj("bare", json!({}))], [], []);
        let p = spread(json!([constraint("zone", 1, "DoNotSchedule", json!({}))]));
        let res = filter_all(&PodTopologySpread, &p, &s);
        assert_eq!(
            res[1].1,
            Err(Status::unresolvable(NAME, REASON_NODE_LABEL_NOT_MATCH))
        );
        assert_eq!(res[0].1, Ok(()));
    }

    #[test]
    fn min_domains_treats_the_minimum_as_zero() {
        // Two zones with 1 pod each; minDomains 3 → global minimum 0, so a zone with 1 pod
        // and maxSkew 1 cannot take another (1+1-0 = 2 > 1).
        let s = Snapshot::new(
            [zoned("a", "z1"), zoned("b", "z2")],
            [foo_on("p1", "a"), foo_on("p2", "b")],
            [],
        );
        let p = spread(json!([constraint(
            "zone",
            1,
            "DoNotSchedule",
            json!({"minDomains": 3})
        )]));
        assert!(ok_nodes(filter_all(&PodTopologySpread, &p, &s)).is_empty());
        let p = spread(json!([constraint(
            "zone",
            1,
            "DoNotSchedule",
            json!({"minDomains": 2})
        )]));
        assert_eq!(ok_nodes(filter_all(&PodTopologySpread, &p, &s)).len(), 2);
    }

    #[test]
    fn node_inclusion_policies() {
        // zone2's only node is tainted: with nodeTaintsPolicy Honor it does not count as a
        // domain, so zone1 (1 pod) is the minimum and takes the pod.
        let s = Snapshot::new(
            [
                zoned("a", "z1"),
                node_obj(
                    "t",
                    json!({"metadata": {"labels": {"zone": "z2"}}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
                ),
            ],
            [foo_on("p1", "a")],
            [],
        );
        let honor = spread(json!([constraint(
            "zone",
            1,
            "DoNotSchedule",
            json!({"nodeTaintsPolicy": "Honor"})
        )]));
        assert_eq!(ok_nodes(filter_all(&PodTopologySpread, &honor, &s)), ["a", "t"]);
        let ignore = spread(json!([constraint("zone", 1, "DoNotSchedule", json!({}))]));
        assert_eq!(ok_nodes(filter_all(&PodTopologySpread, &ignore, &s)), ["t"]);
        // nodeAffinityPolicy Honor (the default): nodes the pod's nodeSelector excludes are not
        // domains; Ignore counts them.
        let s = Snapshot::new(
            [
                node_obj("a", json!({"metadata": {"labels": {"zone": "z1", "ok": "y"}}})),
                node_obj("b", json!({"metadata": {"labels": {"zone": "z2"}}})),
            ],
            [foo_on("p1", "a")],
            [],
        );
        let mut v = json!({"metadata": {"labels": {"foo": ""}}, "spec": {"nodeSelector": {"ok": "y"},
            "topologySpreadConstraints": [constraint("zone", 1, "DoNotSchedule", json!({}))]}});
        let honored = pod("p", v.clone());
        assert_eq!(filter_all(&PodTopologySpread, &honored, &s)[0].1, Ok(()));
        crate::snapshot::tests::merge(
            &mut v,
            json!({"spec": {"topologySpreadConstraints": [constraint("zone", 1, "DoNotSchedule", json!({"nodeAffinityPolicy": "Ignore"}))]}}),
        );
        let ignored = pod("p", v);
        assert!(filter_all(&PodTopologySpread, &ignored, &s)[0].1.is_err());
    }

    #[test]
    fn match_label_keys_narrow_the_selector() {
        // Only pods of the same revision count.
        let s = Snapshot::new(
            [zoned("a", "z1"), zoned("b", "z2")],
            [pod_obj(
                "old",
                json!({"metadata": {"labels": {"foo": "", "rev": "1"}}, "spec": {"nodeName": "a"}}),
            )],
            [],
        );
        let with_keys = pod(
            "p",
            json!({"metadata": {"labels": {"foo": "", "rev": "2"}}, "spec": {"topologySpreadConstraints": [
                constraint("zone", 1, "DoNotSchedule", json!({"matchLabelKeys": ["rev"]}))
            ]}}),
        );
        assert_eq!(ok_nodes(filter_all(&PodTopologySpread, &with_keys, &s)).len(), 2);
        let without = spread(json!([constraint("zone", 1, "DoNotSchedule", json!({}))]));
        assert_eq!(ok_nodes(filter_all(&PodTopologySpread, &without, &s)), ["b"]);
    }

    #[test]
    fn soft_constraints_score_fewer_matches_higher() {
        // Per node counts 2,1,0,1 with hostname spreading, maxSkew 1, 4 nodes → weight ln(6):
        // raw = round(count * 1.79) = 4, 2, 0, 2 → 100*(4+0-s)/4 = 0, 50, 100, 50.
        let p = spread(json!([constraint(HOSTNAME, 1, "ScheduleAnyway", json!({}))]));
        assert_eq!(
            score_all(&PodTopologySpread, &p, &cluster()),
            Some(vec![0, 50, 100, 50])
        );
        // Zones: zone1 3, zone2 1, weight ln(4) = 1.386: raw 4, 4, 1, 1 → 100*(5-s)/4 = 25, 25, 100, 100.
        let p = spread(json!([constraint("zone", 1, "ScheduleAnyway", json!({}))]));
        assert_eq!(
            score_all(&PodTopologySpread, &p, &cluster()),
            Some(vec![25, 25, 100, 100])
        );
        assert_eq!(
            score_all(&PodTopologySpread, &pod("q", json!({})), &cluster()),
            None
        );
    }

    #[test]
    fn nodes_without_the_key_score_zero() {
        let s = Snapshot::new(
            [zoned("a", "z1"), node_obj("bare", json!({}))],
            [foo_on("p1", "a")],
            [],
        );
        let p = spread(json!([constraint("zone", 1, "ScheduleAnyway", json!({}))]));
        // a: 1 * ln(3) = 1.1 → 1; only node → 100*(1+1-1)/1 = 100; bare ignored → 0.
        assert_eq!(score_all(&PodTopologySpread, &p, &s), Some(vec![100, 0]));
    }
}
