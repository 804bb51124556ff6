//! Node health as upstream's `tryUpdateNodeHealth` decides it: when the kubelet was last heard
//! from (its Lease renewals and its Ready condition's heartbeats, timed by when this controller
//! observed them) and which conditions become Unknown once it has been silent too long.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The conditions the kubelet owns that go Unknown when it stops posting status.
pub const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
/// Reason of a condition the kubelet stopped updating.
pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";
/// Message of a condition the kubelet stopped updating.
pub const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";
/// Reason of a condition the kubelet never posted.
pub const REASON_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
/// Message of a condition the kubelet never posted.
pub const MESSAGE_NEVER_UPDATED: &str = "Kubelet never posted node status.";

/// The condition of type `kind`, if the node has it.
pub fn condition<'a>(node: &'a Node, kind: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

/// The Ready condition's status (`True`, `False`, `Unknown`), `None` without one.
pub fn ready_status(node: &Node) -> Option<&str> {
    condition(node, "Ready").map(|c| c.status.as_str())
}

/// What signals the kubelet is alive: the Ready condition's status and heartbeat, the Lease's
/// renew time.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Signals {
    /// Ready's status and last heartbeat.
    pub ready: Option<(String, Option<Timestamp>)>,
    /// The Lease's `spec.renewTime`.
    pub lease_renewed: Option<Timestamp>,
}

impl Signals {
    /// The signals of `node` and its Lease's renew time.
    pub fn of(node: &Node, lease_renewed: Option<Timestamp>) -> Signals {
        Signals {
            ready: condition(node, "Ready")
                .map(|c| (c.status.clone(), c.last_heartbeat_time.as_ref().map(|t| t.0))),
            lease_renewed,
        }
    }
}

/// What the controller remembers of one node between passes.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The signals last seen.
    pub signals: Signals,
    /// When the signals last changed (upstream's probe timestamp).
    pub probe: Instant,
    /// Ready's status at the previous pass (after this controller's own update).
    pub ready: Option<String>,
    /// Marking the node's pods not Ready failed and is retried while the node stays not Ready.
    pub retry_mark_pods: bool,
}

impl Observed {
    /// A node seen for the first time at `now`: it counts as just heard from.
    pub fn new(signals: Signals, now: Instant) -> Observed {
        let ready = signals.ready.as_ref().map(|(s, _)| s.clone());
        Observed {
            signals,
            probe: now,
            ready,
            retry_mark_pods: false,
        }
    }

    /// Records this pass's signals: the probe moves to `now` when the kubelet posted a new
    /// heartbeat or status, or renewed its Lease (a Lease renewal never moves it back).
    pub fn observe(&mut self, signals: Signals, now: Instant) {
        let lease_newer = match (&signals.lease_renewed, &self.signals.lease_renewed) {
            (Some(new), Some(old)) => new > old,
            (Some(_), None) => true,
            _ => false,
        };
        if signals.ready != self.signals.ready || lease_newer {
            self.probe = now;
        }
        self.signals = signals;
    }

    /// True when nothing was heard for `grace` by `now`.
    pub fn silent(&self, now: Instant, grace: Duration) -> bool {
        now.saturating_duration_since(self.probe) >= grace
    }
}

/// The conditions after marking a silent kubelet's conditions Unknown at `now` (upstream keeps
/// the heartbeat and moves the transition time); `None` when nothing changes.
pub fn mark_unknown(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let created = node.metadata.creation_timestamp.clone();
    let mut changed = false;
    for kind in KUBELET_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == kind) {
            None => {
                conditions.push(NodeCondition {
                    type_: kind.into(),
                    status: "Unknown".into(),
                    reason: Some(REASON_NEVER_UPDATED.into()),
                    message: Some(MESSAGE_NEVER_UPDATED.into()),
                    last_heartbeat_time: created.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some(REASON_UNKNOWN.into());
                c.message = Some(MESSAGE_UNKNOWN.into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            Some(_) => {}
        }
    }
    changed.then_some(conditions)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::NodeStatus;

    use super::*;

    fn node(ready: &str, heartbeat: i64) -> Node {
        Node {
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    last_heartbeat_time: Some(Time(Timestamp::from_second(heartbeat).unwrap())),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn lease_renewals_and_heartbeats_keep_a_node_healthy_silence_does_not() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(40);
        let mut seen = Observed::new(Signals::of(&node("True", 100), Some(ts(100))), t0);
        // Lease renewed at 30 s: still healthy at 60 s.
        seen.observe(
            Signals::of(&node("True", 100), Some(ts(130))),
            t0 + Duration::from_secs(30),
        );
        assert!(!seen.silent(t0 + Duration::from_secs(60), grace));
        // Nothing new since: silent at 70 s.
        seen.observe(
            Signals::of(&node("True", 100), Some(ts(130))),
            t0 + Duration::from_secs(65),
        );
        assert!(seen.silent(t0 + Duration::from_secs(70), grace));
        // A heartbeat on the condition counts too.
        seen.observe(
            Signals::of(&node("True", 170), Some(ts(130))),
            t0 + Duration::from_secs(71),
        );
        assert!(!seen.silent(t0 + Duration::from_secs(100), grace));
        // An older lease (a stale cache) does not count.
        seen.observe(
            Signals::of(&node("True", 170), Some(ts(120))),
            t0 + Duration::from_secs(105),
        );
        assert!(seen.silent(t0 + Duration::from_secs(111), grace));
    }

    #[test]
    fn silent_kubelets_conditions_turn_unknown_once() {
        let n = node("True", 100);
        let conditions = mark_unknown(&n, ts(200)).expect("changes");
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some(REASON_UNKNOWN));
        assert_eq!(ready.message.as_deref(), Some(MESSAGE_UNKNOWN));
        assert_eq!(ready.last_heartbeat_time, Some(Time(ts(100))));
        assert_eq!(ready.last_transition_time, Some(Time(ts(200))));
        let memory = conditions.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(memory.reason.as_deref(), Some(REASON_NEVER_UPDATED));
        assert_eq!(conditions.len(), 4);
        let mut again = n;
        again.status.as_mut().unwrap().conditions = Some(conditions);
        assert!(mark_unknown(&again, ts(300)).is_none());
    }
}
