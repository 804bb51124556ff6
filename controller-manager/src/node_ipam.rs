//! Node IPAM (upstream `node-ipam-controller` with the range allocator): with
//! `--allocate-node-cidrs`, every node without `spec.podCIDRs` gets one `--node-cidr-mask-size`
//! range out of each `--cluster-cidr` (IPv4 and/or IPv6); the ranges existing nodes hold are
//! learned first and released when their nodes go; an exhausted cluster CIDR is reported with a
//! `CIDRNotAvailable` event and retried.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use component_base::events::{Event, EventType, Recorder};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A CIDR: address bits (IPv4 in the low 32) and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    v6: bool,
    addr: u128,
    prefix: u8,
}

impl Cidr {
    fn width(self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    /// Parses `10.244.0.0/16` or `fd00::/48`; host bits are cleared.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, prefix) = s.trim().split_once('/')?;
        let prefix: u8 = prefix.parse().ok()?;
        let (v6, addr) = match ip.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => (false, u32::from(a) as u128),
            IpAddr::V6(a) => (true, u128::from(a)),
        };
        let c = Cidr { v6, addr, prefix };
        (prefix <= c.width()).then(|| Cidr {
            addr: addr & c.mask(),
            ..c
        })
    }

    fn mask(self) -> u128 {
        let host = u32::from(self.width() - self.prefix);
        let all = if self.v6 { u128::MAX } else { u32::MAX as u128 };
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host) - 1)
        }
    }

    /// True when `other` lies within this range.
    pub fn contains(self, other: Cidr) -> bool {
        self.v6 == other.v6 && other.prefix >= self.prefix && other.addr & self.mask() == self.addr
    }

    /// True for IPv6.
    pub fn is_v6(self) -> bool {
        self.v6
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.v6 {
            write!(f, "{}/{}", Ipv6Addr::from(self.addr), self.prefix)
        } else {
            write!(f, "{}/{}", Ipv4Addr::from(self.addr as u32), self.prefix)
        }
    }
}

/// Bad IPAM settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--cluster-cidr` entry does not parse.
    #[error("invalid cluster CIDR {0:?}")]
    InvalidCidr(String),
    /// The node mask is shorter than the cluster CIDR's, or splits it into too many ranges.
    #[error("node CIDR mask size {mask} does not fit cluster CIDR {cidr} (at most 16 bits more)")]
    MaskSize {
        /// The cluster CIDR.
        cidr: String,
        /// The node mask size.
        mask: u8,
    },
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// The node ranges of one cluster CIDR (upstream's `CidrSet`): allocation goes round from the
/// last one handed out.
#[derive(Debug)]
pub struct CidrSet {
    cluster: Cidr,
    node_prefix: u8,
    used: BTreeSet<u128>,
    next: u128,
}

impl CidrSet {
    /// Ranges of `node_prefix` bits out of `cluster`.
    pub fn new(cluster: Cidr, node_prefix: u8) -> Result<CidrSet, Error> {
        if node_prefix < cluster.prefix || node_prefix > cluster.width() || node_prefix - cluster.prefix > 16
        {
            return Err(Error::MaskSize {
                cidr: cluster.to_string(),
                mask: node_prefix,
            });
        }
        Ok(CidrSet {
            cluster,
            node_prefix,
            used: BTreeSet::new(),
            next: 0,
        })
    }

    fn count(&self) -> u128 {
        1u128 << (self.node_prefix - self.cluster.prefix)
    }

    fn index_of(&self, c: Cidr) -> Option<u128> {
        if c.prefix != self.node_prefix || !self.cluster.contains(c) {
            return None;
        }
        Some((c.addr - self.cluster.addr) >> u32::from(self.cluster.width() - self.node_prefix))
    }

    fn at(&self, i: u128) -> Cidr {
        Cidr {
            v6: self.cluster.v6,
            addr: self.cluster.addr + (i << u32::from(self.cluster.width() - self.node_prefix)),
            prefix: self.node_prefix,
        }
    }

    /// The cluster CIDR.
    pub fn cluster(&self) -> Cidr {
        self.cluster
    }

    /// Marks `c` taken; false when it is not one of this set's ranges.
    pub fn occupy(&mut self, c: Cidr) -> bool {
        self.index_of(c).map(|i| self.used.insert(i)).is_some()
    }

    /// Frees `c`.
    pub fn release(&mut self, c: Cidr) {
        if let Some(i) = self.index_of(c) {
            self.used.remove(&i);
        }
    }

    /// A free range, or `None` when all are taken.
    pub fn allocate(&mut self) -> Option<Cidr> {
        let n = self.count();
        if self.used.len() as u128 >= n {
            return None;
        }
        for k in 0..n {
            let i = (self.next + k) % n;
            if !self.used.contains(&i) {
                self.used.insert(i);
                self.next = (i + 1) % n;
                return Some(self.at(i));
            }
        }
        None
    }
}

/// Settings of node IPAM.
#[derive(Clone, Debug)]
pub struct NodeIpamConfig {
    /// `--allocate-node-cidrs` (false): without it the controller does nothing.
    pub allocate_node_cidrs: bool,
    /// `--cluster-cidr`, comma-separated.
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size` (a shared value overriding both defaults when set).
    pub node_cidr_mask_size: Option<u8>,
    /// `--node-cidr-mask-size-ipv4` (24).
    pub node_cidr_mask_size_ipv4: u8,
    /// `--node-cidr-mask-size-ipv6` (64).
    pub node_cidr_mask_size_ipv6: u8,
    /// The identity events are reported from.
    pub instance: String,
}

impl Default for NodeIpamConfig {
    fn default() -> Self {
        NodeIpamConfig {
            allocate_node_cidrs: false,
            cluster_cidr: String::new(),
            node_cidr_mask_size: None,
            node_cidr_mask_size_ipv4: 24,
            node_cidr_mask_size_ipv6: 64,
            instance: "kube-controller-manager".into(),
        }
    }
}

impl NodeIpamConfig {
    /// One range set per cluster CIDR.
    pub fn cidr_sets(&self) -> Result<Vec<CidrSet>, Error> {
        self.cluster_cidr
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let c = Cidr::parse(s).ok_or_else(|| Error::InvalidCidr(s.to_string()))?;
                let mask = self.node_cidr_mask_size.unwrap_or(if c.is_v6() {
                    self.node_cidr_mask_size_ipv6
                } else {
                    self.node_cidr_mask_size_ipv4
                });
                CidrSet::new(c, mask)
            })
            .collect()
    }
}

/// The ranges a node holds.
fn node_cidrs(node: &Node) -> Vec<Cidr> {
    let spec = node.spec.as_ref();
    let list = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    let list = if list.is_empty() {
        spec.and_then(|s| s.pod_cidr.clone()).into_iter().collect()
    } else {
        list
    };
    list.iter().filter_map(|s| Cidr::parse(s)).collect()
}

/// The allocator's state: the sets and which node holds what.
pub struct Allocator {
    sets: Vec<CidrSet>,
    held: HashMap<String, Vec<Cidr>>,
}

impl Allocator {
    /// An allocator over `sets`.
    pub fn new(sets: Vec<CidrSet>) -> Allocator {
        Allocator {
            sets,
            held: HashMap::new(),
        }
    }

    /// Records the ranges `node` holds; true when it holds none (it needs an allocation).
    pub fn observe(&mut self, node: &Node) -> bool {
        let cidrs = node_cidrs(node);
        if cidrs.is_empty() {
            return !self.held.contains_key(&node.name_any());
        }
        for c in &cidrs {
            if !self.sets.iter_mut().any(|s| s.occupy(*c)) {
                tracing::debug!(node = %node.name_any(), cidr = %c, "node CIDR outside the cluster CIDRs");
            }
        }
        self.held.insert(node.name_any(), cidrs);
        false
    }

    /// Frees what `name` held.
    pub fn forget(&mut self, name: &str) {
        for c in self.held.remove(name).unwrap_or_default() {
            for s in &mut self.sets {
                s.release(c);
            }
        }
    }

    /// One range from every set for `name`, or `None` (nothing kept) when one is exhausted.
    pub fn allocate(&mut self, name: &str) -> Option<Vec<Cidr>> {
        let mut got = Vec::new();
        for i in 0..self.sets.len() {
            match self.sets[i].allocate() {
                Some(c) => got.push(c),
                None => {
                    for (s, c) in self.sets.iter_mut().zip(&got) {
                        s.release(*c);
                    }
                    return None;
                }
            }
        }
        self.held.insert(name.to_string(), got.clone());
        Some(got)
    }
}

/// Runs node IPAM until `shutdown` (at once returns when `--allocate-node-cidrs` is off).
pub async fn run(client: Client, config: NodeIpamConfig, shutdown: CancellationToken) -> Result<(), Error> {
    if !config.allocate_node_cidrs {
        shutdown.cancelled().await;
        return Ok(());
    }
    let sets = config.cidr_sets()?;
    if sets.is_empty() {
        return Err(Error::InvalidCidr(config.cluster_cidr.clone()));
    }
    let recorder = component_base::events::recorder(client.clone(), "cidrAllocator", &config.instance);
    let nodes: Api<Node> = Api::all(client.clone());
    let mut allocator = Allocator::new(config.cidr_sets()?);
    let mut waiting: BTreeSet<String> = BTreeSet::new();
    let mut initial: Vec<Node> = Vec::new();
    let mut synced = false;
    let mut events = watcher(nodes.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut retry = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = retry.tick() => {
                if synced {
                    for name in std::mem::take(&mut waiting) {
                        if let Ok(Some(node)) = nodes.get_opt(&name).await
                            && allocator.observe(&node)
                        {
                            assign(&nodes, &recorder, &mut allocator, &mut waiting, &node).await;
                        }
                    }
                }
            }
            ev = events.next() => match ev {
                None => return Ok(()),
                Some(Err(e)) => tracing::warn!(error = %e, "watching nodes failed"),
                Some(Ok(watcher::Event::Init)) => {
                    synced = false;
                    allocator = Allocator::new(config.cidr_sets()?);
                    initial.clear();
                }
                Some(Ok(watcher::Event::InitApply(n))) => {
                    allocator.observe(&n);
                    initial.push(n);
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    synced = true;
                    for n in std::mem::take(&mut initial) {
                        if node_cidrs(&n).is_empty() {
                            assign(&nodes, &recorder, &mut allocator, &mut waiting, &n).await;
                        }
                    }
                }
                Some(Ok(watcher::Event::Apply(n))) => {
                    if allocator.observe(&n) && synced {
                        assign(&nodes, &recorder, &mut allocator, &mut waiting, &n).await;
                    }
                }
                Some(Ok(watcher::Event::Delete(n))) => {
                    waiting.remove(&n.name_any());
                    allocator.forget(&n.name_any());
                }
            }
        }
    }
}

async fn assign(
    nodes: &Api<Node>,
    recorder: &Recorder,
    allocator: &mut Allocator,
    waiting: &mut BTreeSet<String>,
    node: &Node,
) {
    let name = node.name_any();
    let Some(cidrs) = allocator.allocate(&name) else {
        tracing::warn!(node = %name, "no CIDR left for the node");
        let ev = Event {
            type_: EventType::Normal,
            reason: "CIDRNotAvailable".into(),
            note: Some(format!("Node {name} status is now: CIDRNotAvailable")),
            action: "CIDRNotAvailable".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &node.object_ref(&())).await {
            tracing::warn!(error = %e, "recording an event failed");
        }
        waiting.insert(name);
        return;
    };
    let list: Vec<String> = cidrs.iter().map(Cidr::to_string).collect();
    let patch = json!({"spec": {"podCIDR": list[0], "podCIDRs": list}});
    match nodes
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => tracing::info!(node = %name, cidrs = ?list, "assigned pod CIDRs"),
        Err(e) => {
            tracing::warn!(node = %name, error = %e, "assigning pod CIDRs failed");
            allocator.forget(&name);
            if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                waiting.insert(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::NodeSpec;
    use kube::api::ObjectMeta;

    use super::*;

    fn node(name: &str, cidrs: &[&str]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                pod_cidrs: (!cidrs.is_empty()).then(|| cidrs.iter().map(|s| s.to_string()).collect()),
                ..NodeSpec::default()
            }),
            ..Node::default()
        }
    }

    #[test]
    fn cidrs_parse_and_print() {
        assert_eq!(Cidr::parse("10.244.3.7/16").unwrap().to_string(), "10.244.0.0/16");
        assert_eq!(Cidr::parse("fd00:10::1/48").unwrap().to_string(), "fd00:10::/48");
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
        let cfg = NodeIpamConfig {
            cluster_cidr: "10.0.0.0/16,10.0.0.0/28".into(),
            ..NodeIpamConfig::default()
        };
        assert!(matches!(cfg.cidr_sets(), Err(Error::MaskSize { .. })));
    }

    #[test]
    fn dual_stack_allocation_skips_held_ranges_and_reuses_released_ones() {
        let cfg = NodeIpamConfig {
            cluster_cidr: "10.244.0.0/23, fd00::/63".into(),
            ..NodeIpamConfig::default()
        };
        let mut a = Allocator::new(cfg.cidr_sets().unwrap());
        assert!(!a.observe(&node("old", &["10.244.0.0/24", "fd00::/64"])));
        assert!(a.observe(&node("new", &[])));
        let got: Vec<String> = a.allocate("new").unwrap().iter().map(Cidr::to_string).collect();
        assert_eq!(got, ["10.244.1.0/24", "fd00:0:0:1::/64"]);
        assert!(
            !a.observe(&node("new", &[])),
            "an allocation in flight is not repeated"
        );
        assert!(a.allocate("third").is_none(), "both ranges are exhausted");
        a.forget("old");
        let got: Vec<String> = a.allocate("third").unwrap().iter().map(Cidr::to_string).collect();
        assert_eq!(got, ["10.244.0.0/24", "fd00::/64"]);
    }

    #[test]
    fn an_exhausted_set_keeps_nothing_of_a_partial_allocation() {
        let mut v4 = CidrSet::new(Cidr::parse("10.0.0.0/24").unwrap(), 24).unwrap();
        assert_eq!(v4.allocate().unwrap().to_string(), "10.0.0.0/24");
        let v6 = CidrSet::new(Cidr::parse("fd00::/64").unwrap(), 64).unwrap();
        let mut a = Allocator::new(vec![v6, v4]);
        assert!(a.allocate("x").is_none());
        a.sets[1].release(Cidr::parse("10.0.0.0/24").unwrap());
        assert_eq!(a.allocate("x").unwrap().len(), 2, "the IPv6 range was not leaked");
    }
}
