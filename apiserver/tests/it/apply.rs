//! Server-side apply and managedFields: over HTTP, with kube-rs `Patch::Apply`, and with stock
//! kubectl (`apply --server-side`, conflicts, `--force-conflicts`, `--show-managed-fields`).

use std::path::Path;

use http::{HeaderMap, Method, StatusCode};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::kube_client::Running;
use crate::support::{TestServer, configmap, deployment};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

async fn apply(s: &TestServer, url: &str, query: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
    s.raw(
        Method::PATCH,
        &format!("{url}?{query}"),
        &[("content-type", "application/apply-patch+yaml")],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry(obj: &Value, manager: &str) -> Value {
    entries(obj)
        .into_iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn apply_creates_merges_removes_and_conflicts() {
    let s = TestServer::new().await;
    let url = format!("{CM}/cfg");
    let (code, _, v) = apply(
        &s,
        &url,
        "fieldManager=m",
        &configmap("cfg", &[("a", "1"), ("b", "2")]),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let e = entry(&v, "m");
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(e["fieldsV1"], json!({"f:data": {"f:a": {}, "f:b": {}}}));

    // A changed manifest: b is no longer applied and nobody else owns it.
    let (code, _, v) = apply(&s, &url, "fieldManager=m", &configmap("cfg", &[("a", "1")])).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"], json!({"a": "1"}));
    let rv = v["metadata"]["resourceVersion"].clone();
    // The same apply again changes nothing.
    let (_, _, v) = apply(&s, &url, "fieldManager=m", &configmap("cfg", &[("a", "1")])).await;
    assert_eq!(v["metadata"]["resourceVersion"], rv);

    // Another manager changing a: a conflict, as upstream reports it.
    let (code, _, v) = apply(&s, &url, "fieldManager=other", &configmap("cfg", &[("a", "9")])).await;
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["reason"], "Conflict");
    assert_eq!(
        v["message"],
        "Apply failed with 1 conflict: conflict with \"m\": .data.a"
    );
    assert_eq!(
        v["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"m\"", "field": ".data.a"}])
    );

    // dryRun=All: answered, not stored.
    let (code, _, v) = apply(
        &s,
        &url,
        "fieldManager=other&force=true&dryRun=All",
        &configmap("cfg", &[("a", "9")]),
    )
    .await;
    assert_eq!((code, &v["data"]["a"]), (StatusCode::OK, &json!("9")));
    let (_, v) = s.get(&url).await;
    assert_eq!(v["data"]["a"], "1");

    // force=true takes the field.
    let (code, _, v) = apply(
        &s,
        &url,
        "fieldManager=other&force=true",
        &configmap("cfg", &[("a", "9")]),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["a"], "9");
    let managers: Vec<Value> = entries(&v).iter().map(|e| e["manager"].clone()).collect();
    assert_eq!(managers, vec![json!("other")], "m owned nothing else");

    // Unknown fields are errors for applies whatever fieldValidation says.
    let mut bogus = configmap("cfg", &[("a", "9")]);
    bogus["spec"] = json!({"x": 1});
    let (code, _, v) = apply(&s, &url, "fieldManager=other&fieldValidation=Ignore", &bogus).await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "failed to create typed patch object (default/cfg; v1, Kind=ConfigMap): .spec: field not declared in schema"
    );
    // Duplicate fields: an error with Strict, a warning with Warn (the default).
    let dup = br#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "9", "a": "9"}}"#;
    let ct = [("content-type", "application/apply-patch+yaml")];
    let (code, _, v) = s
        .raw(
            Method::PATCH,
            &format!("{url}?fieldManager=other&fieldValidation=Strict"),
            &ct,
            dup.to_vec(),
        )
        .await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "error strict decoding patch: error converting YAML to JSON: yaml: unmarshal errors:\n  line 1: key \"a\" already set in map"
    );
    let (code, headers, _) = s
        .raw(
            Method::PATCH,
            &format!("{url}?fieldManager=other"),
            &ct,
            dup.to_vec(),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        headers.get("warning").unwrap(),
        r#"299 - "line 1: key \"a\" already set in map""#
    );
    // apiVersion/kind must be the URL's; managedFields may not be applied.
    let mut wrong = configmap("cfg", &[]);
    wrong["apiVersion"] = json!("apps/v1");
    let (code, _, v) = apply(&s, &url, "fieldManager=m", &wrong).await;
    assert_eq!(code, 400, "{v}");
    let mut managed = configmap("cfg", &[]);
    managed["metadata"]["managedFields"] = json!([]);
    let (code, _, v) = apply(&s, &url, "fieldManager=m", &managed).await;
    assert_eq!(
        (code, &v["message"]),
        (
            StatusCode::BAD_REQUEST,
            &json!("metadata.managedFields must be nil")
        )
    );
    let (code, _, _) = apply(&s, &url, "", &configmap("cfg", &[])).await;
    assert_eq!(code, 422, "fieldManager is required");
}

#[tokio::test]
async fn list_maps_merge_and_shared_ownership() {
    let s = TestServer::new().await;
    let url = format!("{DEPLOY}/web");
    let mut d = deployment("web", "nginx:1", 2);
    d["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
    let (code, _, v) = apply(&s, &url, "fieldManager=a", &d).await;
    assert_eq!(code, 201, "{v}");
    let fields = &entry(&v, "a")["fieldsV1"];
    assert_eq!(fields["f:spec"]["f:selector"], json!({}), "atomic selector");
    let c = &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"main\"}"];
    assert_eq!(
        c["f:ports"],
        json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
    );
    // A second manager adds a sidecar container and an env var of main: merged by name.
    let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "main", "env": [{"name": "X", "value": "1"}]},
            {"name": "side", "image": "busybox"}]}}}});
    let (code, _, v) = apply(&s, &url, "fieldManager=b", &sidecar).await;
    assert_eq!(code, 200, "{v}");
    let cs = &v["spec"]["template"]["spec"]["containers"];
    assert_eq!(cs.as_array().unwrap().len(), 2);
    assert_eq!(cs[0]["image"], "nginx:1");
    assert_eq!(cs[0]["env"], json!([{"name": "X", "value": "1"}]));
    assert_eq!(cs[1]["name"], "side");
    // a drops its container: main would stay, because b still owns a field of it, but without
    // a's image, which the validation of the result refuses (as upstream).
    let mut slim = deployment("web", "nginx:1", 2);
    slim["spec"]["template"]["spec"]["containers"] = json!([]);
    slim["spec"].as_object_mut().unwrap().remove("replicas");
    let (code, _, v) = apply(&s, &url, "fieldManager=a", &slim).await;
    assert_eq!(code, 422, "{v}");
    assert_eq!(
        v["details"]["causes"][0]["field"],
        "spec.template.spec.containers[0].image"
    );
    // Once b shares the image, a's drop keeps it; a's replicas go (back to the default, 1).
    let mut shared = sidecar.clone();
    shared["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1");
    let (code, _, v) = apply(&s, &url, "fieldManager=b", &shared).await;
    assert_eq!(code, 200, "{v}");
    let (code, _, v) = apply(&s, &url, "fieldManager=a", &slim).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["spec"]["replicas"], 1, "{v}");
    let cs = v["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(cs.len(), 2, "{cs:?}");
    // (plus the container defaults, which belong to no manager)
    assert_eq!(cs[0]["name"], "main");
    assert_eq!(cs[0]["env"], json!([{"name": "X", "value": "1"}]));
    assert_eq!(cs[0]["image"], "nginx:1", "{cs:?}");
}

#[tokio::test]
async fn updates_record_managers_and_reset() {
    let s = TestServer::new().await;
    // The manager of an update is fieldManager, else the user agent's product.
    let (code, _, v) = s
        .call(
            Method::POST,
            CM,
            &[(
                "user-agent",
                "kubectl-create/v1.33.0 (linux/amd64) kubernetes/abc",
            )],
            Some(configmap("u", &[("a", "1")])),
        )
        .await;
    assert_eq!(code, 201);
    let e = entry(&v, "kubectl-create");
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["fieldsV1"], json!({"f:data": {".": {}, "f:a": {}}}));
    let url = format!("{CM}/u");
    let (code, _, v) = s
        .call(
            Method::PATCH,
            &format!("{url}?fieldManager=kubectl-label"),
            &[("content-type", "application/merge-patch+json")],
            Some(json!({"metadata": {"labels": {"tier": "fe"}}})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        entry(&v, "kubectl-label")["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:tier": {}}}})
    );
    // The same manager's later update merges into its entry.
    let (_, _, v) = s
        .call(
            Method::PATCH,
            &format!("{url}?fieldManager=kubectl-label"),
            &[("content-type", "application/strategic-merge-patch+json")],
            Some(json!({"metadata": {"labels": {"zone": "a"}}})),
        )
        .await;
    assert_eq!(entries(&v).len(), 2);
    assert_eq!(
        entry(&v, "kubectl-label")["fieldsV1"]["f:metadata"]["f:labels"],
        json!({".": {}, "f:tier": {}, "f:zone": {}})
    );
    // Many updaters: the oldest merge into ancient-changes past ten.
    for i in 0..11 {
        let (code, _, _) = s
            .call(
                Method::PATCH,
                &format!("{url}?fieldManager=m{i}"),
                &[("content-type", "application/merge-patch+json")],
                Some(json!({"data": {format!("k{i}"): "v"}})),
            )
            .await;
        assert_eq!(code, 200);
    }
    let (_, v) = s.get(&url).await;
    let all = entries(&v);
    assert_eq!(all.len(), 10, "{all:?}");
    assert!(all.iter().any(|e| e["manager"] == "ancient-changes"));
    // A PUT with an empty managedFields list clears them.
    let mut body = v.clone();
    body["metadata"]["managedFields"] = json!([]);
    let (code, _, v) = s.call(Method::PUT, &url, &[], Some(body)).await;
    assert_eq!(code, 200, "{v}");
    assert!(v["metadata"].get("managedFields").is_none(), "{v}");

    // Status writes record the status subresource.
    let (code, _) = s.post(DEPLOY, deployment("st", "nginx", 1)).await;
    assert_eq!(code, 201);
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "st"},
        "status": {"replicas": 1}});
    let (code, _, v) = apply(&s, &format!("{DEPLOY}/st/status"), "fieldManager=ctl", &status).await;
    assert_eq!(code, 200, "{v}");
    let e = entry(&v, "ctl");
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    assert_eq!(v["status"]["replicas"], 1);
}

#[tokio::test]
async fn kube_rs_patch_apply_and_force() {
    let running = Running::start().await;
    let client = running.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kr"}, "data": {"k": "1"}});
    let out = cms
        .patch("kr", &PatchParams::apply("ctrl-a"), &Patch::Apply(&cm))
        .await
        .unwrap();
    let mf = out.metadata.managed_fields.unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("ctrl-a"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let changed =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kr"}, "data": {"k": "2"}});
    let err = cms
        .patch("kr", &PatchParams::apply("ctrl-b"), &Patch::Apply(&changed))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message.contains("conflict with \"ctrl-a\": .data.k"),
                "{}",
                s.message
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let out = cms
        .patch(
            "kr",
            &PatchParams::apply("ctrl-b").force(),
            &Patch::Apply(&changed),
        )
        .await
        .unwrap();
    assert_eq!(out.data.unwrap()["k"], "2");
    let managers: Vec<String> = out
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|e| e.manager)
        .collect();
    assert_eq!(managers, ["ctrl-b"]);
}

/// `apply --server-side` (twice, changed), a conflict with another manager, `--force-conflicts`,
/// `--show-managed-fields`, with validation on (kubectl 1.27 reads `/openapi/v2` for it).
fn server_side_apply_with(bin: &Path, kubeconfig: &Path, dir: &Path, tag: &str) {
    let k = conformance::Kubectl::new(bin, kubeconfig).expect("kubectl runs");
    let run = |args: &[&str]| {
        let out = k.run(args, &[]);
        (out.success(), out.stdout, out.stderr)
    };
    let ok = |args: &[&str]| {
        let (ok, out, err) = run(args);
        assert!(ok, "kubectl {tag} {args:?}: {out}\n{err}");
        out
    };
    let name = format!("ssa-{tag}");
    let file = dir.join(format!("{name}.yaml"));
    let f = file.to_str().unwrap();
    let manifest =
        |data: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{data}");
    std::fs::write(&file, manifest("  a: \"1\"\n  b: \"2\"\n")).unwrap();
    let out = ok(&["apply", "--server-side", "-f", f]);
    assert_eq!(out.trim(), format!("configmap/{name} serverside-applied"));
    std::fs::write(&file, manifest("  a: \"3\"\n")).unwrap();
    let out = ok(&["apply", "--server-side", "-f", f]);
    assert_eq!(out.trim(), format!("configmap/{name} serverside-applied"));
    let out = ok(&["get", "cm", &name, "-o", "jsonpath={.data}"]);
    assert_eq!(out.trim(), r#"{"a":"3"}"#);

    std::fs::write(&file, manifest("  a: \"4\"\n")).unwrap();
    let (ok_, _, err) = run(&["apply", "--server-side", "--field-manager=other", "-f", f]);
    assert!(!ok_, "conflict expected");
    assert!(
        err.contains(r#"error: Apply failed with 1 conflict: conflict with "kubectl": .data.a"#)
            && err.contains("--force-conflicts"),
        "{err}"
    );
    let out = ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        f,
    ]);
    assert_eq!(out.trim(), format!("configmap/{name} serverside-applied"));
    let out = ok(&["get", "cm", &name, "-o", "yaml", "--show-managed-fields"]);
    assert!(
        out.contains("managedFields:")
            && out.contains("manager: other")
            && out.contains("operation: Apply")
            && out.contains("fieldsType: FieldsV1")
            && out.contains("f:a: {}")
            && !out.contains("manager: kubectl\n"),
        "{out}"
    );
    let out = ok(&["get", "cm", &name, "-o", "yaml"]);
    assert!(!out.contains("managedFields"), "hidden by default: {out}");
    ok(&["delete", "cm", &name]);

    // Client-side apply, then server-side apply of a changed manifest: kubectl takes over.
    let deploy = format!("csa-{tag}");
    let file = dir.join(format!("{deploy}.yaml"));
    let f = file.to_str().unwrap();
    let manifest = |replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {deploy}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {deploy}}}\n  template:\n    metadata:\n      labels: {{app: {deploy}}}\n    spec:\n      containers:\n      - name: nginx\n        image: nginx\n"
        )
    };
    std::fs::write(&file, manifest(1)).unwrap();
    ok(&["apply", "-f", f]);
    std::fs::write(&file, manifest(3)).unwrap();
    let out = ok(&["apply", "--server-side", "-f", f]);
    assert_eq!(out.trim(), format!("deployment.apps/{deploy} serverside-applied"));
    let out = ok(&["get", "deploy", &deploy, "-o", "yaml", "--show-managed-fields"]);
    assert!(
        out.contains("replicas: 3") && out.contains("manager: kubectl\n") && out.contains("operation: Apply"),
        "{out}"
    );
    ok(&["delete", "deploy", &deploy]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_kubectl_server_side_apply() {
    let bins = conformance::tools::stock_kubectls();
    if bins.is_empty() {
        return;
    }
    let running = Running::start().await;
    let kubeconfig = running.kubeconfig();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        for bin in bins {
            let tag = bin
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("kubectl-")
                .replace('.', "-");
            server_side_apply_with(&bin, &kubeconfig, &dir_path, &tag);
        }
    })
    .await
    .unwrap();
}
