//! What the scheduler writes to the API: bindings (`pods/binding`), the `PodScheduled`
//! condition and `nominatedNodeName` (`pods/status`), preemption victims' `DisruptionTarget`
//! condition and deletion, and events (`events.k8s.io/v1`, sent in the background and dropped
//! when too many queue up, as upstream's broadcaster does).

use std::sync::Arc;

use component_base::events::{Event, EventType, Recorder};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodCondition};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Resource};
use serde_json::json;
use tokio::sync::mpsc;

/// `PodScheduled`.
pub const POD_SCHEDULED: &str = "PodScheduled";
/// Reason of a pod no node fits.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
/// Reason of a pod with scheduling gates (set by upstream's API server on create).
pub const REASON_SCHEDULING_GATED: &str = "SchedulingGated";
/// Message of a gated pod's condition.
pub const MESSAGE_SCHEDULING_GATED: &str = "Scheduling is blocked due to non-empty scheduling gates";
/// The condition preemption sets on victims.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
/// Its reason.
pub const REASON_PREEMPTION_BY_SCHEDULER: &str = "PreemptionByScheduler";

/// Binds `pod` to `node` through its `binding` subresource.
pub async fn bind(client: &kube::Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let meta = &pod.metadata;
    let name = meta.name.as_deref().unwrap_or_default();
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let body = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": meta.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.create_subresource::<_, serde_json::Value>("binding", name, &PostParams::default(), &body)
        .await?;
    Ok(())
}

/// The pod's current condition of `type_`.
pub fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The `PodScheduled=False` condition to set, or `None` when the pod already carries it with
/// the same reason and message (and `nominated` is unchanged): upstream skips such updates.
fn unscheduled_patch(
    pod: &Pod,
    reason: &str,
    message: &str,
    nominated: Option<&str>,
) -> Option<serde_json::Value> {
    let current = condition(pod, POD_SCHEDULED);
    let current_nominated = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty());
    let same = current.is_some_and(|c| {
        c.status == "False" && c.reason.as_deref() == Some(reason) && c.message.as_deref() == Some(message)
    });
    if same && (nominated.is_none() || nominated == current_nominated) {
        return None;
    }
    let transition = match current {
        Some(c) if c.status == "False" => c.last_transition_time.as_ref().map(|t| t.0),
        _ => None,
    }
    .unwrap_or_else(Timestamp::now);
    let mut status = json!({
        "conditions": [{
            "type": POD_SCHEDULED,
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": transition.to_string(),
        }]
    });
    if let Some(n) = nominated {
        status["nominatedNodeName"] = json!(n);
    }
    Some(json!({ "status": status }))
}

/// Sets `PodScheduled=False` with `reason` and `message` (and `nominatedNodeName`) unless the
/// pod already says so.
pub async fn set_unscheduled(
    client: &kube::Client,
    pod: &Pod,
    reason: &str,
    message: &str,
    nominated: Option<&str>,
) -> Result<(), kube::Error> {
    let Some(patch) = unscheduled_patch(pod, reason, message, nominated) else {
        return Ok(());
    };
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
    );
    api.patch_status(
        pod.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Strategic(patch),
    )
    .await?;
    Ok(())
}

/// Marks a preemption victim (`DisruptionTarget`) and deletes it gracefully.
pub async fn evict_victim(
    client: &kube::Client,
    victim: &Pod,
    scheduler_name: &str,
) -> Result<(), kube::Error> {
    let name = victim.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        victim.metadata.namespace.as_deref().unwrap_or_default(),
    );
    if condition(victim, DISRUPTION_TARGET).is_none_or(|c| c.status != "True") {
        let patch = json!({"status": {"conditions": [{
            "type": DISRUPTION_TARGET,
            "status": "True",
            "reason": REASON_PREEMPTION_BY_SCHEDULER,
            "message": format!("{scheduler_name}: preempting to accommodate a higher priority pod"),
            "lastTransitionTime": Timestamp::now().to_string(),
        }]}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    let params = DeleteParams {
        preconditions: victim.metadata.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// An event to publish about a pod.
#[derive(Debug)]
pub struct PodEvent {
    /// The pod.
    pub regarding: ObjectReference,
    /// A related object (the preemptor of a victim).
    pub related: Option<ObjectReference>,
    /// Normal or Warning.
    pub warning: bool,
    /// `Scheduled`, `FailedScheduling`, `Preempted`.
    pub reason: &'static str,
    /// `Binding`, `Scheduling`, `Preempting`.
    pub action: &'static str,
    /// The message.
    pub note: String,
}

/// The reference events use for a pod.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    pod.object_ref(&())
}

/// Sends events in the background; `send` never waits.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<PodEvent>,
}

/// Events waiting to be sent before new ones are dropped.
pub const EVENT_QUEUE: usize = 1000;
/// Events sent at once.
const EVENT_CONCURRENCY: usize = 16;

impl EventSink {
    /// Starts the sender task; it ends when every sink clone is dropped.
    pub fn start(recorder: Recorder) -> EventSink {
        let (tx, mut rx) = mpsc::channel::<PodEvent>(EVENT_QUEUE);
        let recorder = Arc::new(recorder);
        tokio::spawn(async move {
            let limit = Arc::new(tokio::sync::Semaphore::new(EVENT_CONCURRENCY));
            while let Some(ev) = rx.recv().await {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let recorder = recorder.clone();
                tokio::spawn(async move {
                    let event = Event {
                        type_: if ev.warning {
                            EventType::Warning
                        } else {
                            EventType::Normal
                        },
                        reason: ev.reason.into(),
                        note: Some(ev.note),
                        action: ev.action.into(),
                        secondary: ev.related,
                    };
                    if let Err(e) = recorder.publish(&event, &ev.regarding).await {
                        tracing::debug!(error = %e, reason = ev.reason, "publishing an event");
                    }
                    drop(permit);
                });
            }
        });
        EventSink { tx }
    }

    /// Queues an event; dropped (with a debug log) when the queue is full.
    pub fn send(&self, ev: PodEvent) {
        if let Err(e) = self.tx.try_send(ev) {
            tracing::debug!(error = %e, "event queue full; dropping an event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "d"}, "status": status}))
            .unwrap()
    }

    #[test]
    fn unchanged_conditions_are_not_patched_again() {
        let fresh = pod(json!({}));
        let patch =
            unscheduled_patch(&fresh, REASON_UNSCHEDULABLE, "0/1 nodes are available.", None).unwrap();
        let c = &patch["status"]["conditions"][0];
        assert_eq!(
            (c["type"].as_str(), c["status"].as_str()),
            (Some("PodScheduled"), Some("False"))
        );
        assert_eq!(c["reason"], "Unschedulable");
        assert!(patch["status"].get("nominatedNodeName").is_none());
        let same = pod(
            json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available.", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
        );
        assert!(unscheduled_patch(&same, REASON_UNSCHEDULABLE, "0/1 nodes are available.", None).is_none());
        // A new message keeps the transition time; a nomination is added.
        let p =
            unscheduled_patch(&same, REASON_UNSCHEDULABLE, "0/2 nodes are available.", Some("n")).unwrap();
        assert_eq!(
            p["status"]["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(p["status"]["nominatedNodeName"], "n");
    }
}
