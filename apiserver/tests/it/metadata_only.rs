//! Metadata-only answers (`Accept: ...;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`):
//! writes answer `PartialObjectMetadata` like reads do, shape mismatches are 406 as upstream, and
//! every event of a metadata watch (BOOKMARKs included, JSON and protobuf) is a
//! `PartialObjectMetadata` or an ERROR's Status.

use std::time::Duration;

use apiserver::protobuf;
use axum::body::Body;
use futures::StreamExt;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use serde_json::{Value, json};
use storage::Storage;
use tower::ServiceExt;

use crate::kube_client::Running;
use crate::support::{TestServer, configmap, deployment};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const META: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const META_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
use crate::protobuf::send;

const PB: &str = "application/vnd.kubernetes.protobuf";
/// What client-go's metadata client (the controller-manager's garbage collector, quota and
/// namespace controllers) sends for gets and watches.
const CLIENT_GO_META: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

fn assert_partial(v: &Value, api_version: &str, name: &str) {
    assert_eq!(v["kind"], "PartialObjectMetadata", "{v}");
    assert_eq!(v["apiVersion"], api_version, "{v}");
    assert_eq!(v["metadata"]["name"], name, "{v}");
    assert!(v["metadata"]["resourceVersion"].is_string(), "{v}");
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "only kind, apiVersion and metadata: {v}");
}

#[tokio::test]
async fn writes_answer_partial_object_metadata() {
    let s = TestServer::new().await;
    let json = |v: &Value| serde_json::to_vec(v).unwrap();

    // POST, PUT and PATCH in JSON, v1 and v1beta1.
    let (code, ct, body) = send(
        &s,
        Method::POST,
        CM,
        &[("accept", META), ("content-type", "application/json")],
        json(&configmap("m", &[("k", "v")])),
    )
    .await;
    assert_eq!((code, ct.as_str()), (StatusCode::CREATED, "application/json"));
    let created: Value = serde_json::from_slice(&body).unwrap();
    assert_partial(&created, "meta.k8s.io/v1", "m");
    assert!(created["metadata"]["uid"].is_string());

    let mut cm = configmap("m", &[("k", "w")]);
    cm["metadata"]["labels"] = json!({"a": "b"});
    let (code, _, body) = send(
        &s,
        Method::PUT,
        &format!("{CM}/m"),
        &[("accept", META), ("content-type", "application/json")],
        json(&cm),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let replaced: Value = serde_json::from_slice(&body).unwrap();
    assert_partial(&replaced, "meta.k8s.io/v1", "m");
    assert_eq!(replaced["metadata"]["labels"], json!({"a": "b"}));

    let v1beta1 = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1";
    let (code, _, body) = send(
        &s,
        Method::PATCH,
        &format!("{CM}/m"),
        &[
            ("accept", v1beta1),
            ("content-type", "application/merge-patch+json"),
        ],
        json(&json!({"metadata": {"annotations": {"x": "y"}}})),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let patched: Value = serde_json::from_slice(&body).unwrap();
    assert_partial(&patched, "meta.k8s.io/v1beta1", "m");
    assert_eq!(patched["metadata"]["annotations"], json!({"x": "y"}));
    // The write happened in full.
    let (_, stored) = s.get(&format!("{CM}/m")).await;
    assert_eq!(stored["data"], json!({"k": "w"}));

    // Protobuf, as client-go's metadata client asks: an enveloped meta.k8s.io/v1 message.
    let (code, ct, body) = send(
        &s,
        Method::PATCH,
        &format!("{CM}/m"),
        &[
            ("accept", CLIENT_GO_META),
            ("content-type", "application/merge-patch+json"),
        ],
        json(&json!({"metadata": {"labels": {"c": "d"}}})),
    )
    .await;
    assert_eq!((code, ct.as_str()), (StatusCode::OK, PB));
    let decoded = protobuf::decode(&body).unwrap();
    assert_partial(&decoded, "meta.k8s.io/v1", "m");
    assert_eq!(decoded["metadata"]["labels"]["c"], "d");

    // YAML.
    let yaml = "application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
    let (code, ct, body) = send(&s, Method::GET, &format!("{CM}/m"), &[("accept", yaml)], vec![]).await;
    assert_eq!((code, ct.as_str()), (StatusCode::OK, "application/yaml"));
    let decoded: Value = serde_yaml_ng::from_slice(&body).unwrap();
    assert_partial(&decoded, "meta.k8s.io/v1", "m");

    // Subresources: status answers the object's metadata, scale the Scale's.
    let (code, _) = s
        .post(
            "/apis/apps/v1/namespaces/default/deployments",
            deployment("d", "nginx", 1),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, _, body) = send(
        &s,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/deployments/d/status",
        &[("accept", META), ("content-type", "application/merge-patch+json")],
        json(&json!({"status": {"observedGeneration": 1}})),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_partial(&serde_json::from_slice(&body).unwrap(), "meta.k8s.io/v1", "d");
    let (code, _, body) = send(
        &s,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/deployments/d/scale",
        &[("accept", META), ("content-type", "application/merge-patch+json")],
        json(&json!({"spec": {"replicas": 2}})),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_partial(&serde_json::from_slice(&body).unwrap(), "meta.k8s.io/v1", "d");

    // Tables for writes too (upstream transforms every write's answer).
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let (code, _, body) = send(
        &s,
        Method::POST,
        CM,
        &[("accept", table), ("content-type", "application/json")],
        json(&configmap("t", &[])),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let t: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(t["kind"], "Table", "{t}");
    assert_eq!(t["rows"][0]["cells"][0], "t");

    // DELETE: a Status stays a Status; an object kept by a finalizer is partial metadata.
    let (code, _, body) = send(
        &s,
        Method::DELETE,
        &format!("{CM}/t"),
        &[("accept", META)],
        vec![],
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["kind"], "Status", "{answer}");
    let mut held = configmap("held", &[]);
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    s.post(CM, held).await;
    let (code, _, body) = send(
        &s,
        Method::DELETE,
        &format!("{CM}/held"),
        &[("accept", META)],
        vec![],
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_partial(&answer, "meta.k8s.io/v1", "held");
    assert!(answer["metadata"]["deletionTimestamp"].is_string(), "{answer}");

    // Errors are Status bodies whatever was asked for.
    let (code, _, body) = send(
        &s,
        Method::GET,
        &format!("{CM}/absent"),
        &[("accept", META)],
        vec![],
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["kind"], "Status");
}

#[tokio::test]
async fn partial_metadata_shapes_must_match_the_answer() {
    let s = TestServer::new().await;
    s.post(CM, configmap("a", &[])).await;

    let (code, _, body) = send(&s, Method::GET, CM, &[("accept", META_LIST)], vec![]).await;
    assert_eq!(code, StatusCode::OK);
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert!(list["metadata"]["resourceVersion"].is_string());

    // The other shape is a 406, as upstream answers.
    let (code, _, body) = send(&s, Method::GET, CM, &[("accept", META)], vec![]).await;
    assert_eq!(code, StatusCode::NOT_ACCEPTABLE);
    let st: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st["reason"], "NotAcceptable");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .starts_with("you requested PartialObjectMetadata, but the requested object is a list"),
        "{st}"
    );
    let (code, _, _) = send(
        &s,
        Method::GET,
        &format!("{CM}/a"),
        &[("accept", META_LIST)],
        vec![],
    )
    .await;
    assert_eq!(code, StatusCode::NOT_ACCEPTABLE);

    // DELETE of a collection answers the deleted list.
    let (code, _, body) = send(&s, Method::DELETE, CM, &[("accept", META_LIST)], vec![]).await;
    assert_eq!(code, StatusCode::OK);
    let gone: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(gone["kind"], "PartialObjectMetadataList", "{gone}");
    assert_eq!(gone["items"][0]["metadata"]["name"], "a");
}

#[tokio::test]
async fn kube_rs_patch_metadata_and_metadata_writes() {
    let running = Running::start().await;
    let client = running.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm: ConfigMap = serde_json::from_value(configmap("kr", &[("k", "v")])).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();

    let patch = json!({"metadata": {"labels": {"patched": "yes"}}});
    let meta: PartialObjectMeta<ConfigMap> = cms
        .patch_metadata("kr", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(meta.metadata.name.as_deref(), Some("kr"));
    assert_eq!(meta.metadata.labels.unwrap()["patched"], "yes");
    let types = meta.types.unwrap();
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("meta.k8s.io/v1", "PartialObjectMetadata")
    );

    // Create and replace with the same Accept header (kube-rs has no typed call for them).
    let write = |method: Method, uri: String, body: &ConfigMap| {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header("accept", META)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .unwrap()
    };
    cm.metadata.name = Some("kr2".into());
    let created: PartialObjectMeta<ConfigMap> =
        client.request(write(Method::POST, CM.into(), &cm)).await.unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("kr2"));
    assert!(created.metadata.uid.is_some());
    let mut current = cms.get("kr2").await.unwrap();
    current.metadata.annotations = Some([("replaced".to_string(), "yes".to_string())].into());
    let replaced: PartialObjectMeta<ConfigMap> = client
        .request(write(Method::PUT, format!("{CM}/kr2"), &current))
        .await
        .unwrap();
    assert_eq!(replaced.metadata.annotations.unwrap()["replaced"], "yes");
    assert_eq!(
        replaced.types.unwrap().kind,
        "PartialObjectMetadata",
        "the answer is partial metadata, not the ConfigMap"
    );
}

/// Reads the events of a JSON or protobuf watch stream.
struct Events {
    body: Body,
    buf: Vec<u8>,
    protobuf: bool,
}

impl Events {
    async fn open(s: &TestServer, uri: &str, accept: &str) -> Events {
        let req = Request::builder()
            .uri(uri)
            .header("accept", accept)
            .body(Body::empty())
            .unwrap();
        let resp = s.api.router().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        let protobuf = resp.headers()["content-type"] == protobuf::WATCH_MEDIA_TYPE;
        Events {
            body: resp.into_body(),
            buf: Vec::new(),
            protobuf,
        }
    }

    /// The next event: its type and object.
    async fn next(&mut self) -> (String, Value) {
        loop {
            if self.protobuf {
                if let Some(frame) = protobuf::decode_watch_frame(&self.buf) {
                    let (ty, obj, used) = frame.expect("a valid protobuf watch frame");
                    self.buf.drain(..used);
                    return (ty, obj);
                }
            } else if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let mut ev: Value = serde_json::from_slice(&line).expect("one JSON event per line");
                return (ev["type"].as_str().unwrap().to_string(), ev["object"].take());
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

const METADATA_ACCEPTS: [(&str, &str); 2] = [("json", META), ("protobuf", CLIENT_GO_META)];

#[tokio::test]
async fn metadata_watch_events_and_bookmarks_are_partial_metadata() {
    let s = TestServer::new().await;
    s.post(CM, configmap("pre", &[])).await;
    for (name, accept) in METADATA_ACCEPTS {
        let (_, list) = s.get(CM).await;
        let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let uri = format!("{CM}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true");
        let mut events = Events::open(&s, &uri, accept).await;
        assert_eq!(events.protobuf, name == "protobuf");
        let cm = format!("w-{name}");
        s.post(CM, configmap(&cm, &[])).await;
        s.call(
            Method::PATCH,
            &format!("{CM}/{cm}"),
            &[("content-type", "application/merge-patch+json")],
            Some(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await;
        s.call(Method::DELETE, &format!("{CM}/{cm}"), &[], None).await;
        let mut seen = Vec::new();
        while !seen.contains(&"BOOKMARK".to_string()) {
            let (ty, obj) = events.next().await;
            assert_eq!(obj["kind"], "PartialObjectMetadata", "{name} {ty}: {obj}");
            assert_eq!(obj["apiVersion"], "meta.k8s.io/v1", "{name} {ty}: {obj}");
            assert!(
                obj["metadata"]["resourceVersion"].is_string(),
                "{name} {ty}: {obj}"
            );
            if ty != "BOOKMARK" {
                assert_eq!(obj["metadata"]["name"], cm.as_str());
                assert!(obj.get("data").is_none());
            }
            seen.push(ty);
        }
        assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"], "{name}");
    }

    // A watch-list's initial-events-end bookmark keeps its annotation.
    let uri = format!(
        "{CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    );
    let mut events = Events::open(&s, &uri, CLIENT_GO_META).await;
    loop {
        let (ty, obj) = events.next().await;
        assert_eq!(obj["kind"], "PartialObjectMetadata", "{ty}: {obj}");
        if ty == "BOOKMARK" {
            assert_eq!(
                obj["metadata"]["annotations"]["k8s.io/initial-events-end"],
                "true"
            );
            break;
        }
    }

    // An ERROR event carries a Status, in JSON and protobuf.
    let rev = s.store.current_revision().await.unwrap();
    s.store.compact(rev).await.unwrap();
    for (name, accept) in METADATA_ACCEPTS {
        let mut events = Events::open(&s, &format!("{CM}?watch=true&resourceVersion=2"), accept).await;
        let (ty, obj) = events.next().await;
        assert_eq!(ty, "ERROR", "{name}");
        assert_eq!(obj["kind"], "Status", "{name}: {obj}");
        assert_eq!(obj["code"], 410, "{name}: {obj}");
    }
}

/// Every watchable type, in JSON and protobuf: its metadata watch's events up to the first
/// BOOKMARK are all `PartialObjectMetadata` (a client with an older scheme, such as a 1.28
/// controller-manager, decodes them whatever the type).
#[tokio::test]
async fn every_type_metadata_watch_is_partial_metadata() {
    let s = TestServer::new().await;
    let mut uris: Vec<String> = s
        .api
        .table
        .all()
        .into_iter()
        .filter(|d| d.virtual_kind.is_none() && d.verbs.has("watch"))
        .map(|d| {
            let base = if d.group.is_empty() {
                format!("/api/{}", d.version)
            } else {
                format!("/apis/{}/{}", d.group, d.version)
            };
            format!("{base}/{}?watch=true&allowWatchBookmarks=true", d.resource)
        })
        .collect();
    uris.sort();
    assert!(uris.len() > 50, "{uris:?}");
    let checks = uris.iter().flat_map(|uri| {
        METADATA_ACCEPTS.map(|(name, accept)| {
            let s = &s;
            async move {
                let mut events = Events::open(s, uri, accept).await;
                loop {
                    let (ty, obj) = events.next().await;
                    assert_eq!(obj["kind"], "PartialObjectMetadata", "{uri} {name} {ty}: {obj}");
                    assert_eq!(obj["apiVersion"], "meta.k8s.io/v1", "{uri} {name} {ty}: {obj}");
                    if ty == "BOOKMARK" {
                        break;
                    }
                }
            }
        })
    });
    futures::stream::iter(checks)
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
}
