//! `keelson store`: one store member serving the etcd v3 API on its client URLs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use storage::Storage;
use storage_etcd::{EtcdServer, Options};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::urls::{ListenUrl, parse_duration, split_list};

/// How long serving tasks get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Flags of `keelson store` (etcd's names).
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// This member's name.
    #[arg(long, default_value = "default")]
    name: String,
    /// Where the member keeps its data (default `<name>.keelson`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// URLs to serve the etcd API on, comma-separated; port 0 picks a free port.
    #[arg(long, default_value = "https://127.0.0.1:2379")]
    listen_client_urls: String,
    /// Client URLs this member advertises (default: the listen URLs, with their bound ports).
    #[arg(long)]
    advertise_client_urls: Option<String>,
    /// URL to serve raft peers on (one); port 0 picks a free port.
    #[arg(long, default_value = "https://127.0.0.1:2380")]
    listen_peer_urls: String,
    /// The peer URL other members reach this one on (default: the listen peer URL).
    #[arg(long)]
    initial_advertise_peer_urls: Option<String>,
    /// The founding members: `name=peer-url,...` (default: this member alone).
    #[arg(long, default_value = "")]
    initial_cluster: String,
    /// `new` to found a cluster, `existing` to join one (after `member add`).
    #[arg(long, default_value = "new", value_parser = ["new", "existing"])]
    initial_cluster_state: String,
    /// The PKI directory (CA and certificates; default `<data-dir>/pki`). Members share its CA.
    #[arg(long)]
    pki_dir: Option<PathBuf>,
    /// Keep everything in memory (no raft, no disk): for tests and throwaway stores.
    #[arg(long)]
    memory: bool,
    /// Interval of progress notifications to watchers that asked for them.
    #[arg(long = "experimental-watch-progress-notify-interval", default_value = "10m")]
    progress_notify_interval: String,
}

impl StoreArgs {
    /// How many of the founding members run on this machine: those whose peer URL names this
    /// member's peer host (any loopback address counting as the same host), at least one.
    pub fn members_on_this_machine(&self) -> usize {
        let own = self
            .initial_advertise_peer_urls
            .as_deref()
            .unwrap_or(&self.listen_peer_urls);
        let own = split_list(own);
        let [own] = own.as_slice() else {
            return 1;
        };
        let Ok(own) = ListenUrl::parse(own) else {
            return 1;
        };
        let Ok(cluster) = crate::urls::parse_initial_cluster(&self.initial_cluster) else {
            return 1;
        };
        cluster
            .iter()
            .filter_map(|(_, url)| ListenUrl::parse(url).ok())
            .filter(|peer| peer.same_host(&own))
            .count()
            .max(1)
    }
}

/// A bound client listener.
struct ClientListener {
    url: ListenUrl,
    listener: TcpListener,
    advertised: String,
}

/// Runs a member until SIGINT or SIGTERM.
pub async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.keelson", args.name)));
    let pki_dir = args.pki_dir.clone().unwrap_or_else(|| data_dir.join("pki"));
    let progress_notify_interval = parse_duration(&args.progress_notify_interval)?;

    let mut clients = Vec::new();
    for raw in split_list(&args.listen_client_urls) {
        let url = ListenUrl::parse(&raw)?;
        let listener = TcpListener::bind(url.bind_addr())
            .await
            .with_context(|| format!("binding client URL {raw}"))?;
        let port = listener.local_addr()?.port();
        clients.push(ClientListener {
            advertised: url.with_port(port),
            url,
            listener,
        });
    }
    if clients.is_empty() {
        bail!("--listen-client-urls names no URL");
    }
    let advertised: Vec<String> = match &args.advertise_client_urls {
        Some(list) => split_list(list),
        None => clients.iter().map(|c| c.advertised.clone()).collect(),
    };

    let (store, raft, peer_url) = if args.memory {
        let store: Arc<dyn Storage> = Arc::new(storage::mem::MemStorage::new());
        (store, None, String::new())
    } else {
        let (raft, peer_url) = start_raft(&args, &data_dir, &pki_dir, &advertised).await?;
        let store: Arc<dyn Storage> = store_of(&raft);
        (store, Some(raft), peer_url)
    };

    let tls = if clients.iter().any(|c| c.url.tls) {
        Some(client_tls(&pki_dir, &args.name, &advertised).await?)
    } else {
        None
    };
    for c in &clients {
        if !c.url.tls && !c.url.is_loopback() {
            tracing::warn!(url = %c.advertised, "serving the etcd API without TLS on a non-loopback address");
        }
    }

    let shutdown = CancellationToken::new();
    let options = Options {
        progress_notify_interval,
        ..Options::default()
    };
    let server = EtcdServer::new(store, options, shutdown.clone())
        .await
        .context("starting the etcd API")?;
    let mut tasks = Vec::new();
    for c in clients {
        let server = server.clone();
        let tls = if c.url.tls { tls.clone() } else { None };
        let url = c.advertised.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = server.serve(c.listener, tls).await {
                tracing::error!(%url, error = %e, "etcd API listener failed");
            }
        }));
    }

    println!(
        "keelson store ready: name={} member_id={:x} cluster_id={:x} client_urls={} peer_url={}",
        args.name,
        server.member_id(),
        server.cluster_id(),
        advertised.join(","),
        peer_url,
    );

    wait_for_signal().await?;
    tracing::info!("shutting down");
    shutdown.cancel();
    for task in tasks {
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            tracing::warn!("a listener did not stop in time");
        }
    }
    if let Some(raft) = raft {
        stop_raft(raft).await;
    }
    Ok(())
}

/// A running raft member (nothing, in builds without the `raft` feature).
#[cfg(feature = "raft")]
pub(crate) type Raft = Arc<storage_raft::RaftStorage>;
/// A running raft member (nothing, in builds without the `raft` feature).
#[cfg(not(feature = "raft"))]
pub(crate) type Raft = std::convert::Infallible;

#[cfg(feature = "raft")]
pub(crate) fn store_of(raft: &Raft) -> Arc<dyn Storage> {
    raft.clone()
}

#[cfg(not(feature = "raft"))]
pub(crate) fn store_of(raft: &Raft) -> Arc<dyn Storage> {
    match *raft {}
}

#[cfg(feature = "raft")]
pub(crate) async fn stop_raft(raft: Raft) {
    raft.shutdown().await;
}

#[cfg(not(feature = "raft"))]
pub(crate) async fn stop_raft(raft: Raft) {
    match raft {}
}

#[cfg(not(feature = "raft"))]
async fn start_raft(_: &StoreArgs, _: &Path, _: &Path, _: &[String]) -> anyhow::Result<(Raft, String)> {
    bail!("this keelson was built without the `raft` feature: run the store with --memory")
}

#[cfg(not(feature = "raft"))]
async fn client_tls(_: &Path, _: &str, _: &[String]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    bail!(
        "this keelson was built without the `raft` feature, which issues TLS certificates: use http:// URLs"
    )
}

/// Starts the raft member; returns it and the peer URL it advertises.
#[cfg(feature = "raft")]
async fn start_raft(
    args: &StoreArgs,
    data_dir: &Path,
    pki_dir: &Path,
    client_urls: &[String],
) -> anyhow::Result<(Arc<storage_raft::RaftStorage>, String)> {
    let listen_list = split_list(&args.listen_peer_urls);
    let [listen] = listen_list.as_slice() else {
        bail!("--listen-peer-urls must name exactly one URL")
    };
    let listen_url = ListenUrl::parse(listen)?;
    let listener = std::net::TcpListener::bind(listen_url.bind_addr())
        .with_context(|| format!("binding peer URL {listen}"))?;
    let bound = listen_url.with_port(listener.local_addr()?.port());
    let advertise = match &args.initial_advertise_peer_urls {
        Some(list) => {
            let items = split_list(list);
            let [one] = items.as_slice() else {
                bail!("--initial-advertise-peer-urls must name exactly one URL")
            };
            ListenUrl::parse(one)?;
            one.clone()
        }
        None => bound.clone(),
    };
    let initial_cluster = crate::urls::parse_initial_cluster(&args.initial_cluster)?;
    let mut config = storage_raft::Config::new(args.name.clone(), data_dir, bound);
    config.advertise_peer_url = advertise.clone();
    config.client_urls = client_urls.to_vec();
    config.initial_cluster = initial_cluster;
    config.join = args.initial_cluster_state == "existing";
    config.pki_dir = Some(pki_dir.to_path_buf());
    let plain = std::iter::once(advertise.as_str())
        .chain(config.initial_cluster.iter().map(|(_, u)| u.as_str()))
        .chain(std::iter::once(listen.as_str()))
        .any(|u| u.starts_with("http://"));
    if plain {
        tracing::warn!("plain http peer URLs: raft traffic is not encrypted");
        config.allow_plain_http = true;
    }
    let raft = storage_raft::RaftStorage::start_with_listener(config, Some(listener))
        .await
        .context("starting the raft member")?;
    Ok((raft, advertise))
}

/// The TLS config of the client listeners: a certificate for the advertised hosts signed by the
/// member CA, and client certificates required (etcd's `--client-cert-auth`). Also issues a
/// client certificate `client.crt` / `client.key` in the PKI directory for tools, once.
#[cfg(feature = "raft")]
async fn client_tls(
    pki_dir: &Path,
    name: &str,
    urls: &[String],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let pki_dir = pki_dir.to_path_buf();
    let name = format!("{name}-client-api");
    let hosts = storage_raft::tls::hosts_of(urls.iter().map(String::as_str));
    use storage_raft::tls::{ClientAuth, Identity};
    let config = tokio::task::spawn_blocking(move || -> anyhow::Result<rustls::ServerConfig> {
        let identity = Identity::issue(&pki_dir, &name, &hosts)?;
        if !pki_dir.join("client.crt").exists() {
            Identity::issue(&pki_dir, "client", &[])?;
        }
        Ok(identity.server_config(ClientAuth::Required)?)
    })
    .await
    .context("issuing the client listener certificate")??;
    Ok(Arc::new(config))
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
