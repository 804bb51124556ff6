//! The attempt-to-delete and attempt-to-orphan workers (upstream `attemptToDeleteItem`,
//! `processDeletingDependentsItem`, `attemptToOrphanWorker`): live lookups, then deletes and
//! patches with preconditions so a stale graph never wins over the server.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use serde_json::json;

use super::decide::{Decision, OwnerState, Propagation, decide};
use super::graph::{FOREGROUND_FINALIZER, GraphEvent, Identity, Node, ORPHAN_FINALIZER};
use super::{Error, Shared};

/// How a processed item leaves the queue.
enum Outcome {
    Forget,
    Requeue,
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// The API of the resource serving `api_version` + `kind` in `namespace` (ignored when the
/// resource is cluster-scoped), and whether it is namespaced.
fn api_for(
    shared: &Shared,
    api_version: &str,
    kind: &str,
    namespace: &str,
) -> Result<(Api<DynamicObject>, bool), Error> {
    let d = shared.discovered.read().unwrap_or_else(|p| p.into_inner());
    let Some(r) = d.resource_for(api_version, kind) else {
        shared.rediscover.notify_one();
        return Err(Error::Unmapped {
            api_version: api_version.into(),
            kind: kind.into(),
        });
    };
    let api = if r.namespaced {
        Api::namespaced_with(shared.client.clone(), namespace, &r.api)
    } else {
        Api::all_with(shared.client.clone(), &r.api)
    };
    Ok((api, r.namespaced))
}

/// The live object at `id`, `None` when absent or replaced (another uid).
async fn get_live(shared: &Shared, id: &Identity) -> Result<Option<PartialObjectMeta<DynamicObject>>, Error> {
    let (api, _) = api_for(shared, &id.api_version, &id.kind, &id.namespace)?;
    match api.get_metadata(&id.name).await {
        Ok(o) if o.metadata.uid.as_deref() == Some(id.uid.as_str()) => Ok(Some(o)),
        Ok(_) => Ok(None),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Loops over the attempt-to-delete queue until it shuts down.
pub(crate) async fn delete_worker(shared: Arc<Shared>) {
    let q = shared.attempt_delete.clone();
    while let Some(uid) = q.get().await {
        match attempt_to_delete(&shared, &uid).await {
            Ok(Outcome::Forget) => q.forget(&uid),
            Ok(Outcome::Requeue) => q.add_rate_limited(uid.clone()),
            Err(Error::NamespacedOwnerOfClusterScopedObject(what)) => {
                tracing::info!(item = %what, "garbage collector: cluster-scoped object refers to a namespaced owner, ignoring it");
                q.forget(&uid);
            }
            Err(e @ Error::Unmapped { .. }) => {
                tracing::debug!(uid = %uid, error = %e, "garbage collector: error syncing item");
                q.add_rate_limited(uid.clone());
            }
            Err(e) => {
                tracing::warn!(uid = %uid, error = %e, "garbage collector: error syncing item");
                q.add_rate_limited(uid.clone());
            }
        }
        q.done(&uid);
    }
}

/// Loops over the attempt-to-orphan queue until it shuts down.
pub(crate) async fn orphan_worker(shared: Arc<Shared>) {
    let q = shared.attempt_orphan.clone();
    while let Some(uid) = q.get().await {
        match attempt_to_orphan(&shared, &uid).await {
            Ok(()) => q.forget(&uid),
            Err(e) => {
                tracing::warn!(uid = %uid, error = %e, "garbage collector: orphaning dependents failed");
                q.add_rate_limited(uid.clone());
            }
        }
        q.done(&uid);
    }
}

async fn attempt_to_delete(shared: &Shared, uid: &str) -> Result<Outcome, Error> {
    let Some(item) = shared.node(uid) else {
        return Ok(Outcome::Forget);
    };
    if item.being_deleted && !item.deleting_dependents {
        tracing::debug!(item = %item.identity, "garbage collector: item is being deleted, nothing to do");
        return Ok(Outcome::Forget);
    }
    let Some(latest) = get_live(shared, &item.identity).await? else {
        // Absent (or replaced): the graph drops it and checks its dependents.
        shared.apply(GraphEvent::VirtualDelete(item.identity.clone()));
        return Ok(Outcome::Forget);
    };
    let done = if item.observed {
        Outcome::Forget
    } else {
        Outcome::Requeue
    };
    if item.deleting_dependents {
        process_deleting_dependents(shared, &item).await?;
        return Ok(done);
    }
    let refs = latest.metadata.owner_references.clone().unwrap_or_default();
    if refs.is_empty() {
        return Ok(done);
    }
    let mut classified = Vec::with_capacity(refs.len());
    for r in &refs {
        classified.push((r.clone(), classify(shared, r, &item.identity).await?));
    }
    let (has_dependents, dependent_waits) = shared.with_graph(|g| {
        let deps = g.dependents(uid);
        (!deps.is_empty(), deps.iter().any(|d| d.deleting_dependents))
    });
    let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
    let rv = latest.metadata.resource_version.clone();
    match decide(&classified, &finalizers, has_dependents, dependent_waits) {
        Decision::Keep => {}
        Decision::RemoveReferences(owners) => {
            tracing::debug!(item = %item.identity, ?owners, "garbage collector: removing references to absent or foreground-deleting owners");
            remove_owner_references(shared, &item.identity, &owners).await?;
        }
        Decision::DeleteForeground { unblock } => {
            if unblock {
                tracing::info!(item = %item.identity, "garbage collector: an owner and a dependent are both deleting dependents; making the item's owner references non-blocking to avoid a cycle");
                unblock_owner_references(shared, &item.identity).await?;
            }
            tracing::info!(item = %item.identity, "garbage collector: an owner is deleting its dependents and the item has dependents: deleting it in the foreground");
            delete_object(shared, &item.identity, None, &refs, Propagation::Foreground).await?;
        }
        Decision::Delete(policy) => {
            tracing::info!(item = %item.identity, ?policy, "garbage collector: deleting the object, its owners are gone");
            delete_object(shared, &item.identity, rv, &refs, policy).await?;
        }
    }
    Ok(done)
}

/// Looks `r` (a reference of `item`) up: known absent, else a live GET by name compared by uid.
async fn classify(shared: &Shared, r: &OwnerReference, item: &Identity) -> Result<OwnerState, Error> {
    let cluster_key = Identity::of_reference(r, "");
    let namespaced_key = Identity::of_reference(r, &item.namespace);
    {
        let a = shared.absent.lock().unwrap_or_else(|p| p.into_inner());
        if a.has(&cluster_key) || a.has(&namespaced_key) {
            return Ok(OwnerState::Dangling);
        }
    }
    let (api, namespaced) = api_for(shared, &r.api_version, &r.kind, &item.namespace)?;
    if namespaced && item.namespace.is_empty() {
        return Err(Error::NamespacedOwnerOfClusterScopedObject(item.to_string()));
    }
    let key = if namespaced { namespaced_key } else { cluster_key };
    let owner = match api.get_metadata(&r.name).await {
        Ok(o) => o,
        Err(e) if is_status(&e, 404) => {
            shared.absent.lock().unwrap_or_else(|p| p.into_inner()).add(key);
            return Ok(OwnerState::Dangling);
        }
        Err(e) => return Err(e.into()),
    };
    if owner.metadata.uid.as_deref() != Some(r.uid.as_str()) {
        shared.absent.lock().unwrap_or_else(|p| p.into_inner()).add(key);
        return Ok(OwnerState::Dangling);
    }
    let foreground = owner.metadata.deletion_timestamp.is_some()
        && owner
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == FOREGROUND_FINALIZER);
    Ok(if foreground {
        OwnerState::WaitingForDependents
    } else {
        OwnerState::Solid
    })
}

/// An owner deleting in the foreground: done when no dependent blocks it, else its blocking
/// dependents are (re)queued.
async fn process_deleting_dependents(shared: &Shared, item: &Node) -> Result<(), Error> {
    let blocking = shared.with_graph(|g| g.blocking_dependents(&item.identity.uid));
    if blocking.is_empty() {
        tracing::debug!(item = %item.identity, "garbage collector: no blocking dependents left, removing the foregroundDeletion finalizer");
        return remove_finalizer(shared, &item.identity, FOREGROUND_FINALIZER).await;
    }
    for dep in blocking {
        if !dep.deleting_dependents {
            shared.attempt_delete.add(dep.identity.uid.clone());
        }
    }
    Ok(())
}

async fn attempt_to_orphan(shared: &Shared, uid: &str) -> Result<(), Error> {
    let Some(owner) = shared.node(uid) else {
        return Ok(());
    };
    let dependents = shared.with_graph(|g| g.dependents(uid));
    let results =
        futures::future::join_all(dependents.iter().map(|d| {
            remove_owner_references(shared, &d.identity, std::slice::from_ref(&owner.identity.uid))
        }))
        .await;
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if !failures.is_empty() {
        tracing::warn!(owner = %owner.identity, errors = ?failures, "garbage collector: orphaning dependents failed");
        return Err(Error::Kube(kube::Error::Service(failures.join("; ").into())));
    }
    remove_finalizer(shared, &owner.identity, ORPHAN_FINALIZER).await
}

/// Applies `change` to the live object's metadata with a resourceVersion precondition,
/// retrying on conflicts; an absent object is fine.
async fn patch_metadata(
    shared: &Shared,
    id: &Identity,
    change: impl Fn(&PartialObjectMeta<DynamicObject>) -> Option<serde_json::Value>,
) -> Result<(), Error> {
    let (api, _) = api_for(shared, &id.api_version, &id.kind, &id.namespace)?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let Some(live) = get_live(shared, id).await? else {
            return Ok(());
        };
        let Some(mut patch) = change(&live) else {
            return Ok(());
        };
        patch["metadata"]["resourceVersion"] = json!(live.metadata.resource_version);
        match api
            .patch_metadata(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) if is_status(&e, 409) && attempts < 5 => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Removes the references to `owners` (uids) from the object at `id`.
async fn remove_owner_references(shared: &Shared, id: &Identity, owners: &[String]) -> Result<(), Error> {
    patch_metadata(shared, id, |live| {
        let refs = live.metadata.owner_references.clone().unwrap_or_default();
        let kept: Vec<&OwnerReference> = refs.iter().filter(|r| !owners.contains(&r.uid)).collect();
        (kept.len() != refs.len()).then(|| {
            let value = if kept.is_empty() { json!(null) } else { json!(kept) };
            json!({"metadata": {"ownerReferences": value}})
        })
    })
    .await
}

/// Sets `blockOwnerDeletion: false` on the object's blocking references.
async fn unblock_owner_references(shared: &Shared, id: &Identity) -> Result<(), Error> {
    patch_metadata(shared, id, |live| {
        let mut refs = live.metadata.owner_references.clone().unwrap_or_default();
        let mut changed = false;
        for r in refs.iter_mut().filter(|r| r.block_owner_deletion == Some(true)) {
            r.block_owner_deletion = Some(false);
            changed = true;
        }
        changed.then(|| json!({"metadata": {"ownerReferences": refs}}))
    })
    .await
}

/// Removes `finalizer` from the object at `id`.
async fn remove_finalizer(shared: &Shared, id: &Identity, finalizer: &str) -> Result<(), Error> {
    patch_metadata(shared, id, |live| {
        let fins = live.metadata.finalizers.clone().unwrap_or_default();
        let kept: Vec<&String> = fins.iter().filter(|f| *f != finalizer).collect();
        (kept.len() != fins.len()).then(|| {
            let value = if kept.is_empty() { json!(null) } else { json!(kept) };
            json!({"metadata": {"finalizers": value}})
        })
    })
    .await
}

/// Deletes the object at `id` with uid (and, when known, resourceVersion) preconditions. On a
/// resourceVersion conflict the delete is retried with the uid alone if the owner references
/// did not change meanwhile.
async fn delete_object(
    shared: &Shared,
    id: &Identity,
    resource_version: Option<String>,
    owners_at_version: &[OwnerReference],
    policy: Propagation,
) -> Result<(), Error> {
    let (api, _) = api_for(shared, &id.api_version, &id.kind, &id.namespace)?;
    let params = |rv: Option<String>| DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(id.uid.clone()),
            resource_version: rv,
        }),
        propagation_policy: Some(policy.to_kube()),
        ..DeleteParams::default()
    };
    let with_rv = resource_version.is_some();
    match api.delete(&id.name, &params(resource_version)).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) if is_status(&e, 409) && with_rv => {
            let Some(live) = get_live(shared, id).await? else {
                return Ok(());
            };
            if live.metadata.owner_references.clone().unwrap_or_default() != owners_at_version {
                // The references changed: the next event about it decides again.
                return Ok(());
            }
            match api.delete(&id.name, &params(None)).await {
                Ok(_) => Ok(()),
                Err(e) if is_status(&e, 404) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}
