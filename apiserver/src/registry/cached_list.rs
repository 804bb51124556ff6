//! Which lists the watch cache serves (upstream's `shouldDelegateList`): `resourceVersion=0` ("any",
//! `limit` ignored, as upstream does), `resourceVersion=N` with `NotOlderThan` (or no match and no
//! `limit`) once the cache has seen N, and a consistent list (no resourceVersion, no `limit`) once
//! the cache has caught up with the store's current revision. Exact reads, pages and continue
//! tokens go to the store.

use serde_json::Value;

use super::fresh::Freshness;
use super::{ListOptions, Registry};
use crate::cache::FRESHNESS_TIMEOUT;
use crate::descriptor::ResourceDescriptor;
use crate::error::ApiResult;
use crate::objstore::Page;
use crate::query::RvMatch;

impl Registry {
    /// The page from the cache, or `None` when the store must answer.
    pub(super) async fn list_from_cache(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        opts: &ListOptions,
    ) -> ApiResult<Option<Page>> {
        if !self.config.watch_cache || opts.continue_token.is_some() {
            return Ok(None);
        }
        let rv_match = opts.rv_match.unwrap_or(RvMatch::Unset);
        let at_least = match (opts.resource_version, rv_match) {
            (None, RvMatch::Unset) if opts.limit == 0 => None,
            (Some(0), RvMatch::Unset | RvMatch::NotOlderThan) => Some(0),
            (Some(n), RvMatch::NotOlderThan) => Some(n),
            (Some(n), RvMatch::Unset) if opts.limit == 0 => Some(n),
            _ => return Ok(None),
        };
        let cache = self.caches.get(&desc.storage_prefix).await?;
        match at_least {
            None => {
                let current = self.store.current_revision().await?;
                if !cache.wait_fresh(current, FRESHNESS_TIMEOUT).await {
                    return Ok(None);
                }
            }
            // At least N: wait for N, then the store if only it has N, else the 504.
            Some(n) if cache.revision() < n => {
                if self.await_revision(&cache, n).await? == Freshness::Store {
                    return Ok(None);
                }
            }
            Some(_) => {}
        }
        let filter = |o: &Value| opts.labels.matches_object(o) && opts.fields.matches_object(o);
        let (items, revision) = cache.list(&desc.collection_prefix(ns), &filter);
        Ok(Some(Page {
            items,
            revision,
            continue_token: None,
            remaining: None,
        }))
    }
}
