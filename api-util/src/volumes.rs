//! Matching PersistentVolumes to PersistentVolumeClaims as upstream's PV controller and the
//! scheduler's VolumeBinding plugin both do: storage class (`""` included), access modes,
//! volume mode, label selector, capacity (the smallest PV that fits), pre-binding either way
//! (`claim.spec.volumeName`, `pv.spec.claimRef`) and PV node affinity.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim,
};
use k8s_openapi::api::storage::v1::StorageClass;

use crate::labels::LabelSelector;
use crate::quantity::Quantity;

/// Set by the scheduler on a WaitForFirstConsumer claim: the node chosen for its first pod.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// On a claim whose binding the PV controller finished.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On a claim or volume whose binding the controller (not a user) set.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On a dynamically provisioned volume: the provisioner that made it.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// On a claim: the provisioner expected to provision it.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The beta spelling of [`ANN_STORAGE_PROVISIONER`], still set by upstream.
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// The beta annotation naming a claim's or volume's class.
pub const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// On the StorageClass claims without a class get.
pub const ANN_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// The provisioner of classes that cannot provision (static local volumes).
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
/// Keelson's built-in local-path provisioner.
pub const LOCAL_PATH_PROVISIONER: &str = "keelson.io/local-path";
/// The node label PV node affinity usually names.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// A claim's class: `spec.storageClassName`, else the beta annotation, else `""`.
pub fn claim_class(claim: &PersistentVolumeClaim) -> String {
    if let Some(c) = claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_BETA_STORAGE_CLASS))
    {
        return c.clone();
    }
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

/// A volume's class: the beta annotation, else `spec.storageClassName`, else `""`.
pub fn volume_class(pv: &PersistentVolume) -> String {
    if let Some(c) = pv
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_BETA_STORAGE_CLASS))
    {
        return c.clone();
    }
    pv.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

/// True when the volume's `claimRef` names the claim (and its uid, when the ref has one).
pub fn is_bound_to_claim(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.name.as_deref() == claim.metadata.name.as_deref()
        && r.namespace.as_deref().unwrap_or_default()
            == claim.metadata.namespace.as_deref().unwrap_or_default()
        && r.uid
            .as_deref()
            .filter(|u| !u.is_empty())
            .is_none_or(|u| Some(u) == claim.metadata.uid.as_deref())
}

/// The storage a claim requests.
pub fn claim_request(claim: &PersistentVolumeClaim) -> Option<Quantity> {
    let q = claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    Quantity::parse(&q.0)
}

/// A volume's storage capacity.
pub fn volume_capacity(pv: &PersistentVolume) -> Option<Quantity> {
    let q = pv.spec.as_ref()?.capacity.as_ref()?.get("storage")?;
    Quantity::parse(&q.0)
}

fn claim_mode(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem")
}

fn volume_mode(pv: &PersistentVolume) -> &str {
    pv.spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem")
}

fn claim_access_modes(claim: &PersistentVolumeClaim) -> Vec<String> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default()
}

fn volume_access_modes(pv: &PersistentVolume) -> Vec<String> {
    pv.spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default()
}

/// True when the volume offers every access mode the claim asks for.
pub fn access_modes_satisfied(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let offered = volume_access_modes(pv);
    claim_access_modes(claim).iter().all(|m| offered.contains(m))
}

/// Why a volume cannot serve a claim that names it (upstream's `checkVolumeSatisfyClaim`).
pub fn check_volume_satisfies_claim(
    pv: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<(), String> {
    let requested = claim_request(claim).unwrap_or_default();
    let capacity = volume_capacity(pv).unwrap_or_default();
    if capacity < requested {
        return Err("requested PV is too small".into());
    }
    if volume_class(pv) != claim_class(claim) {
        return Err("storageClassName does not match".into());
    }
    if claim_mode(claim) != volume_mode(pv) {
        return Err("incompatible volumeMode".into());
    }
    if !access_modes_satisfied(pv, claim) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}

/// The node a volume's node affinity is checked against.
#[derive(Clone, Copy, Debug)]
pub struct NodeRef<'a> {
    /// `metadata.name` (for `matchFields`).
    pub name: &'a str,
    /// The node's labels.
    pub labels: &'a BTreeMap<String, String>,
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(v), [bound]) = (value.and_then(|v| v.parse::<i64>().ok()), values) else {
                return false;
            };
            let Ok(bound) = bound.parse::<i64>() else {
                return false;
            };
            if op == "Gt" { v > bound } else { v < bound }
        }
        _ => false,
    }
}

/// True when a node selector term (its expressions and `metadata.name` fields) selects the node;
/// an empty term selects nothing, as upstream.
pub fn term_matches(term: &NodeSelectorTerm, node: NodeRef<'_>) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(node.name)))
}

/// True when the volume's required node affinity (if any) allows the node.
pub fn node_affinity_matches(pv: &PersistentVolume, node: NodeRef<'_>) -> bool {
    match pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    {
        None => true,
        Some(sel) => sel.node_selector_terms.iter().any(|t| term_matches(t, node)),
    }
}

/// True when claims of this class wait for their first pod (`WaitForFirstConsumer`).
pub fn is_delay_binding(class: Option<&StorageClass>) -> bool {
    class.and_then(|c| c.volume_binding_mode.as_deref()) == Some("WaitForFirstConsumer")
}

/// True when the class's allowed topologies (if any) admit the node.
pub fn class_allows_node(class: &StorageClass, node: NodeRef<'_>) -> bool {
    let Some(topologies) = class.allowed_topologies.as_ref().filter(|t| !t.is_empty()) else {
        return true;
    };
    topologies.iter().any(|t| {
        t.match_label_expressions.iter().flatten().all(|e| {
            node.labels
                .get(&e.key)
                .is_some_and(|v| e.values.iter().any(|x| x == v))
        })
    })
}

fn phase(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// The volume for a claim, as upstream's `findMatchingVolume`: a volume pre-bound to the claim
/// wins (when its node affinity allows `node`); otherwise (not while binding is delayed without a
/// node) the smallest Available, unclaimed volume of the claim's class and volume mode that
/// offers its access modes (fewest modes first), matches its selector and fits its request.
/// Volumes being deleted or named in `excluded` are skipped.
pub fn find_matching_volume<'a>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    node: Option<NodeRef<'_>>,
    delay_binding: bool,
    excluded: &HashSet<String>,
) -> Option<&'a PersistentVolume> {
    let requested = claim_request(claim).unwrap_or_default();
    let class = claim_class(claim);
    let selector = match claim.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(s) => match LabelSelector::from_label_selector(s) {
            Ok(s) => Some(s),
            // An invalid selector matches nothing.
            Err(_) => return None,
        },
        None => None,
    };
    let mut best: Option<(usize, Quantity, &'a PersistentVolume)> = None;
    for pv in volumes {
        let name = pv.metadata.name.as_deref().unwrap_or_default();
        if excluded.contains(name) || pv.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if claim_mode(claim) != volume_mode(pv) {
            continue;
        }
        let claimed = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_some();
        let node_ok = node.is_none_or(|n| node_affinity_matches(pv, n));
        if is_bound_to_claim(pv, claim) {
            if node_ok {
                return Some(pv);
            }
            continue;
        }
        if claimed || (node.is_none() && delay_binding) {
            continue;
        }
        if phase(pv) != "Available" || !node_ok {
            continue;
        }
        if volume_class(pv) != class || !access_modes_satisfied(pv, claim) {
            continue;
        }
        let labels = pv.metadata.labels.clone().unwrap_or_default();
        if selector.as_ref().is_some_and(|s| !s.matches(&labels)) {
            continue;
        }
        let capacity = volume_capacity(pv).unwrap_or_default();
        if capacity < requested {
            continue;
        }
        let modes = volume_access_modes(pv).len();
        if best.as_ref().is_none_or(|(m, q, _)| (modes, capacity) < (*m, *q)) {
            best = Some((modes, capacity, pv));
        }
    }
    best.map(|(_, _, pv)| pv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pv(name: &str, size: &str, extra: Value) -> PersistentVolume {
        let mut v = json!({
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": "/tmp/x"}},
            "status": {"phase": "Available"},
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn pvc(name: &str, size: &str, extra: Value) -> PersistentVolumeClaim {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"resources": {"requests": {"storage": size}}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": ""},
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
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

    fn pick<'a>(claim: &PersistentVolumeClaim, pvs: &'a [PersistentVolume]) -> Option<&'a str> {
        find_matching_volume(claim, pvs, None, false, &HashSet::new())
            .and_then(|p| p.metadata.name.as_deref())
    }

    #[test]
    fn the_smallest_volume_that_fits_wins() {
        let pvs = [
            pv("big", "10Gi", json!({})),
            pv("small", "1Gi", json!({})),
            pv("fits", "2Gi", json!({})),
        ];
        assert_eq!(pick(&pvc("c", "1500Mi", json!({})), &pvs), Some("fits"));
        assert_eq!(pick(&pvc("c", "1Gi", json!({})), &pvs), Some("small"));
        assert_eq!(pick(&pvc("c", "11Gi", json!({})), &pvs), None);
    }

    #[test]
    fn class_modes_volume_mode_phase_and_selector_must_match() {
        let pvs = [
            pv("fast", "1Gi", json!({"spec": {"storageClassName": "fast"}})),
            pv(
                "rwx",
                "5Gi",
                json!({"spec": {"accessModes": ["ReadWriteOnce", "ReadWriteMany"]}}),
            ),
            pv("block", "1Gi", json!({"spec": {"volumeMode": "Block"}})),
            pv("released", "1Gi", json!({"status": {"phase": "Released"}})),
            pv(
                "labelled",
                "3Gi",
                json!({"metadata": {"labels": {"tier": "gold"}}}),
            ),
        ];
        // "" only matches volumes without a class.
        assert_eq!(pick(&pvc("c", "1Gi", json!({})), &pvs), Some("labelled"));
        assert_eq!(
            pick(
                &pvc("c", "1Gi", json!({"spec": {"storageClassName": "fast"}})),
                &pvs
            ),
            Some("fast")
        );
        assert_eq!(
            pick(
                &pvc("c", "1Gi", json!({"spec": {"accessModes": ["ReadWriteMany"]}})),
                &pvs
            ),
            Some("rwx")
        );
        assert_eq!(
            pick(&pvc("c", "1Gi", json!({"spec": {"volumeMode": "Block"}})), &pvs),
            Some("block")
        );
        let selecting = pvc(
            "c",
            "1Gi",
            json!({"spec": {"selector": {"matchLabels": {"tier": "gold"}}}}),
        );
        assert_eq!(pick(&selecting, &pvs), Some("labelled"));
        let none = pvc(
            "c",
            "1Gi",
            json!({"spec": {"selector": {"matchLabels": {"tier": "silver"}}}}),
        );
        assert_eq!(pick(&none, &pvs), None);
    }

    #[test]
    fn fewer_access_modes_are_preferred_over_a_smaller_size() {
        let pvs = [
            pv(
                "many",
                "1Gi",
                json!({"spec": {"accessModes": ["ReadWriteOnce", "ReadOnlyMany"]}}),
            ),
            pv("once", "5Gi", json!({})),
        ];
        assert_eq!(pick(&pvc("c", "1Gi", json!({})), &pvs), Some("once"));
    }

    #[test]
    fn pre_bound_volumes_are_reserved_for_their_claim() {
        let pvs = [
            pv(
                "mine",
                "10Gi",
                json!({"spec": {"claimRef": {"namespace": "ns", "name": "c"}}}),
            ),
            pv(
                "other",
                "1Gi",
                json!({"spec": {"claimRef": {"namespace": "ns", "name": "d"}}}),
            ),
        ];
        assert_eq!(pick(&pvc("c", "1Gi", json!({})), &pvs), Some("mine"));
        assert_eq!(pick(&pvc("e", "1Gi", json!({})), &pvs), None);
        // A ref with another uid is a previous claim of the same name.
        let stale = [pv(
            "old",
            "1Gi",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "gone"}}}),
        )];
        assert_eq!(pick(&pvc("c", "1Gi", json!({})), &stale), None);
        // Delayed binding without a node only takes pre-bound volumes.
        let claim = pvc("c", "1Gi", json!({}));
        let free = [pv("free", "1Gi", json!({}))];
        assert!(find_matching_volume(&claim, &free, None, true, &HashSet::new()).is_none());
        assert!(find_matching_volume(&claim, &pvs, None, true, &HashSet::new()).is_some());
    }

    #[test]
    fn node_affinity_restricts_the_nodes() {
        let local = pv(
            "local",
            "1Gi",
            json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": ["a"]}]}
            ]}}}}),
        );
        let a: BTreeMap<String, String> = [(HOSTNAME_LABEL.to_string(), "a".to_string())].into();
        let b: BTreeMap<String, String> = [(HOSTNAME_LABEL.to_string(), "b".to_string())].into();
        assert!(node_affinity_matches(
            &local,
            NodeRef {
                name: "a",
                labels: &a
            }
        ));
        assert!(!node_affinity_matches(
            &local,
            NodeRef {
                name: "b",
                labels: &b
            }
        ));
        let claim = pvc("c", "1Gi", json!({}));
        let pvs = [local];
        let on = |n| find_matching_volume(&claim, &pvs, Some(n), true, &HashSet::new()).is_some();
        assert!(on(NodeRef {
            name: "a",
            labels: &a
        }));
        assert!(!on(NodeRef {
            name: "b",
            labels: &b
        }));
        let excluded: HashSet<String> = ["local".to_string()].into();
        assert!(
            find_matching_volume(
                &claim,
                &pvs,
                Some(NodeRef {
                    name: "a",
                    labels: &a
                }),
                true,
                &excluded
            )
            .is_none()
        );
    }

    #[test]
    fn a_named_volume_is_checked_against_the_claim() {
        let claim = pvc("c", "2Gi", json!({}));
        assert_eq!(
            check_volume_satisfies_claim(&pv("v", "1Gi", json!({})), &claim),
            Err("requested PV is too small".into())
        );
        assert!(
            check_volume_satisfies_claim(
                &pv("v", "2Gi", json!({"spec": {"storageClassName": "x"}})),
                &claim
            )
            .is_err()
        );
        assert_eq!(
            check_volume_satisfies_claim(&pv("v", "2Gi", json!({})), &claim),
            Ok(())
        );
    }
}
