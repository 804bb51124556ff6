//! The pod garbage collector (upstream `pod-garbage-collector`): every `gc_check_period` it
//! deletes terminated pods above `--terminated-pod-gc-threshold` (evicted first, then oldest),
//! terminating pods on out-of-service nodes that are not Ready, pods bound to nodes that no
//! longer exist (after a quarantine and a re-check of the node), and terminating pods that were
//! never scheduled — all with grace period 0, marking pods not yet terminal Failed first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::node_lifecycle::health::ready_status;
use crate::node_lifecycle::taints::{OUT_OF_SERVICE, taints_of};

/// The field manager of the status writes, as upstream.
pub const FIELD_MANAGER: &str = "PodGC";
/// The DisruptionTarget reason of pods of deleted nodes.
pub const REASON: &str = "DeletionByPodGC";
/// Its message.
pub const MESSAGE_ORPHANED: &str = "PodGC: node no longer exists";

/// Settings of the pod garbage collector.
#[derive(Clone, Debug)]
pub struct PodGcConfig {
    /// `--terminated-pod-gc-threshold` (12500); 0 keeps every terminated pod.
    pub terminated_pod_gc_threshold: usize,
    /// How often the collector runs (upstream's `gcCheckPeriod`, 20 s).
    pub gc_check_period: Duration,
    /// How long a node must stay missing before its pods are deleted (upstream's
    /// `quarantineTime`, 40 s).
    pub quarantine: Duration,
}

impl Default for PodGcConfig {
    fn default() -> Self {
        PodGcConfig {
            terminated_pod_gc_threshold: 12500,
            gc_check_period: Duration::from_secs(20),
            quarantine: Duration::from_secs(40),
        }
    }
}

/// Pod GC failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn terminated(pod: &Pod) -> bool {
    !matches!(phase(pod), "Pending" | "Running" | "Unknown")
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The terminated pods to delete so that at most `threshold` remain: evicted ones first, then
/// the oldest.
pub fn excess_terminated(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    let mut done: Vec<Arc<Pod>> = pods.iter().filter(|p| terminated(p)).cloned().collect();
    if threshold == 0 || done.len() <= threshold {
        return Vec::new();
    }
    let evicted = |p: &Pod| p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted");
    done.sort_by(|a, b| evicted(b).cmp(&evicted(a)).then(created(a).cmp(&created(b))));
    let excess = done.len() - threshold;
    done.truncate(excess);
    done
}

/// Terminating pods on nodes that are not Ready and carry the out-of-service taint, oldest first.
pub fn terminating_out_of_service(pods: &[Arc<Pod>], nodes: &HashMap<String, Arc<Node>>) -> Vec<Arc<Pod>> {
    let mut out: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .filter(|p| {
            nodes.get(node_name(p)).is_some_and(|n| {
                ready_status(n) != Some("True") && taints_of(n).iter().any(|t| t.key == OUT_OF_SERVICE)
            })
        })
        .cloned()
        .collect();
    out.sort_by_key(|p| created(p));
    out
}

/// The names of nodes pods are bound to that are not among `nodes`.
pub fn missing_nodes(pods: &[Arc<Pod>], nodes: &HashMap<String, Arc<Node>>) -> HashSet<String> {
    pods.iter()
        .map(|p| node_name(p))
        .filter(|n| !n.is_empty() && !nodes.contains_key(*n))
        .map(str::to_string)
        .collect()
}

/// Terminating pods that were never bound to a node.
pub fn unscheduled_terminating(pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    let mut out: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && node_name(p).is_empty())
        .cloned()
        .collect();
    out.sort_by_key(|p| created(p));
    out
}

/// Runs the collector until `shutdown`.
pub async fn run(client: Client, config: PodGcConfig, shutdown: CancellationToken) -> Result<(), Error> {
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (nodes, node_writer) = reflector::store::<Node>();
    let pod_feed = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .for_each(|_| futures::future::ready(()));
    let node_feed = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(node_writer)
        .for_each(|_| futures::future::ready(()));
    let feed = tokio::spawn(async move {
        tokio::join!(pod_feed, node_feed);
    });
    let ready = {
        let (pods, nodes) = (pods.clone(), nodes.clone());
        async move {
            let _ = tokio::join!(pods.wait_until_ready(), nodes.wait_until_ready());
        }
    };
    let mut gc = Collector {
        client,
        config,
        pods,
        nodes,
        missing_since: HashMap::new(),
    };
    tokio::select! {
        _ = shutdown.cancelled() => { feed.abort(); return Ok(()); }
        _ = ready => {}
    }
    let mut tick = tokio::time::interval(gc.config.gc_check_period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => gc.pass().await,
        }
    }
    feed.abort();
    Ok(())
}

struct Collector {
    client: Client,
    config: PodGcConfig,
    pods: Store<Pod>,
    nodes: Store<Node>,
    /// Nodes pods are bound to that were missing, since when.
    missing_since: HashMap<String, Instant>,
}

impl Collector {
    async fn pass(&mut self) {
        let pods = self.pods.state();
        let nodes: HashMap<String, Arc<Node>> = self
            .nodes
            .state()
            .into_iter()
            .map(|n| (n.name_any(), n))
            .collect();
        for pod in excess_terminated(&pods, self.config.terminated_pod_gc_threshold) {
            self.delete(&pod, None).await;
        }
        for pod in terminating_out_of_service(&pods, &nodes) {
            self.delete(&pod, None).await;
        }
        let missing = missing_nodes(&pods, &nodes);
        let now = Instant::now();
        self.missing_since.retain(|n, _| missing.contains(n));
        for node in missing {
            let since = *self.missing_since.entry(node.clone()).or_insert(now);
            if now.duration_since(since) < self.config.quarantine {
                continue;
            }
            // The cache may lag: ask the server before deleting anything.
            match Api::<Node>::all(self.client.clone()).get_opt(&node).await {
                Ok(Some(_)) => {
                    self.missing_since.remove(&node);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, "checking a missing node failed");
                    continue;
                }
            }
            for pod in pods.iter().filter(|p| node_name(p) == node) {
                tracing::info!(pod = %format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()), node = %node, "deleting the pod of a deleted node");
                self.delete(pod, Some(MESSAGE_ORPHANED)).await;
            }
        }
        for pod in unscheduled_terminating(&pods) {
            self.delete(&pod, None).await;
        }
    }

    /// Upstream's `markFailedAndDeletePodWithCondition`: a pod not yet terminal becomes Failed
    /// (with a DisruptionTarget condition carrying `message`, when given), then it is deleted
    /// with grace period 0.
    async fn delete(&self, pod: &Pod, message: Option<&str>) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if !terminated(pod) {
            let mut status = json!({"phase": "Failed"});
            if let Some(message) = message {
                status["conditions"] = json!([{
                    "type": "DisruptionTarget", "status": "True", "reason": REASON, "message": message,
                    "lastTransitionTime": Timestamp::now().to_string(),
                }]);
            }
            let apply = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "status": status});
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match api.patch_status(&name, &params, &Patch::Apply(apply)).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return,
                Err(e) => {
                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "marking a pod Failed failed");
                    return;
                }
            }
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "deleting a pod failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    use super::*;

    fn pod(
        name: &str,
        created: i64,
        phase: &str,
        node: &str,
        reason: Option<&str>,
        deleting: bool,
    ) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                deletion_timestamp: deleting.then(|| Time(Timestamp::from_second(created + 1).unwrap())),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                reason: reason.map(str::to_string),
                ..PodStatus::default()
            }),
        })
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn terminated_pods_above_the_threshold_go_evicted_first_then_oldest() {
        let pods = [
            pod("running", 1, "Running", "n", None, false),
            pod("old", 2, "Succeeded", "n", None, false),
            pod("newer", 3, "Failed", "n", None, false),
            pod("evicted", 4, "Failed", "n", Some("Evicted"), false),
            pod("newest", 5, "Succeeded", "n", None, false),
        ];
        assert_eq!(names(&excess_terminated(&pods, 2)), ["evicted", "old"]);
        assert!(excess_terminated(&pods, 4).is_empty());
        assert!(
            excess_terminated(&pods, 0).is_empty(),
            "0 disables the collection"
        );
    }

    #[test]
    fn orphans_and_unscheduled_terminating_pods() {
        let nodes: HashMap<String, Arc<Node>> = [(
            "here".to_string(),
            Arc::new(Node {
                metadata: ObjectMeta {
                    name: Some("here".into()),
                    ..ObjectMeta::default()
                },
                ..Node::default()
            }),
        )]
        .into();
        let pods = [
            pod("a", 1, "Running", "here", None, false),
            pod("b", 2, "Running", "gone", None, false),
            pod("c", 3, "Pending", "", None, true),
            pod("d", 4, "Pending", "", None, false),
        ];
        assert_eq!(missing_nodes(&pods, &nodes), HashSet::from(["gone".to_string()]));
        assert_eq!(names(&unscheduled_terminating(&pods)), ["c"]);
        assert!(terminating_out_of_service(&pods, &nodes).is_empty());
        let out_of_service: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "down"},
            "spec": {"taints": [{"key": OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]},
        }))
        .unwrap();
        let nodes: HashMap<String, Arc<Node>> = [("down".to_string(), Arc::new(out_of_service))].into();
        let pods = [
            pod("stuck", 1, "Running", "down", None, true),
            pod("live", 2, "Running", "down", None, false),
        ];
        assert_eq!(names(&terminating_out_of_service(&pods, &nodes)), ["stuck"]);
    }
}
