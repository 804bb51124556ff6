//! Bootstrap tokens end to end: a token Secret authenticates as `system:bootstrap:<id>`, the
//! signer signs `kube-public/cluster-info` with it, a joining node's client certificate request
//! made with it is approved and signed (TLS bootstrapping), and the cleaner deletes tokens
//! once they expire.

use apiserver::testing::TestServer;
use base64::Engine;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use controller_manager::bootstrap_tokens::signer::detached_signature;
use controller_manager::certificates::signing::CaFiles;

use crate::support::eventually;

fn token_secret(id: &str, secret: &str, expiration: Option<Timestamp>, extra_groups: &str) -> Secret {
    let mut data = json!({
        "token-id": id, "token-secret": secret,
        "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
        "auth-extra-groups": extra_groups,
    });
    if let Some(at) = expiration {
        data["expiration"] = json!(at.to_string());
    }
    serde_json::from_value(json!({
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": data,
    }))
    .unwrap()
}

async fn bootstrap_client(server: &TestServer, token: &str) -> kube::Client {
    let mut kc: Kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
    let user = &mut kc.auth_infos[0];
    user.auth_info = Some(AuthInfo {
        token: Some(token.to_string().into()),
        ..AuthInfo::default()
    });
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn bootstrap_tokens_authenticate_sign_cluster_info_bootstrap_a_node_and_expire() {
    let server = TestServer::start_with(|c| c.auth.enable_bootstrap_token_auth = true)
        .await
        .unwrap();
    let admin = server.client();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    secrets
        .create(
            &PostParams::default(),
            &token_secret(
                "abcdef",
                "0123456789abcdef",
                None,
                "system:bootstrappers:keelson:default-node-token",
            ),
        )
        .await
        .unwrap();

    // The token logs in.
    let joining = bootstrap_client(&server, "abcdef.0123456789abcdef").await;
    let me = Api::<SelfSubjectReview>::all(joining.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap()
        .status
        .unwrap()
        .user_info
        .unwrap();
    assert_eq!(me.username.as_deref(), Some("system:bootstrap:abcdef"));
    let groups = me.groups.unwrap_or_default();
    assert!(groups.contains(&"system:bootstrappers".to_string()), "{groups:?}");
    assert!(groups.contains(&"system:bootstrappers:keelson:default-node-token".to_string()));
    let wrong = bootstrap_client(&server, "abcdef.0123456789abcdee").await;
    assert!(
        Api::<SelfSubjectReview>::all(wrong)
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .is_err()
    );

    // As kubeadm sets up: bootstrappers may ask for node client certificates, and have them
    // approved.
    let rbac: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(admin.clone());
    for role in [
        "system:node-bootstrapper",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
    ] {
        let binding = serde_json::from_value(json!({
            "metadata": {"name": format!("test-{}", role.replace(':', "-"))},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:bootstrappers"}]
        }))
        .unwrap();
        rbac.create(&PostParams::default(), &binding).await.unwrap();
    }

    let content = "apiVersion: v1\nkind: Config\nclusters: []\n";
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "kube-public");
    let cm = serde_json::from_value(
        json!({"metadata": {"name": "cluster-info"}, "data": {"kubeconfig": content}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();

    let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
    let rest = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let pki = server.data_dir().join("pki");
    let mut config = controller_manager::Config {
        controllers: ["bootstrapsigner", "tokencleaner", "csrapproving", "csrsigning"]
            .map(String::from)
            .to_vec(),
        use_service_account_credentials: true,
        rest_config: Some(rest),
        ..controller_manager::Config::default()
    };
    config.certificates.signing.cluster = Some(CaFiles {
        cert_file: pki.join("ca.crt"),
        key_file: pki.join("ca.key"),
    });
    let shutdown = CancellationToken::new();
    let manager = tokio::spawn(controller_manager::run(config, admin.clone(), shutdown.clone()));

    // cluster-info is signed with the token.
    let want = detached_signature(content, "abcdef", "0123456789abcdef");
    eventually("cluster-info signed", || async {
        let cm = cms.get("cluster-info").await.map_err(|e| e.to_string())?;
        let data = cm.data.unwrap_or_default();
        match data.get("jws-kubeconfig-abcdef") {
            Some(sig) if *sig == want => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // TLS bootstrapping: the joining node asks for its client certificate with the token.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:node:joiner");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let csr: CertificateSigningRequest = serde_json::from_value(json!({
        "metadata": {"name": "node-csr-joiner"},
        "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                 "usages": ["digital signature", "client auth"],
                 "request": base64::engine::general_purpose::STANDARD.encode(&pem)}
    }))
    .unwrap();
    Api::<CertificateSigningRequest>::all(joining)
        .create(&PostParams::default(), &csr)
        .await
        .unwrap();
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let message = eventually("the joining node's certificate", || async {
        let c = csrs.get("node-csr-joiner").await.map_err(|e| e.to_string())?;
        let status = c.status.unwrap_or_default();
        if status.certificate.is_none() {
            return Err(format!("{status:?}"));
        }
        let approved = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Approved")
            .ok_or_else(|| "not approved".to_string())?;
        Ok(approved.message.unwrap_or_default())
    })
    .await;
    assert_eq!(
        message,
        "Auto approving kubelet client certificate after SubjectAccessReview."
    );

    // Expired tokens are deleted, at once or when they expire.
    let past = Timestamp::now() - SignedDuration::from_hours(1);
    let soon = Timestamp::now() + SignedDuration::from_secs(2);
    for (id, at) in [("old000", past), ("soon00", soon)] {
        secrets
            .create(
                &PostParams::default(),
                &token_secret(id, "0123456789abcdef", Some(at), ""),
            )
            .await
            .unwrap();
    }
    eventually("the expired tokens deleted", || async {
        let left: Vec<String> = secrets
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .filter(|n| n.starts_with("bootstrap-token-"))
            .collect();
        if left == ["bootstrap-token-abcdef"] {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    // And their signatures go with them; the live token's stays.
    let data = cms.get("cluster-info").await.unwrap().data.unwrap_or_default();
    assert!(data.contains_key("jws-kubeconfig-abcdef"));

    shutdown.cancel();
    manager.await.unwrap().unwrap();
    server.shutdown().await;
}
