//! JSON as upstream's encoder (Go's `encoding/json` over the API types) writes it: a built-in
//! object's keys in its Go struct's field order, fields Go never omits present even when absent
//! from the value (a non-pointer struct is `{}`, a zero `metav1.Time` without `omitzero` is
//! `null`, a string without `omitempty` is `""`), empty `omitempty` fields dropped, and `<`, `>`,
//! `&`, U+2028 and U+2029 escaped in strings. Keys the facts do not know (custom resources, fields
//! newer than the facts) follow the known ones in the value's own order; objects of kinds without
//! facts are written as they are (upstream writes custom resources from maps: keys sorted).

use std::io;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Facts, TypeId, TypeRef, facts};

/// Appends `value` as upstream writes it: shaped by its `apiVersion`/`kind` when it has facts.
pub fn write(out: &mut Vec<u8>, value: &Value) {
    Writer { facts: facts(), out }.any(value);
}

/// Appends `value` shaped as the struct type `ty`.
pub fn write_as(out: &mut Vec<u8>, value: &Value, ty: TypeId) {
    Writer { facts: facts(), out }.value(value, &TypeRef::Struct(ty));
}

/// `value` as upstream writes it (see [`write`]), without a trailing newline.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, value);
    out
}

struct Writer<'a> {
    facts: &'static Facts,
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn plain(&mut self, value: &Value) {
        let mut ser = serde_json::Serializer::with_formatter(&mut *self.out, GoFormatter);
        // Writing JSON values into a Vec cannot fail.
        let _ = value.serialize(&mut ser);
    }

    fn key(&mut self, key: &str) {
        self.plain_str(key);
        self.out.push(b':');
    }

    fn plain_str(&mut self, s: &str) {
        let mut ser = serde_json::Serializer::with_formatter(&mut *self.out, GoFormatter);
        let _ = s.serialize(&mut ser);
    }

    /// A value whose shape comes from its own `apiVersion`/`kind`, if any.
    fn any(&mut self, value: &Value) {
        match (value, self.facts.of_object(value)) {
            (Value::Object(map), Some(id)) => self.object(map, id),
            _ => self.plain(value),
        }
    }

    fn value(&mut self, value: &Value, ty: &TypeRef) {
        match (ty, value) {
            (TypeRef::Struct(id), Value::Object(map)) => self.object(map, *id),
            (TypeRef::List(inner), Value::Array(items)) if !inner.is_plain() => {
                self.out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.value(item, inner);
                }
                self.out.push(b']');
            }
            (TypeRef::Map(inner), Value::Object(map)) if !inner.is_plain() => {
                self.out.push(b'{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.key(k);
                    self.value(v, inner);
                }
                self.out.push(b'}');
            }
            (TypeRef::Any | TypeRef::Opaque { .. }, Value::Object(_)) if !ty.is_plain() => self.any(value),
            _ => self.plain(value),
        }
    }

    fn object(&mut self, map: &Map<String, Value>, id: TypeId) {
        let st = self.facts.get(id);
        // Each present value in its field's slot (the largest built-in struct has 44 fields).
        let mut on_stack = [None; 64];
        let mut on_heap = Vec::new();
        let slots: &mut [Option<&Value>] = if st.fields.len() <= on_stack.len() {
            &mut on_stack[..st.fields.len()]
        } else {
            on_heap.resize(st.fields.len(), None);
            &mut on_heap
        };
        let mut unknown = 0usize;
        for (k, v) in map {
            match st.field_index(k) {
                Some(i) => slots[i] = Some(v),
                None => unknown += 1,
            }
        }
        self.out.push(b'{');
        let mut first = true;
        for (field, slot) in st.fields.iter().zip(slots.iter()) {
            match slot.filter(|v| !v.is_null()) {
                Some(v) => {
                    if omitted(field, v) {
                        continue;
                    }
                    if !first {
                        self.out.push(b',');
                    }
                    first = false;
                    self.out.extend_from_slice(&field.key_bytes);
                    self.value(v, &field.ty);
                }
                None => {
                    let Some(zero) = zero_of(field) else {
                        continue;
                    };
                    if !first {
                        self.out.push(b',');
                    }
                    first = false;
                    self.out.extend_from_slice(&field.key_bytes);
                    match zero {
                        Zero::Struct(id) => self.object(&Map::new(), id),
                        Zero::Json(v) => self.plain(v),
                        Zero::Raw(bytes) => self.out.extend_from_slice(bytes),
                    }
                }
            }
        }
        if unknown > 0 {
            for (k, v) in map {
                if st.field_index(k).is_none() {
                    if !first {
                        self.out.push(b',');
                    }
                    first = false;
                    self.key(k);
                    self.plain(v);
                }
            }
        }
        self.out.push(b'}');
    }
}

/// What Go writes for a field whose value is zero (absent or `null` here).
enum Zero<'a> {
    Struct(TypeId),
    Json(&'a Value),
    Raw(&'static [u8]),
}

fn zero_of(field: &super::Field) -> Option<Zero<'_>> {
    if field.omitzero {
        return None;
    }
    if field.pointer {
        return (!field.omitempty).then_some(Zero::Raw(b"null"));
    }
    match &field.ty {
        // Structs are never empty to encoding/json: `omitempty` does not drop them.
        TypeRef::Struct(id) => Some(Zero::Struct(*id)),
        TypeRef::Opaque { zero, .. } => Some(Zero::Json(zero)),
        _ if field.omitempty => None,
        TypeRef::String => Some(Zero::Raw(b"\"\"")),
        TypeRef::Integer | TypeRef::Number => Some(Zero::Raw(b"0")),
        TypeRef::Boolean => Some(Zero::Raw(b"false")),
        TypeRef::Bytes | TypeRef::Any | TypeRef::List(_) | TypeRef::Map(_) => Some(Zero::Raw(b"null")),
    }
}

/// True when Go drops this present value: an empty `omitempty` scalar, slice or map, or a zero
/// `omitzero` value.
fn omitted(field: &super::Field, v: &Value) -> bool {
    if field.pointer || !(field.omitempty || field.omitzero) {
        return false;
    }
    match (&field.ty, v) {
        (TypeRef::String | TypeRef::Bytes, Value::String(s)) => s.is_empty(),
        (TypeRef::Integer | TypeRef::Number, Value::Number(n)) => n.as_f64() == Some(0.0),
        (TypeRef::Boolean, Value::Bool(b)) => !b,
        (TypeRef::List(_), Value::Array(a)) => field.omitempty && a.is_empty(),
        (TypeRef::Map(_), Value::Object(m)) => field.omitempty && m.is_empty(),
        (TypeRef::Struct(_), Value::Object(m)) => field.omitzero && m.is_empty(),
        _ => false,
    }
}

/// serde_json's compact output with Go's HTML-safe string escapes.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let (escape, len): (&[u8], usize) = match bytes[i] {
                b'<' => (b"\\u003c", 1),
                b'>' => (b"\\u003e", 1),
                b'&' => (b"\\u0026", 1),
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => (b"\\u2028", 3),
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => (b"\\u2029", 3),
                _ => {
                    i += 1;
                    continue;
                }
            };
            w.write_all(&bytes[start..i])?;
            w.write_all(escape)?;
            i += len;
            start = i;
        }
        w.write_all(&bytes[start..])
    }
}
