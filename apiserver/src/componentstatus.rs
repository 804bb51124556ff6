//! `componentstatuses` (`kubectl get cs`, upstream `pkg/registry/core/componentstatus`): not
//! stored, but probed on every get and list. The scheduler and the controller manager are
//! probed on their `/healthz` endpoints (upstream: `https://127.0.0.1:10259` and `:10257`,
//! certificates not verified; the addresses are [`crate::Config::components`]); each member of
//! the store is `etcd-<n>`. A component that does not answer is `Unhealthy` with the probe's
//! error, as upstream reports it.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use storage::{RangeRequest, Storage};
use tokio::net::TcpStream;

use crate::ApiServer;
use crate::error::{ApiError, ApiResult, GroupResource};

/// How long one probe may take (upstream's `probeTimeOut`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Upstream's HTTP prober reads at most this much of a body.
const MAX_BODY: usize = 10 * 1024;

/// A component probed over HTTP(S) for `componentstatuses`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentProbe {
    /// The ComponentStatus name (`scheduler`, `controller-manager`).
    pub name: String,
    /// The health URL, `http` or `https` (certificates are not verified, as upstream).
    pub url: String,
}

impl ComponentProbe {
    /// The components upstream probes, at upstream's default secure ports.
    pub fn defaults() -> Vec<ComponentProbe> {
        vec![
            ComponentProbe {
                name: "controller-manager".into(),
                url: "https://127.0.0.1:10257/healthz".into(),
            },
            ComponentProbe {
                name: "scheduler".into(),
                url: "https://127.0.0.1:10259/healthz".into(),
            },
        ]
    }
}

/// The `Healthy` condition of one component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// What the component answered (or the prober's failure text).
    pub message: String,
    /// An error of the check itself.
    pub error: String,
}

impl Health {
    fn healthy(message: impl Into<String>) -> Health {
        Health {
            status: "True",
            message: message.into(),
            error: String::new(),
        }
    }

    fn unhealthy(message: impl Into<String>, error: impl Into<String>) -> Health {
        Health {
            status: "False",
            message: message.into(),
            error: error.into(),
        }
    }
}

/// The ComponentStatus object of a component.
pub fn object(name: &str, health: &Health) -> Value {
    let mut condition = json!({"type": "Healthy", "status": health.status});
    if !health.message.is_empty() {
        condition["message"] = json!(health.message);
    }
    if !health.error.is_empty() {
        condition["error"] = json!(health.error);
    }
    json!({
        "kind": "ComponentStatus",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "conditions": [condition],
    })
}

/// Every component's status, by name, probed concurrently.
pub async fn list(api: &ApiServer) -> Vec<Value> {
    let store = api.registry.store.kv().clone();
    let probes = api
        .config
        .components
        .iter()
        .map(|c| async move { (c.name.clone(), probe_http(&c.url).await) });
    let (mut all, members) = tokio::join!(futures::future::join_all(probes), probe_store(store));
    all.extend(members);
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.iter().map(|(name, health)| object(name, health)).collect()
}

/// One component's status; an unknown name is a 404.
pub async fn get(api: &ApiServer, name: &str) -> ApiResult<Value> {
    if let Some(c) = api.config.components.iter().find(|c| c.name == name) {
        return Ok(object(name, &probe_http(&c.url).await));
    }
    let members = probe_store(api.registry.store.kv().clone()).await;
    members
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(n, health)| object(&n, &health))
        .ok_or_else(|| ApiError::not_found(&GroupResource::new("", "componentstatuses"), name))
}

/// The store's members as `etcd-<n>` in member-list order. A quorum read through the API
/// server's store proves the member that answered it and the leader; any other member is
/// probed by connecting to its first client URL.
async fn probe_store(store: Arc<dyn Storage>) -> Vec<(String, Health)> {
    let read = RangeRequest {
        key: bytes::Bytes::from_static(b"health"),
        ..Default::default()
    };
    let checked = tokio::time::timeout(PROBE_TIMEOUT, async {
        store.range(read).await?;
        let status = store.status().await?;
        let members = store.member_list().await?;
        Ok::<_, storage::Error>((status, members))
    })
    .await;
    let (status, members) = match checked {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return vec![("etcd-0".into(), Health::unhealthy("", e.to_string()))],
        Err(_) => {
            return vec![(
                "etcd-0".into(),
                Health::unhealthy("", "context deadline exceeded"),
            )];
        }
    };
    let mut out = Vec::new();
    for (n, m) in members.iter().enumerate() {
        let name = format!("etcd-{n}");
        let health = if m.id == status.member_id || m.id == status.leader_id {
            Health::healthy("ok")
        } else {
            match m.client_urls.first() {
                Some(url) => match connect(url).await {
                    Ok(()) => Health::healthy("ok"),
                    Err(e) => Health::unhealthy("", e),
                },
                None => Health::unhealthy("", "member has no client URL"),
            }
        };
        out.push((name, health));
    }
    out
}

/// Connects to a client URL's host and port (Go's `dial tcp` wording on failure).
async fn connect(url: &str) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|e| format!("parse {url:?}: {e}"))?;
    let addr = host_port(&uri);
    match tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial tcp {addr}: connect: {}", io_text(&e))),
        Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
    }
}

fn host_port(uri: &Uri) -> String {
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    });
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An I/O error as Go's syscall errors print (`connection refused`).
fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => {
            let s = e.to_string();
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            s.to_lowercase()
        }
    }
}

/// Upstream's HTTP probe: 2xx is healthy with the body as the message; a redirect stops the
/// probe (`Unknown`); any other status is unhealthy with `HTTP probe failed with statuscode`;
/// a request that fails is unhealthy with Go's `Get "<url>": ...` text as the message.
pub async fn probe_http(url: &str) -> Health {
    match tokio::time::timeout(PROBE_TIMEOUT, fetch(url)).await {
        Ok(Ok((code, body))) if (200..300).contains(&code) => Health::healthy(body),
        Ok(Ok((code, body))) if (300..400).contains(&code) => Health {
            status: "Unknown",
            message: format!("Probe terminated redirects, Response body: {body}"),
            error: String::new(),
        },
        Ok(Ok((code, _))) => Health::unhealthy(format!("HTTP probe failed with statuscode: {code}"), ""),
        Ok(Err(e)) => Health::unhealthy(format!("Get \"{url}\": {e}"), ""),
        Err(_) => Health::unhealthy(
            format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ),
            "",
        ),
    }
}

/// One GET: the status code and the start of the body.
async fn fetch(url: &str) -> Result<(u16, String), String> {
    let uri: Uri = url.parse().map_err(|e| format!("parse {url:?}: {e}"))?;
    let addr = host_port(&uri);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("dial tcp {addr}: connect: {}", io_text(&e)))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let host = uri.authority().map_or(addr.clone(), |a| a.to_string());
    match uri.scheme_str() {
        Some("https") => {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(insecure::AnyCert::new(&provider));
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("tls: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            let server_name =
                rustls::pki_types::ServerName::try_from(uri.host().unwrap_or("127.0.0.1").to_string())
                    .map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(server_name, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            request(tls, &host, &path).await
        }
        Some("http") => request(tcp, &host, &path).await,
        other => Err(format!("unsupported protocol scheme {:?}", other.unwrap_or(""))),
    }
}

async fn request<IO>(io: IO, host: &str, path: &str) -> Result<(u16, String), String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "component probe connection");
        }
    });
    let req = http::Request::get(path)
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "keelson-apiserver componentstatus")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    let mut body = Vec::new();
    let mut stream = resp.into_body();
    while body.len() < MAX_BODY {
        match stream.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    body.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => break,
        }
    }
    body.truncate(MAX_BODY);
    driver.abort();
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// A certificate verifier that accepts any server certificate (upstream's probes use
/// `InsecureSkipVerify`); handshake signatures are still checked.
mod insecure {
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    pub(super) struct AnyCert {
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl AnyCert {
        pub(super) fn new(provider: &CryptoProvider) -> Self {
            AnyCert {
                algorithms: provider.signature_verification_algorithms,
            }
        }
    }

    impl ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_component_not_running_is_unhealthy_with_gos_error_text() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("https://127.0.0.1:{port}/healthz");
        let h = probe_http(&url).await;
        assert_eq!(h.status, "False");
        assert_eq!(
            h.message,
            format!("Get \"{url}\": dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
        assert_eq!(
            object("scheduler", &h)["conditions"][0],
            json!({"type": "Healthy", "status": "False", "message": h.message})
        );
    }

    #[tokio::test]
    async fn the_memory_store_is_one_healthy_member() {
        let store: Arc<dyn Storage> = Arc::new(storage::mem::MemStorage::new());
        assert_eq!(
            probe_store(store).await,
            [("etcd-0".to_string(), Health::healthy("ok"))]
        );
    }
}
