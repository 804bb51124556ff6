//! The Kubernetes protobuf content type (`application/vnd.kubernetes.protobuf`) for every built-in
//! kind: the `k8s\0` + `runtime.Unknown` envelope, the watch stream framing, and one
//! descriptor-driven converter between the JSON form the registry works with and the protobuf
//! messages of `k8s.io/api`, apimachinery, apiextensions and apiregistration.

mod convert;
mod schema;

use prost::Message;
use serde_json::Value;

pub use convert::{ConvertError, json_to_message, message_to_json};
pub use schema::schema;

/// The protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The media type of a protobuf watch stream.
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";
/// The prefix of every enveloped protobuf object.
pub const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be decoded or an object encoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with the `k8s\0` prefix.
    #[error("provided object is not a Kubernetes protobuf object: the \"k8s\\x00\" prefix is missing")]
    NoMagic,
    /// The `runtime.Unknown` envelope is malformed.
    #[error("malformed protobuf envelope: {0}")]
    Envelope(prost::DecodeError),
    /// The envelope names no kind.
    #[error("Object 'Kind' is missing in protobuf envelope")]
    MissingKind,
    /// The envelope's payload is compressed or otherwise encoded.
    #[error("unsupported protobuf content encoding {0:?}")]
    ContentEncoding(String),
    /// No protobuf message is known for the kind.
    #[error("no protobuf schema for kind {kind:?} in version {api_version:?}")]
    UnknownKind {
        /// The object's apiVersion.
        api_version: String,
        /// The object's kind.
        kind: String,
    },
    /// The payload is not a valid message of its kind.
    #[error("malformed protobuf {kind}: {error}")]
    Message {
        /// The object's kind.
        kind: String,
        /// The decoding error.
        error: prost::DecodeError,
    },
    /// A value does not fit its field.
    #[error("{kind} {error}")]
    Convert {
        /// The object's kind.
        kind: String,
        /// The conversion error.
        error: ConvertError,
    },
}

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    content_encoding: Option<String>,
    #[prost(string, optional, tag = "4")]
    content_type: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct RawExtension {
    #[prost(bytes = "vec", optional, tag = "1")]
    raw: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct WatchEvent {
    #[prost(string, optional, tag = "1")]
    r#type: Option<String>,
    #[prost(message, optional, tag = "2")]
    object: Option<RawExtension>,
}

/// Decodes an enveloped protobuf object into its JSON form, with `apiVersion` and `kind` set from
/// the envelope (the value the JSON decoder would have produced).
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let payload = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let unknown = Unknown::decode(payload).map_err(ProtobufError::Envelope)?;
    if let Some(enc) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ProtobufError::ContentEncoding(enc));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    if kind.is_empty() {
        return Err(ProtobufError::MissingKind);
    }
    let desc = schema()
        .message_for(&api_version, &kind)
        .ok_or_else(|| ProtobufError::UnknownKind {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    let raw = unknown.raw.unwrap_or_default();
    let msg = prost_reflect::DynamicMessage::decode(desc, raw.as_slice()).map_err(|error| {
        ProtobufError::Message {
            kind: kind.clone(),
            error,
        }
    })?;
    let mut value = message_to_json(&msg).map_err(|error| ProtobufError::Convert {
        kind: kind.clone(),
        error,
    })?;
    if let Value::Object(obj) = &mut value {
        obj.insert("apiVersion".into(), Value::String(api_version));
        obj.insert("kind".into(), Value::String(kind));
    }
    Ok(value)
}

/// Whether a JSON object's kind has a protobuf message.
pub fn supports(value: &Value) -> bool {
    let (api_version, kind) = type_of(value);
    schema().message_for(api_version, kind).is_some()
}

fn type_of(value: &Value) -> (&str, &str) {
    (
        value.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
        value.get("kind").and_then(Value::as_str).unwrap_or(""),
    )
}

/// Encodes a JSON object (with `apiVersion` and `kind`) as an enveloped protobuf object.
pub fn encode(value: &Value) -> Result<Vec<u8>, ProtobufError> {
    let (api_version, kind) = type_of(value);
    if kind.is_empty() {
        return Err(ProtobufError::MissingKind);
    }
    let desc = schema()
        .message_for(api_version, kind)
        .ok_or_else(|| ProtobufError::UnknownKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })?;
    let msg = json_to_message(&desc, value).map_err(|error| ProtobufError::Convert {
        kind: kind.to_string(),
        error,
    })?;
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(msg.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = Vec::with_capacity(MAGIC.len() + unknown.encoded_len());
    out.extend_from_slice(MAGIC);
    unknown.encode(&mut out).expect("a Vec grows to fit the message");
    Ok(out)
}

/// One frame of a protobuf watch stream: a 4-byte big-endian length, then a `meta/v1.WatchEvent`
/// whose `object` holds the enveloped object.
pub fn encode_watch_event(event_type: &str, object: &Value) -> Result<Vec<u8>, ProtobufError> {
    let event = WatchEvent {
        r#type: Some(event_type.to_string()),
        object: Some(RawExtension {
            raw: Some(encode(object)?),
        }),
    };
    let len = u32::try_from(event.encoded_len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + len as usize);
    out.extend_from_slice(&len.to_be_bytes());
    event.encode(&mut out).expect("a Vec grows to fit the message");
    Ok(out)
}

/// Splits the first frame off a protobuf watch stream: the event type, the object's JSON form and
/// the bytes consumed; `None` until a whole frame is buffered.
pub fn decode_watch_frame(buf: &[u8]) -> Option<Result<(String, Value, usize), ProtobufError>> {
    let len = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let frame = buf.get(4..4 + len)?;
    Some((|| {
        let event = WatchEvent::decode(frame).map_err(ProtobufError::Envelope)?;
        let raw = event.object.and_then(|o| o.raw).unwrap_or_default();
        Ok((event.r#type.unwrap_or_default(), decode(&raw)?, 4 + len))
    })())
}

#[cfg(test)]
mod tests;
