//! VolumeBinding's PreBind: before a pod is bound, its WaitForFirstConsumer claims get their
//! volumes on the chosen node (a static volume's `claimRef`, or the claim's
//! `volume.kubernetes.io/selected-node` for the provisioner), then the scheduler waits until the
//! PV controller has bound every claim of the pod (at most `bind_timeout`).

use std::time::Instant;

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use kube::Api;
use kube::api::PostParams;

use super::Shared;
use crate::plugins::volume_binding::{self, Binding, ERR_BIND_CONFLICT};
use crate::snapshot::PodInfo;
use api_util::volumes::{ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE};

fn reference(claim: &PersistentVolumeClaim) -> ObjectReference {
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

/// Writes the pod's volume bindings for `node` and waits for the claims to be bound.
pub(super) async fn pre_bind(shared: &Shared, pod: &PodInfo, node: &str) -> Result<(), String> {
    let plan = {
        let st = shared.state.lock();
        let snapshot = st.cache.snapshot();
        match volume_binding::pod_volumes(&pod.pod, snapshot.volumes()) {
            Ok(None) => return Ok(()),
            Ok(Some(v)) if v.to_bind.is_empty() => return Ok(()),
            Ok(Some(v)) => {
                let info = snapshot
                    .node(node)
                    .ok_or_else(|| format!("node {node:?} not found"))?;
                volume_binding::plan(&v, info).ok_or_else(|| ERR_BIND_CONFLICT.to_string())?
            }
            Err(status) => return Err(status.message()),
        }
    };
    for binding in plan {
        match binding {
            Binding::Static { claim, pv } => {
                let name = pv.metadata.name.clone().unwrap_or_default();
                let mut new = (*pv).clone();
                new.spec.get_or_insert_default().claim_ref = Some(reference(&claim));
                new.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
                let written = Api::<PersistentVolume>::all(shared.client.clone())
                    .replace(&name, &PostParams::default(), &new)
                    .await
                    .map_err(|e| format!("binding volumes: updating volume {name:?}: {e}"))?;
                shared.state.lock().cache.volumes_mut().set_pv(written);
            }
            Binding::Provision(claim) => {
                let selected = claim
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ANN_SELECTED_NODE));
                if selected.map(String::as_str) == Some(node) {
                    continue;
                }
                let ns = claim.metadata.namespace.clone().unwrap_or_default();
                let name = claim.metadata.name.clone().unwrap_or_default();
                let mut new = (*claim).clone();
                new.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(ANN_SELECTED_NODE.into(), node.into());
                let written = Api::<PersistentVolumeClaim>::namespaced(shared.client.clone(), &ns)
                    .replace(&name, &PostParams::default(), &new)
                    .await
                    .map_err(|e| format!("binding volumes: selecting node for claim {name:?}: {e}"))?;
                shared.state.lock().cache.volumes_mut().set_claim(written);
            }
        }
    }
    wait_bound(shared, pod).await
}

/// Waits until every claim of the pod is bound, as the claim informer sees it.
async fn wait_bound(shared: &Shared, pod: &PodInfo) -> Result<(), String> {
    let deadline = Instant::now() + shared.bind_timeout;
    let names = volume_binding::claim_names(&pod.pod);
    loop {
        let changed = shared.volumes_changed.notified();
        let all_bound = {
            let st = shared.state.lock();
            let volumes = st.cache.snapshot().volumes();
            names.iter().all(|n| {
                volumes
                    .claim(&pod.namespace, n)
                    .is_some_and(|c| volume_binding::fully_bound(c))
            })
        };
        if all_bound {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("binding volumes: timed out waiting for the condition".into());
        }
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep(left.min(std::time::Duration::from_secs(1))) => {}
        }
    }
}
