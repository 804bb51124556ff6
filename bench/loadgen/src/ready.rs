//! Start-up helpers: free loopback ports and waiting for the first successful Range.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use etcd_client::Client;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::conn::{check_loopback, connect_options, host_port};
use crate::stats::alive;

/// Polling interval while a server is not answering yet.
const POLL: Duration = Duration::from_millis(5);
/// Upper bound for one Range attempt once the port accepts connections.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// `count` distinct free TCP ports on 127.0.0.1 (bound together, then released).
pub fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// Wall-clock nanoseconds since the Unix epoch (the same clock as `date +%s%N`).
fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// One successful linearizable Range against `endpoint`.
async fn try_range(endpoint: &str) -> bool {
    if TcpStream::connect(host_port(endpoint)).await.is_err() {
        return false;
    }
    let attempt = async {
        let mut client = Client::connect([endpoint], Some(connect_options())).await?;
        client.get("/bench/ready", None).await
    };
    matches!(tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await, Ok(Ok(_)))
}

/// Waits until every endpoint answers a linearizable Range; returns, per endpoint, the milliseconds
/// from `since_ns` (Unix-epoch ns taken just before the servers were started) to its first answer.
/// Fails at once when one of `pids` (the server processes) exits.
pub async fn wait_ready(
    endpoints: &[String],
    pids: &[u32],
    since_ns: u128,
    timeout: Duration,
) -> Result<Vec<f64>> {
    check_loopback(endpoints)?;
    let mut set = JoinSet::new();
    for (i, ep) in endpoints.iter().enumerate() {
        let ep = ep.clone();
        set.spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                if try_range(&ep).await {
                    return Some((i, unix_ns().saturating_sub(since_ns) as f64 / 1e6));
                }
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                tokio::time::sleep(POLL).await;
            }
        });
    }
    let mut ms = vec![f64::NAN; endpoints.len()];
    let mut check = tokio::time::interval(Duration::from_millis(50));
    while !set.is_empty() {
        tokio::select! {
            r = set.join_next() => match r {
                Some(r) => match r? {
                    Some((i, t)) => ms[i] = t,
                    None => bail!("an endpoint did not answer a Range within {timeout:?}"),
                },
                None => break,
            },
            _ = check.tick() => {
                if let Some(p) = pids.iter().find(|p| !alive(**p)) {
                    bail!("server process {p} exited before answering a Range");
                }
            }
        }
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let mut sorted = free_ports(4).unwrap_or_default();
        assert_eq!(sorted.len(), 4);
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
    }

    #[tokio::test]
    async fn closed_port_is_not_ready() {
        let port = free_ports(1).unwrap_or_default()[0];
        let r = wait_ready(
            &[format!("http://127.0.0.1:{port}")],
            &[],
            unix_ns(),
            Duration::from_millis(50),
        )
        .await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn exited_server_fails_fast() {
        let port = free_ports(1).unwrap_or_default()[0];
        // A PID that is not running: waiting must stop long before the 60 s timeout.
        let r = wait_ready(
            &[format!("http://127.0.0.1:{port}")],
            &[u32::MAX],
            unix_ns(),
            Duration::from_secs(60),
        )
        .await;
        let err = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("exited"), "{err}");
    }
}
