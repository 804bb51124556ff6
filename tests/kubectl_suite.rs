//! The conformance crate's stock-kubectl suite against the real `keelson server` (raft store on
//! rocksdb): every kubectl found (`KEELSON_KUBE_CLIENTS`: kubectl-1.27 and kubectl-1.33) runs its
//! first phase, then the server is stopped with SIGTERM and started again on the same data dir,
//! then every kubectl's second phase checks what was written before the restart and goes on.

mod common;

use common::start_server;
use conformance::{CaseReport, Kubectl, Suite, find_kubectls, run_suites};

#[test]
fn stock_kubectl_suite_passes_across_a_keelson_server_restart() {
    let bins = find_kubectls(None);
    assert!(
        bins.len() >= 2,
        "kubectl 1.27 and 1.33 are needed: run scripts/get-kube-clients.sh /var/cache/keelson-kube-clients 27 33"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut server = start_server(&data, &[]);
    let kubeconfig = server.kubeconfig.clone();
    let suites: Vec<Suite> = bins
        .iter()
        .map(|b| Suite::new(Kubectl::new(b, &kubeconfig).expect("kubectl runs")).expect("scratch dir"))
        .collect();
    let mut print = |c: &CaseReport| eprintln!("{c}");
    let report = run_suites(&suites, &mut print, &mut |phase| {
        eprintln!("-- phase {} done: restarting keelson server", phase.as_str());
        assert!(server.proc.terminate().success(), "{}", server.proc.stderr());
        server = start_server(&data, &[]);
        assert_eq!(server.kubeconfig, kubeconfig, "the kubeconfig moved");
    });
    eprintln!("{report}");
    assert!(report.ok(), "failed cases:\n{}", report.failures());
}
