//! InterPodAffinity: required pod affinity and anti-affinity of the incoming pod, and the
//! required anti-affinity of pods already placed against it, filter nodes by topology domain;
//! preferred terms (both ways) and existing pods' required affinity score them.

use std::collections::{BTreeMap, HashMap};

use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, PreFilterResult, PreScore, ScorePlugin, Status,
};
use crate::snapshot::{AffinityTerm, NodeInfo, PodInfo, Snapshot, WeightedAffinityTerm};

/// The plugin's name.
pub const NAME: &str = "InterPodAffinity";
/// Upstream's reason when an existing pod's anti-affinity rejects the incoming pod.
pub const REASON_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
/// Upstream's reason when the pod's affinity finds no matching pod in the node's domain.
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// Upstream's reason when the pod's anti-affinity finds a matching pod in the node's domain.
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";

/// Weight of an existing pod's required affinity term that selects the incoming pod (upstream's
/// `hardPodAffinityWeight` default).
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

type Domain = (String, String);

/// The InterPodAffinity plugin.
#[derive(Debug, Default)]
pub struct InterPodAffinity;

#[derive(Default)]
struct FilterState {
    /// Domains holding an existing pod whose required anti-affinity selects the incoming pod.
    existing_anti: HashMap<Domain, i64>,
    /// Domains holding pods that match every required affinity term of the incoming pod.
    affinity: HashMap<Domain, i64>,
    /// Domains holding pods that match a required anti-affinity term of the incoming pod.
    anti: HashMap<Domain, i64>,
}

fn domain(term: &AffinityTerm, node: &NodeInfo) -> Option<Domain> {
    node.labels
        .get(&term.topology_key)
        .map(|v| (term.topology_key.clone(), v.clone()))
}

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        state: &mut CycleState,
    ) -> Result<PreFilterResult, Status> {
        let mut s = FilterState::default();
        let pod_ns_labels = snapshot.namespace_labels(&pod.namespace);
        for node in snapshot.nodes() {
            if node.pods_with_required_anti_affinity > 0 {
                for existing in &node.pods {
                    for term in &existing.required_anti_affinity {
                        if term.matches(pod, pod_ns_labels)
                            && let Some(d) = domain(term, node)
                        {
                            *s.existing_anti.entry(d).or_default() += 1;
                        }
                    }
                }
            }
            if pod.required_affinity.is_empty() && pod.required_anti_affinity.is_empty() {
                continue;
            }
            for existing in &node.pods {
                let ns_labels = snapshot.namespace_labels(&existing.namespace);
                if !pod.required_affinity.is_empty()
                    && pod
                        .required_affinity
                        .iter()
                        .all(|t| t.matches(existing, ns_labels))
                {
                    for term in &pod.required_affinity {
                        if let Some(d) = domain(term, node) {
                            *s.affinity.entry(d).or_default() += 1;
                        }
                    }
                }
                for term in &pod.required_anti_affinity {
                    if term.matches(existing, ns_labels)
                        && let Some(d) = domain(term, node)
                    {
                        *s.anti.entry(d).or_default() += 1;
                    }
                }
            }
        }
        if s.existing_anti.is_empty()
            && pod.required_affinity.is_empty()
            && pod.required_anti_affinity.is_empty()
        {
            return Ok(PreFilterResult::Skip);
        }
        // The first pod of a group with affinity to itself may go anywhere its terms' topology
        // keys exist: remember whether it matches its own terms.
        let self_match = pod
            .required_affinity
            .iter()
            .all(|t| t.matches(pod, pod_ns_labels));
        state.write(SelfMatch(self_match));
        state.write(s);
        Ok(PreFilterResult::AllNodes)
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Status> {
        let Some(s) = state.read::<FilterState>() else {
            return Ok(());
        };
        // Required affinity: every term's domain on this node must hold a matching pod.
        let mut pods_exist = true;
        for term in &pod.required_affinity {
            let Some(d) = domain(term, node) else {
                return Err(Status::unresolvable(NAME, REASON_AFFINITY));
            };
            if s.affinity.get(&d).copied().unwrap_or(0) <= 0 {
                pods_exist = false;
            }
        }
        if !pods_exist {
            let self_match = state.read::<SelfMatch>().is_some_and(|m| m.0);
            if !(s.affinity.is_empty() && self_match) {
                return Err(Status::unresolvable(NAME, REASON_AFFINITY));
            }
        }
        for term in &pod.required_anti_affinity {
            if let Some(d) = domain(term, node)
                && s.anti.get(&d).copied().unwrap_or(0) > 0
            {
                return Err(Status::unschedulable(NAME, REASON_ANTI_AFFINITY));
            }
        }
        for (k, v) in &node.labels {
            if s.existing_anti.get(&(k.clone(), v.clone())).copied().unwrap_or(0) > 0 {
                return Err(Status::unschedulable(NAME, REASON_EXISTING_ANTI_AFFINITY));
            }
        }
        Ok(())
    }
}

struct SelfMatch(bool);

/// Score state: per topology key, per value, the summed term weights.
struct ScoreState(HashMap<String, HashMap<String, i64>>);

fn add_terms(
    scores: &mut HashMap<String, HashMap<String, i64>>,
    terms: &[WeightedAffinityTerm],
    target: &PodInfo,
    ns_labels: &BTreeMap<String, String>,
    node: &NodeInfo,
    sign: i64,
) {
    for t in terms {
        add_term(scores, &t.term, t.weight * sign, target, ns_labels, node);
    }
}

fn add_term(
    scores: &mut HashMap<String, HashMap<String, i64>>,
    term: &AffinityTerm,
    weight: i64,
    target: &PodInfo,
    ns_labels: &BTreeMap<String, String>,
    node: &NodeInfo,
) {
    if term.matches(target, ns_labels)
        && let Some(v) = node.labels.get(&term.topology_key)
    {
        *scores
            .entry(term.topology_key.clone())
            .or_default()
            .entry(v.clone())
            .or_default() += weight;
    }
}

impl ScorePlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        _feasible: &[&NodeInfo],
        state: &mut CycleState,
    ) -> PreScore {
        let has_preferred = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        let pod_ns_labels = snapshot.namespace_labels(&pod.namespace);
        let mut scores: HashMap<String, HashMap<String, i64>> = HashMap::new();
        let mut any_affinity = false;
        for node in snapshot.nodes() {
            if node.pods_with_affinity == 0 && !has_preferred {
                continue;
            }
            any_affinity |= node.pods_with_affinity > 0;
            for existing in &node.pods {
                let existing_ns = snapshot.namespace_labels(&existing.namespace);
                add_terms(
                    &mut scores,
                    &pod.preferred_affinity,
                    existing,
                    existing_ns,
                    node,
                    1,
                );
                add_terms(
                    &mut scores,
                    &pod.preferred_anti_affinity,
                    existing,
                    existing_ns,
                    node,
                    -1,
                );
                if !existing.has_affinity() {
                    continue;
                }
                if HARD_POD_AFFINITY_WEIGHT > 0 && !node.labels.is_empty() {
                    for t in &existing.required_affinity {
                        add_term(&mut scores, t, HARD_POD_AFFINITY_WEIGHT, pod, pod_ns_labels, node);
                    }
                }
                add_terms(
                    &mut scores,
                    &existing.preferred_affinity,
                    pod,
                    pod_ns_labels,
                    node,
                    1,
                );
                add_terms(
                    &mut scores,
                    &existing.preferred_anti_affinity,
                    pod,
                    pod_ns_labels,
                    node,
                    -1,
                );
            }
        }
        if !has_preferred && !any_affinity {
            return PreScore::Skip;
        }
        state.write(ScoreState(scores));
        PreScore::Score
    }

    /// The summed weights of the node's domains.
    fn score(&self, _pod: &PodInfo, node: &NodeInfo, _snapshot: &Snapshot, state: &CycleState) -> i64 {
        let Some(ScoreState(scores)) = state.read::<ScoreState>() else {
            return 0;
        };
        scores
            .iter()
            .filter_map(|(key, values)| node.labels.get(key).and_then(|v| values.get(v)))
            .sum()
    }

    /// Maps `min..=max` onto `0..=100`.
    fn normalize(&self, _nodes: &[&NodeInfo], scores: &mut [i64], state: &CycleState) {
        let Some(ScoreState(s)) = state.read::<ScoreState>() else {
            return;
        };
        if s.is_empty() {
            return;
        }
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        let diff = max - min;
        for v in scores.iter_mut() {
            *v = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((*v - min) as f64 / diff as f64)) as i64
            } else {
                0
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

    fn placed(name: &str, node: &str, labels: Value, extra: Value) -> k8s_openapi::api::core::v1::Pod {
        let mut v = json!({"metadata": {"labels": labels}, "spec": {"nodeName": node}});
        crate::snapshot::tests::merge(&mut v, extra);
        pod_obj(name, v)
    }

    fn term(key: &str, labels: Value) -> Value {
        json!({"topologyKey": key, "labelSelector": {"matchLabels": labels}})
    }

    fn required(kind: &str, terms: Value) -> Value {
        json!({"spec": {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": terms}}}})
    }

    fn ok_nodes(res: Vec<(String, Result<(), Status>)>) -> Vec<String> {
        res.into_iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n)
            .collect()
    }

    fn cluster() -> Snapshot {
        Snapshot::new(
            [zoned("a", "z1"), zoned("b", "z1"), zoned("c", "z2")],
            [placed("web", "a", json!({"app": "web"}), json!({}))],
            [],
        )
    }

    #[test]
    fn required_affinity_follows_the_domain() {
        let p = pod(
            "p",
            required("podAffinity", json!([term("zone", json!({"app": "web"}))])),
        );
        let res = filter_all(&InterPodAffinity, &p, &cluster());
        assert_eq!(ok_nodes(res.clone()), ["a", "b"]);
        assert_eq!(res[2].1, Err(Status::unresolvable(NAME, REASON_AFFINITY)));
        // A node without the topology key never matches.
        let p = pod(
            "p",
            required("podAffinity", json!([term("rack", json!({"app": "web"}))])),
        );
        assert!(ok_nodes(filter_all(&InterPodAffinity, &p, &cluster())).is_empty());
    }

    #[test]
    fn first_pod_with_affinity_to_itself_goes_anywhere() {
        let mut v = required("podAffinity", json!([term("zone", json!({"app": "db"}))]));
        crate::snapshot::tests::merge(&mut v, json!({"metadata": {"labels": {"app": "db"}}}));
        assert_eq!(
            ok_nodes(filter_all(&InterPodAffinity, &pod("p", v), &cluster())).len(),
            3
        );
        // Not matching its own terms: nowhere.
        let p = pod(
            "p",
            required("podAffinity", json!([term("zone", json!({"app": "db"}))])),
        );
        assert!(ok_nodes(filter_all(&InterPodAffinity, &p, &cluster())).is_empty());
    }

    #[test]
    fn required_anti_affinity_both_ways() {
        let p = pod(
            "p",
            required("podAntiAffinity", json!([term("zone", json!({"app": "web"}))])),
        );
        let res = filter_all(&InterPodAffinity, &p, &cluster());
        assert_eq!(ok_nodes(res.clone()), ["c"]);
        assert_eq!(res[0].1, Err(Status::unschedulable(NAME, REASON_ANTI_AFFINITY)));
        // The placed pod's anti-affinity against app=cache keeps cache pods out of its host.
        let s = Snapshot::new(
            [zoned("a", "z1"), zoned("b", "z1")],
            [placed(
                "web",
                "a",
                json!({"app": "web"}),
                required(
                    "podAntiAffinity",
                    json!([term("kubernetes.io/hostname", json!({"app": "cache"}))]),
                ),
            )],
            [],
        );
        let cache = pod("p", json!({"metadata": {"labels": {"app": "cache"}}}));
        let res = filter_all(&InterPodAffinity, &cache, &s);
        assert_eq!(
            res[0].1,
            Err(Status::unschedulable(NAME, REASON_EXISTING_ANTI_AFFINITY))
        );
        assert_eq!(res[1].1, Ok(()));
        assert_eq!(
            ok_nodes(filter_all(&InterPodAffinity, &pod("q", json!({})), &s)).len(),
            2
        );
    }

    #[test]
    fn namespaces_and_namespace_selectors() {
        let ns = |name: &str, labels: Value| -> k8s_openapi::api::core::v1::Namespace {
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
        };
        let mut other = placed("web", "a", json!({"app": "web"}), json!({}));
        other.metadata.namespace = Some("team".into());
        let s = Snapshot::new(
            [zoned("a", "z1"), zoned("c", "z2")],
            [other],
            [ns("team", json!({"env": "prod"})), ns("default", json!({}))],
        );
        // Same selector, own namespace only: no match.
        let p = pod(
            "p",
            required("podAffinity", json!([term("zone", json!({"app": "web"}))])),
        );
        assert!(ok_nodes(filter_all(&InterPodAffinity, &p, &s)).is_empty());
        // Named namespace.
        let mut t = term("zone", json!({"app": "web"}));
        t["namespaces"] = json!(["team"]);
        let p = pod("p", required("podAffinity", json!([t])));
        assert_eq!(ok_nodes(filter_all(&InterPodAffinity, &p, &s)), ["a"]);
        // Namespace selector.
        let mut t = term("zone", json!({"app": "web"}));
        t["namespaceSelector"] = json!({"matchLabels": {"env": "prod"}});
        let p = pod("p", required("podAffinity", json!([t])));
        assert_eq!(ok_nodes(filter_all(&InterPodAffinity, &p, &s)), ["a"]);
        // An empty namespace selector selects every namespace.
        let mut t = term("zone", json!({"app": "web"}));
        t["namespaceSelector"] = json!({});
        let p = pod("p", required("podAntiAffinity", json!([t])));
        assert_eq!(ok_nodes(filter_all(&InterPodAffinity, &p, &s)), ["c"]);
    }

    #[test]
    fn preferred_terms_score() {
        let preferred = |kind: &str, weight: i32| {
            json!({"spec": {"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": weight, "podAffinityTerm": term("zone", json!({"app": "web"}))}
            ]}}}})
        };
        // Affinity: z1 nodes get 5, z2 0 → 100, 100, 0.
        assert_eq!(
            score_all(
                &InterPodAffinity,
                &pod("p", preferred("podAffinity", 5)),
                &cluster()
            ),
            Some(vec![100, 100, 0])
        );
        // Anti-affinity: z1 -5, z2 0 → 0, 0, 100.
        assert_eq!(
            score_all(
                &InterPodAffinity,
                &pod("p", preferred("podAntiAffinity", 5)),
                &cluster()
            ),
            Some(vec![0, 0, 100])
        );
        // Nobody has affinity terms: skipped.
        assert_eq!(
            score_all(&InterPodAffinity, &pod("p", json!({})), &cluster()),
            None
        );
        // An existing pod's required affinity to the incoming pod attracts it (hard weight 1).
        let s = Snapshot::new(
            [zoned("a", "z1"), zoned("c", "z2")],
            [placed(
                "web",
                "a",
                json!({"app": "web"}),
                required("podAffinity", json!([term("zone", json!({"app": "db"}))])),
            )],
            [],
        );
        let db = pod("p", json!({"metadata": {"labels": {"app": "db"}}}));
        assert_eq!(score_all(&InterPodAffinity, &db, &s), Some(vec![100, 0]));
    }
}
