//! The binder's pure decisions (upstream's `syncClaim` / `syncVolume`): what a claim or a
//! volume needs given the cluster as the caches see it, and the objects a binding writes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use api_util::volumes::{self as vol, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER};
use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus,
};
use k8s_openapi::api::storage::v1::StorageClass;

/// Claim and volume phases.
pub mod phase {
    /// A claim not bound yet.
    pub const PENDING: &str = "Pending";
    /// A claim or volume bound to its counterpart.
    pub const BOUND: &str = "Bound";
    /// A bound claim whose volume is gone.
    pub const LOST: &str = "Lost";
    /// A volume free for claims.
    pub const AVAILABLE: &str = "Available";
    /// A volume whose claim was deleted.
    pub const RELEASED: &str = "Released";
    /// A volume whose reclamation failed.
    pub const FAILED: &str = "Failed";
}

/// An event the decision asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// Upstream's reason.
    pub reason: &'static str,
    /// Upstream's message.
    pub message: String,
}

impl Note {
    fn normal(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            warning: false,
            reason,
            message: message.into(),
        }
    }

    fn warning(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            warning: true,
            reason,
            message: message.into(),
        }
    }
}

/// What a claim needs.
#[derive(Clone, Debug)]
pub enum ClaimAction {
    /// Bind it to this volume (or finish / confirm the binding).
    Bind(Arc<PersistentVolume>),
    /// Leave it `Pending` (with an event, maybe).
    Pending(Option<Note>),
    /// Mark it `Lost` with the event.
    Lost(Note),
    /// Ask the class's provisioner for a volume (the claim stays `Pending`).
    Provision(Arc<StorageClass>),
    /// Report that the class named by the claim does not exist (the claim stays `Pending`).
    ClassMissing(String),
}

fn annotated(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str) -> bool {
    meta.annotations.as_ref().is_some_and(|a| a.contains_key(key))
}

/// The claim's `spec.volumeName` (empty when unset).
pub fn volume_name(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or_default()
}

/// A volume's phase (empty when unset).
pub fn volume_phase(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// A claim's phase (empty when unset).
pub fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// The volume's claim reference.
pub fn claim_ref(pv: &PersistentVolume) -> Option<&ObjectReference> {
    pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref())
}

/// Decides what a claim needs. `volume` looks volumes up by name, `volumes` are all of them and
/// `classes` looks StorageClasses up by name.
pub fn decide_claim(
    claim: &PersistentVolumeClaim,
    volume: impl Fn(&str) -> Option<Arc<PersistentVolume>>,
    volumes: &[Arc<PersistentVolume>],
    classes: impl Fn(&str) -> Option<Arc<StorageClass>>,
) -> ClaimAction {
    if annotated(&claim.metadata, ANN_BIND_COMPLETED) {
        return decide_bound_claim(claim, volume);
    }
    let wanted = volume_name(claim);
    if !wanted.is_empty() {
        // Pre-bound by the user to a volume.
        let Some(pv) = volume(wanted) else {
            return ClaimAction::Pending(None);
        };
        if claim_ref(&pv).is_none() {
            return match vol::check_volume_satisfies_claim(&pv, claim) {
                Ok(()) => ClaimAction::Bind(pv),
                Err(why) => ClaimAction::Pending(Some(Note::warning(
                    "VolumeMismatch",
                    format!("Cannot bind to requested volume {wanted:?}: {why}"),
                ))),
            };
        }
        if vol::is_bound_to_claim(&pv, claim) {
            return ClaimAction::Bind(pv);
        }
        return ClaimAction::Pending(Some(Note::normal(
            "FailedBinding",
            format!("volume {wanted:?} already bound to a different claim."),
        )));
    }
    let class_name = vol::claim_class(claim);
    let class = (!class_name.is_empty()).then(|| classes(&class_name)).flatten();
    let delay = vol::is_delay_binding(class.as_deref());
    let candidates = volumes.iter().map(|v| &**v);
    if let Some(pv) = vol::find_matching_volume(claim, candidates, None, delay, &HashSet::new()) {
        let name = pv.metadata.name.as_deref().unwrap_or_default();
        if let Some(pv) = volumes.iter().find(|v| v.metadata.name.as_deref() == Some(name)) {
            return ClaimAction::Bind(pv.clone());
        }
    }
    let selected = annotated(&claim.metadata, vol::ANN_SELECTED_NODE);
    if delay && !selected {
        return ClaimAction::Pending(Some(Note::normal(
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        )));
    }
    if class_name.is_empty() {
        return ClaimAction::Pending(Some(Note::normal(
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
        )));
    }
    match class {
        Some(class) => ClaimAction::Provision(class),
        None => ClaimAction::ClassMissing(class_name),
    }
}

fn decide_bound_claim(
    claim: &PersistentVolumeClaim,
    volume: impl Fn(&str) -> Option<Arc<PersistentVolume>>,
) -> ClaimAction {
    let lost = || {
        ClaimAction::Lost(Note::warning(
            "ClaimLost",
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
        ))
    };
    let name = volume_name(claim);
    if name.is_empty() {
        return lost();
    }
    let Some(pv) = volume(name) else {
        return lost();
    };
    match claim_ref(&pv) {
        None => ClaimAction::Bind(pv),
        Some(r)
            if r.uid.as_deref() == claim.metadata.uid.as_deref() && vol::is_bound_to_claim(&pv, claim) =>
        {
            ClaimAction::Bind(pv)
        }
        Some(_) => ClaimAction::Lost(Note::warning(
            "ClaimMisbound",
            "Two claims are bound to the same volume, this one is bound incorrectly",
        )),
    }
}

/// What a volume needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeAction {
    /// Nothing.
    Nothing,
    /// Set this phase.
    Phase(&'static str),
    /// The binding is the claim's to finish: sync it.
    SyncClaim(String),
    /// Its claim is gone: mark it `Released`, then reclaim it.
    Release,
    /// Released: apply the reclaim policy.
    Reclaim,
    /// The controller's binding to a claim bound elsewhere: free it.
    Unbind,
}

/// Decides what a volume needs; `claim` is its `claimRef`'s claim if that still exists (same
/// uid).
pub fn decide_volume(pv: &PersistentVolume, claim: Option<&PersistentVolumeClaim>) -> VolumeAction {
    let phase = volume_phase(pv);
    let available = || {
        if phase == phase::AVAILABLE {
            VolumeAction::Nothing
        } else {
            VolumeAction::Phase(phase::AVAILABLE)
        }
    };
    let Some(r) = claim_ref(pv) else {
        return available();
    };
    if r.uid.as_deref().unwrap_or_default().is_empty() {
        // Pre-bound by a user to a claim that may not exist yet.
        return available();
    }
    let released = || match phase {
        phase::RELEASED => VolumeAction::Reclaim,
        phase::FAILED => VolumeAction::Nothing,
        _ => VolumeAction::Release,
    };
    let Some(claim) = claim else {
        return released();
    };
    let name = pv.metadata.name.as_deref().unwrap_or_default();
    let bound_to = volume_name(claim);
    if bound_to.is_empty() {
        return VolumeAction::SyncClaim(claim_key(claim));
    }
    if bound_to == name {
        return if phase == phase::BOUND {
            VolumeAction::Nothing
        } else {
            VolumeAction::Phase(phase::BOUND)
        };
    }
    let reclaim_delete = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        == Some("Delete");
    if annotated(&pv.metadata, vol::ANN_PROVISIONED_BY) && reclaim_delete {
        released()
    } else if annotated(&pv.metadata, ANN_BOUND_BY_CONTROLLER) {
        VolumeAction::Unbind
    } else {
        VolumeAction::Nothing
    }
}

/// `namespace/name` of a claim.
pub fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A reference to the claim, as a volume's `claimRef`.
pub fn reference(claim: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: claim.metadata.namespace.clone(),
        name: claim.metadata.name.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

fn set_annotation(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str) {
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), "yes".into());
}

/// The volume bound to the claim (`claimRef`, `bound-by-controller` when the controller
/// chose it), if that changes it.
pub fn volume_bound_to(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> Option<PersistentVolume> {
    let mut out = pv.clone();
    let mut dirty = false;
    let by_controller = !vol::is_bound_to_claim(pv, claim);
    let same = claim_ref(pv).is_some_and(|r| {
        r.name == claim.metadata.name
            && r.namespace == claim.metadata.namespace
            && r.uid == claim.metadata.uid
    });
    if !same {
        out.spec.get_or_insert_default().claim_ref = Some(reference(claim));
        dirty = true;
    }
    if by_controller && !annotated(&pv.metadata, ANN_BOUND_BY_CONTROLLER) {
        set_annotation(&mut out.metadata, ANN_BOUND_BY_CONTROLLER);
        dirty = true;
    }
    dirty.then_some(out)
}

/// The claim bound to the volume (`volumeName`, `bind-completed`, `bound-by-controller` when
/// the controller chose the volume), if that changes it.
pub fn claim_bound_to(claim: &PersistentVolumeClaim, pv: &PersistentVolume) -> Option<PersistentVolumeClaim> {
    let mut out = claim.clone();
    let mut dirty = false;
    let name = pv.metadata.name.clone().unwrap_or_default();
    if volume_name(claim) != name {
        out.spec.get_or_insert_default().volume_name = Some(name);
        set_annotation(&mut out.metadata, ANN_BOUND_BY_CONTROLLER);
        dirty = true;
    }
    if !annotated(&claim.metadata, ANN_BIND_COMPLETED) {
        set_annotation(&mut out.metadata, ANN_BIND_COMPLETED);
        dirty = true;
    }
    dirty.then_some(out)
}

/// A bound claim's status: phase `Bound`, the volume's access modes and capacity (other fields
/// kept).
pub fn bound_claim_status(
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
) -> PersistentVolumeClaimStatus {
    let mut status = claim.status.clone().unwrap_or_default();
    status.phase = Some(phase::BOUND.into());
    let spec = pv.spec.clone().unwrap_or_default();
    status.access_modes = spec.access_modes;
    status.capacity = spec.capacity;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pv(name: &str, extra: Value) -> Arc<PersistentVolume> {
        let mut v = json!({
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": "/tmp/x"}, "persistentVolumeReclaimPolicy": "Retain"},
            "status": {"phase": "Available"},
        });
        merge(&mut v, extra);
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn pvc(extra: Value) -> PersistentVolumeClaim {
        let mut v = json!({
            "metadata": {"name": "c", "namespace": "ns", "uid": "u1"},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}, "accessModes": ["ReadWriteOnce"]},
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn class(name: &str, provisioner: &str, mode: &str) -> Arc<StorageClass> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name}, "provisioner": provisioner,
                "volumeBindingMode": mode}))
            .unwrap(),
        )
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

    fn decide(
        claim: &PersistentVolumeClaim,
        pvs: &[Arc<PersistentVolume>],
        classes: &[Arc<StorageClass>],
    ) -> ClaimAction {
        decide_claim(
            claim,
            |n| {
                pvs.iter()
                    .find(|p| p.metadata.name.as_deref() == Some(n))
                    .cloned()
            },
            pvs,
            |n| {
                classes
                    .iter()
                    .find(|c| c.metadata.name.as_deref() == Some(n))
                    .cloned()
            },
        )
    }

    fn note(a: &ClaimAction) -> Option<(&'static str, &str)> {
        match a {
            ClaimAction::Pending(Some(n)) | ClaimAction::Lost(n) => Some((n.reason, n.message.as_str())),
            _ => None,
        }
    }

    #[test]
    fn an_unbound_claim_binds_a_matching_volume_or_waits() {
        let pvs = [pv("v", json!({}))];
        let claim = pvc(json!({"spec": {"storageClassName": ""}}));
        assert!(
            matches!(decide(&claim, &pvs, &[]), ClaimAction::Bind(p) if p.metadata.name.as_deref() == Some("v"))
        );
        let big =
            pvc(json!({"spec": {"storageClassName": "", "resources": {"requests": {"storage": "2Gi"}}}}));
        assert_eq!(
            note(&decide(&big, &pvs, &[])),
            Some((
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set"
            ))
        );
    }

    #[test]
    fn classes_decide_between_waiting_provisioning_and_reporting() {
        let wffc = class("local-path", vol::LOCAL_PATH_PROVISIONER, "WaitForFirstConsumer");
        let claim = pvc(json!({"spec": {"storageClassName": "local-path"}}));
        assert_eq!(
            note(&decide(&claim, &[], std::slice::from_ref(&wffc))),
            Some((
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding"
            ))
        );
        // A matching static volume waits for the consumer too.
        let static_pv = pv("s", json!({"spec": {"storageClassName": "local-path"}}));
        assert!(matches!(
            decide(
                &claim,
                std::slice::from_ref(&static_pv),
                std::slice::from_ref(&wffc)
            ),
            ClaimAction::Pending(_)
        ));
        let selected = pvc(
            json!({"metadata": {"annotations": {vol::ANN_SELECTED_NODE: "n1"}},
            "spec": {"storageClassName": "local-path"}}),
        );
        assert!(matches!(
            decide(&selected, &[], &[wffc]),
            ClaimAction::Provision(_)
        ));
        let immediate = class("fast", "example.com/csi", "Immediate");
        let fast = pvc(json!({"spec": {"storageClassName": "fast"}}));
        assert!(
            matches!(decide(&fast, &[], &[immediate]), ClaimAction::Provision(c) if c.provisioner == "example.com/csi")
        );
        assert!(matches!(decide(&fast, &[], &[]), ClaimAction::ClassMissing(n) if n == "fast"));
    }

    #[test]
    fn pre_bound_claims_take_only_their_volume() {
        let claim = pvc(json!({"spec": {"volumeName": "v", "storageClassName": ""}}));
        assert!(matches!(decide(&claim, &[], &[]), ClaimAction::Pending(None)));
        assert!(matches!(
            decide(&claim, &[pv("v", json!({}))], &[]),
            ClaimAction::Bind(_)
        ));
        let small = pv("v", json!({"spec": {"capacity": {"storage": "1Mi"}}}));
        assert_eq!(
            note(&decide(&claim, &[small], &[])).map(|n| n.0),
            Some("VolumeMismatch")
        );
        let taken = pv(
            "v",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "other", "uid": "u2"}}}),
        );
        assert_eq!(
            note(&decide(&claim, &[taken], &[])),
            Some((
                "FailedBinding",
                "volume \"v\" already bound to a different claim."
            ))
        );
    }

    #[test]
    fn a_bound_claim_is_lost_without_its_volume() {
        let claim = pvc(json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}},
            "spec": {"volumeName": "v"}}));
        assert_eq!(note(&decide(&claim, &[], &[])).map(|n| n.0), Some("ClaimLost"));
        let mine = pv(
            "v",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "u1"}}}),
        );
        assert!(matches!(decide(&claim, &[mine], &[]), ClaimAction::Bind(_)));
        let other = pv(
            "v",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "old"}}}),
        );
        assert_eq!(
            note(&decide(&claim, &[other], &[])).map(|n| n.0),
            Some("ClaimMisbound")
        );
    }

    #[test]
    fn volume_phases_follow_their_claims() {
        let free = pv("v", json!({"status": {"phase": "Pending"}}));
        assert_eq!(decide_volume(&free, None), VolumeAction::Phase(phase::AVAILABLE));
        let bound = pv(
            "v",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "u1"}},
            "status": {"phase": "Bound"}}),
        );
        let claim = pvc(json!({"spec": {"volumeName": "v"}}));
        assert_eq!(decide_volume(&bound, Some(&claim)), VolumeAction::Nothing);
        assert_eq!(decide_volume(&bound, None), VolumeAction::Release);
        let released = pv(
            "v",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "u1"}},
            "status": {"phase": "Released"}}),
        );
        assert_eq!(decide_volume(&released, None), VolumeAction::Reclaim);
        let unbound_claim = pvc(json!({}));
        assert_eq!(
            decide_volume(&bound, Some(&unbound_claim)),
            VolumeAction::SyncClaim("ns/c".into())
        );
        let elsewhere = pvc(json!({"spec": {"volumeName": "w"}}));
        assert_eq!(decide_volume(&bound, Some(&elsewhere)), VolumeAction::Nothing);
        let by_controller = pv(
            "v",
            json!({"metadata": {"annotations": {ANN_BOUND_BY_CONTROLLER: "yes"}},
            "spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "u1"}}}),
        );
        assert_eq!(
            decide_volume(&by_controller, Some(&elsewhere)),
            VolumeAction::Unbind
        );
    }

    #[test]
    fn binding_writes_both_sides() {
        let claim = pvc(json!({}));
        let v = pv("v", json!({}));
        let new_pv = volume_bound_to(&v, &claim).unwrap();
        let r = claim_ref(&new_pv).unwrap();
        assert_eq!((r.name.as_deref(), r.uid.as_deref()), (Some("c"), Some("u1")));
        assert!(annotated(&new_pv.metadata, ANN_BOUND_BY_CONTROLLER));
        assert!(volume_bound_to(&new_pv, &claim).is_none(), "idempotent");
        let new_claim = claim_bound_to(&claim, &v).unwrap();
        assert_eq!(volume_name(&new_claim), "v");
        assert!(annotated(&new_claim.metadata, ANN_BIND_COMPLETED));
        assert!(annotated(&new_claim.metadata, ANN_BOUND_BY_CONTROLLER));
        assert!(claim_bound_to(&new_claim, &v).is_none(), "idempotent");
        // A user's pre-binding is not marked as the controller's.
        let user = pvc(json!({"spec": {"volumeName": "v"}}));
        let done = claim_bound_to(&user, &v).unwrap();
        assert!(!annotated(&done.metadata, ANN_BOUND_BY_CONTROLLER));
        let status = bound_claim_status(&claim, &v);
        assert_eq!(status.phase.as_deref(), Some("Bound"));
        assert_eq!(status.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
        assert_eq!(status.capacity.unwrap()["storage"].0, "1Gi");
    }
}
