//! The CronJob controller (upstream `cronjob-controller`, v2): creates a Job per schedule time
//! (standard cron, `@hourly` and friends, `timeZone`), honouring `concurrencyPolicy`,
//! `startingDeadlineSeconds` and `suspend`; keeps `status.active`, `lastScheduleTime` and
//! `lastSuccessfulTime`; prunes finished Jobs beyond the history limits.

pub mod decide;

use std::sync::Arc;
use std::time::Duration;

use api_util::cron::{Schedule, ScheduleError};
use component_base::events::{Event, EventType, Recorder};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::support::queue::WorkQueue;
use crate::support::watched;

/// The controller's name in events.
pub const CONTROLLER_NAME: &str = "cronjob-controller";

/// The controller's idea of the current time (the wall clock; tests may shift it).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Settings of the CronJob controller.
#[derive(Clone)]
pub struct CronJobConfig {
    /// CronJobs synced at once (`--concurrent-cron-job-syncs`, 5).
    pub workers: u16,
    /// Who records events (the leader identity or host name).
    pub identity: String,
    /// The current time.
    pub clock: Clock,
}

impl std::fmt::Debug for CronJobConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CronJobConfig")
            .field("workers", &self.workers)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Default for CronJobConfig {
    fn default() -> Self {
        CronJobConfig {
            workers: 5,
            identity: "kube-controller-manager".into(),
            clock: Arc::new(Timestamp::now),
        }
    }
}

/// CronJob controller failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

type Key = (String, String);

struct Ctx {
    client: Client,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    recorder: Recorder,
    clock: Clock,
    queue: WorkQueue<Key>,
}

fn owning_cronjob(job: &Job) -> Option<(String, String)> {
    let o = job
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "CronJob" && o.api_version.starts_with("batch/"))?;
    Some((o.uid.clone(), o.name.clone()))
}

/// Runs the CronJob controller until `shutdown` is cancelled.
pub async fn run(client: Client, config: CronJobConfig, shutdown: CancellationToken) -> Result<(), Error> {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let q = queue.clone();
    let cronjobs = watched::spawn(
        Api::<CronJob>::all(client.clone()),
        shutdown.clone(),
        move |cj: &CronJob| {
            q.add((cj.namespace().unwrap_or_default(), cj.name_any()));
        },
    );
    let q = queue.clone();
    let jobs = watched::spawn(
        Api::<Job>::all(client.clone()),
        shutdown.clone(),
        move |job: &Job| {
            if let Some((_, name)) = owning_cronjob(job) {
                q.add((job.namespace().unwrap_or_default(), name));
            }
        },
    );
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = async { tokio::try_join!(cronjobs.wait_until_ready(), jobs.wait_until_ready()) } => {
            if r.is_err() {
                return Ok(());
            }
        }
    }
    let ctx = Arc::new(Ctx {
        recorder: component_base::events::recorder(client.clone(), CONTROLLER_NAME, &config.identity),
        client,
        cronjobs,
        jobs,
        clock: config.clock,
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
                            tracing::warn!(namespace = %key.0, cronjob = %key.1, "cronjob sync failed: {e}");
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

async fn record(ctx: &Ctx, cj: &CronJob, warning: bool, reason: &str, note: String) {
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
    if let Err(e) = ctx.recorder.publish(&event, &cj.object_ref(&())).await {
        tracing::debug!("recording event {reason}: {e}");
    }
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// Go's RFC 1123 with numeric zone, as upstream's MissSchedule message shows it.
fn rfc1123z(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<(), Error> {
    let (ns, name) = key;
    let Some(cj) = ctx.cronjobs.get(&ObjectRef::new(name).within(ns)) else {
        return Ok(());
    };
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let uid = cj.uid().unwrap_or_default();
    let owned = ctx.jobs.state_filter(|j| {
        j.namespace().as_deref() == Some(ns) && owning_cronjob(j).is_some_and(|(u, _)| u == uid)
    });
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let old_status = cj.status.clone().unwrap_or_default();
    let mut status = old_status.clone();

    // status.active follows the Jobs that still run.
    let mut active: Vec<ObjectReference> = Vec::new();
    for r in old_status.active.iter().flatten() {
        match owned.iter().find(|j| j.uid() == r.uid) {
            None => {
                let job_name = r.name.clone().unwrap_or_default();
                if jobs_api.get_opt(&job_name).await?.is_none() {
                    record(
                        ctx,
                        &cj,
                        true,
                        "MissingJob",
                        format!("Active job went missing: {job_name}"),
                    )
                    .await;
                } else {
                    active.push(r.clone());
                }
            }
            Some(job) => match decide::outcome(job) {
                None => active.push(r.clone()),
                Some(ok) => {
                    let cond = if ok { "Complete" } else { "Failed" };
                    record(
                        ctx,
                        &cj,
                        false,
                        "SawCompletedJob",
                        format!("Saw completed job: {}, status: {cond}", job.name_any()),
                    )
                    .await;
                }
            },
        }
    }
    for job in &owned {
        if decide::outcome(job).is_none() && !active.iter().any(|r| r.uid == job.uid()) {
            active.push(reference(job));
        }
        if decide::outcome(job) == Some(true) {
            let done = job.status.as_ref().and_then(|s| s.completion_time.clone());
            if let Some(done) = done
                && status.last_successful_time.as_ref().is_none_or(|t| t.0 < done.0)
            {
                status.last_successful_time = Some(done);
            }
        }
    }

    let spec = cj.spec.clone();
    let schedule = match Schedule::parse_in(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(s) => Some(s),
        Err(e) => {
            let (reason, note) = match &e {
                ScheduleError::TimeZone(tz) => ("UnknownTimeZone", format!("invalid timeZone: {tz:?}: {e}")),
                _ => (
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                ),
            };
            record(ctx, &cj, true, reason, note).await;
            None
        }
    };

    let mut requeue = None;
    // Finished Jobs beyond the history limits go.
    let owned_refs: Vec<&Job> = owned.iter().map(|j| j.as_ref()).collect();
    for job_name in decide::beyond_history(&cj, &owned_refs) {
        match jobs_api.delete(&job_name, &DeleteParams::background()).await {
            Ok(_) => {
                record(
                    ctx,
                    &cj,
                    false,
                    "SuccessfulDelete",
                    format!("Deleted job {job_name}"),
                )
                .await
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }

    if let Some(schedule) = schedule.filter(|_| spec.suspend != Some(true)) {
        let now = (ctx.clock)();
        requeue = decide::until_next(&schedule, now);
        if let Some(due) = decide::due(&cj, &schedule, now) {
            if due.missed > decide::MAX_MISSED {
                record(ctx, &cj, true, "TooManyMissedTimes", format!("too many missed start times: {}. Set or decrease .spec.startingDeadlineSeconds or check clock skew", due.missed)).await;
            }
            let job_name = decide::job_name(&cj, due.time);
            let exists = owned.iter().any(|j| j.name_any() == job_name);
            let policy = spec.concurrency_policy.as_deref();
            let start = decide::start(policy, active.len(), exists, decide::too_late(&cj, due.time, now));
            if start == decide::Start::TooLate {
                record(
                    ctx,
                    &cj,
                    true,
                    "MissSchedule",
                    format!("Missed scheduled time to start a job: {}", rfc1123z(due.time)),
                )
                .await;
            } else if start == decide::Start::AlreadyStarted {
                status.last_schedule_time = Some(Time(due.time));
            } else if start == decide::Start::Forbidden {
                record(
                    ctx,
                    &cj,
                    false,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid"
                        .into(),
                )
                .await;
            } else {
                if start == (decide::Start::Create { replace: true }) {
                    for r in std::mem::take(&mut active) {
                        let old = r.name.clone().unwrap_or_default();
                        match jobs_api.delete(&old, &DeleteParams::background()).await {
                            Ok(_) => {
                                record(ctx, &cj, false, "SuccessfulDelete", format!("Deleted job {old}"))
                                    .await
                            }
                            Err(kube::Error::Api(s)) if s.code == 404 => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                let job = decide::job_for(&cj, &schedule, due.time);
                match jobs_api.create(&PostParams::default(), &job).await {
                    Ok(created) => {
                        record(
                            ctx,
                            &cj,
                            false,
                            "SuccessfulCreate",
                            format!("Created job {}", created.name_any()),
                        )
                        .await;
                        active.push(reference(&created));
                        status.last_schedule_time = Some(Time(due.time));
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        status.last_schedule_time = Some(Time(due.time));
                    }
                    Err(e) => {
                        record(ctx, &cj, true, "FailedCreate", format!("Error creating job: {e}")).await;
                        return Err(e.into());
                    }
                }
            }
        }
    }

    status.active = (!active.is_empty()).then_some(active);
    if cj.status.as_ref() != Some(&status) {
        let mut updated = (*cj).clone();
        updated.status = Some(status);
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), ns);
        api.replace_status(name, &PostParams::default(), &updated).await?;
    }
    if let Some(after) = requeue {
        ctx.queue
            .add_after(key.clone(), after + Duration::from_millis(100));
    }
    Ok(())
}
