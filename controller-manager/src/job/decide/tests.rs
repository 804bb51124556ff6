use super::*;
use serde_json::{Value, json};

const NOW: &str = "2026-01-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn job(spec: Value, status: Value) -> Job {
    let mut spec = spec;
    spec["template"] =
        json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}});
    serde_json::from_value(json!({
        "metadata": {"name": "j", "namespace": "ns", "uid": "ju"},
        "spec": spec, "status": status
    }))
    .unwrap()
}

/// A pod named `name` in `phase`, with the tracking finalizer when `tracked`.
fn pod(name: &str, phase: &str, tracked: bool, index: Option<i32>, exit: Option<(i32, &str)>) -> Pod {
    let state = match exit {
        Some((code, at)) => json!({"terminated": {"exitCode": code, "finishedAt": at}}),
        None => json!({"running": {}}),
    };
    let mut annotations = json!({});
    if let Some(i) = index {
        annotations[COMPLETION_INDEX] = json!(i.to_string());
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
            "creationTimestamp": "2026-01-01T11:00:00Z",
            "annotations": annotations,
            "finalizers": if tracked { json!([TRACKING_FINALIZER]) } else { json!([]) }},
        "status": {"phase": phase, "containerStatuses": [{"name": "c", "image": "i", "imageID": "",
            "ready": false, "restartCount": 0, "state": state}]}
    }))
    .unwrap()
}

fn cond<'a>(plan: &'a Plan, type_: &str) -> Option<&'a JobCondition> {
    plan.status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

#[test]
fn a_new_job_starts_parallelism_pods_up_to_the_remaining_completions() {
    let j = job(json!({"parallelism": 2, "completions": 4}), json!({}));
    let plan = plan(&j, &[], now(), Backoff::default());
    assert_eq!(plan.create, vec![(None, 0), (None, 0)]);
    assert_eq!(plan.status.active, Some(2));
    assert_eq!(plan.status.start_time, Some(Time(now())));

    let j = job(
        json!({"parallelism": 5, "completions": 4}),
        json!({"succeeded": 3}),
    );
    assert_eq!(super::plan(&j, &[], now(), Backoff::default()).create.len(), 1);
}

#[test]
fn finished_pods_are_recorded_as_uncounted_then_counted_once_their_finalizer_is_gone() {
    let j = job(
        json!({"parallelism": 1, "completions": 2}),
        json!({"startTime": NOW}),
    );
    let done = pod("a", "Succeeded", true, None, Some((0, NOW)));
    let p1 = plan(&j, &[&done], now(), Backoff::default());
    let unc = p1.status.uncounted_terminated_pods.clone().unwrap();
    assert_eq!(unc.succeeded, Some(vec!["uid-a".to_string()]));
    assert_eq!(p1.remove_finalizers, vec!["a".to_string()]);
    assert_eq!(p1.status.succeeded, Some(0));
    // Counted pods already make room for the next one.
    assert_eq!(p1.create.len(), 1);

    let j2 = job(
        json!({"parallelism": 1, "completions": 2}),
        serde_json::to_value(&p1.status).unwrap(),
    );
    let released = pod("a", "Succeeded", false, None, Some((0, NOW)));
    let p2 = plan(&j2, &[&released], now(), Backoff::default());
    assert_eq!(p2.status.succeeded, Some(1));
    assert_eq!(
        p2.status.uncounted_terminated_pods,
        Some(UncountedTerminatedPods::default())
    );
}

#[test]
fn reaching_completions_meets_the_success_criteria_then_completes() {
    let j = job(
        json!({"completions": 2, "parallelism": 2}),
        json!({"succeeded": 2, "startTime": NOW}),
    );
    let p = plan(&j, &[], now(), Backoff::default());
    let met = cond(&p, "SuccessCriteriaMet").unwrap();
    assert_eq!(met.reason.as_deref(), Some("CompletionsReached"));
    let complete = cond(&p, "Complete").unwrap();
    assert_eq!(
        complete.message.as_deref(),
        Some("Reached expected number of succeeded pods")
    );
    assert_eq!(p.status.completion_time, Some(Time(now())));
    assert!(p.create.is_empty());
    assert!(p.events.iter().any(|e| e.1 == "Completed"));
}

#[test]
fn exceeding_the_backoff_limit_fails_the_job_after_its_pods_are_gone() {
    let j = job(json!({"backoffLimit": 1}), json!({"failed": 1, "startTime": NOW}));
    let running = pod("r", "Running", true, None, None);
    let failed = pod("f", "Failed", true, None, Some((1, NOW)));
    let p = plan(&j, &[&running, &failed], now(), Backoff::default());
    assert_eq!(
        cond(&p, "FailureTarget").unwrap().reason.as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert!(
        cond(&p, "Failed").is_none(),
        "pods still run and one is uncounted"
    );
    assert_eq!(p.delete, vec!["r".to_string()]);
    assert!(p.events.iter().any(|e| e.0 && e.1 == "BackoffLimitExceeded"));

    let j = job(
        json!({"backoffLimit": 1}),
        serde_json::to_value(&p.status).unwrap(),
    );
    let released = pod("f", "Failed", false, None, Some((1, NOW)));
    let p = plan(&j, &[&released], now(), Backoff::default());
    let failed = cond(&p, "Failed").unwrap();
    assert_eq!(
        failed.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    assert_eq!(p.status.failed, Some(2));
}

#[test]
fn indexed_jobs_run_missing_indexes_and_drop_duplicates() {
    let j = job(
        json!({"completionMode": "Indexed", "completions": 4, "parallelism": 3}),
        json!({"completedIndexes": "0", "succeeded": 1, "startTime": NOW}),
    );
    let one = pod("one", "Running", true, Some(1), None);
    let mut dup = pod("dup", "Running", true, Some(1), None);
    dup.metadata.creation_timestamp = Some(Time("2026-01-01T11:30:00Z".parse().unwrap()));
    let p = plan(&j, &[&one, &dup], now(), Backoff::default());
    assert_eq!(p.delete, vec!["dup".to_string()]);
    assert_eq!(p.create, vec![(Some(2), 0), (Some(3), 0)]);

    let j = job(
        json!({"completionMode": "Indexed", "completions": 3}),
        json!({"completedIndexes": "0-2", "succeeded": 3, "startTime": NOW}),
    );
    let p = plan(&j, &[], now(), Backoff::default());
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0-2"));
    assert!(cond(&p, "Complete").is_some());
}

#[test]
fn per_index_backoff_fails_indexes_and_the_job_when_all_are_decided() {
    let j = job(
        json!({"completionMode": "Indexed", "completions": 2, "parallelism": 2, "backoffLimitPerIndex": 0}),
        json!({"completedIndexes": "0", "succeeded": 1, "startTime": NOW}),
    );
    let failed = pod("f", "Failed", true, Some(1), Some((1, NOW)));
    let p = plan(&j, &[&failed], now(), Backoff::default());
    assert_eq!(p.status.failed_indexes.as_deref(), Some("1"));
    assert_eq!(
        cond(&p, "FailureTarget").unwrap().reason.as_deref(),
        Some("FailedIndexes")
    );
    assert!(p.create.is_empty());
}

#[test]
fn a_fail_job_rule_fails_at_once_and_ignored_failures_do_not_count() {
    let mut j = job(json!({"backoffLimit": 6}), json!({"startTime": NOW}));
    j.spec.as_mut().unwrap().pod_failure_policy = Some(
        serde_json::from_value(json!({"rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [7]}},
        ]}))
        .unwrap(),
    );
    let ignored = pod("i", "Failed", true, None, Some((7, NOW)));
    let p = plan(
        &j,
        &[&ignored],
        now(),
        Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
        },
    );
    assert_eq!(
        p.status.uncounted_terminated_pods,
        Some(UncountedTerminatedPods::default())
    );
    assert_eq!(p.remove_finalizers, vec!["i".to_string()]);
    assert!(cond(&p, "FailureTarget").is_none());

    let fatal = pod("x", "Failed", true, None, Some((42, NOW)));
    let p = plan(&j, &[&fatal], now(), Backoff::default());
    let target = cond(&p, "FailureTarget").unwrap();
    assert_eq!(target.reason.as_deref(), Some("PodFailurePolicy"));
    assert_eq!(
        target.message.as_deref(),
        Some("Container c for pod ns/x failed with exit code 42 matching FailJob rule at index 0")
    );
}

#[test]
fn the_active_deadline_fails_the_job_or_sets_a_timer() {
    let j = job(
        json!({"activeDeadlineSeconds": 60}),
        json!({"startTime": "2026-01-01T11:58:00Z"}),
    );
    let running = pod("r", "Running", true, None, None);
    let p = plan(&j, &[&running], now(), Backoff::default());
    assert_eq!(
        cond(&p, "FailureTarget").unwrap().reason.as_deref(),
        Some("DeadlineExceeded")
    );
    assert_eq!(p.delete, vec!["r".to_string()]);

    let j = job(
        json!({"activeDeadlineSeconds": 600}),
        json!({"startTime": "2026-01-01T11:58:00Z"}),
    );
    let p = plan(&j, &[&running], now(), Backoff::default());
    assert_eq!(p.requeue_after, Some(Duration::from_secs(480)));
}

#[test]
fn suspension_deletes_active_pods_and_resuming_resets_the_start_time() {
    let j = job(
        json!({"suspend": true, "parallelism": 2}),
        json!({"startTime": "2026-01-01T10:00:00Z"}),
    );
    let running = pod("r", "Running", true, None, None);
    let p = plan(&j, &[&running], now(), Backoff::default());
    assert_eq!(p.delete, vec!["r".to_string()]);
    assert_eq!(
        cond(&p, "Suspended").unwrap().reason.as_deref(),
        Some("JobSuspended")
    );
    assert_eq!(p.status.active, Some(0));

    let j = job(
        json!({"suspend": false, "parallelism": 2}),
        serde_json::to_value(&p.status).unwrap(),
    );
    let p = plan(&j, &[], now(), Backoff::default());
    let resumed = p
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Suspended")
        .unwrap();
    assert_eq!(
        (resumed.status.as_str(), resumed.reason.as_deref()),
        ("False", Some("JobResumed"))
    );
    assert_eq!(p.status.start_time, Some(Time(now())));
    assert_eq!(p.create.len(), 2);
}

#[test]
fn new_pods_wait_out_the_failure_backoff() {
    let j = job(json!({"backoffLimit": 6}), json!({"startTime": NOW, "failed": 2}));
    let f1 = pod("f1", "Failed", false, None, Some((1, "2026-01-01T11:59:50Z")));
    let f2 = pod("f2", "Failed", false, None, Some((1, "2026-01-01T11:59:55Z")));
    let p = plan(&j, &[&f1, &f2], now(), Backoff::default());
    assert!(p.create.is_empty());
    // Two failures: 20 s after the last one.
    assert_eq!(p.requeue_after, Some(Duration::from_secs(15)));
    let later: Timestamp = "2026-01-01T12:00:16Z".parse().unwrap();
    assert_eq!(plan(&j, &[&f1, &f2], later, Backoff::default()).create.len(), 1);
}

#[test]
fn finished_jobs_only_release_finalizers() {
    let j = job(
        json!({}),
        json!({"conditions": [{"type": "Complete", "status": "True"}]}),
    );
    let stuck = pod("s", "Succeeded", true, None, Some((0, NOW)));
    let p = plan(&j, &[&stuck], now(), Backoff::default());
    assert_eq!(p.remove_finalizers, vec!["s".to_string()]);
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(Some(&p.status), j.status.as_ref());
}

#[test]
fn a_success_policy_ends_an_indexed_job_early_and_drops_the_rest() {
    let mut j = job(
        json!({"completionMode": "Indexed", "completions": 5, "parallelism": 5}),
        json!({"completedIndexes": "0", "succeeded": 1, "startTime": NOW}),
    );
    j.spec.as_mut().unwrap().success_policy = Some(
        serde_json::from_value(json!({"rules": [{"succeededIndexes": "0-2", "succeededCount": 1}]})).unwrap(),
    );
    let running = pod("r", "Running", true, Some(3), None);
    let p = plan(&j, &[&running], now(), Backoff::default());
    let met = cond(&p, "SuccessCriteriaMet").unwrap();
    assert_eq!(
        (met.reason.as_deref(), met.message.as_deref()),
        (Some("SuccessPolicy"), Some("Matched rules at index 0"))
    );
    assert_eq!(p.delete, vec!["r".to_string()]);
    assert!(p.create.is_empty());
    assert!(cond(&p, "Complete").is_none(), "not before the pod is gone");
}
