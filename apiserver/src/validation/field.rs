//! Field paths, value accessors and the error collector every validator writes to; the messages
//! follow upstream's `field.Error` rendering (`Required value`, `Invalid value: <v>: <detail>`,
//! `Unsupported value: <v>: supported values: ...`, `Duplicate value`, `Not found`, `Too long`).

use serde_json::{Map, Value};

use crate::error::FieldError;

/// Appends `.child` to a path (or starts one).
pub fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Appends `[i]` to a path.
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Appends `[key]` to a path.
pub fn key(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

/// A string field (absent or not a string: `None`).
pub fn str_of<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

/// A string field, empty when absent.
pub fn string<'a>(v: &'a Value, field: &str) -> &'a str {
    str_of(v, field).unwrap_or("")
}

/// An integer field.
pub fn int(v: &Value, field: &str) -> Option<i64> {
    v.get(field).and_then(Value::as_i64)
}

/// An array field, empty when absent.
pub fn list<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v.get(field).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// An object field.
pub fn object<'a>(v: &'a Value, field: &str) -> Option<&'a Map<String, Value>> {
    v.get(field).and_then(Value::as_object)
}

/// A field that is set (present and not null).
pub fn present<'a>(v: &'a Value, field: &str) -> Option<&'a Value> {
    v.get(field).filter(|x| !x.is_null())
}

/// True when the field is absent or null.
pub fn absent(v: &Value, field: &str) -> bool {
    v.get(field).is_none_or(Value::is_null)
}

/// The collected field errors of one validation.
#[derive(Debug, Default)]
pub struct Errs(pub Vec<FieldError>);

impl Errs {
    fn push(&mut self, reason: &'static str, field: impl Into<String>, message: String) {
        self.0.push(FieldError {
            reason,
            field: field.into(),
            message,
        });
    }

    /// `Required value[: detail]`.
    pub fn required(&mut self, field: impl Into<String>, detail: &str) {
        self.0.push(FieldError::required(field, detail));
    }

    /// `Invalid value: <value>: detail`.
    pub fn invalid(&mut self, field: impl Into<String>, value: &Value, detail: &str) {
        self.0.push(FieldError::invalid(field, value, detail));
    }

    /// `Invalid value` of a string value.
    pub fn invalid_str(&mut self, field: impl Into<String>, value: &str, detail: &str) {
        self.invalid(field, &Value::from(value), detail);
    }

    /// One `Invalid value` per message.
    pub fn invalid_each(&mut self, field: &str, value: &str, messages: Vec<String>) {
        for m in messages {
            self.invalid_str(field, value, &m);
        }
    }

    /// `Forbidden: detail`.
    pub fn forbidden(&mut self, field: impl Into<String>, detail: &str) {
        self.0.push(FieldError::forbidden(field, detail));
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(&mut self, field: impl Into<String>, value: &Value, supported: &[&str]) {
        let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let mut message = format!("Unsupported value: {value}");
        if !quoted.is_empty() {
            message.push_str(": supported values: ");
            message.push_str(&quoted.join(", "));
        }
        self.push("FieldValueNotSupported", field, message);
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(&mut self, field: impl Into<String>, value: &Value) {
        self.push("FieldValueDuplicate", field, format!("Duplicate value: {value}"));
    }

    /// `Not found: <value>`.
    pub fn not_found(&mut self, field: impl Into<String>, value: &Value) {
        self.push("FieldValueNotFound", field, format!("Not found: {value}"));
    }

    /// `Too long: may not be more than <max> bytes`.
    pub fn too_long(&mut self, field: impl Into<String>, max: usize) {
        self.push(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {max} bytes"),
        );
    }

    /// `Too many: <n>: must have at most <max> items`.
    pub fn too_many(&mut self, field: impl Into<String>, n: usize, max: usize) {
        self.push(
            "FieldValueTooMany",
            field,
            format!("Too many: {n}: must have at most {max} items"),
        );
    }

    /// `Invalid value: <v>: must be greater than or equal to 0` when the field is negative.
    pub fn nonnegative(&mut self, parent: &Value, path: &str, field: &str) {
        if let Some(n) = int(parent, field)
            && n < 0
        {
            self.invalid(child(path, field), &Value::from(n), NEGATIVE);
        }
    }

    /// `field is immutable` when the values differ (absent and null are the same).
    pub fn immutable(&mut self, field: impl Into<String>, new: Option<&Value>, old: Option<&Value>) {
        let norm = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
        let (new, old) = (norm(new), norm(old));
        if new != old {
            self.invalid(field, &new.unwrap_or(Value::Null), IMMUTABLE);
        }
    }
}

/// Upstream's message for negative values.
pub const NEGATIVE: &str = "must be greater than or equal to 0";

/// Upstream's message for changed immutable fields.
pub const IMMUTABLE: &str = "field is immutable";
