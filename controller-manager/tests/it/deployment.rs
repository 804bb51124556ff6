//! Deployments roll out against the API server, driven through kube-rs and stock kubectl.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{Cluster, eventually, is_ready};

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .unwrap()
}

const ALL: [&str; 3] = [
    "deployment-controller",
    "replicaset-controller",
    "replicationcontroller-controller",
];

/// Waits until the deployment reports `n` replicas updated, ready and available, with the
/// generation observed and the rollout complete.
async fn wait_rolled_out(deploys: &Api<Deployment>, name: &str, n: i32) -> Deployment {
    eventually(&format!("{name} rolled out with {n}"), || async {
        let d = deploys.get(name).await.map_err(|e| e.to_string())?;
        let s = d.status.clone().unwrap_or_default();
        let progressing = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
            .and_then(|c| c.reason.clone());
        let got = (
            s.replicas.unwrap_or(0),
            s.updated_replicas.unwrap_or(0),
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        );
        if got == (n, n, n, n)
            && s.observed_generation == d.metadata.generation
            && progressing.as_deref() == Some("NewReplicaSetAvailable")
        {
            Ok(d)
        } else {
            Err(format!("{got:?} progressing {progressing:?} {s:?}"))
        }
    })
    .await
}

fn controlled_by<'a>(rss: &'a [ReplicaSet], d: &Deployment) -> Vec<&'a ReplicaSet> {
    rss.iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| Some(&r.uid) == d.metadata.uid.as_ref() && r.controller == Some(true))
        })
        .collect()
}

#[tokio::test]
async fn a_deployment_rolls_out_scales_and_updates_without_dropping_below_max_unavailable() {
    let mut cluster = Cluster::start(&ALL).await;
    cluster.start_kubelet("default");
    let client = cluster.client.clone();
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let rs_api: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("web", 3, "nginx:1"))
        .await
        .unwrap();
    let d = wait_rolled_out(&deploys, "web", 3).await;
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );
    let conds = d.status.clone().unwrap().conditions.unwrap();
    let available = conds
        .iter()
        .find(|c| c.type_.as_deref() == Some("Available"))
        .unwrap();
    assert_eq!(
        (available.status.as_deref(), available.reason.as_deref()),
        (Some("True"), Some("MinimumReplicasAvailable"))
    );
    let list = rs_api.list(&ListParams::default()).await.unwrap().items;
    let owned = controlled_by(&list, &d);
    assert_eq!(owned.len(), 1);
    let first = owned[0].clone();
    let hash = first.labels()["pod-template-hash"].clone();
    assert_eq!(first.name_any(), format!("web-{hash}"));
    assert_eq!(
        first.annotations()["deployment.kubernetes.io/desired-replicas"],
        "3"
    );
    assert_eq!(first.annotations()["deployment.kubernetes.io/max-replicas"], "4");

    // Scale up and down.
    for n in [5, 2] {
        deploys
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": n}})),
            )
            .await
            .unwrap();
        wait_rolled_out(&deploys, "web", n).await;
    }

    // A new image rolls out a new replica set; with maxUnavailable 0 the ready pods never drop
    // below 2 while it does.
    let min_ready = Arc::new(AtomicI32::new(i32::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (pods, min_ready, stop) = (pods.clone(), min_ready.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Ok(list) = pods.list(&ListParams::default().labels("app=web")).await {
                    let ready = list
                        .items
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
                        .count() as i32;
                    min_ready.fetch_min(ready, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}),
            ),
        )
        .await
        .unwrap();
    let d = wait_rolled_out(&deploys, "web", 2).await;
    stop.store(true, Ordering::SeqCst);
    monitor.await.unwrap();
    assert!(
        min_ready.load(Ordering::SeqCst) >= 2,
        "dropped to {} ready pods",
        min_ready.load(Ordering::SeqCst)
    );
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "2");
    let list = rs_api.list(&ListParams::default()).await.unwrap().items;
    let owned = controlled_by(&list, &d);
    assert_eq!(
        owned.len(),
        2,
        "the old replica set is kept (revisionHistoryLimit 10)"
    );
    let old = owned.iter().find(|rs| rs.name_any() == first.name_any()).unwrap();
    assert_eq!(old.spec.replicas, Some(0));
    let new = owned.iter().find(|rs| rs.name_any() != first.name_any()).unwrap();
    assert_eq!(new.annotations()["deployment.kubernetes.io/revision"], "2");
    assert_eq!(
        new.spec
            .template
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .as_deref(),
        Some("nginx:2")
    );

    let events: Api<Event> = Api::default_namespaced(client.clone());
    let want = format!("Scaled up replica set {} from 0 to 1", new.name_any());
    eventually("ScalingReplicaSet events", || async {
        let notes: Vec<String> = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("ScalingReplicaSet"))
            .filter_map(|e| e.message)
            .collect();
        let scaled_down_old = notes
            .iter()
            .any(|n| n.starts_with(&format!("Scaled down replica set {} from ", first.name_any())));
        if notes.contains(&want) && scaled_down_old {
            Ok(())
        } else {
            Err(format!("{notes:?}"))
        }
    })
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_stalled_rollout_exceeds_its_progress_deadline() {
    let cluster = Cluster::start(&ALL).await;
    let deploys: Api<Deployment> = Api::default_namespaced(cluster.client.clone());
    let mut d = deployment("stuck", 2, "nginx:1");
    d.spec.progress_deadline_seconds = Some(2);
    deploys.create(&PostParams::default(), &d).await.unwrap();
    // No kubelet: the pods never become ready.
    eventually("ProgressDeadlineExceeded", || async {
        let d = deploys.get("stuck").await.map_err(|e| e.to_string())?;
        let s = d.status.unwrap_or_default();
        let c = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
            .cloned();
        match c {
            Some(c)
                if c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                    && c.status.as_deref() == Some("False") =>
            {
                assert!(
                    c.message
                        .unwrap_or_default()
                        .ends_with("has timed out progressing.")
                );
                let a = s
                    .conditions
                    .iter()
                    .flatten()
                    .find(|c| c.type_.as_deref() == Some("Available"))
                    .unwrap();
                assert_eq!(a.reason.as_deref(), Some("MinimumReplicasUnavailable"));
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let out = kubectl(
        &cluster,
        &["rollout", "status", "deployment/stuck", "--timeout=20s"],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exceeded its progress deadline"),
        "{out:?}"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn recreate_removes_the_old_pods_before_creating_new_ones() {
    let mut cluster = Cluster::start(&ALL).await;
    cluster.start_kubelet("default");
    let deploys: Api<Deployment> = Api::default_namespaced(cluster.client.clone());
    let rs_api: Api<ReplicaSet> = Api::default_namespaced(cluster.client.clone());
    let mut d = deployment("rec", 2, "nginx:1");
    d.spec.strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    deploys.create(&PostParams::default(), &d).await.unwrap();
    wait_rolled_out(&deploys, "rec", 2).await;
    let overlap = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (rs_api, overlap, stop) = (rs_api.clone(), overlap.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Ok(list) = rs_api.list(&ListParams::default().labels("app=rec")).await {
                    let busy = list
                        .items
                        .iter()
                        .filter(|rs| rs.status.as_ref().is_some_and(|s| s.replicas > 0))
                        .count();
                    if busy > 1 {
                        overlap.store(true, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    deploys
        .patch(
            "rec",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}),
            ),
        )
        .await
        .unwrap();
    let d = wait_rolled_out(&deploys, "rec", 2).await;
    stop.store(true, Ordering::SeqCst);
    monitor.await.unwrap();
    assert!(
        !overlap.load(Ordering::SeqCst),
        "old and new pods ran at the same time"
    );
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "2");
    cluster.stop().await;
}

/// Runs stock kubectl (`KEELSON_KUBECTL`, default kubectl 1.33) against the test server.
async fn kubectl(cluster: &Cluster, args: &[&str]) -> std::process::Output {
    let bin = PathBuf::from(
        std::env::var("KEELSON_KUBECTL")
            .unwrap_or_else(|_| "/var/cache/keelson-kube-clients/kubectl-1.33".into()),
    );
    tokio::process::Command::new(bin)
        .arg("--kubeconfig")
        .arg(cluster.server.kubeconfig_path())
        .args(args)
        .output()
        .await
        .expect("kubectl runs")
}

async fn kubectl_ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = kubectl(cluster, args).await;
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn kubectl_rollout_status_history_undo_restart_pause_resume() {
    let mut cluster = Cluster::start(&ALL).await;
    cluster.start_kubelet("default");
    let deploys: Api<Deployment> = Api::default_namespaced(cluster.client.clone());
    kubectl_ok(
        &cluster,
        &["create", "deployment", "app", "--image=nginx:1", "--replicas=2"],
    )
    .await;
    let out = kubectl_ok(
        &cluster,
        &["rollout", "status", "deployment/app", "--timeout=60s"],
    )
    .await;
    assert!(
        out.contains("deployment \"app\" successfully rolled out"),
        "{out}"
    );

    kubectl_ok(&cluster, &["set", "image", "deployment/app", "nginx=nginx:2"]).await;
    let out = kubectl_ok(
        &cluster,
        &["rollout", "status", "deployment/app", "--timeout=60s"],
    )
    .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let history = kubectl_ok(&cluster, &["rollout", "history", "deployment/app"]).await;
    assert!(
        history.contains("REVISION") && history.contains('1') && history.contains('2'),
        "{history}"
    );
    let described = kubectl_ok(&cluster, &["describe", "deployment", "app"]).await;
    assert!(
        described.contains("ScalingReplicaSet") && described.contains("deployment-controller"),
        "{described}"
    );
    let rev2 = kubectl_ok(
        &cluster,
        &["rollout", "history", "deployment/app", "--revision=2"],
    )
    .await;
    assert!(rev2.contains("nginx:2"), "{rev2}");

    // Undo goes back to nginx:1 as revision 3.
    let out = kubectl_ok(&cluster, &["rollout", "undo", "deployment/app"]).await;
    assert!(out.contains("rolled back"), "{out}");
    kubectl_ok(
        &cluster,
        &["rollout", "status", "deployment/app", "--timeout=60s"],
    )
    .await;
    let d = wait_rolled_out(&deploys, "app", 2).await;
    assert_eq!(
        d.spec.template.spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some("nginx:1")
    );
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "3");
    let history = kubectl_ok(&cluster, &["rollout", "history", "deployment/app"]).await;
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");

    // Restart rolls out a new replica set with the restartedAt annotation.
    kubectl_ok(&cluster, &["rollout", "restart", "deployment/app"]).await;
    kubectl_ok(
        &cluster,
        &["rollout", "status", "deployment/app", "--timeout=60s"],
    )
    .await;
    let d = wait_rolled_out(&deploys, "app", 2).await;
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "4");

    // Pause: a template change does not roll out until resumed.
    kubectl_ok(&cluster, &["rollout", "pause", "deployment/app"]).await;
    kubectl_ok(&cluster, &["set", "image", "deployment/app", "nginx=nginx:3"]).await;
    eventually("paused condition", || async {
        let d = deploys.get("app").await.map_err(|e| e.to_string())?;
        let c = d.status.unwrap_or_default().conditions.unwrap_or_default();
        let p = c
            .iter()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
            .cloned();
        if p.as_ref().and_then(|c| c.reason.as_deref()) == Some("DeploymentPaused") {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await;
    let d = deploys.get("app").await.unwrap();
    assert_eq!(
        d.annotations()["deployment.kubernetes.io/revision"],
        "4",
        "no rollout while paused"
    );
    kubectl_ok(&cluster, &["rollout", "resume", "deployment/app"]).await;
    kubectl_ok(
        &cluster,
        &["rollout", "status", "deployment/app", "--timeout=60s"],
    )
    .await;
    let d = wait_rolled_out(&deploys, "app", 2).await;
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "5");
    cluster.stop().await;
}

#[tokio::test]
async fn old_replica_sets_beyond_the_history_limit_are_deleted() {
    let mut cluster = Cluster::start(&ALL).await;
    cluster.start_kubelet("default");
    let deploys: Api<Deployment> = Api::default_namespaced(cluster.client.clone());
    let rs_api: Api<ReplicaSet> = Api::default_namespaced(cluster.client.clone());
    let mut d = deployment("hist", 1, "nginx:0");
    d.spec.revision_history_limit = Some(1);
    deploys.create(&PostParams::default(), &d).await.unwrap();
    wait_rolled_out(&deploys, "hist", 1).await;
    for i in 1..=3 {
        let image = format!("nginx:{i}");
        deploys
            .patch(
                "hist",
                &PatchParams::default(),
                &Patch::Strategic(
                    json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
                ),
            )
            .await
            .unwrap();
        wait_rolled_out(&deploys, "hist", 1).await;
    }
    eventually("one old replica set kept", || async {
        let list = rs_api
            .list(&ListParams::default().labels("app=hist"))
            .await
            .map_err(|e| e.to_string())?;
        let mut revs: Vec<String> = list
            .items
            .iter()
            .map(|rs| {
                rs.annotations()
                    .get("deployment.kubernetes.io/revision")
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        revs.sort();
        if revs == ["3", "4"] {
            Ok(())
        } else {
            Err(format!("{revs:?}"))
        }
    })
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn resizing_during_a_rollout_scales_both_replica_sets_proportionally() {
    let mut cluster = Cluster::start(&ALL).await;
    cluster.start_kubelet("default");
    let deploys: Api<Deployment> = Api::default_namespaced(cluster.client.clone());
    let rs_api: Api<ReplicaSet> = Api::default_namespaced(cluster.client.clone());
    let mut d = deployment("prop", 10, "nginx:1");
    d.spec.strategy = serde_json::from_value(
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}),
    )
    .unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    wait_rolled_out(&deploys, "prop", 10).await;
    // Stop the pods becoming ready, so the rollout stalls half-way.
    cluster.stop_kubelet().await;
    deploys
        .patch(
            "prop",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}),
            ),
        )
        .await
        .unwrap();
    // surge 3, unavailable 2: old 10 -> 8, new 0 -> 5 (13 in all), then stuck.
    let sizes = |list: &[ReplicaSet]| {
        let mut v: Vec<(String, i32)> = list
            .iter()
            .map(|rs| {
                let image = rs
                    .spec
                    .template
                    .as_ref()
                    .unwrap()
                    .spec
                    .as_ref()
                    .unwrap()
                    .containers[0]
                    .image
                    .clone()
                    .unwrap();
                (image, rs.spec.replicas.unwrap_or(0))
            })
            .collect();
        v.sort();
        v
    };
    eventually("a stalled rollout at 8 + 5", || async {
        let list = rs_api
            .list(&ListParams::default().labels("app=prop"))
            .await
            .map_err(|e| e.to_string())?
            .items;
        let got = sizes(&list);
        if got == [("nginx:1".to_string(), 8), ("nginx:2".to_string(), 5)] {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    deploys
        .patch(
            "prop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 20}})),
        )
        .await
        .unwrap();
    // 23 allowed: old 8*23/13 = 14.2 -> 14, new 5*23/13 = 8.8 -> 9.
    eventually("proportional scale to 14 + 9", || async {
        let list = rs_api
            .list(&ListParams::default().labels("app=prop"))
            .await
            .map_err(|e| e.to_string())?
            .items;
        let got = sizes(&list);
        if got == [("nginx:1".to_string(), 14), ("nginx:2".to_string(), 9)] {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    cluster.stop().await;
}

/// A measurement, not a check of speed: `cargo test -p controller-manager --test it --
/// --ignored --nocapture thousand` prints how long 1 000 replicas take from create to available
/// (the pod-readiness helper included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement"]
async fn thousand_replicas_from_create_to_available() {
    let mut cluster = Cluster::start(&ALL).await;
    cluster.start_kubelet("default");
    let deploys: Api<Deployment> = Api::default_namespaced(cluster.client.clone());
    let started = std::time::Instant::now();
    deploys
        .create(&PostParams::default(), &deployment("big", 1000, "nginx:1"))
        .await
        .unwrap();
    crate::support::eventually_within("1000 available", Duration::from_secs(300), || async {
        let s = deploys
            .get("big")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        if s.available_replicas == Some(1000) {
            Ok(())
        } else {
            Err(format!("{:?}", s.available_replicas))
        }
    })
    .await;
    println!("1000 replicas available after {:?}", started.elapsed());
    cluster.stop().await;
}
