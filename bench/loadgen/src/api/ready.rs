//! Start-up time of an API server: from just before its process started to the first successful
//! API request (a GET of the `default` namespace, through the store) with the admin kubeconfig.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use crate::api::objects::client;
use crate::stats::alive;

/// Polling interval while the server is not answering yet.
const POLL: Duration = Duration::from_millis(5);
/// Upper bound for one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// One GET of namespace `default`; the kubeconfig is read afresh (a server may (re)write it).
async fn try_get(kubeconfig: &Path) -> bool {
    let attempt = async {
        let c = client(kubeconfig, Some(ATTEMPT_TIMEOUT)).await?;
        Api::<Namespace>::all(c).get("default").await?;
        anyhow::Ok(())
    };
    matches!(tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await, Ok(Ok(())))
}

/// Milliseconds from `since_ns` (Unix-epoch ns taken just before the server started) to the first
/// successful request; fails when process `pid` exits first or after `timeout`.
pub async fn wait_ready(
    kubeconfig: &Path,
    pid: Option<u32>,
    since_ns: u128,
    timeout: Duration,
) -> Result<f64> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if try_get(kubeconfig).await {
            return Ok(unix_ns().saturating_sub(since_ns) as f64 / 1e6);
        }
        if let Some(p) = pid.filter(|p| !alive(*p)) {
            bail!("server process {p} exited before answering");
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("no successful request within {timeout:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}
