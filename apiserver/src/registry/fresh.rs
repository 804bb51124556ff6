//! Reads at a minimum resourceVersion (upstream's `waitUntilFreshAndBlock`): a get, list or
//! watch-list that asks for "at least N" waits up to [`FRESHNESS_TIMEOUT`] for the server to reach
//! N, then fails with 504 "Too large resource version: N, current: C".

use std::sync::Arc;

use serde_json::Value;
use storage::Revision;

use super::Registry;
use crate::cache::{FRESHNESS_TIMEOUT, WatchCache};
use crate::descriptor::ResourceDescriptor;
use crate::error::{ApiError, ApiResult};

/// Whether the cache may answer a read at "at least N" after waiting for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Freshness {
    /// The cache has reached N.
    Cache,
    /// The cache has not, but the store has: read the store.
    Store,
}

impl Registry {
    /// Waits until `cache` has seen `revision`; when it does not within the freshness timeout,
    /// the store answers if it has reached `revision`, else the read fails with upstream's 504.
    pub(super) async fn await_revision(
        &self,
        cache: &WatchCache,
        revision: Revision,
    ) -> ApiResult<Freshness> {
        if cache.wait_fresh(revision, FRESHNESS_TIMEOUT).await {
            return Ok(Freshness::Cache);
        }
        self.store_has(revision).await.map(|()| Freshness::Store)
    }

    /// Ok when the store's current revision is at least `revision`, else the 504.
    async fn store_has(&self, revision: Revision) -> ApiResult<()> {
        let current = self.store.current_revision().await?;
        if revision > current {
            return Err(ApiError::too_large_resource_version(revision, current));
        }
        Ok(())
    }

    /// Ok once the server has seen `revision` (through the resource's watch cache when it is on,
    /// waiting up to the freshness timeout), else upstream's 504.
    pub(super) async fn ensure_revision(
        &self,
        desc: &ResourceDescriptor,
        revision: Revision,
    ) -> ApiResult<()> {
        if revision == 0 {
            return Ok(());
        }
        if !self.config.watch_cache {
            return self.store_has(revision).await;
        }
        let cache: Arc<WatchCache> = self.caches.get(&desc.storage_prefix).await?;
        self.await_revision(&cache, revision).await.map(|_| ())
    }

    /// GET with `resourceVersion`: unset or "0" reads the latest object; N reads an object at
    /// least as new as N (waiting for N, 504 when it does not arrive).
    pub async fn get_at(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        name: &str,
        resource_version: Option<Revision>,
    ) -> ApiResult<Value> {
        if let Some(rv) = resource_version {
            self.ensure_revision(desc, rv).await?;
        }
        self.get(desc, ns, name).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use storage::mem::MemStorage;

    use crate::query::RvMatch;
    use crate::registry::{ListOptions, WriteOptions};
    use crate::{ApiServer, Config};

    #[tokio::test]
    async fn reads_beyond_the_current_revision_fail_with_upstreams_504() {
        let mut config = Config::new("/nonexistent");
        config.allow_unauthenticated = true;
        let api = ApiServer::new(config, Arc::new(MemStorage::new()));
        let reg = &api.registry;
        let ns = api.table.lookup("", "v1", "namespaces").unwrap();
        let wo = WriteOptions::default();
        reg.create(&ns, "", json!({"metadata": {"name": "default"}}), &wo)
            .await
            .unwrap();
        let cms = api.table.lookup("", "v1", "configmaps").unwrap();
        reg.create(&cms, "default", json!({"metadata": {"name": "a"}}), &wo)
            .await
            .unwrap();
        let current = reg.store.current_revision().await.unwrap();
        let ahead = current + 100;
        let got = reg.get_at(&cms, "default", "a", Some(current)).await.unwrap();
        assert_eq!(got["metadata"]["name"], "a");

        let list = |rv_match, limit| ListOptions {
            resource_version: Some(ahead),
            rv_match: Some(rv_match),
            limit,
            ..Default::default()
        };
        let cms = &*cms;
        let (get, lists) = tokio::join!(
            reg.get_at(cms, "default", "a", Some(ahead)),
            futures::future::join_all(
                [
                    list(RvMatch::NotOlderThan, 0),
                    list(RvMatch::Unset, 0),
                    list(RvMatch::Unset, 5),
                    list(RvMatch::Exact, 0),
                ]
                .map(|opts| async move { reg.list(cms, "default", &opts).await })
            )
        );
        for err in std::iter::once(get.unwrap_err()).chain(lists.into_iter().map(|l| l.unwrap_err())) {
            let v = err.to_json();
            assert_eq!(v["code"], 504, "{v}");
            assert_eq!(v["reason"], "Timeout");
            assert!(
                err.message().starts_with(&format!(
                    "Timeout: Too large resource version: {ahead}, current: "
                )),
                "{v}"
            );
            assert_eq!(v["details"]["retryAfterSeconds"], 1);
            assert_eq!(v["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
        }
    }
}
