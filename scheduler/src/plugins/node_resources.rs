//! NodeResourcesFit (the node has room for the pod's requests; scored LeastAllocated) and
//! NodeResourcesBalancedAllocation (prefers nodes whose CPU and memory use stay even).

use crate::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, PreScore, ScorePlugin, Status};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// NodeResourcesFit's name.
pub const FIT_NAME: &str = "NodeResourcesFit";
/// NodeResourcesBalancedAllocation's name.
pub const BALANCED_NAME: &str = "NodeResourcesBalancedAllocation";

/// A resource the node lacks for the pod (upstream's `InsufficientResource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insufficient {
    /// `Too many pods`, `Insufficient cpu`, `Insufficient example.com/gpu`, ...
    pub reason: String,
    /// True when even an empty node could not hold the request (preemption cannot help).
    pub unresolvable: bool,
}

/// What the node lacks for `pod` (upstream's `fitsRequest`): the pod count, then CPU, memory,
/// ephemeral storage and each scalar resource the pod requests.
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Vec<Insufficient> {
    let mut out = Vec::new();
    if node.pods.len() as i64 + 1 > node.allocatable.allowed_pod_number {
        out.push(Insufficient {
            reason: "Too many pods".into(),
            unresolvable: false,
        });
    }
    let req = &pod.requests;
    if req.is_zero() {
        return out;
    }
    let mut check = |name: &str, want: i64| {
        let alloc = node.allocatable.get(name);
        if want > 0 && want > alloc - node.requested.get(name) {
            out.push(Insufficient {
                reason: format!("Insufficient {name}"),
                unresolvable: want > alloc,
            });
        }
    };
    check("cpu", req.milli_cpu);
    check("memory", req.memory);
    check("ephemeral-storage", req.ephemeral_storage);
    for (name, &want) in &req.scalar {
        check(name, want);
    }
    out
}

/// The NodeResourcesFit plugin with the LeastAllocated strategy (cpu and memory, weight 1 each).
#[derive(Debug, Default)]
pub struct NodeResourcesFit;

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        FIT_NAME
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, _state: &CycleState) -> Result<(), Status> {
        let lacking = insufficient(pod, node);
        if lacking.is_empty() {
            return Ok(());
        }
        let code = if lacking.iter().any(|i| i.unresolvable) {
            crate::Code::UnschedulableAndUnresolvable
        } else {
            crate::Code::Unschedulable
        };
        Err(Status {
            code,
            reasons: lacking.into_iter().map(|i| i.reason).collect(),
            plugin: FIT_NAME,
        })
    }
}

/// `(allocatable - requested) * 100 / allocatable`, 0 when over-committed.
fn least_requested(requested: i64, allocatable: i64) -> i64 {
    if allocatable == 0 || requested > allocatable {
        return 0;
    }
    (allocatable - requested) * MAX_NODE_SCORE / allocatable
}

impl ScorePlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        FIT_NAME
    }

    /// The weighted mean of the free share of CPU and memory once the pod is placed, counting
    /// unset container requests as upstream's defaults.
    fn score(&self, pod: &PodInfo, node: &NodeInfo, _snapshot: &Snapshot, _state: &CycleState) -> i64 {
        let resources = [
            (
                node.non_zero_requested.0 + pod.non_zero.0,
                node.allocatable.milli_cpu,
            ),
            (
                node.non_zero_requested.1 + pod.non_zero.1,
                node.allocatable.memory,
            ),
        ];
        let (mut total, mut weights) = (0, 0);
        for (requested, allocatable) in resources {
            if allocatable == 0 {
                continue;
            }
            total += least_requested(requested, allocatable);
            weights += 1;
        }
        if weights == 0 { 0 } else { total / weights }
    }
}

/// The NodeResourcesBalancedAllocation plugin (cpu and memory).
#[derive(Debug, Default)]
pub struct BalancedAllocation;

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        BALANCED_NAME
    }

    /// Best-effort pods (no CPU or memory requests) are not scored, so that they do not all
    /// pile onto one node.
    fn pre_score(
        &self,
        pod: &PodInfo,
        _snapshot: &Snapshot,
        _feasible: &[&NodeInfo],
        _state: &mut CycleState,
    ) -> PreScore {
        if pod.requests.milli_cpu == 0 && pod.requests.memory == 0 {
            PreScore::Skip
        } else {
            PreScore::Score
        }
    }

    /// `(1 - std) * 100` over the CPU and memory fractions (each capped at 1) the node would
    /// have requested with the pod.
    fn score(&self, pod: &PodInfo, node: &NodeInfo, _snapshot: &Snapshot, _state: &CycleState) -> i64 {
        let resources = [
            (
                node.requested.milli_cpu + pod.requests.milli_cpu,
                node.allocatable.milli_cpu,
            ),
            (
                node.requested.memory + pod.requests.memory,
                node.allocatable.memory,
            ),
        ];
        let fractions: Vec<f64> = resources
            .iter()
            .filter(|(_, a)| *a != 0)
            .map(|&(r, a)| (r as f64 / a as f64).min(1.0))
            .collect();
        let std = match fractions.len() {
            2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
            n if n > 2 => {
                let mean = fractions.iter().sum::<f64>() / n as f64;
                (fractions.iter().map(|f| (f - mean) * (f - mean)).sum::<f64>() / n as f64).sqrt()
            }
            _ => 0.0,
        };
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, node_obj, pod, pod_obj, run_filter, score_all};
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn requesting(name: &str, requests: Value) -> PodInfo {
        pod(
            name,
            json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": requests}}]}}),
        )
    }

    fn sized(name: &str, cpu: &str, memory: &str, pods: &str, extra: Value) -> NodeInfo {
        let mut v = json!({"status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}});
        crate::snapshot::tests::merge(&mut v, extra);
        node(name, v)
    }

    #[test]
    fn filter_reasons_as_upstream() {
        let mut n = sized(
            "n",
            "10",
            "20",
            "32",
            json!({"status": {"allocatable": {"example.com/gpu": "1"}}}),
        );
        n.add_pod(Arc::new(requesting("old", json!({"cpu": "5", "memory": "19"}))));
        let fit = |p: &PodInfo| run_filter(&NodeResourcesFit, p, &n);
        assert_eq!(fit(&requesting("p", json!({"cpu": "5", "memory": "1"}))), Ok(()));
        let err = fit(&requesting("p", json!({"cpu": "6", "memory": "2"}))).unwrap_err();
        assert_eq!(err.reasons, ["Insufficient cpu", "Insufficient memory"]);
        assert_eq!(err.code, crate::Code::Unschedulable);
        // More than the node has at all: preemption cannot help.
        let err = fit(&requesting("p", json!({"cpu": "11"}))).unwrap_err();
        assert_eq!(
            (err.reasons.as_slice(), err.code),
            (
                &["Insufficient cpu".to_string()][..],
                crate::Code::UnschedulableAndUnresolvable
            )
        );
        let err = fit(&requesting("p", json!({"example.com/gpu": "2"}))).unwrap_err();
        assert_eq!(err.reasons, ["Insufficient example.com/gpu"]);
        let err = fit(&requesting("p", json!({"example.com/other": "1"}))).unwrap_err();
        assert_eq!(err.reasons, ["Insufficient example.com/other"]);
        let err = fit(&requesting("p", json!({"ephemeral-storage": "1"}))).unwrap_err();
        assert_eq!(err.reasons, ["Insufficient ephemeral-storage"]);
    }

    #[test]
    fn pod_count_and_zero_requests() {
        let mut n = sized("n", "10", "20", "1", json!({}));
        assert_eq!(run_filter(&NodeResourcesFit, &pod("p", json!({})), &n), Ok(()));
        n.add_pod(Arc::new(pod("old", json!({}))));
        let err = run_filter(&NodeResourcesFit, &pod("p", json!({})), &n).unwrap_err();
        assert_eq!(
            (err.reasons, err.code),
            (vec!["Too many pods".to_string()], crate::Code::Unschedulable)
        );
    }

    #[test]
    fn init_and_sidecar_containers_and_overhead_count() {
        let n = sized("n", "1", "1Gi", "10", json!({}));
        // The init container alone needs 1100m.
        let init = pod(
            "p",
            json!({"spec": {"initContainers": [{"name": "i", "image": "x", "resources": {"requests": {"cpu": "1100m"}}}]}}),
        );
        assert_eq!(
            run_filter(&NodeResourcesFit, &init, &n).unwrap_err().reasons,
            ["Insufficient cpu"]
        );
        // A 600m sidecar beside a 500m app container.
        let sidecar = pod(
            "p",
            json!({"spec": {
                "initContainers": [{"name": "s", "image": "x", "restartPolicy": "Always", "resources": {"requests": {"cpu": "600m"}}}],
                "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "500m"}}}]
            }}),
        );
        assert!(run_filter(&NodeResourcesFit, &sidecar, &n).is_err());
        let overhead = pod(
            "p",
            json!({"spec": {"overhead": {"cpu": "600m"}, "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "500m"}}}]}}),
        );
        assert!(run_filter(&NodeResourcesFit, &overhead, &n).is_err());
    }

    fn cluster(nodes: &[(&str, &str, &str)], pods: Vec<k8s_openapi::api::core::v1::Pod>) -> crate::Snapshot {
        crate::Snapshot::new(
            nodes
                .iter()
                .map(|(n, c, m)| node_obj(n, json!({"status": {"allocatable": {"cpu": c, "memory": m}}}))),
            pods,
            [],
        )
    }

    fn placed(name: &str, node: &str, cpu: &str, memory: &str) -> k8s_openapi::api::core::v1::Pod {
        pod_obj(
            name,
            json!({"spec": {"nodeName": node, "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}),
        )
    }

    #[test]
    fn least_allocated_as_upstream() {
        // Upstream's LeastAllocated table: node1 4000m/10000 with 3000m/5000 requested,
        // node2 6000m/10000 with 3000m/5000: CPU (4000-3000)/4000=25, memory 50 → 37;
        // CPU 50, memory 50 → 50.
        let s = cluster(&[("n1", "4000m", "10000"), ("n2", "6000m", "10000")], vec![]);
        let p = requesting("p", json!({"cpu": "3000m", "memory": "5000"}));
        assert_eq!(score_all(&NodeResourcesFit, &p, &s), Some(vec![37, 50]));
        // A best-effort pod counts as 100m / 200Mi.
        let s = cluster(&[("n", "1", "2000Mi")], vec![]);
        assert_eq!(
            score_all(&NodeResourcesFit, &pod("p", json!({})), &s),
            Some(vec![(90 + 90) / 2])
        );
    }

    #[test]
    fn balanced_allocation_as_upstream() {
        // Upstream's table: node 10000m / 20000 with 3000m/5000 and 3000m/5000 requested, pod
        // 0: cpu fraction 0.6, memory 0.5 → std 0.05 → 95.
        let s = cluster(
            &[("n", "10000m", "20000")],
            vec![
                placed("a", "n", "3000m", "5000"),
                placed("b", "n", "3000m", "5000"),
            ],
        );
        let p = requesting("p", json!({"cpu": "0", "memory": "0"}));
        assert_eq!(
            score_all(&BalancedAllocation, &p, &s),
            None,
            "best-effort pods are not scored"
        );
        let p = requesting("p", json!({"cpu": "1000m", "memory": "2000"}));
        // cpu 7000/10000 = 0.7, memory 12000/20000 = 0.6 → std 0.05 → 95.
        assert_eq!(score_all(&BalancedAllocation, &p, &s), Some(vec![95]));
        // Over-commit caps the fraction at 1.
        let p = requesting("p", json!({"cpu": "9000m", "memory": "2000"}));
        assert_eq!(score_all(&BalancedAllocation, &p, &s), Some(vec![80]));
    }
}
