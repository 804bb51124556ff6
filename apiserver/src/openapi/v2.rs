//! The Swagger 2.0 document (`/openapi/v2`): every served row's paths and the definitions they
//! reach.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::paths::resource_paths;
use super::schema::{self, DELETE_OPTIONS, Definitions, PATCH, STATUS, V2_REF_PREFIX};
use crate::descriptor::ResourceDescriptor;

/// The definitions of the built-ins plus those of rows that carry a schema.
pub fn definitions(rows: &[Arc<ResourceDescriptor>]) -> Definitions {
    let mut defs = schema::builtin().clone();
    for row in rows {
        if let Some(s) = &row.openapi_schema {
            schema::add_custom(&mut defs, row, s);
        }
    }
    defs
}

/// Adds every definition name `value` refers to (directly) to `out`.
fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(o) => {
            if let Some(target) = o
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(V2_REF_PREFIX))
            {
                out.push(target.to_string());
            }
            o.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Which definitions each definition refers to directly.
#[derive(Debug, Default)]
pub struct RefGraph {
    edges: HashMap<String, Vec<String>>,
}

impl RefGraph {
    /// The graph of `defs`.
    pub fn new(defs: &Map<String, Value>) -> Self {
        let edges = defs
            .iter()
            .map(|(name, def)| {
                let mut refs = Vec::new();
                collect_refs(def, &mut refs);
                refs.sort();
                refs.dedup();
                (name.clone(), refs)
            })
            .collect();
        RefGraph { edges }
    }

    /// The definitions reachable from `roots` and from the refs in `values`, in name order.
    pub fn closure<'a>(
        &self,
        roots: impl IntoIterator<Item = String>,
        values: impl IntoIterator<Item = &'a Value>,
    ) -> BTreeSet<String> {
        let mut queue: VecDeque<String> = roots.into_iter().collect();
        let mut refs = Vec::new();
        values.into_iter().for_each(|v| collect_refs(v, &mut refs));
        queue.extend(refs);
        let mut seen = BTreeSet::new();
        while let Some(name) = queue.pop_front() {
            if seen.contains(&name) {
                continue;
            }
            if let Some(next) = self.edges.get(&name) {
                queue.extend(next.iter().filter(|n| !seen.contains(*n)).cloned());
                seen.insert(name);
            }
        }
        seen
    }
}

/// The paths of the rows (sorted by path), each with the group/version it belongs to.
pub fn all_paths(rows: &[Arc<ResourceDescriptor>], defs: &Definitions) -> Vec<(String, String, Value)> {
    let mut out: Vec<(String, String, Value)> = rows
        .iter()
        .flat_map(|row| {
            let gv = if row.group.is_empty() {
                format!("api/{}", row.version)
            } else {
                format!("apis/{}/{}", row.group, row.version)
            };
            resource_paths(row, defs)
                .into_iter()
                .map(move |(p, item)| (gv.clone(), p, item))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// The kinds (and list kinds) of the rows, as definition names.
pub fn row_kinds<'a>(
    rows: impl IntoIterator<Item = &'a Arc<ResourceDescriptor>>,
    defs: &Definitions,
) -> Vec<String> {
    let mut out = Vec::new();
    for row in rows {
        for kind in [&row.kind, &row.list_kind] {
            if let Some(name) = defs.name_of(&row.group, &row.version, kind) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The whole Swagger 2.0 document.
pub fn document(
    rows: &[Arc<ResourceDescriptor>],
    defs: &Definitions,
    graph: &RefGraph,
    paths: &[(String, String, Value)],
) -> Value {
    let mut roots = row_kinds(rows, defs);
    roots.extend([STATUS, DELETE_OPTIONS, PATCH].map(String::from));
    let mut path_map = Map::new();
    for (_, p, item) in paths {
        path_map.insert(p.clone(), item.clone());
    }
    let definitions: Map<String, Value> = graph
        .closure(roots, path_map.values())
        .into_iter()
        .filter_map(|n| defs.defs.get(&n).map(|d| (n, d.clone())))
        .collect();
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::version()["gitVersion"].clone()},
        "paths": path_map,
        "definitions": definitions,
    })
}
