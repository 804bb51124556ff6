//! The Kubernetes protobuf content type: HTTP requests with protobuf bodies and protobuf answers
//! (decoded with the server's own converter), and stock kubectl 1.32/1.33, whose typed clientset
//! POSTs protobuf for `kubectl create <generator>`.

use std::path::{Path, PathBuf};

use apiserver::protobuf;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::kube_client::Running;
use crate::support::{TestServer, configmap};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const PB: &str = "application/vnd.kubernetes.protobuf";

/// A request through the router: status, content type and raw body.
pub(crate) async fn send(
    s: &TestServer,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = s
        .api
        .router()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, ct, bytes)
}

#[tokio::test]
async fn protobuf_bodies_create_objects() {
    let s = TestServer::new().await;
    let body = protobuf::encode(&configmap("pb1", &[("a", "b")])).unwrap();
    let (code, ct, bytes) = send(
        &s,
        Method::POST,
        CM,
        &[("content-type", PB), ("accept", "application/json")],
        body,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(ct, "application/json");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["data"], json!({"a": "b"}));
    let (_, stored) = s.get(&format!("{CM}/pb1")).await;
    assert_eq!(stored["data"], json!({"a": "b"}));

    // kubectl 1.32+ asks for protobuf back: the created object comes back enveloped.
    let body = protobuf::encode(&configmap("pb2", &[("x", "y")])).unwrap();
    let accept = format!("{PB}, application/json");
    let (code, ct, bytes) = send(
        &s,
        Method::POST,
        CM,
        &[("content-type", PB), ("accept", &accept)],
        body,
    )
    .await;
    assert_eq!((code, ct.as_str()), (StatusCode::CREATED, PB));
    let v = protobuf::decode(&bytes).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["data"]["x"].as_str()),
        (Some("ConfigMap"), Some("y"))
    );
    assert!(v["metadata"]["uid"].is_string());

    // A kind without a protobuf message is a 415, malformed bytes a 400; both Status bodies.
    let mut widget = protobuf::encode(&configmap("w", &[])).unwrap();
    let at = widget.windows(9).position(|w| w == b"ConfigMap").unwrap();
    widget.splice(at..at + 9, *b"WidgetXYZ");
    let (code, _, bytes) = send(&s, Method::POST, CM, &[("content-type", PB)], widget).await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let status: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status["reason"], "UnsupportedMediaType");
    let (code, _, bytes) = send(
        &s,
        Method::POST,
        CM,
        &[("content-type", PB)],
        b"k8s\0\xff".to_vec(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let status: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status["kind"], "Status");

    // A protobuf DeleteOptions body.
    let opts = protobuf::encode(&json!({"apiVersion": "v1", "kind": "DeleteOptions",
        "preconditions": {"uid": "not-the-uid"}}))
    .unwrap();
    let (code, _, _) = send(
        &s,
        Method::DELETE,
        &format!("{CM}/pb1"),
        &[("content-type", PB)],
        opts,
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
}

#[tokio::test]
async fn protobuf_answers_for_get_list_and_watch() {
    let s = TestServer::new().await;
    s.post(CM, configmap("a", &[("k", "v")])).await;
    let (_, json_obj) = s.get(&format!("{CM}/a")).await;

    let (code, ct, bytes) = send(&s, Method::GET, &format!("{CM}/a"), &[("accept", PB)], vec![]).await;
    assert_eq!((code, ct.as_str()), (StatusCode::OK, PB));
    assert!(bytes.starts_with(b"k8s\0"));
    assert_eq!(protobuf::decode(&bytes).unwrap(), json_obj);

    let (code, ct, bytes) = send(&s, Method::GET, CM, &[("accept", PB)], vec![]).await;
    assert_eq!((code, ct.as_str()), (StatusCode::OK, PB));
    let list = protobuf::decode(&bytes).unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"][0]["data"], json!({"k": "v"}));
    assert!(list["metadata"]["resourceVersion"].is_string());

    // Tables are JSON only: protobuf-only Table requests are refused like upstream does.
    let table = format!("{PB};as=Table;v=v1;g=meta.k8s.io");
    let (code, _, _) = send(&s, Method::GET, CM, &[("accept", &table)], vec![]).await;
    assert_eq!(code, StatusCode::NOT_ACCEPTABLE);

    // Watch: length-prefixed WatchEvent frames holding enveloped objects.
    let req = Request::builder()
        .uri(format!("{CM}?watch=true&resourceVersion=0"))
        .header("accept", PB)
        .body(Body::empty())
        .unwrap();
    let resp = s.api.router().oneshot(req).await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.kubernetes.protobuf;stream=watch"
    );
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let event = loop {
        if let Some(frame) = protobuf::decode_watch_frame(&buf) {
            break frame.unwrap();
        }
        let chunk = body.frame().await.expect("stream open").unwrap();
        buf.extend_from_slice(chunk.data_ref().unwrap());
    };
    assert_eq!(event.0, "ADDED");
    assert_eq!(event.1["metadata"]["name"], "a");
    assert_eq!(event.1["kind"], "ConfigMap");
}

/// kubectl 1.32 (optional: from the image's google-cloud-sdk or the clients cache) and 1.33
/// ([`conformance::tools::kubectl`], required under `CI=true`).
fn protobuf_kubectls() -> Vec<(u32, PathBuf)> {
    let k132 = [
        PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.32"),
        conformance::tools::kube_clients_dir().join("kubectl-1.32"),
    ]
    .into_iter()
    .find(|p| p.exists());
    let k133 = conformance::tools::kubectl(33);
    [(32, k132), (33, k133)]
        .into_iter()
        .filter_map(|(minor, bin)| bin.map(|b| (minor, b)))
        .collect()
}

fn create_with_generators(minor: u32, bin: &Path, kubeconfig: &Path) {
    let k = conformance::Kubectl::new(bin, kubeconfig).expect("kubectl runs");
    let run = |args: &[&str]| {
        let out = k.run(args, &[]);
        (out.success(), format!("{}{}", out.stdout, out.stderr))
    };
    let ok = |args: &[&str]| {
        let (ok, out) = run(args);
        assert!(ok, "kubectl 1.{minor} {args:?}: {out}");
        out
    };
    let ns = format!("pb-{minor}");
    let get =
        |what: &str| -> Value { serde_json::from_str(&ok(&["get", what, "-n", &ns, "-o", "json"])).unwrap() };
    ok(&["create", "namespace", &ns]);
    ok(&[
        "create",
        "configmap",
        "cm1",
        "-n",
        &ns,
        "--from-literal=a=b",
        "--from-literal=c=d",
    ]);
    ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        &ns,
        "--from-literal=password=s3cr3t",
    ]);
    ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        &ns,
        "--image=nginx:1.27",
        "--replicas=2",
        "--port=80",
    ]);
    ok(&[
        "create",
        "service",
        "clusterip",
        "svc1",
        "-n",
        &ns,
        "--tcp=80:8080",
    ]);
    ok(&[
        "create",
        "job",
        "j1",
        "-n",
        &ns,
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ]);
    ok(&["create", "serviceaccount", "sa1", "-n", &ns]);
    ok(&[
        "create",
        "role",
        "r1",
        "-n",
        &ns,
        "--verb=get,list",
        "--resource=pods",
    ]);
    ok(&[
        "create",
        "rolebinding",
        "rb1",
        "-n",
        &ns,
        "--role=r1",
        &format!("--serviceaccount={ns}:sa1"),
    ]);

    let nsobj: Value = serde_json::from_str(&ok(&["get", "namespace", &ns, "-o", "json"])).unwrap();
    assert_eq!(nsobj["metadata"]["name"], ns.as_str());
    let cm = get("configmap/cm1");
    assert_eq!(cm["data"], json!({"a": "b", "c": "d"}));
    let secret = get("secret/s1");
    assert_eq!(secret["data"], json!({"password": "czNjcjN0"}));
    let d = get("deployment/web");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"]["matchLabels"], json!({"app": "web"}));
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (c["name"].as_str(), c["image"].as_str()),
        (Some("nginx"), Some("nginx:1.27"))
    );
    assert_eq!(c["ports"][0]["containerPort"], 80);
    let svc = get("service/svc1");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["selector"], json!({"app": "svc1"}));
    let job = get("job/j1");
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (c["image"].as_str(), &c["command"]),
        (Some("busybox"), &json!(["echo", "hi"]))
    );
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    let sa = get("serviceaccount/sa1");
    assert_eq!(sa["metadata"]["namespace"], ns.as_str());
    let role = get("role/r1");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])
    );
    let rb = get("rolebinding/rb1");
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"})
    );
    assert_eq!(
        rb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "sa1", "namespace": ns}])
    );

    // The review APIs: SelfSubjectAccessReview, SelfSubjectRulesReview, SelfSubjectReview bodies.
    assert_eq!(ok(&["auth", "can-i", "get", "pods", "-n", &ns]).trim(), "yes");
    let rules = ok(&["auth", "can-i", "--list", "-n", &ns]);
    assert!(rules.contains("*.*"), "{rules}");
    let whoami = ok(&["auth", "whoami", "-o", "json"]);
    let review: Value = serde_json::from_str(&whoami).unwrap();
    assert!(review["status"]["userInfo"]["username"].is_string(), "{whoami}");

    // Typed GETs accept protobuf (describe), and errors still reach kubectl intact.
    let out = ok(&["describe", "deployment", "web", "-n", &ns]);
    assert!(out.contains("nginx:1.27"), "{out}");
    let (created, out) = run(&["create", "configmap", "cm1", "-n", &ns, "--from-literal=a=b"]);
    assert!(!created && out.contains("already exists"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_132_and_133_create_with_protobuf_bodies() {
    let bins = protobuf_kubectls();
    if bins.is_empty() {
        return;
    }
    let running = Running::start().await;
    let kubeconfig = running.kubeconfig();
    tokio::task::spawn_blocking(move || {
        for (minor, bin) in bins {
            eprintln!("kubectl 1.{minor} ({})", bin.display());
            create_with_generators(minor, &bin, &kubeconfig);
        }
    })
    .await
    .unwrap();
}
