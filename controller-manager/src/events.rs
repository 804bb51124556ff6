//! Events a controller emits about the objects it acts on (`events.k8s.io/v1`), published in
//! the background so a reconcile never waits for them. Repeats of the same event (same object,
//! type, reason, action and note) within six minutes become one Event with a growing `series`,
//! as client-go's event broadcaster does; events that differ only in their note ("Created pod:
//! a", "Created pod: b") stay separate. (kube-runtime's recorder, which component-base wraps,
//! keys series without the note and would fold those together.)

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a published event can still grow a series.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Informational.
    Normal,
    /// Something went wrong.
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    regarding: (Option<String>, Option<String>, Option<String>, Option<String>),
    type_: EventType,
    reason: String,
    action: String,
    note: String,
}

struct Pending {
    regarding: ObjectReference,
    key: Key,
}

/// A handle to emit events; cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<Pending>,
}

impl EventSink {
    /// A sink reporting as `component` (`deployment-controller`) from `instance`; its publishing
    /// task ends when every handle is dropped.
    pub fn new(client: kube::Client, component: &str, instance: &str) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(publish_loop(
            client,
            component.to_string(),
            instance.to_string(),
            rx,
        ));
        EventSink { tx }
    }

    /// A sink that drops everything (unit tests).
    pub fn discard() -> Self {
        let (tx, _) = mpsc::unbounded_channel();
        EventSink { tx }
    }

    /// A `Normal` event about `obj`.
    pub fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, action: &str, note: String) {
        self.emit(obj, EventType::Normal, reason, action, note);
    }

    /// A `Warning` event about `obj`.
    pub fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, action: &str, note: String) {
        self.emit(obj, EventType::Warning, reason, action, note);
    }

    fn emit<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        tracing::debug!(object = ?obj.meta().name, reason, note = %note, "event");
        let regarding = obj.object_ref(&());
        let key = Key {
            regarding: (
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ),
            type_,
            reason: reason.to_string(),
            action: action.to_string(),
            note,
        };
        let _ = self.tx.send(Pending { regarding, key });
    }
}

async fn publish_loop(
    client: kube::Client,
    component: String,
    instance: String,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    let mut published: HashMap<Key, (Instant, String, String, i32)> = HashMap::new();
    while let Some(p) = rx.recv().await {
        published.retain(|_, (at, ..)| at.elapsed() < SERIES_WINDOW);
        let ns = p.regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        let now = Timestamp::now();
        if let Some((at, event_ns, name, count)) = published.get_mut(&p.key)
            && *event_ns == ns
        {
            *count += 1;
            let series = EventSeries {
                count: *count,
                last_observed_time: MicroTime(now),
            };
            let body = serde_json::json!({ "series": series });
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(body))
                .await
            {
                Ok(_) => {
                    *at = Instant::now();
                    continue;
                }
                Err(e) => tracing::debug!(error = %e, "updating an event series; creating a new event"),
            }
        }
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    p.regarding.name.clone().unwrap_or_else(|| component.clone()),
                    now.as_nanosecond()
                )),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            action: Some(p.key.action.clone()),
            reason: Some(p.key.reason.clone()),
            note: Some(p.key.note.clone()),
            type_: Some(match p.key.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            event_time: Some(MicroTime(now)),
            regarding: Some(p.regarding.clone()),
            reporting_controller: Some(component.clone()),
            reporting_instance: Some(instance.clone()),
            ..Event::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                let name = created.metadata.name.unwrap_or_default();
                published.insert(p.key, (Instant::now(), ns, name, 1));
            }
            Err(e) => tracing::debug!(reason = %p.key.reason, error = %e, "publishing an event"),
        }
    }
}
