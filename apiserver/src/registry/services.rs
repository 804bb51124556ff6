//! Writes of Services: cluster IPs and node ports are claimed before the object is stored (at
//! the revision the update was computed from) and given back when the write loses a race, fails,
//! or the service stops holding them (type change, delete).

use serde_json::Value;

use super::{Registry, meta_str};
use crate::defaults::ServiceAllocator;
use crate::descriptor::ResourceDescriptor;
use crate::error::{ApiError, ApiResult};
use crate::objstore::{UpdateAction, Written};

/// Attempts of a service write that keeps losing races.
const MAX_ATTEMPTS: usize = 16;

/// True for the `services` row.
pub fn is_service(desc: &ResourceDescriptor) -> bool {
    desc.group.is_empty() && desc.resource == "services"
}

impl Registry {
    /// The allocator of service IPs and node ports over this registry's storage.
    pub fn service_allocator(&self) -> ServiceAllocator {
        ServiceAllocator::new(self.store.kv().clone(), self.config.services.clone())
    }

    /// Like [`Registry::write`], but for services claims what the new object needs first and
    /// releases what the stored result no longer holds.
    pub(super) async fn write_object<F>(
        &self,
        desc: &ResourceDescriptor,
        key: &str,
        dry_run: bool,
        mut f: F,
    ) -> ApiResult<Written>
    where
        F: FnMut(Option<&Value>) -> ApiResult<UpdateAction> + Send,
    {
        if !is_service(desc) {
            return self.write(key, dry_run, f).await;
        }
        let alloc = self.service_allocator();
        let kind = desc.qualified_kind();
        for _ in 0..MAX_ATTEMPTS {
            let cur = self.store.get(key, 0).await?;
            let UpdateAction::Put(mut new) = f(cur.as_ref())? else {
                // Deletes and no-ops: the generic write, then give back what a delete held.
                let w = self.write(key, dry_run, &mut f).await?;
                if let Written::Deleted(old) = &w
                    && !dry_run
                {
                    alloc.release_dropped(old, &Value::Null).await;
                }
                return Ok(w);
            };
            let old = cur.unwrap_or(Value::Null);
            let name = meta_str(&new, "name").to_string();
            let claimed = alloc.allocate(&kind, &name, &mut new, &old).await?;
            if dry_run {
                alloc.release(claimed).await;
                return Ok(Written::Put(new));
            }
            let base_rv = meta_str(&old, "resourceVersion").to_string();
            let mut raced = false;
            let res = self
                .store
                .guaranteed_update(key, |now| {
                    if now.map_or("", |n| meta_str(n, "resourceVersion")) != base_rv {
                        raced = true;
                        return Err(ApiError::internal("the service changed while allocating"));
                    }
                    Ok(UpdateAction::Put(new.clone()))
                })
                .await;
            match res {
                Ok(w) => {
                    if let Written::Put(stored) | Written::Unchanged(stored) = &w {
                        alloc.release_dropped(&old, stored).await;
                    }
                    return Ok(w);
                }
                Err(_) if raced => alloc.release(claimed).await,
                Err(e) => {
                    alloc.release(claimed).await;
                    return Err(e);
                }
            }
        }
        Err(ApiError::new(
            409,
            "Conflict",
            format!("too many conflicting updates of {key}"),
        ))
    }
}
