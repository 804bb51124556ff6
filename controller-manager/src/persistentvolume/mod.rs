//! The PersistentVolume controller (upstream's `persistentvolume-binder-controller`): binds
//! pending claims to static volumes, provisions volumes for classes of the built-in local-path
//! provisioner (and annotates claims for external provisioners), marks claims `Lost` and volumes
//! `Released`, and applies the reclaim policy (Retain keeps the volume, Delete removes it and,
//! for local-path volumes, their data). Two queues as upstream: claims (`namespace/name`) and
//! volumes (`name`), plus a periodic resync. Also [`protection`] (the PVC and PV protection
//! controllers) and [`ensure_default_storage_class`].

pub mod binding;
pub mod local_path;
pub mod protection;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api_util::volumes::{
    self as vol, ANN_BETA_STORAGE_PROVISIONER, ANN_DEFAULT_CLASS, ANN_PROVISIONED_BY, ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER, LOCAL_PATH_PROVISIONER,
};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};

use crate::controllers::{ControllerContext, ControllerError};
use crate::events::EventSink;
use crate::informer::{Change, Store};
use crate::workqueue::{RateLimits, WorkQueue, run_workers};
use binding::{ClaimAction, Note, VolumeAction, phase};

/// The name of the default StorageClass [`ensure_default_storage_class`] creates.
pub const DEFAULT_CLASS_NAME: &str = "local-path";

/// The controller's settings.
#[derive(Clone, Debug)]
pub struct PersistentVolumeConfig {
    /// `--pvclaimbinder-sync-period`: how often every claim and volume is synced again (15 s).
    pub sync_period: Duration,
    /// `--local-path-root`: where local-path volumes' directories live on every node.
    pub local_path_root: PathBuf,
    /// The node this process runs on (its host name): local-path data there is removed here.
    pub hostname: String,
}

impl Default for PersistentVolumeConfig {
    fn default() -> Self {
        PersistentVolumeConfig {
            sync_period: Duration::from_secs(15),
            local_path_root: PathBuf::from("/var/lib/keelson/storage"),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
        }
    }
}

/// Failures of one sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// Removing a volume's data failed.
    #[error("removing the data of volume {volume}: {source}")]
    Data {
        /// The volume.
        volume: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Creates the StorageClass `local-path` (provisioner `keelson.io/local-path`,
/// WaitForFirstConsumer, reclaim Delete, the cluster default) when no StorageClass exists.
/// Returns whether it created it.
pub async fn ensure_default_storage_class(client: &kube::Client) -> Result<bool, kube::Error> {
    let api: Api<StorageClass> = Api::all(client.clone());
    if !api.list(&ListParams::default().limit(1)).await?.items.is_empty() {
        return Ok(false);
    }
    let class = StorageClass {
        metadata: kube::api::ObjectMeta {
            name: Some(DEFAULT_CLASS_NAME.into()),
            annotations: Some(BTreeMap::from([(
                ANN_DEFAULT_CLASS.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        provisioner: LOCAL_PATH_PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..StorageClass::default()
    };
    match api.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs the PV controller until shutdown.
pub async fn run(ctx: ControllerContext) -> Result<(), ControllerError> {
    let claims = ctx.informers.informer::<PersistentVolumeClaim>();
    let volumes = ctx.informers.informer::<PersistentVolume>();
    let classes = ctx.informers.informer::<StorageClass>();
    let nodes = ctx.informers.informer::<Node>();
    let c = Arc::new(Binder {
        client: ctx.client.clone(),
        claims: claims.store(),
        volumes: volumes.store(),
        classes: classes.store(),
        nodes: nodes.store(),
        claim_queue: WorkQueue::with_metrics("claims", RateLimits::default(), ctx.metrics.clone()),
        volume_queue: WorkQueue::with_metrics("volumes", RateLimits::default(), ctx.metrics.clone()),
        events: EventSink::new(ctx.client.clone(), "persistentvolume-controller", &ctx.identity),
        config: ctx.config.persistent_volume.clone(),
    });
    let h = c.clone();
    claims.add_handler(move |ch| h.on_claim(ch));
    let h = c.clone();
    volumes.add_handler(move |ch| h.on_volume(ch));
    let h = c.clone();
    classes.add_handler(move |ch| {
        if let Change::Added(_) = ch {
            h.resync_claims();
        }
    });
    tokio::select! {
        () = ctx.shutdown.cancelled() => return Ok(()),
        () = async {
            claims.wait_synced().await;
            volumes.wait_synced().await;
            classes.wait_synced().await;
            nodes.wait_synced().await;
        } => {}
    }
    tracing::info!(controller = ctx.name, "caches synced; starting workers");
    let resync = {
        let c = c.clone();
        let shutdown = ctx.shutdown.clone();
        async move {
            let mut tick = tokio::time::interval(c.config.sync_period.max(Duration::from_secs(1)));
            tick.tick().await;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                c.resync_claims();
                for v in c.volumes.list_all() {
                    c.volume_queue.add(v.name_any());
                }
            }
        }
    };
    let sync_claims = {
        let c = c.clone();
        run_workers(c.claim_queue.clone(), 1, None, ctx.shutdown.clone(), move |key| {
            let c = c.clone();
            async move { c.sync_claim(&key).await }
        })
    };
    let sync_volumes = {
        let c = c.clone();
        run_workers(
            c.volume_queue.clone(),
            1,
            None,
            ctx.shutdown.clone(),
            move |key| {
                let c = c.clone();
                async move { c.sync_volume(&key).await }
            },
        )
    };
    tokio::join!(resync, sync_claims, sync_volumes);
    Ok(())
}

struct Binder {
    client: kube::Client,
    claims: Arc<Store<PersistentVolumeClaim>>,
    volumes: Arc<Store<PersistentVolume>>,
    classes: Arc<Store<StorageClass>>,
    nodes: Arc<Store<Node>>,
    claim_queue: WorkQueue,
    volume_queue: WorkQueue,
    events: EventSink,
    config: PersistentVolumeConfig,
}

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Binder {
    fn on_claim(&self, change: &Change<PersistentVolumeClaim>) {
        match change {
            Change::Added(c) | Change::Updated { new: c, .. } => {
                self.claim_queue.add(binding::claim_key(c));
            }
            Change::Deleted(c) => {
                // Its volume is released.
                let uid = c.metadata.uid.as_deref();
                for v in self.volumes.list_all() {
                    if binding::claim_ref(&v).is_some_and(|r| r.uid.as_deref() == uid) {
                        self.volume_queue.add(v.name_any());
                    }
                }
            }
        }
    }

    fn on_volume(&self, change: &Change<PersistentVolume>) {
        match change {
            Change::Added(v) | Change::Updated { new: v, .. } => self.volume_queue.add(v.name_any()),
            Change::Deleted(v) => {
                // Its claim is lost.
                if let Some(r) = binding::claim_ref(v) {
                    self.claim_queue.add(format!(
                        "{}/{}",
                        r.namespace.as_deref().unwrap_or_default(),
                        r.name.as_deref().unwrap_or_default()
                    ));
                }
            }
        }
    }

    fn resync_claims(&self) {
        for c in self.claims.list_all() {
            self.claim_queue.add(binding::claim_key(&c));
        }
    }

    fn emit(&self, claim: &PersistentVolumeClaim, note: Note) {
        if note.warning {
            self.events.warning(claim, note.reason, "Binding", note.message);
        } else {
            self.events.normal(claim, note.reason, "Binding", note.message);
        }
    }

    async fn sync_claim(&self, key: &str) -> Result<(), SyncError> {
        let (ns, name) = split_key(key);
        let Some(claim) = self.claims.get(ns, name) else {
            return Ok(());
        };
        let volumes = self.volumes.list_all();
        let action = binding::decide_claim(
            &claim,
            |n| self.volumes.get("", n),
            &volumes,
            |n| self.classes.get("", n),
        );
        tracing::debug!(claim = key, ?action, "syncing claim");
        match action {
            ClaimAction::Bind(pv) => self.bind(&pv, &claim).await,
            ClaimAction::Pending(note) => {
                if let Some(note) = note {
                    self.emit(&claim, note);
                }
                self.set_claim_phase(&claim, phase::PENDING).await
            }
            ClaimAction::Lost(note) => {
                if binding::claim_phase(&claim) != phase::LOST {
                    self.emit(&claim, note);
                }
                self.set_claim_phase(&claim, phase::LOST).await
            }
            ClaimAction::ClassMissing(class) => {
                self.events.warning(
                    &*claim,
                    "ProvisioningFailed",
                    "Provisioning",
                    format!("storageclass.storage.k8s.io {class:?} not found"),
                );
                self.set_claim_phase(&claim, phase::PENDING).await
            }
            ClaimAction::Provision(class) => {
                self.set_claim_phase(&claim, phase::PENDING).await?;
                self.provision(&claim, &class).await
            }
        }
    }

    async fn set_claim_phase(&self, claim: &PersistentVolumeClaim, to: &str) -> Result<(), SyncError> {
        if binding::claim_phase(claim) == to {
            return Ok(());
        }
        let mut new = claim.clone();
        new.status.get_or_insert_default().phase = Some(to.into());
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &claim.namespace().unwrap_or_default());
        api.replace_status(&claim.name_any(), &PostParams::default(), &new)
            .await?;
        Ok(())
    }

    async fn set_volume_phase(&self, pv: &PersistentVolume, to: &str) -> Result<PersistentVolume, SyncError> {
        if binding::volume_phase(pv) == to {
            return Ok(pv.clone());
        }
        let mut new = pv.clone();
        new.status.get_or_insert_default().phase = Some(to.into());
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        Ok(api
            .replace_status(&pv.name_any(), &PostParams::default(), &new)
            .await?)
    }

    /// Binds both sides, writing only what differs (volume, its phase, claim, its status).
    async fn bind(&self, pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> Result<(), SyncError> {
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let pv = match binding::volume_bound_to(pv, claim) {
            Some(new) => pvs.replace(&pv.name_any(), &PostParams::default(), &new).await?,
            None => pv.clone(),
        };
        let pv = self.set_volume_phase(&pv, phase::BOUND).await?;
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &claim.namespace().unwrap_or_default());
        let claim = match binding::claim_bound_to(claim, &pv) {
            Some(new) => {
                claims
                    .replace(&claim.name_any(), &PostParams::default(), &new)
                    .await?
            }
            None => claim.clone(),
        };
        let status = binding::bound_claim_status(&claim, &pv);
        if claim.status.as_ref() != Some(&status) {
            let mut new = claim.clone();
            new.status = Some(status);
            claims
                .replace_status(&claim.name_any(), &PostParams::default(), &new)
                .await?;
            tracing::info!(claim = %binding::claim_key(&claim), volume = %pv.name_any(), "bound");
        }
        Ok(())
    }

    /// Provisions a volume for the claim with the class's provisioner: the built-in local-path
    /// one here, others by annotating the claim for their external controller.
    async fn provision(&self, claim: &PersistentVolumeClaim, class: &StorageClass) -> Result<(), SyncError> {
        let claim = self.annotate_provisioner(claim, &class.provisioner).await?;
        if class.provisioner != LOCAL_PATH_PROVISIONER {
            self.events.normal(
                &claim,
                "ExternalProvisioning",
                "Provisioning",
                format!(
                    "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                    class.provisioner
                ),
            );
            return Ok(());
        }
        let Some(node) = claim
            .annotations()
            .get(ANN_SELECTED_NODE)
            .cloned()
            .filter(|n| !n.is_empty())
        else {
            self.events.warning(
                &claim,
                "ProvisioningFailed",
                "Provisioning",
                format!(
                    "{LOCAL_PATH_PROVISIONER} needs a selected node: use volumeBindingMode WaitForFirstConsumer"
                ),
            );
            return Ok(());
        };
        let Some(name) = local_path::volume_name(&claim) else {
            return Ok(());
        };
        if self.volumes.get("", &name).is_some() {
            // Provisioned already; the binding follows.
            return Ok(());
        }
        let hostname = self
            .nodes
            .get("", &node)
            .and_then(|n| n.labels().get(vol::HOSTNAME_LABEL).cloned())
            .unwrap_or_else(|| node.clone());
        let pv = match local_path::volume(&claim, class, &hostname, &self.config.local_path_root) {
            Ok(pv) => pv,
            Err(e) => {
                self.events
                    .warning(&claim, "ProvisioningFailed", "Provisioning", e.to_string());
                return Ok(());
            }
        };
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &pv).await {
            Ok(_) => {
                tracing::info!(claim = %binding::claim_key(&claim), volume = %name, %node, "provisioned");
                self.events.normal(
                    &claim,
                    "ProvisioningSucceeded",
                    "Provisioning",
                    format!("Successfully provisioned volume {name} using {LOCAL_PATH_PROVISIONER}"),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => {
                self.events.warning(
                    &claim,
                    "ProvisioningFailed",
                    "Provisioning",
                    format!("Failed to create volume {name}: {e}"),
                );
                Err(e.into())
            }
        }
    }

    /// Sets the claim's `storage-provisioner` annotations (both spellings) if missing.
    async fn annotate_provisioner(
        &self,
        claim: &PersistentVolumeClaim,
        provisioner: &str,
    ) -> Result<PersistentVolumeClaim, SyncError> {
        let anns = claim.annotations();
        if anns.get(ANN_STORAGE_PROVISIONER).map(String::as_str) == Some(provisioner)
            && anns.get(ANN_BETA_STORAGE_PROVISIONER).map(String::as_str) == Some(provisioner)
        {
            return Ok(claim.clone());
        }
        let mut new = claim.clone();
        let anns = new.annotations_mut();
        anns.insert(ANN_STORAGE_PROVISIONER.into(), provisioner.into());
        anns.insert(ANN_BETA_STORAGE_PROVISIONER.into(), provisioner.into());
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &claim.namespace().unwrap_or_default());
        Ok(api
            .replace(&claim.name_any(), &PostParams::default(), &new)
            .await?)
    }

    /// The claim a volume's `claimRef` names, if it still exists with that uid (the cache first,
    /// the API server before concluding it is gone, as upstream).
    async fn claim_of(&self, pv: &PersistentVolume) -> Result<Option<Arc<PersistentVolumeClaim>>, SyncError> {
        let Some(r) = binding::claim_ref(pv) else {
            return Ok(None);
        };
        let (ns, name) = (
            r.namespace.as_deref().unwrap_or_default(),
            r.name.as_deref().unwrap_or_default(),
        );
        let same = |c: &PersistentVolumeClaim| c.metadata.uid == r.uid;
        if let Some(c) = self.claims.get(ns, name).filter(|c| same(c)) {
            return Ok(Some(c));
        }
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        match api.get(name).await {
            Ok(c) if same(&c) => Ok(Some(Arc::new(c))),
            Ok(_) => Ok(None),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn sync_volume(&self, name: &str) -> Result<(), SyncError> {
        let Some(pv) = self.volumes.get("", name) else {
            return Ok(());
        };
        let uid_set =
            binding::claim_ref(&pv).is_some_and(|r| r.uid.as_deref().is_some_and(|u| !u.is_empty()));
        let claim = if uid_set { self.claim_of(&pv).await? } else { None };
        let action = binding::decide_volume(&pv, claim.as_deref());
        tracing::debug!(volume = name, ?action, "syncing volume");
        match action {
            VolumeAction::Nothing => Ok(()),
            VolumeAction::Phase(p) => self.set_volume_phase(&pv, p).await.map(drop),
            VolumeAction::SyncClaim(key) => {
                self.claim_queue.add(key);
                Ok(())
            }
            VolumeAction::Release => {
                let pv = self.set_volume_phase(&pv, phase::RELEASED).await?;
                self.reclaim(&pv).await
            }
            VolumeAction::Reclaim => self.reclaim(&pv).await,
            VolumeAction::Unbind => {
                let mut new = (*pv).clone();
                if let Some(s) = new.spec.as_mut() {
                    s.claim_ref = None;
                }
                new.annotations_mut().remove(vol::ANN_BOUND_BY_CONTROLLER);
                let api: Api<PersistentVolume> = Api::all(self.client.clone());
                let new = api.replace(name, &PostParams::default(), &new).await?;
                self.set_volume_phase(&new, phase::AVAILABLE).await.map(drop)
            }
        }
    }

    /// Applies a released volume's reclaim policy.
    async fn reclaim(&self, pv: &PersistentVolume) -> Result<(), SyncError> {
        let policy = pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            .unwrap_or("Retain");
        match policy {
            "Delete" => self.delete_volume(pv).await,
            "Recycle" => {
                self.events.warning(
                    pv,
                    "VolumeFailedRecycle",
                    "Recycling",
                    "Recycle is not supported: no volume plugin matched".into(),
                );
                self.set_volume_phase(pv, phase::FAILED).await.map(drop)
            }
            _ => Ok(()),
        }
    }

    async fn delete_volume(&self, pv: &PersistentVolume) -> Result<(), SyncError> {
        let name = pv.name_any();
        if pv.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        match pv.annotations().get(ANN_PROVISIONED_BY).map(String::as_str) {
            Some(LOCAL_PATH_PROVISIONER) => {
                match local_path::remove_data(pv, &self.config.local_path_root, &self.config.hostname) {
                    Ok(local_path::DataRemoval::Removed(path)) => {
                        tracing::info!(volume = %name, path = %path.display(), "removed the volume's data");
                    }
                    Ok(local_path::DataRemoval::OtherNode(node)) => {
                        tracing::info!(volume = %name, %node, "the volume's data is on another node: left to its kubelet");
                    }
                    Ok(local_path::DataRemoval::Foreign(path)) => {
                        tracing::warn!(volume = %name, %path, "not a local-path directory: data left alone");
                    }
                    Err(source) => {
                        self.events.warning(
                            pv,
                            "VolumeFailedDelete",
                            "Deleting",
                            format!("removing the volume's data: {source}"),
                        );
                        return Err(SyncError::Data { volume: name, source });
                    }
                }
            }
            Some(other) => {
                tracing::debug!(volume = %name, provisioner = other, "left to its external provisioner");
                return Ok(());
            }
            None => {}
        }
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: pv.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(volume = %name, "deleted the released volume");
                Ok(())
            }
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => {
                self.events
                    .warning(pv, "VolumeFailedDelete", "Deleting", e.to_string());
                Err(e.into())
            }
        }
    }
}
