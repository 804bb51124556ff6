//! The Job controller's pure core: from a Job and its pods, what to write and do next — pods to
//! create and delete, finalizers to drop, the new status (counts, indexes, conditions), events
//! and when to look again.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::indexes;
use super::policy::{self, Action};

/// The finalizer that keeps a pod until the Job counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation and label carrying an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Annotation counting an index's earlier failures (`backoffLimitPerIndex`).
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";

/// What one sync must do.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// The status to write (only when it differs from the current one).
    pub status: JobStatus,
    /// Pods to create: their index (Indexed Jobs) and the index's failure count so far.
    pub create: Vec<(Option<i32>, i32)>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    /// Names of pods whose tracking finalizer goes, after `status` is written.
    pub remove_finalizers: Vec<String>,
    /// Events to record: (warning, reason, message).
    pub events: Vec<(bool, &'static str, String)>,
    /// When to sync again at the latest.
    pub requeue_after: Option<Duration>,
}

/// Pod recreation backoff after failures.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// Delay after the first failure, doubled per further failure.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// Upstream's 10 s doubling up to 6 min.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(360),
        }
    }
}

/// True once the Job has its final `Complete` or `Failed` condition.
pub fn is_finished(job: &Job) -> bool {
    finished_condition(job).is_some()
}

/// The Job's true `Complete` or `Failed` condition and its time.
pub fn finished_condition(job: &Job) -> Option<&JobCondition> {
    conditions(job)
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

fn conditions(job: &Job) -> &[JobCondition] {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
}

fn true_condition<'a>(conds: &'a [JobCondition], type_: &str) -> Option<&'a JobCondition> {
    conds.iter().find(|c| c.type_ == type_ && c.status == "True")
}

/// Sets condition `type_` (creating or flipping it); false when it already says so.
fn set_condition(
    conds: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status == status && c.reason.as_deref() == Some(reason) {
            return false;
        }
        c.status = status.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(Time(now));
        c.last_transition_time = Some(Time(now));
        return true;
    }
    conds.push(JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

/// The pod's completion index, when it has a valid one below `completions`.
pub fn pod_index(pod: &Pod, completions: i32) -> Option<i32> {
    let raw = pod
        .annotations()
        .get(COMPLETION_INDEX)
        .or_else(|| pod.labels().get(COMPLETION_INDEX))?;
    raw.parse::<i32>().ok().filter(|i| *i >= 0 && *i < completions)
}

fn failure_count(pod: &Pod) -> i32 {
    pod.annotations()
        .get(INDEX_FAILURE_COUNT)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// When the pod finished: its containers' last `finishedAt`.
fn finish_time(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .filter_map(|cs| {
            cs.state
                .as_ref()?
                .terminated
                .as_ref()?
                .finished_at
                .as_ref()
                .map(|t| t.0)
        })
        .max()
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// How a finished pod is counted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    Ignored,
}

/// Decides one sync of `job` over the pods it controls at `now`.
pub fn plan(job: &Job, pods: &[&Pod], now: Timestamp, backoff: Backoff) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut plan = Plan::default();
    let mut conds = old.conditions.clone().unwrap_or_default();

    if is_finished(job) {
        plan.remove_finalizers = pods
            .iter()
            .filter(|p| has_finalizer(p))
            .map(|p| p.name_any())
            .collect();
        plan.status = status;
        return plan;
    }

    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let suspended = spec.suspend == Some(true);
    let per_index = spec.backoff_limit_per_index.filter(|_| indexed);
    let had_target = true_condition(&conds, "FailureTarget").is_some()
        || true_condition(&conds, "SuccessCriteriaMet").is_some();

    // Finalizer-based tracking: newly finished pods go to uncountedTerminatedPods first; pods
    // already there whose finalizer is gone get counted.
    let uncounted = old.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut unc_succeeded: Vec<String> = uncounted.succeeded.clone().unwrap_or_default();
    let mut unc_failed: Vec<String> = uncounted.failed.unwrap_or_default();
    let known: HashSet<String> = unc_succeeded.iter().chain(unc_failed.iter()).cloned().collect();
    let by_uid: BTreeMap<String, &Pod> = pods.iter().map(|p| (p.uid().unwrap_or_default(), *p)).collect();
    let mut completed = indexes::parse(
        old.completed_indexes.as_deref().unwrap_or(""),
        completions.unwrap_or(0),
    );
    let mut failed_indexes = indexes::parse(
        old.failed_indexes.as_deref().unwrap_or(""),
        completions.unwrap_or(0),
    );
    let mut fail_job: Option<String> = None;

    for pod in pods.iter().filter(|p| has_finalizer(p)) {
        let uid = pod.uid().unwrap_or_default();
        let outcome = match phase(pod) {
            "Succeeded" => Outcome::Succeeded,
            "Failed" => Outcome::Failed,
            // A deleted pod that never ended is a failure, except when the Job deleted it for
            // suspension or after deciding its outcome.
            _ if pod.metadata.deletion_timestamp.is_some() => {
                if suspended || had_target {
                    Outcome::Ignored
                } else {
                    Outcome::Failed
                }
            }
            _ => continue,
        };
        let outcome = if outcome == Outcome::Failed {
            match policy::action_for(spec.pod_failure_policy.as_ref(), pod) {
                Action::FailJob(msg) => {
                    fail_job.get_or_insert(msg);
                    Outcome::Failed
                }
                Action::Ignore => Outcome::Ignored,
                Action::FailIndex => {
                    if let Some(i) = completions
                        .and_then(|c| pod_index(pod, c))
                        .filter(|_| per_index.is_some())
                    {
                        failed_indexes.insert(i);
                    }
                    Outcome::Failed
                }
                Action::Count => {
                    if let (Some(limit), Some(i)) = (per_index, completions.and_then(|c| pod_index(pod, c)))
                        && failure_count(pod) + 1 > limit
                    {
                        failed_indexes.insert(i);
                    }
                    Outcome::Failed
                }
            }
        } else {
            outcome
        };
        plan.remove_finalizers.push(pod.name_any());
        if known.contains(&uid) {
            continue;
        }
        match outcome {
            Outcome::Succeeded => unc_succeeded.push(uid),
            Outcome::Failed => unc_failed.push(uid),
            Outcome::Ignored => {}
        }
    }

    let mut succeeded = old.succeeded.unwrap_or(0);
    let mut failed = old.failed.unwrap_or(0);
    let counted = |uid: &String| by_uid.get(uid).is_none_or(|p| !has_finalizer(p));
    unc_succeeded.retain(|uid| {
        if !counted(uid) {
            return true;
        }
        match (by_uid.get(uid), completions) {
            (Some(p), Some(c)) if indexed => {
                if let Some(i) = pod_index(p, c) {
                    completed.insert(i);
                }
            }
            _ => succeeded += 1,
        }
        false
    });
    unc_failed.retain(|uid| {
        if !counted(uid) {
            return true;
        }
        failed += 1;
        false
    });
    if indexed {
        succeeded = completed.len() as i32;
    }
    let pending_succeeded = unc_succeeded.len() as i32;
    let pending_failed = unc_failed.len() as i32;
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    status.completed_indexes = indexed
        .then(|| indexes::format(&completed))
        .flatten()
        .or(indexed.then(String::new));
    status.failed_indexes = per_index.map(|_| indexes::format(&failed_indexes).unwrap_or_default());
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: (!unc_succeeded.is_empty()).then_some(unc_succeeded),
        failed: (!unc_failed.is_empty()).then_some(unc_failed),
    });

    // Indexes already done, for deciding which pods to run (counted or not yet).
    let mut done_indexes = completed.clone();
    if let Some(c) = completions.filter(|_| indexed) {
        done_indexes.extend(
            pods.iter()
                .filter(|p| phase(p) == "Succeeded")
                .filter_map(|p| pod_index(p, c)),
        );
    }
    let total_succeeded = if indexed {
        done_indexes.len() as i32
    } else {
        succeeded + pending_succeeded
    };
    let total_failed = failed + pending_failed;

    let active: Vec<&Pod> = pods.iter().copied().filter(|p| is_active(p)).collect();
    let terminating = pods
        .iter()
        .filter(|p| !is_terminal(p) && p.metadata.deletion_timestamp.is_some())
        .count() as i32;

    // Suspension.
    let was_suspended = true_condition(&conds, "Suspended").is_some();
    if suspended
        && !had_target
        && set_condition(
            &mut conds,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        )
    {
        plan.events.push((false, "Suspended", "Job suspended".into()));
    }
    if !suspended && was_suspended {
        set_condition(&mut conds, "Suspended", "False", "JobResumed", "Job resumed", now);
        plan.events.push((false, "Resumed", "Job resumed".into()));
        status.start_time = Some(Time(now));
    }
    if !suspended && status.start_time.is_none() {
        status.start_time = Some(Time(now));
    }

    // The outcome, once decided, stays.
    if !had_target {
        let failure = if let Some(msg) = fail_job {
            Some(("PodFailurePolicy", msg))
        } else if per_index.is_some() {
            let max = spec.max_failed_indexes;
            if max.is_some_and(|m| failed_indexes.len() as i32 > m) {
                Some((
                    "MaxFailedIndexesExceeded",
                    "Job has exceeded the specified maximal number of failed indexes".into(),
                ))
            } else {
                None
            }
        } else {
            let limit = spec.backoff_limit.unwrap_or(6);
            let on_failure = spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref())
                == Some("OnFailure");
            let restarted = if on_failure {
                active.iter().map(|p| restarts(p)).sum()
            } else {
                0
            };
            (total_failed + restarted > limit).then(|| {
                (
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit".to_string(),
                )
            })
        };
        let failure = failure.or_else(|| {
            let deadline = spec.active_deadline_seconds?;
            let start = status.start_time.as_ref()?.0;
            if suspended {
                return None;
            }
            let ends = start
                .checked_add(jiff::SignedDuration::from_secs(deadline))
                .ok()?;
            if now >= ends {
                Some((
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline".to_string(),
                ))
            } else {
                let left = ends.duration_since(now).unsigned_abs();
                plan.requeue_after = Some(left);
                None
            }
        });
        if let Some((reason, msg)) = failure {
            set_condition(&mut conds, "FailureTarget", "True", reason, &msg, now);
            plan.events.push((true, reason, msg));
        } else if let Some(msg) = success(&spec, indexed, &done_indexes, total_succeeded, active.len()) {
            let (reason, msg) = msg;
            set_condition(&mut conds, "SuccessCriteriaMet", "True", reason, &msg, now);
        } else if let (Some(c), Some(_)) = (completions.filter(|_| indexed), per_index) {
            let all = (0..c).all(|i| done_indexes.contains(&i) || failed_indexes.contains(&i));
            if all && !failed_indexes.is_empty() {
                let msg = "Job has failed indexes".to_string();
                set_condition(&mut conds, "FailureTarget", "True", "FailedIndexes", &msg, now);
                plan.events.push((true, "FailedIndexes", msg));
            }
        }
    }
    let failure_target = true_condition(&conds, "FailureTarget").cloned();
    let success_target = true_condition(&conds, "SuccessCriteriaMet").cloned();

    if failure_target.is_some() || success_target.is_some() || suspended {
        plan.delete = active.iter().map(|p| p.name_any()).collect();
    } else {
        reconcile_active(
            &spec,
            indexed,
            &active,
            pods,
            &done_indexes,
            &failed_indexes,
            total_succeeded,
            now,
            backoff,
            &mut plan,
        );
    }

    status.active = Some(active.len() as i32 - plan.delete.len() as i32 + plan.create.len() as i32);
    status.ready = Some(
        active
            .iter()
            .filter(|p| is_ready(p) && !plan.delete.contains(&p.name_any()))
            .count() as i32,
    );
    status.terminating = Some(terminating + plan.delete.len() as i32);

    // Every pod gone and counted: the final condition.
    let settled = active.len() == plan.delete.len()
        && terminating == 0
        && plan.delete.is_empty()
        && pending_failed + pending_succeeded == 0;
    if settled {
        if let Some(t) = failure_target {
            let (reason, msg) = (t.reason.unwrap_or_default(), t.message.unwrap_or_default());
            set_condition(&mut conds, "Failed", "True", &reason, &msg, now);
        } else if let Some(t) = success_target {
            let (reason, msg) = (t.reason.unwrap_or_default(), t.message.unwrap_or_default());
            set_condition(&mut conds, "Complete", "True", &reason, &msg, now);
            status.completion_time = Some(Time(now));
            plan.events.push((false, "Completed", "Job completed".into()));
        }
    }
    status.conditions = (!conds.is_empty()).then_some(conds);
    plan.status = status;
    plan
}

/// The success criteria met, as (reason, message).
fn success(
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    indexed: bool,
    done: &BTreeSet<i32>,
    succeeded: i32,
    active: usize,
) -> Option<(&'static str, String)> {
    if indexed {
        let c = spec.completions?;
        for (i, rule) in spec
            .success_policy
            .iter()
            .flat_map(|p| p.rules.iter())
            .enumerate()
        {
            let scope: BTreeSet<i32> = match &rule.succeeded_indexes {
                Some(s) => indexes::parse(s, c),
                None => (0..c).collect(),
            };
            let hits = scope.intersection(done).count() as i32;
            let met = match rule.succeeded_count {
                Some(n) => hits >= n,
                None => hits == scope.len() as i32,
            };
            if met {
                return Some(("SuccessPolicy", format!("Matched rules at index {i}")));
            }
        }
        return (done.len() as i32 >= c).then(|| {
            (
                "CompletionsReached",
                "Reached expected number of succeeded pods".into(),
            )
        });
    }
    let reached = match spec.completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active == 0,
    };
    reached.then(|| {
        (
            "CompletionsReached",
            "Reached expected number of succeeded pods".into(),
        )
    })
}

/// Pods to create or delete so the right number (and indexes) run.
#[allow(clippy::too_many_arguments)]
fn reconcile_active(
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    indexed: bool,
    active: &[&Pod],
    pods: &[&Pod],
    done: &BTreeSet<i32>,
    failed_indexes: &BTreeSet<i32>,
    succeeded: i32,
    now: Timestamp,
    backoff: Backoff,
    plan: &mut Plan,
) {
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let mut keep: Vec<&Pod> = Vec::new();
    let mut missing: Vec<(Option<i32>, i32)> = Vec::new();
    let want;
    if indexed {
        let c = spec.completions.unwrap_or(0);
        let mut running: BTreeSet<i32> = BTreeSet::new();
        let mut sorted: Vec<&Pod> = active.to_vec();
        sorted.sort_by_key(|p| p.creation_timestamp().map(|t| t.0));
        for pod in sorted {
            match pod_index(pod, c) {
                Some(i) if !done.contains(&i) && !failed_indexes.contains(&i) && running.insert(i) => {
                    keep.push(pod)
                }
                _ => plan.delete.push(pod.name_any()),
            }
        }
        let left = c - done.len() as i32 - failed_indexes.len() as i32;
        want = parallelism.min(left.max(0));
        for i in (0..c).filter(|i| !done.contains(i) && !failed_indexes.contains(i) && !running.contains(i)) {
            let failures = pods
                .iter()
                .filter(|p| phase(p) == "Failed" && pod_index(p, c) == Some(i))
                .map(|p| failure_count(p) + 1)
                .max()
                .unwrap_or(0);
            missing.push((Some(i), failures));
        }
    } else {
        keep = active.to_vec();
        want = match spec.completions {
            None if succeeded > 0 => active.len() as i32,
            None => parallelism,
            Some(c) => (c - succeeded).clamp(0, parallelism),
        };
        missing = vec![(None, 0); want.max(0) as usize];
    }
    let have = keep.len() as i32;
    if have > want {
        keep.sort_by_key(|p| deletion_rank(p));
        plan.delete
            .extend(keep.iter().take((have - want) as usize).map(|p| p.name_any()));
        return;
    }
    let need = (want - have).max(0) as usize;
    if need == 0 {
        return;
    }
    if let Some(wait) = backoff_wait(pods, now, backoff) {
        plan.requeue_after = Some(plan.requeue_after.map_or(wait, |r| r.min(wait)));
        return;
    }
    plan.create = missing.into_iter().take(need).collect();
}

/// Deleting order for surplus pods: unscheduled, then pending, then not ready, newest first.
fn deletion_rank(pod: &Pod) -> (u8, u8, u8, std::cmp::Reverse<Option<Timestamp>>) {
    let unscheduled = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() as u8;
    let running = (phase(pod) == "Running") as u8;
    (
        unscheduled,
        running,
        is_ready(pod) as u8,
        std::cmp::Reverse(pod.creation_timestamp().map(|t| t.0)),
    )
}

/// How long new pods must still wait after the failures since the last success.
pub fn backoff_wait(pods: &[&Pod], now: Timestamp, backoff: Backoff) -> Option<Duration> {
    let last_success = pods
        .iter()
        .filter(|p| phase(p) == "Succeeded")
        .filter_map(|p| finish_time(p))
        .max();
    let failures: Vec<Timestamp> = pods
        .iter()
        .filter(|p| phase(p) == "Failed")
        .filter_map(|p| finish_time(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last = *failures.iter().max()?;
    let n = failures.len() as u32;
    let delay = backoff
        .base
        .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(31)))
        .min(backoff.max);
    let ready = last
        .checked_add(jiff::SignedDuration::try_from(delay).ok()?)
        .ok()?;
    (now < ready).then(|| ready.duration_since(now).unsigned_abs())
}

#[cfg(test)]
mod tests;
