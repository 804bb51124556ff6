//! Everything [`crate::run`] needs, with upstream's defaults.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{NodeSystemInfo, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::node::{self, NodeTemplate};
use crate::simulated::ipam::Cidr;

/// The label that marks nodes registered by the simulator (as KWOK's `type: kwok`).
pub const SIMULATED_LABEL: &str = "node.keelson.dev/simulated";

/// The Kubernetes version the kubelet reports (`v1.<minor>.0-keelson`, as the API server's).
pub fn kubelet_version() -> String {
    k8s_openapi::k8s_if_1_33! { return "v1.33.0-keelson".into(); }
    k8s_openapi::k8s_if_1_34! { return "v1.34.0-keelson".into(); }
    k8s_openapi::k8s_if_1_35! { return "v1.35.0-keelson".into(); }
    k8s_openapi::k8s_if_1_36! { return "v1.36.0-keelson".into(); }
    k8s_openapi::k8s_if_1_37! { return "v1.37.0-keelson".into(); }
    #[allow(unreachable_code)]
    "v1.37.0-keelson".into()
}

/// The simulated machine each node reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    /// CPUs (`--node-cpu`, 32).
    pub cpu: Quantity,
    /// Memory (`--node-memory`, 256Gi).
    pub memory: Quantity,
    /// Pods (`--max-pods`, 110).
    pub pods: i64,
    /// Ephemeral storage (`--node-ephemeral-storage`, 100Gi).
    pub ephemeral_storage: Quantity,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: Quantity("32".into()),
            memory: Quantity("256Gi".into()),
            pods: 110,
            ephemeral_storage: Quantity("100Gi".into()),
        }
    }
}

/// Amounts by resource name, as in a Node's capacity.
pub type ResourceList = BTreeMap<String, Quantity>;

/// Failures in the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A resource quantity does not parse.
    #[error("invalid quantity for {what}: {value:?}")]
    Quantity {
        /// The flag.
        what: &'static str,
        /// The value.
        value: String,
    },
}

impl Resources {
    /// Capacity and allocatable as upstream's kubelet computes them with its default hard
    /// eviction thresholds (`memory.available<100Mi`, `nodefs.available<10%`) and no reservations;
    /// hugepages are reported as 0.
    pub fn capacity_and_allocatable(&self) -> Result<(ResourceList, ResourceList), ConfigError> {
        use api_util::quantity::Quantity as Q;
        let parse = |what: &'static str, q: &Quantity| {
            Q::parse(&q.0).ok_or(ConfigError::Quantity {
                what,
                value: q.0.clone(),
            })
        };
        let cpu = parse("cpu", &self.cpu)?;
        let memory = parse("memory", &self.memory)?;
        let storage = parse("ephemeral-storage", &self.ephemeral_storage)?;
        let mut capacity = BTreeMap::new();
        capacity.insert("cpu".to_string(), cpu.to_k8s());
        capacity.insert("memory".to_string(), memory.to_k8s());
        capacity.insert("pods".to_string(), Quantity(self.pods.to_string()));
        capacity.insert("ephemeral-storage".to_string(), storage.to_k8s());
        capacity.insert("hugepages-1Gi".to_string(), Quantity("0".into()));
        capacity.insert("hugepages-2Mi".to_string(), Quantity("0".into()));
        let mut allocatable = capacity.clone();
        let evict_memory = Q::parse("100Mi").unwrap_or_default();
        let mem_alloc = if memory > evict_memory {
            memory - evict_memory
        } else {
            Q::default()
        };
        allocatable.insert("memory".to_string(), mem_alloc.to_k8s());
        let storage_alloc = Q::from_milli(storage.milli_value() / 10 * 9);
        let storage_alloc = Q::count(storage_alloc.value());
        allocatable.insert("ephemeral-storage".to_string(), storage_alloc.to_k8s());
        Ok((capacity, allocatable))
    }
}

/// The kubelet's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Simulated mode (`--simulated`): no containers, pods "run" on the nodes registered. The only
    /// mode so far.
    pub simulated: bool,
    /// The nodes to register (`--nodes` with `--node-name-prefix`, or `--node-names`).
    pub node_names: Vec<String>,
    /// Extra labels (`--node-labels`).
    pub node_labels: BTreeMap<String, String>,
    /// Taints set at registration (`--register-with-taints`).
    pub register_with_taints: Vec<Taint>,
    /// Each node's machine.
    pub resources: Resources,
    /// Where nodes without `spec.podCIDR` take their pod IPs from (`--cluster-cidr`).
    pub cluster_cidr: Cidr,
    /// The size of each such node's slice of the cluster CIDR (`--node-cidr-mask-size`, 24;
    /// narrowed when the nodes would not all fit).
    pub node_cidr_mask_size: u8,
    /// The first node's InternalIP; node `i` gets the `i`th address after it. Default
    /// 198.18.0.1 (the benchmarking range, RFC 2544, which nothing routes).
    pub first_node_ip: IpAddr,
    /// `nodeLeaseDurationSeconds` (40); leases are renewed every quarter of it.
    pub node_lease_duration_seconds: i32,
    /// How often the node status is recomputed (`nodeStatusUpdateFrequency`, 10 s); it is
    /// posted at this rate only when it changed.
    pub node_status_update_frequency: Duration,
    /// How often the node status is posted even without change (`nodeStatusReportFrequency`,
    /// 5 min).
    pub node_status_report_frequency: Duration,
    /// How long a simulated container takes to stop once its pod is deleted (capped by the
    /// pod's grace period).
    pub stop_time: Duration,
    /// The kubelet port reported in the node's daemon endpoints (10250).
    pub kubelet_port: i32,
    /// At most this many API requests in flight per loop (nodes, pods); the client's QPS limit
    /// paces them.
    pub max_in_flight: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            simulated: true,
            node_names: vec!["sim-0".into()],
            node_labels: BTreeMap::new(),
            register_with_taints: Vec::new(),
            resources: Resources::default(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap_or_else(|_| unreachable!()),
            node_cidr_mask_size: 24,
            first_node_ip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            node_lease_duration_seconds: node::lease::DEFAULT_DURATION_SECONDS,
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(300),
            stop_time: Duration::from_secs(1),
            kubelet_port: 10250,
            max_in_flight: 64,
        }
    }
}

impl Config {
    /// `count` nodes named `<prefix><index>`.
    pub fn names(prefix: &str, count: usize) -> Vec<String> {
        (0..count).map(|i| format!("{prefix}{i}")).collect()
    }

    /// The node template: labels (the simulated marker and `--node-labels`), taints, capacity,
    /// system info.
    pub fn template(&self) -> Result<NodeTemplate, ConfigError> {
        let (capacity, allocatable) = self.resources.capacity_and_allocatable()?;
        let mut labels = self.node_labels.clone();
        if self.simulated {
            labels.insert(SIMULATED_LABEL.to_string(), "true".to_string());
        }
        Ok(NodeTemplate {
            labels,
            taints: self.register_with_taints.clone(),
            capacity,
            allocatable,
            kubelet_port: self.kubelet_port,
            system: NodeSystemInfo {
                architecture: node::go_arch().into(),
                operating_system: "linux".into(),
                kubelet_version: kubelet_version(),
                container_runtime_version: format!("keelson-simulated://{}", env!("CARGO_PKG_VERSION")),
                os_image: "Keelson simulated node".into(),
                kernel_version: "simulated".into(),
                ..NodeSystemInfo::default()
            },
        })
    }

    /// Node `index`'s InternalIP.
    pub fn node_ip(&self, index: usize) -> IpAddr {
        match self.first_node_ip {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4).wrapping_add(index as u32))),
            IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6).wrapping_add(index as u128),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocatable_leaves_upstreams_eviction_thresholds() {
        let (cap, alloc) = Resources::default().capacity_and_allocatable().unwrap();
        assert_eq!(cap["cpu"].0, "32");
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(alloc["memory"].0, "262044Mi", "256Gi - 100Mi");
        assert_eq!(alloc["ephemeral-storage"].0, "96636764160", "90% of 100Gi");
        assert_eq!(alloc["cpu"].0, "32");
    }

    #[test]
    fn node_ips_count_up_from_the_first() {
        let c = Config::default();
        assert_eq!(c.node_ip(0).to_string(), "198.18.0.1");
        assert_eq!(c.node_ip(300).to_string(), "198.18.1.45");
        assert_eq!(Config::names("sim-", 2), ["sim-0", "sim-1"]);
    }
}
