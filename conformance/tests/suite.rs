//! The whole suite against an in-process Keelson API server, with every stock kubectl found
//! (`KEELSON_KUBE_CLIENTS`, default /var/cache/keelson-kube-clients: kubectl-1.27, kubectl-1.33).
//! Without any kubectl, the test says so and passes.

use conformance::{CaseReport, Kubectl, Suite, find_kubectls, run_suites};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_kubectl_suite_passes_against_keelson() {
    let bins = find_kubectls(None);
    if bins.is_empty() {
        eprintln!(
            "SKIPPED: no kubectl found: run shared/tools/get-kube-clients.sh /var/cache/keelson-kube-clients 27 33"
        );
        return;
    }
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let kubeconfig = server.kubeconfig_path();
    let report = tokio::task::spawn_blocking(move || {
        let suites: Vec<Suite> = bins
            .iter()
            .map(|b| Suite::new(Kubectl::new(b, &kubeconfig).expect("kubectl runs")).expect("scratch dir"))
            .collect();
        let mut print = |c: &CaseReport| eprintln!("{c}");
        // Every version's first phase, then (where the root test restarts the server) every
        // version's second phase.
        run_suites(&suites, &mut print, &mut |phase| {
            eprintln!("-- phase {} done", phase.as_str())
        })
    })
    .await
    .expect("the suite runs");
    eprintln!("{report}");
    assert!(report.ok(), "failed cases:\n{}", report.failures());
    server.shutdown().await;
}
