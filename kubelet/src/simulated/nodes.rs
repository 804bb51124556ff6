//! The node loop: registration, Lease renewals and status reports for every simulated node from
//! one timer queue, plus one watch of the Nodes.
//!
//! - Registration creates the Node with its full status; a Node that already exists (a restart)
//!   is adopted: the kubelet's own labels are patched back, its taints and spec are left alone.
//! - Leases are renewed every quarter of their duration (10 s), spread over time: the first at
//!   registration, then with a per-node phase offset. A missing Lease is created.
//! - Status is reported every `nodeStatusReportFrequency` (5 min) with fresh heartbeats, and at
//!   once (at most every `nodeStatusUpdateFrequency`) when the watch shows conditions that differ
//!   from a healthy kubelet's (e.g. the node lifecycle controller set `Ready=Unknown`).
//! - A Node deleted by someone else is not registered again (as upstream's kubelet, which
//!   registers once); its Lease stops.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};

use super::Directory;
use crate::Config;
use crate::node::{self, NodeTemplate, lease};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Register,
    Lease,
    Status,
}

enum Outcome {
    /// The Node, and whether this registration created it.
    Registered(Result<(Node, bool), kube::Error>),
    Lease(Result<bool, kube::Error>),
    Status(Result<Node, kube::Error>),
}

struct NodeState {
    name: String,
    uid: Option<String>,
    registered: bool,
    gone: bool,
    lease_exists: Option<bool>,
    conditions: Vec<NodeCondition>,
    last_report: Option<Instant>,
    report_key: Option<delay_queue::Key>,
    renewals: u64,
    system: NodeSystemInfo,
    addresses: Vec<NodeAddress>,
    failures: u32,
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The per-node ids of the system info: machine id and system UUID stable per name, a fresh
/// boot id per process start.
fn system_info(template: &NodeTemplate, name: &str) -> NodeSystemInfo {
    let machine = hex(name.as_bytes());
    let u = &machine[..32];
    NodeSystemInfo {
        machine_id: u.to_string(),
        system_uuid: format!(
            "{}-{}-{}-{}-{}",
            &u[..8],
            &u[8..12],
            &u[12..16],
            &u[16..20],
            &u[20..32]
        ),
        boot_id: uuid::Uuid::new_v4().to_string(),
        ..template.system.clone()
    }
}

struct NodeLoop {
    client: kube::Client,
    config: Arc<Config>,
    template: Arc<NodeTemplate>,
    directory: Arc<Directory>,
    nodes: Vec<NodeState>,
    timers: DelayQueue<(usize, Task)>,
    ready: VecDeque<(usize, Task)>,
    renew_interval: Duration,
}

/// Runs the node loop until `shutdown`.
pub(super) async fn run(
    client: kube::Client,
    config: Arc<Config>,
    template: NodeTemplate,
    directory: Arc<Directory>,
    shutdown: CancellationToken,
) {
    let template = Arc::new(template);
    let nodes = config
        .node_names
        .iter()
        .enumerate()
        .map(|(i, name)| NodeState {
            name: name.clone(),
            uid: None,
            registered: false,
            gone: false,
            lease_exists: None,
            conditions: Vec::new(),
            last_report: None,
            report_key: None,
            renewals: 0,
            system: system_info(&template, name),
            addresses: node::addresses(name, config.node_ip(i)),
            failures: 0,
        })
        .collect();
    let mut state = NodeLoop {
        renew_interval: lease::renew_interval(config.node_lease_duration_seconds),
        client,
        config,
        template,
        directory,
        nodes,
        timers: DelayQueue::new(),
        ready: VecDeque::new(),
    };
    state
        .ready
        .extend((0..state.nodes.len()).map(|i| (i, Task::Register)));
    state.run(shutdown).await;
}

impl NodeLoop {
    async fn run(&mut self, shutdown: CancellationToken) {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut watch = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut inflight: FuturesUnordered<BoxFuture<'static, (usize, Outcome)>> = FuturesUnordered::new();
        let max = self.config.max_in_flight.max(1);
        let mut listed = std::collections::HashSet::new();
        loop {
            while inflight.len() < max
                && let Some((i, task)) = self.ready.pop_front()
            {
                if let Some(f) = self.launch(i, task) {
                    inflight.push(f);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some((i, outcome)) = inflight.next(), if !inflight.is_empty() => self.done(i, outcome),
                Some(expired) = self.timers.next(), if !self.timers.is_empty() => {
                    let (i, task) = expired.into_inner();
                    if task == Task::Status {
                        self.nodes[i].report_key = None;
                    }
                    self.ready.push_back((i, task));
                }
                event = watch.next() => match event {
                    Some(Ok(Event::Init)) => listed.clear(),
                    Some(Ok(Event::InitApply(n))) => {
                        if let Some(i) = self.observe(&n) {
                            listed.insert(i);
                        }
                    }
                    Some(Ok(Event::InitDone)) => {
                        for i in 0..self.nodes.len() {
                            if !listed.contains(&i) && self.nodes[i].registered {
                                self.deleted(i);
                            }
                        }
                        self.directory.synced.send_replace(true);
                    }
                    Some(Ok(Event::Apply(n))) => {
                        self.observe(&n);
                    }
                    Some(Ok(Event::Delete(n))) => {
                        if let Some(i) = n.metadata.name.as_deref().and_then(|name| self.directory.index(name)) {
                            self.deleted(i);
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching nodes"),
                    None => break,
                },
            }
        }
    }

    fn launch(&mut self, i: usize, task: Task) -> Option<BoxFuture<'static, (usize, Outcome)>> {
        let n = &self.nodes[i];
        if n.gone && task != Task::Register {
            return None;
        }
        let name = n.name.clone();
        let now = Timestamp::now();
        match task {
            Task::Register => {
                let api: Api<Node> = Api::all(self.client.clone());
                let conditions = node::status::conditions(&[], &Time(now));
                let status =
                    node::status::status(&self.template, n.addresses.clone(), n.system.clone(), conditions);
                let object = node::registration(&name, &self.template, status);
                let labels = node::labels(&name, &self.template);
                Some(
                    async move {
                        let result = match api.create(&PostParams::default(), &object).await {
                            Err(e) if is_status(&e, 409) => {
                                let patch = serde_json::json!({"metadata": {"labels": labels}});
                                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                                    .await
                                    .map(|n| (n, false))
                            }
                            other => other.map(|n| (n, true)),
                        };
                        (i, Outcome::Registered(result))
                    }
                    .boxed(),
                )
            }
            Task::Lease => {
                let api: Api<Lease> = Api::namespaced(self.client.clone(), lease::NAMESPACE);
                let duration = self.config.node_lease_duration_seconds;
                let uid = n.uid.clone();
                let exists = n.lease_exists;
                Some(
                    async move {
                        let now = MicroTime(now);
                        let create = async {
                            let l = lease::new_lease(&name, uid.as_deref(), duration, now.clone());
                            api.create(&PostParams::default(), &l).await.map(|_| true)
                        };
                        let patch = lease::renewal(&name, duration, &now);
                        let params = PatchParams::default();
                        let patch = Patch::Merge(&patch);
                        let renew = api.patch(&name, &params, &patch);
                        let result = if exists == Some(false) {
                            match create.await {
                                Err(e) if is_status(&e, 409) => renew.await.map(|_| true),
                                other => other,
                            }
                        } else {
                            match renew.await {
                                Err(e) if is_status(&e, 404) => create.await,
                                other => other.map(|_| true),
                            }
                        };
                        (i, Outcome::Lease(result))
                    }
                    .boxed(),
                )
            }
            Task::Status => {
                let api: Api<Node> = Api::all(self.client.clone());
                let conditions = node::status::conditions(&n.conditions, &Time(now));
                let status =
                    node::status::status(&self.template, n.addresses.clone(), n.system.clone(), conditions);
                let body = serde_json::json!({ "status": status });
                Some(
                    async move {
                        let result = api
                            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&body))
                            .await;
                        (i, Outcome::Status(result))
                    }
                    .boxed(),
                )
            }
        }
    }

    fn schedule(&mut self, i: usize, task: Task, after: Duration) {
        let key = self.timers.insert((i, task), after);
        if task == Task::Status
            && let Some(old) = self.nodes[i].report_key.replace(key)
        {
            self.timers.try_remove(&old);
        }
    }

    /// A per-node fraction in [0, 1) that spreads periodic work over its period.
    fn phase(&self, i: usize) -> f64 {
        i as f64 / self.nodes.len().max(1) as f64
    }

    fn retry_after(&mut self, i: usize) -> Duration {
        let n = &mut self.nodes[i];
        n.failures = (n.failures + 1).min(6);
        Duration::from_millis(200 << n.failures).min(Duration::from_secs(7))
    }

    fn done(&mut self, i: usize, outcome: Outcome) {
        match outcome {
            Outcome::Registered(Ok((node, created))) => {
                let n = &mut self.nodes[i];
                if created {
                    n.lease_exists = Some(false);
                }
                n.registered = true;
                n.gone = false;
                n.failures = 0;
                n.uid = node.metadata.uid.clone();
                tracing::debug!(node = %n.name, created, "node registered");
                self.observe(&node);
                self.ready.push_back((i, Task::Lease));
                let report = self.config.node_status_report_frequency;
                let phase = self.phase(i);
                let n = &mut self.nodes[i];
                if n.last_report.is_none() {
                    n.last_report = Some(Instant::now());
                }
                if n.report_key.is_none() {
                    self.schedule(i, Task::Status, report.mul_f64(0.5 + 0.5 * phase));
                }
            }
            Outcome::Registered(Err(e)) => {
                let after = self.retry_after(i);
                tracing::warn!(node = %self.nodes[i].name, error = %e, ?after, "registering the node failed; retrying");
                self.schedule(i, Task::Register, after);
            }
            Outcome::Lease(Ok(_)) => {
                let n = &mut self.nodes[i];
                n.lease_exists = Some(true);
                n.failures = 0;
                n.renewals += 1;
                let first = n.renewals == 1;
                let interval = self.renew_interval;
                // After the first renewal, a per-node offset spreads the nodes over the interval.
                let next = if first {
                    interval.mul_f64(0.5 + 0.5 * self.phase(i))
                } else {
                    interval
                };
                self.schedule(i, Task::Lease, next);
            }
            Outcome::Lease(Err(e)) => {
                let after = self.retry_after(i);
                tracing::warn!(node = %self.nodes[i].name, error = %e, ?after, "renewing the node lease failed; retrying");
                self.nodes[i].lease_exists = None;
                self.schedule(i, Task::Lease, after);
            }
            Outcome::Status(Ok(node)) => {
                self.nodes[i].failures = 0;
                self.nodes[i].last_report = Some(Instant::now());
                self.observe(&node);
                let report = self.config.node_status_report_frequency;
                self.schedule(i, Task::Status, report);
            }
            Outcome::Status(Err(e)) if is_status(&e, 404) => self.deleted(i),
            Outcome::Status(Err(e)) => {
                let after = self.config.node_status_update_frequency;
                tracing::warn!(node = %self.nodes[i].name, error = %e, ?after, "updating the node status failed; retrying");
                self.schedule(i, Task::Status, after);
            }
        }
    }

    /// Takes in a Node from the watch or a response. Returns its index when it is ours.
    fn observe(&mut self, node: &Node) -> Option<usize> {
        let i = self.directory.index(node.metadata.name.as_deref()?)?;
        let cidr = node.spec.as_ref().and_then(|s| {
            s.pod_cidr
                .as_deref()
                .or_else(|| s.pod_cidrs.as_ref().and_then(|c| c.first()).map(String::as_str))
        });
        let parsed = cidr.and_then(|c| match c.parse() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(node = %self.nodes[i].name, error = %e, "ignoring the node's podCIDR");
                None
            }
        });
        self.directory.set_pod_cidr(i, parsed);
        let n = &mut self.nodes[i];
        if n.gone && n.uid.as_deref() != node.metadata.uid.as_deref() {
            // Someone created a Node of this name again: adopt it.
            n.gone = false;
            n.registered = true;
            n.lease_exists = None;
            n.uid = node.metadata.uid.clone();
            self.ready.push_back((i, Task::Lease));
        }
        let n = &mut self.nodes[i];
        n.conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        if n.registered && !n.gone && node::status::needs_report(&n.conditions) {
            // Report at once, but no more often than the status update frequency.
            let min_gap = self.config.node_status_update_frequency;
            let wait = n
                .last_report
                .map_or(Duration::ZERO, |t| min_gap.saturating_sub(t.elapsed()));
            tracing::info!(node = %n.name, ?wait, "node conditions changed by someone else; reporting status");
            self.schedule(i, Task::Status, wait);
        }
        Some(i)
    }

    fn deleted(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.gone {
            return;
        }
        tracing::warn!(node = %n.name, "the Node was deleted; it is not registered again until the kubelet restarts");
        n.gone = true;
        if let Some(key) = n.report_key.take() {
            self.timers.try_remove(&key);
        }
        self.directory.set_pod_cidr(i, None);
    }
}
