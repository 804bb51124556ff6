//! The component's own HTTPS endpoint, as upstream's components serve on `--secure-port`:
//! `/healthz`, `/livez` and `/readyz` (named checks, `?verbose`, `?exclude=`, `/<endpoint>/<check>`)
//! open to everyone, and `/metrics` (Prometheus text) for callers that the API server
//! authenticates (TokenReview) and authorizes for `get` on the path (SubjectAccessReview), as
//! upstream's delegated authentication and authorization do. Without a certificate file the
//! server makes a self-signed one at start, as upstream does without `--tls-cert-file`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use prometheus::Encoder;

use crate::healthz::{self, Check};

/// Where and how the endpoint listens.
#[derive(Debug, Clone)]
pub struct ServingConfig {
    /// Address and port (`--bind-address`, `--secure-port`); port 0 picks a free one.
    pub bind: SocketAddr,
    /// PEM certificate (chain) and key; both or neither. Neither: a self-signed certificate
    /// for `localhost`, `127.0.0.1` and the bind address.
    pub cert_file: Option<PathBuf>,
    /// The key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// Failures starting the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// Reading the certificate or key.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key is not usable.
    #[error("TLS: {0}")]
    Tls(String),
    /// Binding the address.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The checks and metrics a component exposes, before it starts serving.
pub struct HealthServer {
    checks: Vec<(String, Check)>,
    ready_checks: Vec<(String, Check)>,
    registry: prometheus::Registry,
    shutting_down: Arc<AtomicBool>,
}

impl Default for HealthServer {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthServer {
    /// Just the `ping` check and an empty metrics registry.
    pub fn new() -> Self {
        let ping: Check = Arc::new(|| Ok(()));
        HealthServer {
            checks: vec![("ping".into(), ping)],
            ready_checks: Vec::new(),
            registry: prometheus::Registry::new(),
            shutting_down: Arc::default(),
        }
    }

    /// A check of `/healthz`, `/livez` and `/readyz`.
    pub fn add_check(&mut self, name: &str, check: Check) -> &mut Self {
        self.checks.push((name.into(), check));
        self
    }

    /// A check of `/readyz` only (e.g. informers synced).
    pub fn add_ready_check(&mut self, name: &str, check: Check) -> &mut Self {
        self.ready_checks.push((name.into(), check));
        self
    }

    /// The registry `/metrics` renders; components register their collectors here.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Binds and serves until `shutdown`; `/readyz` fails (`shutdown` check) once shutdown
    /// starts. `client` reviews the bearer tokens of `/metrics` callers; without one,
    /// `/metrics` is refused to everyone.
    pub async fn serve(
        self,
        config: &ServingConfig,
        client: Option<kube::Client>,
        shutdown: CancellationToken,
    ) -> Result<ServingHandle, ServingError> {
        let tls = tls_config(config)?;
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| ServingError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServingError::Bind {
            addr: config.bind,
            source,
        })?;
        let mut ready = self.checks.clone();
        let flag = self.shutting_down.clone();
        let shutting: Check = Arc::new(move || {
            if flag.load(Ordering::Acquire) {
                Err("process is shutting down".into())
            } else {
                Ok(())
            }
        });
        ready.push(("shutdown".into(), shutting));
        ready.extend(self.ready_checks.iter().cloned());
        let state = Arc::new(State {
            live: self.checks,
            ready,
            registry: self.registry,
            reviewer: client.map(Reviewer::new),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let (tcp, _) = tokio::select! {
                    () = shutdown.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "accepting a connection");
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                let stop = shutdown.clone();
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(state.handle(req).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(tls), svc);
                    tokio::select! {
                        _ = conn => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
            conns.shutdown().await;
        });
        Ok(ServingHandle { addr, task })
    }

    /// Marks the process as shutting down: `/readyz` fails from now on.
    pub fn shutting_down_flag(&self) -> Arc<AtomicBool> {
        self.shutting_down.clone()
    }
}

/// A running endpoint.
#[derive(Debug)]
pub struct ServingHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ServingHandle {
    /// Waits until the endpoint has stopped (after its shutdown token was cancelled).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

struct State {
    live: Vec<(String, Check)>,
    ready: Vec<(String, Check)>,
    registry: prometheus::Registry,
    reviewer: Option<Reviewer>,
}

type Reply = Response<Full<Bytes>>;

impl State {
    async fn handle(&self, req: Request<Incoming>) -> Reply {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".into());
        }
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let endpoint = parts.next().unwrap_or("");
        let single = parts.next();
        let checks = match endpoint {
            "healthz" | "livez" => &self.live,
            "readyz" => &self.ready,
            "metrics" if single.is_none() => return self.metrics(&req).await,
            _ => return text(StatusCode::NOT_FOUND, "404 page not found\n".into()),
        };
        let (code, body) = match single {
            Some(name) => match healthz::single(endpoint, checks, name) {
                Some(r) => r,
                None => (404, "404 page not found\n".into()),
            },
            None => healthz::report(endpoint, checks, &query),
        };
        text(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
    }

    async fn metrics(&self, req: &Request<Incoming>) -> Reply {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(reviewer) = &self.reviewer else {
            return forbidden("system:anonymous", "/metrics");
        };
        let user = match token {
            None => anonymous(),
            Some(token) => match reviewer.authenticate(token).await {
                Some(user) => user,
                None => return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"),
            },
        };
        if !reviewer.authorize(&user, "/metrics").await {
            let name = user.username.clone().unwrap_or_default();
            return forbidden(&name, "/metrics");
        }
        let families = self.registry.gather();
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        let mut resp = Response::new(Full::new(Bytes::from(out)));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        resp
    }
}

fn anonymous() -> UserInfo {
    UserInfo {
        username: Some("system:anonymous".into()),
        groups: Some(vec!["system:unauthenticated".into()]),
        ..UserInfo::default()
    }
}

fn text(code: StatusCode, body: String) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    resp
}

fn status(code: StatusCode, reason: &str, message: &str) -> Reply {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn forbidden(user: &str, path: &str) -> Reply {
    status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!("forbidden: User \"{user}\" cannot get path \"{path}\""),
    )
}

/// How long review answers are reused (upstream's webhook cache TTLs are 10 s).
const REVIEW_TTL: Duration = Duration::from_secs(10);

/// Delegated authentication and authorization through the API server, with short caches.
struct Reviewer {
    client: kube::Client,
    tokens: Mutex<HashMap<String, (Instant, Option<UserInfo>)>>,
    decisions: Mutex<HashMap<(String, String), (Instant, bool)>>,
}

impl Reviewer {
    fn new(client: kube::Client) -> Self {
        Reviewer {
            client,
            tokens: Mutex::default(),
            decisions: Mutex::default(),
        }
    }

    async fn authenticate(&self, token: &str) -> Option<UserInfo> {
        if let Some((at, user)) = self.tokens.lock().get(token)
            && at.elapsed() < REVIEW_TTL
        {
            return user.clone();
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let user = match api.create(&PostParams::default(), &review).await {
            Ok(r) => r
                .status
                .filter(|s| s.authenticated == Some(true))
                .and_then(|s| s.user),
            Err(e) => {
                tracing::warn!(error = %e, "TokenReview failed");
                return None;
            }
        };
        let mut cache = self.tokens.lock();
        cache.retain(|_, (at, _)| at.elapsed() < REVIEW_TTL);
        cache.insert(token.to_string(), (Instant::now(), user.clone()));
        user
    }

    async fn authorize(&self, user: &UserInfo, path: &str) -> bool {
        let name = user.username.clone().unwrap_or_default();
        let key = (name.clone(), path.to_string());
        if let Some((at, allowed)) = self.decisions.lock().get(&key)
            && at.elapsed() < REVIEW_TTL
        {
            return *allowed;
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(name),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_string()),
                    verb: Some("get".into()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let allowed = match api.create(&PostParams::default(), &review).await {
            Ok(r) => r.status.is_some_and(|s| s.allowed),
            Err(e) => {
                tracing::warn!(error = %e, "SubjectAccessReview failed");
                return false;
            }
        };
        let mut cache = self.decisions.lock();
        cache.retain(|_, (at, _)| at.elapsed() < REVIEW_TTL);
        cache.insert(key, (Instant::now(), allowed));
        allowed
    }
}

/// The TLS configuration: the given files, or a self-signed certificate.
fn tls_config(config: &ServingConfig) -> Result<rustls::ServerConfig, ServingError> {
    let (chain, key) = match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).map_err(|source| ServingError::Read {
                    path: p.clone(),
                    source,
                })
            };
            let tls = |e: pki::PkiError| ServingError::Tls(e.to_string());
            let chain = pki::certs_from_pem(&read(cert)?, &cert.display().to_string()).map_err(tls)?;
            let key = pki::key_from_pem(&read(key)?, &key.display().to_string()).map_err(tls)?;
            (chain, key)
        }
        (None, None) => self_signed(config.bind)?,
        _ => {
            return Err(ServingError::Tls(
                "--tls-cert-file and --tls-private-key-file go together".into(),
            ));
        }
    };
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ServingError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ServingError::Tls(e.to_string()))
}

type CertAndKey = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

fn self_signed(bind: SocketAddr) -> Result<CertAndKey, ServingError> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !bind.ip().is_unspecified() {
        names.push(bind.ip().to_string());
    }
    let cert = rcgen::generate_simple_self_signed(names).map_err(|e| ServingError::Tls(e.to_string()))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    Ok((vec![cert.cert.der().clone()], key))
}

#[cfg(test)]
mod tests;
