//! `additionalPrinterColumns` of a CRD version: Table column definitions and cells, with the
//! simple JSONPath forms CRDs use (`.spec.replicas`, `.items[0].x`, `.conditions[?(@.type=="Ready")].status`).

use jiff::Timestamp;
use serde_json::{Value, json};

/// One printer column.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Header.
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub ty: String,
    /// OpenAPI format (`name` for the first column).
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 shows always, more only with `-o wide`.
    pub priority: i64,
    /// The JSON path of the value.
    pub json_path: String,
}

/// The columns of a version: its `additionalPrinterColumns`, or Age when it has none.
pub fn columns(spec: Option<&Value>) -> Vec<Column> {
    let given: Vec<Column> = spec
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| Column {
                    name: c["name"].as_str().unwrap_or("").to_string(),
                    ty: c["type"].as_str().unwrap_or("string").to_string(),
                    format: c["format"].as_str().unwrap_or("").to_string(),
                    description: c["description"].as_str().unwrap_or("").to_string(),
                    priority: c["priority"].as_i64().unwrap_or(0),
                    json_path: c["jsonPath"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if !given.is_empty() {
        return given;
    }
    vec![Column {
        name: "Age".into(),
        ty: "date".into(),
        format: String::new(),
        description:
            "CreationTimestamp is a timestamp representing the server time when this object was created."
                .into(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
    }]
}

/// The Table column definitions: Name, then the columns.
pub fn definitions(cols: &[Column]) -> Vec<Value> {
    let mut defs = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace.",
    })];
    defs.extend(cols.iter().map(|c| {
        json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority})
    }));
    defs
}

/// The cells of one object.
pub fn cells(cols: &[Column], obj: &Value) -> Vec<Value> {
    let mut out = vec![obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
    out.extend(cols.iter().map(|c| {
        let v = lookup(obj, &c.json_path);
        match (c.ty.as_str(), v) {
            (_, None) => Value::Null,
            ("date", Some(Value::String(s))) => match s.parse::<Timestamp>() {
                Ok(t) => {
                    let secs = Timestamp::now().duration_since(t).as_secs();
                    Value::String(crate::table::human_duration(secs))
                }
                Err(_) => Value::String(s),
            },
            ("string", Some(Value::String(s))) => Value::String(s),
            ("string", Some(other)) => Value::String(other.to_string()),
            (_, Some(v)) => v,
        }
    }));
    out
}

/// Evaluates a simple JSON path (`.a.b`, `.a[0]`, `.a[?(@.k=="v")].b`).
pub fn lookup(obj: &Value, path: &str) -> Option<Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj.clone();
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = r[end + 1..].trim_start_matches('.');
            let items = cur.as_array()?;
            cur = if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (key, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                items
                    .iter()
                    .find(|i| lookup(i, key.trim()).is_some_and(|v| v.as_str() == Some(want) || v == want))?
                    .clone()
            } else {
                items.get(inner.parse::<usize>().ok()?)?.clone()
            };
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let key = &rest[..end];
        cur = cur.get(key)?.clone();
        rest = rest[end..].trim_start_matches('.');
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let obj = json!({"spec": {"replicas": 3, "list": [{"n": 1}, {"n": 2}]},
            "status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(lookup(&obj, ".spec.replicas"), Some(json!(3)));
        assert_eq!(lookup(&obj, ".spec.list[1].n"), Some(json!(2)));
        assert_eq!(
            lookup(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(lookup(&obj, ".spec.missing"), None);
    }

    #[test]
    fn cells_follow_columns() {
        let cols = columns(Some(&json!([
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1},
        ])));
        let obj = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2}});
        assert_eq!(cells(&cols, &obj), [json!("a"), json!(2), Value::Null]);
        assert_eq!(definitions(&cols)[2]["priority"], 1);
        let age = columns(None);
        assert_eq!(age[0].name, "Age");
        let created = json!({"metadata": {"name": "b", "creationTimestamp": "2020-01-01T00:00:00Z"}});
        assert!(
            cells(&age, &created)[1].as_str().unwrap().ends_with('y')
                || cells(&age, &created)[1].as_str().unwrap().ends_with('d')
        );
    }
}
