//! Keelson's Kubernetes API server.
//!
//! It serves the Kubernetes REST and watch API over any [`storage::Storage`]: discovery (legacy and
//! aggregated), one generic registry driven by a table of resource descriptors generated from
//! k8s-openapi ([`builtin`], [`descriptor`]), JSON/YAML bodies, Tables for `kubectl get`, watch
//! streams, and TLS with client-certificate authentication.
//!
//! ```no_run
//! # async fn demo() -> Result<(), apiserver::ServeError> {
//! use std::sync::Arc;
//! let storage = Arc::new(storage::mem::MemStorage::new());
//! let config = apiserver::Config::new("/tmp/keelson");
//! let server = apiserver::start(config, storage).await?;
//! println!("kubeconfig: {}", server.kubeconfig.display());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! For tests of operators and controllers, the `testing` feature adds
//! [`testing::TestServer`](crate::testing): a complete server in the test process with a ready
//! `kube::Client`, started in milliseconds:
//!
//! ```ignore
//! #[tokio::test]
//! async fn my_operator_reconciles() {
//!     let server = apiserver::testing::TestServer::start().await.unwrap();
//!     let client = server.client();
//!     // install CRDs, run the controller against `client`, assert with await_condition ...
//! }
//! ```

pub mod admission;
pub mod apply;
pub mod auth;
pub mod builtin;
pub mod cache;
pub mod codec;
pub mod componentstatus;
pub mod crd;
pub mod defaults;
pub mod descriptor;
pub mod discovery;
pub mod encryption;
pub mod error;
pub mod field_set;
pub mod flags;
pub mod handler;
pub mod health;
pub mod metrics;
pub mod objstore;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod query;
pub mod registry;
pub mod request_info;
pub mod schema_facts;
pub mod selector;
mod server;
pub mod strategy;
pub mod strict;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod typecheck;
pub mod validation;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use storage::Storage;

pub use error::{ApiError, ApiResult};
pub use registry::subresource::UserInfo;
pub use server::{RunningServer, ServeError, start};

use descriptor::{ResourceTable, version_priority};
use registry::{Registry, RegistryConfig, WriteOptions};

/// The namespaces every cluster starts with.
pub const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Server settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where certificates and the admin kubeconfig live.
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks one).
    pub bind: SocketAddr,
    /// Host name or IP clients use (for the kubeconfig and `/api`); defaults to the bound address.
    pub advertise_address: String,
    /// Extra names/IPs for the serving certificate.
    pub extra_sans: Vec<String>,
    /// Serve alpha API versions too (upstream leaves them off by default).
    pub alpha_apis: bool,
    /// Treat requests without a client certificate as the admin (tests over plain `oneshot`).
    pub allow_unauthenticated: bool,
    /// Registry settings (bookmark interval, watch timeout).
    pub registry: RegistryConfig,
    /// Authentication settings (token file, anonymous access, ServiceAccount issuer and key).
    pub auth: auth::AuthConfig,
    /// Encryption at rest; [`start`] loads it from `auth.encryption_provider_config` when unset.
    pub encryption: Option<Arc<encryption::Encryption>>,
    /// The components `componentstatuses` probes besides the store (default: upstream's
    /// scheduler and controller-manager health endpoints on 127.0.0.1).
    pub components: Vec<componentstatus::ComponentProbe>,
}

impl Config {
    /// Defaults: listen on 127.0.0.1:6443, GA and beta APIs, client certificates required.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 6443)),
            advertise_address: String::new(),
            extra_sans: Vec::new(),
            alpha_apis: false,
            allow_unauthenticated: false,
            registry: RegistryConfig::default(),
            auth: auth::AuthConfig::default(),
            encryption: None,
            components: componentstatus::ComponentProbe::defaults(),
        }
    }

    /// Sets the listen address.
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }
}

/// The admin identity (what the admin client certificate carries).
pub fn admin_user() -> UserInfo {
    UserInfo {
        name: "admin".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
        ..Default::default()
    }
}

/// The API server's shared state: the descriptor table and the registry.
#[derive(Debug)]
pub struct ApiServer {
    /// Settings.
    pub config: Config,
    /// The served resources.
    pub table: Arc<ResourceTable>,
    /// The generic registry.
    pub registry: Registry,
    /// Authentication and RBAC state.
    pub auth: auth::Auth,
}

impl ApiServer {
    /// A server over `storage` with every built-in row installed.
    pub fn new(config: Config, storage: Arc<dyn Storage>) -> Arc<ApiServer> {
        let table = Arc::new(ResourceTable::new());
        for row in builtin::rows() {
            let alpha = version_priority(&row.version).0 == 2;
            if config.alpha_apis || !alpha {
                table.install(row);
            }
        }
        crd::attach(&table);
        let encrypted = config
            .encryption
            .as_ref()
            .map(|e| Arc::new(encryption::EncryptedStorage::new(storage.clone(), e.clone())));
        let storage = encrypted.clone().map_or(storage, |e| e as Arc<dyn Storage>);
        let mut registry = Registry::new(storage, table.clone(), config.registry.clone());
        if let Some(e) = encrypted {
            registry.store = objstore::ObjectStore::encrypted(e);
        }
        let auth = auth::Auth::new(&config);
        Arc::new(ApiServer {
            config,
            table,
            registry,
            auth,
        })
    }

    /// The axum router (no TLS): use with `tower::ServiceExt::oneshot` in tests, or serve it.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        handler::router(self.clone())
    }

    /// Creates the system namespaces that do not exist yet, reconciles the bootstrap RBAC policy
    /// and starts the RBAC caches (returning once they hold the current state).
    pub async fn bootstrap(&self) -> ApiResult<()> {
        auth::cache::start(&self.registry, &self.table, &self.auth.policy, &self.auth.synced);
        let ns = self
            .table
            .lookup("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("namespaces are not served"))?;
        for name in SYSTEM_NAMESPACES {
            let body =
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match self
                .registry
                .create(
                    &ns,
                    "",
                    body,
                    &WriteOptions {
                        field_manager: "kube-apiserver".into(),
                        ..WriteOptions::default()
                    },
                )
                .await
            {
                Ok(_) => tracing::info!(namespace = name, "created system namespace"),
                Err(e) if e.reason() == "AlreadyExists" => {}
                Err(e) => return Err(e),
            }
        }
        // After the namespaces: some bootstrap Roles live in kube-system and kube-public.
        auth::bootstrap::reconcile(self).await?;
        admission::priority::ensure_system_classes(&self.registry).await?;
        self.auth.synced.wait().await;
        defaults::bootstrap::ensure_kubernetes_service(self).await
    }
}
