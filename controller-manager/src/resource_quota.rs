//! The ResourceQuota controller (upstream `resourcequota-controller`): recomputes each quota's
//! `status.used` for the resources of its `spec.hard` (objects its scopes select, counted with
//! api-util's quota evaluators) and mirrors `spec.hard` into `status.hard` — when the quota
//! changes, when a pod in its namespace turns terminal or is deleted (usage drops; admission
//! only ever adds), and on a full resync every `--resource-quota-sync-period`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use api_util::quantity::Quantity;
use api_util::quota::{counted_resources, selects, usage};
use api_util::resources::{ResourceList, add};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaStatus, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;
use tokio_util::sync::CancellationToken;

use crate::support::discovery::{Discovered, discover};
use crate::support::queue::WorkQueue;

/// Settings of the quota controller.
#[derive(Clone, Debug)]
pub struct ResourceQuotaConfig {
    /// `--resource-quota-sync-period` (5 min): the full resync.
    pub resource_quota_sync_period: Duration,
    /// `--concurrent-resource-quota-syncs` (5).
    pub concurrent_resource_quota_syncs: usize,
}

impl Default for ResourceQuotaConfig {
    fn default() -> Self {
        ResourceQuotaConfig {
            resource_quota_sync_period: Duration::from_secs(300),
            concurrent_resource_quota_syncs: 5,
        }
    }
}

/// Quota controller failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A quota counts a resource the server does not serve.
    #[error("resource {0} is not served")]
    Unknown(String),
}

/// `spec.hard` as quantities (entries that do not parse are skipped).
pub fn hard_of(quota: &ResourceQuota) -> ResourceList {
    quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Quantity::from_k8s(v).map(|q| (k.clone(), q)))
        .collect()
}

/// True for a pod whose deletion grace period has passed at `now` (upstream no longer charges
/// it to the quota).
fn past_grace(pod: &Value, now: Timestamp) -> bool {
    let deleted = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok());
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    match (deleted, grace) {
        (Some(at), Some(g)) => at
            .checked_add(jiff::SignedDuration::from_secs(g))
            .is_ok_and(|end| now > end),
        _ => false,
    }
}

/// The usage of `hard`'s resources at `now` by `objects` (per group and resource, as JSON) that
/// the quota selects; every hard resource is present, zero when unused.
pub fn used(
    quota: &Value,
    hard: &ResourceList,
    objects: &[(String, String, Vec<Value>)],
    now: Timestamp,
) -> ResourceList {
    let mut total = ResourceList::new();
    for (group, resource, items) in objects {
        let pods = group.is_empty() && resource == "pods";
        let charged = items
            .iter()
            .filter(|o| !(pods && past_grace(o, now)) && selects(quota, group, resource, o));
        for obj in charged {
            add(&mut total, &usage(group, resource, obj));
        }
    }
    hard.keys()
        .map(|k| {
            (
                k.clone(),
                total.get(k).copied().unwrap_or_else(|| Quantity::count(0)),
            )
        })
        .collect()
}

fn same(current: Option<&BTreeMap<String, K8sQuantity>>, wanted: &ResourceList) -> bool {
    let current = current.cloned().unwrap_or_default();
    current.len() == wanted.len()
        && wanted.iter().all(|(k, v)| {
            current
                .get(k)
                .and_then(Quantity::from_k8s)
                .is_some_and(|q| q.cmp_to(*v).is_eq())
        })
}

fn to_k8s(list: &ResourceList) -> BTreeMap<String, K8sQuantity> {
    list.iter().map(|(k, v)| (k.clone(), v.to_k8s())).collect()
}

struct Ctx {
    client: Client,
    quotas: Store<ResourceQuota>,
    discovered: RwLock<Discovered>,
}

/// Runs the quota controller until `shutdown`.
pub async fn run(
    client: Client,
    config: ResourceQuotaConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (quotas, writer) = reflector::store::<ResourceQuota>();
    let queue: WorkQueue<(String, String)> = WorkQueue::default();
    let q = queue.clone();
    let quota_feed = watcher(
        Api::<ResourceQuota>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .for_each(move |ev| {
        match ev {
            Ok(watcher::Event::Apply(rq) | watcher::Event::InitApply(rq)) => {
                q.add((rq.namespace().unwrap_or_default(), rq.name_any()))
            }
            Err(e) => tracing::warn!(error = %e, "watching resource quotas failed"),
            _ => {}
        }
        futures::future::ready(())
    });
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        quotas: quotas.clone(),
        discovered: RwLock::new(Discovered::default()),
    });
    let pod_feed = {
        let ctx = ctx.clone();
        let q = queue.clone();
        let mut terminal: HashSet<String> = HashSet::new();
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .for_each(move |ev| {
                let ns = match ev {
                    Ok(watcher::Event::Apply(p)) => {
                        let done = matches!(
                            p.status.as_ref().and_then(|s| s.phase.as_deref()),
                            Some("Succeeded" | "Failed")
                        );
                        (done && terminal.insert(p.uid().unwrap_or_default())).then(|| p.namespace())
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        terminal.remove(&p.uid().unwrap_or_default());
                        Some(p.namespace())
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watching pods failed");
                        None
                    }
                    _ => None,
                };
                if let Some(Some(ns)) = ns {
                    enqueue_namespace(&ctx, &q, &ns);
                }
                futures::future::ready(())
            })
    };
    let service_feed = on_delete::<Service>(ctx.clone(), queue.clone());
    let claim_feed = on_delete::<PersistentVolumeClaim>(ctx.clone(), queue.clone());
    let feed = tokio::spawn(async move {
        tokio::join!(quota_feed, pod_feed, service_feed, claim_feed);
    });
    let mut workers = Vec::new();
    for _ in 0..config.concurrent_resource_quota_syncs.max(1) {
        let (ctx, q) = (ctx.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            while let Some(key) = q.get().await {
                match sync(&ctx, &key.0, &key.1).await {
                    Ok(()) => q.forget(&key),
                    Err(e) => {
                        tracing::warn!(quota = %format!("{}/{}", key.0, key.1), error = %e, "syncing resource quota failed");
                        q.add_rate_limited(key.clone());
                    }
                }
                q.done(&key);
            }
        }));
    }
    let mut resync = tokio::time::interval(config.resource_quota_sync_period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = resync.tick() => {
                refresh_discovery(&ctx).await;
                for rq in quotas.state() {
                    queue.add((rq.namespace().unwrap_or_default(), rq.name_any()));
                }
            }
        }
    }
    queue.shut_down();
    feed.abort();
    for w in workers {
        let _ = w.await;
    }
    Ok(())
}

/// Queues every quota of `ns`.
fn enqueue_namespace(ctx: &Ctx, queue: &WorkQueue<(String, String)>, ns: &str) {
    for rq in ctx.quotas.state() {
        if rq.namespace().as_deref() == Some(ns) {
            queue.add((ns.to_string(), rq.name_any()));
        }
    }
}

/// Recounts a namespace's quotas when an object of type `K` is deleted there (upstream's
/// replenishment).
async fn on_delete<K>(ctx: Arc<Ctx>, queue: WorkQueue<(String, String)>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(Api::<K>::all(ctx.client.clone()), watcher::Config::default())
        .default_backoff()
        .for_each(|ev| {
            match ev {
                Ok(watcher::Event::Delete(obj)) => {
                    if let Some(ns) = obj.namespace() {
                        enqueue_namespace(&ctx, &queue, &ns);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "watching for quota replenishment failed"),
                _ => {}
            }
            futures::future::ready(())
        })
        .await
}

async fn refresh_discovery(ctx: &Ctx) {
    match discover(&ctx.client).await {
        Ok(d) => *ctx.discovered.write().unwrap_or_else(|p| p.into_inner()) = d,
        Err(e) => tracing::warn!(error = %e, "discovery failed"),
    }
}

async fn sync(ctx: &Ctx, ns: &str, name: &str) -> Result<(), Error> {
    let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), ns);
    // From the watch cache, as upstream's lister: the controller's role may list and watch
    // quotas but not get them. A stale copy fails the status write and is retried.
    let Some(quota) = ctx
        .quotas
        .get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))
        .map(|q| (*q).clone())
    else {
        return Ok(());
    };
    let hard = hard_of(&quota);
    let mut objects = Vec::new();
    for (group, resource) in counted_resources(&hard) {
        let found = |d: &Discovered| {
            d.preferred
                .iter()
                .find(|r| r.api.group == group && r.api.plural == resource && r.namespaced)
                .map(|r| r.api.clone())
        };
        let mut ar = found(&ctx.discovered.read().unwrap_or_else(|p| p.into_inner()));
        if ar.is_none() {
            refresh_discovery(ctx).await;
            ar = found(&ctx.discovered.read().unwrap_or_else(|p| p.into_inner()));
        }
        let Some(ar) = ar else {
            return Err(Error::Unknown(format!("{resource}.{group}")));
        };
        let list = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), ns, &ar)
            .list(&ListParams::default())
            .await?;
        let items = list
            .items
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect();
        objects.push((group, resource, items));
    }
    let quota_json = serde_json::to_value(&quota).unwrap_or(Value::Null);
    let used = used(&quota_json, &hard, &objects, Timestamp::now());
    let status = quota.status.as_ref();
    if same(status.and_then(|s| s.hard.as_ref()), &hard) && same(status.and_then(|s| s.used.as_ref()), &used)
    {
        return Ok(());
    }
    let mut updated = quota.clone();
    updated.status = Some(ResourceQuotaStatus {
        hard: Some(to_k8s(&hard)),
        used: Some(to_k8s(&used)),
    });
    api.replace_status(name, &PostParams::default(), &updated).await?;
    tracing::debug!(quota = %format!("{ns}/{name}"), "resource quota usage updated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn list(entries: &[(&str, &str)]) -> ResourceList {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity::parse(v).unwrap()))
            .collect()
    }

    #[test]
    fn usage_sums_selected_objects_and_skips_terminal_pods() {
        let hard = list(&[
            ("pods", "10"),
            ("requests.cpu", "4"),
            ("services", "5"),
            ("count/deployments.apps", "3"),
        ]);
        let pod = |cpu: &str, phase: &str| {
            json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
                   "status": {"phase": phase}})
        };
        let objects = vec![
            (
                "".to_string(),
                "pods".to_string(),
                vec![pod("500m", "Running"), pod("1", "Pending"), pod("2", "Succeeded")],
            ),
            ("".into(), "services".into(), vec![]),
            ("apps".into(), "deployments".into(), vec![json!({}), json!({})]),
        ];
        let u = used(&json!({"spec": {}}), &hard, &objects, Timestamp::now());
        assert_eq!(
            u,
            list(&[
                ("pods", "2"),
                ("requests.cpu", "1500m"),
                ("services", "0"),
                ("count/deployments.apps", "2")
            ])
        );
    }

    #[test]
    fn scopes_narrow_what_is_counted() {
        let hard = list(&[("pods", "10")]);
        let quota = json!({"spec": {"scopes": ["Terminating"]}});
        let objects = vec![(
            "".to_string(),
            "pods".to_string(),
            vec![
                json!({"spec": {"activeDeadlineSeconds": 30}}),
                json!({"spec": {}}),
            ],
        )];
        assert_eq!(
            used(&quota, &hard, &objects, Timestamp::now()),
            list(&[("pods", "1")])
        );
        let gone = vec![(
            "".to_string(),
            "pods".to_string(),
            vec![json!({"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z",
                                     "deletionGracePeriodSeconds": 30}})],
        )];
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let all = json!({"spec": {}});
        assert_eq!(
            used(&all, &hard, &gone, at("2020-01-01T00:00:10Z")),
            list(&[("pods", "1")])
        );
        assert_eq!(
            used(&all, &hard, &gone, at("2020-01-01T00:01:00Z")),
            list(&[("pods", "0")])
        );
    }

    #[test]
    fn status_comparison_ignores_formatting() {
        let wanted = list(&[("requests.memory", "1Gi")]);
        let current: BTreeMap<String, K8sQuantity> =
            [("requests.memory".to_string(), K8sQuantity("1073741824".into()))].into();
        assert!(same(Some(&current), &wanted));
        assert!(!same(None, &wanted));
    }
}
