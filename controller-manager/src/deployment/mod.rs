//! The Deployment controller, as upstream's: it claims the replica sets its selector matches,
//! finds or creates the new replica set (`<name>-<pod-template-hash>`), and rolls out with
//! RollingUpdate (maxSurge / maxUnavailable) or Recreate, scales proportionally when the
//! deployment is resized mid-rollout, keeps the revision annotations, cleans up old replica
//! sets beyond `revisionHistoryLimit`, honours `paused`, and reports the status with the
//! Progressing (deadline) and Available conditions and `ScalingReplicaSet` events.

pub mod util;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as MetaSelector, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};

use crate::controllers::{ControllerContext, ControllerError};
use crate::events::EventSink;
use crate::informer::{Change, Store};
use crate::ownership::{self, Owner};
use crate::workqueue::{RateLimits, WorkQueue, run_workers};
use util::reasons;

/// Retries before a deployment is dropped from the queue (upstream's `maxRetries`).
pub const MAX_RETRIES: u32 = 15;

/// Failures of one sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Claiming replica sets failed.
    #[error(transparent)]
    Claim(#[from] ownership::ClaimError),
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// The deployment's spec is unusable.
    #[error("{0}")]
    Invalid(String),
    /// A replica set name collided with one the deployment does not own.
    #[error("hash collision creating replica set {0}; collisionCount raised")]
    Collision(String),
}

/// Runs the Deployment controller until shutdown.
pub async fn run(ctx: ControllerContext) -> Result<(), ControllerError> {
    let deployments = ctx.informers.informer::<Deployment>();
    let rss = ctx.informers.informer::<ReplicaSet>();
    let pods = ctx.informers.informer::<Pod>();
    let c = Arc::new(DeploymentController {
        client: ctx.client.clone(),
        deployments: deployments.store(),
        rss: rss.store(),
        pods: pods.store(),
        queue: WorkQueue::with_metrics("deployment", RateLimits::default(), ctx.metrics.clone()),
        events: EventSink::new(ctx.client.clone(), "deployment-controller", &ctx.identity),
    });
    let h = c.clone();
    deployments.add_handler(move |ch| match ch {
        Change::Added(d) | Change::Deleted(d) => h.enqueue(d),
        Change::Updated { new, .. } => h.enqueue(new),
    });
    let h = c.clone();
    rss.add_handler(move |ch| h.on_replica_set(ch));
    let h = c.clone();
    pods.add_handler(move |ch| {
        if let Change::Deleted(p) = ch {
            h.on_pod_deleted(p);
        }
    });
    tokio::select! {
        () = ctx.shutdown.cancelled() => return Ok(()),
        () = async { deployments.wait_synced().await; rss.wait_synced().await; pods.wait_synced().await } => {}
    }
    let workers = ctx.config.concurrent_deployment_syncs;
    tracing::info!(
        controller = "deployment-controller",
        workers,
        "caches synced; starting workers"
    );
    let sync = c.clone();
    run_workers(
        c.queue.clone(),
        workers,
        Some(MAX_RETRIES),
        ctx.shutdown.clone(),
        move |key| {
            let c = sync.clone();
            async move { c.sync(&key).await }
        },
    )
    .await;
    Ok(())
}

/// The controller's state.
pub struct DeploymentController {
    client: kube::Client,
    deployments: Arc<Store<Deployment>>,
    rss: Arc<Store<ReplicaSet>>,
    pods: Arc<Store<Pod>>,
    queue: WorkQueue,
    events: EventSink,
}

fn key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn selector_of(d: &Deployment) -> Result<api_util::labels::LabelSelector, String> {
    api_util::labels::LabelSelector::from_label_selector(&d.spec.selector).map_err(|e| e.to_string())
}

fn selects_everything(s: &MetaSelector) -> bool {
    s.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
}

impl DeploymentController {
    fn enqueue(&self, d: &Deployment) {
        self.queue.add(key(&d.metadata));
    }

    fn resolve(
        &self,
        ns: &str,
        r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Option<Arc<Deployment>> {
        if r.kind != "Deployment" {
            return None;
        }
        let d = self.deployments.get(ns, &r.name)?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(d)
    }

    fn deployments_selecting(&self, rs: &ReplicaSet) -> Vec<Arc<Deployment>> {
        let ns = rs.namespace().unwrap_or_default();
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        self.deployments
            .list(&ns)
            .into_iter()
            .filter(|d| !selects_everything(&d.spec.selector))
            .filter(|d| selector_of(d).is_ok_and(|s| s.matches(&labels)))
            .collect()
    }

    fn on_replica_set(&self, change: &Change<ReplicaSet>) {
        let (old, rs) = match change {
            Change::Added(rs) => (None, rs),
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                (Some(old), new)
            }
            Change::Deleted(rs) => {
                let ns = rs.namespace().unwrap_or_default();
                if let Some(r) = ownership::controller_of(&rs.metadata)
                    && let Some(d) = self.resolve(&ns, r)
                {
                    self.enqueue(&d);
                }
                return;
            }
        };
        let ns = rs.namespace().unwrap_or_default();
        let new_ref = ownership::controller_of(&rs.metadata);
        let old_ref = old.and_then(|o| ownership::controller_of(&o.metadata));
        let ref_changed = old.is_some() && old_ref != new_ref;
        if ref_changed
            && let Some(r) = old_ref
            && let Some(d) = self.resolve(&ns, r)
        {
            self.enqueue(&d);
        }
        if let Some(r) = new_ref {
            if let Some(d) = self.resolve(&ns, r) {
                self.enqueue(&d);
            }
            return;
        }
        let labels_changed = old.is_none_or(|o| o.metadata.labels != rs.metadata.labels);
        if labels_changed || ref_changed {
            for d in self.deployments_selecting(rs) {
                self.enqueue(&d);
            }
        }
    }

    /// A Recreate deployment waits for its old pods to go: sync it once none are left.
    fn on_pod_deleted(&self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        let Some(rs_ref) = ownership::controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        let Some(rs) = self
            .rss
            .get(&ns, &rs_ref.name)
            .filter(|rs| rs.metadata.uid.as_deref() == Some(rs_ref.uid.as_str()))
        else {
            return;
        };
        let Some(d) = ownership::controller_of(&rs.metadata).and_then(|r| self.resolve(&ns, r)) else {
            return;
        };
        if util::is_rolling(&d) {
            return;
        }
        let rs_uids: Vec<String> = self
            .rss
            .list(&ns)
            .iter()
            .filter(|rs| {
                ownership::controller_of(&rs.metadata)
                    .is_some_and(|r| Some(r.uid.as_str()) == d.metadata.uid.as_deref())
            })
            .filter_map(|rs| rs.metadata.uid.clone())
            .collect();
        let left = self
            .pods
            .list(&ns)
            .iter()
            .filter(|p| ownership::controller_of(&p.metadata).is_some_and(|r| rs_uids.contains(&r.uid)))
            .count();
        if left == 0 {
            self.enqueue(&d);
        }
    }

    fn rs_api(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn d_api(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// One reconcile of `namespace/name`.
    pub async fn sync(&self, key: &str) -> Result<(), SyncError> {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let Some(cached) = self.deployments.get(ns, name) else {
            tracing::debug!(key, "deployment deleted");
            return Ok(());
        };
        let mut d = (*cached).clone();
        if selects_everything(&d.spec.selector) {
            self.events.warning(
                &d,
                "SelectingAll",
                "Sync",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let status = d.status.clone().unwrap_or_default();
            if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
                let mut s = status;
                s.observed_generation = d.metadata.generation;
                self.write_status(&mut d, &s).await?;
            }
            return Ok(());
        }
        let rs_list = self.claim_replica_sets(&d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only(&mut d, rs_list).await;
        }
        self.check_paused_conditions(&mut d).await?;
        if d.spec.paused == Some(true) {
            return self.sync_scale(&mut d, rs_list).await;
        }
        if self.is_scaling_event(&d, &rs_list) {
            return self.sync_scale(&mut d, rs_list).await;
        }
        if util::is_rolling(&d) {
            self.rollout_rolling(&mut d, rs_list).await
        } else {
            self.rollout_recreate(&mut d, rs_list).await
        }
    }

    /// The replica sets the deployment controls after adopting and releasing.
    async fn claim_replica_sets(&self, d: &Deployment) -> Result<Vec<ReplicaSet>, SyncError> {
        let ns = d.namespace().unwrap_or_default();
        let selector = selector_of(d).map_err(SyncError::Invalid)?;
        let owner = Owner::of(d);
        let claimed = ownership::claim(
            &self.rs_api(&ns),
            &owner,
            self.rss.list(&ns),
            |rs| selector.matches(&rs.metadata.labels.clone().unwrap_or_default()),
            ownership::recheck_owner(self.d_api(&ns), &owner),
        )
        .await?;
        let mut list: Vec<ReplicaSet> = claimed.iter().map(|rs| (**rs).clone()).collect();
        util::sort_by_creation(&mut list);
        Ok(list)
    }

    /// Writes the deployment's status with an update of the status subresource (the verb
    /// upstream's bootstrap role grants); `d` takes the stored result, so later writes of the
    /// same sync carry the new resourceVersion.
    async fn write_status(&self, d: &mut Deployment, status: &DeploymentStatus) -> Result<(), SyncError> {
        let ns = d.namespace().unwrap_or_default();
        let mut body = d.clone();
        body.status = Some(status.clone());
        let stored = self
            .d_api(&ns)
            .replace_status(&d.name_any(), &PostParams::default(), &body)
            .await?;
        d.metadata.resource_version = stored.metadata.resource_version;
        d.status = stored.status;
        Ok(())
    }

    /// Sets the deployment's revision annotation if it differs (an update, as upstream).
    async fn sync_revision_annotation(&self, d: &mut Deployment, revision: &str) -> Result<bool, SyncError> {
        let current = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(util::REVISION));
        if current.map(String::as_str) == Some(revision) {
            return Ok(false);
        }
        let ns = d.namespace().unwrap_or_default();
        let mut body = d.clone();
        body.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(util::REVISION.into(), revision.into());
        let stored = self
            .d_api(&ns)
            .replace(&d.name_any(), &PostParams::default(), &body)
            .await?;
        d.metadata.resource_version = stored.metadata.resource_version;
        d.metadata.annotations = stored.metadata.annotations;
        Ok(true)
    }

    async fn check_paused_conditions(&self, d: &mut Deployment) -> Result<(), SyncError> {
        if !util::has_progress_deadline(d) {
            return Ok(());
        }
        let mut status = d.status.clone().unwrap_or_default();
        let cond = util::condition(&status, "Progressing");
        if cond.is_some_and(|c| c.reason.as_deref() == Some(reasons::TIMED_OUT)) {
            return Ok(());
        }
        let paused_cond = cond.is_some_and(|c| c.reason.as_deref() == Some(reasons::PAUSED));
        let paused = d.spec.paused == Some(true);
        let now = Timestamp::now();
        let update = if paused && !paused_cond {
            util::set_condition(
                &mut status,
                util::new_condition(
                    "Progressing",
                    "Unknown",
                    reasons::PAUSED,
                    "Deployment is paused".into(),
                    now,
                ),
            );
            true
        } else if !paused && paused_cond {
            util::set_condition(
                &mut status,
                util::new_condition(
                    "Progressing",
                    "Unknown",
                    reasons::RESUMED,
                    "Deployment is resumed".into(),
                    now,
                ),
            );
            true
        } else {
            false
        };
        if update {
            self.write_status(d, &status).await?;
        }
        Ok(())
    }

    /// True when an active replica set was sized for a different deployment size.
    fn is_scaling_event(&self, d: &Deployment, rs_list: &[ReplicaSet]) -> bool {
        rs_list
            .iter()
            .filter(|rs| util::rs_replicas(rs) > 0)
            .any(|rs| util::desired_replicas_annotation(rs).is_some_and(|n| n != util::replicas(d)))
    }

    /// The new replica set (created when asked and missing) and the old ones; also keeps the
    /// revision annotations in step.
    async fn new_and_old(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), SyncError> {
        let new_uid = util::find_new_rs(d, rs_list).and_then(|rs| rs.metadata.uid.clone());
        let old: Vec<ReplicaSet> = rs_list
            .iter()
            .filter(|rs| new_uid.is_none() || rs.metadata.uid != new_uid)
            .cloned()
            .collect();
        let new = self.new_replica_set(d, rs_list, &old, create).await?;
        Ok((new, old))
    }

    async fn new_replica_set(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        old: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, SyncError> {
        let ns = d.namespace().unwrap_or_default();
        let new_revision = (util::max_revision(old) + 1).to_string();
        let now = Timestamp::now();
        if let Some(existing) = util::find_new_rs(d, rs_list) {
            let mut rs = existing.clone();
            let annotations_changed = util::set_new_rs_annotations(
                d,
                &mut rs,
                &new_revision,
                true,
                util::MAX_REVISION_HISTORY_CHARS,
            );
            let min_ready_changed = rs.spec.min_ready_seconds != d.spec.min_ready_seconds;
            if annotations_changed || min_ready_changed {
                rs.spec.min_ready_seconds = d.spec.min_ready_seconds;
                rs = self
                    .rs_api(&ns)
                    .replace(&rs.name_any(), &PostParams::default(), &rs)
                    .await?;
            }
            let rev = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(util::REVISION))
                .cloned()
                .unwrap_or_default();
            self.sync_revision_annotation(d, &rev).await?;
            let mut status = d.status.clone().unwrap_or_default();
            if util::has_progress_deadline(d) && util::condition(&status, "Progressing").is_none() {
                let msg = format!("Found new replica set {:?}", rs.name_any());
                util::set_condition(
                    &mut status,
                    util::new_condition("Progressing", "True", reasons::FOUND_NEW_RS, msg, now),
                );
                self.write_status(d, &status).await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = util::compute_hash(&d.spec.template, collision_count);
        let mut template = d.spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(util::HASH_LABEL.into(), hash.clone());
        let mut selector = d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(util::HASH_LABEL.into(), hash.clone());
        let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", d.name_any())),
                namespace: Some(ns.clone()),
                owner_references: Some(vec![Owner::of(&*d).controller_ref()]),
                labels,
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: d.spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        let mut all: Vec<&ReplicaSet> = old.iter().collect();
        all.push(&rs);
        let count = util::new_rs_new_replicas(d, &all, &rs).map_err(SyncError::Invalid)?;
        rs.spec.replicas = Some(count);
        util::set_new_rs_annotations(d, &mut rs, &new_revision, false, util::MAX_REVISION_HISTORY_CHARS);
        let api = self.rs_api(&ns);
        let (created, already_existed) = match api.create(&PostParams::default(), &rs).await {
            Ok(created) => (created, false),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = api.get(&rs.name_any()).await?;
                let ours = ownership::controller_of(&existing.metadata)
                    .is_some_and(|r| Some(r.uid.as_str()) == d.metadata.uid.as_deref());
                let same = existing
                    .spec
                    .template
                    .as_ref()
                    .is_some_and(|t| util::equal_ignore_hash(t, &d.spec.template));
                if ours && same {
                    (existing, true)
                } else {
                    let mut status = d.status.clone().unwrap_or_default();
                    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    self.write_status(d, &status).await?;
                    return Err(SyncError::Collision(rs.name_any()));
                }
            }
            Err(e) => {
                if util::has_progress_deadline(d) {
                    let msg = format!(
                        "Failed to create new replica set {:?}: {}",
                        rs.name_any(),
                        crate::replicaset::api_message(&e)
                    );
                    let mut status = d.status.clone().unwrap_or_default();
                    util::set_condition(
                        &mut status,
                        util::new_condition(
                            "Progressing",
                            "False",
                            reasons::FAILED_RS_CREATE,
                            msg.clone(),
                            now,
                        ),
                    );
                    self.events.warning(&*d, reasons::FAILED_RS_CREATE, "Create", msg);
                    self.write_status(d, &status).await?;
                }
                return Err(e.into());
            }
        };
        if !already_existed && count > 0 {
            self.events.normal(
                &*d,
                "ScalingReplicaSet",
                "Scale",
                format!("Scaled up replica set {} from 0 to {count}", created.name_any()),
            );
        }
        self.sync_revision_annotation(d, &new_revision).await?;
        if !already_existed && util::has_progress_deadline(d) {
            let msg = format!("Created new replica set {:?}", created.name_any());
            let mut status = d.status.clone().unwrap_or_default();
            util::set_condition(
                &mut status,
                util::new_condition("Progressing", "True", reasons::NEW_RS_CREATED, msg, now),
            );
            self.write_status(d, &status).await?;
        }
        Ok(Some(created))
    }

    /// Scales (or just re-annotates) a replica set; emits `ScalingReplicaSet` when the size
    /// changes. Returns whether the size changed.
    async fn scale_rs(
        &self,
        rs: &ReplicaSet,
        size: i32,
        d: &Deployment,
        op: &str,
    ) -> Result<(bool, ReplicaSet), SyncError> {
        let from = util::rs_replicas(rs);
        let size_changed = from != size;
        let desired = util::replicas(d);
        let max = desired + util::max_surge(d);
        if !size_changed && !util::replicas_annotations_need_update(rs, desired, max) {
            return Ok((false, rs.clone()));
        }
        let mut copy = rs.clone();
        copy.spec.replicas = Some(size);
        util::set_replicas_annotations(&mut copy, desired, max);
        let ns = rs.namespace().unwrap_or_default();
        let updated = self
            .rs_api(&ns)
            .replace(&rs.name_any(), &PostParams::default(), &copy)
            .await?;
        if size_changed {
            self.events.normal(
                d,
                "ScalingReplicaSet",
                "Scale",
                format!("Scaled {op} replica set {} from {from} to {size}", rs.name_any()),
            );
        }
        Ok((size_changed, updated))
    }

    async fn scale_and_record(
        &self,
        rs: &ReplicaSet,
        size: i32,
        d: &Deployment,
    ) -> Result<(bool, ReplicaSet), SyncError> {
        let from = util::rs_replicas(rs);
        if from == size {
            return Ok((false, rs.clone()));
        }
        let op = if from < size { "up" } else { "down" };
        self.scale_rs(rs, size, d, op).await
    }

    /// Scaling when the deployment is resized (upstream's `scale`).
    async fn scale(
        &self,
        d: &Deployment,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), SyncError> {
        let mut old_sorted: Vec<&ReplicaSet> = old.iter().collect();
        old_sorted.sort_by(|a, b| {
            util::created(b)
                .cmp(&util::created(a))
                .then_with(|| b.metadata.name.cmp(&a.metadata.name))
        });
        let mut all: Vec<&ReplicaSet> = old_sorted.clone();
        if let Some(n) = new_rs {
            all.push(n);
        }
        let active: Vec<&ReplicaSet> = all
            .iter()
            .copied()
            .filter(|rs| util::rs_replicas(rs) > 0)
            .collect();
        let active_or_latest = match active.len() {
            0 => new_rs.or(old_sorted.first().copied()),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(rs) = active_or_latest {
            if util::rs_replicas(rs) != util::replicas(d) {
                self.scale_and_record(rs, util::replicas(d), d).await?;
            }
            return Ok(());
        }
        if util::is_saturated(d, new_rs) {
            for rs in old.iter().filter(|rs| util::rs_replicas(rs) > 0) {
                self.scale_and_record(rs, 0, d).await?;
            }
            return Ok(());
        }
        if util::is_rolling(d) {
            let mut active = active;
            let (sizes, op) = util::proportional_sizes(d, &mut active);
            let by_name: HashMap<String, i32> = sizes.into_iter().collect();
            for rs in active {
                let size = by_name
                    .get(&rs.name_any())
                    .copied()
                    .unwrap_or(util::rs_replicas(rs));
                self.scale_rs(rs, size, d, op).await?;
            }
        }
        Ok(())
    }

    /// Scaling and status only (paused, or a resize): upstream's `sync`.
    async fn sync_scale(&self, d: &mut Deployment, rs_list: Vec<ReplicaSet>) -> Result<(), SyncError> {
        let (new_rs, old) = self.new_and_old(d, &rs_list, false).await?;
        self.scale(d, new_rs.as_ref(), &old).await?;
        if d.spec.paused == Some(true) {
            self.cleanup(d, &old).await?;
        }
        let mut all: Vec<&ReplicaSet> = old.iter().collect();
        all.extend(new_rs.as_ref());
        self.sync_status(d, &all, new_rs.as_ref()).await
    }

    async fn sync_status_only(&self, d: &mut Deployment, rs_list: Vec<ReplicaSet>) -> Result<(), SyncError> {
        let (new_rs, old) = self.new_and_old(d, &rs_list, false).await?;
        let mut all: Vec<&ReplicaSet> = old.iter().collect();
        all.extend(new_rs.as_ref());
        self.sync_status(d, &all, new_rs.as_ref()).await
    }

    async fn sync_status(
        &self,
        d: &mut Deployment,
        all: &[&ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<(), SyncError> {
        let status = util::calculate_status(all, new_rs, d, Timestamp::now());
        if util::same_status(&d.status.clone().unwrap_or_default(), &status) {
            return Ok(());
        }
        self.write_status(d, &status).await
    }

    /// Deletes old, empty replica sets beyond `revisionHistoryLimit`, lowest revision first.
    async fn cleanup(&self, d: &Deployment, old: &[ReplicaSet]) -> Result<(), SyncError> {
        let Some(limit) = d.spec.revision_history_limit else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| {
            util::revision(a)
                .cmp(&util::revision(b))
                .then_with(|| util::created(a).cmp(&util::created(b)))
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
        let ns = d.namespace().unwrap_or_default();
        for rs in cleanable.into_iter().take(diff as usize) {
            let status_replicas = rs.status.as_ref().map_or(0, |s| s.replicas);
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if status_replicas != 0
                || util::rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            tracing::debug!(replica_set = %rs.name_any(), "trying to clean up replica set for deployment");
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: rs.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match self.rs_api(&ns).delete(&rs.name_any(), &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn rollout_rolling(&self, d: &mut Deployment, rs_list: Vec<ReplicaSet>) -> Result<(), SyncError> {
        let (new_rs, old) = self.new_and_old(d, &rs_list, true).await?;
        let Some(new_rs) = new_rs else {
            return Ok(());
        };
        let mut all: Vec<&ReplicaSet> = old.iter().collect();
        all.push(&new_rs);
        if self.reconcile_new_rs(&all, &new_rs, d).await? {
            return self.sync_rollout_status(d, &all, Some(&new_rs)).await;
        }
        let active_old: Vec<ReplicaSet> = old
            .iter()
            .filter(|rs| util::rs_replicas(rs) > 0)
            .cloned()
            .collect();
        if self.reconcile_old_rss(&all, active_old, &new_rs, d).await? {
            return self.sync_rollout_status(d, &all, Some(&new_rs)).await;
        }
        let status = d.status.clone().unwrap_or_default();
        if util::deployment_complete(d, &status) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, &all, Some(&new_rs)).await
    }

    async fn reconcile_new_rs(
        &self,
        all: &[&ReplicaSet],
        new_rs: &ReplicaSet,
        d: &Deployment,
    ) -> Result<bool, SyncError> {
        let want = util::replicas(d);
        let have = util::rs_replicas(new_rs);
        if have == want {
            return Ok(false);
        }
        if have > want {
            return Ok(self.scale_and_record(new_rs, want, d).await?.0);
        }
        let count = util::new_rs_new_replicas(d, all, new_rs).map_err(SyncError::Invalid)?;
        Ok(self.scale_and_record(new_rs, count, d).await?.0)
    }

    async fn reconcile_old_rss(
        &self,
        all: &[&ReplicaSet],
        old: Vec<ReplicaSet>,
        new_rs: &ReplicaSet,
        d: &Deployment,
    ) -> Result<bool, SyncError> {
        let old_refs: Vec<&ReplicaSet> = old.iter().collect();
        if util::spec_replicas(&old_refs) == 0 {
            return Ok(false);
        }
        let all_pods = util::spec_replicas(all);
        let min_available = util::replicas(d) - util::max_unavailable(d);
        let new_unavailable = util::rs_replicas(new_rs) - util::rs_available(new_rs);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let (old, cleaned) = self.cleanup_unhealthy(old, d, max_scaled_down).await?;
        let mut all_after: Vec<&ReplicaSet> = old.iter().collect();
        all_after.push(new_rs);
        let scaled = self.scale_down_old_for_rolling(&all_after, &old, d).await?;
        Ok(cleaned + scaled > 0)
    }

    /// Scales down old replica sets' unavailable pods first (oldest first).
    async fn cleanup_unhealthy(
        &self,
        mut old: Vec<ReplicaSet>,
        d: &Deployment,
        max: i32,
    ) -> Result<(Vec<ReplicaSet>, i32), SyncError> {
        util::sort_by_creation(&mut old);
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= max {
                break;
            }
            let replicas = util::rs_replicas(rs);
            let available = util::rs_available(rs);
            if replicas == 0 || replicas == available {
                continue;
            }
            let down = (max - total).min(replicas - available);
            let (_, updated) = self.scale_and_record(rs, replicas - down, d).await?;
            *rs = updated;
            total += down;
        }
        Ok((old, total))
    }

    async fn scale_down_old_for_rolling(
        &self,
        all: &[&ReplicaSet],
        old: &[ReplicaSet],
        d: &Deployment,
    ) -> Result<i32, SyncError> {
        let min_available = util::replicas(d) - util::max_unavailable(d);
        let available = util::available_replicas(all);
        if available <= min_available {
            return Ok(0);
        }
        let mut old: Vec<ReplicaSet> = old.to_vec();
        util::sort_by_creation(&mut old);
        let target = available - min_available;
        let mut total = 0;
        for rs in &old {
            if total >= target {
                break;
            }
            let replicas = util::rs_replicas(rs);
            if replicas == 0 {
                continue;
            }
            let down = replicas.min(target - total);
            self.scale_and_record(rs, replicas - down, d).await?;
            total += down;
        }
        Ok(total)
    }

    async fn rollout_recreate(&self, d: &mut Deployment, rs_list: Vec<ReplicaSet>) -> Result<(), SyncError> {
        let (mut new_rs, mut old) = self.new_and_old(d, &rs_list, false).await?;
        let mut scaled_down = false;
        for rs in old.iter().filter(|rs| util::rs_replicas(rs) > 0) {
            if self.scale_and_record(rs, 0, d).await?.0 {
                scaled_down = true;
            }
        }
        let all_of = |old: &[ReplicaSet], new_rs: &Option<ReplicaSet>| -> Vec<ReplicaSet> {
            let mut all: Vec<ReplicaSet> = old.to_vec();
            all.extend(new_rs.clone());
            all
        };
        if scaled_down || self.old_pods_running(new_rs.as_ref(), &old, &rs_list) {
            let all = all_of(&old, &new_rs);
            let refs: Vec<&ReplicaSet> = all.iter().collect();
            return self.sync_rollout_status(d, &refs, new_rs.as_ref()).await;
        }
        if new_rs.is_none() {
            (new_rs, old) = self.new_and_old(d, &rs_list, true).await?;
        }
        if let Some(rs) = &new_rs {
            self.scale_and_record(rs, util::replicas(d), d).await?;
        }
        let status = d.status.clone().unwrap_or_default();
        if util::deployment_complete(d, &status) {
            self.cleanup(d, &old).await?;
        }
        let all = all_of(&old, &new_rs);
        let refs: Vec<&ReplicaSet> = all.iter().collect();
        self.sync_rollout_status(d, &refs, new_rs.as_ref()).await
    }

    /// True while pods of old replica sets exist and are not terminal.
    fn old_pods_running(
        &self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
        rs_list: &[ReplicaSet],
    ) -> bool {
        let old_refs: Vec<&ReplicaSet> = old.iter().collect();
        if util::actual_replicas(&old_refs) > 0 {
            return true;
        }
        let new_uid = new_rs.and_then(|rs| rs.metadata.uid.clone());
        let old_uids: Vec<String> = rs_list
            .iter()
            .filter_map(|rs| rs.metadata.uid.clone())
            .filter(|u| Some(u) != new_uid.as_ref())
            .collect();
        let ns = rs_list.first().and_then(|rs| rs.namespace()).unwrap_or_default();
        self.pods.list(&ns).iter().any(|p| {
            ownership::controller_of(&p.metadata).is_some_and(|r| old_uids.contains(&r.uid))
                && !matches!(crate::podutil::phase(p), "Succeeded" | "Failed")
        })
    }

    /// The status with the Progressing condition (upstream's `syncRolloutStatus`), and a
    /// requeue at the progress deadline.
    async fn sync_rollout_status(
        &self,
        d: &mut Deployment,
        all: &[&ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<(), SyncError> {
        let now = Timestamp::now();
        let mut status = util::calculate_status(all, new_rs, d, now);
        if !util::has_progress_deadline(d) {
            util::remove_condition(&mut status, "Progressing");
        }
        let stored = d.status.clone().unwrap_or_default();
        let current = util::condition(&stored, "Progressing").cloned();
        let complete_already = num(status.replicas) == num(status.updated_replicas)
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(reasons::NEW_RS_AVAILABLE));
        if util::has_progress_deadline(d) && !complete_already {
            let name = d.name_any();
            let what = |suffix: &str| match new_rs {
                Some(rs) => format!("ReplicaSet {:?} {suffix}", rs.name_any()),
                None => format!("Deployment {name:?} {suffix}"),
            };
            if util::deployment_complete(d, &status) {
                util::set_condition(
                    &mut status,
                    util::new_condition(
                        "Progressing",
                        "True",
                        reasons::NEW_RS_AVAILABLE,
                        what("has successfully progressed."),
                        now,
                    ),
                );
            } else if util::deployment_progressing(d, &status) {
                let mut c = util::new_condition(
                    "Progressing",
                    "True",
                    reasons::RS_UPDATED,
                    what("is progressing."),
                    now,
                );
                if let Some(cur) = &current {
                    if cur.status.as_deref() == Some("True") {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    util::remove_condition(&mut status, "Progressing");
                }
                util::set_condition(&mut status, c);
            } else if util::deployment_timed_out(d, &status, now) {
                util::set_condition(
                    &mut status,
                    util::new_condition(
                        "Progressing",
                        "False",
                        reasons::TIMED_OUT,
                        what("has timed out progressing."),
                        now,
                    ),
                );
            }
        }
        match replica_failure(all, new_rs) {
            Some(c) => util::set_condition(&mut status, c),
            None => util::remove_condition(&mut status, "ReplicaFailure"),
        }
        if util::same_status(&stored, &status) {
            self.requeue_stuck(d, &status, now);
            return Ok(());
        }
        self.write_status(d, &status).await
    }

    /// Requeues a deployment still progressing so the deadline is checked when it passes.
    fn requeue_stuck(&self, d: &Deployment, new: &DeploymentStatus, now: Timestamp) {
        let stored = d.status.clone().unwrap_or_default();
        let Some(current) = util::condition(&stored, "Progressing") else {
            return;
        };
        if !util::has_progress_deadline(d)
            || util::deployment_complete(d, new)
            || current.reason.as_deref() == Some(reasons::TIMED_OUT)
        {
            return;
        }
        let Some(updated) = current.last_update_time.as_ref() else {
            return;
        };
        let deadline = updated.0
            + k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
                d.spec.progress_deadline_seconds.unwrap_or(0),
            ));
        let after = deadline.duration_since(now);
        let key = key(&d.metadata);
        if after < k8s_openapi::jiff::SignedDuration::from_secs(1) {
            self.queue.add_rate_limited(key);
        } else {
            let secs = after.as_secs_f64() + 1.0;
            self.queue.add_after(key, Duration::from_secs_f64(secs));
        }
    }
}

fn num(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// The first `ReplicaFailure` of the new replica set, else of any, as a deployment condition.
fn replica_failure(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Option<k8s_openapi::api::apps::v1::DeploymentCondition> {
    let failure_of = |rs: &ReplicaSet| {
        rs.status
            .as_ref()?
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some("ReplicaFailure"))
            .map(|c| k8s_openapi::api::apps::v1::DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
    };
    new_rs
        .and_then(failure_of)
        .or_else(|| all.iter().find_map(|rs| failure_of(rs)))
}
