//! The taints the node lifecycle controller manages: NoSchedule taints mirroring conditions and
//! `spec.unschedulable` (upstream's TaintNodeByCondition) and the NoExecute `not-ready` /
//! `unreachable` taints that drive taint-based eviction, swapped as the Ready status changes.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::health::condition;

/// Ready is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Ready is Unknown (the kubelet is silent).
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// `spec.unschedulable` is set.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// MemoryPressure is True.
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// DiskPressure is True.
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// NetworkUnavailable is True.
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
/// PIDPressure is True.
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// Set by an administrator on a node that is out of service.
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// Condition type, status, taint key of the NoSchedule condition taints.
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    ("MemoryPressure", "True", MEMORY_PRESSURE),
    ("DiskPressure", "True", DISK_PRESSURE),
    ("NetworkUnavailable", "True", NETWORK_UNAVAILABLE),
    ("PIDPressure", "True", PID_PRESSURE),
];

fn taint(key: &str, effect: &str, added: Option<Timestamp>) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        time_added: added.map(Time),
        value: None,
    }
}

fn managed_no_schedule(t: &Taint) -> bool {
    t.effect == "NoSchedule"
        && (t.key == UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == t.key))
}

/// The NoSchedule taint keys `node`'s conditions and `spec.unschedulable` call for.
pub fn wanted_no_schedule(node: &Node) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = CONDITION_TAINTS
        .iter()
        .filter(|(kind, status, _)| condition(node, kind).is_some_and(|c| c.status == *status))
        .map(|(_, _, key)| *key)
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        keys.push(UNSCHEDULABLE);
    }
    keys
}

/// `taints` with the managed NoSchedule taints made to match `wanted`; `None` when they match.
pub fn with_no_schedule(taints: &[Taint], wanted: &[&str]) -> Option<Vec<Taint>> {
    let mut out: Vec<Taint> = taints
        .iter()
        .filter(|t| !managed_no_schedule(t) || wanted.contains(&t.key.as_str()))
        .cloned()
        .collect();
    for key in wanted {
        if !out.iter().any(|t| t.key == *key && t.effect == "NoSchedule") {
            out.push(taint(key, "NoSchedule", None));
        }
    }
    (out != taints).then_some(out)
}

/// The NoExecute taint Ready's status calls for: `not-ready` when False, `unreachable` when
/// Unknown or absent, none when True.
pub fn wanted_no_execute(ready: Option<&str>) -> Option<&'static str> {
    match ready {
        Some("True") => None,
        Some("False") => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    }
}

fn is_eviction_taint(t: &Taint) -> bool {
    t.effect == "NoExecute" && (t.key == NOT_READY || t.key == UNREACHABLE)
}

/// The eviction taint `taints` carry now.
pub fn current_no_execute(taints: &[Taint]) -> Option<&str> {
    taints
        .iter()
        .find(|t| is_eviction_taint(t))
        .map(|t| t.key.as_str())
}

/// `taints` with the eviction taint set to `wanted` (the other one removed, `wanted` added with
/// `now` as its time unless present); `None` when nothing changes.
pub fn with_no_execute(taints: &[Taint], wanted: Option<&str>, now: Timestamp) -> Option<Vec<Taint>> {
    let mut out: Vec<Taint> = taints
        .iter()
        .filter(|t| !is_eviction_taint(t) || Some(t.key.as_str()) == wanted)
        .cloned()
        .collect();
    if let Some(key) = wanted
        && !out.iter().any(|t| t.key == key && t.effect == "NoExecute")
    {
        out.push(taint(key, "NoExecute", Some(now)));
    }
    (out != taints).then_some(out)
}

/// The node's taints.
pub fn taints_of(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    use super::*;

    fn node(conditions: &[(&str, &str)], unschedulable: bool) -> Node {
        Node {
            spec: Some(NodeSpec {
                unschedulable: unschedulable.then_some(true),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| NodeCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            ..NodeCondition::default()
                        })
                        .collect(),
                ),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    #[test]
    fn no_schedule_taints_follow_conditions_and_unschedulable() {
        let n = node(
            &[
                ("Ready", "Unknown"),
                ("DiskPressure", "True"),
                ("PIDPressure", "False"),
            ],
            true,
        );
        assert_eq!(
            wanted_no_schedule(&n),
            [UNREACHABLE, DISK_PRESSURE, UNSCHEDULABLE]
        );
        let user = taint("example.com/dedicated", "NoSchedule", None);
        let stale = taint(MEMORY_PRESSURE, "NoSchedule", None);
        let out = with_no_schedule(&[user.clone(), stale], &wanted_no_schedule(&n)).unwrap();
        let keys: Vec<&str> = out.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(
            keys,
            ["example.com/dedicated", UNREACHABLE, DISK_PRESSURE, UNSCHEDULABLE]
        );
        assert!(with_no_schedule(&out, &wanted_no_schedule(&n)).is_none());
        let healthy = node(&[("Ready", "True")], false);
        assert_eq!(
            with_no_schedule(&out, &wanted_no_schedule(&healthy)).unwrap(),
            [user]
        );
    }

    #[test]
    fn eviction_taints_swap_with_ready_and_go_when_ready() {
        let t0 = Timestamp::from_second(1000).unwrap();
        let t1 = Timestamp::from_second(2000).unwrap();
        let unreachable = with_no_execute(&[], wanted_no_execute(Some("Unknown")), t0).unwrap();
        assert_eq!(current_no_execute(&unreachable), Some(UNREACHABLE));
        assert_eq!(unreachable[0].time_added, Some(Time(t0)));
        assert!(with_no_execute(&unreachable, Some(UNREACHABLE), t1).is_none());
        let not_ready = with_no_execute(&unreachable, wanted_no_execute(Some("False")), t1).unwrap();
        assert_eq!(not_ready.len(), 1);
        assert_eq!(current_no_execute(&not_ready), Some(NOT_READY));
        // A NoSchedule taint of the same key is not an eviction taint.
        let mixed = [taint(NOT_READY, "NoSchedule", None), not_ready[0].clone()];
        assert_eq!(
            with_no_execute(&mixed, wanted_no_execute(Some("True")), t1).unwrap(),
            [taint(NOT_READY, "NoSchedule", None)]
        );
    }
}
