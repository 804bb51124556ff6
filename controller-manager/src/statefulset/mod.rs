//! The StatefulSet controller: pods with stable names `<set>-<ordinal>` and stable storage (one
//! PVC per volume claim template and ordinal, created before the pod, owned as
//! `persistentVolumeClaimRetentionPolicy` says), created in order (OrderedReady) or all at once
//! (Parallel), deleted from the highest ordinal on scale-down, replaced from the highest
//! ordinal down to the partition on a RollingUpdate (or only when deleted, OnDelete), with the
//! template's history kept as ControllerRevisions and the status `kubectl rollout status`
//! reads. Each sync reads the shared informers' stores; [`decide`] makes the decisions.

pub mod decide;
pub mod identity;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use api_util::labels::LabelSelector;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::controllers::{ControllerContext, ControllerError};
use crate::events::EventSink;
use crate::expectations::{EXPECTATIONS_TIMEOUT, Expectations};
use crate::history::{self, History, HistoryError, POD_REVISION_LABEL, REVISION_HASH_LABEL};
use crate::informer::Store;
use crate::ownership::{self, Owner};
use crate::podutil;
use crate::replicaset::api_message;
use crate::routing::{Router, Workload};
use crate::workqueue::{RateLimits, WorkQueue, run_workers};
use decide::{Action, PodState, SetSpec, Strategy, Terminal};
use identity::Retention;

/// The controller's settings.
#[derive(Debug, Clone)]
pub struct StatefulSetConfig {
    /// `--concurrent-statefulset-syncs` (5).
    pub workers: usize,
}

impl Default for StatefulSetConfig {
    fn default() -> Self {
        StatefulSetConfig { workers: 5 }
    }
}

/// Upstream's default `revisionHistoryLimit`.
const DEFAULT_HISTORY_LIMIT: i32 = 10;

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
    /// Acting on a pod or claim failed.
    #[error("{0}")]
    Act(String),
}

/// Runs the controller until shutdown.
pub async fn run(ctx: ControllerContext) -> Result<(), ControllerError> {
    let workers = ctx.config.statefulset.workers;
    let sets = ctx.informers.informer::<StatefulSet>();
    let pods = ctx.informers.informer::<Pod>();
    let revisions = ctx.informers.informer::<ControllerRevision>();
    let claims = ctx.informers.informer::<PersistentVolumeClaim>();
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        sets: sets.store(),
        pods: pods.store(),
        claims: claims.store(),
        history: History::new(ctx.client.clone(), revisions.store()),
        queue: WorkQueue::with_metrics("statefulset", RateLimits::default(), ctx.metrics.clone()),
        expectations: Arc::default(),
        events: EventSink::new(ctx.client.clone(), "statefulset-controller", &ctx.identity),
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
    tokio::select! {
        () = ctx.shutdown.cancelled() => return Ok(()),
        () = async {
            sets.wait_synced().await;
            pods.wait_synced().await;
            revisions.wait_synced().await;
            claims.wait_synced().await;
        } => {}
    }
    tracing::info!(
        controller = "statefulset",
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
    sets: Arc<Store<StatefulSet>>,
    pods: Arc<Store<Pod>>,
    claims: Arc<Store<PersistentVolumeClaim>>,
    history: History,
    queue: WorkQueue,
    expectations: Arc<Expectations>,
    events: EventSink,
}

fn selector_of(set: &StatefulSet) -> Result<LabelSelector, String> {
    LabelSelector::from_label_selector(&set.spec.selector).map_err(|e| e.to_string())
}

impl Controller {
    /// One reconcile of `namespace/name`.
    async fn sync(&self, key: &str) -> Result<(), SyncError> {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let Some(set) = self.sets.get(ns, name) else {
            self.expectations.delete(key);
            return Ok(());
        };
        if !self.expectations.satisfied(key) {
            tracing::debug!(key, "waiting for pod creations and deletions to be observed");
            // Should the watch never show them, act again once they expire.
            self.queue.add_after(key, EXPECTATIONS_TIMEOUT);
            return Ok(());
        }
        let selector = match selector_of(&set) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                self.events.warning(
                    &*set,
                    "SelectingAll",
                    "Select",
                    "This StatefulSet is selecting all pods. A non-empty selector is required.".into(),
                );
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "invalid selector; skipping");
                return Ok(());
            }
        };
        let owner = Owner::of(&*set);
        let set_api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        let revisions = self
            .history
            .claim(
                &owner,
                &selector,
                ownership::recheck_owner(set_api.clone(), &owner),
            )
            .await?;
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let candidates: Vec<Arc<Pod>> = self
            .pods
            .list(ns)
            .into_iter()
            .filter(|p| identity::ordinal_of(name, p).is_some())
            .collect();
        let pods = ownership::claim(
            &pods_api,
            &owner,
            candidates,
            |p| selector.matches(&p.metadata.labels.clone().unwrap_or_default()),
            ownership::recheck_owner(set_api.clone(), &owner),
        )
        .await?;
        let (current, update, collision_count) = self.revisions(&set, &owner, &revisions).await?;
        let spec = set_spec(&set, &current, &update);
        let now = Timestamp::now();
        let min_ready = min_ready_seconds(&set);
        let states: Vec<PodState> = pods
            .iter()
            .filter_map(|p| Some(pod_state(&set, p, identity::ordinal_of(name, p)?, min_ready, now)))
            .collect();
        let mut act_error = None;
        if set.metadata.deletion_timestamp.is_none() {
            if let Err(e) = self.fix_claim_owners(&set, &owner, &pods).await {
                act_error = Some(e);
            } else {
                let actions = decide::plan(&spec, &states);
                act_error = self
                    .act(&set, key, &owner, &pods, &current, &update, actions)
                    .await
                    .err();
            }
        }
        let counts = decide::counts(&spec, &states);
        let mut status = StatefulSetStatus {
            observed_generation: set.metadata.generation,
            replicas: counts.replicas,
            ready_replicas: Some(counts.ready),
            available_replicas: Some(counts.available),
            current_replicas: Some(counts.current),
            updated_replicas: Some(counts.updated),
            current_revision: Some(current.name_any()),
            update_revision: Some(update.name_any()),
            collision_count: Some(collision_count),
            conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
        };
        if matches!(spec.strategy, Strategy::RollingUpdate { .. })
            && counts.updated == counts.replicas
            && counts.ready == counts.replicas
        {
            status.current_replicas = status.updated_replicas;
            status.current_revision = status.update_revision.clone();
        }
        if set.status.as_ref() != Some(&status) {
            write_status(&set_api, &set, &status).await?;
        }
        let mut live: HashSet<String> = pods
            .iter()
            .filter_map(|p| p.labels().get(POD_REVISION_LABEL).cloned())
            .collect();
        live.insert(current.name_any());
        live.insert(update.name_any());
        live.extend(status.current_revision.clone());
        let limit = set.spec.revision_history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
        let mut all = revisions.clone();
        if !all.iter().any(|r| r.name_any() == update.name_any()) {
            all.push(update.clone());
            history::sort(&mut all);
        }
        for name in history::to_truncate(&all, &live, limit) {
            self.history.delete(ns, name).await?;
        }
        if min_ready > 0 && counts.ready != counts.available {
            self.queue
                .add_after(key, Duration::from_secs(min_ready as u64 + 1));
        }
        match act_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The current and update revisions (creating or renumbering the update revision as
    /// needed) and the collision count used.
    async fn revisions(
        &self,
        set: &StatefulSet,
        owner: &Owner,
        revisions: &[ControllerRevision],
    ) -> Result<(ControllerRevision, ControllerRevision, i32), SyncError> {
        let spec = set.spec.clone();
        let data = history::template_patch(&spec.template);
        let status = set.status.clone().unwrap_or_default();
        let mut collision_count = status.collision_count.unwrap_or(0);
        let next = history::next_number(revisions);
        let equal: Vec<&ControllerRevision> = revisions.iter().filter(|r| r.data.0 == data).collect();
        let update = match (equal.last(), revisions.last()) {
            (Some(eq), Some(last)) if eq.name_any() == last.name_any() => (*eq).clone(),
            (Some(eq), _) => self.history.renumber(eq, next).await?,
            (None, _) => {
                let labels = spec
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                let annotations = set.metadata.annotations.clone();
                self.history
                    .create(owner.namespace.as_str(), &mut collision_count, |c| {
                        let hash = history::hash_data(&data, Some(c));
                        history::new_revision(
                            owner,
                            &labels,
                            annotations.clone(),
                            data.clone(),
                            next,
                            REVISION_HASH_LABEL,
                            &hash,
                        )
                    })
                    .await?
            }
        };
        let current = status
            .current_revision
            .as_deref()
            .and_then(|n| revisions.iter().find(|r| r.name_any() == n))
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collision_count))
    }

    /// Puts the owner references the retention policy asks for on the claims of `pods`.
    async fn fix_claim_owners(
        &self,
        set: &StatefulSet,
        owner: &Owner,
        pods: &[Arc<Pod>],
    ) -> Result<(), SyncError> {
        let policy = Retention::of(set);
        let start = identity::start_ordinal(set);
        let end = start + identity::replicas(set);
        let set_name = set.name_any();
        let ns = set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
            let Some(ordinal) = identity::ordinal_of(&set_name, pod) else {
                continue;
            };
            let scaled_down = ordinal < start || ordinal >= end;
            for t in identity::claim_templates(set) {
                let name = identity::claim_name(&t.name_any(), &set_name, ordinal);
                let Some(claim) = self.claims.get(&ns, &name) else {
                    continue;
                };
                if claim.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let current = claim.metadata.owner_references.clone().unwrap_or_default();
                if let Some(refs) = identity::claim_owner_refs(&current, owner, pod, policy, scaled_down) {
                    let mut updated = (*claim).clone();
                    updated.metadata.owner_references = Some(refs);
                    match api.replace(&name, &PostParams::default(), &updated).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(())
    }

    /// Carries out `actions` in order, stopping at the first failure.
    #[allow(clippy::too_many_arguments)]
    async fn act(
        &self,
        set: &StatefulSet,
        key: &str,
        owner: &Owner,
        pods: &[Arc<Pod>],
        current: &ControllerRevision,
        update: &ControllerRevision,
        actions: Vec<Action>,
    ) -> Result<(), SyncError> {
        let set_name = set.name_any();
        let pod_at = |ordinal: i32| {
            pods.iter()
                .find(|p| identity::ordinal_of(&set_name, p) == Some(ordinal))
                .cloned()
        };
        let creations = actions
            .iter()
            .filter(|a| matches!(a, Action::Create { .. }))
            .count();
        let deletions: Vec<String> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Recreate { ordinal, .. }
                | Action::ScaleDown { ordinal }
                | Action::Update { ordinal } => pod_at(*ordinal).map(|p| podutil::key(&p)),
                _ => None,
            })
            .collect();
        if creations > 0 || !deletions.is_empty() {
            self.expectations.expect(key, creations, deletions);
        }
        let mut first_err = None;
        for action in actions {
            if first_err.is_some() {
                // Undo the expectations of the steps not taken.
                match &action {
                    Action::Create { .. } => self.expectations.creation_observed(key),
                    Action::Recreate { ordinal, .. }
                    | Action::ScaleDown { ordinal }
                    | Action::Update { ordinal } => {
                        if let Some(p) = pod_at(*ordinal) {
                            self.expectations.deletion_observed(key, &podutil::key(&p));
                        }
                    }
                    _ => {}
                }
                continue;
            }
            let result = match &action {
                Action::Create { ordinal, revision } => {
                    let template = if *revision == current.name_any() {
                        history::template_of(current)
                    } else {
                        history::template_of(update)
                    };
                    let template = template.unwrap_or_else(|| set.spec.template.clone());
                    let r = self.create_pod(set, owner, &template, *ordinal, revision).await;
                    if r.is_err() {
                        self.expectations.creation_observed(key);
                    }
                    r
                }
                Action::EnsureClaims { ordinal } => {
                    self.ensure_claims(set, owner, *ordinal).await.map(|_| ())
                }
                Action::FixIdentity { ordinal } => match pod_at(*ordinal) {
                    Some(p) => self.fix_identity(set, &p, *ordinal).await,
                    None => Ok(()),
                },
                Action::Recreate { ordinal, failed } => match pod_at(*ordinal) {
                    Some(p) => {
                        let (reason, what) = if *failed {
                            ("RecreatingFailedPod", "failed")
                        } else {
                            ("RecreatingTerminatedPod", "terminated")
                        };
                        self.events.warning(
                            set,
                            reason,
                            "Recreate",
                            format!(
                                "StatefulSet {}/{} is recreating {what} Pod {}",
                                owner.namespace,
                                set_name,
                                p.name_any()
                            ),
                        );
                        self.delete_pod(key, set, &p).await
                    }
                    None => Ok(()),
                },
                Action::ScaleDown { ordinal } | Action::Update { ordinal } => match pod_at(*ordinal) {
                    Some(p) => {
                        tracing::info!(key, pod = %p.name_any(), ?action, "deleting pod");
                        self.delete_pod(key, set, &p).await
                    }
                    None => Ok(()),
                },
            };
            if let Err(e) = result {
                first_err = Some(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Creates the claims of `ordinal` that do not exist; `Err` when one is being deleted
    /// (the pod must wait for it to go).
    async fn ensure_claims(&self, set: &StatefulSet, owner: &Owner, ordinal: i32) -> Result<(), SyncError> {
        let ns = set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let pod_name = identity::pod_name(&set.name_any(), ordinal);
        let policy = Retention::of(set);
        for mut claim in identity::claims_for(set, ordinal) {
            let name = claim.name_any();
            if let Some(existing) = self.claims.get(&ns, &name) {
                if existing.metadata.deletion_timestamp.is_some() {
                    return Err(SyncError::Act(format!(
                        "pod {pod_name} of StatefulSet {} waits for its claim {name} being deleted",
                        set.name_any()
                    )));
                }
                continue;
            }
            let placeholder = Pod::default();
            claim.metadata.owner_references =
                identity::claim_owner_refs(&[], owner, &placeholder, policy, false).filter(|r| !r.is_empty());
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => self.events.normal(
                    set,
                    "SuccessfulCreate",
                    "Create",
                    format!(
                        "create Claim {name} Pod {pod_name} in StatefulSet {} success",
                        set.name_any()
                    ),
                ),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    let msg = format!(
                        "create Claim {name} for Pod {pod_name} in StatefulSet {} failed error: {}",
                        set.name_any(),
                        api_message(&e)
                    );
                    self.events.warning(set, "FailedCreate", "Create", msg.clone());
                    return Err(SyncError::Act(msg));
                }
            }
        }
        Ok(())
    }

    async fn create_pod(
        &self,
        set: &StatefulSet,
        owner: &Owner,
        template: &PodTemplateSpec,
        ordinal: i32,
        revision: &str,
    ) -> Result<(), SyncError> {
        self.ensure_claims(set, owner, ordinal).await?;
        let pod = identity::new_pod(set, template, ordinal, revision);
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &owner.namespace);
        match api.create(&PostParams::default(), &pod).await {
            Ok(_) => {
                self.events.normal(
                    set,
                    "SuccessfulCreate",
                    "Create",
                    format!("create Pod {name} in StatefulSet {} successful", owner.name),
                );
                Ok(())
            }
            // Still there from before (the watch has not shown it yet).
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Err(SyncError::Act(format!("pod {name} already exists")))
            }
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("being terminated") => Ok(()),
            Err(e) => {
                let msg = format!(
                    "create Pod {name} in StatefulSet {} failed error: {}",
                    owner.name,
                    api_message(&e)
                );
                self.events.warning(set, "FailedCreate", "Create", msg.clone());
                Err(SyncError::Act(msg))
            }
        }
    }

    async fn delete_pod(&self, key: &str, set: &StatefulSet, pod: &Pod) -> Result<(), SyncError> {
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                self.events.normal(
                    set,
                    "SuccessfulDelete",
                    "Delete",
                    format!("delete Pod {name} in StatefulSet {} successful", set.name_any()),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                self.expectations.deletion_observed(key, &podutil::key(pod));
                Ok(())
            }
            Err(e) => {
                self.expectations.deletion_observed(key, &podutil::key(pod));
                let msg = format!(
                    "delete Pod {name} in StatefulSet {} failed error: {}",
                    set.name_any(),
                    api_message(&e)
                );
                self.events.warning(set, "FailedDelete", "Delete", msg.clone());
                Err(SyncError::Act(msg))
            }
        }
    }

    async fn fix_identity(&self, set: &StatefulSet, pod: &Pod, ordinal: i32) -> Result<(), SyncError> {
        let labels = identity::missing_identity_labels(set, pod, ordinal);
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"metadata": {"labels": labels, "uid": pod.metadata.uid}});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {
                self.events.normal(
                    set,
                    "SuccessfulUpdate",
                    "Update",
                    format!("update Pod {name} in StatefulSet {} successful", set.name_any()),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => {
                let msg = format!(
                    "update Pod {name} in StatefulSet {} failed error: {}",
                    set.name_any(),
                    api_message(&e)
                );
                self.events.warning(set, "FailedUpdate", "Update", msg.clone());
                Err(SyncError::Act(msg))
            }
        }
    }
}

impl Workload for StatefulSet {
    fn pod_selector(&self) -> Option<LabelSelector> {
        selector_of(self).ok().filter(|s| !s.is_empty())
    }

    fn adopts(&self, pod: &Pod) -> bool {
        identity::ordinal_of(&self.name_any(), pod).is_some()
    }

    fn min_ready_seconds(&self) -> i32 {
        min_ready_seconds(self)
    }
}

fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec.min_ready_seconds.unwrap_or(0).max(0)
}

/// The spec as [`decide`] needs it.
fn set_spec(set: &StatefulSet, current: &ControllerRevision, update: &ControllerRevision) -> SetSpec {
    let spec = set.spec.clone();
    let replicas = identity::replicas(set);
    let strategy = spec.update_strategy.unwrap_or_default();
    let strategy = if strategy.type_.as_deref() == Some("OnDelete") {
        Strategy::OnDelete
    } else {
        let ru = strategy.rolling_update;
        Strategy::RollingUpdate {
            partition: ru.as_ref().map(|r| r.partition.unwrap_or(0)),
            max_unavailable: ru.as_ref().and_then(|r| r.max_unavailable.as_ref()).map(|v| {
                crate::deployment::util::scaled_value(v, replicas, false)
                    .unwrap_or(1)
                    .max(1)
            }),
        }
    };
    SetSpec {
        start: identity::start_ordinal(set),
        replicas,
        ordered: spec.pod_management_policy.as_deref() != Some("Parallel"),
        strategy,
        current_revision: current.name_any(),
        update_revision: update.name_any(),
        current_replicas: set.status.as_ref().and_then(|s| s.current_replicas).unwrap_or(0),
    }
}

/// A pod's state as [`decide`] sees it.
fn pod_state(set: &StatefulSet, pod: &Pod, ordinal: i32, min_ready: i32, now: Timestamp) -> PodState {
    let phase = podutil::phase(pod);
    let running_ready = phase == "Running" && podutil::is_ready(pod);
    PodState {
        ordinal,
        revision: pod.labels().get(POD_REVISION_LABEL).cloned().unwrap_or_default(),
        terminal: match phase {
            "Failed" => Some(Terminal::Failed),
            "Succeeded" => Some(Terminal::Succeeded),
            _ => None,
        },
        terminating: pod.metadata.deletion_timestamp.is_some(),
        pending: phase == "Pending" || phase.is_empty(),
        running_ready,
        available: running_ready && podutil::is_available(pod, min_ready, now),
        identity_ok: identity::missing_identity_labels(set, pod, ordinal).is_empty(),
    }
}

/// Writes the status through the status subresource, retrying once on a conflict.
async fn write_status(
    api: &Api<StatefulSet>,
    set: &StatefulSet,
    status: &StatefulSetStatus,
) -> Result<(), kube::Error> {
    let name = set.name_any();
    let mut updated = set.clone();
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
