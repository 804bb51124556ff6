//! [`EncryptedStorage`]: the [`Storage`] wrapper that encrypts every value written and decrypts
//! every value read (ranges, transaction results, watch events with their previous values).

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use storage::{
    CompareTarget, Error, Event, KeyValue, LeaseId, LeaseInfo, Member, OpResponse, RangeRequest,
    RangeResponse, Result, Revision, SnapshotStream, Status, Storage, TxnOp, TxnRequest, TxnResponse,
    WatchItem, WatchRequest, Watcher,
};

use super::{Encryption, TransformError};

/// A value that could not be transformed, with its storage key.
#[derive(Debug, thiserror::Error)]
#[error("unable to transform key {key:?}: {source}")]
pub struct KeyTransformError {
    /// The storage key.
    pub key: String,
    /// Why.
    #[source]
    pub source: TransformError,
}

fn transform_error(key: &[u8], source: TransformError) -> Error {
    let key = String::from_utf8_lossy(key).into_owned();
    tracing::error!(%key, error = %source, "encryption at rest");
    Error::internal(KeyTransformError { key, source })
}

/// A [`Storage`] whose values are encrypted at rest per an [`Encryption`] configuration.
pub struct EncryptedStorage {
    inner: Arc<dyn Storage>,
    encryption: Arc<Encryption>,
}

impl std::fmt::Debug for EncryptedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedStorage").finish_non_exhaustive()
    }
}

impl EncryptedStorage {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Storage>, encryption: Arc<Encryption>) -> EncryptedStorage {
        EncryptedStorage { inner, encryption }
    }

    /// The store underneath (ciphertext).
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    /// The configuration.
    pub fn encryption(&self) -> &Arc<Encryption> {
        &self.encryption
    }

    /// True when the latest stored value of `key` at `mod_revision` was written with another
    /// provider or key than writes use now (so an unchanged write should still rewrite it).
    pub async fn is_stale(&self, key: &[u8], mod_revision: Revision) -> Result<bool> {
        let resp = self
            .inner
            .range(RangeRequest {
                key: bytes::Bytes::copy_from_slice(key),
                ..Default::default()
            })
            .await?;
        Ok(resp.kvs.first().is_some_and(|kv| {
            kv.mod_revision == mod_revision
                && self
                    .encryption
                    .decrypt(&kv.key, &kv.value)
                    .is_ok_and(|(_, stale)| stale)
        }))
    }

    fn decrypt_kv(&self, kv: &mut KeyValue) -> Result<()> {
        let chain = self.encryption.chain_for(&kv.key);
        // Plaintext under an identity-first chain is passed on without a copy.
        if kv.value.is_empty() || (chain.writes_plaintext() && !kv.value.starts_with(super::ENCRYPTED_PREFIX))
        {
            return Ok(());
        }
        let (plain, _) = chain
            .from_storage(&kv.value, &kv.key)
            .map_err(|e| transform_error(&kv.key, e))?;
        kv.value = plain;
        Ok(())
    }

    fn decrypt_event(&self, e: &mut Event) -> Result<()> {
        self.decrypt_kv(&mut e.kv)?;
        if let Some(prev) = &mut e.prev_kv {
            self.decrypt_kv(prev)?;
        }
        Ok(())
    }

    fn encrypt_ops(&self, ops: &mut [TxnOp]) -> Result<()> {
        for op in ops {
            match op {
                TxnOp::Put(p) if !p.ignore_value => {
                    let chain = self.encryption.chain_for(&p.key);
                    if !chain.writes_plaintext() {
                        p.value = chain
                            .to_storage(&p.value, &p.key)
                            .map_err(|e| transform_error(&p.key, e))?;
                    }
                }
                TxnOp::Txn(t) => self.encrypt_txn(t)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn encrypt_txn(&self, t: &mut TxnRequest) -> Result<()> {
        // A value compare cannot hold against ciphertext made with a fresh nonce.
        for c in &t.compare {
            if matches!(c.target, CompareTarget::Value(_))
                && !self.encryption.chain_for(&c.key).writes_plaintext()
            {
                return Err(Error::InvalidArgument(format!(
                    "value compares are not supported on encrypted key {:?}",
                    String::from_utf8_lossy(&c.key)
                )));
            }
        }
        self.encrypt_ops(&mut t.success)?;
        self.encrypt_ops(&mut t.failure)
    }

    fn decrypt_responses(&self, responses: &mut [OpResponse]) -> Result<()> {
        for r in responses {
            match r {
                OpResponse::Range(r) => r.kvs.iter_mut().try_for_each(|kv| self.decrypt_kv(kv))?,
                OpResponse::Put { prev_kv } => {
                    if let Some(kv) = prev_kv {
                        self.decrypt_kv(kv)?;
                    }
                }
                OpResponse::DeleteRange { prev_kvs, .. } => {
                    prev_kvs.iter_mut().try_for_each(|kv| self.decrypt_kv(kv))?;
                }
                OpResponse::Txn(t) => self.decrypt_responses(&mut t.responses)?,
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for EncryptedStorage {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let mut resp = self.inner.range(req).await?;
        resp.kvs.iter_mut().try_for_each(|kv| self.decrypt_kv(kv))?;
        Ok(resp)
    }

    async fn txn(&self, mut req: TxnRequest) -> Result<TxnResponse> {
        self.encrypt_txn(&mut req)?;
        let mut resp = self.inner.txn(req).await?;
        self.decrypt_responses(&mut resp.responses)?;
        Ok(resp)
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        let watcher = self.inner.watch(req).await?;
        let this = EncryptedStorage {
            inner: self.inner.clone(),
            encryption: self.encryption.clone(),
        };
        // The first value that cannot be decrypted ends the stream with its error.
        let stream = watcher
            .stream
            .scan(false, move |failed, item| {
                let out = if *failed {
                    None
                } else {
                    let item = match item {
                        Ok(WatchItem::Events { revision, mut events }) => events
                            .iter_mut()
                            .try_for_each(|e| this.decrypt_event(e))
                            .map(|()| WatchItem::Events { revision, events }),
                        other => other,
                    };
                    *failed = item.is_err();
                    Some(item)
                };
                std::future::ready(out)
            })
            .boxed();
        Ok(Watcher {
            stream,
            progress: watcher.progress,
        })
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn lease_grant(&self, id: LeaseId, ttl: i64) -> Result<LeaseInfo> {
        self.inner.lease_grant(id, ttl).await
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<Revision> {
        self.inner.lease_revoke(id).await
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<i64> {
        self.inner.lease_keep_alive(id).await
    }

    async fn lease_time_to_live(&self, id: LeaseId, keys: bool) -> Result<LeaseInfo> {
        self.inner.lease_time_to_live(id, keys).await
    }

    async fn lease_list(&self) -> Result<Vec<LeaseId>> {
        self.inner.lease_list().await
    }

    async fn member_list(&self) -> Result<Vec<Member>> {
        self.inner.member_list().await
    }

    async fn member_add(&self, peer_urls: Vec<String>, is_learner: bool) -> Result<Member> {
        self.inner.member_add(peer_urls, is_learner).await
    }

    async fn member_remove(&self, id: u64) -> Result<()> {
        self.inner.member_remove(id).await
    }

    async fn member_promote(&self, id: u64) -> Result<()> {
        self.inner.member_promote(id).await
    }

    async fn status(&self) -> Result<Status> {
        self.inner.status().await
    }

    /// The raw (encrypted) store: a snapshot never holds plaintext.
    async fn snapshot(&self) -> Result<SnapshotStream> {
        self.inner.snapshot().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::mem::MemStorage;
    use storage::{Expect, StorageExt, WriteOutcome};

    const CONFIG: &str = r#"apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm: {keys: [{name: k1, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]}
"#;

    fn stores() -> (Arc<MemStorage>, EncryptedStorage) {
        let raw = Arc::new(MemStorage::new());
        let enc = EncryptedStorage::new(raw.clone(), Arc::new(Encryption::parse(CONFIG).unwrap()));
        (raw, enc)
    }

    #[tokio::test]
    async fn every_path_sees_plaintext_and_the_store_ciphertext() {
        let (raw, enc) = stores();
        let key = b"/registry/secrets/ns/a";
        let mut w = enc
            .watch(WatchRequest {
                key: bytes::Bytes::from_static(b"/registry/secrets/"),
                range_end: storage::prefix_end(b"/registry/secrets/"),
                prev_kv: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let done = enc.put_if(key, "v1".into(), Expect::Absent).await.unwrap();
        let WriteOutcome::Done { kv, .. } = done else {
            panic!("not written")
        };
        assert_eq!(kv.value, "v1");
        let stored = raw.get(key, 0).await.unwrap().0.unwrap();
        assert!(stored.value.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
        assert_eq!(enc.get(key, 0).await.unwrap().0.unwrap().value, "v1");
        assert_eq!(
            enc.list(b"/registry/secrets/", None, 0, 0).await.unwrap().kvs[0].value,
            "v1"
        );
        // A conflicting CAS reads the current value back through the layer.
        let c = enc.put_if(key, "v2".into(), Expect::Absent).await.unwrap();
        let WriteOutcome::Conflict { current, .. } = c else {
            panic!("no conflict")
        };
        assert_eq!(current.unwrap().value, "v1");
        enc.put_if(key, "v2".into(), Expect::ModRevision(stored.mod_revision))
            .await
            .unwrap();
        let d = enc.delete_if(key, Expect::Any).await.unwrap();
        let WriteOutcome::Done { kv, .. } = d else {
            panic!("not deleted")
        };
        assert_eq!(kv.value, "v2");
        let mut seen = Vec::new();
        while seen.len() < 3 {
            if let Some(Ok(WatchItem::Events { events, .. })) = w.stream.next().await {
                for e in events {
                    seen.push((e.kv.value.clone(), e.prev_kv.map(|p| p.value).unwrap_or_default()));
                }
            }
        }
        assert_eq!(
            seen,
            [
                ("v1".into(), bytes::Bytes::new()),
                ("v2".into(), "v1".into()),
                (bytes::Bytes::new(), "v2".into())
            ]
        );
        // Other resources are stored as they are.
        enc.put_if(b"/registry/configmaps/ns/c", "plain".into(), Expect::Any)
            .await
            .unwrap();
        assert_eq!(
            raw.get(b"/registry/configmaps/ns/c", 0)
                .await
                .unwrap()
                .0
                .unwrap()
                .value,
            "plain"
        );
    }

    #[tokio::test]
    async fn undecryptable_values_are_errors_not_panics() {
        let (raw, enc) = stores();
        raw.put_if(b"/registry/secrets/ns/p", "plaintext".into(), Expect::Any)
            .await
            .unwrap();
        let e = enc
            .get(b"/registry/secrets/ns/p", 0)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unable to transform key \"/registry/secrets/ns/p\": no matching prefix found"),
            "{e}"
        );
        raw.put_if(
            b"/registry/secrets/ns/q",
            "k8s:enc:aescbc:v1:gone:xxxxxxxxxxxxxxxx".into(),
            Expect::Any,
        )
        .await
        .unwrap();
        let e = enc
            .list(b"/registry/secrets/", None, 0, 0)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no matching prefix found") || e.contains("k8s:enc:aescbc:v1:gone"),
            "{e}"
        );
        // A watch replaying the bad value ends with the error.
        let mut w = enc
            .watch(WatchRequest {
                key: bytes::Bytes::from_static(b"/registry/secrets/"),
                range_end: storage::prefix_end(b"/registry/secrets/"),
                start_revision: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(matches!(w.stream.next().await, Some(Err(_))));
        assert!(w.stream.next().await.is_none());
        // Value compares on encrypted keys are refused.
        let r = enc
            .txn(TxnRequest {
                compare: vec![storage::Compare {
                    key: bytes::Bytes::from_static(b"/registry/secrets/ns/p"),
                    range_end: bytes::Bytes::new(),
                    target: CompareTarget::Value("x".into()),
                    op: storage::CompareOp::Equal,
                }],
                ..Default::default()
            })
            .await;
        assert!(matches!(r, Err(Error::InvalidArgument(_))));
    }
}
