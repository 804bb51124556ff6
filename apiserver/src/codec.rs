//! Content negotiation and body codecs: request bodies in JSON or YAML, responses in JSON, YAML,
//! `meta.k8s.io` Tables or `PartialObjectMetadata`.

use serde_json::Value;

use crate::error::ApiError;

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
    /// `PartialObjectMetadata` / `PartialObjectMetadataList` (kube-rs metadata APIs).
    Metadata,
}

impl Output {
    /// Chooses the output for an `Accept` header: the first acceptable entry wins. Protobuf
    /// entries are skipped (we answer JSON, which clients accept by Content-Type).
    pub fn negotiate(accept: Option<&str>) -> Result<Output, ApiError> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Ok(Output::Json);
        };
        let list = MediaType::parse_list(accept);
        for m in &list {
            match m.param("as") {
                Some("Table") if m.is_json_like() && m.param("g") == Some("meta.k8s.io") => {
                    if matches!(m.param("v"), Some("v1" | "v1beta1")) {
                        return Ok(Output::Table);
                    }
                }
                Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                    if m.is_json_like() && m.param("g") == Some("meta.k8s.io") =>
                {
                    if matches!(m.param("v"), Some("v1" | "v1beta1")) {
                        return Ok(Output::Metadata);
                    }
                }
                Some(_) => {}
                None if m.is_json_like() => return Ok(Output::Json),
                None if matches!(
                    m.essence.as_str(),
                    "application/yaml" | "application/x-yaml" | "text/yaml"
                ) =>
                {
                    return Ok(Output::Yaml);
                }
                None => {}
            }
        }
        if list
            .iter()
            .any(|m| m.essence == "application/vnd.kubernetes.protobuf")
        {
            // Protobuf-only clients accept JSON answers (they decode by Content-Type).
            return Ok(Output::Json);
        }
        Err(ApiError::not_acceptable(&[
            "application/json",
            "application/yaml",
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
            _ => Err(ApiError::unsupported_media_type(ct)),
        }
    }
}

/// Decodes a request body into a JSON value; malformed input is a 400.
pub fn decode(format: BodyFormat, body: &[u8]) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::request_entity_too_large(&format!(
            "limit is {MAX_BODY_BYTES} bytes"
        )));
    }
    match format {
        BodyFormat::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))),
        BodyFormat::Yaml => {
            let v: Value = serde_yaml_ng::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?;
            Ok(v)
        }
    }
}

/// Encodes a response value.
pub fn encode(output: Output, value: &Value) -> (&'static str, Vec<u8>) {
    match output {
        Output::Yaml => (
            "application/yaml",
            serde_yaml_ng::to_string(value).unwrap_or_default().into_bytes(),
        ),
        _ => ("application/json", serde_json::to_vec(value).unwrap_or_default()),
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
            Output::Json
        );
        assert_eq!(
            Output::negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            ))
            .unwrap(),
            Output::Metadata
        );
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
            BodyFormat::from_content_type(Some("application/vnd.kubernetes.protobuf"))
                .unwrap_err()
                .code(),
            415
        );
    }
}
