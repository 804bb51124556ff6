//! Routing informer changes to the workloads they concern, for controllers that own pods (and
//! other objects, e.g. ControllerRevisions) through controller references: a change to a
//! workload queues it; a pod's change queues its controller (lowering its expectations when a
//! creation or deletion is observed, and again after `minReadySeconds` when it turns ready) or,
//! for an orphan, every workload that would adopt it; an owned object's change queues its
//! controller.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use api_util::labels::LabelSelector;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::expectations::Expectations;
use crate::informer::{Change, Store};
use crate::ownership;
use crate::podutil;
use crate::workqueue::WorkQueue;

/// What routing needs of a workload kind.
pub trait Workload:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The pod selector, when valid and not empty (an empty selector adopts nothing).
    fn pod_selector(&self) -> Option<LabelSelector>;
    /// Whether an orphan pod the selector matches is one this workload adopts (a
    /// StatefulSet's pods must also be named after it).
    fn adopts(&self, _pod: &Pod) -> bool {
        true
    }
    /// `spec.minReadySeconds`.
    fn min_ready_seconds(&self) -> i32;
}

/// `namespace/name`.
pub fn key_of<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Routes changes to the keys of workloads of kind `W`.
pub struct Router<W> {
    /// The workloads.
    pub owners: Arc<Store<W>>,
    /// Their queue.
    pub queue: WorkQueue,
    /// Their expectations.
    pub expectations: Arc<Expectations>,
}

impl<W: Workload> Router<W> {
    /// A workload changed: queue it (forgetting the expectations of a deleted or replaced one).
    pub fn on_owner(&self, change: &Change<W>) {
        match change {
            Change::Added(w) => self.queue.add(key_of(&**w)),
            Change::Updated { old, new } => {
                if old.meta().uid != new.meta().uid {
                    self.expectations.delete(&key_of(&**old));
                }
                self.queue.add(key_of(&**new));
            }
            Change::Deleted(w) => {
                let key = key_of(&**w);
                self.expectations.delete(&key);
                self.queue.add(key);
            }
        }
    }

    /// The workload a controller reference points to, if it is of kind `W` and still exists.
    pub fn resolve(&self, namespace: &str, r: &OwnerReference) -> Option<Arc<W>> {
        if r.kind != W::kind(&()) {
            return None;
        }
        let w = self.owners.get(namespace, &r.name)?;
        (w.meta().uid.as_deref() == Some(r.uid.as_str())).then_some(w)
    }

    fn controller(&self, obj: &impl Resource) -> Option<Arc<W>> {
        let ns = obj.meta().namespace.clone().unwrap_or_default();
        ownership::controller_of(obj.meta()).and_then(|r| self.resolve(&ns, r))
    }

    fn adopters(&self, pod: &Pod) -> Vec<Arc<W>> {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        self.owners
            .list(&pod.namespace().unwrap_or_default())
            .into_iter()
            .filter(|w| w.pod_selector().is_some_and(|s| s.matches(&labels)) && w.adopts(pod))
            .collect()
    }

    /// An object the workloads own (not pods) changed: queue its controller.
    pub fn on_owned<K: Resource>(&self, change: &Change<K>) {
        let obj = match change {
            Change::Added(o) | Change::Deleted(o) => o,
            Change::Updated { new, .. } => new,
        };
        if let Some(w) = self.controller(&**obj) {
            self.queue.add(key_of(&*w));
        }
    }

    /// A pod changed.
    pub fn on_pod(&self, change: &Change<Pod>) {
        match change {
            Change::Added(pod) => {
                if ownership::controller_of(&pod.metadata).is_some() {
                    if let Some(w) = self.controller(&**pod) {
                        let key = key_of(&*w);
                        if pod.metadata.deletion_timestamp.is_some() {
                            self.expectations.deletion_observed(&key, &podutil::key(pod));
                        } else {
                            self.expectations.creation_observed(&key);
                        }
                        self.queue.add(key);
                    }
                    return;
                }
                for w in self.adopters(pod) {
                    self.queue.add(key_of(&*w));
                }
            }
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let (old_ref, new_ref) = (
                    ownership::controller_of(&old.metadata),
                    ownership::controller_of(&new.metadata),
                );
                if old_ref != new_ref
                    && let Some(w) = self.controller(&**old)
                {
                    self.queue.add(key_of(&*w));
                }
                if let Some(w) = self.controller(&**new) {
                    let key = key_of(&*w);
                    if new.metadata.deletion_timestamp.is_some() && old.metadata.deletion_timestamp.is_none()
                    {
                        self.expectations.deletion_observed(&key, &podutil::key(new));
                    }
                    let min_ready = w.min_ready_seconds();
                    if min_ready > 0 && !podutil::is_ready(old) && podutil::is_ready(new) {
                        self.queue
                            .add_after(key.clone(), Duration::from_secs(min_ready as u64 + 1));
                    }
                    self.queue.add(key);
                    return;
                }
                if new_ref.is_none() && (old.metadata.labels != new.metadata.labels || old_ref.is_some()) {
                    for w in self.adopters(new) {
                        self.queue.add(key_of(&*w));
                    }
                }
            }
            Change::Deleted(pod) => {
                if let Some(w) = self.controller(&**pod) {
                    let key = key_of(&*w);
                    self.expectations.deletion_observed(&key, &podutil::key(pod));
                    self.queue.add(key);
                }
            }
        }
    }
}
