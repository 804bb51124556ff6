//! Label and field selectors: parsing the query strings and matching objects (upstream
//! `k8s.io/apimachinery/pkg/labels` and `pkg/fields`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::descriptor::ResourceDescriptor;
use crate::error::ApiError;
use crate::field_set::FieldValue;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `k=v`, `k==v`
    Equals(String, String),
    /// `k!=v` (also matches objects without `k`)
    NotEquals(String, String),
    /// `k in (a,b)`
    In(String, Vec<String>),
    /// `k notin (a,b)` (also matches objects without `k`)
    NotIn(String, Vec<String>),
    /// `k`
    Exists(String),
    /// `!k`
    DoesNotExist(String),
    /// `k>n`
    GreaterThan(String, i64),
    /// `k<n`
    LessThan(String, i64),
}

/// A label selector: every requirement must hold. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

impl LabelSelector {
    /// Parses the `labelSelector` query parameter's grammar.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = |detail: String| ApiError::bad_request(format!("unable to parse requirement: {detail}"));
        let mut reqs = Vec::new();
        for term in split_terms(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let req = parse_term(term).map_err(bad)?;
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => labels.get(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => labels.get(k) != Some(v),
            LabelRequirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            LabelRequirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            LabelRequirement::Exists(k) => labels.contains_key(k),
            LabelRequirement::DoesNotExist(k) => !labels.contains_key(k),
            LabelRequirement::GreaterThan(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l > *n),
            LabelRequirement::LessThan(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l < *n),
        })
    }

    /// True when the object's `metadata.labels` satisfy the selector.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        self.matches(&object_labels(obj))
    }
}

/// `metadata.labels` of an object as a map.
pub fn object_labels(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_term(term: &str) -> Result<LabelRequirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        validate_key(key)?;
        return Ok(LabelRequirement::DoesNotExist(key.to_string()));
    }
    // Set-based: `key in (..)` / `key notin (..)`.
    if let Some(open) = term.find('(') {
        let head = term[..open].trim();
        let close = term
            .rfind(')')
            .filter(|c| *c > open && term[c + 1..].trim().is_empty())
            .ok_or_else(|| format!("{term:?}: expected ')'"))?;
        let values: Vec<String> = term[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .collect();
        for v in &values {
            validate_value(v)?;
        }
        let mut words = head.split_whitespace();
        let (Some(key), Some(op), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("{term:?}: expected '<key> in|notin (<values>)'"));
        };
        validate_key(key)?;
        return match op {
            "in" => Ok(LabelRequirement::In(key.to_string(), values)),
            "notin" => Ok(LabelRequirement::NotIn(key.to_string(), values)),
            other => Err(format!("{term:?}: unknown operator {other:?}")),
        };
    }
    for (op, len) in [("==", 2), ("!=", 2), ("=", 1), (">", 1), ("<", 1)] {
        if let Some(i) = term.find(op) {
            let key = term[..i].trim();
            let value = term[i + len..].trim();
            validate_key(key)?;
            return match op {
                "==" | "=" => {
                    validate_value(value)?;
                    Ok(LabelRequirement::Equals(key.to_string(), value.to_string()))
                }
                "!=" => {
                    validate_value(value)?;
                    Ok(LabelRequirement::NotEquals(key.to_string(), value.to_string()))
                }
                _ => {
                    let n: i64 = value.parse().map_err(|_| {
                        format!("{term:?}: for 'Gt', 'Lt' operators, the value must be an integer")
                    })?;
                    if op == ">" {
                        Ok(LabelRequirement::GreaterThan(key.to_string(), n))
                    } else {
                        Ok(LabelRequirement::LessThan(key.to_string(), n))
                    }
                }
            };
        }
    }
    validate_key(term)?;
    Ok(LabelRequirement::Exists(term.to_string()))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// A qualified name: `[prefix/]name`, name ≤ 63 chars of `[A-Za-z0-9-_.]` starting and ending
/// alphanumeric; prefix a DNS subdomain.
fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "invalid label key {key:?}: prefix part must be a DNS subdomain"
            ));
        }
    }
    validate_name(name).map_err(|e| format!("invalid label key {key:?}: {e}"))
}

fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    let first_last_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !name.chars().all(is_name_char)
        || !first_last_ok(name.chars().next())
        || !first_last_ok(name.chars().last())
    {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into());
    }
    Ok(())
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    validate_name(value).map_err(|e| {
        format!(
            "invalid label value {value:?}: {}",
            e.replace("name part", "a valid label")
        )
    })
}

/// One requirement of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field label, e.g. `metadata.name`.
    pub field: String,
    /// The value.
    pub value: String,
    /// `!=` instead of `=`.
    pub negate: bool,
    /// Where the field's value comes from in an object.
    pub source: FieldValue,
}

/// A field selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

impl FieldSelector {
    /// Parses the `fieldSelector` grammar (`k=v`, `k==v`, `k!=v`, comma-separated, `\` escapes)
    /// and checks every field is selectable on `desc`.
    pub fn parse(s: &str, desc: &ResourceDescriptor) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for term in split_escaped(s, ',') {
            if term.is_empty() {
                continue;
            }
            let (field, value, negate) = if let Some((f, v)) = split_op(&term, "!=") {
                (f, v, true)
            } else if let Some((f, v)) = split_op(&term, "==") {
                (f, v, false)
            } else if let Some((f, v)) = split_op(&term, "=") {
                (f, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let field = field.trim().to_string();
            let Some(source) = desc.selectable_fields.source(&field).cloned() else {
                return Err(ApiError::bad_request(desc.selectable_fields.refusal.message(
                    &field,
                    &desc.group,
                    &desc.version,
                    &desc.kind,
                )));
            };
            reqs.push(FieldRequirement {
                field,
                value: unescape(&value),
                negate,
                source,
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name a `metadata.name=x` requirement pins, if any.
    pub fn exact_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negate)
            .map(|r| r.value.as_str())
    }

    /// True when every requirement holds for `obj` (missing fields read as their type's zero
    /// value, see [`crate::field_set`]).
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| (r.source.read(obj) == r.value) != r.negate)
    }
}

/// Splits on `sep` not preceded by a backslash, keeping escapes for [`unescape`].
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    out.push(cur);
    out
}

/// Splits at the first unescaped occurrence of `op`.
fn split_op(term: &str, op: &str) -> Option<(String, String)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if term[i..].starts_with(op) {
            return Some((term[..i].to_string(), term[i + op.len()..].to_string()));
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_grammar() {
        let s = LabelSelector::parse(
            "app=web, tier!=db,env in (prod, staging),!legacy,team,track notin (canary)",
        )
        .unwrap();
        assert_eq!(s.0.len(), 6);
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev"), ("team", "x")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("team", "x"),
            ("legacy", "")
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("team", "x"),
            ("tier", "db")
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("team", "x"),
            ("track", "canary")
        ])));
        let eq = LabelSelector::parse("a==b,example.com/key=v_1.2").unwrap();
        assert!(eq.matches(&labels(&[("a", "b"), ("example.com/key", "v_1.2")])));
        let gt = LabelSelector::parse("n>3,m<2").unwrap();
        assert!(gt.matches(&labels(&[("n", "4"), ("m", "1")])));
        assert!(!gt.matches(&labels(&[("n", "3"), ("m", "1")])));
        assert!(LabelSelector::parse("").unwrap().is_empty());
        assert!(LabelSelector::parse("a=b=c").is_err());
        assert!(LabelSelector::parse("a in (x").is_err());
        assert!(LabelSelector::parse("-bad=1").is_err());
        assert!(LabelSelector::parse("a=-bad").is_err());
        assert!(LabelSelector::parse("Bad.Prefix/a=1").is_err());
        assert!(LabelSelector::parse("n>x").is_err());
        let err = LabelSelector::parse("a in x").unwrap_err();
        assert_eq!(err.code(), 400);
    }

    #[test]
    fn field_selectors() {
        let rows = crate::builtin::rows();
        let pods = rows.iter().find(|d| d.resource == "pods").unwrap();
        let s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed,metadata.name==p", pods).unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(s.matches_object(&pod));
        assert_eq!(s.exact_name(), Some("p"));
        let s = FieldSelector::parse("spec.nodeName=", pods).unwrap();
        assert!(s.matches_object(&json!({"metadata": {"name": "q"}})));
        let err = FieldSelector::parse("spec.containers=x", pods).unwrap_err();
        assert_eq!(err.message(), "field label not supported: spec.containers");
        // Absent fields read as their zero values.
        let s = FieldSelector::parse("spec.hostNetwork=false,status.podIP=", pods).unwrap();
        assert!(s.matches_object(&json!({"metadata": {"name": "q"}})));
        let nodes = rows.iter().find(|d| d.resource == "nodes").unwrap();
        for sel in ["spec.unschedulable=false", "spec.unschedulable!=true"] {
            let s = FieldSelector::parse(sel, nodes).unwrap();
            assert!(
                s.matches_object(&json!({"metadata": {"name": "n"}, "spec": {}})),
                "{sel}"
            );
            assert!(
                !s.matches_object(&json!({"spec": {"unschedulable": true}})),
                "{sel}"
            );
        }
        let err = FieldSelector::parse("metadata.namespace=a", nodes).unwrap_err();
        assert_eq!(err.message(), "field label not supported: metadata.namespace");
        let cms = rows.iter().find(|d| d.resource == "configmaps").unwrap();
        let s = FieldSelector::parse(r"metadata.name=a\,b", cms).unwrap();
        assert_eq!(s.0[0].value, "a,b");
        assert!(FieldSelector::parse("nonsense", cms).is_err());
    }
}
