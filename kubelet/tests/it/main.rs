//! The simulated kubelet against an in-process API server: nodes register and stay Ready with
//! renewed Leases, pods bound to them run, complete, fail, become ready after their probe delay
//! and are deleted with their grace period.

mod nodes;
mod pods;

use std::future::Future;
use std::time::{Duration, Instant};

use apiserver::testing::TestServer;
use tokio_util::sync::CancellationToken;

/// A test server with a simulator running against it.
pub struct Cluster {
    /// The API server.
    pub server: TestServer,
    /// Its admin client.
    pub client: kube::Client,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), kubelet::Error>>,
}

impl Cluster {
    /// A server and a simulator of `nodes` nodes (`sim-0`..), with 4 s leases (renewed every
    /// second) so renewals show within a test.
    pub async fn start(nodes: usize) -> Cluster {
        Self::start_with(nodes, |_| {}).await
    }

    /// As [`Cluster::start`], with the simulator's configuration adjusted.
    pub async fn start_with(nodes: usize, adjust: impl FnOnce(&mut kubelet::Config)) -> Cluster {
        Self::start_after(nodes, adjust, |_| async {}).await
    }

    /// As [`Cluster::start_with`], after `setup` prepared the cluster through the admin client.
    pub async fn start_after<S, Fut>(
        nodes: usize,
        adjust: impl FnOnce(&mut kubelet::Config),
        setup: S,
    ) -> Cluster
    where
        S: FnOnce(kube::Client) -> Fut,
        Fut: Future<Output = ()>,
    {
        let server = TestServer::start().await.expect("test server starts");
        let client = server.client();
        setup(client.clone()).await;
        let mut config = kubelet::Config {
            node_names: kubelet::Config::names("sim-", nodes),
            node_lease_duration_seconds: 4,
            ..kubelet::Config::default()
        };
        adjust(&mut config);
        let stop = CancellationToken::new();
        let task = tokio::spawn(kubelet::run(config, client.clone(), stop.clone()));
        Cluster {
            server,
            client,
            stop,
            task,
        }
    }

    /// Stops the simulator and the server.
    pub async fn stop(self) {
        self.stop.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        ended
            .expect("the simulator stops")
            .expect("no panic")
            .expect("no error");
        self.server.shutdown().await;
    }
}

/// Polls `probe` until it returns `Some`, for at most `secs` seconds.
pub async fn until<T, F, Fut>(what: &str, secs: u64, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
