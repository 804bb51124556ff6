//! The StatefulSet and DaemonSet controllers work as their own ServiceAccounts under upstream's
//! `system:controller:*` roles; a StatefulSet's claim retention policy shows on its PVCs.

use std::time::Duration;

use apiserver::testing::TestServer;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::fixtures::node;
use crate::support::{eventually, is_ready, mark_ready};

/// The kinds of the owners of claim `name`.
async fn claim_owner_kinds(claims: &Api<PersistentVolumeClaim>, name: &str) -> Result<Vec<String>, String> {
    let c = claims
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or(format!("{name} does not exist"))?;
    Ok(c.owner_references().iter().map(|r| r.kind.clone()).collect())
}

#[tokio::test]
async fn stateful_and_daemon_sets_reconcile_as_their_accounts_with_claim_retention() {
    let server = TestServer::start().await.unwrap();
    let admin = server.client();
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
    let rest = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let config = controller_manager::Config {
        controllers: vec!["statefulset".into(), "daemonset".into()],
        use_service_account_credentials: true,
        rest_config: Some(rest),
        ..controller_manager::Config::default()
    };
    let shutdown = CancellationToken::new();
    let manager = tokio::spawn(controller_manager::run(config, admin.clone(), shutdown.clone()));
    node(&admin, "n1", json!({}), "True").await;

    let sets: Api<StatefulSet> = Api::default_namespaced(admin.clone());
    let pods: Api<Pod> = Api::default_namespaced(admin.clone());
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(admin.clone());
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "acct"},
        "spec": {
            "replicas": 2,
            "podManagementPolicy": "Parallel",
            "serviceName": "acct",
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
            "selector": {"matchLabels": {"app": "acct"}},
            "template": {"metadata": {"labels": {"app": "acct"}},
                         "spec": {"containers": [{"name": "c", "image": "x"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    }))
    .unwrap();
    sets.create(&PostParams::default(), &set).await.unwrap();
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    }))
    .unwrap();
    Api::<DaemonSet>::default_namespaced(admin.clone())
        .create(&PostParams::default(), &ds)
        .await
        .unwrap();

    // Parallel: both pods at once; the pods are marked ready as a kubelet would.
    eventually("acct-0, acct-1 and the daemon pod", || async {
        let list = pods
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = list.items.iter().map(|p| p.name_any()).collect();
        let daemon = names.iter().filter(|n| n.starts_with("agent-")).count();
        if names.contains(&"acct-0".to_string()) && names.contains(&"acct-1".to_string()) && daemon == 1 {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    })
    .await;
    for p in pods.list(&ListParams::default()).await.unwrap().items {
        if !is_ready(&p) {
            mark_ready(&pods, &p.name_any()).await.unwrap();
        }
    }
    eventually("both statuses written", || async {
        let s = sets
            .get("acct")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        let d = Api::<DaemonSet>::default_namespaced(admin.clone())
            .get("agent")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        if s.ready_replicas == Some(2) && d.number_ready == 1 && d.desired_number_scheduled == 1 {
            Ok(())
        } else {
            Err(format!("{s:?} {d:?}"))
        }
    })
    .await;
    // whenDeleted=Delete: the set owns its claims.
    eventually("the set owns data-acct-0", || async {
        let kinds = claim_owner_kinds(&claims, "data-acct-0").await?;
        if kinds == ["StatefulSet"] {
            Ok(())
        } else {
            Err(format!("{kinds:?}"))
        }
    })
    .await;
    // A failed pod is deleted and created again (same name, new UID).
    let failed_uid = pods.get("acct-0").await.unwrap().uid().unwrap();
    pods.patch_status(
        "acct-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed"}})),
    )
    .await
    .unwrap();
    eventually("acct-0 recreated", || async {
        match pods.get_opt("acct-0").await.map_err(|e| e.to_string())? {
            Some(p) if p.uid().as_deref() != Some(failed_uid.as_str()) => Ok(()),
            other => Err(format!("{:?}", other.map(|p| p.status))),
        }
    })
    .await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(admin.clone());
    eventually("the RecreatingFailedPod event", || async {
        let list = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let found = list.items.iter().any(|e| {
            e.reason.as_deref() == Some("RecreatingFailedPod")
                && e.message.as_deref() == Some("StatefulSet default/acct is recreating failed Pod acct-0")
        });
        if found { Ok(()) } else { Err("no event yet".into()) }
    })
    .await;
    // whenScaled=Delete: a scaled-away pod's claim passes to the pod (the garbage collector
    // deletes it with the pod).
    sets.patch(
        "acct",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("acct-1 deleted and its claim owned by it", || async {
        let kinds = claim_owner_kinds(&claims, "data-acct-1").await?;
        let gone = pods.get_opt("acct-1").await.map_err(|e| e.to_string())?.is_none();
        if gone && kinds == ["Pod"] {
            Ok(())
        } else {
            Err(format!("gone={gone} {kinds:?}"))
        }
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), manager)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    server.shutdown().await;
}
