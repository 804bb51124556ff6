//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`): a CRD's served versions become rows of
//! the same [`ResourceTable`] the built-ins use. [`attach`] gives the CRD row its validation;
//! [`controller`] installs, updates and removes the rows as CRDs change, sets their conditions and
//! cleans up the objects of deleted CRDs. Custom resources are validated, defaulted and pruned
//! against their version's structural schema ([`schema`]) and its CEL rules ([`cel`], which
//! documents what of upstream's CEL support is and is not implemented).

pub mod cel;
pub mod controller;
pub mod printer;
pub mod schema;
pub mod validation;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::descriptor::{ResourceDescriptor, ResourceTable, SubresourceDescriptor, SubresourceKind, Verbs};
use crate::error::{ApiError, ApiResult, GroupResource};
use crate::registry::hooks::{ObjectHooks, ScalePaths};

pub use controller::spawn;

/// The group of CRDs.
pub const GROUP: &str = "apiextensions.k8s.io";
/// The resource name of CRDs.
pub const RESOURCE: &str = "customresourcedefinitions";
/// The finalizer that makes deleting a CRD delete its objects first.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Gives the CRD rows of `table` their hooks (validation, defaulting, the cleanup finalizer).
pub fn attach(table: &ResourceTable) {
    for row in table.all() {
        if row.group == GROUP && row.resource == RESOURCE {
            let mut row = (*row).clone();
            row.hooks = Some(Arc::new(validation::CrdHooks));
            table.install(row);
        }
    }
}

/// State shared by every row of one CRD.
#[derive(Debug, Default)]
pub struct CrdState {
    /// Set once the CRD is being deleted: creates are refused.
    pub terminating: AtomicBool,
}

/// The hooks of a custom resource row: schema validation, defaulting, pruning, printer columns,
/// scale paths, and refusal of creates while the CRD is terminating.
#[derive(Debug)]
pub struct CustomResourceHooks {
    group: String,
    resource: String,
    qualified_kind: String,
    storage_api_version: String,
    schema: Option<Arc<Value>>,
    columns: Vec<printer::Column>,
    scale: Option<ScalePaths>,
    has_status: bool,
    state: Arc<CrdState>,
    /// The compiled `x-kubernetes-validations` rules of this version (built once per CRD change).
    cel: Option<Arc<cel::Validator>>,
}

impl ObjectHooks for CustomResourceHooks {
    fn normalize(&self, obj: &mut Value) -> ApiResult<Vec<String>> {
        // Unknown fields in upstream's order: the object's metadata, then the pruned fields,
        // then the metadata of embedded resources.
        let mut unknown = match obj.get_mut("metadata") {
            Some(meta) => schema::prune_object_meta(meta, "metadata"),
            None => Vec::new(),
        };
        if let Some(schema) = &self.schema {
            unknown.extend(schema::prune(schema, obj, true));
            unknown.extend(schema::prune_embedded_metadata(schema, obj));
            schema::apply_defaults(schema, obj);
        }
        if let Some(map) = obj.as_object_mut() {
            map.insert(
                "apiVersion".into(),
                Value::String(self.storage_api_version.clone()),
            );
        }
        Ok(unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect())
    }

    fn admit(&self, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
        if old.is_none() {
            if self.state.terminating.load(Ordering::SeqCst) {
                let mut e = ApiError::method_not_supported(
                    &GroupResource::new(&self.group, &self.resource),
                    "create",
                );
                e.status.message =
                    Some("create not allowed while custom resource definition is terminating".into());
                return Err(e);
            }
            if self.has_status
                && let Some(map) = obj.as_object_mut()
            {
                map.remove("status");
            }
        }
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        let mut errs = Vec::new();
        schema::validate(schema, obj, "", &mut errs);
        if let Some(rules) = &self.cel {
            if errs.iter().any(|e| e.reason == "FieldValueTypeInvalid") {
                errs.push(cel::blocked());
            } else {
                errs.extend(rules.validate(obj, old));
            }
        }
        if errs.is_empty() {
            return Ok(());
        }
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        Err(ApiError::invalid(&self.qualified_kind, &self.group, name, &errs))
    }

    fn present(&self, obj: &mut Value) {
        if let Some(schema) = &self.schema {
            schema::apply_defaults(schema, obj);
        }
    }

    fn table_columns(&self) -> Option<Vec<Value>> {
        Some(printer::definitions(&self.columns))
    }

    fn table_cells(&self, obj: &Value) -> Vec<Value> {
        printer::cells(&self.columns, obj)
    }

    fn scale_paths(&self) -> Option<ScalePaths> {
        self.scale.clone()
    }
}

/// A dotted path from a CRD JSON path (`.spec.replicas` → `spec.replicas`).
fn dotted(path: &str) -> String {
    path.trim_start_matches('.').to_string()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The rows of a CRD: one per served version. `state` is shared by all of them.
pub fn rows(crd: &Value, state: &Arc<CrdState>) -> Vec<ResourceDescriptor> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("").to_string();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    let plural = names["plural"].as_str().unwrap_or("").to_string();
    let singular = names["singular"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map_or_else(|| kind.to_ascii_lowercase(), str::to_string);
    let list_kind = names["listKind"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("{kind}List"), str::to_string);
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or("");
    let storage_api_version = format!("{group}/{storage_version}");
    versions
        .iter()
        .filter(|v| v["served"].as_bool() == Some(true))
        .map(|v| {
            let version = v["name"].as_str().unwrap_or("").to_string();
            let schema = v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new);
            let has_status = v.pointer("/subresources/status").is_some_and(Value::is_object);
            let scale = v
                .pointer("/subresources/scale")
                .filter(|s| s.is_object())
                .map(|s| ScalePaths {
                    spec_replicas: dotted(s["specReplicasPath"].as_str().unwrap_or(".spec.replicas")),
                    status_replicas: dotted(s["statusReplicasPath"].as_str().unwrap_or(".status.replicas")),
                    label_selector: s["labelSelectorPath"].as_str().map(dotted),
                });
            let mut subresources = Vec::new();
            let sub = |name: &str, kind, gvk: (&str, &str, &str)| SubresourceDescriptor {
                name: name.into(),
                kind,
                response_group: gvk.0.into(),
                response_version: gvk.1.into(),
                response_kind: gvk.2.into(),
                verbs: vec!["get".into(), "patch".into(), "update".into()],
            };
            if has_status {
                subresources.push(sub("status", SubresourceKind::Status, (&group, &version, &kind)));
            }
            if scale.is_some() {
                subresources.push(sub(
                    "scale",
                    SubresourceKind::Scale,
                    ("autoscaling", "v1", "Scale"),
                ));
            }
            let columns = printer::columns(v.get("additionalPrinterColumns"));
            let hooks = CustomResourceHooks {
                group: group.clone(),
                resource: plural.clone(),
                qualified_kind: format!("{kind}.{group}"),
                storage_api_version: storage_api_version.clone(),
                schema: schema.clone(),
                columns,
                scale,
                has_status,
                state: state.clone(),
                cel: schema.as_deref().and_then(cel::Validator::new).map(Arc::new),
            };
            ResourceDescriptor {
                group: group.clone(),
                version,
                kind: kind.clone(),
                list_kind: list_kind.clone(),
                resource: plural.clone(),
                singular: singular.clone(),
                namespaced: spec["scope"].as_str() == Some("Namespaced"),
                verbs: Verbs::ALL,
                short_names: strings(names.get("shortNames")),
                categories: strings(names.get("categories")),
                subresources,
                storage_prefix: crate::builtin::storage_prefix(&group, &plural),
                round_trip: None,
                selectable_fields: crate::field_set::FieldSet::with_custom(
                    v["selectableFields"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f["jsonPath"].as_str().map(dotted)),
                ),
                return_deleted_object: false,
                virtual_kind: None,
                openapi_schema: schema,
                hooks: Some(Arc::new(hooks)),
            }
        })
        .collect()
}

/// A condition as CRDs carry them.
pub fn condition(kind: &str, status: bool, reason: &str, message: &str) -> Value {
    json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "lastTransitionTime": crate::registry::now_rfc3339(),
        "reason": reason,
        "message": message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
                        "properties": {"replicas": {"type": "integer", "default": 1}, "color": {"type": "string"}, "selector": {"type": "string"}}},
                        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".spec.selector"}},
                     "selectableFields": [{"jsonPath": ".spec.color"}],
                     "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]},
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                    {"name": "v1alpha1", "served": false, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                ],
            },
        })
    }

    #[test]
    fn served_versions_become_rows() {
        let rows = rows(&crd(), &Arc::default());
        let versions: Vec<&str> = rows.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(versions, ["v1", "v1beta1"]);
        let v1 = &rows[0];
        assert_eq!(
            (v1.kind.as_str(), v1.list_kind.as_str(), v1.singular.as_str()),
            ("Widget", "WidgetList", "widget")
        );
        assert!(v1.namespaced && v1.has_status() && v1.subresource(SubresourceKind::Scale).is_some());
        assert_eq!(v1.storage_prefix, "/registry/example.com/widgets/");
        assert_eq!(v1.short_names, ["wd"]);
        assert!(v1.field_selectable("spec.color"));
        let scale = v1.hooks.as_ref().unwrap().scale_paths().unwrap();
        assert_eq!(scale.label_selector.as_deref(), Some("spec.selector"));
        let mut obj = json!({"apiVersion": "example.com/v1beta1", "kind": "Widget", "spec": {"x": 1}});
        rows[1].hooks.as_ref().unwrap().normalize(&mut obj).unwrap();
        assert_eq!(
            obj["apiVersion"], "example.com/v1",
            "stored in the storage version"
        );
    }

    #[test]
    fn cel_rules_run_after_schema_validation() {
        let mut crd = crd();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
            json!([{"rule": "self.replicas < 5", "message": "too many"}]);
        let rows = rows(&crd, &Arc::default());
        let hooks = rows[0].hooks.as_ref().unwrap();
        let causes = |obj: Value| -> Vec<String> {
            let mut obj = obj;
            match hooks.admit(&mut obj, None) {
                Ok(()) => Vec::new(),
                Err(e) => e.to_json()["details"]["causes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        format!(
                            "{}: {}",
                            c["field"].as_str().unwrap(),
                            c["message"].as_str().unwrap()
                        )
                    })
                    .collect(),
            }
        };
        let widget = |spec: Value| json!({"metadata": {"name": "w"}, "spec": spec});
        assert!(causes(widget(json!({"replicas": 1}))).is_empty());
        assert_eq!(
            causes(widget(json!({"replicas": 7}))),
            ["spec: Invalid value: too many"]
        );
        // A type error blocks the rules, as upstream.
        assert_eq!(
            causes(widget(json!({"replicas": "7"}))),
            [
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
                "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ]
        );
    }
}
