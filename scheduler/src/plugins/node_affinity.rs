//! NodeAffinity: `nodeSelector` and required node affinity rule nodes out; preferred node
//! affinity terms add their weights to a node's score.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

use crate::framework::{CycleState, FilterPlugin, PreFilterResult, ScorePlugin, Status, default_normalize};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// The plugin's name.
pub const NAME: &str = "NodeAffinity";
/// Upstream's reason for a node failing the pod's selector or required affinity.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";
/// Upstream's reason when the terms' `metadata.name` fields contradict each other.
pub const REASON_CONFLICT: &str = "pod affinity terms conflict";

/// True when one requirement holds for `labels` (upstream's `NodeSelectorRequirementsAsSelector`
/// semantics; a malformed requirement does not hold).
fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let label = labels.get(&r.key);
    let number = |v: &str| v.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => !values.is_empty() && label.is_some_and(|l| values.contains(l)),
        "NotIn" => !values.is_empty() && label.is_none_or(|l| !values.contains(l)),
        "Exists" => values.is_empty() && label.is_some(),
        "DoesNotExist" => values.is_empty() && label.is_none(),
        op @ ("Gt" | "Lt") => {
            let ([v], Some(l)) = (values, label) else {
                return false;
            };
            match (number(v), number(l)) {
                (Some(v), Some(l)) => (op == "Gt" && l > v) || (op == "Lt" && l < v),
                _ => false,
            }
        }
        _ => false,
    }
}

/// True when a `matchFields` requirement holds for the node's name (only `metadata.name`, with
/// `In` / `NotIn` and exactly one value, as upstream's field selector conversion allows).
fn field_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    if r.key != "metadata.name" || values.len() != 1 {
        return false;
    }
    match r.operator.as_str() {
        "In" => values[0] == node_name,
        "NotIn" => values[0] != node_name,
        _ => false,
    }
}

/// True when a node selector term holds: an empty term matches nothing; otherwise every
/// expression and field requirement must hold.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, &node.labels))
        && fields.iter().all(|r| field_matches(r, &node.name))
}

/// True when `node` satisfies the pod's `nodeSelector` and required node affinity (upstream's
/// `RequiredNodeAffinity.Match`; used by PodTopologySpread as well).
pub fn required_matches(spec: &PodSpec, node: &NodeInfo) -> bool {
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    if !selector_ok {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
    match required {
        None => true,
        Some(sel) => sel.node_selector_terms.iter().any(|t| term_matches(t, node)),
    }
}

/// The NodeAffinity plugin.
#[derive(Debug, Default)]
pub struct NodeAffinity;

fn spec(pod: &PodInfo) -> &PodSpec {
    static EMPTY: std::sync::OnceLock<PodSpec> = std::sync::OnceLock::new();
    pod.pod
        .spec
        .as_ref()
        .unwrap_or_else(|| EMPTY.get_or_init(PodSpec::default))
}

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Narrows the nodes to those named by `matchFields` `metadata.name In` when every term
    /// names some; rejects the pod when those names exclude each other.
    fn pre_filter(
        &self,
        pod: &PodInfo,
        _snapshot: &Snapshot,
        _state: &mut CycleState,
    ) -> Result<PreFilterResult, Status> {
        let spec = spec(pod);
        let required = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
        let Some(required) = required else {
            return Ok(if spec.node_selector.as_ref().is_none_or(|s| s.is_empty()) {
                PreFilterResult::Skip
            } else {
                PreFilterResult::AllNodes
            });
        };
        let mut names: BTreeSet<String> = BTreeSet::new();
        for term in &required.node_selector_terms {
            let mut term_names: Option<BTreeSet<String>> = None;
            for r in term.match_fields.iter().flatten() {
                if r.key == "metadata.name" && r.operator == "In" {
                    let set: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
                    term_names = Some(match term_names {
                        None => set,
                        Some(prev) => prev.intersection(&set).cloned().collect(),
                    });
                }
            }
            match term_names {
                None => return Ok(PreFilterResult::AllNodes),
                Some(t) => names.extend(t),
            }
        }
        if names.is_empty() {
            return Err(Status::unresolvable(NAME, REASON_CONFLICT));
        }
        Ok(PreFilterResult::Nodes(names))
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, _state: &CycleState) -> Result<(), Status> {
        if required_matches(spec(pod), node) {
            Ok(())
        } else {
            Err(Status::unresolvable(NAME, REASON))
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(
        &self,
        pod: &PodInfo,
        _snapshot: &Snapshot,
        _feasible: &[&NodeInfo],
        _state: &mut CycleState,
    ) -> crate::PreScore {
        let preferred = spec(pod)
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| na.preferred_during_scheduling_ignored_during_execution.as_ref());
        if preferred.is_none_or(|p| p.is_empty()) {
            crate::PreScore::Skip
        } else {
            crate::PreScore::Score
        }
    }

    /// The sum of the weights of the preferred terms the node matches.
    fn score(&self, pod: &PodInfo, node: &NodeInfo, _snapshot: &Snapshot, _state: &CycleState) -> i64 {
        spec(pod)
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| na.preferred_during_scheduling_ignored_during_execution.as_ref())
            .into_iter()
            .flatten()
            .filter(|p| p.weight != 0 && term_matches(&p.preference, node))
            .map(|p| i64::from(p.weight))
            .sum()
    }

    fn normalize(&self, _nodes: &[&NodeInfo], scores: &mut [i64], _state: &CycleState) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{filter_all, node, node_obj, pod, run_filter, score_all};
    use serde_json::{Value, json};

    fn with_labels(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    fn required(terms: Value) -> Value {
        json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}})
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> Value {
        json!([{"matchExpressions": [{"key": key, "operator": op, "values": values}]}])
    }

    #[test]
    fn node_selector() {
        let n = node("n", with_labels(json!({"foo": "bar", "baz": "blah"})));
        assert_eq!(
            run_filter(
                &NodeAffinity,
                &pod("p", json!({"spec": {"nodeSelector": {"foo": "bar"}}})),
                &n
            ),
            Ok(())
        );
        assert_eq!(
            run_filter(
                &NodeAffinity,
                &pod("p", json!({"spec": {"nodeSelector": {"foo": "other"}}})),
                &n
            ),
            Err(Status::unresolvable(NAME, REASON))
        );
        assert_eq!(run_filter(&NodeAffinity, &pod("p", json!({})), &n), Ok(()));
    }

    #[test]
    fn every_operator() {
        let n = node("n", with_labels(json!({"foo": "bar", "gpus": "4"})));
        let cases: [(Value, bool); 14] = [
            (expr("foo", "In", &["bar", "x"]), true),
            (expr("foo", "In", &["x"]), false),
            (expr("foo", "NotIn", &["x"]), true),
            (expr("foo", "NotIn", &["bar"]), false),
            (expr("missing", "NotIn", &["bar"]), true),
            (expr("foo", "Exists", &[]), true),
            (expr("missing", "Exists", &[]), false),
            (expr("missing", "DoesNotExist", &[]), true),
            (expr("foo", "DoesNotExist", &[]), false),
            (expr("gpus", "Gt", &["3"]), true),
            (expr("gpus", "Gt", &["4"]), false),
            (expr("gpus", "Lt", &["5"]), true),
            (expr("foo", "Gt", &["1"]), false),
            (expr("gpus", "Lt", &["x"]), false),
        ];
        for (i, (terms, want)) in cases.into_iter().enumerate() {
            let got = run_filter(&NodeAffinity, &pod("p", required(terms)), &n);
            assert_eq!(got.is_ok(), want, "case {i}");
        }
    }

    #[test]
    fn terms_are_ored_and_requirements_anded() {
        let n = node("n", with_labels(json!({"foo": "bar", "zone": "a"})));
        let terms = json!([
            {"matchExpressions": [{"key": "foo", "operator": "In", "values": ["bar"]}, {"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}
        ]);
        assert_eq!(run_filter(&NodeAffinity, &pod("p", required(terms)), &n), Ok(()));
        // An empty term matches nothing.
        assert!(run_filter(&NodeAffinity, &pod("p", required(json!([{}]))), &n).is_err());
        // nodeSelector and affinity must both hold.
        let mut both = required(expr("zone", "In", &["a"]));
        crate::snapshot::tests::merge(&mut both, json!({"spec": {"nodeSelector": {"foo": "nope"}}}));
        assert!(run_filter(&NodeAffinity, &pod("p", both), &n).is_err());
    }

    #[test]
    fn match_fields_narrow_the_nodes() {
        let snapshot = crate::Snapshot::new([node_obj("a", json!({})), node_obj("b", json!({}))], [], []);
        let p = pod(
            "p",
            required(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}])),
        );
        let mut state = CycleState::default();
        assert_eq!(
            NodeAffinity.pre_filter(&p, &snapshot, &mut state),
            Ok(PreFilterResult::Nodes(["b".to_string()].into()))
        );
        let res = filter_all(&NodeAffinity, &p, &snapshot);
        assert!(res[0].1.is_err() && res[1].1.is_ok());
        let conflict = pod(
            "p",
            required(json!([{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["a"]},
                {"key": "metadata.name", "operator": "In", "values": ["b"]}
            ]}])),
        );
        assert_eq!(
            NodeAffinity.pre_filter(&conflict, &snapshot, &mut state),
            Err(Status::unresolvable(NAME, REASON_CONFLICT))
        );
        let not_in = pod(
            "p",
            required(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["a"]}]}]),
            ),
        );
        let res = filter_all(&NodeAffinity, &not_in, &snapshot);
        assert!(res[0].1.is_err() && res[1].1.is_ok());
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        // Upstream's table shape: weights 2 (foo=bar) and 8 (zone=a) → 20, 80, 100, 0 after
        // normalising by the best node.
        let snapshot = crate::Snapshot::new(
            [
                node_obj("foo", with_labels(json!({"foo": "bar"}))),
                node_obj("zone", with_labels(json!({"zone": "a"}))),
                node_obj("both", with_labels(json!({"foo": "bar", "zone": "a"}))),
                node_obj("none", json!({})),
            ],
            [],
            [],
        );
        let p = pod(
            "p",
            json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 2, "preference": {"matchExpressions": [{"key": "foo", "operator": "In", "values": ["bar"]}]}},
                {"weight": 8, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}
            ]}}}}),
        );
        assert_eq!(
            score_all(&NodeAffinity, &p, &snapshot),
            Some(vec![20, 80, 100, 0])
        );
        assert_eq!(score_all(&NodeAffinity, &pod("q", json!({})), &snapshot), None);
    }
}
