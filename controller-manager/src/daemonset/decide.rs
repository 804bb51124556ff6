//! The DaemonSet controller's decisions, pure functions of the nodes' eligibility and the
//! daemon pods on each node: what the manage loop creates and deletes (upstream's
//! `podsShouldBeOnNode`), what a RollingUpdate replaces within `maxUnavailable` or creates
//! within `maxSurge` (upstream's `rollingUpdate`), and the status counts.

use k8s_openapi::jiff::Timestamp;

use super::eligibility::Eligibility;

/// One daemon pod as the decisions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonPod {
    /// Its name.
    pub name: String,
    /// Bound (`spec.nodeName` set).
    pub scheduled: bool,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// At the current revision.
    pub updated: bool,
    /// `Ready=True`.
    pub ready: bool,
    /// Ready for `minReadySeconds`.
    pub available: bool,
    /// Being deleted.
    pub terminating: bool,
    /// Phase `Failed`.
    pub failed: bool,
    /// Phase `Succeeded`.
    pub succeeded: bool,
}

/// Scheduled pods first, then oldest first, then by name (upstream's
/// `podByCreationTimestampAndPhase`).
pub fn sort_pods(pods: &mut [&DaemonPod]) {
    pods.sort_by(|a, b| {
        b.scheduled
            .cmp(&a.scheduled)
            .then_with(|| a.created.cmp(&b.created))
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// What the manage loop does on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeDecision {
    /// Create a daemon pod there.
    pub create: bool,
    /// Delete these pods.
    pub delete: Vec<String>,
    /// Of those, the failed ones (a warning event each; backed off by the caller).
    pub failed: Vec<String>,
}

/// Upstream's `podsShouldBeOnNode` for one node: a pod where one should run and none is;
/// failed and succeeded pods deleted; surplus pods deleted (the oldest kept, or with surge an
/// old and a new one while the new one becomes available); every pod deleted where none may
/// continue running.
pub fn manage_node(e: Eligibility, pods: &[DaemonPod], surge: bool) -> NodeDecision {
    let mut d = NodeDecision::default();
    if e.should_run && pods.is_empty() {
        d.create = true;
        return d;
    }
    if !e.should_continue_running {
        d.delete = pods
            .iter()
            .filter(|p| !p.terminating)
            .map(|p| p.name.clone())
            .collect();
        return d;
    }
    let mut running: Vec<&DaemonPod> = Vec::new();
    for p in pods.iter().filter(|p| !p.terminating) {
        if p.failed {
            d.failed.push(p.name.clone());
            d.delete.push(p.name.clone());
        } else if p.succeeded {
            d.delete.push(p.name.clone());
        } else {
            running.push(p);
        }
    }
    if running.len() <= 1 {
        return d;
    }
    sort_pods(&mut running);
    if !surge {
        d.delete.extend(running[1..].iter().map(|p| p.name.clone()));
        return d;
    }
    let (mut oldest_new, mut oldest_old) = (None, None);
    for p in running {
        let slot = if p.updated {
            &mut oldest_new
        } else {
            &mut oldest_old
        };
        if slot.is_none() {
            *slot = Some(p);
        } else {
            d.delete.push(p.name.clone());
        }
    }
    if let (Some(new), Some(old)) = (oldest_new, oldest_old)
        && (!old.ready || new.available)
    {
        d.delete.push(old.name.clone());
    }
    d
}

/// The (new, old) pods of a node, `None` when it has more than one of either (the manage
/// loop prunes it first). Pods being deleted are left out.
fn updated_and_old(pods: &[DaemonPod]) -> Option<(Option<&DaemonPod>, Option<&DaemonPod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods.iter().filter(|p| !p.terminating) {
        let slot = if p.updated { &mut new } else { &mut old };
        if slot.is_some() {
            return None;
        }
        *slot = Some(p);
    }
    Some((new, old))
}

/// One node as the rolling update sees it.
#[derive(Debug, Clone)]
pub struct NodePods {
    /// The node's name.
    pub node: String,
    /// A daemon pod should run there.
    pub should_run: bool,
    /// The daemon pods on it.
    pub pods: Vec<DaemonPod>,
}

/// What a rolling update step does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateStep {
    /// Old pods to delete.
    pub delete: Vec<String>,
    /// Nodes to create a new pod on next to the old one (surge).
    pub create_on: Vec<String>,
}

/// Upstream's `rollingUpdate`: without surge, delete old pods (the unavailable ones at once,
/// available ones while fewer than `max_unavailable` are unavailable) and let the manage loop
/// recreate them; with surge, create a new pod next to an old one (at once where the old one
/// is unavailable, else up to `max_surge` at a time) and delete the old pod once the new one
/// is available. `nodes` should be in a stable order.
pub fn rolling_update(nodes: &[NodePods], max_surge: i32, max_unavailable: i32, desired: i32) -> UpdateStep {
    let mut step = UpdateStep::default();
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut candidates = Vec::new();
        for n in nodes {
            let Some((new, old)) = updated_and_old(&n.pods) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !new.available {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !old.available {
                        step.delete.push(old.name.clone());
                        unavailable += 1;
                    } else if unavailable < max_unavailable {
                        candidates.push(old.name.clone());
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
        step.delete.extend(candidates.into_iter().take(room));
        return step;
    }
    let mut surging = 0;
    let mut available = 0;
    let mut candidates = Vec::new();
    let mut not_wanted = Vec::new();
    for n in nodes {
        let Some((new, old)) = updated_and_old(&n.pods) else {
            surging += 1;
            continue;
        };
        match (old, new) {
            (Some(old), _) if old.available => available += 1,
            (None, Some(new)) if new.available => available += 1,
            _ => {}
        }
        match (old, new) {
            (None, _) => {}
            (Some(old), None) => {
                if !old.available {
                    if n.should_run {
                        step.create_on.push(n.node.clone());
                    } else {
                        step.delete.push(old.name.clone());
                    }
                } else if !n.should_run {
                    not_wanted.push(old.name.clone());
                } else if surging < max_surge {
                    candidates.push(n.node.clone());
                }
            }
            (Some(old), Some(new)) => {
                if new.available {
                    step.delete.push(old.name.clone());
                } else {
                    surging += 1;
                }
            }
        }
    }
    let deletable = (available - desired).clamp(0, not_wanted.len() as i32) as usize;
    step.delete.extend(not_wanted.into_iter().take(deletable));
    let room = (max_surge - surging).clamp(0, candidates.len() as i32) as usize;
    step.create_on.extend(candidates.into_iter().take(room));
    step
}

/// The status counts (upstream's `updateDaemonSetStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Nodes that should run a pod.
    pub desired: i32,
    /// Of those, nodes with a pod.
    pub current: i32,
    /// Nodes with a pod that should not have one.
    pub misscheduled: i32,
    /// Nodes whose oldest pod is ready.
    pub ready: i32,
    /// Nodes whose oldest pod is at the current revision.
    pub updated: i32,
    /// Nodes whose oldest pod is available.
    pub available: i32,
}

impl Counts {
    /// Desired nodes without an available pod.
    pub fn unavailable(&self) -> i32 {
        self.desired - self.available
    }
}

/// Counts the nodes: `(should_run, pods on the node)`.
pub fn counts<'a>(nodes: impl IntoIterator<Item = (bool, &'a [DaemonPod])>) -> Counts {
    let mut c = Counts::default();
    for (should_run, pods) in nodes {
        if !should_run {
            if !pods.is_empty() {
                c.misscheduled += 1;
            }
            continue;
        }
        c.desired += 1;
        let mut sorted: Vec<&DaemonPod> = pods.iter().collect();
        sort_pods(&mut sorted);
        let Some(pod) = sorted.first() else {
            continue;
        };
        c.current += 1;
        if pod.ready {
            c.ready += 1;
            if pod.available {
                c.available += 1;
            }
        }
        if pod.updated {
            c.updated += 1;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, updated: bool, available: bool) -> DaemonPod {
        DaemonPod {
            name: name.into(),
            scheduled: true,
            created: Some(Timestamp::from_second(1_000 + name.len() as i64).unwrap()),
            updated,
            ready: available,
            available,
            terminating: false,
            failed: false,
            succeeded: false,
        }
    }

    const RUN: Eligibility = Eligibility {
        should_run: true,
        should_continue_running: true,
    };

    #[test]
    fn the_manage_loop_keeps_one_pod_per_eligible_node() {
        assert_eq!(
            manage_node(RUN, &[], false),
            NodeDecision {
                create: true,
                ..NodeDecision::default()
            }
        );
        assert_eq!(
            manage_node(RUN, &[pod("a", true, true)], false),
            NodeDecision::default()
        );
        let d = manage_node(RUN, &[pod("bb", true, true), pod("a", true, true)], false);
        assert_eq!(d.delete, ["bb"], "the oldest is kept");
        let gone = Eligibility {
            should_run: false,
            should_continue_running: false,
        };
        assert_eq!(manage_node(gone, &[pod("a", true, true)], false).delete, ["a"]);
        let tainted = Eligibility {
            should_run: false,
            should_continue_running: true,
        };
        assert_eq!(
            manage_node(tainted, &[pod("a", true, true)], false),
            NodeDecision::default()
        );
        assert_eq!(
            manage_node(tainted, &[], false),
            NodeDecision::default(),
            "no new pod on a tainted node"
        );
        let mut failed = pod("a", true, false);
        failed.failed = true;
        let d = manage_node(RUN, &[failed], false);
        assert_eq!(
            (d.delete.clone(), d.failed.clone(), d.create),
            (vec!["a".to_string()], vec!["a".to_string()], false)
        );
    }

    #[test]
    fn with_surge_an_old_pod_goes_once_the_new_one_is_available() {
        let d = manage_node(RUN, &[pod("old", false, true), pod("new1", true, false)], true);
        assert!(d.delete.is_empty(), "both stay while the new one starts");
        let d = manage_node(RUN, &[pod("old", false, true), pod("new1", true, true)], true);
        assert_eq!(d.delete, ["old"]);
        let d = manage_node(RUN, &[pod("old", false, false), pod("new1", true, false)], true);
        assert_eq!(d.delete, ["old"], "an unready old pod goes at once");
    }

    fn node(name: &str, pods: Vec<DaemonPod>) -> NodePods {
        NodePods {
            node: name.into(),
            should_run: true,
            pods,
        }
    }

    #[test]
    fn rolling_update_without_surge_respects_max_unavailable() {
        let nodes = vec![
            node("n1", vec![pod("a", false, true)]),
            node("n2", vec![pod("b", false, true)]),
            node("n3", vec![pod("c", false, true)]),
        ];
        assert_eq!(rolling_update(&nodes, 0, 1, 3).delete, ["a"]);
        assert_eq!(rolling_update(&nodes, 0, 2, 3).delete, ["a", "b"]);
        let nodes = vec![
            node("n1", vec![pod("a", true, false)]),
            node("n2", vec![pod("b", false, true)]),
            node("n3", vec![pod("c", false, false)]),
        ];
        assert_eq!(
            rolling_update(&nodes, 0, 1, 3).delete,
            ["c"],
            "an unavailable old pod is replaced regardless; the available one waits"
        );
        let nodes = vec![node("n1", vec![]), node("n2", vec![pod("b", false, true)])];
        assert!(
            rolling_update(&nodes, 0, 1, 2).delete.is_empty(),
            "a node without a pod counts as unavailable"
        );
    }

    #[test]
    fn rolling_update_with_surge_creates_first_then_deletes() {
        let nodes = vec![
            node("n1", vec![pod("a", false, true)]),
            node("n2", vec![pod("b", false, true)]),
        ];
        let s = rolling_update(&nodes, 1, 0, 2);
        assert_eq!((s.create_on, s.delete), (vec!["n1".to_string()], vec![]));
        let nodes = vec![
            node("n1", vec![pod("a", false, true), pod("a2", true, false)]),
            node("n2", vec![pod("b", false, true)]),
        ];
        let s = rolling_update(&nodes, 1, 0, 2);
        assert!(s.create_on.is_empty() && s.delete.is_empty(), "surge budget used");
        let nodes = vec![
            node("n1", vec![pod("a", false, true), pod("a2", true, true)]),
            node("n2", vec![pod("b", false, false)]),
        ];
        let s = rolling_update(&nodes, 1, 0, 2);
        assert_eq!(
            (s.create_on, s.delete),
            (vec!["n2".to_string()], vec!["a".to_string()])
        );
    }

    #[test]
    fn status_counts_the_oldest_pod_per_node() {
        let n1 = [pod("a", true, true)];
        let n2 = [pod("b", false, false)];
        let n3: Vec<DaemonPod> = vec![];
        let n4 = [pod("d", true, true)];
        let c = counts([
            (true, &n1[..]),
            (true, &n2[..]),
            (true, &n3[..]),
            (false, &n4[..]),
        ]);
        assert_eq!(
            c,
            Counts {
                desired: 3,
                current: 2,
                misscheduled: 1,
                ready: 1,
                updated: 1,
                available: 1
            }
        );
        assert_eq!(c.unavailable(), 2);
    }
}
