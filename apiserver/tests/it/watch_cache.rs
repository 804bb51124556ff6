//! The watch cache over HTTP: fan-out to many watchers, replay from memory, lists at
//! resourceVersion=0, and `/metrics`.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use storage::Storage;
use tower::ServiceExt;

use crate::support::{TestServer, configmap};

const CM: &str = "/api/v1/namespaces/default/configmaps";

/// A watch response body and its unparsed bytes.
pub(crate) struct Watch {
    body: Body,
    buf: Vec<u8>,
}

impl Watch {
    pub(crate) async fn open(s: &TestServer, uri: &str) -> Watch {
        let resp = s
            .api
            .router()
            .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        Watch {
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }

    /// The next `n` events.
    pub(crate) async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                out.push(serde_json::from_slice(&line).expect("one JSON object per line"));
            }
            if out.len() >= n {
                return out;
            }
            let frame = tokio::time::timeout(Duration::from_secs(30), self.body.frame())
                .await
                .expect("watch event did not arrive")
                .expect("watch stream ended")
                .expect("watch body error");
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn update(s: &TestServer, name: &str, value: &str) -> u64 {
    let (code, _, v) = s
        .call(
            http::Method::PUT,
            &format!("{CM}/{name}"),
            &[],
            Some(configmap(name, &[("v", value)])),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    rv(&v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_receive_the_same_events_in_order() {
    let s = TestServer::new().await;
    let (code, created) = s.post(CM, configmap("shared", &[("v", "0")])).await;
    assert_eq!(code, 201);
    let start = rv(&created);
    let mut watches = Vec::new();
    for _ in 0..64 {
        watches.push(Watch::open(&s, &format!("{CM}?watch=true&resourceVersion={start}")).await);
    }
    let mut written = Vec::new();
    for i in 1..=20 {
        written.push(update(&s, "shared", &i.to_string()).await);
    }
    let readers: Vec<_> = watches
        .into_iter()
        .map(|mut w| tokio::spawn(async move { w.events(20).await }))
        .collect();
    for r in readers {
        let evs = r.await.unwrap();
        let got: Vec<u64> = evs.iter().map(|e| rv(&e["object"])).collect();
        assert_eq!(got, written);
        assert!(evs.iter().all(|e| e["type"] == "MODIFIED"));
        assert_eq!(evs[19]["object"]["data"]["v"], "20");
    }
}

#[tokio::test]
async fn a_watch_from_a_recent_revision_replays_from_memory() {
    let s = TestServer::new().await;
    let (_, created) = s.post(CM, configmap("r", &[("v", "0")])).await;
    let from = rv(&created);
    // A first watch starts the cache.
    let mut first = Watch::open(&s, &format!("{CM}?watch=true&resourceVersion={from}")).await;
    let a = update(&s, "r", "1").await;
    let b = update(&s, "r", "2").await;
    first.events(2).await;
    // The store forgets the history: only the cache can replay it.
    let current = s.store.current_revision().await.unwrap();
    s.store.compact(current).await.unwrap();
    let mut again = Watch::open(&s, &format!("{CM}?watch=true&resourceVersion={from}")).await;
    let evs = again.events(2).await;
    assert_eq!(evs.iter().map(|e| rv(&e["object"])).collect::<Vec<_>>(), [a, b]);
    assert_eq!(evs[1]["object"]["data"]["v"], "2");
}

#[tokio::test]
async fn lists_at_resource_version_0_come_from_the_cache() {
    let s = TestServer::new().await;
    for i in 0..3 {
        s.post(CM, configmap(&format!("l{i}"), &[])).await;
    }
    // The first list starts the cache; a later write shows up once the cache has seen it.
    s.get(&format!("{CM}?resourceVersion=0")).await;
    let (_, made) = s.post(CM, configmap("late", &[])).await;
    let want = rv(&made);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let list = loop {
        let (code, list) = s.get(&format!("{CM}?resourceVersion=0&limit=1")).await;
        assert_eq!(code, 200);
        if rv(&list) >= want {
            break list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache never saw the write"
        );
        tokio::task::yield_now().await;
    };
    // `limit` is ignored at resourceVersion=0 (upstream serves the whole list from its cache).
    let names: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("l0"), json!("l1"), json!("l2"), json!("late")]);
    assert!(list["metadata"].get("continue").is_none());
    // A consistent list (no resourceVersion) sees a write at once.
    s.post(CM, configmap("later", &[])).await;
    let (_, list) = s.get(CM).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 5);
    // Exact reads and pages still come from the store.
    let (_, page) = s.get(&format!("{CM}?limit=2")).await;
    assert!(page["metadata"]["continue"].is_string());
}

#[tokio::test]
async fn metrics_count_requests_and_watchers() {
    let s = TestServer::new().await;
    s.post(CM, configmap("m", &[])).await;
    s.get(CM).await;
    s.get(&format!("{CM}/missing")).await;
    let mut w = Watch::open(&s, &format!("{CM}?watch=true")).await;
    w.events(1).await;
    let resp = s
        .api
        .router()
        .oneshot(Request::builder().uri("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    assert!(
        has(
            r#"apiserver_request_total{code="201",group="",resource="configmaps",subresource="",verb="POST",version="v1"}"#
        ),
        "{text}"
    );
    assert!(has(
        r#"apiserver_request_total{code="404",group="",resource="configmaps",subresource="",verb="GET",version="v1"}"#
    ));
    assert!(has(
        r#"apiserver_request_total{code="200",group="",resource="configmaps",subresource="",verb="LIST",version="v1"}"#
    ));
    assert!(has(
        r#"apiserver_request_duration_seconds_bucket{group="",resource="configmaps",subresource="",verb="LIST",version="v1",le="0.005"}"#
    ));
    assert!(has(
        "apiserver_current_inflight_requests{request_kind=\"readOnly\"}"
    ));
    assert!(
        text.lines().any(
            |l| l.starts_with("apiserver_registered_watchers ") && l != "apiserver_registered_watchers 0"
        )
    );
    assert!(has("apiserver_watch_events_total "));
    assert!(has(r#"apiserver_storage_objects{resource="configmaps"}"#));
    drop(w);
}
