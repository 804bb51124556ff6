//! Content negotiation and body codecs: request bodies in JSON, YAML or Kubernetes protobuf,
//! responses in JSON, YAML, protobuf, `meta.k8s.io` Tables or `PartialObjectMetadata`.

use serde_json::Value;

use crate::error::ApiError;
use crate::protobuf::{self, ProtobufError};

/// Largest request body accepted (upstream's 3 MiB limit for JSON/YAML bodies).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A media type with its parameters, e.g. `application/json;as=Table;v=v1;g=meta.k8s.io`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaType {
    /// `type/subtype`, lower case.
    pub essence: String,
    /// Parameters, keys lower case.
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// Parses one media type.
    pub fn parse(s: &str) -> MediaType {
        let mut parts = s.split(';');
        let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let params = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                ))
            })
            .collect();
        MediaType { essence, params }
    }

    /// Parses an `Accept` header (a comma-separated list, in preference order; q values ignored
    /// except `q=0`).
    pub fn parse_list(s: &str) -> Vec<MediaType> {
        s.split(',')
            .map(MediaType::parse)
            .filter(|m| !m.essence.is_empty() && m.param("q") != Some("0"))
            .collect()
    }

    /// A parameter's value.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn is_json_like(&self) -> bool {
        matches!(
            self.essence.as_str(),
            "application/json" | "*/*" | "application/*"
        )
    }

    /// The encoding this media type names, if one the server writes.
    fn encoding(&self) -> Option<Encoding> {
        match self.essence.as_str() {
            _ if self.is_json_like() => Some(Encoding::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" => Some(Encoding::Yaml),
            protobuf::MEDIA_TYPE => Some(Encoding::Protobuf),
            _ => None,
        }
    }
}

/// The shape of a resource response the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The object(s) as JSON.
    Json,
    /// The object(s) as YAML.
    Yaml,
    /// A `meta.k8s.io/v1` Table (`kubectl get`).
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList` (kube-rs and client-go metadata
    /// clients), in any of the encodings.
    Metadata(PartialMetadata),
    /// The object(s) as Kubernetes protobuf; `or_json` when the client also accepts JSON, which
    /// answers kinds without a protobuf message (custom resources).
    Protobuf {
        /// JSON is acceptable too.
        or_json: bool,
    },
}

/// The `meta.k8s.io` version a partial-metadata answer is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaVersion {
    /// `meta.k8s.io/v1`.
    V1,
    /// `meta.k8s.io/v1beta1`.
    V1beta1,
}

impl MetaVersion {
    fn parse(v: Option<&str>) -> Option<MetaVersion> {
        match v? {
            "v1" => Some(MetaVersion::V1),
            "v1beta1" => Some(MetaVersion::V1beta1),
            _ => None,
        }
    }

    /// The `apiVersion` of the answer.
    pub fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// A plain encoding of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// Kubernetes protobuf.
    Protobuf,
}

/// A request for metadata only (`as=PartialObjectMetadata[List];g=meta.k8s.io;v=...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialMetadata {
    /// `PartialObjectMetadataList` was asked for (a list answer), else `PartialObjectMetadata`
    /// (one object): as upstream, the other shape is a 406.
    pub list: bool,
    /// The `meta.k8s.io` version asked for.
    pub version: MetaVersion,
    /// The encoding asked for.
    pub encoding: Encoding,
}

impl Output {
    /// Chooses the output for an `Accept` header: the first acceptable entry wins. Tables are
    /// served as JSON only (upstream serves Tables as JSON/YAML only), partial metadata in JSON,
    /// YAML and protobuf.
    pub fn negotiate(accept: Option<&str>) -> Result<Output, ApiError> {
        Output::negotiate_allowing(accept, true)
    }

    /// [`Output::negotiate`] for an endpoint that serves Tables only when `tables` (upstream: the
    /// endpoint has a table convertor); Table entries are skipped otherwise.
    pub fn negotiate_allowing(accept: Option<&str>, tables: bool) -> Result<Output, ApiError> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Ok(Output::Json);
        };
        let list = MediaType::parse_list(accept);
        for m in &list {
            match m.param("as") {
                Some("Table") if tables && m.is_json_like() && m.param("g") == Some("meta.k8s.io") => {
                    if matches!(m.param("v"), Some("v1" | "v1beta1")) {
                        return Ok(Output::Table);
                    }
                }
                Some(kind @ ("PartialObjectMetadata" | "PartialObjectMetadataList"))
                    if m.param("g") == Some("meta.k8s.io") =>
                {
                    if let (Some(version), Some(encoding)) = (MetaVersion::parse(m.param("v")), m.encoding())
                    {
                        return Ok(Output::Metadata(PartialMetadata {
                            list: kind == "PartialObjectMetadataList",
                            version,
                            encoding,
                        }));
                    }
                }
                Some(_) => {}
                None if m.is_json_like() => return Ok(Output::Json),
                None if m.encoding() == Some(Encoding::Yaml) => return Ok(Output::Yaml),
                None if m.essence == protobuf::MEDIA_TYPE => {
                    let or_json = list.iter().any(|m| m.param("as").is_none() && m.is_json_like());
                    return Ok(Output::Protobuf { or_json });
                }
                None => {}
            }
        }
        Err(ApiError::not_acceptable(&[
            "application/json",
            "application/yaml",
            protobuf::MEDIA_TYPE,
        ]))
    }
}

/// Request body formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON (also the default when Content-Type is missing, as `kubectl scale` sends).
    Json,
    /// YAML.
    Yaml,
    /// Kubernetes protobuf (`k8s\0` + `runtime.Unknown` envelope), built-in kinds only.
    Protobuf,
}

impl BodyFormat {
    /// The body format for a non-patch request's Content-Type.
    pub fn from_content_type(ct: Option<&str>) -> Result<BodyFormat, ApiError> {
        let Some(ct) = ct.filter(|c| !c.trim().is_empty()) else {
            return Ok(BodyFormat::Json);
        };
        match MediaType::parse(ct).essence.as_str() {
            "application/json" | "*/*" => Ok(BodyFormat::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(BodyFormat::Yaml),
            protobuf::MEDIA_TYPE => Ok(BodyFormat::Protobuf),
            _ => Err(ApiError::unsupported_media_type(ct)),
        }
    }
}

/// Decodes a request body into a JSON value; malformed input is a 400.
pub fn decode(format: BodyFormat, body: &[u8]) -> Result<Value, ApiError> {
    decode_strict(format, body).map(|(v, _)| v)
}

/// Decodes a request body into a JSON value and its strict decoding errors (fields set twice,
/// see [`crate::strict`]); malformed input is a 400.
pub fn decode_strict(format: BodyFormat, body: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::request_entity_too_large(&format!(
            "limit is {MAX_BODY_BYTES} bytes"
        )));
    }
    match format {
        BodyFormat::Json => crate::strict::decode_json(body)
            .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))),
        BodyFormat::Yaml => {
            let v: Value = serde_yaml_ng::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?;
            Ok((v, crate::strict::yaml_duplicates(body).into_iter().collect()))
        }
        BodyFormat::Protobuf => Ok((protobuf::decode(body).map_err(protobuf_error)?, Vec::new())),
    }
}

/// The Status for a protobuf body that cannot be decoded: 415 for a kind without a protobuf
/// message (as upstream answers for custom resources), 400 for malformed bytes.
pub fn protobuf_error(e: ProtobufError) -> ApiError {
    match e {
        ProtobufError::UnknownKind { .. } => ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {e}; send application/json"),
        ),
        e => ApiError::bad_request(format!("unable to decode protobuf body: {e}")),
    }
}

/// Encodes a response value: its Content-Type and bytes. A protobuf answer for a kind without a
/// protobuf message falls back to JSON when the client accepts it, else it is a 406.
pub fn encode(output: Output, value: &Value) -> Result<(&'static str, Vec<u8>), ApiError> {
    match output {
        Output::Metadata(m) => encode(m.encoding.output(), value),
        Output::Yaml => Ok((
            "application/yaml",
            serde_yaml_ng::to_string(value).unwrap_or_default().into_bytes(),
        )),
        Output::Protobuf { or_json } => match protobuf::encode(value) {
            Ok(bytes) => Ok((protobuf::MEDIA_TYPE, bytes)),
            Err(e) if or_json => {
                tracing::debug!(error = %e, "answering JSON instead of protobuf");
                Ok(("application/json", serde_json::to_vec(value).unwrap_or_default()))
            }
            Err(e) => {
                tracing::debug!(error = %e, "no protobuf encoding");
                Err(ApiError::not_acceptable(&[
                    "application/json",
                    "application/yaml",
                ]))
            }
        },
        _ => Ok(("application/json", serde_json::to_vec(value).unwrap_or_default())),
    }
}

impl Encoding {
    /// The plain output in this encoding (protobuf without a JSON fallback: every
    /// `meta.k8s.io` kind has a protobuf message).
    pub fn output(self) -> Output {
        match self {
            Encoding::Json => Output::Json,
            Encoding::Yaml => Output::Yaml,
            Encoding::Protobuf => Output::Protobuf { or_json: false },
        }
    }
}

/// How a watch stream's events are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchFormat {
    /// One JSON document per line.
    Json,
    /// Length-prefixed protobuf `WatchEvent` frames.
    Protobuf,
}

impl WatchFormat {
    /// The stream format for a negotiated output and the watched kind: protobuf when asked for and
    /// the kind has a message, else JSON when acceptable, else a 406.
    pub fn for_output(output: Output, api_version: &str, kind: &str) -> Result<WatchFormat, ApiError> {
        match output {
            // Every event of a metadata watch is a `meta.k8s.io` kind (or a Status).
            Output::Metadata(PartialMetadata {
                encoding: Encoding::Protobuf,
                ..
            }) => Ok(WatchFormat::Protobuf),
            Output::Protobuf { or_json } => {
                let sample = serde_json::json!({"apiVersion": api_version, "kind": kind});
                if protobuf::supports(&sample) {
                    Ok(WatchFormat::Protobuf)
                } else if or_json {
                    Ok(WatchFormat::Json)
                } else {
                    Err(ApiError::not_acceptable(&["application/json"]))
                }
            }
            _ => Ok(WatchFormat::Json),
        }
    }

    /// The response Content-Type.
    pub fn content_type(self) -> &'static str {
        match self {
            WatchFormat::Json => "application/json",
            WatchFormat::Protobuf => protobuf::WATCH_MEDIA_TYPE,
        }
    }

    /// One event (`{"type": ..., "object": ...}`) on the wire.
    pub fn frame(self, event: &Value) -> Vec<u8> {
        if self == WatchFormat::Protobuf {
            let kind = event["type"].as_str().unwrap_or("");
            match protobuf::encode_watch_event(kind, &event["object"]) {
                Ok(frame) => return frame,
                Err(e) => {
                    tracing::warn!(error = %e, "watch event has no protobuf encoding");
                    let status = ApiError::internal(format!("encoding watch event: {e}")).to_json();
                    return protobuf::encode_watch_event("ERROR", &status).unwrap_or_default();
                }
            }
        }
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_asks_for_tables() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(Output::negotiate(Some(a)).unwrap(), Output::Table);
        assert_eq!(
            Output::negotiate(Some("application/json, */*")).unwrap(),
            Output::Json
        );
        assert_eq!(Output::negotiate(None).unwrap(), Output::Json);
        assert_eq!(Output::negotiate(Some("application/yaml")).unwrap(), Output::Yaml);
        assert_eq!(
            Output::negotiate(Some("application/vnd.kubernetes.protobuf,application/json")).unwrap(),
            Output::Protobuf { or_json: true }
        );
        assert_eq!(
            Output::negotiate(Some("application/vnd.kubernetes.protobuf")).unwrap(),
            Output::Protobuf { or_json: false }
        );
        // Tables are JSON/YAML only: a protobuf-only Table request is a 406.
        let proto_table = "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io";
        assert_eq!(Output::negotiate(Some(proto_table)).unwrap_err().code(), 406);
        assert_eq!(
            Output::negotiate(Some(&format!("{proto_table},application/json"))).unwrap(),
            Output::Json
        );
        assert_eq!(
            Output::negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            ))
            .unwrap(),
            Output::Metadata(PartialMetadata {
                list: true,
                version: MetaVersion::V1,
                encoding: Encoding::Json
            })
        );
        // client-go's metadata client: protobuf first, JSON next.
        let client_go = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(
            Output::negotiate(Some(client_go)).unwrap(),
            Output::Metadata(PartialMetadata {
                list: false,
                version: MetaVersion::V1,
                encoding: Encoding::Protobuf
            })
        );
        assert_eq!(
            Output::negotiate(Some(
                "application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1"
            ))
            .unwrap(),
            Output::Metadata(PartialMetadata {
                list: false,
                version: MetaVersion::V1beta1,
                encoding: Encoding::Yaml
            })
        );
        // An unknown version is skipped, as is a Table where the endpoint has none.
        assert_eq!(
            Output::negotiate(Some(
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2,application/yaml"
            ))
            .unwrap(),
            Output::Yaml
        );
        assert_eq!(Output::negotiate_allowing(Some(a), false).unwrap(), Output::Json);
        assert_eq!(Output::negotiate(Some("text/html")).unwrap_err().code(), 406);
        assert_eq!(
            Output::negotiate(Some("application/json;as=Table;v=v2;g=meta.k8s.io"))
                .unwrap_err()
                .code(),
            406
        );
    }

    #[test]
    fn bodies_decode_or_fail_with_400() {
        assert!(decode(BodyFormat::Json, b"{\"a\":1}").is_ok());
        assert_eq!(decode(BodyFormat::Json, b"{").unwrap_err().code(), 400);
        let v = decode(BodyFormat::Yaml, b"a: 1\nb: [x]\n").unwrap();
        assert_eq!(v["b"][0], "x");
        assert_eq!(decode(BodyFormat::Yaml, b"a: [").unwrap_err().code(), 400);
        assert_eq!(BodyFormat::from_content_type(None).unwrap(), BodyFormat::Json);
        assert_eq!(
            BodyFormat::from_content_type(Some("application/vnd.kubernetes.protobuf")).unwrap(),
            BodyFormat::Protobuf
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("application/x-protobuf"))
                .unwrap_err()
                .code(),
            415
        );
    }

    #[test]
    fn protobuf_bodies_and_answers() {
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let (ct, bytes) = encode(Output::Protobuf { or_json: false }, &cm).unwrap();
        assert_eq!(ct, "application/vnd.kubernetes.protobuf");
        assert_eq!(decode(BodyFormat::Protobuf, &bytes).unwrap(), cm);
        assert_eq!(decode(BodyFormat::Protobuf, b"{}").unwrap_err().code(), 400);
        let cr = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget"});
        assert_eq!(
            encode(Output::Protobuf { or_json: true }, &cr).unwrap().0,
            "application/json"
        );
        assert_eq!(
            encode(Output::Protobuf { or_json: false }, &cr)
                .unwrap_err()
                .code(),
            406
        );
        let mut widget = protobuf::encode(&cm).unwrap();
        // Same envelope, but an unknown kind: 415.
        let pos = widget.windows(9).position(|w| w == b"ConfigMap").unwrap();
        widget.splice(pos..pos + 9, b"WidgetXYZ".iter().copied());
        assert_eq!(decode(BodyFormat::Protobuf, &widget).unwrap_err().code(), 415);
    }
}
