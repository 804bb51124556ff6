//! Integration tests of the scheduler against an in-process API server: the scheduler runs with
//! the `system:kube-scheduler` identity the server writes to its data dir (so its bootstrap RBAC
//! role is proven sufficient); the test plays the admin creating nodes and pods.

mod bench;
mod command;
mod preemption;
mod scheduling;
mod volumes;

use std::future::Future;
use std::time::{Duration, Instant};

use apiserver::testing::TestServer;
use component_base::client::{ClientSettings, build_client};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A server and a scheduler running against it.
pub struct Harness {
    /// The API server.
    pub server: TestServer,
    /// Its admin client.
    pub admin: kube::Client,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), scheduler::Error>>>,
}

impl Harness {
    /// Starts a server and a scheduler with `config` (its client as system:kube-scheduler).
    pub async fn start(config: scheduler::Config) -> Harness {
        let server = TestServer::start().await.expect("test server");
        Self::from_server(server, config, 0.0, 0).await
    }

    /// Starts a scheduler against a running server, with a client rate limit (0: none).
    pub async fn from_server(server: TestServer, config: scheduler::Config, qps: f32, burst: u32) -> Harness {
        let admin = server.client();
        let client = build_client(&ClientSettings {
            kubeconfig: Some(server.data_dir().join("scheduler.kubeconfig")),
            master: None,
            qps,
            burst,
            user_agent: "kube-scheduler/test".into(),
        })
        .await
        .expect("scheduler client");
        let stop = CancellationToken::new();
        let task = tokio::spawn(scheduler::run(config, client, stop.clone()));
        Harness {
            server,
            admin,
            stop,
            task: Some(task),
        }
    }

    /// The helpers over a server whose scheduler runs elsewhere.
    pub fn without_scheduler(server: TestServer) -> Harness {
        Harness {
            admin: server.client(),
            server,
            stop: CancellationToken::new(),
            task: None,
        }
    }

    /// Stops the scheduler (it must end cleanly) and the server.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Some(task) = self.task {
            let outcome = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("the scheduler stops on shutdown")
                .expect("the scheduler task did not panic");
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        self.server.shutdown().await;
    }

    /// Pods in `default`, as the admin.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.admin.clone(), "default")
    }

    /// Creates a Ready node with `cpu` CPUs, 8Gi and 110 pods, merged with `extra`.
    pub async fn node(&self, name: &str, cpu: &str, extra: Value) {
        let mut v = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]
            }
        });
        merge(&mut v, extra);
        let node: Node = serde_json::from_value(v.clone()).unwrap();
        let api: Api<Node> = Api::all(self.admin.clone());
        let created = api
            .create(&PostParams::default(), &node)
            .await
            .expect("create node");
        // The status is the kubelet's to write: set it through the subresource when create
        // dropped it.
        if created
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .is_none()
        {
            let mut with_status = created;
            with_status.status = node.status;
            api.replace_status(name, &PostParams::default(), &with_status)
                .await
                .expect("node status");
        }
    }

    /// Creates a pod in `default` requesting `cpu`, merged with `extra`.
    pub async fn pod(&self, name: &str, cpu: &str, extra: Value) -> Pod {
        let mut v = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                     "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}
        });
        merge(&mut v, extra);
        self.pods()
            .create(&PostParams::default(), &serde_json::from_value(v).unwrap())
            .await
            .expect("create pod")
    }

    /// Waits until pod `name` is bound, returning its node.
    pub async fn bound(&self, name: &str) -> String {
        let pods = self.pods();
        until(&format!("{name} bound"), || async {
            pods.get(name)
                .await
                .ok()
                .and_then(|p| p.spec.and_then(|s| s.node_name))
        })
        .await
    }

    /// The current node of pod `name`, if bound.
    pub async fn node_of(&self, name: &str) -> Option<String> {
        self.pods().get(name).await.ok()?.spec?.node_name
    }

    /// Waits for an event about pod `name` with `reason`, returning its note.
    pub async fn event(&self, name: &str, reason: &str) -> String {
        let events: Api<Event> = Api::namespaced(self.admin.clone(), "default");
        until(&format!("{reason} event for {name}"), || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find_map(|e| {
                let about = e.regarding.as_ref()?.name.as_deref()? == name;
                (about && e.reason.as_deref() == Some(reason)).then(|| {
                    assert_eq!(e.reporting_controller.as_deref(), Some("default-scheduler"));
                    e.note.unwrap_or_default()
                })
            })
        })
        .await
    }

    /// Waits for pod `name`'s PodScheduled condition to have `reason`, returning its message.
    pub async fn unscheduled(&self, name: &str, reason: &str) -> String {
        let pods = self.pods();
        until(&format!("{name} PodScheduled=False {reason}"), || async {
            let p = pods.get(name).await.ok()?;
            let c = p
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled")?;
            (c.status == "False" && c.reason.as_deref() == Some(reason))
                .then(|| c.message.unwrap_or_default())
        })
        .await
    }
}

/// Polls `f` until it yields a value (bounded).
pub async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deep-merges `extra` into `v`.
pub fn merge(v: &mut Value, extra: Value) {
    match (v, extra) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, bv) in b {
                merge(a.entry(k).or_insert(Value::Null), bv);
            }
        }
        (slot, other) => *slot = other,
    }
}
