//! `keelson server`: the store, the Kubernetes API server and the components in one process.
//!
//! The store is a single raft member keeping its data under `<data-dir>/store` (or, with
//! `--ephemeral`, an in-memory store and a throwaway data dir). The API server serves TLS on
//! `--bind-address:--secure-port` and writes `<data-dir>/admin.kubeconfig`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use storage::Storage;
use tokio_util::sync::CancellationToken;

/// Flags of `keelson server` (kube-apiserver's names where they fit).
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Where the store, certificates and kubeconfigs live
    /// (default `$XDG_DATA_HOME/keelson`, else `~/.local/share/keelson`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The IP address the API server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// The port the API server serves HTTPS on (0 picks a free port).
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Host name or IP clients use to reach the server (default: the bind address).
    #[arg(long, default_value = "")]
    advertise_address: String,
    /// Extra host names or IPs for the serving certificate, comma-separated.
    #[arg(long, default_value = "")]
    tls_san: String,
    /// Keep everything in memory and in a temporary directory removed on exit.
    #[arg(long)]
    ephemeral: bool,
    /// Serve alpha API versions too.
    #[arg(long)]
    alpha_apis: bool,
    /// Authentication, ServiceAccount tokens and audit.
    #[command(flatten)]
    auth: apiserver::flags::AuthFlags,
    /// The scheduler, the controller-manager and simulated nodes.
    #[command(flatten)]
    components: crate::components::ComponentFlags,
}

/// The default data directory: `$XDG_DATA_HOME/keelson`, else `~/.local/share/keelson`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("keelson");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/keelson"),
        None => PathBuf::from("keelson-data"),
    }
}

/// Runs the store and the API server until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let temp = if args.ephemeral {
        Some(tempfile::Builder::new().prefix("keelson-").tempdir()?)
    } else {
        None
    };
    let data_dir = match (&temp, &args.data_dir) {
        (Some(t), _) => t.path().to_path_buf(),
        (None, Some(d)) => d.clone(),
        (None, None) => default_data_dir(),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;

    let (store, raft) = if args.ephemeral {
        let store: Arc<dyn Storage> = Arc::new(storage::mem::MemStorage::new());
        (store, None)
    } else {
        let raft = start_store(&data_dir.join("store")).await?;
        (crate::store::store_of(&raft), Some(raft))
    };

    let mut config =
        apiserver::Config::new(&data_dir).bind(SocketAddr::new(args.bind_address, args.secure_port));
    config.advertise_address = args.advertise_address.clone();
    config.extra_sans = crate::urls::split_list(&args.tls_san);
    config.alpha_apis = args.alpha_apis;
    args.auth.clone().apply(&mut config.auth);
    let ports = crate::components::Ports::choose(args.secure_port == 0)?;
    config.components = args.components.probes(ports);
    let server = apiserver::start(config, store)
        .await
        .context("starting the API server")?;
    let stop_components = CancellationToken::new();
    let mut components = args.components.start(&data_dir, ports, &stop_components)?;
    println!(
        "Keelson is ready: {} (kubeconfig: {})",
        server.url,
        server.kubeconfig.display()
    );

    let failed = tokio::select! {
        r = crate::store::wait_for_signal() => { r?; None }
        e = crate::components::first_failure(&mut components) => Some(e),
    };
    tracing::info!("shutting down");
    stop_components.cancel();
    let drained = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(r) = components.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::warn!("{e:#}");
            }
        }
    });
    if drained.await.is_err() {
        components.abort_all();
    }
    server.shutdown().await;
    if let Some(raft) = raft {
        crate::store::stop_raft(raft).await;
    }
    drop(temp);
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Starts the single-member store under `dir`; its peer listener only listens on loopback.
#[cfg(feature = "raft")]
async fn start_store(dir: &Path) -> anyhow::Result<crate::store::Raft> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the store's peer port")?;
    let peer_url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
    let config = storage_raft::Config::new("default", dir, peer_url);
    storage_raft::RaftStorage::start_with_listener(config, Some(listener))
        .await
        .context("starting the store")
}

#[cfg(not(feature = "raft"))]
async fn start_store(_: &Path) -> anyhow::Result<crate::store::Raft> {
    anyhow::bail!("this keelson was built without the `raft` feature: run `keelson server --ephemeral`")
}
