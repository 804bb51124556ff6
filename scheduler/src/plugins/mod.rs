//! Upstream's default plugins, one module each, with upstream's names and reason strings.

pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;
pub mod taints;
pub mod volume_binding;
pub mod volume_restrictions;

#[cfg(test)]
pub(crate) mod testing;
