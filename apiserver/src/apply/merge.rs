//! The value side of server-side apply, driven by a [`FieldSchema`]: the field set of a value,
//! the merge of an applied configuration into a live object, the comparison of two objects
//! (added / modified / removed paths) and the removal of paths from an object.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldset::{self, FieldSet, Path, PathElement};
use super::schema::{FieldSchema, ListType, MapType};

/// A value the schema cannot place (a list-map element without its key, a duplicate key).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path}: {reason}")]
pub struct ShapeError {
    /// Where, as upstream prints paths.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// How a value is walked.
enum Shape<'a> {
    Leaf,
    Map(&'a Map<String, Value>, MapType),
    List(&'a Vec<Value>, ListType),
}

fn shape<'a>(schema: &dyn FieldSchema, names: &[String], v: &'a Value) -> Shape<'a> {
    match v {
        Value::Object(m) => match schema.map_type(names) {
            MapType::Atomic => Shape::Leaf,
            t => Shape::Map(m, t),
        },
        Value::Array(l) => match schema.list_type(names) {
            ListType::Atomic => Shape::Leaf,
            t => Shape::List(l, t),
        },
        _ => Shape::Leaf,
    }
}

fn is_empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(l)) => l.is_empty(),
        Some(_) => false,
    }
}

/// The path element of a list element, or why it has none.
pub fn element_key(list: &ListType, elem: &Value) -> Result<PathElement, String> {
    match list {
        ListType::Atomic => Err("atomic lists have no element keys".into()),
        ListType::Set => match elem {
            Value::Object(_) | Value::Array(_) => Err("set elements must be scalars".into()),
            v => Ok(fieldset::value(v)),
        },
        ListType::Map(keys) => {
            let obj = elem
                .as_object()
                .ok_or("associative list with keys has an element that is not a map")?;
            let mut fields = BTreeMap::new();
            for k in keys {
                match obj.get(&k.name).filter(|v| !v.is_null()).or(k.default.as_ref()) {
                    Some(v) => {
                        fields.insert(k.name.clone(), v.clone());
                    }
                    None => {
                        return Err(format!(
                            "associative list with keys has an element that omits key field {:?} (and doesn't have default value)",
                            k.name
                        ));
                    }
                }
            }
            Ok(fieldset::key(&fields))
        }
    }
}

/// The elements of a list by key, in list order; with `strict`, duplicates are errors, else
/// the first one wins.
fn index_list<'a>(
    list: &'a [Value],
    lt: &ListType,
    path: &[PathElement],
    strict: bool,
) -> Result<Vec<(PathElement, &'a Value)>, ShapeError> {
    let mut out: Vec<(PathElement, &Value)> = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let pe = element_key(lt, e).map_err(|reason| ShapeError {
            path: format!("{}: element {i}", fieldset::path_string(path)),
            reason,
        })?;
        if out.iter().any(|(k, _)| *k == pe) {
            if strict {
                let mut p = path.to_vec();
                p.push(pe);
                return Err(ShapeError {
                    path: fieldset::path_string(&p),
                    reason: "duplicate entries for key".into(),
                });
            }
            continue;
        }
        out.push((pe, e));
    }
    Ok(out)
}

/// Walk state: the schema, the field-name path (for the schema) and the set path.
struct Walk<'s> {
    schema: &'s dyn FieldSchema,
    names: Vec<String>,
    path: Path,
}

impl<'s> Walk<'s> {
    fn new(schema: &'s dyn FieldSchema) -> Self {
        Walk {
            schema,
            names: Vec::new(),
            path: Vec::new(),
        }
    }

    fn enter_field(&mut self, k: &str) {
        self.names.push(k.to_string());
        self.path.push(fieldset::field(k));
    }

    fn leave_field(&mut self) {
        self.names.pop();
        self.path.pop();
    }
}

/// The fields a (partial) object sets, as upstream's `ToFieldSet`: scalars, atomic values and
/// empty values are members, granular map keys and list elements are members, struct fields
/// with content only through their children.
pub fn field_set(schema: &dyn FieldSchema, v: &Value) -> Result<FieldSet, ShapeError> {
    let mut set = FieldSet::new();
    let mut w = Walk::new(schema);
    collect(&mut w, v, &mut set)?;
    Ok(set)
}

fn collect(w: &mut Walk<'_>, v: &Value, set: &mut FieldSet) -> Result<(), ShapeError> {
    match shape(w.schema, &w.names, v) {
        Shape::Leaf => set.insert(&w.path),
        Shape::Map(m, mt) => {
            for (k, child) in m {
                w.enter_field(k);
                collect(w, child, set)?;
                if mt == MapType::Granular || (is_empty_container(Some(child)) && !child.is_array()) {
                    set.insert(&w.path);
                }
                w.leave_field();
            }
        }
        Shape::List(l, lt) => {
            if l.is_empty() {
                set.insert(&w.path);
            }
            for (pe, e) in index_list(l, &lt, &w.path, true)? {
                w.path.push(pe);
                collect(w, e, set)?;
                set.insert(&w.path);
                w.path.pop();
            }
        }
    }
    Ok(())
}

/// Merges an applied configuration into a live value: the configuration wins for scalars and
/// atomic values, maps merge per key, list-maps and sets merge per element (the applied order
/// for shared elements, live-only elements keep their place). `null` in the configuration
/// removes the field.
pub fn merge(schema: &dyn FieldSchema, live: Option<&Value>, config: &Value) -> Result<Value, ShapeError> {
    let mut w = Walk::new(schema);
    merge_at(&mut w, live, config)
}

fn merge_at(w: &mut Walk<'_>, live: Option<&Value>, config: &Value) -> Result<Value, ShapeError> {
    match shape(w.schema, &w.names, config) {
        Shape::Leaf => Ok(strip_nulls(config)),
        Shape::Map(cm, _) => {
            let mut out = match live {
                Some(Value::Object(lm)) => lm.clone(),
                _ => Map::new(),
            };
            for (k, cv) in cm {
                if cv.is_null() {
                    out.remove(k);
                    continue;
                }
                w.enter_field(k);
                let merged = merge_at(w, out.get(k), cv);
                w.leave_field();
                out.insert(k.clone(), merged?);
            }
            Ok(Value::Object(out))
        }
        Shape::List(cl, lt) => {
            let rhs = index_list(cl, &lt, &w.path, true)?;
            let Some(Value::Array(ll)) = live else {
                let mut out = Vec::with_capacity(rhs.len());
                for (pe, e) in rhs {
                    w.path.push(pe);
                    let merged = merge_at(w, None, e);
                    w.path.pop();
                    out.push(merged?);
                }
                return Ok(Value::Array(out));
            };
            let lhs = index_list(ll, &lt, &w.path, false)?;
            let rhs_keys: Vec<&PathElement> = rhs.iter().map(|(k, _)| k).collect();
            let live_by_key: BTreeMap<&PathElement, &Value> = lhs.iter().map(|(k, v)| (k, *v)).collect();
            let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
            let mut emitted: Vec<&PathElement> = Vec::new();
            let (mut i, mut j) = (0, 0);
            while i < lhs.len() || j < rhs.len() {
                if i < lhs.len() {
                    let lk = &lhs[i].0;
                    if emitted.contains(&lk) {
                        i += 1;
                        continue;
                    }
                    if !rhs_keys.contains(&lk) {
                        out.push(lhs[i].1.clone());
                        i += 1;
                        continue;
                    }
                }
                if j < rhs.len() {
                    let (rk, rv) = &rhs[j];
                    w.path.push(rk.clone());
                    let merged = merge_at(w, live_by_key.get(rk).copied(), rv);
                    w.path.pop();
                    out.push(merged?);
                    emitted.push(rk);
                    j += 1;
                } else {
                    i += 1;
                }
            }
            Ok(Value::Array(out))
        }
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(l) => Value::Array(l.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// The difference between two versions of an object, as field sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Paths only in the new object (new containers included).
    pub added: FieldSet,
    /// Leaf paths whose value changed.
    pub modified: FieldSet,
    /// Paths only in the old object.
    pub removed: FieldSet,
}

impl Comparison {
    /// True when nothing changed.
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }

    /// Drops paths from all three sets (`RecursiveDifference`-like when `subtree`).
    pub fn map_sets(&mut self, f: impl Fn(&FieldSet) -> FieldSet) {
        self.added = f(&self.added);
        self.modified = f(&self.modified);
        self.removed = f(&self.removed);
    }
}

/// Compares two objects as upstream's `Compare`: leaves (scalars, atomic values, containers
/// empty on both sides) are added, removed or modified; maps and lists that appear or
/// disappear are added or removed themselves too (structs only through their fields).
pub fn compare(schema: &dyn FieldSchema, old: &Value, new: &Value) -> Comparison {
    let mut c = Comparison::default();
    let mut w = Walk::new(schema);
    compare_at(&mut w, Some(old), Some(new), &mut c);
    c
}

fn compare_at(w: &mut Walk<'_>, old: Option<&Value>, new: Option<&Value>, c: &mut Comparison) {
    let Some(sample) = new.or(old) else {
        return;
    };
    let both_empty = is_empty_container(old) && is_empty_container(new);
    let same_kind = match (old, new) {
        (Some(a), Some(b)) => std::mem::discriminant(a) == std::mem::discriminant(b),
        _ => true,
    };
    let leaf = |c: &mut Comparison, path: &Path| match (old, new) {
        (None, Some(_)) => c.added.insert(path),
        (Some(_), None) => c.removed.insert(path),
        (Some(a), Some(b)) if a != b => c.modified.insert(path),
        _ => {}
    };
    if both_empty || !same_kind {
        leaf(c, &w.path);
        return;
    }
    let sample_shape = shape(w.schema, &w.names, sample);
    // Structs that appear or disappear are not members themselves (upstream's empty objects
    // already hold their non-pointer structs, so only maps and lists show up as new).
    let own_node = !matches!(sample_shape, Shape::Map(_, MapType::Struct));
    match sample_shape {
        Shape::Leaf => leaf(c, &w.path),
        Shape::Map(..) => {
            let empty = Map::new();
            let om = old.and_then(Value::as_object).unwrap_or(&empty);
            let nm = new.and_then(Value::as_object).unwrap_or(&empty);
            let mut keys: Vec<&String> = om.keys().chain(nm.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                w.enter_field(k);
                compare_at(w, om.get(k), nm.get(k), c);
                w.leave_field();
            }
        }
        Shape::List(_, lt) => {
            let index = |v: Option<&Value>| -> Option<Vec<(PathElement, Value)>> {
                let l = v.and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
                index_list(l, &lt, &[], false)
                    .ok()
                    .map(|els| els.into_iter().map(|(k, v)| (k, v.clone())).collect())
            };
            let (Some(ol), Some(nl)) = (index(old), index(new)) else {
                // Elements without keys: compare the list as one value.
                leaf(c, &w.path);
                return;
            };
            let ob: BTreeMap<_, _> = ol.into_iter().collect();
            let nb: BTreeMap<_, _> = nl.into_iter().collect();
            let mut keys: Vec<&PathElement> = ob.keys().chain(nb.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                w.path.push(k.clone());
                compare_at(w, ob.get(k), nb.get(k), c);
                w.path.pop();
            }
        }
    }
    if own_node && !w.path.is_empty() {
        match (old, new) {
            (None, Some(_)) => c.added.insert(&w.path),
            (Some(_), None) => c.removed.insert(&w.path),
            _ => {}
        }
    }
}

/// Removes the member paths of `set` from `obj` (a member's whole value goes).
pub fn remove(schema: &dyn FieldSchema, obj: &mut Value, set: &FieldSet) {
    let mut w = Walk::new(schema);
    remove_at(&mut w, obj, set);
}

fn remove_at(w: &mut Walk<'_>, v: &mut Value, set: &FieldSet) {
    for (pe, member, below) in set.entries() {
        if let Some(name) = pe.strip_prefix("f:") {
            let Some(m) = v.as_object_mut() else { continue };
            if member {
                m.remove(name);
            } else if let Some(cv) = m.get_mut(name) {
                w.names.push(name.to_string());
                remove_at(w, cv, below);
                w.names.pop();
                // A map or list emptied by the removal goes too, as upstream.
                if is_empty_container(Some(cv)) {
                    m.remove(name);
                }
            }
        } else {
            let lt = w.schema.list_type(&w.names);
            let Some(l) = v.as_array_mut() else { continue };
            let position = match pe.strip_prefix("i:") {
                Some(i) => i.parse::<usize>().ok().filter(|i| *i < l.len()),
                None => l.iter().position(|e| element_key(&lt, e).is_ok_and(|k| k == *pe)),
            };
            let Some(pos) = position else { continue };
            if member {
                l.remove(pos);
            } else {
                remove_at(w, &mut l[pos], below);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::BuiltinSchema;
    use super::*;
    use serde_json::json;

    fn paths(set: &FieldSet) -> Vec<String> {
        set.paths().iter().map(|p| fieldset::path_string(p)).collect()
    }

    fn deployment(image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [
                    {"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]}}}})
    }

    #[test]
    fn field_set_of_applied_config() {
        let set = field_set(&BuiltinSchema, &deployment("nginx:1")).unwrap();
        let fv1 = set.to_fields_v1();
        assert_eq!(fv1["f:metadata"]["f:labels"], json!({"f:app": {}}));
        assert_eq!(
            fv1["f:spec"]["f:selector"],
            json!({}),
            "label selectors are atomic"
        );
        let c = &fv1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"];
        assert_eq!(c["."], json!({}));
        assert_eq!(
            c["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"],
            json!({".": {}, "f:containerPort": {}})
        );
        let err = field_set(
            &BuiltinSchema,
            &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
        )
        .unwrap_err();
        assert!(err.reason.contains("omits key field \"name\""), "{err}");
        let dup = json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
        assert!(field_set(&BuiltinSchema, &dup).is_err());
    }

    #[test]
    fn list_map_merge_of_containers_by_name() {
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "image": "busybox"},
            {"name": "nginx", "image": "nginx:1", "args": ["a", "b"], "resources": {"limits": {"cpu": "1"}}}]}}}});
        let config = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:2", "args": ["c"]},
            {"name": "new", "image": "x"}]}}}});
        let out = merge(&BuiltinSchema, Some(&live), &config).unwrap();
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs.as_array().unwrap().len(), 3);
        assert_eq!(cs[0]["name"], "sidecar");
        assert_eq!(cs[1]["image"], "nginx:2");
        assert_eq!(cs[1]["args"], json!(["c"]), "atomic lists are replaced");
        assert_eq!(cs[1]["resources"]["limits"]["cpu"], "1", "unapplied fields stay");
        assert_eq!(cs[2]["name"], "new");
        // Sets merge by value; atomic maps are replaced.
        let out = merge(
            &BuiltinSchema,
            Some(&json!({"metadata": {"finalizers": ["a"]}, "spec": {"selector": {"matchLabels": {"x": "1"}}}})),
            &json!({"metadata": {"finalizers": ["b", "a"]}, "spec": {"selector": {"matchLabels": {"y": "2"}}}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"y": "2"}}));
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let old = deployment("nginx:1");
        let mut new = deployment("nginx:2");
        new["metadata"]["labels"]["tier"] = json!("front");
        new["spec"].as_object_mut().unwrap().remove("replicas");
        new["metadata"]["annotations"] = json!({"a": "b"});
        let c = compare(&BuiltinSchema, &old, &new);
        assert_eq!(
            paths(&c.added),
            vec![
                ".metadata.annotations",
                ".metadata.annotations.a",
                ".metadata.labels.tier"
            ]
        );
        assert_eq!(
            paths(&c.modified),
            vec![".spec.template.spec.containers[name=\"nginx\"].image"]
        );
        assert_eq!(paths(&c.removed), vec![".spec.replicas"]);
        assert!(compare(&BuiltinSchema, &old, &old).is_same());
    }

    #[test]
    fn removal_of_paths() {
        let mut obj = deployment("nginx:1");
        obj["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "b", "image": "b"}));
        let mut set = FieldSet::new();
        set.insert(&[
            fieldset::field("metadata"),
            fieldset::field("labels"),
            fieldset::field("app"),
        ]);
        set.insert(&[fieldset::field("spec"), fieldset::field("replicas")]);
        let containers = [
            fieldset::field("spec"),
            fieldset::field("template"),
            fieldset::field("spec"),
            fieldset::field("containers"),
        ];
        let mut b = containers.to_vec();
        b.push(r#"k:{"name":"b"}"#.into());
        set.insert(&b);
        let mut img = containers.to_vec();
        img.push(r#"k:{"name":"nginx"}"#.into());
        img.push(fieldset::field("image"));
        set.insert(&img);
        remove(&BuiltinSchema, &mut obj, &set);
        assert!(obj["metadata"].get("labels").is_none(), "emptied maps go");
        assert!(obj["spec"].get("replicas").is_none());
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"],
            json!([{"name": "nginx", "ports": [{"containerPort": 80}]}])
        );
    }
}
