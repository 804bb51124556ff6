//! `run_command`: the scheduler as a command, with its kubeconfig flag, leader election on
//! `kube-system/kube-scheduler` and the secure port.

use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{Harness, until};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: scheduler::cli::Args,
}

#[tokio::test]
async fn the_command_takes_the_lease_and_schedules() {
    let server = apiserver::testing::TestServer::start().await.unwrap();
    let kubeconfig = server.data_dir().join("scheduler.kubeconfig");
    let config = server.data_dir().join("sched.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: second
  plugins:
    score:
      disabled: [{name: '*'}]
",
    )
    .unwrap();
    let cli = Cli::parse_from([
        "kube-scheduler",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--secure-port",
        "0",
        "--bind-address",
        "127.0.0.1",
    ]);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(scheduler::cli::run_command(cli.args, shutdown.clone()));
    let leases: Api<Lease> = Api::namespaced(server.client(), "kube-system");
    let holder = until("the kube-scheduler lease", || async {
        leases.get("kube-scheduler").await.ok()?.spec?.holder_identity
    })
    .await;
    assert!(!holder.is_empty());
    let h = Harness::without_scheduler(server);
    h.node("n", "2", json!({})).await;
    h.pod("p", "100m", json!({})).await;
    h.pod("q", "100m", json!({"spec": {"schedulerName": "second"}}))
        .await;
    assert_eq!(h.bound("p").await, "n");
    assert_eq!(h.bound("q").await, "n");
    shutdown.cancel();
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(20), task)
        .await
        .expect("run_command returns on shutdown")
        .unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");
    // The lease was released on shutdown.
    let spec = leases.get("kube-scheduler").await.unwrap().spec.unwrap();
    assert_ne!(spec.holder_identity.as_deref(), Some(holder.as_str()));
    h.stop().await;
}

#[tokio::test]
async fn a_bad_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(&config, "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles: [{schedulerName: a, plugins: {filter: {enabled: [{name: Nope}]}}}]\n").unwrap();
    let cli = Cli::parse_from(["kube-scheduler", "--config", config.to_str().unwrap()]);
    let err = scheduler::cli::run_command(cli.args, CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("plugin \"Nope\" does not exist"), "{err}");
}
