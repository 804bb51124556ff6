//! StorageClasses (upstream `pkg/apis/storage/validation`) and PersistentVolumes (upstream
//! `ValidatePersistentVolumeSpec`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::field::{Errs, child, index, key, list, object, present, str_of, string};
use super::quantity::{self, Quantity};
use super::{names, pod};

const CLASS_RECLAIM: [&str; 2] = ["Delete", "Retain"];
const BINDING_MODES: [&str; 2] = ["Immediate", "WaitForFirstConsumer"];

/// A StorageClass (absent `reclaimPolicy`/`volumeBindingMode` are upstream's defaults).
pub fn storage_class(obj: &Value, errs: &mut Errs) {
    let provisioner = string(obj, "provisioner");
    if provisioner.is_empty() {
        errs.required("provisioner", "");
    } else {
        let lower = provisioner.to_lowercase();
        errs.invalid_each("provisioner", &lower, names::qualified_name(&lower));
    }
    let params = object(obj, "parameters");
    let mut total = 0;
    for (k, v) in params.into_iter().flatten() {
        if k.is_empty() {
            errs.invalid_str("parameters", k, "field can not be empty.");
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if params.is_some_and(|p| p.len() > 512) {
        errs.too_long("parameters", 512);
    } else if total > 256 * 1024 {
        errs.too_long("parameters", 256 * 1024);
    }
    if let Some(policy) = str_of(obj, "reclaimPolicy")
        && !policy.is_empty()
        && !CLASS_RECLAIM.contains(&policy)
    {
        errs.not_supported("reclaimPolicy", &Value::from(policy), &CLASS_RECLAIM);
    }
    if let Some(mode) = str_of(obj, "volumeBindingMode")
        && !BINDING_MODES.contains(&mode)
    {
        errs.not_supported("volumeBindingMode", &Value::from(mode), &BINDING_MODES);
    }
    allowed_topologies(list(obj, "allowedTopologies"), errs);
}

/// `allowedTopologies`: per term, expressions with values and a label key, no key twice; no term
/// twice.
fn allowed_topologies(terms: &[Value], errs: &mut Errs) {
    let mut seen_terms: Vec<BTreeMap<&str, BTreeSet<&str>>> = Vec::new();
    for (i, term) in terms.iter().enumerate() {
        let p = index("allowedTopologies", i);
        let ep = child(&p, "matchLabelExpressions");
        let mut exprs = BTreeMap::new();
        for (j, e) in list(term, "matchLabelExpressions").iter().enumerate() {
            let rp = index(&ep, j);
            let values = list(e, "values");
            if values.is_empty() {
                errs.required(child(&rp, "values"), "must specify as least one value");
            }
            let mut set = BTreeSet::new();
            for (k, v) in values.iter().enumerate() {
                let v = v.as_str().unwrap_or("");
                if !set.insert(v) {
                    errs.duplicate(index(&child(&rp, "values"), k), &Value::from(v));
                }
            }
            let key = string(e, "key");
            errs.invalid_each(&child(&rp, "key"), key, names::qualified_name(key));
            if exprs.insert(key, set).is_some() {
                errs.duplicate(child(&rp, "key"), &Value::from(key));
            }
        }
        if seen_terms.contains(&exprs) {
            errs.duplicate(&ep, &Value::from(""));
        }
        seen_terms.push(exprs);
    }
}

/// What a StorageClass update may not change.
pub fn storage_class_update(new: &Value, old: &Value, errs: &mut Errs) {
    let params = |v: &Value| object(v, "parameters").filter(|m| !m.is_empty()).cloned();
    if params(new) != params(old) {
        errs.forbidden("parameters", "updates to parameters are forbidden.");
    }
    if string(new, "provisioner") != string(old, "provisioner") {
        errs.forbidden("provisioner", "updates to provisioner are forbidden.");
    }
    let reclaim = |v: &Value| str_of(v, "reclaimPolicy").unwrap_or("Delete").to_string();
    if reclaim(new) != reclaim(old) {
        errs.forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden.");
    }
    let mode = |v: &Value| Value::from(str_of(v, "volumeBindingMode").unwrap_or("Immediate"));
    errs.immutable("volumeBindingMode", Some(&mode(new)), Some(&mode(old)));
}

/// Volume sources of a PersistentVolume, in upstream's order.
const PV_SOURCES: [&str; 22] = [
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// A PersistentVolume.
pub fn persistent_volume(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let modes = list(spec, "accessModes");
    if modes.is_empty() {
        errs.required("spec.accessModes", "");
    }
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&m) {
            errs.not_supported("spec.accessModes", &Value::from(m), &ACCESS_MODES);
        }
    }
    let once_pod = modes.iter().any(|m| m.as_str() == Some("ReadWriteOncePod"));
    if once_pod && modes.len() > 1 {
        errs.forbidden(
            "spec.accessModes",
            "may not use ReadWriteOncePod with other access modes",
        );
    }
    capacity(spec, errs);
    let reclaim = string(spec, "persistentVolumeReclaimPolicy");
    const RECLAIM: [&str; 3] = ["Delete", "Recycle", "Retain"];
    if !reclaim.is_empty() && !RECLAIM.contains(&reclaim) {
        errs.not_supported(
            "spec.persistentVolumeReclaimPolicy",
            &Value::from(reclaim),
            &RECLAIM,
        );
    }
    let affinity = present(spec, "nodeAffinity");
    if let Some(na) = affinity {
        match present(na, "required") {
            Some(req) => pod::node_selector(req, "spec.nodeAffinity.required", errs),
            None => errs.required(
                "spec.nodeAffinity.required",
                "must specify required node constraints",
            ),
        }
    }
    volume_sources(spec, affinity.is_some(), errs);
    let host_root = spec
        .pointer("/hostPath/path")
        .and_then(Value::as_str)
        .is_some_and(|p| p.trim_end_matches('/').is_empty() && !p.is_empty());
    if host_root && reclaim == "Recycle" {
        errs.forbidden(
            "spec.persistentVolumeReclaimPolicy",
            "may not be 'recycle' for a hostPath mount of '/'",
        );
    }
    let class = string(spec, "storageClassName");
    if !class.is_empty() {
        errs.invalid_each("spec.storageClassName", class, names::dns1123_subdomain(class));
    }
    if let Some(mode) = str_of(spec, "volumeMode")
        && mode != "Block"
        && mode != "Filesystem"
    {
        errs.not_supported("spec.volumeMode", &Value::from(mode), &["Block", "Filesystem"]);
    }
}

/// Exactly one volume source, with upstream's path quirks: a GCE disk is checked under
/// `persistentDisk`, a second CephFS source is reported as `cephFS`, and a flexVolume always
/// counts without being refused.
fn volume_sources(spec: &Value, has_affinity: bool, errs: &mut Errs) {
    let mut found = 0;
    for source in PV_SOURCES {
        let Some(src) = present(spec, source) else {
            continue;
        };
        if found > 0 && source != "flexVolume" {
            let shown = if source == "cephfs" { "cephFS" } else { source };
            errs.forbidden(child("spec", shown), "may not specify more than 1 volume type");
            continue;
        }
        found += 1;
        let checked = if source == "gcePersistentDisk" {
            "persistentDisk"
        } else {
            source
        };
        volume_source(source, src, &child("spec", checked), errs);
        if source == "local" && !has_affinity {
            errs.required("spec.nodeAffinity", "Local volume requires node affinity");
        }
    }
    if found == 0 {
        errs.required("spec", "must specify a volume type");
    }
}

/// What a PersistentVolume update may not change: its volume source, volume mode and a node
/// affinity once set (upstream's message also carries a diff of the sources, left out here).
pub fn persistent_volume_update(new: &Value, old: &Value, errs: &mut Errs) {
    let (new, old) = (
        new.get("spec").unwrap_or(&Value::Null),
        old.get("spec").unwrap_or(&Value::Null),
    );
    if PV_SOURCES.iter().any(|s| present(new, s) != present(old, s)) {
        errs.forbidden(
            "spec.persistentvolumesource",
            "spec.persistentvolumesource is immutable after creation",
        );
    }
    errs.immutable(
        "volumeMode",
        present(new, "volumeMode"),
        present(old, "volumeMode"),
    );
    if let Some(old_affinity) = present(old, "nodeAffinity") {
        let new_affinity = present(new, "nodeAffinity").unwrap_or(&Value::Null);
        if !same_but_ga_labels(new_affinity, old_affinity) {
            errs.invalid(
                "nodeAffinity",
                new_affinity,
                "field is immutable, except for updating from beta label to GA",
            );
        }
    }
}

/// Node label keys that went GA under a new name.
const BETA_TO_GA: [(&str, &str); 5] = [
    (
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/zone",
    ),
    (
        "failure-domain.beta.kubernetes.io/region",
        "topology.kubernetes.io/region",
    ),
    ("beta.kubernetes.io/os", "kubernetes.io/os"),
    ("beta.kubernetes.io/arch", "kubernetes.io/arch"),
    (
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
    ),
];

/// Equal, except that a requirement `key` may have moved from a beta label to its GA name.
fn same_but_ga_labels(new: &Value, old: &Value) -> bool {
    match (new, old) {
        (Value::Object(n), Value::Object(o)) => {
            n.len() == o.len()
                && n.iter().all(|(k, nv)| {
                    let Some(ov) = o.get(k) else {
                        return false;
                    };
                    let renamed = k == "key"
                        && BETA_TO_GA
                            .iter()
                            .any(|(beta, ga)| ov.as_str() == Some(*beta) && nv.as_str() == Some(*ga));
                    renamed || same_but_ga_labels(nv, ov)
                })
        }
        (Value::Array(n), Value::Array(o)) => {
            n.len() == o.len() && n.iter().zip(o).all(|(a, b)| same_but_ga_labels(a, b))
        }
        _ => new == old,
    }
}

/// `spec.capacity`: exactly `storage`, a positive quantity.
fn capacity(spec: &Value, errs: &mut Errs) {
    let cap = object(spec, "capacity");
    let empty = cap.is_none_or(|c| c.is_empty());
    if empty {
        errs.required("spec.capacity", "");
    }
    if cap.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        errs.not_supported(
            "spec.capacity",
            spec.get("capacity").unwrap_or(&Value::Null),
            &["storage"],
        );
    }
    for (name, q) in cap.into_iter().flatten() {
        let p = key("spec.capacity", name);
        let shown = quantity::display(q);
        match Quantity::from_json(q) {
            None => errs.invalid_str(&p, &shown, quantity::FORMAT_ERROR),
            Some(v) if v.is_negative() || v == Quantity::parse("0").unwrap_or(v) => {
                errs.invalid_str(&p, &shown, "must be greater than zero");
            }
            Some(_) => {}
        }
    }
}

fn volume_source(kind: &str, src: &Value, path: &str, errs: &mut Errs) {
    let required: &[&str] = match kind {
        "hostPath" | "local" => &["path"],
        "nfs" => &["server", "path"],
        "csi" => &["driver", "volumeHandle"],
        "iscsi" => &["targetPortal", "iqn"],
        "glusterfs" => &["endpoints", "path"],
        "cephfs" => &["monitors"],
        "rbd" => &["monitors", "image"],
        "gcePersistentDisk" => &["pdName"],
        "awsElasticBlockStore" | "cinder" | "portworxVolume" => &["volumeID"],
        "vsphereVolume" => &["volumePath"],
        "azureDisk" => &["diskName", "diskURI"],
        _ => &[],
    };
    for field in required {
        let missing = match src.get(*field) {
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Null) | None => true,
            Some(_) => false,
        };
        if missing {
            errs.required(child(path, field), "");
        }
    }
    if kind == "nfs" {
        let p = string(src, "path");
        if !p.is_empty() && !p.starts_with('/') {
            errs.invalid_str(child(path, "path"), p, "must be an absolute path");
        }
    }
}

#[cfg(test)]
mod tests;
