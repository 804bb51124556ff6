//! HTTP-level tests through the router: discovery, CRUD, Status bodies, patches, subresources,
//! namespaces, paging, watch framing.

use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use storage::Storage;
use tower::ServiceExt;

use crate::support::{TestServer, configmap, deployment};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

fn assert_status(v: &Value, code: u16, reason: &str) {
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1", "{v}");
    assert_eq!(v["status"], "Failure", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["reason"], reason, "{v}");
}

#[tokio::test]
async fn discovery_documents() {
    let s = TestServer::new().await;
    let (code, v) = s.get("/version").await;
    assert_eq!(code, 200);
    assert_eq!(v["major"], "1");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1."));

    let (_, v) = s.get("/api").await;
    assert_eq!(v["kind"], "APIVersions");
    assert_eq!(v["versions"], json!(["v1"]));

    let (_, v) = s.get("/apis").await;
    assert_eq!(v["kind"], "APIGroupList");
    assert!(
        v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "apps")
    );

    let (_, v) = s.get("/api/v1").await;
    assert_eq!(v["kind"], "APIResourceList");
    let pods = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["namespaced"], true);

    let (_, v) = s.get("/apis/apps/v1").await;
    assert_eq!(v["groupVersion"], "apps/v1");
    let (_, v) = s.get("/apis/apps").await;
    assert_eq!(v["kind"], "APIGroup");

    for (accept, ct) in [
        (
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        ),
        (
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        ),
    ] {
        for path in ["/api", "/apis"] {
            let (code, headers, v) = s.call(Method::GET, path, &[("accept", accept)], None).await;
            assert_eq!(code, 200);
            assert_eq!(headers["content-type"], ct);
            assert_eq!(v["kind"], "APIGroupDiscoveryList");
        }
    }
    let (code, v) = s.get("/apis/nope.example.com/v1").await;
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    let (code, _) = s.get("/healthz").await;
    assert_eq!(code, 200);
    let (code, v) = s.get("/api/v1/namespaces/default/widgets").await;
    assert_eq!(code, 404);
    assert_eq!(v["message"], "the server could not find the requested resource");
}

#[tokio::test]
async fn configmap_crud_and_status_bodies() {
    let s = TestServer::new().await;
    let (code, created) = s.post(CM, configmap("cm1", &[("a", "1")])).await;
    assert_eq!(code, 201, "{created}");
    // Upstream gives data-only types no generation.
    assert!(created["metadata"].get("generation").is_none(), "{created}");
    assert!(created["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let rv1 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let (code, v) = s.post(CM, configmap("cm1", &[])).await;
    assert_eq!(code, 409);
    assert_status(&v, 409, "AlreadyExists");
    assert_eq!(v["message"], "configmaps \"cm1\" already exists");
    assert_eq!(v["details"], json!({"name": "cm1", "kind": "configmaps"}));

    let (code, got) = s.get(&format!("{CM}/cm1")).await;
    assert_eq!(code, 200);
    assert_eq!(got["data"]["a"], "1");
    assert_eq!(got["kind"], "ConfigMap");

    // Update with the current RV, then a stale one.
    let mut upd = got.clone();
    upd["data"]["a"] = json!("2");
    let (code, _, updated) = s
        .call(Method::PUT, &format!("{CM}/cm1"), &[], Some(upd.clone()))
        .await;
    assert_eq!(code, 200, "{updated}");
    assert_ne!(updated["metadata"]["resourceVersion"], rv1.as_str());
    let (code, _, v) = s.call(Method::PUT, &format!("{CM}/cm1"), &[], Some(upd)).await;
    assert_eq!(code, 409);
    assert_status(&v, 409, "Conflict");
    assert_eq!(
        v["message"],
        "Operation cannot be fulfilled on configmaps \"cm1\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // An unconditional no-op update keeps the resourceVersion.
    let mut same = updated.clone();
    same["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (code, _, v) = s.call(Method::PUT, &format!("{CM}/cm1"), &[], Some(same)).await;
    assert_eq!(code, 200);
    assert_eq!(
        v["metadata"]["resourceVersion"],
        updated["metadata"]["resourceVersion"]
    );

    let (code, _, v) = s.call(Method::DELETE, &format!("{CM}/cm1"), &[], None).await;
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["status"], "Success");
    assert_eq!(v["details"]["name"], "cm1");
    let (code, v) = s.get(&format!("{CM}/cm1")).await;
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    assert_eq!(v["message"], "configmaps \"cm1\" not found");
    let (code, _, _) = s.call(Method::DELETE, &format!("{CM}/cm1"), &[], None).await;
    assert_eq!(code, 404);
}

/// method, URI, headers, body, expected code.
type Case = (Method, String, Vec<(&'static str, &'static str)>, Vec<u8>, u16);

#[tokio::test]
async fn bad_input_is_4xx_never_500() {
    let s = TestServer::new().await;
    let cases: Vec<Case> = vec![
        (Method::POST, CM.into(), vec![], b"{not json".to_vec(), 400),
        (
            Method::POST,
            CM.into(),
            vec![("content-type", "application/yaml")],
            b"a: [".to_vec(),
            400,
        ),
        (Method::POST, CM.into(), vec![], b"[1,2]".to_vec(), 400),
        (
            Method::POST,
            CM.into(),
            vec![],
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#.to_vec(),
            400,
        ),
        (
            Method::POST,
            CM.into(),
            vec![],
            br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#.to_vec(),
            400,
        ),
        (
            Method::POST,
            CM.into(),
            vec![],
            br#"{"metadata":{"name":"x"},"data":{"a":5}}"#.to_vec(),
            400,
        ),
        (
            Method::POST,
            CM.into(),
            vec![],
            br#"{"metadata":{"name":"x","namespace":"other"}}"#.to_vec(),
            400,
        ),
        (
            Method::POST,
            CM.into(),
            vec![],
            br#"{"metadata":{}}"#.to_vec(),
            422,
        ),
        (
            Method::POST,
            CM.into(),
            vec![],
            br#"{"metadata":{"name":"Bad_Name"}}"#.to_vec(),
            422,
        ),
        (
            Method::POST,
            CM.into(),
            vec![],
            br#"{"metadata":{"name":"x"},"data":{"":"v"}}"#.to_vec(),
            422,
        ),
        (Method::POST, CM.into(), vec![], Vec::new(), 400),
        (
            Method::POST,
            CM.into(),
            vec![("content-type", "application/vnd.kubernetes.protobuf")],
            b"k8s\0".to_vec(),
            400,
        ),
        (
            Method::POST,
            CM.into(),
            vec![("content-type", "application/x-protobuf")],
            b"k8s\0".to_vec(),
            415,
        ),
        (
            Method::POST,
            format!("{CM}?fieldValidation=Strict"),
            vec![],
            br#"{"metadata":{"name":"x"},"bogus":1}"#.to_vec(),
            400,
        ),
        (
            Method::POST,
            format!("{CM}?dryRun=Maybe"),
            vec![],
            br#"{"metadata":{"name":"x"}}"#.to_vec(),
            400,
        ),
        (
            Method::GET,
            format!("{CM}?labelSelector=a%20in%20x"),
            vec![],
            Vec::new(),
            400,
        ),
        (
            Method::GET,
            format!("{CM}?fieldSelector=spec.x%3D1"),
            vec![],
            Vec::new(),
            400,
        ),
        (Method::GET, format!("{CM}?limit=abc"), vec![], Vec::new(), 400),
        (
            Method::GET,
            format!("{CM}?continue=garbage"),
            vec![],
            Vec::new(),
            400,
        ),
        (
            Method::GET,
            format!("{CM}?resourceVersion=x"),
            vec![],
            Vec::new(),
            400,
        ),
        (
            Method::GET,
            format!("{CM}?watch=perhaps"),
            vec![],
            Vec::new(),
            400,
        ),
        (
            Method::GET,
            CM.into(),
            vec![("accept", "text/html")],
            Vec::new(),
            406,
        ),
        (
            Method::PATCH,
            format!("{CM}/x"),
            vec![("content-type", "application/json")],
            b"{}".to_vec(),
            415,
        ),
        (
            Method::PATCH,
            format!("{CM}/x"),
            vec![("content-type", "application/merge-patch+json")],
            b"{".to_vec(),
            400,
        ),
        (
            Method::PATCH,
            format!("{CM}/x?force=true"),
            vec![("content-type", "application/merge-patch+json")],
            b"{}".to_vec(),
            422,
        ),
        (
            Method::PATCH,
            format!("{CM}/x"),
            vec![("content-type", "application/apply-patch+yaml")],
            b"{}".to_vec(),
            422,
        ),
        (
            Method::PUT,
            format!("{CM}/x"),
            vec![],
            br#"{"metadata":{"name":"y"}}"#.to_vec(),
            400,
        ),
        (
            Method::GET,
            "/api/v1/configmaps/x".into(),
            vec![],
            Vec::new(),
            404,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/nodes".into(),
            vec![],
            Vec::new(),
            404,
        ),
        (
            Method::GET,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews".into(),
            vec![],
            Vec::new(),
            405,
        ),
        (
            Method::DELETE,
            format!("{CM}/x"),
            vec![],
            br#"{"propagationPolicy":"Sideways"}"#.to_vec(),
            400,
        ),
        (Method::OPTIONS, CM.into(), vec![], Vec::new(), 405),
    ];
    for (method, uri, headers, body, want) in cases {
        let (code, _, v) = s.raw(method.clone(), &uri, &headers, body.clone()).await;
        assert_eq!(
            code.as_u16(),
            want,
            "{method} {uri} {}: {v}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(v["kind"], "Status", "{method} {uri}: {v}");
        assert_eq!(v["code"], want);
    }
    // Warn (the default) drops unknown fields and says so in a Warning header.
    let (code, headers, v) = s
        .raw(
            Method::POST,
            CM,
            &[],
            br#"{"metadata":{"name":"w"},"bogus":1}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 201);
    assert!(v.get("bogus").is_none());
    assert_eq!(headers["warning"], "299 - \"unknown field \\\"bogus\\\"\"");
}

#[tokio::test]
async fn namespaces_lifecycle() {
    let s = TestServer::new().await;
    let (_, v) = s.get("/api/v1/namespaces").await;
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );

    let (code, v) = s
        .post("/api/v1/namespaces/nope/configmaps", configmap("x", &[]))
        .await;
    assert_eq!(code, 404);
    assert_eq!(v["message"], "namespaces \"nope\" not found");

    let (code, ns) = s
        .post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
        .await;
    assert_eq!(code, 201);
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    let (code, _) = s
        .post("/api/v1/namespaces/team/configmaps", configmap("x", &[]))
        .await;
    assert_eq!(code, 201);

    let (code, _, v) = s.call(Method::DELETE, "/api/v1/namespaces/team", &[], None).await;
    assert_eq!(code, 200);
    assert_eq!(v["status"]["phase"], "Terminating");
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    let (code, v) = s
        .post("/api/v1/namespaces/team/configmaps", configmap("y", &[]))
        .await;
    assert_eq!(code, 403);
    assert_status(&v, 403, "Forbidden");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("because it is being terminated"),
        "{v}"
    );

    // The namespace controller's finalize call removes it.
    let fin = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}, "spec": {"finalizers": []}});
    let (code, _, v) = s
        .call(Method::PUT, "/api/v1/namespaces/team/finalize", &[], Some(fin))
        .await;
    assert_eq!(code, 200, "{v}");
    let (code, _) = s.get("/api/v1/namespaces/team").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn deployments_patches_status_scale_generation() {
    let s = TestServer::new().await;
    let (code, d) = s.post(DEPLOY, deployment("web", "nginx:1", 2)).await;
    assert_eq!(code, 201, "{d}");
    assert!(d.get("status").is_none());
    let url = format!("{DEPLOY}/web");
    let smp = |body: Value| {
        (
            vec![("content-type", "application/strategic-merge-patch+json")],
            body,
        )
    };

    // SMP merges containers by name: a new container is added, the old one kept.
    let (h, b) =
        smp(json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}}}));
    let (code, _, v) = s.call(Method::PATCH, &url, &h, Some(b)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(v["metadata"]["generation"], 2);

    // Merge patch of labels does not bump generation.
    let (code, _, v) = s
        .call(
            Method::PATCH,
            &url,
            &[("content-type", "application/merge-patch+json")],
            Some(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["metadata"]["generation"], 2);

    // JSON patch.
    let (code, _, v) = s
        .call(
            Method::PATCH,
            &url,
            &[("content-type", "application/json-patch+json")],
            Some(json!([{"op": "replace", "path": "/spec/replicas", "value": 4}])),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["spec"]["replicas"], 4);
    assert_eq!(v["metadata"]["generation"], 3);

    // Writes to the main resource ignore status; /status writes only status.
    let mut with_status = v.clone();
    with_status["status"] = json!({"replicas": 9});
    with_status["spec"]["replicas"] = json!(5);
    let (_, _, v) = s.call(Method::PUT, &url, &[], Some(with_status)).await;
    assert!(v.get("status").is_none(), "{v}");
    assert_eq!(v["spec"]["replicas"], 5);
    let mut st = v.clone();
    st["status"] = json!({"replicas": 3, "readyReplicas": 1});
    st["spec"]["replicas"] = json!(100);
    let (code, _, v) = s.call(Method::PUT, &format!("{url}/status"), &[], Some(st)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"]["replicas"], 3);
    assert_eq!(v["spec"]["replicas"], 5);
    let (code, _, v) = s
        .call(
            Method::PATCH,
            &format!("{url}/status"),
            &[("content-type", "application/merge-patch+json")],
            Some(json!({"status": {"observedGeneration": 4}, "spec": {"replicas": 1}})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["status"]["observedGeneration"], 4);
    assert_eq!(v["spec"]["replicas"], 5);

    // Scale subresource: GET, merge PATCH (kubectl scale), PUT without Content-Type.
    let (code, sc) = s.get(&format!("{url}/scale")).await;
    assert_eq!(code, 200);
    assert_eq!(
        (sc["kind"].as_str(), sc["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(5))
    );
    assert_eq!(sc["status"]["selector"], "app=web");
    let (code, _, sc) = s
        .call(
            Method::PATCH,
            &format!("{url}/scale"),
            &[("content-type", "application/merge-patch+json")],
            Some(json!({"spec": {"replicas": 7}})),
        )
        .await;
    assert_eq!((code.as_u16(), sc["spec"]["replicas"].as_i64()), (200, Some(7)));
    let mut put = sc.clone();
    put["spec"]["replicas"] = json!(1);
    let resp = s
        .api
        .router()
        .oneshot(
            Request::builder()
                .method(Method::PUT)
                .uri(format!("{url}/scale"))
                .body(Body::from(serde_json::to_vec(&put).unwrap()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (code, _, v) = s.call(Method::PUT, &format!("{url}/scale"), &[], Some(put)).await;
    assert_eq!(code, 409, "stale Scale resourceVersion: {v}");
    let (_, d) = s.get(&url).await;
    assert_eq!(d["spec"]["replicas"], 1);

    // Apply patch creates a missing object.
    let (code, _, v) = s
        .raw(
            Method::PATCH,
            &format!("{DEPLOY}/applied?fieldManager=test"),
            &[("content-type", "application/apply-patch+yaml")],
            serde_yaml_ng::to_string(&deployment("applied", "nginx", 1))
                .unwrap()
                .into_bytes(),
        )
        .await;
    assert_eq!(code, 201, "{v}");
}

#[tokio::test]
async fn finalizers_and_pod_binding_and_tables() {
    let s = TestServer::new().await;
    let mut cm = configmap("held", &[]);
    cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
    s.post(CM, cm).await;
    let (code, _, v) = s.call(Method::DELETE, &format!("{CM}/held"), &[], None).await;
    assert_eq!(code, 200);
    assert!(v["metadata"]["deletionTimestamp"].is_string(), "{v}");
    let (code, _) = s.get(&format!("{CM}/held")).await;
    assert_eq!(code, 200, "still there while finalizers remain");
    let (code, _, v) = s
        .call(
            Method::PATCH,
            &format!("{CM}/held"),
            &[("content-type", "application/merge-patch+json")],
            Some(json!({"metadata": {"finalizers": ["example.com/hold", "new"]}})),
        )
        .await;
    assert_eq!(code, 422, "{v}");
    let (code, _, _) = s
        .call(
            Method::PATCH,
            &format!("{CM}/held"),
            &[("content-type", "application/json-patch+json")],
            Some(json!([{"op": "remove", "path": "/metadata/finalizers/0"}])),
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = s.get(&format!("{CM}/held")).await;
    assert_eq!(code, 404, "the last finalizer's removal deletes");

    // Pods: status Pending on create, binding sets the node, tables for kubectl get.
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}, "status": {"phase": "Running"}});
    let (code, v) = s.post(pods, pod).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["status"]["phase"], "Pending");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"}, "target": {"kind": "Node", "name": "n1"}});
    let (code, v) = s.post(&format!("{pods}/p1/binding"), binding.clone()).await;
    assert_eq!(code, 201, "{v}");
    let (code, v) = s.post(&format!("{pods}/p1/binding"), binding).await;
    assert_eq!(code, 409, "{v}");
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let (code, _, t) = s.call(Method::GET, pods, &[("accept", table)], None).await;
    assert_eq!(code, 200);
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(&cols[..5], ["Name", "Ready", "Status", "Restarts", "Age"]);
    assert_eq!(t["rows"][0]["cells"][6], "n1");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let (_, _, t) = s
        .call(
            Method::GET,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            &[("accept", table)],
            None,
        )
        .await;
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 2);

    // Scheduled pods are deleted gracefully; grace 0 removes them.
    let (code, _, v) = s.call(Method::DELETE, &format!("{pods}/p1"), &[], None).await;
    assert_eq!(code, 200);
    assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 30);
    let (code, _, v) = s
        .call(
            Method::DELETE,
            &format!("{pods}/p1"),
            &[],
            Some(json!({"gracePeriodSeconds": 0})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "Pod", "pods answer DELETE with the object");
    let (code, _) = s.get(&format!("{pods}/p1")).await;
    assert_eq!(code, 404);

    // Reviews answer without storing.
    let (code, v) = s
        .post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            json!({"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(v["status"]["allowed"], true);
    let (_, v) = s
        .post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json!({}))
        .await;
    assert_eq!(v["status"]["userInfo"]["username"], "admin");
}

#[tokio::test]
async fn lists_page_filter_and_delete_collections() {
    let s = TestServer::new().await;
    for i in 0..7 {
        let mut cm = configmap(&format!("cm{i}"), &[]);
        cm["metadata"]["labels"] =
            json!({"parity": if i % 2 == 0 { "even" } else { "odd" }, "i": i.to_string()});
        let (code, _) = s.post(CM, cm).await;
        assert_eq!(code, 201);
    }
    let mut names = Vec::new();
    let mut uri = format!("{CM}?limit=3");
    let mut list_rv = None;
    loop {
        let (code, page) = s.get(&uri).await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["kind"], "ConfigMapList");
        let rv = page["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        assert_eq!(
            *list_rv.get_or_insert(rv.clone()),
            rv,
            "every page is read at one revision"
        );
        for item in page["items"].as_array().unwrap() {
            names.push(item["metadata"]["name"].as_str().unwrap().to_string());
        }
        // Writes between pages do not change what the pages show.
        s.post(CM, configmap(&format!("late{}", names.len()), &[])).await;
        match page["metadata"]["continue"].as_str() {
            Some(c) => uri = format!("{CM}?limit=3&continue={c}"),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("cm{i}")).collect::<Vec<_>>());

    let (_, page) = s.get(&format!("{CM}?labelSelector=parity%3Deven&limit=2")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["metadata"]["continue"].is_string());
    let (_, page) = s
        .get(&format!("{CM}?labelSelector=parity%20in%20(odd),i!%3D3"))
        .await;
    let odd: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(odd, ["cm1", "cm5"]);
    let (_, page) = s.get(&format!("{CM}?fieldSelector=metadata.name%3Dcm4")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = s
        .get("/api/v1/configmaps?fieldSelector=metadata.namespace%3Ddefault")
        .await;
    assert!(page["items"].as_array().unwrap().len() >= 7);

    // A continue token whose revision was compacted is 410 Expired.
    let (_, page) = s.get(&format!("{CM}?limit=1")).await;
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    s.post(CM, configmap("after", &[])).await;
    let rev = s.store.current_revision().await.unwrap();
    s.store.compact(rev).await.unwrap();
    let (code, v) = s.get(&format!("{CM}?limit=1&continue={token}")).await;
    assert_eq!(code, 410);
    assert_status(&v, 410, "Expired");

    let (code, _, v) = s
        .call(
            Method::DELETE,
            &format!("{CM}?labelSelector=parity%3Dodd"),
            &[],
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 3);
    let (_, page) = s.get(&format!("{CM}?labelSelector=parity")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
}

/// Reads watch events (one JSON object per line) until `n` arrived.
async fn read_events(body: &mut Body, buf: &mut Vec<u8>, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            out.push(serde_json::from_slice(&line[..line.len() - 1]).expect("one JSON object per line"));
        }
        if out.len() >= n {
            break;
        }
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("watch event did not arrive")
            .expect("watch stream ended")
            .expect("watch body error");
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    out
}

async fn open_watch(s: &TestServer, uri: &str, accept: &str) -> Body {
    let resp = s
        .api
        .router()
        .oneshot(
            Request::builder()
                .uri(uri)
                .header("accept", accept)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.into_body()
}

#[tokio::test]
async fn watch_framing_transitions_bookmarks_and_expiry() {
    let s = TestServer::new().await;
    s.post(CM, configmap("pre", &[])).await;
    let (_, list) = s.get(CM).await;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    // From a list's RV: only later changes; selector transitions.
    let mut body = open_watch(
        &s,
        &format!("{CM}?watch=true&resourceVersion={rv}&labelSelector=app%3Dweb&allowWatchBookmarks=true"),
        "application/json",
    )
    .await;
    let mut buf = Vec::new();
    let mut cm = configmap("w", &[]);
    cm["metadata"]["labels"] = json!({"app": "web"});
    s.post(CM, cm).await;
    s.call(
        Method::PATCH,
        &format!("{CM}/w"),
        &[("content-type", "application/merge-patch+json")],
        Some(json!({"data": {"k": "v"}})),
    )
    .await;
    s.call(
        Method::PATCH,
        &format!("{CM}/w"),
        &[("content-type", "application/merge-patch+json")],
        Some(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await;
    let evs = read_events(&mut body, &mut buf, 3).await;
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"], "{evs:?}");
    assert_eq!(evs[1]["object"]["data"]["k"], "v");
    assert_eq!(evs[0]["object"]["kind"], "ConfigMap");
    let r: Vec<u64> = evs
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(r[0] < r[1] && r[1] < r[2], "{r:?}");
    // Bookmarks come when asked for (interval 200ms in tests).
    let evs = read_events(&mut body, &mut buf, 1).await;
    assert_eq!(evs[0]["type"], "BOOKMARK");
    assert!(evs[0]["object"]["metadata"]["resourceVersion"].is_string());
    drop(body);

    // Without RV: synthetic ADDED for the current state; Table objects for kubectl get -w.
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let mut body = open_watch(&s, &format!("{CM}?watch=1"), table).await;
    let mut buf = Vec::new();
    let evs = read_events(&mut body, &mut buf, 2).await;
    assert!(
        evs.iter()
            .all(|e| e["type"] == "ADDED" && e["object"]["kind"] == "Table"),
        "{evs:?}"
    );
    s.call(Method::DELETE, &format!("{CM}/pre"), &[], None).await;
    let evs = read_events(&mut body, &mut buf, 1).await;
    assert_eq!(evs[0]["type"], "DELETED");
    assert_eq!(evs[0]["object"]["rows"][0]["cells"][0], "pre");
    drop(body);

    // timeoutSeconds ends the stream cleanly.
    let mut body = open_watch(
        &s,
        &format!("{CM}?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
        "application/json",
    )
    .await;
    let mut all = Vec::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), body.frame())
        .await
        .expect("not closed")
    {
        if let Ok(d) = frame.unwrap().into_data() {
            all.extend_from_slice(&d);
        }
    }
    assert!(all.ends_with(b"\n") || all.is_empty());

    // A compacted RV: 200 and one ERROR event with a 410 Status.
    let rev = s.store.current_revision().await.unwrap();
    s.store.compact(rev).await.unwrap();
    let mut body = open_watch(
        &s,
        &format!("{CM}?watch=true&resourceVersion=2"),
        "application/json",
    )
    .await;
    let evs = read_events(&mut body, &mut Vec::new(), 1).await;
    assert_eq!(evs[0]["type"], "ERROR");
    assert_eq!(evs[0]["object"]["code"], 410);
    assert_eq!(evs[0]["object"]["reason"], "Expired");
}

async fn text_get(s: &TestServer, uri: &str) -> (StatusCode, String) {
    let resp = s
        .api
        .router()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let code = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn health_endpoints_list_their_checks_when_verbose() {
    let s = TestServer::new().await;
    assert_eq!(text_get(&s, "/healthz").await, (StatusCode::OK, "ok".into()));
    let (code, body) = text_get(&s, "/healthz?verbose").await;
    assert_eq!(code, 200);
    assert_eq!(body, "[+]ping ok\n[+]log ok\n[+]etcd ok\nhealthz check passed\n");
    let (_, body) = text_get(&s, "/readyz?verbose&exclude=etcd").await;
    assert_eq!(
        body,
        "[+]ping ok\n[+]log ok\n[+]informer-sync ok\nreadyz check passed\n"
    );
    let (_, body) = text_get(&s, "/livez?verbose=true").await;
    assert!(body.ends_with("livez check passed\n"), "{body}");
    assert_eq!(text_get(&s, "/livez/etcd").await, (StatusCode::OK, "ok".into()));
    assert_eq!(text_get(&s, "/readyz/nope").await.0, StatusCode::NOT_FOUND);
}
