//! Finding the external clients tests run (stock kubectl, etcdctl) and waiting for conditions,
//! one way for every test suite of the workspace.
//!
//! A missing client skips the test that needs it on a developer's machine (with a notice), and
//! fails it under `CI=true`: CI installs the clients, so a missing one there is a broken setup,
//! never a pass.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The kubectl minors the suites run (`scripts/get-kube-clients.sh <dir> 27 33`).
pub const KUBECTL_MINORS: [u32; 2] = [27, 33];

/// Where `scripts/get-kube-clients.sh` puts kubectl and helm: `$KEELSON_KUBE_CLIENTS`, or
/// `/var/cache/keelson-kube-clients`.
pub fn kube_clients_dir() -> PathBuf {
    std::env::var_os("KEELSON_KUBE_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/keelson-kube-clients"))
}

/// Whether this is a CI run (`CI=true`), where a missing client fails the test.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Reports a missing client: panics under `CI=true`, else prints that the test skips it.
pub fn missing(client: &str, hint: &str) {
    assert!(!in_ci(), "{client} is missing and CI=true requires it: {hint}");
    eprintln!("{client} not found ({hint}); skipping");
}

fn get_clients_hint() -> String {
    format!(
        "run scripts/get-kube-clients.sh {} 27 33",
        kube_clients_dir().display()
    )
}

/// `kubectl-1.<minor>` from [`kube_clients_dir`]; `None` (after [`missing`]) when absent.
pub fn kubectl(minor: u32) -> Option<PathBuf> {
    let path = kube_clients_dir().join(format!("kubectl-1.{minor}"));
    if path.exists() {
        Some(path)
    } else {
        missing(&path.display().to_string(), &get_clients_hint());
        None
    }
}

/// The kubectls of [`KUBECTL_MINORS`], oldest first (each missing one reported by [`missing`]).
pub fn stock_kubectls() -> Vec<PathBuf> {
    KUBECTL_MINORS.iter().filter_map(|m| kubectl(*m)).collect()
}

/// Every kubectl to test with: [`stock_kubectls`] and the system's `/usr/bin/kubectl` when there
/// is one.
pub fn kubectls() -> Vec<PathBuf> {
    let mut found = stock_kubectls();
    let system = Path::new("/usr/bin/kubectl");
    if system.exists() {
        found.push(system.to_path_buf());
    }
    found
}

/// The `etcdctl` on `PATH` (or `/usr/bin/etcdctl`); `None` (after [`missing`]) when absent.
pub fn etcdctl() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("etcdctl"))
        .chain([PathBuf::from("/usr/bin/etcdctl")])
        .find(|p| p.is_file());
    if on_path.is_none() {
        missing("etcdctl", "install the etcd-client package");
    }
    on_path
}

/// How often [`poll_until`] and [`poll_until_async`] check.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `check` until it holds; panics naming `what` when `timeout` passes first.
pub fn poll_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_EVERY);
    }
}

/// [`poll_until`] for async checks, sleeping on the tokio timer.
pub async fn poll_until_async<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_until_the_condition_holds() {
        let mut n = 0;
        poll_until("three calls", Duration::from_secs(5), || {
            n += 1;
            n == 3
        });
        assert_eq!(n, 3);
        let timed_out = std::panic::catch_unwind(|| poll_until("never", Duration::from_millis(50), || false));
        assert!(timed_out.is_err());
    }

    #[tokio::test]
    async fn polls_async_checks() {
        let mut n = 0;
        poll_until_async("two calls", Duration::from_secs(5), || {
            n += 1;
            let done = n == 2;
            async move { done }
        })
        .await;
        assert_eq!(n, 2);
    }
}
