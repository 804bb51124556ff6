//! Strict decoding (upstream's `fieldValidation`): request bodies decoded while noting fields
//! set twice, and the verdict on a write's strict decoding errors (duplicate and unknown fields):
//! an error under `Strict`, one `Warning` per error under `Warn`, nothing under `Ignore`.
//!
//! The error texts are upstream's: `duplicate field "spec.a"` and `unknown field "spec.extra"`
//! (sigs.k8s.io/json), and for YAML bodies the YAML parser's
//! `error converting YAML to JSON: yaml: unmarshal errors:\n  line 3: key "a" already set in map`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{ApiError, ApiResult, FieldError};
use crate::query::FieldValidation;

/// Upstream keeps at most this many strict errors per decode.
const MAX_ERRORS: usize = 100;

const YAML_PREFIX: &str = "error converting YAML to JSON: yaml: unmarshal errors:\n";

/// Decodes JSON into a value (the last of fields set twice wins, as in Go) and the
/// `duplicate field "<path>"` errors of the fields set twice.
pub fn decode_json(body: &[u8]) -> serde_json::Result<(Value, Vec<String>)> {
    let state = RefCell::new(Paths::default());
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = ValueSeed { state: &state }.deserialize(&mut de)?;
    de.end()?;
    Ok((value, state.into_inner().errors))
}

/// The strict error of a YAML document's keys set twice in one mapping (none when every key is
/// unique or the document does not parse; its parse error is reported by the decoder).
pub fn yaml_duplicates(body: &[u8]) -> Option<String> {
    let mut lines = Vec::new();
    while lines.len() < MAX_ERRORS {
        let probe = YamlProbe {
            skip: lines.len(),
            seen: RefCell::new(0),
            hit: RefCell::new(None),
        };
        let Some(doc) = serde_yaml_ng::Deserializer::from_slice(body).next() else {
            break;
        };
        let Err(e) = probe.seed().deserialize(doc) else {
            break;
        };
        match (probe.hit.into_inner(), e.location()) {
            (Some(key), Some(at)) => lines.push(format!(
                "line {}: key {} already set in map",
                at.line(),
                go_quote(&key)
            )),
            _ => break,
        }
    }
    (!lines.is_empty()).then(|| format!("{YAML_PREFIX}  {}", lines.join("\n  ")))
}

/// The `Warning`s of strict errors: one per error, and one per line of a YAML error (as
/// upstream's `parseYAMLWarnings`).
pub fn warnings(errors: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for e in errors {
        let rest = e
            .strip_prefix(YAML_PREFIX)
            .or_else(|| e.strip_prefix("yaml: unmarshal errors:\n"));
        match rest {
            Some(lines) => out.extend(lines.split('\n').map(|l| l.trim().to_string())),
            None => out.push(e.clone()),
        }
    }
    out
}

/// `strict decoding error: a, b` (upstream's `runtime.NewStrictDecodingError`).
pub fn message(errors: &[String]) -> String {
    format!("strict decoding error: {}", errors.join(", "))
}

/// Where strict errors were found, which decides the shape of the `Strict` error.
pub enum Failure<'a> {
    /// A create or update body of `kind` in `version`: a 400 BadRequest.
    Body {
        /// The object's kind.
        kind: &'a str,
        /// The body's version.
        version: &'a str,
    },
    /// A JSON, merge or strategic merge patch: a 422 Invalid on the field `patch`, whose value
    /// is the patched object (JSON and merge patches) or the patch (strategic merge patches).
    Patch {
        /// The value upstream shows.
        shown: String,
    },
}

/// The verdict on a write's strict errors under `validation`: the warnings to send, or the
/// `Strict` error.
pub fn settle<'a>(
    validation: FieldValidation,
    errors: &[String],
    failure: impl FnOnce() -> Failure<'a>,
) -> ApiResult<Vec<String>> {
    if errors.is_empty() {
        return Ok(Vec::new());
    }
    match validation {
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Warn => Ok(warnings(errors)),
        FieldValidation::Strict => Err(match failure() {
            Failure::Body { kind, version } => ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {}",
                message(errors)
            )),
            Failure::Patch { shown } => {
                let mut e = ApiError::invalid(
                    "",
                    "",
                    "",
                    &[FieldError::invalid(
                        "patch",
                        &Value::String(shown),
                        &message(errors),
                    )],
                );
                if let Some(d) = e.status.details.as_mut() {
                    d.kind = None;
                }
                e
            }
        }),
    }
}

/// A value as Go's `fmt.Sprintf("%+v", v)` prints the decoded JSON (`map[a:1 b:[x y]]`), which
/// upstream shows for strategic merge patches.
pub fn go_format(v: &Value) -> String {
    let mut s = String::new();
    write_go(v, &mut s);
    s
}

fn write_go(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&go_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("map[");
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go(item, out);
            }
            out.push(']');
        }
    }
}

/// A float as Go's `%v` prints it (`%g` with the shortest representation: `1.5`, `1e+21`).
fn go_float(f: f64) -> String {
    let exp = if f == 0.0 {
        0
    } else {
        f.abs().log10().floor() as i32
    };
    if (-4..21).contains(&exp) {
        return f.to_string();
    }
    let s = format!("{f:e}");
    match s.split_once('e') {
        Some((mantissa, e)) => {
            let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// A string as Go's `%q`/`%#v` quotes it.
fn go_quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

#[derive(Default)]
struct Paths {
    stack: Vec<Segment>,
    errors: Vec<String>,
    seen: HashSet<String>,
}

enum Segment {
    Key(String),
    Index(usize),
}

impl Paths {
    /// The path of `key` under the current position, as sigs.k8s.io/json writes it.
    fn path_of(&self, key: &str) -> String {
        let mut p = String::new();
        for s in &self.stack {
            match s {
                Segment::Key(k) => {
                    if !p.is_empty() {
                        p.push('.');
                    }
                    p.push_str(k);
                }
                Segment::Index(i) => {
                    p.push('[');
                    p.push_str(&i.to_string());
                    p.push(']');
                }
            }
        }
        if !p.is_empty() {
            p.push('.');
        }
        p.push_str(key);
        p
    }

    fn duplicate(&mut self, key: &str) {
        let e = format!("duplicate field {}", go_quote(&self.path_of(key)));
        if self.errors.len() < MAX_ERRORS && self.seen.insert(e.clone()) {
            self.errors.push(e);
        }
    }
}

/// Builds a JSON value and notes keys set twice.
struct ValueSeed<'a> {
    state: &'a RefCell<Paths>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.state.borrow_mut().stack.push(Segment::Index(items.len()));
            let item = seq.next_element_seed(ValueSeed { state: self.state });
            self.state.borrow_mut().stack.pop();
            match item? {
                Some(v) => items.push(v),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            self.state.borrow_mut().stack.push(Segment::Key(key));
            let value = access.next_value_seed(ValueSeed { state: self.state });
            let Some(Segment::Key(key)) = self.state.borrow_mut().stack.pop() else {
                return Err(A::Error::custom("unbalanced path"));
            };
            let value = value?;
            if map.contains_key(&key) {
                self.state.borrow_mut().duplicate(&key);
            }
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// One pass over a YAML document that fails at the first key set twice after `skip` of them,
/// so that the YAML parser's error carries that key's line.
struct YamlProbe {
    skip: usize,
    seen: RefCell<usize>,
    hit: RefCell<Option<String>>,
}

impl YamlProbe {
    fn seed(&self) -> Probe<'_> {
        Probe { probe: self }
    }
}

#[derive(Clone, Copy)]
struct Probe<'a> {
    probe: &'a YamlProbe,
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = HashSet::new();
        while map
            .next_key_seed(KeySeed {
                probe: self.probe,
                keys: &mut keys,
            })?
            .is_some()
        {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// A mapping key: fails (inside the key's own deserializer, so the error gets its position)
/// when it repeats an earlier key of the mapping and is not one of the first `skip` repeats.
struct KeySeed<'a, 'k> {
    probe: &'a YamlProbe,
    keys: &'k mut HashSet<String>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl KeySeed<'_, '_> {
    fn key<E: serde::de::Error>(self, key: String) -> Result<(), E> {
        if self.keys.insert(key.clone()) {
            return Ok(());
        }
        let mut seen = self.probe.seen.borrow_mut();
        *seen += 1;
        if *seen <= self.probe.skip {
            return Ok(());
        }
        *self.probe.hit.borrow_mut() = Some(key);
        Err(E::custom("key already set in map"))
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.key(v.to_string())
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.key(v.to_string())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.key(v.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.key(v.to_string())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.key(v.to_string())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.key("null".to_string())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_duplicates_are_noted_with_their_paths_and_the_last_wins() {
        let (v, errs) =
            decode_json(br#"{"a":1,"a":2,"m":{"x":[{"n":1,"n":2}],"x":[]},"l":[1,{"k":1,"k":1}]}"#).unwrap();
        assert_eq!(v, json!({"a": 2, "m": {"x": []}, "l": [1, {"k": 1}]}));
        assert_eq!(
            errs,
            [
                "duplicate field \"a\"",
                "duplicate field \"m.x[0].n\"",
                "duplicate field \"m.x\"",
                "duplicate field \"l[1].k\""
            ]
        );
        let (_, errs) = decode_json(br#"[{"op":"add","op":"add"}]"#).unwrap();
        assert_eq!(errs, ["duplicate field \"[0].op\""]);
        assert!(decode_json(b"{").is_err());
        assert!(decode_json(b"{} x").is_err());
    }

    #[test]
    fn yaml_duplicates_carry_their_lines() {
        let yaml = b"a: 1\nb:\n  c: 1\n  c: 2\na: 3\nl:\n- n: 1\n  n: 1\n";
        let e = yaml_duplicates(yaml).unwrap();
        assert_eq!(
            e,
            "error converting YAML to JSON: yaml: unmarshal errors:\n  line 4: key \"c\" already set in map\n  line 5: key \"a\" already set in map\n  line 8: key \"n\" already set in map"
        );
        assert_eq!(
            warnings(&[e, "duplicate field \"x\"".into()]),
            [
                "line 4: key \"c\" already set in map",
                "line 5: key \"a\" already set in map",
                "line 8: key \"n\" already set in map",
                "duplicate field \"x\""
            ]
        );
        assert_eq!(yaml_duplicates(b"a: 1\nb: 2\n"), None);
        assert_eq!(yaml_duplicates(b"a: ["), None);
        assert_eq!(
            yaml_duplicates(br#"{"a": 1, "a": 2}"#).unwrap(),
            format!("{YAML_PREFIX}  line 1: key \"a\" already set in map")
        );
    }

    #[test]
    fn strict_errors_by_mode_and_place() {
        let errs = vec![
            "unknown field \"spec.extra\"".to_string(),
            "unknown field \"spec.x\"".to_string(),
        ];
        let body = || Failure::Body {
            kind: "Widget",
            version: "v1",
        };
        assert!(settle(FieldValidation::Ignore, &errs, body).unwrap().is_empty());
        assert_eq!(settle(FieldValidation::Warn, &errs, body).unwrap(), errs);
        let e = settle(FieldValidation::Strict, &errs, body).unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.message(),
            "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.extra\", unknown field \"spec.x\""
        );
        let e = settle(FieldValidation::Strict, &errs[..1], || Failure::Patch {
            shown: go_format(&json!({"spec": {"extra": 1, "l": ["a", 1.5, null]}})),
        })
        .unwrap_err();
        assert_eq!(e.code(), 422);
        assert_eq!(
            e.message(),
            " \"\" is invalid: patch: Invalid value: \"map[spec:map[extra:1 l:[a 1.5 <nil>]]]\": strict decoding error: unknown field \"spec.extra\""
        );
        assert!(settle(FieldValidation::Strict, &[], body).unwrap().is_empty());
    }

    #[test]
    fn go_floats() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e-5), "1e-05");
        assert_eq!(go_float(0.0), "0");
    }
}
