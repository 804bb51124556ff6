//! Events about the objects a component acts on, as `events.k8s.io/v1` Events: repeats of the
//! same event within a few minutes become one Event with a growing `series` (kube-runtime's
//! recorder), which is what `kubectl describe` and `kubectl events` show.

pub use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// A recorder reporting as `controller` (`default-scheduler`, `deployment-controller`) from
/// `instance` (the leader identity or host name).
pub fn recorder(client: kube::Client, controller: &str, instance: &str) -> Recorder {
    Recorder::new(
        client,
        Reporter {
            controller: controller.into(),
            instance: Some(instance.into()),
        },
    )
}
