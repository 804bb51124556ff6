//! `ApiError`: every failure the API server reports, as the `metav1.Status` object Kubernetes
//! clients expect. Constructors are named after upstream's `StatusReason`s
//! (`k8s.io/apimachinery/pkg/api/errors`), and storage errors are mapped to them in exactly one
//! place ([`From<storage::Error>`]).

use std::fmt;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

/// A group and a resource (plural), e.g. `deployments.apps` or `pods`; how upstream qualifies a
/// resource in error messages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// API group ("" for the core group).
    pub group: String,
    /// The resource, plural and lower case.
    pub resource: String,
}

impl GroupResource {
    /// A group resource.
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        GroupResource {
            group: group.into(),
            resource: resource.into(),
        }
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// One field error of an `Invalid` answer (upstream's `field.Error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Upstream cause type, e.g. `FieldValueRequired`, `FieldValueInvalid`, `FieldValueForbidden`.
    pub reason: &'static str,
    /// The field path, e.g. `metadata.name`.
    pub field: String,
    /// The human message (already including the field's value where upstream shows it).
    pub message: String,
}

impl FieldError {
    /// `Required value`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            message,
        }
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: &serde_json::Value, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value}: {detail}"),
        }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }

    fn render(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// An error answered to an API client: a `metav1.Status` with `status: Failure`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The status object sent to the client; `code` is also the HTTP status (boxed: errors
    /// travel in `Result`s everywhere).
    pub status: Box<Status>,
}

/// Result alias for API operations.
pub type ApiResult<T> = Result<T, ApiError>;

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code(),
            self.reason(),
            self.status.message.as_deref().unwrap_or("")
        )
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// A failure status with the given code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: Box::new(Status {
                code: Some(i32::from(code)),
                message: Some(message.into()),
                reason: (!reason.is_empty()).then(|| reason.to_string()),
                status: Some("Failure".to_string()),
                ..Default::default()
            }),
        }
    }

    fn with_details(mut self, gr: &GroupResource, name: &str) -> Self {
        let details = self.status.details.get_or_insert_with(Default::default);
        if !name.is_empty() {
            details.name = Some(name.to_string());
        }
        if !gr.group.is_empty() {
            details.group = Some(gr.group.clone());
        }
        details.kind = Some(gr.resource.clone());
        self
    }

    /// Adds a cause to `details.causes`.
    #[must_use]
    pub fn with_cause(mut self, reason: &str, message: &str, field: &str) -> Self {
        let details = self.status.details.get_or_insert_with(Default::default);
        details.causes.get_or_insert_with(Vec::new).push(StatusCause {
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            field: (!field.is_empty()).then(|| field.to_string()),
        });
        self
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.status
            .code
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(500)
    }

    /// The upstream reason (`NotFound`, `Conflict`, ...), or "" when unset.
    pub fn reason(&self) -> &str {
        self.status.reason.as_deref().unwrap_or("")
    }

    /// The message.
    pub fn message(&self) -> &str {
        self.status.message.as_deref().unwrap_or("")
    }

    /// 404 `NotFound`: `pods "x" not found`.
    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        ApiError::new(404, "NotFound", format!("{gr} \"{name}\" not found")).with_details(gr, name)
    }

    /// 404 for a path that names no resource: `the server could not find the requested resource`.
    pub fn not_found_path() -> Self {
        let mut e = ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
        e.status.details = Some(StatusDetails::default());
        e
    }

    /// 409 `AlreadyExists`: `configmaps "x" already exists`.
    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        ApiError::new(409, "AlreadyExists", format!("{gr} \"{name}\" already exists")).with_details(gr, name)
    }

    /// 409 `Conflict`: `Operation cannot be fulfilled on <gr> "<name>": <detail>`.
    pub fn conflict(gr: &GroupResource, name: &str, detail: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {gr} \"{name}\": {detail}"),
        )
        .with_details(gr, name)
    }

    /// The message of an optimistic-lock failure (upstream `OptimisticLockErrorMsg`).
    pub const OPTIMISTIC_LOCK_MSG: &'static str =
        "the object has been modified; please apply your changes to the latest version and try again";

    /// 409 `Conflict` for a stale `resourceVersion`.
    pub fn optimistic_lock(gr: &GroupResource, name: &str) -> Self {
        ApiError::conflict(gr, name, Self::OPTIMISTIC_LOCK_MSG)
    }

    /// 422 `Invalid`: `ConfigMap "x" is invalid: <errors>`, one cause per field error. `kind` is
    /// the qualified kind (`Deployment.apps`).
    pub fn invalid(qualified_kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let rendered = match errors {
            [one] => one.render(),
            many => format!(
                "[{}]",
                many.iter().map(FieldError::render).collect::<Vec<_>>().join(", ")
            ),
        };
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {rendered}"),
        );
        let kind = qualified_kind.split('.').next().unwrap_or(qualified_kind);
        e.status.details = Some(StatusDetails {
            name: (!name.is_empty()).then(|| name.to_string()),
            group: (!group.is_empty()).then(|| group.to_string()),
            kind: Some(kind.to_string()),
            causes: Some(
                errors
                    .iter()
                    .map(|fe| StatusCause {
                        reason: Some(fe.reason.to_string()),
                        message: Some(fe.message.clone()),
                        field: Some(fe.field.clone()),
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        e
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 `Forbidden`: `<gr> "<name>" is forbidden: <detail>`.
    pub fn forbidden(gr: &GroupResource, name: &str, detail: &str) -> Self {
        let message = if name.is_empty() {
            format!("{gr} is forbidden: {detail}")
        } else {
            format!("{gr} \"{name}\" is forbidden: {detail}")
        };
        ApiError::new(403, "Forbidden", message).with_details(gr, name)
    }

    /// 405 `MethodNotAllowed`: `<verb> is not supported on resources of kind "<gr>"`.
    pub fn method_not_supported(gr: &GroupResource, action: &str) -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{action} is not supported on resources of kind \"{gr}\""),
        )
        .with_details(gr, "")
    }

    /// 406 `NotAcceptable`.
    pub fn not_acceptable(accepted: &[&str]) -> Self {
        ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"
            ),
        )
    }

    /// 413 `RequestEntityTooLarge`.
    pub fn request_entity_too_large(detail: &str) -> Self {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: {detail}"),
        )
    }

    /// 410 `Expired`.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// 410 `Expired` for a watch or get at a compacted resourceVersion.
    pub fn too_old_resource_version(requested: u64, compacted: u64) -> Self {
        ApiError::expired(format!("too old resource version: {requested} ({compacted})"))
    }

    /// 410 `Expired` for a compacted continue token (upstream's text).
    pub fn continue_expired() -> Self {
        ApiError::expired(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue value from the response to get an inconsistent list.",
        )
    }

    /// 429 `TooManyRequests`.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        ApiError::new(429, "TooManyRequests", message)
    }

    /// 500 `InternalError`: `Internal error occurred: <detail>`.
    pub fn internal(detail: impl fmt::Display) -> Self {
        let detail = detail.to_string();
        ApiError::new(500, "InternalError", format!("Internal error occurred: {detail}")).with_cause(
            "UnexpectedServerResponse",
            &detail,
            "",
        )
    }

    /// 503 `ServiceUnavailable`.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    /// 504 `Timeout`.
    pub fn timeout(message: impl Into<String>, retry_after_seconds: i32) -> Self {
        let mut e = ApiError::new(504, "Timeout", message);
        e.status.details = Some(StatusDetails {
            retry_after_seconds: Some(retry_after_seconds),
            ..Default::default()
        });
        e
    }

    /// 504 `Timeout` for a read at a resourceVersion the server has not reached (yet): upstream's
    /// "Too large resource version" with a `ResourceVersionTooLarge` cause, retry after 1 s.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        ApiError::timeout(
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
            1,
        )
        .with_cause("ResourceVersionTooLarge", "Too large resource version", "")
    }

    /// The status as a JSON value (for watch ERROR events).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_else(|_| serde_json::json!({"kind": "Status"}))
    }
}

impl From<storage::Error> for ApiError {
    /// The one mapping from storage failures to API answers.
    fn from(e: storage::Error) -> Self {
        use storage::Error as E;
        match e {
            E::Compacted { requested, compacted } => ApiError::too_old_resource_version(requested, compacted),
            E::FutureRevision { requested, current } => {
                ApiError::too_large_resource_version(requested, current)
            }
            E::TooLarge { size, limit } => {
                ApiError::request_entity_too_large(&format!("limit is {limit}, got {size}"))
            }
            E::Unavailable(msg) => ApiError::service_unavailable(format!("storage is unavailable: {msg}")),
            E::NotLeader { .. } => ApiError::service_unavailable("storage is unavailable: no leader"),
            E::Timeout => ApiError::timeout("storage request timed out", 2),
            E::WatchOverflow { next_revision } => {
                ApiError::expired(format!("watch closed: too slow, resume from {next_revision}"))
            }
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::internal(other)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.status).unwrap_or_default();
        let mut resp = (code, [(http::header::CONTENT_TYPE, "application/json")], body).into_response();
        // Upstream announces a retry delay in a header too.
        if let Some(secs) = self
            .status
            .details
            .as_ref()
            .and_then(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
        {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_resource() {
        let e = ApiError::not_found(&GroupResource::new("", "pods"), "x");
        assert_eq!(e.message(), "pods \"x\" not found");
        assert_eq!(e.code(), 404);
        let v = e.to_json();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["details"]["kind"], "pods");
        assert!(v["details"].get("group").is_none());
        let e = ApiError::not_found(&GroupResource::new("apps", "deployments"), "web");
        assert_eq!(e.message(), "deployments.apps \"web\" not found");
        assert_eq!(e.to_json()["details"]["group"], "apps");
    }

    #[test]
    fn conflict_uses_upstream_text() {
        let e = ApiError::optimistic_lock(&GroupResource::new("", "pods"), "x");
        assert_eq!(
            e.message(),
            "Operation cannot be fulfilled on pods \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(e.reason(), "Conflict");
    }

    #[test]
    fn invalid_lists_causes() {
        let errs = [
            FieldError::required("metadata.name", "name or generateName is required"),
            FieldError::invalid("data[\"\"]", &serde_json::json!(""), "bad key"),
        ];
        let e = ApiError::invalid("ConfigMap", "", "x", &errs);
        assert_eq!(e.code(), 422);
        assert!(
            e.message()
                .starts_with("ConfigMap \"x\" is invalid: [metadata.name: Required value")
        );
        assert_eq!(e.to_json()["details"]["causes"][1]["reason"], "FieldValueInvalid");
    }

    #[test]
    fn storage_errors_map_once() {
        let e: ApiError = storage::Error::Compacted {
            requested: 3,
            compacted: 9,
        }
        .into();
        assert_eq!((e.code(), e.reason()), (410, "Expired"));
        assert_eq!(e.message(), "too old resource version: 3 (9)");
        let e: ApiError = storage::Error::Unavailable("no quorum".into()).into();
        assert_eq!(e.code(), 503);
        let e: ApiError = storage::Error::Timeout.into();
        assert_eq!(e.code(), 504);
    }

    #[test]
    fn too_large_resource_version_has_upstreams_shape() {
        let e: ApiError = storage::Error::FutureRevision {
            requested: 900,
            current: 12,
        }
        .into();
        let v = e.to_json();
        assert_eq!(v["code"], 504);
        assert_eq!(v["reason"], "Timeout");
        assert_eq!(
            v["message"],
            "Timeout: Too large resource version: 900, current: 12"
        );
        assert_eq!(v["details"]["retryAfterSeconds"], 1);
        assert_eq!(v["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
        assert_eq!(v["details"]["causes"][0]["message"], "Too large resource version");
    }
}
