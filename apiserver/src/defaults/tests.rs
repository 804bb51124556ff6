use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::descriptor::ResourceDescriptor;

fn row(group: &str, resource: &str) -> ResourceDescriptor {
    crate::builtin::rows()
        .into_iter()
        .find(|d| d.group == group && d.resource == resource && d.version == "v1")
        .unwrap()
}

fn defaulted(group: &str, resource: &str, mut obj: Value) -> Value {
    apply(&row(group, resource), &mut obj);
    obj
}

fn pod_template() -> Value {
    json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}})
}

#[test]
fn walker_reaches_every_array_element_and_skips_missing_paths() {
    let mut obj = json!({"a": {"items": [{"x": 1}, {"x": 2}, "not-an-object"]}});
    let mut seen = Vec::new();
    walk(&mut obj, &["a", "items[]"], &mut |m| seen.push(m["x"].clone()));
    assert_eq!(seen, [json!(1), json!(2)]);
    let mut count = 0;
    walk(&mut obj, &["missing", "items[]"], &mut |_| count += 1);
    walk(&mut obj, &["a", "items"], &mut |_| count += 1);
    assert_eq!(count, 0);
}

#[test]
fn rules_fill_only_absent_fields_in_order() {
    const RULES: &[Rule] = &[
        Rule {
            at: "spec",
            field: "kept",
            fill: Fill::Json("1"),
        },
        Rule {
            at: "spec",
            field: "nested",
            fill: Fill::Json("{}"),
        },
        Rule {
            at: "spec.nested",
            field: "inner",
            fill: Fill::Json(r#""x""#),
        },
        Rule {
            at: "spec",
            field: "copy",
            fill: Fill::Derived(|m| m.get("kept").cloned()),
        },
    ];
    let mut obj = json!({"spec": {"kept": 7}});
    apply_rules(&mut obj, "", RULES);
    assert_eq!(
        obj,
        json!({"spec": {"kept": 7, "nested": {"inner": "x"}, "copy": 7}})
    );
}

#[test]
fn pods_get_spec_container_probe_and_admission_defaults() {
    let pod = defaulted(
        "",
        "pods",
        json!({"spec": {
            "containers": [{
                "name": "c", "image": "nginx:1.25",
                "ports": [{"containerPort": 80}],
                "livenessProbe": {"httpGet": {"port": 80}},
            }],
            "initContainers": [{"name": "i", "image": "busybox"}],
            "volumes": [{"name": "s", "secret": {"secretName": "x"}}, {"name": "e"}],
            "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}],
        }}),
    );
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    assert!(spec.get("priority").is_none(), "the Priority admission sets it");
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["resources"], json!({}));
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10,
               "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(spec["initContainers"][0]["imagePullPolicy"], "Always");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/");
    assert_eq!(spec["volumes"][0]["secret"]["defaultMode"], 420);
    assert_eq!(spec["volumes"][1]["emptyDir"], json!({}));
    // The unreachable toleration was there; only not-ready is added.
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists"},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300},
        ])
    );
}

#[test]
fn image_pull_policy_follows_the_tag() {
    let policy = |image: &str| {
        let m = json!({"image": image});
        rules::image_pull_policy(m.as_object().unwrap()).unwrap()
    };
    assert_eq!(policy("nginx"), "Always");
    assert_eq!(policy("nginx:latest"), "Always");
    assert_eq!(policy("registry:5000/nginx"), "Always");
    assert_eq!(policy("registry:5000/nginx:1.2"), "IfNotPresent");
    assert_eq!(policy("nginx@sha256:abc"), "IfNotPresent");
}

#[test]
fn workloads_get_their_defaults_and_template_defaults() {
    let d = defaulted(
        "apps",
        "deployments",
        json!({"spec": {"template": pod_template()}}),
    );
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
    assert!(d["spec"]["template"]["spec"].get("enableServiceLinks").is_none());
    let recreate = defaulted(
        "apps",
        "deployments",
        json!({"spec": {"strategy": {"type": "Recreate"}}}),
    );
    assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
    // `kubectl create deployment` sends `strategy: {}`: the type is still defaulted.
    let empty = defaulted("apps", "deployments", json!({"spec": {"strategy": {}}}));
    assert_eq!(
        empty["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );

    let s = defaulted(
        "apps",
        "statefulsets",
        json!({"spec": {"template": pod_template()}}),
    );
    assert_eq!(s["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        s["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        s["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    let ds = defaulted(
        "apps",
        "daemonsets",
        json!({"spec": {"template": pod_template()}}),
    );
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    for (group, resource) in [("apps", "replicasets"), ("", "replicationcontrollers")] {
        let rs = defaulted(group, resource, json!({"spec": {"template": pod_template()}}));
        assert_eq!(rs["spec"]["replicas"], 1, "{resource}");
        assert_eq!(
            rs["spec"]["template"]["spec"]["schedulerName"],
            "default-scheduler"
        );
    }
    let pt = defaulted("", "podtemplates", json!({"template": pod_template()}));
    assert_eq!(pt["template"]["spec"]["restartPolicy"], "Always");
}

#[test]
fn jobs_and_cron_jobs() {
    let j = defaulted("batch", "jobs", json!({"spec": {"template": pod_template()}}));
    for (field, want) in [
        ("parallelism", json!(1)),
        ("completions", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
        ("podReplacementPolicy", json!("TerminatingOrFailed")),
    ] {
        assert_eq!(j["spec"][field], want, "{field}");
    }
    let parallel = defaulted("batch", "jobs", json!({"spec": {"parallelism": 3}}));
    assert!(parallel["spec"].get("completions").is_none());

    let mut named = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {}}}});
    on_create(&row("batch", "jobs"), &mut named);
    assert_eq!(
        named["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    assert_eq!(named["spec"]["template"]["metadata"]["labels"]["job-name"], "pi");
    assert_eq!(
        named["spec"]["template"]["metadata"]["labels"]["controller-uid"],
        "u-1"
    );

    let cj = defaulted(
        "batch",
        "cronjobs",
        json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": pod_template()}}}}),
    );
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    assert_eq!(cj["spec"]["suspend"], false);
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
}

#[test]
fn services_secrets_and_volumes() {
    let svc = defaulted("", "services", json!({"spec": {"ports": [{"port": 80}]}}));
    assert_eq!(
        svc["spec"],
        json!({"type": "ClusterIP", "sessionAffinity": "None", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
               "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]})
    );
    let np = defaulted(
        "",
        "services",
        json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": 8080}]}}),
    );
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(np["spec"]["ports"][0]["targetPort"], 8080);
    let ext = defaulted(
        "",
        "services",
        json!({"spec": {"type": "ExternalName", "externalName": "x.example"}}),
    );
    assert!(ext["spec"].get("ipFamilies").is_none());

    assert_eq!(defaulted("", "secrets", json!({}))["type"], "Opaque");
    assert_eq!(
        defaulted("", "secrets", json!({"type": "kubernetes.io/tls"}))["type"],
        "kubernetes.io/tls"
    );
    assert_eq!(
        defaulted("", "persistentvolumeclaims", json!({"spec": {}}))["spec"]["volumeMode"],
        "Filesystem"
    );
    let pv = defaulted("", "persistentvolumes", json!({"spec": {}}));
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(
        defaulted("", "configmaps", json!({"data": {}})),
        json!({"data": {}})
    );
}

#[test]
fn generation_only_for_types_with_a_spec() {
    assert!(has_generation(&row("apps", "deployments")));
    assert!(!has_generation(&row("", "configmaps")));
    assert!(!has_generation(&row("", "secrets")));
    assert!(!has_generation(&row("", "serviceaccounts")));
}

fn allocator(cidr: &str) -> ServiceAllocator {
    ServiceAllocator::new(
        Arc::new(storage::mem::MemStorage::new()),
        ServiceRanges {
            cluster_ip_cidr: cidr.into(),
            node_port_min: 30000,
            node_port_max: 30002,
        },
    )
}

fn svc(spec: Value) -> Value {
    json!({"metadata": {"namespace": "default"}, "spec": spec})
}

#[tokio::test]
async fn allocator_hands_out_each_ip_once_and_takes_them_back() {
    let alloc = allocator("10.0.0.0/29"); // usable .1-.6; .1 reserved: 5 dynamic
    let mut held = Vec::new();
    for i in 0..5 {
        let mut s = svc(json!({"ports": [{"port": 80}]}));
        alloc
            .allocate("Service", &format!("s{i}"), &mut s, &Value::Null)
            .await
            .unwrap();
        held.push(s);
    }
    let mut ips: Vec<&str> = held
        .iter()
        .map(|s| s["spec"]["clusterIP"].as_str().unwrap())
        .collect();
    ips.sort_unstable();
    assert_eq!(ips, ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
    let mut full = svc(json!({}));
    let err = alloc
        .allocate("Service", "full", &mut full, &Value::Null)
        .await
        .unwrap_err();
    assert_eq!(err.code(), 422);

    alloc.release_dropped(&held[0], &Value::Null).await;
    let freed = held[0]["spec"]["clusterIP"].clone();
    let mut again = svc(json!({}));
    alloc
        .allocate("Service", "again", &mut again, &Value::Null)
        .await
        .unwrap();
    assert_eq!(again["spec"]["clusterIP"], freed);
}

#[tokio::test]
async fn requested_values_are_honoured_once_and_checked_against_the_range() {
    let alloc = allocator("10.0.0.0/24");
    let mut a =
        svc(json!({"clusterIP": "10.0.0.1", "type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}));
    alloc
        .allocate("Service", "a", &mut a, &Value::Null)
        .await
        .unwrap();
    assert_eq!(a["spec"]["clusterIPs"], json!(["10.0.0.1"]));
    let mut b = svc(json!({"clusterIP": "10.0.0.1"}));
    let err = alloc
        .allocate("Service", "b", &mut b, &Value::Null)
        .await
        .unwrap_err();
    assert!(
        err.message().contains("provided IP is already allocated"),
        "{}",
        err.message()
    );
    let mut c = svc(json!({"clusterIP": "192.168.0.1"}));
    let err = alloc
        .allocate("Service", "c", &mut c, &Value::Null)
        .await
        .unwrap_err();
    assert!(
        err.message().contains("not in the valid range"),
        "{}",
        err.message()
    );
    let mut d = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}));
    let err = alloc
        .allocate("Service", "d", &mut d, &Value::Null)
        .await
        .unwrap_err();
    assert!(
        err.message().contains("provided port is already allocated"),
        "{}",
        err.message()
    );
    // The failed create gave its cluster IP back: 2 dynamic node ports remain.
    let mut e = svc(json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}));
    alloc
        .allocate("Service", "e", &mut e, &Value::Null)
        .await
        .unwrap();
    let mut ports: Vec<u64> = (0..2)
        .map(|i| e["spec"]["ports"][i]["nodePort"].as_u64().unwrap())
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, [30000, 30002]);
    let mut headless = svc(json!({"clusterIP": "None"}));
    alloc
        .allocate("Service", "h", &mut headless, &Value::Null)
        .await
        .unwrap();
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
}

#[test]
fn updates_keep_allocated_values_and_refuse_a_new_ip() {
    let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"],
                              "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30005}]}});
    let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}});
    assert!(alloc::keep_allocated(&old, &mut new).is_none());
    assert_eq!(new["spec"]["clusterIP"], "10.0.0.9");
    assert_eq!(new["spec"]["ports"][0]["nodePort"], 30005);
    let mut to_cluster_ip =
        json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30005}]}});
    assert!(alloc::keep_allocated(&old, &mut to_cluster_ip).is_none());
    assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
    let mut moved = json!({"spec": {"clusterIP": "10.0.0.10"}});
    assert!(alloc::keep_allocated(&old, &mut moved).is_some());
}

#[test]
fn pods_request_their_limits_and_host_network_ports() {
    let pod = defaulted(
        "",
        "pods",
        json!({"spec": {"hostNetwork": true, "containers": [{
            "name": "c", "image": "x:1", "ports": [{"containerPort": 8080}],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
        }]}}),
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(
        c["resources"]["requests"],
        json!({"cpu": "500m", "memory": "1Gi"})
    );
    assert_eq!(c["ports"][0]["hostPort"], 8080);
    // Templates keep limits without requests (SetDefaults_Pod is pod-only).
    let d = defaulted(
        "apps",
        "deployments",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1"}}}]}}}}),
    );
    assert!(
        d["spec"]["template"]["spec"]["containers"][0]["resources"]
            .get("requests")
            .is_none()
    );
    let ep = defaulted("", "endpoints", json!({"subsets": [{"ports": [{"port": 1}]}]}));
    assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
}

#[test]
fn volumes_and_claims_start_pending() {
    for resource in ["persistentvolumes", "persistentvolumeclaims"] {
        let mut obj = json!({"spec": {}});
        apply_status(&row("", resource), &mut obj);
        assert_eq!(obj["status"], json!({"phase": "Pending"}), "{resource}");
    }
    let mut cm = json!({});
    apply_status(&row("", "configmaps"), &mut cm);
    assert_eq!(cm, json!({}));
}

#[test]
fn secret_string_data_is_folded_into_data() {
    let secret = defaulted(
        "",
        "secrets",
        json!({"data": {"a": "b2xk", "keep": "eA=="}, "stringData": {"a": "new", "pw": "s3cr3t"}}),
    );
    assert!(secret.get("stringData").is_none(), "{secret}");
    assert_eq!(
        secret["data"],
        json!({"a": "bmV3", "keep": "eA==", "pw": "czNjcjN0"})
    );
    let only_strings = defaulted("", "secrets", json!({"stringData": {"k": "v"}}));
    assert_eq!(only_strings["data"], json!({"k": "dg=="}));
}
