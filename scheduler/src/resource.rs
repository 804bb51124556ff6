//! Resource amounts as the scheduler counts them (upstream's `framework.Resource`): milli-CPU,
//! bytes of memory and ephemeral storage, the `pods` count and every other ("scalar") resource
//! as whole units, plus a pod's requests with upstream's rules for init and sidecar containers
//! and overhead.

use std::collections::BTreeMap;

use api_util::quantity::Quantity as Amount;
use api_util::resources::{self, ResourceList};
use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CPU a container without a CPU request counts as when scoring (upstream's
/// `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory a container without a memory request counts as when scoring (upstream's
/// `DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    /// CPU in thousandths of a core.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// The `pods` resource (a node's pod capacity).
    pub allowed_pod_number: i64,
    /// Extended resources, hugepages and other scalar resources, in whole units.
    pub scalar: BTreeMap<String, i64>,
}

/// True for resources counted in [`Resource::scalar`]: extended resources (`example.com/gpu`),
/// `kubernetes.io/`-prefixed ones, hugepages and attachable volumes (upstream's
/// `IsScalarResourceName`).
pub fn is_scalar_resource_name(name: &str) -> bool {
    name.contains('/') || name.starts_with("hugepages-") || name.starts_with("attachable-volumes-")
}

impl Resource {
    /// The amounts of a resource list (a node's allocatable); entries that are not quantities
    /// are skipped.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resource {
        Resource::from_parsed(&resources::resource_list(Some(list)))
    }

    /// The amounts of a parsed resource list.
    pub fn from_parsed(list: &ResourceList) -> Resource {
        let mut r = Resource::default();
        for (name, &q) in list {
            r.add_named(name, q);
        }
        r
    }

    fn add_named(&mut self, name: &str, q: Amount) {
        match name {
            "cpu" => self.milli_cpu += q.milli_value(),
            "memory" => self.memory += q.value(),
            "ephemeral-storage" => self.ephemeral_storage += q.value(),
            "pods" => self.allowed_pod_number += q.value(),
            n if is_scalar_resource_name(n) => *self.scalar.entry(n.to_string()).or_default() += q.value(),
            _ => {}
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pod_number += other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Takes `other` out of `self`.
    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pod_number -= other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// The amount of the named resource (`cpu` in milli-units).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pod_number,
            n => self.scalar.get(n).copied().unwrap_or(0),
        }
    }

    /// True when nothing is requested (upstream's check before comparing amounts).
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0 && self.memory == 0 && self.ephemeral_storage == 0 && self.scalar.is_empty()
    }
}

/// A pod's requests: app containers and sidecars (init containers with `restartPolicy:
/// Always`) add up, each other init container needs room beside the sidecars started before it,
/// pod-level requests replace the containers' cpu and memory, and `overhead` is added.
pub fn pod_requests(spec: &PodSpec) -> Resource {
    Resource::from_parsed(&resources::pod_requests(spec, resources::Options::default()))
}

/// The pod's CPU and memory requests for scoring: a container that requests no CPU or no
/// memory counts as [`DEFAULT_MILLI_CPU_REQUEST`] / [`DEFAULT_MEMORY_REQUEST`] (upstream's
/// `NonMissingContainerRequests`), so that best-effort pods still spread.
pub fn pod_non_zero_requests(spec: &PodSpec) -> (i64, i64) {
    let fill = |res: &mut Option<ResourceRequirements>| {
        let requests = res
            .get_or_insert_with(Default::default)
            .requests
            .get_or_insert_with(Default::default);
        requests
            .entry("cpu".into())
            .or_insert_with(|| Quantity(format!("{DEFAULT_MILLI_CPU_REQUEST}m")));
        requests
            .entry("memory".into())
            .or_insert_with(|| Quantity(DEFAULT_MEMORY_REQUEST.to_string()));
    };
    let mut spec = spec.clone();
    for c in &mut spec.containers {
        fill(&mut c.resources);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        fill(&mut c.resources);
    }
    let r = pod_requests(&spec);
    (r.milli_cpu, r.memory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn init_sidecar_and_overhead_as_upstream() {
        // Upstream's documented example: app 100m + sidecar 50m run together; the plain init
        // container after the sidecar needs its 200m beside the sidecar's 50m.
        let s = spec(json!({
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}}],
            "initContainers": [
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                {"name": "init", "resources": {"requests": {"cpu": "200m", "example.com/gpu": "1"}}}
            ],
            "overhead": {"cpu": "10m", "memory": "1Mi"}
        }));
        let r = pod_requests(&s);
        assert_eq!(r.milli_cpu, 260);
        assert_eq!(r.memory, (1 << 30) + (1 << 20));
        assert_eq!(r.scalar.get("example.com/gpu"), Some(&1));
    }

    #[test]
    fn non_zero_defaults_only_missing_requests() {
        let s = spec(json!({"containers": [
            {"name": "a"},
            {"name": "b", "resources": {"requests": {"cpu": "0", "memory": "1Mi"}}}
        ]}));
        assert_eq!(
            pod_non_zero_requests(&s),
            (100, DEFAULT_MEMORY_REQUEST + (1 << 20))
        );
        assert!(pod_requests(&s).milli_cpu == 0);
    }
}
