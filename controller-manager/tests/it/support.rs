//! A test server with the controller-manager running against it, and a stand-in for the
//! kubelet that marks pods Running and Ready.

use std::future::Future;
use std::time::Duration;

use apiserver::testing::TestServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A server, the manager running against it and an optional pod-readiness helper.
pub struct Cluster {
    pub server: TestServer,
    pub client: kube::Client,
    shutdown: CancellationToken,
    manager: Option<JoinHandle<Result<(), controller_manager::Error>>>,
    kubelet: Option<JoinHandle<()>>,
}

impl Cluster {
    /// Starts a server and the named controllers (admin credentials).
    pub async fn start(controllers: &[&str]) -> Cluster {
        let server = TestServer::start().await.expect("server starts");
        let client = server.client();
        let shutdown = CancellationToken::new();
        let config = controller_manager::Config {
            controllers: controllers.iter().map(|s| s.to_string()).collect(),
            ..controller_manager::Config::default()
        };
        let manager = tokio::spawn(controller_manager::run(config, client.clone(), shutdown.clone()));
        Cluster {
            server,
            client,
            shutdown,
            manager: Some(manager),
            kubelet: None,
        }
    }

    /// Marks every pod in `namespace` Running and Ready shortly after it appears, until stop.
    pub fn start_kubelet(&mut self, namespace: &str) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let stop = self.shutdown.clone();
        self.kubelet = Some(tokio::spawn(async move {
            loop {
                if let Ok(list) = pods.list(&ListParams::default()).await {
                    let pending = list
                        .items
                        .into_iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none() && !is_ready(p));
                    futures::stream::iter(pending)
                        .for_each_concurrent(16, |p| {
                            let pods = pods.clone();
                            async move {
                                let _ = mark_ready(&pods, &p.name_any()).await;
                            }
                        })
                        .await;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }));
    }

    /// Stops the helper that marks pods ready.
    pub async fn stop_kubelet(&mut self) {
        if let Some(k) = self.kubelet.take() {
            k.abort();
            let _ = k.await;
        }
    }

    /// Stops everything.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        self.stop_kubelet().await;
        if let Some(m) = self.manager.take() {
            let res = tokio::time::timeout(Duration::from_secs(20), m).await;
            let res = res.expect("manager stops").expect("manager task");
            res.expect("manager ran without error");
        }
        self.server.shutdown().await;
    }
}

pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Marks one pod Running and Ready now.
pub async fn mark_ready(pods: &Api<Pod>, name: &str) -> Result<Pod, kube::Error> {
    let now = Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
}

/// Polls `check` until it returns `Ok`, failing after 30 s with the last state described.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    eventually_within(what, Duration::from_secs(30), check).await
}

/// [`eventually`] with another deadline.
pub async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(state) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "timed out waiting for {what}: {state}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pods of `namespace` (not being deleted) controlled by the owner with `uid`.
pub async fn owned_pods(pods: &Api<Pod>, uid: &str) -> Vec<Pod> {
    pods.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == uid && r.controller == Some(true))
        })
        .collect()
}
