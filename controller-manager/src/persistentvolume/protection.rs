//! The PVC and PV protection controllers: a deleting claim keeps its
//! `kubernetes.io/pvc-protection` finalizer while a scheduled, non-terminated pod uses it; a
//! deleting volume keeps `kubernetes.io/pv-protection` while it is `Bound`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::controllers::{ControllerContext, ControllerError};
use crate::informer::{Change, Store};
use crate::workqueue::{RateLimits, WorkQueue, run_workers};

/// The finalizer protecting claims in use.
pub const PVC_PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";
/// The finalizer protecting bound volumes.
pub const PV_PROTECTION_FINALIZER: &str = "kubernetes.io/pv-protection";

fn being_deleted_with<K: Resource>(obj: &K, finalizer: &str) -> bool {
    obj.meta().deletion_timestamp.is_some() && obj.finalizers().iter().any(|f| f == finalizer)
}

/// The claims a pod's volumes name (`persistentVolumeClaim` and generic ephemeral volumes,
/// whose claim is `<pod>-<volume>`).
pub fn claims_of(pod: &Pod) -> Vec<String> {
    let pod_name = pod.name_any();
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

/// True when the pod keeps a claim in use: scheduled, not terminated, naming it.
pub fn pod_uses_claim(pod: &Pod, claim: &str) -> bool {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let terminated = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    scheduled && !terminated && claims_of(pod).iter().any(|c| c == claim)
}

/// True when a volume keeps its finalizer: it is `Bound`.
pub fn volume_in_use(pv: &PersistentVolume) -> bool {
    pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}

/// Removes `finalizer` from `obj` (an update conditioned on its resourceVersion).
async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let mut new = obj.clone();
    new.meta_mut()
        .finalizers
        .get_or_insert_default()
        .retain(|f| f != finalizer);
    match api.replace(&obj.name_any(), &PostParams::default(), &new).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// Runs the PVC protection controller until shutdown.
pub async fn run_pvc_protection(ctx: ControllerContext) -> Result<(), ControllerError> {
    let claims_inf = ctx.informers.informer::<PersistentVolumeClaim>();
    let pods_inf = ctx.informers.informer::<Pod>();
    let claims = claims_inf.store();
    let pods = pods_inf.store();
    let queue = WorkQueue::with_metrics("pvcprotection", RateLimits::default(), ctx.metrics.clone());
    let q = queue.clone();
    claims_inf.add_handler(move |ch| match ch {
        Change::Added(c) | Change::Updated { new: c, .. }
            if being_deleted_with(&**c, PVC_PROTECTION_FINALIZER) =>
        {
            q.add(format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()));
        }
        _ => {}
    });
    let q = queue.clone();
    let deleting = claims.clone();
    pods_inf.add_handler(move |ch| {
        let (pod, old) = match ch {
            Change::Added(p) | Change::Deleted(p) => (p, None),
            Change::Updated { old, new } => (new, Some(old)),
        };
        let ns = pod.namespace().unwrap_or_default();
        let names = claims_of(pod)
            .into_iter()
            .chain(old.map(|o| claims_of(o)).unwrap_or_default());
        for name in names {
            if deleting
                .get(&ns, &name)
                .is_some_and(|c| being_deleted_with(&*c, PVC_PROTECTION_FINALIZER))
            {
                q.add(format!("{ns}/{name}"));
            }
        }
    });
    tokio::select! {
        () = ctx.shutdown.cancelled() => return Ok(()),
        () = async { claims_inf.wait_synced().await; pods_inf.wait_synced().await } => {}
    }
    let client = ctx.client.clone();
    run_workers(queue, 1, None, ctx.shutdown.clone(), move |key| {
        let (claims, pods, client) = (claims.clone(), pods.clone(), client.clone());
        async move { sync_claim(&client, &claims, &pods, &key).await }
    })
    .await;
    Ok(())
}

async fn sync_claim(
    client: &kube::Client,
    claims: &Store<PersistentVolumeClaim>,
    pods: &Store<Pod>,
    key: &str,
) -> Result<(), kube::Error> {
    let (ns, name) = split_key(key);
    let Some(claim) = claims.get(ns, name) else {
        return Ok(());
    };
    if !being_deleted_with(&*claim, PVC_PROTECTION_FINALIZER) {
        return Ok(());
    }
    if pods.list(ns).iter().any(|p| pod_uses_claim(p, name)) {
        tracing::debug!(claim = key, "in use by a pod; keeping the finalizer");
        return Ok(());
    }
    // The cache may lag: ask the API server before letting the claim go, as upstream.
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    if pod_api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|p| pod_uses_claim(p, name))
    {
        return Ok(());
    }
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    remove_finalizer(&api, &*claim, PVC_PROTECTION_FINALIZER).await?;
    tracing::info!(claim = key, "removed the pvc-protection finalizer");
    Ok(())
}

/// Runs the PV protection controller until shutdown.
pub async fn run_pv_protection(ctx: ControllerContext) -> Result<(), ControllerError> {
    let volumes_inf = ctx.informers.informer::<PersistentVolume>();
    let volumes: Arc<Store<PersistentVolume>> = volumes_inf.store();
    let queue = WorkQueue::with_metrics("pvprotection", RateLimits::default(), ctx.metrics.clone());
    let q = queue.clone();
    volumes_inf.add_handler(move |ch| match ch {
        Change::Added(v) | Change::Updated { new: v, .. }
            if being_deleted_with(&**v, PV_PROTECTION_FINALIZER) =>
        {
            q.add(v.name_any());
        }
        _ => {}
    });
    tokio::select! {
        () = ctx.shutdown.cancelled() => return Ok(()),
        () = volumes_inf.wait_synced() => {}
    }
    let client = ctx.client.clone();
    run_workers(queue, 1, None, ctx.shutdown.clone(), move |name| {
        let (volumes, client) = (volumes.clone(), client.clone());
        async move {
            let Some(pv) = volumes.get("", &name) else {
                return Ok::<(), kube::Error>(());
            };
            if !being_deleted_with(&*pv, PV_PROTECTION_FINALIZER) || volume_in_use(&pv) {
                return Ok(());
            }
            remove_finalizer(
                &Api::<PersistentVolume>::all(client),
                &*pv,
                PV_PROTECTION_FINALIZER,
            )
            .await?;
            tracing::info!(volume = %name, "removed the pv-protection finalizer");
            Ok(())
        }
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}],
                     "volumes": [{"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
                                 {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn only_scheduled_live_pods_keep_a_claim() {
        assert_eq!(claims_of(&pod("n", "Running")), ["data", "p-scratch"]);
        assert!(pod_uses_claim(&pod("n", "Running"), "data"));
        assert!(pod_uses_claim(&pod("n", "Pending"), "p-scratch"));
        assert!(!pod_uses_claim(&pod("n", "Running"), "other"));
        assert!(!pod_uses_claim(&pod("", "Pending"), "data"));
        assert!(!pod_uses_claim(&pod("n", "Succeeded"), "data"));
        assert!(!pod_uses_claim(&pod("n", "Failed"), "data"));
    }

    #[test]
    fn only_bound_volumes_are_in_use() {
        let pv = |phase: &str| -> PersistentVolume {
            serde_json::from_value(json!({"metadata": {"name": "v"}, "status": {"phase": phase}})).unwrap()
        };
        assert!(volume_in_use(&pv("Bound")));
        assert!(!volume_in_use(&pv("Released")));
        assert!(!volume_in_use(&pv("Available")));
    }
}
