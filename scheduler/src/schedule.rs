//! One scheduling cycle (upstream's `schedulePod`): PreFilter, Filter over enough nodes
//! (`percentageOfNodesToScore`), PreScore / Score / NormalizeScore with weights, and a random
//! pick among the best; or a [`FitError`] whose message is upstream's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::framework::{Code, CycleState, MAX_NODE_SCORE, PreFilterResult, PreScore, Status};
use crate::preemption;
use crate::profile::Profile;
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// Fewest nodes searched for feasibility before the percentage applies (upstream's
/// `minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// Lowest adaptive percentage (upstream's `minFeasibleNodesPercentageToFind`).
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;

/// Where a pod goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleResult {
    /// The chosen node.
    pub node: String,
    /// Nodes the filters ran on.
    pub evaluated: usize,
    /// Nodes that passed them.
    pub feasible: usize,
}

/// What the filters said, for the failure message and for preemption.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// Each rejected node's status.
    pub node_to_status: BTreeMap<String, Status>,
    /// The status of nodes missing from `node_to_status` (all nodes when PreFilter rejected
    /// the pod, those a PreFilter result left out otherwise).
    pub absent_status: Option<Status>,
    /// The PreFilter rejection's message.
    pub pre_filter_msg: Option<String>,
    /// The PostFilter (preemption) message.
    pub post_filter_msg: Option<String>,
    /// Plugins that rejected the pod somewhere.
    pub unschedulable_plugins: BTreeSet<&'static str>,
}

impl Diagnosis {
    /// The status of node `name`.
    pub fn status_of(&self, name: &str) -> Option<&Status> {
        self.node_to_status.get(name).or(self.absent_status.as_ref())
    }
}

/// No node fits the pod (upstream's `FitError`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    /// Nodes in the snapshot.
    pub num_all_nodes: usize,
    /// Why.
    pub diagnosis: Diagnosis,
    /// Nodes where preempting lower-priority pods would make room (empty: preemption cannot help).
    pub preemption_candidates: Vec<String>,
}

impl fmt::Display for FitError {
    /// `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {...}.
    /// preemption: ...`: the reasons counted over nodes and sorted as strings, as upstream's
    /// `FitError.Error`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        let d = &self.diagnosis;
        if let Some(msg) = d.pre_filter_msg.as_deref().filter(|m| !m.is_empty()) {
            write!(f, " {msg}.")?;
        } else {
            let histogram = reason_histogram(d, self.num_all_nodes);
            if !histogram.is_empty() {
                write!(f, " {}.", histogram.join(", "))?;
            }
        }
        if let Some(msg) = d.post_filter_msg.as_deref().filter(|m| !m.is_empty()) {
            write!(f, " {msg}.")?;
        }
        Ok(())
    }
}

impl std::error::Error for FitError {}

impl From<FitError> for ScheduleError {
    fn from(e: FitError) -> Self {
        ScheduleError::Fit(Box::new(e))
    }
}

/// `"<count> <reason>"` for each distinct reason, sorted as strings.
fn reason_histogram(d: &Diagnosis, num_all_nodes: usize) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for status in d.node_to_status.values() {
        for r in &status.reasons {
            *counts.entry(r).or_default() += 1;
        }
    }
    if d.node_to_status.len() < num_all_nodes
        && let Some(absent) = &d.absent_status
    {
        for r in &absent.reasons {
            *counts.entry(r).or_default() += num_all_nodes - d.node_to_status.len();
        }
    }
    let mut out: Vec<String> = counts.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
    out.sort();
    out
}

/// Why a pod was not scheduled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cluster has no nodes.
    #[error("no nodes available to schedule pods")]
    NoNodes,
    /// No node fits.
    #[error("{0}")]
    Fit(Box<FitError>),
}

/// What carries over between cycles: where the next node search starts (upstream rotates it so
/// every node gets its turn) and the random source for ties (seedable for tests).
#[derive(Debug)]
pub struct SchedulingState {
    /// Index of the node the next search starts from.
    pub next_start_node_index: usize,
    rng: StdRng,
}

impl SchedulingState {
    /// A state with an entropy-seeded random source.
    pub fn new() -> SchedulingState {
        SchedulingState {
            next_start_node_index: 0,
            rng: StdRng::from_os_rng(),
        }
    }

    /// A state with a fixed seed (deterministic tie-breaking).
    pub fn seeded(seed: u64) -> SchedulingState {
        SchedulingState {
            next_start_node_index: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Default for SchedulingState {
    fn default() -> Self {
        SchedulingState::new()
    }
}

/// How many feasible nodes to find among `num_all_nodes` before scoring (upstream's
/// `numFeasibleNodesToFind`): all below 100 nodes; otherwise the configured percentage, or
/// adaptively `50 - nodes/125` % (at least 5 %), and never fewer than 100.
pub fn num_feasible_nodes_to_find(percentage: Option<i32>, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut pct = i64::from(percentage.unwrap_or(0));
    if pct == 0 {
        pct = (50 - num_all_nodes as i64 / 125).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    if pct >= 100 {
        return num_all_nodes;
    }
    let n = (num_all_nodes as i64 * pct / 100) as usize;
    n.max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// The outcome of the PreFilter plugins.
pub(crate) struct PreFiltered {
    pub state: CycleState,
    /// Per filter plugin: skipped for this pod.
    pub skip: Vec<bool>,
    /// The nodes PreFilter results allow (`None`: all).
    pub nodes: Option<BTreeSet<String>>,
    /// Plugins whose result narrowed the nodes.
    pub narrowing: BTreeSet<&'static str>,
}

/// Runs the profile's PreFilter plugins; the first rejection is returned.
pub(crate) fn run_pre_filters(
    profile: &Profile,
    pod: &PodInfo,
    snapshot: &Snapshot,
) -> Result<PreFiltered, (Status, BTreeSet<&'static str>)> {
    let mut out = PreFiltered {
        state: CycleState::default(),
        skip: Vec::new(),
        nodes: None,
        narrowing: BTreeSet::new(),
    };
    for plugin in &profile.filters {
        match plugin.pre_filter(pod, snapshot, &mut out.state) {
            Ok(PreFilterResult::Skip) => out.skip.push(true),
            Ok(PreFilterResult::AllNodes) => out.skip.push(false),
            Ok(PreFilterResult::Nodes(names)) => {
                out.skip.push(false);
                out.narrowing.insert(plugin.name());
                let merged: BTreeSet<String> = match out.nodes.take() {
                    None => names,
                    Some(prev) => prev.intersection(&names).cloned().collect(),
                };
                if merged.is_empty() {
                    let list: Vec<&str> = out.narrowing.iter().copied().collect();
                    let msg = if list.len() == 1 {
                        format!("node(s) didn't satisfy plugin {}", list[0])
                    } else {
                        format!(
                            "node(s) didn't satisfy plugin(s) [{}] simultaneously",
                            list.join(" ")
                        )
                    };
                    return Err((Status::unresolvable(plugin.name(), msg), out.narrowing));
                }
                out.nodes = Some(merged);
            }
            Err(mut status) => {
                status.plugin = plugin.name();
                let mut plugins = out.narrowing;
                plugins.insert(plugin.name());
                return Err((status, plugins));
            }
        }
    }
    Ok(out)
}

/// Runs the profile's Filter plugins on one node; the first rejection is the node's status.
pub(crate) fn run_filters(
    profile: &Profile,
    pre: &PreFiltered,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Result<(), Status> {
    for (plugin, &skip) in profile.filters.iter().zip(&pre.skip) {
        if !skip {
            plugin.filter(pod, node, &pre.state)?;
        }
    }
    Ok(())
}

/// Picks a node for `pod` in `snapshot` with `profile`'s plugins, or explains why none fits
/// (with preemption's verdict in the message, as upstream's scheduler reports it).
pub fn schedule_one(
    pod: &PodInfo,
    snapshot: &Snapshot,
    profile: &Profile,
    cycle: &mut SchedulingState,
) -> Result<ScheduleResult, ScheduleError> {
    if snapshot.is_empty() {
        return Err(ScheduleError::NoNodes);
    }
    let mut diagnosis = Diagnosis::default();
    let pre = match run_pre_filters(profile, pod, snapshot) {
        Ok(pre) => pre,
        Err((status, plugins)) => {
            diagnosis.pre_filter_msg = Some(status.message());
            diagnosis.absent_status = Some(status);
            diagnosis.unschedulable_plugins = plugins;
            return Err(fit_error(pod, snapshot, profile, diagnosis).into());
        }
    };
    let nodes: Vec<&NodeInfo> = match &pre.nodes {
        None => snapshot.nodes().iter().collect(),
        Some(names) => {
            let list: Vec<&str> = pre.narrowing.iter().copied().collect();
            diagnosis.absent_status = Some(Status::unresolvable(
                list.first().copied().unwrap_or(""),
                format!("node(s) didn't satisfy plugin(s) [{}]", list.join(" ")),
            ));
            diagnosis.unschedulable_plugins.extend(&pre.narrowing);
            snapshot
                .nodes()
                .iter()
                .filter(|n| names.contains(&n.name))
                .collect()
        }
    };
    let feasible = find_feasible(profile, &pre, pod, &nodes, &mut diagnosis, cycle);
    let evaluated = feasible.len() + diagnosis.node_to_status.len();
    if feasible.is_empty() {
        return Err(fit_error(pod, snapshot, profile, diagnosis).into());
    }
    if feasible.len() == 1 {
        return Ok(ScheduleResult {
            node: feasible[0].name.clone(),
            evaluated,
            feasible: 1,
        });
    }
    let totals = prioritize(profile, pod, snapshot, &feasible);
    let best = select_host(&totals, &mut cycle.rng);
    Ok(ScheduleResult {
        node: feasible[best].name.clone(),
        evaluated,
        feasible: feasible.len(),
    })
}

/// Filters nodes from the rotating start index until enough are feasible.
fn find_feasible<'a>(
    profile: &Profile,
    pre: &PreFiltered,
    pod: &PodInfo,
    nodes: &[&'a NodeInfo],
    diagnosis: &mut Diagnosis,
    cycle: &mut SchedulingState,
) -> Vec<&'a NodeInfo> {
    let want = num_feasible_nodes_to_find(profile.percentage_of_nodes_to_score, nodes.len());
    let mut feasible = Vec::new();
    if nodes.is_empty() {
        return feasible;
    }
    let start = cycle.next_start_node_index % nodes.len();
    let mut processed = 0;
    for k in 0..nodes.len() {
        if feasible.len() >= want {
            break;
        }
        let node = nodes[(start + k) % nodes.len()];
        processed += 1;
        match run_filters(profile, pre, pod, node) {
            Ok(()) => feasible.push(node),
            Err(status) => {
                diagnosis.unschedulable_plugins.insert(status.plugin);
                diagnosis.node_to_status.insert(node.name.clone(), status);
            }
        }
    }
    cycle.next_start_node_index = (start + processed) % nodes.len();
    feasible
}

/// Each feasible node's weighted sum of normalised scores (1 each without score plugins).
fn prioritize(profile: &Profile, pod: &PodInfo, snapshot: &Snapshot, feasible: &[&NodeInfo]) -> Vec<i64> {
    let mut totals = vec![0i64; feasible.len()];
    if profile.scores.is_empty() {
        totals.iter_mut().for_each(|t| *t = 1);
        return totals;
    }
    let mut state = CycleState::default();
    for ws in &profile.scores {
        if ws.plugin.pre_score(pod, snapshot, feasible, &mut state) == PreScore::Skip {
            continue;
        }
        let mut scores: Vec<i64> = feasible
            .iter()
            .map(|n| ws.plugin.score(pod, n, snapshot, &state))
            .collect();
        ws.plugin.normalize(feasible, &mut scores, &state);
        for (t, s) in totals.iter_mut().zip(scores) {
            debug_assert!(
                (0..=MAX_NODE_SCORE).contains(&s),
                "{} scored {s}",
                ws.plugin.name()
            );
            *t += s * ws.weight;
        }
    }
    totals
}

/// The index of a highest total, chosen uniformly among ties (reservoir sampling, as upstream).
fn select_host(totals: &[i64], rng: &mut StdRng) -> usize {
    let mut best = 0;
    let mut ties = 1u32;
    for (i, &t) in totals.iter().enumerate().skip(1) {
        if t > totals[best] {
            best = i;
            ties = 1;
        } else if t == totals[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

/// Builds the fit error, asking preemption whether evicting lower-priority pods could help.
fn fit_error(pod: &PodInfo, snapshot: &Snapshot, profile: &Profile, mut diagnosis: Diagnosis) -> FitError {
    let verdict = if profile.preemption {
        preemption::evaluate(pod, snapshot, profile, &diagnosis)
    } else {
        preemption::Verdict::default()
    };
    diagnosis.post_filter_msg = verdict.message;
    FitError {
        num_all_nodes: snapshot.len(),
        diagnosis,
        preemption_candidates: verdict.candidates,
    }
}

/// Counts a status code for preemption.
pub(crate) fn is_unresolvable(status: Option<&Status>) -> bool {
    status.is_some_and(|s| s.code == Code::UnschedulableAndUnresolvable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node_obj, pod, pod_obj};
    use serde_json::{Value, json};

    fn sized(name: &str, cpu: &str, extra: Value) -> k8s_openapi::api::core::v1::Node {
        let mut v = json!({"status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}});
        crate::snapshot::tests::merge(&mut v, extra);
        node_obj(name, v)
    }

    fn control_plane(name: &str) -> k8s_openapi::api::core::v1::Node {
        sized(
            name,
            "4",
            json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
        )
    }

    fn wanting(cpu: &str, extra: Value) -> PodInfo {
        let mut v = json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]}});
        crate::snapshot::tests::merge(&mut v, extra);
        pod("p", v)
    }

    fn run(pod: &PodInfo, snapshot: &Snapshot) -> Result<ScheduleResult, ScheduleError> {
        schedule_one(
            pod,
            snapshot,
            &Profile::default_profile(),
            &mut SchedulingState::seeded(1),
        )
    }

    fn message(r: Result<ScheduleResult, ScheduleError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn failure_message_as_upstream() {
        // More CPU than the worker has at all: preemption cannot help anywhere.
        let s = Snapshot::new(
            [
                sized("worker", "2", json!({})),
                control_plane("cp1"),
                control_plane("cp2"),
            ],
            [],
            [],
        );
        assert_eq!(
            message(run(&wanting("3", json!({})), &s)),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint \
             {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: 3 Preemption is \
             not helpful for scheduling.."
        );
        // Room taken by a pod of the same priority: no victims there.
        let s = Snapshot::new(
            [
                sized("worker", "2", json!({})),
                control_plane("cp1"),
                control_plane("cp2"),
            ],
            [pod_obj(
                "busy",
                json!({"spec": {"nodeName": "worker", "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}}}]}}),
            )],
            [],
        );
        assert_eq!(
            message(run(&wanting("1", json!({})), &s)),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint \
             {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: 1 No preemption \
             victims found for incoming pod, 2 Preemption is not helpful for scheduling.."
        );
        // preemptionPolicy: Never.
        assert_eq!(
            message(run(
                &wanting("1", json!({"spec": {"preemptionPolicy": "Never"}})),
                &s
            )),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint \
             {node-role.kubernetes.io/control-plane: }. preemption: not eligible due to preemptionPolicy=Never.."
        );
    }

    #[test]
    fn reasons_are_counted_and_sorted_as_strings() {
        let mut nodes = vec![sized("a", "1", json!({"spec": {"unschedulable": true}}))];
        for i in 0..10 {
            nodes.push(sized(&format!("small{i}"), "1", json!({})));
        }
        let s = Snapshot::new(nodes, [], []);
        let err = run(&wanting("2", json!({})), &s).unwrap_err();
        // "10 Insufficient cpu" sorts before "1 node(s) ..." as a string, as upstream's sort.Strings.
        assert!(
            err.to_string()
                .starts_with("0/11 nodes are available: 1 node(s) were unschedulable, 10 Insufficient cpu."),
            "{err}"
        );
    }

    #[test]
    fn preemption_candidates_leave_the_message_without_postfilter_part() {
        let s = Snapshot::new(
            [sized("n", "2", json!({}))],
            [pod_obj(
                "low",
                json!({"spec": {"nodeName": "n", "priority": 0, "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}}}]}}),
            )],
            [],
        );
        let ScheduleError::Fit(err) =
            run(&wanting("1", json!({"spec": {"priority": 1000}})), &s).unwrap_err()
        else {
            panic!("expected a fit error")
        };
        assert_eq!(err.preemption_candidates, ["n"]);
        assert_eq!(err.to_string(), "0/1 nodes are available: 1 Insufficient cpu.");
    }

    #[test]
    fn pre_filter_rejections_and_narrowing() {
        let s = Snapshot::new(
            [
                sized("a", "4", json!({})),
                sized("b", "1", json!({})),
                sized("c", "4", json!({})),
            ],
            [],
            [],
        );
        let fields = |values: Value| {
            json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": values}]}
            ]}}}}})
        };
        let mut conflict = fields(json!(["a"]));
        conflict["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            ["matchFields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "metadata.name", "operator": "In", "values": ["b"]}));
        assert_eq!(
            message(run(&wanting("1", conflict), &s)),
            "0/3 nodes are available: pod affinity terms conflict. preemption: 0/3 nodes are available: 3 \
             Preemption is not helpful for scheduling.."
        );
        assert_eq!(
            message(run(&wanting("2", fields(json!(["b"]))), &s)),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
        );
        // Terms are ORed: two terms naming b and c (the API allows one name per requirement).
        let mut two = fields(json!(["b"]));
        two["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            .as_array_mut()
            .unwrap()
            .push(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}));
        let ok = run(&wanting("1", two), &s).unwrap();
        assert_eq!((ok.evaluated, ok.feasible), (2, 2));
        assert_eq!(ok.node, "c", "least allocated prefers the bigger node");
    }

    #[test]
    fn no_nodes() {
        assert_eq!(
            run(&wanting("1", json!({})), &Snapshot::default()),
            Err(ScheduleError::NoNodes)
        );
        assert_eq!(
            ScheduleError::NoNodes.to_string(),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn percentage_of_nodes_to_score_as_upstream() {
        let cases = [
            (None, 10, 10),
            (None, 99, 99),
            (None, 200, 100),
            (None, 1000, 420),
            (None, 5000, 500),
            (None, 6000, 300),
            (Some(50), 1000, 500),
            (Some(1), 1000, 100),
            (Some(100), 1000, 1000),
        ];
        for (pct, nodes, want) in cases {
            assert_eq!(num_feasible_nodes_to_find(pct, nodes), want, "{pct:?} of {nodes}");
        }
    }

    #[test]
    fn search_stops_early_and_rotates() {
        let nodes: Vec<_> = (0..300)
            .map(|i| sized(&format!("n{i:03}"), "4", json!({})))
            .collect();
        let s = Snapshot::new(nodes, [], []);
        let mut cycle = SchedulingState::seeded(7);
        let p = wanting("1", json!({}));
        let profile = Profile::default_profile();
        // 300 nodes: 50 - 300/125 = 48 % → 144 nodes.
        let r = schedule_one(&p, &s, &profile, &mut cycle).unwrap();
        assert_eq!((r.evaluated, r.feasible), (144, 144));
        assert_eq!(cycle.next_start_node_index, 144);
        schedule_one(&p, &s, &profile, &mut cycle).unwrap();
        assert_eq!(cycle.next_start_node_index, 288);
    }

    #[test]
    fn assumed_pods_spread_and_ties_are_random_but_seedable() {
        let mut s = Snapshot::new([sized("a", "4", json!({})), sized("b", "4", json!({}))], [], []);
        let profile = Profile::default_profile();
        let mut cycle = SchedulingState::seeded(3);
        let mut placed = Vec::new();
        for i in 0..4 {
            let p = pod(
                &format!("p{i}"),
                json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}),
            );
            let r = schedule_one(&p, &s, &profile, &mut cycle).unwrap();
            s.assume(p, &r.node).unwrap();
            placed.push(r.node);
        }
        placed.sort();
        assert_eq!(placed, ["a", "a", "b", "b"]);
        // Equal nodes: the seed decides, and different seeds reach both.
        let s = Snapshot::new([sized("a", "4", json!({})), sized("b", "4", json!({}))], [], []);
        let pick = |seed| {
            schedule_one(
                &wanting("1", json!({})),
                &s,
                &profile,
                &mut SchedulingState::seeded(seed),
            )
            .unwrap()
            .node
        };
        assert_eq!(pick(5), pick(5));
        let picks: BTreeSet<String> = (0..32).map(pick).collect();
        assert_eq!(picks.len(), 2);
    }

    #[test]
    fn filters_compose_with_scores() {
        // A tainted big node, a node with a PreferNoSchedule taint and a plain one: the pod
        // tolerating nothing lands on the plain node.
        let s = Snapshot::new(
            [
                sized(
                    "tainted",
                    "64",
                    json!({"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}}),
                ),
                sized(
                    "soft",
                    "4",
                    json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}),
                ),
                sized("plain", "4", json!({})),
            ],
            [],
            [],
        );
        let r = run(&wanting("1", json!({})), &s).unwrap();
        assert_eq!((r.node.as_str(), r.evaluated, r.feasible), ("plain", 3, 2));
    }

    #[test]
    fn replicas_with_anti_affinity_take_one_node_each() {
        let mut s = Snapshot::new(
            [
                sized("a", "4", json!({})),
                sized("b", "4", json!({})),
                sized("c", "4", json!({})),
            ],
            [],
            [],
        );
        let profile = Profile::default_profile();
        let mut cycle = SchedulingState::seeded(11);
        let replica = |i: usize| {
            pod(
                &format!("web-{i}"),
                json!({"metadata": {"labels": {"app": "web"}}, "spec": {"affinity": {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}
                ]}}}}),
            )
        };
        let mut nodes = BTreeSet::new();
        for i in 0..3 {
            let p = replica(i);
            let r = schedule_one(&p, &s, &profile, &mut cycle).unwrap();
            s.assume(p, &r.node).unwrap();
            nodes.insert(r.node);
        }
        assert_eq!(nodes.len(), 3);
        assert_eq!(
            schedule_one(&replica(3), &s, &profile, &mut cycle)
                .unwrap_err()
                .to_string(),
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are \
             available: 3 No preemption victims found for incoming pod.."
        );
    }
}
