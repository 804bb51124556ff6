//! The CronJob controller against an in-process API server, with its clock shifted ahead so a
//! schedule time is due without waiting for it.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use controller_manager::cronjob::{self, CronJobConfig};

use crate::poll::{Running, until};

fn shifted(ahead: i64) -> CronJobConfig {
    CronJobConfig {
        clock: Arc::new(move || Timestamp::now() + SignedDuration::from_secs(ahead)),
        ..CronJobConfig::default()
    }
}

async fn create_cronjob(client: &Client, name: &str, spec: Value) -> CronJob {
    let mut spec = spec;
    spec["jobTemplate"] = json!({"metadata": {"labels": {"from": name}}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}}});
    let cj: CronJob = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    Api::<CronJob>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &cj)
        .await
        .expect("cronjob created")
}

/// Marks `job` complete as the Job controller would.
async fn complete(client: &Client, name: &str, started: &str) {
    let now = Timestamp::now().to_string();
    let status = json!({"status": {"startTime": started, "completionTime": now, "succeeded": 1, "conditions": [
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now},
        {"type": "Complete", "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now}
    ]}});
    Api::<Job>::namespaced(client.clone(), "default")
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("job status patched");
}

#[tokio::test]
async fn a_due_schedule_creates_its_job_and_sees_it_complete() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let c = client.clone();
    let controller = Running::spawn(move |t| cronjob::run(c, shifted(130), t));

    let cj = create_cronjob(&client, "tick", json!({"schedule": "* * * * *"})).await;
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let scheduled = until("a scheduled job", 30, || async {
        let cj = cjs.get("tick").await.unwrap();
        let status = cj.status?;
        let active = status.active?;
        Some((active[0].name.clone().unwrap(), status.last_schedule_time?.0))
    })
    .await;
    let (name, at) = scheduled;
    assert_eq!(name, format!("tick-{}", at.as_second() / 60));
    let job = jobs.get(&name).await.unwrap();
    assert_eq!(
        job.annotations()["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert_eq!(job.labels()["from"], "tick");
    assert_eq!(job.owner_references()[0].uid, cj.uid().unwrap());

    complete(&client, &name, &at.to_string()).await;
    let status = until("the job seen complete", 30, || async {
        let status = cjs.get("tick").await.unwrap().status?;
        (status.active.is_none() && status.last_successful_time.is_some()).then_some(status)
    })
    .await;
    assert_eq!(status.last_schedule_time.unwrap().0, at);
    // One job per schedule time: nothing more until the next minute.
    let owned = jobs.list(&Default::default()).await.unwrap().items;
    assert_eq!(
        owned.iter().filter(|j| j.name_any().starts_with("tick-")).count(),
        1
    );

    // kubectl creates a job from the CronJob's template client-side.
    let kubectl = "/var/cache/keelson-kube-clients/kubectl-1.33";
    if std::path::Path::new(kubectl).exists() {
        let out = tokio::process::Command::new(kubectl)
            .args(["--kubeconfig", server.kubeconfig_path().to_str().unwrap()])
            .args(["create", "job", "manual", "--from=cronjob/tick"])
            .output()
            .await
            .expect("kubectl runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let manual = jobs.get("manual").await.unwrap();
        assert_eq!(manual.owner_references()[0].uid, cj.uid().unwrap());
        assert_eq!(
            manual.annotations()["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
    }
    controller.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn history_limits_prune_old_finished_jobs() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let cj = create_cronjob(
        &client,
        "hist",
        json!({"schedule": "@hourly", "suspend": true, "successfulJobsHistoryLimit": 1}),
    )
    .await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    for (i, started) in [
        "2026-01-01T10:00:00Z",
        "2026-01-01T11:00:00Z",
        "2026-01-01T12:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": format!("hist-{i}"), "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                "name": "hist", "uid": cj.uid().unwrap(), "controller": true}]},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}}
        }))
        .unwrap();
        jobs.create(&PostParams::default(), &job).await.unwrap();
        complete(&client, &format!("hist-{i}"), started).await;
    }
    let c = client.clone();
    let controller = Running::spawn(move |t| cronjob::run(c, shifted(0), t));
    crate::poll::gone(&jobs, "hist-0", 30).await;
    crate::poll::gone(&jobs, "hist-1", 30).await;
    assert!(
        jobs.get_opt("hist-2").await.unwrap().is_some(),
        "the newest stays"
    );
    controller.stop().await;
    server.shutdown().await;
}

/// A clock `offset` seconds ahead of the wall clock, movable by the test.
fn movable(offset: Arc<std::sync::atomic::AtomicI64>) -> CronJobConfig {
    CronJobConfig {
        clock: Arc::new(move || {
            Timestamp::now() + SignedDuration::from_secs(offset.load(std::sync::atomic::Ordering::SeqCst))
        }),
        ..CronJobConfig::default()
    }
}

/// Runs a CronJob with `policy` through two schedule times while its first Job still runs;
/// answers the names of the CronJob's Jobs after the second.
async fn second_run(policy: &str) -> (String, Vec<String>) {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let offset = Arc::new(std::sync::atomic::AtomicI64::new(130));
    let (c, o) = (client.clone(), offset.clone());
    let controller = Running::spawn(move |t| cronjob::run(c, movable(o), t));
    create_cronjob(
        &client,
        "cc",
        json!({"schedule": "* * * * *", "concurrencyPolicy": policy}),
    )
    .await;
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let first = until("the first job", 30, || async {
        let active = cjs.get("cc").await.unwrap().status?.active?;
        active[0].name.clone()
    })
    .await;
    offset.fetch_add(60, std::sync::atomic::Ordering::SeqCst);
    // Any change of the CronJob makes the controller look again at the shifted time.
    let touch = json!({"metadata": {"annotations": {"touched": "yes"}}});
    cjs.patch("cc", &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    let names = until("the second schedule time handled", 30, || async {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
        let reasons: Vec<String> = events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("cc"))
            .filter_map(|e| e.reason)
            .collect();
        let names: Vec<String> = jobs
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .map(|j| j.name_any())
            .collect();
        let handled = match policy {
            "Forbid" => reasons.iter().any(|r| r == "JobAlreadyActive"),
            "Replace" => names.len() == 1 && names[0] != first,
            _ => names.len() == 2,
        };
        handled.then_some(names)
    })
    .await;
    controller.stop().await;
    server.shutdown().await;
    (first, names)
}

#[tokio::test]
async fn forbid_skips_a_run_while_one_is_active() {
    let (first, names) = second_run("Forbid").await;
    assert_eq!(names, vec![first]);
}

#[tokio::test]
async fn replace_deletes_the_running_job_for_the_new_one() {
    let (first, names) = second_run("Replace").await;
    assert_eq!(names.len(), 1);
    assert_ne!(names[0], first);
}

#[tokio::test]
async fn allow_runs_jobs_side_by_side() {
    let (first, names) = second_run("Allow").await;
    assert_eq!(names.len(), 2);
    assert!(names.contains(&first));
}
