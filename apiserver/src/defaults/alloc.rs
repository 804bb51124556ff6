//! Service cluster IP and node port allocation. Each allocated IP or port is one storage key
//! (`/registry/ranges/serviceips/<ip>`, `/registry/ranges/servicenodeports/<port>`) created
//! with compare-and-swap, so concurrent creates (and servers sharing the storage) never hand
//! out the same value twice, and allocations survive restarts.

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{Value, json};
use storage::{Expect, Storage, StorageExt, WriteOutcome};

use crate::error::{ApiError, ApiResult, FieldError};

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";
/// Random picks tried before listing what is taken.
const RANDOM_TRIES: usize = 16;

/// The service network: the cluster IP range and the node port range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRanges {
    /// The service CIDR (IPv4), upstream `--service-cluster-ip-range`.
    pub cluster_ip_cidr: String,
    /// First node port, upstream `--service-node-port-range`.
    pub node_port_min: u16,
    /// Last node port.
    pub node_port_max: u16,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ip_cidr: "10.96.0.0/12".into(),
            node_port_min: 30000,
            node_port_max: 32767,
        }
    }
}

/// A parsed IPv4 CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    bits: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (ip, bits) = text.split_once('/')?;
        let bits: u8 = bits.parse().ok()?;
        if bits > 30 {
            return None;
        }
        let ip: Ipv4Addr = ip.parse().ok()?;
        let mask = u32::MAX << (32 - bits);
        Some(Cidr {
            base: u32::from(ip) & mask,
            bits,
        })
    }

    fn size(self) -> u32 {
        1u32 << (32 - self.bits)
    }

    /// The address at `offset` from the network address.
    pub fn nth(self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + offset)
    }

    /// Whether `ip` is a usable address (not the network or broadcast address).
    pub fn contains_usable(self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v > self.base && v < self.base + self.size() - 1
    }
}

/// Hands out and takes back service IPs and node ports.
pub struct ServiceAllocator {
    kv: Arc<dyn Storage>,
    ranges: ServiceRanges,
    cidr: Cidr,
}

impl std::fmt::Debug for ServiceAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAllocator")
            .field("ranges", &self.ranges)
            .finish()
    }
}

/// The keys one service holds (to give back when its create fails).
#[derive(Debug, Default)]
pub struct Allocation {
    keys: Vec<String>,
}

fn invalid(kind: &str, name: &str, field: &str, value: &Value, why: &str) -> ApiError {
    ApiError::invalid(kind, "", name, &[FieldError::invalid(field, value, why)])
}

fn random_u32() -> u32 {
    (uuid::Uuid::new_v4().as_u128() >> 64) as u32
}

fn service_type(obj: &Value) -> &str {
    obj.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

impl ServiceAllocator {
    /// An allocator over `kv`; an unparsable CIDR falls back to the default range.
    pub fn new(kv: Arc<dyn Storage>, ranges: ServiceRanges) -> Self {
        let cidr = Cidr::parse(&ranges.cluster_ip_cidr).unwrap_or_else(|| {
            tracing::warn!(cidr = %ranges.cluster_ip_cidr, "invalid service CIDR; using 10.96.0.0/12");
            Cidr::parse("10.96.0.0/12").expect("default CIDR parses")
        });
        ServiceAllocator { kv, ranges, cidr }
    }

    /// The first address of the range, the `kubernetes` service's.
    pub fn first_ip(&self) -> Ipv4Addr {
        self.cidr.nth(1)
    }

    async fn claim(&self, key: String, owner: &str) -> ApiResult<bool> {
        let body = serde_json::to_vec(&json!({"owner": owner}))
            .map_err(|e| ApiError::internal(format!("encoding allocation: {e}")))?;
        Ok(matches!(
            self.kv
                .put_if(key.as_bytes(), body.into(), Expect::Absent)
                .await?,
            WriteOutcome::Done { .. }
        ))
    }

    /// The stored claims under `prefix` (keys and revisions only).
    async fn claims(&self, prefix: &str) -> ApiResult<Vec<storage::KeyValue>> {
        let resp = self
            .kv
            .range(storage::RangeRequest {
                key: prefix.as_bytes().to_vec().into(),
                range_end: storage::prefix_end(prefix.as_bytes()),
                keys_only: true,
                ..Default::default()
            })
            .await?;
        Ok(resp.kvs)
    }

    async fn taken(&self, prefix: &str) -> ApiResult<std::collections::HashSet<String>> {
        Ok(self
            .claims(prefix)
            .await?
            .iter()
            .filter_map(|kv| std::str::from_utf8(&kv.key).ok())
            .map(|k| k[prefix.len()..].to_string())
            .collect())
    }

    /// Claims a free value among `candidates(i)` for `i` in `0..count` (random picks first,
    /// then a scan of what is free).
    async fn claim_any(
        &self,
        prefix: &str,
        count: u32,
        value: impl Fn(u32) -> String,
        owner: &str,
    ) -> ApiResult<Option<String>> {
        for _ in 0..RANDOM_TRIES {
            let v = value(random_u32() % count);
            if self.claim(format!("{prefix}{v}"), owner).await? {
                return Ok(Some(v));
            }
        }
        loop {
            let taken = self.taken(prefix).await?;
            let start = random_u32() % count;
            let free = (0..count)
                .map(|i| value((start + i) % count))
                .find(|v| !taken.contains(v));
            let Some(v) = free else { return Ok(None) };
            if self.claim(format!("{prefix}{v}"), owner).await? {
                return Ok(Some(v));
            }
        }
    }

    /// Allocates what a new (or changed) service lacks: its cluster IP (honouring a requested
    /// one) and node ports. Values already recorded in `held` (allocated to this service
    /// before) are kept without claiming again.
    pub async fn allocate(
        &self,
        kind: &str,
        name: &str,
        obj: &mut Value,
        held: &Value,
    ) -> ApiResult<Allocation> {
        let mut alloc = Allocation::default();
        match self.allocate_into(kind, name, obj, held, &mut alloc).await {
            Ok(()) => Ok(alloc),
            Err(e) => {
                self.release(alloc).await;
                Err(e)
            }
        }
    }

    async fn allocate_into(
        &self,
        kind: &str,
        name: &str,
        obj: &mut Value,
        held: &Value,
        alloc: &mut Allocation,
    ) -> ApiResult<()> {
        let owner = format!(
            "{}/{}",
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(""),
            name
        );
        let ty = service_type(obj).to_string();
        let held_ips = allocated_ips(held);
        if ty != "ExternalName" {
            let requested = obj
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            let ip = match requested {
                Some(ip) if ip == "None" => ip,
                Some(ip) if held_ips.contains(&ip) => ip,
                Some(ip) => {
                    let shown = json!([ip]);
                    let why = |w: &str| format!("failed to allocate IP {ip}: {w}");
                    let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                        invalid(
                            kind,
                            name,
                            "spec.clusterIPs[0]",
                            &json!(ip),
                            "must be a valid IP address",
                        )
                    })?;
                    if !self.cidr.contains_usable(parsed) {
                        let msg = why(&format!(
                            "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                            self.ranges.cluster_ip_cidr
                        ));
                        return Err(invalid(kind, name, "spec.clusterIPs", &shown, &msg));
                    }
                    let key = format!("{IP_PREFIX}{ip}");
                    if !self.claim(key.clone(), &owner).await? {
                        let msg = why("provided IP is already allocated");
                        return Err(invalid(kind, name, "spec.clusterIPs", &shown, &msg));
                    }
                    alloc.keys.push(key);
                    ip
                }
                None => {
                    let cidr = self.cidr;
                    // Offsets 2..size-1: skips the network address, the first IP (reserved for
                    // the `kubernetes` service) and the broadcast address.
                    let count = cidr.size() - 3;
                    let ip = self
                        .claim_any(IP_PREFIX, count, |i| cidr.nth(i + 2).to_string(), &owner)
                        .await?
                        .ok_or_else(|| {
                            invalid(
                                kind,
                                name,
                                "spec.clusterIPs",
                                &json!([]),
                                &format!(
                                    "failed to allocate a serviceIP: range is full ({})",
                                    self.ranges.cluster_ip_cidr
                                ),
                            )
                        })?;
                    alloc.keys.push(format!("{IP_PREFIX}{ip}"));
                    ip
                }
            };
            obj["spec"]["clusterIP"] = json!(ip);
            obj["spec"]["clusterIPs"] = json!([ip]);
        }
        if matches!(ty.as_str(), "NodePort" | "LoadBalancer")
            && obj.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&json!(false))
        {
            let held_ports = allocated_ports(held);
            let count = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..count {
                let field = format!("spec.ports[{i}].nodePort");
                let requested = obj["spec"]["ports"][i].get("nodePort").and_then(Value::as_u64);
                let port = match requested {
                    Some(p) if held_ports.contains(&p) => p,
                    Some(p) => {
                        if p < u64::from(self.ranges.node_port_min)
                            || p > u64::from(self.ranges.node_port_max)
                        {
                            let msg = format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                self.ranges.node_port_min, self.ranges.node_port_max
                            );
                            return Err(invalid(kind, name, &field, &json!(p), &msg));
                        }
                        let key = format!("{PORT_PREFIX}{p}");
                        if !self.claim(key.clone(), &owner).await? {
                            return Err(invalid(
                                kind,
                                name,
                                &field,
                                &json!(p),
                                "provided port is already allocated",
                            ));
                        }
                        alloc.keys.push(key);
                        p
                    }
                    None => {
                        let min = u32::from(self.ranges.node_port_min);
                        let count = u32::from(self.ranges.node_port_max) - min + 1;
                        let p = self
                            .claim_any(PORT_PREFIX, count, |i| (min + i).to_string(), &owner)
                            .await?
                            .ok_or_else(|| invalid(kind, name, &field, &json!(0), "range is full"))?;
                        alloc.keys.push(format!("{PORT_PREFIX}{p}"));
                        p.parse().unwrap_or_default()
                    }
                };
                obj["spec"]["ports"][i]["nodePort"] = json!(port);
            }
        }
        Ok(())
    }

    /// Gives back what a failed create had claimed.
    pub async fn release(&self, alloc: Allocation) {
        for key in alloc.keys {
            self.drop_key(&key).await;
        }
    }

    async fn drop_key(&self, key: &str) {
        if let Err(e) = self.kv.delete_if(key.as_bytes(), Expect::Any).await {
            tracing::warn!(key, error = %e, "releasing a service allocation failed");
        }
    }

    /// Records the values a stored service holds (idempotent): services written before
    /// allocation was tracked, or by a server that stopped between storing and claiming.
    pub async fn adopt(&self, svc: &Value) -> ApiResult<()> {
        let owner = format!(
            "{}/{}",
            svc.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(""),
            svc.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
        for ip in allocated_ips(svc) {
            self.claim(format!("{IP_PREFIX}{ip}"), &owner).await?;
        }
        for port in allocated_ports(svc) {
            self.claim(format!("{PORT_PREFIX}{port}"), &owner).await?;
        }
        Ok(())
    }

    /// Releases what `old` held and `new` (the service after an update, `Null` after a delete)
    /// no longer does.
    pub async fn release_dropped(&self, old: &Value, new: &Value) {
        let keep_ips = allocated_ips(new);
        for ip in allocated_ips(old) {
            if !keep_ips.contains(&ip) {
                self.drop_key(&format!("{IP_PREFIX}{ip}")).await;
            }
        }
        let keep_ports = allocated_ports(new);
        for port in allocated_ports(old) {
            if !keep_ports.contains(&port) {
                self.drop_key(&format!("{PORT_PREFIX}{port}")).await;
            }
        }
    }
}

/// How often [`spawn_repair`] looks for leaked claims (upstream's repair controllers: 3 min).
pub const REPAIR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(180);

/// Claims held by no stored service at the last repair pass: key and the claim's revision.
pub type Suspects = std::collections::HashMap<String, storage::Revision>;

impl ServiceAllocator {
    /// One pass of the repair of allocations (upstream's ipallocator and portallocator repair
    /// controllers): every value a stored service holds is claimed, and a claim no service holds
    /// is released when it was already unheld, unchanged, at the previous pass (`suspects`): a
    /// create between claiming and storing its service is never mistaken for a leak. Returns the
    /// suspects for the next pass.
    pub async fn repair(&self, services: &[Value], suspects: &Suspects) -> ApiResult<Suspects> {
        let mut held = std::collections::HashSet::new();
        for svc in services {
            self.adopt(svc).await?;
            held.extend(
                allocated_ips(svc)
                    .into_iter()
                    .map(|ip| format!("{IP_PREFIX}{ip}")),
            );
            held.extend(
                allocated_ports(svc)
                    .into_iter()
                    .map(|p| format!("{PORT_PREFIX}{p}")),
            );
        }
        let mut next = Suspects::new();
        for prefix in [IP_PREFIX, PORT_PREFIX] {
            for kv in &self.claims(prefix).await? {
                let key = String::from_utf8_lossy(&kv.key).into_owned();
                if held.contains(&key) {
                    continue;
                }
                if suspects.get(&key) == Some(&kv.mod_revision) {
                    tracing::info!(key, "releasing a service allocation no service holds");
                    self.kv
                        .delete_if(key.as_bytes(), Expect::ModRevision(kv.mod_revision))
                        .await?;
                } else {
                    next.insert(key, kv.mod_revision);
                }
            }
        }
        Ok(next)
    }
}

/// Runs [`ServiceAllocator::repair`] over the stored services every [`REPAIR_INTERVAL`] until
/// `token` is cancelled.
pub fn spawn_repair(
    api: &Arc<crate::ApiServer>,
    token: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let api = api.clone();
    tokio::spawn(async move {
        let mut suspects = Suspects::new();
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(REPAIR_INTERVAL) => {}
            }
            let Some(desc) = api.table.lookup("", "v1", "services") else {
                return;
            };
            let services = api
                .registry
                .list_page_from_store(&desc, "", &crate::registry::ListOptions::default())
                .await;
            let pass = match services {
                Ok(page) => {
                    api.registry
                        .service_allocator()
                        .repair(&page.items, &suspects)
                        .await
                }
                Err(e) => Err(e),
            };
            match pass {
                Ok(next) => suspects = next,
                Err(e) => tracing::warn!(error = %e, "service allocation repair failed"),
            }
        }
    })
}

/// The cluster IPs a stored service holds.
fn allocated_ips(svc: &Value) -> Vec<String> {
    if service_type(svc) == "ExternalName" {
        return Vec::new();
    }
    svc.pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(svc.pointer("/spec/clusterIP"))
        .filter_map(Value::as_str)
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .map(str::to_string)
        .collect()
}

/// The node ports a stored service holds.
fn allocated_ports(svc: &Value) -> Vec<u64> {
    if !matches!(service_type(svc), "NodePort" | "LoadBalancer") {
        return Vec::new();
    }
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .collect()
}

/// Upstream keeps allocated values across updates that omit them: copies `clusterIP(s)` and
/// node ports (matched by port and protocol) from `old` into `new` when absent. A cluster IP
/// may not change once set (the error when the update tries).
pub fn keep_allocated(old: &Value, new: &mut Value) -> Option<FieldError> {
    let ty = service_type(new).to_string();
    if ty != "ExternalName" && service_type(old) != "ExternalName" {
        let old_ip = old
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("");
        let new_ip = new
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !old_ip.is_empty() && !new_ip.is_empty() && old_ip != new_ip {
            return Some(FieldError::invalid(
                "spec.clusterIPs[0]",
                &json!([new_ip]),
                "may not change once set",
            ));
        }
        for field in ["clusterIP", "clusterIPs"] {
            if new
                .pointer(&format!("/spec/{field}"))
                .is_none_or(|v| v.is_null() || v == "")
                && let Some(v) = old.pointer(&format!("/spec/{field}"))
                && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.insert(field.into(), v.clone());
            }
        }
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        let old_ports = old
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for port in ports {
                let same = old_ports
                    .iter()
                    .find(|o| o.get("port") == port.get("port") && o.get("protocol") == port.get("protocol"));
                if port.get("nodePort").is_none_or(Value::is_null)
                    && let Some(np) = same.and_then(|o| o.get("nodePort"))
                    && let Some(map) = port.as_object_mut()
                {
                    map.insert("nodePort".into(), np.clone());
                }
            }
        }
    } else if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        // ClusterIP and headless services have no node ports (upstream clears them).
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.remove("nodePort");
        }
    }
    None
}
