//! The pod loop: one watch of the pods bound to any node, filtered to ours; each pod simulated
//! by a [`SimPod`], woken by one timer queue when its next transition is due, and its status
//! written through `pods/status` whenever what the kubelet would report changed.
//!
//! Status writes are strategic merge patches of the kubelet's own fields (phase, IPs, start
//! time, container statuses, and the kubelet's conditions, merged by type so that conditions
//! other writers own stay), without a resourceVersion precondition: they never conflict with
//! other writers, and only change what the kubelet owns. The patch names the pod's uid, so a
//! pod re-created under the same name is never written with its predecessor's status.
//!
//! Deleted pods (`deletionTimestamp` set) stop after the shorter of their grace period and the
//! simulated stop time; once their terminal status is written they get the final delete
//! (`gracePeriodSeconds=0` with a uid precondition), as upstream's status manager does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{HostIP, Pod, PodIP, PodStatus};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};

use super::Directory;
use super::ipam::RangeAllocator;
use super::pod::{Clock, SimPod, StopCause};
use crate::Config;
use crate::pod::status::{self as pod_status, ConditionInputs, FAILED, is_terminal};

/// Upstream's default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE: i64 = 30;
/// How long a pod that found no free IP waits before trying again.
const IP_RETRY: Duration = Duration::from_secs(10);

enum Outcome {
    Status(Box<Result<Pod, kube::Error>>, serde_json::Value),
    Deleted(Result<(), kube::Error>),
}

struct Tracked {
    pod: Pod,
    node: usize,
    sim: Option<SimPod>,
    ip: Option<IpAddr>,
    ip_owned: bool,
    timer: Option<delay_queue::Key>,
    sent: Option<serde_json::Value>,
    busy: bool,
    queued: bool,
    deleting: bool,
    delete_sent: bool,
    failures: u32,
}

struct PodLoop {
    client: kube::Client,
    config: Arc<Config>,
    directory: Arc<Directory>,
    pods: HashMap<String, Tracked>,
    allocators: HashMap<usize, RangeAllocator>,
    timers: DelayQueue<String>,
    queue: VecDeque<String>,
}

/// Runs the pod loop until `shutdown`.
pub(super) async fn run(
    client: kube::Client,
    config: Arc<Config>,
    directory: Arc<Directory>,
    shutdown: CancellationToken,
) {
    // Pod IPs come from the nodes' podCIDRs: wait for the first listing of the nodes.
    let mut synced = directory.synced.subscribe();
    tokio::select! {
        () = shutdown.cancelled() => return,
        _ = synced.wait_for(|s| *s) => {}
    }
    let mut state = PodLoop {
        client,
        config,
        directory,
        pods: HashMap::new(),
        allocators: HashMap::new(),
        timers: DelayQueue::new(),
        queue: VecDeque::new(),
    };
    state.run(shutdown).await;
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Whether resource version `a` is older than `b` (both numeric, as the API server writes them;
/// anything else counts as not older).
fn older(a: Option<&str>, b: Option<&str>) -> bool {
    match (
        a.and_then(|a| a.parse::<u64>().ok()),
        b.and_then(|b| b.parse::<u64>().ok()),
    ) {
        (Some(a), Some(b)) => a < b,
        _ => false,
    }
}

/// Drops what the loop never reads, to keep thousands of pods small.
fn trim(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.metadata.labels = None;
    pod.metadata.owner_references = None;
    if let Some(spec) = pod.spec.as_mut() {
        spec.volumes = None;
        spec.affinity = None;
        spec.tolerations = None;
        spec.topology_spread_constraints = None;
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.env = None;
            c.env_from = None;
            c.volume_mounts = None;
        }
    }
}

impl PodLoop {
    async fn run(&mut self, shutdown: CancellationToken) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut watch = watcher::watcher(api, watcher::Config::default().fields("spec.nodeName!="))
            .default_backoff()
            .boxed();
        let mut inflight: FuturesUnordered<BoxFuture<'static, (String, Outcome)>> = FuturesUnordered::new();
        let max = self.config.max_in_flight.max(1);
        let mut listed: HashSet<String> = HashSet::new();
        loop {
            while inflight.len() < max
                && let Some(uid) = self.queue.pop_front()
            {
                if let Some(f) = self.launch(&uid) {
                    inflight.push(f);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some((uid, outcome)) = inflight.next(), if !inflight.is_empty() => self.done(&uid, outcome),
                Some(expired) = self.timers.next(), if !self.timers.is_empty() => {
                    let uid = expired.into_inner();
                    if let Some(t) = self.pods.get_mut(&uid) {
                        t.timer = None;
                    }
                    self.process(&uid);
                }
                event = watch.next() => match event {
                    Some(Ok(Event::Init)) => listed.clear(),
                    Some(Ok(Event::InitApply(pod))) => {
                        if let Some(uid) = self.observe(pod) {
                            listed.insert(uid);
                        }
                    }
                    Some(Ok(Event::InitDone)) => {
                        let gone: Vec<String> = self.pods.keys().filter(|u| !listed.contains(*u)).cloned().collect();
                        for uid in gone {
                            self.forget(&uid);
                        }
                        listed.clear();
                    }
                    Some(Ok(Event::Apply(pod))) => {
                        self.observe(pod);
                    }
                    Some(Ok(Event::Delete(pod))) => {
                        if let Some(uid) = pod.metadata.uid {
                            self.forget(&uid);
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching pods"),
                    None => break,
                },
            }
        }
    }

    /// Takes in a pod from the watch. Returns its uid when it is on one of our nodes.
    fn observe(&mut self, mut pod: Pod) -> Option<String> {
        let node = pod.spec.as_ref()?.node_name.as_deref()?;
        let i = self.directory.index(node)?;
        let uid = pod.metadata.uid.clone()?;
        trim(&mut pod);
        let clock = Clock::current();
        if let Some(t) = self.pods.get_mut(&uid) {
            if older(
                pod.metadata.resource_version.as_deref(),
                t.pod.metadata.resource_version.as_deref(),
            ) {
                return Some(uid);
            }
            if let (Some(sim), Some(spec)) = (t.sim.as_mut(), pod.spec.as_ref()) {
                sim.update_images(spec, &clock);
            }
            t.pod = pod;
        } else {
            let t = Tracked {
                pod,
                node: i,
                sim: None,
                ip: None,
                ip_owned: false,
                timer: None,
                sent: None,
                busy: false,
                queued: false,
                deleting: false,
                delete_sent: false,
                failures: 0,
            };
            self.pods.insert(uid.clone(), t);
            self.start(&uid, &clock);
        }
        self.note_deletion(&uid, &clock);
        self.process(&uid);
        Some(uid)
    }

    /// Sets up a new pod: its IP and its simulation (none for a pod already terminal).
    fn start(&mut self, uid: &str, clock: &Clock) {
        let Some(t) = self.pods.get_mut(uid) else { return };
        let status = t.pod.status.clone().unwrap_or_default();
        if status.phase.as_deref().is_some_and(is_terminal) {
            return;
        }
        if t.pod.metadata.deletion_timestamp.is_some() && status.container_statuses.is_none() {
            // Deleted before it ever started here: nothing to run.
            return;
        }
        let host_network = t.pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
        let node = t.node;
        if host_network {
            t.ip = Some(self.directory.ip(node));
            t.ip_owned = false;
        } else {
            let Some(range) = self.directory.pod_range(node) else {
                tracing::warn!(pod = %name_of(&t.pod), "the node has no pod range (no podCIDR, cluster CIDR too small); the pod cannot start");
                return;
            };
            let alloc = self
                .allocators
                .entry(node)
                .or_insert_with(|| RangeAllocator::new(range));
            if alloc.cidr() != range {
                *alloc = RangeAllocator::new(range);
            }
            let existing = status.pod_ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok());
            match existing {
                Some(ip) => {
                    t.ip = Some(ip);
                    t.ip_owned = alloc.reserve(ip);
                }
                None => match alloc.allocate() {
                    Some(ip) => {
                        t.ip = Some(ip);
                        t.ip_owned = true;
                    }
                    None => {
                        tracing::warn!(pod = %name_of(&t.pod), range = %range, "no free pod IP on the node; retrying");
                        let key = self.timers.insert(uid.to_string(), IP_RETRY);
                        t.timer = Some(key);
                        return;
                    }
                },
            }
        }
        t.sent = None;
        t.sim = Some(SimPod::new(&t.pod, clock));
    }

    /// Starts the stop of a pod whose deletion was just seen.
    fn note_deletion(&mut self, uid: &str, clock: &Clock) {
        let Some(t) = self.pods.get_mut(uid) else { return };
        if t.deleting || t.pod.metadata.deletion_timestamp.is_none() {
            return;
        }
        t.deleting = true;
        let grace = t
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                t.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(DEFAULT_GRACE)
            .max(0);
        let stop = Duration::from_secs(grace.unsigned_abs()).min(self.config.stop_time);
        if let Some(sim) = t.sim.as_mut() {
            sim.stop_at(clock.now + stop, StopCause::Deleted);
        }
    }

    /// Plays the pod's due transitions, arms its timer, and queues it for a write.
    fn process(&mut self, uid: &str) {
        let clock = Clock::current();
        let Some(t) = self.pods.get_mut(uid) else { return };
        if t.sim.is_none() && t.ip.is_none() && !t.deleting && t.timer.is_none() {
            // Waiting for an IP (the retry timer fired).
            self.start(uid, &clock);
        }
        let Some(t) = self.pods.get_mut(uid) else { return };
        let next = t.sim.as_mut().and_then(|sim| sim.advance(&clock));
        if let Some(next) = next {
            let wait = next.saturating_duration_since(clock.now);
            match &t.timer {
                Some(key) => self.timers.reset(key, wait),
                None => t.timer = Some(self.timers.insert(uid.to_string(), wait)),
            }
        }
        if t.sim.as_ref().is_some_and(SimPod::is_done) && t.ip_owned {
            // The sandbox is gone: its IP may be handed out again (the status keeps showing it).
            if let (Some(ip), Some(alloc)) = (t.ip, self.allocators.get_mut(&t.node)) {
                alloc.release(ip);
            }
            t.ip_owned = false;
        }
        if !t.queued {
            t.queued = true;
            self.queue.push_back(uid.to_string());
        }
    }

    /// The status the kubelet reports for the pod now, if it simulates it.
    fn desired(&self, t: &Tracked, clock: &Clock) -> Option<PodStatus> {
        let sim = t.sim.as_ref()?;
        let spec = t.pod.spec.as_ref()?;
        let current = t.pod.status.clone().unwrap_or_default();
        let (init, regular) = sim.statuses(&t.pod, clock);
        let all: Vec<_> = init.iter().chain(&regular).cloned().collect();
        let mut phase = pod_status::phase(spec, &all, sim.stopped.is_some());
        let (mut reason, mut message) = (current.reason.clone(), current.message.clone());
        if sim.stopped == Some(StopCause::DeadlineExceeded) {
            phase = FAILED;
            reason = Some("DeadlineExceeded".into());
            message = Some("Pod was active on the node longer than the specified deadline".into());
        }
        let observed = current.phase.as_deref().unwrap_or_default();
        if is_terminal(observed) && phase != observed {
            // No way out of a terminal phase.
            phase = if observed == FAILED {
                FAILED
            } else {
                pod_status::SUCCEEDED
            };
        }
        let now = clock.time_at(clock.now);
        let conditions = pod_status::kubelet_conditions(ConditionInputs {
            spec,
            statuses: &all,
            phase,
            sandbox_ready: !is_terminal(phase),
            generation: t.pod.metadata.generation,
            current: current.conditions.as_deref().unwrap_or_default(),
            now: &now,
        });
        let host = self.directory.ip(t.node).to_string();
        let pod_ip = t.ip.map(|ip| ip.to_string());
        Some(PodStatus {
            phase: Some(phase.to_string()),
            conditions: Some(conditions),
            host_ip: Some(host.clone()),
            host_ips: Some(vec![HostIP { ip: host }]),
            pod_ip: pod_ip.clone(),
            pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
            start_time: Some(sim.start_time.clone()),
            init_container_statuses: (!init.is_empty()).then_some(init),
            container_statuses: Some(regular),
            observed_generation: t.pod.metadata.generation,
            // Kept as the API server set it; filled in when missing, as upstream's kubelet does.
            qos_class: current
                .qos_class
                .is_none()
                .then(|| pod_status::qos_class(spec).to_string()),
            reason,
            message,
            ..PodStatus::default()
        })
    }

    /// The next request for a queued pod: its status write, or its final delete.
    fn launch(&mut self, uid: &str) -> Option<BoxFuture<'static, (String, Outcome)>> {
        let clock = Clock::current();
        let t = self.pods.get(uid)?;
        if t.busy {
            // Queued again when the request in flight ends.
            if let Some(t) = self.pods.get_mut(uid) {
                t.queued = false;
            }
            return None;
        }
        let desired = self.desired(t, &clock);
        let t = self.pods.get_mut(uid)?;
        t.queued = false;
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            t.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = t.pod.metadata.name.clone().unwrap_or_default();
        let key = uid.to_string();
        if let Some(status) = desired {
            let json = match serde_json::to_value(&status) {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(pod = %name, error = %e, "encoding the pod status");
                    return None;
                }
            };
            if t.sent.as_ref() != Some(&json) {
                t.busy = true;
                let body = serde_json::json!({"metadata": {"uid": uid}, "status": &json});
                return Some(
                    async move {
                        let r = api
                            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&body))
                            .await;
                        (key, Outcome::Status(Box::new(r), json))
                    }
                    .boxed(),
                );
            }
        }
        let finished = t.sim.as_ref().is_none_or(SimPod::is_done);
        if t.deleting && finished && !t.delete_sent {
            t.busy = true;
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.to_string()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            return Some(
                async move {
                    let r = api.delete(&name, &params).await.map(|_| ());
                    (key, Outcome::Deleted(r))
                }
                .boxed(),
            );
        }
        None
    }

    fn done(&mut self, uid: &str, outcome: Outcome) {
        let Some(t) = self.pods.get_mut(uid) else { return };
        t.busy = false;
        let failed = match outcome {
            Outcome::Status(r, json) => match *r {
                Ok(pod) => {
                    t.sent = Some(json);
                    t.failures = 0;
                    let mut pod = pod;
                    trim(&mut pod);
                    let rv = pod.metadata.resource_version.as_deref();
                    if !older(rv, t.pod.metadata.resource_version.as_deref()) {
                        t.pod = pod;
                    }
                    None
                }
                Err(e) if is_status(&e, 404) => {
                    self.forget(uid);
                    return;
                }
                Err(e) => Some(("writing the pod status", e)),
            },
            Outcome::Deleted(Ok(())) => {
                t.delete_sent = true;
                None
            }
            Outcome::Deleted(Err(e)) if is_status(&e, 404) => {
                self.forget(uid);
                return;
            }
            Outcome::Deleted(Err(e)) if is_status(&e, 409) => {
                // The uid precondition failed: the pod was replaced; the watch brings the new one.
                t.delete_sent = true;
                None
            }
            Outcome::Deleted(Err(e)) => Some(("deleting the pod", e)),
        };
        if let Some((what, e)) = failed {
            t.failures = (t.failures + 1).min(6);
            let after = Duration::from_millis(500 << t.failures);
            tracing::warn!(pod = %name_of(&t.pod), error = %e, ?after, "{what} failed; retrying");
            match &t.timer {
                Some(key) => self.timers.reset(key, after),
                None => t.timer = Some(self.timers.insert(uid.to_string(), after)),
            }
            return;
        }
        if !t.queued {
            t.queued = true;
            self.queue.push_back(uid.to_string());
        }
    }

    /// Drops a pod that is gone, freeing its IP.
    fn forget(&mut self, uid: &str) {
        let Some(t) = self.pods.remove(uid) else { return };
        if let Some(key) = t.timer {
            self.timers.try_remove(&key);
        }
        if t.ip_owned
            && let (Some(ip), Some(alloc)) = (t.ip, self.allocators.get_mut(&t.node))
        {
            alloc.release(ip);
        }
    }
}

fn name_of(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}
