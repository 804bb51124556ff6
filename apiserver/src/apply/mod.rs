//! Server-side apply and field management, after upstream's structured-merge-diff and the
//! kube-apiserver field manager.
//!
//! Every write records which manager owns which fields in `metadata.managedFields`
//! ([`track`]): updates (create, PUT, merge/JSON/strategic patches) take the fields they
//! changed, applies take exactly the fields of their applied configuration. An apply
//! ([`merge_applied`]) merges the configuration into the live object per the type's
//! [`schema::FieldSchema`] and removes the fields its manager applied before and no one owns
//! any more; a change to a field another manager owns is a conflict (409) unless forced.

pub mod fieldset;
pub mod managed;
pub mod merge;
pub mod schema;

use serde_json::{Map, Value};

use crate::descriptor::{ResourceDescriptor, SubresourceKind};
use crate::error::{ApiError, ApiResult};
use crate::registry::now_rfc3339;
use crate::typecheck;

use fieldset::{FieldSet, Path};
use managed::{Entry, Operation};
pub use schema::{FieldSchema, ListKey, ListType, MapType, schema_for};

/// Who is writing, and how: the manager (`fieldManager` or the user agent), `force`, and for
/// applies the applied configuration.
#[derive(Clone, Copy, Debug)]
pub struct Writer<'a> {
    /// The field manager.
    pub manager: &'a str,
    /// `force=true`: take conflicting fields.
    pub force: bool,
    /// The applied configuration (None for updates).
    pub applied: Option<&'a Value>,
}

/// The client-side apply annotation kubectl keeps.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager whose applies upgrade client-side-applied objects (upstream's special case for
/// `kubectl apply --server-side`).
const KUBECTL: &str = "kubectl";

fn last_applied(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/annotations")?.get(LAST_APPLIED)?.as_str()
}

/// True when `kubectl`'s apply upgrades a client-side-applied object: its conflicts with
/// fields of the last applied configuration are allowed and the annotation follows the
/// applied configuration.
fn upgrades_client_side_apply(manager: &str, live: Option<&Value>) -> bool {
    manager == KUBECTL && live.and_then(last_applied).is_some()
}

/// The fields of the live object the client-side apply annotation names (the conflicts a
/// `kubectl` apply may take over).
fn last_applied_fields(schema: &dyn FieldSchema, live: &Value) -> FieldSet {
    let parsed = last_applied(live).and_then(|s| serde_json::from_str::<Value>(s).ok());
    match (parsed, merge::field_set(schema, live)) {
        (Some(cfg), Ok(live_set)) => merge::field_set(schema, &cfg)
            .map(|s| s.intersection(&live_set))
            .unwrap_or_default(),
        _ => FieldSet::new(),
    }
}

/// The subresource name recorded in entries.
fn subresource_name(sub: Option<SubresourceKind>) -> &'static str {
    match sub {
        Some(SubresourceKind::Status) => "status",
        Some(SubresourceKind::Finalize) => "finalize",
        Some(SubresourceKind::Scale) => "scale",
        Some(SubresourceKind::EphemeralContainers) => "ephemeralcontainers",
        Some(SubresourceKind::Approval) => "approval",
        _ => "",
    }
}

/// System fields no manager owns (upstream's strip set).
const STRIPPED: [&[&str]; 12] = [
    &["apiVersion"],
    &["kind"],
    &["metadata"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "creationTimestamp"],
    &["metadata", "selfLink"],
    &["metadata", "uid"],
    &["metadata", "clusterName"],
    &["metadata", "generation"],
    &["metadata", "managedFields"],
    &["metadata", "resourceVersion"],
];

fn field_path(names: &[&str]) -> Path {
    names.iter().map(|n| fieldset::field(n)).collect()
}

/// A field set without the system fields and the fields the write cannot change: `status` on
/// the main resource of a type with a status subresource, everything but `status` on it.
fn owned_part(desc: &ResourceDescriptor, sub: Option<SubresourceKind>, set: &FieldSet) -> FieldSet {
    let mut strip = FieldSet::new();
    for p in STRIPPED {
        strip.insert(&field_path(p));
    }
    let set = set
        .difference(&strip)
        .without_subtree(&field_path(&["metadata", "managedFields"]));
    let status = field_path(&["status"]);
    match sub {
        None if desc.has_status() => set.without_subtree(&status),
        Some(SubresourceKind::Status) => set.only_subtree(&status),
        Some(SubresourceKind::Finalize) => set.only_subtree(&field_path(&["spec", "finalizers"])),
        Some(SubresourceKind::EphemeralContainers) => {
            set.only_subtree(&field_path(&["spec", "ephemeralContainers"]))
        }
        Some(SubresourceKind::Approval) => set.only_subtree(&field_path(&["status", "conditions"])),
        _ => set,
    }
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

/// What an object is compared against on create: its top-level structs present but empty, as
/// upstream compares against a new empty object of the type.
fn empty_like(schema: &dyn FieldSchema, obj: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        if v.is_object() && schema.map_type(std::slice::from_ref(k)) == MapType::Struct {
            out.insert(k.clone(), Value::Object(Map::new()));
        }
    }
    Value::Object(out)
}

fn gvknn(desc: &ResourceDescriptor, obj: &Value) -> String {
    let meta = |f: &str| {
        obj.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    format!(
        "{}/{}; {}, Kind={}",
        meta("namespace"),
        meta("name"),
        desc.api_version(),
        desc.kind
    )
}

fn typed_patch_error(desc: &ResourceDescriptor, obj: &Value, detail: &str) -> ApiError {
    ApiError::bad_request(format!(
        "failed to create typed patch object ({}): {detail}",
        gvknn(desc, obj)
    ))
}

/// Checks an applied configuration before it is merged: `apiVersion` and `kind` of the URL's
/// resource, no `managedFields`, the URL's name and namespace (filled in when absent).
pub fn check_applied(desc: &ResourceDescriptor, config: &mut Value, ns: &str, name: &str) -> ApiResult<()> {
    let expected = desc.api_version();
    let got = config.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if got != expected {
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {got}, expected: {expected}"
        )));
    }
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != desc.kind {
        return Err(ApiError::bad_request(format!(
            "Incorrect kind specified in apply patch. Specified patch kind: {kind}, expected: {}",
            desc.kind
        )));
    }
    let meta = config
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the apply patch must be an object"))?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let meta = meta
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    if meta.get("managedFields").is_some_and(|m| !m.is_null()) {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    match meta.get("name").and_then(Value::as_str) {
        None | Some("") => {
            meta.insert("name".into(), Value::String(name.to_string()));
        }
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        Some(_) => {}
    }
    if desc.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("namespace".into(), Value::String(ns.to_string()));
            }
            Some(n) if n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Applies `config` to the live object (None: the object does not exist yet): merges it and
/// removes what the manager applied before, no longer applies and no one else owns. Unknown
/// fields are an error for applies whatever `fieldValidation` says, as upstream.
pub fn merge_applied(
    desc: &ResourceDescriptor,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    sub: Option<SubresourceKind>,
) -> ApiResult<Value> {
    let schema = schema_for(desc);
    let schema = schema.as_ref();
    let applied_set =
        merge::field_set(schema, config).map_err(|e| typed_patch_error(desc, config, &e.to_string()))?;
    let mut merged =
        merge::merge(schema, live, config).map_err(|e| typed_patch_error(desc, config, &e.to_string()))?;
    if let Some(live) = live {
        let entries = managed::decode(live.pointer("/metadata/managedFields")).unwrap_or_default();
        let me = Entry {
            manager: manager.to_string(),
            operation: Operation::Apply,
            api_version: desc.api_version(),
            time: None,
            subresource: subresource_name(sub).to_string(),
            fields: FieldSet::new(),
        };
        if let Some(last) = entries.iter().find(|e| e.same_manager(&me)) {
            let mut owned = owned_part(desc, sub, &applied_set);
            for e in entries.iter().filter(|e| !e.same_manager(&me)) {
                owned.union_with(&e.fields);
            }
            let mut gone = FieldSet::new();
            for p in last.fields.paths() {
                if !owned.covers(&p) {
                    gone.insert(&p);
                }
            }
            merge::remove(schema, &mut merged, &gone);
        }
    }
    if upgrades_client_side_apply(manager, live) {
        let mut annotation = config.clone();
        if let Some(meta) = annotation.get_mut("metadata").and_then(Value::as_object_mut)
            && let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut)
        {
            a.remove(LAST_APPLIED);
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
        if let Some(a) = merged
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.insert(LAST_APPLIED.into(), Value::String(annotation.to_string()));
        }
    }
    let unknown = match &desc.hooks {
        _ if desc.round_trip.is_some() => {
            typecheck::check(desc, merged.clone(), crate::query::FieldValidation::Warn)?.1
        }
        Some(hooks) => hooks.normalize(&mut merged.clone())?,
        None => Vec::new(),
    };
    if !unknown.is_empty() {
        let fields: Vec<String> = unknown
            .iter()
            .map(|w| {
                let f = w.trim_start_matches("unknown field \"").trim_end_matches('"');
                format!(".{f}: field not declared in schema")
            })
            .collect();
        return Err(typed_patch_error(desc, config, &fields.join(", ")));
    }
    Ok(merged)
}

fn conflict_error(conflicts: &[(Entry, FieldSet)]) -> ApiError {
    let mut list: Vec<(String, String)> = Vec::new();
    for (entry, set) in conflicts {
        for p in set.paths() {
            list.push((entry.describe(), fieldset::path_string(&p)));
        }
    }
    list.sort();
    let message = match list.as_slice() {
        [(who, path)] => format!("Apply failed with 1 conflict: conflict with {who}: {path}"),
        many => {
            let mut lines = Vec::new();
            let mut last: Option<&str> = None;
            for (who, path) in many {
                if last != Some(who.as_str()) {
                    lines.push(format!("conflicts with {who}"));
                    last = Some(who);
                }
                lines.push(format!("- {path}"));
            }
            format!("Apply failed with {} conflicts: {}", many.len(), lines.join("\n"))
        }
    };
    let mut err = ApiError::new(409, "Conflict", message);
    for (who, path) in &list {
        err = err.with_cause("FieldManagerConflict", &format!("conflict with {who}"), path);
    }
    err
}

/// Records a write in `new`'s `metadata.managedFields`. `old` is the stored object (None on
/// create). Updates take the fields they changed; applies take their configuration's fields and
/// fail with a conflict when they change fields other managers own (unless forced, which takes
/// them). A body's own `managedFields` replace the stored ones on updates of the main resource;
/// an empty list clears them. Updates of an object without entries are not tracked; the first
/// apply to one gives its existing fields to `before-first-apply`.
pub fn track(
    desc: &ResourceDescriptor,
    old: Option<&Value>,
    new: &mut Value,
    writer: &Writer<'_>,
    sub: Option<SubresourceKind>,
) -> ApiResult<()> {
    let schema = schema_for(desc);
    let schema = schema.as_ref();
    let now = now_rfc3339();
    let api_version = desc.api_version();
    let subresource = subresource_name(sub);
    let stored = old
        .map(|o| managed::decode(o.pointer("/metadata/managedFields")).unwrap_or_default())
        .unwrap_or_default();
    let body = new.pointer("/metadata/managedFields");
    let mut entries = if writer.applied.is_some() || sub.is_some() {
        stored
    } else if managed::is_reset(body) {
        Vec::new()
    } else {
        match managed::decode(body) {
            Ok(e) if !e.is_empty() => e,
            _ => stored,
        }
    };
    if writer.applied.is_none() && entries.is_empty() && old.is_some() {
        // Updates of an object without managed fields (never tracked, or reset) stay
        // untracked until the next apply, as upstream.
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        return Ok(());
    }
    let mut new_plain = without_managed_fields(new);
    let upgrading = writer.applied.is_some() && upgrades_client_side_apply(writer.manager, old);
    if upgrading && let Some(o) = old {
        // The annotation sync is not a change of anyone's field.
        if let Some(a) = new_plain
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.insert(
                LAST_APPLIED.into(),
                Value::String(last_applied(o).unwrap_or("").into()),
            );
        }
    }
    let live = match old {
        Some(o) => without_managed_fields(o),
        None => empty_like(schema, &new_plain),
    };
    if writer.applied.is_some() && entries.is_empty() && old.is_some() {
        let c = merge::compare(schema, &empty_like(schema, &live), &live);
        let fields = owned_part(desc, None, &c.added.union(&c.modified));
        if !fields.is_empty() {
            entries.push(Entry {
                manager: managed::BEFORE_FIRST_APPLY.into(),
                operation: Operation::Update,
                api_version: api_version.clone(),
                time: Some(now.clone()),
                subresource: String::new(),
                fields,
            });
        }
    }
    let mut cmp = merge::compare(schema, &live, &new_plain);
    cmp.map_sets(|s| owned_part(desc, sub, s));
    let changed = cmp.added.union(&cmp.modified);
    let me = Entry {
        manager: writer.manager.to_string(),
        operation: if writer.applied.is_some() {
            Operation::Apply
        } else {
            Operation::Update
        },
        api_version: api_version.clone(),
        time: Some(now.clone()),
        subresource: subresource.to_string(),
        fields: FieldSet::new(),
    };
    let applying = writer.applied.is_some();
    let mut conflicts: Vec<(Entry, FieldSet)> = entries
        .iter()
        .filter(|e| !(applying && e.same_manager(&me)))
        .map(|e| (e.clone(), e.fields.intersection(&changed)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    if upgrading && !conflicts.is_empty() {
        let allowed = last_applied_fields(schema, &live);
        for (_, c) in &mut conflicts {
            *c = c.difference(&allowed);
        }
        conflicts.retain(|(_, c)| !c.is_empty());
    }
    if applying && !writer.force && !conflicts.is_empty() {
        return Err(conflict_error(&conflicts));
    }
    for e in entries.iter_mut().filter(|e| !(applying && e.same_manager(&me))) {
        e.fields = e.fields.difference(&changed).difference(&cmp.removed);
    }
    match writer.applied {
        Some(config) => {
            let set = merge::field_set(schema, config)
                .map_err(|e| typed_patch_error(desc, config, &e.to_string()))?;
            let set = owned_part(desc, sub, &set);
            match entries.iter_mut().find(|e| e.same_manager(&me)) {
                Some(e) => {
                    e.fields = set;
                    e.api_version = api_version;
                    if !cmp.is_same() || e.time.is_none() {
                        e.time = Some(now);
                    }
                }
                None => entries.push(Entry { fields: set, ..me }),
            }
        }
        None if !cmp.is_same() => match entries.iter_mut().find(|e| e.same_manager(&me)) {
            Some(e) => {
                e.fields.union_with(&changed);
                e.time = Some(now);
            }
            None => entries.push(Entry {
                fields: changed,
                ..me
            }),
        },
        None => {}
    }
    entries.retain(|e| !e.fields.is_empty());
    managed::cap_updaters(&mut entries);
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), managed::encode(&entries));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
