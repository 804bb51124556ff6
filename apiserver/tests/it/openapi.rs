//! OpenAPI: the HTTP contract of `/openapi/v2` and `/openapi/v3` (media types, ETags, hashes),
//! and stock kubectl 1.27 / 1.32 / 1.33 doing `create -f`, `apply -f`, `diff`, `edit` and
//! `explain` with client-side validation on (no `--validate=false`).

use std::path::Path;

use http::{Method, StatusCode};

use crate::kubectl::{Kubectl, KubectlExt, with_each_kubectl};
use crate::support::TestServer;

const PB_REQUEST: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
const PB_REPLY: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

#[tokio::test]
async fn openapi_v2_negotiates_and_caches() {
    let s = TestServer::new().await;
    let (status, headers, _) = s
        .raw(
            Method::GET,
            "/openapi/v2?timeout=32s",
            &[("accept", PB_REQUEST)],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], PB_REPLY);
    assert_eq!(headers["vary"], "Accept");
    let etag = headers["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() == 130, "{etag}");

    let (status, headers, doc) = s
        .raw(
            Method::GET,
            "/openapi/v2",
            &[("accept", "application/json")],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(doc["swagger"], "2.0");
    assert!(doc["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
    let json_etag = headers["etag"].to_str().unwrap().to_string();
    assert_ne!(json_etag, etag, "each encoding has its own ETag");

    let (status, headers, _) = s
        .raw(
            Method::GET,
            "/openapi/v2",
            &[("accept", "application/json"), ("if-none-match", &json_etag)],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(headers["etag"].to_str().unwrap(), json_etag);

    let (status, _, body) = s
        .raw(Method::GET, "/openapi/v2", &[("accept", "text/html")], Vec::new())
        .await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        (body["kind"].as_str(), body["reason"].as_str()),
        (Some("Status"), Some("NotAcceptable"))
    );
}

#[tokio::test]
async fn openapi_v3_index_and_hashed_documents() {
    let s = TestServer::new().await;
    let (status, headers, index) = s.raw(Method::GET, "/openapi/v3", &[], Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = url.split("hash=").nth(1).unwrap().to_string();

    let (status, headers, doc) = s
        .raw(
            Method::GET,
            &format!("{url}&timeout=32s"),
            &[("accept", "application/json")],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "public, immutable");
    assert_eq!(headers["etag"].to_str().unwrap(), format!("\"{hash}\""));
    assert_eq!(doc["openapi"], "3.0.0");
    assert!(doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());

    let (status, headers, _) = s
        .raw(
            Method::GET,
            "/openapi/v3/apis/apps/v1?hash=stale",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers["location"].to_str().unwrap(), url);

    let (status, headers, _) = s.raw(Method::GET, "/openapi/v3/api/v1", &[], Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("cache-control").is_none());

    let (status, _, body) = s
        .raw(Method::GET, "/openapi/v3/apis/nope/v1", &[], Vec::new())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["reason"], "NotFound");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn deployment(name: &str, containers: &[(&str, &str)]) -> String {
    let mut text = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n"
    );
    for (c, image) in containers {
        text.push_str(&format!("      - name: {c}\n        image: {image}\n        env:\n        - name: ROLE\n          value: {c}\n"));
    }
    text
}

fn configmap(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: {value}\n")
}

/// Runs and requires success with nothing on stderr (kubectl warns there when it cannot use the
/// OpenAPI documents, e.g. "error calculating patch from openapi spec").
fn quiet(k: &Kubectl, args: &[&str]) -> String {
    let (ok, out, err) = k.attempt(args);
    assert!(
        ok && err.is_empty(),
        "kubectl 1.{} {args:?}:\nstdout: {out}\nstderr: {err}",
        k.minor()
    );
    out
}

fn exercise(k: &Kubectl, dir: &Path) {
    let tag = format!("oa{}", k.minor());

    // create -f with validation on.
    let cm = format!("cm-{tag}");
    let f = write(dir, &format!("{cm}.yaml"), &configmap(&cm, "one"));
    assert_eq!(
        quiet(k, &["create", "-f", &f]).trim(),
        format!("configmap/{cm} created")
    );
    let dep = format!("create-{tag}");
    let f = write(
        dir,
        &format!("{dep}.yaml"),
        &deployment(&dep, &[("app", "nginx:1.25")]),
    );
    assert_eq!(
        quiet(k, &["create", "-f", &f]).trim(),
        format!("deployment.apps/{dep} created")
    );
    // Validation is real: an unknown field is refused.
    let bad = write(
        dir,
        &format!("bad-{tag}.yaml"),
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad-{tag}\nbogusField: 1\n"),
    );
    let (ok, _, err) = k.attempt(&["create", "-f", &bad]);
    // kubectl found `fieldValidation` on the kind's PATCH operation, so the server judged it.
    assert!(
        !ok && err.contains("Error from server (BadRequest)") && err.contains("bogusField"),
        "kubectl 1.{}: {err}",
        k.minor()
    );

    // Client-side apply of a ConfigMap and a Deployment, then a changed container list.
    let acm = format!("apply-cm-{tag}");
    let f = write(dir, &format!("{acm}.yaml"), &configmap(&acm, "one"));
    assert_eq!(
        quiet(k, &["apply", "-f", &f]).trim(),
        format!("configmap/{acm} created")
    );
    write(dir, &format!("{acm}.yaml"), &configmap(&acm, "two"));
    assert_eq!(
        quiet(k, &["apply", "-f", &f]).trim(),
        format!("configmap/{acm} configured")
    );
    assert_eq!(k.ok(&["get", "cm", &acm, "-o", "jsonpath={.data.a}"]), "two");

    let web = format!("apply-{tag}");
    let f = write(
        dir,
        &format!("{web}.yaml"),
        &deployment(&web, &[("app", "nginx:1.25")]),
    );
    assert_eq!(
        quiet(k, &["apply", "-f", &f]).trim(),
        format!("deployment.apps/{web} created")
    );
    write(
        dir,
        &format!("{web}.yaml"),
        &deployment(&web, &[("sidecar", "busybox:1.36"), ("app", "nginx:1.26")]),
    );
    // diff sees the change (exit code 1) before it is applied.
    let (ok, out, err) = k.attempt(&["diff", "-f", &f]);
    assert!(
        !ok && out.contains("nginx:1.26") && err.is_empty(),
        "diff 1.{}: {out}\n{err}",
        k.minor()
    );
    assert_eq!(
        quiet(k, &["apply", "-f", &f]).trim(),
        format!("deployment.apps/{web} configured")
    );
    let jsonpath = "jsonpath={range .spec.template.spec.containers[*]}{.name}={.image},{.env[0].value};{end}";
    assert_eq!(
        k.ok(&["get", "deploy", &web, "-o", jsonpath]),
        "sidecar=busybox:1.36,sidecar;app=nginx:1.26,app;"
    );
    // Dropping a container: kubectl computes a `$patch: delete` by merge key from OpenAPI.
    write(
        dir,
        &format!("{web}.yaml"),
        &deployment(&web, &[("app", "nginx:1.27")]),
    );
    assert_eq!(
        quiet(k, &["apply", "-f", &f]).trim(),
        format!("deployment.apps/{web} configured")
    );
    assert_eq!(
        k.ok(&["get", "deploy", &web, "-o", jsonpath]),
        "app=nginx:1.27,app;"
    );
    let (ok, out, err) = k.attempt(&["diff", "-f", &f]);
    assert!(
        ok && out.is_empty(),
        "no diff expected, 1.{}: {out}\n{err}",
        k.minor()
    );

    // edit, with an editor that rewrites the value.
    let editor = write(
        dir,
        "editor.sh",
        "#!/bin/sh\nsed -i 's/^  a: two$/  a: three/' \"$1\"\n",
    );
    std::process::Command::new("chmod")
        .args(["+x", &editor])
        .status()
        .unwrap();
    let out = k
        .command(&["edit", "cm", &acm], &[("KUBE_EDITOR", editor.as_str())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "edit 1.{}: {}",
        k.minor(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(k.ok(&["get", "cm", &acm, "-o", "jsonpath={.data.a}"]), "three");

    // explain reads descriptions, types and fields from the documents.
    let out = quiet(k, &["explain", "deployment.spec.template.spec.containers"]);
    for want in [
        "KIND:",
        "Deployment",
        "FIELD:",
        "containers",
        "<[]Container>",
        "image",
        "livenessProbe",
        "<Probe>",
    ] {
        assert!(
            out.contains(want),
            "explain 1.{} lacks {want:?}:\n{out}",
            k.minor()
        );
    }
    assert!(out.contains("List of containers belonging to the pod"), "{out}");
    let out = quiet(k, &["explain", "pods"]);
    for want in [
        "KIND:",
        "Pod",
        "VERSION:",
        "v1",
        "DESCRIPTION:",
        "FIELDS:",
        "apiVersion",
        "metadata",
        "<ObjectMeta>",
        "spec",
        "<PodSpec>",
        "status",
    ] {
        assert!(
            out.contains(want),
            "explain 1.{} lacks {want:?}:\n{out}",
            k.minor()
        );
    }
    assert!(out.contains("Pod is a collection of containers"), "{out}");
    let out = quiet(k, &["explain", "configmap.data"]);
    assert!(out.contains("<map[string]string>"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_kubectl_uses_openapi() {
    with_each_kubectl("OpenAPI", exercise).await;
}
