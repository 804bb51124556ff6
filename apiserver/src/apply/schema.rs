//! What server-side apply needs to know about a type: how each list and map merges and is
//! tracked (upstream's `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and
//! `x-kubernetes-map-type`). [`FieldSchema`] is the interface; [`BuiltinSchema`] answers for the
//! built-in types from the strategic-merge key table, [`DeducedSchema`] for objects without a
//! schema (upstream's "deduced" type: atomic lists, granular maps). CRDs with a structural schema
//! plug in their own implementation through [`schema_for`].

use std::sync::Arc;

use serde_json::Value;

use crate::descriptor::ResourceDescriptor;
use crate::patch::smp::{self, ListStrategy};

/// One key field of a list-map, with the default used when an element omits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListKey {
    /// The key field's name.
    pub name: String,
    /// Its default (upstream uses the schema default, e.g. `protocol: TCP` on ports).
    pub default: Option<Value>,
}

impl ListKey {
    /// A key without default.
    pub fn required(name: &str) -> Self {
        ListKey {
            name: name.to_string(),
            default: None,
        }
    }
}

/// How a list merges and is owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole and owned as one field.
    Atomic,
    /// Scalars merged as a set; each owned as `v:<value>`.
    Set,
    /// Objects merged by their key fields; each owned as `k:{...}`.
    Map(Vec<ListKey>),
}

/// How a map (JSON object) merges and is owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapType {
    /// A struct with declared fields: merged per field, the fields are not members themselves
    /// unless empty.
    Struct,
    /// A map with arbitrary keys (labels, data): merged per key, every key is a member.
    Granular,
    /// Replaced as a whole and owned as one field.
    Atomic,
}

/// The merge/ownership schema of one type. Paths are field names from the object root, with
/// list elements left out and map keys included (`["spec", "template", "spec", "containers",
/// "ports"]`, `["metadata", "labels", "app"]`).
pub trait FieldSchema: Send + Sync + std::fmt::Debug {
    /// The type of the list at `path`.
    fn list_type(&self, path: &[String]) -> ListType;
    /// The type of the map at `path` (for list elements: the path of the list).
    fn map_type(&self, path: &[String]) -> MapType;
}

/// The schema of a row: built-in rows use [`BuiltinSchema`], rows without a type check use
/// [`DeducedSchema`]. The CRD code replaces the latter with a schema-based implementation here.
pub fn schema_for(desc: &ResourceDescriptor) -> Arc<dyn FieldSchema> {
    if desc.round_trip.is_some() {
        Arc::new(BuiltinSchema)
    } else {
        Arc::new(DeducedSchema)
    }
}

/// Built-in types: list types from [`smp::list_strategy`] (merge key → list-map, primitive
/// merge → set, otherwise atomic) adjusted where upstream's SSA keys differ from its SMP keys;
/// atomic label selectors and references; granular string maps.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuiltinSchema;

const GRANULAR_MAPS: [&str; 11] = [
    "labels",
    "annotations",
    "data",
    "binaryData",
    "stringData",
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "hard",
    "parameters",
];

const ATOMIC_MAPS: [&str; 10] = [
    "selector",
    "nodeSelector",
    "labelSelector",
    "namespaceSelector",
    "podSelector",
    "matchLabels",
    "configMapKeyRef",
    "secretKeyRef",
    "fieldRef",
    "resourceFieldRef",
];

fn tcp_key(name: &str) -> Vec<ListKey> {
    vec![
        ListKey::required(name),
        ListKey {
            name: "protocol".into(),
            default: Some(Value::from("TCP")),
        },
    ]
}

impl FieldSchema for BuiltinSchema {
    fn list_type(&self, path: &[String]) -> ListType {
        let Some((field, parents)) = path.split_last() else {
            return ListType::Atomic;
        };
        match (field.as_str(), parents.last().map(String::as_str)) {
            ("addresses", Some("status")) => return ListType::Atomic,
            ("topologySpreadConstraints", _) => {
                return ListType::Map(vec![
                    ListKey::required("topologyKey"),
                    ListKey::required("whenUnsatisfiable"),
                ]);
            }
            _ => {}
        }
        match smp::list_strategy(parents, field) {
            ListStrategy::Replace => ListType::Atomic,
            ListStrategy::MergePrimitives => ListType::Set,
            ListStrategy::MergeKey("containerPort") => ListType::Map(tcp_key("containerPort")),
            ListStrategy::MergeKey("port") => ListType::Map(tcp_key("port")),
            ListStrategy::MergeKey(k) => ListType::Map(vec![ListKey::required(k)]),
        }
    }

    fn map_type(&self, path: &[String]) -> MapType {
        let field = path.last().map(String::as_str).unwrap_or("");
        if ATOMIC_MAPS.contains(&field) {
            MapType::Atomic
        } else if GRANULAR_MAPS.contains(&field) {
            MapType::Granular
        } else {
            MapType::Struct
        }
    }
}

/// Objects without a schema: lists are atomic, maps granular (upstream's deduced type).
#[derive(Clone, Copy, Debug, Default)]
pub struct DeducedSchema;

impl FieldSchema for DeducedSchema {
    fn list_type(&self, _: &[String]) -> ListType {
        ListType::Atomic
    }

    fn map_type(&self, _: &[String]) -> MapType {
        MapType::Granular
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn builtin_list_and_map_types() {
        let s = BuiltinSchema;
        assert_eq!(
            s.list_type(&path("spec.template.spec.containers")),
            ListType::Map(vec![ListKey::required("name")])
        );
        assert_eq!(
            s.list_type(&path("spec.template.spec.containers.ports")),
            ListType::Map(tcp_key("containerPort"))
        );
        assert_eq!(s.list_type(&path("spec.ports")), ListType::Map(tcp_key("port")));
        assert_eq!(s.list_type(&path("metadata.finalizers")), ListType::Set);
        assert_eq!(
            s.list_type(&path("spec.template.spec.containers.args")),
            ListType::Atomic
        );
        assert_eq!(s.list_type(&path("status.addresses")), ListType::Atomic);
        assert_eq!(s.map_type(&path("spec.selector")), MapType::Atomic);
        assert_eq!(s.map_type(&path("metadata.labels")), MapType::Granular);
        assert_eq!(s.map_type(&path("spec.template")), MapType::Struct);
        assert_eq!(DeducedSchema.list_type(&path("spec.x")), ListType::Atomic);
    }
}
