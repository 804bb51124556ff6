//! The DaemonSet controller: one pod per eligible node ([`eligibility`]), pinned to its node by
//! node affinity so the default scheduler binds it, created when a node appears or becomes
//! eligible and deleted where it may no longer run; RollingUpdate (within `maxUnavailable`, or
//! surging within `maxSurge`) or OnDelete; the template's history as ControllerRevisions; and
//! the status `kubectl rollout status` reads. Each sync reads the shared informers' stores;
//! [`decide`] makes the decisions.

pub mod decide;
pub mod eligibility;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use api_util::labels::LabelSelector;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::controllers::{ControllerContext, ControllerError};
use crate::deployment::util::{compute_hash, scaled_value};
use crate::events::EventSink;
use crate::expectations::{EXPECTATIONS_TIMEOUT, Expectations};
use crate::history::{self, History, HistoryError, POD_REVISION_LABEL};
use crate::informer::{Change, Store};
use crate::ownership::{self, Owner};
use crate::podutil;
use crate::replicaset::{api_message, slow_start};
use crate::routing::{Router, Workload, key_of};
use crate::workqueue::{RateLimits, WorkQueue, run_workers};
use decide::{DaemonPod, NodePods};
use eligibility::Eligibility;

/// The controller's settings.
#[derive(Debug, Clone)]
pub struct DaemonSetConfig {
    /// `--concurrent-daemonset-syncs` (2).
    pub workers: usize,
}

impl Default for DaemonSetConfig {
    fn default() -> Self {
        DaemonSetConfig { workers: 2 }
    }
}

/// Most pods created or deleted in one sync (upstream's `BurstReplicas`).
const BURST_REPLICAS: usize = 250;
/// Upstream's default `revisionHistoryLimit`.
const DEFAULT_HISTORY_LIMIT: i32 = 10;
/// The annotation the API server keeps the template generation in (apps/v1).
const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// The pod label carrying it.
const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The first and longest wait before a node's failed daemon pod is deleted again.
const FAILED_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(15 * 60));

/// Failures of one sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Claiming pods failed.
    #[error(transparent)]
    Claim(#[from] ownership::ClaimError),
    /// Reading or writing the history failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// Creating or deleting pods failed.
    #[error("{0}")]
    Act(String),
}

/// Runs the controller until shutdown.
pub async fn run(ctx: ControllerContext) -> Result<(), ControllerError> {
    let workers = ctx.config.daemonset.workers;
    let sets = ctx.informers.informer::<DaemonSet>();
    let pods = ctx.informers.informer::<Pod>();
    let nodes = ctx.informers.informer::<Node>();
    let revisions = ctx.informers.informer::<ControllerRevision>();
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        sets: sets.store(),
        pods: pods.store(),
        nodes: nodes.store(),
        history: History::new(ctx.client.clone(), revisions.store()),
        queue: WorkQueue::with_metrics("daemonset", RateLimits::default(), ctx.metrics.clone()),
        expectations: Arc::default(),
        events: EventSink::new(ctx.client.clone(), "daemonset-controller", &ctx.identity),
        failed_backoff: Mutex::default(),
    });
    let router = Arc::new(Router {
        owners: c.sets.clone(),
        queue: c.queue.clone(),
        expectations: c.expectations.clone(),
    });
    let r = router.clone();
    sets.add_handler(move |ch| r.on_owner(ch));
    let r = router.clone();
    pods.add_handler(move |ch| r.on_pod(ch));
    revisions.add_handler(move |ch| router.on_owned(ch));
    let h = c.clone();
    nodes.add_handler(move |ch| h.on_node(ch));
    tokio::select! {
        () = ctx.shutdown.cancelled() => return Ok(()),
        () = async {
            sets.wait_synced().await;
            pods.wait_synced().await;
            nodes.wait_synced().await;
            revisions.wait_synced().await;
        } => {}
    }
    tracing::info!(
        controller = "daemonset",
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

struct Controller {
    client: kube::Client,
    sets: Arc<Store<DaemonSet>>,
    pods: Arc<Store<Pod>>,
    nodes: Arc<Store<Node>>,
    history: History,
    queue: WorkQueue,
    expectations: Arc<Expectations>,
    events: EventSink,
    /// Per `<set key>/<node>`: when a failed pod may next be deleted, and the next delay.
    failed_backoff: Mutex<HashMap<String, (Instant, Duration)>>,
}

fn selector_of(ds: &DaemonSet) -> Result<LabelSelector, String> {
    LabelSelector::from_label_selector(&ds.spec.selector).map_err(|e| e.to_string())
}

fn template_spec(ds: &DaemonSet) -> k8s_openapi::api::core::v1::PodSpec {
    ds.spec.template.spec.clone().unwrap_or_default()
}

impl Workload for DaemonSet {
    fn pod_selector(&self) -> Option<LabelSelector> {
        selector_of(self).ok().filter(|s| !s.is_empty())
    }

    fn min_ready_seconds(&self) -> i32 {
        min_ready_seconds(self)
    }
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec.min_ready_seconds.unwrap_or(0).max(0)
}

/// The template generation the API server recorded, if any.
fn template_generation(ds: &DaemonSet) -> Option<String> {
    ds.annotations().get(TEMPLATE_GENERATION_ANNOTATION).cloned()
}

/// True when the pod is at the current revision (upstream's `IsPodUpdated`).
fn is_updated(pod: &Pod, hash: &str, generation: Option<&str>) -> bool {
    let labels = pod.labels();
    (!hash.is_empty() && labels.get(POD_REVISION_LABEL).map(String::as_str) == Some(hash))
        || generation.is_some_and(|g| labels.get(TEMPLATE_GENERATION_LABEL).map(String::as_str) == Some(g))
}

/// `(max_surge, max_unavailable)` of a RollingUpdate against `desired` nodes (rounded up; at
/// least one unavailable when both are zero); `None` for OnDelete.
fn rolling_limits(ds: &DaemonSet, desired: i32) -> Option<(i32, i32)> {
    let strategy = ds.spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref() == Some("OnDelete") {
        return None;
    }
    let ru = strategy.rolling_update.unwrap_or_default();
    let scaled = |v: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>, default: i32| {
        v.map_or(Ok(default), |v| scaled_value(v, desired, true))
            .unwrap_or(default)
            .max(0)
    };
    let surge = scaled(ru.max_surge.as_ref(), 0);
    let mut unavailable = scaled(ru.max_unavailable.as_ref(), 1);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Some((surge, unavailable))
}

/// True when the update strategy surges (a RollingUpdate with `maxSurge` above zero).
fn allows_surge(ds: &DaemonSet) -> bool {
    rolling_limits(ds, 1).is_some_and(|(s, _)| s > 0)
}

impl Controller {
    fn on_node(&self, change: &Change<Node>) {
        let sets = self.sets.list_all();
        match change {
            Change::Added(_) | Change::Deleted(_) => {
                for ds in sets {
                    self.queue.add(key_of(&*ds));
                }
            }
            Change::Updated { old, new } => {
                if old.metadata.labels == new.metadata.labels && old.spec == new.spec {
                    return;
                }
                for ds in sets {
                    let spec = template_spec(&ds);
                    if eligibility::eligibility(&spec, old) != eligibility::eligibility(&spec, new) {
                        self.queue.add(key_of(&*ds));
                    }
                }
            }
        }
    }

    /// One reconcile of `namespace/name`.
    async fn sync(&self, key: &str) -> Result<(), SyncError> {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let Some(ds) = self.sets.get(ns, name) else {
            self.expectations.delete(key);
            self.failed_backoff
                .lock()
                .retain(|k, _| !k.starts_with(&format!("{key}/")));
            return Ok(());
        };
        let selector = match selector_of(&ds) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                self.events.warning(
                    &*ds,
                    "SelectingAll",
                    "Select",
                    "This daemon set is selecting all pods. A non-empty selector is required.".into(),
                );
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "invalid selector; skipping");
                return Ok(());
            }
        };
        let owner = Owner::of(&*ds);
        let ds_api: Api<DaemonSet> = Api::namespaced(self.client.clone(), ns);
        let revisions = self
            .history
            .claim(
                &owner,
                &selector,
                ownership::recheck_owner(ds_api.clone(), &owner),
            )
            .await?;
        let (cur, hash, collision_count) = self.construct_history(&ds, &owner, &revisions).await?;
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pods = ownership::claim(
            &pods_api,
            &owner,
            self.pods.list(ns),
            |p| selector.matches(&p.metadata.labels.clone().unwrap_or_default()),
            ownership::recheck_owner(ds_api.clone(), &owner),
        )
        .await?;
        let mut nodes: Vec<Arc<Node>> = self.nodes.list_all();
        nodes.sort_by_key(|n| n.name_any());
        let satisfied = self.expectations.satisfied(key);
        if !satisfied {
            // Should the watch never show the pending changes, act again once they expire.
            self.queue.add_after(key, EXPECTATIONS_TIMEOUT);
        }
        let mut act_error = None;
        if satisfied && ds.metadata.deletion_timestamp.is_none() {
            act_error = self.update(&ds, key, &nodes, &pods, &hash).await.err();
            if act_error.is_none() {
                act_error = self.cleanup_history(&ds, &revisions, &cur, &pods).await.err();
            }
        }
        let view = self.view(&ds, &nodes, &pods, &hash);
        let c = decide::counts(view.iter().map(|(_, e, p)| (e.should_run, p.as_slice())));
        let stored = ds.status.clone().unwrap_or_default();
        let status = DaemonSetStatus {
            desired_number_scheduled: c.desired,
            current_number_scheduled: c.current,
            number_misscheduled: c.misscheduled,
            number_ready: c.ready,
            updated_number_scheduled: Some(c.updated),
            number_available: Some(c.available),
            number_unavailable: Some(c.unavailable()),
            observed_generation: if satisfied {
                ds.metadata.generation
            } else {
                stored.observed_generation
            },
            collision_count: (stored.collision_count.is_some() || collision_count > 0)
                .then_some(collision_count),
            conditions: stored.conditions.clone(),
        };
        if stored != status {
            write_status(&ds_api, &ds, &status).await?;
        }
        let min_ready = min_ready_seconds(&ds);
        if min_ready > 0 && c.ready != c.available {
            self.queue
                .add_after(key, Duration::from_secs(min_ready as u64 + 1));
        }
        match act_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every node with its eligibility and the daemon pods meant for it.
    fn view(
        &self,
        ds: &DaemonSet,
        nodes: &[Arc<Node>],
        pods: &[Arc<Pod>],
        hash: &str,
    ) -> Vec<(String, Eligibility, Vec<DaemonPod>)> {
        let spec = template_spec(ds);
        let generation = template_generation(ds);
        let min_ready = min_ready_seconds(ds);
        let now = Timestamp::now();
        let mut by_node: HashMap<String, Vec<DaemonPod>> = HashMap::new();
        for p in pods {
            let Some(node) = eligibility::target_node(p) else {
                continue;
            };
            let phase = podutil::phase(p);
            by_node.entry(node).or_default().push(DaemonPod {
                name: p.name_any(),
                scheduled: !podutil::node_name(p).is_empty(),
                created: p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                updated: is_updated(p, hash, generation.as_deref()),
                ready: podutil::is_ready(p),
                available: podutil::is_available(p, min_ready, now),
                terminating: p.metadata.deletion_timestamp.is_some(),
                failed: phase == "Failed",
                succeeded: phase == "Succeeded",
            });
        }
        nodes
            .iter()
            .map(|n| {
                let name = n.name_any();
                let pods = by_node.remove(&name).unwrap_or_default();
                (name, eligibility::eligibility(&spec, n), pods)
            })
            .collect()
    }

    /// The manage loop, then (once its work is observed) the rolling update.
    async fn update(
        &self,
        ds: &DaemonSet,
        key: &str,
        nodes: &[Arc<Node>],
        pods: &[Arc<Pod>],
        hash: &str,
    ) -> Result<(), SyncError> {
        let view = self.view(ds, nodes, pods, hash);
        let surge = allows_surge(ds);
        let mut create_on = Vec::new();
        let mut delete = Vec::new();
        for (node, e, node_pods) in &view {
            let mut d = decide::manage_node(*e, node_pods, surge);
            if d.create {
                create_on.push(node.clone());
            }
            for failed in &d.failed {
                let backoff_key = format!("{key}/{node}");
                let mut backoff = self.failed_backoff.lock();
                let now = Instant::now();
                match backoff.get(&backoff_key).copied() {
                    Some((at, _)) if at > now => {
                        self.queue.add_after(key, at - now);
                        d.delete.retain(|n| n != failed);
                        continue;
                    }
                    Some((_, delay)) => {
                        let next = (delay * 2).min(FAILED_BACKOFF.1);
                        backoff.insert(backoff_key, (now + delay, next));
                    }
                    None => {
                        backoff.insert(backoff_key, (now + FAILED_BACKOFF.0, FAILED_BACKOFF.0 * 2));
                    }
                }
                drop(backoff);
                self.events.warning(
                    ds,
                    "FailedDaemonPod",
                    "Delete",
                    format!(
                        "Found failed daemon pod {}/{failed} on node {node}, will try to kill it",
                        ds.namespace().unwrap_or_default()
                    ),
                );
            }
            delete.extend(d.delete);
        }
        // Pods pinned to nodes that no longer exist and not yet bound.
        let known: HashSet<&str> = view.iter().map(|(n, ..)| n.as_str()).collect();
        for p in pods {
            if podutil::node_name(p).is_empty()
                && p.metadata.deletion_timestamp.is_none()
                && eligibility::target_node(p).is_some_and(|n| !known.contains(n.as_str()))
            {
                delete.push(p.name_any());
            }
        }
        if !create_on.is_empty() || !delete.is_empty() {
            return self.sync_nodes(ds, key, pods, delete, create_on, hash).await;
        }
        let Some((max_surge, max_unavailable)) =
            rolling_limits(ds, view.iter().filter(|(_, e, _)| e.should_run).count() as i32)
        else {
            return Ok(());
        };
        let desired = view.iter().filter(|(_, e, _)| e.should_run).count() as i32;
        let nodes: Vec<NodePods> = view
            .into_iter()
            .filter(|(_, _, p)| !p.is_empty())
            .map(|(node, e, pods)| NodePods {
                node,
                should_run: e.should_run,
                pods,
            })
            .collect();
        let step = decide::rolling_update(&nodes, max_surge, max_unavailable, desired);
        if step.delete.is_empty() && step.create_on.is_empty() {
            return Ok(());
        }
        tracing::info!(key, delete = ?step.delete, create_on = ?step.create_on, "rolling update step");
        self.sync_nodes(ds, key, pods, step.delete, step.create_on, hash)
            .await
    }

    /// Deletes `delete` and creates a pod on each of `create_on` (slow-start batches), with
    /// expectations.
    async fn sync_nodes(
        &self,
        ds: &DaemonSet,
        key: &str,
        pods: &[Arc<Pod>],
        mut delete: Vec<String>,
        mut create_on: Vec<String>,
        hash: &str,
    ) -> Result<(), SyncError> {
        delete.sort();
        delete.dedup();
        create_on.truncate(BURST_REPLICAS);
        delete.truncate(BURST_REPLICAS);
        let ns = ds.namespace().unwrap_or_default();
        let doomed: Vec<&Arc<Pod>> = pods.iter().filter(|p| delete.contains(&p.name_any())).collect();
        self.expectations
            .expect(key, create_on.len(), doomed.iter().map(|p| podutil::key(p)));
        let mut first_err = None;
        let next = AtomicUsize::new(0);
        let (created, err) = slow_start(create_on.len(), 1, || {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let node = create_on.get(i).cloned().unwrap_or_default();
            async move { self.create_pod(ds, &node, hash).await }
        })
        .await;
        for _ in created..create_on.len() {
            self.expectations.creation_observed(key);
        }
        if let Some(e) = err {
            first_err = Some(e);
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let results = futures::future::join_all(doomed.iter().map(|p| {
            let api = api.clone();
            async move {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: p.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                api.delete(&p.name_any(), &params).await
            }
        }))
        .await;
        for (p, r) in doomed.iter().zip(results) {
            match r {
                Ok(_) => self.events.normal(
                    ds,
                    "SuccessfulDelete",
                    "Delete",
                    format!("Deleted pod: {}", p.name_any()),
                ),
                Err(e) => {
                    self.expectations.deletion_observed(key, &podutil::key(p));
                    if matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409) {
                        continue;
                    }
                    let msg = api_message(&e);
                    self.events
                        .warning(ds, "FailedDelete", "Delete", format!("Error deleting: {msg}"));
                    first_err.get_or_insert(msg);
                }
            }
        }
        match first_err {
            Some(e) => Err(SyncError::Act(e)),
            None => Ok(()),
        }
    }

    async fn create_pod(&self, ds: &DaemonSet, node: &str, hash: &str) -> Result<(), String> {
        let ns = ds.namespace().unwrap_or_default();
        let template = ds.spec.template.clone();
        let meta = template.metadata.unwrap_or_default();
        let mut labels: BTreeMap<String, String> = meta.labels.unwrap_or_default();
        labels.insert(POD_REVISION_LABEL.into(), hash.to_string());
        if let Some(g) = template_generation(ds) {
            labels.insert(TEMPLATE_GENERATION_LABEL.into(), g);
        }
        let mut spec = template.spec.unwrap_or_default();
        eligibility::add_daemon_tolerations(&mut spec);
        eligibility::pin_to_node(&mut spec, node);
        let pod = Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", ds.name_any())),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                annotations: meta.annotations,
                finalizers: meta.finalizers,
                owner_references: Some(vec![Owner::of(ds).controller_ref()]),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
            status: None,
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                self.events.normal(
                    ds,
                    "SuccessfulCreate",
                    "Create",
                    format!("Created pod: {}", created.name_any()),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("being terminated") => Ok(()),
            Err(e) => {
                let msg = api_message(&e);
                self.events
                    .warning(ds, "FailedCreate", "Create", format!("Error creating: {msg}"));
                Err(msg)
            }
        }
    }

    /// The current revision (created or renumbered as needed), its hash and the collision
    /// count used (upstream's `constructHistory`).
    async fn construct_history(
        &self,
        ds: &DaemonSet,
        owner: &Owner,
        revisions: &[ControllerRevision],
    ) -> Result<(ControllerRevision, String, i32), SyncError> {
        let template = ds.spec.template.clone();
        let data = history::template_patch(&template);
        let mut current = Vec::new();
        let mut old = Vec::new();
        for rev in revisions {
            let mut rev = rev.clone();
            if !rev.labels().contains_key(POD_REVISION_LABEL) {
                let name = rev.name_any();
                rev.labels_mut().insert(POD_REVISION_LABEL.into(), name);
                rev = self.history.update(&rev).await?;
            }
            if rev.data.0 == data {
                current.push(rev);
            } else {
                old.push(rev);
            }
        }
        let number = history::next_number(&old);
        let stored = ds.status.as_ref().and_then(|s| s.collision_count);
        let mut collision_count = stored.unwrap_or(0);
        let cur = match current.len() {
            0 => {
                let labels = template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                let annotations = ds.metadata.annotations.clone();
                self.history
                    .create(&owner.namespace, &mut collision_count, |c| {
                        let hash = compute_hash(&template, (stored.is_some() || c > 0).then_some(c));
                        history::new_revision(
                            owner,
                            &labels,
                            annotations.clone(),
                            data.clone(),
                            number,
                            POD_REVISION_LABEL,
                            &hash,
                        )
                    })
                    .await?
            }
            _ => {
                // Keep the newest of equal revisions; the others go.
                current.sort_by_key(|r| r.revision);
                let keep = current.pop().unwrap_or_default();
                for dup in current {
                    self.history.delete(&owner.namespace, &dup.name_any()).await?;
                }
                if keep.revision.unwrap_or(0) < number {
                    self.history.renumber(&keep, number).await?
                } else {
                    keep
                }
            }
        };
        let hash = cur
            .labels()
            .get(POD_REVISION_LABEL)
            .cloned()
            .unwrap_or_else(|| cur.name_any());
        Ok((cur, hash, collision_count))
    }

    /// Deletes the oldest revisions beyond `revisionHistoryLimit` that no pod uses.
    async fn cleanup_history(
        &self,
        ds: &DaemonSet,
        revisions: &[ControllerRevision],
        cur: &ControllerRevision,
        pods: &[Arc<Pod>],
    ) -> Result<(), SyncError> {
        let limit = ds.spec.revision_history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
        let in_use: HashSet<&str> = pods
            .iter()
            .filter_map(|p| p.labels().get(POD_REVISION_LABEL).map(String::as_str))
            .collect();
        let mut live: HashSet<String> = revisions
            .iter()
            .filter(|r| {
                r.labels()
                    .get(POD_REVISION_LABEL)
                    .is_some_and(|h| in_use.contains(h.as_str()))
            })
            .map(|r| r.name_any())
            .collect();
        live.insert(cur.name_any());
        for name in history::to_truncate(revisions, &live, limit) {
            self.history
                .delete(&ds.namespace().unwrap_or_default(), name)
                .await?;
        }
        Ok(())
    }
}

/// Writes the status through the status subresource, retrying once on a conflict.
async fn write_status(
    api: &Api<DaemonSet>,
    ds: &DaemonSet,
    status: &DaemonSetStatus,
) -> Result<(), kube::Error> {
    let name = ds.name_any();
    let mut updated = ds.clone();
    updated.status = Some(status.clone());
    match api.replace_status(&name, &PostParams::default(), &updated).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let mut fresh = api.get(&name).await?;
            fresh.status = Some(status.clone());
            api.replace_status(&name, &PostParams::default(), &fresh)
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ds(strategy: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": strategy,
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn rolling_limits_round_up_and_never_stall() {
        assert_eq!(
            rolling_limits(&ds(json!({"type": "RollingUpdate"})), 10),
            Some((0, 1))
        );
        let pct =
            ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 0}}));
        assert_eq!(rolling_limits(&pct, 10), Some((0, 3)), "25% of 10 rounds up");
        let surge =
            ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}}));
        assert_eq!(rolling_limits(&surge, 5), Some((1, 0)));
        assert!(allows_surge(&surge));
        let zero =
            ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}));
        assert_eq!(rolling_limits(&zero, 5), Some((0, 1)), "both zero: one at a time");
        assert_eq!(rolling_limits(&ds(json!({"type": "OnDelete"})), 5), None);
        assert!(!allows_surge(&ds(json!({"type": "OnDelete"}))));
    }

    #[test]
    fn pods_are_updated_by_hash_or_template_generation() {
        let pod = |labels: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "labels": labels}})).unwrap()
        };
        assert!(is_updated(
            &pod(json!({"controller-revision-hash": "h1"})),
            "h1",
            None
        ));
        assert!(!is_updated(
            &pod(json!({"controller-revision-hash": "h0"})),
            "h1",
            None
        ));
        assert!(is_updated(
            &pod(json!({"pod-template-generation": "2"})),
            "h1",
            Some("2")
        ));
        assert!(!is_updated(&pod(json!({})), "", None));
    }
}
