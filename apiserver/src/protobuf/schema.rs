//! The Kubernetes protobuf schema: the embedded descriptor set of the built-in API groups, the JSON
//! facts read from the Go struct tags (`k8s-api-fields.txt`), and the index from group/version/kind
//! to message. Built once, on first use (`scripts/gen-k8s-protobuf.sh` regenerates both files).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};

static DESCRIPTOR_SET: &[u8] = include_bytes!("k8s-api.binpb");
static FIELD_FACTS: &str = include_str!("k8s-api-fields.txt");

/// The protobuf package of `meta.k8s.io/v1`, whose kinds (`Status`, `DeleteOptions`, `WatchEvent`,
/// ...) every group version serves too.
const META_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// Messages whose JSON form is not an object of their fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `resource.Quantity`: a string.
    Quantity,
    /// `meta/v1.Time`: RFC 3339 with seconds.
    Time,
    /// `meta/v1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `meta/v1.Duration`: a Go duration string such as `1h2m3s`.
    Duration,
    /// `runtime.RawExtension`, `meta/v1.FieldsV1`, apiextensions `JSON`: bytes holding JSON.
    RawJson,
    /// A Go `[]string` type such as `ExtraValue`: the bare array of `items`.
    StringArray,
    /// apiextensions `JSONSchemaPropsOrArray`: a schema or an array of schemas.
    SchemaOrArray,
    /// apiextensions `JSONSchemaPropsOrBool`: a schema or a bool.
    SchemaOrBool,
    /// apiextensions `JSONSchemaPropsOrStringArray`: a schema or an array of strings.
    SchemaOrStringArray,
}

/// How one proto field appears in JSON.
#[derive(Clone, Debug)]
pub struct FieldJson {
    /// The proto field.
    pub field: FieldDescriptor,
    /// Its JSON name (empty for an inline field).
    pub json: String,
    /// An embedded struct whose fields sit in the parent object.
    pub inline: bool,
    /// A zero scalar is kept (Go pointer, or no `omitempty`); otherwise it is omitted.
    pub keep_zero: bool,
}

/// The JSON layout of one message.
#[derive(Debug, Default)]
pub struct Layout {
    /// Fields in declaration order.
    pub fields: Vec<FieldJson>,
    /// JSON key → path of fields (more than one through inline fields).
    pub by_json: HashMap<String, Vec<FieldDescriptor>>,
    /// Field number → index in `fields`.
    pub by_number: Vec<Option<usize>>,
}

impl Layout {
    /// The JSON facts of a field by number.
    pub fn field(&self, number: u32) -> Option<&FieldJson> {
        let i = (*self.by_number.get(number as usize)?)?;
        self.fields.get(i)
    }
}

/// The loaded schema.
pub struct Schema {
    pool: DescriptorPool,
    kinds: HashMap<(String, String, String), MessageDescriptor>,
    layouts: HashMap<String, Layout>,
    specials: HashMap<String, Special>,
}

static SCHEMA: LazyLock<Schema> = LazyLock::new(Schema::load);

/// The schema, loaded on first use.
pub fn schema() -> &'static Schema {
    &SCHEMA
}

struct Facts {
    groups: HashMap<String, (String, String)>,
    fields: HashMap<(String, String), (String, bool, bool)>,
    arrays: HashSet<String>,
}

fn parse_facts(text: &str) -> Facts {
    let mut facts = Facts {
        groups: HashMap::new(),
        fields: HashMap::new(),
        arrays: HashSet::new(),
    };
    for line in text.lines() {
        let cols: Vec<&str> = line.split(' ').collect();
        match cols.as_slice() {
            ["G", package, group, version] => {
                facts
                    .groups
                    .insert(package.to_string(), (group.to_string(), version.to_string()));
            }
            ["F", message, field, json, flags] => {
                let inline = flags.split(',').any(|f| f == "inline");
                let keep_zero = flags.split(',').any(|f| f == "keepzero");
                let json = if inline { String::new() } else { json.to_string() };
                facts.fields.insert(
                    (message.to_string(), field.to_string()),
                    (json, inline, keep_zero),
                );
            }
            ["A", message] => {
                facts.arrays.insert(message.to_string());
            }
            _ => {}
        }
    }
    facts
}

impl Schema {
    fn load() -> Schema {
        let pool = DescriptorPool::decode(DESCRIPTOR_SET).expect("the embedded descriptor set decodes");
        let facts = parse_facts(FIELD_FACTS);
        let mut kinds = HashMap::new();
        let mut layouts = HashMap::new();
        let mut specials = HashMap::new();
        for message in pool.all_messages() {
            let full = message.full_name().to_string();
            if let Some((group, version)) = facts.groups.get(message.package_name()) {
                kinds.insert(
                    (group.clone(), version.clone(), message.name().to_string()),
                    message.clone(),
                );
            }
            if let Some(special) = special_for(&full, &facts.arrays) {
                specials.insert(full.clone(), special);
            }
            let fields: Vec<FieldJson> = message
                .fields()
                .map(|field| {
                    let fact = facts.fields.get(&(full.clone(), field.name().to_string()));
                    let (json, inline, keep_zero) = match fact {
                        Some((json, inline, keep_zero)) => (json.clone(), *inline, *keep_zero),
                        None => (field.name().to_string(), false, false),
                    };
                    FieldJson {
                        field,
                        json,
                        inline,
                        keep_zero,
                    }
                })
                .collect();
            let mut by_number = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                let n = f.field.number() as usize;
                if n < 4096 {
                    if by_number.len() <= n {
                        by_number.resize(n + 1, None);
                    }
                    by_number[n] = Some(i);
                }
            }
            layouts.insert(
                full,
                Layout {
                    fields,
                    by_json: HashMap::new(),
                    by_number,
                },
            );
        }
        let mut schema = Schema {
            pool,
            kinds,
            layouts,
            specials,
        };
        let names: Vec<String> = schema.layouts.keys().cloned().collect();
        for name in names {
            let mut by_json = HashMap::new();
            schema.collect_paths(&name, &mut Vec::new(), &mut by_json, 0);
            if let Some(layout) = schema.layouts.get_mut(&name) {
                layout.by_json = by_json;
            }
        }
        schema
    }

    fn collect_paths(
        &self,
        message: &str,
        prefix: &mut Vec<FieldDescriptor>,
        out: &mut HashMap<String, Vec<FieldDescriptor>>,
        depth: usize,
    ) {
        let Some(layout) = self.layouts.get(message) else {
            return;
        };
        for f in &layout.fields {
            prefix.push(f.field.clone());
            if f.inline {
                if let Kind::Message(inner) = f.field.kind()
                    && depth < 8
                {
                    self.collect_paths(inner.full_name(), prefix, out, depth + 1);
                }
            } else {
                out.entry(f.json.clone()).or_insert_with(|| prefix.clone());
            }
            prefix.pop();
        }
    }

    /// The message for a kind served at `apiVersion` (`v1`, `apps/v1`), falling back to the
    /// `meta.k8s.io/v1` kinds every group version serves.
    pub fn message_for(&self, api_version: &str, kind: &str) -> Option<MessageDescriptor> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .cloned()
            .or_else(|| self.pool.get_message_by_name(&format!("{META_V1}.{kind}")))
    }

    /// A message by full name.
    pub fn message(&self, full_name: &str) -> Option<MessageDescriptor> {
        self.pool.get_message_by_name(full_name)
    }

    /// The JSON layout of a message.
    pub fn layout(&self, message: &MessageDescriptor) -> &Layout {
        static EMPTY: LazyLock<Layout> = LazyLock::new(Layout::default);
        self.layouts.get(message.full_name()).unwrap_or(&EMPTY)
    }

    /// The special JSON form of a message, if it has one.
    pub fn special(&self, message: &MessageDescriptor) -> Option<Special> {
        self.specials.get(message.full_name()).copied()
    }
}

fn special_for(full: &str, arrays: &HashSet<String>) -> Option<Special> {
    if arrays.contains(full) {
        return Some(Special::StringArray);
    }
    let (package, name) = full.rsplit_once('.')?;
    match (package, name) {
        ("k8s.io.apimachinery.pkg.util.intstr", "IntOrString") => Some(Special::IntOrString),
        ("k8s.io.apimachinery.pkg.api.resource", "Quantity") => Some(Special::Quantity),
        (META_V1, "Time") => Some(Special::Time),
        (META_V1, "MicroTime") => Some(Special::MicroTime),
        (META_V1, "Duration") => Some(Special::Duration),
        (META_V1, "FieldsV1") | ("k8s.io.apimachinery.pkg.runtime", "RawExtension") => Some(Special::RawJson),
        (p, n) if p.starts_with("k8s.io.apiextensions_apiserver.") => match n {
            "JSON" => Some(Special::RawJson),
            "JSONSchemaPropsOrArray" => Some(Special::SchemaOrArray),
            "JSONSchemaPropsOrBool" => Some(Special::SchemaOrBool),
            "JSONSchemaPropsOrStringArray" => Some(Special::SchemaOrStringArray),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_resolve_by_group_version() {
        let s = schema();
        assert_eq!(
            s.message_for("v1", "ConfigMap").unwrap().full_name(),
            "k8s.io.api.core.v1.ConfigMap"
        );
        assert_eq!(
            s.message_for("apps/v1", "Deployment").unwrap().full_name(),
            "k8s.io.api.apps.v1.Deployment"
        );
        assert_eq!(
            s.message_for("rbac.authorization.k8s.io/v1", "RoleBinding")
                .unwrap()
                .full_name(),
            "k8s.io.api.rbac.v1.RoleBinding"
        );
        assert_eq!(
            s.message_for("v1", "Status").unwrap().full_name(),
            "k8s.io.apimachinery.pkg.apis.meta.v1.Status"
        );
        assert_eq!(
            s.message_for("apiextensions.k8s.io/v1", "CustomResourceDefinition")
                .unwrap()
                .full_name(),
            "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
        );
        assert!(s.message_for("example.com/v1", "Widget").is_none());
    }

    #[test]
    fn inline_fields_flatten_into_the_parent() {
        let s = schema();
        let m = s.message("k8s.io.api.core.v1.ConfigMapKeySelector").unwrap();
        let numbers = |key: &str| -> Vec<u32> {
            s.layout(&m).by_json[key]
                .iter()
                .map(FieldDescriptor::number)
                .collect()
        };
        assert_eq!(numbers("name"), vec![1, 1]);
        assert_eq!(numbers("key"), vec![2]);
        let m = s
            .message("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps")
            .unwrap();
        assert!(s.layout(&m).by_json.contains_key("$ref"));
        assert!(
            s.layout(&m)
                .by_json
                .contains_key("x-kubernetes-preserve-unknown-fields")
        );
    }
}
