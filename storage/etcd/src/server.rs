//! Serving the services on a listener, over plain HTTP/2 or TLS with client certificates.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_client::proto::{PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer};
use storage::Storage;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::cluster::ClusterService;
use crate::header::Headers;
use crate::kv::KvService;
use crate::lease::LeaseService;
use crate::maintenance::MaintenanceService;
use crate::watch::WatchService;
use crate::{Options, Shared};

/// etcd lets gRPC messages exceed `--max-request-bytes` by this much, so an oversized request
/// reaches the server and is refused with etcd's own error.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// How often the cached raft term of response headers is refreshed.
const HEADER_REFRESH: Duration = Duration::from_secs(1);
/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 keep-alive pings (etcd's `--grpc-keepalive-interval` default is 2h; a shorter one finds
/// dead clients, and their watchers, sooner).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// Failures starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not describe itself.
    #[error("storage: {0}")]
    Storage(#[from] storage::Error),
    /// Binding or accepting failed.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The HTTP/2 server failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The etcd API of one store.
#[derive(Clone)]
pub struct EtcdServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EtcdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdServer")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl EtcdServer {
    /// The API over `store`. Every stream it serves ends when `shutdown` is cancelled.
    pub async fn new(
        store: Arc<dyn Storage>,
        options: Options,
        shutdown: CancellationToken,
    ) -> Result<Self, ServeError> {
        let headers = Headers::new(store.clone(), options.cluster_id).await?;
        let shared = Arc::new(Shared {
            store,
            headers,
            options,
            shutdown,
        });
        tokio::spawn(refresh_headers(Arc::downgrade(&shared)));
        Ok(EtcdServer { shared })
    }

    /// The cluster ID in response headers.
    pub fn cluster_id(&self) -> u64 {
        self.shared.headers.cluster_id()
    }

    /// The member ID in response headers.
    pub fn member_id(&self) -> u64 {
        self.shared.headers.member_id()
    }

    /// Serves on `listener` until the shutdown token is cancelled. With `tls`, every connection
    /// is a TLS connection (client certificates are checked by the config's verifier); ALPN `h2`
    /// is added when the config names no protocol.
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<(), ServeError> {
        let max_decode = self.shared.options.max_request_bytes + GRPC_OVERHEAD_BYTES;
        let shared = &self.shared;
        let router = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .tcp_nodelay(true)
            .add_service(
                PbKvServer::new(KvService {
                    shared: shared.clone(),
                })
                .max_decoding_message_size(max_decode),
            )
            .add_service(
                PbWatchServer::new(WatchService {
                    shared: shared.clone(),
                })
                .max_decoding_message_size(max_decode),
            )
            .add_service(
                PbLeaseServer::new(LeaseService {
                    shared: shared.clone(),
                })
                .max_decoding_message_size(max_decode),
            )
            .add_service(
                PbClusterServer::new(ClusterService {
                    shared: shared.clone(),
                })
                .max_decoding_message_size(max_decode),
            )
            .add_service(
                PbMaintenanceServer::new(MaintenanceService {
                    shared: shared.clone(),
                })
                .max_decoding_message_size(max_decode),
            );
        let shutdown = self.shared.shutdown.clone();
        let (tx, rx) = mpsc::channel::<io::Result<Conn>>(64);
        let acceptor = tokio::spawn(accept_loop(listener, tls.map(with_h2), tx, shutdown.clone()));
        let result = router
            .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown.cancelled_owned())
            .await;
        acceptor.abort();
        result.map_err(ServeError::from)
    }
}

/// Keeps the cached raft term and revision of response headers fresh (responses that carry a
/// revision of their own do not ask the store for its term).
async fn refresh_headers(shared: std::sync::Weak<Shared>) {
    loop {
        let Some(token) = shared.upgrade().map(|s| s.shutdown.clone()) else {
            return;
        };
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(HEADER_REFRESH) => {}
        }
        let Some(s) = shared.upgrade() else { return };
        s.headers.current().await;
    }
}

/// Adds ALPN `h2` (gRPC clients ask for it) when the config has no protocol list.
fn with_h2(config: Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    if !config.alpn_protocols.is_empty() {
        return config;
    }
    let mut c = (*config).clone();
    c.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(c)
}

/// Accepts connections and hands them to the server; TLS handshakes run on their own tasks so a
/// slow client cannot hold up others.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    tx: mpsc::Sender<io::Result<Conn>>,
    shutdown: CancellationToken,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                tracing::warn!(error = %e, "accepting a client connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match &acceptor {
            None => {
                if tx.send(Ok(conn(Io::Plain(stream)))).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Ok(conn(Io::Tls(Box::new(tls))))).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// A client connection, plain or TLS, whose writes are coalesced (see [`crate::coalesce`]) and
/// whose header blocks get a valid `:authority` (see [`crate::authority`]).
type Conn = crate::coalesce::Coalesced<crate::authority::AuthorityFix<Io>>;

fn conn(io: Io) -> Conn {
    crate::coalesce::Coalesced::new(crate::authority::AuthorityFix::new(io))
}

/// A client connection, plain or TLS.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Io {
    fn tcp(&self) -> &TcpStream {
        match self {
            Io::Plain(s) => s,
            Io::Tls(s) => s.get_ref().0,
        }
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().get_ref().tcp().connect_info()
    }
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
