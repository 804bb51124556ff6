//! The PersistentVolumeClaims, PersistentVolumes and StorageClasses a scheduling cycle sees
//! (what upstream's VolumeBinding plugin reads from its listers and assume cache).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;

use crate::cluster_event::ClusterEvent;

/// Claims by namespace and name, volumes and classes by name.
#[derive(Clone, Debug, Default)]
pub struct Volumes {
    claims: HashMap<(String, String), Arc<PersistentVolumeClaim>>,
    pvs: BTreeMap<String, Arc<PersistentVolume>>,
    classes: HashMap<String, Arc<StorageClass>>,
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn newer(old: Option<&String>, new: Option<&String>) -> bool {
    // Resource versions are opaque; an equal one is the same object.
    old.is_none() || old != new
}

impl Volumes {
    /// Claim `namespace/name`.
    pub fn claim(&self, namespace: &str, name: &str) -> Option<&Arc<PersistentVolumeClaim>> {
        self.claims.get(&(namespace.to_string(), name.to_string()))
    }

    /// Volume `name`.
    pub fn pv(&self, name: &str) -> Option<&Arc<PersistentVolume>> {
        self.pvs.get(name)
    }

    /// Every volume, by name.
    pub fn pvs(&self) -> impl Iterator<Item = &Arc<PersistentVolume>> {
        self.pvs.values()
    }

    /// StorageClass `name`.
    pub fn class(&self, name: &str) -> Option<&Arc<StorageClass>> {
        self.classes.get(name)
    }

    /// Stores a claim; the event pending pods may care about, if it changed.
    pub fn set_claim(&mut self, claim: PersistentVolumeClaim) -> Option<ClusterEvent> {
        let key = (
            claim.metadata.namespace.clone().unwrap_or_default(),
            name_of(&claim.metadata),
        );
        let old = self.claims.get(&key).map(|c| c.metadata.resource_version.clone());
        let changed = newer(old.flatten().as_ref(), claim.metadata.resource_version.as_ref());
        self.claims.insert(key, Arc::new(claim));
        changed.then_some(ClusterEvent::PvcChange)
    }

    /// Forgets a claim.
    pub fn delete_claim(&mut self, namespace: &str, name: &str) {
        self.claims.remove(&(namespace.to_string(), name.to_string()));
    }

    /// Stores a volume (also the scheduler's own writes, before the watch confirms them).
    pub fn set_pv(&mut self, pv: PersistentVolume) -> Option<ClusterEvent> {
        let name = name_of(&pv.metadata);
        let old = self.pvs.get(&name).map(|p| p.metadata.resource_version.clone());
        let changed = newer(old.flatten().as_ref(), pv.metadata.resource_version.as_ref());
        self.pvs.insert(name, Arc::new(pv));
        changed.then_some(ClusterEvent::PvChange)
    }

    /// Forgets a volume.
    pub fn delete_pv(&mut self, name: &str) {
        self.pvs.remove(name);
    }

    /// Stores a class; [`ClusterEvent::StorageClassAdd`] when it is new.
    pub fn set_class(&mut self, class: StorageClass) -> Option<ClusterEvent> {
        let name = name_of(&class.metadata);
        let added = self.classes.insert(name, Arc::new(class)).is_none();
        added.then_some(ClusterEvent::StorageClassAdd)
    }

    /// Forgets a class.
    pub fn delete_class(&mut self, name: &str) {
        self.classes.remove(name);
    }

    /// Keeps only the claims in `keys` (after a relist).
    pub fn retain_claims(&mut self, keys: &HashSet<(String, String)>) {
        self.claims.retain(|k, _| keys.contains(k));
    }

    /// Keeps only the volumes in `names` (after a relist).
    pub fn retain_pvs(&mut self, names: &HashSet<String>) {
        self.pvs.retain(|k, _| names.contains(k));
    }

    /// Keeps only the classes in `names` (after a relist).
    pub fn retain_classes(&mut self, names: &HashSet<String>) {
        self.classes.retain(|k, _| names.contains(k));
    }
}
