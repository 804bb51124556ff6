//! `fieldValidation` (Strict, Warn, Ignore, absent) for custom resources and built-ins, per body
//! type (JSON, YAML, merge, JSON and strategic merge patches, apply), with upstream's status
//! codes, messages and `Warning` headers; kube-rs's `PatchParams` and stock kubectl's
//! `--validate` on a custom resource with a field its schema does not declare.

use std::path::Path;

use http::{Method, Request, StatusCode};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

use crate::kube_client::Running;
use crate::kubectl::{Kubectl, KubectlExt, with_each_kubectl};

const GADGETS: &str = "/apis/strict.example.com/v1/namespaces/default/gadgets";

fn gadget_crd(group: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gadgets.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer"},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                     "x-kubernetes-preserve-unknown-fields": true}}},
                    "status": {"type": "object", "properties": {"phase": {"type": "string"}}}}}}}],
        },
    })
}

async fn install(client: &Client, group: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(gadget_crd(group)).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        await_condition(
            crds,
            &format!("gadgets.{group}"),
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("established in time")
    .unwrap();
}

/// Sends a request through kube-rs's client; returns status, `Warning` headers and the body.
async fn call(
    client: &Client,
    method: Method,
    uri: &str,
    content_type: &str,
    body: &[u8],
) -> (StatusCode, Vec<String>, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(body.to_vec())
        .unwrap();
    let resp = client.send(req.map(Into::into)).await.unwrap();
    let status = resp.status();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        warnings,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn warning(text: &str) -> String {
    format!("299 - \"{}\"", text.replace('"', "\\\""))
}

const JSON: &str = "application/json";
const YAML: &str = "application/yaml";
const MERGE: &str = "application/merge-patch+json";

fn bad_gadget(name: &str) -> Value {
    json!({"apiVersion": "strict.example.com/v1", "kind": "Gadget",
        "metadata": {"name": name, "bogus": 1},
        "spec": {"size": 1, "more": 2, "extra": 1, "free": {"any": {"x": 1}},
                 "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "nope": true}, "spec": {"x": 1}}}})
}

const UNKNOWN: [&str; 4] = [
    "unknown field \"metadata.bogus\"",
    "unknown field \"spec.extra\"",
    "unknown field \"spec.more\"",
    "unknown field \"spec.template.metadata.nope\"",
];

#[tokio::test]
async fn custom_resources_per_field_validation_and_body_type() {
    let running = Running::start().await;
    let client = running.client().await;
    install(&client, "strict.example.com").await;

    // Create, JSON: Strict refuses with every unknown field, as upstream lists them.
    let body = serde_json::to_vec(&bad_gadget("g1")).unwrap();
    let uri = format!("{GADGETS}?fieldValidation=Strict");
    let (code, warnings, v) = call(&client, Method::POST, &uri, JSON, &body).await;
    assert_eq!(code, 400, "{v}");
    assert!(warnings.is_empty());
    assert_eq!(v["reason"], "BadRequest");
    assert_eq!(
        v["message"],
        format!(
            "Gadget in version \"v1\" cannot be handled as a Gadget: strict decoding error: {}",
            UNKNOWN.join(", ")
        )
    );

    // Create, YAML with a key set twice: the YAML error comes first, with its line.
    let yaml = "apiVersion: strict.example.com/v1\nkind: Gadget\nmetadata:\n  name: g1\nspec:\n  size: 1\n  size: 2\n  extra: 1\n";
    let (code, _, v) = call(&client, Method::POST, &uri, YAML, yaml.as_bytes()).await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "Gadget in version \"v1\" cannot be handled as a Gadget: strict decoding error: error converting YAML to JSON: yaml: unmarshal errors:\n  line 7: key \"size\" already set in map, unknown field \"spec.extra\""
    );

    // Warn (explicit or absent): created pruned, one Warning per field.
    for (name, query) in [("g1", "?fieldValidation=Warn"), ("g2", "")] {
        let body = serde_json::to_vec(&bad_gadget(name)).unwrap();
        let (code, warnings, v) =
            call(&client, Method::POST, &format!("{GADGETS}{query}"), JSON, &body).await;
        assert_eq!(code, 201, "{v}");
        let want: Vec<String> = UNKNOWN.iter().map(|w| warning(w)).collect();
        assert_eq!(warnings, want);
        assert_eq!(v["metadata"].get("bogus"), None);
        assert_eq!(
            v["spec"],
            json!({"size": 1, "free": {"any": {"x": 1}},
                   "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}}})
        );
    }
    let (code, warnings, _) = call(
        &client,
        Method::POST,
        &format!("{GADGETS}?fieldValidation=Warn"),
        YAML,
        yaml.replace("g1", "g3").as_bytes(),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        [
            warning("line 7: key \"size\" already set in map"),
            warning("unknown field \"spec.extra\"")
        ]
    );

    // Ignore: created pruned, silently.
    let body = serde_json::to_vec(&bad_gadget("g4")).unwrap();
    let (code, warnings, v) = call(
        &client,
        Method::POST,
        &format!("{GADGETS}?fieldValidation=Ignore"),
        JSON,
        &body,
    )
    .await;
    assert_eq!(code, 201, "{v}");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(v["spec"].get("extra"), None);

    // Update: the same verdicts.
    let mut g1 = v.clone();
    g1["metadata"]["name"] = json!("g4");
    g1["spec"]["extra"] = json!(true);
    let put = serde_json::to_vec(&g1).unwrap();
    let g4 = format!("{GADGETS}/g4");
    let (code, _, v) = call(
        &client,
        Method::PUT,
        &format!("{g4}?fieldValidation=Strict"),
        JSON,
        &put,
    )
    .await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "Gadget in version \"v1\" cannot be handled as a Gadget: strict decoding error: unknown field \"spec.extra\""
    );
    let (code, warnings, _) = call(&client, Method::PUT, &g4, JSON, &put).await;
    assert_eq!(code, 200);
    assert_eq!(warnings, [warning("unknown field \"spec.extra\"")]);

    // Merge and JSON patches: upstream validates the patched object; Strict is a 422 on `patch`.
    let strict = format!("{g4}?fieldValidation=Strict");
    let (code, _, v) = call(&client, Method::PATCH, &strict, MERGE, br#"{"spec":{"extra":1}}"#).await;
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["reason"], "Invalid");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with(" \"\" is invalid: patch: Invalid value: \"{"),
        "{message}"
    );
    assert!(
        message.ends_with("\": strict decoding error: unknown field \"spec.extra\""),
        "{message}"
    );
    assert_eq!(v["details"]["causes"][0]["field"], "patch");
    assert_eq!(v["details"]["causes"][0]["reason"], "FieldValueInvalid");
    let ops = br#"[{"op": "add", "path": "/spec/extra", "value": 1}]"#;
    let (code, _, v) = call(
        &client,
        Method::PATCH,
        &strict,
        "application/json-patch+json",
        ops,
    )
    .await;
    assert_eq!(code, 422, "{v}");
    let (code, _, v) = call(
        &client,
        Method::PATCH,
        &strict,
        MERGE,
        br#"{"spec":{"size":2,"size":3}}"#,
    )
    .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .ends_with("strict decoding error: duplicate field \"spec.size\""),
        "{v}"
    );
    let (code, warnings, v) = call(
        &client,
        Method::PATCH,
        &g4,
        MERGE,
        br#"{"spec":{"extra":1,"size":5}}"#,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(warnings, [warning("unknown field \"spec.extra\"")]);
    assert_eq!(v["spec"]["size"], 5);
    assert_eq!(v["spec"].get("extra"), None);
    // The status subresource too.
    let (code, _, v) = call(
        &client,
        Method::PATCH,
        &format!("{g4}/status?fieldValidation=Strict"),
        MERGE,
        br#"{"status":{"phase":"Up","color":"red"}}"#,
    )
    .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .ends_with("unknown field \"status.color\""),
        "{v}"
    );

    // Apply: an undeclared field is an error whatever the mode, as upstream's typed patch.
    let apply = "apiVersion: strict.example.com/v1\nkind: Gadget\nmetadata:\n  name: g4\nspec:\n  extra: 1\n";
    let (code, _, v) = call(
        &client,
        Method::PATCH,
        &format!("{g4}?fieldManager=m&fieldValidation=Ignore"),
        "application/apply-patch+yaml",
        apply.as_bytes(),
    )
    .await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .ends_with(".spec.extra: field not declared in schema"),
        "{v}"
    );

    // kube-rs: PatchParams' validation directive.
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("strict.example.com", "v1", "Gadget"),
        "gadgets",
    );
    let gadgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let patch = Patch::Merge(json!({"spec": {"extra": 1}}));
    let err = gadgets
        .patch("g4", &PatchParams::default().validation_strict(), &patch)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message
                    .ends_with("strict decoding error: unknown field \"spec.extra\""),
                "{s:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let g = gadgets
        .patch("g4", &PatchParams::default().validation_ignore(), &patch)
        .await
        .unwrap();
    assert!(g.data["spec"].get("extra").is_none());
    let applied: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "strict.example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g5"}, "spec": {"size": 3, "extra": 1}}))
        .unwrap();
    let err = gadgets
        .patch(
            "g5",
            &PatchParams::apply("m").validation_ignore(),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 400), "{err:?}");
    // kube-rs's PostParams send no directive: the default, Warn, creates it pruned.
    let g = gadgets.create(&PostParams::default(), &applied).await.unwrap();
    assert!(g.data["spec"].get("extra").is_none());
    assert_eq!(g.data["spec"]["size"], 3);
}

#[tokio::test]
async fn built_ins_per_field_validation_and_body_type() {
    let running = Running::start().await;
    let client = running.client().await;
    let cms = "/api/v1/namespaces/default/configmaps";

    // A field set twice (JSON) and an unknown one.
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c1"},"data":{"a":"1","a":"2"},"bogus":1}"#;
    let (code, _, v) = call(
        &client,
        Method::POST,
        &format!("{cms}?fieldValidation=Strict"),
        JSON,
        body,
    )
    .await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: duplicate field \"data.a\", unknown field \"bogus\""
    );
    let (code, warnings, v) = call(&client, Method::POST, cms, JSON, body).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        warnings,
        [
            warning("duplicate field \"data.a\""),
            warning("unknown field \"bogus\"")
        ]
    );
    assert_eq!(v["data"], json!({"a": "2"}), "the last value wins, as in Go");

    // YAML.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c2\n  name: c2\ndata:\n  a: x\n";
    let (code, _, v) = call(
        &client,
        Method::POST,
        &format!("{cms}?fieldValidation=Strict"),
        YAML,
        yaml.as_bytes(),
    )
    .await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: error converting YAML to JSON: yaml: unmarshal errors:\n  line 5: key \"name\" already set in map"
    );
    let (code, warnings, _) = call(
        &client,
        Method::POST,
        &format!("{cms}?fieldValidation=Ignore"),
        YAML,
        yaml.as_bytes(),
    )
    .await;
    assert_eq!(code, 201);
    assert!(warnings.is_empty());

    // Strategic merge patch: upstream shows the patch as Go prints it.
    let (code, _, v) = call(
        &client,
        Method::PATCH,
        &format!("{cms}/c1?fieldValidation=Strict"),
        "application/strategic-merge-patch+json",
        br#"{"data":{"b":"1"},"spec":{"x":[1,"y"]}}"#,
    )
    .await;
    assert_eq!(code, 422, "{v}");
    assert_eq!(
        v["message"],
        " \"\" is invalid: patch: Invalid value: \"map[data:map[b:1] spec:map[x:[1 y]]]\": strict decoding error: unknown field \"spec\""
    );
    let (code, warnings, v) = call(
        &client,
        Method::PATCH,
        &format!("{cms}/c1"),
        "application/strategic-merge-patch+json",
        br#"{"data":{"b":"1","b":"2"}}"#,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(warnings, [warning("duplicate field \"data.b\"")]);

    // Apply: keys set twice are a 400 under Strict, warnings under Warn.
    let apply = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c1\ndata:\n  a: x\n  a: y\n";
    let ct = "application/apply-patch+yaml";
    let (code, _, v) = call(
        &client,
        Method::PATCH,
        &format!("{cms}/c1?fieldManager=m&fieldValidation=Strict"),
        ct,
        apply.as_bytes(),
    )
    .await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "error strict decoding patch: error converting YAML to JSON: yaml: unmarshal errors:\n  line 7: key \"a\" already set in map"
    );
    let (code, warnings, _) = call(
        &client,
        Method::PATCH,
        &format!("{cms}/c1?fieldManager=m&force=true"),
        ct,
        apply.as_bytes(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(warnings, [warning("line 7: key \"a\" already set in map")]);

    // An unknown directive is a 422 on the verb's options.
    let (code, _, v) = call(
        &client,
        Method::POST,
        &format!("{cms}?fieldValidation=Loud"),
        JSON,
        body,
    )
    .await;
    assert_eq!(code, 422, "{v}");
    assert_eq!(
        v["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Loud\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
    );
}

fn kubectl_on_unknown_fields(k: &Kubectl, dir: &Path) {
    let group = format!("v{}.strict.example.com", k.minor());
    let write = |name: &str, body: &str| {
        let p = dir.join(format!("{}-{name}", k.minor()));
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let crd = write("crd.json", &gadget_crd(&group).to_string());
    k.ok(&["create", "-f", &crd]);
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=20s",
        &format!("crd/gadgets.{group}"),
    ]);
    let cr = |name: &str, extra: bool| {
        let extra = if extra { "  extra: 1\n" } else { "" };
        write(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: {name}\nspec:\n  size: 1\n{extra}"
            ),
        )
    };
    // The default (--validate=true, i.e. Strict): refused with upstream's message.
    let f = cr("k1", true);
    let (ok, _, err) = k.attempt(&["apply", "-f", &f]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "Error from server (BadRequest): error when creating \"{f}\": Gadget in version \"v1\" cannot be handled as a Gadget: strict decoding error: unknown field \"spec.extra\""
        ),
        "kubectl 1.{}",
        k.minor()
    );
    // --validate=warn: created pruned, with a warning.
    let (ok, out, err) = k.attempt(&["apply", "--validate=warn", "-f", &f]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("gadget.{group}/k1 created"));
    assert!(err.contains("Warning: unknown field \"spec.extra\""), "{err}");
    // --validate=false: silently pruned.
    let f2 = cr("k2", true);
    let (ok, _, err) = k.attempt(&["apply", "--validate=false", "-f", &f2]);
    assert!(ok && err.is_empty(), "{err}");
    let out = k.ok(&["get", &format!("gadgets.{group}"), "k2", "-o", "jsonpath={.spec}"]);
    assert_eq!(out, r#"{"size":1}"#);
    // Applying a change to an existing object is a patch, validated on the patched object.
    let f3 = cr("k3", false);
    k.ok(&["apply", "-f", &f3]);
    let f3 = cr("k3", true);
    let (ok, _, err) = k.attempt(&["apply", "-f", &f3]);
    assert!(!ok);
    assert!(
        err.contains("strict decoding error: unknown field \"spec.extra\""),
        "{err}"
    );
    k.ok(&["delete", "crd", &format!("gadgets.{group}")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_kubectl_field_validation_on_custom_resources() {
    with_each_kubectl("fieldValidation", kubectl_on_unknown_fields).await;
}
