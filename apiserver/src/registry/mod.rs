//! The one generic registry: every verb of every resource, driven by its [`ResourceDescriptor`]
//! (upstream `k8s.io/apiserver/pkg/registry/generic/registry/store.go`). Objects are JSON values.

mod cached_list;
pub mod event_versions;
mod eviction;
mod fresh;
pub mod hooks;
pub(crate) mod parts;
mod services;
pub mod subresource;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use storage::{Revision, Storage};

pub use watch::{WatchEvent, WatchEventStream, WatchOptions, WatchStream};

use crate::descriptor::{ResourceDescriptor, ResourceTable, SubresourceKind};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::objstore::{ObjectStore, Page, UpdateAction, Written, decode_continue, set_resource_version};
use crate::patch::{self, PatchType};
use crate::query::{FieldValidation, RvMatch};
use crate::selector::{FieldSelector, LabelSelector};
use crate::validation::certificates::CsrWrite;
use crate::{apply, defaults, strategy, strict, typecheck};

/// Registry settings.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Watch duration when the client gives no `timeoutSeconds` (upstream: 30–60 min).
    pub default_watch_timeout: Duration,
    /// The service IP and node port ranges.
    pub services: defaults::ServiceRanges,
    /// Serve watches and "any"/consistent lists from the per-resource watch cache (else every
    /// watch has its own storage watch and every list reads the store).
    pub watch_cache: bool,
    /// The `tolerationSeconds` new pods get for the not-ready taint (DefaultTolerationSeconds).
    pub default_not_ready_toleration_seconds: i64,
    /// The same for the unreachable taint.
    pub default_unreachable_toleration_seconds: i64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            bookmark_interval: Duration::from_secs(60),
            default_watch_timeout: Duration::from_secs(1800),
            services: defaults::ServiceRanges::default(),
            watch_cache: true,
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 300,
        }
    }
}

/// Options of a write.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// `dryRun=All`: do everything but persist.
    pub dry_run: bool,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// The field manager recorded in `managedFields` (`fieldManager`, or the user agent).
    pub field_manager: String,
    /// `force` (apply patches): take fields other managers own.
    pub force: bool,
    /// Strict decoding errors of the request body (fields set twice), reported with the
    /// object's unknown fields per `field_validation`.
    pub decode_errors: Vec<String>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            dry_run: false,
            field_validation: FieldValidation::Warn,
            field_manager: String::new(),
            force: false,
            decode_errors: Vec::new(),
        }
    }
}

impl WriteOptions {
    /// The writer a managed-fields record names (`applied`: the configuration of an apply).
    fn writer<'a>(&'a self, applied: Option<&'a Value>) -> apply::Writer<'a> {
        apply::Writer {
            manager: &self.field_manager,
            force: self.force,
            applied,
        }
    }
}

/// Options of a list.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0: none).
    pub limit: u64,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<Revision>,
    /// `resourceVersionMatch`.
    pub rv_match: Option<RvMatch>,
}

/// `DeleteOptions` (from the body or the query).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy`: `Orphan`, `Background` or `Foreground`.
    pub propagation_policy: Option<String>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// A successful answer: HTTP code, body, warnings.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status (200, 201).
    pub code: u16,
    /// The body.
    pub body: Value,
    /// Warnings for `Warning` headers.
    pub warnings: Vec<String>,
}

impl Reply {
    /// 200 with a body.
    pub fn ok(body: Value) -> Self {
        Reply {
            code: 200,
            body,
            warnings: Vec::new(),
        }
    }
}

/// The generic registry.
#[derive(Clone, Debug)]
pub struct Registry {
    /// The object layer.
    pub store: ObjectStore,
    /// The served resources.
    pub table: Arc<ResourceTable>,
    /// Settings.
    pub config: RegistryConfig,
    /// The watch caches, one per resource.
    pub caches: crate::cache::WatchCaches,
    /// Namespaces this server recently began to delete: creates in them check the store, not
    /// the namespace cache, which may not have seen the deletion yet (upstream's
    /// NamespaceLifecycle keeps the same kind of list).
    ending_namespaces: Arc<parking_lot::Mutex<HashMap<String, std::time::Instant>>>,
}

/// How long a namespace deletion forces store reads in [`Registry::check_namespace`].
const ENDING_NAMESPACE_WINDOW: Duration = Duration::from_secs(30);

/// Now, as Kubernetes writes `metav1.Time` (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `metadata.<field>` as a string ("" when absent).
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn meta_mut(obj: &mut Value) -> ApiResult<&mut serde_json::Map<String, Value>> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the object must be a JSON object"))?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Random suffix for `generateName` (upstream's alphabet: no vowels, no confusable digits).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A 422 Invalid for `name` of `desc` when `errs` is not empty.
fn reject_invalid(desc: &ResourceDescriptor, name: &str, errs: &[FieldError]) -> ApiResult<()> {
    if errs.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(&desc.qualified_kind(), &desc.group, name, errs))
}

/// Checks `apiVersion`/`kind` of a body against the row (absent is accepted and filled in).
pub fn check_kind(desc: &ResourceDescriptor, obj: &mut Value) -> ApiResult<()> {
    let api_version = desc.api_version();
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(desc.kind.clone()));
        }
        Some(k) if k == desc.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                desc.kind
            )));
        }
    }
    Ok(())
}

/// Everything outside `metadata` (and `status` when it is a subresource), for generation bumps.
fn spec_part(desc: &ResourceDescriptor, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
        if desc.has_status() {
            map.remove("status");
        }
    }
    v
}

impl Registry {
    /// A registry over `kv` serving `table`.
    pub fn new(kv: Arc<dyn Storage>, table: Arc<ResourceTable>, config: RegistryConfig) -> Self {
        Registry {
            caches: crate::cache::WatchCaches::new(kv.clone()),
            ending_namespaces: Arc::default(),
            store: ObjectStore::new(kv),
            table,
            config,
        }
    }

    /// Resolves the object's namespace for a row: the URL's for namespaced rows (a different one
    /// in the body is a 400), none for cluster-scoped ones.
    fn settle_namespace(desc: &ResourceDescriptor, url_ns: &str, obj: &mut Value) -> ApiResult<()> {
        let meta = meta_mut(obj)?;
        if desc.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), Value::String(url_ns.to_string()));
                }
            }
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    /// 404 when the namespace does not exist, 403 when it is terminating.
    async fn check_namespace(&self, desc: &ResourceDescriptor, ns: &str, name: &str) -> ApiResult<()> {
        if !desc.namespaced {
            return Ok(());
        }
        let prefix = crate::builtin::storage_prefix("", "namespaces");
        let key = format!("{prefix}{ns}");
        // Like upstream's NamespaceLifecycle admission: the namespace cache first, a quorum read
        // only when the cache has not seen it (yet), so concurrent creates do not each wait for
        // the store to apply every write before them.
        let recently_ended = {
            let mut ending = self.ending_namespaces.lock();
            ending.retain(|_, at| at.elapsed() < ENDING_NAMESPACE_WINDOW);
            ending.contains_key(ns)
        };
        let cached = if self.config.watch_cache && !recently_ended {
            match self.caches.get(&prefix).await {
                Ok(cache) => cache.get(&key).map(|v| Value::clone(&v)),
                Err(_) => None,
            }
        } else {
            None
        };
        let found = match cached {
            Some(obj) => Some(obj),
            None => self.store.get(&key, 0).await?,
        };
        match found {
            None => Err(ApiError::not_found(
                &crate::error::GroupResource::new("", "namespaces"),
                ns,
            )),
            Some(nsobj) => {
                let terminating = nsobj.pointer("/status/phase").and_then(Value::as_str)
                    == Some("Terminating")
                    || !meta_str(&nsobj, "deletionTimestamp").is_empty();
                if terminating {
                    Err(ApiError::forbidden(
                        &desc.group_resource(),
                        name,
                        &format!(
                            "unable to create new content in namespace {ns} because it is being terminated"
                        ),
                    )
                    .with_cause(
                        "NamespaceTerminating",
                        &format!("namespace {ns} is being terminated"),
                        "metadata.namespace",
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// GET of one object.
    pub async fn get(&self, desc: &ResourceDescriptor, ns: &str, name: &str) -> ApiResult<Value> {
        let mut obj = self
            .store
            .get(&desc.key(ns, name), 0)
            .await?
            .ok_or_else(|| ApiError::not_found(&desc.group_resource(), name))?;
        self.present(desc, &mut obj);
        Ok(obj)
    }

    /// Labels a stored object with the row's `apiVersion`/`kind` (objects of all versions of a
    /// resource share one key; conversion between versions is not implemented yet).
    fn present(&self, desc: &ResourceDescriptor, obj: &mut Value) {
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), Value::String(desc.api_version()));
            map.insert("kind".into(), Value::String(desc.kind.clone()));
        }
        if let Some(hooks) = &desc.hooks {
            hooks.present(obj);
        }
    }

    /// The revision a list reads at, from its options.
    async fn list_revision(&self, opts: &ListOptions) -> ApiResult<(Revision, Option<String>)> {
        if let Some(token) = &opts.continue_token {
            if opts.resource_version.is_some_and(|rv| rv != 0) {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (rv, start) = decode_continue(token)?;
            return Ok((rv, Some(start)));
        }
        let rv = match (opts.resource_version, opts.rv_match.unwrap_or(RvMatch::Unset)) {
            (None, RvMatch::Unset) => 0,
            (None, _) => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            (Some(0), RvMatch::Exact) => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
            (Some(0), _) => 0,
            (Some(n), RvMatch::Exact) => n,
            (Some(n), RvMatch::Unset) if opts.limit > 0 => n,
            (Some(n), _) => {
                let current = self.store.current_revision().await?;
                if n > current {
                    return Err(storage::Error::FutureRevision {
                        requested: n,
                        current,
                    }
                    .into());
                }
                0
            }
        };
        Ok((rv, None))
    }

    /// LIST: a `<Kind>List` with `metadata.resourceVersion` (and `continue`).
    pub async fn list(&self, desc: &ResourceDescriptor, ns: &str, opts: &ListOptions) -> ApiResult<Value> {
        let page = self.list_page(desc, ns, opts).await?;
        let mut meta = json!({"resourceVersion": page.revision.to_string()});
        if let Some(c) = &page.continue_token {
            meta["continue"] = Value::String(c.clone());
        }
        if let Some(r) = page.remaining {
            meta["remainingItemCount"] = json!(r);
        }
        let mut items = page.items;
        for item in &mut items {
            self.present(desc, item);
        }
        Ok(json!({
            "kind": desc.list_kind,
            "apiVersion": desc.api_version(),
            "metadata": meta,
            "items": items,
        }))
    }

    /// One page of matching objects: from the watch cache when the options allow it, else from
    /// the store.
    pub async fn list_page(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        opts: &ListOptions,
    ) -> ApiResult<Page> {
        if let Some(page) = self.list_from_cache(desc, ns, opts).await? {
            return Ok(page);
        }
        self.list_page_from_store(desc, ns, opts).await
    }

    /// One page of matching objects read from the store.
    pub async fn list_page_from_store(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        opts: &ListOptions,
    ) -> ApiResult<Page> {
        let (revision, start) = self.list_revision(opts).await?;
        let prefix = desc.collection_prefix(ns);
        let filtered = !opts.labels.is_empty() || !opts.fields.is_empty();
        let filter = |o: &Value| opts.labels.matches_object(o) && opts.fields.matches_object(o);
        let result = self
            .store
            .list(&prefix, revision, start.as_deref(), opts.limit, &filter, filtered)
            .await;
        match result {
            Err(e) if e.code() == 410 && opts.continue_token.is_some() => Err(ApiError::continue_expired()),
            other => other,
        }
    }

    /// Checks and normalizes a body for create/update: kind, type, namespace.
    fn admit_body(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        mut body: Value,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, Vec<String>)> {
        check_kind(desc, &mut body)?;
        let (mut obj, unknown) = typecheck::check(desc, body, opts.field_validation)?;
        let mut errors = opts.decode_errors.clone();
        errors.extend(unknown);
        if let Some(hooks) = &desc.hooks {
            errors.extend(hooks.normalize(&mut obj)?);
        }
        let warnings = strict::settle(opts.field_validation, &errors, || strict::Failure::Body {
            kind: &desc.kind,
            version: &desc.version,
        })?;
        Self::settle_namespace(desc, ns, &mut obj)?;
        Ok((obj, warnings))
    }

    /// POST: creates an object (201).
    pub async fn create(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Reply> {
        self.create_as(desc, ns, body, opts, &opts.writer(None)).await
    }

    /// Creates an object, recording the write for `writer` (an update, or an apply that
    /// creates).
    async fn create_as(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        body: Value,
        opts: &WriteOptions,
        writer: &apply::Writer<'_>,
    ) -> ApiResult<Reply> {
        let (mut obj, warnings) = self.admit_body(desc, ns, body, opts)?;
        let generate = meta_str(&obj, "generateName").to_string();
        let explicit = meta_str(&obj, "name").to_string();
        if explicit.is_empty() && generate.is_empty() {
            return Err(ApiError::invalid(
                &desc.qualified_kind(),
                &desc.group,
                "",
                &[FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
        {
            let meta = meta_mut(&mut obj)?;
            for field in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                meta.remove(field);
            }
            meta.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
            if defaults::has_generation(desc) {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
        // Field defaults come with the decoded body (an update's manager owns them, as
        // upstream); the type's create defaults come after tracking and belong to no manager.
        defaults::apply(desc, &mut obj);
        apply::track(desc, None, &mut obj, writer, None)?;
        strategy::prepare_for_create(desc, &mut obj);
        defaults::apply_status(desc, &mut obj);
        self.check_namespace(desc, ns, if explicit.is_empty() { &generate } else { &explicit })
            .await?;
        crate::admission::admit_create(self, desc, ns, &explicit, &mut obj).await?;
        let attempts = if explicit.is_empty() { 8 } else { 1 };
        for _ in 0..attempts {
            let name = if explicit.is_empty() {
                format!("{generate}{}", random_suffix())
            } else {
                explicit.clone()
            };
            meta_mut(&mut obj)?.insert("name".into(), Value::String(name.clone()));
            defaults::on_create(desc, &mut obj);
            let errs = strategy::validate(desc, &obj);
            reject_invalid(desc, &name, &errs)?;
            if let Some(hooks) = &desc.hooks {
                hooks.admit(&mut obj, None)?;
            }
            let charged =
                crate::admission::charge_quotas(self, desc, ns, &explicit, &obj, opts.dry_run).await?;
            let claimed = match services::is_service(desc) {
                // A taken name is a conflict, not an allocation error.
                true if !explicit.is_empty() && self.store.get(&desc.key(ns, &name), 0).await?.is_some() => {
                    return Err(ApiError::already_exists(&desc.group_resource(), &name));
                }
                true => Some(
                    self.service_allocator()
                        .allocate(&desc.qualified_kind(), &name, &mut obj, &Value::Null)
                        .await?,
                ),
                false => None,
            };
            let created = match opts.dry_run {
                true => Ok(None),
                false => self.store.create(&desc.key(ns, &name), &obj).await,
            };
            if !matches!(created, Ok(Some(_)))
                && let Some(claimed) = claimed
            {
                self.service_allocator().release(claimed).await;
            }
            if !matches!(created, Ok(Some(_))) {
                crate::admission::refund(self, charged).await;
            }
            if opts.dry_run {
                return Ok(Reply {
                    code: 201,
                    body: obj,
                    warnings,
                });
            }
            if let Some(mut created) = created? {
                if let Some(quota) = crate::admission::after_write(self, desc, &created).await? {
                    created = quota;
                }
                self.present(desc, &mut created);
                return Ok(Reply {
                    code: 201,
                    body: created,
                    warnings,
                });
            }
            if !explicit.is_empty() {
                return Err(ApiError::already_exists(&desc.group_resource(), &name));
            }
        }
        Err(ApiError::already_exists(&desc.group_resource(), &generate))
    }

    /// Runs an update function either for real ([`ObjectStore::guaranteed_update`]) or, for dry
    /// runs, once against the current object without writing.
    async fn write<F>(&self, key: &str, dry_run: bool, mut f: F) -> ApiResult<Written>
    where
        F: FnMut(Option<&Value>) -> ApiResult<UpdateAction> + Send,
    {
        if !dry_run {
            return self.store.guaranteed_update(key, f).await;
        }
        let cur = self.store.get(key, 0).await?;
        match (f(cur.as_ref())?, cur) {
            (UpdateAction::Put(v), _) => Ok(Written::Put(v)),
            (UpdateAction::Delete, Some(c)) => Ok(Written::Deleted(c)),
            (UpdateAction::Unchanged, Some(c)) => Ok(Written::Unchanged(c)),
            (_, None) => Err(ApiError::internal("dry run of a missing object")),
        }
    }

    /// Builds the object an update stores from the old one and the new body: system metadata
    /// kept, `status` or everything-but-status kept per subresource, generation bumped on spec
    /// changes, finalizer rules while deleting.
    fn prepare_update(
        desc: &ResourceDescriptor,
        old: &Value,
        mut new: Value,
        sub: Option<SubresourceKind>,
        writer: &apply::Writer<'_>,
    ) -> ApiResult<UpdateAction> {
        let name = meta_str(old, "name").to_string();
        match sub {
            Some(SubresourceKind::Status) => {
                let mut merged = old.clone();
                match new.get("status") {
                    Some(s) => merged["status"] = s.clone(),
                    None => {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                if parts::is_csr(desc) {
                    parts::csr_status(old, &mut merged, &now_rfc3339());
                }
                new = merged;
                let mut errs = strategy::validate_status(desc, &new);
                if parts::is_csr(desc) {
                    let write = CsrWrite {
                        certificate: true,
                        ..CsrWrite::default()
                    };
                    errs.extend(crate::validation::validate_csr_update(&new, old, write));
                }
                reject_invalid(desc, &name, &errs)?;
            }
            Some(SubresourceKind::EphemeralContainers) => {
                new = parts::ephemeral_containers(old, &new);
                defaults::apply(desc, &mut new);
                let errs = crate::validation::validate_ephemeral_containers(desc, &new, old);
                reject_invalid(desc, &name, &errs)?;
            }
            Some(SubresourceKind::Approval) => {
                new = parts::approval(old, &new, &now_rfc3339());
                let write = CsrWrite {
                    approval_conditions: true,
                    ..CsrWrite::default()
                };
                let errs = crate::validation::validate_csr_update(&new, old, write);
                reject_invalid(desc, &name, &errs)?;
            }
            Some(SubresourceKind::Finalize) => {
                let mut merged = old.clone();
                let fins = new.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
                merged["spec"] = json!({"finalizers": fins});
                new = merged;
            }
            _ => {
                defaults::apply(desc, &mut new);
                if services::is_service(desc)
                    && let Some(err) = defaults::alloc::keep_allocated(old, &mut new)
                {
                    return Err(ApiError::invalid(
                        &desc.qualified_kind(),
                        &desc.group,
                        &name,
                        &[err],
                    ));
                }
                {
                    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
                    let meta = meta_mut(&mut new)?;
                    for field in [
                        "uid",
                        "creationTimestamp",
                        "deletionTimestamp",
                        "deletionGracePeriodSeconds",
                        "generation",
                        "namespace",
                    ] {
                        match old_meta.get(field) {
                            Some(v) => meta.insert(field.into(), v.clone()),
                            None => meta.remove(field),
                        };
                    }
                    meta.remove("selfLink");
                }
                if desc.has_status()
                    && let Some(map) = new.as_object_mut()
                {
                    match old.get("status") {
                        Some(s) => map.insert("status".into(), s.clone()),
                        None => map.remove("status"),
                    };
                }
                // A certificate request is immutable but through its subresources.
                if parts::is_csr(desc)
                    && let Some(map) = new.as_object_mut()
                {
                    map.insert("spec".into(), old.get("spec").cloned().unwrap_or(json!({})));
                }
                if defaults::has_generation(desc) && spec_part(desc, &new) != spec_part(desc, old) {
                    let generation = old
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    meta_mut(&mut new)?.insert("generation".into(), json!(generation + 1));
                }
                let errs = strategy::validate_update(desc, &new, old);
                reject_invalid(desc, &name, &errs)?;
            }
        }
        // Finalizers of an object being deleted may only go away; when the last one goes, the
        // object is deleted (upstream `ShouldDeleteDuringUpdate`).
        if !meta_str(old, "deletionTimestamp").is_empty() {
            let old_f = finalizers(old);
            let new_f = finalizers(&new);
            if new_f.iter().any(|f| !old_f.contains(f)) {
                return Err(ApiError::invalid(
                    &desc.qualified_kind(),
                    &desc.group,
                    &name,
                    &[FieldError::forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted",
                    )],
                ));
            }
            let spec_finalizers_empty = !strategy::is_namespace(desc)
                || new
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
            if new_f.is_empty() && spec_finalizers_empty {
                return Ok(UpdateAction::Delete);
            }
        }
        if let Some(hooks) = &desc.hooks {
            hooks.admit(&mut new, Some(old))?;
        }
        apply::track(desc, Some(old), &mut new, writer, sub)?;
        Ok(UpdateAction::Put(new))
    }

    fn written_reply(&self, desc: &ResourceDescriptor, w: Written, warnings: Vec<String>) -> Reply {
        let mut body = match w {
            Written::Put(v) | Written::Unchanged(v) | Written::Deleted(v) => v,
        };
        self.present(desc, &mut body);
        Reply {
            code: 200,
            body,
            warnings,
        }
    }

    /// PUT: replaces an object (or its status / finalizers with `sub`).
    pub async fn update(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        name: &str,
        body: Value,
        opts: &WriteOptions,
        sub: Option<SubresourceKind>,
    ) -> ApiResult<Reply> {
        let (mut obj, warnings) = self.admit_body(desc, ns, body, opts)?;
        match meta_str(&obj, "name") {
            "" => {
                meta_mut(&mut obj)?.insert("name".into(), Value::String(name.to_string()));
            }
            n if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            _ => {}
        }
        let want_rv = match meta_str(&obj, "resourceVersion") {
            "" => None,
            rv => Some(rv.to_string()),
        };
        let gr = desc.group_resource();
        let gate = crate::admission::UpdateGate::load(self, desc, ns, sub).await?;
        let w = self
            .write_object(desc, &desc.key(ns, name), opts.dry_run, |cur| {
                let cur = cur.ok_or_else(|| ApiError::not_found(&gr, name))?;
                if let Some(rv) = &want_rv
                    && rv != meta_str(cur, "resourceVersion")
                {
                    return Err(ApiError::optimistic_lock(&gr, name));
                }
                let action = Self::prepare_update(desc, cur, obj.clone(), sub, &opts.writer(None))?;
                crate::admission::UpdateGate::check(gate.as_ref(), desc, name, cur, &action)?;
                Ok(action)
            })
            .await?;
        let w = crate::admission::after_update(self, desc, w, sub, opts.dry_run, gate).await?;
        Ok(self.written_reply(desc, w, warnings))
    }

    /// PATCH: applies a patch to the latest object (or its status with `sub`). Apply patches
    /// create missing objects.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        name: &str,
        kind: PatchType,
        patch_body: &Value,
        opts: &WriteOptions,
        sub: Option<SubresourceKind>,
    ) -> ApiResult<Reply> {
        if kind == PatchType::Strategic && desc.round_trip.is_none() {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources",
            ));
        }
        let key = desc.key(ns, name);
        let gr = desc.group_resource();
        let mut applied = patch_body.clone();
        let applied = match kind {
            PatchType::Apply => {
                apply::check_applied(desc, &mut applied, ns, name)?;
                Some(&applied)
            }
            _ => None,
        };
        if let Some(config) = applied
            && sub.is_none()
            && self.store.get(&key, 0).await?.is_none()
        {
            let body = apply::merge_applied(desc, None, config, &opts.field_manager, sub)?;
            return self.create_as(desc, ns, body, opts, &opts.writer(applied)).await;
        }
        let mut warnings = Vec::new();
        let gate = crate::admission::UpdateGate::load(self, desc, ns, sub).await?;
        let w = self
            .write_object(desc, &key, opts.dry_run, |cur| {
                let cur = cur.ok_or_else(|| ApiError::not_found(&gr, name))?;
                let mut base = cur.clone();
                self.present(desc, &mut base);
                let mut patched = match applied {
                    Some(config) => {
                        apply::merge_applied(desc, Some(&base), config, &opts.field_manager, sub)?
                    }
                    None => patch::apply(kind, &base, patch_body)?,
                };
                if meta_str(&patched, "resourceVersion") != meta_str(cur, "resourceVersion")
                    && !meta_str(&patched, "resourceVersion").is_empty()
                {
                    return Err(ApiError::optimistic_lock(&gr, name));
                }
                if meta_str(&patched, "name") != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({}) does not match the name on the URL ({name})",
                        meta_str(&patched, "name")
                    )));
                }
                check_kind(desc, &mut patched)?;
                // Upstream shows the patch (strategic merge) or the patched object (JSON and
                // merge patches) with strict errors; apply patches report theirs themselves.
                let original = (opts.field_validation == FieldValidation::Strict
                    && matches!(kind, PatchType::Json | PatchType::Merge))
                .then(|| patched.clone());
                let (mut checked, unknown) = typecheck::check(desc, patched, opts.field_validation)?;
                let mut errors = opts.decode_errors.clone();
                errors.extend(unknown);
                if let Some(hooks) = &desc.hooks {
                    errors.extend(hooks.normalize(&mut checked)?);
                }
                warnings = strict::settle(opts.field_validation, &errors, || strict::Failure::Patch {
                    shown: match &original {
                        Some(patched) => serde_json::to_string(patched).unwrap_or_default(),
                        None => strict::go_format(patch_body),
                    },
                })?;
                let action = Self::prepare_update(desc, cur, checked, sub, &opts.writer(applied))?;
                crate::admission::UpdateGate::check(gate.as_ref(), desc, name, cur, &action)?;
                Ok(action)
            })
            .await?;
        let w = crate::admission::after_update(self, desc, w, sub, opts.dry_run, gate).await?;
        Ok(self.written_reply(desc, w, warnings))
    }

    /// Before a namespace is deleted: creates in it read the store for a while.
    fn note_namespace_ending(&self, desc: &ResourceDescriptor, name: &str) {
        if strategy::is_namespace(desc) {
            self.ending_namespaces
                .lock()
                .insert(name.to_string(), std::time::Instant::now());
        }
    }

    /// The decision of a DELETE against the current object.
    fn delete_action(
        desc: &ResourceDescriptor,
        cur: &Value,
        opts: &DeleteOptions,
    ) -> ApiResult<UpdateAction> {
        let name = meta_str(cur, "name");
        let gr = desc.group_resource();
        let preconditions = [
            ("UID", &opts.precondition_uid, "uid"),
            ("ResourceVersion", &opts.precondition_rv, "resourceVersion"),
        ];
        for (label, wanted, field) in preconditions {
            if let Some(wanted) = wanted
                && wanted.as_str() != meta_str(cur, field)
            {
                return Err(ApiError::conflict(
                    &gr,
                    name,
                    &format!(
                        "Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {}",
                        meta_str(cur, field)
                    ),
                ));
            }
        }
        let mut obj = cur.clone();
        if let Some(hooks) = &desc.hooks {
            hooks.prepare_delete(&mut obj);
        }
        let deleting = !meta_str(cur, "deletionTimestamp").is_empty();
        let now = now_rfc3339();
        if strategy::is_namespace(desc) {
            obj["status"] = json!({"phase": "Terminating"});
            let spec_fins = obj
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            if spec_fins || !finalizers(&obj).is_empty() {
                if !deleting {
                    let meta = meta_mut(&mut obj)?;
                    meta.insert("deletionTimestamp".into(), Value::String(now));
                    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
                }
                return Ok(UpdateAction::Put(obj));
            }
            return Ok(UpdateAction::Delete);
        }
        if strategy::is_pod(desc) {
            let phase = cur.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
            let scheduled = !cur
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty();
            let grace = opts.grace_period_seconds.unwrap_or_else(|| {
                cur.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30)
            });
            let current_grace = cur
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if scheduled && grace > 0 && !matches!(phase, "Succeeded" | "Failed") {
                if current_grace.is_some_and(|g| g <= grace) {
                    return Ok(UpdateAction::Unchanged);
                }
                let deadline = Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_secs(grace))
                    .unwrap_or_else(|_| Timestamp::now());
                let meta = meta_mut(&mut obj)?;
                meta.insert(
                    "deletionTimestamp".into(),
                    Value::String(deadline.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                return Ok(UpdateAction::Put(obj));
            }
        }
        let mut fins = finalizers(&obj);
        let extra = match opts.propagation_policy.as_deref() {
            Some("Foreground") => Some("foregroundDeletion"),
            Some("Orphan") => Some("orphan"),
            _ => None,
        };
        if let Some(f) = extra
            && !fins.iter().any(|x| x == f)
        {
            fins.push(f.to_string());
        }
        if fins.is_empty() {
            return Ok(UpdateAction::Delete);
        }
        if deleting && fins == finalizers(cur) {
            return Ok(UpdateAction::Unchanged);
        }
        let meta = meta_mut(&mut obj)?;
        meta.insert("finalizers".into(), json!(fins));
        if !deleting {
            meta.insert("deletionTimestamp".into(), Value::String(now));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        Ok(UpdateAction::Put(obj))
    }

    /// DELETE of one object: the object when it stays (finalizers, graceful deletion) or when the
    /// row returns deleted objects, else a `Status` with `status: Success`.
    pub async fn delete(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Reply> {
        let gr = desc.group_resource();
        self.note_namespace_ending(desc, name);
        let w = self
            .write_object(desc, &desc.key(ns, name), opts.dry_run, |cur| {
                let cur = cur.ok_or_else(|| ApiError::not_found(&gr, name))?;
                Self::delete_action(desc, cur, opts)
            })
            .await?;
        if !opts.dry_run {
            crate::admission::after_delete(self, desc, &w).await;
        }
        Ok(self.delete_reply(desc, w))
    }

    fn delete_reply(&self, desc: &ResourceDescriptor, w: Written) -> Reply {
        match w {
            Written::Deleted(mut obj) if !desc.return_deleted_object => {
                let mut details = json!({
                    "name": meta_str(&obj, "name"),
                    "kind": desc.resource,
                    "uid": meta_str(&obj, "uid"),
                });
                if !desc.group.is_empty() {
                    details["group"] = Value::String(desc.group.clone());
                }
                self.present(desc, &mut obj);
                Reply::ok(json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                }))
            }
            other => self.written_reply(desc, other, Vec::new()),
        }
    }

    /// DELETE of a collection: deletes every matching object, answering the list of them.
    pub async fn delete_collection(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let page = self.list_page(desc, ns, list).await?;
        let mut items = Vec::new();
        for obj in page.items {
            let name = meta_str(&obj, "name").to_string();
            let obj_ns = meta_str(&obj, "namespace").to_string();
            let gr = desc.group_resource();
            self.note_namespace_ending(desc, &name);
            let res = self
                .write_object(desc, &desc.key(&obj_ns, &name), opts.dry_run, |cur| {
                    let cur = cur.ok_or_else(|| ApiError::not_found(&gr, &name))?;
                    Self::delete_action(desc, cur, opts)
                })
                .await;
            if let Ok(w) = &res
                && !opts.dry_run
            {
                crate::admission::after_delete(self, desc, w).await;
            }
            match res {
                Ok(Written::Put(mut v) | Written::Deleted(mut v) | Written::Unchanged(mut v)) => {
                    self.present(desc, &mut v);
                    items.push(v);
                }
                Err(e) if e.code() == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let rv = self.store.current_revision().await?;
        Ok(json!({
            "kind": desc.list_kind,
            "apiVersion": desc.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        }))
    }

    /// Stamps a value's resourceVersion (for subresource views).
    pub fn stamp(obj: &mut Value, rv: Revision) {
        set_resource_version(obj, rv);
    }
}
