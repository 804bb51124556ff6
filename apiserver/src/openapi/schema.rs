//! The `definitions` of the OpenAPI documents, in Swagger 2.0 form (refs `#/definitions/<name>`),
//! named as upstream names them (`io.k8s.api.core.v1.Pod`).
//!
//! Built-in schemas come from k8s-openapi's `schemars` impls; every top-level kind gets
//! `x-kubernetes-group-version-kind`, every list kind a generated `<Kind>List` definition, and
//! list fields get `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` from the
//! strategic merge patch's own table ([`crate::patch::smp::list_strategy`]), so what kubectl
//! computes and what the server applies agree. Rows that carry an
//! [`openapi_schema`](crate::descriptor::ResourceDescriptor::openapi_schema) (CRDs) are published
//! under the reversed-group name upstream uses (`com.example.stable.v1.Foo`).

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use k8s_openapi::schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use crate::descriptor::ResourceDescriptor;
use crate::patch::smp::{ListStrategy, list_strategy};

/// Where definitions live in a Swagger 2.0 document.
pub const V2_REF_PREFIX: &str = "#/definitions/";

/// `ObjectMeta`'s definition name.
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
/// `ListMeta`'s definition name.
pub const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
/// `Status`'s definition name.
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
/// `DeleteOptions`' definition name.
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
/// The PATCH body's definition name.
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

/// A group/version/kind.
pub type Gvk = (String, String, String);

/// A set of named definitions and the definition of each kind.
#[derive(Clone, Debug, Default)]
pub struct Definitions {
    /// Name → schema.
    pub defs: Map<String, Value>,
    /// Kind → the name of its definition.
    pub kinds: BTreeMap<Gvk, String>,
}

impl Definitions {
    /// The definition name of a kind.
    pub fn name_of(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }
}

fn gvk_extension(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "kind": kind, "version": version}])
}

/// A `$ref` to a definition.
pub fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{V2_REF_PREFIX}{name}") })
}

struct Collector {
    generator: SchemaGenerator,
    kinds: BTreeMap<Gvk, String>,
    lists: Vec<(Gvk, String)>,
}

impl Collector {
    fn kind<K: k8s_openapi::Resource + JsonSchema>(&mut self) {
        self.generator.subschema_for::<K>();
        let gvk = (K::GROUP.to_string(), K::VERSION.to_string(), K::KIND.to_string());
        self.kinds.insert(gvk, K::schema_name().into_owned());
    }

    fn listable<K: k8s_openapi::ListableResource + JsonSchema>(&mut self) {
        self.kind::<K>();
        let gvk = (
            K::GROUP.to_string(),
            K::VERSION.to_string(),
            K::LIST_KIND.to_string(),
        );
        self.lists.push((gvk, K::schema_name().into_owned()));
    }
}

/// The definition of `<Kind>List` for the items' definition `item`.
pub fn list_definition(item: &str, kind: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind}."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string"
            },
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": reference(item)
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string"
            },
            "metadata": {
                "$ref": format!("{V2_REF_PREFIX}{LIST_META}"),
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
            }
        }
    })
}

/// The built-in definitions (generated once per process: they never change).
pub fn builtin() -> &'static Definitions {
    static BUILTIN: OnceLock<Definitions> = OnceLock::new();
    BUILTIN.get_or_init(generate_builtin)
}

fn generate_builtin() -> Definitions {
    let settings = SchemaSettings::draft07().with(|s| {
        s.definitions_path = "/definitions".into();
        s.meta_schema = None;
        s.transforms.clear();
    });
    let mut c = Collector {
        generator: settings.into_generator(),
        kinds: BTreeMap::new(),
        lists: Vec::new(),
    };
    builtin_kinds(&mut c);
    c.generator
        .subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>();
    c.generator
        .subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
    c.generator
        .subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
    let mut defs = c.generator.take_definitions(false);
    defs.insert(
        PATCH.into(),
        json!({
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
            "type": "object"
        }),
    );
    // Upstream publishes these two as strings (IntOrString with its own format); k8s-openapi
    // has only the `x-kubernetes-int-or-string` marker, which explain shows as no type at all.
    for (name, format) in [
        (
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            Some("int-or-string"),
        ),
        ("io.k8s.apimachinery.pkg.api.resource.Quantity", None),
    ] {
        if let Some(def) = defs.get_mut(name).and_then(Value::as_object_mut) {
            def.remove("x-kubernetes-int-or-string");
            def.insert("type".into(), json!("string"));
            if let Some(format) = format {
                def.insert("format".into(), json!(format));
            }
        }
    }
    let mut kinds = c.kinds;
    for ((g, v, list_kind), item) in c.lists {
        let kind = list_kind.strip_suffix("List").unwrap_or(&list_kind).to_string();
        let name = format!("{item}List");
        defs.insert(name.clone(), list_definition(&item, &kind));
        kinds.insert((g, v, list_kind), name);
    }
    if let Some(status) = defs.get_mut(STATUS).and_then(Value::as_object_mut) {
        status.insert(
            "x-kubernetes-group-version-kind".into(),
            gvk_extension("", "v1", "Status"),
        );
    }
    for ((g, v, k), name) in &kinds {
        if let Some(def) = defs.get_mut(name).and_then(Value::as_object_mut) {
            def.insert("x-kubernetes-group-version-kind".into(), gvk_extension(g, v, k));
            // k8s-openapi lists `metadata` as required (it is not an Option in Rust); upstream
            // does not.
            if let Some(Value::Array(required)) = def.get_mut("required") {
                required.retain(|f| f != "metadata");
                if required.is_empty() {
                    def.remove("required");
                }
            }
        }
    }
    let roots: Vec<String> = kinds.values().cloned().collect();
    annotate_list_strategies(&mut defs, &roots);
    annotate_retain_keys(&mut defs);
    Definitions { defs, kinds }
}

/// Every built-in kind the server can serve (the types of [`crate::builtin::rows`]) plus the
/// kinds subresources take (`Scale`, `Eviction`).
fn builtin_kinds(c: &mut Collector) {
    use k8s_openapi::api::{authentication::v1 as authn, authorization::v1 as authz, core::v1 as core};
    macro_rules! listable {
        ($($ty:path),* $(,)?) => { $(c.listable::<$ty>();)* };
    }
    crate::builtin::with_stored_kinds!(listable);
    c.kind::<authz::SelfSubjectAccessReview>();
    c.kind::<authz::SubjectAccessReview>();
    c.kind::<authz::LocalSubjectAccessReview>();
    c.kind::<authz::SelfSubjectRulesReview>();
    c.kind::<authn::SelfSubjectReview>();
    c.kind::<authn::TokenReview>();
    c.kind::<core::Binding>();
    c.kind::<k8s_openapi::api::autoscaling::v1::Scale>();
    c.kind::<k8s_openapi::api::policy::v1::Eviction>();
}

/// The definition name of a CRD kind: the group reversed, then version and kind
/// (`stable.example.com`, `v1`, `Foo` → `com.example.stable.v1.Foo`).
pub fn custom_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').filter(|p| !p.is_empty()).collect();
    parts.reverse();
    parts.push(version);
    parts.push(kind);
    parts.join(".")
}

/// Adds the definitions of a row that carries its own schema (and of its list kind).
pub fn add_custom(defs: &mut Definitions, row: &ResourceDescriptor, schema: &Value) {
    let name = custom_name(&row.group, &row.version, &row.kind);
    let mut def = schema.clone();
    give_arrays_items(&mut def);
    let mut def = match def {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    def.entry("type").or_insert_with(|| json!("object"));
    let props = def
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut props = props;
    let list = list_definition(&name, &row.kind);
    for field in ["apiVersion", "kind"] {
        let common = list["properties"][field].clone();
        let entry = props.entry(field).or_insert_with(|| common.clone());
        if let Some(o) = entry.as_object_mut() {
            o.entry("description")
                .or_insert_with(|| common["description"].clone());
            o.entry("type").or_insert_with(|| json!("string"));
        }
    }
    props.insert(
        "metadata".into(),
        json!({
            "$ref": format!("{V2_REF_PREFIX}{OBJECT_META}"),
            "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
        }),
    );
    def.insert("properties".into(), Value::Object(props));
    def.insert(
        "x-kubernetes-group-version-kind".into(),
        gvk_extension(&row.group, &row.version, &row.kind),
    );
    defs.defs.insert(name.clone(), Value::Object(def));
    defs.kinds.insert(
        (row.group.clone(), row.version.clone(), row.kind.clone()),
        name.clone(),
    );
    if !row.list_kind.is_empty() {
        let list_name = format!("{name}List");
        let mut list = list;
        list["x-kubernetes-group-version-kind"] = gvk_extension(&row.group, &row.version, &row.list_kind);
        defs.defs.insert(list_name.clone(), list);
        defs.kinds.insert(
            (row.group.clone(), row.version.clone(), row.list_kind.clone()),
            list_name,
        );
    }
}

/// kubectl's OpenAPI v2 model refuses an array schema without exactly one `items` (and with it
/// the whole document), so an array a CRD leaves open gets `items: {}` (any value).
fn give_arrays_items(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("array") && !o.contains_key("items") {
                o.insert("items".into(), json!({}));
            }
            o.iter_mut()
                .filter(|(k, _)| !matches!(k.as_str(), "enum" | "default" | "example"))
                .for_each(|(_, v)| give_arrays_items(v));
        }
        Value::Array(a) => a.iter_mut().for_each(give_arrays_items),
        _ => {}
    }
}

/// The definition a schema refers to, if it is a `$ref`.
pub fn ref_target(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix(V2_REF_PREFIX)
}

/// Marks list fields with the SMP strategy the server uses for them. The strategy is a function
/// of the field's JSON path, so each kind's tree is walked from its root; a definition reached by
/// several paths keeps the first merge strategy found for a field.
fn annotate_list_strategies(defs: &mut Map<String, Value>, roots: &[String]) {
    let mut found: HashMap<(String, String), ListStrategy> = HashMap::new();
    for root in roots {
        let mut stack = Vec::new();
        walk(defs, root, &mut Vec::new(), &mut stack, &mut found);
    }
    for ((def, field), strategy) in found {
        let Some(prop) = defs
            .get_mut(&def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(&field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        match strategy {
            ListStrategy::MergeKey(key) => {
                prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                prop.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
            }
            ListStrategy::MergePrimitives => {
                prop.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
            }
            ListStrategy::Replace => {}
        }
    }
}

/// Fields whose strategic-merge strategy includes `retainKeys` upstream: kubectl's client-side
/// apply then sends `$retainKeys`, so switching a union's member (e.g. a Deployment's strategy from
/// RollingUpdate to Recreate, or a volume's source) clears the member no longer given.
const RETAIN_KEYS: &[(&str, &str)] = &[
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy"),
    ("io.k8s.api.core.v1.PodSpec", "volumes"),
];

fn annotate_retain_keys(defs: &mut Map<String, Value>) {
    for (def, field) in RETAIN_KEYS {
        let Some(prop) = defs
            .get_mut(*def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let strategy = match prop.get("x-kubernetes-patch-strategy").and_then(Value::as_str) {
            Some(s) => format!("{s},retainKeys"),
            None => "retainKeys".to_string(),
        };
        prop.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
    }
}

fn walk(
    defs: &Map<String, Value>,
    def: &str,
    path: &mut Vec<String>,
    stack: &mut Vec<String>,
    found: &mut HashMap<(String, String), ListStrategy>,
) {
    if stack.iter().any(|d| d == def) {
        return;
    }
    let Some(props) = defs
        .get(def)
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_object)
    else {
        return;
    };
    stack.push(def.to_string());
    for (field, prop) in props {
        let target = if prop.get("type").and_then(Value::as_str) == Some("array") {
            let strategy = list_strategy(path, field);
            if strategy != ListStrategy::Replace {
                found.entry((def.to_string(), field.clone())).or_insert(strategy);
            }
            prop.get("items").and_then(ref_target)
        } else {
            ref_target(prop)
        };
        if let Some(target) = target {
            path.push(field.clone());
            walk(defs, target, path, stack, found);
            path.pop();
        }
    }
    stack.pop();
}
