//! The example kube-rs operator (examples/operator) against a real `keelson server` process with
//! simulated nodes: it installs its CRD and drives a StaticSite to Ready (its Deployment really
//! rolls out) and through deletion, talking to the server only over TLS with the admin
//! kubeconfig that `keelson server` wrote.

mod common;

#[path = "../examples/operator/tests/scenario/mod.rs"]
mod scenario;

use common::start_server;

#[test]
fn example_operator_reaches_its_state_against_keelson_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start_server(&tmp.path().join("data"), &["--simulated-nodes", "2"]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("read the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("client config");
        let client = kube::Client::try_from(config).expect("client");
        scenario::site_lifecycle(client, true).await;
    });
    drop(server);
}
