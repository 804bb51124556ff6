use super::*;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A certificate for localhost written to `dir`, and a client config trusting it.
fn cert_files(dir: &std::path::Path) -> (ServingConfig, rustls::ClientConfig) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let serving = ServingConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        cert_file: Some(c),
        key_file: Some(k),
    };
    (serving, client)
}

/// One HTTP/1.1 GET over TLS: the status code and body.
async fn get(addr: SocketAddr, tls: &rustls::ClientConfig, path: &str, token: Option<&str>) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls.clone()));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let code = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, dechunk(&body))
}

/// Undoes `Transfer-Encoding: chunked` when the body uses it (enough for these small bodies).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_string();
        };
        if n == 0 {
            return out;
        }
        out.push_str(&tail[..n.min(tail.len())]);
        rest = tail.get(n + 2..).unwrap_or("");
    }
    body.to_string()
}

#[tokio::test]
async fn health_endpoints_report_their_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (config, tls) = cert_files(dir.path());
    let healthy = Arc::new(AtomicBool::new(true));
    let mut server = HealthServer::new();
    let flag = healthy.clone();
    server.add_check(
        "leaderElection",
        Arc::new(move || {
            if flag.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err("lost".into())
            }
        }),
    );
    server.add_ready_check("informer-sync", Arc::new(|| Ok(())));
    let shutdown = CancellationToken::new();
    let handle = server.serve(&config, None, shutdown.clone()).await.unwrap();
    let addr = handle.addr;
    assert_eq!(get(addr, &tls, "/healthz", None).await, (200, "ok".into()));
    assert_eq!(
        get(addr, &tls, "/readyz?verbose", None).await,
        (
            200,
            "[+]ping ok\n[+]leaderElection ok\n[+]shutdown ok\n[+]informer-sync ok\nreadyz check passed\n"
                .into()
        )
    );
    assert_eq!(get(addr, &tls, "/livez/ping", None).await, (200, "ok".into()));
    assert_eq!(
        get(addr, &tls, "/livez/informer-sync", None).await.0,
        404,
        "a readyz-only check"
    );
    healthy.store(false, Ordering::Release);
    let (code, body) = get(addr, &tls, "/healthz", None).await;
    assert_eq!(code, 500);
    assert!(
        body.contains("[-]leaderElection failed: reason withheld"),
        "{body}"
    );
    assert_eq!(get(addr, &tls, "/nothing", None).await.0, 404);
    // Without a client to review callers, metrics are refused.
    assert_eq!(get(addr, &tls, "/metrics", None).await.0, 403);
    shutdown.cancel();
    handle.stopped().await;
}

#[tokio::test]
async fn metrics_need_a_caller_the_api_server_authorizes() {
    let api = apiserver::testing::TestServer::start().await.unwrap();
    let client = api.client();
    let dir = tempfile::tempdir().unwrap();
    let (config, tls) = cert_files(dir.path());
    let server = HealthServer::new();
    let counter = prometheus::IntCounter::new("demo_total", "A demo counter.").unwrap();
    server.registry().register(Box::new(counter.clone())).unwrap();
    counter.inc_by(7);
    let shutdown = CancellationToken::new();
    let handle = server
        .serve(&config, Some(client.clone()), shutdown.clone())
        .await
        .unwrap();
    let addr = handle.addr;

    // A ServiceAccount's token, not yet allowed to read /metrics.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("scraper".into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec::default()),
        ..TokenRequest::default()
    };
    let token = sas
        .create_token_request("scraper", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .expect("a token");

    let (code, body) = get(addr, &tls, "/metrics", None).await;
    assert_eq!(code, 403);
    assert!(
        body.contains(r#"forbidden: User \"system:anonymous\" cannot get path \"/metrics\""#),
        "{body}"
    );
    assert_eq!(get(addr, &tls, "/metrics", Some("not-a-token")).await.0, 401);
    let (code, body) = get(addr, &tls, "/metrics", Some(&token)).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("system:serviceaccount:default:scraper"), "{body}");

    let roles: Api<ClusterRole> = Api::all(client.clone());
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some("metrics-reader".into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            non_resource_urls: Some(vec!["/metrics".into()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    };
    roles.create(&PostParams::default(), &role).await.unwrap();
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some("metrics-reader".into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "metrics-reader".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "scraper".into(),
            namespace: Some("default".into()),
            ..Subject::default()
        }]),
    };
    bindings.create(&PostParams::default(), &binding).await.unwrap();
    // The RBAC caches follow the binding; the denial is cached for REVIEW_TTL, so a fresh
    // endpoint asks again once the API server allows it.
    let probe = Reviewer::new(client.clone());
    let user = UserInfo {
        username: Some("system:serviceaccount:default:scraper".into()),
        groups: Some(vec![
            "system:serviceaccounts".into(),
            "system:authenticated".into(),
        ]),
        ..UserInfo::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        probe.decisions.lock().clear();
        if probe.authorize(&user, "/metrics").await {
            break;
        }
        assert!(Instant::now() < deadline, "the binding never took effect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    handle.stopped().await;
    let server = HealthServer::new();
    server.registry().register(Box::new(counter.clone())).unwrap();
    let shutdown = CancellationToken::new();
    let handle = server
        .serve(&config, Some(client.clone()), shutdown.clone())
        .await
        .unwrap();
    let (code, body) = get(handle.addr, &tls, "/metrics", Some(&token)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("demo_total 7"), "{body}");
    shutdown.cancel();
    handle.stopped().await;
    api.shutdown().await;
}
