//! The certificate controllers against a real server, each as its own ServiceAccount: a node's
//! own client certificate request is approved and signed and the certificate logs in; a user's
//! request waits for a person; a request its signer's rules refuse fails.

use apiserver::testing::TestServer;
use base64::Engine;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use controller_manager::certificates::conditions;
use controller_manager::certificates::signing::CaFiles;

use crate::support::eventually;

/// A PEM request and its key.
fn request(cn: &str, orgs: &[&str], sans: &[&str]) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    for o in orgs {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, *o);
    }
    (params.serialize_request(&key).unwrap().pem().unwrap(), key)
}

fn csr(name: &str, signer: &str, pem: &str, usages: &[&str]) -> CertificateSigningRequest {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"signerName": signer, "usages": usages,
                 "request": base64::engine::general_purpose::STANDARD.encode(pem)}
    }))
    .unwrap()
}

/// Who a client is.
async fn whoami(client: kube::Client) -> String {
    let me = Api::<SelfSubjectReview>::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    me.status.unwrap().user_info.unwrap().username.unwrap()
}

/// A client like the one in `kubeconfig` but logging in with `cert` and `key`.
async fn client_with_cert(kubeconfig: &Kubeconfig, cert: &[u8], key: &str) -> kube::Client {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut doc = serde_json::to_value(kubeconfig).unwrap();
    let user = &mut doc["users"][0]["user"];
    user["client-certificate-data"] = json!(b64.encode(cert));
    user["client-key-data"] = json!(b64.encode(key));
    let kc: Kubeconfig = serde_json::from_value(doc).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn certificate_of(
    api: &Api<CertificateSigningRequest>,
    name: &str,
) -> (CertificateSigningRequest, Vec<u8>) {
    eventually(&format!("a certificate for {name}"), || async {
        let csr = api.get(name).await.map_err(|e| e.to_string())?;
        let cert = csr
            .status
            .as_ref()
            .and_then(|s| s.certificate.clone())
            .filter(|c| !c.0.is_empty())
            .ok_or_else(|| format!("{:?}", csr.status))?;
        Ok((csr, cert.0))
    })
    .await
}

#[tokio::test]
async fn kubelet_client_requests_are_approved_and_signed_and_others_wait_or_fail() {
    let server = TestServer::start().await.unwrap();
    let admin = server.client();
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
    let rest = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &KubeConfigOptions::default())
        .await
        .unwrap();
    let pki = server.data_dir().join("pki");
    let mut config = controller_manager::Config {
        controllers: vec!["csrapproving".into(), "csrsigning".into()],
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

    // The node renews its own client certificate.
    let kubelet_config = Kubeconfig::read_from(server.data_dir().join("kubelet.kubeconfig")).unwrap();
    let kubelet = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubelet_config.clone(), &KubeConfigOptions::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let node_user = whoami(kubelet.clone()).await;
    let (pem, key) = request(&node_user, &["system:nodes"], &[]);
    let as_node: Api<CertificateSigningRequest> = Api::all(kubelet);
    as_node
        .create(
            &PostParams::default(),
            &csr(
                "node-renewal",
                "kubernetes.io/kube-apiserver-client-kubelet",
                &pem,
                &["digital signature", "client auth"],
            ),
        )
        .await
        .unwrap();
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let (signed, cert) = certificate_of(&csrs, "node-renewal").await;
    let approved = conditions::condition(&signed, "Approved").expect("approved");
    assert_eq!(approved.reason.as_deref(), Some("AutoApproved"));
    assert_eq!(
        approved.message.as_deref(),
        Some("Auto approving self kubelet client certificate after SubjectAccessReview.")
    );
    let renewed = client_with_cert(&kubelet_config, &cert, &key.serialize_pem()).await;
    assert_eq!(
        whoami(renewed).await,
        node_user,
        "the new certificate logs in as the node"
    );

    // A user's client certificate waits for approval, then is signed.
    let (pem, key) = request("alice", &["devs"], &[]);
    csrs.create(
        &PostParams::default(),
        &csr(
            "alice",
            "kubernetes.io/kube-apiserver-client",
            &pem,
            &["client auth"],
        ),
    )
    .await
    .unwrap();
    let pending = csrs.get("alice").await.unwrap();
    assert!(!conditions::is_decided(&pending));
    let mut decision = pending.clone();
    conditions::append(
        &mut decision,
        "Approved",
        "KubectlApprove",
        "approved by the test".into(),
        k8s_openapi::jiff::Timestamp::now(),
    );
    csrs.replace_subresource("approval", "alice", &PostParams::default(), &decision)
        .await
        .unwrap();
    let (_, cert) = certificate_of(&csrs, "alice").await;
    let alice = client_with_cert(&kubeconfig, &cert, &key.serialize_pem()).await;
    assert_eq!(whoami(alice).await, "alice");

    // A serving request without names breaks its signer's rules.
    let (pem, _) = request(&node_user, &["system:nodes"], &[]);
    let bad = csr(
        "no-names",
        "kubernetes.io/kubelet-serving",
        &pem,
        &["digital signature", "server auth"],
    );
    let created = csrs.create(&PostParams::default(), &bad).await.unwrap();
    let mut decision = created.clone();
    conditions::append(
        &mut decision,
        "Approved",
        "KubectlApprove",
        String::new(),
        k8s_openapi::jiff::Timestamp::now(),
    );
    csrs.replace_subresource("approval", "no-names", &PostParams::default(), &decision)
        .await
        .unwrap();
    let failed = eventually("the serving request fails", || async {
        let c = csrs.get("no-names").await.map_err(|e| e.to_string())?;
        conditions::condition(&c, "Failed")
            .cloned()
            .ok_or_else(|| format!("{:?}", c.status))
    })
    .await;
    assert_eq!(failed.reason.as_deref(), Some("SignerValidationFailure"));
    assert_eq!(
        failed.message.as_deref(),
        Some("DNS or IP subjectAltName is required")
    );

    shutdown.cancel();
    manager.await.unwrap().unwrap();
    server.shutdown().await;
}
