//! Whether preemption could help a pod no node fits (upstream's DefaultPreemption PostFilter up
//! to its dry run): a pod with `preemptionPolicy: Never` may not preempt; nodes rejected as
//! unresolvable are not helped; on the others, removing every lower-priority pod must let the
//! pod pass the filters. [`plan`] then chooses the victims on each candidate (reprieving as many
//! pods as possible, those a PodDisruptionBudget protects first) and the node to preempt on, as
//! upstream's `SelectVictimsOnNode` and `pickOneNodeForPreemption`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

use crate::selector::Selector;

use crate::framework::Status;
use crate::profile::Profile;
use crate::schedule::{Diagnosis, FitError, is_unresolvable, run_filters, run_pre_filters};
use crate::snapshot::{PodInfo, Snapshot};

/// Upstream's PostFilter plugin name.
pub const NAME: &str = "DefaultPreemption";
/// Upstream's status for nodes where evicting pods cannot help.
pub const REASON_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Upstream's status for nodes without lower-priority pods.
pub const REASON_NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// What preemption concluded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The PostFilter message (`preemption: ...`), when preemption cannot help.
    pub message: Option<String>,
    /// Nodes where evicting lower-priority pods makes the pod fit.
    pub candidates: Vec<String>,
}

fn not_eligible(pod: &PodInfo, snapshot: &Snapshot, diagnosis: &Diagnosis) -> Option<&'static str> {
    let spec = pod.pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Some("not eligible due to preemptionPolicy=Never.");
    }
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())?;
    if is_unresolvable(diagnosis.status_of(nominated)) {
        return None;
    }
    let node = snapshot.node(nominated)?;
    let preempted = |p: &PodInfo| {
        p.terminating
            && p.pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| {
                    c.type_ == "DisruptionTarget"
                        && c.status == "True"
                        && c.reason.as_deref() == Some("PreemptionByScheduler")
                })
    };
    node.pods
        .iter()
        .any(|p| p.priority < pod.priority && preempted(p))
        .then_some("not eligible due to a terminating pod on the nominated node.")
}

/// Runs the PostFilter's eligibility check and dry run.
pub fn evaluate(pod: &PodInfo, snapshot: &Snapshot, profile: &Profile, diagnosis: &Diagnosis) -> Verdict {
    if let Some(msg) = not_eligible(pod, snapshot, diagnosis) {
        return Verdict {
            message: Some(format!("preemption: {msg}")),
            candidates: Vec::new(),
        };
    }
    let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
    let mut candidates = Vec::new();
    let mut scratch: Option<Snapshot> = None;
    for node in snapshot.nodes() {
        if is_unresolvable(diagnosis.status_of(&node.name)) {
            statuses.insert(node.name.clone(), Status::unresolvable(NAME, REASON_NOT_HELPFUL));
            continue;
        }
        let victims: Vec<_> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority)
            .cloned()
            .collect();
        if victims.is_empty() {
            statuses.insert(node.name.clone(), Status::unresolvable(NAME, REASON_NO_VICTIMS));
            continue;
        }
        let sim = scratch.get_or_insert_with(|| snapshot.clone());
        for v in &victims {
            sim.forget(&v.namespace, &v.name);
        }
        let outcome = match run_pre_filters(profile, pod, sim) {
            Err((status, _)) => Err(status),
            Ok(pre) => match sim.node(&node.name) {
                Some(n) if pre.nodes.as_ref().is_none_or(|names| names.contains(&node.name)) => {
                    run_filters(profile, &pre, pod, n)
                }
                _ => Err(Status::unresolvable(NAME, REASON_NOT_HELPFUL)),
            },
        };
        for v in victims {
            let _ = sim.assume(v, &node.name);
        }
        match outcome {
            Ok(()) => candidates.push(node.name.clone()),
            Err(status) => {
                statuses.insert(node.name.clone(), status);
            }
        }
    }
    if !candidates.is_empty() {
        return Verdict {
            message: None,
            candidates,
        };
    }
    let err = FitError {
        num_all_nodes: snapshot.len(),
        diagnosis: Diagnosis {
            node_to_status: statuses,
            ..Default::default()
        },
        preemption_candidates: Vec::new(),
    };
    Verdict {
        message: Some(format!("preemption: {err}")),
        candidates,
    }
}

/// Fewest candidate nodes to consider (upstream's `minCandidateNodesAbsolute`).
pub const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;
/// Share of the nodes to consider, in percent (upstream's `minCandidateNodesPercentage`).
pub const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;

/// A PodDisruptionBudget as preemption weighs it.
#[derive(Clone, Debug)]
pub struct Pdb {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The pods it covers (nil or empty selectors cover nothing).
    pub selector: Selector,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
    /// `status.disruptedPods` names: already counted against the budget.
    pub disrupted_pods: BTreeSet<String>,
}

/// The pods to evict on one node.
#[derive(Clone, Debug, Default)]
pub struct Victims {
    /// The victims, most important first.
    pub pods: Vec<Arc<PodInfo>>,
    /// How many of them a PodDisruptionBudget does not allow to disrupt.
    pub num_pdb_violations: usize,
}

/// Where to preempt and whom.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The node the preemptor is nominated to.
    pub node: String,
    /// The pods to evict there.
    pub victims: Victims,
}

fn start_time(p: &PodInfo) -> Option<Timestamp> {
    p.pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
}

/// Upstream's `MoreImportantPod`: higher priority first, then the one that started earlier
/// (a pod not started yet counts as starting now).
fn more_important(a: &PodInfo, b: &PodInfo) -> Ordering {
    let now = Timestamp::now();
    b.priority
        .cmp(&a.priority)
        .then_with(|| start_time(a).unwrap_or(now).cmp(&start_time(b).unwrap_or(now)))
}

/// Splits pods (most important first) into those whose eviction would violate a
/// PodDisruptionBudget and the others (upstream's `filterPodsWithPDBViolation`).
pub fn split_by_pdb(pods: Vec<Arc<PodInfo>>, pdbs: &[&Pdb]) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = pdbs.iter().map(|p| p.disruptions_allowed).collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut violated = false;
        for (i, pdb) in pdbs.iter().enumerate() {
            if pdb.namespace != pod.namespace || !pdb.selector.matches(&pod.labels) {
                continue;
            }
            if pdb.disrupted_pods.contains(&pod.name) {
                continue;
            }
            allowed[i] -= 1;
            if allowed[i] < 0 {
                violated = true;
            }
        }
        if violated {
            violating.push(pod);
        } else {
            fine.push(pod);
        }
    }
    (violating, fine)
}

/// True when `pod` passes the profile's PreFilter and Filter on `node` of `snapshot`.
fn fits(pod: &PodInfo, snapshot: &Snapshot, profile: &Profile, node: &str) -> bool {
    let Ok(pre) = run_pre_filters(profile, pod, snapshot) else {
        return false;
    };
    if pre.nodes.as_ref().is_some_and(|names| !names.contains(node)) {
        return false;
    }
    snapshot
        .node(node)
        .is_some_and(|n| run_filters(profile, &pre, pod, n).is_ok())
}

/// The fewest, least important pods to evict from `node` so `pod` fits (upstream's
/// `SelectVictimsOnNode`): every lower-priority pod is removed, then as many as possible are
/// reprieved, most important first, those protected by a PodDisruptionBudget before the
/// others. `None` when even removing them all does not help. `sim` is returned as it was.
pub fn select_victims_on_node(
    pod: &PodInfo,
    sim: &mut Snapshot,
    profile: &Profile,
    node: &str,
    pdbs: &[&Pdb],
) -> Option<Victims> {
    let mut potential: Vec<Arc<PodInfo>> = sim
        .node(node)?
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return None;
    }
    for p in &potential {
        sim.forget(&p.namespace, &p.name);
    }
    let restore = |sim: &mut Snapshot, pods: &[Arc<PodInfo>]| {
        for p in pods {
            let _ = sim.assume(p.clone(), node);
        }
    };
    if !fits(pod, sim, profile, node) {
        restore(sim, &potential);
        return None;
    }
    potential.sort_by(|a, b| more_important(a, b));
    let (violating, fine) = split_by_pdb(potential, pdbs);
    let mut victims = Victims::default();
    for (pods, is_violating) in [(violating, true), (fine, false)] {
        for p in pods {
            let _ = sim.assume(p.clone(), node);
            if !fits(pod, sim, profile, node) {
                sim.forget(&p.namespace, &p.name);
                victims.pods.push(p);
                if is_violating {
                    victims.num_pdb_violations += 1;
                }
            }
        }
    }
    restore(sim, &victims.pods);
    victims.pods.sort_by(|a, b| more_important(a, b));
    Some(victims)
}

/// The earliest start among the highest-priority victims (upstream's
/// `GetEarliestPodStartTime`).
fn earliest_start_of_most_important(v: &Victims) -> Option<Timestamp> {
    let top = v.pods.iter().map(|p| p.priority).max()?;
    v.pods
        .iter()
        .filter(|p| p.priority == top)
        .filter_map(|p| start_time(p))
        .min()
}

/// Picks the node to preempt on (upstream's `pickOneNodeForPreemption`): one needing no
/// victims at once; else the fewest PDB violations, then the lowest highest victim priority,
/// then the lowest sum of priorities, then the fewest victims, then the latest start of the
/// most important victims; ties go to the first.
pub fn pick_node(candidates: Vec<Plan>) -> Option<Plan> {
    if let Some(free) = candidates.iter().position(|c| c.victims.pods.is_empty()) {
        return candidates.into_iter().nth(free);
    }
    let key = |c: &Plan| {
        let v = &c.victims;
        let highest = v.pods.first().map_or(i64::MIN, |p| i64::from(p.priority));
        let sum: i64 = v
            .pods
            .iter()
            .map(|p| i64::from(p.priority) + i64::from(i32::MAX) + 1)
            .sum();
        (v.num_pdb_violations, highest, sum, v.pods.len())
    };
    let best = candidates.iter().map(key).min()?;
    let mut tied: Vec<Plan> = candidates.into_iter().filter(|c| key(c) == best).collect();
    if tied.len() > 1 {
        let latest = tied
            .iter()
            .map(|c| earliest_start_of_most_important(&c.victims))
            .max()
            .flatten();
        if let Some(i) = tied
            .iter()
            .position(|c| earliest_start_of_most_important(&c.victims) == latest)
        {
            return Some(tied.swap_remove(i));
        }
    }
    tied.into_iter().next()
}

/// How many candidates to weigh among `num_nodes` (upstream's `calculateNumCandidates`).
pub fn num_candidates(num_nodes: usize) -> usize {
    (num_nodes * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
        .max(MIN_CANDIDATE_NODES_ABSOLUTE)
        .min(num_nodes)
}

/// Chooses where to preempt for `pod` among the nodes [`evaluate`] found (`candidates`), and
/// whom: `None` when no node works out.
pub fn plan(
    pod: &PodInfo,
    snapshot: &Snapshot,
    profile: &Profile,
    candidates: &[String],
    pdbs: &[&Pdb],
) -> Option<Plan> {
    if candidates.is_empty() {
        return None;
    }
    let mut sim = snapshot.clone();
    let plans: Vec<Plan> = candidates
        .iter()
        .take(num_candidates(snapshot.len()))
        .filter_map(|node| {
            select_victims_on_node(pod, &mut sim, profile, node, pdbs).map(|victims| Plan {
                node: node.clone(),
                victims,
            })
        })
        .collect();
    pick_node(plans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node_obj, pod};
    use serde_json::{Value, json};

    fn sized(name: &str, cpu: &str) -> k8s_openapi::api::core::v1::Node {
        node_obj(name, json!({"status": {"allocatable": {"cpu": cpu}}}))
    }

    fn running(
        name: &str,
        node: &str,
        cpu: &str,
        priority: i32,
        extra: Value,
    ) -> k8s_openapi::api::core::v1::Pod {
        let mut v = json!({
            "metadata": {"labels": {"app": name}},
            "spec": {"nodeName": node, "priority": priority,
                     "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"startTime": "2026-01-01T00:00:00Z"}
        });
        crate::snapshot::tests::merge(&mut v, extra);
        crate::plugins::testing::pod_obj(name, v)
    }

    fn wanting(cpu: &str, priority: i32) -> PodInfo {
        pod(
            "preemptor",
            json!({"spec": {"priority": priority, "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]}}),
        )
    }

    fn names(v: &Victims) -> Vec<&str> {
        v.pods.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn as_many_pods_as_possible_are_reprieved() {
        // 4 CPUs full with 1 + 2 + 1; the preemptor wants 2. Reprieving most important first:
        // "high" fits back (3 of 4 used with the preemptor), "mid" does not (5), "low" does (4).
        let mut s = Snapshot::new(
            [sized("n", "4")],
            [
                running("high", "n", "1", 50, json!({})),
                running("mid", "n", "2", 40, json!({})),
                running("low", "n", "1", 10, json!({})),
            ],
            [],
        );
        let p = Profile::default_profile();
        let v = select_victims_on_node(&wanting("2", 100), &mut s, &p, "n", &[]).unwrap();
        assert_eq!(names(&v), ["mid"]);
        assert_eq!(s.node("n").unwrap().pods.len(), 3, "the snapshot is restored");
        // Equal or higher priority pods are never victims.
        let v = select_victims_on_node(&wanting("2", 41), &mut s, &p, "n", &[]).unwrap();
        assert_eq!(names(&v), ["mid"]);
        // "low" alone (below 40) does not free enough.
        assert!(select_victims_on_node(&wanting("2", 40), &mut s, &p, "n", &[]).is_none());
        // Too big even for an empty node.
        assert!(select_victims_on_node(&wanting("5", 100), &mut s, &p, "n", &[]).is_none());
    }

    #[test]
    fn pdb_protected_pods_are_reprieved_first_and_violations_counted() {
        let mut s = Snapshot::new(
            [sized("n", "2")],
            [
                running(
                    "a",
                    "n",
                    "1",
                    10,
                    json!({"status": {"startTime": "2025-01-01T00:00:00Z"}}),
                ),
                running("b", "n", "1", 10, json!({})),
            ],
            [],
        );
        let pdb = Pdb {
            namespace: "default".into(),
            name: "protect-b".into(),
            selector: Selector::from_label_selector(Some(
                &serde_json::from_value(json!({"matchLabels": {"app": "b"}})).unwrap(),
            )),
            disruptions_allowed: 0,
            disrupted_pods: BTreeSet::new(),
        };
        let p = Profile::default_profile();
        // Unprotected, the older "a" is more important: reprieved, "b" goes.
        let v = select_victims_on_node(&wanting("1", 100), &mut s, &p, "n", &[]).unwrap();
        assert_eq!(names(&v), ["b"]);
        // With "b" protected, it is reprieved first and "a" goes.
        let v = select_victims_on_node(&wanting("1", 100), &mut s, &p, "n", &[&pdb]).unwrap();
        assert_eq!((names(&v), v.num_pdb_violations), (vec!["a"], 0));
        // When both must go, the violation is counted.
        let v = select_victims_on_node(&wanting("2", 100), &mut s, &p, "n", &[&pdb]).unwrap();
        assert_eq!(v.num_pdb_violations, 1);
        assert_eq!(v.pods.len(), 2);
    }

    #[test]
    fn split_by_pdb_spends_budgets_in_order() {
        let pods: Vec<Arc<PodInfo>> = ["x1", "x2", "x3"]
            .iter()
            .map(|n| Arc::new(pod(n, json!({"metadata": {"labels": {"app": "x"}}}))))
            .collect();
        let mut pdb = Pdb {
            namespace: "default".into(),
            name: "x".into(),
            selector: Selector::from_label_selector(Some(
                &serde_json::from_value(json!({"matchLabels": {"app": "x"}})).unwrap(),
            )),
            disruptions_allowed: 1,
            disrupted_pods: BTreeSet::new(),
        };
        let (bad, ok) = split_by_pdb(pods.clone(), &[&pdb]);
        assert_eq!((bad.len(), ok.len()), (2, 1));
        assert_eq!(ok[0].name, "x1");
        // Pods already disrupted do not spend the budget again.
        pdb.disrupted_pods.insert("x1".into());
        let (bad, ok) = split_by_pdb(pods, &[&pdb]);
        assert_eq!((bad.len(), ok.len()), (1, 2));
    }

    fn plan_with(node: &str, pods: &[(&str, i32, &str)], violations: usize) -> Plan {
        Plan {
            node: node.into(),
            victims: Victims {
                pods: pods
                    .iter()
                    .map(|(n, prio, start)| {
                        Arc::new(pod(
                            n,
                            json!({"spec": {"priority": prio}, "status": {"startTime": start}}),
                        ))
                    })
                    .collect(),
                num_pdb_violations: violations,
            },
        }
    }

    #[test]
    fn node_choice_as_upstream() {
        const T1: &str = "2026-01-01T00:00:00Z";
        const T2: &str = "2026-01-02T00:00:00Z";
        let pick = |c: Vec<Plan>| pick_node(c).unwrap().node;
        // Fewest PDB violations beats everything else.
        assert_eq!(
            pick(vec![
                plan_with("a", &[("p", 1, T1)], 1),
                plan_with("b", &[("p", 5, T1), ("q", 5, T1)], 0)
            ]),
            "b"
        );
        // Then the lowest highest priority.
        assert_eq!(
            pick(vec![
                plan_with("a", &[("p", 5, T1)], 0),
                plan_with("b", &[("p", 1, T1), ("q", 1, T1)], 0)
            ]),
            "b"
        );
        // Then the lowest sum of priorities (negative priorities count too).
        assert_eq!(
            pick(vec![
                plan_with("a", &[("p", 5, T1), ("q", 1, T1)], 0),
                plan_with("b", &[("p", 5, T1), ("q", -3, T1)], 0)
            ]),
            "b"
        );
        // Then the fewest victims.
        assert_eq!(
            pick(vec![
                plan_with("a", &[("p", 5, T1), ("q", 0, T1)], 0),
                plan_with("b", &[("p", 5, T1)], 0)
            ]),
            "b"
        );
        // Then the latest start of the most important victims.
        assert_eq!(
            pick(vec![
                plan_with("a", &[("p", 5, T1)], 0),
                plan_with("b", &[("p", 5, T2)], 0)
            ]),
            "b"
        );
        // A node needing no victims wins outright; ties go to the first.
        assert_eq!(
            pick(vec![plan_with("a", &[("p", 0, T1)], 0), plan_with("b", &[], 3)]),
            "b"
        );
        assert_eq!(
            pick(vec![
                plan_with("a", &[("p", 5, T1)], 0),
                plan_with("b", &[("p", 5, T1)], 0)
            ]),
            "a"
        );
    }

    #[test]
    fn plan_picks_the_cheapest_node() {
        let s = Snapshot::new(
            [sized("a", "2"), sized("b", "2")],
            [
                running("a-mid", "a", "2", 50, json!({})),
                running("b-low", "b", "2", 5, json!({})),
            ],
            [],
        );
        let p = Profile::default_profile();
        let pre = wanting("2", 100);
        let Err(crate::ScheduleError::Fit(err)) =
            crate::schedule_one(&pre, &s, &p, &mut crate::SchedulingState::seeded(1))
        else {
            panic!("fits without preemption");
        };
        assert_eq!(err.preemption_candidates, ["a", "b"]);
        let plan = plan(&pre, &s, &p, &err.preemption_candidates, &[]).unwrap();
        assert_eq!((plan.node.as_str(), names(&plan.victims)), ("b", vec!["b-low"]));
        assert_eq!(num_candidates(5000), 500);
        assert_eq!(num_candidates(50), 50);
    }
}
