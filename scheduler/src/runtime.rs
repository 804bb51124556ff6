//! The running scheduler: informers feed the [`Cache`] and the [`SchedulingQueue`]; one loop
//! pops pods, runs [`schedule_one`] on the cache's snapshot, assumes the pod on its node and
//! binds it in the background (bounded), or reports why it does not fit (condition and event)
//! and preempts lower-priority pods when that helps.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::runtime::watcher;
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::cache::{Cache, is_terminal};
use crate::cluster_event::ClusterEvent;
use crate::informer::{self, Change};
use crate::metrics::Metrics;
use crate::nominator::Nominator;
use crate::preemption::{self, Plan};
use crate::profile::Profile;
use crate::queue::{PodKey, QueueConfig, QueuedPod, SchedulingQueue, is_gated};
use crate::schedule::{ScheduleError, SchedulingState, schedule_one_with_nominated};
use crate::snapshot::PodInfo;
use crate::writes::{self, EventSink, PodEvent};

mod volume_prebind;

/// Everything [`run`] needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The profiles; pods whose `spec.schedulerName` names none are left alone.
    pub profiles: Vec<Profile>,
    /// Backoff and unschedulable timings.
    pub queue: QueueConfig,
    /// Bindings in flight at most.
    pub bind_concurrency: usize,
    /// `reportingInstance` of the events (the leader identity or host name).
    pub instance: String,
    /// Metrics to update, if registered.
    pub metrics: Option<Metrics>,
    /// Set once the informers have listed everything (for `/readyz`).
    pub synced: Arc<AtomicBool>,
    /// How long PreBind waits for a pod's claims to be bound (VolumeBinding's
    /// `bindTimeoutSeconds`, 600 s).
    pub bind_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profiles: vec![Profile::default_profile()],
            queue: QueueConfig::default(),
            bind_concurrency: 64,
            instance: component_base::leader::default_identity(),
            metrics: None,
            synced: Arc::default(),
            bind_timeout: Duration::from_secs(600),
        }
    }
}

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// Building the API client.
    #[error(transparent)]
    Client(#[from] component_base::ClientError),
    /// Serving health and metrics.
    #[error(transparent)]
    Serving(#[from] component_base::ServingError),
    /// Leader election.
    #[error(transparent)]
    LeaderElection(#[from] component_base::LeaderElectionError),
    /// Registering metrics.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The upstream name of the event reporter.
pub const REPORTING_CONTROLLER: &str = "default-scheduler";

struct State {
    cache: Cache,
    queue: SchedulingQueue,
    nominator: Nominator,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    profiles: HashMap<String, Profile>,
    client: kube::Client,
    events: EventSink,
    metrics: Option<Metrics>,
    /// Notified on every claim or volume change (PreBind waits on it).
    volumes_changed: Notify,
    bind_timeout: Duration,
}

fn key_of(pod: &PodInfo) -> PodKey {
    (pod.namespace.clone(), pod.name.clone())
}

fn scheduler_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or(crate::profile::DEFAULT_SCHEDULER_NAME)
}

impl Shared {
    fn moved(&self, st: &mut State, event: ClusterEvent) {
        let n = st.queue.on_event(event, Instant::now());
        if n > 0 {
            if let Some(m) = &self.metrics {
                m.incoming_pods
                    .with_label_values(&["active_or_backoff", event.label()])
                    .inc_by(n as u64);
            }
            self.wake.notify_one();
        }
    }

    fn responsible(&self, pod: &PodInfo) -> bool {
        self.profiles.contains_key(scheduler_name(&pod.pod)) && !pod.terminating && !is_terminal(pod)
    }

    /// A pod from the watch.
    fn on_pod(&self, pod: Pod) {
        let info = Arc::new(PodInfo::new(pod));
        let key = key_of(&info);
        if info.node_name.is_some() {
            let mut st = self.state.lock();
            st.queue.delete(&key);
            st.nominator.remove(&key);
            if let Some(ev) = st.cache.set_assigned_pod(info) {
                self.moved(&mut st, ev);
            }
            return;
        }
        let responsible = self.responsible(&info);
        let gated = responsible && is_gated(&info);
        {
            let mut st = self.state.lock();
            if st.cache.is_assumed(&key) {
                // Being bound: the watch will confirm it.
                return;
            }
            if responsible {
                st.queue.add(info.clone(), Instant::now());
                st.nominator.update(info.clone());
                self.wake.notify_one();
            } else {
                st.queue.delete(&key);
                st.nominator.remove(&key);
            }
        }
        if gated {
            let client = self.client.clone();
            tokio::spawn(async move {
                if let Err(e) = writes::set_unscheduled(
                    &client,
                    &info.pod,
                    writes::REASON_SCHEDULING_GATED,
                    writes::MESSAGE_SCHEDULING_GATED,
                    None,
                )
                .await
                {
                    tracing::debug!(pod = %format!("{}/{}", info.namespace, info.name), error = %e, "setting SchedulingGated");
                }
            });
        }
    }

    fn on_pod_delete(&self, pod: &Pod) {
        let key = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        let mut st = self.state.lock();
        st.queue.delete(&key);
        st.nominator.remove(&key);
        if let Some(ev) = st.cache.remove_pod(&key) {
            self.moved(&mut st, ev);
        }
    }

    fn on_pods(&self, change: Change<Pod>) {
        match change {
            Change::Upsert(p) => self.on_pod(p),
            Change::Delete(p) => self.on_pod_delete(&p),
            Change::Relisted(pods) => {
                let keys: HashSet<PodKey> = pods
                    .iter()
                    .map(|p| {
                        (
                            p.metadata.namespace.clone().unwrap_or_default(),
                            p.metadata.name.clone().unwrap_or_default(),
                        )
                    })
                    .collect();
                {
                    let mut st = self.state.lock();
                    for ev in st.cache.retain_pods(&keys) {
                        self.moved(&mut st, ev);
                    }
                    st.queue.retain(&keys);
                }
                for p in pods {
                    self.on_pod(p);
                }
            }
        }
    }

    fn on_nodes(&self, change: Change<Node>) {
        let mut st = self.state.lock();
        match change {
            Change::Upsert(n) => {
                if let Some(ev) = st.cache.set_node(n) {
                    self.moved(&mut st, ev);
                }
            }
            Change::Delete(n) => {
                if let Some(ev) = st
                    .cache
                    .delete_node(n.metadata.name.as_deref().unwrap_or_default())
                {
                    self.moved(&mut st, ev);
                }
            }
            Change::Relisted(nodes) => {
                let names: HashSet<String> = nodes.iter().filter_map(|n| n.metadata.name.clone()).collect();
                for ev in st.cache.retain_nodes(&names) {
                    self.moved(&mut st, ev);
                }
                for n in nodes {
                    if let Some(ev) = st.cache.set_node(n) {
                        self.moved(&mut st, ev);
                    }
                }
            }
        }
    }

    fn on_namespaces(&self, change: Change<Namespace>) {
        let mut st = self.state.lock();
        let list = match change {
            Change::Upsert(ns) => vec![ns],
            Change::Delete(_) => Vec::new(),
            Change::Relisted(all) => all,
        };
        for ns in list {
            if let Some(ev) = st.cache.set_namespace(&ns) {
                self.moved(&mut st, ev);
            }
        }
    }

    fn on_pdbs(&self, change: Change<PodDisruptionBudget>) {
        let mut st = self.state.lock();
        match change {
            Change::Upsert(p) => st.cache.set_pdb(&p),
            Change::Delete(p) => st.cache.delete_pdb(
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default(),
            ),
            Change::Relisted(all) => {
                let keys: HashSet<PodKey> = all
                    .iter()
                    .map(|p| {
                        (
                            p.metadata.namespace.clone().unwrap_or_default(),
                            p.metadata.name.clone().unwrap_or_default(),
                        )
                    })
                    .collect();
                st.cache.retain_pdbs(&keys);
                for p in &all {
                    st.cache.set_pdb(p);
                }
            }
        }
    }
}

/// True unless listing StorageClasses is forbidden (the scheduler's identity lacks upstream's
/// `system:volume-scheduler` role): then claims are judged without their classes (as Immediate).
async fn storage_classes_readable(client: &kube::Client) -> bool {
    match Api::<StorageClass>::all(client.clone())
        .list(&kube::api::ListParams::default().limit(1))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 403 => {
            tracing::warn!(
                "StorageClasses are not readable: WaitForFirstConsumer claims cannot be scheduled (grant system:volume-scheduler)"
            );
            false
        }
        _ => true,
    }
}

fn meta_key(meta: &kube::api::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Shared {
    fn on_claims(&self, change: Change<PersistentVolumeClaim>) {
        let mut st = self.state.lock();
        match change {
            Change::Upsert(c) => {
                if let Some(ev) = st.cache.volumes_mut().set_claim(c) {
                    self.moved(&mut st, ev);
                }
            }
            Change::Delete(c) => {
                let (ns, name) = meta_key(&c.metadata);
                st.cache.volumes_mut().delete_claim(&ns, &name);
            }
            Change::Relisted(all) => {
                let keys: HashSet<PodKey> = all.iter().map(|c| meta_key(&c.metadata)).collect();
                st.cache.volumes_mut().retain_claims(&keys);
                for c in all {
                    if let Some(ev) = st.cache.volumes_mut().set_claim(c) {
                        self.moved(&mut st, ev);
                    }
                }
            }
        }
        self.volumes_changed.notify_waiters();
    }

    fn on_volumes(&self, change: Change<PersistentVolume>) {
        let mut st = self.state.lock();
        match change {
            Change::Upsert(v) => {
                if let Some(ev) = st.cache.volumes_mut().set_pv(v) {
                    self.moved(&mut st, ev);
                }
            }
            Change::Delete(v) => st.cache.volumes_mut().delete_pv(&meta_key(&v.metadata).1),
            Change::Relisted(all) => {
                let names: HashSet<String> = all.iter().map(|v| meta_key(&v.metadata).1).collect();
                st.cache.volumes_mut().retain_pvs(&names);
                for v in all {
                    if let Some(ev) = st.cache.volumes_mut().set_pv(v) {
                        self.moved(&mut st, ev);
                    }
                }
            }
        }
        self.volumes_changed.notify_waiters();
    }

    fn on_classes(&self, change: Change<StorageClass>) {
        let mut st = self.state.lock();
        match change {
            Change::Upsert(c) => {
                if let Some(ev) = st.cache.volumes_mut().set_class(c) {
                    self.moved(&mut st, ev);
                }
            }
            Change::Delete(c) => st.cache.volumes_mut().delete_class(&meta_key(&c.metadata).1),
            Change::Relisted(all) => {
                let names: HashSet<String> = all.iter().map(|c| meta_key(&c.metadata).1).collect();
                st.cache.volumes_mut().retain_classes(&names);
                for c in all {
                    if let Some(ev) = st.cache.volumes_mut().set_class(c) {
                        self.moved(&mut st, ev);
                    }
                }
            }
        }
    }
}

/// What one scheduling attempt decided (computed under the lock, acted on outside it).
enum Outcome {
    Bind(String),
    Unschedulable { message: String, plan: Option<Plan> },
    Skip,
}

fn attempt(shared: &Shared, st: &mut State, qp: &QueuedPod, cycle: &mut SchedulingState) -> Outcome {
    let key = key_of(&qp.pod);
    let Some(profile) = shared.profiles.get(scheduler_name(&qp.pod.pod)) else {
        st.queue.delete(&key);
        return Outcome::Skip;
    };
    let now = Instant::now();
    match schedule_one_with_nominated(
        &qp.pod,
        st.cache.snapshot(),
        profile,
        cycle,
        st.nominator.by_node(),
    ) {
        Ok(result) => match st.cache.assume(qp.pod.clone(), &result.node) {
            Ok(()) => {
                st.queue.done(&key);
                st.nominator.remove(&key);
                Outcome::Bind(result.node)
            }
            Err(e) => {
                tracing::debug!(pod = %format!("{}/{}", key.0, key.1), error = %e, "not assuming");
                st.queue.done(&key);
                Outcome::Skip
            }
        },
        Err(ScheduleError::NoNodes) => {
            st.queue.failed(&key, BTreeSet::new(), now);
            Outcome::Unschedulable {
                message: ScheduleError::NoNodes.to_string(),
                plan: None,
            }
        }
        Err(ScheduleError::Fit(err)) => {
            let plan = if err.preemption_candidates.is_empty() {
                None
            } else {
                let pdbs: Vec<_> = st.cache.pdbs().collect();
                preemption::plan(
                    &qp.pod,
                    st.cache.snapshot(),
                    profile,
                    &err.preemption_candidates,
                    &pdbs,
                )
            };
            st.queue
                .failed(&key, err.diagnosis.unschedulable_plugins.clone(), now);
            Outcome::Unschedulable {
                message: err.to_string(),
                plan,
            }
        }
    }
}

impl Shared {
    /// Waits for the next pod to attempt; `None` on shutdown.
    async fn next(&self, shutdown: &CancellationToken) -> Option<QueuedPod> {
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            let now = Instant::now();
            let (popped, next_backoff) = {
                let mut st = self.state.lock();
                (st.queue.pop(now), st.queue.next_backoff_expiry())
            };
            if let Some(qp) = popped {
                return Some(qp);
            }
            let wait = next_backoff
                .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now))
                .min(Duration::from_secs(1));
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn record(&self, result: &str, profile: &str, started: Instant) {
        if let Some(m) = &self.metrics {
            m.schedule_attempts.with_label_values(&[result, profile]).inc();
            m.attempt_duration
                .with_label_values(&[result, profile])
                .observe(started.elapsed().as_secs_f64());
        }
    }
}

async fn scheduling_loop(shared: Arc<Shared>, bind_concurrency: usize, shutdown: CancellationToken) {
    let binds = Arc::new(Semaphore::new(bind_concurrency.max(1)));
    let mut cycle = SchedulingState::new();
    while let Some(qp) = shared.next(&shutdown).await {
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            p = binds.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let started = Instant::now();
        let outcome = {
            let mut st = shared.state.lock();
            attempt(&shared, &mut st, &qp, &mut cycle)
        };
        let profile = scheduler_name(&qp.pod.pod).to_string();
        match outcome {
            Outcome::Skip => {}
            Outcome::Bind(node) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    bind_assumed(&shared, qp, &node, &profile, started).await;
                    drop(permit);
                });
            }
            Outcome::Unschedulable { message, plan } => {
                drop(permit);
                shared.record("unschedulable", &profile, started);
                report_unschedulable(&shared, &qp, message, plan);
            }
        }
        tokio::task::consume_budget().await;
    }
}

async fn bind_assumed(shared: &Shared, qp: QueuedPod, node: &str, profile: &str, started: Instant) {
    let pod = &qp.pod;
    let bound = match volume_prebind::pre_bind(shared, pod, node).await {
        Ok(()) => writes::bind(&shared.client, &pod.pod, node).await.map_err(|e| {
            let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
            (format!("Binding rejected: {e}"), gone)
        }),
        Err(e) => Err((format!("running PreBind plugin \"VolumeBinding\": {e}"), false)),
    };
    match bound {
        Ok(()) => {
            shared.record("scheduled", profile, started);
            shared.events.send(PodEvent {
                regarding: writes::pod_ref(&pod.pod),
                related: None,
                warning: false,
                reason: "Scheduled",
                action: "Binding",
                note: format!("Successfully assigned {}/{} to {node}", pod.namespace, pod.name),
            });
        }
        Err((message, gone)) => {
            shared.record("error", profile, started);
            let key = key_of(pod);
            tracing::info!(pod = %format!("{}/{}", key.0, key.1), %node, error = %message, "binding failed");
            {
                let mut st = shared.state.lock();
                if st.cache.forget_assumed(&key) {
                    shared.moved(&mut st, ClusterEvent::AssignedPodDelete);
                }
                if !gone {
                    st.queue
                        .requeue(pod.clone(), qp.attempts, qp.initial_enqueue, Instant::now());
                }
            }
            shared.wake.notify_one();
            if !gone {
                shared.events.send(PodEvent {
                    regarding: writes::pod_ref(&pod.pod),
                    related: None,
                    warning: true,
                    reason: "FailedScheduling",
                    action: "Scheduling",
                    note: message,
                });
            }
        }
    }
}

fn report_unschedulable(shared: &Arc<Shared>, qp: &QueuedPod, message: String, plan: Option<Plan>) {
    let pod = qp.pod.clone();
    tracing::debug!(pod = %format!("{}/{}", pod.namespace, pod.name), %message, "unable to schedule pod");
    shared.events.send(PodEvent {
        regarding: writes::pod_ref(&pod.pod),
        related: None,
        warning: true,
        reason: "FailedScheduling",
        action: "Scheduling",
        note: message.clone(),
    });
    let shared = shared.clone();
    tokio::spawn(async move {
        let nominated = plan.as_ref().map(|p| p.node.as_str());
        if let Err(e) = writes::set_unscheduled(
            &shared.client,
            &pod.pod,
            writes::REASON_UNSCHEDULABLE,
            &message,
            nominated,
        )
        .await
        {
            tracing::info!(pod = %format!("{}/{}", pod.namespace, pod.name), error = %e, "updating the PodScheduled condition");
        }
        if let Some(plan) = plan {
            preempt(&shared, &pod, plan).await;
        }
    });
}

async fn preempt(shared: &Shared, preemptor: &PodInfo, plan: Plan) {
    if let Some(m) = &shared.metrics {
        m.preemption_attempts.inc();
        m.preemption_victims.observe(plan.victims.pods.len() as f64);
    }
    let scheduler = scheduler_name(&preemptor.pod).to_string();
    let uid = preemptor.pod.metadata.uid.clone().unwrap_or_default();
    let victims = plan.victims.pods.iter().map(|victim| {
        let scheduler = scheduler.as_str();
        let uid = uid.as_str();
        let node = plan.node.as_str();
        async move {
            match writes::evict_victim(&shared.client, &victim.pod, scheduler).await {
                Ok(()) => {
                    tracing::info!(victim = %format!("{}/{}", victim.namespace, victim.name), preemptor = %format!("{}/{}", preemptor.namespace, preemptor.name), %node, "preempted");
                    shared.events.send(PodEvent {
                        regarding: writes::pod_ref(&victim.pod),
                        related: Some(writes::pod_ref(&preemptor.pod)),
                        warning: false,
                        reason: "Preempted",
                        action: "Preempting",
                        note: format!("Preempted by pod {uid} on node {node}"),
                    });
                }
                Err(e) => {
                    tracing::warn!(victim = %format!("{}/{}", victim.namespace, victim.name), error = %e, "preempting a victim failed");
                }
            }
        }
    });
    futures::future::join_all(victims).await;
}

async fn housekeeping(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        n += 1;
        let pending = {
            let mut st = shared.state.lock();
            if n.is_multiple_of(30) {
                st.queue.flush_unschedulable(Instant::now());
            }
            st.queue.pending()
        };
        if pending.active > 0 {
            shared.wake.notify_one();
        }
        if let Some(m) = &shared.metrics {
            m.set_pending(pending);
        }
    }
}

/// Runs the scheduler until `shutdown`: informers on pods, nodes, namespaces and
/// PodDisruptionBudgets; scheduling starts once they have listed everything.
pub async fn run(config: Config, client: kube::Client, shutdown: CancellationToken) -> Result<(), Error> {
    if config.profiles.is_empty() {
        return Err(Error::Config("no scheduling profiles".into()));
    }
    let profiles: HashMap<String, Profile> = config
        .profiles
        .iter()
        .map(|p| (p.scheduler_name.clone(), p.clone()))
        .collect();
    let recorder = component_base::events::recorder(client.clone(), REPORTING_CONTROLLER, &config.instance);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            cache: Cache::new(),
            queue: SchedulingQueue::new(config.queue.clone()),
            nominator: Nominator::default(),
        }),
        wake: Notify::new(),
        profiles,
        client: client.clone(),
        events: EventSink::start(recorder),
        metrics: config.metrics.clone(),
        volumes_changed: Notify::new(),
        bind_timeout: config.bind_timeout,
    });
    let stop = shutdown.child_token();
    let classes_readable = storage_classes_readable(&client).await;
    let flags: Vec<Arc<AtomicBool>> = (0..7).map(|_| Arc::default()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    {
        let s = shared.clone();
        tasks.spawn(informer::run(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            flags[0].clone(),
            stop.clone(),
            move |c| s.on_nodes(c),
        ));
        let s = shared.clone();
        tasks.spawn(informer::run(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
            flags[1].clone(),
            stop.clone(),
            move |c| s.on_namespaces(c),
        ));
        let s = shared.clone();
        tasks.spawn(informer::run(
            Api::<PodDisruptionBudget>::all(client.clone()),
            watcher::Config::default(),
            flags[2].clone(),
            stop.clone(),
            move |c| s.on_pdbs(c),
        ));
        let s = shared.clone();
        tasks.spawn(informer::run(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            flags[3].clone(),
            stop.clone(),
            move |c| s.on_pods(c),
        ));
        let s = shared.clone();
        tasks.spawn(informer::run(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            watcher::Config::default(),
            flags[4].clone(),
            stop.clone(),
            move |c| s.on_claims(c),
        ));
        let s = shared.clone();
        tasks.spawn(informer::run(
            Api::<PersistentVolume>::all(client.clone()),
            watcher::Config::default(),
            flags[5].clone(),
            stop.clone(),
            move |c| s.on_volumes(c),
        ));
        if classes_readable {
            let s = shared.clone();
            tasks.spawn(informer::run(
                Api::<StorageClass>::all(client.clone()),
                watcher::Config::default(),
                flags[6].clone(),
                stop.clone(),
                move |c| s.on_classes(c),
            ));
        } else {
            flags[6].store(true, Ordering::Release);
        }
    }
    // Wait for the caches, as upstream's WaitForCacheSync.
    loop {
        if flags.iter().all(|f| f.load(Ordering::Acquire)) {
            break;
        }
        tokio::select! {
            () = shutdown.cancelled() => {
                stop.cancel();
                while tasks.join_next().await.is_some() {}
                return Ok(());
            }
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    config.synced.store(true, Ordering::Release);
    tracing::info!(profiles = ?config.profiles.iter().map(|p| p.scheduler_name.as_str()).collect::<Vec<_>>(), "caches synced; scheduling");
    tasks.spawn(housekeeping(shared.clone(), stop.clone()));
    scheduling_loop(shared, config.bind_concurrency, stop.clone()).await;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}
