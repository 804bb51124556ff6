//! VolumeBinding with the PV controller: pods wait for their claims, bound local volumes pin
//! pods to their node, and WaitForFirstConsumer claims are bound (static) or provisioned
//! (local-path) on the node the scheduler picks.

use std::time::Duration;

use apiserver::testing::TestServer;
use controller_manager::persistentvolume::{PersistentVolumeConfig, ensure_default_storage_class};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{Harness, merge, until};

/// The scheduler as the admin (its bootstrap role lacks upstream's `system:volume-scheduler`
/// rules for StorageClasses and volume writes) plus the volume controllers.
struct Cluster {
    h: Harness,
    manager_stop: CancellationToken,
    manager: tokio::task::JoinHandle<Result<(), controller_manager::Error>>,
    _root: tempfile::TempDir,
}

impl Cluster {
    async fn start(hostname: &str) -> Cluster {
        let server = TestServer::start().await.expect("test server");
        let admin = server.client();
        let stop = CancellationToken::new();
        let config = scheduler::Config {
            bind_timeout: Duration::from_secs(30),
            ..scheduler::Config::default()
        };
        let task = tokio::spawn(scheduler::run(config, admin.clone(), stop.clone()));
        let root = tempfile::tempdir().unwrap();
        let manager_stop = CancellationToken::new();
        let cm = controller_manager::Config {
            controllers: vec![
                "persistentvolume-binder".into(),
                "pvc-protection".into(),
                "pv-protection".into(),
            ],
            persistent_volume: PersistentVolumeConfig {
                sync_period: Duration::from_secs(2),
                local_path_root: root.path().to_path_buf(),
                hostname: hostname.into(),
            },
            ..controller_manager::Config::default()
        };
        let manager = tokio::spawn(controller_manager::run(cm, admin.clone(), manager_stop.clone()));
        Cluster {
            h: Harness {
                server,
                admin,
                stop,
                task: Some(task),
            },
            manager_stop,
            manager,
            _root: root,
        }
    }

    async fn stop(self) {
        self.manager_stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.manager)
            .await
            .expect("the manager stops")
            .expect("the manager task")
            .expect("the manager ran without error");
        self.h.stop().await;
    }

    fn pvcs(&self) -> Api<PersistentVolumeClaim> {
        Api::default_namespaced(self.h.admin.clone())
    }

    fn pvs(&self) -> Api<PersistentVolume> {
        Api::all(self.h.admin.clone())
    }

    async fn create<K>(&self, api: &Api<K>, v: Value) -> K
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    {
        api.create(&PostParams::default(), &serde_json::from_value(v).unwrap())
            .await
            .expect("created")
    }

    async fn claim(&self, name: &str, class: &str, extra: Value) -> PersistentVolumeClaim {
        let mut v = json!({"metadata": {"name": name},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": class}});
        merge(&mut v, extra);
        self.create(&self.pvcs(), v).await
    }

    async fn local_pv(&self, name: &str, node: &str, class: &str, extra: Value) {
        let mut v = json!({"metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": class,
                     "persistentVolumeReclaimPolicy": "Retain", "local": {"path": "/mnt/disk"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}});
        merge(&mut v, extra);
        self.create(&self.pvs(), v).await;
    }

    async fn pod_using(&self, name: &str, claim: &str, extra: Value) {
        let mut v =
            json!({"spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}});
        merge(&mut v, extra);
        self.h.pod(name, "100m", v).await;
    }

    /// Waits until claim `name` is Bound, returning its volume.
    async fn bound_claim(&self, name: &str) -> PersistentVolume {
        let pvcs = self.pvcs();
        let volume = until(&format!("{name} Bound"), || async {
            let c = pvcs.get(name).await.ok()?;
            (c.status?.phase.as_deref() == Some("Bound")).then_some(())?;
            c.spec?.volume_name
        })
        .await;
        self.pvs().get(&volume).await.expect("the bound volume")
    }
}

fn pinned_node(pv: &PersistentVolume) -> Option<String> {
    let terms = &pv
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms;
    terms[0].match_expressions.as_ref()?[0]
        .values
        .as_ref()?
        .first()
        .cloned()
}

#[tokio::test]
async fn claims_gate_scheduling_and_bound_local_volumes_pin_pods() {
    let c = Cluster::start("none").await;
    c.h.node("n1", "4", json!({})).await;
    c.h.node("n2", "4", json!({})).await;

    c.pod_using("orphan", "nope", json!({})).await;
    let msg = c.h.unscheduled("orphan", "Unschedulable").await;
    assert!(
        msg.starts_with("0/2 nodes are available: persistentvolumeclaim \"nope\" not found."),
        "{msg}"
    );

    // An Immediate claim nothing can bind.
    c.claim(
        "unbound",
        "",
        json!({"spec": {"resources": {"requests": {"storage": "50Gi"}}}}),
    )
    .await;
    c.pod_using("waiting", "unbound", json!({})).await;
    let msg = c.h.unscheduled("waiting", "Unschedulable").await;
    assert!(
        msg.starts_with("0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."),
        "{msg}"
    );
    // A volume appears: the controller binds it and the pod moves back and schedules.
    c.local_pv(
        "big",
        "n2",
        "",
        json!({"spec": {"capacity": {"storage": "50Gi"}}}),
    )
    .await;
    assert_eq!(
        c.h.bound("waiting").await,
        "n2",
        "the bound local volume pins the pod"
    );

    // A pod whose node selector excludes its volume's node.
    c.local_pv("on-n1", "n1", "", json!({})).await;
    c.claim("pinned", "", json!({"spec": {"volumeName": "on-n1"}}))
        .await;
    c.bound_claim("pinned").await;
    c.pod_using(
        "elsewhere",
        "pinned",
        json!({"spec": {"nodeSelector": {"kubernetes.io/hostname": "n2"}}}),
    )
    .await;
    let msg = c.h.unscheduled("elsewhere", "Unschedulable").await;
    assert!(
        msg.contains("1 node(s) had volume node affinity conflict"),
        "{msg}"
    );

    // A ReadWriteOncePod claim serves one pod.
    let rwop = json!({"spec": {"accessModes": ["ReadWriteOncePod"]}});
    c.local_pv("solo-disk", "n1", "", rwop.clone()).await;
    c.claim("solo", "", rwop).await;
    c.bound_claim("solo").await;
    c.pod_using("first", "solo", json!({})).await;
    assert_eq!(c.h.bound("first").await, "n1");
    c.pod_using("second", "solo", json!({})).await;
    let msg = c.h.unscheduled("second", "Unschedulable").await;
    assert!(
        msg.contains(
            "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
        ),
        "{msg}"
    );
    c.stop().await;
}

#[tokio::test]
async fn wait_for_first_consumer_claims_bind_on_the_scheduled_node() {
    let c = Cluster::start("n2").await;
    c.h.node("n1", "4", json!({})).await;
    c.h.node("n2", "4", json!({})).await;
    assert!(ensure_default_storage_class(&c.h.admin).await.unwrap());

    // Local-path: Pending until a pod uses it, then provisioned on the pod's node.
    let claim = c.claim("data", "local-path", json!({})).await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::default_namespaced(c.h.admin.clone());
    until("WaitForFirstConsumer", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("WaitForFirstConsumer")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("data")
            })
            .map(|_| ())
    })
    .await;
    let pending = c.pvcs().get("data").await.unwrap();
    assert_eq!(pending.status.unwrap().phase.as_deref(), Some("Pending"));
    assert!(
        c.pvs()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    c.pod_using("app", "data", json!({})).await;
    let node = c.h.bound("app").await;
    let pv = c.bound_claim("data").await;
    assert_eq!(
        pv.metadata.name,
        Some(format!("pvc-{}", claim.metadata.uid.unwrap()))
    );
    assert_eq!(
        pinned_node(&pv),
        Some(node.clone()),
        "provisioned on the pod's node"
    );
    let selected = c.pvcs().get("data").await.unwrap().metadata.annotations.unwrap();
    assert_eq!(selected.get("volume.kubernetes.io/selected-node"), Some(&node));

    // Static local volumes of a no-provisioner class: the scheduler picks the node that has one.
    let classes: Api<StorageClass> = Api::all(c.h.admin.clone());
    c.create(
        &classes,
        json!({"metadata": {"name": "local-disks"}, "provisioner": "kubernetes.io/no-provisioner",
               "volumeBindingMode": "WaitForFirstConsumer"}),
    )
    .await;
    c.local_pv("disk-n1", "n1", "local-disks", json!({})).await;
    c.claim("fixed", "local-disks", json!({})).await;
    c.pod_using("db", "fixed", json!({})).await;
    assert_eq!(c.h.bound("db").await, "n1");
    let pv = c.bound_claim("fixed").await;
    assert_eq!(pv.metadata.name.as_deref(), Some("disk-n1"));
    let r = pv.spec.unwrap().claim_ref.unwrap();
    assert_eq!(r.name.as_deref(), Some("fixed"));

    // No free disk left anywhere: the next claim's pod is unschedulable.
    c.claim("more", "local-disks", json!({})).await;
    c.pod_using("db2", "more", json!({})).await;
    let msg = c.h.unscheduled("db2", "Unschedulable").await;
    assert!(
        msg.contains("2 node(s) didn't find available persistent volumes to bind"),
        "{msg}"
    );
    c.stop().await;
}
