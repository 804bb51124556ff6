//! HTTP/2 between members: a client that keeps one multiplexed connection per peer, and the
//! accept loop of the peer listener. TLS (mutual, see [`crate::tls`]) for `https://` URLs;
//! `http://` (HTTP/2 with prior knowledge) only when the configuration allows it.
//!
//! Bodies are postcard-encoded request and response types; the path names the call.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Largest request or response body accepted (raft snapshot chunks and append batches).
pub const MAX_BODY: usize = 256 << 20;
const STREAM_WINDOW: u32 = 8 << 20;
const CONN_WINDOW: u32 = 32 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Failures of a peer call.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be connected to.
    #[error("peer {url} unreachable: {reason}")]
    Unreachable {
        /// The peer URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer in time.
    #[error("peer call timed out")]
    Timeout,
    /// The connection failed during the call.
    #[error("peer call failed: {0}")]
    Http(String),
    /// The peer answered with an error status.
    #[error("peer answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The body.
        message: String,
    },
    /// The URL is not usable.
    #[error("bad peer URL {0}")]
    BadUrl(String),
}

/// A parsed peer URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerUrl {
    /// `true` for `https`.
    pub tls: bool,
    /// Host (without IPv6 brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl PeerUrl {
    /// Parses `https://host:port` or `http://host:port` (a trailing path is ignored).
    pub fn parse(url: &str) -> Result<PeerUrl, TransportError> {
        let bad = || TransportError::BadUrl(url.to_string());
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let tls = match scheme {
            "https" => true,
            "http" => false,
            _ => return Err(bad()),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once("]:").ok_or_else(bad)?;
            (h.to_string(), p)
        } else {
            let (h, p) = authority.rsplit_once(':').ok_or_else(bad)?;
            (h.to_string(), p)
        };
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(PeerUrl { tls, host, port })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

type Conn = SendRequest<Full<Bytes>>;

/// Calls peers. One HTTP/2 connection per peer URL, shared by all calls.
pub struct PeerClient {
    tls: Option<TlsConnector>,
    allow_plain: bool,
    conns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Conn>>>>>,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl PeerClient {
    /// A client using `tls` for `https://` peers; `allow_plain` permits `http://` peers.
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>, allow_plain: bool) -> PeerClient {
        PeerClient {
            tls: tls.map(TlsConnector::from),
            allow_plain,
            conns: Mutex::new(HashMap::new()),
        }
    }

    async fn connect(&self, url: &PeerUrl, raw: &str) -> Result<Conn, TransportError> {
        let unreachable = |reason: String| TransportError::Unreachable {
            url: raw.to_string(),
            reason,
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((url.host.as_str(), url.port)))
            .await
            .map_err(|_| unreachable("connect timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let builder = {
            let mut b = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
            b.timer(hyper_util::rt::TokioTimer::new())
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONN_WINDOW)
                .max_frame_size(1 << 20)
                .keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(10));
            b
        };
        if url.tls {
            let connector = self
                .tls
                .as_ref()
                .ok_or_else(|| unreachable("no TLS configured for https peers".into()))?;
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|_| TransportError::BadUrl(raw.to_string()))?;
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| unreachable("TLS handshake timed out".into()))?
                .map_err(|e| unreachable(format!("TLS: {e}")))?;
            let (send, conn) = builder
                .handshake(TokioIo::new(stream))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "peer connection closed");
                }
            });
            Ok(send)
        } else {
            if !self.allow_plain {
                return Err(unreachable("plain http peers are not allowed".into()));
            }
            let (send, conn) = builder
                .handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "peer connection closed");
                }
            });
            Ok(send)
        }
    }

    async fn sender(&self, raw: &str, url: &PeerUrl) -> Result<Conn, TransportError> {
        let slot = self.conns.lock().entry(raw.to_string()).or_default().clone();
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.as_ref()
            && !conn.is_closed()
        {
            return Ok(conn.clone());
        }
        let conn = self.connect(url, raw).await?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    fn forget(&self, raw: &str) {
        self.conns.lock().remove(raw);
    }

    /// POSTs `body` to `path` on the peer at `peer_url`, waiting at most `timeout`.
    pub async fn call(
        &self,
        peer_url: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        match tokio::time::timeout(timeout, self.call_inner(peer_url, path, body)).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout),
        }
    }

    async fn call_inner(&self, peer_url: &str, path: &str, body: Vec<u8>) -> Result<Bytes, TransportError> {
        let url = PeerUrl::parse(peer_url)?;
        let mut conn = self.sender(peer_url, &url).await?;
        let uri = format!(
            "{}://{}{}",
            if url.tls { "https" } else { "http" },
            url.authority(),
            path
        );
        let req = Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| TransportError::Http(e.to_string()))?;
        if let Err(e) = conn.ready().await {
            self.forget(peer_url);
            return Err(TransportError::Unreachable {
                url: peer_url.to_string(),
                reason: e.to_string(),
            });
        }
        let resp = match conn.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.forget(peer_url);
                return Err(TransportError::Http(e.to_string()));
            }
        };
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| TransportError::Http(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(TransportError::Status {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(body)
    }
}

/// Serves peer calls: `handle(path, body)` answers with a body or an error status and message.
pub trait PeerHandler: Send + Sync + 'static {
    /// Handles one call.
    fn handle(
        &self,
        path: String,
        body: Bytes,
    ) -> impl Future<Output = Result<Vec<u8>, (StatusCode, String)>> + Send;
}

/// Runs the peer listener until `shutdown` resolves.
pub async fn serve<H: PeerHandler>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let handler = handler.clone();
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(dispatch(handler, req).await) }
            });
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONN_WINDOW)
                .max_frame_size(1 << 20)
                .max_concurrent_streams(1024);
            let result = match acceptor {
                Some(acceptor) => match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => builder.serve_connection(TokioIo::new(stream), service).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "peer TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                None => builder.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "peer connection ended");
            }
        });
    }
    conns.abort_all();
}

async fn dispatch<H: PeerHandler>(handler: Arc<H>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(StatusCode::BAD_REQUEST, e.to_string().into_bytes()),
    };
    match handler.handle(path, body).await {
        Ok(out) => reply(StatusCode::OK, out),
        Err((status, message)) => reply(status, message.into_bytes()),
    }
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_parse() {
        assert_eq!(
            PeerUrl::parse("https://10.0.0.1:2380").unwrap(),
            PeerUrl {
                tls: true,
                host: "10.0.0.1".into(),
                port: 2380
            }
        );
        assert_eq!(
            PeerUrl::parse("http://[::1]:7/x").unwrap(),
            PeerUrl {
                tls: false,
                host: "::1".into(),
                port: 7
            }
        );
        assert!(PeerUrl::parse("ftp://a:1").is_err());
        assert!(PeerUrl::parse("https://a").is_err());
        assert!(PeerUrl::parse("https://:1").is_err());
    }
}
