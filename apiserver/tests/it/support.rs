//! Shared helpers: an in-process server over `MemStorage`, and requests through `oneshot`.

use std::sync::Arc;

use apiserver::{ApiServer, Config};
use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A server without TLS (every request is the admin), plus its store.
pub struct TestServer {
    pub api: Arc<ApiServer>,
    pub store: Arc<storage::mem::MemStorage>,
}

impl TestServer {
    pub async fn new() -> TestServer {
        let store = Arc::new(storage::mem::MemStorage::new());
        let mut config = Config::new("/nonexistent");
        config.allow_unauthenticated = true;
        config.registry.bookmark_interval = std::time::Duration::from_millis(200);
        let api = ApiServer::new(config, store.clone());
        api.bootstrap().await.expect("bootstrap");
        TestServer { api, store }
    }

    /// Sends a request; returns status, headers and the body as JSON (Null when not JSON).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        self.raw(method, uri, headers, bytes).await
    }

    pub async fn raw(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        let has_ct = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if !has_ct && !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let resp = self
            .api
            .router()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::GET, uri, &[], None).await;
        (s, v)
    }

    pub async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::POST, uri, &[], Some(body)).await;
        (s, v)
    }
}

/// A ConfigMap body.
pub fn configmap(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

/// A Deployment body.
pub fn deployment(name: &str, image: &str, replicas: i32) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]}}}
    })
}
