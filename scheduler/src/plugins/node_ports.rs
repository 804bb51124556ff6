//! NodePorts: a pod's host ports must be free on the node (same protocol and port conflict
//! when the IPs are equal or either is `0.0.0.0`).

use crate::framework::{CycleState, FilterPlugin, PreFilterResult, Status};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// The plugin's name.
pub const NAME: &str = "NodePorts";
/// Upstream's reason.
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// The NodePorts plugin.
#[derive(Debug, Default)]
pub struct NodePorts;

impl FilterPlugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        _snapshot: &Snapshot,
        _state: &mut CycleState,
    ) -> Result<PreFilterResult, Status> {
        Ok(if pod.host_ports.is_empty() {
            PreFilterResult::Skip
        } else {
            PreFilterResult::AllNodes
        })
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, _state: &CycleState) -> Result<(), Status> {
        let conflict = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if conflict {
            Err(Status::unschedulable(NAME, REASON))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod, run_filter};
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn with_ports(name: &str, ports: Value) -> PodInfo {
        pod(
            name,
            json!({"spec": {"containers": [{"name": "c", "image": "nginx", "ports": ports}]}}),
        )
    }

    fn port(ip: &str, proto: &str, host_port: i32) -> Value {
        json!({"containerPort": 80, "hostIP": ip, "protocol": proto, "hostPort": host_port})
    }

    #[test]
    fn conflicts_as_upstream() {
        // (existing, wanted, fits) from upstream's NodePorts table.
        let cases = [
            (
                port("127.0.0.1", "UDP", 8080),
                port("127.0.0.1", "UDP", 8080),
                false,
            ),
            (
                port("127.0.0.1", "TCP", 8080),
                port("127.0.0.1", "UDP", 8080),
                true,
            ),
            (
                port("127.0.0.1", "TCP", 8080),
                port("127.0.0.2", "TCP", 8080),
                true,
            ),
            (
                port("127.0.0.1", "TCP", 8080),
                port("127.0.0.1", "TCP", 8081),
                true,
            ),
            (
                port("0.0.0.0", "TCP", 8001),
                port("127.0.0.1", "TCP", 8001),
                false,
            ),
            (
                port("127.0.0.1", "TCP", 8001),
                port("0.0.0.0", "TCP", 8001),
                false,
            ),
            (port("", "", 8001), port("10.0.0.1", "TCP", 8001), false),
            (port("0.0.0.0", "UDP", 8001), port("127.0.0.1", "TCP", 8001), true),
        ];
        for (i, (existing, wanted, fits)) in cases.into_iter().enumerate() {
            let mut n = node("n", json!({}));
            n.add_pod(Arc::new(with_ports("old", json!([existing]))));
            let got = run_filter(&NodePorts, &with_ports("new", json!([wanted])), &n);
            assert_eq!(got.is_ok(), fits, "case {i}");
            if !fits {
                assert_eq!(got, Err(Status::unschedulable(NAME, REASON)));
            }
        }
    }

    #[test]
    fn container_ports_without_host_port_are_free() {
        let mut n = node("n", json!({}));
        n.add_pod(Arc::new(with_ports("old", json!([{"containerPort": 80}]))));
        assert_eq!(
            run_filter(&NodePorts, &with_ports("new", json!([{"containerPort": 80}])), &n),
            Ok(())
        );
    }
}
