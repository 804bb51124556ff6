//! The Job controller against an in-process API server; the test plays the kubelet by ending
//! pods (phase and container exit codes) through the status subresource.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use controller_manager::job::{self, Backoff, JobConfig};

use crate::poll::{Running, until};

pub fn config() -> JobConfig {
    JobConfig {
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
        ..JobConfig::default()
    }
}

pub async fn create_job(client: &Client, ns: &str, name: &str, spec: Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}});
    let job: Job = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    Api::<Job>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &job)
        .await
        .expect("job created")
}

async fn pods_of(client: &Client, ns: &str, job: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
}

fn running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// Ends `pod` as the kubelet would: its container exits with `code`.
pub async fn finish(client: &Client, pod: &Pod, code: i32) {
    let now = jiff::Timestamp::now().to_string();
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    let status = json!({"status": {"phase": phase, "containerStatuses": [{
        "name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "startedAt": now, "finishedAt": now}}
    }]}});
    Api::<Pod>::namespaced(client.clone(), &pod.namespace().unwrap())
        .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("pod status patched");
}

pub fn condition(job: &Job, type_: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

/// Plays the kubelet until the Job finishes: every running pod ends with `code(pod)`.
pub async fn drive(
    client: &Client,
    ns: &str,
    name: &str,
    max_active: usize,
    code: impl Fn(&Pod) -> i32,
) -> Job {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    until(&format!("job {name} to finish"), 60, || async {
        let job = jobs.get(name).await.unwrap();
        if condition(&job, "Complete").is_some() || condition(&job, "Failed").is_some() {
            return Some(job);
        }
        let active: Vec<Pod> = pods_of(client, ns, name)
            .await
            .into_iter()
            .filter(running)
            .collect();
        assert!(active.len() <= max_active, "{} pods run at once", active.len());
        for pod in &active {
            finish(client, pod, code(pod)).await;
        }
        None
    })
    .await
}

#[tokio::test]
async fn a_parallel_job_completes_and_releases_its_pods() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let c = client.clone();
    let controller = Running::spawn(move |t| job::run(c, config(), t));

    create_job(
        &client,
        "default",
        "pi",
        json!({"parallelism": 2, "completions": 4}),
    )
    .await;
    let done = drive(&client, "default", "pi", 2, |_| 0).await;
    let status = done.status.clone().unwrap();
    assert_eq!(condition(&done, "Complete").unwrap().0, "CompletionsReached");
    assert!(condition(&done, "SuccessCriteriaMet").is_some());
    assert_eq!(status.succeeded, Some(4));
    assert_eq!(status.active, Some(0));
    assert!(status.completion_time.is_some() && status.start_time.is_some());

    let pods = pods_of(&client, "default", "pi").await;
    assert_eq!(pods.len(), 4);
    for pod in &pods {
        assert!(pod.name_any().starts_with("pi-"));
        assert!(
            !pod.finalizers()
                .iter()
                .any(|f| f == "batch.kubernetes.io/job-tracking")
        );
        assert_eq!(
            pod.labels()["batch.kubernetes.io/controller-uid"],
            done.uid().unwrap()
        );
        assert_eq!(pod.owner_references()[0].controller, Some(true));
    }
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    until("SuccessfulCreate and Completed events", 30, || async {
        let reasons: Vec<String> = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("pi"))
            .filter_map(|e| e.reason)
            .collect();
        (reasons.iter().any(|r| r == "SuccessfulCreate") && reasons.iter().any(|r| r == "Completed"))
            .then_some(())
    })
    .await;
    controller.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_indexed_job_completes_every_index() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let c = client.clone();
    let controller = Running::spawn(move |t| job::run(c, config(), t));

    create_job(
        &client,
        "default",
        "idx",
        json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3}),
    )
    .await;
    let pods = until("three indexed pods", 30, || async {
        let pods = pods_of(&client, "default", "idx").await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    let mut seen: Vec<String> = pods
        .iter()
        .map(|p| {
            let index = p.annotations()["batch.kubernetes.io/job-completion-index"].clone();
            assert_eq!(p.labels()["batch.kubernetes.io/job-completion-index"], index);
            let spec = p.spec.as_ref().unwrap();
            assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{index}").as_str()));
            assert!(p.name_any().starts_with(&format!("idx-{index}-")));
            let env = spec.containers[0].env.as_ref().unwrap();
            assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
            index
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["0", "1", "2"]);
    let done = drive(&client, "default", "idx", 3, |_| 0).await;
    assert!(condition(&done, "Complete").is_some());
    assert_eq!(done.status.unwrap().completed_indexes.as_deref(), Some("0-2"));
    controller.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn exceeding_the_backoff_limit_fails_the_job() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let c = client.clone();
    let controller = Running::spawn(move |t| job::run(c, config(), t));

    create_job(&client, "default", "flaky", json!({"backoffLimit": 1})).await;
    let done = drive(&client, "default", "flaky", 1, |_| 1).await;
    let (reason, message) = condition(&done, "Failed").expect("the job failed");
    assert_eq!(reason, "BackoffLimitExceeded");
    assert_eq!(message, "Job has reached the specified backoff limit");
    assert_eq!(
        condition(&done, "FailureTarget").unwrap().0,
        "BackoffLimitExceeded"
    );
    assert_eq!(done.status.unwrap().failed, Some(2));
    controller.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_pod_failure_policy_fails_the_job_at_once() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let c = client.clone();
    let controller = Running::spawn(move |t| job::run(c, config(), t));

    create_job(
        &client,
        "default",
        "strict",
        json!({"backoffLimit": 6, "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}
        ]}}),
    )
    .await;
    let done = drive(&client, "default", "strict", 1, |_| 42).await;
    let (reason, message) = condition(&done, "Failed").expect("the job failed");
    assert_eq!(reason, "PodFailurePolicy");
    assert!(
        message.contains("failed with exit code 42 matching FailJob rule at index 0"),
        "{message}"
    );
    assert_eq!(done.status.unwrap().failed, Some(1));
    controller.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn suspending_a_job_removes_its_pods_and_resuming_starts_new_ones() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let c = client.clone();
    let controller = Running::spawn(move |t| job::run(c, config(), t));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");

    create_job(
        &client,
        "default",
        "pausable",
        json!({"parallelism": 2, "completions": 2}),
    )
    .await;
    until("two running pods", 30, || async {
        let pods = pods_of(&client, "default", "pausable").await;
        (pods.iter().filter(|p| running(p)).count() == 2).then_some(())
    })
    .await;
    let suspend = |on: bool| json!({"spec": {"suspend": on}});
    jobs.patch("pausable", &PatchParams::default(), &Patch::Merge(&suspend(true)))
        .await
        .unwrap();
    let suspended = until("the job suspended with no pods", 30, || async {
        let job = jobs.get("pausable").await.unwrap();
        let pods = pods_of(&client, "default", "pausable").await;
        (pods.is_empty() && job.status.as_ref()?.active == Some(0)).then_some(job)
    })
    .await;
    let (reason, message) = condition(&suspended, "Suspended").expect("Suspended=True");
    assert_eq!(
        (reason.as_str(), message.as_str()),
        ("JobSuspended", "Job suspended")
    );
    assert_eq!(
        suspended.status.as_ref().unwrap().failed,
        Some(0),
        "suspension is no failure"
    );

    jobs.patch(
        "pausable",
        &PatchParams::default(),
        &Patch::Merge(&suspend(false)),
    )
    .await
    .unwrap();
    let done = drive(&client, "default", "pausable", 2, |_| 0).await;
    assert!(condition(&done, "Complete").is_some());
    let resumed = done.status.unwrap().conditions.unwrap();
    let cond = resumed.iter().find(|c| c.type_ == "Suspended").unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_deref()),
        ("False", Some("JobResumed"))
    );
    controller.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_job_adopts_an_orphan_pod_its_selector_picks() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stray", "labels": {"app": "adopt"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let job: Job = serde_json::from_value(json!({"metadata": {"name": "adopter"}, "spec": {
        "manualSelector": true, "selector": {"matchLabels": {"app": "adopt"}},
        "template": {"metadata": {"labels": {"app": "adopt"}}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}}))
    .unwrap();
    let job = Api::<Job>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    let c = client.clone();
    let controller = Running::spawn(move |t| job::run(c, config(), t));
    let adopted = until("the orphan adopted", 30, || async {
        let p = pods.get("stray").await.unwrap();
        (p.owner_references().first()?.uid == job.uid().unwrap()).then_some(p)
    })
    .await;
    assert!(
        adopted
            .finalizers()
            .iter()
            .any(|f| f == "batch.kubernetes.io/job-tracking")
    );
    finish(&client, &adopted, 0).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let done = until("the job complete", 30, || async {
        let j = jobs.get("adopter").await.unwrap();
        condition(&j, "Complete").map(|_| j)
    })
    .await;
    assert_eq!(done.status.unwrap().succeeded, Some(1));
    let all = pods
        .list(&ListParams::default().labels("app=adopt"))
        .await
        .unwrap()
        .items;
    assert_eq!(
        all.len(),
        1,
        "the adopted pod did the work, no other pod was created"
    );
    controller.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_index_out_of_retries_fails_the_job_once_every_index_is_decided() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let c = client.clone();
    let controller = Running::spawn(move |t| job::run(c, config(), t));

    create_job(
        &client,
        "default",
        "perindex",
        json!({"completionMode": "Indexed", "completions": 2,
        "parallelism": 2, "backoffLimitPerIndex": 1}),
    )
    .await;
    let index = |p: &Pod| {
        p.annotations()
            .get("batch.kubernetes.io/job-completion-index")
            .cloned()
    };
    let done = drive(&client, "default", "perindex", 2, |p| {
        if index(p).as_deref() == Some("0") { 3 } else { 0 }
    })
    .await;
    let (reason, message) = condition(&done, "Failed").expect("the job failed");
    assert_eq!(
        (reason.as_str(), message.as_str()),
        ("FailedIndexes", "Job has failed indexes")
    );
    let status = done.status.unwrap();
    assert_eq!(status.failed_indexes.as_deref(), Some("0"));
    assert_eq!(status.completed_indexes.as_deref(), Some("1"));
    assert_eq!(status.failed, Some(2), "index 0 ran twice");
    let retried = pods_of(&client, "default", "perindex").await;
    let counts: Vec<String> = retried
        .iter()
        .filter(|p| index(p).as_deref() == Some("0"))
        .map(|p| p.annotations()["batch.kubernetes.io/job-index-failure-count"].clone())
        .collect();
    assert_eq!(counts.len(), 2);
    assert!(counts.contains(&"0".to_string()) && counts.contains(&"1".to_string()));
    controller.stop().await;
    server.shutdown().await;
}
