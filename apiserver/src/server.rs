//! Serving over TLS: the accept loop (TLS handshake, the client certificate's identity put in every
//! request's extensions), HTTP/1.1 and HTTP/2 via hyper-util, and shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use storage::Storage;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::handler::Authenticated;
use crate::tls::{Pki, TlsError, verified_user};
use crate::{ApiError, ApiServer, Config};

/// Failures starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Certificates or TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Binding the listener or writing the kubeconfig.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Loading the token file or the ServiceAccount signing key.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The encryption provider configuration.
    #[error(transparent)]
    Encryption(#[from] crate::encryption::ConfigError),
    /// Creating the system namespaces.
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] ApiError),
}

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `https://<advertise>:<port>`.
    pub url: String,
    /// `<data-dir>/admin.kubeconfig`.
    pub kubeconfig: PathBuf,
    /// The shared state (table, registry).
    pub api: Arc<ApiServer>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, closes connections and waits for the accept loop.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Waits until the server stops (it only stops through [`RunningServer::shutdown`] or
    /// the token given to [`run`]).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Starts the server: PKI under the data dir, system namespaces, the TLS listener,
/// `<data-dir>/admin.kubeconfig` and one kubeconfig per component (`scheduler`,
/// `controller-manager`, `kube-proxy`, `kubelet`).
pub async fn start(config: Config, storage: Arc<dyn Storage>) -> Result<RunningServer, ServeError> {
    let mut config = config;
    if config.encryption.is_none()
        && let Some(path) = &config.auth.encryption_provider_config
    {
        config.encryption = Some(Arc::new(crate::encryption::Encryption::load(path)?));
    }
    let pki = {
        let dir = config.data_dir.join("pki");
        let sans = config.extra_sans.clone();
        let mut sans = sans;
        if !config.advertise_address.is_empty() {
            sans.push(config.advertise_address.clone());
        }
        tokio::task::spawn_blocking(move || Pki::load_or_create(&dir, &sans))
            .await
            .map_err(|e| ServeError::Io {
                what: "generating certificates".into(),
                source: std::io::Error::other(e),
            })??
    };
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config()?));
    let client_verifier = pki.client_verifier()?;
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| ServeError::Io {
            what: format!("binding {}", config.bind),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Io {
        what: "local address".into(),
        source,
    })?;
    let host = if config.advertise_address.is_empty() {
        addr.ip().to_string()
    } else {
        config.advertise_address.clone()
    };
    let url = if host.contains(':') {
        format!("https://[{host}]:{}", addr.port())
    } else {
        format!("https://{host}:{}", addr.port())
    };
    if config.advertise_address.is_empty() {
        config.advertise_address = format!("{}:{}", host, addr.port());
    }
    let kubeconfig = config.data_dir.join("admin.kubeconfig");
    let api = ApiServer::new(config, storage);
    api.auth.load(&api.config)?;
    api.bootstrap().await?;
    pki.admin_kubeconfig(&url)
        .write(&kubeconfig)
        .map_err(|e| ServeError::Io {
            what: format!("writing {}", kubeconfig.display()),
            source: e.into(),
        })?;
    crate::auth::identities::write_component_kubeconfigs(
        &api.config.data_dir,
        &url,
        &api.config.auth.node_name,
    )?;
    let shutdown = CancellationToken::new();
    crate::crd::spawn(&api, shutdown.clone());
    crate::defaults::alloc::spawn_repair(&api, shutdown.clone());
    let task = tokio::spawn(accept_loop(
        listener,
        (tls, client_verifier),
        api.router(),
        shutdown.clone(),
    ));
    tracing::info!(%url, kubeconfig = %kubeconfig.display(), "API server listening");
    Ok(RunningServer {
        addr,
        url,
        kubeconfig,
        api,
        shutdown,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    (tls, client_verifier): (
        tokio_rustls::TlsAcceptor,
        Arc<dyn rustls::server::danger::ClientCertVerifier>,
    ),
    router: axum::Router,
    shutdown: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let tls = tls.clone();
        let client_verifier = client_verifier.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            let stream = match tls.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let verified = verified_user(&*client_verifier, stream.get_ref().1.peer_certificates());
            let rejected = verified.as_ref().err().map(|e| {
                tracing::debug!(%peer, error = %e, "client certificate rejected");
                crate::auth::RejectedClientCert
            });
            let user = verified.ok().flatten().map(|mut u| {
                if !u.groups.iter().any(|g| g == "system:authenticated") {
                    u.groups.push("system:authenticated".into());
                }
                u
            });
            let identity = Authenticated(user);
            let service =
                hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(identity.clone());
                    req.extensions_mut().insert(crate::auth::PeerAddr(peer));
                    if let Some(r) = rejected {
                        req.extensions_mut().insert(r);
                    }
                    router.clone().oneshot(req.map(axum::body::Body::new))
                });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {}
            }
        });
    }
    conns.shutdown().await;
}
