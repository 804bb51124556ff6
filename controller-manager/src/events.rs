//! Events a controller emits about the objects it acts on, published in the background so a
//! reconcile never waits for them. Like upstream's kube-controller-manager (client-go's
//! `record` broadcaster) they are core `v1` Events — what `kubectl describe` and `kubectl
//! events` list — with `source.component` set to the controller; a repeat of the same event
//! (same object, type, reason and message) within six minutes raises the `count` and
//! `lastTimestamp` of the first instead of creating another. (component-base's recorder writes
//! `events.k8s.io/v1` Events and keys repeats without the message, folding "Created pod: a" and
//! "Created pod: b" together.)

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
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
        let now =
            Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now()));
        if let Some((at, event_ns, name, count)) = published.get_mut(&p.key)
            && *event_ns == ns
        {
            let body = serde_json::json!({ "count": *count + 1, "lastTimestamp": now });
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(body))
                .await
            {
                Ok(_) => {
                    *count += 1;
                    *at = Instant::now();
                    continue;
                }
                Err(e) => tracing::debug!(error = %e, "updating a repeated event; creating a new one"),
            }
        }
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    p.regarding.name.clone().unwrap_or_else(|| component.clone()),
                    Timestamp::now().as_nanosecond()
                )),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            involved_object: p.regarding.clone(),
            action: Some(p.key.action.clone()),
            reason: Some(p.key.reason.clone()),
            message: Some(p.key.note.clone()),
            type_: Some(match p.key.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            source: Some(EventSource {
                component: Some(component.clone()),
                host: None,
            }),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            reporting_component: Some(component.clone()),
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
