//! Upstream's table columns for storage: PersistentVolumes, PersistentVolumeClaims and
//! StorageClasses (`kubectl get pv,pvc,storageclass`), with the default class marked
//! `(default)` as kube-apiserver's printer does.

use serde_json::{Value, json};

use super::{AGE, Column, NAME, col, s};
use crate::descriptor::ResourceDescriptor;

const VOLUME_MODE: Column = col("VolumeMode", "string", 1, "The volume mode: Filesystem or Block.");
const VOLUME_ATTRIBUTES_CLASS: Column = col(
    "VolumeAttributesClass",
    "string",
    0,
    "The VolumeAttributesClass in use.",
);

/// The columns of `desc`, when it is a storage type.
pub(super) fn columns(desc: &ResourceDescriptor) -> Option<Vec<Column>> {
    Some(match (desc.group.as_str(), desc.resource.as_str()) {
        ("", "persistentvolumes") => vec![
            NAME,
            col("Capacity", "string", 0, "The volume's size."),
            col("Access Modes", "string", 0, "How the volume may be mounted."),
            col(
                "Reclaim Policy",
                "string",
                0,
                "What happens to the volume when released.",
            ),
            col("Status", "string", 0, "The volume's phase."),
            col("Claim", "string", 0, "The claim bound to the volume."),
            col("StorageClass", "string", 0, "The volume's class."),
            VOLUME_ATTRIBUTES_CLASS,
            col("Reason", "string", 0, "Why the volume is in its phase."),
            AGE,
            VOLUME_MODE,
        ],
        ("", "persistentvolumeclaims") => vec![
            NAME,
            col("Status", "string", 0, "The claim's phase."),
            col("Volume", "string", 0, "The volume bound to the claim."),
            col("Capacity", "string", 0, "The bound volume's size."),
            col("Access Modes", "string", 0, "How the volume may be mounted."),
            col("StorageClass", "string", 0, "The claim's class."),
            VOLUME_ATTRIBUTES_CLASS,
            AGE,
            VOLUME_MODE,
        ],
        ("storage.k8s.io", "storageclasses") => vec![
            NAME,
            col("Provisioner", "string", 0, "What provisions the class's volumes."),
            col("ReclaimPolicy", "string", 0, "What happens to released volumes."),
            col("VolumeBindingMode", "string", 0, "When claims are bound."),
            col("AllowVolumeExpansion", "string", 0, "Whether claims may grow."),
            AGE,
        ],
        _ => return None,
    })
}

/// `RWO,ROX,RWX,RWOP` as upstream abbreviates access modes, in that order.
fn access_modes(modes: Option<&Value>) -> String {
    let has = |m: &str| {
        modes
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(m)))
    };
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

fn phase(obj: &Value) -> String {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return "Terminating".into();
    }
    s(obj, "/status/phase").to_string()
}

fn or_unset(v: &str) -> Value {
    json!(if v.is_empty() { "<unset>" } else { v })
}

fn is_default_class(obj: &Value) -> bool {
    [
        "storageclass.kubernetes.io~1is-default-class",
        "storageclass.beta.kubernetes.io~1is-default-class",
    ]
    .iter()
    .any(|a| s(obj, &format!("/metadata/annotations/{a}")) == "true")
}

/// The row cells of `obj`, when it is a storage type.
pub(super) fn cells(desc: &ResourceDescriptor, obj: &Value, name: Value, age: Value) -> Option<Vec<Value>> {
    Some(match (desc.group.as_str(), desc.resource.as_str()) {
        ("", "persistentvolumes") => {
            let claim = match (s(obj, "/spec/claimRef/namespace"), s(obj, "/spec/claimRef/name")) {
                (_, "") => String::new(),
                (ns, n) => format!("{ns}/{n}"),
            };
            vec![
                name,
                json!(s(obj, "/spec/capacity/storage")),
                json!(access_modes(obj.pointer("/spec/accessModes"))),
                json!(s(obj, "/spec/persistentVolumeReclaimPolicy")),
                json!(phase(obj)),
                json!(claim),
                json!(s(obj, "/spec/storageClassName")),
                or_unset(s(obj, "/spec/volumeAttributesClassName")),
                json!(s(obj, "/status/reason")),
                age,
                or_unset(s(obj, "/spec/volumeMode")),
            ]
        }
        ("", "persistentvolumeclaims") => {
            let bound = !s(obj, "/spec/volumeName").is_empty();
            let (capacity, modes) = match bound {
                true => (
                    s(obj, "/status/capacity/storage").to_string(),
                    access_modes(obj.pointer("/status/accessModes")),
                ),
                false => (String::new(), String::new()),
            };
            vec![
                name,
                json!(phase(obj)),
                json!(s(obj, "/spec/volumeName")),
                json!(capacity),
                json!(modes),
                json!(s(obj, "/spec/storageClassName")),
                or_unset(s(obj, "/spec/volumeAttributesClassName")),
                age,
                or_unset(s(obj, "/spec/volumeMode")),
            ]
        }
        ("storage.k8s.io", "storageclasses") => {
            let mut shown = s(obj, "/metadata/name").to_string();
            if is_default_class(obj) {
                shown.push_str(" (default)");
            }
            let or = |ptr: &str, default: &str| match s(obj, ptr) {
                "" => default.to_string(),
                v => v.to_string(),
            };
            let expansion = obj
                .get("allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            vec![
                json!(shown),
                json!(s(obj, "/provisioner")),
                json!(or("/reclaimPolicy", "Delete")),
                json!(or("/volumeBindingMode", "Immediate")),
                json!(expansion.to_string()),
                age,
            ]
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_modes_are_abbreviated_in_upstreams_order() {
        let modes = json!(["ReadWriteOncePod", "ReadWriteOnce", "ReadOnlyMany"]);
        assert_eq!(access_modes(Some(&modes)), "RWO,ROX,RWOP");
        assert_eq!(access_modes(None), "");
    }

    #[test]
    fn the_default_class_is_marked() {
        let class = json!({"metadata": {"name": "local-path",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "keelson.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
        assert!(is_default_class(&class));
        assert!(!is_default_class(&json!({"metadata": {"name": "x"}})));
    }
}
