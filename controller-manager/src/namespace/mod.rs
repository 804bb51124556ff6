//! Namespace lifecycle (upstream `namespace-controller`): a namespace with a deletionTimestamp
//! gets every namespaced object of every type deleted (discovery-driven, custom resources
//! included, finalizers honoured), its `NamespaceDeletion*` / `Namespace*Remaining` conditions
//! kept current, and once nothing remains its `kubernetes` finalizer removed through the
//! `finalize` subresource (the API server then deletes it).

pub mod conditions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;

use crate::support::discovery::{DiscoveredResource, discover};
use crate::support::queue::WorkQueue;
use conditions::DeletionReport;

/// The finalizer this controller owns.
pub const FINALIZER: &str = "kubernetes";

/// Seconds upstream assumes objects with finalizers take to go.
const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

/// Settings of the namespace controller (upstream's defaults).
#[derive(Clone, Debug)]
pub struct NamespaceConfig {
    /// Namespaces deleted at once (`--concurrent-namespace-syncs`, 10).
    pub workers: usize,
    /// Every namespace is looked at again this often (`--namespace-sync-period`, 5 min).
    pub sync_period: Duration,
    /// Delay between seeing a deletion and acting on it, so late creates land first (5 s).
    pub deletion_grace_period: Duration,
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        NamespaceConfig {
            workers: 10,
            sync_period: Duration::from_secs(300),
            deletion_grace_period: Duration::from_secs(5),
        }
    }
}

/// Namespace controller failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Content remains; look again after the estimate.
    #[error("some content remains in the namespace, estimate {0} seconds before it is removed")]
    ResourcesRemaining(i64),
    /// Some resource types could not be emptied.
    #[error("{0}")]
    Content(String),
    /// The namespace was replaced while being processed.
    #[error("namespace uid has changed across retries")]
    UidChanged,
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn deleting(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: Client, config: NamespaceConfig, shutdown: CancellationToken) -> Result<(), Error> {
    let queue: WorkQueue<String> = WorkQueue::new(Duration::from_millis(5), Duration::from_secs(60));
    let deleter = Arc::new(Deleter {
        client: client.clone(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..config.workers.max(1) {
        let (q, d) = (queue.clone(), deleter.clone());
        tasks.spawn(async move {
            while let Some(name) = q.get().await {
                match d.delete(&name).await {
                    Ok(()) => q.forget(&name),
                    Err(Error::ResourcesRemaining(estimate)) => {
                        tracing::debug!(namespace = %name, estimate, "namespace controller: content remains, requeueing");
                        q.add_after(name.clone(), Duration::from_secs((estimate / 2 + 1) as u64));
                    }
                    Err(e) => {
                        tracing::warn!(namespace = %name, error = %e, "namespace controller: deletion failed, requeueing");
                        q.add_rate_limited(name.clone());
                    }
                }
                q.done(&name);
            }
        });
    }
    let api: Api<Namespace> = Api::all(client);
    let (reader, writer) = kube::runtime::reflector::store();
    let stream =
        kube::runtime::reflector(writer, watcher::watcher(api, watcher::Config::default())).default_backoff();
    futures::pin_mut!(stream);
    let mut resync = tokio::time::interval(config.sync_period);
    resync.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = resync.tick() => {
                for ns in reader.state() {
                    if deleting(&ns) && let Some(name) = &ns.metadata.name {
                        queue.add(name.clone());
                    }
                }
            }
            ev = stream.next() => match ev {
                None => break,
                Some(Err(e)) => tracing::warn!(error = %e, "namespace controller: watch failed, retrying"),
                Some(Ok(Event::Apply(ns) | Event::InitApply(ns))) => {
                    if deleting(&ns) && let Some(name) = ns.metadata.name {
                        queue.add_after(name, config.deletion_grace_period);
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }
    queue.shut_down();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Empties and finalizes terminating namespaces (upstream's `namespacedResourcesDeleter`).
struct Deleter {
    client: Client,
}

/// What deleting one resource type's content left.
#[derive(Default)]
struct TypeOutcome {
    estimate: i64,
    remaining: usize,
    finalizers: BTreeMap<String, usize>,
}

impl Deleter {
    fn namespaces(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }

    /// One pass: mark Terminating, delete content, update conditions, finalize when empty.
    async fn delete(&self, name: &str) -> Result<(), Error> {
        let api = self.namespaces();
        let ns = match api.get(name).await {
            Ok(ns) => ns,
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if !deleting(&ns) {
            return Ok(());
        }
        let ns = match self.ensure_terminating(ns).await {
            Ok(ns) => ns,
            Err(Error::Kube(e)) if is_status(&e, 404) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
        {
            return Ok(());
        }
        let estimate = self.delete_all_content(ns.clone()).await?;
        if estimate > 0 {
            return Err(Error::ResourcesRemaining(estimate));
        }
        match self.finalize(ns).await {
            Err(Error::Kube(e)) if is_status(&e, 404) => Ok(()),
            other => other,
        }
    }

    /// Sets phase Terminating when the API server did not already (it does on DELETE).
    async fn ensure_terminating(&self, mut ns: Namespace) -> Result<Namespace, Error> {
        let api = self.namespaces();
        loop {
            if ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating") {
                return Ok(ns);
            }
            let name = ns.metadata.name.clone().unwrap_or_default();
            let uid = ns.metadata.uid.clone();
            ns.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
            match api.replace_status(&name, &PostParams::default(), &ns).await {
                Ok(ns) => return Ok(ns),
                Err(e) if is_status(&e, 409) => {
                    ns = api.get(&name).await?;
                    if ns.metadata.uid != uid {
                        return Err(Error::UidChanged);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Removes [`FINALIZER`] from `spec.finalizers` through the `finalize` subresource.
    async fn finalize(&self, mut ns: Namespace) -> Result<(), Error> {
        let api = self.namespaces();
        loop {
            let name = ns.metadata.name.clone().unwrap_or_default();
            let uid = ns.metadata.uid.clone();
            let mut fins: Vec<String> = ns
                .spec
                .as_ref()
                .and_then(|s| s.finalizers.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != FINALIZER)
                .collect();
            fins.sort();
            fins.dedup();
            ns.spec.get_or_insert_with(Default::default).finalizers = Some(fins);
            match api
                .replace_subresource("finalize", &name, &PostParams::default(), &ns)
                .await
            {
                Ok(_) => {
                    tracing::info!(namespace = %name, "namespace controller: content removed, namespace finalized");
                    return Ok(());
                }
                Err(e) if is_status(&e, 409) => {
                    ns = api.get(&name).await?;
                    if ns.metadata.uid != uid {
                        return Err(Error::UidChanged);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Deletes every namespaced object; answers the estimate of seconds until the rest goes.
    async fn delete_all_content(&self, mut ns: Namespace) -> Result<i64, Error> {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let deleted_at = ns.metadata.deletion_timestamp.clone();
        let mut report = DeletionReport::default();
        let mut errors: Vec<String> = Vec::new();
        let resources: Vec<DiscoveredResource> = match discover(&self.client).await {
            Ok(d) => {
                if let Some(msg) = d.failure_message() {
                    report.discovery_error = Some(conditions::discovery_message(d.failed.len(), &msg));
                    errors.push(msg);
                }
                report.unparsable = d.unparsable.clone();
                d.preferred
                    .into_iter()
                    .filter(|r| r.namespaced && r.supports(&["delete"]))
                    .collect()
            }
            Err(e) => {
                report.discovery_error = Some(e.to_string());
                errors.push(e.to_string());
                Vec::new()
            }
        };
        let mut estimate = 0;
        for r in &resources {
            let outcome = self.delete_type(r, &name, deleted_at.as_ref()).await;
            let out = match outcome {
                Ok(out) => out,
                Err((out, e)) => {
                    report.content_errors.push(e.clone());
                    errors.push(e);
                    out
                }
            };
            estimate = estimate.max(out.estimate);
            if out.remaining > 0 {
                report.remaining.insert(r.group_resource(), out.remaining);
                for (f, n) in out.finalizers {
                    *report.finalizers.entry(f).or_default() += n;
                }
            }
        }
        let now = Time(jiff::Timestamp::now());
        let status = ns.status.get_or_insert_with(Default::default);
        let mut conds = status.conditions.clone().unwrap_or_default();
        if conditions::update(&mut conds, &report, &now) {
            status.conditions = Some(conds);
            if let Err(e) = self
                .namespaces()
                .replace_status(&name, &PostParams::default(), &ns)
                .await
            {
                tracing::warn!(namespace = %name, error = %e, "namespace controller: couldn't update status conditions");
            }
        }
        if errors.is_empty() {
            Ok(estimate)
        } else {
            Err(Error::Content(errors.join(", ")))
        }
    }

    /// Deletes one type's objects in `ns` (collection delete, else one by one) and counts what
    /// remains. On failure the partial outcome comes with the message.
    async fn delete_type(
        &self,
        r: &DiscoveredResource,
        ns: &str,
        deleted_at: Option<&Time>,
    ) -> Result<TypeOutcome, (TypeOutcome, String)> {
        let gvr = format!("{}/{}, Resource={}", r.api.group, r.api.version, r.api.plural);
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &r.api);
        let estimate = if r.api.group.is_empty() && r.api.plural == "pods" {
            self.estimate_pods(ns, deleted_at)
                .await
                .map_err(|e| (TypeOutcome::default(), e.to_string()))?
        } else {
            0
        };
        let fail = |e: kube::Error| {
            (
                TypeOutcome {
                    estimate,
                    ..TypeOutcome::default()
                },
                e.to_string(),
            )
        };
        let background = DeleteParams::background();
        let unsupported = |e: &kube::Error| is_status(e, 405) || is_status(e, 404);
        let mut collection_done = false;
        if r.supports(&["deletecollection"]) {
            match api.delete_collection(&background, &ListParams::default()).await {
                Ok(_) => collection_done = true,
                Err(e) if unsupported(&e) => {}
                Err(e) => return Err(fail(e)),
            }
        }
        if !r.supports(&["list"]) {
            return Ok(TypeOutcome {
                estimate,
                ..TypeOutcome::default()
            });
        }
        if !collection_done {
            let items = match api.list_metadata(&ListParams::default()).await {
                Ok(l) => l.items,
                Err(e) if unsupported(&e) => Vec::new(),
                Err(e) => return Err(fail(e)),
            };
            for item in items {
                let Some(name) = item.metadata.name else { continue };
                match api.delete(&name, &background).await {
                    Ok(_) => {}
                    Err(e) if unsupported(&e) => {}
                    Err(e) => return Err(fail(e)),
                }
            }
        }
        let left = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) if unsupported(&e) => Vec::new(),
            Err(e) => return Err(fail(e)),
        };
        if left.is_empty() {
            return Ok(TypeOutcome::default());
        }
        let mut finalizers = BTreeMap::new();
        for item in &left {
            for f in item.metadata.finalizers.iter().flatten() {
                *finalizers.entry(f.clone()).or_insert(0) += 1;
            }
        }
        let out = TypeOutcome {
            estimate: if estimate > 0 {
                estimate
            } else if !finalizers.is_empty() {
                FINALIZER_ESTIMATE_SECONDS
            } else {
                0
            },
            remaining: left.len(),
            finalizers,
        };
        if out.estimate == 0 {
            let msg = format!("unexpected items still remain in namespace: {ns} for gvr: {gvr}");
            return Err((out, msg));
        }
        Ok(out)
    }

    /// The longest grace period of the namespace's non-terminal pods, unless that much time
    /// passed since the namespace's deletion.
    async fn estimate_pods(&self, ns: &str, deleted_at: Option<&Time>) -> Result<i64, kube::Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut estimate = 0;
        for pod in pods.list(&ListParams::default()).await? {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                continue;
            }
            if let Some(grace) = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds) {
                estimate = estimate.max(grace);
            }
        }
        let elapsed = deleted_at
            .map(|t| jiff::Timestamp::now().duration_since(t.0).as_secs())
            .unwrap_or(0);
        Ok(if elapsed >= estimate { 0 } else { estimate })
    }
}
