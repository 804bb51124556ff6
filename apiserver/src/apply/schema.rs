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
    } else if let Some(schema) = &desc.openapi_schema {
        Arc::new(StructuralSchema(schema.clone()))
    } else {
        Arc::new(DeducedSchema)
    }
}

/// A CRD version's structural schema: `x-kubernetes-list-type` (`atomic` by default),
/// `x-kubernetes-list-map-keys` (with the keys' schema defaults) and `x-kubernetes-map-type`;
/// `metadata` follows the built-in rules.
#[derive(Clone, Debug)]
pub struct StructuralSchema(pub Arc<Value>);

impl StructuralSchema {
    /// The schema node at `path` (list elements are entered implicitly, as paths leave out
    /// indices).
    fn node(&self, path: &[String]) -> Option<&Value> {
        let mut node: &Value = &self.0;
        for field in path {
            if node.get("type").and_then(Value::as_str) == Some("array") {
                node = node.get("items")?;
            }
            node = match node.get("properties").and_then(|p| p.get(field)) {
                Some(n) => n,
                None => node.get("additionalProperties").filter(|a| a.is_object())?,
            };
        }
        Some(node)
    }
}

impl FieldSchema for StructuralSchema {
    fn list_type(&self, path: &[String]) -> ListType {
        if path.first().map(String::as_str) == Some("metadata") {
            return BuiltinSchema.list_type(path);
        }
        let Some(node) = self.node(path) else {
            return ListType::Atomic;
        };
        match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => {
                let items = node.get("items");
                let keys = node
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(|k| ListKey {
                                name: k.to_string(),
                                default: items
                                    .and_then(|i| i.pointer(&format!("/properties/{k}/default")))
                                    .cloned(),
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                if keys.is_empty() {
                    ListType::Atomic
                } else {
                    ListType::Map(keys)
                }
            }
            _ => ListType::Atomic,
        }
    }

    fn map_type(&self, path: &[String]) -> MapType {
        if path.first().map(String::as_str) == Some("metadata") {
            return BuiltinSchema.map_type(path);
        }
        let Some(mut node) = self.node(path) else {
            return MapType::Granular;
        };
        if node.get("type").and_then(Value::as_str) == Some("array")
            && let Some(items) = node.get("items")
        {
            node = items;
        }
        match node.get("x-kubernetes-map-type").and_then(Value::as_str) {
            Some("atomic") => MapType::Atomic,
            Some("granular") if node.get("properties").is_none() => MapType::Granular,
            _ if node.get("properties").is_some() => MapType::Struct,
            _ if node
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true) =>
            {
                MapType::Struct
            }
            _ => MapType::Granular,
        }
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
    fn structural_schema_list_and_map_types() {
        let s = StructuralSchema(Arc::new(serde_json::json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "ports": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["port", "protocol"],
                        "items": {"type": "object", "properties": {
                            "port": {"type": "integer"},
                            "protocol": {"type": "string", "default": "TCP"},
                            "opts": {"type": "object", "additionalProperties": {"type": "string"}}
                        }}},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                        "properties": {"app": {"type": "string"}}}
                }}
            }
        })));
        assert_eq!(
            s.list_type(&path("spec.ports")),
            ListType::Map(vec![ListKey::required("port"), tcp_key("port")[1].clone()])
        );
        assert_eq!(s.list_type(&path("spec.tags")), ListType::Set);
        assert_eq!(s.list_type(&path("spec.args")), ListType::Atomic);
        assert_eq!(s.map_type(&path("spec")), MapType::Struct);
        assert_eq!(s.map_type(&path("spec.selector")), MapType::Atomic);
        assert_eq!(s.map_type(&path("spec.ports")), MapType::Struct);
        assert_eq!(s.map_type(&path("spec.ports.opts")), MapType::Granular);
        assert_eq!(s.map_type(&path("metadata.labels")), MapType::Granular);
        assert_eq!(s.list_type(&path("metadata.finalizers")), ListType::Set);
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
