//! Validation of built-in types over HTTP: invalid objects are answered 422 `Invalid` with one
//! cause per failure (upstream's field paths and messages); valid ones are created.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::kubectl::KubectlExt;
use crate::support::TestServer;

const NS: &str = "/api/v1/namespaces/default";
const APPS: &str = "/apis/apps/v1/namespaces/default";
const BATCH: &str = "/apis/batch/v1/namespaces/default";

/// The (field, message) causes of a 422 answer.
fn causes(code: StatusCode, status: &Value) -> Vec<(String, String)> {
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(status["reason"], "Invalid");
    status["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect()
}

fn pod(name: &str, containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers}})
}

fn deployment(name: &str, selector: Value, template_labels: Value, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": selector, "template": {"metadata": {"labels": template_labels},
            "spec": {"containers": [{"name": "main", "image": image}]}}}})
}

fn job_template(restart: &str) -> Value {
    json!({"spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]}})
}

#[tokio::test]
async fn invalid_pods_get_field_causes() {
    let s = TestServer::new().await;
    let (code, v) = s
        .post(
            &format!("{NS}/pods"),
            pod(
                "p",
                json!([
                    {"name": "web", "image": "nginx", "ports": [{"containerPort": 70000}]},
                    {"name": "web", "image": "", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}
                ]),
            ),
        )
        .await;
    assert_eq!(
        causes(code, &v),
        pairs(&[
            (
                "spec.containers[0].ports[0].containerPort",
                "Invalid value: 70000: must be between 1 and 65535, inclusive"
            ),
            ("spec.containers[1].name", "Duplicate value: \"web\""),
            ("spec.containers[1].image", "Required value"),
            (
                "spec.containers[1].resources.requests",
                "Invalid value: \"2\": must be less than or equal to cpu limit of 1"
            ),
        ])
    );
    assert!(
        v["message"].as_str().unwrap().starts_with(
            "Pod \"p\" is invalid: [spec.containers[0].ports[0].containerPort: Invalid value: 70000"
        ),
        "{v}"
    );
    let (code, v) = s.post(&format!("{NS}/pods"), pod("p", json!([]))).await;
    assert_eq!(causes(code, &v), pairs(&[("spec.containers", "Required value")]));

    let (code, v) = s
        .post(
            &format!("{NS}/pods"),
            pod("ok", json!([{"name": "web", "image": "nginx"}])),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    // Only the image (and a few more fields) may change on a pod.
    let mut changed = v.clone();
    changed["spec"]["restartPolicy"] = json!("Never");
    let (code, _, v2) = s
        .call(Method::PUT, &format!("{NS}/pods/ok"), &[], Some(changed))
        .await;
    let got = causes(code, &v2);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "spec");
    assert!(
        got[0]
            .1
            .starts_with("Forbidden: pod updates may not change fields other than")
    );
    let mut image = v;
    image["spec"]["containers"][0]["image"] = json!("nginx:2");
    let (code, _, v3) = s
        .call(Method::PUT, &format!("{NS}/pods/ok"), &[], Some(image))
        .await;
    assert_eq!(code, StatusCode::OK, "{v3}");
}

#[tokio::test]
async fn invalid_deployments_get_field_causes() {
    let s = TestServer::new().await;
    let (code, v) = s
        .post(
            &format!("{APPS}/deployments"),
            deployment("d", json!({"matchLabels": {"app": "a"}}), json!({"app": "b"}), ""),
        )
        .await;
    assert_eq!(
        causes(code, &v),
        pairs(&[
            (
                "spec.template.metadata.labels",
                "Invalid value: {\"app\":\"b\"}: `selector` does not match template `labels`"
            ),
            ("spec.template.spec.containers[0].image", "Required value"),
        ])
    );
    let mut recreate = deployment(
        "d",
        json!({"matchLabels": {"app": "a"}}),
        json!({"app": "a"}),
        "nginx",
    );
    recreate["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
    recreate["spec"]["replicas"] = json!(-2);
    let (code, v) = s.post(&format!("{APPS}/deployments"), recreate).await;
    assert_eq!(
        causes(code, &v),
        pairs(&[
            (
                "spec.replicas",
                "Invalid value: -2: must be greater than or equal to 0"
            ),
            (
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'"
            ),
        ])
    );

    // kubectl create deployment sends `strategy: {}`: its type is defaulted before validation.
    let mut good = deployment(
        "d",
        json!({"matchLabels": {"app": "a"}}),
        json!({"app": "a"}),
        "nginx",
    );
    good["spec"]["strategy"] = json!({});
    let (code, created) = s.post(&format!("{APPS}/deployments"), good).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["spec"]["strategy"]["type"], "RollingUpdate");
    // The selector is immutable; patches are validated too.
    let (code, _, v) = s
        .call(
            Method::PATCH,
            &format!("{APPS}/deployments/d"),
            &[("content-type", "application/merge-patch+json")],
            Some(
                json!({"spec": {"selector": {"matchLabels": {"app": "a", "v": "2"}},
                "template": {"metadata": {"labels": {"app": "a", "v": "2"}}}}}),
            ),
        )
        .await;
    let got = causes(code, &v);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "spec.selector");
    assert!(got[0].1.ends_with("field is immutable"));
    // Status writes are validated.
    let (code, _, v) = s
        .call(
            Method::PATCH,
            &format!("{APPS}/deployments/d/status"),
            &[("content-type", "application/merge-patch+json")],
            Some(json!({"status": {"replicas": 1, "readyReplicas": 3}})),
        )
        .await;
    assert_eq!(
        causes(code, &v),
        pairs(&[(
            "status.readyReplicas",
            "Invalid value: 3: cannot be greater than status.replicas"
        )])
    );
}

#[tokio::test]
async fn invalid_services_get_field_causes() {
    let s = TestServer::new().await;
    let (code, v) = s
        .post(
            &format!("{NS}/services"),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                "spec": {"ports": [{"port": 70000}, {"name": "b", "port": 80, "protocol": "ICMP"}]}}),
        )
        .await;
    assert_eq!(
        causes(code, &v),
        pairs(&[
            ("spec.ports[0].name", "Required value"),
            (
                "spec.ports[0].port",
                "Invalid value: 70000: must be between 1 and 65535, inclusive"
            ),
            // (targetPort defaults to port)
            (
                "spec.ports[0].targetPort",
                "Invalid value: 70000: must be between 1 and 65535, inclusive"
            ),
            (
                "spec.ports[1].protocol",
                "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
            ),
        ])
    );
    let (code, v) = s
        .post(
            &format!("{NS}/services"),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"}, "spec": {"type": "ExternalName"}}),
        )
        .await;
    assert_eq!(
        causes(code, &v),
        pairs(&[("spec.externalName", "Required value")])
    );
    let (code, v) = s
        .post(
            &format!("{NS}/services"),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "none"}, "spec": {}}),
        )
        .await;
    assert_eq!(causes(code, &v), pairs(&[("spec.ports", "Required value")]));
    for ok in [
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "headless"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
    ] {
        let (code, v) = s.post(&format!("{NS}/services"), ok).await;
        assert_eq!(code, StatusCode::CREATED, "{v}");
    }
}

#[tokio::test]
async fn invalid_jobs_and_cronjobs_get_field_causes() {
    let s = TestServer::new().await;
    let (code, v) = s
        .post(
            &format!("{BATCH}/jobs"),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                "spec": {"parallelism": -1, "template": job_template("Always")}}),
        )
        .await;
    assert_eq!(
        causes(code, &v),
        pairs(&[
            (
                "spec.parallelism",
                "Invalid value: -1: must be greater than or equal to 0"
            ),
            (
                "spec.template.spec.restartPolicy",
                "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
            ),
        ])
    );
    let (code, job) = s
        .post(
            &format!("{BATCH}/jobs"),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                "spec": {"template": job_template("Never")}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{job}");
    let mut changed = job;
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("alpine");
    let (code, _, v) = s
        .call(Method::PUT, &format!("{BATCH}/jobs/j"), &[], Some(changed))
        .await;
    let got = causes(code, &v);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "spec.template");
    assert!(got[0].1.ends_with(": field is immutable"));

    let cron = |schedule: &str, policy: &str| {
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
            "spec": {"schedule": schedule, "concurrencyPolicy": policy,
                "jobTemplate": {"spec": {"template": job_template("OnFailure")}}}})
    };
    let (code, v) = s
        .post(&format!("{BATCH}/cronjobs"), cron("* * * *", "Sometimes"))
        .await;
    assert_eq!(
        causes(code, &v),
        pairs(&[
            (
                "spec.schedule",
                "Invalid value: \"* * * *\": expected exactly 5 fields, found 4: [* * * *]"
            ),
            (
                "spec.concurrencyPolicy",
                "Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""
            ),
        ])
    );
    let (code, v) = s
        .post(&format!("{BATCH}/cronjobs"), cron("@hourly", "Forbid"))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn metadata_secrets_and_rbac_are_validated() {
    let s = TestServer::new().await;
    let (code, v) = s
        .post(
            &format!("{NS}/configmaps"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "labels": {"app": "not valid"}, "finalizers": ["a/b/c"]}}),
        )
        .await;
    let got = causes(code, &v);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "metadata.labels");
    assert!(
        got[0]
            .1
            .starts_with("Invalid value: \"not valid\": a valid label must be an empty string")
    );
    assert_eq!(got[1].0, "metadata.finalizers");
    let (code, v) = s
        .post(
            &format!("{NS}/secrets"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"},
                "type": "kubernetes.io/tls", "stringData": {"tls.crt": "x"}}),
        )
        .await;
    assert_eq!(causes(code, &v), pairs(&[("data[tls.key]", "Required value")]));
    let (code, v) = s
        .post(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                "subjects": [{"kind": "User", "name": "alice"}]}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let mut changed = v;
    changed["roleRef"]["name"] = json!("other");
    let (code, _, v) = s
        .call(
            Method::PUT,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/b",
            &[],
            Some(changed),
        )
        .await;
    let got = causes(code, &v);
    assert_eq!(got[0].0, "roleRef");
    assert!(got[0].1.ends_with(": cannot change roleRef"));
}

#[tokio::test]
async fn pod_security_affinity_and_spread_are_validated() {
    let s = TestServer::new().await;
    let mut p = pod(
        "p",
        json!([{"name": "web", "image": "nginx",
        "ports": [{"containerPort": 80, "hostPort": 8080}],
        "securityContext": {"allowPrivilegeEscalation": false, "runAsUser": -1,
            "seccompProfile": {"type": "Localhost"}}},
        {"name": "side", "image": "busybox", "ports": [{"containerPort": 81, "hostPort": 8080}],
         "envFrom": [{"prefix": "X_"}]}]),
    );
    p["spec"]["securityContext"] = json!({"fsGroupChangePolicy": "Never", "sysctls": [{"name": "kernel.shm_rmid_forced"}, {"name": "kernel.shm_rmid_forced"}]});
    p["spec"]["affinity"] = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {"matchExpressions": [{"key": "zone", "operator": "Gt", "values": []}]}}]}});
    p["spec"]["topologySpreadConstraints"] =
        json!([{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "Always"}]);
    let (code, v) = s.post(&format!("{NS}/pods"), p).await;
    let c = "spec.containers";
    let pref = "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]";
    assert_eq!(
        causes(code, &v),
        pairs(&[
            (
                &format!("{c}[0].securityContext.runAsUser") as &str,
                "Invalid value: -1: must be between 0 and 2147483647, inclusive"
            ),
            (
                &format!("{c}[0].securityContext.seccompProfile.localhostProfile"),
                "Required value: must be set when seccomp type is Localhost"
            ),
            (
                &format!("{c}[1].envFrom"),
                "Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`"
            ),
            (
                &format!("{c}[1].ports[0].hostPort"),
                "Duplicate value: \"TCP//8080\""
            ),
            (
                "spec.securityContext.sysctls[1].name",
                "Duplicate value: \"kernel.shm_rmid_forced\""
            ),
            (
                "spec.securityContext.fsGroupChangePolicy",
                "Unsupported value: \"Never\": supported values: \"Always\", \"OnRootMismatch\""
            ),
            (
                &format!("{pref}.weight"),
                "Invalid value: 0: must be in the range 1-100"
            ),
            (
                &format!("{pref}.preference.matchExpressions[0].values"),
                "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"
            ),
            (
                "spec.topologySpreadConstraints[0].maxSkew",
                "Invalid value: 0: must be greater than zero"
            ),
            (
                "spec.topologySpreadConstraints[0].whenUnsatisfiable",
                "Unsupported value: \"Always\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\""
            ),
        ])
    );
    // A pod using all of these correctly is created.
    let mut ok = pod(
        "ok",
        json!([{"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080}],
        "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": 1000, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}},
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]}]),
    );
    ok["spec"]["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}});
    ok["spec"]["topologySpreadConstraints"] = json!([{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]);
    let (code, v) = s.post(&format!("{NS}/pods"), ok).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn malformed_quantities_are_bad_requests() {
    let s = TestServer::new().await;
    let body = pod(
        "q",
        json!([{"name": "web", "image": "nginx", "resources": {"limits": {"cpu": "abc"}}}]),
    );
    let (code, v) = s.post(&format!("{NS}/pods"), body).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["reason"], "BadRequest");
    assert_eq!(
        v["message"],
        "Pod in version \"v1\" cannot be handled as a Pod: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
    let mut d = deployment(
        "d",
        json!({"matchLabels": {"a": "b"}}),
        json!({"a": "b"}),
        "nginx",
    );
    d["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"requests": {"memory": "32MMi"}});
    let (code, v) = s.post(&format!("{APPS}/deployments"), d).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        v["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: unable to parse quantity's suffix"
    );
}

#[tokio::test]
async fn networking_autoscaling_policy_and_storage_are_validated() {
    let s = TestServer::new().await;
    let net = "/apis/networking.k8s.io/v1/namespaces/default";
    let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
        "spec": {"rules": [{"host": "Foo.com", "http": {"paths": [{"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
    let (code, v) = s.post(&format!("{net}/ingresses"), ingress).await;
    let got = causes(code, &v);
    assert_eq!(got[0].0, "spec.rules[0].host");
    assert_eq!(
        got[1],
        (
            "spec.rules[0].http.paths[0].pathType".to_string(),
            "Required value: pathType must be specified".to_string()
        )
    );
    let policy = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}]}});
    let (code, v) = s.post(&format!("{net}/networkpolicies"), policy).await;
    assert_eq!(
        causes(code, &v),
        pairs(&[(
            "spec.ingress[0].from[0].ipBlock.except[0]",
            "Invalid value: \"192.168.0.0/16\": must be a strict subset of `cidr`"
        )])
    );

    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 2}});
    let (code, v) = s
        .post(
            "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
            hpa,
        )
        .await;
    assert_eq!(
        causes(code, &v),
        pairs(&[(
            "spec.maxReplicas",
            "Invalid value: 2: must be greater than or equal to `minReplicas`"
        )])
    );

    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "b"},
        "spec": {"minAvailable": 1, "maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
    let (code, v) = s
        .post("/apis/policy/v1/namespaces/default/poddisruptionbudgets", pdb)
        .await;
    let got = causes(code, &v);
    assert_eq!(got.len(), 1);
    assert!(
        got[0]
            .1
            .ends_with("minAvailable and maxUnavailable cannot be both set")
    );

    // StorageClass: provisioner required on create; parameters immutable on update.
    let sc = "/apis/storage.k8s.io/v1/storageclasses";
    let class =
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}});
    let (code, v) = s.post(sc, class.clone()).await;
    assert_eq!(causes(code, &v), pairs(&[("provisioner", "Required value")]));
    let mut class = class;
    class["provisioner"] = json!("example.com/fast");
    class["parameters"] = json!({"type": "ssd"});
    let (code, v) = s.post(sc, class).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let mut changed = v;
    changed["parameters"] = json!({"type": "hdd"});
    let (code, _, v) = s
        .call(Method::PUT, &format!("{sc}/fast"), &[], Some(changed))
        .await;
    assert_eq!(
        causes(code, &v),
        pairs(&[("parameters", "Forbidden: updates to parameters are forbidden.")])
    );

    let webhook = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "w"},
        "webhooks": [{"name": "hook.example.com", "clientConfig": {"url": "https://hook.example.com/validate"},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]}]});
    let (code, v) = s
        .post(
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            webhook,
        )
        .await;
    assert_eq!(
        causes(code, &v),
        pairs(&[
            (
                "webhooks[0].sideEffects",
                "Required value: must specify one of None, NoneOnDryRun"
            ),
            (
                "webhooks[0].admissionReviewVersions",
                "Required value: must specify one of v1, v1beta1"
            ),
        ])
    );
}

/// Objects as kubectl generators and the upstream documentation examples write them: each
/// kubectl creates them in its own namespace, and an invalid one is refused with the causes.
fn kubectl_creates_valid_examples(k: &crate::kubectl::Kubectl, scratch: &std::path::Path) {
    let ns = format!("examples-{}", k.minor());
    k.ok(&["create", "namespace", &ns]);
    let n = ["-n", ns.as_str()];
    let with_ns =
        |args: &[&str]| -> Vec<String> { args.iter().chain(n.iter()).map(|s| s.to_string()).collect() };
    let run = |args: &[&str]| {
        let args = with_ns(args);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        k.ok(&refs);
    };
    run(&["create", "deployment", "web", "--image=nginx", "--port=80"]);
    run(&[
        "create",
        "ingress",
        "simple",
        "--rule=foo.com/bar=svc1:8080,tls=my-cert",
    ]);
    run(&[
        "create",
        "ingress",
        "catch-all",
        "--class=otheringress",
        "--rule=/path=svc:port",
    ]);
    run(&[
        "create",
        "pdb",
        "web-pdb",
        "--selector=app=web",
        "--min-available=50%",
    ]);
    run(&[
        "create",
        "quota",
        "q",
        "--hard=cpu=1,memory=1G,pods=2,services=3,replicationcontrollers=2,resourcequotas=1,secrets=5,persistentvolumeclaims=10",
    ]);
    run(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=10",
        "--cpu-percent=80",
    ]);
    let manifest = scratch.join(format!("examples-{}.yaml", k.minor()));
    let priority = format!("high-priority-{}", k.minor());
    let class = format!("standard-{}", k.minor());
    let pv = format!("pv-{}", k.minor());
    let hook = format!("hooks-{}", k.minor());
    std::fs::write(
        &manifest,
        format!(
            r#"apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: {priority}
value: 1000000
globalDefault: false
description: "for XYZ service pods only"
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: {class}
provisioner: kubernetes.io/aws-ebs
parameters:
  type: gp2
reclaimPolicy: Retain
allowVolumeExpansion: true
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: {pv}
spec:
  capacity:
    storage: 5Gi
  volumeMode: Filesystem
  accessModes:
    - ReadWriteOnce
  persistentVolumeReclaimPolicy: Recycle
  storageClassName: slow
  mountOptions:
    - hard
    - nfsvers=4.1
  nfs:
    path: /tmp
    server: 172.17.0.2
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {hook}
webhooks:
- name: my-webhook.example.com
  rules:
  - apiGroups:   [""]
    apiVersions: ["v1"]
    operations:  ["CREATE"]
    resources:   ["pods"]
    scope:       "Namespaced"
  clientConfig:
    service:
      namespace: example-namespace
      name: example-service
    caBundle: Cg==
  admissionReviewVersions: ["v1"]
  sideEffects: None
  timeoutSeconds: 5
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: {ns}
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 32000
      endPort: 32768
---
apiVersion: v1
kind: LimitRange
metadata:
  name: cpu-resource-constraint
  namespace: {ns}
spec:
  limits:
  - default:
      cpu: 500m
    defaultRequest:
      cpu: 500m
    max:
      cpu: "1"
    min:
      cpu: 100m
    type: Container
"#
        ),
    )
    .unwrap();
    k.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let (ok, _, err) = k.attempt(
        &with_ns(&[
            "create",
            "pdb",
            "bad",
            "--selector=app=web",
            "--min-available=150%",
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(!ok);
    assert!(
        err.contains("spec.minAvailable: Invalid value: \"150%\": must not be greater than 100%"),
        "{err}"
    );
}

#[tokio::test]
async fn kubectl_examples_of_the_newly_validated_kinds_are_accepted() {
    crate::kubectl::with_each_kubectl("validation examples", kubectl_creates_valid_examples).await;
}
