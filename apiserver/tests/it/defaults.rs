//! Defaults of built-in types and Service IP/port allocation, over HTTP: bare objects come back
//! as kube-apiserver would store them.

use std::collections::HashSet;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::TestServer;

const NS: &str = "/api/v1/namespaces/default";
const APPS: &str = "/apis/apps/v1/namespaces/default";
const BATCH: &str = "/apis/batch/v1/namespaces/default";

fn template(restart: Option<&str>) -> Value {
    let mut t = json!({"metadata": {"labels": {"app": "x"}},
                       "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}});
    if let Some(r) = restart {
        t["spec"]["restartPolicy"] = json!(r);
    }
    t
}

/// The pod template defaults kube-apiserver adds.
fn assert_template_defaults(spec: &Value, restart: &str) {
    assert_eq!(spec["restartPolicy"], restart, "{spec}");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(
        spec["containers"][0],
        json!({"name": "c", "image": "nginx", "imagePullPolicy": "Always", "resources": {},
               "ports": [{"containerPort": 80, "protocol": "TCP"}],
               "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"})
    );
}

async fn create(s: &TestServer, uri: &str, body: Value) -> Value {
    let (code, v) = s.post(uri, body).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    v
}

#[tokio::test]
async fn workloads_are_stored_with_upstream_defaults() {
    let s = TestServer::new().await;
    let sel = json!({"matchLabels": {"app": "x"}});
    let d = create(
        &s,
        &format!("{APPS}/deployments"),
        json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": sel, "template": template(None)}}),
    )
    .await;
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_template_defaults(&d["spec"]["template"]["spec"], "Always");
    // As upstream, a create's manager owns the defaulted fields (defaulting happens on decode).
    let owned = &d["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"];
    assert!(
        owned.get("f:replicas").is_some() && owned.get("f:strategy").is_some(),
        "{d}"
    );
    // The stored object is the defaulted one.
    let (_, got) = s.get(&format!("{APPS}/deployments/d")).await;
    assert_eq!(got["spec"], d["spec"]);

    let st = create(
        &s,
        &format!("{APPS}/statefulsets"),
        json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "st"},
        "spec": {"selector": sel, "serviceName": "st", "template": template(None)}}),
    )
    .await;
    assert_eq!(st["spec"]["replicas"], 1);
    assert_eq!(st["spec"]["serviceName"], "st");
    assert_eq!(st["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        st["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(st["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(
        st["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_template_defaults(&st["spec"]["template"]["spec"], "Always");

    let ds = create(
        &s,
        &format!("{APPS}/daemonsets"),
        json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
        "spec": {"selector": sel, "template": template(None)}}),
    )
    .await;
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    assert_template_defaults(&ds["spec"]["template"]["spec"], "Always");

    let job = create(
        &s,
        &format!("{BATCH}/jobs"),
        json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
        "spec": {"template": template(Some("Never"))}}),
    )
    .await;
    let uid = job["metadata"]["uid"].clone();
    let spec = &job["spec"];
    assert_eq!(
        (spec["parallelism"].clone(), spec["completions"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    assert_eq!(
        spec["template"]["metadata"]["labels"],
        json!({"app": "x", "controller-uid": uid, "batch.kubernetes.io/controller-uid": uid,
               "job-name": "pi", "batch.kubernetes.io/job-name": "pi"})
    );
    assert_template_defaults(&spec["template"]["spec"], "Never");

    let cj = create(&s, &format!("{BATCH}/cronjobs"), json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template(Some("OnFailure"))}}}})).await;
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["suspend"], false);
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    assert_template_defaults(
        &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        "OnFailure",
    );

    // Patches are defaulted too: a strategic patch switching to Recreate keeps no rollingUpdate
    // defaults added back, and removing replicas brings back the default.
    let (code, _, v) = s
        .call(
            Method::PATCH,
            &format!("{APPS}/deployments/d"),
            &[("content-type", "application/merge-patch+json")],
            Some(
                json!({"spec": {"replicas": null, "strategy": {"type": "Recreate", "rollingUpdate": null}}}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["spec"]["replicas"], 1);
    assert_eq!(v["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[tokio::test]
async fn secrets_and_configmaps() {
    let s = TestServer::new().await;
    let secret = create(
        &s,
        &format!("{NS}/secrets"),
        json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}}),
    )
    .await;
    assert_eq!(secret["type"], "Opaque");
    assert!(secret["metadata"].get("generation").is_none(), "{secret}");
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn in_default_range(ip: &str) -> bool {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    let o = ip.octets();
    o[0] == 10 && (96..112).contains(&o[1]) && ip != std::net::Ipv4Addr::new(10, 96, 0, 1)
}

#[tokio::test]
async fn services_get_defaults_ips_and_node_ports() {
    let s = TestServer::new().await;
    let (code, k) = s.get(&format!("{NS}/services/kubernetes")).await;
    assert_eq!(code, StatusCode::OK, "{k}");
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(k["spec"]["ports"][0]["port"], 443);

    let svc = create(
        &s,
        &format!("{NS}/services"),
        service("web", json!({"selector": {"app": "x"}, "ports": [{"port": 80}]})),
    )
    .await;
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(in_default_range(&ip), "{ip}");
    assert_eq!(svc["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 80}])
    );
    assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
    assert!(svc["spec"].get("externalTrafficPolicy").is_none());

    let np = create(
        &s,
        &format!("{NS}/services"),
        service("np", json!({"type": "NodePort", "ports": [{"port": 80}]})),
    )
    .await;
    let port = np["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&port), "{port}");
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    let (code, v) = s
        .post(
            &format!("{NS}/services"),
            service(
                "np2",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("provided port is already allocated"),
        "{v}"
    );

    let headless = create(
        &s,
        &format!("{NS}/services"),
        service("h", json!({"clusterIP": "None", "ports": [{"port": 80}]})),
    )
    .await;
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));

    // A requested IP: honoured once; the second ask is a 422 with upstream's reason.
    let want = json!({"clusterIP": "10.96.100.100", "ports": [{"port": 80}]});
    let fixed = create(&s, &format!("{NS}/services"), service("fixed", want.clone())).await;
    assert_eq!(fixed["spec"]["clusterIP"], "10.96.100.100");
    let (code, v) = s.post(&format!("{NS}/services"), service("clash", want)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["reason"], "Invalid");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.clusterIPs") && msg.contains("provided IP is already allocated"),
        "{msg}"
    );
    let (code, v) = s
        .post(
            &format!("{NS}/services"),
            service(
                "far",
                json!({"clusterIP": "192.168.1.1", "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // Delete gives the IP back.
    let (code, _, _) = s
        .call(Method::DELETE, &format!("{NS}/services/fixed"), &[], None)
        .await;
    assert_eq!(code, StatusCode::OK);
    create(
        &s,
        &format!("{NS}/services"),
        service(
            "clash",
            json!({"clusterIP": "10.96.100.100", "ports": [{"port": 80}]}),
        ),
    )
    .await;

    // ClusterIP -> NodePort allocates a node port and keeps the IP; -> ExternalName drops the IP.
    let mut changed = svc.clone();
    changed["spec"]["type"] = json!("NodePort");
    let (code, _, v) = s
        .call(Method::PUT, &format!("{NS}/services/web"), &[], Some(changed))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["spec"]["clusterIP"], ip.as_str());
    assert!(v["spec"]["ports"][0]["nodePort"].as_u64().is_some(), "{v}");
    let (code, _, v) = s
        .call(
            Method::PATCH,
            &format!("{NS}/services/web"),
            &[("content-type", "application/merge-patch+json")],
            Some(json!({"spec": {"type": "ExternalName", "externalName": "x.example", "clusterIP": "", "clusterIPs": null,
                                 "ipFamilies": null, "ipFamilyPolicy": null, "internalTrafficPolicy": null,
                                 "externalTrafficPolicy": null}})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    // The released IP can be requested again.
    create(
        &s,
        &format!("{NS}/services"),
        service("reuse", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
    )
    .await;
}

#[tokio::test]
async fn concurrent_service_creates_get_distinct_ips() {
    let s = std::sync::Arc::new(TestServer::new().await);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let body = service(
                &format!("svc-{i}"),
                json!({"type": "NodePort", "ports": [{"port": 80}]}),
            );
            let (code, v) = s.post(&format!("{NS}/services"), body).await;
            assert_eq!(code, StatusCode::CREATED, "{v}");
            (
                v["spec"]["clusterIP"].as_str().unwrap().to_string(),
                v["spec"]["ports"][0]["nodePort"].as_u64().unwrap(),
            )
        }));
    }
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for t in tasks {
        let (ip, port) = t.await.unwrap();
        ips.insert(ip);
        ports.insert(port);
    }
    assert_eq!((ips.len(), ports.len()), (50, 50));
}

#[tokio::test]
async fn allocations_survive_a_restart_and_are_adopted() {
    let s = TestServer::new().await;
    create(
        &s,
        &format!("{NS}/services"),
        service(
            "a",
            json!({"clusterIP": "10.96.7.7", "type": "NodePort",
        "ports": [{"port": 80, "nodePort": 31000}]}),
        ),
    )
    .await;
    // A service stored without its allocation recorded (e.g. written before tracking existed).
    let key = "/registry/ranges/serviceips/10.96.7.7";
    let restarted = {
        let mut config = apiserver::Config::new("/nonexistent");
        config.allow_unauthenticated = true;
        let api = apiserver::ApiServer::new(config, s.store.clone());
        storage::StorageExt::delete_if(&*s.store, key.as_bytes(), storage::Expect::Any)
            .await
            .unwrap();
        api.bootstrap().await.expect("second bootstrap");
        TestServer {
            api,
            store: s.store.clone(),
        }
    };
    let (code, v) = restarted
        .post(
            &format!("{NS}/services"),
            service("b", json!({"clusterIP": "10.96.7.7", "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (code, v) = restarted
        .post(
            &format!("{NS}/services"),
            service(
                "c",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (_, k) = restarted.get(&format!("{NS}/services/kubernetes")).await;
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
}
