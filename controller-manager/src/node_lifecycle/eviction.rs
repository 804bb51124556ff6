//! Taint-based eviction (upstream's `taint-eviction-controller`): a pod on a node with NoExecute
//! taints it does not tolerate is deleted at once; one tolerating them all for a limited
//! `tolerationSeconds` is deleted once the shortest of them has passed since the taints were
//! seen, unless they go away first. Deleted pods first get the `DisruptionTarget` condition.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_base::events::{Event, EventType, Recorder};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::queue::WorkQueue;

use super::taints::taints_of;

/// The pod condition's reason.
pub const REASON: &str = "DeletionByTaintManager";
/// The pod condition's message.
pub const MESSAGE: &str = "Taint manager: deleting due to NoExecute taint";
/// The events' reason.
pub const EVENT_REASON: &str = "TaintManagerEviction";

/// Whether `toleration` tolerates `taint` (upstream's `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return operator == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" | "" => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// What to do with a pod on a tainted node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The node has no NoExecute taint, or the pod tolerates them forever.
    Keep,
    /// A NoExecute taint is not tolerated.
    EvictNow,
    /// Every taint is tolerated, the shortest for this long.
    EvictAfter(Duration),
}

/// The verdict for a pod with `tolerations` on a node with `taints`.
pub fn verdict(tolerations: &[Toleration], taints: &[Taint]) -> Verdict {
    let mut shortest: Option<Duration> = None;
    let mut any = false;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        any = true;
        let used: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if used.is_empty() {
            return Verdict::EvictNow;
        }
        for t in used {
            if let Some(s) = t.toleration_seconds {
                let d = Duration::from_secs(s.max(0) as u64);
                shortest = Some(shortest.map_or(d, |m| m.min(d)));
            } else {
                // Upstream: a toleration without seconds among the used ones means forever.
                return Verdict::Keep;
            }
        }
    }
    match shortest {
        Some(d) if any => Verdict::EvictAfter(d),
        _ => Verdict::Keep,
    }
}

/// The work of the evictor: a node whose taints changed, or one pod.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Key {
    /// Every pod on this node.
    Node(String),
    /// A pod by namespace and name.
    Pod(String, String),
}

struct Scheduled {
    created: Instant,
    fire_at: Instant,
    cancel: CancellationToken,
}

/// The evictor's state: pods scheduled for deletion.
pub struct Evictor {
    client: Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    recorder: Recorder,
    scheduled: Mutex<HashMap<(String, String), Scheduled>>,
}

impl Evictor {
    /// An evictor over the shared node and pod caches.
    pub fn new(client: Client, nodes: Store<Node>, pods: Store<Pod>, recorder: Recorder) -> Arc<Self> {
        Arc::new(Evictor {
            client,
            nodes,
            pods,
            recorder,
            scheduled: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Scheduled>> {
        self.scheduled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Processes `queue` until it shuts down.
    pub async fn work(self: Arc<Self>, queue: WorkQueue<Key>) {
        while let Some(key) = queue.get().await {
            match &key {
                Key::Node(name) => {
                    let pods: Vec<Arc<Pod>> = self
                        .pods
                        .state()
                        .into_iter()
                        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name))
                        .collect();
                    for pod in pods {
                        self.process(&pod.namespace().unwrap_or_default(), &pod.name_any())
                            .await;
                    }
                }
                Key::Pod(ns, name) => self.process(ns, name).await,
            }
            queue.done(&key);
        }
        for (_, s) in self.lock().drain() {
            s.cancel.cancel();
        }
    }

    async fn process(self: &Arc<Self>, ns: &str, name: &str) {
        let key = (ns.to_string(), name.to_string());
        let pod = self.pods.get(&ObjectRef::new(name).within(ns));
        let Some(pod) = pod.filter(|p| p.metadata.deletion_timestamp.is_none()) else {
            self.cancel(&key, None).await;
            return;
        };
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .and_then(|n| self.nodes.get(&ObjectRef::new(&n)));
        let taints = node.as_deref().map(taints_of).unwrap_or_default();
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        match verdict(tolerations, taints) {
            Verdict::Keep => self.cancel(&key, Some(&pod)).await,
            Verdict::EvictNow => {
                if let Some(s) = self.lock().remove(&key) {
                    s.cancel.cancel();
                }
                self.evict(&pod).await;
            }
            Verdict::EvictAfter(after) => self.schedule(key, pod, after).await,
        }
    }

    async fn schedule(self: &Arc<Self>, key: (String, String), pod: Arc<Pod>, after: Duration) {
        let now = Instant::now();
        let created = {
            let map = self.lock();
            match map.get(&key) {
                Some(s) if s.created + after >= s.fire_at => return,
                Some(s) => s.created,
                None => now,
            }
        };
        self.cancel(&key, None).await;
        let fire_at = created + after;
        let cancel = CancellationToken::new();
        self.lock().insert(
            key.clone(),
            Scheduled {
                created,
                fire_at,
                cancel: cancel.clone(),
            },
        );
        tracing::debug!(pod = %format!("{}/{}", key.0, key.1), in_secs = (fire_at - now).as_secs(), "eviction scheduled");
        let me = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep_until(fire_at) => {
                    me.lock().remove(&key);
                    me.evict(&pod).await;
                }
            }
        });
    }

    async fn cancel(&self, key: &(String, String), pod: Option<&Pod>) {
        let Some(s) = self.lock().remove(key) else { return };
        s.cancel.cancel();
        if let Some(pod) = pod {
            let note = format!("Cancelling deletion of Pod {}/{}", key.0, key.1);
            self.event(pod, EventType::Normal, note).await;
        }
    }

    async fn event(&self, pod: &Pod, kind: EventType, note: String) {
        let ev = Event {
            type_: kind,
            reason: EVENT_REASON.into(),
            note: Some(note),
            action: EVENT_REASON.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &pod.object_ref(&())).await {
            tracing::warn!(error = %e, "recording an event failed");
        }
    }

    /// Marks `pod` as a disruption target and deletes it (retrying a few times, as upstream).
    async fn evict(&self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        self.event(
            pod,
            EventType::Normal,
            format!("Marking for deletion Pod {ns}/{name}"),
        )
        .await;
        for attempt in 0..5u32 {
            match delete_as_disrupted(&api, pod, REASON, MESSAGE).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, attempt, "evicting a pod failed");
                    tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
                }
            }
        }
    }
}

/// Adds the `DisruptionTarget` condition to `pod`, then deletes it; a pod already gone or
/// replaced counts as done.
pub async fn delete_as_disrupted(
    api: &Api<Pod>,
    pod: &Pod,
    reason: &str,
    message: &str,
) -> Result<(), kube::Error> {
    let name = pod.name_any();
    let patch = json!({"metadata": {"uid": pod.uid()}, "status": {"conditions": [{
        "type": "DisruptionTarget", "status": "True", "reason": reason, "message": message,
        "lastTransitionTime": Timestamp::now().to_string(),
    }]}});
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(()),
        Err(e) => return Err(e),
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Taint::default()
        }
    }

    fn tol(key: &str, op: &str, effect: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.into()),
            operator: Some(op.into()),
            effect: (!effect.is_empty()).then(|| effect.into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    const U: &str = "node.kubernetes.io/unreachable";
    const N: &str = "node.kubernetes.io/not-ready";

    #[test]
    fn untolerated_no_execute_taints_evict_at_once() {
        assert_eq!(verdict(&[], &[taint(U, "NoExecute")]), Verdict::EvictNow);
        assert_eq!(verdict(&[], &[taint(U, "NoSchedule")]), Verdict::Keep);
        let only_not_ready = [tol(N, "Exists", "NoExecute", Some(300))];
        assert_eq!(
            verdict(&only_not_ready, &[taint(U, "NoExecute")]),
            Verdict::EvictNow
        );
    }

    #[test]
    fn the_shortest_toleration_decides_and_unbounded_ones_keep() {
        let defaults = [
            tol(N, "Exists", "NoExecute", Some(300)),
            tol(U, "Exists", "NoExecute", Some(300)),
        ];
        assert_eq!(
            verdict(&defaults, &[taint(U, "NoExecute")]),
            Verdict::EvictAfter(Duration::from_secs(300))
        );
        let short = [tol(U, "Exists", "", Some(5)), defaults[1].clone()];
        assert_eq!(
            verdict(&short, &[taint(U, "NoExecute")]),
            Verdict::EvictAfter(Duration::from_secs(5))
        );
        let forever = [tol("", "Exists", "", None)];
        assert_eq!(
            verdict(&forever, &[taint(U, "NoExecute"), taint(N, "NoExecute")]),
            Verdict::Keep
        );
        let negative = [tol(U, "Exists", "NoExecute", Some(-3))];
        assert_eq!(
            verdict(&negative, &[taint(U, "NoExecute")]),
            Verdict::EvictAfter(Duration::ZERO)
        );
    }

    #[test]
    fn equal_tolerations_compare_values() {
        let mut t = taint("dedicated", "NoExecute");
        t.value = Some("gpu".into());
        let mut eq = tol("dedicated", "Equal", "NoExecute", None);
        eq.value = Some("gpu".into());
        assert!(tolerates(&eq, &t));
        eq.value = Some("cpu".into());
        assert!(!tolerates(&eq, &t));
    }
}
