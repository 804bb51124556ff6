//! The node's status as the kubelet reports it: conditions in upstream's words, capacity,
//! allocatable, addresses, system info and the kubelet's endpoint. Heartbeat times move with
//! every report; a condition's transition time only when its status changes.

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::NodeTemplate;

/// The conditions of a healthy node: (type, status, reason, message), as upstream's kubelet
/// sets them.
pub const HEALTHY: [(&str, &str, &str, &str); 4] = [
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        "DiskPressure",
        "False",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        "PIDPressure",
        "False",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
];

/// The conditions to report at `now`, given the node's current ones: heartbeats at `now`,
/// transition times kept where the status is unchanged.
pub fn conditions(current: &[NodeCondition], now: &Time) -> Vec<NodeCondition> {
    HEALTHY
        .iter()
        .map(|(kind, status, reason, message)| {
            let previous = current.iter().find(|c| c.type_ == *kind);
            let transition = match previous {
                Some(p) if p.status == *status && p.last_transition_time.is_some() => {
                    p.last_transition_time.clone()
                }
                _ => Some(now.clone()),
            };
            NodeCondition {
                type_: (*kind).into(),
                status: (*status).into(),
                reason: Some((*reason).into()),
                message: Some((*message).into()),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: transition,
            }
        })
        .collect()
}

/// Whether the node's current conditions differ from what a healthy kubelet reports (someone
/// else, e.g. the node lifecycle controller, changed them, or they are missing).
pub fn needs_report(current: &[NodeCondition]) -> bool {
    HEALTHY.iter().any(|(kind, status, reason, _)| {
        !current
            .iter()
            .any(|c| c.type_ == *kind && c.status == *status && c.reason.as_deref() == Some(*reason))
    })
}

/// The whole status to report.
pub fn status(
    template: &NodeTemplate,
    addresses: Vec<NodeAddress>,
    system: NodeSystemInfo,
    conditions: Vec<NodeCondition>,
) -> NodeStatus {
    NodeStatus {
        addresses: Some(addresses),
        allocatable: Some(template.allocatable.clone()),
        capacity: Some(template.capacity.clone()),
        conditions: Some(conditions),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: template.kubelet_port,
            }),
        }),
        node_info: Some(system),
        ..NodeStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(1_700_000_000 + s).unwrap())
    }

    #[test]
    fn heartbeats_move_and_transitions_stay() {
        let first = conditions(&[], &at(0));
        assert_eq!(first.len(), 4);
        let ready = first.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
        assert!(!needs_report(&first));
        let second = conditions(&first, &at(300));
        for c in &second {
            assert_eq!(c.last_heartbeat_time, Some(at(300)));
            assert_eq!(c.last_transition_time, Some(at(0)), "{}", c.type_);
        }
    }

    #[test]
    fn a_node_marked_unknown_transitions_back() {
        let mut current = conditions(&[], &at(0));
        let ready = current.iter_mut().find(|c| c.type_ == "Ready").unwrap();
        ready.status = "Unknown".into();
        ready.reason = Some("NodeStatusUnknown".into());
        assert!(needs_report(&current));
        let next = conditions(&current, &at(60));
        let ready = next.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.last_transition_time.clone()),
            ("True", Some(at(60)))
        );
        let memory = next.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(memory.last_transition_time, Some(at(0)));
    }
}
