//! Legacy secret-based ServiceAccount tokens: accepted only while the Secret holds exactly the
//! token (and is of the token type) and the ServiceAccount exists with the uid it names.

use apiserver::auth::legacy_token;
use apiserver::auth::serviceaccount::Signer;
use base64::Engine;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::TestServer;

const NS: &str = "default";
const SA: &str = "/api/v1/namespaces/default/serviceaccounts";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn create_sa(s: &TestServer, name: &str) -> String {
    let (st, sa) = s
        .post(
            SA,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sa}");
    sa["metadata"]["uid"].as_str().unwrap().to_string()
}

async fn create_token_secret(s: &TestServer, name: &str, sa: &str, kind: &str, token: &str) {
    let body = json!({"apiVersion": "v1", "kind": "Secret", "type": kind,
        "metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": sa}},
        "data": {"token": b64(token)}});
    let (st, out) = s.post(SECRETS, body).await;
    assert_eq!(st, StatusCode::CREATED, "{out}");
}

/// `SelfSubjectReview` with the token: the status and the userInfo.
async fn whoami(s: &TestServer, token: &str) -> (StatusCode, Value) {
    let auth = format!("Bearer {token}");
    let (st, _, body) = s
        .call(
            Method::POST,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &[("authorization", &auth)],
            Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
        )
        .await;
    (st, body["status"]["userInfo"].clone())
}

async fn assert_rejected(s: &TestServer, token: &str, why: &str) {
    let (st, _) = whoami(s, token).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{why}");
}

#[tokio::test]
async fn legacy_tokens_live_and_die_with_their_secret_and_service_account() {
    let s = TestServer::new().await;
    let uid = create_sa(&s, "bot").await;
    let signer = s.api.auth.signer();
    let token = legacy_token::mint(&signer, NS, "bot", &uid, "bot-token").unwrap();
    create_token_secret(&s, "bot-token", "bot", legacy_token::SECRET_TYPE, &token).await;

    let (st, user) = whoami(&s, &token).await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(user["username"], "system:serviceaccount:default:bot");
    assert_eq!(user["uid"], uid.as_str());
    assert_eq!(
        user["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );

    // TokenReview accepts it for the API server's audience only.
    let review = |audiences: Value| {
        let s = &s;
        let token = token.clone();
        async move {
            let (st, body) = s
                .post(
                    "/apis/authentication.k8s.io/v1/tokenreviews",
                    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                        "spec": {"token": token, "audiences": audiences}}),
                )
                .await;
            assert_eq!(st, StatusCode::CREATED, "{body}");
            body["status"].clone()
        }
    };
    let status = review(json!([])).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(status["user"]["username"], "system:serviceaccount:default:bot");
    let status = review(json!(["https://somewhere.else"])).await;
    assert_eq!(status["authenticated"], false, "{status}");

    // data.token changed: 401; restored: accepted again.
    let patch = |value: String| {
        let s = &s;
        async move {
            let (st, _, body) = s
                .call(
                    Method::PATCH,
                    &format!("{SECRETS}/bot-token"),
                    &[("content-type", "application/merge-patch+json")],
                    Some(json!({"data": {"token": value}})),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{body}");
        }
    };
    patch(b64("something-else")).await;
    assert_rejected(&s, &token, "data.token no longer matches").await;
    patch(b64(&token)).await;
    assert_eq!(whoami(&s, &token).await.0, StatusCode::CREATED);

    // Marked invalid by the token cleaner: 401.
    let (st, _, _) = s
        .call(
            Method::PATCH,
            &format!("{SECRETS}/bot-token"),
            &[("content-type", "application/merge-patch+json")],
            Some(json!({"metadata": {"labels": {legacy_token::INVALID_SINCE_LABEL: "2024-01-01"}}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_rejected(&s, &token, "invalidated by label").await;

    // Secret deleted: 401; recreated with the token: accepted.
    assert_eq!(
        s.call(Method::DELETE, &format!("{SECRETS}/bot-token"), &[], None)
            .await
            .0,
        StatusCode::OK
    );
    assert_rejected(&s, &token, "secret deleted").await;
    create_token_secret(&s, "bot-token", "bot", legacy_token::SECRET_TYPE, &token).await;
    assert_eq!(whoami(&s, &token).await.0, StatusCode::CREATED);

    // ServiceAccount re-created (new uid): 401.
    assert_eq!(
        s.call(Method::DELETE, &format!("{SA}/bot"), &[], None).await.0,
        StatusCode::OK
    );
    assert_rejected(&s, &token, "service account deleted").await;
    let new_uid = create_sa(&s, "bot").await;
    assert_ne!(new_uid, uid);
    assert_rejected(&s, &token, "service account re-created").await;
}

#[tokio::test]
async fn wrong_secret_type_other_keys_and_forgeries_are_401() {
    let s = TestServer::new().await;
    let uid = create_sa(&s, "bot").await;
    let signer = s.api.auth.signer();

    // The right token in an Opaque secret.
    let opaque = legacy_token::mint(&signer, NS, "bot", &uid, "opaque").unwrap();
    create_token_secret(&s, "opaque", "bot", "Opaque", &opaque).await;
    assert_rejected(&s, &opaque, "secret of another type").await;

    // Signed by another key, though its secret holds it.
    let other = Signer::ephemeral("https://kubernetes.default.svc.cluster.local");
    let foreign = legacy_token::mint(&other, NS, "bot", &uid, "foreign").unwrap();
    create_token_secret(&s, "foreign", "bot", legacy_token::SECRET_TYPE, &foreign).await;
    assert_rejected(&s, &foreign, "another signing key").await;

    // A token naming another secret than the one that holds it.
    let elsewhere = legacy_token::mint(&signer, NS, "bot", &uid, "missing").unwrap();
    create_token_secret(&s, "holder", "bot", legacy_token::SECRET_TYPE, &elsewhere).await;
    assert_rejected(&s, &elsewhere, "names a secret that does not exist").await;

    // Tampered claims (namespace swapped after signing).
    let good = legacy_token::mint(&signer, NS, "bot", &uid, "good").unwrap();
    create_token_secret(&s, "good", "bot", legacy_token::SECRET_TYPE, &good).await;
    assert_eq!(whoami(&s, &good).await.0, StatusCode::CREATED);
    let parts: Vec<&str> = good.split('.').collect();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
    claims["kubernetes.io/serviceaccount/namespace"] = json!("kube-system");
    claims["sub"] = json!("system:serviceaccount:kube-system:bot");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        engine.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert!(legacy_token::is_legacy(&forged));
    assert_rejected(&s, &forged, "tampered payload").await;
    assert_rejected(&s, &format!("{}.{}.", parts[0], parts[1]), "no signature").await;
}
