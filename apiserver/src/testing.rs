//! A complete Keelson API server inside a test process, for operator and controller tests: an
//! in-memory store, a random loopback port, TLS with the admin client certificate, and a ready
//! [`kube::Client`]. No binaries, no containers; it starts in milliseconds. Enable the `testing`
//! feature (`apiserver = { ..., features = ["testing"] }` in `[dev-dependencies]`).
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::{Api, PostParams};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = apiserver::testing::TestServer::start().await.expect("server starts");
//! let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("settings".into());
//! cms.create(&PostParams::default(), &cm).await.unwrap();
//! assert!(cms.get("settings").await.is_ok());
//! server.shutdown().await;
//! # }
//! ```
//!
//! Measured (release, loopback, 2-core VM): start to first successful request ≈ 2 ms; 1 000
//! custom-resource creates ≈ 50 ms sequentially. Reproduce with
//! `cargo test -p apiserver --release --features testing --test testing -- --ignored --nocapture`.
//!
//! Custom resources work as against kube-apiserver: create the CRD (for example from
//! `#[derive(CustomResource)]`), wait for its `Established` condition with
//! `kube::runtime::wait::await_condition`, then use `Api<YourKind>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{ApiServer, Config, RunningServer, ServeError};

/// Failures starting a test server.
#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    /// The temporary directory for certificates.
    #[error("temporary directory: {0}")]
    TempDir(#[from] std::io::Error),
    /// The server itself.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// Reading the generated kubeconfig.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// Building the client.
    #[error("client: {0}")]
    Client(#[from] kube::Error),
}

/// A running in-process API server and a client for it. Dropping it stops the server.
pub struct TestServer {
    server: Option<RunningServer>,
    client: kube::Client,
    kubeconfig: Kubeconfig,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server over a fresh in-memory store on `127.0.0.1:0`.
    pub async fn start() -> Result<TestServer, TestingError> {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `configure` adjusted its settings (bind address and data dir are
    /// chosen here).
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Result<TestServer, TestingError> {
        let dir = tempfile::tempdir()?;
        let mut config = Config::new(dir.path()).bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        configure(&mut config);
        let storage = Arc::new(storage::mem::MemStorage::new());
        let server = crate::start(config, storage).await?;
        let kubeconfig = Kubeconfig::read_from(&server.kubeconfig)?;
        let client_config =
            kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &KubeConfigOptions::default()).await?;
        let client = kube::Client::try_from(client_config)?;
        Ok(TestServer {
            server: Some(server),
            client,
            kubeconfig,
            _dir: dir,
        })
    }

    /// A client authenticated as the admin (`system:masters`), default namespace `default`.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig (certificates embedded).
    pub fn kubeconfig(&self) -> &Kubeconfig {
        &self.kubeconfig
    }

    /// Path of the admin kubeconfig file (for `kubectl --kubeconfig`); valid while the server runs.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.running().map(|s| s.kubeconfig.clone()).unwrap_or_default()
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        self.running().map_or("", |s| s.url.as_str())
    }

    /// The server's shared state (resource table, registry), for white-box assertions.
    pub fn api(&self) -> Option<&Arc<ApiServer>> {
        self.running().map(|s| &s.api)
    }

    fn running(&self) -> Option<&RunningServer> {
        self.server.as_ref()
    }

    /// The data directory (certificates, kubeconfig).
    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown_token().cancel();
        }
    }
}
