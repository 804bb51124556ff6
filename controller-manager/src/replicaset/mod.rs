//! The ReplicaSet and ReplicationController controllers: one generic reconciler over
//! [`ReplicaKind`]. Each sync claims the active pods its selector matches (adopting orphans,
//! releasing owned pods that no longer match), creates missing pods in slow-start batches
//! (1, 2, 4, ...) or deletes surplus ones as upstream ranks them, at most 500 per sync, with
//! expectations so a lagging watch never causes a second round, and writes the status
//! (replicas, fullyLabeled, ready, available, observedGeneration, `ReplicaFailure`).

pub mod kind;
pub mod ranking;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};

use crate::controllers::{ControllerContext, ControllerError};
use crate::events::EventSink;
use crate::expectations::Expectations;
use crate::informer::{Change, Store};
use crate::ownership::{self, Owner};
use crate::podutil;
use crate::workqueue::{RateLimits, WorkQueue, run_workers};
pub use kind::{ReplicaKind, ReplicaStatus};

/// Most pods created or deleted in one sync (upstream's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// The first slow-start batch (upstream's `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// Failures of one sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Claiming pods failed.
    #[error(transparent)]
    Claim(#[from] ownership::ClaimError),
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// Creating or deleting pods failed.
    #[error("{0}")]
    Manage(String),
}

/// Runs the ReplicaSet controller until shutdown.
pub async fn run_replica_sets(ctx: ControllerContext) -> Result<(), ControllerError> {
    let workers = ctx.config.concurrent_replicaset_syncs;
    run::<ReplicaSet>(ctx, workers).await
}

/// Runs the ReplicationController controller until shutdown.
pub async fn run_replication_controllers(ctx: ControllerContext) -> Result<(), ControllerError> {
    let workers = ctx.config.concurrent_rc_syncs;
    run::<ReplicationController>(ctx, workers).await
}

/// Starts the controller for `R` with `workers` concurrent syncs.
pub async fn run<R: ReplicaKind>(ctx: ControllerContext, workers: usize) -> Result<(), ControllerError> {
    // Upstream's event source and queue name differ for the ReplicationController manager.
    let (event_source, queue_name) = if R::kind(&()) == "ReplicationController" {
        ("replication-controller", "replicationmanager")
    } else {
        (R::CONTROLLER, "replicaset")
    };
    let owners = ctx.informers.informer::<R>();
    let pods = ctx.informers.informer::<Pod>();
    let c = Arc::new(ReplicaController::<R> {
        client: ctx.client.clone(),
        owners: owners.store(),
        pods: pods.store(),
        queue: WorkQueue::with_metrics(queue_name, RateLimits::default(), ctx.metrics.clone()),
        expectations: Arc::default(),
        events: EventSink::new(ctx.client.clone(), event_source, &ctx.identity),
        burst: BURST_REPLICAS,
    });
    let h = c.clone();
    owners.add_handler(move |ch| h.on_owner(ch));
    let h = c.clone();
    pods.add_handler(move |ch| h.on_pod(ch));
    tokio::select! {
        () = ctx.shutdown.cancelled() => return Ok(()),
        () = async { owners.wait_synced().await; pods.wait_synced().await } => {}
    }
    tracing::info!(
        controller = R::CONTROLLER,
        workers,
        "caches synced; starting workers"
    );
    let sync = c.clone();
    run_workers(c.queue.clone(), workers, None, ctx.shutdown.clone(), move |key| {
        let c = sync.clone();
        async move { c.sync(&key).await }
    })
    .await;
    Ok(())
}

/// The generic reconciler's state.
pub struct ReplicaController<R: ReplicaKind> {
    client: kube::Client,
    owners: Arc<Store<R>>,
    pods: Arc<Store<Pod>>,
    queue: WorkQueue,
    expectations: Arc<Expectations>,
    events: EventSink,
    burst: usize,
}

fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

impl<R: ReplicaKind> ReplicaController<R> {
    fn on_owner(&self, change: &Change<R>) {
        match change {
            Change::Added(r) => self.queue.add(key_of(r.meta())),
            Change::Updated { old, new } => {
                if old.meta().uid != new.meta().uid {
                    self.expectations.delete(&key_of(old.meta()));
                }
                self.queue.add(key_of(new.meta()));
            }
            Change::Deleted(r) => {
                let key = key_of(r.meta());
                self.expectations.delete(&key);
                self.queue.add(key);
            }
        }
    }

    /// The owner a controller reference points to, if it is of our kind and still exists.
    fn resolve(
        &self,
        namespace: &str,
        r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Option<Arc<R>> {
        if r.kind != R::kind(&()) {
            return None;
        }
        let owner = self.owners.get(namespace, &r.name)?;
        (owner.meta().uid.as_deref() == Some(r.uid.as_str())).then_some(owner)
    }

    /// Owners whose selector matches an orphan pod's labels.
    fn owners_selecting(&self, pod: &Pod) -> Vec<Arc<R>> {
        let ns = pod.namespace().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        self.owners
            .list(&ns)
            .into_iter()
            .filter(|o| matches!(o.selector(), Ok(Some(s)) if !s.is_empty() && s.matches(&labels)))
            .collect()
    }

    fn on_pod(&self, change: &Change<Pod>) {
        match change {
            Change::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    return self.pod_deleted(pod);
                }
                let ns = pod.namespace().unwrap_or_default();
                if let Some(r) = ownership::controller_of(&pod.metadata) {
                    if let Some(owner) = self.resolve(&ns, r) {
                        let key = key_of(owner.meta());
                        self.expectations.creation_observed(&key);
                        self.queue.add(key);
                    }
                    return;
                }
                for owner in self.owners_selecting(pod) {
                    self.queue.add(key_of(owner.meta()));
                }
            }
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let labels_changed = old.metadata.labels != new.metadata.labels;
                if new.metadata.deletion_timestamp.is_some() {
                    self.pod_deleted(new);
                    if labels_changed {
                        self.pod_deleted(old);
                    }
                    return;
                }
                let ns = new.namespace().unwrap_or_default();
                let (old_ref, new_ref) = (
                    ownership::controller_of(&old.metadata),
                    ownership::controller_of(&new.metadata),
                );
                let ref_changed = old_ref != new_ref;
                if ref_changed
                    && let Some(r) = old_ref
                    && let Some(owner) = self.resolve(&ns, r)
                {
                    self.queue.add(key_of(owner.meta()));
                }
                if let Some(r) = new_ref {
                    if let Some(owner) = self.resolve(&ns, r) {
                        let key = key_of(owner.meta());
                        let min_ready = owner.min_ready_seconds();
                        if !podutil::is_ready(old) && podutil::is_ready(new) && min_ready > 0 {
                            self.queue
                                .add_after(key.clone(), Duration::from_secs(min_ready as u64));
                        }
                        self.queue.add(key);
                    }
                    return;
                }
                if labels_changed || ref_changed {
                    for owner in self.owners_selecting(new) {
                        self.queue.add(key_of(owner.meta()));
                    }
                }
            }
            Change::Deleted(pod) => self.pod_deleted(pod),
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        let Some(r) = ownership::controller_of(&pod.metadata) else {
            return;
        };
        let Some(owner) = self.resolve(&ns, r) else {
            return;
        };
        let key = key_of(owner.meta());
        self.expectations.deletion_observed(&key, &podutil::key(pod));
        self.queue.add(key);
    }

    /// One reconcile of `namespace/name`.
    pub async fn sync(&self, key: &str) -> Result<(), SyncError> {
        let (ns, name) = split_key(key);
        let Some(owner) = self.owners.get(ns, name) else {
            tracing::debug!(controller = R::CONTROLLER, key, "deleted");
            self.expectations.delete(key);
            return Ok(());
        };
        let needs_sync = self.expectations.satisfied(key);
        let selector = match owner.selector() {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(controller = R::CONTROLLER, key, error = %e, "invalid selector; skipping");
                return Ok(());
            }
        };
        let active: Vec<Arc<Pod>> = self
            .pods
            .list(ns)
            .into_iter()
            .filter(|p| podutil::is_active(p))
            .collect();
        let owner_info = Owner::of(&*owner);
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let owner_api: Api<R> = Api::namespaced(self.client.clone(), ns);
        let claimed = ownership::claim(
            &pods_api,
            &owner_info,
            active,
            |p| selector.matches(&p.metadata.labels.clone().unwrap_or_default()),
            ownership::recheck_owner(owner_api.clone(), &owner_info),
        )
        .await?;
        let manage_error = if needs_sync && owner.meta().deletion_timestamp.is_none() {
            self.manage(&owner, key, &claimed).await.err()
        } else {
            None
        };
        let stored = owner.replica_status();
        let now = Timestamp::now();
        let new = status::calculate(
            &stored,
            owner.replicas(),
            &kind::template_labels(&*owner),
            owner.min_ready_seconds(),
            &claimed,
            manage_error.as_deref(),
            now,
        );
        let generation = owner.meta().generation.unwrap_or(0);
        if status::needs_update(&stored, &new, generation) {
            let mut new = new.clone();
            new.observed_generation = generation;
            write_status(&owner_api, &owner, &new).await?;
        }
        if manage_error.is_none()
            && owner.min_ready_seconds() > 0
            && new.ready_replicas == owner.replicas()
            && new.available_replicas != owner.replicas()
        {
            self.queue
                .add_after(key, Duration::from_secs(owner.min_ready_seconds() as u64));
        }
        match manage_error {
            Some(e) => Err(SyncError::Manage(e)),
            None => Ok(()),
        }
    }

    /// Creates or deletes pods towards the desired count; the error text on failure.
    async fn manage(&self, owner: &Arc<R>, key: &str, pods: &[Arc<Pod>]) -> Result<(), String> {
        let desired = owner.replicas().max(0) as usize;
        if pods.len() < desired {
            let diff = (desired - pods.len()).min(self.burst);
            self.expectations.expect_creations(key, diff);
            let (created, err) = slow_start(diff, SLOW_START_INITIAL_BATCH, || self.create_pod(owner)).await;
            for _ in created..diff {
                self.expectations.creation_observed(key);
            }
            return err.map_or(Ok(()), Err);
        }
        if pods.len() > desired {
            let diff = (pods.len() - desired).min(self.burst);
            let victims = ranking::pods_to_delete(self.ranked(owner, pods), diff, Timestamp::now());
            self.expectations
                .expect_deletions(key, victims.iter().map(|p| podutil::key(p)));
            let results = futures::future::join_all(victims.iter().map(|p| self.delete_pod(owner, p))).await;
            let mut first_err = None;
            for (pod, res) in victims.iter().zip(results) {
                if let Err(e) = res {
                    self.expectations.deletion_observed(key, &podutil::key(pod));
                    if let Some(e) = e {
                        first_err.get_or_insert(e);
                    }
                }
            }
            return first_err.map_or(Ok(()), Err);
        }
        Ok(())
    }

    /// `pods` with the number of related pods (of the owner's siblings under the same
    /// controller) on their node.
    fn ranked(&self, owner: &R, pods: &[Arc<Pod>]) -> Vec<ranking::Ranked> {
        let ns = owner.namespace().unwrap_or_default();
        let mut related_owners: HashSet<String> = HashSet::new();
        related_owners.insert(owner.meta().uid.clone().unwrap_or_default());
        if let Some(parent) = ownership::controller_of(owner.meta()) {
            for sibling in self.owners.list(&ns) {
                if ownership::controller_of(sibling.meta()).is_some_and(|r| r.uid == parent.uid) {
                    related_owners.insert(sibling.meta().uid.clone().unwrap_or_default());
                }
            }
        }
        let mut on_node: HashMap<String, usize> = HashMap::new();
        for p in self.pods.list(&ns) {
            if !podutil::is_active(&p) {
                continue;
            }
            if ownership::controller_of(&p.metadata).is_some_and(|r| related_owners.contains(&r.uid)) {
                let node = podutil::node_name(&p);
                if !node.is_empty() {
                    *on_node.entry(node.to_string()).or_default() += 1;
                }
            }
        }
        pods.iter()
            .map(|p| ranking::Ranked {
                pod: p.clone(),
                colocated: on_node.get(podutil::node_name(p)).copied().unwrap_or(0),
            })
            .collect()
    }

    async fn create_pod(&self, owner: &R) -> Result<(), String> {
        let ns = owner.namespace().unwrap_or_default();
        let pod = match pod_from_template(owner) {
            Ok(p) => p,
            Err(e) => return Err(e),
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                self.events.normal(
                    owner,
                    "SuccessfulCreate",
                    "Create",
                    format!("Created pod: {}", created.name_any()),
                );
                Ok(())
            }
            Err(e) if namespace_terminating(&e) => Ok(()),
            Err(e) => {
                let msg = api_message(&e);
                self.events
                    .warning(owner, "FailedCreate", "Create", format!("Error creating: {msg}"));
                Err(msg)
            }
        }
    }

    /// `Err(None)` when the pod was already gone, `Err(Some(text))` on a failure.
    async fn delete_pod(&self, owner: &R, pod: &Pod) -> Result<(), Option<String>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        match api.delete(&pod.name_any(), &DeleteParams::default()).await {
            Ok(_) => {
                self.events.normal(
                    owner,
                    "SuccessfulDelete",
                    "Delete",
                    format!("Deleted pod: {}", pod.name_any()),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Err(None),
            Err(e) => {
                let msg = api_message(&e);
                self.events
                    .warning(owner, "FailedDelete", "Delete", format!("Error deleting: {msg}"));
                Err(Some(msg))
            }
        }
    }
}

/// Writes the status with an update of the status subresource (the verb upstream's bootstrap
/// roles grant), retrying once on a conflict with a fresh read, as upstream does.
async fn write_status<R: ReplicaKind>(
    api: &Api<R>,
    owner: &R,
    status: &ReplicaStatus,
) -> Result<(), kube::Error> {
    let name = owner.name_any();
    match api
        .replace_status(&name, &PostParams::default(), &owner.with_status(status))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let fresh = api.get(&name).await?;
            api.replace_status(&name, &PostParams::default(), &fresh.with_status(status))
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// The API server's message for an API error, else the error's text.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Creating in a namespace being deleted: upstream ignores it.
fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("because it is being terminated"))
}

/// The pod an owner creates: the template's labels, annotations, finalizers and spec, named
/// `<owner>-<random>`, controlled by the owner.
pub fn pod_from_template<R: ReplicaKind>(owner: &R) -> Result<Pod, String> {
    let template = owner.template().cloned().unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    if meta.labels.as_ref().is_none_or(|l| l.is_empty()) {
        return Err("unable to create pods, no labels".into());
    }
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", owner.name_any())),
            namespace: owner.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![Owner::of(owner).controller_ref()]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    })
}

/// Runs `count` calls of `f` in batches of 1, 2, 4, ... (starting at `initial`), stopping after
/// the first batch with a failure; returns how many succeeded and the first error.
pub async fn slow_start<F, Fut>(count: usize, initial: usize, f: F) -> (usize, Option<String>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut remaining = count;
    let mut successes = 0;
    let mut batch = initial.max(1).min(remaining);
    while batch > 0 {
        let results = futures::future::join_all((0..batch).map(|_| f())).await;
        let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        successes += batch - errors.len();
        if let Some(e) = errors.into_iter().next() {
            return (successes, Some(e));
        }
        remaining -= batch;
        batch = (2 * batch).min(remaining);
    }
    (successes, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn slow_start_doubles_batches_and_stops_at_the_first_failing_batch() {
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start(10, 1, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await;
        assert_eq!((ok, err), (10, None));
        // Batches 1, 2, 4 succeed; the 4th call onwards fails from call 6: batch of 3 runs all.
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start(20, 1, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n >= 5 { Err("quota".to_string()) } else { Ok(()) } }
        })
        .await;
        assert_eq!(err.as_deref(), Some("quota"));
        assert_eq!(ok, 5, "1 + 2 + 2 of the batch of 4");
        assert_eq!(calls.load(Ordering::SeqCst), 7, "no batch after the failing one");
    }

    #[test]
    fn pods_carry_the_template_and_a_controller_reference() {
        let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-abc", "namespace": "ns", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        }))
        .unwrap();
        let pod = pod_from_template(&rs).unwrap();
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-abc-"));
        let r = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                r.kind.as_str(),
                r.uid.as_str(),
                r.controller,
                r.block_owner_deletion
            ),
            ("ReplicaSet", "u1", Some(true), Some(true))
        );
        assert_eq!(pod.metadata.annotations.unwrap()["a"], "b");
        let mut unlabeled = rs;
        unlabeled.spec.template.as_mut().unwrap().metadata = None;
        assert_eq!(
            pod_from_template(&unlabeled).unwrap_err(),
            "unable to create pods, no labels"
        );
    }
}
