//! Controller references (upstream's `ControllerRefManager`): a controller claims the objects
//! its selector matches — adopting orphans by adding a `controller: true` owner reference and
//! releasing the objects it owns that no longer match — through strategic-merge patches that
//! name the object's UID, so a recreated object of the same name is never touched.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

/// The controller side of an ownership: who claims.
#[derive(Debug, Clone)]
pub struct Owner {
    /// `apps/v1`.
    pub api_version: String,
    /// `ReplicaSet`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its UID.
    pub uid: String,
    /// True when it is being deleted (it then adopts and releases nothing).
    pub deleting: bool,
}

impl Owner {
    /// The owner description of a typed object.
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Owner {
        Owner {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            name: obj.meta().name.clone().unwrap_or_default(),
            namespace: obj.meta().namespace.clone().unwrap_or_default(),
            uid: obj.meta().uid.clone().unwrap_or_default(),
            deleting: obj.meta().deletion_timestamp.is_some(),
        }
    }

    /// The owner reference a controlled object carries (`controller` and
    /// `blockOwnerDeletion` true).
    pub fn controller_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// What to do with one candidate object.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Claim {
    /// Ours and matching: keep.
    Keep,
    /// An orphan that matches: adopt.
    Adopt,
    /// Ours but no longer matching: release.
    Release,
    /// Someone else's, or not for us.
    Ignore,
}

/// Upstream's `ClaimObject` decision.
pub fn decide(owner: &Owner, meta: &ObjectMeta, matches: bool) -> Claim {
    if let Some(r) = controller_of(meta) {
        if r.uid != owner.uid {
            return Claim::Ignore;
        }
        if matches {
            return Claim::Keep;
        }
        if owner.deleting {
            return Claim::Ignore;
        }
        return Claim::Release;
    }
    if owner.deleting || !matches || meta.deletion_timestamp.is_some() {
        return Claim::Ignore;
    }
    if meta.namespace.as_deref().unwrap_or_default() != owner.namespace {
        return Claim::Ignore;
    }
    Claim::Adopt
}

/// Failures claiming objects.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The owner changed or is being deleted, so it must not adopt.
    #[error("{0}")]
    CannotAdopt(String),
    /// A patch failed.
    #[error("{action} {kind} {name}: {source}")]
    Patch {
        /// `adopting` or `releasing`.
        action: &'static str,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// A check, run at most once per claim, that the owner may adopt: a fresh read shows the same
/// UID and no deletion (upstream's `RecheckDeletionTimestamp`).
pub type CanAdopt = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), String>> + Send>;

/// The usual [`CanAdopt`]: reads the owner through `api` (uncached).
pub fn recheck_owner<O>(api: Api<O>, owner: &Owner) -> CanAdopt
where
    O: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let owner = owner.clone();
    Box::new(move || {
        Box::pin(async move {
            let fresh = api
                .get(&owner.name)
                .await
                .map_err(|e| format!("can't recheck DeletionTimestamp: {e}"))?;
            if fresh.meta().uid.as_deref() != Some(owner.uid.as_str()) {
                return Err(format!(
                    "original {}/{} is gone: got uid {}, wanted {}",
                    owner.namespace,
                    owner.name,
                    fresh.meta().uid.clone().unwrap_or_default(),
                    owner.uid
                ));
            }
            if let Some(ts) = &fresh.meta().deletion_timestamp {
                return Err(format!(
                    "{}/{} has just been deleted at {}",
                    owner.namespace, owner.name, ts.0
                ));
            }
            Ok(())
        })
    })
}

/// Claims `candidates`: returns the objects the owner controls afterwards (kept and adopted),
/// releasing the ones it owns that no longer match. Objects that vanished meanwhile are skipped.
pub async fn claim<K>(
    api: &Api<K>,
    owner: &Owner,
    candidates: Vec<Arc<K>>,
    matches: impl Fn(&K) -> bool,
    can_adopt: CanAdopt,
) -> Result<Vec<Arc<K>>, ClaimError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut can_adopt = Some(can_adopt);
    let mut adopt_checked: Option<Result<(), String>> = None;
    let mut claimed = Vec::new();
    let mut first_err = None;
    for obj in candidates {
        match decide(owner, obj.meta(), matches(&obj)) {
            Claim::Keep => claimed.push(obj),
            Claim::Ignore => {}
            Claim::Adopt => {
                if adopt_checked.is_none()
                    && let Some(check) = can_adopt.take()
                {
                    adopt_checked = Some(check().await);
                }
                if let Some(Err(e)) = &adopt_checked {
                    first_err.get_or_insert(ClaimError::CannotAdopt(e.clone()));
                    continue;
                }
                let patch = json!({
                    "metadata": {
                        "ownerReferences": [owner.controller_ref()],
                        "uid": obj.meta().uid,
                    }
                });
                match patch_obj(api, &obj, patch).await {
                    Ok(Some(adopted)) => claimed.push(Arc::new(adopted)),
                    Ok(None) => {}
                    Err(source) => {
                        first_err.get_or_insert(ClaimError::Patch {
                            action: "adopting",
                            kind: K::kind(&()).into_owned(),
                            name: obj.name_any(),
                            source,
                        });
                    }
                }
            }
            Claim::Release => {
                let patch = json!({
                    "metadata": {
                        "ownerReferences": [{"$patch": "delete", "uid": owner.uid}],
                        "uid": obj.meta().uid,
                    }
                });
                if let Err(source) = patch_obj(api, &obj, patch).await {
                    first_err.get_or_insert(ClaimError::Patch {
                        action: "releasing",
                        kind: K::kind(&()).into_owned(),
                        name: obj.name_any(),
                        source,
                    });
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(claimed),
    }
}

/// Patches `obj`; `Ok(None)` when it is gone (404) or was replaced (422 on the UID precondition).
async fn patch_obj<K>(api: &Api<K>, obj: &K, patch: serde_json::Value) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api
        .patch(&obj.name_any(), &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Ok(o) => Ok(Some(o)),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(deleting: bool) -> Owner {
        Owner {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            namespace: "ns".into(),
            uid: "u1".into(),
            deleting,
        }
    }

    fn meta(controller_uid: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("ns".into()),
            owner_references: controller_uid.map(|u| {
                vec![OwnerReference {
                    uid: u.into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn claims_follow_upstreams_rules() {
        let o = owner(false);
        assert_eq!(decide(&o, &meta(Some("u1")), true), Claim::Keep);
        assert_eq!(decide(&o, &meta(Some("u1")), false), Claim::Release);
        assert_eq!(decide(&o, &meta(Some("u2")), true), Claim::Ignore);
        assert_eq!(decide(&o, &meta(None), true), Claim::Adopt);
        assert_eq!(decide(&o, &meta(None), false), Claim::Ignore);
        let mut other_ns = meta(None);
        other_ns.namespace = Some("other".into());
        assert_eq!(decide(&o, &other_ns, true), Claim::Ignore);
        let d = owner(true);
        assert_eq!(
            decide(&d, &meta(None), true),
            Claim::Ignore,
            "a deleting owner adopts nothing"
        );
        assert_eq!(
            decide(&d, &meta(Some("u1")), false),
            Claim::Ignore,
            "nor releases"
        );
    }
}
