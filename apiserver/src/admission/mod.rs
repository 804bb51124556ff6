//! Built-in admission plugins that upstream enables by default and that change what clients
//! see: LimitRanger ([`limit_range`]) and ResourceQuota ([`quota`]). The registry calls
//! [`admit_create`] before validating a create, [`charge_quotas`] just before storing it,
//! [`after_write`] once a ResourceQuota was written and [`after_delete`] once an object is gone;
//! updates of Services and PVCs pass an [`UpdateGate`].
//!
//! Like upstream's plugins, which read informer caches, the LimitRanges and ResourceQuotas of a
//! namespace are read from the watch cache at "any" revision; quota usage itself is updated with
//! a compare-and-swap on the stored quota, so concurrent creates never both take the last unit.

pub mod amount;
pub mod limit_range;
pub mod priority;
pub mod quota;
pub mod storage;
pub mod toleration_seconds;

use std::sync::Arc;

use serde_json::Value;

use crate::descriptor::ResourceDescriptor;
use crate::error::{ApiError, ApiResult};
use crate::objstore::{UpdateAction, Written};
use crate::registry::{ListOptions, Registry};
use amount::Resources;

fn is_core(desc: &ResourceDescriptor, resource: &str) -> bool {
    desc.group.is_empty() && desc.resource == resource
}

/// The row serving `group`/`resource` (any version: objects of all versions share one key).
fn row(reg: &Registry, group: &str, resource: &str) -> Option<Arc<ResourceDescriptor>> {
    if group.is_empty() {
        return reg.table.lookup("", "v1", resource);
    }
    reg.table
        .all()
        .into_iter()
        .find(|d| d.group == group && d.resource == resource && d.virtual_kind.is_none())
}

/// The core objects of `resource` in `ns`, as the watch cache holds them.
async fn objects(reg: &Registry, resource: &str, ns: &str) -> ApiResult<Vec<Value>> {
    let Some(desc) = row(reg, "", resource) else {
        return Ok(Vec::new());
    };
    let any = ListOptions {
        resource_version: Some(0),
        ..Default::default()
    };
    Ok(reg.list_page(&desc, ns, &any).await?.items)
}

/// The mutating and validating admission of a create, before the object is validated: a pod
/// gets its priority, the default NoExecute tolerations, the namespace's LimitRange defaults and
/// its QoS class, and is refused (403) when it breaks the LimitRanges' bounds; a PVC gets the
/// default StorageClass and its protection finalizer and is checked against the LimitRanges; a
/// PV gets its protection finalizer.
pub async fn admit_create(
    reg: &Registry,
    desc: &ResourceDescriptor,
    ns: &str,
    name: &str,
    obj: &mut Value,
) -> ApiResult<()> {
    if is_core(desc, "persistentvolumes") {
        storage::add_finalizer(obj, storage::PV_PROTECTION);
        return Ok(());
    }
    let pod = is_core(desc, "pods");
    if !pod && !is_core(desc, "persistentvolumeclaims") {
        return Ok(());
    }
    if pod {
        priority::admit_pod(reg, name, obj).await?;
        let config = &reg.config;
        toleration_seconds::add_defaults(
            obj,
            config.default_not_ready_toleration_seconds,
            config.default_unreachable_toleration_seconds,
        );
    } else {
        let classes = match row(reg, "storage.k8s.io", "storageclasses") {
            Some(desc) => {
                let any = ListOptions {
                    resource_version: Some(0),
                    ..Default::default()
                };
                reg.list_page(&desc, "", &any).await?.items
            }
            None => Vec::new(),
        };
        storage::default_pvc_class(obj, &classes);
        storage::add_finalizer(obj, storage::PVC_PROTECTION);
    }
    let ranges = objects(reg, "limitranges", ns).await?;
    if pod {
        for lr in &ranges {
            limit_range::default_pod(lr, obj);
        }
        set_qos_class(obj);
    }
    let failures: Vec<String> = ranges
        .iter()
        .map(|lr| match pod {
            true => limit_range::check_pod(lr, obj),
            false => limit_range::check_pvc(lr, obj),
        })
        .filter(|errs| !errs.is_empty())
        .map(|errs| limit_range::aggregate(&errs))
        .collect();
    if failures.is_empty() {
        return Ok(());
    }
    Err(ApiError::forbidden(
        &desc.group_resource(),
        name,
        &limit_range::aggregate(&failures),
    ))
}

/// Records the pod's QoS class in its status (upstream computes it when a pod is created, after
/// admission has set its resources).
fn set_qos_class(pod: &mut Value) {
    use serde::Deserialize;
    let Some(spec) = pod
        .get("spec")
        .and_then(|s| k8s_openapi::api::core::v1::PodSpec::deserialize(s).ok())
    else {
        return;
    };
    let class = api_util::resources::qos_class(&spec);
    if let Some(status) = pod.get_mut("status").and_then(Value::as_object_mut) {
        status.insert("qosClass".into(), Value::String(class.into()));
    }
}

/// Admission of an update of a Service or PVC (the updates upstream's quota evaluators count,
/// and PVCs for LimitRanger): the namespace's stored quotas and LimitRanges, read before the
/// write, checked by [`UpdateGate::check`] inside it; [`after_update`] adds the usage increase
/// to the quotas once the write is stored.
#[derive(Debug)]
pub struct UpdateGate {
    quotas: Vec<Value>,
    ranges: Vec<Value>,
    increase: parking_lot::Mutex<Resources>,
}

impl UpdateGate {
    /// The gate for an update of `desc` in `ns`; `None` when nothing applies.
    pub async fn load(
        reg: &Registry,
        desc: &ResourceDescriptor,
        ns: &str,
        sub: Option<crate::descriptor::SubresourceKind>,
    ) -> ApiResult<Option<UpdateGate>> {
        let pvc = is_core(desc, "persistentvolumeclaims");
        if sub.is_some() || ns.is_empty() || !(pvc || is_core(desc, "services")) {
            return Ok(None);
        }
        let stored = |resource: &'static str| async move {
            match row(reg, "", resource) {
                Some(d) => Ok::<_, ApiError>(
                    reg.list_page_from_store(&d, ns, &ListOptions::default())
                        .await?
                        .items,
                ),
                None => Ok(Vec::new()),
            }
        };
        let quotas = stored("resourcequotas").await?;
        let ranges = if pvc {
            stored("limitranges").await?
        } else {
            Vec::new()
        };
        Ok((!quotas.is_empty() || !ranges.is_empty()).then(|| UpdateGate {
            quotas,
            ranges,
            increase: Default::default(),
        }))
    }

    /// Refuses (403) an update whose new object breaks a LimitRange or would exceed a quota
    /// with what it uses beyond the old one (nothing to check without a gate).
    pub fn check(
        gate: Option<&UpdateGate>,
        desc: &ResourceDescriptor,
        name: &str,
        old: &Value,
        action: &UpdateAction,
    ) -> ApiResult<()> {
        match gate {
            Some(gate) => gate.check_write(desc, name, old, action),
            None => Ok(()),
        }
    }

    fn check_write(
        &self,
        desc: &ResourceDescriptor,
        name: &str,
        old: &Value,
        action: &UpdateAction,
    ) -> ApiResult<()> {
        let UpdateAction::Put(new) = action else {
            self.increase.lock().clear();
            return Ok(());
        };
        let refuse = |msg: String| ApiError::forbidden(&desc.group_resource(), name, &msg);
        let failures: Vec<String> = self
            .ranges
            .iter()
            .map(|lr| limit_range::check_pvc(lr, new))
            .filter(|errs| !errs.is_empty())
            .map(|errs| limit_range::aggregate(&errs))
            .collect();
        if !failures.is_empty() {
            return Err(refuse(limit_range::aggregate(&failures)));
        }
        let before = quota::usage(desc, old);
        let increase: Resources = quota::usage(desc, new)
            .into_iter()
            .filter(|(k, v)| *v > before.get(k).copied().unwrap_or_default())
            .map(|(k, v)| {
                let was = before.get(&k).copied().unwrap_or_default();
                (k, v - was)
            })
            .collect();
        for q in &self.quotas {
            quota::charge(q, desc, new, &increase).map_err(refuse)?;
        }
        *self.increase.lock() = increase;
        Ok(())
    }

    /// After the write: the usage increase goes into the quotas that count it.
    async fn record(&self, reg: &Registry, desc: &ResourceDescriptor, written: &Written) {
        let Written::Put(new) = written else { return };
        let increase = self.increase.lock().clone();
        if increase.is_empty() {
            return;
        }
        let ns = new
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(quota_desc) = row(reg, "", "resourcequotas") else {
            return;
        };
        for q in self.quotas.iter().filter(|q| quota::selects(q, desc, new)) {
            let hard = amount::resources(q.pointer("/status/hard"));
            let counted: Resources = increase
                .iter()
                .filter(|(k, _)| hard.contains_key(*k))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            if counted.is_empty() {
                continue;
            }
            let qname = q.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            let result = reg
                .store
                .guaranteed_update(&quota_desc.key(ns, qname), |cur| match cur {
                    None => Err(ApiError::not_found(&quota_desc.group_resource(), qname)),
                    Some(cur) => {
                        let mut next = cur.clone();
                        quota::add_used(&mut next, &counted, false);
                        Ok(UpdateAction::Put(next))
                    }
                })
                .await;
            if let Err(e) = result
                && e.code() != 404
            {
                tracing::warn!(quota = qname, error = %e, "recording quota usage of an update");
            }
        }
    }
}

/// Usage recorded in quotas for one create, to give back if the create fails.
#[derive(Debug, Default)]
#[must_use]
pub struct Charged(Vec<(String, Resources)>);

/// Counts a create against every ResourceQuota of its namespace: 403 when one would be
/// exceeded, else the usage is added to each quota's `status.used` (not for dry runs).
pub async fn charge_quotas(
    reg: &Registry,
    desc: &ResourceDescriptor,
    ns: &str,
    name: &str,
    obj: &Value,
    dry_run: bool,
) -> ApiResult<Charged> {
    let mut charged = Charged::default();
    if !desc.namespaced || ns.is_empty() {
        return Ok(charged);
    }
    let quotas = objects(reg, "resourcequotas", ns).await?;
    if quotas.is_empty() {
        return Ok(charged);
    }
    let usage = quota::usage(desc, obj);
    let refuse = |msg: String| ApiError::forbidden(&desc.group_resource(), name, &msg);
    let Some(quota_desc) = row(reg, "", "resourcequotas") else {
        return Ok(charged);
    };
    // Every quota first: nothing is recorded for a create that is refused. A refusal by the
    // cached quota is confirmed against the stored one (the cache may predate a delete).
    for q in &quotas {
        if quota::charge(q, desc, obj, &usage).is_ok() {
            continue;
        }
        let qname = q.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        if let Some(stored) = reg.store.get(&quota_desc.key(ns, qname), 0).await? {
            quota::charge(&stored, desc, obj, &usage).map_err(refuse)?;
        }
    }
    if dry_run {
        return Ok(charged);
    }
    for q in &quotas {
        let qname = q.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let key = quota_desc.key(ns, qname);
        let mut added = Resources::new();
        let written = reg
            .store
            .guaranteed_update(&key, |cur| {
                let Some(cur) = cur else {
                    return Err(ApiError::not_found(&quota_desc.group_resource(), qname));
                };
                added = quota::charge(cur, desc, obj, &usage).map_err(refuse)?;
                if added.is_empty() {
                    return Ok(UpdateAction::Unchanged);
                }
                let mut next = cur.clone();
                quota::add_used(&mut next, &added, false);
                Ok(UpdateAction::Put(next))
            })
            .await;
        match written {
            Ok(_) if !added.is_empty() => charged.0.push((key, added)),
            Ok(_) => {}
            Err(e) if e.code() == 404 => {}
            Err(e) => {
                refund(reg, charged).await;
                return Err(e);
            }
        }
    }
    Ok(charged)
}

/// Gives back usage recorded for a create that did not happen.
pub async fn refund(reg: &Registry, charged: Charged) {
    for (key, added) in charged.0 {
        let result = reg
            .store
            .guaranteed_update(&key, |cur| match cur {
                None => Err(ApiError::not_found(&Default::default(), "")),
                Some(cur) => {
                    let mut next = cur.clone();
                    quota::add_used(&mut next, &added, true);
                    Ok(UpdateAction::Put(next))
                }
            })
            .await;
        if let Err(e) = result
            && e.code() != 404
        {
            tracing::warn!(quota = %key, error = %e, "could not give back quota usage");
        }
    }
}

/// After a delete: the object's usage leaves the `status.used` of the quotas that count it (what
/// upstream's quota controller recomputes on delete events; never below zero).
pub async fn after_delete(reg: &Registry, desc: &ResourceDescriptor, written: &Written) {
    let Written::Deleted(obj) = written else {
        return;
    };
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !desc.namespaced || ns.is_empty() || is_core(desc, "resourcequotas") {
        return;
    }
    let quotas = match objects(reg, "resourcequotas", ns).await {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, "reading quotas after a delete");
            return;
        }
    };
    let Some(quota_desc) = row(reg, "", "resourcequotas") else {
        return;
    };
    let usage = quota::usage(desc, obj);
    let mut charged = Charged::default();
    for q in quotas.iter().filter(|q| quota::selects(q, desc, obj)) {
        let hard = amount::resources(q.pointer("/status/hard"));
        let counted: Resources = usage
            .iter()
            .filter(|(k, _)| hard.contains_key(*k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if !counted.is_empty() {
            let qname = q.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            charged.0.push((quota_desc.key(ns, qname), counted));
        }
    }
    refund(reg, charged).await;
}

/// After an update or patch: the gate's usage increase is recorded, a written quota gets its
/// refreshed status ([`after_write`]), and a write that deleted the object (its last finalizer
/// removed) gives its quota usage back.
pub async fn after_update(
    reg: &Registry,
    desc: &ResourceDescriptor,
    written: Written,
    sub: Option<crate::descriptor::SubresourceKind>,
    dry_run: bool,
    gate: Option<UpdateGate>,
) -> ApiResult<Written> {
    if let Some(gate) = gate.filter(|_| !dry_run) {
        gate.record(reg, desc, &written).await;
    }
    match written {
        Written::Put(v) if sub.is_none() && !dry_run => match after_write(reg, desc, &v).await? {
            Some(refreshed) => Ok(Written::Put(refreshed)),
            None => Ok(Written::Put(v)),
        },
        other => {
            if !dry_run {
                after_delete(reg, desc, &other).await;
            }
            Ok(other)
        }
    }
}

/// After a ResourceQuota was created or its spec changed: `status.hard` mirrors `spec.hard` and
/// `status.used` is recomputed from the namespace's objects (what upstream's quota controller
/// does). Returns the quota as stored then.
pub async fn after_write(
    reg: &Registry,
    desc: &ResourceDescriptor,
    written: &Value,
) -> ApiResult<Option<Value>> {
    if !is_core(desc, "resourcequotas") {
        return Ok(None);
    }
    let ns = written
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = written
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let hard = amount::resources(written.pointer("/spec/hard"));
    let mut used: Resources = hard
        .keys()
        .map(|k| (k.clone(), amount::Amount::default()))
        .collect();
    let store_read = ListOptions::default();
    for (group, resource) in quota::counted_resources(&hard) {
        let Some(counted) = row(reg, &group, &resource) else {
            continue;
        };
        let page = reg.list_page_from_store(&counted, ns, &store_read).await?;
        for obj in &page.items {
            if !quota::selects(written, &counted, obj) {
                continue;
            }
            for (k, v) in quota::usage(&counted, obj) {
                if let Some(total) = used.get_mut(&k) {
                    *total += v;
                }
            }
        }
    }
    let w = reg
        .store
        .guaranteed_update(&desc.key(ns, name), |cur| {
            let Some(cur) = cur else {
                return Err(ApiError::not_found(&desc.group_resource(), name));
            };
            let mut next = cur.clone();
            // Only for the spec just written; a later spec write recomputes again.
            if amount::resources(cur.pointer("/spec/hard")) != hard {
                return Ok(UpdateAction::Unchanged);
            }
            quota::set_status(&mut next, Some(&hard), &used);
            Ok(UpdateAction::Put(next))
        })
        .await?;
    Ok(Some(match w {
        Written::Put(v) | Written::Unchanged(v) | Written::Deleted(v) => v,
    }))
}
