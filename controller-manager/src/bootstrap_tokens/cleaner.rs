//! The token cleaner (upstream `token-cleaner-controller`): deletes bootstrap token Secrets
//! once their `expiration` has passed, checking each again when it is due.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Preconditions};

use super::{NAMESPACE, SECRET_TYPE, time_left};
use crate::controllers::{ControllerContext, ControllerError};
use crate::informer::{Change, Store};
use crate::workqueue::{RateLimits, WorkQueue, run_workers};

/// Runs the cleaner until shutdown.
pub async fn run(ctx: ControllerContext) -> Result<(), ControllerError> {
    let secrets = ctx.informers.informer::<Secret>();
    let queue = WorkQueue::with_metrics("token_cleaner", RateLimits::default(), ctx.metrics.clone());
    let q = queue.clone();
    secrets.add_handler(move |change| {
        if let Change::Added(s) | Change::Updated { new: s, .. } = change
            && s.metadata.namespace.as_deref() == Some(NAMESPACE)
            && s.type_.as_deref() == Some(SECRET_TYPE)
        {
            q.add(s.metadata.name.clone().unwrap_or_default());
        }
    });
    let store = secrets.store();
    tokio::select! {
        () = ctx.shutdown.cancelled() => return Ok(()),
        () = secrets.wait_synced() => {}
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    let requeue = queue.clone();
    run_workers(queue, 1, None, ctx.shutdown.clone(), move |name| {
        let (store, api, requeue) = (store.clone(), api.clone(), requeue.clone());
        async move { evaluate(&store, &api, &requeue, &name).await }
    })
    .await;
    Ok(())
}

async fn evaluate(
    store: &Arc<Store<Secret>>,
    api: &Api<Secret>,
    queue: &WorkQueue,
    name: &str,
) -> Result<(), kube::Error> {
    let Some(secret) = store.get(NAMESPACE, name) else {
        return Ok(());
    };
    if secret.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    match time_left(&secret, Timestamp::now()) {
        None => Ok(()),
        Some(left) if !left.is_zero() => {
            queue.add_after(name, left);
            Ok(())
        }
        Some(_) => {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: secret.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(name, &params).await {
                Ok(_) => {
                    tracing::info!(secret = name, "deleted an expired bootstrap token");
                    Ok(())
                }
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
}
