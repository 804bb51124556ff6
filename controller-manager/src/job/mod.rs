//! The Job controller (upstream `job-controller`): runs a Job's pods to completion —
//! completions and parallelism, NonIndexed and Indexed modes, backoff limits (per Job and per
//! index), `podFailurePolicy`, `activeDeadlineSeconds`, suspension, `successPolicy` — and tracks
//! finished pods with the `batch.kubernetes.io/job-tracking` finalizer.

pub mod decide;
pub mod indexes;
mod pods;
pub mod policy;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use component_base::events::{Event, EventType, Recorder};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::queue::WorkQueue;
use crate::support::watched;

pub use decide::Backoff;

/// The controller's name in events and `managedBy`.
pub const CONTROLLER_NAME: &str = "job-controller";
/// `spec.managedBy` value naming this controller.
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";
/// How long unobserved creations and deletions hold back a Job's next sync (upstream's 5 min).
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

/// Settings of the Job controller.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// Jobs synced at once (`--concurrent-job-syncs`, 5).
    pub workers: u16,
    /// Pod recreation backoff after failures (10 s doubling up to 6 min).
    pub backoff: Backoff,
    /// Who records events (the leader identity or host name).
    pub identity: String,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            workers: 5,
            backoff: Backoff::default(),
            identity: "kube-controller-manager".into(),
        }
    }
}

/// Job controller failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

type Key = (String, String);

/// Creations and deletions not yet seen in the pod watch, per Job (so a lagging watch does not
/// make the controller create pods twice).
#[derive(Default)]
struct Expectations(Mutex<HashMap<Key, Pending>>);

/// Pod names created and deleted but not yet seen so, and when last expected.
type Pending = (HashSet<String>, HashSet<String>, Instant);

impl Expectations {
    fn expect(&self, key: &Key, created: Option<String>, deleted: Option<String>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(key.clone())
            .or_insert_with(|| (HashSet::new(), HashSet::new(), Instant::now()));
        entry.0.extend(created);
        entry.1.extend(deleted);
        entry.2 = Instant::now();
    }

    fn satisfied(&self, key: &Key, pods: &[&Pod]) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some((created, deleted, at)) = map.get_mut(key) else {
            return true;
        };
        let seen: HashSet<String> = pods.iter().map(|p| p.name_any()).collect();
        created.retain(|n| !seen.contains(n));
        deleted.retain(|n| {
            pods.iter()
                .any(|p| &p.name_any() == n && p.metadata.deletion_timestamp.is_none())
        });
        if (created.is_empty() && deleted.is_empty()) || at.elapsed() > EXPECTATIONS_TIMEOUT {
            map.remove(key);
            return true;
        }
        false
    }

    fn forget(&self, key: &Key) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

struct Ctx {
    client: Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    recorder: Recorder,
    expectations: Expectations,
    backoff: Backoff,
    queue: WorkQueue<Key>,
}

/// The Job a pod belongs to (its controller reference).
fn owning_job(pod: &Pod) -> Option<(String, String)> {
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Job" && o.api_version.starts_with("batch/"))?;
    Some((owner.uid.clone(), owner.name.clone()))
}

/// Runs the Job controller until `shutdown` is cancelled.
pub async fn run(client: Client, config: JobConfig, shutdown: CancellationToken) -> Result<(), Error> {
    // Upstream's DefaultJobApiBackOff (1 s) up to MaxJobApiBackOff (1 min).
    let queue: WorkQueue<Key> = WorkQueue::new(Duration::from_secs(1), Duration::from_secs(60));
    let q = queue.clone();
    let jobs = watched::spawn(
        Api::<Job>::all(client.clone()),
        shutdown.clone(),
        move |job: &Job| {
            q.add((job.namespace().unwrap_or_default(), job.name_any()));
        },
    );
    let (q, job_store) = (queue.clone(), jobs.clone());
    let pods = watched::spawn(
        Api::<Pod>::all(client.clone()),
        shutdown.clone(),
        move |pod: &Pod| {
            if let Some((_, name)) = owning_job(pod) {
                q.add((pod.namespace().unwrap_or_default(), name));
            } else {
                for job in job_store.state_filter(|j| adoptable(j, pod)) {
                    q.add((job.namespace().unwrap_or_default(), job.name_any()));
                }
            }
        },
    );
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = async { tokio::try_join!(jobs.wait_until_ready(), pods.wait_until_ready()) } => {
            if r.is_err() {
                return Ok(());
            }
        }
    }
    let ctx = Arc::new(Ctx {
        recorder: component_base::events::recorder(client.clone(), CONTROLLER_NAME, &config.identity),
        client,
        jobs,
        pods,
        expectations: Expectations::default(),
        backoff: config.backoff,
        queue: queue.clone(),
    });
    let workers: Vec<_> = (0..config.workers.max(1))
        .map(|_| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                while let Some(key) = ctx.queue.get().await {
                    match sync(&ctx, &key).await {
                        Ok(()) => ctx.queue.forget(&key),
                        Err(e) => {
                            tracing::warn!(namespace = %key.0, job = %key.1, "job sync failed: {e}");
                            ctx.queue.add_rate_limited(key.clone());
                        }
                    }
                    ctx.queue.done(&key);
                }
            })
        })
        .collect();
    shutdown.cancelled().await;
    queue.shut_down();
    for w in workers {
        let _ = w.await;
    }
    Ok(())
}

async fn record(ctx: &Ctx, job: &Job, warning: bool, reason: &str, note: String) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &job.object_ref(&())).await {
        tracing::debug!("recording event {reason}: {e}");
    }
}

async fn remove_finalizer(api: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    let rest: Vec<&String> = pod
        .finalizers()
        .iter()
        .filter(|f| *f != decide::TRACKING_FINALIZER)
        .collect();
    let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": pod.resource_version()}});
    match api
        .patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Adopts pods the Job's selector matches that have no controller (upstream's ClaimPods):
/// they get the Job as controller and the tracking finalizer; their update queues the Job again.
async fn adopt_orphans(ctx: &Ctx, job: &Job, api: &Api<Pod>) -> Result<Vec<Pod>, Error> {
    let mut adopted = Vec::new();
    let orphans = ctx.pods.state_filter(|p| adoptable(job, p));
    for pod in orphans {
        let mut owners = pod.owner_references().to_vec();
        owners.push(pods::controller_ref(job));
        let mut finalizers = pod.finalizers().to_vec();
        if !finalizers.iter().any(|f| f == decide::TRACKING_FINALIZER) {
            finalizers.push(decide::TRACKING_FINALIZER.into());
        }
        let patch = json!({"metadata": {"ownerReferences": owners, "finalizers": finalizers,
            "resourceVersion": pod.resource_version()}});
        match api
            .patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(p) => {
                tracing::info!(job = %job.name_any(), pod = %pod.name_any(), "adopted an orphan pod");
                adopted.push(p);
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(adopted)
}

/// True when `pod` has no controller and `job`'s selector picks it.
fn adoptable(job: &Job, pod: &Pod) -> bool {
    if pod.namespace() != job.namespace()
        || pod.metadata.deletion_timestamp.is_some()
        || pod.owner_references().iter().any(|o| o.controller == Some(true))
    {
        return false;
    }
    let Some(selector) = job.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    match api_util::labels::LabelSelector::from_label_selector(selector) {
        Ok(s) => !s.is_empty() && s.matches(pod.labels()),
        Err(e) => {
            tracing::debug!(job = %job.name_any(), "unusable selector: {e:?}");
            false
        }
    }
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<(), Error> {
    let (ns, name) = key;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let Some(job) = ctx.jobs.get(&ObjectRef::new(name).within(ns)) else {
        // The Job is gone: its pods must not stay blocked by the tracking finalizer.
        ctx.expectations.forget(key);
        let orphans = ctx.pods.state_filter(|p| {
            p.namespace().as_deref() == Some(ns)
                && owning_job(p).is_some_and(|(_, n)| &n == name)
                && p.finalizers().iter().any(|f| f == decide::TRACKING_FINALIZER)
        });
        for pod in orphans {
            remove_finalizer(&pods_api, &pod).await?;
        }
        return Ok(());
    };
    if job
        .spec
        .as_ref()
        .and_then(|s| s.managed_by.as_deref())
        .is_some_and(|m| m != MANAGED_BY)
    {
        return Ok(());
    }
    let uid = job.uid().unwrap_or_default();
    let owned = ctx.pods.state_filter(|p| {
        p.namespace().as_deref() == Some(ns) && owning_job(p).is_some_and(|(u, _)| u == uid)
    });
    let adopted = if job.metadata.deletion_timestamp.is_none() {
        adopt_orphans(ctx, &job, &pods_api).await?
    } else {
        Vec::new()
    };
    let pods: Vec<&Pod> = owned.iter().map(|p| p.as_ref()).chain(adopted.iter()).collect();
    if job.metadata.deletion_timestamp.is_some() {
        for pod in pods
            .iter()
            .filter(|p| p.finalizers().iter().any(|f| f == decide::TRACKING_FINALIZER))
        {
            remove_finalizer(&pods_api, pod).await?;
        }
        return Ok(());
    }
    if !ctx.expectations.satisfied(key, &pods) {
        return Ok(());
    }
    let plan = decide::plan(&job, &pods, jiff::Timestamp::now(), ctx.backoff);
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);

    let mut status = plan.status.clone();
    let before = status.active.unwrap_or(0);
    // Pods first (creations may fail), then the status; finalizers only after the status
    // recorded the pods they were holding.
    let mut created = 0;
    let mut create_error = None;
    for (index, failures) in &plan.create {
        let pod = pods::new_pod(&job, *index, *failures);
        match pods_api.create(&PostParams::default(), &pod).await {
            Ok(p) => {
                created += 1;
                ctx.expectations.expect(key, Some(p.name_any()), None);
                record(
                    ctx,
                    &job,
                    false,
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.name_any()),
                )
                .await;
            }
            Err(e) => {
                record(ctx, &job, true, "FailedCreate", format!("Error creating: {e}")).await;
                create_error = Some(e);
                break;
            }
        }
    }
    status.active = Some(before - (plan.create.len() as i32 - created));
    for pod in &plan.delete {
        ctx.expectations.expect(key, None, Some(pod.clone()));
        match pods_api.delete(pod, &DeleteParams::background()).await {
            Ok(_) => {
                record(
                    ctx,
                    &job,
                    false,
                    "SuccessfulDelete",
                    format!("Deleted pod: {pod}"),
                )
                .await
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if job.status.as_ref() != Some(&status) {
        let mut updated = (*job).clone();
        updated.status = Some(status);
        jobs_api
            .replace_status(name, &PostParams::default(), &updated)
            .await?;
    }
    for (warning, reason, note) in plan.events {
        record(ctx, &job, warning, reason, note).await;
    }
    for pod in pods
        .iter()
        .filter(|p| plan.remove_finalizers.contains(&p.name_any()))
    {
        remove_finalizer(&pods_api, pod).await?;
    }
    if let Some(after) = plan.requeue_after {
        ctx.queue
            .add_after(key.clone(), after + Duration::from_millis(10));
    }
    match create_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
