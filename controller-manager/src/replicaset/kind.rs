//! The two kinds one replica reconciler serves: `apps/v1` ReplicaSet and `v1`
//! ReplicationController, seen through what they have in common.

use std::collections::BTreeMap;
use std::fmt::Debug;

use api_util::labels::LabelSelector;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    PodTemplateSpec, ReplicationController, ReplicationControllerCondition, ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A condition of a replica controller's status.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaCondition {
    /// `ReplicaFailure`.
    pub type_: String,
    /// `True` / `False` / `Unknown`.
    pub status: String,
    /// `FailedCreate`, `FailedDelete`.
    pub reason: Option<String>,
    /// The error.
    pub message: Option<String>,
    /// When the status last changed.
    pub last_transition_time: Option<Time>,
}

/// The status fields both kinds share.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplicaStatus {
    /// Active pods the controller owns.
    pub replicas: i32,
    /// Of those, pods whose labels match the template's.
    pub fully_labeled_replicas: i32,
    /// Of those, ready pods.
    pub ready_replicas: i32,
    /// Of those, pods ready for `minReadySeconds`.
    pub available_replicas: i32,
    /// The generation the status describes.
    pub observed_generation: i64,
    /// `ReplicaFailure` when creating or deleting failed.
    pub conditions: Vec<ReplicaCondition>,
}

/// What the replica reconciler needs of its kind.
pub trait ReplicaKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The controller's name (`replicaset-controller`), also its event source.
    const CONTROLLER: &'static str;
    /// Desired pods.
    fn replicas(&self) -> i32;
    /// Seconds a pod must be ready to count as available.
    fn min_ready_seconds(&self) -> i32;
    /// The selector; an error when it is invalid. `None` when it selects nothing.
    fn selector(&self) -> Result<Option<LabelSelector>, String>;
    /// The pod template.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// The current status.
    fn replica_status(&self) -> ReplicaStatus;
    /// A copy carrying `status`.
    fn with_status(&self, status: &ReplicaStatus) -> Self;
}

/// The template's labels.
pub fn template_labels<R: ReplicaKind>(r: &R) -> BTreeMap<String, String> {
    r.template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

impl ReplicaKind for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset-controller";

    fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec.min_ready_seconds.unwrap_or(0)
    }

    fn selector(&self) -> Result<Option<LabelSelector>, String> {
        LabelSelector::from_label_selector(&self.spec.selector)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.template.as_ref()
    }

    fn replica_status(&self) -> ReplicaStatus {
        let s = self.status.clone().unwrap_or_default();
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
            ready_replicas: s.ready_replicas.unwrap_or(0),
            available_replicas: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
            conditions: s
                .conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c: ReplicaSetCondition| ReplicaCondition {
                    type_: c.type_.unwrap_or_default(),
                    status: c.status.unwrap_or_default(),
                    reason: c.reason,
                    message: c.message,
                    last_transition_time: c.last_transition_time,
                })
                .collect(),
        }
    }

    fn with_status(&self, s: &ReplicaStatus) -> Self {
        let mut copy = self.clone();
        let conditions: Vec<ReplicaSetCondition> = s
            .conditions
            .iter()
            .map(|c| ReplicaSetCondition {
                type_: Some(c.type_.clone()),
                status: Some(c.status.clone()),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
            .collect();
        let old = self.status.clone().unwrap_or_default();
        copy.status = Some(ReplicaSetStatus {
            replicas: s.replicas,
            fully_labeled_replicas: Some(s.fully_labeled_replicas),
            ready_replicas: Some(s.ready_replicas),
            available_replicas: Some(s.available_replicas),
            observed_generation: Some(s.observed_generation),
            conditions: (!conditions.is_empty()).then_some(conditions),
            terminating_replicas: old.terminating_replicas,
        });
        copy
    }
}

impl ReplicaKind for ReplicationController {
    const CONTROLLER: &'static str = "replicationcontroller-controller";

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }

    fn selector(&self) -> Result<Option<LabelSelector>, String> {
        let sel = self
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if sel.is_empty() {
            return Ok(None);
        }
        let meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(sel),
            match_expressions: None,
        };
        LabelSelector::from_label_selector(&meta)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn replica_status(&self) -> ReplicaStatus {
        let s = self.status.clone().unwrap_or_default();
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
            ready_replicas: s.ready_replicas.unwrap_or(0),
            available_replicas: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
            conditions: s
                .conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c: ReplicationControllerCondition| ReplicaCondition {
                    type_: c.type_,
                    status: c.status,
                    reason: c.reason,
                    message: c.message,
                    last_transition_time: c.last_transition_time,
                })
                .collect(),
        }
    }

    fn with_status(&self, s: &ReplicaStatus) -> Self {
        let mut copy = self.clone();
        let conditions: Vec<ReplicationControllerCondition> = s
            .conditions
            .iter()
            .map(|c| ReplicationControllerCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
            .collect();
        copy.status = Some(ReplicationControllerStatus {
            replicas: s.replicas,
            fully_labeled_replicas: Some(s.fully_labeled_replicas),
            ready_replicas: Some(s.ready_replicas),
            available_replicas: Some(s.available_replicas),
            observed_generation: Some(s.observed_generation),
            conditions: (!conditions.is_empty()).then_some(conditions),
        });
        copy
    }
}
