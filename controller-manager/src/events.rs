//! Events a controller emits about the objects it acts on, published in the background (a
//! reconcile never waits for them) through component-base's recorder, which folds repeats into
//! event series.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use tokio::sync::mpsc;

use component_base::events::{Event, EventType};

/// A handle to emit events; cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<(ObjectReference, Event)>,
}

impl EventSink {
    /// A sink reporting as `component` (`deployment-controller`) from `instance`; its publishing
    /// task ends when every handle is dropped.
    pub fn new(client: kube::Client, component: &str, instance: &str) -> Self {
        let recorder = component_base::events::recorder(client, component, instance);
        let (tx, mut rx) = mpsc::unbounded_channel::<(ObjectReference, Event)>();
        tokio::spawn(async move {
            while let Some((regarding, event)) = rx.recv().await {
                if let Err(e) = recorder.publish(&event, &regarding).await {
                    tracing::debug!(reason = %event.reason, error = %e, "publishing an event");
                }
            }
        });
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
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        let _ = self.tx.send((obj.object_ref(&()), event));
    }
}
