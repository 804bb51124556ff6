//! The manager as a whole: `run_command` with leader election, and per-controller
//! ServiceAccount clients.

use std::time::Duration;

use apiserver::testing::TestServer;
use clap::Parser;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio_util::sync::CancellationToken;

use controller_manager::clientbuilder::ServiceAccountClients;

use crate::support::eventually;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: controller_manager::cli::Args,
}

#[tokio::test]
async fn run_command_leads_through_the_kube_controller_manager_lease_and_reconciles() {
    let server = TestServer::start().await.unwrap();
    let kubeconfig = server.kubeconfig_path();
    let cli = Cli::parse_from([
        "kube-controller-manager",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--secure-port=0",
        "--bind-address=127.0.0.1",
        "--controllers=*,-replicationcontroller-controller",
    ]);
    let shutdown = CancellationToken::new();
    let manager = tokio::spawn(controller_manager::cli::run_command(cli.args, shutdown.clone()));
    let leases: Api<Lease> = Api::namespaced(server.client(), "kube-system");
    let holder = eventually("the lease is held", || async {
        let l = leases
            .get_opt("kube-controller-manager")
            .await
            .map_err(|e| e.to_string())?;
        l.and_then(|l| l.spec?.holder_identity)
            .ok_or_else(|| "no holder".to_string())
    })
    .await;
    assert!(!holder.is_empty());
    let rss: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::default_namespaced(server.client());
    let rs = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "led"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "led"}},
                 "template": {"metadata": {"labels": {"app": "led"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    }))
    .unwrap();
    rss.create(&PostParams::default(), &rs).await.unwrap();
    eventually("the leader reconciles", || async {
        let s = rss
            .get("led")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        if s.replicas == 1 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), manager)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Released on shutdown.
    let spec = leases.get("kube-controller-manager").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity, None);
    server.shutdown().await;
}

#[tokio::test]
async fn controllers_can_talk_as_their_own_service_accounts() {
    let server = TestServer::start().await.unwrap();
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
    let rest = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let builder = ServiceAccountClients::new(server.client(), rest, 20.0, 30, shutdown.clone());
    let client = builder.client("deployment-controller").await.unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(server.client(), "kube-system");
    assert!(
        sas.get_opt("deployment-controller").await.unwrap().is_some(),
        "created when missing"
    );
    let reviews: Api<SelfSubjectReview> = Api::all(client);
    let me = reviews
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = me.status.unwrap().user_info.unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:kube-system:deployment-controller")
    );
    // A second client for the same account reuses it.
    builder.client("deployment-controller").await.unwrap();
    shutdown.cancel();
    server.shutdown().await;
}

#[tokio::test]
async fn with_service_account_credentials_each_controller_acts_as_its_account() {
    let server = TestServer::start().await.unwrap();
    let admin = server.client();
    // Until the bootstrap policy has upstream's system:controller roles, grant the account
    // what it needs here (and nothing to the other controllers' accounts).
    let binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "test-replicaset-controller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "replicaset-controller", "namespace": "kube-system"}]
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
    let rest = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let config = controller_manager::Config {
        controllers: vec!["replicaset-controller".into()],
        use_service_account_credentials: true,
        rest_config: Some(rest),
        ..controller_manager::Config::default()
    };
    let shutdown = CancellationToken::new();
    let manager = tokio::spawn(controller_manager::run(config, admin.clone(), shutdown.clone()));
    let rss: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::default_namespaced(admin.clone());
    let rs = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "sa"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "sa"}},
                 "template": {"metadata": {"labels": {"app": "sa"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    }))
    .unwrap();
    rss.create(&PostParams::default(), &rs).await.unwrap();
    eventually("the controller creates pods as its account", || async {
        let s = rss
            .get("sa")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        if s.replicas == 2 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "kube-system");
    assert!(sas.get_opt("replicaset-controller").await.unwrap().is_some());
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), manager)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_role_the_account_is_refused() {
    let server = TestServer::start().await.unwrap();
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
    let rest = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let builder = ServiceAccountClients::new(server.client(), rest, 20.0, 30, shutdown.clone());
    // An account no bootstrap role is bound to: the manager's own rights do not leak into it.
    let client = builder.client("no-role-controller").await.unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::default_namespaced(client);
    match pods.list(&Default::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    shutdown.cancel();
    server.shutdown().await;
}
