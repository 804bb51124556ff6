//! Paths with a trailing slash, served as kube-apiserver serves them: go-restful (which trims a
//! trailing slash) answers `/version`, the discovery documents and resource paths, while the
//! exact paths of upstream's path mux (health checks, metrics, OpenAPI) answer 404 with a slash.

use http::StatusCode;
use serde_json::Value;

use crate::support::{TestServer, configmap};

/// The same document with and without the trailing slash.
async fn same_with_slash(s: &TestServer, path: &str) -> Value {
    let (code, plain) = s.get(path).await;
    assert_eq!(code, StatusCode::OK, "{path}: {plain}");
    let slashed = format!("{path}/");
    let (code, v) = s.get(&slashed).await;
    assert_eq!(code, StatusCode::OK, "{slashed}: {v}");
    assert_eq!(v, plain, "{slashed}");
    v
}

#[tokio::test]
async fn discovery_and_version_with_a_trailing_slash() {
    let s = TestServer::new().await;
    assert_eq!(same_with_slash(&s, "/version").await["major"], "1");
    assert_eq!(same_with_slash(&s, "/api").await["kind"], "APIVersions");
    assert_eq!(same_with_slash(&s, "/apis").await["kind"], "APIGroupList");
    assert_eq!(same_with_slash(&s, "/api/v1").await["groupVersion"], "v1");
    assert_eq!(same_with_slash(&s, "/apis/apps").await["kind"], "APIGroup");
    assert_eq!(
        same_with_slash(&s, "/apis/apps/v1").await["groupVersion"],
        "apps/v1"
    );
    assert_eq!(
        same_with_slash(&s, "/apis/rbac.authorization.k8s.io/v1").await["kind"],
        "APIResourceList"
    );
    // Aggregated discovery is negotiated the same way with the slash.
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    for path in ["/api/", "/apis/"] {
        let (code, headers, v) = s.call(http::Method::GET, path, &[("accept", accept)], None).await;
        assert_eq!(code, StatusCode::OK, "{path}");
        assert_eq!(
            headers["content-type"],
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        assert_eq!(v["kind"], "APIGroupDiscoveryList", "{path}");
    }
}

#[tokio::test]
async fn unknown_groups_and_versions_are_404_with_a_slash_too() {
    let s = TestServer::new().await;
    for path in ["/api/v2/", "/apis/nosuch.example.com/", "/apis/apps/v9/"] {
        let (code, v) = s.get(path).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            (v["kind"].as_str(), v["reason"].as_str()),
            (Some("Status"), Some("NotFound")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn resource_paths_with_a_trailing_slash() {
    let s = TestServer::new().await;
    let (code, _) = s
        .post(
            "/api/v1/namespaces/default/configmaps/",
            configmap("slash", &[("a", "1")]),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, v) = s.get("/api/v1/namespaces/default/configmaps/slash/").await;
    assert_eq!(
        (code, v["data"]["a"].as_str()),
        (StatusCode::OK, Some("1")),
        "{v}"
    );
    let (code, v) = s.get("/api/v1/namespaces/default/configmaps/").await;
    assert_eq!(
        (code, v["kind"].as_str()),
        (StatusCode::OK, Some("ConfigMapList")),
        "{v}"
    );
}

#[tokio::test]
async fn exact_paths_are_404_with_a_trailing_slash() {
    let s = TestServer::new().await;
    // Upstream registers these as exact paths of its path mux (the health checks are
    // `/healthz` and `/healthz/<check>`), so the slash finds nothing.
    for path in [
        "/healthz/",
        "/livez/",
        "/readyz/",
        "/readyz/ping/",
        "/metrics/",
        "/openapi/v2/",
        "/openapi/v3/",
    ] {
        let (code, _) = s.get(path).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
    }
    for path in ["/healthz", "/readyz/ping", "/openapi/v2"] {
        let (code, _) = s.get(path).await;
        assert_eq!(code, StatusCode::OK, "{path}");
    }
}
