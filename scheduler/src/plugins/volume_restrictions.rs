//! VolumeRestrictions: a claim with the `ReadWriteOncePod` access mode serves one pod in the
//! cluster, and inline disks that attach to one node (GCE PD, AWS EBS, iSCSI, RBD) cannot be
//! used by two pods on a node unless both mount them read-only.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Volume;

use crate::framework::{CycleState, FilterPlugin, PreFilterResult, Status};
use crate::plugins::volume_binding::claim_names;
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// The plugin's name.
pub const NAME: &str = "VolumeRestrictions";
/// Another pod uses a `ReadWriteOncePod` claim of the pod.
pub const ERR_READ_WRITE_ONCE_POD: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";
/// An inline disk of the pod is in use on the node.
pub const ERR_DISK_CONFLICT: &str = "node(s) had no available disk";

/// True when the two volumes are the same single-attach disk, mounted read-write by either.
pub fn conflicts(a: &Volume, b: &Volume) -> bool {
    if let (Some(x), Some(y)) = (&a.gce_persistent_disk, &b.gce_persistent_disk)
        && x.pd_name == y.pd_name
        && !(x.read_only == Some(true) && y.read_only == Some(true))
    {
        return true;
    }
    if let (Some(x), Some(y)) = (&a.aws_elastic_block_store, &b.aws_elastic_block_store)
        && x.volume_id == y.volume_id
    {
        return true;
    }
    if let (Some(x), Some(y)) = (&a.iscsi, &b.iscsi)
        && x.iqn == y.iqn
        && !(x.read_only == Some(true) && y.read_only == Some(true))
    {
        return true;
    }
    if let (Some(x), Some(y)) = (&a.rbd, &b.rbd) {
        let monitors: BTreeSet<&String> = x.monitors.iter().collect();
        let overlap = y.monitors.iter().any(|m| monitors.contains(m));
        if overlap
            && x.pool == y.pool
            && x.image == y.image
            && !(x.read_only == Some(true) && y.read_only == Some(true))
        {
            return true;
        }
    }
    false
}

fn volumes(pod: &PodInfo) -> &[Volume] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
}

fn single_attach(v: &Volume) -> bool {
    v.gce_persistent_disk.is_some()
        || v.aws_elastic_block_store.is_some()
        || v.iscsi.is_some()
        || v.rbd.is_some()
}

/// Marks that Filter has inline disks to check.
struct HasDisks;

/// The VolumeRestrictions plugin.
#[derive(Debug, Default)]
pub struct VolumeRestrictions;

impl FilterPlugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        state: &mut CycleState,
    ) -> Result<PreFilterResult, Status> {
        let rwop: BTreeSet<String> = claim_names(&pod.pod)
            .into_iter()
            .filter(|name| {
                snapshot
                    .volumes()
                    .claim(&pod.namespace, name)
                    .and_then(|c| c.spec.as_ref()?.access_modes.as_ref())
                    .is_some_and(|m| m.iter().any(|m| m == "ReadWriteOncePod"))
            })
            .collect();
        if !rwop.is_empty() {
            let in_use = snapshot.nodes().iter().flat_map(|n| &n.pods).any(|other| {
                other.namespace == pod.namespace
                    && other.name != pod.name
                    && claim_names(&other.pod).iter().any(|c| rwop.contains(c))
            });
            if in_use {
                // Upstream lets preemption try; here PreFilter rejections are final.
                return Err(Status::unresolvable(NAME, ERR_READ_WRITE_ONCE_POD));
            }
        }
        if volumes(pod).iter().any(single_attach) {
            state.write(HasDisks);
            return Ok(PreFilterResult::AllNodes);
        }
        Ok(PreFilterResult::Skip)
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Status> {
        if state.read::<HasDisks>().is_none() {
            return Ok(());
        }
        let conflict = volumes(pod).iter().filter(|v| single_attach(v)).any(|v| {
            node.pods
                .iter()
                .any(|other| volumes(other).iter().any(|o| conflicts(v, o)))
        });
        if conflict {
            return Err(Status::unschedulable(NAME, ERR_DISK_CONFLICT));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node_obj, pod};
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn with_volumes(name: &str, node: Option<&str>, volumes: Value) -> PodInfo {
        let mut spec = json!({"volumes": volumes});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        pod(name, json!({"spec": spec}))
    }

    fn run(pod: &PodInfo, existing: Vec<PodInfo>, claims: Value) -> Result<Vec<bool>, String> {
        let mut snapshot = Snapshot::new([node_obj("a", json!({})), node_obj("b", json!({}))], [], []);
        for p in existing {
            let node = p.node_name.clone().unwrap();
            snapshot.assume(Arc::new(p), &node).unwrap();
        }
        for c in claims.as_array().unwrap() {
            snapshot
                .volumes_mut()
                .set_claim(serde_json::from_value(c.clone()).unwrap());
        }
        let mut state = CycleState::default();
        match VolumeRestrictions.pre_filter(pod, &snapshot, &mut state) {
            Err(s) => Err(s.message()),
            Ok(PreFilterResult::Skip) => Ok(vec![true, true]),
            Ok(_) => Ok(snapshot
                .nodes()
                .iter()
                .map(|n| VolumeRestrictions.filter(pod, n, &state).is_ok())
                .collect()),
        }
    }

    #[test]
    fn read_write_once_pod_claims_serve_one_pod() {
        let claim = |name: &str, mode: &str| json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"accessModes": [mode]}});
        let uses = |c: &str| json!([{"name": "d", "persistentVolumeClaim": {"claimName": c}}]);
        let claims = json!([
            claim("solo", "ReadWriteOncePod"),
            claim("shared", "ReadWriteOnce")
        ]);
        let holder = with_volumes("holder", Some("a"), uses("solo"));
        assert_eq!(
            run(
                &with_volumes("p", None, uses("solo")),
                vec![holder],
                claims.clone()
            ),
            Err(ERR_READ_WRITE_ONCE_POD.into())
        );
        assert_eq!(
            run(&with_volumes("p", None, uses("solo")), vec![], claims.clone()),
            Ok(vec![true, true])
        );
        let other = with_volumes("other", Some("a"), uses("shared"));
        assert_eq!(
            run(&with_volumes("p", None, uses("shared")), vec![other], claims),
            Ok(vec![true, true])
        );
    }

    #[test]
    fn single_attach_disks_conflict_unless_both_are_read_only() {
        let pd = |ro: bool| json!([{"name": "d", "gcePersistentDisk": {"pdName": "disk", "readOnly": ro}}]);
        let on_a = with_volumes("x", Some("a"), pd(false));
        assert_eq!(
            run(&with_volumes("p", None, pd(false)), vec![on_a], json!([])),
            Ok(vec![false, true])
        );
        let ro_on_a = with_volumes("x", Some("a"), pd(true));
        assert_eq!(
            run(&with_volumes("p", None, pd(true)), vec![ro_on_a], json!([])),
            Ok(vec![true, true])
        );
        let ebs = json!([{"name": "d", "awsElasticBlockStore": {"volumeID": "vol-1"}}]);
        let on_b = with_volumes("y", Some("b"), ebs.clone());
        assert_eq!(
            run(&with_volumes("p", None, ebs), vec![on_b], json!([])),
            Ok(vec![true, false])
        );
        let rbd = |image: &str| json!([{"name": "d", "rbd": {"monitors": ["m1", "m2"], "pool": "p", "image": image}}]);
        let rbd_on_a = with_volumes("z", Some("a"), rbd("i1"));
        assert_eq!(
            run(
                &with_volumes("p", None, rbd("i2")),
                vec![rbd_on_a.clone()],
                json!([])
            ),
            Ok(vec![true, true])
        );
        assert_eq!(
            run(&with_volumes("p", None, rbd("i1")), vec![rbd_on_a], json!([])),
            Ok(vec![false, true])
        );
    }
}
