use std::sync::Arc;

use http::HeaderMap;
use prost::Message;
use serde_json::{Value, json};

use super::gnostic::{self, AdditionalPropertiesOneof, Document};
use super::*;
use crate::descriptor::{ResourceDescriptor, ResourceTable, Verbs, version_priority};

/// The table the server installs by default (GA and beta).
fn table() -> Arc<ResourceTable> {
    let table = Arc::new(ResourceTable::new());
    for row in crate::builtin::rows() {
        if version_priority(&row.version).0 != 2 {
            table.install(row);
        }
    }
    table
}

fn docs() -> Arc<Documents> {
    static DOCS: std::sync::OnceLock<Arc<Documents>> = std::sync::OnceLock::new();
    DOCS.get_or_init(|| {
        let started = Instant::now();
        let docs = Arc::new(Documents::build(&table()));
        eprintln!(
            "built in {:?}: v2 json {} B, v2 protobuf {} B, {} v3 documents {} B",
            started.elapsed(),
            docs.v2_json.body.len(),
            docs.v2_protobuf.body.len(),
            docs.v3.len(),
            docs.v3.values().map(|e| e.body.len()).sum::<usize>()
        );
        docs
    })
    .clone()
}

fn v2_json() -> Value {
    serde_json::from_slice(&docs().v2_json.body).unwrap()
}

fn all_refs(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                out.push(
                    r.strip_prefix(prefix)
                        .unwrap_or_else(|| panic!("bad ref {r}"))
                        .to_string(),
                );
            }
            o.values().for_each(|v| all_refs(v, prefix, out));
        }
        Value::Array(a) => a.iter().for_each(|v| all_refs(v, prefix, out)),
        _ => {}
    }
}

#[test]
fn v2_has_upstream_names_and_resolvable_refs() {
    let doc = v2_json();
    assert_eq!(doc["swagger"], "2.0");
    let defs = doc["definitions"].as_object().unwrap();
    for name in [
        "io.k8s.api.core.v1.Pod",
        "io.k8s.api.apps.v1.Deployment",
        "io.k8s.api.apps.v1.DeploymentList",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
    ] {
        assert!(defs.contains_key(name), "no {name}");
    }
    let mut refs = Vec::new();
    all_refs(&doc, "#/definitions/", &mut refs);
    for r in refs {
        assert!(defs.contains_key(&r), "dangling ref {r}");
    }
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        params.contains(&"fieldValidation") && params.contains(&"dryRun"),
        "{params:?}"
    );
    assert!(doc["paths"]["/api/v1/pods"]["get"].is_object());
    assert_eq!(
        defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"],
        "int-or-string"
    );
    assert_eq!(
        defs["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"],
        "string"
    );
    // k8s-openapi's `required: [metadata]` is dropped, as upstream has none.
    assert!(defs["io.k8s.api.core.v1.Pod"].get("required").is_none());
    assert_eq!(
        defs["io.k8s.api.apps.v1.DeploymentSpec"]["required"],
        json!(["selector", "template"])
    );
    assert!(
        doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"].is_object()
    );
}

#[test]
fn every_served_kind_has_its_group_version_kind() {
    let doc = v2_json();
    let defs = doc["definitions"].as_object().unwrap();
    let gvks: Vec<&Value> = defs
        .values()
        .filter_map(|d| d.get("x-kubernetes-group-version-kind"))
        .flat_map(|g| g.as_array().unwrap())
        .collect();
    for row in table().all() {
        let want = json!({"group": row.group, "kind": row.kind, "version": row.version});
        assert!(gvks.contains(&&want), "no definition for {want}");
        if !row.list_kind.is_empty() {
            let want = json!({"group": row.group, "kind": row.list_kind, "version": row.version});
            assert!(gvks.contains(&&want), "no definition for {want}");
        }
    }
}

#[test]
fn list_fields_carry_the_merge_keys_smp_uses() {
    let doc = v2_json();
    let defs = &doc["definitions"];
    let prop = |def: &str, field: &str| defs[def]["properties"][field].clone();
    for (def, field, key) in [
        ("io.k8s.api.core.v1.PodSpec", "containers", "name"),
        ("io.k8s.api.core.v1.PodSpec", "initContainers", "name"),
        ("io.k8s.api.core.v1.Container", "env", "name"),
        ("io.k8s.api.core.v1.Container", "ports", "containerPort"),
        ("io.k8s.api.core.v1.Container", "volumeMounts", "mountPath"),
        ("io.k8s.api.core.v1.ServiceSpec", "ports", "port"),
        ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "type"),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "ownerReferences",
            "uid",
        ),
    ] {
        let p = prop(def, field);
        assert_eq!(p["x-kubernetes-patch-merge-key"], key, "{def}.{field}: {p}");
        assert_eq!(p["x-kubernetes-patch-strategy"], "merge", "{def}.{field}");
    }
    let volumes = prop("io.k8s.api.core.v1.PodSpec", "volumes");
    assert_eq!(volumes["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
    let strategy = prop("io.k8s.api.apps.v1.DeploymentSpec", "strategy");
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    let fin = prop("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers");
    assert_eq!(fin["x-kubernetes-patch-strategy"], "merge");
    assert!(fin.get("x-kubernetes-patch-merge-key").is_none());
    assert!(
        prop("io.k8s.api.core.v1.Container", "args")
            .get("x-kubernetes-patch-strategy")
            .is_none()
    );
}

#[test]
fn protobuf_round_trips() {
    let docs = docs();
    let doc = Document::decode(docs.v2_protobuf.body.clone()).unwrap();
    assert_eq!(doc.swagger, "2.0");
    let defs = &doc.definitions.as_ref().unwrap().additional_properties;
    let pod_spec = defs
        .iter()
        .find(|d| d.name == "io.k8s.api.core.v1.PodSpec")
        .unwrap();
    let pod_spec = pod_spec.value.as_ref().unwrap();
    let containers = pod_spec
        .properties
        .as_ref()
        .unwrap()
        .additional_properties
        .iter()
        .find(|p| p.name == "containers")
        .unwrap()
        .value
        .as_ref()
        .unwrap();
    assert_eq!(containers.r#type.as_ref().unwrap().value, ["array"]);
    let item = &containers.items.as_ref().unwrap().schema[0];
    assert_eq!(item._ref, "#/definitions/io.k8s.api.core.v1.Container");
    let ext = |name: &str| {
        containers
            .vendor_extension
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_ref())
            .map(|a| a.yaml.clone())
    };
    assert_eq!(ext("x-kubernetes-patch-merge-key").as_deref(), Some("\"name\""));
    let deployment = defs
        .iter()
        .find(|d| d.name == "io.k8s.api.apps.v1.Deployment")
        .and_then(|d| d.value.as_ref())
        .unwrap();
    let gvk = deployment
        .vendor_extension
        .iter()
        .find(|e| e.name == "x-kubernetes-group-version-kind")
        .unwrap();
    let gvk: Value = serde_yaml_ng::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
    assert_eq!(
        gvk,
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    // Maps keep their value schema.
    let cm = defs
        .iter()
        .find(|d| d.name == "io.k8s.api.core.v1.ConfigMap")
        .and_then(|d| d.value.as_ref())
        .unwrap();
    let data = cm
        .properties
        .as_ref()
        .unwrap()
        .additional_properties
        .iter()
        .find(|p| p.name == "data")
        .and_then(|p| p.value.as_ref())
        .unwrap();
    let Some(AdditionalPropertiesOneof::Schema(values)) =
        data.additional_properties.as_ref().and_then(|a| a.oneof.clone())
    else {
        panic!("data has no value schema");
    };
    assert_eq!(values.r#type.as_ref().unwrap().value, ["string"]);
    // The paths survive too, with their query parameters.
    let paths = &doc.paths.as_ref().unwrap().path;
    let item = paths
        .iter()
        .find(|p| p.name == "/api/v1/namespaces/{namespace}/configmaps/{name}")
        .and_then(|p| p.value.as_ref())
        .unwrap();
    let patch = item.patch.as_ref().unwrap();
    let names: Vec<String> = patch
        .parameters
        .iter()
        .filter_map(|p| match &p.oneof {
            Some(gnostic::ParametersItemOneof::Parameter(gnostic::Parameter {
                oneof:
                    Some(gnostic::ParameterOneof::NonBodyParameter(gnostic::NonBodyParameter {
                        oneof: Some(gnostic::NonBodyParameterOneof::QueryParameterSubSchema(q)),
                    })),
            })) => Some(q.name.clone()),
            _ => None,
        })
        .collect();
    assert!(names.contains(&"fieldValidation".to_string()), "{names:?}");
    // Encoding the decoded document gives the same bytes.
    assert_eq!(doc.encode_to_vec(), docs.v2_protobuf.body.to_vec());
}

#[test]
fn v3_index_points_at_hashed_group_version_documents() {
    let docs = docs();
    let index: Value = serde_json::from_slice(&docs.v3_index.body).unwrap();
    let apps = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    assert_eq!(
        apps,
        format!("/openapi/v3/apis/apps/v1?hash={}", docs.v3["apis/apps/v1"].etag)
    );
    assert!(index["paths"]["api/v1"].is_object());
    let doc: Value = serde_json::from_slice(&docs.v3["apis/apps/v1"].body).unwrap();
    assert_eq!(doc["openapi"], "3.0.0");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let deploy = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deploy["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert_eq!(
        deploy["properties"]["metadata"]["allOf"],
        json!([{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}])
    );
    assert!(!schemas.contains_key("io.k8s.api.core.v1.ConfigMap"));
    let mut refs = Vec::new();
    all_refs(&doc, "#/components/schemas/", &mut refs);
    for r in refs {
        assert!(schemas.contains_key(&r), "dangling ref {r}");
    }
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
    );
}

#[test]
fn a_row_with_its_own_schema_is_published_and_the_cache_follows_the_table() {
    let table = table();
    let svc = OpenApi::new(table.clone());
    let first = svc.current();
    assert!(
        Arc::ptr_eq(&first, &svc.current()),
        "unchanged table reuses the documents"
    );
    let mut row: ResourceDescriptor = (*table.lookup("", "v1", "configmaps").unwrap()).clone();
    row.group = "stable.example.com".into();
    row.version = "v1".into();
    row.kind = "CronTab".into();
    row.list_kind = "CronTabList".into();
    row.resource = "crontabs".into();
    row.verbs = Verbs::ALL;
    row.round_trip = None;
    row.openapi_schema = Some(Arc::new(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "cronSpec": {"type": "string", "description": "the schedule"},
            "replicas": {"type": "integer"},
            "tags": {"type": "array"}
        }}}
    })));
    table.install(row);
    let second = svc.current();
    assert!(!Arc::ptr_eq(&first, &second));
    let v2: Value = serde_json::from_slice(&second.v2_json.body).unwrap();
    let def = &v2["definitions"]["com.example.stable.v1.CronTab"];
    assert_eq!(
        def["properties"]["spec"]["properties"]["cronSpec"]["description"],
        "the schedule"
    );
    assert_eq!(
        def["x-kubernetes-group-version-kind"],
        json!([{"group": "stable.example.com", "kind": "CronTab", "version": "v1"}])
    );
    assert!(def["properties"]["metadata"]["$ref"].is_string());
    assert_eq!(
        def["properties"]["spec"]["properties"]["tags"]["items"],
        json!({})
    );
    assert!(v2["definitions"]["com.example.stable.v1.CronTabList"].is_object());
    let patch = &v2["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["patch"];
    assert!(
        !patch["consumes"]
            .as_array()
            .unwrap()
            .contains(&json!("application/strategic-merge-patch+json"))
    );
    let v3: Value = serde_json::from_slice(&second.v3["apis/stable.example.com/v1"].body).unwrap();
    assert!(v3["components"]["schemas"]["com.example.stable.v1.CronTab"].is_object());
    table.remove("stable.example.com", "v1", "crontabs");
    assert!(!svc.current().v3.contains_key("apis/stable.example.com/v1"));
}

fn accept(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::ACCEPT, value.parse().unwrap());
    h
}

#[test]
fn accept_negotiation() {
    let offers = [
        ("application/json", Format::Json),
        (PROTOBUF_V2_REQUEST, Format::Protobuf),
        (PROTOBUF_V2, Format::Protobuf),
    ];
    assert_eq!(negotiate(&HeaderMap::new(), &offers), Some(Format::Json));
    assert_eq!(
        negotiate(&accept(PROTOBUF_V2_REQUEST), &offers),
        Some(Format::Protobuf)
    );
    assert_eq!(negotiate(&accept(PROTOBUF_V2), &offers), Some(Format::Protobuf));
    assert_eq!(
        negotiate(&accept("application/json, */*"), &offers),
        Some(Format::Json)
    );
    assert_eq!(
        negotiate(
            &accept("application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
            &offers
        ),
        Some(Format::Protobuf)
    );
    assert_eq!(negotiate(&accept("text/html"), &offers), None);
}

/// CPU time of this thread (wall time is meaningless on a loaded machine).
fn cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    std::time::Duration::from_nanos(ns)
}

/// Prints how much CPU building takes and how big the documents are:
/// `cargo test -p apiserver --lib openapi::tests::build_cost -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, not a check"]
fn build_cost() {
    let table = table();
    let t = cpu();
    schema::builtin();
    let generated = cpu() - t;
    let t = cpu();
    let docs = Documents::build(&table);
    let built = cpu() - t;
    let t = cpu();
    let rows = table.all();
    let defs = v2::definitions(&rows);
    let paths = v2::all_paths(&rows, &defs);
    let graph = v2::RefGraph::new(&defs.defs);
    let v2_doc = v2::document(&rows, &defs, &graph, &paths);
    let assembled = cpu() - t;
    let t = cpu();
    let pb = gnostic::document(&v2_doc).encode_to_vec();
    let protobuf = cpu() - t;
    let t = cpu();
    let json = serde_json::to_vec(&v2_doc).unwrap();
    let serialized = cpu() - t;
    let t = cpu();
    let _ = Encoded::new(json);
    let hashed = cpu() - t;
    eprintln!(
        "CPU: schemars generation (once per process) {generated:?}; all documents {built:?} \
         (v2 assembly {assembled:?}, protobuf {protobuf:?}, v2 JSON encoding {serialized:?}, v2 JSON hash {hashed:?}); \
         v2 JSON {} B, v2 protobuf {} B, {} v3 documents {} B (largest {} B), index {} B",
        docs.v2_json.body.len(),
        pb.len(),
        docs.v3.len(),
        docs.v3.values().map(|e| e.body.len()).sum::<usize>(),
        docs.v3.values().map(|e| e.body.len()).max().unwrap_or(0),
        docs.v3_index.body.len(),
    );
}
