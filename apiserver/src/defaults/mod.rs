//! Upstream's defaulting of built-in types (`pkg/apis/*/v1/defaults.go` plus the defaults
//! admission adds): one generic walker ([`walk`]) and a table of rules per resource
//! ([`rules`]). Defaults only fill what is absent; they never overwrite what a client sent.

pub mod alloc;
pub mod bootstrap;
mod rules;

use serde_json::{Map, Value};

use crate::descriptor::ResourceDescriptor;

pub use alloc::{ServiceAllocator, ServiceRanges};

/// How a default value is made.
#[derive(Clone, Copy)]
pub enum Fill {
    /// A JSON literal.
    Json(&'static str),
    /// Computed from the object that holds the field (`None`: leave it absent).
    Derived(fn(&Map<String, Value>) -> Option<Value>),
    /// An edit of the object that holds the field, run whether or not the field is present.
    Edit(fn(&mut Map<String, Value>)),
}

/// One default: at every object `at` reaches (dot-separated fields, `[]` for each element of an
/// array), set `field` when it is absent.
#[derive(Clone, Copy)]
pub struct Rule {
    /// Path from the rule group's root.
    pub at: &'static str,
    /// The field to fill.
    pub field: &'static str,
    /// Its default.
    pub fill: Fill,
}

/// Calls `f` on every object the path `segments` reaches under `node`.
pub fn walk(node: &mut Value, segments: &[&str], f: &mut dyn FnMut(&mut Map<String, Value>)) {
    let Some((first, rest)) = segments.split_first() else {
        if let Some(map) = node.as_object_mut() {
            f(map);
        }
        return;
    };
    if first.is_empty() {
        return walk(node, rest, f);
    }
    let (field, each) = match first.strip_suffix("[]") {
        Some(field) => (field, true),
        None => (*first, false),
    };
    let Some(child) = node.as_object_mut().and_then(|m| m.get_mut(field)) else {
        return;
    };
    if each {
        if let Some(items) = child.as_array_mut() {
            for item in items {
                walk(item, rest, f);
            }
        }
    } else {
        walk(child, rest, f);
    }
}

/// Applies `rules` below `prefix` (a dot path, may be empty) of `obj`.
pub fn apply_rules(obj: &mut Value, prefix: &str, rules: &[Rule]) {
    for rule in rules {
        let path = join(prefix, rule.at);
        let segments: Vec<&str> = path.split('.').collect();
        walk(obj, &segments, &mut |map| {
            if let Fill::Edit(edit) = rule.fill {
                return edit(map);
            }
            if map.get(rule.field).is_some_and(|v| !v.is_null()) {
                return;
            }
            let value = match rule.fill {
                Fill::Json(text) => serde_json::from_str(text).ok(),
                Fill::Derived(make) => make(map),
                Fill::Edit(_) => None,
            };
            if let Some(v) = value {
                map.insert(rule.field.to_string(), v);
            }
        });
    }
}

fn join(prefix: &str, at: &str) -> String {
    match (prefix.is_empty(), at.is_empty()) {
        (true, _) => at.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}.{at}"),
    }
}

/// Fills the defaults of a built-in object (create, update, patch and apply alike).
pub fn apply(desc: &ResourceDescriptor, obj: &mut Value) {
    for (prefix, group) in rules::for_resource(&desc.group, &desc.resource) {
        apply_rules(obj, prefix, group);
    }
    if desc.group.is_empty() && desc.resource == "secrets" {
        fold_string_data(obj);
    }
}

/// A Secret's `stringData` is write-only: its entries are base64-encoded into `data` (taking
/// precedence over a `data` entry of the same key) and it is never stored, as upstream.
fn fold_string_data(obj: &mut Value) {
    use base64::Engine as _;
    let Some(map) = obj.as_object_mut() else { return };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    if strings.is_empty() {
        return;
    }
    let data = map.entry("data").or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(data) = data {
        for (key, value) in strings {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(key, Value::String(encoded));
        }
    }
}

/// Defaults of `status` fields, applied after the type's create hook resets the status.
pub fn apply_status(desc: &ResourceDescriptor, obj: &mut Value) {
    apply_rules(obj, "", rules::status_for_resource(&desc.group, &desc.resource));
}

/// Create-time defaults that need the object's identity (uid, final name): the generated
/// selector and labels of a Job (upstream's job strategy).
pub fn on_create(desc: &ResourceDescriptor, obj: &mut Value) {
    if desc.group == "batch" && desc.resource == "jobs" {
        rules::generate_job_selector(obj);
    }
}

/// Whether upstream keeps `metadata.generation` for this type: types with a spec (and custom
/// resources), not data-only ones such as ConfigMaps, Secrets, ServiceAccounts or Services.
pub fn has_generation(desc: &ResourceDescriptor) -> bool {
    !matches!(
        (desc.group.as_str(), desc.resource.as_str()),
        (
            "",
            "configmaps"
                | "secrets"
                | "serviceaccounts"
                | "endpoints"
                | "events"
                | "namespaces"
                | "nodes"
                | "componentstatuses"
                | "services"
                | "persistentvolumes"
                | "persistentvolumeclaims"
                | "limitranges"
        ) | ("events.k8s.io", "events")
            | ("coordination.k8s.io", "leases")
            | ("rbac.authorization.k8s.io", _)
            | ("scheduling.k8s.io", "priorityclasses")
            | ("storage.k8s.io", "storageclasses" | "csinodes" | "csidrivers")
            | ("node.k8s.io", "runtimeclasses")
    )
}

#[cfg(test)]
mod tests;
