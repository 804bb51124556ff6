//! A controller that keeps one named object in every namespace (the `default` ServiceAccount,
//! the `kube-root-ca.crt` ConfigMap): reconciles a namespace when it changes and when its object
//! of that name changes or is deleted, with per-namespace exponential backoff on failures.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// True when `e` is upstream's "namespace is being terminated" refusal or a missing namespace:
/// creating there must not be retried.
pub fn namespace_gone_or_terminating(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            s.code == 404
                || s.details
                    .as_ref()
                    .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
        }
        _ => false,
    }
}

struct Ctx<F> {
    sync: F,
    failures: Mutex<HashMap<String, u32>>,
}

/// Runs `sync` for every namespace (on its changes and on changes of the `K` named `name` in
/// it) until `shutdown`. `concurrency` namespaces are synced at once.
pub async fn run<K, F, Fut, E>(
    client: Client,
    name: &str,
    concurrency: u16,
    shutdown: CancellationToken,
    sync: F,
) where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
    F: Fn(Arc<Namespace>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let objects: Api<K> = Api::all(client);
    let ctx = Arc::new(Ctx {
        sync,
        failures: Mutex::new(HashMap::new()),
    });
    let reconcile = |ns: Arc<Namespace>, ctx: Arc<Ctx<F>>| async move {
        let key = ns.name_any();
        (ctx.sync)(ns).await?;
        ctx.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        Ok::<_, E>(Action::await_change())
    };
    let error_policy = |ns: Arc<Namespace>, e: &E, ctx: Arc<Ctx<F>>| {
        let key = ns.name_any();
        let n = {
            let mut f = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = f.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let delay = Duration::from_millis(5)
            .saturating_mul(2u32.saturating_pow(n.min(31)))
            .min(Duration::from_secs(1000));
        tracing::warn!(namespace = %key, error = %e, retry_in = ?delay, "syncing namespace failed");
        Action::requeue(delay)
    };
    let selector = format!("metadata.name={name}");
    Controller::new(namespaces, watcher::Config::default())
        .watches(objects, watcher::Config::default().fields(&selector), |obj: K| {
            obj.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
