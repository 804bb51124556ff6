//! Helpers for in-process clusters on loopback (port 0) with temp dirs.

#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use storage::{PutRequest, RangeRequest, Storage, prefix_end};
use storage_raft::{Config, RaftStorage};
use tempfile::TempDir;

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Fast timings for tests.
pub fn test_config(name: &str, dir: PathBuf, url: &str, pki: PathBuf) -> Config {
    let mut c = Config::new(name, dir, url);
    c.pki_dir = Some(pki);
    c.heartbeat_interval = Duration::from_millis(50);
    c.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    c.request_timeout = Duration::from_secs(3);
    c
}

/// Binds a loopback listener on port 0 and returns it with its https URL.
pub fn listener() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("https://{}", l.local_addr().expect("local addr"));
    (l, url)
}

/// Re-binds the port of `url` (for restarting a member on the same address).
pub fn rebind(url: &str) -> std::net::TcpListener {
    let addr = url.trim_start_matches("https://").trim_start_matches("http://");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot rebind {addr}: {e}"),
        }
    }
}

/// A group of members in one process. Members are shut down on drop (best effort).
pub struct Cluster {
    pub dir: TempDir,
    pub configs: Vec<Config>,
    pub nodes: Vec<Option<Arc<RaftStorage>>>,
}

impl Cluster {
    /// Starts `n` founding members over mTLS.
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, |_| {}).await
    }

    /// Starts `n` founding members, letting the caller adjust each configuration.
    pub async fn start_with(n: usize, tweak: impl Fn(&mut Config)) -> Cluster {
        init_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        storage_raft::tls::ensure_ca(&pki).expect("CA");
        let listeners: Vec<_> = (0..n).map(|_| listener()).collect();
        let initial: Vec<(String, String)> = listeners
            .iter()
            .enumerate()
            .map(|(i, (_, url))| (format!("m{i}"), url.clone()))
            .collect();
        let mut configs = Vec::new();
        let mut starts = Vec::new();
        for (i, (l, url)) in listeners.into_iter().enumerate() {
            let mut c = test_config(
                &format!("m{i}"),
                dir.path().join(format!("m{i}")),
                &url,
                pki.clone(),
            );
            c.initial_cluster = initial.clone();
            c.client_urls = vec![format!("https://127.0.0.1:{}", 40000 + i)];
            tweak(&mut c);
            configs.push(c.clone());
            starts.push(tokio::spawn(RaftStorage::start_with_listener(c, Some(l))));
        }
        let mut nodes = Vec::new();
        for s in starts {
            nodes.push(Some(s.await.expect("join").expect("start member")));
        }
        let cluster = Cluster { dir, configs, nodes };
        cluster.wait_leader(Duration::from_secs(10)).await;
        cluster
    }

    pub fn node(&self, i: usize) -> &Arc<RaftStorage> {
        self.nodes[i].as_ref().expect("member is running")
    }

    /// Index of the member every running member agrees leads.
    pub async fn wait_leader(&self, within: Duration) -> usize {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect();
        wait_for(within, "a leader all running members agree on", || async {
            let ids: Vec<_> = running.iter().map(|i| self.node(*i).leader_id()).collect();
            let first = ids[0]?;
            if ids.iter().any(|l| *l != Some(first)) {
                return None;
            }
            running.iter().copied().find(|i| self.node(*i).id() == first)
        })
        .await
    }

    /// Index of some running member that does not lead.
    pub async fn follower(&self) -> usize {
        let leader = self.wait_leader(Duration::from_secs(10)).await;
        (0..self.nodes.len())
            .find(|i| *i != leader && self.nodes[*i].is_some())
            .expect("a follower")
    }

    /// Stops member `i` (like a kill: its listener goes away).
    pub async fn stop(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.shutdown().await;
        }
    }

    /// Restarts member `i` on its data dir and address.
    pub async fn restart(&mut self, i: usize) {
        let c = self.configs[i].clone();
        let l = rebind(&c.advertise_peer_url);
        self.nodes[i] = Some(
            RaftStorage::start_with_listener(c, Some(l))
                .await
                .expect("restart member"),
        );
    }
}

/// Polls `check` until it returns `Some`, panicking after `within`.
pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn put(s: &dyn Storage, key: &str, value: &str) -> storage::Result<u64> {
    let resp = s
        .put(PutRequest {
            key: key.to_owned().into(),
            value: value.to_owned().into(),
            ..Default::default()
        })
        .await?;
    Ok(resp.revision)
}

pub async fn get(s: &dyn Storage, key: &str) -> Option<String> {
    let resp = s
        .range(RangeRequest {
            key: key.to_owned().into(),
            ..Default::default()
        })
        .await
        .expect("range");
    resp.kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

pub async fn get_serializable(s: &dyn Storage, key: &str) -> Option<String> {
    let resp = s
        .range(RangeRequest {
            key: key.to_owned().into(),
            serializable: true,
            ..Default::default()
        })
        .await
        .expect("range");
    resp.kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

/// How many live keys start with `prefix` (a linearizable count-only range).
pub async fn count_prefix(s: &dyn Storage, prefix: &str) -> u64 {
    s.range(RangeRequest {
        key: prefix.to_owned().into(),
        range_end: prefix_end(prefix.as_bytes()),
        count_only: true,
        ..Default::default()
    })
    .await
    .expect("count range")
    .count
}
