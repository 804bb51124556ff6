//! Field sets: the sets of field paths a manager owns, and their `FieldsV1` encoding (the shape
//! of structured-merge-diff's `fieldpath.Set`).
//!
//! A path is a list of encoded path elements: `f:<field>` (a map key or struct field),
//! `k:<json object>` (a list-map element by its key fields, sorted by name), `v:<json>` (a set
//! element by its value) and `i:<n>` (a list element by index). The set is a tree whose nodes
//! are path elements; a node is a *member* when the path ending there is in the set. In
//! `FieldsV1` a member leaf is `{}` and a member with children carries `".": {}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One encoded path element (`f:name`, `k:{...}`, `v:...`, `i:n`).
pub type PathElement = String;

/// A field path from the object root.
pub type Path = Vec<PathElement>;

/// The element for a map key or struct field.
pub fn field(name: &str) -> PathElement {
    format!("f:{name}")
}

/// The element for a list-map entry with these key fields (ordered by name, as upstream).
pub fn key(fields: &BTreeMap<String, Value>) -> PathElement {
    let obj: Map<String, Value> = fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    format!("k:{}", Value::Object(obj))
}

/// The element for a set entry.
pub fn value(v: &Value) -> PathElement {
    format!("v:{v}")
}

/// The element for a list entry by position.
pub fn index(i: usize) -> PathElement {
    format!("i:{i}")
}

/// A set of field paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

/// A `FieldsV1` document that is not a valid field set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid FieldsV1 at {path:?}: {reason}")]
pub struct DecodeError {
    /// Where (encoded elements).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        FieldSet::default()
    }

    /// True when no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Adds a path (the empty path is ignored).
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let child = self.children.entry(first.clone()).or_default();
        if rest.is_empty() {
            child.member = true;
        } else {
            child.insert(rest);
        }
    }

    fn node(&self, path: &[PathElement]) -> Option<&FieldSet> {
        match path.split_first() {
            None => Some(self),
            Some((first, rest)) => self.children.get(first)?.node(rest),
        }
    }

    /// True when `path` is in the set.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        !path.is_empty() && self.node(path).is_some_and(|n| n.member)
    }

    /// True when `path` or a path below it is in the set.
    pub fn covers(&self, path: &[PathElement]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    /// The direct children: element, whether it is a member, and the set below it.
    pub fn entries(&self) -> impl Iterator<Item = (&PathElement, bool, &FieldSet)> {
        self.children.iter().map(|(k, c)| (k, c.member, c))
    }

    /// The subtree below `path` (paths relative to it).
    pub fn subtree(&self, path: &[PathElement]) -> Option<&FieldSet> {
        self.node(path)
    }

    /// Every member path, depth first in element order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            if child.member {
                out.push(prefix.clone());
            }
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Adds every path of `other`.
    pub fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (pe, child) in &other.children {
            self.children.entry(pe.clone()).or_default().union_with(child);
        }
    }

    /// The union of two sets.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_with(other);
        out
    }

    /// The paths of `self` that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(o) => child.difference(o),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if let Some(o) = other.children.get(pe) {
                let both = child.intersection(o);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// The set without `path` and everything below it.
    pub fn without_subtree(&self, path: &[PathElement]) -> FieldSet {
        let mut out = self.clone();
        out.remove_subtree(path);
        out
    }

    fn remove_subtree(&mut self, path: &[PathElement]) {
        let Some((first, rest)) = path.split_first() else {
            *self = FieldSet::new();
            return;
        };
        if rest.is_empty() {
            self.children.remove(first);
        } else if let Some(child) = self.children.get_mut(first) {
            child.remove_subtree(rest);
            if child.is_empty() {
                self.children.remove(first);
            }
        }
    }

    /// Only `path` and what is below it.
    pub fn only_subtree(&self, path: &[PathElement]) -> FieldSet {
        let mut out = FieldSet::new();
        if let Some(node) = self.node(path) {
            let mut sub = node.clone();
            for pe in path.iter().rev() {
                let mut parent = FieldSet::new();
                parent.children.insert(pe.clone(), sub);
                sub = parent;
            }
            out = sub;
        }
        out
    }

    /// The `FieldsV1` JSON of the set.
    pub fn to_fields_v1(&self) -> Value {
        let mut obj = Map::new();
        if self.member && !self.children.is_empty() {
            obj.insert(".".into(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            obj.insert(pe.clone(), child.to_fields_v1());
        }
        Value::Object(obj)
    }

    /// Parses `FieldsV1` JSON.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, DecodeError> {
        let mut set = FieldSet::new();
        set.decode_children(v, &mut Vec::new())?;
        Ok(set)
    }

    fn decode_children(&mut self, v: &Value, path: &mut Vec<String>) -> Result<(), DecodeError> {
        let err = |path: &[String], reason: &str| DecodeError {
            path: path.join("/"),
            reason: reason.to_string(),
        };
        let obj = v.as_object().ok_or_else(|| err(path, "expected an object"))?;
        for (k, child) in obj {
            if k == "." {
                self.member = true;
                continue;
            }
            check_element(k).map_err(|r| err(path, &r))?;
            path.push(k.clone());
            let mut node = FieldSet::new();
            if child.as_object().is_some_and(Map::is_empty) {
                node.member = true;
            } else {
                node.decode_children(child, path)?;
            }
            path.pop();
            self.children.insert(k.clone(), node);
        }
        Ok(())
    }
}

fn check_element(pe: &str) -> Result<(), String> {
    let bad = || format!("invalid path element {pe:?}");
    let (prefix, rest) = pe.split_at_checked(2).ok_or_else(bad)?;
    match prefix {
        "f:" => Ok(()),
        "k:" => match serde_json::from_str::<Value>(rest) {
            Ok(Value::Object(_)) => Ok(()),
            _ => Err(bad()),
        },
        "v:" => serde_json::from_str::<Value>(rest).map(|_| ()).map_err(|_| bad()),
        "i:" => rest.parse::<usize>().map(|_| ()).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A scalar as upstream prints it in paths (strings quoted).
fn print_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// A path as upstream prints it in conflict messages: `.spec.containers[name="web"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    let mut out = String::new();
    for pe in path {
        let (prefix, rest) = pe.split_at_checked(2).unwrap_or(("", pe));
        match prefix {
            "f:" => {
                out.push('.');
                out.push_str(rest);
            }
            "k:" => {
                let keys: Map<String, Value> = serde_json::from_str(rest).unwrap_or_default();
                let parts: Vec<String> = keys
                    .iter()
                    .map(|(k, v)| format!("{k}={}", print_value(v)))
                    .collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            "v:" => {
                let v: Value = serde_json::from_str(rest).unwrap_or(Value::Null);
                out.push_str(&format!("[={}]", print_value(&v)));
            }
            "i:" => out.push_str(&format!("[{rest}]")),
            _ => out.push_str(pe),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(elems: &[&str]) -> Path {
        elems.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_v1_round_trip() {
        let doc = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}
                }}}
            },
            "f:metadata2": {"f:finalizers": {"v:\"a\"": {}, "i:3": {}}}
        });
        let set = FieldSet::from_fields_v1(&doc).unwrap();
        assert_eq!(set.to_fields_v1(), doc);
        assert!(set.contains(&p(&["f:metadata", "f:labels"])));
        assert!(set.contains(&p(&["f:metadata", "f:labels", "f:app"])));
        assert!(!set.contains(&p(&["f:metadata"])));
        assert!(set.covers(&p(&["f:metadata"])));
        assert_eq!(set.paths().len(), 10);
        for bad in [
            json!({"x": {}}),
            json!({"f:a": 1}),
            json!({"k:[1]": {}}),
            json!({"i:x": {}}),
        ] {
            assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encoding_of_elements_and_printing() {
        let mut keys = BTreeMap::new();
        keys.insert("protocol".to_string(), json!("TCP"));
        keys.insert("containerPort".to_string(), json!(80));
        assert_eq!(key(&keys), r#"k:{"containerPort":80,"protocol":"TCP"}"#);
        assert_eq!(value(&json!("x")), r#"v:"x""#);
        let path = vec![
            field("spec"),
            field("containers"),
            key(&keys),
            field("name"),
            value(&json!("a")),
            index(2),
        ];
        assert_eq!(
            path_string(&path),
            r#".spec.containers[containerPort=80,protocol="TCP"].name[="a"][2]"#
        );
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::new();
        a.insert(&p(&["f:a", "f:b"]));
        a.insert(&p(&["f:a", "f:c"]));
        a.insert(&p(&["f:d"]));
        let mut b = FieldSet::new();
        b.insert(&p(&["f:a", "f:b"]));
        b.insert(&p(&["f:e"]));
        assert_eq!(a.intersection(&b).paths(), vec![p(&["f:a", "f:b"])]);
        assert_eq!(a.difference(&b).paths(), vec![p(&["f:a", "f:c"]), p(&["f:d"])]);
        assert_eq!(a.union(&b).paths().len(), 4);
        assert_eq!(a.without_subtree(&p(&["f:a"])).paths(), vec![p(&["f:d"])]);
        assert_eq!(a.only_subtree(&p(&["f:a"])).paths().len(), 2);
        assert!(a.difference(&a).is_empty());
    }
}
