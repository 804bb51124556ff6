//! `metadata.managedFields`: decoding and encoding of the entries, manager identity, and
//! upstream's cap on the number of `Update` entries.

use serde_json::{Map, Value, json};

use super::fieldset::FieldSet;

/// Upstream's cap on `Update` entries; the oldest beyond it merge into [`ANCIENT_CHANGES`].
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager the oldest `Update` entries merge into past the cap.
pub const ANCIENT_CHANGES: &str = "ancient-changes";

/// The manager that takes the fields of an object applied for the first time.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// The operation of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `manager`.
    pub manager: String,
    /// `operation`.
    pub operation: Operation,
    /// `apiVersion` the fields are expressed in.
    pub api_version: String,
    /// `time` (RFC 3339), when known.
    pub time: Option<String>,
    /// `subresource` ("" for the main resource).
    pub subresource: String,
    /// `fieldsV1`.
    pub fields: FieldSet,
}

impl Entry {
    /// True when both entries belong to the same manager: name, operation and subresource, and
    /// for `Update` entries the API version (upstream's manager identifier).
    pub fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// How upstream names the manager in conflict messages: `"mgr"`, plus
    /// `with subresource "status"` and, for updaters, `using apps/v1`.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "operation": self.operation.as_str(),
            "apiVersion": self.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        // `manager` is omitempty upstream (a request without fieldManager or User-Agent).
        if !self.manager.is_empty() {
            v["manager"] = Value::String(self.manager.clone());
        }
        if let Some(t) = &self.time {
            v["time"] = Value::String(t.clone());
        }
        if !self.subresource.is_empty() {
            v["subresource"] = Value::String(self.subresource.clone());
        }
        v
    }

    fn from_json(v: &Value) -> Result<Entry, String> {
        let obj = v.as_object().ok_or("a managedFields entry must be an object")?;
        let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let operation = match s("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            other => return Err(format!("unknown operation {other:?}")),
        };
        if s("fieldsType") != "FieldsV1" {
            return Err(format!("unknown fieldsType {:?}", s("fieldsType")));
        }
        let fields = FieldSet::from_fields_v1(obj.get("fieldsV1").unwrap_or(&Value::Object(Map::new())))
            .map_err(|e| e.to_string())?;
        Ok(Entry {
            manager: s("manager"),
            operation,
            api_version: s("apiVersion"),
            time: obj.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: s("subresource"),
            fields,
        })
    }
}

/// Decodes `metadata.managedFields` (absent is empty).
pub fn decode(v: Option<&Value>) -> Result<Vec<Entry>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Entry::from_json).collect(),
        Some(_) => Err("managedFields must be a list".into()),
    }
}

/// True for the bodies that ask to clear the managed fields: an empty list, or one entry with
/// nothing set (upstream's `isResetManagedFields`).
pub fn is_reset(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Array(items)) => match items.as_slice() {
            [] => true,
            [one] => one.as_object().is_some_and(|m| m.values().all(Value::is_null)),
            _ => false,
        },
        _ => false,
    }
}

/// Encodes entries in upstream's order: operation, time, manager, apiVersion, subresource.
pub fn encode(entries: &[Entry]) -> Value {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        (a.operation, &a.time, &a.manager, &a.api_version, &a.subresource).cmp(&(
            b.operation,
            &b.time,
            &b.manager,
            &b.api_version,
            &b.subresource,
        ))
    });
    Value::Array(sorted.into_iter().map(Entry::to_json).collect())
}

/// Merges the oldest `Update` entries into [`ANCIENT_CHANGES`] while there are more than
/// [`MAX_UPDATE_MANAGERS`].
pub fn cap_updaters(entries: &mut Vec<Entry>) {
    let updaters = entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .count();
    if updaters <= MAX_UPDATE_MANAGERS {
        return;
    }
    let excess = updaters - MAX_UPDATE_MANAGERS + 1;
    let mut order: Vec<usize> = (0..entries.len())
        .filter(|i| entries[*i].operation == Operation::Update)
        .collect();
    order.sort_by(|a, b| {
        (&entries[*a].time, &entries[*a].manager).cmp(&(&entries[*b].time, &entries[*b].manager))
    });
    let mut oldest: Vec<usize> = order.into_iter().take(excess).collect();
    oldest.sort_unstable_by(|a, b| b.cmp(a));
    let mut merged: Vec<Entry> = oldest.into_iter().map(|i| entries.remove(i)).collect();
    merged.sort_by(|a, b| a.time.cmp(&b.time));
    let Some(newest) = merged.last().cloned() else {
        return;
    };
    let mut bucket = Entry {
        manager: ANCIENT_CHANGES.into(),
        operation: Operation::Update,
        api_version: newest.api_version.clone(),
        time: newest.time,
        subresource: String::new(),
        fields: FieldSet::new(),
    };
    for e in &merged {
        bucket.fields.union_with(&e.fields);
    }
    match entries.iter_mut().find(|e| e.same_manager(&bucket)) {
        Some(existing) => {
            existing.fields.union_with(&bucket.fields);
            existing.time = bucket.time;
        }
        None => entries.push(bucket),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, op: Operation, time: &str) -> Entry {
        let mut fields = FieldSet::new();
        fields.insert(&[format!("f:{manager}")]);
        Entry {
            manager: manager.into(),
            operation: op,
            api_version: "v1".into(),
            time: Some(time.into()),
            subresource: String::new(),
            fields,
        }
    }

    #[test]
    fn entries_round_trip_in_upstream_order() {
        let mut status = entry("kubelet", Operation::Update, "2024-01-01T00:00:02Z");
        status.subresource = "status".into();
        let entries = vec![
            entry("kubectl-edit", Operation::Update, "2024-01-01T00:00:01Z"),
            status,
            entry("kubectl", Operation::Apply, "2024-01-01T00:00:09Z"),
        ];
        let v = encode(&entries);
        assert_eq!(v[0]["manager"], "kubectl");
        assert_eq!(v[1]["manager"], "kubectl-edit");
        assert_eq!(v[2]["subresource"], "status");
        assert_eq!(v[0]["fieldsV1"], json!({"f:kubectl": {}}));
        let back = decode(Some(&v)).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], entries[2]);
        assert!(decode(Some(&json!([{"operation": "Bogus", "fieldsType": "FieldsV1"}]))).is_err());
        assert!(is_reset(Some(&json!([]))));
        assert!(is_reset(Some(&json!([{}]))));
        assert!(!is_reset(None));
        assert!(!is_reset(Some(&v)));
    }

    #[test]
    fn identity_and_description() {
        let a = entry("m", Operation::Update, "t");
        let mut b = a.clone();
        b.api_version = "v2".into();
        assert!(!a.same_manager(&b), "updaters differ by apiVersion");
        let mut c = entry("m", Operation::Apply, "t");
        let mut d = c.clone();
        d.api_version = "v2".into();
        assert!(c.same_manager(&d), "appliers do not");
        assert_eq!(a.describe(), "\"m\" using v1");
        c.subresource = "status".into();
        assert_eq!(c.describe(), "\"m\" with subresource \"status\"");
    }

    #[test]
    fn update_entries_are_capped() {
        let mut entries: Vec<Entry> = (0..12)
            .map(|i| {
                entry(
                    &format!("m{i:02}"),
                    Operation::Update,
                    &format!("2024-01-01T00:00:{i:02}Z"),
                )
            })
            .collect();
        entries.push(entry("applier", Operation::Apply, "2024-01-01T00:00:00Z"));
        cap_updaters(&mut entries);
        let updaters: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.operation == Operation::Update)
            .collect();
        assert_eq!(updaters.len(), MAX_UPDATE_MANAGERS);
        let bucket = entries.iter().find(|e| e.manager == ANCIENT_CHANGES).unwrap();
        assert_eq!(bucket.fields.paths().len(), 3, "m00..m02 merged");
        assert!(!entries.iter().any(|e| e.manager == "m02"));
        assert!(entries.iter().any(|e| e.manager == "m03"));
    }
}
