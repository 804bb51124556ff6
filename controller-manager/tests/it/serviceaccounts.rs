//! ServiceAccounts: `default` in every namespace (re-created), and legacy token Secrets filled
//! with a token the API server accepts, deleted with their ServiceAccount.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};

use controller_manager::serviceaccounts::{self, ServiceAccountsConfig, TokensConfig};

use crate::poll::{Running, gone, until};

#[tokio::test]
async fn every_namespace_gets_a_default_service_account_back() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let c = client.clone();
    let controller = Running::spawn(move |t| serviceaccounts::run(c, ServiceAccountsConfig::default(), t));
    crate::poll::namespace(&client, "team").await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    let first = until("the default service account", 30, || async {
        sas.get_opt("default").await.unwrap()
    })
    .await;
    sas.delete("default", &DeleteParams::default()).await.unwrap();
    until("the default service account re-created", 30, || async {
        sas.get_opt("default")
            .await
            .unwrap()
            .filter(|sa| sa.uid() != first.uid())
    })
    .await;
    controller.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn token_secrets_get_a_working_token_and_go_with_their_service_account() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let pki = server.data_dir().join("pki");
    let ca = std::fs::read(pki.join("ca.crt")).unwrap();
    let mut config = TokensConfig::new(pki.join("sa.key"));
    config.root_ca = Some(ca.clone());
    let c = client.clone();
    let controller = Running::spawn(move |t| serviceaccounts::run_tokens(c, config, t));
    crate::poll::namespace(&client, "bots").await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "bots");
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("bot".into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    let sa = sas.create(&PostParams::default(), &sa).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "bots");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("bot-token".into()),
            annotations: Some(
                [(
                    "kubernetes.io/service-account.name".to_string(),
                    "bot".to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/service-account-token".into()),
        ..Secret::default()
    };
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    let filled = until("the token secret filled", 30, || async {
        let s = secrets.get("bot-token").await.unwrap();
        s.data.as_ref()?.get("token").is_some().then_some(s)
    })
    .await;
    let data = filled.data.clone().unwrap();
    assert_eq!(data["ca.crt"].0, ca);
    assert_eq!(data["namespace"].0, b"bots");
    assert_eq!(
        filled.annotations()["kubernetes.io/service-account.uid"],
        sa.uid().unwrap()
    );
    let token = String::from_utf8(data["token"].0.clone()).unwrap();
    let review = TokenReview {
        spec: TokenReviewSpec {
            token,
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    let status = reviewed.status.unwrap();
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    assert_eq!(
        status.user.unwrap().username.as_deref(),
        Some("system:serviceaccount:bots:bot")
    );

    sas.delete("bot", &DeleteParams::default()).await.unwrap();
    gone(&secrets, "bot-token", 30).await;
    controller.stop().await;
    server.shutdown().await;
}
