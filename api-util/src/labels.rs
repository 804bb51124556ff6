//! Label selectors (upstream `k8s.io/apimachinery/pkg/labels` and `metav1.LabelSelector`):
//! parsing the string form, converting the object form, matching label sets, and printing the
//! string form upstream prints.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaLabelSelector;
use serde::Deserialize;
use serde_json::Value;

/// Why a label selector does not parse: upstream's detail after `unable to parse requirement: `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

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
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let bad = SelectorError;
        let mut reqs = Vec::new();
        for term in split_terms(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let req = parse_term(term).map_err(bad)?;
            reqs.push(req);
        }
        reqs.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(LabelSelector(reqs))
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `labels` satisfy every requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.0.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => labels.label(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => labels.label(k) != Some(v),
            LabelRequirement::In(k, vs) => labels.label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => labels.label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            LabelRequirement::Exists(k) => labels.label(k).is_some(),
            LabelRequirement::DoesNotExist(k) => labels.label(k).is_none(),
            LabelRequirement::GreaterThan(k, n) => labels
                .label(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l > *n),
            LabelRequirement::LessThan(k, n) => labels
                .label(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l < *n),
        })
    }

    /// True when the object's `metadata.labels` satisfy the selector.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        match obj.pointer("/metadata/labels").and_then(Value::as_object) {
            Some(labels) => self.matches(labels),
            None => self.matches(&BTreeMap::<String, String>::new()),
        }
    }

    /// Upstream's `LabelSelectorAsSelector`: `matchLabels` as equality requirements and
    /// `matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`) as set requirements, keys and
    /// values checked. An empty selector selects everything (upstream's nil selector, which
    /// selects nothing, is the caller's `None`).
    pub fn from_label_selector(sel: &MetaLabelSelector) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            validate_key(k).map_err(SelectorError)?;
            validate_value(v).map_err(SelectorError)?;
            reqs.push(LabelRequirement::Equals(k.clone(), v.clone()));
        }
        for e in sel.match_expressions.iter().flatten() {
            reqs.push(expression(
                &e.key,
                &e.operator,
                e.values.as_deref().unwrap_or_default(),
            )?);
        }
        reqs.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(LabelSelector(reqs))
    }

    /// [`LabelSelector::from_label_selector`] for the JSON form of a `metav1.LabelSelector`.
    pub fn from_json(sel: &Value) -> Result<Self, SelectorError> {
        let sel = MetaLabelSelector::deserialize(sel)
            .map_err(|e| SelectorError(format!("invalid label selector: {e}")))?;
        Self::from_label_selector(&sel)
    }
}

/// Builds the requirement of one `matchExpressions` entry.
fn expression(key: &str, op: &str, values: &[String]) -> Result<LabelRequirement, SelectorError> {
    validate_key(key).map_err(SelectorError)?;
    for v in values {
        validate_value(v).map_err(SelectorError)?;
    }
    let set = || {
        if values.is_empty() {
            Err(SelectorError(format!(
                "key {key:?}: for 'in', 'notin' operators, values set can't be empty"
            )))
        } else {
            Ok(values.to_vec())
        }
    };
    let no_values = || {
        if values.is_empty() {
            Ok(())
        } else {
            Err(SelectorError(format!(
                "key {key:?}: values set must be empty for exists and does not exist"
            )))
        }
    };
    match op {
        "In" => Ok(LabelRequirement::In(key.into(), set()?)),
        "NotIn" => Ok(LabelRequirement::NotIn(key.into(), set()?)),
        "Exists" => no_values().map(|()| LabelRequirement::Exists(key.into())),
        "DoesNotExist" => no_values().map(|()| LabelRequirement::DoesNotExist(key.into())),
        other => Err(SelectorError(format!(
            "{other:?} is not a valid label selector operator"
        ))),
    }
}

impl LabelRequirement {
    /// The label key the requirement is about.
    pub fn key(&self) -> &str {
        match self {
            LabelRequirement::Equals(k, _)
            | LabelRequirement::NotEquals(k, _)
            | LabelRequirement::In(k, _)
            | LabelRequirement::NotIn(k, _)
            | LabelRequirement::Exists(k)
            | LabelRequirement::DoesNotExist(k)
            | LabelRequirement::GreaterThan(k, _)
            | LabelRequirement::LessThan(k, _) => k,
        }
    }
}

impl fmt::Display for LabelRequirement {
    /// Upstream's `Requirement.String`: `k=v`, `k!=v`, `k in (a,b)` (values sorted), `k`, `!k`,
    /// `k>n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sorted = |vs: &[String]| {
            let mut vs: Vec<&str> = vs.iter().map(String::as_str).collect();
            vs.sort_unstable();
            vs.join(",")
        };
        match self {
            LabelRequirement::Equals(k, v) => write!(f, "{k}={v}"),
            LabelRequirement::NotEquals(k, v) => write!(f, "{k}!={v}"),
            LabelRequirement::In(k, vs) => write!(f, "{k} in ({})", sorted(vs)),
            LabelRequirement::NotIn(k, vs) => write!(f, "{k} notin ({})", sorted(vs)),
            LabelRequirement::Exists(k) => write!(f, "{k}"),
            LabelRequirement::DoesNotExist(k) => write!(f, "!{k}"),
            LabelRequirement::GreaterThan(k, n) => write!(f, "{k}>{n}"),
            LabelRequirement::LessThan(k, n) => write!(f, "{k}<{n}"),
        }
    }
}

impl fmt::Display for LabelSelector {
    /// Upstream's `Selector.String`: the requirements joined by commas, `""` for everything.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// A label set a selector can be matched against.
pub trait Labels {
    /// The value of label `key`, if set.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for std::collections::HashMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A JSON `metadata.labels` object (non-string values read as unset).
impl Labels for serde_json::Map<String, Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// True when the JSON `metav1.LabelSelector` `sel` selects `labels` (an empty selector selects
/// everything; one that does not parse selects nothing).
pub fn json_selector_matches<L: Labels + ?Sized>(sel: &Value, labels: &L) -> bool {
    LabelSelector::from_json(sel).is_ok_and(|s| s.matches(labels))
}

/// True when a JSON `metav1.LabelSelector` has neither `matchLabels` nor `matchExpressions`.
pub fn json_selector_is_empty(sel: &Value) -> bool {
    let empty = |k: &str| match sel.get(k) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => true,
    };
    empty("matchLabels") && empty("matchExpressions")
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
        for bad in [
            "a=b=c",
            "a in (x",
            "-bad=1",
            "a=-bad",
            "Bad.Prefix/a=1",
            "n>x",
            "a in x",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn string_form_is_sorted_as_upstream() {
        let s = LabelSelector::parse("z=1,a in (y,x),!m").unwrap();
        assert_eq!(s.to_string(), "a in (x,y),!m,z=1");
        assert_eq!(LabelSelector::default().to_string(), "");
    }

    #[test]
    fn object_form_converts_and_matches() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "old", "operator": "DoesNotExist"}]});
        let s = LabelSelector::from_json(&sel).unwrap();
        assert_eq!(s.to_string(), "app=web,!old,tier in (a,b)");
        let l = json!({"app": "web", "tier": "a"});
        assert!(s.matches(l.as_object().unwrap()));
        assert!(!s.matches(json!({"app": "web"}).as_object().unwrap()));
        assert!(json_selector_matches(&json!({}), &labels(&[("x", "y")])));
        let typed: MetaLabelSelector = serde_json::from_value(sel).unwrap();
        assert_eq!(LabelSelector::from_label_selector(&typed).unwrap(), s);
        for bad in [
            json!({"matchExpressions": [{"key": "k", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["v"]}]}),
            json!({"matchExpressions": [{"key": "k", "operator": "Bad"}]}),
            json!({"matchLabels": {"-k": "v"}}),
        ] {
            assert!(LabelSelector::from_json(&bad).is_err(), "{bad}");
            assert!(!json_selector_matches(&bad, &labels(&[("k", "v")])));
        }
        assert!(json_selector_is_empty(&json!({"matchLabels": {}})));
        assert!(!json_selector_is_empty(&json!({"matchExpressions": [{}]})));
    }

    #[test]
    fn objects_without_labels_match_negative_requirements() {
        let s = LabelSelector::parse("!a,b notin (x)").unwrap();
        assert!(s.matches_object(&json!({"metadata": {"name": "n"}})));
        assert!(!s.matches_object(&json!({"metadata": {"labels": {"a": "1"}}})));
    }
}
