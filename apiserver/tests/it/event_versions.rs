//! `events.k8s.io/v1` and core `v1` Events are one resource in two versions, as upstream: what a
//! recorder writes through `events.k8s.io/v1` (the scheduler, kube-runtime's `Recorder`) is what
//! `kubectl describe` reads through `v1`, and the other way round.

use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::kube_client::Running;

#[tokio::test]
async fn one_event_through_both_apis() {
    let running = Running::start().await;
    let client = running.client().await;
    let v1: Api<Event> = Api::namespaced(client.clone(), "default");
    let core: Api<CoreEvent> = Api::namespaced(client, "default");

    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": "web.1"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "web", "apiVersion": "v1"},
        "note": "Successfully assigned default/web to node-1",
        "reason": "Scheduled", "type": "Normal", "action": "Binding",
        "reportingController": "default-scheduler", "reportingInstance": "default-scheduler-x"
    }))
    .unwrap();
    let created = v1.create(&PostParams::default(), &event).await.unwrap();
    assert_eq!(
        created.note.as_deref(),
        Some("Successfully assigned default/web to node-1")
    );
    assert_eq!(
        created.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("web")
    );

    let seen = core.get("web.1").await.unwrap();
    assert_eq!(
        seen.message.as_deref(),
        Some("Successfully assigned default/web to node-1")
    );
    assert_eq!(seen.involved_object.name.as_deref(), Some("web"));
    assert_eq!(seen.reporting_component.as_deref(), Some("default-scheduler"));
    let by_reason = core
        .list(&ListParams::default().fields("reason=Scheduled,involvedObject.name=web"))
        .await
        .unwrap();
    assert_eq!(by_reason.items.len(), 1);

    let old_style = CoreEvent {
        metadata: kube::api::ObjectMeta {
            name: Some("web.2".into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some("web".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        message: Some("Started container app".into()),
        reason: Some("Started".into()),
        type_: Some("Normal".into()),
        count: Some(3),
        ..Default::default()
    };
    core.create(&PostParams::default(), &old_style).await.unwrap();
    let seen = v1.get("web.2").await.unwrap();
    assert_eq!(seen.note.as_deref(), Some("Started container app"));
    assert_eq!(seen.deprecated_count, Some(3));
    let all = v1
        .list(&ListParams::default().fields("involvedObject.name=web"))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
}
