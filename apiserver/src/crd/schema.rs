//! Structural schemas of custom resources (an `openAPIV3Schema` as JSON): validation with
//! upstream's field paths and messages, defaulting, and pruning of unknown fields.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::error::FieldError;

/// Fields every object keeps at its root (and every embedded resource at its own root).
const ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn str_of<'a>(schema: &'a Value, key: &str) -> Option<&'a str> {
    schema.get(key).and_then(Value::as_str)
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn additional(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|a| a.is_object())
}

/// The path of a property: `spec.replicas`, or `replicas` at the root.
fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Drops every field the schema does not know, in place (upstream pruning), and returns their
/// paths, sorted (`spec.extra`, `spec.ports[0].x`). `root` keeps `apiVersion`, `kind` and
/// `metadata`, as every embedded resource keeps its own; `x-kubernetes-preserve-unknown-fields`
/// keeps unknown fields but still prunes inside the known ones.
pub fn prune(schema: &Value, value: &mut Value, root: bool) -> Vec<String> {
    let mut found = Vec::new();
    prune_at(Some(schema), value, root, "", &mut found);
    found.sort();
    found
}

fn prune_at(
    schema: Option<&Value>,
    value: &mut Value,
    resource_root: bool,
    path: &str,
    found: &mut Vec<String>,
) {
    if let Some(s) = schema
        && flag(s, "x-kubernetes-preserve-unknown-fields")
    {
        return skip_prune_at(s, value, resource_root, path, found);
    }
    match value {
        Value::Object(map) => {
            let Some(schema) = schema else {
                found.extend(map.keys().map(|k| child(path, k)));
                map.clear();
                return;
            };
            let embedded = resource_root || flag(schema, "x-kubernetes-embedded-resource");
            map.retain(|k, v| {
                if embedded && ROOT_FIELDS.contains(&k.as_str()) {
                    return true;
                }
                match known(schema, k) {
                    Some(Some(s)) => prune_at(Some(s), v, false, &child(path, k), found),
                    Some(None) => {}
                    None => {
                        found.push(child(path, k));
                        return false;
                    }
                }
                true
            });
        }
        Value::Array(items) => {
            let items_schema = schema.and_then(|s| s.get("items"));
            for (i, item) in items.iter_mut().enumerate() {
                prune_at(items_schema, item, false, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Pruning under `x-kubernetes-preserve-unknown-fields`: unknown fields stay, known ones are
/// pruned by their own schema.
fn skip_prune_at(
    schema: &Value,
    value: &mut Value,
    resource_root: bool,
    path: &str,
    found: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            let embedded = resource_root || flag(schema, "x-kubernetes-embedded-resource");
            for (k, v) in map.iter_mut() {
                if embedded && ROOT_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(Some(s)) = known(schema, k) {
                    prune_at(Some(s), v, false, &child(path, k), found);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    skip_prune_at(s, item, false, &format!("{path}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

/// The schema of a known field `k`: `Some(Some(schema))` for a property or typed
/// `additionalProperties`, `Some(None)` for `additionalProperties: true` (kept as it is), None
/// when unknown.
fn known<'a>(schema: &'a Value, k: &str) -> Option<Option<&'a Value>> {
    if let Some(s) = properties(schema).and_then(|p| p.get(k)) {
        return Some(Some(s));
    }
    match schema.get("additionalProperties") {
        Some(s @ Value::Object(_)) => Some(Some(s)),
        Some(Value::Bool(true)) => Some(None),
        _ => None,
    }
}

/// Checks the `metadata` of every embedded resource (`x-kubernetes-embedded-resource`) against
/// `ObjectMeta`, dropping unknown fields, and returns their paths, sorted
/// (`spec.template.metadata.bogus`), as upstream's coercion of embedded metadata.
pub fn prune_embedded_metadata(schema: &Value, value: &mut Value) -> Vec<String> {
    let mut found = Vec::new();
    embedded_metadata_at(schema, value, "", &mut found);
    found.sort();
    found
}

fn embedded_metadata_at(schema: &Value, value: &mut Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if flag(schema, "x-kubernetes-embedded-resource")
                && let Some(meta) = map.get_mut("metadata")
            {
                found.extend(prune_object_meta(meta, &child(path, "metadata")));
            }
            let props = properties(schema);
            let extra = additional(schema);
            for (k, v) in map.iter_mut() {
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    embedded_metadata_at(s, v, &child(path, k), found);
                } else if let Some(s) = extra {
                    embedded_metadata_at(s, v, &format!("{path}[{k}]"), found);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    embedded_metadata_at(s, item, &format!("{path}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

/// Drops the fields of a `metadata` object that `ObjectMeta` does not have and returns their
/// paths under `prefix` (`metadata.bogus`); metadata that does not decode is left as it is.
pub fn prune_object_meta(meta: &mut Value, prefix: &str) -> Vec<String> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let Ok(typed) = serde_json::from_value::<ObjectMeta>(meta.clone()) else {
        return Vec::new();
    };
    let Ok(out) = serde_json::to_value(typed) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    crate::typecheck::unknown_fields(meta, &out, prefix, &mut found);
    if !found.is_empty() {
        *meta = out;
    }
    found
}

/// Applies `default`s of absent (or null, unless nullable) properties, in place.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = properties(schema) {
                for (k, s) in props {
                    if let Some(d) = s.get("default") {
                        let missing = match map.get(k) {
                            None => true,
                            Some(Value::Null) => !flag(s, "nullable"),
                            Some(_) => false,
                        };
                        if missing {
                            map.insert(k.clone(), d.clone());
                        }
                    }
                }
                for (k, v) in map.iter_mut() {
                    if let Some(s) = props.get(k) {
                        apply_defaults(s, v);
                    }
                }
            } else if let Some(s) = additional(schema) {
                for v in map.values_mut() {
                    apply_defaults(s, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for item in items {
                    apply_defaults(s, item);
                }
            }
        }
        _ => {}
    }
}

/// Validates `value` (the whole object when `path` is empty) against `schema`, appending
/// upstream-style field errors.
pub fn validate(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if value.is_null() {
        if !flag(schema, "nullable") && schema.get("type").is_some() {
            errs.push(type_error(path, value, str_of(schema, "type").unwrap_or("")));
        }
        return;
    }
    if !check_type(schema, value, path, errs) {
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: path.to_string(),
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        });
    }
    match value {
        Value::String(s) => validate_string(schema, s, value, path, errs),
        Value::Number(n) => validate_number(schema, n.as_f64().unwrap_or(0.0), value, path, errs),
        Value::Array(items) => validate_array(schema, items, value, path, errs),
        Value::Object(map) => validate_object(schema, map, path, errs),
        _ => {}
    }
    validate_junctors(schema, value, path, errs);
}

/// `must be of type X` (reason `FieldValueTypeInvalid`).
fn type_error(path: &str, value: &Value, expected: &str) -> FieldError {
    let shown = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    FieldError {
        reason: "FieldValueTypeInvalid",
        field: path.to_string(),
        message: format!(
            "Invalid value: \"{shown}\": {path} in body must be of type {expected}: \"{shown}\""
        ),
    }
}

fn invalid(path: &str, value: &Value, detail: String) -> FieldError {
    FieldError::invalid(path, value, &detail)
}

/// True when the value has the schema's type (or the schema allows any).
fn check_type(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) -> bool {
    if flag(schema, "x-kubernetes-int-or-string") {
        let ok = value.is_string() || value.as_f64().is_some_and(|f| f.fract() == 0.0);
        if !ok {
            errs.push(type_error(path, value, "integer,string"));
        }
        return ok;
    }
    let Some(ty) = str_of(schema, "type") else {
        return true;
    };
    let ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    };
    if !ok {
        errs.push(type_error(path, value, ty));
    }
    ok
}

fn validate_string(schema: &Value, s: &str, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let chars = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        errs.push(FieldError {
            reason: "FieldValueTooLong",
            field: path.to_string(),
            message: format!("Too long: may not be more than {max} bytes"),
        });
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        errs.push(invalid(
            path,
            value,
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = str_of(schema, "pattern") {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => {
                errs.push(invalid(
                    path,
                    value,
                    format!("{path} in body should match '{pattern}'"),
                ));
            }
            Ok(_) => {}
            Err(_) => errs.push(invalid(path, value, format!("invalid pattern '{pattern}'"))),
        }
    }
    if let Some(format) = str_of(schema, "format")
        && !format_ok(format, s)
    {
        errs.push(invalid(
            path,
            value,
            format!("{path} in body must be of type {format}: \"{s}\""),
        ));
    }
}

/// The string formats upstream checks (unknown formats pass).
pub fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => s.parse::<Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok(),
        "int32" => s.parse::<i32>().is_ok(),
        "int64" => s.parse::<i64>().is_ok(),
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "uuid" => uuid::Uuid::parse_str(s).is_ok() && s.len() == 36,
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s
            .split_once('/')
            .is_some_and(|(ip, bits)| ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok()),
        "hostname" => {
            !s.is_empty()
                && s.len() <= 253
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        }
        _ => true,
    }
}

fn validate_number(schema: &Value, n: f64, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(format) = str_of(schema, "format") {
        let fits = match format {
            "int32" => n >= f64::from(i32::MIN) && n <= f64::from(i32::MAX),
            _ => true,
        };
        if !fits {
            errs.push(invalid(
                path,
                value,
                format!("{path} in body must be of type {format}: \"{value}\""),
            ));
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = flag(schema, "exclusiveMinimum");
        if n < min || (exclusive && n == min) {
            let op = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(invalid(
                path,
                value,
                format!("{path} in body should be {op} {}", num(min)),
            ));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = flag(schema, "exclusiveMaximum");
        if n > max || (exclusive && n == max) {
            let op = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(invalid(
                path,
                value,
                format!("{path} in body should be {op} {}", num(max)),
            ));
        }
    }
    if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
        && m > 0.0
        && (n / m).fract() != 0.0
    {
        errs.push(invalid(
            path,
            value,
            format!("{path} in body should be a multiple of {}", num(m)),
        ));
    }
}

fn num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

fn validate_array(schema: &Value, items: &[Value], value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let len = items.len() as u64;
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        errs.push(FieldError {
            reason: "FieldValueTooMany",
            field: path.to_string(),
            message: format!("Too many: {len}: must have at most {max} items"),
        });
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        errs.push(invalid(
            path,
            value,
            format!("{path} in body should have at least {min} items"),
        ));
    }
    if let Some(s) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate(s, item, &format!("{path}[{i}]"), errs);
        }
    }
    match str_of(schema, "x-kubernetes-list-type") {
        Some("set") => {
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    errs.push(duplicate(&format!("{path}[{i}]"), item));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let key: Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                let key = Value::Object(key);
                if !seen.insert(key.to_string()) {
                    errs.push(duplicate(&format!("{path}[{i}]"), &key));
                }
            }
        }
        _ => {}
    }
}

fn duplicate(path: &str, value: &Value) -> FieldError {
    FieldError {
        reason: "FieldValueDuplicate",
        field: path.to_string(),
        message: format!("Duplicate value: {value}"),
    }
}

fn validate_object(schema: &Value, map: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    let root = path.is_empty();
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if map.get(r).is_none_or(Value::is_null) {
                errs.push(FieldError::required(child(path, r), ""));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        errs.push(FieldError {
            reason: "FieldValueTooMany",
            field: path.to_string(),
            message: format!("Too many: {count}: must have at most {max} items"),
        });
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        errs.push(invalid(
            path,
            &Value::Object(map.clone()),
            format!("{path} in body should have at least {min} properties"),
        ));
    }
    if embedded {
        for k in ["apiVersion", "kind"] {
            if map.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                errs.push(FieldError::required(child(path, k), "must not be empty"));
            }
        }
    }
    let props = properties(schema);
    let extra = additional(schema);
    for (k, v) in map {
        if (root || embedded) && ROOT_FIELDS.contains(&k.as_str()) && props.is_none_or(|p| !p.contains_key(k))
        {
            continue;
        }
        if root && k == "metadata" {
            validate_root_metadata(props.and_then(|p| p.get("metadata")), v, errs);
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)) {
            validate(s, v, &child(path, k), errs);
        } else if let Some(s) = extra {
            validate(s, v, &format!("{path}[{k}]"), errs);
        }
    }
}

/// A root `metadata` schema may only constrain `name` (and `generateName`).
fn validate_root_metadata(schema: Option<&Value>, meta: &Value, errs: &mut Vec<FieldError>) {
    let Some(props) = schema.and_then(properties) else {
        return;
    };
    for field in ["name", "generateName"] {
        if let (Some(s), Some(v)) = (props.get(field), meta.get(field)) {
            validate(s, v, &format!("metadata.{field}"), errs);
        }
    }
}

/// `allOf`, `anyOf`, `oneOf` and `not` (value validations only, as structural schemas allow).
fn validate_junctors(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let passes = |s: &Value| {
        let mut e = Vec::new();
        validate(s, value, path, &mut e);
        e
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            errs.extend(passes(s));
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
        && !any.iter().any(|s| passes(s).is_empty())
    {
        errs.push(invalid(
            path,
            value,
            format!("{path} in body must match at least one schema (anyOf)"),
        ));
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
    {
        let matching = one.iter().filter(|s| passes(s).is_empty()).count();
        if matching != 1 {
            errs.push(invalid(
                path,
                value,
                format!("{path} in body must match exactly one schema (oneOf)"),
            ));
        }
    }
    if let Some(not) = schema.get("not")
        && passes(not).is_empty()
    {
        errs.push(invalid(
            path,
            value,
            format!("{path} in body must not match the schema (not)"),
        ));
    }
}

/// The schema types a structural schema may name.
const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Checks that a CRD version's `openAPIV3Schema` is structural (upstream's rules, the common
/// ones): every specified node has a type (unless int-or-string or preserving unknown fields),
/// no `$ref`, no `additionalProperties` next to `properties`, `uniqueItems` false, defaults
/// valid against their schema, and the root an object whose `metadata` constrains only names.
pub fn check_structural(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match str_of(schema, "type") {
        Some("object") => {}
        Some(other) => errs.push(FieldError::invalid(
            format!("{path}.type"),
            &json!(other),
            "must be object at the root",
        )),
        None if flag(schema, "x-kubernetes-preserve-unknown-fields") => {}
        None => errs.push(FieldError::required(
            format!("{path}.type"),
            "must not be empty at the root",
        )),
    }
    if let Some(meta) = properties(schema).and_then(|p| p.get("metadata"))
        && let Some(m) = meta.as_object()
    {
        let allowed_keys = ["type", "properties"];
        let names_only =
            properties(meta).is_none_or(|p| p.keys().all(|k| k == "name" || k == "generateName"));
        if m.keys().any(|k| !allowed_keys.contains(&k.as_str())) || !names_only {
            errs.push(FieldError::forbidden(
                format!("{path}.properties[metadata]"),
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    check_node(schema, path, true, false, &mut errs);
    errs
}

fn check_node(schema: &Value, path: &str, root: bool, under_preserve: bool, errs: &mut Vec<FieldError>) {
    let Some(map) = schema.as_object() else {
        errs.push(FieldError::invalid(path, schema, "must be a schema object"));
        return;
    };
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let ty = str_of(schema, "type");
    if let Some(t) = ty
        && !TYPES.contains(&t)
    {
        errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: format!("{path}.type"),
            message: format!(
                "Unsupported value: \"{t}\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""
            ),
        });
    }
    if !root && ty.is_none() && !int_or_string && !preserve && !under_preserve {
        errs.push(FieldError::required(
            format!("{path}.type"),
            "must not be empty for specified object fields",
        ));
    }
    if int_or_string && ty.is_some() {
        errs.push(FieldError::forbidden(
            format!("{path}.type"),
            "must be empty if x-kubernetes-int-or-string is true",
        ));
    }
    if map.contains_key("$ref") {
        errs.push(FieldError::forbidden(
            format!("{path}.$ref"),
            "$ref is not supported",
        ));
    }
    if flag(schema, "uniqueItems") {
        errs.push(FieldError::forbidden(
            format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        errs.push(FieldError::forbidden(
            format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        errs.push(FieldError::forbidden(
            format!("{path}.additionalProperties"),
            "additionalProperties cannot be set to false",
        ));
    }
    if let Some(items) = map.get("items") {
        if items.is_array() {
            errs.push(FieldError::forbidden(
                format!("{path}.items"),
                "items must be a schema object and not an array",
            ));
        } else {
            check_node(
                items,
                &format!("{path}.items"),
                false,
                under_preserve || preserve,
                errs,
            );
        }
    } else if ty == Some("array") {
        errs.push(FieldError::required(format!("{path}.items"), "must be specified"));
    }
    if let Some(props) = properties(schema) {
        for (k, s) in props {
            check_node(
                s,
                &format!("{path}.properties[{k}]"),
                false,
                under_preserve || preserve,
                errs,
            );
        }
    }
    if let Some(extra) = additional(schema) {
        check_node(
            extra,
            &format!("{path}.additionalProperties"),
            false,
            under_preserve || preserve,
            errs,
        );
    }
    if let Some(keys) = schema.get("x-kubernetes-list-map-keys")
        && str_of(schema, "x-kubernetes-list-type") != Some("map")
        && keys.as_array().is_some_and(|k| !k.is_empty())
    {
        errs.push(FieldError::forbidden(
            format!("{path}.x-kubernetes-list-map-keys"),
            "must not be set if x-kubernetes-list-type is not map",
        ));
    }
    if let Some(lt) = str_of(schema, "x-kubernetes-list-type")
        && !["atomic", "set", "map"].contains(&lt)
    {
        errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: format!("{path}.x-kubernetes-list-type"),
            message: format!("Unsupported value: \"{lt}\": supported values: \"atomic\", \"map\", \"set\""),
        });
    }
    if let Some(d) = map.get("default") {
        if root {
            errs.push(FieldError::forbidden(
                format!("{path}.default"),
                "must not be set at the root",
            ));
        } else {
            let mut pruned = d.clone();
            prune(schema, &mut pruned, false);
            let mut derrs = Vec::new();
            validate(schema, d, &format!("{path}.default"), &mut derrs);
            if pruned != *d {
                errs.push(FieldError::invalid(
                    format!("{path}.default"),
                    d,
                    "must not have unknown fields",
                ));
            }
            errs.extend(derrs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "minLength": 1, "pattern": "^[a-z./:0-9-]+$"},
                        "replicas": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 10, "default": 1},
                        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                                  "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "when": {"type": "string", "format": "date-time", "nullable": true},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
                    },
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            },
        })
    }

    fn errors(obj: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate(&schema(), &obj, "", &mut errs);
        errs.iter()
            .map(|e| format!("{}: {} ({})", e.field, e.message, e.reason))
            .collect()
    }

    #[test]
    fn valid_objects_pass() {
        let obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"image": "nginx:1", "replicas": 3, "port": "http", "tags": ["a", "b"],
                     "ports": [{"name": "a"}, {"name": "b"}], "labels": {"a": "b"}, "free": {"x": {"y": 1}},
                     "when": null, "template": {"apiVersion": "v1", "kind": "Pod", "spec": {}}}});
        assert_eq!(errors(obj), Vec::<String>::new());
    }

    #[test]
    fn violations_carry_upstream_paths_and_messages() {
        let errs = errors(
            json!({"spec": {"replicas": 11, "mode": "medium", "image": "", "port": 1.5,
            "tags": ["a", "a", "b"], "ports": [{"name": "a"}, {"name": "a"}], "labels": {"k": "long"},
            "when": "yesterday", "template": {"spec": {}}}}),
        );
        let expected = [
            "spec.image: Invalid value: \"\": spec.image in body should be at least 1 chars long (FieldValueInvalid)",
            "spec.image: Invalid value: \"\": spec.image in body should match '^[a-z./:0-9-]+$' (FieldValueInvalid)",
            "spec.labels[k]: Too long: may not be more than 3 bytes (FieldValueTooLong)",
            "spec.mode: Unsupported value: \"medium\": supported values: \"fast\", \"slow\" (FieldValueNotSupported)",
            "spec.port: Invalid value: \"number\": spec.port in body must be of type integer,string: \"number\" (FieldValueTypeInvalid)",
            "spec.ports[1]: Duplicate value: {\"name\":\"a\"} (FieldValueDuplicate)",
            "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10 (FieldValueInvalid)",
            "spec.tags: Too many: 3: must have at most 2 items (FieldValueTooMany)",
            "spec.tags[1]: Duplicate value: \"a\" (FieldValueDuplicate)",
            "spec.template.apiVersion: Required value: must not be empty (FieldValueRequired)",
            "spec.template.kind: Required value: must not be empty (FieldValueRequired)",
            "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\" (FieldValueInvalid)",
        ];
        assert_eq!(errs, expected);
        assert_eq!(
            errors(json!({"spec": {"replicas": "3"}})),
            [
                "spec.image: Required value (FieldValueRequired)",
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\" (FieldValueTypeInvalid)",
            ]
        );
    }

    #[test]
    fn pruning_keeps_known_and_preserved_fields() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "junk": 1,
            "spec": {"image": "i", "bogus": true, "free": {"any": [1]}, "labels": {"a": "b"},
                     "ports": [{"name": "a", "extra": 1}], "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "other": 1}},
            "status": {"ready": true, "phase": "x"}});
        assert_eq!(
            prune(&schema(), &mut obj, true),
            [
                "junk",
                "spec.bogus",
                "spec.ports[0].extra",
                "spec.template.other",
                "status.phase"
            ]
        );
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
                "spec": {"image": "i", "free": {"any": [1]}, "labels": {"a": "b"}, "ports": [{"name": "a"}],
                         "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}},
                "status": {"ready": true}})
        );
    }

    #[test]
    fn pruning_under_preserved_fields_and_embedded_metadata() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}},
                           "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                           "plist": {"type": "array", "x-kubernetes-preserve-unknown-fields": true,
                                     "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                           "pods": {"type": "object", "additionalProperties": {"type": "object", "x-kubernetes-embedded-resource": true,
                                    "x-kubernetes-preserve-unknown-fields": true}}}}}});
        let mut obj = json!({"metadata": {"name": "w", "bogus": 1}, "spec": {"free": {"x": 1},
            "known": {"a": "x", "b": 1}, "list": [{"a": "x", "b": 1}], "plist": [{"a": "x", "b": 1}],
            "pods": {"p": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "nope": true}, "spec": {}}}}});
        assert_eq!(prune(&schema, &mut obj, true), ["spec.known.b", "spec.list[0].b"]);
        assert_eq!(obj["spec"]["free"], json!({"x": 1}));
        assert_eq!(
            obj["spec"]["plist"],
            json!([{"a": "x", "b": 1}]),
            "items of a preserved list keep unknown fields"
        );
        assert_eq!(
            prune_embedded_metadata(&schema, &mut obj),
            ["spec.pods[p].metadata.nope"]
        );
        assert_eq!(obj["spec"]["pods"]["p"]["metadata"], json!({"name": "p"}));
        assert_eq!(
            prune_object_meta(&mut obj["metadata"], "metadata"),
            ["metadata.bogus"]
        );
        assert_eq!(obj["metadata"], json!({"name": "w"}));
    }

    #[test]
    fn defaults_fill_absent_and_null_fields() {
        let mut obj = json!({"spec": {"image": "i", "mode": null}});
        apply_defaults(&schema(), &mut obj);
        assert_eq!(obj["spec"], json!({"image": "i", "mode": "fast", "replicas": 1}));
        let mut no_spec = json!({"metadata": {}});
        apply_defaults(&schema(), &mut no_spec);
        assert_eq!(no_spec, json!({"metadata": {}}));
    }

    #[test]
    fn structural_rules() {
        assert!(
            check_structural(&schema(), "s").is_empty(),
            "{:?}",
            check_structural(&schema(), "s")
        );
        let bad = json!({"type": "object", "properties": {
            "a": {"properties": {"b": {"type": "string"}}},
            "c": {"type": "array"},
            "d": {"type": "string", "default": 5},
            "e": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
            "f": {"type": "object", "x-kubernetes-int-or-string": true},
            "g": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "h": {"type": "strin"},
        }});
        let fields: Vec<String> = check_structural(&bad, "s")
            .iter()
            .map(|e| e.field.clone())
            .collect();
        assert_eq!(
            fields,
            [
                "s.properties[a].type",
                "s.properties[c].items",
                "s.properties[d].default",
                "s.properties[e].uniqueItems",
                "s.properties[f].type",
                "s.properties[g].additionalProperties",
                "s.properties[h].type",
            ]
        );
        assert_eq!(
            check_structural(&json!({"type": "string"}), "s")[0].field,
            "s.type"
        );
        assert!(
            check_structural(
                &json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                "s"
            )
            .is_empty()
        );
    }
}
