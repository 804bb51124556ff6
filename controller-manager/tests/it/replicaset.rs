//! ReplicaSet and ReplicationController reconcile against the API server.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{Cluster, eventually, mark_ready, owned_pods};

fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            }
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_replica_set_creates_adopts_releases_and_scales() {
    let cluster = Cluster::start(&["replicaset-controller"]).await;
    let client = cluster.client.clone();
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let rs = rss
        .create(&PostParams::default(), &replica_set("web", 3))
        .await
        .unwrap();
    let uid = rs.uid().unwrap();

    let created = eventually("3 pods", || async {
        let p = owned_pods(&pods, &uid).await;
        if p.len() == 3 {
            Ok(p)
        } else {
            Err(format!("{} pods", p.len()))
        }
    })
    .await;
    for p in &created {
        assert!(p.name_any().starts_with("web-"), "{}", p.name_any());
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(r.block_owner_deletion, Some(true));
    }
    // No over-creation: the count stays at 3 while the watch catches up.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(owned_pods(&pods, &uid).await.len(), 3);

    for p in &created {
        mark_ready(&pods, &p.name_any()).await.unwrap();
    }
    eventually("status 3/3 ready and available", || async {
        let s = rss.get("web").await.unwrap().status.unwrap_or_default();
        let got = (
            s.replicas,
            s.ready_replicas,
            s.available_replicas,
            s.fully_labeled_replicas,
            s.observed_generation,
        );
        if got == (3, Some(3), Some(3), Some(3), Some(1)) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;

    // A pod that no longer matches is released and replaced.
    let victim = created[0].name_any();
    pods.patch(
        &victim,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    eventually("the relabeled pod released and replaced", || async {
        let released = pods.get(&victim).await.unwrap();
        let free = released
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(|r| r.iter().all(|r| r.uid != uid));
        let n = owned_pods(&pods, &uid).await.len();
        if free && n == 3 {
            Ok(())
        } else {
            Err(format!("released {free}, owned {n}"))
        }
    })
    .await;

    // An orphan that matches is adopted (and, being the least ready, is the one deleted).
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    }))
    .unwrap();
    pods.patch(
        &victim,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    eventually("adoption then scale-down to 3", || async {
        let owned = owned_pods(&pods, &uid).await;
        let names: Vec<String> = owned.iter().map(|p| p.name_any()).collect();
        let orphan_gone = pods
            .get_opt("orphan")
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some());
        if owned.len() == 3 && names.contains(&victim) && orphan_gone {
            Ok(())
        } else {
            Err(format!("{names:?}, orphan gone {orphan_gone}"))
        }
    })
    .await;

    // Scale down to 1.
    rss.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("1 pod", || async {
        let n = owned_pods(&pods, &uid).await.len();
        let s = rss.get("web").await.unwrap().status.unwrap_or_default();
        if n == 1 && s.replicas == 1 && s.observed_generation == Some(2) {
            Ok(())
        } else {
            Err(format!("{n} pods, {s:?}"))
        }
    })
    .await;

    let events: Api<Event> = Api::default_namespaced(client.clone());
    let reasons = eventually("events", || async {
        let list = events.list(&ListParams::default()).await.unwrap();
        let reasons: Vec<String> = list.items.iter().filter_map(|e| e.reason.clone()).collect();
        if reasons.iter().any(|r| r == "SuccessfulCreate") && reasons.iter().any(|r| r == "SuccessfulDelete")
        {
            Ok(reasons)
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;
    assert!(!reasons.is_empty());
    // One event per pod, as upstream ("Created pod: <name>"), from the controller.
    let list = events.list(&ListParams::default()).await.unwrap().items;
    let created: Vec<&Event> = list
        .iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
        .collect();
    assert!(created.len() >= 3, "{created:?}");
    for e in created {
        assert!(
            e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("Created pod: web-")),
            "{e:?}"
        );
        assert_eq!(
            e.source.as_ref().and_then(|s| s.component.as_deref()),
            Some("replicaset-controller")
        );
        assert_eq!(e.involved_object.kind.as_deref(), Some("ReplicaSet"));
    }
    cluster.stop().await;
}

#[tokio::test]
async fn a_replication_controller_keeps_its_replicas() {
    let mut cluster = Cluster::start(&["replicationcontroller"]).await;
    cluster.start_kubelet("default");
    let rcs: Api<ReplicationController> = Api::default_namespaced(cluster.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(cluster.client.clone());
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "selector": {"app": "legacy"},
                 "template": {"metadata": {"labels": {"app": "legacy"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }))
    .unwrap();
    let rc = rcs.create(&PostParams::default(), &rc).await.unwrap();
    let uid = rc.uid().unwrap();
    let first = eventually("2 pods", || async {
        let p = owned_pods(&pods, &uid).await;
        if p.len() == 2 {
            Ok(p)
        } else {
            Err(format!("{}", p.len()))
        }
    })
    .await;
    pods.delete(&first[0].name_any(), &Default::default())
        .await
        .unwrap();
    eventually("a replacement and status", || async {
        let p = owned_pods(&pods, &uid).await;
        let s = rcs.get("legacy").await.unwrap().status.unwrap_or_default();
        let ready = p.iter().filter(|p| crate::support::is_ready(p)).count();
        if p.len() == 2
            && ready == 2
            && !p.iter().any(|p| p.name_any() == first[0].name_any())
            && s.replicas == 2
            && s.ready_replicas == Some(2)
        {
            Ok(())
        } else {
            Err(format!("{} pods, {s:?}", p.len()))
        }
    })
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_quota_refusal_sets_replica_failure_and_a_failed_create_event() {
    let cluster = Cluster::start(&["replicaset-controller"]).await;
    let client = cluster.client.clone();
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> = Api::default_namespaced(client.clone());
    let quota =
        serde_json::from_value(json!({"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "1"}}}))
            .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let rs = rss
        .create(&PostParams::default(), &replica_set("capped", 3))
        .await
        .unwrap();
    let uid = rs.uid().unwrap();
    let cond = eventually("ReplicaFailure", || async {
        let s = rss.get("capped").await.unwrap().status.unwrap_or_default();
        let c = s
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_.as_deref() == Some("ReplicaFailure"));
        match c {
            Some(c) if s.replicas == 1 => Ok(c),
            other => Err(format!("{} replicas, {other:?}", s.replicas)),
        }
    })
    .await;
    assert_eq!(
        (cond.status.as_deref(), cond.reason.as_deref()),
        (Some("True"), Some("FailedCreate"))
    );
    assert!(cond.message.unwrap_or_default().contains("exceeded quota"));
    assert_eq!(owned_pods(&pods, &uid).await.len(), 1);
    let events: Api<Event> = Api::default_namespaced(client.clone());
    eventually("a FailedCreate event", || async {
        let list = events.list(&ListParams::default()).await.unwrap();
        let found = list.items.iter().any(|e| {
            e.reason.as_deref() == Some("FailedCreate")
                && e.message
                    .as_deref()
                    .is_some_and(|n| n.starts_with("Error creating: "))
        });
        if found { Ok(()) } else { Err("none yet".into()) }
    })
    .await;
    // Once the quota allows it, the replica set fills up and the condition goes.
    quotas.delete("pods", &Default::default()).await.unwrap();
    eventually("3 pods, no failure", || async {
        let s = rss.get("capped").await.unwrap().status.unwrap_or_default();
        if s.replicas == 3 && s.conditions.unwrap_or_default().is_empty() {
            Ok(())
        } else {
            Err(format!("{}", s.replicas))
        }
    })
    .await;
    cluster.stop().await;
}
