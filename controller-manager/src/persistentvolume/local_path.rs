//! Keelson's built-in local-path provisioner (`keelson.io/local-path`): a claim's volume is a
//! `hostPath` directory `<root>/pvc-<uid>_<namespace>_<claim>` on the node the scheduler chose,
//! pinned there by required node affinity. Deleting it removes the directory when this process
//! runs on that node (the all-in-one case); on other nodes the kubelet is to clean it up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use api_util::volumes::{self as vol, ANN_BOUND_BY_CONTROLLER, ANN_PROVISIONED_BY, LOCAL_PATH_PROVISIONER};
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::binding::reference;

/// Why a claim cannot be provisioned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProvisionError {
    /// The claim requests no storage.
    #[error("claim requests no storage")]
    NoRequest,
    /// The claim has no uid yet.
    #[error("claim has no uid")]
    NoUid,
}

/// The name of the volume provisioned for a claim (`pvc-<uid>`).
pub fn volume_name(claim: &PersistentVolumeClaim) -> Option<String> {
    claim.metadata.uid.as_ref().map(|u| format!("pvc-{u}"))
}

/// The directory of a claim's volume under `root`.
pub fn directory(root: &Path, claim: &PersistentVolumeClaim) -> Option<PathBuf> {
    let uid = claim.metadata.uid.as_deref()?;
    Some(root.join(format!(
        "pvc-{uid}_{}_{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )))
}

/// The volume for `claim` of `class` on the node whose `kubernetes.io/hostname` label is
/// `hostname`: capacity = request, the claim's access and volume modes, the class's reclaim
/// policy (Delete by default) and mount options, pre-bound to the claim.
pub fn volume(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    hostname: &str,
    root: &Path,
) -> Result<PersistentVolume, ProvisionError> {
    let name = volume_name(claim).ok_or(ProvisionError::NoUid)?;
    let path = directory(root, claim).ok_or(ProvisionError::NoUid)?;
    let spec = claim.spec.clone().unwrap_or_default();
    let request = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .ok_or(ProvisionError::NoRequest)?;
    let annotations = BTreeMap::from([
        (ANN_PROVISIONED_BY.to_string(), LOCAL_PATH_PROVISIONER.to_string()),
        (ANN_BOUND_BY_CONTROLLER.to_string(), "yes".to_string()),
    ]);
    Ok(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes,
            capacity: Some(BTreeMap::from([("storage".to_string(), Quantity(request.0))])),
            claim_ref: Some(reference(claim)),
            host_path: Some(HostPathVolumeSource {
                path: path.to_string_lossy().into_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            mount_options: class.mount_options.clone(),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: vol::HOSTNAME_LABEL.into(),
                            operator: "In".into(),
                            values: Some(vec![hostname.to_string()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            persistent_volume_reclaim_policy: Some(
                class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: class.metadata.name.clone(),
            volume_mode: spec.volume_mode,
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    })
}

/// The node a provisioned volume lives on (its node affinity's hostname).
pub fn node_of(pv: &PersistentVolume) -> Option<&str> {
    let terms = &pv
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_expressions
            .iter()
            .flatten()
            .find(|e| e.key == vol::HOSTNAME_LABEL && e.operator == "In")
            .and_then(|e| e.values.as_ref()?.first().map(String::as_str))
    })
}

/// What deleting a provisioned volume's data amounts to.
#[derive(Debug, PartialEq, Eq)]
pub enum DataRemoval {
    /// The directory was removed (or was already gone).
    Removed(PathBuf),
    /// The volume lives on another node: its kubelet removes the data.
    OtherNode(String),
    /// The volume's path is not a directory this provisioner made: left alone.
    Foreign(String),
}

/// Removes a provisioned volume's directory when it is on `this_node` and under `root`.
pub fn remove_data(pv: &PersistentVolume, root: &Path, this_node: &str) -> std::io::Result<DataRemoval> {
    let path = pv
        .spec
        .as_ref()
        .and_then(|s| s.host_path.as_ref())
        .map(|h| PathBuf::from(&h.path))
        .unwrap_or_default();
    let ours = path.parent() == Some(root)
        && path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("pvc-"));
    if !ours {
        return Ok(DataRemoval::Foreign(path.to_string_lossy().into_owned()));
    }
    match node_of(pv) {
        Some(node) if node == this_node => {}
        other => return Ok(DataRemoval::OtherNode(other.unwrap_or_default().to_string())),
    }
    match std::fs::remove_dir_all(&path) {
        Ok(()) => Ok(DataRemoval::Removed(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DataRemoval::Removed(path)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim() -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "ns", "uid": "1234"},
            "spec": {"resources": {"requests": {"storage": "2Gi"}}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": "local-path"},
        }))
        .unwrap()
    }

    fn class() -> StorageClass {
        serde_json::from_value(json!({"metadata": {"name": "local-path"},
            "provisioner": LOCAL_PATH_PROVISIONER, "reclaimPolicy": "Retain",
            "volumeBindingMode": "WaitForFirstConsumer"}))
        .unwrap()
    }

    #[test]
    fn the_volume_is_a_host_path_pinned_to_the_node() {
        let pv = volume(&claim(), &class(), "n1", Path::new("/var/lib/keelson/storage")).unwrap();
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-1234"));
        assert_eq!(
            pv.metadata.annotations.as_ref().unwrap()[ANN_PROVISIONED_BY],
            LOCAL_PATH_PROVISIONER
        );
        let spec = pv.spec.as_ref().unwrap();
        let hp = spec.host_path.as_ref().unwrap();
        assert_eq!(hp.path, "/var/lib/keelson/storage/pvc-1234_ns_data");
        assert_eq!(hp.type_.as_deref(), Some("DirectoryOrCreate"));
        assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "2Gi");
        assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Retain"));
        assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
        assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
        let r = spec.claim_ref.as_ref().unwrap();
        assert_eq!(
            (r.name.as_deref(), r.uid.as_deref()),
            (Some("data"), Some("1234"))
        );
        assert_eq!(node_of(&pv), Some("n1"));
        let labels = BTreeMap::from([(vol::HOSTNAME_LABEL.to_string(), "n1".to_string())]);
        assert!(vol::node_affinity_matches(
            &pv,
            vol::NodeRef {
                name: "n1",
                labels: &labels
            }
        ));
        let mut no_policy = class();
        no_policy.reclaim_policy = None;
        let pv = volume(&claim(), &no_policy, "n1", Path::new("/r")).unwrap();
        assert_eq!(
            pv.spec.unwrap().persistent_volume_reclaim_policy.as_deref(),
            Some("Delete")
        );
        let mut empty = claim();
        empty.spec.as_mut().unwrap().resources = None;
        assert_eq!(
            volume(&empty, &class(), "n1", Path::new("/r")),
            Err(ProvisionError::NoRequest)
        );
    }

    #[test]
    fn data_is_removed_only_on_its_node_and_under_the_root() {
        let root = std::env::temp_dir().join(format!("keelson-lp-{}", std::process::id()));
        let pv = volume(&claim(), &class(), "n1", &root).unwrap();
        let dir = directory(&root, &claim()).unwrap();
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        assert_eq!(
            remove_data(&pv, &root, "n2").unwrap(),
            DataRemoval::OtherNode("n1".into())
        );
        assert!(dir.exists());
        assert_eq!(
            remove_data(&pv, &root, "n1").unwrap(),
            DataRemoval::Removed(dir.clone())
        );
        assert!(!dir.exists());
        assert!(matches!(
            remove_data(&pv, Path::new("/elsewhere"), "n1").unwrap(),
            DataRemoval::Foreign(_)
        ));
        let _ = std::fs::remove_dir_all(&root);
    }
}
