//! The simulated kubelet: one process for many nodes, no containers.
//!
//! Two loops share one client (and so its QPS limit):
//! - [`nodes`]: registers the nodes (adopting existing Nodes of the same names), renews their
//!   Leases and reports their status, all from one timer queue with the renewals spread over the
//!   interval, and watches the Nodes (one watch) for their `spec.podCIDR` and for conditions
//!   someone else changed;
//! - [`pods`]: one watch of the pods bound to any node (`spec.nodeName!=`), filtered to ours;
//!   each pod is simulated by [`pod::SimPod`] and its status written through `pods/status` when
//!   it changes; deleted pods stop and get their final delete.
//!
//! Requests run concurrently up to [`crate::Config::max_in_flight`] per loop.

pub mod command;
pub mod ipam;
mod nodes;
pub mod pod;
mod pods;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use crate::{Config, Error};
use ipam::Cidr;

/// What the pod loop needs to know about our nodes; the node loop keeps `pod_cidrs` current.
pub(crate) struct Directory {
    index: HashMap<String, usize>,
    ips: Vec<IpAddr>,
    pod_cidrs: RwLock<Vec<Option<Cidr>>>,
    fallback: Vec<Option<Cidr>>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl Directory {
    fn new(config: &Config, mask: Option<u8>) -> Self {
        let n = config.node_names.len();
        Directory {
            index: config
                .node_names
                .iter()
                .enumerate()
                .map(|(i, name)| (name.clone(), i))
                .collect(),
            ips: (0..n).map(|i| config.node_ip(i)).collect(),
            pod_cidrs: RwLock::new(vec![None; n]),
            fallback: (0..n)
                .map(|i| mask.and_then(|m| config.cluster_cidr.subnet(i as u64, m)))
                .collect(),
            synced: tokio::sync::watch::channel(false).0,
        }
    }

    /// The index of our node `name`.
    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Node `i`'s InternalIP.
    pub(crate) fn ip(&self, i: usize) -> IpAddr {
        self.ips[i]
    }

    /// The range node `i` gives pod IPs from: its `spec.podCIDR`, else its slice of the cluster
    /// CIDR.
    pub(crate) fn pod_range(&self, i: usize) -> Option<Cidr> {
        let assigned = self
            .pod_cidrs
            .read()
            .ok()
            .and_then(|c| c.get(i).copied().flatten());
        assigned.or_else(|| self.fallback.get(i).copied().flatten())
    }

    fn set_pod_cidr(&self, i: usize, cidr: Option<Cidr>) {
        if let Ok(mut cidrs) = self.pod_cidrs.write()
            && let Some(slot) = cidrs.get_mut(i)
        {
            *slot = cidr;
        }
    }
}

/// Runs the simulator until `shutdown`.
pub async fn run(config: Config, client: kube::Client, shutdown: CancellationToken) -> Result<(), Error> {
    let template = config.template().map_err(|e| Error::Config(e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    if config.node_names.is_empty() {
        return Err(Error::Config("no nodes to simulate".into()));
    }
    if let Some(dup) = config.node_names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(Error::Config(format!("node name {dup:?} given twice")));
    }
    let n = config.node_names.len();
    let mask = config
        .cluster_cidr
        .prefix_for(n as u64, config.node_cidr_mask_size);
    match mask {
        None => tracing::warn!(
            cluster_cidr = %config.cluster_cidr, nodes = n,
            "the cluster CIDR cannot give every node a pod range; nodes without spec.podCIDR cannot start pods"
        ),
        Some(m) if m != config.node_cidr_mask_size => tracing::warn!(
            cluster_cidr = %config.cluster_cidr, nodes = n, mask = m,
            "per-node pod ranges narrowed so that every node fits in the cluster CIDR"
        ),
        Some(_) => {}
    }
    let directory = Arc::new(Directory::new(&config, mask));
    let config = Arc::new(config);
    tracing::info!(nodes = n, first = %config.node_names[0], "starting the simulated kubelet");
    let nodes = nodes::run(
        client.clone(),
        config.clone(),
        template,
        directory.clone(),
        shutdown.clone(),
    );
    let pods = pods::run(client, config, directory, shutdown);
    tokio::join!(nodes, pods);
    Ok(())
}
