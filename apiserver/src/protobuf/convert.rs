//! Converts between the JSON form of a Kubernetes object (`serde_json::Value`) and its protobuf
//! message (`DynamicMessage`), driven by the descriptor set and the field facts of [`schema`].

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost_reflect::{DynamicMessage, Kind, MapKey, MessageDescriptor, ReflectMessage, Value as PValue};
use serde_json::{Map, Number, Value};

use super::schema::{FieldJson, Special, schema};
use api_util::duration;

/// A value that does not fit its field, with the JSON path to it.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {detail}")]
pub struct ConvertError {
    /// Dotted JSON path (`spec.replicas`).
    pub path: String,
    /// What is wrong.
    pub detail: String,
}

impl ConvertError {
    fn new(detail: impl Into<String>) -> ConvertError {
        ConvertError {
            path: String::new(),
            detail: detail.into(),
        }
    }

    fn within(mut self, key: &str) -> ConvertError {
        self.path = if self.path.is_empty() {
            key.to_string()
        } else if self.path.starts_with('[') {
            format!("{key}{}", self.path)
        } else {
            format!("{key}.{}", self.path)
        };
        self
    }
}

type Result<T> = std::result::Result<T, ConvertError>;

// ---------------------------------------------------------------- protobuf → JSON

/// The JSON form of a message; `Null` for a value Go would encode as `null` (a zero `Time`, an
/// empty `RawExtension`).
pub fn message_to_json(msg: &DynamicMessage) -> Result<Value> {
    let desc = msg.descriptor();
    if let Some(special) = schema().special(&desc) {
        return special_to_json(special, msg);
    }
    let mut out = Map::new();
    fields_into(msg, &mut out)?;
    Ok(Value::Object(out))
}

fn fields_into(msg: &DynamicMessage, out: &mut Map<String, Value>) -> Result<()> {
    let layout = schema().layout(&msg.descriptor());
    for (field, value) in msg.fields() {
        let Some(f) = layout.field(field.number()) else {
            continue;
        };
        if f.inline {
            if let PValue::Message(inner) = value {
                fields_into(inner, out)?;
            }
            continue;
        }
        if let Some(json) = field_to_json(f, value).map_err(|e| e.within(&f.json))? {
            out.insert(f.json.clone(), json);
        }
    }
    Ok(())
}

fn field_to_json(f: &FieldJson, value: &PValue) -> Result<Option<Value>> {
    match value {
        PValue::List(items) => {
            if items.is_empty() {
                return Ok(None);
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(single_to_json(item).map_err(|e| e.within(&format!("[{i}]")))?);
            }
            Ok(Some(Value::Array(out)))
        }
        PValue::Map(entries) => {
            if entries.is_empty() {
                return Ok(None);
            }
            let mut out = Map::new();
            for (key, item) in entries {
                let key = match key {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                };
                let json = single_to_json(item).map_err(|e| e.within(&key))?;
                out.insert(key, json);
            }
            Ok(Some(Value::Object(out)))
        }
        PValue::Message(m) => Ok(Some(message_to_json(m)?).filter(|v| !v.is_null())),
        scalar => {
            if !f.keep_zero && is_zero(scalar) {
                return Ok(None);
            }
            Ok(Some(single_to_json(scalar)?))
        }
    }
}

fn is_zero(v: &PValue) -> bool {
    match v {
        PValue::Bool(b) => !b,
        PValue::I32(n) => *n == 0,
        PValue::I64(n) => *n == 0,
        PValue::U32(n) => *n == 0,
        PValue::U64(n) => *n == 0,
        PValue::F32(n) => *n == 0.0,
        PValue::F64(n) => *n == 0.0,
        PValue::String(s) => s.is_empty(),
        PValue::Bytes(b) => b.is_empty(),
        PValue::EnumNumber(n) => *n == 0,
        _ => false,
    }
}

fn single_to_json(v: &PValue) -> Result<Value> {
    Ok(match v {
        PValue::Bool(b) => Value::Bool(*b),
        PValue::I32(n) => Value::from(*n),
        PValue::I64(n) => Value::from(*n),
        PValue::U32(n) => Value::from(*n),
        PValue::U64(n) => Value::from(*n),
        PValue::F32(n) => float(f64::from(*n))?,
        PValue::F64(n) => float(*n)?,
        PValue::String(s) => Value::String(s.clone()),
        PValue::Bytes(b) => Value::String(BASE64.encode(b)),
        PValue::EnumNumber(n) => Value::from(*n),
        PValue::Message(m) => message_to_json(m)?,
        PValue::List(_) | PValue::Map(_) => return Err(ConvertError::new("nested collection")),
    })
}

fn float(n: f64) -> Result<Value> {
    Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| ConvertError::new(format!("{n} is not a JSON number")))
}

fn field<'a>(msg: &'a DynamicMessage, number: u32) -> Option<std::borrow::Cow<'a, PValue>> {
    let fd = msg.descriptor().get_field(number)?;
    msg.has_field(&fd).then(|| msg.get_field(&fd))
}

fn field_i64(msg: &DynamicMessage, number: u32) -> i64 {
    match field(msg, number).as_deref() {
        Some(PValue::I64(n)) => *n,
        Some(PValue::I32(n)) => i64::from(*n),
        _ => 0,
    }
}

fn field_bytes(msg: &DynamicMessage, number: u32) -> Vec<u8> {
    match field(msg, number).as_deref() {
        Some(PValue::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    }
}

fn special_to_json(special: Special, msg: &DynamicMessage) -> Result<Value> {
    Ok(match special {
        Special::IntOrString => {
            if field_i64(msg, 1) == 1 {
                match field(msg, 3).as_deref() {
                    Some(PValue::String(s)) => Value::String(s.clone()),
                    _ => Value::String(String::new()),
                }
            } else {
                Value::from(field_i64(msg, 2))
            }
        }
        Special::Quantity => match field(msg, 1).as_deref() {
            Some(PValue::String(s)) if !s.is_empty() => Value::String(s.clone()),
            _ => Value::String("0".into()),
        },
        Special::Time | Special::MicroTime => {
            if field(msg, 1).is_none() && field(msg, 2).is_none() {
                return Ok(Value::Null);
            }
            let nanos = i32::try_from(field_i64(msg, 2)).unwrap_or(0);
            Value::String(format_time(
                field_i64(msg, 1),
                nanos,
                special == Special::MicroTime,
            )?)
        }
        Special::Duration => Value::String(duration::format(field_i64(msg, 1))),
        Special::RawJson => {
            let raw = field_bytes(msg, 1);
            if raw.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(&raw)
                .map_err(|e| ConvertError::new(format!("embedded bytes are not JSON: {e}")))?
        }
        Special::StringArray => match field(msg, 1).as_deref() {
            Some(PValue::List(items)) => {
                Value::Array(items.iter().map(single_to_json).collect::<Result<Vec<_>>>()?)
            }
            _ => Value::Array(Vec::new()),
        },
        Special::SchemaOrArray | Special::SchemaOrBool | Special::SchemaOrStringArray => {
            let schema_number = if special == Special::SchemaOrBool { 2 } else { 1 };
            if let Some(PValue::Message(m)) = field(msg, schema_number).as_deref() {
                return message_to_json(m);
            }
            match special {
                Special::SchemaOrBool => {
                    Value::Bool(matches!(field(msg, 1).as_deref(), Some(PValue::Bool(true))))
                }
                _ => match field(msg, 2).as_deref() {
                    Some(PValue::List(items)) => {
                        Value::Array(items.iter().map(single_to_json).collect::<Result<Vec<_>>>()?)
                    }
                    _ => Value::Array(Vec::new()),
                },
            }
        }
    })
}

fn format_time(seconds: i64, nanos: i32, micro: bool) -> Result<String> {
    let ts = jiff::Timestamp::from_second(seconds)
        .map_err(|e| ConvertError::new(format!("time out of range: {e}")))?;
    let text = ts.to_string();
    if !micro {
        return Ok(text);
    }
    let base = text.strip_suffix('Z').unwrap_or(&text);
    Ok(format!("{base}.{:06}Z", nanos.max(0) / 1000))
}

// ---------------------------------------------------------------- JSON → protobuf

/// The message of type `desc` for a JSON value. JSON keys with no field (`kind`, `apiVersion`, and
/// fields newer than the schema) are skipped, as upstream's decoder drops unknown fields.
pub fn json_to_message(desc: &MessageDescriptor, value: &Value) -> Result<DynamicMessage> {
    let mut msg = DynamicMessage::new(desc.clone());
    if let Some(special) = schema().special(desc) {
        special_from_json(special, &mut msg, value)?;
        return Ok(msg);
    }
    let Value::Object(obj) = value else {
        return Err(ConvertError::new(format!(
            "expected an object, got {}",
            kind_of(value)
        )));
    };
    let layout = schema().layout(desc);
    for (key, item) in obj {
        if item.is_null() {
            continue;
        }
        let Some(path) = layout.by_json.get(key) else {
            continue;
        };
        set_path(&mut msg, path, item).map_err(|e| e.within(key))?;
    }
    Ok(msg)
}

fn set_path(msg: &mut DynamicMessage, path: &[prost_reflect::FieldDescriptor], value: &Value) -> Result<()> {
    let Some((fd, rest)) = path.split_first() else {
        return Err(ConvertError::new("empty field path"));
    };
    if !rest.is_empty() {
        return match msg.get_field_mut(fd) {
            PValue::Message(inner) => set_path(inner, rest, value),
            _ => Err(ConvertError::new("inline field is not a message")),
        };
    }
    let v = field_from_json(fd, value)?;
    msg.set_field(fd, v);
    Ok(())
}

fn field_from_json(fd: &prost_reflect::FieldDescriptor, value: &Value) -> Result<PValue> {
    if fd.is_map() {
        let Kind::Message(entry) = fd.kind() else {
            return Err(ConvertError::new("map without entry message"));
        };
        let value_kind = entry.map_entry_value_field().kind();
        let Value::Object(obj) = value else {
            return Err(ConvertError::new(format!(
                "expected an object, got {}",
                kind_of(value)
            )));
        };
        let mut map = HashMap::with_capacity(obj.len());
        for (k, v) in obj {
            if v.is_null() {
                continue;
            }
            let item = single_from_json(&value_kind, v).map_err(|e| e.within(k))?;
            map.insert(MapKey::String(k.clone()), item);
        }
        return Ok(PValue::Map(map));
    }
    if fd.is_list() {
        let Value::Array(items) = value else {
            return Err(ConvertError::new(format!(
                "expected an array, got {}",
                kind_of(value)
            )));
        };
        let kind = fd.kind();
        let list = items
            .iter()
            .enumerate()
            .map(|(i, v)| single_from_json(&kind, v).map_err(|e| e.within(&format!("[{i}]"))))
            .collect::<Result<Vec<_>>>()?;
        return Ok(PValue::List(list));
    }
    single_from_json(&fd.kind(), value)
}

fn single_from_json(kind: &Kind, value: &Value) -> Result<PValue> {
    let wrong = || ConvertError::new(format!("{} is not a valid {kind:?}", kind_of(value)));
    Ok(match kind {
        Kind::Message(desc) => PValue::Message(json_to_message(desc, value)?),
        Kind::String => PValue::String(value.as_str().ok_or_else(wrong)?.to_string()),
        Kind::Bool => PValue::Bool(value.as_bool().ok_or_else(wrong)?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => PValue::I32(
            integer(value)
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(wrong)?,
        ),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => PValue::I64(integer(value).ok_or_else(wrong)?),
        Kind::Uint32 | Kind::Fixed32 => PValue::U32(
            integer(value)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(wrong)?,
        ),
        Kind::Uint64 | Kind::Fixed64 => PValue::U64(value.as_u64().ok_or_else(wrong)?),
        Kind::Double => PValue::F64(value.as_f64().ok_or_else(wrong)?),
        Kind::Float => PValue::F32(value.as_f64().ok_or_else(wrong)? as f32),
        Kind::Bytes => {
            let text = value.as_str().ok_or_else(wrong)?;
            PValue::Bytes(
                BASE64
                    .decode(text)
                    .map_err(|e| ConvertError::new(format!("illegal base64 data: {e}")))?
                    .into(),
            )
        }
        Kind::Enum(_) => PValue::EnumNumber(
            integer(value)
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(wrong)?,
        ),
    })
}

fn integer(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        let f = value.as_f64()?;
        (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn set_number(msg: &mut DynamicMessage, number: u32, value: PValue) -> Result<()> {
    let fd = msg
        .descriptor()
        .get_field(number)
        .ok_or_else(|| ConvertError::new(format!("no field {number}")))?;
    msg.set_field(&fd, value);
    Ok(())
}

fn special_from_json(special: Special, msg: &mut DynamicMessage, value: &Value) -> Result<()> {
    let wrong = |want: &str| ConvertError::new(format!("expected {want}, got {}", kind_of(value)));
    match special {
        Special::IntOrString => match value {
            Value::String(s) => {
                set_number(msg, 1, PValue::I64(1))?;
                set_number(msg, 3, PValue::String(s.clone()))
            }
            Value::Number(_) => {
                let n = integer(value)
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| wrong("a 32-bit integer"))?;
                set_number(msg, 1, PValue::I64(0))?;
                set_number(msg, 2, PValue::I32(n))
            }
            _ => Err(wrong("a number or a string")),
        },
        Special::Quantity => match value {
            Value::String(s) => set_number(msg, 1, PValue::String(s.clone())),
            Value::Number(n) => set_number(msg, 1, PValue::String(n.to_string())),
            _ => Err(wrong("a quantity string")),
        },
        Special::Time | Special::MicroTime => {
            let text = value.as_str().ok_or_else(|| wrong("an RFC 3339 time"))?;
            let ts: jiff::Timestamp = text
                .parse()
                .map_err(|e| ConvertError::new(format!("invalid time {text:?}: {e}")))?;
            set_number(msg, 1, PValue::I64(ts.as_second()))?;
            set_number(msg, 2, PValue::I32(ts.subsec_nanosecond()))
        }
        Special::Duration => {
            let text = value.as_str().ok_or_else(|| wrong("a duration string"))?;
            let nanos =
                duration::parse(text).map_err(|_| ConvertError::new(format!("invalid duration {text:?}")))?;
            set_number(msg, 1, PValue::I64(nanos))
        }
        Special::RawJson => {
            let raw = serde_json::to_vec(value).map_err(|e| ConvertError::new(e.to_string()))?;
            set_number(msg, 1, PValue::Bytes(raw.into()))
        }
        Special::StringArray => {
            let Value::Array(items) = value else {
                return Err(wrong("an array of strings"));
            };
            let list = items
                .iter()
                .map(|v| single_from_json(&Kind::String, v))
                .collect::<Result<Vec<_>>>()?;
            set_number(msg, 1, PValue::List(list))
        }
        Special::SchemaOrArray | Special::SchemaOrBool | Special::SchemaOrStringArray => {
            let schema_number = if special == Special::SchemaOrBool { 2 } else { 1 };
            match (special, value) {
                (_, Value::Object(_)) => {
                    let fd = msg
                        .descriptor()
                        .get_field(schema_number)
                        .ok_or_else(|| ConvertError::new("no schema field"))?;
                    let v = field_from_json(&fd, value)?;
                    msg.set_field(&fd, v);
                    if special == Special::SchemaOrBool {
                        set_number(msg, 1, PValue::Bool(true))?;
                    }
                    Ok(())
                }
                (Special::SchemaOrBool, Value::Bool(b)) => set_number(msg, 1, PValue::Bool(*b)),
                (Special::SchemaOrArray | Special::SchemaOrStringArray, Value::Array(_)) => {
                    let fd = msg
                        .descriptor()
                        .get_field(2)
                        .ok_or_else(|| ConvertError::new("no array field"))?;
                    let v = field_from_json(&fd, value)?;
                    msg.set_field(&fd, v);
                    Ok(())
                }
                _ => Err(wrong("a schema")),
            }
        }
    }
}
