//! The TTL-after-finished controller (upstream `ttl-after-finished-controller`): deletes a Job
//! `spec.ttlSecondsAfterFinished` seconds after it finished (its `Complete` or `Failed`
//! condition), with background propagation so the garbage collector removes its pods.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::job::decide::finished_condition;
use crate::support::queue::WorkQueue;
use crate::support::watched;

/// Settings of the TTL-after-finished controller.
#[derive(Clone, Debug)]
pub struct TtlAfterFinishedConfig {
    /// Jobs handled at once (`--concurrent-ttl-after-finished-syncs`, 5).
    pub workers: u16,
}

impl Default for TtlAfterFinishedConfig {
    fn default() -> Self {
        TtlAfterFinishedConfig { workers: 5 }
    }
}

/// TTL controller failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// When a finished Job with a TTL expires (`None`: it has no TTL or has not finished).
pub fn expires_at(job: &Job) -> Option<Timestamp> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let finished = finished_condition(job)?;
    let at = finished
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| job.status.as_ref()?.completion_time.as_ref().map(|t| t.0))?;
    at.checked_add(SignedDuration::from_secs(i64::from(ttl.max(0))))
        .ok()
}

/// How long until `job` must go, at `now` (zero: now; `None`: never).
pub fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    let at = expires_at(job)?;
    Some(if at <= now {
        Duration::ZERO
    } else {
        at.duration_since(now).unsigned_abs()
    })
}

type Key = (String, String);

async fn sync(client: &Client, jobs: &Store<Job>, queue: &WorkQueue<Key>, key: &Key) -> Result<(), Error> {
    let (ns, name) = key;
    let Some(cached) = jobs.get(&ObjectRef::new(name).within(ns)) else {
        return Ok(());
    };
    match time_left(&cached, Timestamp::now()) {
        None => return Ok(()),
        Some(left) if !left.is_zero() => {
            queue.add_after(key.clone(), left + Duration::from_millis(10));
            return Ok(());
        }
        Some(_) => {}
    }
    // The cache may be stale (the TTL could have been changed): check the live object.
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let Some(live) = api.get_opt(name).await? else {
        return Ok(());
    };
    match time_left(&live, Timestamp::now()) {
        Some(left) if left.is_zero() => {}
        Some(left) => {
            queue.add_after(key.clone(), left + Duration::from_millis(10));
            return Ok(());
        }
        None => return Ok(()),
    }
    tracing::info!(namespace = %ns, job = %name, "cleaning up a finished Job after its TTL");
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: live.uid(),
            resource_version: live.resource_version(),
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs the TTL-after-finished controller until `shutdown` is cancelled.
pub async fn run(
    client: Client,
    config: TtlAfterFinishedConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let q = queue.clone();
    let jobs = watched::spawn(
        Api::<Job>::all(client.clone()),
        shutdown.clone(),
        move |job: &Job| {
            if expires_at(job).is_some() {
                q.add((job.namespace().unwrap_or_default(), job.name_any()));
            }
        },
    );
    let jobs = Arc::new(jobs);
    let workers: Vec<_> = (0..config.workers.max(1))
        .map(|_| {
            let (client, jobs, queue) = (client.clone(), jobs.clone(), queue.clone());
            tokio::spawn(async move {
                while let Some(key) = queue.get().await {
                    match sync(&client, &jobs, &queue, &key).await {
                        Ok(()) => queue.forget(&key),
                        Err(e) => {
                            tracing::warn!(namespace = %key.0, job = %key.1, "TTL cleanup failed: {e}");
                            queue.add_rate_limited(key.clone());
                        }
                    }
                    queue.done(&key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_finished_job_expires_its_ttl_after_the_finish_condition() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "j"},
            "spec": {"ttlSecondsAfterFinished": 100, "template": {}},
            "status": {"conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"}
            ]}
        }))
        .unwrap();
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        assert_eq!(time_left(&job, now), Some(Duration::from_secs(50)));
        let later: Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        assert_eq!(time_left(&job, later), Some(Duration::ZERO));

        let mut running = job.clone();
        running.status = None;
        assert_eq!(time_left(&running, later), None);
        let mut kept = job;
        kept.spec.as_mut().unwrap().ttl_seconds_after_finished = None;
        assert_eq!(time_left(&kept, later), None);
    }
}
