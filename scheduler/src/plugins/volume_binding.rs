//! VolumeBinding: a pod's PersistentVolumeClaims must be bound, or be of a
//! `WaitForFirstConsumer` class and bindable on the node (a matching static volume there, or a
//! class whose provisioner can provision there); bound volumes' node affinity restricts the
//! nodes. [`plan`] is what the scheduler writes before binding the pod (PreBind): static volumes'
//! `claimRef`, and `volume.kubernetes.io/selected-node` on claims to provision.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;

use crate::framework::{CycleState, FilterPlugin, PreFilterResult, Status};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};
use crate::volumes::Volumes;
use api_util::volumes::{self as vol, NodeRef};

/// The plugin's name.
pub const NAME: &str = "VolumeBinding";
/// A claim of an Immediate class is not bound yet.
pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
/// A bound volume's node affinity excludes the node.
pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// No volume can be bound or provisioned for a claim on the node.
pub const ERR_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";

/// The claims a pod's volumes name (`persistentVolumeClaim`, and generic ephemeral volumes'
/// `<pod>-<volume>`).
pub fn claim_names(pod: &Pod) -> Vec<String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(c.claim_name.clone())
            } else {
                v.ephemeral.as_ref().map(|_| format!("{pod_name}-{}", v.name))
            }
        })
        .collect()
}

/// True when the PV controller finished binding the claim.
pub fn fully_bound(claim: &PersistentVolumeClaim) -> bool {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty())
        && claim
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(vol::ANN_BIND_COMPLETED))
}

/// The pod's claims sorted out by PreFilter.
#[derive(Clone, Debug, Default)]
pub struct PodVolumes {
    /// Volumes of bound claims.
    pub bound: Vec<Arc<PersistentVolume>>,
    /// Unbound claims of WaitForFirstConsumer classes.
    pub to_bind: Vec<Arc<PersistentVolumeClaim>>,
    /// Every volume (when there are claims to bind).
    pub candidates: Vec<Arc<PersistentVolume>>,
    /// The classes of the claims to bind.
    pub classes: BTreeMap<String, Arc<StorageClass>>,
}

/// Sorts the pod's claims out: `None` when it has none; a rejection for a missing or deleting
/// claim, a bound claim's missing volume, or an unbound claim of an Immediate class.
pub fn pod_volumes(pod: &Pod, volumes: &Volumes) -> Result<Option<PodVolumes>, Status> {
    let names = claim_names(pod);
    if names.is_empty() {
        return Ok(None);
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut out = PodVolumes::default();
    for name in names {
        let Some(claim) = volumes.claim(ns, &name) else {
            return Err(Status::unresolvable(
                NAME,
                format!("persistentvolumeclaim {name:?} not found"),
            ));
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(Status::unresolvable(
                NAME,
                format!("persistentvolumeclaim {name:?} is being deleted"),
            ));
        }
        if fully_bound(claim) {
            let pv_name = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .unwrap_or_default();
            let Some(pv) = volumes.pv(pv_name) else {
                return Err(Status::unresolvable(
                    NAME,
                    format!("persistentvolume {pv_name:?} not found"),
                ));
            };
            out.bound.push(pv.clone());
            continue;
        }
        let class_name = vol::claim_class(claim);
        let class = volumes.class(&class_name);
        if !vol::is_delay_binding(class.map(|c| &**c)) {
            return Err(Status::unresolvable(NAME, ERR_UNBOUND_IMMEDIATE));
        }
        if let Some(class) = class {
            out.classes.insert(class_name, class.clone());
        }
        out.to_bind.push(claim.clone());
    }
    if !out.to_bind.is_empty() {
        out.candidates = volumes.pvs().cloned().collect();
    }
    Ok(Some(out))
}

/// What PreBind does for one claim.
#[derive(Clone, Debug, PartialEq)]
pub enum Binding {
    /// Bind the claim to this static volume (set its `claimRef`).
    Static {
        /// The claim.
        claim: Arc<PersistentVolumeClaim>,
        /// The volume.
        pv: Arc<PersistentVolume>,
    },
    /// Ask for a volume to be provisioned on the node (annotate the claim).
    Provision(Arc<PersistentVolumeClaim>),
}

/// How the claims to bind get a volume on `node`, or `None` when some cannot.
pub fn plan(state: &PodVolumes, node: &NodeInfo) -> Option<Vec<Binding>> {
    let at = NodeRef {
        name: &node.name,
        labels: &node.labels,
    };
    let mut chosen: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(state.to_bind.len());
    for claim in &state.to_bind {
        let selected = claim
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(vol::ANN_SELECTED_NODE));
        if let Some(selected) = selected {
            // Provisioning for another node is under way.
            if *selected != node.name {
                return None;
            }
            out.push(Binding::Provision(claim.clone()));
            continue;
        }
        let pvs = state.candidates.iter().map(|p| &**p);
        if let Some(pv) = vol::find_matching_volume(claim, pvs, Some(at), true, &chosen) {
            let name = pv.metadata.name.clone().unwrap_or_default();
            let pv = state
                .candidates
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))?
                .clone();
            chosen.insert(name);
            out.push(Binding::Static {
                claim: claim.clone(),
                pv,
            });
            continue;
        }
        let class = state.classes.get(&vol::claim_class(claim))?;
        if class.provisioner == vol::NO_PROVISIONER || !vol::class_allows_node(class, at) {
            return None;
        }
        out.push(Binding::Provision(claim.clone()));
    }
    Some(out)
}

/// The VolumeBinding plugin.
#[derive(Debug, Default)]
pub struct VolumeBinding;

impl FilterPlugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        state: &mut CycleState,
    ) -> Result<PreFilterResult, Status> {
        match pod_volumes(&pod.pod, snapshot.volumes())? {
            None => Ok(PreFilterResult::Skip),
            Some(v) => {
                state.write(v);
                Ok(PreFilterResult::AllNodes)
            }
        }
    }

    fn filter(&self, _pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Status> {
        let Some(v) = state.read::<PodVolumes>() else {
            return Ok(());
        };
        let at = NodeRef {
            name: &node.name,
            labels: &node.labels,
        };
        if v.bound.iter().any(|pv| !vol::node_affinity_matches(pv, at)) {
            return Err(Status::unresolvable(NAME, ERR_NODE_CONFLICT));
        }
        if !v.to_bind.is_empty() && plan(v, node).is_none() {
            return Err(Status::unresolvable(NAME, ERR_BIND_CONFLICT));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node_obj, pod};
    use serde_json::{Value, json};

    fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn claim(name: &str, class: &str, extra: Value) -> PersistentVolumeClaim {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "resourceVersion": "1"},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": class},
        });
        crate::snapshot::tests::merge(&mut v, extra);
        obj(v)
    }

    fn local_pv(name: &str, node: &str, class: &str, extra: Value) -> PersistentVolume {
        let mut v = json!({
            "metadata": {"name": name, "resourceVersion": "1"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": class,
                     "local": {"path": "/mnt"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}},
            "status": {"phase": "Available"},
        });
        crate::snapshot::tests::merge(&mut v, extra);
        obj(v)
    }

    fn class(name: &str, provisioner: &str, mode: &str, extra: Value) -> StorageClass {
        let mut v =
            json!({"metadata": {"name": name}, "provisioner": provisioner, "volumeBindingMode": mode});
        crate::snapshot::tests::merge(&mut v, extra);
        obj(v)
    }

    fn using(claims: &[&str]) -> PodInfo {
        let vols: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        pod("p", json!({"spec": {"volumes": vols}}))
    }

    type PerNode = Vec<(String, Result<(), String>)>;

    /// PreFilter then Filter on nodes a, b (zone z1), c (zone z2).
    fn results(pod: &PodInfo, volumes: Volumes) -> Result<PerNode, String> {
        let nodes = [("a", "z1"), ("b", "z1"), ("c", "z2")]
            .map(|(n, z)| node_obj(n, json!({"metadata": {"labels": {"zone": z}}})));
        let mut snapshot = Snapshot::new(nodes, [], []);
        *snapshot.volumes_mut() = volumes;
        let mut state = CycleState::default();
        match VolumeBinding.pre_filter(pod, &snapshot, &mut state) {
            Err(s) => return Err(s.message()),
            Ok(PreFilterResult::Skip) => return Ok(Vec::new()),
            Ok(_) => {}
        }
        Ok(snapshot
            .nodes()
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    VolumeBinding.filter(pod, n, &state).map_err(|s| s.message()),
                )
            })
            .collect())
    }

    fn feasible(r: &[(String, Result<(), String>)]) -> Vec<&str> {
        r.iter()
            .filter(|(_, s)| s.is_ok())
            .map(|(n, _)| n.as_str())
            .collect()
    }

    #[test]
    fn pods_without_claims_are_skipped_and_missing_claims_rejected() {
        assert_eq!(results(&pod("p", json!({})), Volumes::default()), Ok(vec![]));
        assert_eq!(
            results(&using(&["x"]), Volumes::default()),
            Err("persistentvolumeclaim \"x\" not found".into())
        );
        let mut v = Volumes::default();
        v.set_claim(claim(
            "x",
            "",
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        ));
        assert_eq!(
            results(&using(&["x"]), v),
            Err("persistentvolumeclaim \"x\" is being deleted".into())
        );
    }

    #[test]
    fn unbound_immediate_claims_make_the_pod_unschedulable() {
        let mut v = Volumes::default();
        v.set_claim(claim("x", "", json!({})));
        assert_eq!(
            results(&using(&["x"]), v.clone()),
            Err(ERR_UNBOUND_IMMEDIATE.into())
        );
        v.set_class(class("fast", "example.com/csi", "Immediate", json!({})));
        v.set_claim(claim("y", "fast", json!({})));
        assert_eq!(results(&using(&["y"]), v), Err(ERR_UNBOUND_IMMEDIATE.into()));
    }

    #[test]
    fn bound_volumes_node_affinity_restricts_the_nodes() {
        let mut v = Volumes::default();
        v.set_claim(claim(
            "x",
            "",
            json!({"metadata": {"annotations": {vol::ANN_BIND_COMPLETED: "yes"}}, "spec": {"volumeName": "pv-b"}}),
        ));
        v.set_pv(local_pv("pv-b", "b", "", json!({})));
        let r = results(&using(&["x"]), v.clone()).unwrap();
        assert_eq!(feasible(&r), ["b"]);
        assert_eq!(r[0].1, Err(ERR_NODE_CONFLICT.into()));
        v.delete_pv("pv-b");
        assert_eq!(
            results(&using(&["x"]), v),
            Err("persistentvolume \"pv-b\" not found".into())
        );
    }

    #[test]
    fn wait_for_first_consumer_claims_need_a_volume_or_a_provisioner_on_the_node() {
        let mut v = Volumes::default();
        v.set_class(class(
            "local",
            vol::NO_PROVISIONER,
            "WaitForFirstConsumer",
            json!({}),
        ));
        v.set_claim(claim("x", "local", json!({})));
        // No static volume and no provisioner: nowhere.
        let r = results(&using(&["x"]), v.clone()).unwrap();
        assert!(feasible(&r).is_empty());
        assert_eq!(r[0].1, Err(ERR_BIND_CONFLICT.into()));
        v.set_pv(local_pv("on-c", "c", "local", json!({})));
        assert_eq!(feasible(&results(&using(&["x"]), v.clone()).unwrap()), ["c"]);
        // Two claims cannot share the one volume on c.
        v.set_claim(claim("y", "local", json!({})));
        assert!(feasible(&results(&using(&["x", "y"]), v.clone()).unwrap()).is_empty());

        // A provisioner anywhere its allowed topologies say.
        let mut v = Volumes::default();
        v.set_class(class(
            "lp",
            vol::LOCAL_PATH_PROVISIONER,
            "WaitForFirstConsumer",
            json!({"allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": ["z1"]}]}]}),
        ));
        v.set_claim(claim("x", "lp", json!({})));
        assert_eq!(feasible(&results(&using(&["x"]), v.clone()).unwrap()), ["a", "b"]);
        // Once a node is selected, only that node.
        v.set_claim(claim(
            "x",
            "lp",
            json!({"metadata": {"annotations": {vol::ANN_SELECTED_NODE: "b"}, "resourceVersion": "2"}}),
        ));
        assert_eq!(feasible(&results(&using(&["x"]), v).unwrap()), ["b"]);
    }

    #[test]
    fn the_plan_prefers_static_volumes_and_provisions_the_rest() {
        let mut v = Volumes::default();
        v.set_class(class(
            "lp",
            vol::LOCAL_PATH_PROVISIONER,
            "WaitForFirstConsumer",
            json!({}),
        ));
        v.set_claim(claim("x", "lp", json!({})));
        v.set_claim(claim("y", "lp", json!({})));
        v.set_pv(local_pv("on-a", "a", "lp", json!({})));
        let state = pod_volumes(&using(&["x", "y"]).pod, &v).unwrap().unwrap();
        let node = crate::snapshot::NodeInfo::new(node_obj("a", json!({})));
        let plan = plan(&state, &node).unwrap();
        assert!(
            matches!(&plan[0], Binding::Static { pv, .. } if pv.metadata.name.as_deref() == Some("on-a"))
        );
        assert!(matches!(&plan[1], Binding::Provision(c) if c.metadata.name.as_deref() == Some("y")));
    }
}
