//! The object layer over the byte-level [`storage::Storage`]: objects are JSON, their
//! `resourceVersion` is the key's `mod_revision` (stamped on every read, never stored),
//! `guaranteed_update` retries compare-and-swap conflicts, and continue tokens carry
//! (revision, last key) as upstream's etcd3 store does.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use storage::{Expect, KeyValue, Revision, Storage, StorageExt, WriteOutcome};

use crate::error::{ApiError, ApiResult};

/// Upper bound on `guaranteed_update` retries before giving up with a 409.
const MAX_UPDATE_RETRIES: usize = 32;

/// Objects over a [`Storage`].
#[derive(Clone)]
pub struct ObjectStore {
    kv: Arc<dyn Storage>,
    encrypted: Option<Arc<crate::encryption::EncryptedStorage>>,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore").finish_non_exhaustive()
    }
}

/// What an update function decided.
#[derive(Debug)]
pub enum UpdateAction {
    /// Write this object.
    Put(Value),
    /// Delete the object (the last finalizer went away).
    Delete,
    /// Nothing changed: answer with the current object.
    Unchanged,
}

/// The result of a write.
#[derive(Debug)]
pub enum Written {
    /// Stored; the object carries its new resourceVersion.
    Put(Value),
    /// Deleted; the object as it was last stored.
    Deleted(Value),
    /// Unchanged.
    Unchanged(Value),
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// The matching objects, resourceVersion stamped.
    pub items: Vec<Value>,
    /// The revision of the snapshot.
    pub revision: Revision,
    /// The continue token when more may follow.
    pub continue_token: Option<String>,
    /// How many keys follow (only without filters).
    pub remaining: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct ContinueToken {
    v: String,
    rv: Revision,
    start: String,
}

/// Encodes a continue token: the revision and the key (relative to the list prefix) to resume after.
pub fn encode_continue(revision: Revision, last_key_relative: &str) -> String {
    let t = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv: revision,
        start: last_key_relative.to_string(),
    };
    base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(&t).unwrap_or_default())
}

/// Decodes a continue token; a malformed one is a 400.
pub fn decode_continue(token: &str) -> ApiResult<(Revision, String)> {
    let bad = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token))
        .map_err(|_| bad("not base64"))?;
    let t: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| bad("not a continue token"))?;
    if t.v != "meta.k8s.io/v1" {
        return Err(bad("unknown version"));
    }
    if t.rv == 0 || t.start.is_empty() || t.start.starts_with('/') || t.start.split('/').any(|p| p == "..") {
        return Err(bad("invalid start key"));
    }
    Ok((t.rv, t.start))
}

/// Decodes a stored object and stamps its resourceVersion.
pub fn decode_kv(kv: &KeyValue) -> ApiResult<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        let key = String::from_utf8_lossy(&kv.key);
        if kv.value.starts_with(crate::encryption::ENCRYPTED_PREFIX) {
            ApiError::internal(format!(
                "stored object at {key:?} is encrypted ({}) and no encryption provider configuration covers it",
                crate::encryption::describe_prefix(&kv.value)
            ))
        } else {
            ApiError::internal(format!("stored object at {key:?} is corrupt: {e}"))
        }
    })?;
    set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, rv: Revision) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// True when two objects are equal apart from `metadata.resourceVersion`.
pub fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

/// The encoding of an object for storage: JSON without `resourceVersion`.
fn encode(obj: &Value) -> ApiResult<Bytes> {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&obj)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("encoding object: {e}")))
}

impl ObjectStore {
    /// An object store over `kv`.
    pub fn new(kv: Arc<dyn Storage>) -> Self {
        ObjectStore { kv, encrypted: None }
    }

    /// An object store over an encrypting layer: an update that changes nothing still rewrites
    /// a value stored with an older key (how upstream re-encrypts on `kubectl replace`).
    pub fn encrypted(kv: Arc<crate::encryption::EncryptedStorage>) -> Self {
        ObjectStore {
            kv: kv.clone(),
            encrypted: Some(kv),
        }
    }

    /// True when the stored value of `kv` needs rewriting with the current write key.
    async fn stale(&self, kv: Option<&KeyValue>) -> ApiResult<bool> {
        match (&self.encrypted, kv) {
            (Some(enc), Some(kv)) => Ok(enc.is_stale(&kv.key, kv.mod_revision).await?),
            _ => Ok(false),
        }
    }

    /// The underlying store.
    pub fn kv(&self) -> &Arc<dyn Storage> {
        &self.kv
    }

    /// Reads one object (latest, or at an exact revision).
    pub async fn get(&self, key: &str, revision: Revision) -> ApiResult<Option<Value>> {
        let (kv, _) = self.kv.get(key.as_bytes(), revision).await?;
        kv.as_ref().map(decode_kv).transpose()
    }

    /// Creates an object; `Ok(None)` when the key exists.
    pub async fn create(&self, key: &str, obj: &Value) -> ApiResult<Option<Value>> {
        match self
            .kv
            .put_if(key.as_bytes(), encode(obj)?, Expect::Absent)
            .await?
        {
            WriteOutcome::Done { kv, .. } => {
                let mut out = obj.clone();
                set_resource_version(&mut out, kv.mod_revision);
                Ok(Some(out))
            }
            WriteOutcome::Conflict { .. } => Ok(None),
        }
    }

    /// Read-modify-write with compare-and-swap, retried on conflicts. `update` sees the current
    /// object (resourceVersion stamped) or `None` when absent, and may be called several times.
    pub async fn guaranteed_update<F>(&self, key: &str, mut update: F) -> ApiResult<Written>
    where
        F: FnMut(Option<&Value>) -> ApiResult<UpdateAction> + Send,
    {
        let (mut current, _) = self.kv.get(key.as_bytes(), 0).await?;
        for _ in 0..MAX_UPDATE_RETRIES {
            let cur_obj = current.as_ref().map(decode_kv).transpose()?;
            let expect = match &current {
                Some(kv) => Expect::ModRevision(kv.mod_revision),
                None => Expect::Absent,
            };
            let outcome = match update(cur_obj.as_ref())? {
                UpdateAction::Unchanged => {
                    return cur_obj
                        .map(Written::Unchanged)
                        .ok_or_else(|| ApiError::internal("unchanged update of a missing object"));
                }
                UpdateAction::Put(new) => {
                    // A write that changes nothing keeps the resourceVersion (upstream semantics).
                    if let Some(cur) = &cur_obj
                        && same_object(cur, &new)
                        && !self.stale(current.as_ref()).await?
                    {
                        return Ok(Written::Unchanged(cur.clone()));
                    }
                    let bytes = encode(&new)?;
                    match self.kv.put_if(key.as_bytes(), bytes, expect).await? {
                        WriteOutcome::Done { kv, .. } => {
                            let mut out = new;
                            set_resource_version(&mut out, kv.mod_revision);
                            return Ok(Written::Put(out));
                        }
                        WriteOutcome::Conflict { current: now, .. } => now,
                    }
                }
                UpdateAction::Delete => match self.kv.delete_if(key.as_bytes(), expect).await? {
                    WriteOutcome::Done { kv, revision } => {
                        let mut out = decode_kv(&kv)?;
                        set_resource_version(&mut out, revision);
                        return Ok(Written::Deleted(out));
                    }
                    WriteOutcome::Conflict { current: now, .. } => now,
                },
            };
            current = outcome;
        }
        Err(ApiError::new(
            409,
            "Conflict",
            format!("too many conflicting updates of {key}"),
        ))
    }

    /// Lists objects under `prefix` at `revision` (0: latest), after `start_after` (relative to
    /// `prefix`), keeping those `filter` accepts, up to `limit` matches (0: all).
    pub async fn list(
        &self,
        prefix: &str,
        revision: Revision,
        start_after: Option<&str>,
        limit: u64,
        filter: &(dyn Fn(&Value) -> bool + Sync),
        filtered: bool,
    ) -> ApiResult<Page> {
        let mut items = Vec::new();
        let mut revision = revision;
        let mut after: Option<String> = start_after.map(|s| format!("{prefix}{s}"));
        let mut remaining = None;
        loop {
            let want = if limit == 0 { 0 } else { limit - items.len() as u64 };
            let page = self
                .kv
                .list(
                    prefix.as_bytes(),
                    after.as_deref().map(str::as_bytes),
                    revision,
                    want,
                )
                .await?;
            // Later pages (and continue tokens) read at the first page's revision. A read at an
            // exact revision reports the store's current one, so keep ours.
            if revision == 0 {
                revision = page.revision;
            }
            let total = page.kvs.len();
            for (i, kv) in page.kvs.iter().enumerate() {
                let obj = decode_kv(kv)?;
                after = Some(String::from_utf8_lossy(&kv.key).into_owned());
                if filter(&obj) {
                    items.push(obj);
                }
                if limit > 0 && items.len() as u64 >= limit {
                    let more = i + 1 < total || page.more;
                    if !filtered {
                        remaining = Some(page.remaining as i64 - (i as i64 + 1));
                    }
                    let token = more.then(|| {
                        let rel = after.as_deref().unwrap_or("").strip_prefix(prefix).unwrap_or("");
                        encode_continue(revision, rel)
                    });
                    return Ok(Page {
                        items,
                        revision,
                        continue_token: token,
                        remaining: remaining.filter(|r| *r > 0 && more),
                    });
                }
            }
            if !page.more {
                return Ok(Page {
                    items,
                    revision,
                    continue_token: None,
                    remaining: None,
                });
            }
        }
    }

    /// The store's current revision.
    pub async fn current_revision(&self) -> ApiResult<Revision> {
        Ok(self.kv.current_revision().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "default/cm-3");
        assert_eq!(decode_continue(&t).unwrap(), (42, "default/cm-3".to_string()));
        assert_eq!(decode_continue("!!!").unwrap_err().code(), 400);
        let forged = base64::engine::general_purpose::URL_SAFE
            .encode(br#"{"v":"meta.k8s.io/v1","rv":3,"start":"../../etc"}"#);
        assert_eq!(decode_continue(&forged).unwrap_err().code(), 400);
    }

    #[tokio::test]
    async fn update_create_list_delete() {
        let os = ObjectStore::new(Arc::new(storage::mem::MemStorage::new()));
        for i in 0..5 {
            let obj =
                json!({"metadata": {"name": format!("o{i}"), "labels": {"even": (i % 2 == 0).to_string()}}});
            let created = os
                .create(&format!("/registry/x/ns/o{i}"), &obj)
                .await
                .unwrap()
                .unwrap();
            assert!(created["metadata"]["resourceVersion"].is_string());
        }
        assert!(
            os.create("/registry/x/ns/o1", &json!({"metadata": {}}))
                .await
                .unwrap()
                .is_none()
        );
        let all = |_: &Value| true;
        let p1 = os.list("/registry/x/", 0, None, 2, &all, false).await.unwrap();
        assert_eq!(p1.items.len(), 2);
        assert_eq!(p1.remaining, Some(3));
        let (rv, start) = decode_continue(p1.continue_token.as_deref().unwrap()).unwrap();
        assert_eq!(rv, p1.revision);
        let p2 = os
            .list("/registry/x/", rv, Some(&start), 10, &all, false)
            .await
            .unwrap();
        assert_eq!(p2.items.len(), 3);
        assert!(p2.continue_token.is_none());
        let even = |v: &Value| v["metadata"]["labels"]["even"] == "true";
        let p = os.list("/registry/x/", 0, None, 2, &even, true).await.unwrap();
        assert_eq!(p.items.len(), 2);
        assert!(p.continue_token.is_some() && p.remaining.is_none());

        let w = os
            .guaranteed_update("/registry/x/ns/o1", |cur| {
                let mut v = cur.cloned().unwrap();
                v["data"] = json!(1);
                Ok(UpdateAction::Put(v))
            })
            .await
            .unwrap();
        let Written::Put(v) = w else { panic!("not written") };
        let same = os
            .guaranteed_update("/registry/x/ns/o1", |cur| {
                Ok(UpdateAction::Put(cur.cloned().unwrap()))
            })
            .await
            .unwrap();
        let Written::Unchanged(s) = same else {
            panic!("no-op write bumped the revision")
        };
        assert_eq!(s["metadata"]["resourceVersion"], v["metadata"]["resourceVersion"]);
        let d = os
            .guaranteed_update("/registry/x/ns/o1", |_| Ok(UpdateAction::Delete))
            .await
            .unwrap();
        assert!(matches!(d, Written::Deleted(_)));
        assert!(os.get("/registry/x/ns/o1", 0).await.unwrap().is_none());
    }
}
