//! The whole suite against an in-process Keelson API server, with every stock kubectl found
//! (`KEELSON_KUBE_CLIENTS`, default /var/cache/keelson-kube-clients: kubectl-1.27, kubectl-1.33):
//! every version's first phase, then the API server is stopped and started again over the same
//! store and data directory (new port, rewritten kubeconfig, fresh watch caches), then every
//! version's second phase. Without any kubectl, the test says so and passes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use apiserver::RunningServer;
use conformance::{CaseReport, Kubectl, Suite, find_kubectls, run_suites};
use storage::mem::MemStorage;

async fn start(dir: PathBuf, store: Arc<MemStorage>) -> RunningServer {
    let config = apiserver::Config::new(dir).bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    apiserver::start(config, store).await.expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_kubectl_suite_passes_across_an_api_server_restart() {
    let bins = find_kubectls(None);
    if bins.is_empty() {
        eprintln!(
            "SKIPPED: no kubectl found: run shared/tools/get-kube-clients.sh /var/cache/keelson-kube-clients 27 33"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let data: PathBuf = dir.path().to_path_buf();
    let store = Arc::new(MemStorage::new());
    let server = start(data.clone(), store.clone()).await;
    let kubeconfig = server.kubeconfig.clone();
    let runtime = tokio::runtime::Handle::current();
    let (report, server) = tokio::task::spawn_blocking(move || {
        let suites: Vec<Suite> = bins
            .iter()
            .map(|b| Suite::new(Kubectl::new(b, &kubeconfig).expect("kubectl runs")).expect("scratch dir"))
            .collect();
        let mut server = Some(server);
        let mut print = |c: &CaseReport| eprintln!("{c}");
        let report = run_suites(&suites, &mut print, &mut |phase| {
            eprintln!("-- phase {} done: restarting the API server", phase.as_str());
            if let Some(old) = server.take() {
                runtime.block_on(old.shutdown());
            }
            server = Some(runtime.block_on(start(data.clone(), store.clone())));
        });
        (report, server)
    })
    .await
    .expect("the suite runs");
    eprintln!("{report}");
    let server = server.expect("a server");
    assert!(Path::new(&server.kubeconfig).exists());
    assert!(report.ok(), "failed cases:\n{}", report.failures());
    server.shutdown().await;
}
