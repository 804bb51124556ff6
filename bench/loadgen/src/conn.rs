//! A small pool of gRPC connections shared by many logical clients, as real etcd clients do.
//!
//! Each pooled [`Client`] owns one HTTP/2 connection to one endpoint; connection `i` goes to
//! endpoint `i % endpoints.len()`. Logical clients (tasks) take `kv(i)`/`watch(i)` and so share
//! connection `i % conns`: many requests are in flight on one connection at once.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use etcd_client::{Client, ConnectOptions, KvClient, WatchClient};

/// Per-request timeout: far above any latency we expect, so a stuck server fails the case
/// instead of hanging the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Options every connection of the load generator uses.
pub fn connect_options() -> ConnectOptions {
    ConnectOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(Duration::from_secs(2))
}

/// Connections to a set of endpoints.
pub struct Pool {
    clients: Vec<Client>,
}

impl Pool {
    /// Opens `conns` connections spread round-robin over `endpoints`.
    pub async fn connect(endpoints: &[String], conns: usize) -> Result<Self> {
        if endpoints.is_empty() {
            bail!("no endpoints");
        }
        check_loopback(endpoints)?;
        let mut clients = Vec::with_capacity(conns.max(1));
        for i in 0..conns.max(1) {
            let ep = &endpoints[i % endpoints.len()];
            let client = Client::connect([ep.as_str()], Some(connect_options()))
                .await
                .with_context(|| format!("connecting to {ep}"))?;
            clients.push(client);
        }
        Ok(Self { clients })
    }

    /// A KV client on connection `i % len`.
    pub fn kv(&self, i: usize) -> KvClient {
        self.clients[i % self.clients.len()].kv_client()
    }

    /// A watch client on connection `i % len`.
    pub fn watch(&self, i: usize) -> WatchClient {
        self.clients[i % self.clients.len()].watch_client()
    }
}

/// Refuses any endpoint that is not plain http on 127.0.0.1: the benchmark only drives local servers.
pub fn check_loopback(endpoints: &[String]) -> Result<()> {
    for ep in endpoints {
        if !ep.starts_with("http://127.0.0.1:") {
            bail!("endpoint {ep} is not http://127.0.0.1:PORT; the benchmark only drives loopback servers");
        }
    }
    Ok(())
}

/// `host:port` of an `http://host:port` endpoint.
pub fn host_port(endpoint: &str) -> &str {
    let rest = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    rest.split('/').next().unwrap_or(rest)
}

/// Index of the endpoint whose member is the raft leader, asked through Maintenance/Status.
/// `None` when the server does not implement Status or no endpoint claims leadership.
pub async fn find_leader(endpoints: &[String]) -> Option<usize> {
    for (i, ep) in endpoints.iter().enumerate() {
        let Ok(client) = Client::connect([ep.as_str()], Some(connect_options())).await else {
            continue;
        };
        let Ok(Ok(status)) =
            tokio::time::timeout(Duration::from_secs(3), client.maintenance_client().status()).await
        else {
            continue;
        };
        let member = status.header().map(|h| h.member_id());
        if member.is_some_and(|m| m != 0 && m == status.leader()) {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_strips_scheme_and_path() {
        assert_eq!(host_port("http://127.0.0.1:2379"), "127.0.0.1:2379");
        assert_eq!(host_port("http://127.0.0.1:2379/x"), "127.0.0.1:2379");
    }

    #[test]
    fn only_loopback_is_accepted() {
        assert!(check_loopback(&["http://127.0.0.1:1".to_owned()]).is_ok());
        assert!(check_loopback(&["http://10.0.0.1:1".to_owned()]).is_err());
        assert!(check_loopback(&["https://127.0.0.1:1".to_owned()]).is_err());
    }
}
