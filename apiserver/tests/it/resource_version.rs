//! Reads at a resourceVersion the server has not reached: upstream's 504 "Too large resource
//! version" over HTTP and as kube-rs sees it.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

use crate::kube_client::Running;
use crate::support::{TestServer, configmap};
use crate::watch_cache::Watch;

const CM: &str = "/api/v1/namespaces/default/configmaps";

fn assert_too_large(body: &Value, requested: u64) {
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], 504, "{body}");
    assert_eq!(body["reason"], "Timeout");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "Timeout: Too large resource version: {requested}, current: "
        )),
        "{message}"
    );
    assert_eq!(body["details"]["retryAfterSeconds"], 1);
    assert_eq!(body["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "Too large resource version"
    );
}

#[tokio::test]
async fn reads_ahead_of_the_store_answer_504_too_large_resource_version() {
    let s = TestServer::new().await;
    let (code, created) = s.post(CM, configmap("a", &[])).await;
    assert_eq!(code, 201);
    let rv: u64 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ahead = rv + 1000;

    // At the current revision (and below) everything is answered.
    let (code, _) = s.get(&format!("{CM}/a?resourceVersion={rv}")).await;
    assert_eq!(code, 200);
    let (code, _) = s
        .get(&format!(
            "{CM}?resourceVersion={rv}&resourceVersionMatch=NotOlderThan"
        ))
        .await;
    assert_eq!(code, 200);

    let uris = [
        format!("{CM}/a?resourceVersion={ahead}"),
        format!("{CM}?resourceVersion={ahead}"),
        format!("{CM}?resourceVersion={ahead}&resourceVersionMatch=NotOlderThan"),
        format!("{CM}?resourceVersion={ahead}&resourceVersionMatch=Exact"),
        format!("{CM}?resourceVersion={ahead}&limit=10"),
    ];
    let answers =
        futures::future::join_all(uris.iter().map(|u| s.call(http::Method::GET, u, &[], None))).await;
    for (uri, (code, headers, body)) in uris.iter().zip(answers) {
        assert_eq!(code.as_u16(), 504, "{uri}: {body}");
        assert_eq!(headers["retry-after"], "1", "{uri}");
        assert_too_large(&body, ahead);
    }

    // A watch-list not older than N: an ERROR event with the same status.
    let mut watch = Watch::open(
        &s,
        &format!(
            "{CM}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersion={ahead}&resourceVersionMatch=NotOlderThan"
        ),
    )
    .await;
    let events = watch.events(1).await;
    assert_eq!(events[0]["type"], "ERROR");
    assert_too_large(&events[0]["object"], ahead);
}

#[tokio::test]
async fn kube_rs_sees_the_timeout_status() {
    let running = Running::start().await;
    // kube-rs retries 504s by default (15 times with backoff); this test wants the first answer.
    let kc = Kubeconfig::read_from(running.kubeconfig()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.default_retry = false;
    let cms: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("a".into());
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let rv: u64 = created.metadata.resource_version.unwrap().parse().unwrap();
    let ahead = (rv + 1000).to_string();
    let err = cms
        .list(
            &ListParams::default()
                .at(&ahead)
                .matching(kube::api::VersionMatch::NotOlderThan),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not a Status: {err:?}");
    };
    assert_eq!(status.code, 504);
    assert_eq!(status.reason, "Timeout");
    assert!(
        status.message.starts_with(&format!(
            "Timeout: Too large resource version: {ahead}, current: "
        )),
        "{}",
        status.message
    );
}
