//! Authentication and authorization, as kube-apiserver does them: an authenticator chain (client
//! certificates, static bearer tokens, ServiceAccount JWTs, anonymous), impersonation, and the RBAC
//! authorizer fed by watch-driven caches; the bootstrap policy, escalation prevention, the review
//! APIs, TokenRequest and the OIDC discovery documents.

pub mod audit;
pub mod authn;
pub mod bootstrap;
pub mod bootstrap_token;
pub mod cache;
pub mod controller_roles;
pub mod escalation;
pub mod identities;
pub mod impersonation;
pub mod legacy_token;
pub mod node;
pub mod rbac;
pub mod review;
pub mod serviceaccount;
pub mod signers;
pub mod tokenfile;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;

use crate::error::{ApiError, GroupResource};
use crate::registry::subresource::UserInfo;
use crate::request_info::RequestInfo;
use crate::{ApiServer, Config};

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The anonymous user.
pub const ANONYMOUS: &str = "system:anonymous";

/// Marks a request whose TLS client certificate did not verify against the cluster CA: it is a
/// 401 unless a bearer token authenticates it.
#[derive(Clone, Copy, Debug)]
pub struct RejectedClientCert;

/// What a request asks to do, as the authorizer sees it (upstream `authorizer.Attributes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Who asks.
    pub user: UserInfo,
    /// `get`, `list`, ... for resources; the lower-case HTTP method for other paths.
    pub verb: String,
    /// A resource request (`/api/...`, `/apis/...` with a resource) or a plain path.
    pub resource_request: bool,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Object name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The URL path (non-resource requests).
    pub path: String,
}

impl Attributes {
    /// The attributes of an HTTP request by `user`.
    pub fn of_request(user: UserInfo, method: &http::Method, path: &str, query: Option<&str>) -> Attributes {
        let query = crate::query::Query::parse(query);
        let watch = query.watch().unwrap_or(false);
        match RequestInfo::parse(method, path, watch) {
            Some(mut info) => {
                // As upstream: a collection request selecting one name by field is about that name.
                if info.name.is_empty()
                    && let Some(name) = query
                        .get("fieldSelector")
                        .and_then(|s| s.split(',').find_map(|t| t.trim().strip_prefix("metadata.name=")))
                        .filter(|n| !n.is_empty() && !n.contains('/'))
                {
                    info.name = name.trim_start_matches('=').to_string();
                }
                Attributes {
                    user,
                    verb: info.verb.map_or_else(
                        || method.as_str().to_ascii_lowercase(),
                        |v| v.as_str().to_string(),
                    ),
                    resource_request: true,
                    group: info.group,
                    version: info.version,
                    resource: info.resource,
                    subresource: info.subresource,
                    name: info.name,
                    namespace: info.namespace,
                    path: path.to_string(),
                }
            }
            None => Attributes {
                user,
                verb: method.as_str().to_ascii_lowercase(),
                path: path.to_string(),
                ..Default::default()
            },
        }
    }

    /// Upstream's reason text: `User "u" cannot list resource "pods" in API group "" in the
    /// namespace "default"`.
    pub fn denial(&self) -> String {
        let user = &self.user.name;
        if !self.resource_request {
            return format!("User {user:?} cannot {} path {:?}", self.verb, self.path);
        }
        let resource = if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", self.namespace)
        };
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
            self.verb, self.group
        )
    }

    /// The 403 upstream answers for a denied request.
    pub fn forbidden(&self) -> ApiError {
        self.forbidden_because("")
    }

    /// The 403 with the authorizer's reason appended (`...: <reason>`).
    pub fn forbidden_because(&self, reason: &str) -> ApiError {
        let mut detail = self.denial();
        if !reason.is_empty() {
            detail = format!("{detail}: {reason}");
        }
        if !self.resource_request {
            return ApiError::new(403, "Forbidden", format!("forbidden: {detail}"));
        }
        ApiError::forbidden(
            &GroupResource::new(&self.group, &self.resource),
            &self.name,
            &detail,
        )
    }
}

/// Authentication and authorization settings (part of [`Config`]).
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `--token-auth-file`: CSV of `token,user,uid,"group1,group2"`.
    pub token_auth_file: Option<PathBuf>,
    /// `--anonymous-auth`: requests without credentials are `system:anonymous`.
    pub anonymous: bool,
    /// `--enable-bootstrap-token-auth`: bootstrap tokens (Secrets in kube-system) authenticate.
    pub enable_bootstrap_token_auth: bool,
    /// `--service-account-issuer`.
    pub service_account_issuer: String,
    /// `--service-account-signing-key-file` (PKCS#8 EC P-256 PEM); default `<data-dir>/pki/sa.key`,
    /// created on first start.
    pub service_account_signing_key_file: Option<PathBuf>,
    /// `--service-account-max-token-expiration` in seconds (0: no cap).
    pub service_account_max_token_expiration: u64,
    /// `--audit-log-path`: where audit events go (JSON lines); needs a policy.
    pub audit_log_path: Option<PathBuf>,
    /// `--audit-policy-file`: an `audit.k8s.io/v1 Policy`.
    pub audit_policy_file: Option<PathBuf>,
    /// `--encryption-provider-config`: encryption at rest (see [`crate::encryption`]).
    pub encryption_provider_config: Option<PathBuf>,
    /// Name of this node: its kubelet identity is `system:node:<name>` (default: the host name).
    pub node_name: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_auth_file: None,
            anonymous: false,
            enable_bootstrap_token_auth: false,
            service_account_issuer: "https://kubernetes.default.svc.cluster.local".into(),
            service_account_signing_key_file: None,
            service_account_max_token_expiration: 0,
            audit_log_path: None,
            audit_policy_file: None,
            encryption_provider_config: None,
            node_name: identities::default_node_name(),
        }
    }
}

/// Failures loading authentication settings.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A malformed token file line.
    #[error("{path}:{line}: {reason}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The signing key.
    #[error("service account key: {0}")]
    Key(String),
}

/// The authentication and authorization state of a server.
pub struct Auth {
    /// The RBAC objects, kept current by [`cache`].
    pub policy: Arc<RwLock<rbac::Policy>>,
    /// Static bearer tokens.
    pub tokens: RwLock<tokenfile::StaticTokens>,
    /// The ServiceAccount token signer/verifier.
    pub signer: RwLock<Arc<serviceaccount::Signer>>,
    /// Whether the RBAC caches have their initial state.
    pub synced: cache::Synced,
    /// The audit log, when configured.
    pub audit: RwLock<Option<Arc<audit::Logger>>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// State with an in-memory signing key and no static tokens; [`Auth::load`] reads the files.
    pub fn new(config: &Config) -> Auth {
        Auth {
            policy: Arc::default(),
            tokens: RwLock::default(),
            signer: RwLock::new(Arc::new(serviceaccount::Signer::ephemeral(
                &config.auth.service_account_issuer,
            ))),
            synced: cache::Synced::default(),
            audit: RwLock::new(None),
        }
    }

    /// Loads the token file and the signing key (creating it on first start).
    pub fn load(&self, config: &Config) -> Result<(), AuthError> {
        if let Some(path) = &config.auth.token_auth_file {
            *self.tokens.write() = tokenfile::StaticTokens::load(path)?;
        }
        let key = config
            .auth
            .service_account_signing_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join("pki").join("sa.key"));
        if let (Some(log), Some(policy)) = (&config.auth.audit_log_path, &config.auth.audit_policy_file) {
            *self.audit.write() = Some(Arc::new(audit::Logger::open(log, policy)?));
        }
        *self.signer.write() = Arc::new(serviceaccount::Signer::load_or_create(
            &key,
            &config.auth.service_account_issuer,
        )?);
        Ok(())
    }

    /// The RBAC decision.
    pub fn authorize(&self, attrs: &Attributes) -> bool {
        self.policy.read().allows(attrs)
    }

    /// The current signer.
    pub fn signer(&self) -> Arc<serviceaccount::Signer> {
        self.signer.read().clone()
    }
}

/// The OIDC discovery routes: `/.well-known/openid-configuration` and `/openid/v1/jwks`.
pub fn routes() -> axum::Router<Arc<ApiServer>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/.well-known/openid-configuration", get(openid_configuration))
        .route("/openid/v1/jwks", get(jwks))
}

fn json_with(content_type: &'static str, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    ([(http::header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn openid_configuration(State(api): State<Arc<ApiServer>>) -> Response {
    let doc = api
        .auth
        .signer()
        .openid_configuration(&api.config.advertise_address);
    json_with("application/json", &doc)
}

async fn jwks(State(api): State<Arc<ApiServer>>) -> Response {
    json_with("application/jwk-set+json", &api.auth.signer().jwks())
}

/// Paths anyone may read without credentials when anonymous access is off (upstream's
/// `system:public-info-viewer`).
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
}

/// The middleware: authenticates the request, applies impersonation, authorizes it with RBAC and
/// leaves the user in the request extensions; 401 / 403 Status answers otherwise.
pub async fn filter(State(api): State<Arc<ApiServer>>, mut req: Request, next: Next) -> Response {
    let result = check(&api, &mut req).await;
    let logger = api.auth.audit.read().clone();
    let Some(logger) = logger else {
        return match result {
            Ok(()) => next.run(req).await,
            Err(e) => e.into_response(),
        };
    };
    audited(&logger, result, req, next).await
}

/// Runs the request with its audit record: `RequestReceived`, then `ResponseComplete` (or
/// `ResponseStarted` for a watch) with the status code and, per level, the bodies.
async fn audited(
    logger: &audit::Logger,
    result: Result<(), ApiError>,
    mut req: Request,
    next: Next,
) -> Response {
    let user = req.extensions().get::<UserInfo>().cloned().unwrap_or_default();
    let attrs = Attributes::of_request(user, req.method(), req.uri().path(), req.uri().query());
    let header = |headers: &http::HeaderMap, name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut ips: Vec<String> = header(req.headers(), "x-forwarded-for")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(PeerAddr(peer)) = req.extensions().get::<PeerAddr>() {
        ips.push(peer.ip().to_string());
    }
    let uri = req.uri().to_string();
    let user_agent = header(req.headers(), "user-agent");
    let Some(mut record) = logger.begin(&attrs, &uri, &user_agent, ips) else {
        return match result {
            Ok(()) => next.run(req).await,
            Err(e) => e.into_response(),
        };
    };
    let resp = match result {
        Ok(()) => {
            if !attrs.user.name.is_empty() {
                record.decision(true);
            }
            if record.level >= audit::Level::Request
                && matches!(attrs.verb.as_str(), "create" | "update" | "patch")
                && let Ok(body) = escalation::take_body(&mut req).await
            {
                record.request_object(&body);
            }
            next.run(req).await
        }
        Err(e) => {
            if e.code() == 403 {
                record.decision(false);
            }
            e.into_response()
        }
    };
    let code = resp.status().as_u16();
    if attrs.verb == "watch" {
        logger.write(&record, "ResponseStarted", Some(code));
        return resp;
    }
    if record.level < audit::Level::RequestResponse {
        logger.write(&record, "ResponseComplete", Some(code));
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, crate::codec::MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    record.response_object(&bytes);
    logger.write(&record, "ResponseComplete", Some(code));
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The client's address, put in the request extensions by the TLS accept loop.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Authenticates and authorizes; the user (when known) is left in the request extensions.
async fn check(api: &ApiServer, req: &mut Request) -> Result<(), ApiError> {
    let path = req.uri().path().to_string();
    let from_tls = req.extensions().get::<crate::handler::Authenticated>().cloned();
    let rejected_cert = req.extensions().get::<RejectedClientCert>().is_some();
    let Some(user) = authn::authenticate(api, from_tls.as_ref(), rejected_cert, req.headers()).await? else {
        return if is_public(&path) {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        };
    };
    req.extensions_mut().insert(user.clone());
    let user = impersonation::apply(api, req.headers(), user)?;
    req.extensions_mut().insert(user.clone());
    let attrs = Attributes::of_request(user, req.method(), &path, req.uri().query());
    if !api.auth.authorize(&attrs) {
        tracing::debug!(user = %attrs.user.name, verb = %attrs.verb, resource = %attrs.resource, path = %attrs.path, "forbidden");
        return Err(attrs.forbidden());
    }
    node::restrict(api, &attrs).await?;
    escalation::check(api, req, &attrs).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_match_upstream() {
        let user = UserInfo {
            name: "x".into(),
            ..Default::default()
        };
        let a = Attributes::of_request(
            user.clone(),
            &http::Method::GET,
            "/api/v1/namespaces/default/pods",
            None,
        );
        let e = a.forbidden().to_json();
        assert_eq!(
            e["message"],
            "pods is forbidden: User \"x\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        assert_eq!(e["reason"], "Forbidden");
        assert_eq!(e["details"]["kind"], "pods");
        let a = Attributes::of_request(
            user.clone(),
            &http::Method::GET,
            "/apis/apps/v1/namespaces/d/deployments/web/scale",
            None,
        );
        assert_eq!(
            a.forbidden().message(),
            "deployments.apps \"web\" is forbidden: User \"x\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"d\""
        );
        let a = Attributes::of_request(
            user.clone(),
            &http::Method::GET,
            "/api/v1/nodes",
            Some("watch=true"),
        );
        assert_eq!(
            a.forbidden().message(),
            "nodes is forbidden: User \"x\" cannot watch resource \"nodes\" in API group \"\" at the cluster scope"
        );
        let a = Attributes::of_request(
            user.clone(),
            &http::Method::GET,
            "/api/v1/namespaces/d/secrets",
            Some("watch=1&fieldSelector=metadata.name%3Ds1"),
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "s1"));
        let a = Attributes::of_request(user, &http::Method::GET, "/metrics", None);
        assert_eq!(
            a.forbidden().message(),
            "forbidden: User \"x\" cannot get path \"/metrics\""
        );
    }
}
