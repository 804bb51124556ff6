//! Authentication and authorization over HTTPS: static tokens, RBAC decisions and their 403
//! bodies, RoleBindings taking effect, ServiceAccount tokens from TokenRequest, impersonation,
//! escalation prevention, aggregation, the review APIs, and every kind of bad credential → 401.
//! Then stock kubectl's `auth` commands.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::auth::serviceaccount::{Claims, KubernetesClaims, ObjectClaim, Signer};
use base64::Engine;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

const TOKENS: &str = "alice-token,alice,1001,\"devs\"\nbob-token,bob,1002\n";

/// A TLS server with a token file, in a temp dir; shut down on drop.
struct Secured {
    server: Option<apiserver::RunningServer>,
    dir: tempfile::TempDir,
}

impl Drop for Secured {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown_token().cancel();
        }
    }
}

/// Who a request authenticates as.
#[derive(Clone)]
enum Cred {
    Admin,
    Token(String),
    None,
    /// A client certificate and key (PEM).
    Cert(String, String),
}

impl Secured {
    async fn start(anonymous: bool) -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(&tokens, TOKENS).unwrap();
        let mut config = apiserver::Config::new(dir.path()).bind("127.0.0.1:0".parse().unwrap());
        config.auth.token_auth_file = Some(tokens);
        config.auth.anonymous = anonymous;
        let server = apiserver::start(config, Arc::new(storage::mem::MemStorage::new()))
            .await
            .expect("server starts");
        Secured {
            server: Some(server),
            dir,
        }
    }

    fn server(&self) -> &apiserver::RunningServer {
        self.server.as_ref().unwrap()
    }

    async fn client(&self, cred: &Cred, headers: &[(&str, &str)]) -> kube::Client {
        let kc = Kubeconfig::read_from(&self.server().kubeconfig).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap();
        if !matches!(cred, Cred::Admin) {
            config.auth_info.client_certificate_data = None;
            config.auth_info.client_key_data = None;
        }
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        match cred {
            // kube-rs's own bearer-token authentication.
            Cred::Token(t) => config.auth_info.token = Some(t.clone().into()),
            Cred::Cert(cert, key) => {
                config.auth_info.client_certificate_data = Some(b64(cert));
                config.auth_info.client_key_data = Some(b64(key).into());
            }
            Cred::Admin | Cred::None => {}
        }
        for (k, v) in headers {
            config.headers.push((
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            ));
        }
        kube::Client::try_from(config).unwrap()
    }

    /// One request; status and JSON body (Null when not JSON).
    async fn call(
        &self,
        cred: &Cred,
        headers: &[(&str, &str)],
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let client = self.client(cred, headers).await;
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let content_type = if method == Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(kube::client::Body::from(bytes))
            .unwrap();
        let resp = client.send(req).await.expect("request sent");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn get(&self, cred: &Cred, path: &str) -> (StatusCode, Value) {
        self.call(cred, &[], Method::GET, path, None).await
    }

    async fn post(&self, cred: &Cred, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(cred, &[], Method::POST, path, Some(body)).await
    }

    async fn delete(&self, cred: &Cred, path: &str) -> (StatusCode, Value) {
        self.call(cred, &[], Method::DELETE, path, None).await
    }

    /// Waits (up to 10 s) until `path` answers `want` for `cred`.
    async fn wait_for(&self, cred: &Cred, path: &str, want: StatusCode) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (s, v) = self.get(cred, path).await;
            if s == want {
                return v;
            }
            assert!(Instant::now() < deadline, "{path}: still {s} {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A kubeconfig for a bearer token (no client certificate).
    fn token_kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let ca = std::fs::read_to_string(self.dir.path().join("pki/ca.crt")).unwrap();
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        api_util::kubeconfig::Single {
            cluster: "k",
            server: &self.server().url,
            ca_pem: &ca,
            user: "u",
            credential: api_util::kubeconfig::Credential::Token(token),
            namespace: Some("default"),
        }
        .write(&path)
        .unwrap();
        path
    }
}

fn alice() -> Cred {
    Cred::Token("alice-token".into())
}

const UNAUTHORIZED: &str = r#"{"apiVersion":"v1","code":401,"kind":"Status","message":"Unauthorized","metadata":{},"reason":"Unauthorized","status":"Failure"}"#;

fn assert_401(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(
        body,
        &serde_json::from_str::<Value>(UNAUTHORIZED).unwrap(),
        "{what}"
    );
}

fn pod_reader(ns: &str) -> (Value, Value) {
    (
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "alice-reads", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}),
    )
}

#[tokio::test]
async fn static_token_forbidden_then_rolebinding_takes_effect() {
    let s = Secured::start(false).await;
    let (status, body) = s.get(&alice(), "/api/v1/namespaces/default/pods").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"",
            "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403})
    );
    let (status, body) = s.get(&alice(), "/api/v1/namespaces/default/pods/web/log").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "pods \"web\" is forbidden: User \"alice\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"default\""
    );
    // Discovery and whoami are open to every authenticated user (bootstrap policy).
    assert_eq!(s.get(&alice(), "/api").await.0, StatusCode::OK);
    assert_eq!(s.get(&alice(), "/apis/apps/v1").await.0, StatusCode::OK);
    let (status, body) = s
        .post(
            &alice(),
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["status"]["userInfo"],
        json!({"username": "alice", "uid": "1001", "groups": ["devs", "system:authenticated"]})
    );
    let (status, body) = s.get(&alice(), "/metrics").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "forbidden: User \"alice\" cannot get path \"/metrics\""
    );

    let (role, binding) = pod_reader("default");
    let rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/default";
    assert_eq!(
        s.post(&Cred::Admin, &format!("{rb}/roles"), role).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.post(&Cred::Admin, &format!("{rb}/rolebindings"), binding)
            .await
            .0,
        StatusCode::CREATED
    );
    let list = s
        .wait_for(&alice(), "/api/v1/namespaces/default/pods", StatusCode::OK)
        .await;
    assert_eq!(list["kind"], "PodList");
    // Only in that namespace, only those verbs.
    assert_eq!(
        s.get(&alice(), "/api/v1/namespaces/kube-system/pods").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(s.get(&alice(), "/api/v1/pods").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        s.delete(&alice(), "/api/v1/namespaces/default/pods/x").await.0,
        StatusCode::FORBIDDEN
    );
    // bob has nothing.
    assert_eq!(
        s.get(
            &Cred::Token("bob-token".into()),
            "/api/v1/namespaces/default/pods"
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // Deleting the binding takes the permission away again.
    assert_eq!(
        s.delete(&Cred::Admin, &format!("{rb}/rolebindings/alice-reads"))
            .await
            .0,
        StatusCode::OK
    );
    s.wait_for(&alice(), "/api/v1/namespaces/default/pods", StatusCode::FORBIDDEN)
        .await;
}

#[tokio::test]
async fn bad_credentials_are_401() {
    let s = Secured::start(false).await;
    let (status, body) = s.get(&Cred::None, "/api/v1/namespaces").await;
    assert_401(status, &body, "no credentials");
    assert_eq!(s.get(&Cred::None, "/healthz").await.0, StatusCode::OK);
    assert_eq!(s.get(&Cred::None, "/version").await.0, StatusCode::OK);
    let (status, body) = s.get(&Cred::None, "/.well-known/openid-configuration").await;
    assert_401(status, &body, "oidc without credentials");

    let api = &s.server().api;
    let signer = api.auth.signer();
    let now = jiff::Timestamp::now().as_second();
    let claims = |exp: i64| Claims {
        iss: signer.issuer().into(),
        sub: "system:serviceaccount:default:default".into(),
        aud: vec![signer.issuer().into()],
        exp,
        iat: now - 7200,
        nbf: now - 7200,
        jti: "x".into(),
        kubernetes: KubernetesClaims {
            namespace: "default".into(),
            serviceaccount: ObjectClaim {
                name: "default".into(),
                uid: "u".into(),
            },
            ..Default::default()
        },
    };
    let expired = signer.sign(&claims(now - 3600));
    let foreign = Signer::ephemeral(signer.issuer()).sign(&claims(now + 3600));
    let garbage = "x".repeat(5000);
    let cases = [
        ("expired", expired.as_str()),
        ("wrong signature", foreign.as_str()),
        ("unknown static token", "nobody-token"),
        ("malformed jwt", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"),
        ("garbage", garbage.as_str()),
        ("three dots", "..."),
    ];
    for (what, token) in cases {
        let (status, body) = s.get(&Cred::Token(token.into()), "/api/v1/namespaces").await;
        assert_401(status, &body, what);
    }
    // A token whose ServiceAccount does not exist (or has another uid) is refused too.
    let stale = signer.sign(&claims(now + 3600));
    let (status, body) = s.get(&Cred::Token(stale), "/api/v1/namespaces").await;
    assert_401(status, &body, "unknown service account");

    // A client certificate issued by another CA.
    let other = tempfile::tempdir().unwrap();
    let pki = apiserver::tls::Pki::load_or_create(other.path(), &[]).unwrap();
    let (status, body) = s
        .get(
            &Cred::Cert(pki.admin_cert.clone(), pki.admin_key.clone()),
            "/api/v1/namespaces",
        )
        .await;
    assert_401(status, &body, "client certificate from another CA");
}

#[tokio::test]
async fn anonymous_access_when_enabled() {
    let s = Secured::start(true).await;
    assert_eq!(s.get(&Cred::None, "/healthz").await.0, StatusCode::OK);
    let (status, body) = s.get(&Cred::None, "/api/v1/namespaces/default/pods").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    // Discovery is for authenticated users only (as upstream since 1.14).
    assert_eq!(s.get(&Cred::None, "/api").await.0, StatusCode::FORBIDDEN);
    // A bad token is still a 401, not anonymous.
    let (status, body) = s.get(&Cred::Token("nope".into()), "/healthz").await;
    assert_401(status, &body, "bad token with anonymous on");
}

#[tokio::test]
async fn service_account_tokens_from_token_request() {
    let s = Secured::start(false).await;
    let admin = Cred::Admin;
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot"}});
    assert_eq!(
        s.post(&admin, "/api/v1/namespaces/default/serviceaccounts", sa.clone())
            .await
            .0,
        StatusCode::CREATED
    );
    let token_path = "/api/v1/namespaces/default/serviceaccounts/bot/token";
    let (status, tr) = s
        .post(
            &admin,
            token_path,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tr}");
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(tr["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        tr["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let token = tr["status"]["token"].as_str().unwrap().to_string();
    assert!(
        tr["status"]["expirationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let bot = Cred::Token(token.clone());
    let (status, me) = s
        .post(
            &bot,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{me}");
    let info = &me["status"]["userInfo"];
    assert_eq!(info["username"], "system:serviceaccount:default:bot");
    assert_eq!(
        info["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    assert!(
        info["extra"]["authentication.kubernetes.io/credential-id"][0]
            .as_str()
            .unwrap()
            .starts_with("JTI=")
    );
    let (status, body) = s.get(&bot, "/api/v1/namespaces/default/secrets").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "secrets is forbidden: User \"system:serviceaccount:default:bot\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
    );
    // The token verifies against the published key set; TokenReview accepts it.
    let (status, jwks) = s.get(&bot, "/openid/v1/jwks").await;
    assert_eq!(status, StatusCode::OK);
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(jwks["keys"][0]["kid"].as_str(), header.kid.as_deref());
    let (_, oidc) = s.get(&bot, "/.well-known/openid-configuration").await;
    assert_eq!(oidc["issuer"], "https://kubernetes.default.svc.cluster.local");
    let review = |t: &str, aud: Value| json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": t, "audiences": aud}});
    let (status, tr_body) = s
        .post(
            &admin,
            "/apis/authentication.k8s.io/v1/tokenreviews",
            review(&token, json!([])),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(tr_body["status"]["authenticated"], true, "{tr_body}");
    assert_eq!(
        tr_body["status"]["user"]["username"],
        "system:serviceaccount:default:bot"
    );
    let (_, tr_body) = s
        .post(
            &admin,
            "/apis/authentication.k8s.io/v1/tokenreviews",
            review(&token, json!(["other"])),
        )
        .await;
    assert_eq!(tr_body["status"]["authenticated"], false);
    // A token for another audience does not authenticate to the API.
    let (_, other) = s
        .post(&admin, token_path, json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": ["vault"], "expirationSeconds": 600}}))
        .await;
    let vault = other["status"]["token"].as_str().unwrap().to_string();
    let (status, body) = s.get(&Cred::Token(vault.clone()), "/api").await;
    assert_401(status, &body, "other audience");
    let (_, tr_body) = s
        .post(
            &admin,
            "/apis/authentication.k8s.io/v1/tokenreviews",
            review(&vault, json!(["vault"])),
        )
        .await;
    assert_eq!(tr_body["status"]["authenticated"], true);
    assert_eq!(tr_body["status"]["audiences"], json!(["vault"]));
    // Too short a lifetime is refused.
    let (status, body) = s
        .post(&admin, token_path, json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 60}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Bound to a pod: invalid once the pod is deleted.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (_, pod) = s.post(&admin, "/api/v1/namespaces/default/pods", pod).await;
    let (status, bound) = s
        .post(&admin, token_path, json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod["metadata"]["uid"]}}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bound}");
    let bound = Cred::Token(bound["status"]["token"].as_str().unwrap().into());
    assert_eq!(s.get(&bound, "/api").await.0, StatusCode::OK);
    s.call(
        &admin,
        &[],
        Method::DELETE,
        "/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0",
        None,
    )
    .await;
    let (status, body) = s.get(&bound, "/api").await;
    assert_401(status, &body, "token bound to a deleted pod");
    let (status, _) = s
        .post(
            &admin,
            token_path,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting the ServiceAccount invalidates its tokens, and a new one of the same name does not
    // revive them.
    assert_eq!(
        s.delete(&admin, "/api/v1/namespaces/default/serviceaccounts/bot")
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = s.get(&bot, "/api").await;
    assert_401(status, &body, "deleted service account");
    s.post(&admin, "/api/v1/namespaces/default/serviceaccounts", sa)
        .await;
    let (status, body) = s.get(&bot, "/api").await;
    assert_401(status, &body, "re-created service account");
}

#[tokio::test]
async fn impersonation_is_authorized_by_rbac() {
    let s = Secured::start(false).await;
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    let (status, me) = s
        .call(
            &Cred::Admin,
            &[
                ("Impersonate-User", "alice"),
                ("Impersonate-Group", "devs"),
                ("Impersonate-Extra-Scopes", "view"),
            ],
            Method::POST,
            path,
            Some(review.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{me}");
    assert_eq!(
        me["status"]["userInfo"],
        json!({"username": "alice", "groups": ["devs", "system:authenticated"], "extra": {"scopes": ["view"]}})
    );
    // Impersonated users get their own permissions.
    let (status, body) = s
        .call(
            &Cred::Admin,
            &[("Impersonate-User", "alice")],
            Method::GET,
            "/api/v1/namespaces/default/pods",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // alice may not impersonate.
    let (status, body) = s
        .call(
            &alice(),
            &[("Impersonate-User", "bob")],
            Method::POST,
            path,
            Some(review.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
    assert_eq!(body["details"], json!({"name": "bob", "kind": "users"}));
    // Until a ClusterRole lets her impersonate bob.
    let cr = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "as-bob"},
        "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["bob"]}]});
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "alice-as-bob"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "as-bob"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]});
    s.post(
        &Cred::Admin,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        cr,
    )
    .await;
    s.post(
        &Cred::Admin,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        crb,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let me = loop {
        let (status, me) = s
            .call(
                &alice(),
                &[("Impersonate-User", "bob")],
                Method::POST,
                path,
                Some(review.clone()),
            )
            .await;
        if status == StatusCode::CREATED {
            break me;
        }
        assert!(Instant::now() < deadline, "{status} {me}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(me["status"]["userInfo"]["username"], "bob");
    // ...but not carol, nor bob with an extra group.
    let (status, _) = s
        .call(
            &alice(),
            &[("Impersonate-User", "carol")],
            Method::POST,
            path,
            Some(review.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = s
        .call(
            &alice(),
            &[
                ("Impersonate-User", "bob"),
                ("Impersonate-Group", "system:masters"),
            ],
            Method::POST,
            path,
            Some(review.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "groups \"system:masters\" is forbidden: User \"alice\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope"
    );
    // A group without a user is a bad request.
    let (status, _) = s
        .call(
            &Cred::Admin,
            &[("Impersonate-Group", "devs")],
            Method::POST,
            path,
            Some(review),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn escalation_prevention_aggregation_and_access_reviews() {
    let s = Secured::start(false).await;
    let rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/default";
    // alice may manage roles and bindings in default and read pods there.
    let manager = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "manager", "namespace": "default"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create", "get", "update", "patch"]},
                  {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "alice-manages", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "manager"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]});
    s.post(&Cred::Admin, &format!("{rb}/roles"), manager).await;
    s.post(&Cred::Admin, &format!("{rb}/rolebindings"), binding).await;
    s.wait_for(&alice(), "/api/v1/namespaces/default/pods", StatusCode::OK)
        .await;

    let role = |name: &str, verbs: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}]})
    };
    let (status, body) = s
        .post(
            &alice(),
            &format!("{rb}/roles"),
            role("deleter", json!(["get", "delete"])),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "roles.rbac.authorization.k8s.io \"deleter\" is forbidden: user \"alice\" (groups=[\"devs\", \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"
    );
    let (status, body) = s
        .post(&alice(), &format!("{rb}/roles"), role("reader", json!(["get"])))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Patching the role to add a verb she lacks is refused as well.
    s.wait_for(&alice(), &format!("{rb}/roles/reader"), StatusCode::OK)
        .await;
    let add_delete =
        json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]}]});
    let (status, body) = s
        .call(
            &alice(),
            &[],
            Method::PATCH,
            &format!("{rb}/roles/reader"),
            Some(add_delete),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"),
        "{body}"
    );
    // Binding bob to cluster-admin: refused; to her own reader role: fine.
    let bind = |name: &str, kind: &str, role: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]})
    };
    let (status, body) = s
        .post(
            &alice(),
            &format!("{rb}/rolebindings"),
            bind("bob-admin", "ClusterRole", "cluster-admin"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("is attempting to grant RBAC permissions not currently held")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = s
            .post(
                &alice(),
                &format!("{rb}/rolebindings"),
                bind("bob-reads", "Role", "reader"),
            )
            .await;
        if status == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // An aggregationRule needs full authority, even with permission to create ClusterRoles.
    let writer = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cr-writer"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["create"]}]});
    let writer_binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "alice-cr-writer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr-writer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]});
    s.post(
        &Cred::Admin,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        writer,
    )
    .await;
    s.post(
        &Cred::Admin,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        writer_binding,
    )
    .await;
    let aggregated = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "grab-all"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}]}});
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = s
            .post(
                &alice(),
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                aggregated.clone(),
            )
            .await;
        assert_ne!(status, StatusCode::CREATED, "{body}");
        if body["message"].as_str().unwrap_or("").contains("aggregationRule") {
            break body;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        body["message"],
        "clusterroles.rbac.authorization.k8s.io \"grab-all\" is forbidden: must have cluster-admin privileges to use the aggregationRule"
    );

    // Aggregation: view gets the rules of roles labelled aggregate-to-view, and edit/admin follow.
    let view = s
        .wait_for(
            &Cred::Admin,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
            StatusCode::OK,
        )
        .await;
    assert!(view["aggregationRule"]["clusterRoleSelectors"].is_array());
    let extra = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]});
    s.post(
        &Cred::Admin,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        extra,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for name in ["view", "edit", "admin"] {
        loop {
            let (_, role) = s
                .get(
                    &Cred::Admin,
                    &format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"),
                )
                .await;
            let has = role["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["resources"] == json!(["widgets"]));
            if has {
                break;
            }
            assert!(Instant::now() < deadline, "{name} never aggregated: {role}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Access reviews.
    let ssar = |verb: &str, resource: &str, ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": ns}}})
    };
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (status, r) = s.post(&alice(), path, ssar("list", "pods", "default")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(r["status"]["allowed"], true);
    let (_, r) = s.post(&alice(), path, ssar("delete", "pods", "default")).await;
    assert_eq!(r["status"]["allowed"], false);
    let (_, r) = s.post(&Cred::Admin, path, ssar("delete", "nodes", "")).await;
    assert_eq!(r["status"]["allowed"], true);
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "bob", "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "default"}}});
    let (status, r) = s
        .post(
            &Cred::Admin,
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            sar.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(r["status"]["allowed"], true, "{r}");
    let (status, _) = s
        .post(
            &alice(),
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            sar,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, r) = s
        .post(&Cred::Admin, "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"resourceAttributes": {"verb": "get"}}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    let lsar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
        "metadata": {"namespace": "default"},
        "spec": {"user": "alice", "resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "default"}}});
    let (status, r) = s
        .post(
            &Cred::Admin,
            "/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews",
            lsar,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"]["allowed"], true);
    let (status, r) = s
        .post(&alice(), "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let rules = r["status"]["resourceRules"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["resources"] == json!(["pods"]) && r["verbs"] == json!(["get", "list"])),
        "{r}"
    );
    assert!(
        rules
            .iter()
            .any(|r| r["resources"] == json!(["selfsubjectaccessreviews", "selfsubjectrulesreviews"]))
    );
    assert!(
        r["status"]["nonResourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["nonResourceURLs"].as_array().unwrap().contains(&json!("/api")))
    );
}

#[tokio::test]
async fn bootstrap_policy_is_reconciled_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(storage::mem::MemStorage::new());
    let config = || apiserver::Config::new(dir.path()).bind("127.0.0.1:0".parse().unwrap());
    let server = apiserver::start(config(), store.clone()).await.unwrap();
    let crs = server
        .api
        .table
        .lookup("rbac.authorization.k8s.io", "v1", "clusterroles")
        .unwrap();
    let names: Vec<String> = server
        .api
        .registry
        .list(&crs, "", &Default::default())
        .await
        .unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:kube-scheduler",
        "system:kube-controller-manager",
        "system:node",
        "system:node-proxier",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    // Remove a rule from a bootstrap role; a restart puts it back. A role marked autoupdate=false
    // is left alone.
    let patch = json!({"rules": [{"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"], "verbs": ["create"]}]});
    server
        .api
        .registry
        .patch(
            &crs,
            "",
            "system:basic-user",
            apiserver::patch::PatchType::Merge,
            &patch,
            &Default::default(),
            None,
        )
        .await
        .unwrap();
    let patch = json!({"metadata": {"annotations": {"rbac.authorization.kubernetes.io/autoupdate": "false"}}, "rules": []});
    server
        .api
        .registry
        .patch(
            &crs,
            "",
            "system:node-proxier",
            apiserver::patch::PatchType::Merge,
            &patch,
            &Default::default(),
            None,
        )
        .await
        .unwrap();
    server.shutdown().await;
    let server = apiserver::start(config(), store).await.unwrap();
    let basic = server
        .api
        .registry
        .get(&crs, "", "system:basic-user")
        .await
        .unwrap();
    // The kept rule plus the missing parts, one resource each (as upstream reconciles).
    assert_eq!(
        basic["rules"],
        json!([
            {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"], "verbs": ["create"]},
            {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
            {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectrulesreviews"], "verbs": ["create"]},
        ])
    );
    let proxier = server
        .api
        .registry
        .get(&crs, "", "system:node-proxier")
        .await
        .unwrap();
    assert_eq!(proxier["rules"], json!([]));
    server.shutdown().await;
}

// ---- stock kubectl ----

/// Runs kubectl and waits for it. Called from the async tests whose runtime also serves the API:
/// `block_in_place` hands this worker's queued tasks to another thread first, so a server task
/// parked on this worker cannot stall while kubectl waits for its answer.
fn run(bin: &Path, kubeconfig: &Path, home: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(bin);
    cmd.args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG");
    let out = tokio::task::block_in_place(|| cmd.output()).expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `auth can-i` (allow and deny, `--list`, `--as`), `create token` and using that token, a 403
/// with upstream's message, a RoleBinding taking effect, escalation refused.
async fn kubectl_auth_commands(minor: u32) {
    let Some(bin) = conformance::tools::kubectl(minor) else {
        return;
    };
    let s = Secured::start(false).await;
    let home = tempfile::tempdir().unwrap();
    let admin = s.server().kubeconfig.clone();
    let alice_kc = s.token_kubeconfig("alice", "alice-token");
    let k = |kc: &Path, args: &[&str]| run(&bin, kc, home.path(), args);
    let (ok, out, err) = k(&alice_kc, &["auth", "can-i", "create", "pods"]);
    assert!(!ok);
    assert_eq!(out.trim(), "no", "{err}");
    let (ok, out, err) = k(&admin, &["auth", "can-i", "create", "pods"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "yes");
    let (ok, out, err) = k(&admin, &["auth", "can-i", "list", "pods", "--as=alice"]);
    assert!(!ok);
    assert_eq!(out.trim(), "no", "{err}");
    let (ok, _, err) = k(&alice_kc, &["get", "pods"]);
    assert!(!ok);
    assert!(
        err.contains("pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""),
        "{err}"
    );
    let (ok, out, err) = k(
        &admin,
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = k(
        &admin,
        &[
            "create",
            "rolebinding",
            "alice-reads",
            "--role=pod-reader",
            "--user=alice",
        ],
    );
    assert!(ok, "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !k(&alice_kc, &["auth", "can-i", "list", "pods"]).0 {
        assert!(Instant::now() < deadline, "the RoleBinding never took effect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ok, out, err) = k(&alice_kc, &["get", "pods"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = k(&admin, &["auth", "can-i", "list", "pods", "--as=alice"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = k(&alice_kc, &["auth", "can-i", "--list"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("pods") && out.contains("[get list]"), "{out}");
    assert!(
        out.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{out}"
    );
    // Escalation: alice (may not touch roles) cannot create one; admin can with an aggregation rule.
    let (ok, _, err) = k(
        &alice_kc,
        &["create", "role", "x", "--verb=delete", "--resource=pods"],
    );
    assert!(!ok);
    assert!(err.contains("forbidden"), "{err}");
    let (ok, out, err) = k(
        &admin,
        &["create", "clusterrole", "agg", "--aggregation-rule=team=blue"],
    );
    assert!(ok, "{out}{err}");

    // create token, then use it.
    let (ok, out, err) = k(&admin, &["create", "serviceaccount", "bot"]);
    assert!(ok, "{out}{err}");
    let (ok, token, err) = k(&admin, &["create", "token", "bot", "--duration=10m"]);
    assert!(ok, "{err}");
    let bot_kc = s.token_kubeconfig("bot", token.trim());
    let (ok, _, err) = k(&bot_kc, &["get", "secrets"]);
    assert!(!ok);
    assert!(
        err.contains("User \"system:serviceaccount:default:bot\" cannot list resource \"secrets\""),
        "{err}"
    );
    let (ok, out, err) = k(&bot_kc, &["auth", "can-i", "get", "secrets"]);
    assert!(!ok);
    assert_eq!(out.trim(), "no", "{err}");
    let (ok, token, err) = k(
        &admin,
        &["create", "token", "bot", "--audience=vault", "--duration=1h"],
    );
    assert!(ok, "{err}");
    let header = jsonwebtoken::decode_header(token.trim()).unwrap();
    assert!(header.kid.is_some());
    let vault_kc = s.token_kubeconfig("vault", token.trim());
    let (ok, _, err) = k(&vault_kc, &["get", "--raw", "/api"]);
    assert!(!ok && err.contains("Unauthorized"), "{err}");
    let (ok, _, _) = k(&admin, &["delete", "serviceaccount", "bot"]);
    assert!(ok);
    let (ok, _, err) = k(&bot_kc, &["auth", "can-i", "get", "pods"]);
    assert!(!ok && err.contains("Unauthorized"), "{err}");
}

/// `auth whoami` (SelfSubjectReview v1: kubectl 1.28+).
async fn kubectl_whoami(minor: u32) {
    let Some(bin) = conformance::tools::kubectl(minor) else {
        return;
    };
    let s = Secured::start(false).await;
    let home = tempfile::tempdir().unwrap();
    let alice_kc = s.token_kubeconfig("alice", "alice-token");
    let (ok, out, err) = run(&bin, &alice_kc, home.path(), &["auth", "whoami", "-o", "json"]);
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"]["userInfo"]["username"], "alice");
    let admin = s.server().kubeconfig.clone();
    let (ok, out, err) = run(&bin, &admin, home.path(), &["auth", "whoami", "--as=alice"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("alice"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_auth_commands() {
    kubectl_auth_commands(27).await;
}

/// kubectl 1.33 sends review and TokenRequest bodies as protobuf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_auth_commands() {
    kubectl_auth_commands(33).await;
}

/// kubectl 1.27 only knows SelfSubjectReview v1alpha1/v1beta1, which are not served (as on
/// upstream servers of this API level); 1.33 sends a protobuf body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_whoami() {
    kubectl_whoami(33).await;
}

#[tokio::test]
async fn component_identities_have_least_privilege() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = apiserver::Config::new(dir.path()).bind("127.0.0.1:0".parse().unwrap());
    config.auth.node_name = "n1".into();
    let server = apiserver::start(config, Arc::new(storage::mem::MemStorage::new()))
        .await
        .unwrap();
    let client = |file: &str| {
        let path = if file == "admin" {
            server.kubeconfig.clone()
        } else {
            dir.path().join(format!("{file}.kubeconfig"))
        };
        async move {
            let kc = Kubeconfig::read_from(path).unwrap();
            let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .unwrap();
            kube::Client::try_from(config).unwrap()
        }
    };
    let status_of = |client: kube::Client, method: Method, path: &'static str, body: Option<Value>| async move {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(kube::client::Body::from(
                body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default(),
            ))
            .unwrap();
        let resp = client.send(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        )
    };
    let whoami = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    for (file, user, groups) in [
        (
            "scheduler",
            "system:kube-scheduler",
            json!(["system:authenticated"]),
        ),
        (
            "controller-manager",
            "system:kube-controller-manager",
            json!(["system:authenticated"]),
        ),
        ("kube-proxy", "system:kube-proxy", json!(["system:authenticated"])),
        (
            "kubelet",
            "system:node:n1",
            json!(["system:nodes", "system:authenticated"]),
        ),
    ] {
        let c = client(file).await;
        let (status, me) = status_of(
            c,
            Method::POST,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Some(whoami.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{file}: {me}");
        assert_eq!(me["status"]["userInfo"]["username"], user);
        assert_eq!(me["status"]["userInfo"]["groups"], groups);
    }
    let cases: [(&str, Method, &'static str, StatusCode); 8] = [
        ("scheduler", Method::GET, "/api/v1/pods", StatusCode::OK),
        ("scheduler", Method::GET, "/api/v1/secrets", StatusCode::FORBIDDEN),
        (
            "controller-manager",
            Method::GET,
            "/api/v1/secrets",
            StatusCode::OK,
        ),
        (
            "controller-manager",
            Method::DELETE,
            "/api/v1/namespaces/default/pods/x",
            StatusCode::FORBIDDEN,
        ),
        ("kube-proxy", Method::GET, "/api/v1/services", StatusCode::OK),
        ("kube-proxy", Method::GET, "/api/v1/pods", StatusCode::FORBIDDEN),
        ("kubelet", Method::GET, "/api/v1/nodes", StatusCode::OK),
        (
            "kubelet",
            Method::DELETE,
            "/api/v1/namespaces/default/configmaps/x",
            StatusCode::FORBIDDEN,
        ),
    ];
    for (file, method, path, want) in cases {
        let (status, body) = status_of(client(file).await, method.clone(), path, None).await;
        assert_eq!(status, want, "{file} {method} {path}: {body}");
    }

    // The node restriction: n1's kubelet reads only what pods bound to n1 use.
    let admin = client("admin").await;
    let pod = |name: &str, node: &str, sa: &str, secret: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name}, "spec": {"nodeName": node, "serviceAccountName": sa,
            "containers": [{"name": "c", "image": "busybox", "envFrom": [{"secretRef": {"name": secret}}]}]}})
    };
    for (path, body) in [
        (
            "/api/v1/namespaces/default/pods",
            pod("on-n1", "n1", "runner", "s1"),
        ),
        (
            "/api/v1/namespaces/default/pods",
            pod("on-n2", "n2", "default", "s2"),
        ),
        (
            "/api/v1/namespaces/default/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"}}),
        ),
        (
            "/api/v1/namespaces/default/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2"}}),
        ),
        (
            "/api/v1/namespaces/default/serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}}),
        ),
        (
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}}),
        ),
    ] {
        let (status, b) = status_of(admin.clone(), Method::POST, path, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {b}");
    }
    let token = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}});
    let node_cases: [(Method, &'static str, Option<Value>, StatusCode); 9] = [
        (
            Method::GET,
            "/api/v1/namespaces/default/secrets/s1",
            None,
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/secrets/s2",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/secrets",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Ds1",
            None,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/serviceaccounts/runner/token",
            Some(token.clone()),
            StatusCode::CREATED,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/serviceaccounts/default/token",
            Some(token),
            StatusCode::FORBIDDEN,
        ),
        (Method::GET, "/api/v1/nodes/n2", None, StatusCode::OK),
        (Method::DELETE, "/api/v1/nodes/n2", None, StatusCode::FORBIDDEN),
        (
            Method::DELETE,
            "/api/v1/namespaces/default/pods/on-n2",
            None,
            StatusCode::FORBIDDEN,
        ),
    ];
    for (method, path, body, want) in node_cases {
        let (status, b) = status_of(client("kubelet").await, method.clone(), path, body).await;
        assert_eq!(status, want, "kubelet {method} {path}: {b}");
        if path.ends_with("/secrets/s2") {
            assert_eq!(
                b["message"],
                "secrets \"s2\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object"
            );
        }
    }
    server.shutdown().await;
}

/// A small deterministic generator (xorshift) for the malformed-credential test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test]
async fn malformed_credentials_never_admit_or_fail() {
    use tower::ServiceExt;
    let store = Arc::new(storage::mem::MemStorage::new());
    let api = apiserver::ApiServer::new(apiserver::Config::new("/nonexistent"), store);
    api.bootstrap().await.unwrap();
    let signer = api.auth.signer();
    let now = jiff::Timestamp::now().as_second();
    let valid_claims = Claims {
        iss: signer.issuer().into(),
        sub: "system:serviceaccount:default:default".into(),
        aud: vec![signer.issuer().into()],
        exp: now + 3600,
        iat: now,
        nbf: now,
        jti: "j".into(),
        kubernetes: KubernetesClaims::default(),
    };
    let real = signer.sign(&valid_claims);
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    let mut checked = 0;
    for i in 0..3000 {
        let header: Vec<u8> = match i % 6 {
            // Random printable junk, with or without a scheme.
            0 => {
                let len = rng.below(200);
                let junk: Vec<u8> = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
                [b"Bearer ".to_vec(), junk].concat()
            }
            // A real token with one character changed.
            1 => {
                let mut t = real.clone().into_bytes();
                let at = rng.below(t.len());
                let mut c = alphabet[rng.below(alphabet.len() - 6)];
                if c == t[at] {
                    c = if c == b'A' { b'B' } else { b'A' };
                }
                t[at] = c;
                [b"Bearer ".to_vec(), t].concat()
            }
            // Three random base64url segments.
            2 => {
                let parts: Vec<String> = (0..3)
                    .map(|_| {
                        let n = rng.below(80);
                        b64(&rng.bytes(n))
                    })
                    .collect();
                format!("Bearer {}", parts.join(".")).into_bytes()
            }
            // JSON header and payload that look right, with `alg: none` or a bogus signature.
            3 => {
                let alg = ["none", "HS256", "RS256", "ES256", "ES384"][rng.below(5)];
                let head = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
                let body = b64(&serde_json::to_vec(&valid_claims).unwrap());
                let sig_len = rng.below(3) * 32;
                format!("Bearer {head}.{body}.{}", b64(&rng.bytes(sig_len))).into_bytes()
            }
            // Raw random bytes (most are not valid header values).
            4 => {
                let n = rng.below(100);
                rng.bytes(n)
            }
            // Other schemes and broken prefixes.
            _ => {
                let scheme = ["Basic", "bearer", "Bearer", "Token", "", "Bearer\t"][rng.below(6)];
                let n = rng.below(40) + 1;
                format!("{scheme} {}", b64(&rng.bytes(n))).into_bytes()
            }
        };
        let Ok(value) = HeaderValue::from_bytes(&header) else {
            continue;
        };
        let req = Request::builder()
            .uri("/api/v1/namespaces/kube-system/secrets")
            .header(http::header::AUTHORIZATION, value)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = api.router().oneshot(req).await.unwrap();
        let status = resp.status();
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{:?}",
            String::from_utf8_lossy(&header)
        );
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_401(status, &body, "fuzzed header");
        checked += 1;
    }
    assert!(checked > 2000, "only {checked} headers were valid header values");

    // Random and truncated client certificates never verify, and never panic.
    let dir = tempfile::tempdir().unwrap();
    let pki = apiserver::tls::Pki::load_or_create(dir.path(), &[]).unwrap();
    let verifier = pki.client_verifier().unwrap();
    let good = pki::certs_from_pem(&pki.admin_cert, "admin.crt")
        .unwrap()
        .remove(0);
    assert!(
        apiserver::tls::verified_user(&*verifier, Some(std::slice::from_ref(&good)))
            .unwrap()
            .is_some()
    );
    for i in 0..2000 {
        let der = if i % 2 == 0 {
            let n = rng.below(1500);
            rng.bytes(n)
        } else {
            let mut d = good.to_vec();
            let at = rng.below(d.len());
            d[at] ^= (rng.below(255) + 1) as u8;
            if i % 4 == 1 {
                d.truncate(at);
            }
            d
        };
        let cert = rustls::pki_types::CertificateDer::from(der);
        assert!(apiserver::tls::verified_user(&*verifier, Some(&[cert])).is_err());
    }
}

#[tokio::test]
async fn audit_log_follows_the_policy_and_never_holds_secret_data() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, TOKENS).unwrap();
    let policy = dir.path().join("audit-policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  users: [\"bob\"]\n- level: RequestResponse\n  resources: [{group: \"\", resources: [\"secrets\", \"configmaps\"]}]\n- level: Metadata\n",
    )
    .unwrap();
    let log = dir.path().join("audit.log");
    let mut config = apiserver::Config::new(dir.path()).bind("127.0.0.1:0".parse().unwrap());
    config.auth.token_auth_file = Some(tokens);
    config.auth.audit_log_path = Some(log.clone());
    config.auth.audit_policy_file = Some(policy);
    let server = apiserver::start(config, Arc::new(storage::mem::MemStorage::new()))
        .await
        .unwrap();
    let s = Secured {
        server: Some(server),
        dir,
    };
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"k": "visible"}});
    assert_eq!(
        s.post(&Cred::Admin, "/api/v1/namespaces/default/configmaps", cm)
            .await
            .0,
        StatusCode::CREATED
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"}, "stringData": {"password": "hunter2"}});
    assert_eq!(
        s.post(&Cred::Admin, "/api/v1/namespaces/default/secrets", secret)
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.get(&Cred::Admin, "/api/v1/namespaces/default/secrets/s1")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.get(&alice(), "/api/v1/namespaces/default/pods").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.get(
            &Cred::Token("bob-token".into()),
            "/api/v1/namespaces/default/pods"
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.get(&Cred::None, "/api/v1/namespaces").await.0,
        StatusCode::UNAUTHORIZED
    );

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("aHVudGVyMg"),
        "secret data in the audit log"
    );
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |verb: &str, resource: &str, stage: &str| {
        events
            .iter()
            .find(|e| e["verb"] == verb && e["objectRef"]["resource"] == resource && e["stage"] == stage)
            .unwrap_or_else(|| panic!("no {verb} {resource} {stage} event in {text}"))
            .clone()
    };
    let created = find("create", "configmaps", "ResponseComplete");
    assert_eq!(created["level"], "RequestResponse");
    assert_eq!(created["requestObject"]["data"]["k"], "visible");
    assert_eq!(created["responseObject"]["metadata"]["name"], "c1");
    assert_eq!(created["responseStatus"]["code"], 201);
    assert_eq!(created["user"]["username"], "admin");
    assert_eq!(created["annotations"]["authorization.k8s.io/decision"], "allow");
    assert_eq!(created["sourceIPs"], json!(["127.0.0.1"]));
    assert_eq!(
        find("create", "configmaps", "RequestReceived")["auditID"],
        created["auditID"]
    );
    let secret_event = find("create", "secrets", "ResponseComplete");
    assert_eq!(secret_event["level"], "Metadata");
    assert!(secret_event.get("requestObject").is_none());
    let denied = find("list", "pods", "ResponseComplete");
    assert_eq!(denied["user"]["username"], "alice");
    assert_eq!(denied["responseStatus"]["code"], 403);
    assert_eq!(denied["annotations"]["authorization.k8s.io/decision"], "forbid");
    assert!(
        events.iter().all(|e| e["user"]["username"] != "bob"),
        "bob is not audited"
    );
    assert!(
        events
            .iter()
            .any(|e| e["requestURI"] == "/api/v1/namespaces" && e["responseStatus"]["code"] == 401),
        "the 401 is audited"
    );
}
