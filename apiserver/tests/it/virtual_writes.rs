//! Writes of the create-only resources (reviews, `bindings`) are type-checked like every other
//! write: `fieldValidation` decides what an unknown field does.

use http::{Method, StatusCode};
use serde_json::json;

use crate::support::TestServer;

const REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

fn review() -> serde_json::Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}, "bogus": 1}})
}

#[tokio::test]
async fn reviews_follow_field_validation() {
    let s = TestServer::new().await;
    let (status, v) = s
        .post(&format!("{REVIEWS}?fieldValidation=Strict"), review())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("strict decoding error: unknown field \"spec.bogus\""),
        "{v}"
    );
    let (status, headers, v) = s
        .call(
            Method::POST,
            &format!("{REVIEWS}?fieldValidation=Warn"),
            &[],
            Some(review()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"]["allowed"], true);
    assert!(v["spec"].get("bogus").is_none(), "{v}");
    let warning = headers.get("warning").and_then(|w| w.to_str().ok()).unwrap_or("");
    assert!(
        warning.starts_with("299 - ") && warning.contains("unknown field") && warning.contains("spec.bogus"),
        "{headers:?}"
    );
    let (status, v) = s
        .post(&format!("{REVIEWS}?fieldValidation=Ignore"), review())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn bindings_follow_field_validation() {
    let s = TestServer::new().await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "n1"}, "extra": true});
    let (status, v) = s
        .post(
            "/api/v1/namespaces/default/bindings?fieldValidation=Strict",
            binding.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("unknown field \"extra\""),
        "{v}"
    );
    // Without the unknown field the request reaches the binding (no such pod here).
    let (status, v) = s
        .post(
            "/api/v1/namespaces/default/bindings?fieldValidation=Strict",
            json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                "target": {"kind": "Node", "name": "n1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
}
