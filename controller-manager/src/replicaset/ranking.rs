//! Which pods a replica set deletes first when it scales down (upstream's
//! `ActivePodsWithRanks`, with `LogarithmicScaleDown` and pod deletion cost): unassigned before
//! assigned; Pending before Unknown before Running; not ready before ready; lower
//! `controller.kubernetes.io/pod-deletion-cost` first; pods sharing their node with more related
//! pods first; ready for less time first (on a log2 scale); more container restarts first;
//! newer first (on a log2 scale); ties by UID.

use std::cmp::Ordering;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::podutil;

/// The annotation that orders deletions among otherwise equal pods.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn phase_ordinal(pod: &Pod) -> u8 {
    match podutil::phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    let Some(status) = &pod.status else { return 0 };
    let sidecars: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let main = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count);
    let init = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| sidecars.contains(&c.name.as_str()))
        .map(|c| c.restart_count);
    main.chain(init).max().unwrap_or(0)
}

/// floor(log2(now - t)) in nanoseconds, -1 when t is not in the past.
fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.duration_since(t).as_nanos();
    if d > 0 { (d as f64).log2() as i64 } else { -1 }
}

/// Orders two optional times: a missing time first, then on the log scale the more recent
/// first; `None` when equal on that scale.
fn recent_first(a: Option<Timestamp>, b: Option<Timestamp>, now: Timestamp) -> Option<Ordering> {
    match (a, b) {
        (None, None) => None,
        (None, Some(_)) => Some(Ordering::Less),
        (Some(_), None) => Some(Ordering::Greater),
        (Some(a), Some(b)) if a == b => None,
        (Some(a), Some(b)) => match log_rank(a, now).cmp(&log_rank(b, now)) {
            Ordering::Equal => None,
            o => Some(o),
        },
    }
}

/// A pod and how many related pods share its node.
#[derive(Debug, Clone)]
pub struct Ranked {
    /// The pod.
    pub pod: Arc<Pod>,
    /// Related active pods on the same node (0 when unscheduled).
    pub colocated: usize,
}

/// `Less` when `a` should be deleted before `b`.
pub fn compare(a: &Ranked, b: &Ranked, now: Timestamp) -> Ordering {
    let (pa, pb) = (&*a.pod, &*b.pod);
    let (na, nb) = (podutil::node_name(pa), podutil::node_name(pb));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let o = phase_ordinal(pa).cmp(&phase_ordinal(pb));
    if o != Ordering::Equal {
        return o;
    }
    let (ra, rb) = (podutil::is_ready(pa), podutil::is_ready(pb));
    if ra != rb {
        return if ra { Ordering::Greater } else { Ordering::Less };
    }
    let o = deletion_cost(pa).cmp(&deletion_cost(pb));
    if o != Ordering::Equal {
        return o;
    }
    let o = b.colocated.cmp(&a.colocated);
    if o != Ordering::Equal {
        return o;
    }
    let uid = || pa.metadata.uid.cmp(&pb.metadata.uid);
    if ra && rb {
        let (ta, tb) = (podutil::ready_since(pa), podutil::ready_since(pb));
        if ta != tb {
            return recent_first(ta, tb, now).unwrap_or_else(uid);
        }
    }
    let o = max_restarts(pb).cmp(&max_restarts(pa));
    if o != Ordering::Equal {
        return o;
    }
    let ca = pa.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let cb = pb.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if ca != cb {
        return recent_first(ca, cb, now).unwrap_or_else(uid);
    }
    Ordering::Equal
}

/// The `n` pods to delete: all when `n` covers them, else the first `n` by [`compare`].
pub fn pods_to_delete(mut pods: Vec<Ranked>, n: usize, now: Timestamp) -> Vec<Arc<Pod>> {
    if n < pods.len() {
        pods.sort_by(|a, b| compare(a, b, now));
    }
    pods.into_iter().take(n).map(|r| r.pod).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::SignedDuration;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn ago(secs: i64) -> Timestamp {
        now() - SignedDuration::from_secs(secs)
    }

    struct P {
        name: &'static str,
        node: &'static str,
        phase: &'static str,
        ready_for: Option<i64>,
        created: i64,
        restarts: i32,
        cost: Option<&'static str>,
    }

    impl Default for P {
        fn default() -> Self {
            P {
                name: "p",
                node: "n1",
                phase: "Running",
                ready_for: Some(100),
                created: 200,
                restarts: 0,
                cost: None,
            }
        }
    }

    fn pod(p: P) -> Ranked {
        let mut pod = Pod::default();
        pod.metadata.name = Some(p.name.into());
        pod.metadata.uid = Some(p.name.into());
        pod.metadata.creation_timestamp = Some(Time(ago(p.created)));
        if let Some(c) = p.cost {
            pod.metadata.annotations = Some([(DELETION_COST.to_string(), c.to_string())].into());
        }
        pod.spec = Some(PodSpec {
            node_name: (!p.node.is_empty()).then(|| p.node.to_string()),
            ..PodSpec::default()
        });
        pod.status = Some(PodStatus {
            phase: Some(p.phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if p.ready_for.is_some() { "True" } else { "False" }.into(),
                last_transition_time: p.ready_for.map(|s| Time(ago(s))),
                ..PodCondition::default()
            }]),
            container_statuses: Some(vec![ContainerStatus {
                name: "c".into(),
                restart_count: p.restarts,
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        });
        Ranked {
            pod: Arc::new(pod),
            colocated: 0,
        }
    }

    fn order(mut pods: Vec<Ranked>) -> Vec<String> {
        pods.sort_by(|a, b| compare(a, b, now()));
        pods.iter()
            .map(|r| r.pod.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn unassigned_then_pending_then_unknown_then_running() {
        let got = order(vec![
            pod(P {
                name: "running",
                ..P::default()
            }),
            pod(P {
                name: "unknown",
                phase: "Unknown",
                ..P::default()
            }),
            pod(P {
                name: "pending",
                phase: "Pending",
                ..P::default()
            }),
            pod(P {
                name: "unassigned",
                node: "",
                ..P::default()
            }),
        ]);
        assert_eq!(got, ["unassigned", "pending", "unknown", "running"]);
    }

    #[test]
    fn not_ready_then_cost_then_doubled_up() {
        let mut doubled = pod(P {
            name: "doubled",
            ..P::default()
        });
        doubled.colocated = 2;
        let got = order(vec![
            pod(P {
                name: "ready",
                ..P::default()
            }),
            pod(P {
                name: "cheap",
                cost: Some("-5"),
                ..P::default()
            }),
            pod(P {
                name: "notready",
                ready_for: None,
                ..P::default()
            }),
            doubled,
        ]);
        assert_eq!(got, ["notready", "cheap", "doubled", "ready"]);
    }

    #[test]
    fn ready_for_less_time_then_more_restarts_then_newer() {
        let got = order(vec![
            pod(P {
                name: "long-ready",
                ready_for: Some(10_000),
                ..P::default()
            }),
            pod(P {
                name: "short-ready",
                ready_for: Some(10),
                ..P::default()
            }),
        ]);
        assert_eq!(got, ["short-ready", "long-ready"]);
        let got = order(vec![
            pod(P {
                name: "calm",
                ..P::default()
            }),
            pod(P {
                name: "crashy",
                restarts: 3,
                ..P::default()
            }),
        ]);
        assert_eq!(got, ["crashy", "calm"]);
        let got = order(vec![
            pod(P {
                name: "old",
                ready_for: None,
                created: 100_000,
                ..P::default()
            }),
            pod(P {
                name: "new",
                ready_for: None,
                created: 10,
                ..P::default()
            }),
        ]);
        assert_eq!(got, ["new", "old"]);
    }

    #[test]
    fn times_within_the_same_power_of_two_tie_by_uid() {
        // 1000 s and 1010 s ago fall in the same log2(ns) bucket.
        let got = order(vec![
            pod(P {
                name: "b",
                ready_for: None,
                created: 1000,
                ..P::default()
            }),
            pod(P {
                name: "a",
                ready_for: None,
                created: 1010,
                ..P::default()
            }),
        ]);
        assert_eq!(got, ["a", "b"]);
    }

    #[test]
    fn only_as_many_as_asked_are_chosen() {
        let pods = vec![
            pod(P {
                name: "x",
                ..P::default()
            }),
            pod(P {
                name: "y",
                node: "",
                ..P::default()
            }),
            pod(P {
                name: "z",
                phase: "Pending",
                ..P::default()
            }),
        ];
        let chosen = pods_to_delete(pods, 2, now());
        let names: Vec<_> = chosen.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["y", "z"]);
    }
}
