//! Validation and defaulting of CRD objects (upstream `apiextensions/validation`, the common
//! rules): names, group, scope, versions with exactly one storage version, structural schemas,
//! subresource paths, printer columns and selectable fields; the cleanup finalizer on delete.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{CLEANUP_FINALIZER, GROUP, condition, schema};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::registry::hooks::ObjectHooks;

/// The hooks of the `customresourcedefinitions` row.
#[derive(Debug)]
pub struct CrdHooks;

impl ObjectHooks for CrdHooks {
    fn normalize(&self, obj: &mut Value) -> ApiResult<Vec<String>> {
        default_crd(obj);
        Ok(Vec::new())
    }

    fn admit(&self, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
        let mut errs = validate_crd(obj);
        if let Some(old) = old {
            let (new_scope, old_scope) = (&obj["spec"]["scope"], &old["spec"]["scope"]);
            if new_scope != old_scope {
                errs.push(FieldError::invalid("spec.scope", new_scope, "field is immutable"));
            }
            if obj["spec"]["group"] != old["spec"]["group"] {
                errs.push(FieldError::invalid(
                    "spec.group",
                    &obj["spec"]["group"],
                    "field is immutable",
                ));
            }
        }
        if errs.is_empty() {
            return Ok(());
        }
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        Err(ApiError::invalid(
            &format!("CustomResourceDefinition.{GROUP}"),
            GROUP,
            name,
            &errs,
        ))
    }

    fn prepare_delete(&self, obj: &mut Value) {
        if obj.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let meta = &mut obj["metadata"];
        let fins = meta["finalizers"].as_array().cloned().unwrap_or_default();
        if !fins.iter().any(|f| f == CLEANUP_FINALIZER) {
            let mut fins = fins;
            fins.push(json!(CLEANUP_FINALIZER));
            meta["finalizers"] = Value::Array(fins);
        }
        set_condition(
            obj,
            condition(
                "Terminating",
                true,
                "InstanceDeletionPending",
                "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
            ),
        );
    }
}

/// Sets (or replaces) a condition of `status.conditions`, keeping `lastTransitionTime` when its
/// status does not change. Returns true when something changed.
pub fn set_condition(obj: &mut Value, cond: Value) -> bool {
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    let conds = &mut obj["status"]["conditions"];
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return false;
    };
    match list.iter_mut().find(|c| c["type"] == cond["type"]) {
        Some(existing) => {
            let same = ["status", "reason", "message"]
                .iter()
                .all(|k| existing[*k] == cond[*k]);
            if same {
                return false;
            }
            let mut cond = cond;
            if existing["status"] == cond["status"] {
                cond["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = cond;
        }
        None => list.push(cond),
    }
    true
}

/// Upstream's defaults: singular and listKind names, conversion strategy None.
fn default_crd(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").filter(|n| n.is_object()) {
        let kind = names["kind"].as_str().unwrap_or("").to_string();
        if names["singular"].as_str().is_none_or(str::is_empty) && !kind.is_empty() {
            names["singular"] = json!(kind.to_ascii_lowercase());
        }
        if names["listKind"].as_str().is_none_or(str::is_empty) && !kind.is_empty() {
            names["listKind"] = json!(format!("{kind}List"));
        }
    }
    if !spec["conversion"].is_object() {
        spec["conversion"] = json!({"strategy": "None"});
    }
}

fn is_dns1035_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// All field errors of a CRD.
pub fn validate_crd(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &crd["spec"];
    let group = str_at(spec, "/group");
    let plural = str_at(spec, "/names/plural");
    let name = str_at(crd, "/metadata/name");
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    } else if !is_dns1123_subdomain(group) {
        errs.push(FieldError::invalid(
            "spec.group",
            &json!(group),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
    match spec["scope"].as_str() {
        Some("Cluster" | "Namespaced") => {}
        None | Some("") => errs.push(FieldError::required("spec.scope", "")),
        Some(other) => errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: "spec.scope".into(),
            message: format!("Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""),
        }),
    }
    validate_names(&spec["names"], &mut errs);
    match spec["conversion"]["strategy"].as_str() {
        None | Some("None") => {}
        Some("Webhook") => errs.push(FieldError::forbidden(
            "spec.conversion.strategy",
            "conversion webhooks are not supported by this server; use strategy None",
        )),
        Some(other) => errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: "spec.conversion.strategy".into(),
            message: format!("Unsupported value: \"{other}\": supported values: \"None\", \"Webhook\""),
        }),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
        return errs;
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!(versions.iter().map(|v| v["name"].clone()).collect::<Vec<_>>()),
            "must have exactly one version marked as storage version",
        ));
    }
    if !versions.iter().any(|v| v["served"].as_bool() == Some(true)) {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!([]),
            "must have at least one served version",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, v) in versions.iter().enumerate() {
        validate_version(v, &format!("spec.versions[{i}]"), &mut seen, &mut errs);
    }
    errs.extend(validate_rules(&versions));
    errs
}

/// Compiles the CEL rules of every version's (structurally valid) schema. Like upstream, a
/// schema shared by all versions is reported under `spec.validation.openAPIV3Schema`.
fn validate_rules(versions: &[Value]) -> Vec<FieldError> {
    let schema = |v: &Value| v.pointer("/schema/openAPIV3Schema").cloned();
    let shared = versions.windows(2).all(|w| schema(&w[0]) == schema(&w[1]));
    let mut errs = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        if shared && i > 0 {
            break;
        }
        let Some(s) = v.pointer("/schema/openAPIV3Schema").filter(|s| s.is_object()) else {
            continue;
        };
        if !schema::check_structural(s, "").is_empty() {
            continue;
        }
        let path = if shared {
            "spec.validation.openAPIV3Schema".to_string()
        } else {
            format!("spec.versions[{i}].schema.openAPIV3Schema")
        };
        errs.extend(super::cel::compile(s, &path).1);
    }
    errs
}

fn validate_names(names: &Value, errs: &mut Vec<FieldError>) {
    for field in ["plural", "singular"] {
        let v = str_at(names, &format!("/{field}"));
        if v.is_empty() {
            if field == "plural" {
                errs.push(FieldError::required("spec.names.plural", ""));
            }
        } else if !is_dns1035_label(v) {
            errs.push(FieldError::invalid(
                format!("spec.names.{field}"),
                &json!(v),
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            ));
        }
    }
    for field in ["kind", "listKind"] {
        let v = str_at(names, &format!("/{field}"));
        if v.is_empty() {
            if field == "kind" {
                errs.push(FieldError::required("spec.names.kind", ""));
            }
        } else if !v.starts_with(|c: char| c.is_ascii_alphabetic())
            || !v.chars().all(|c| c.is_ascii_alphanumeric())
        {
            errs.push(FieldError::invalid(
                format!("spec.names.{field}"),
                &json!(v),
                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
            ));
        }
    }
    if let Some(shorts) = names["shortNames"].as_array() {
        for (i, s) in shorts.iter().enumerate() {
            let s = s.as_str().unwrap_or("");
            if !is_dns1035_label(s) {
                errs.push(FieldError::invalid(
                    format!("spec.names.shortNames[{i}]"),
                    &json!(s),
                    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
                ));
            }
        }
    }
}

fn validate_version(v: &Value, path: &str, seen: &mut BTreeSet<String>, errs: &mut Vec<FieldError>) {
    let name = str_at(v, "/name");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !is_dns1035_label(name) {
        errs.push(FieldError::invalid(
            format!("{path}.name"),
            &json!(name),
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
        ));
    } else if !seen.insert(name.to_string()) {
        errs.push(FieldError {
            reason: "FieldValueDuplicate",
            field: format!("{path}.name"),
            message: format!("Duplicate value: \"{name}\""),
        });
    }
    match v.pointer("/schema/openAPIV3Schema") {
        Some(s) if s.is_object() => {
            errs.extend(schema::check_structural(
                s,
                &format!("{path}.schema.openAPIV3Schema"),
            ));
        }
        _ => errs.push(FieldError::required(
            format!("{path}.schema.openAPIV3Schema"),
            "schemas are required",
        )),
    }
    if let Some(scale) = v.pointer("/subresources/scale").filter(|s| s.is_object()) {
        let sp = format!("{path}.subresources.scale");
        for (field, under) in [("specReplicasPath", ".spec."), ("statusReplicasPath", ".status.")] {
            let p = str_at(scale, &format!("/{field}"));
            if p.is_empty() {
                errs.push(FieldError::required(format!("{sp}.{field}"), ""));
            } else if !p.starts_with(under) {
                errs.push(FieldError::invalid(
                    format!("{sp}.{field}"),
                    &json!(p),
                    &format!("should be a json path under {}", under.trim_end_matches('.')),
                ));
            }
        }
        let sel = str_at(scale, "/labelSelectorPath");
        if !sel.is_empty() && !sel.starts_with(".spec.") && !sel.starts_with(".status.") {
            errs.push(FieldError::invalid(
                format!("{sp}.labelSelectorPath"),
                &json!(sel),
                "should be a json path under either .spec or .status",
            ));
        }
    }
    if let Some(cols) = v["additionalPrinterColumns"].as_array() {
        for (i, c) in cols.iter().enumerate() {
            let cp = format!("{path}.additionalPrinterColumns[{i}]");
            if str_at(c, "/name").is_empty() {
                errs.push(FieldError::required(format!("{cp}.name"), ""));
            }
            if str_at(c, "/jsonPath").is_empty() {
                errs.push(FieldError::required(format!("{cp}.jsonPath"), ""));
            }
            let ty = str_at(c, "/type");
            if !["integer", "number", "string", "boolean", "date"].contains(&ty) {
                errs.push(FieldError {
                    reason: "FieldValueNotSupported",
                    field: format!("{cp}.type"),
                    message: format!(
                        "Unsupported value: \"{ty}\": supported values: \"boolean\", \"date\", \"integer\", \"number\", \"string\""
                    ),
                });
            }
        }
    }
    if let Some(fields) = v["selectableFields"].as_array() {
        if fields.len() > 8 {
            errs.push(FieldError {
                reason: "FieldValueTooMany",
                field: format!("{path}.selectableFields"),
                message: format!("Too many: {}: must have at most 8 items", fields.len()),
            });
        }
        let schema = v.pointer("/schema/openAPIV3Schema");
        for (i, f) in fields.iter().enumerate() {
            let jp = str_at(f, "/jsonPath");
            let fp = format!("{path}.selectableFields[{i}].jsonPath");
            if jp.is_empty() {
                errs.push(FieldError::required(fp, ""));
                continue;
            }
            let ty = schema
                .and_then(|s| schema_at(s, jp))
                .and_then(|s| s["type"].as_str().map(str::to_string));
            match ty.as_deref() {
                Some("string" | "integer" | "boolean") => {}
                Some(_) => errs.push(FieldError::invalid(
                    fp,
                    &json!(jp),
                    "selectable field must have type string, integer or boolean",
                )),
                None => errs.push(FieldError::invalid(
                    fp,
                    &json!(jp),
                    "is an invalid path: does not refer to a valid field",
                )),
            }
        }
    }
}

/// The schema of a dotted JSON path (`.spec.color`).
fn schema_at<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = schema;
    for part in path.trim_start_matches('.').split('.') {
        cur = cur.get("properties")?.get(part)?;
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(crd: &Value) -> Vec<String> {
        validate_crd(crd)
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn a_good_crd_passes() {
        let mut crd = crate::crd::tests::crd();
        default_crd(&mut crd);
        assert_eq!(fields(&crd), Vec::<String>::new());
        assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(crd["spec"]["conversion"]["strategy"], "None");
    }

    #[test]
    fn bad_crds_get_field_causes() {
        let mut crd = crate::crd::tests::crd();
        crd["metadata"]["name"] = json!("wrong");
        crd["spec"]["scope"] = json!("Global");
        crd["spec"]["versions"][1]["storage"] = json!(true);
        crd["spec"]["versions"][2]["name"] = json!("v1");
        crd["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] = json!(".replicas");
        crd["spec"]["versions"][0]["selectableFields"] = json!([{"jsonPath": ".spec.nope"}]);
        assert_eq!(
            fields(&crd),
            [
                "metadata.name: Invalid value: \"wrong\": must be spec.names.plural+\".\"+spec.group",
                "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
                "spec.versions: Invalid value: [\"v1\",\"v1beta1\",\"v1\"]: must have exactly one version marked as storage version",
                "spec.versions[0].subresources.scale.specReplicasPath: Invalid value: \".replicas\": should be a json path under .spec",
                "spec.versions[0].selectableFields[0].jsonPath: Invalid value: \".spec.nope\": is an invalid path: does not refer to a valid field",
                "spec.versions[2].name: Duplicate value: \"v1\"",
            ]
        );
        let mut no_group = crate::crd::tests::crd();
        no_group["spec"]["group"] = json!("example");
        assert!(
            fields(&no_group)
                .iter()
                .any(|f| f.starts_with("spec.group: Invalid value"))
        );
    }

    #[test]
    fn cel_rules_are_compiled_when_the_crd_is_written() {
        let mut crd = crate::crd::tests::crd();
        let spec = "/spec/versions/0/schema/openAPIV3Schema/properties/spec";
        crd.pointer_mut(spec).unwrap()["x-kubernetes-validations"] =
            json!([{"rule": "self.replicas >= 0"}, {"rule": "self.replicas >"}, {"rule": "self.nope == 1"}]);
        assert!(
            CrdHooks.normalize(&mut crd).unwrap().is_empty(),
            "no warning any more"
        );
        let errs = fields(&crd);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.replicas >\""
            ),
            "{errs:?}"
        );
        assert!(
            errs[0].contains(": compilation failed: ERROR: <input>:1:"),
            "{errs:?}"
        );
        assert!(errs[1].contains("undefined field 'nope'"), "{errs:?}");
        // One version only: upstream hoists the schema to spec.validation.
        let mut single = crd.clone();
        single["spec"]["versions"] = json!([crd["spec"]["versions"][0].clone()]);
        assert!(fields(&single)[0].starts_with(
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].rule"
        ));
    }

    #[test]
    fn delete_adds_the_cleanup_finalizer_once() {
        let mut crd = crate::crd::tests::crd();
        CrdHooks.prepare_delete(&mut crd);
        assert_eq!(crd["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
        assert_eq!(crd["status"]["conditions"][0]["type"], "Terminating");
        CrdHooks.prepare_delete(&mut crd);
        assert_eq!(crd["metadata"]["finalizers"].as_array().unwrap().len(), 1);
    }
}
