//! The `paths` of the OpenAPI documents, in Swagger 2.0 form: one collection path and one item
//! path per resource (plus `/status` and `/scale`, and the all-namespaces list of namespaced
//! resources), each operation carrying `x-kubernetes-action` and
//! `x-kubernetes-group-version-kind` and the query parameters the server honours. kubectl reads
//! the PATCH operations to learn that a kind accepts `fieldValidation` and `dryRun`.

use serde_json::{Map, Value, json};

use super::schema::{DELETE_OPTIONS, Definitions, PATCH, STATUS, reference};
use crate::descriptor::{ResourceDescriptor, SubresourceKind};

/// The media types the server answers with.
const PRODUCES: [&str; 3] = [
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "type": ty, "uniqueItems": true, "description": description})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": description})
}

fn body(schema: Value) -> Value {
    json!({"name": "body", "in": "body", "required": true, "schema": schema})
}

fn write_params() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
        ),
        query(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.",
        ),
    ]
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
        ),
        query(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server.",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields.",
        ),
        query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels.",
        ),
        query(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call.",
        ),
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true`.",
        ),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        query(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        json!({"name": "body", "in": "body", "schema": reference(DELETE_OPTIONS)}),
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted.",
        ),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed: Orphan, Background or Foreground.",
        ),
    ]
}

/// The parts of an operation id: `Core`/`Apps`/`RbacAuthorization`, then the version.
fn id_prefix(group: &str, version: &str) -> String {
    let mut out = group_camel(group);
    let mut v = version.chars();
    if let Some(f) = v.next() {
        out.push(f.to_ascii_uppercase());
        out.push_str(v.as_str());
    }
    out
}

/// The operations' tag: `core_v1`, `apps_v1`, `rbacAuthorization_v1`.
fn tag(group: &str, version: &str) -> String {
    let camel = group_camel(group);
    let mut c = camel.chars();
    let first = c
        .next()
        .map(|f| f.to_ascii_lowercase().to_string())
        .unwrap_or_default();
    format!("{first}{}_{version}", c.as_str())
}

/// `Core`, `Apps`, `RbacAuthorization` (`.k8s.io` dropped, dotted parts capitalised).
fn group_camel(group: &str) -> String {
    let group = if group.is_empty() {
        "core"
    } else {
        group.strip_suffix(".k8s.io").unwrap_or(group)
    };
    group
        .split(['.', '-'])
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

struct Op<'a> {
    action: &'a str,
    id: String,
    description: String,
    gvk: (&'a str, &'a str, &'a str),
    params: Vec<Value>,
    consumes: Option<Vec<&'a str>>,
    responses: Vec<(&'a str, Value)>,
}

impl Op<'_> {
    fn render(self, tag: &str) -> Value {
        let mut responses = Map::new();
        for (code, schema) in self.responses {
            let description = match code {
                "201" => "Created",
                "202" => "Accepted",
                _ => "OK",
            };
            responses.insert(code.into(), json!({"description": description, "schema": schema}));
        }
        responses.insert("401".into(), json!({"description": "Unauthorized"}));
        let mut op = json!({
            "description": self.description,
            "operationId": self.id,
            "produces": PRODUCES,
            "schemes": ["https"],
            "tags": [tag],
            "parameters": self.params,
            "responses": responses,
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": {"group": self.gvk.0, "kind": self.gvk.2, "version": self.gvk.1},
        });
        if let Some(consumes) = self.consumes {
            op["consumes"] = json!(consumes);
        }
        op
    }
}

/// The path items of one row, as `(path, item)` pairs.
pub fn resource_paths(row: &ResourceDescriptor, defs: &Definitions) -> Vec<(String, Value)> {
    let Some(kind_def) = defs.name_of(&row.group, &row.version, &row.kind) else {
        return Vec::new();
    };
    let prefix = if row.group.is_empty() {
        format!("/api/{}", row.version)
    } else {
        format!("/apis/{}/{}", row.group, row.version)
    };
    let tag = tag(&row.group, &row.version);
    let (scope, base) = if row.namespaced {
        (
            "Namespaced",
            format!("{prefix}/namespaces/{{namespace}}/{}", row.resource),
        )
    } else {
        ("", format!("{prefix}/{}", row.resource))
    };
    let id = |verb: &str, suffix: &str| {
        format!(
            "{verb}{}{scope}{}{suffix}",
            id_prefix(&row.group, &row.version),
            row.kind
        )
    };
    let gvk = (row.group.as_str(), row.version.as_str(), row.kind.as_str());
    let kind_ref = reference(kind_def);
    let list_ref = defs
        .name_of(&row.group, &row.version, &row.list_kind)
        .map(reference);
    let ns_param = path_param(
        "namespace",
        "object name and auth scope, such as for teams and projects",
    );
    let name_param = path_param("name", &format!("name of the {}", row.kind));
    let pretty = query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    );
    let custom = row.openapi_schema.is_some();
    let patch_types: Vec<&str> = if custom {
        vec![
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]
    } else {
        vec![
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/apply-patch+yaml",
        ]
    };
    let mut out = Vec::new();

    // The collection.
    let mut collection = Map::new();
    if row.verbs.has("list")
        && let Some(list_ref) = &list_ref
    {
        collection.insert(
            "get".into(),
            Op {
                action: "list",
                id: id("list", ""),
                description: format!("list or watch objects of kind {}", row.kind),
                gvk,
                params: list_params(),
                consumes: None,
                responses: vec![("200", list_ref.clone())],
            }
            .render(&tag),
        );
    }
    if row.verbs.has("create") {
        let mut params = vec![body(kind_ref.clone())];
        params.extend(write_params());
        collection.insert(
            "post".into(),
            Op {
                action: "post",
                id: id("create", ""),
                description: format!("create a {}", row.kind),
                gvk,
                params,
                consumes: None,
                responses: vec![
                    ("200", kind_ref.clone()),
                    ("201", kind_ref.clone()),
                    ("202", kind_ref.clone()),
                ],
            }
            .render(&tag),
        );
    }
    if row.verbs.has("deletecollection") {
        let mut params = delete_params();
        params.extend(list_params());
        collection.insert(
            "delete".into(),
            Op {
                action: "deletecollection",
                id: id("deleteCollection", ""),
                description: format!("delete collection of {}", row.kind),
                gvk,
                params,
                consumes: None,
                responses: vec![("200", reference(STATUS))],
            }
            .render(&tag),
        );
    }
    if !collection.is_empty() {
        let mut shared = vec![pretty.clone()];
        if row.namespaced {
            shared.insert(0, ns_param.clone());
        }
        collection.insert("parameters".into(), json!(shared));
        out.push((base.clone(), Value::Object(collection)));
    }

    // All namespaces.
    if row.namespaced
        && row.verbs.has("list")
        && let Some(list_ref) = &list_ref
    {
        let op = Op {
            action: "list",
            id: format!(
                "list{}{}ForAllNamespaces",
                id_prefix(&row.group, &row.version),
                row.kind
            ),
            description: format!("list or watch objects of kind {}", row.kind),
            gvk,
            params: list_params(),
            consumes: None,
            responses: vec![("200", list_ref.clone())],
        };
        out.push((
            format!("{prefix}/{}", row.resource),
            json!({"get": op.render(&tag), "parameters": [pretty]}),
        ));
    }

    // The item, then its subresources.
    let mut item_paths = vec![(
        String::new(),
        "",
        gvk,
        kind_ref.clone(),
        ["get", "update", "patch", "delete"].to_vec(),
    )];
    for sub in &row.subresources {
        let (suffix, gvk_sub, schema): (&str, (&str, &str, &str), Value) = match sub.kind {
            SubresourceKind::Status => ("Status", gvk, kind_ref.clone()),
            SubresourceKind::EphemeralContainers => ("Ephemeralcontainers", gvk, kind_ref.clone()),
            SubresourceKind::Approval => ("Approval", gvk, kind_ref.clone()),
            SubresourceKind::Scale => {
                let Some(scale) = defs.name_of("autoscaling", "v1", "Scale") else {
                    continue;
                };
                ("Scale", ("autoscaling", "v1", "Scale"), reference(scale))
            }
            _ => continue,
        };
        let verbs = sub
            .verbs
            .iter()
            .map(|v| match v.as_str() {
                "get" => "get",
                "update" => "update",
                "patch" => "patch",
                _ => "",
            })
            .filter(|v| !v.is_empty())
            .collect();
        item_paths.push((format!("/{}", sub.name), suffix, gvk_sub, schema, verbs));
    }
    for (sub_path, suffix, gvk, schema, verbs) in item_paths {
        let mut item = Map::new();
        for verb in verbs {
            if suffix.is_empty() && !row.verbs.has(verb) {
                continue;
            }
            let (method, op) = match verb {
                "get" => (
                    "get",
                    Op {
                        action: "get",
                        id: id("read", suffix),
                        description: format!("read the specified {}", row.kind),
                        gvk,
                        params: Vec::new(),
                        consumes: None,
                        responses: vec![("200", schema.clone())],
                    },
                ),
                "update" => {
                    let mut params = vec![body(schema.clone())];
                    params.extend(write_params());
                    (
                        "put",
                        Op {
                            action: "put",
                            id: id("replace", suffix),
                            description: format!("replace the specified {}", row.kind),
                            gvk,
                            params,
                            consumes: None,
                            responses: vec![("200", schema.clone()), ("201", schema.clone())],
                        },
                    )
                }
                "patch" => {
                    let mut params = vec![body(reference(PATCH))];
                    params.extend(write_params());
                    params.push(query(
                        "force",
                        "boolean",
                        "Force is going to \"force\" Apply requests. It must be unset for non-apply patch requests.",
                    ));
                    (
                        "patch",
                        Op {
                            action: "patch",
                            id: id("patch", suffix),
                            description: format!("partially update the specified {}", row.kind),
                            gvk,
                            params,
                            consumes: Some(patch_types.clone()),
                            responses: vec![("200", schema.clone()), ("201", schema.clone())],
                        },
                    )
                }
                _ => (
                    "delete",
                    Op {
                        action: "delete",
                        id: id("delete", suffix),
                        description: format!("delete a {}", row.kind),
                        gvk,
                        params: delete_params(),
                        consumes: None,
                        responses: vec![("200", reference(STATUS)), ("202", reference(STATUS))],
                    },
                ),
            };
            item.insert(method.into(), op.render(&tag));
        }
        if item.is_empty() {
            continue;
        }
        let mut shared = vec![name_param.clone()];
        if row.namespaced {
            shared.push(ns_param.clone());
        }
        shared.push(pretty.clone());
        item.insert("parameters".into(), json!(shared));
        out.push((format!("{base}/{{name}}{sub_path}"), Value::Object(item)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_follow_upstream() {
        assert_eq!(id_prefix("", "v1"), "CoreV1");
        assert_eq!(id_prefix("apps", "v1"), "AppsV1");
        assert_eq!(
            id_prefix("rbac.authorization.k8s.io", "v1"),
            "RbacAuthorizationV1"
        );
        assert_eq!(
            id_prefix("stable.example.com", "v1beta1"),
            "StableExampleComV1beta1"
        );
    }
}
