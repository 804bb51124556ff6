//! The PV controller, the local-path provisioner and the protection controllers against the
//! API server.

use std::time::Duration;

use apiserver::testing::TestServer;
use controller_manager::persistentvolume::{PersistentVolumeConfig, ensure_default_storage_class};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::eventually;

const CONTROLLERS: [&str; 3] = ["persistentvolume-binder", "pvc-protection", "pv-protection"];

/// A server and the volume controllers with `config`, each as its ServiceAccount.
struct Volumes {
    server: TestServer,
    client: kube::Client,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), controller_manager::Error>>,
}

impl Volumes {
    async fn start(pv: PersistentVolumeConfig) -> Volumes {
        let server = TestServer::start().await.expect("server starts");
        let client = server.client();
        let stop = CancellationToken::new();
        // Each controller as its ServiceAccount: upstream's roles must be enough.
        let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
        let rest = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
        let config = controller_manager::Config {
            controllers: CONTROLLERS.iter().map(|s| s.to_string()).collect(),
            use_service_account_credentials: true,
            rest_config: Some(rest),
            persistent_volume: PersistentVolumeConfig {
                sync_period: Duration::from_secs(2),
                ..pv
            },
            ..controller_manager::Config::default()
        };
        let task = tokio::spawn(controller_manager::run(config, client.clone(), stop.clone()));
        Volumes {
            server,
            client,
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        let res = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("manager stops")
            .expect("manager task");
        res.expect("manager ran without error");
        self.server.shutdown().await;
    }

    fn pvs(&self) -> Api<PersistentVolume> {
        Api::all(self.client.clone())
    }

    fn pvcs(&self) -> Api<PersistentVolumeClaim> {
        Api::default_namespaced(self.client.clone())
    }

    async fn pv(&self, name: &str, size: &str, policy: &str, extra: Value) {
        let mut v = json!({
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": policy, "hostPath": {"path": format!("/tmp/{name}")}},
        });
        merge(&mut v, extra);
        self.pvs()
            .create(&PostParams::default(), &serde_json::from_value(v).unwrap())
            .await
            .expect("pv created");
    }

    async fn pvc(&self, name: &str, size: &str, extra: Value) -> PersistentVolumeClaim {
        let mut v = json!({
            "metadata": {"name": name},
            "spec": {"resources": {"requests": {"storage": size}}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": ""},
        });
        merge(&mut v, extra);
        self.pvcs()
            .create(&PostParams::default(), &serde_json::from_value(v).unwrap())
            .await
            .expect("pvc created")
    }

    /// Waits until claim `name` is Bound, returning its volume's name.
    async fn bound(&self, name: &str) -> String {
        let pvcs = self.pvcs();
        eventually(&format!("{name} bound"), || async {
            let c = pvcs.get(name).await.map_err(|e| e.to_string())?;
            let phase = c.status.as_ref().and_then(|s| s.phase.clone());
            match (
                phase.as_deref(),
                c.spec.as_ref().and_then(|s| s.volume_name.clone()),
            ) {
                (Some("Bound"), Some(v)) => Ok(v),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    async fn volume_phase(&self, name: &str, want: &str) {
        let pvs = self.pvs();
        eventually(&format!("{name} {want}"), || async {
            let v = pvs.get(name).await.map_err(|e| e.to_string())?;
            let phase = v.status.and_then(|s| s.phase).unwrap_or_default();
            if phase == want { Ok(()) } else { Err(phase) }
        })
        .await
    }

    async fn gone<K>(&self, api: &Api<K>, name: &str)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        eventually(&format!("{name} deleted"), || async {
            match api.get_opt(name).await {
                Ok(None) => Ok(()),
                Ok(Some(o)) => Err(format!("still there, finalizers {:?}", o.meta().finalizers)),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    /// Waits for an event about `name` with `reason`, returning its note.
    async fn event(&self, name: &str, reason: &str) -> String {
        let events: Api<Event> = Api::default_namespaced(self.client.clone());
        eventually(&format!("{reason} event for {name}"), || async {
            let list = events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                })
                .map(|e| e.note.unwrap_or_default())
                .ok_or_else(|| "no such event yet".to_string())
        })
        .await
    }
}

fn annotation(meta: &kube::api::ObjectMeta, key: &str) -> Option<String> {
    meta.annotations.as_ref()?.get(key).cloned()
}

#[tokio::test]
async fn static_volumes_bind_then_are_released_and_reclaimed() {
    let v = Volumes::start(PersistentVolumeConfig::default()).await;
    v.pv("retained", "1Gi", "Retain", json!({})).await;
    v.pv(
        "deleted",
        "5Gi",
        "Delete",
        json!({"metadata": {"finalizers": ["kubernetes.io/pv-protection"]}}),
    )
    .await;
    v.pv(
        "reserved",
        "1Gi",
        "Retain",
        json!({"spec": {"claimRef": {"namespace": "default", "name": "wanted"}}}),
    )
    .await;
    v.pv("named", "10Gi", "Retain", json!({})).await;

    // The smallest fitting volume; both sides record the binding.
    let small = v
        .pvc(
            "small",
            "500Mi",
            json!({"metadata": {"finalizers": ["kubernetes.io/pvc-protection"]}}),
        )
        .await;
    assert_eq!(v.bound("small").await, "retained");
    let claim = v.pvcs().get("small").await.unwrap();
    assert_eq!(
        annotation(&claim.metadata, "pv.kubernetes.io/bind-completed").as_deref(),
        Some("yes")
    );
    assert_eq!(
        annotation(&claim.metadata, "pv.kubernetes.io/bound-by-controller").as_deref(),
        Some("yes")
    );
    let status = claim.status.unwrap();
    assert_eq!(status.capacity.unwrap()["storage"].0, "1Gi");
    assert_eq!(status.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
    v.volume_phase("retained", "Bound").await;
    let pv = v.pvs().get("retained").await.unwrap();
    let r = pv.spec.as_ref().unwrap().claim_ref.clone().unwrap();
    assert_eq!((r.name, r.uid), (Some("small".into()), small.uid()));
    assert_eq!(
        annotation(&pv.metadata, "pv.kubernetes.io/bound-by-controller").as_deref(),
        Some("yes")
    );

    assert_eq!(v.bound_after(v.pvc("big", "2Gi", json!({}))).await, "deleted");
    // Pre-binding both ways.
    assert_eq!(v.bound_after(v.pvc("wanted", "1Gi", json!({}))).await, "reserved");
    assert_eq!(
        v.bound_after(v.pvc("mine", "1Gi", json!({"spec": {"volumeName": "named"}})))
            .await,
        "named"
    );
    let mine = v.pvcs().get("mine").await.unwrap();
    assert_eq!(
        annotation(&mine.metadata, "pv.kubernetes.io/bound-by-controller"),
        None
    );

    // Nothing fits and no class: Pending with upstream's event.
    v.pvc("huge", "100Gi", json!({})).await;
    assert_eq!(
        v.event("huge", "FailedBinding").await,
        "no persistent volumes available for this claim and no storage class is set"
    );
    assert_eq!(
        v.pvcs()
            .get("huge")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Pending")
    );

    // A claim in use by a scheduled pod keeps its finalizer until the pod is gone.
    let pods: Api<Pod> = Api::default_namespaced(v.client.clone());
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "user"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}],
                 "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "small"}}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    v.pvcs().delete("small", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let held = v
        .pvcs()
        .get("small")
        .await
        .expect("the claim is held by its finalizer");
    assert!(held.metadata.deletion_timestamp.is_some());
    pods.delete("user", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    v.gone(&v.pvcs(), "small").await;
    // Retain: the volume stays Released.
    v.volume_phase("retained", "Released").await;

    // Delete: the released volume is deleted (its pv-protection finalizer lifted once unbound).
    v.pvcs().delete("big", &DeleteParams::default()).await.unwrap();
    v.gone(&v.pvs(), "deleted").await;

    // A bound claim whose volume disappears is Lost. A bound volume is protected (its
    // pv-protection finalizer stays while it is Bound), so an admin forces it out.
    v.pvs().delete("named", &DeleteParams::default()).await.unwrap();
    let protected = v.pvs().get("named").await.expect("held while bound");
    assert!(protected.metadata.deletion_timestamp.is_some());
    v.pvs()
        .patch(
            "named",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    let pvcs = v.pvcs();
    eventually("mine Lost", || async {
        let c = pvcs.get("mine").await.map_err(|e| e.to_string())?;
        let phase = c.status.and_then(|s| s.phase).unwrap_or_default();
        if phase == "Lost" { Ok(()) } else { Err(phase) }
    })
    .await;
    assert_eq!(
        v.event("mine", "ClaimLost").await,
        "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
    );
    v.stop().await;
}

impl Volumes {
    async fn bound_after(&self, created: impl std::future::Future<Output = PersistentVolumeClaim>) -> String {
        let c = created.await;
        self.bound(&c.name_any()).await
    }
}

#[tokio::test]
async fn local_path_volumes_are_provisioned_on_the_selected_node_and_deleted_with_their_data() {
    let root = tempfile::tempdir().unwrap();
    let v = Volumes::start(PersistentVolumeConfig {
        local_path_root: root.path().to_path_buf(),
        hostname: "n1".into(),
        ..PersistentVolumeConfig::default()
    })
    .await;
    assert!(ensure_default_storage_class(&v.client).await.unwrap());
    assert!(
        !ensure_default_storage_class(&v.client).await.unwrap(),
        "only once"
    );
    let class = Api::<StorageClass>::all(v.client.clone())
        .get("local-path")
        .await
        .unwrap();
    assert_eq!(class.provisioner, "keelson.io/local-path");
    assert_eq!(class.volume_binding_mode.as_deref(), Some("WaitForFirstConsumer"));
    assert_eq!(class.reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(
        annotation(&class.metadata, "storageclass.kubernetes.io/is-default-class").as_deref(),
        Some("true")
    );

    let claim = v
        .pvc("data", "2Gi", json!({"spec": {"storageClassName": "local-path"}}))
        .await;
    assert_eq!(
        v.event("data", "WaitForFirstConsumer").await,
        "waiting for first consumer to be created before binding"
    );
    assert!(
        v.pvs()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // The scheduler's part: select the node.
    v.pvcs()
        .patch(
            "data",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "n1"}}})),
        )
        .await
        .unwrap();
    let name = v.bound("data").await;
    assert_eq!(name, format!("pvc-{}", claim.uid().unwrap()));
    let pv = v.pvs().get(&name).await.unwrap();
    let spec = pv.spec.clone().unwrap();
    let dir = root.path().join(format!("{name}_default_data"));
    assert_eq!(spec.host_path.unwrap().path, dir.to_string_lossy());
    assert_eq!(spec.capacity.unwrap()["storage"].0, "2Gi");
    assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Delete"));
    let term = &spec.node_affinity.unwrap().required.unwrap().node_selector_terms[0];
    let expr = &term.match_expressions.as_ref().unwrap()[0];
    assert_eq!(
        (expr.key.as_str(), expr.values.clone()),
        ("kubernetes.io/hostname", Some(vec!["n1".to_string()]))
    );
    assert_eq!(
        annotation(&pv.metadata, "pv.kubernetes.io/provisioned-by").as_deref(),
        Some("keelson.io/local-path")
    );
    assert!(
        v.event("data", "ProvisioningSucceeded")
            .await
            .starts_with(&format!("Successfully provisioned volume {name}"))
    );
    let claim = v.pvcs().get("data").await.unwrap();
    assert_eq!(
        annotation(&claim.metadata, "volume.kubernetes.io/storage-provisioner").as_deref(),
        Some("keelson.io/local-path")
    );

    // The kubelet would create the directory; deleting the claim removes it and the volume.
    std::fs::create_dir_all(dir.join("inner")).unwrap();
    std::fs::write(dir.join("inner/file"), b"x").unwrap();
    v.pvcs().delete("data", &DeleteParams::default()).await.unwrap();
    v.gone(&v.pvs(), &name).await;
    assert!(!dir.exists(), "the data directory is removed on its node");
    v.stop().await;
}

fn merge(v: &mut Value, extra: Value) {
    match (v, extra) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, bv) in b {
                merge(a.entry(k).or_insert(Value::Null), bv);
            }
        }
        (slot, other) => *slot = other,
    }
}
