//! The node lifecycle controller (upstream `node-lifecycle-controller`, with the
//! `taint-eviction-controller`): watches every node's Lease and Ready condition, marks a node
//! whose kubelet went silent for `--node-monitor-grace-period` Unknown (and its pods not Ready),
//! keeps the condition and `unschedulable` NoSchedule taints and the `not-ready` /
//! `unreachable` NoExecute taints in step with the node's conditions (new NoExecute taints at the
//! zone's eviction rate), and evicts pods that do not tolerate NoExecute taints.

pub mod eviction;
pub mod health;
pub mod taints;
pub mod zones;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use component_base::events::{Event, EventType, Recorder};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::queue::WorkQueue;

use eviction::{Evictor, Key};
use health::{Observed, Signals, mark_unknown, ready_status};
use taints::{
    current_no_execute, taints_of, wanted_no_execute, wanted_no_schedule, with_no_execute, with_no_schedule,
};
use zones::{Limiter, Rates, ZoneState, zone_of, zone_rate, zone_states};

/// The namespace of the nodes' Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Nodes with this label do not count towards their zone's disruption.
pub const EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";
/// How often pending NoExecute taints are tried against the zone limiters (upstream's
/// `nodeEvictionPeriod`).
const TAINT_PERIOD: Duration = Duration::from_millis(100);

/// Settings of the node lifecycle controller (upstream's flags and defaults).
#[derive(Clone, Debug)]
pub struct NodeLifecycleConfig {
    /// `--node-monitor-period` (5 s): how often node health is checked.
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period` (40 s): silence after which a node is Unknown.
    pub node_monitor_grace_period: Duration,
    /// `--node-startup-grace-period` (1 min): the same for a node that never posted Ready.
    pub node_startup_grace_period: Duration,
    /// `--node-eviction-rate` (0.1): nodes per second that get NoExecute taints in a healthy zone.
    pub node_eviction_rate: f64,
    /// `--secondary-node-eviction-rate` (0.01): the same in a large partially disrupted zone.
    pub secondary_node_eviction_rate: f64,
    /// `--large-cluster-size-threshold` (50).
    pub large_cluster_size_threshold: usize,
    /// `--unhealthy-zone-threshold` (0.55).
    pub unhealthy_zone_threshold: f64,
    /// The identity events are reported from.
    pub instance: String,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(40),
            node_startup_grace_period: Duration::from_secs(60),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            large_cluster_size_threshold: 50,
            unhealthy_zone_threshold: 0.55,
            instance: "kube-controller-manager".into(),
        }
    }
}

/// Node lifecycle failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Runs the node lifecycle and taint eviction controllers until `shutdown`.
pub async fn run(
    client: Client,
    config: NodeLifecycleConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    run_split(client.clone(), client, config, shutdown).await
}

/// [`run`] writing through `client` and watching through `reader`, as upstream's controllers
/// write with their ServiceAccount and read from the manager's informers.
pub async fn run_split(
    client: Client,
    reader: Client,
    config: NodeLifecycleConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (nodes, node_writer) = reflector::store::<Node>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (leases, lease_writer) = reflector::store::<Lease>();
    let queue: WorkQueue<Key> = WorkQueue::default();
    let feed = {
        let q = queue.clone();
        let mut no_execute: HashMap<String, Vec<Taint>> = HashMap::new();
        let node_feed = watcher(Api::<Node>::all(reader.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(node_writer)
            .for_each(move |ev| {
                // Only a change of a node's NoExecute taints concerns the pods on it.
                match ev {
                    Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => {
                        let taints: Vec<Taint> = taints_of(&n)
                            .iter()
                            .filter(|t| t.effect == "NoExecute")
                            .cloned()
                            .collect();
                        if no_execute
                            .get(&n.name_any())
                            .map_or(!taints.is_empty(), |old| *old != taints)
                        {
                            no_execute.insert(n.name_any(), taints);
                            q.add(Key::Node(n.name_any()));
                        }
                    }
                    Ok(watcher::Event::Delete(n)) => {
                        no_execute.remove(&n.name_any());
                        q.add(Key::Node(n.name_any()));
                    }
                    Err(e) => tracing::warn!(error = %e, "watching nodes failed"),
                    _ => {}
                }
                futures::future::ready(())
            });
        let q = queue.clone();
        let pod_feed = watcher(Api::<Pod>::all(reader.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(pod_writer)
            .for_each(move |ev| {
                match ev {
                    Ok(
                        watcher::Event::Apply(p) | watcher::Event::InitApply(p) | watcher::Event::Delete(p),
                    ) => q.add(Key::Pod(p.namespace().unwrap_or_default(), p.name_any())),
                    Err(e) => tracing::warn!(error = %e, "watching pods failed"),
                    _ => {}
                }
                futures::future::ready(())
            });
        let lease_feed = watcher(
            Api::<Lease>::namespaced(reader, LEASE_NAMESPACE),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(lease_writer)
        .for_each(|ev| {
            if let Err(e) = ev {
                tracing::warn!(error = %e, "watching node leases failed");
            }
            futures::future::ready(())
        });
        tokio::spawn(async move {
            tokio::join!(node_feed, pod_feed, lease_feed);
        })
    };
    let ready = async {
        let _ = tokio::join!(
            nodes.wait_until_ready(),
            pods.wait_until_ready(),
            leases.wait_until_ready()
        );
    };
    tokio::select! {
        _ = shutdown.cancelled() => { feed.abort(); return Ok(()); }
        _ = ready => {}
    }
    let recorder =
        component_base::events::recorder(client.clone(), "taint-eviction-controller", &config.instance);
    let evictor = Evictor::new(client.clone(), nodes.clone(), pods.clone(), recorder);
    let worker = tokio::spawn(evictor.work(queue.clone()));
    let mut monitor = Monitor {
        recorder: component_base::events::recorder(client.clone(), "node-controller", &config.instance),
        client,
        config,
        nodes,
        pods,
        leases,
        observed: HashMap::new(),
        pending: BTreeSet::new(),
        limiters: HashMap::new(),
        zones: BTreeMap::new(),
        all_down: false,
    };
    let mut health_tick = tokio::time::interval(monitor.config.node_monitor_period);
    let mut taint_tick = tokio::time::interval(TAINT_PERIOD);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = health_tick.tick() => monitor.monitor().await,
            _ = taint_tick.tick() => monitor.taint_pending().await,
        }
    }
    queue.shut_down();
    feed.abort();
    let _ = worker.await;
    Ok(())
}

struct Monitor {
    client: Client,
    config: NodeLifecycleConfig,
    nodes: Store<Node>,
    pods: Store<Pod>,
    leases: Store<Lease>,
    recorder: Recorder,
    observed: HashMap<String, Observed>,
    /// Nodes waiting for their zone's limiter to get a NoExecute taint.
    pending: BTreeSet<String>,
    limiters: HashMap<String, Limiter>,
    /// Per zone: its state and size at the last pass.
    zones: BTreeMap<String, (ZoneState, usize)>,
    /// Every zone was fully disrupted at the last pass.
    all_down: bool,
}

impl Monitor {
    fn rates(&self) -> Rates {
        Rates {
            primary: self.config.node_eviction_rate,
            secondary: self.config.secondary_node_eviction_rate,
            large_cluster: self.config.large_cluster_size_threshold,
        }
    }

    fn lease_renewed(&self, node: &str) -> Option<Timestamp> {
        let lease = self.leases.get(&ObjectRef::new(node).within(LEASE_NAMESPACE))?;
        lease.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)
    }

    /// One health pass over every node (upstream's `monitorNodeHealth`).
    async fn monitor(&mut self) {
        let now = Instant::now();
        let nodes = self.nodes.state();
        let names: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        self.observed.retain(|n, _| names.contains(n));
        self.pending.retain(|n| names.contains(n));
        let mut readiness = Vec::new();
        for node in nodes {
            let name = node.name_any();
            let lease = self.lease_renewed(&name);
            let signals = Signals::of(&node, lease);
            let seen = self
                .observed
                .entry(name.clone())
                .or_insert_with(|| Observed::new(signals.clone(), now));
            seen.observe(signals, now);
            let grace = if ready_status(&node).is_none() {
                self.config.node_startup_grace_period
            } else {
                self.config.node_monitor_grace_period
            };
            let mut node = (*node).clone();
            if seen.silent(now, grace)
                && let Some(conditions) = mark_unknown(&node, Timestamp::now())
            {
                tracing::info!(node = %name, "kubelet stopped posting node status; marking it Unknown");
                let mut updated = node.clone();
                if let Some(status) = updated.status.as_mut() {
                    status.conditions = Some(conditions);
                } else {
                    updated.status = Some(k8s_openapi::api::core::v1::NodeStatus {
                        conditions: Some(conditions),
                        ..Default::default()
                    });
                }
                match Api::<Node>::all(self.client.clone())
                    .replace_status(&name, &PostParams::default(), &updated)
                    .await
                {
                    Ok(n) => node = n,
                    Err(e) => {
                        tracing::warn!(node = %name, error = %e, "updating node status failed");
                        continue;
                    }
                }
                if let Some(seen) = self.observed.get_mut(&name) {
                    seen.signals = Signals::of(&node, lease);
                }
            }
            let ready = ready_status(&node).map(str::to_string);
            let (was, retry) = self
                .observed
                .get(&name)
                .map(|s| (s.ready.clone(), s.retry_mark_pods))
                .unwrap_or_default();
            let not_ready = ready.as_deref() != Some("True");
            let became_not_ready = was.as_deref() == Some("True") && not_ready;
            if became_not_ready {
                self.node_event(&node, "NodeNotReady").await;
            }
            let retry = if became_not_ready || (retry && not_ready) {
                !self.mark_pods_not_ready(&name).await
            } else {
                false
            };
            if let Some(seen) = self.observed.get_mut(&name) {
                seen.ready = ready.clone();
                seen.retry_mark_pods = retry;
            }
            if let Some(t) = with_no_schedule(taints_of(&node), &wanted_no_schedule(&node))
                && let Some(n) = self.set_taints(&node, t).await
            {
                node = n;
            }
            let wanted = wanted_no_execute(ready.as_deref());
            let current = current_no_execute(taints_of(&node)).map(str::to_string);
            match (current.as_deref(), wanted) {
                (Some(c), Some(w)) if c == w => {
                    self.pending.remove(&name);
                }
                (None, Some(_)) => {
                    self.pending.insert(name.clone());
                }
                (_, w) => {
                    // Recovered (taints go at once) or Ready flipped between False and Unknown
                    // (the taints are swapped at once, as upstream).
                    self.pending.remove(&name);
                    if let Some(t) = with_no_execute(taints_of(&node), w, Timestamp::now()) {
                        self.set_taints(&node, t).await;
                    }
                }
            }
            if !node.labels().contains_key(EXCLUDE_DISRUPTION) {
                readiness.push((zone_of(&node), ready.as_deref() == Some("True")));
            }
        }
        self.zones = zone_states(readiness, self.config.unhealthy_zone_threshold);
        let all_down =
            !self.zones.is_empty() && self.zones.values().all(|(s, _)| *s == ZoneState::FullDisruption);
        if self.all_down && !all_down {
            // Back from a full disruption: every node gets its grace period again, as upstream.
            for seen in self.observed.values_mut() {
                seen.probe = now;
            }
        }
        self.all_down = all_down;
        if all_down {
            // Upstream: every zone down means the controller is probably cut off; stop evicting
            // and lift the eviction taints.
            tracing::warn!("every zone is fully disrupted; not evicting");
            self.pending.clear();
            for node in self.nodes.state() {
                if let Some(t) = with_no_execute(taints_of(&node), None, Timestamp::now()) {
                    self.set_taints(&node, t).await;
                }
            }
        }
    }

    /// Gives pending nodes their NoExecute taint as their zone's limiter allows.
    async fn taint_pending(&mut self) {
        let now = Instant::now();
        let rates = self.rates();
        for name in self.pending.clone() {
            let Some(node) = self.nodes.get(&ObjectRef::new(&name)) else {
                self.pending.remove(&name);
                continue;
            };
            let zone = zone_of(&node);
            let (state, size) = self.zones.get(&zone).copied().unwrap_or((ZoneState::Normal, 1));
            let rate = zone_rate(state, size, rates);
            let limiter = self.limiters.entry(zone).or_insert_with(|| Limiter::new(now));
            if !limiter.try_take(now, rate) {
                continue;
            }
            self.pending.remove(&name);
            let wanted = wanted_no_execute(ready_status(&node));
            if let Some(t) = with_no_execute(taints_of(&node), wanted, Timestamp::now()) {
                tracing::info!(node = %name, taint = ?wanted, "tainting node for eviction");
                if self.set_taints(&node, t).await.is_none() {
                    self.pending.insert(name);
                }
            }
        }
    }

    async fn set_taints(&self, node: &Node, taints: Vec<Taint>) -> Option<Node> {
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "spec": {"taints": taints},
        });
        match Api::<Node>::all(self.client.clone())
            .patch(&node.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(node = %node.name_any(), error = %e, "updating node taints failed");
                None
            }
        }
    }

    async fn node_event(&self, node: &Node, status: &str) {
        let ev = Event {
            type_: EventType::Normal,
            reason: status.into(),
            note: Some(format!("Node {} status is now: {status}", node.name_any())),
            action: status.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &node.object_ref(&())).await {
            tracing::warn!(error = %e, "recording an event failed");
        }
    }

    /// Sets the Ready condition of the node's pods to False (upstream's `MarkPodsNotReady`);
    /// false when some pod could not be updated.
    async fn mark_pods_not_ready(&self, node: &str) -> bool {
        let mut ok = true;
        let pods = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node));
        for pod in pods {
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            if ready.is_none_or(|c| c.status == "False") {
                continue;
            }
            let ns = pod.namespace().unwrap_or_default();
            let patch = json!({"metadata": {"uid": pod.uid()}, "status": {"conditions": [{
                "type": "Ready", "status": "False", "lastTransitionTime": Timestamp::now().to_string(),
            }]}});
            match Api::<Pod>::namespaced(self.client.clone(), &ns)
                .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Ok(_) => {
                    let ev = Event {
                        type_: EventType::Warning,
                        reason: "NodeNotReady".into(),
                        note: Some("Node is not ready".into()),
                        action: "NodeNotReady".into(),
                        secondary: None,
                    };
                    if let Err(e) = self.recorder.publish(&ev, &pod.object_ref(&())).await {
                        tracing::warn!(error = %e, "recording an event failed");
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    ok = false;
                    tracing::warn!(pod = %format!("{ns}/{}", pod.name_any()), error = %e, "marking pod not ready failed");
                }
            }
        }
        ok
    }
}
