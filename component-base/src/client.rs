//! Building the component's `kube::Client`: from a kubeconfig file, the in-cluster
//! ServiceAccount config, or the environment (`$KUBECONFIG`, `~/.kube/config`), with the
//! component's user agent and a client-side rate limit.

use std::path::PathBuf;

use http::{HeaderName, HeaderValue};
use kube::client::ClientBuilder;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use crate::ratelimit::RateLimitLayer;

/// Where the client's configuration comes from and how fast it may talk.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// A kubeconfig file; `None` means the in-cluster config when running in a pod, else the
    /// environment (`$KUBECONFIG`, then `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// Overrides the server URL of the kubeconfig (upstream's `--master`).
    pub master: Option<String>,
    /// Sustained requests per second (client-go's `QPS`); 0 or less disables the limit.
    pub qps: f32,
    /// Requests allowed at once above the sustained rate (client-go's `Burst`).
    pub burst: u32,
    /// The `User-Agent` header, e.g. `kube-scheduler/v1.37.0 (keelson)`.
    pub user_agent: String,
}

/// Failures building a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file could not be read or parsed.
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No configuration could be found (no kubeconfig, not in a cluster).
    #[error("no API server configuration: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    /// `--master` is not a URL.
    #[error("--master {url:?} is not a URL: {source}")]
    Master {
        /// The value given.
        url: String,
        /// The cause.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The user agent is not a valid header value.
    #[error("user agent {0:?} is not a valid header value")]
    UserAgent(String),
    /// The HTTP client could not be built (TLS material in the config).
    #[error("building the API client: {0}")]
    Build(#[from] kube::Error),
}

/// Reads the configuration [`ClientSettings`] names.
pub async fn load_config(settings: &ClientSettings) -> Result<Config, ClientError> {
    let mut config = match &settings.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|source| ClientError::Kubeconfig {
                path: path.clone(),
                source,
            })?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|source| ClientError::Kubeconfig {
                    path: path.clone(),
                    source,
                })?
        }
        None => Config::infer().await?,
    };
    if let Some(master) = &settings.master {
        config.cluster_url = master.parse().map_err(|source| ClientError::Master {
            url: master.clone(),
            source,
        })?;
    }
    let agent = HeaderValue::from_str(&settings.user_agent)
        .map_err(|_| ClientError::UserAgent(settings.user_agent.clone()))?;
    config
        .headers
        .retain(|(name, _)| name != http::header::USER_AGENT);
    config
        .headers
        .push((HeaderName::from_static("user-agent"), agent));
    Ok(config)
}

/// Builds the client: [`load_config`], then the rate limit in front of every request.
pub async fn build_client(settings: &ClientSettings) -> Result<kube::Client, ClientError> {
    let config = load_config(settings).await?;
    client_from_config(config, settings.qps, settings.burst)
}

/// Builds a client from a ready configuration with a QPS/burst limit.
pub fn client_from_config(config: Config, qps: f32, burst: u32) -> Result<kube::Client, ClientError> {
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&RateLimitLayer::new(qps, burst))
        .build())
}
