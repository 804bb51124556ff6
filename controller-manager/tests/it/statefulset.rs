//! StatefulSets come up in order with their claims, scale down from the top, roll from the
//! highest ordinal and hold the partition; kubectl's rollout commands work on them.

use std::path::Path;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{Cluster, eventually, mark_ready};

fn stateful_set(name: &str, replicas: i32) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                // No volumeMount of "www": the API server refuses mounts of claim templates
                // (upstream accepts them).
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    }))
    .unwrap()
}

/// The revision label of pod `name`, once it exists and is not being deleted.
async fn revision_of(pods: &Api<Pod>, name: &str) -> Result<String, String> {
    match pods.get_opt(name).await.map_err(|e| e.to_string())? {
        Some(p) if p.metadata.deletion_timestamp.is_none() => Ok(p
            .labels()
            .get("controller-revision-hash")
            .cloned()
            .unwrap_or_default()),
        Some(_) => Err(format!("{name} is terminating")),
        None => Err(format!("{name} does not exist")),
    }
}

async fn status(sets: &Api<StatefulSet>, name: &str) -> k8s_openapi::api::apps::v1::StatefulSetStatus {
    sets.get(name).await.unwrap().status.unwrap_or_default()
}

#[tokio::test]
async fn a_stateful_set_comes_up_in_order_scales_down_and_rolls_in_reverse() {
    let cluster = Cluster::start(&["statefulset"]).await;
    let client = cluster.client.clone();
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    sets.create(&PostParams::default(), &stateful_set("web", 3))
        .await
        .unwrap();

    // web-0 first, with its identity and its claim.
    eventually("web-0", || revision_of(&pods, "web-0")).await;
    let web0 = pods.get("web-0").await.unwrap();
    let labels = web0.labels();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");
    let spec = web0.spec.as_ref().unwrap();
    assert_eq!(
        (spec.hostname.as_deref(), spec.subdomain.as_deref()),
        (Some("web-0"), Some("nginx"))
    );
    let www = spec.volumes.iter().flatten().find(|v| v.name == "www").unwrap();
    assert_eq!(
        www.persistent_volume_claim.as_ref().unwrap().claim_name,
        "www-web-0"
    );
    let claim = claims.get("www-web-0").await.expect("the claim exists");
    assert_eq!(claim.labels()["app"], "web");

    // web-1 waits for web-0 to be Ready, web-2 for web-1.
    for (ready, next) in [("web-0", "web-1"), ("web-1", "web-2")] {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(
            pods.get_opt(next).await.unwrap().is_none(),
            "{next} created before {ready} is Ready"
        );
        mark_ready(&pods, ready).await.unwrap();
        eventually(next, || revision_of(&pods, next)).await;
    }
    mark_ready(&pods, "web-2").await.unwrap();
    for i in 0..3 {
        claims
            .get(&format!("www-web-{i}"))
            .await
            .expect("claim per ordinal");
    }
    let first_revision = eventually("3 ready replicas", || async {
        let s = status(&sets, "web").await;
        let got = (
            s.replicas,
            s.ready_replicas,
            s.updated_replicas,
            s.observed_generation,
        );
        match got {
            (3, Some(3), Some(3), Some(1)) if s.current_revision == s.update_revision => {
                Ok(s.update_revision.unwrap())
            }
            _ => Err(format!(
                "{got:?} {:?} {:?}",
                s.current_revision, s.update_revision
            )),
        }
    })
    .await;
    assert!(first_revision.starts_with("web-"), "{first_revision}");
    assert_eq!(revision_of(&pods, "web-0").await.unwrap(), first_revision);
    let events: Api<Event> = Api::default_namespaced(client.clone());
    eventually("the creation events", || async {
        let list = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let messages: Vec<String> = list.items.into_iter().filter_map(|e| e.message).collect();
        let want = "create Pod web-0 in StatefulSet web successful";
        let claim = "create Claim www-web-0 Pod web-0 in StatefulSet web success";
        if messages.iter().any(|m| m == want) && messages.iter().any(|m| m == claim) {
            Ok(())
        } else {
            Err(format!("{messages:?}"))
        }
    })
    .await;

    // Scale down: the highest ordinal goes, its claim stays (Retain).
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    eventually("web-2 deleted", || async {
        match pods.get_opt("web-2").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("web-2 still there".into()),
        }
    })
    .await;
    assert!(pods.get_opt("web-1").await.unwrap().is_some());
    assert!(claims.get_opt("www-web-2").await.unwrap().is_some());

    // A template change rolls web-1 first; web-0 keeps the old revision until web-1 is Ready.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}}),
        ),
    )
    .await
    .unwrap();
    let second = eventually("web-1 at the new revision", || async {
        let r = revision_of(&pods, "web-1").await?;
        if r != first_revision {
            Ok(r)
        } else {
            Err("old revision".into())
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        revision_of(&pods, "web-0").await.unwrap(),
        first_revision,
        "web-0 waits for web-1"
    );
    mark_ready(&pods, "web-1").await.unwrap();
    eventually("web-0 at the new revision", || async {
        let r = revision_of(&pods, "web-0").await?;
        if r == second { Ok(()) } else { Err(r) }
    })
    .await;
    let image = pods.get("web-0").await.unwrap().spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("nginx:2"));
    mark_ready(&pods, "web-0").await.unwrap();
    eventually("the rollout completes", || async {
        let s = status(&sets, "web").await;
        if s.current_revision.as_deref() == Some(second.as_str()) && s.updated_replicas == Some(2) {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;

    // A partition of 1 updates web-1 only.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
            "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:3"}]}}
        }})),
    )
    .await
    .unwrap();
    let third = eventually("web-1 at the third revision", || async {
        let r = revision_of(&pods, "web-1").await?;
        if r != second && r != first_revision {
            Ok(r)
        } else {
            Err(r)
        }
    })
    .await;
    mark_ready(&pods, "web-1").await.unwrap();
    eventually("the partitioned rollout settles", || async {
        let s = status(&sets, "web").await;
        let got = (s.ready_replicas, s.updated_replicas, s.update_revision);
        if got == (Some(2), Some(1), Some(third.clone())) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        revision_of(&pods, "web-0").await.unwrap(),
        second,
        "the partition holds web-0"
    );
    let revisions: Api<ControllerRevision> = Api::default_namespaced(client.clone());
    let mut numbers: Vec<i64> = revisions
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|r| r.revision)
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3]);
    cluster.stop().await;
}

/// Runs stock kubectl `bin` against the test server; its output (it must succeed).
pub async fn kubectl(bin: &Path, cluster: &Cluster, args: &[&str]) -> String {
    let out = tokio::process::Command::new(bin)
        .arg("--kubeconfig")
        .arg(cluster.server.kubeconfig_path())
        .args(args)
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// kubectl's last word on a finished StatefulSet rollout (with the partition the API server
/// defaults, `partitioned roll out complete`, as on upstream clusters).
fn rolled_out(out: &str) -> bool {
    out.contains("partitioned roll out complete: 2 new pods have been updated")
        || out.contains("rolling update complete 2 pods at revision")
}

/// The stock kubectl binaries present on this machine.
pub fn kubectls() -> Vec<std::path::PathBuf> {
    ["kubectl-1.27", "kubectl-1.33"]
        .iter()
        .map(|b| Path::new("/var/cache/keelson-kube-clients").join(b))
        .filter(|p| p.exists())
        .collect()
}

#[tokio::test]
async fn kubectl_rollout_status_history_and_undo_for_stateful_sets() {
    let bins = kubectls();
    assert!(
        !bins.is_empty(),
        "no stock kubectl in /var/cache/keelson-kube-clients"
    );
    let mut cluster = Cluster::start(&["statefulset"]).await;
    cluster.start_kubelet("default");
    let pods: Api<Pod> = Api::default_namespaced(cluster.client.clone());
    for (i, bin) in bins.iter().enumerate() {
        let name = format!("db{i}");
        let set = stateful_set(&name, 2);
        Api::<StatefulSet>::default_namespaced(cluster.client.clone())
            .create(&PostParams::default(), &set)
            .await
            .unwrap();
        let target = format!("statefulset/{name}");
        let out = kubectl(bin, &cluster, &["rollout", "status", &target, "--timeout=60s"]).await;
        assert!(rolled_out(&out), "{out}");
        kubectl(bin, &cluster, &["set", "image", &target, "nginx=nginx:2"]).await;
        let out = kubectl(bin, &cluster, &["rollout", "status", &target, "--timeout=60s"]).await;
        assert!(rolled_out(&out), "{out}");
        let history = kubectl(bin, &cluster, &["rollout", "history", &target]).await;
        assert!(
            history.lines().any(|l| l.trim_start().starts_with('1'))
                && history.lines().any(|l| l.trim_start().starts_with('2')),
            "{history}"
        );
        let rev1 = kubectl(bin, &cluster, &["rollout", "history", &target, "--revision=1"]).await;
        assert!(rev1.contains("nginx:1"), "{rev1}");
        kubectl(bin, &cluster, &["rollout", "undo", &target]).await;
        let out = kubectl(bin, &cluster, &["rollout", "status", &target, "--timeout=60s"]).await;
        assert!(rolled_out(&out), "{out}");
        eventually("pods back on nginx:1", || async {
            let images: Vec<Option<String>> = pods
                .list(&ListParams::default().labels(&format!("app={name}")))
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| p.spec.unwrap().containers[0].image.clone())
                .collect();
            if images.len() == 2 && images.iter().all(|i| i.as_deref() == Some("nginx:1")) {
                Ok(())
            } else {
                Err(format!("{images:?}"))
            }
        })
        .await;
        let history = kubectl(bin, &cluster, &["rollout", "history", &target]).await;
        assert!(
            history.lines().any(|l| l.trim_start().starts_with('3')),
            "the undo is revision 3: {history}"
        );
    }
    cluster.stop().await;
}

#[tokio::test]
async fn start_ordinal_and_on_delete_replace_only_deleted_pods() {
    let mut cluster = Cluster::start(&["statefulset"]).await;
    cluster.start_kubelet("default");
    let sets: Api<StatefulSet> = Api::default_namespaced(cluster.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(cluster.client.clone());
    let mut set = stateful_set("odd", 2);
    set.spec.ordinals = Some(serde_json::from_value(json!({"start": 3})).unwrap());
    set.spec.update_strategy = Some(serde_json::from_value(json!({"type": "OnDelete"})).unwrap());
    sets.create(&PostParams::default(), &set).await.unwrap();
    let first = eventually("odd-3 and odd-4 ready", || async {
        let s = status(&sets, "odd").await;
        if s.ready_replicas == Some(2) {
            Ok(revision_of(&pods, "odd-4").await?)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert!(pods.get_opt("odd-0").await.unwrap().is_none());
    assert_eq!(revision_of(&pods, "odd-3").await.unwrap(), first);
    sets.patch(
        "odd",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}}),
        ),
    )
    .await
    .unwrap();
    let second = eventually("a new update revision", || async {
        let s = status(&sets, "odd").await;
        match s.update_revision {
            Some(r) if r != first && s.observed_generation == Some(2) => Ok(r),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        revision_of(&pods, "odd-4").await.unwrap(),
        first,
        "OnDelete leaves pods alone"
    );
    let old_uid = pods.get("odd-4").await.unwrap().uid();
    pods.delete("odd-4", &Default::default()).await.unwrap();
    eventually("odd-4 back at the update revision", || async {
        let p = pods.get_opt("odd-4").await.map_err(|e| e.to_string())?;
        match p {
            Some(p) if p.uid() != old_uid => {
                let r = p
                    .labels()
                    .get("controller-revision-hash")
                    .cloned()
                    .unwrap_or_default();
                if r == second { Ok(()) } else { Err(r) }
            }
            _ => Err("not recreated yet".into()),
        }
    })
    .await;
    assert_eq!(revision_of(&pods, "odd-3").await.unwrap(), first);
    cluster.stop().await;
}
