//! JSON values as CEL values, typed by their structural schema (upstream `UnstructuredToVal`):
//! objects with properties become maps keyed by escaped property names, maps
//! (`additionalProperties`) keep their keys, integers are `int` unless the schema says
//! `number`, `date-time`/`date`/`duration`/`byte` strings become timestamps, durations and bytes,
//! and a resource root shows only `apiVersion`, `kind` and `metadata.name` /
//! `metadata.generateName` besides its declared properties.

use std::collections::HashMap;
use std::sync::Arc;

use cel::Value;
use cel::objects::{Key, Map};
use serde_json::Value as Json;

/// CEL's reserved words: properties named so are reached as `__{word}__`.
const RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The CEL name of a property (upstream's escaping), or None when it cannot be named.
pub fn escape(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first = chars.next()?;
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/');
    if !(first.is_ascii_alphabetic() || matches!(first, '_' | '.' | '-' | '/')) || !chars.all(ok_char) {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("__") {
            out.push_str("__underscores__");
            rest = r;
            continue;
        }
        let c = rest.chars().next().unwrap_or('_');
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

fn flag(schema: Option<&Json>, key: &str) -> bool {
    schema.and_then(|s| s.get(key)).and_then(Json::as_bool) == Some(true)
}

/// Converts `v` under `schema` (None: no schema, e.g. under preserve-unknown-fields).
pub fn to_cel(v: &Json, schema: Option<&Json>, resource_root: bool) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            let number = schema.and_then(|s| s.get("type")).and_then(Json::as_str) == Some("number");
            match n.as_i64() {
                Some(i) if !number => Value::Int(i),
                _ => Value::Float(n.as_f64().unwrap_or(0.0)),
            }
        }
        Json::String(s) => string(s, schema.and_then(|s| s.get("format")).and_then(Json::as_str)),
        Json::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            let embedded = flag(item_schema, "x-kubernetes-embedded-resource");
            Value::List(Arc::new(
                items.iter().map(|i| to_cel(i, item_schema, embedded)).collect(),
            ))
        }
        Json::Object(map) => {
            let props = schema.and_then(|s| s.get("properties")).and_then(Json::as_object);
            let extra = schema
                .and_then(|s| s.get("additionalProperties"))
                .filter(|a| a.is_object());
            let mut out: HashMap<Key, Value> = HashMap::with_capacity(map.len());
            for (k, item) in map {
                if resource_root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    let shown = if k == "metadata" {
                        let meta: serde_json::Map<String, Json> = item
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .filter(|(k, _)| *k == "name" || *k == "generateName")
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        to_cel(&Json::Object(meta), None, false)
                    } else {
                        to_cel(item, None, false)
                    };
                    out.insert(Key::from(k.as_str()), shown);
                    continue;
                }
                if let Some(props) = props {
                    if let (Some(s), Some(name)) = (props.get(k), escape(k)) {
                        let embedded = flag(Some(s), "x-kubernetes-embedded-resource");
                        out.insert(Key::from(name), to_cel(item, Some(s), embedded));
                    }
                } else if let Some(s) = extra {
                    let embedded = flag(Some(s), "x-kubernetes-embedded-resource");
                    out.insert(Key::from(k.as_str()), to_cel(item, Some(s), embedded));
                } else {
                    out.insert(Key::from(k.as_str()), to_cel(item, None, false));
                }
            }
            Value::Map(Map { map: Arc::new(out) })
        }
    }
}

/// A string under its schema `format`: `date-time` and `date` become timestamps, `duration`
/// durations and `byte` bytes (upstream's conversions); unparsable values stay strings, so
/// rules comparing them fail with `no such overload`.
fn string(s: &str, format: Option<&str>) -> Value {
    let converted = match format {
        Some("date-time") => chrono::DateTime::parse_from_rfc3339(s).ok().map(Value::Timestamp),
        Some("date") => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| Value::Timestamp(d.and_utc().fixed_offset())),
        Some("duration") => go_duration(s).map(Value::Duration),
        Some("byte") => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .ok()
                .map(|b| Value::Bytes(Arc::new(b)))
        }
        _ => None,
    };
    converted.unwrap_or_else(|| Value::String(Arc::new(s.to_string())))
}

/// Parses a Go duration (`1h30m`, `-1.5s`, `300ms`).
fn go_duration(s: &str) -> Option<chrono::Duration> {
    api_util::duration::parse(s)
        .ok()
        .map(chrono::Duration::nanoseconds)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn property_names_are_escaped_like_upstream() {
        assert_eq!(escape("foo-bar").as_deref(), Some("foo__dash__bar"));
        assert_eq!(escape("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(escape("x__y").as_deref(), Some("x__underscores__y"));
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape("1x"), None);
        assert_eq!(escape("a b"), None);
    }

    #[test]
    fn formatted_strings_become_timestamps_durations_and_bytes() {
        let s = |f: &str| json!({"type": "string", "format": f});
        assert!(matches!(
            to_cel(&json!("2024-01-02T03:04:05Z"), Some(&s("date-time")), false),
            Value::Timestamp(_)
        ));
        assert!(matches!(
            to_cel(&json!("2024-01-02"), Some(&s("date")), false),
            Value::Timestamp(_)
        ));
        assert!(
            matches!(to_cel(&json!("aGk="), Some(&s("byte")), false), Value::Bytes(b) if b.as_slice() == b"hi")
        );
        assert_eq!(go_duration("1h30m"), Some(chrono::Duration::minutes(90)));
        assert_eq!(go_duration("-1.5s"), Some(chrono::Duration::milliseconds(-1500)));
        assert_eq!(go_duration("300ms"), Some(chrono::Duration::milliseconds(300)));
        assert_eq!(go_duration("5x"), None);
        assert!(matches!(
            to_cel(&json!("soon"), Some(&s("date-time")), false),
            Value::String(_)
        ));
    }

    #[test]
    fn numbers_follow_the_schema_and_roots_hide_metadata() {
        let schema = json!({"type": "object", "properties": {
            "i": {"type": "integer"}, "n": {"type": "number"}, "m": {"type": "object", "additionalProperties": {"type": "string"}}}});
        let v = to_cel(
            &json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x", "namespace": "ns", "uid": "u"},
                    "i": 3, "n": 3, "m": {"a-b": "c"}, "unknown": 1}),
            Some(&schema),
            true,
        );
        let Value::Map(m) = v else { panic!() };
        assert_eq!(m.map.get(&Key::from("i")), Some(&Value::Int(3)));
        assert!(matches!(m.map.get(&Key::from("n")), Some(Value::Float(f)) if *f == 3.0));
        assert!(m.map.get(&Key::from("unknown")).is_none());
        let Some(Value::Map(meta)) = m.map.get(&Key::from("metadata")) else {
            panic!()
        };
        assert_eq!(meta.map.len(), 1);
        let Some(Value::Map(inner)) = m.map.get(&Key::from("m")) else {
            panic!()
        };
        assert!(inner.map.contains_key(&Key::from("a-b")));
    }
}
