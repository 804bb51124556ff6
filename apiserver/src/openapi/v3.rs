//! The OpenAPI 3.0 documents (`/openapi/v3/<api/v1|apis/g/v>`), one per group/version, derived
//! from the Swagger 2.0 paths and definitions: refs move to `#/components/schemas/`, a `$ref`
//! with siblings becomes `allOf: [{$ref}]` plus the siblings (as upstream), body parameters
//! become `requestBody`, and response schemas move under `content`.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::schema::{Definitions, V2_REF_PREFIX};
use super::v2::{RefGraph, row_kinds};
use crate::descriptor::ResourceDescriptor;

/// Where schemas live in an OpenAPI 3 document.
pub const V3_REF_PREFIX: &str = "#/components/schemas/";

const RESPONSE_TYPES: [&str; 3] = [
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

/// Converts a Swagger 2.0 schema to OpenAPI 3.
pub fn schema(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut out = Map::new();
            let mut reference = None;
            for (k, val) in o {
                if k == "$ref" {
                    let r = val.as_str().unwrap_or_default();
                    let r = r
                        .strip_prefix(V2_REF_PREFIX)
                        .map(|n| format!("{V3_REF_PREFIX}{n}"))
                        .unwrap_or_else(|| r.to_string());
                    reference = Some(r);
                } else if k == "properties" || k == "patternProperties" || k == "definitions" {
                    // Maps of schemas keyed by name: convert the values only.
                    let m = val
                        .as_object()
                        .map(|m| m.iter().map(|(n, s)| (n.clone(), schema(s))).collect())
                        .unwrap_or_default();
                    out.insert(k.clone(), Value::Object(m));
                } else if k == "enum" || k == "default" || k == "example" || k.starts_with("x-") {
                    out.insert(k.clone(), val.clone());
                } else {
                    out.insert(k.clone(), schema(val));
                }
            }
            match reference {
                Some(r) if out.is_empty() => json!({"$ref": r}),
                Some(r) => {
                    out.insert("allOf".into(), json!([{"$ref": r}]));
                    Value::Object(out)
                }
                None => Value::Object(out),
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(schema).collect()),
        other => other.clone(),
    }
}

fn parameter(p: &Value) -> Value {
    let mut out = json!({
        "name": p["name"],
        "in": p["in"],
        "schema": {"type": p["type"], "uniqueItems": true},
    });
    if let Some(d) = p.get("description") {
        out["description"] = d.clone();
    }
    if p["required"].as_bool() == Some(true) {
        out["required"] = json!(true);
    }
    out
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    for key in [
        "description",
        "operationId",
        "tags",
        "x-kubernetes-action",
        "x-kubernetes-group-version-kind",
    ] {
        if let Some(v) = op.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut params = Vec::new();
    for p in op["parameters"].as_array().into_iter().flatten() {
        if p["in"] == "body" {
            let consumes: Vec<String> = op["consumes"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
                .unwrap_or_else(|| vec!["*/*".to_string()]);
            let content: Map<String, Value> = consumes
                .into_iter()
                .map(|c| (c, json!({"schema": schema(&p["schema"])})))
                .collect();
            let mut body = json!({"content": content});
            if p["required"].as_bool() == Some(true) {
                body["required"] = json!(true);
            }
            out.insert("requestBody".into(), body);
        } else {
            params.push(parameter(p));
        }
    }
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    let mut responses = Map::new();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut resp = json!({"description": r["description"]});
        if let Some(s) = r.get("schema") {
            let s = schema(s);
            let content: Map<String, Value> = RESPONSE_TYPES
                .iter()
                .map(|t| (t.to_string(), json!({"schema": s})))
                .collect();
            resp["content"] = Value::Object(content);
        }
        responses.insert(code.clone(), resp);
    }
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in item.as_object().into_iter().flatten() {
        if k == "parameters" {
            let ps = v
                .as_array()
                .map(|a| a.iter().map(parameter).collect())
                .unwrap_or_default();
            out.insert(k.clone(), Value::Array(ps));
        } else {
            out.insert(k.clone(), operation(v));
        }
    }
    Value::Object(out)
}

/// The OpenAPI 3 document of one group/version (`gv` is `api/v1` or `apis/<g>/<v>`).
/// `schemas` are the definitions already converted with [`schema`]; `graph` is their reference
/// graph.
pub fn document(
    gv: &str,
    rows: &[Arc<ResourceDescriptor>],
    defs: &Definitions,
    graph: &RefGraph,
    schemas: &Map<String, Value>,
    paths: &[(String, String, Value)],
) -> Value {
    let gv_rows = rows.iter().filter(|r| {
        let this = if r.group.is_empty() {
            format!("api/{}", r.version)
        } else {
            format!("apis/{}/{}", r.group, r.version)
        };
        this == gv
    });
    let roots = row_kinds(gv_rows, defs);
    let mut v2_paths = Map::new();
    for (_, p, item) in paths.iter().filter(|(g, _, _)| g == gv) {
        v2_paths.insert(p.clone(), item.clone());
    }
    let schemas: Map<String, Value> = graph
        .closure(roots, v2_paths.values())
        .into_iter()
        .filter_map(|n| schemas.get(&n).map(|s| (n, s.clone())))
        .collect();
    let v3_paths: Map<String, Value> = v2_paths.iter().map(|(p, i)| (p.clone(), path_item(i))).collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::version()["gitVersion"].clone()},
        "paths": v3_paths,
        "components": {"schemas": schemas},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_with_siblings_become_all_of() {
        let v2 = json!({"properties": {
            "metadata": {"$ref": "#/definitions/M", "description": "d"},
            "spec": {"$ref": "#/definitions/S"},
            "items": {"type": "array", "items": {"$ref": "#/definitions/I"}}
        }});
        assert_eq!(
            schema(&v2),
            json!({"properties": {
                "metadata": {"allOf": [{"$ref": "#/components/schemas/M"}], "description": "d"},
                "spec": {"$ref": "#/components/schemas/S"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/I"}}
            }})
        );
    }
}
