//! The CronJob controller's pure decisions: which scheduled time is due, whether it is too late
//! to start, the Job for it, and which finished Jobs fall out of the history limits.

use std::time::Duration;

use api_util::cron::Schedule;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::ObjectMeta;

/// Annotation holding the time a Job was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed start times than this are reported as `TooManyMissedTimes`.
pub const MAX_MISSED: usize = 100;

/// The start time due at `now`, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct Due {
    /// The most recent unmet schedule time.
    pub time: Timestamp,
    /// How many schedule times were missed since the last one handled (this one included).
    pub missed: usize,
}

/// The most recent schedule time after the last scheduled one (or the creation) up to `now`,
/// honouring `startingDeadlineSeconds`.
pub fn due(cj: &CronJob, schedule: &Schedule, now: Timestamp) -> Option<Due> {
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(created);
    if let Some(deadline) = cj
        .spec
        .starting_deadline_seconds
        .and_then(|sds| now.checked_sub(SignedDuration::from_secs(sds)).ok())
    {
        earliest = earliest.max(deadline);
    }
    if earliest > now {
        return None;
    }
    let (last, count) = schedule.most_recent(earliest, now, MAX_MISSED + 1);
    let last = last?;
    if count <= MAX_MISSED {
        return Some(Due {
            time: last,
            missed: count,
        });
    }
    // Too many to walk: find the latest one in a window growing back from now.
    let mut window = SignedDuration::from_secs(60);
    loop {
        let from = now.checked_sub(window).ok()?.max(earliest);
        let (latest, _) = schedule.most_recent(from, now, usize::MAX);
        if let Some(time) = latest {
            return Some(Due { time, missed: count });
        }
        if from == earliest {
            return Some(Due {
                time: last,
                missed: count,
            });
        }
        window = window.checked_mul(2)?;
    }
}

/// True when `scheduled` is past the CronJob's `startingDeadlineSeconds` at `now`.
pub fn too_late(cj: &CronJob, scheduled: Timestamp, now: Timestamp) -> bool {
    cj.spec
        .starting_deadline_seconds
        .and_then(|sds| scheduled.checked_add(SignedDuration::from_secs(sds)).ok())
        .is_some_and(|deadline| deadline < now)
}

/// What to do about a due schedule time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Past `startingDeadlineSeconds`: report `MissSchedule`, start nothing.
    TooLate,
    /// Its Job exists already.
    AlreadyStarted,
    /// `Forbid` and a Job still runs: report `JobAlreadyActive`.
    Forbidden,
    /// Create the Job, deleting the running ones first when `replace` (`Replace`).
    Create {
        /// Delete the active Jobs first.
        replace: bool,
    },
}

/// The decision for a due time under `concurrencyPolicy` (`Allow` when unset).
pub fn start(policy: Option<&str>, active: usize, exists: bool, too_late: bool) -> Start {
    match policy.unwrap_or("Allow") {
        _ if too_late => Start::TooLate,
        _ if exists => Start::AlreadyStarted,
        "Forbid" if active > 0 => Start::Forbidden,
        "Replace" => Start::Create { replace: active > 0 },
        _ => Start::Create { replace: false },
    }
}

/// How long from `now` until the schedule's next time.
pub fn until_next(schedule: &Schedule, now: Timestamp) -> Option<Duration> {
    let next = schedule.next_after(now)?;
    Some(next.duration_since(now).unsigned_abs())
}

/// The name of the Job for `scheduled`: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cj: &CronJob, scheduled: Timestamp) -> String {
    format!("{}-{}", cj.name_any(), scheduled.as_second().div_euclid(60))
}

/// `scheduled` as RFC 3339 in the schedule's time zone.
pub fn format_scheduled(schedule: &Schedule, scheduled: Timestamp) -> String {
    let zoned = scheduled.to_zoned(schedule.time_zone().clone());
    if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The Job to create for `scheduled`, from the CronJob's template.
pub fn job_for(cj: &CronJob, schedule: &Schedule, scheduled: Timestamp) -> Job {
    let spec = cj.spec.clone();
    let template = spec.job_template;
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), format_scheduled(schedule, scheduled));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: cj.name_any(),
                uid: cj.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// The finished Job's outcome: `Some(true)` complete, `Some(false)` failed, `None` running.
pub fn outcome(job: &Job) -> Option<bool> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .find_map(|c| match (c.type_.as_str(), c.status.as_str()) {
            ("Complete", "True") => Some(true),
            ("Failed", "True") => Some(false),
            _ => None,
        })
}

/// Names of the finished Jobs beyond the history limits (oldest go first).
pub fn beyond_history(cj: &CronJob, jobs: &[&Job]) -> Vec<String> {
    let spec = cj.spec.clone();
    let mut out = Vec::new();
    for (success, limit) in [
        (true, spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut finished: Vec<&&Job> = jobs.iter().filter(|j| outcome(j) == Some(success)).collect();
        finished.sort_by_key(|j| {
            let start = j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
            (start.or(j.creation_timestamp().map(|t| t.0)), j.name_any())
        });
        let extra = finished.len().saturating_sub(limit.max(0) as usize);
        out.extend(finished.iter().take(extra).map(|j| j.name_any()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cronjob(spec: Value, last: Option<&str>) -> CronJob {
        let mut spec = spec;
        spec["jobTemplate"] = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"template": {}}});
        serde_json::from_value(json!({
            "metadata": {"name": "cj", "namespace": "ns", "uid": "cu", "creationTimestamp": "2026-01-01T10:00:30Z"},
            "spec": spec,
            "status": {"lastScheduleTime": last}
        }))
        .unwrap()
    }

    #[test]
    fn the_most_recent_missed_time_is_due_once() {
        let cj = cronjob(json!({"schedule": "*/5 * * * *"}), None);
        let s = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(due(&cj, &s, ts("2026-01-01T10:04:00Z")), None);
        assert_eq!(
            due(&cj, &s, ts("2026-01-01T10:12:00Z")),
            Some(Due {
                time: ts("2026-01-01T10:10:00Z"),
                missed: 2
            })
        );
        let handled = cronjob(json!({"schedule": "*/5 * * * *"}), Some("2026-01-01T10:10:00Z"));
        assert_eq!(due(&handled, &s, ts("2026-01-01T10:14:59Z")), None);
        assert_eq!(
            until_next(&s, ts("2026-01-01T10:14:00Z")),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn too_many_missed_times_still_give_the_latest_and_the_deadline_bounds_the_search() {
        let cj = cronjob(json!({"schedule": "* * * * *"}), None);
        let s = Schedule::parse("* * * * *").unwrap();
        let now = ts("2026-01-01T13:00:30Z");
        let d = due(&cj, &s, now).unwrap();
        assert_eq!(d.time, ts("2026-01-01T13:00:00Z"));
        assert!(d.missed > MAX_MISSED);

        let bounded = cronjob(
            json!({"schedule": "* * * * *", "startingDeadlineSeconds": 200}),
            None,
        );
        let d = due(&bounded, &s, now).unwrap();
        assert_eq!(
            d,
            Due {
                time: ts("2026-01-01T13:00:00Z"),
                missed: 3
            }
        );
        assert!(!too_late(&bounded, d.time, now));
        assert!(too_late(&bounded, ts("2026-01-01T12:56:00Z"), now));
    }

    #[test]
    fn concurrency_policies_decide_around_running_jobs() {
        assert_eq!(start(None, 2, false, false), Start::Create { replace: false });
        assert_eq!(start(Some("Forbid"), 1, false, false), Start::Forbidden);
        assert_eq!(
            start(Some("Forbid"), 0, false, false),
            Start::Create { replace: false }
        );
        assert_eq!(
            start(Some("Replace"), 1, false, false),
            Start::Create { replace: true }
        );
        assert_eq!(start(Some("Replace"), 1, true, false), Start::AlreadyStarted);
        assert_eq!(start(Some("Allow"), 0, false, true), Start::TooLate);
    }

    #[test]
    fn jobs_are_named_by_minute_and_annotated_in_the_time_zone() {
        let cj = cronjob(json!({"schedule": "0 * * * *"}), None);
        let s = Schedule::parse_in("0 * * * *", Some("Europe/Paris")).unwrap();
        let job = job_for(&cj, &s, ts("2026-01-01T11:00:00Z"));
        assert_eq!(
            job.name_any(),
            format!("cj-{}", ts("2026-01-01T11:00:00Z").as_second() / 60)
        );
        assert_eq!(
            job.annotations()[SCHEDULED_TIMESTAMP],
            "2026-01-01T12:00:00+01:00"
        );
        assert_eq!(job.labels()["app"], "x");
        assert_eq!(job.owner_references()[0].kind, "CronJob");
        let utc = Schedule::parse("0 * * * *").unwrap();
        assert_eq!(
            format_scheduled(&utc, ts("2026-01-01T11:00:00Z")),
            "2026-01-01T11:00:00Z"
        );
    }

    #[test]
    fn history_limits_prune_the_oldest_finished_jobs() {
        let cj = cronjob(
            json!({"schedule": "* * * * *", "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 0}),
            None,
        );
        let job = |name: &str, start: &str, cond: Option<&str>| -> Job {
            let conditions = cond
                .map(|c| json!([{"type": c, "status": "True"}]))
                .unwrap_or(json!([]));
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"startTime": start, "conditions": conditions}}))
            .unwrap()
        };
        let a = job("a", "2026-01-01T10:00:00Z", Some("Complete"));
        let b = job("b", "2026-01-01T10:01:00Z", Some("Complete"));
        let c = job("c", "2026-01-01T10:02:00Z", Some("Failed"));
        let d = job("d", "2026-01-01T10:03:00Z", None);
        assert_eq!(
            beyond_history(&cj, &[&b, &d, &a, &c]),
            vec!["a".to_string(), "c".to_string()]
        );
    }
}
