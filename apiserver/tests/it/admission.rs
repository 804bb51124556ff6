//! LimitRanger and ResourceQuota admission over HTTP: defaults and bounds from LimitRanges,
//! quota counting, refusals in upstream's words and `status.used` bookkeeping.

use serde_json::{Value, json};

use crate::kubectl::KubectlExt;
use crate::support::{TestServer, configmap};

const NS: &str = "/api/v1/namespaces/default";

/// Waits until the watch cache (which admission reads) has seen a write: a list "not older
/// than" its resourceVersion.
async fn settle(s: &TestServer, resource: &str, written: &Value) {
    let rv = written["metadata"]["resourceVersion"].as_str().unwrap();
    let (code, body) = s.get(&format!("{NS}/{resource}?resourceVersion={rv}")).await;
    assert_eq!(code, 200, "{body}");
}

fn pod(name: &str, resources: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "nginx", "resources": resources}]}})
}

#[tokio::test]
async fn limit_ranges_default_and_bound_pods_and_claims() {
    let s = TestServer::new().await;
    let lr = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
        "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2"}, "min": {"cpu": "50m"},
             "default": {"memory": "256Mi"}, "defaultRequest": {"cpu": "100m"}},
            {"type": "Pod", "max": {"memory": "1Gi"}},
            {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]}});
    let (code, created) = s.post(&format!("{NS}/limitranges"), lr).await;
    assert_eq!(code, 201, "{created}");
    // Upstream's LimitRangeItem defaults: default from max, defaultRequest from default and min.
    let item = &created["spec"]["limits"][0];
    assert_eq!(item["default"], json!({"cpu": "2", "memory": "256Mi"}));
    assert_eq!(item["defaultRequest"], json!({"cpu": "100m", "memory": "256Mi"}));
    settle(&s, "limitranges", &created).await;

    let (code, p) = s.post(&format!("{NS}/pods"), pod("plain", json!({}))).await;
    assert_eq!(code, 201, "{p}");
    let res = &p["spec"]["containers"][0]["resources"];
    assert_eq!(res["requests"], json!({"cpu": "100m", "memory": "256Mi"}));
    assert_eq!(res["limits"], json!({"cpu": "2", "memory": "256Mi"}));
    assert_eq!(
        p["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
    );

    let (code, err) = s
        .post(
            &format!("{NS}/pods"),
            pod("big", json!({"limits": {"cpu": "3", "memory": "2Gi"}})),
        )
        .await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(err["reason"], "Forbidden");
    assert_eq!(
        err["message"],
        "pods \"big\" is forbidden: [maximum cpu usage per Container is 2, but limit is 3, maximum memory usage per Pod is 1Gi, but limit is 2Gi]"
    );
    assert_eq!(err["details"]["kind"], "pods");

    let pvc = |name: &str, size: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})
    };
    let (code, body) = s
        .post(&format!("{NS}/persistentvolumeclaims"), pvc("ok", "5Gi"))
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, err) = s
        .post(&format!("{NS}/persistentvolumeclaims"), pvc("huge", "20Gi"))
        .await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(
        err["message"],
        "persistentvolumeclaims \"huge\" is forbidden: maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
    );
    // Updates are defaulted too.
    let patch = json!({"spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]}});
    let (code, _, lr) = s
        .call(
            http::Method::PATCH,
            &format!("{NS}/limitranges/limits"),
            &[("content-type", "application/merge-patch+json")],
            Some(patch),
        )
        .await;
    assert_eq!(code, 200, "{lr}");
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"memory": "1Gi"})
    );
}

#[tokio::test]
async fn resource_quotas_count_refuse_and_record_usage() {
    let s = TestServer::new().await;
    let (_, before) = s.get(&format!("{NS}/configmaps")).await;
    let existing = before["items"].as_array().unwrap().len();
    let (code, _) = s.post(&format!("{NS}/configmaps"), configmap("pre", &[])).await;
    assert_eq!(code, 201);
    let limit = existing + 2;
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"configmaps": limit.to_string(), "pods": "1", "requests.cpu": "1",
                          "limits.cpu": "2", "count/deployments.apps": "0"}}});
    let (code, q) = s.post(&format!("{NS}/resourcequotas"), quota).await;
    assert_eq!(code, 201, "{q}");
    // No quota controller yet: the write mirrors spec.hard and computes what is used.
    assert_eq!(q["status"]["hard"], q["spec"]["hard"]);
    assert_eq!(q["status"]["used"]["configmaps"], (existing + 1).to_string());
    assert_eq!(q["status"]["used"]["pods"], "0");
    assert_eq!(q["status"]["used"]["requests.cpu"], "0");
    settle(&s, "resourcequotas", &q).await;

    let (code, _) = s
        .post(&format!("{NS}/configmaps"), configmap("second", &[]))
        .await;
    assert_eq!(code, 201);
    let (_, q) = s.get(&format!("{NS}/resourcequotas/q")).await;
    assert_eq!(q["status"]["used"]["configmaps"], limit.to_string());

    let (code, err) = s.post(&format!("{NS}/configmaps"), configmap("third", &[])).await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(
        err["message"],
        format!(
            "configmaps \"third\" is forbidden: exceeded quota: q, requested: configmaps=1, used: configmaps={limit}, limited: configmaps={limit}"
        )
    );

    let (code, err) = s.post(&format!("{NS}/pods"), pod("bare", json!({}))).await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(
        err["message"],
        "pods \"bare\" is forbidden: failed quota: q: must specify limits.cpu for: c; requests.cpu for: c"
    );
    let sized = json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}});
    let (code, body) = s.post(&format!("{NS}/pods"), pod("one", sized.clone())).await;
    assert_eq!(code, 201, "{body}");
    let (code, err) = s.post(&format!("{NS}/pods"), pod("two", sized)).await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(
        err["message"],
        "pods \"two\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1"
    );
    let (_, q) = s.get(&format!("{NS}/resourcequotas/q")).await;
    assert_eq!(q["status"]["used"]["pods"], "1");
    assert_eq!(q["status"]["used"]["requests.cpu"], "500m");
    assert_eq!(q["status"]["used"]["limits.cpu"], "1");

    let (code, err) = s
        .post(
            "/apis/apps/v1/namespaces/default/deployments",
            crate::support::deployment("web", "nginx", 1),
        )
        .await;
    assert_eq!(code, 403, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .ends_with("exceeded quota: q, requested: count/deployments.apps=1, used: count/deployments.apps=0, limited: count/deployments.apps=0"),
        "{err}"
    );

    // A dry run is checked but not recorded; raising hard recomputes the status.
    let patch = json!({"spec": {"hard": {"configmaps": (limit + 5).to_string(), "pods": "1", "requests.cpu": "1", "limits.cpu": "2", "count/deployments.apps": "0"}}});
    let (code, _, q) = s
        .call(
            http::Method::PATCH,
            &format!("{NS}/resourcequotas/q"),
            &[("content-type", "application/merge-patch+json")],
            Some(patch),
        )
        .await;
    assert_eq!(code, 200, "{q}");
    assert_eq!(q["status"]["hard"]["configmaps"], (limit + 5).to_string());
    assert_eq!(q["status"]["used"]["configmaps"], limit.to_string());
    assert_eq!(q["status"]["used"]["pods"], "1");
    settle(&s, "resourcequotas", &q).await;
    let (code, _, _) = s
        .call(
            http::Method::POST,
            &format!("{NS}/configmaps?dryRun=All"),
            &[],
            Some(configmap("dry", &[])),
        )
        .await;
    assert_eq!(code, 201);
    let (_, q) = s.get(&format!("{NS}/resourcequotas/q")).await;
    assert_eq!(q["status"]["used"]["configmaps"], limit.to_string());

    // A delete gives usage back (the quota controller's replenishment).
    let (code, _, _) = s
        .call(
            http::Method::DELETE,
            &format!("{NS}/pods/one?gracePeriodSeconds=0"),
            &[],
            None,
        )
        .await;
    assert_eq!(code, 200);
    let (_, q) = s.get(&format!("{NS}/resourcequotas/q")).await;
    assert_eq!(q["status"]["used"]["pods"], "0");
    assert_eq!(q["status"]["used"]["requests.cpu"], "0");
    let sized = json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}});
    let (code, body) = s.post(&format!("{NS}/pods"), pod("two", sized)).await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn updates_of_services_and_claims_are_admitted_too() {
    let s = TestServer::new().await;
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "lb"},
        "spec": {"hard": {"services.loadbalancers": "0", "requests.storage": "8Gi"}}});
    let (code, q) = s.post(&format!("{NS}/resourcequotas"), quota).await;
    assert_eq!(code, 201, "{q}");
    settle(&s, "resourcequotas", &q).await;
    let lr = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "pvc"},
        "spec": {"limits": [{"type": "PersistentVolumeClaim", "max": {"storage": "6Gi"}}]}});
    let (code, lr) = s.post(&format!("{NS}/limitranges"), lr).await;
    assert_eq!(code, 201);
    settle(&s, "limitranges", &lr).await;
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]}});
    let (code, body) = s.post(&format!("{NS}/services"), svc).await;
    assert_eq!(code, 201, "{body}");
    let s = &s;
    let merge = |uri: String, patch: Value| async move {
        let (code, _, body) = s
            .call(
                http::Method::PATCH,
                &uri,
                &[("content-type", "application/merge-patch+json")],
                Some(patch),
            )
            .await;
        (code, body)
    };
    let (code, err) = merge(
        format!("{NS}/services/web"),
        json!({"spec": {"type": "LoadBalancer"}}),
    )
    .await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(
        err["message"],
        "services \"web\" is forbidden: exceeded quota: lb, requested: services.loadbalancers=1, used: services.loadbalancers=0, limited: services.loadbalancers=0"
    );

    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}});
    let (code, body) = s.post(&format!("{NS}/persistentvolumeclaims"), pvc).await;
    assert_eq!(code, 201, "{body}");
    // Only bound claims may grow.
    let (code, body) = merge(
        format!("{NS}/persistentvolumeclaims/data/status"),
        json!({"status": {"phase": "Bound"}}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let grow = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
    let (code, body) = merge(format!("{NS}/persistentvolumeclaims/data"), grow("5Gi")).await;
    assert_eq!(code, 200, "{body}");
    let (_, q) = s.get(&format!("{NS}/resourcequotas/lb")).await;
    assert_eq!(q["status"]["used"]["requests.storage"], "5Gi");
    let (code, err) = merge(format!("{NS}/persistentvolumeclaims/data"), grow("7Gi")).await;
    assert_eq!(code, 403, "{err}");
    assert_eq!(
        err["message"],
        "persistentvolumeclaims \"data\" is forbidden: maximum storage usage per PersistentVolumeClaim is 6Gi, but request is 7Gi"
    );
}

/// Waits (through the API) until the watch cache has seen the named object's current version.
fn settle_with_kubectl(k: &crate::kubectl::Kubectl, ns: &str, resource: &str, name: &str) {
    let rv = k.ok(&[
        "get",
        resource,
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    k.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/{resource}?resourceVersion={rv}"),
    ]);
}

fn kubectl_quota_and_limits(k: &crate::kubectl::Kubectl, dir: &std::path::Path) {
    let ns = format!("admission-v{}", k.minor());
    k.ok(&["create", "namespace", &ns]);
    k.ok(&["create", "quota", "q", "--hard=configmaps=2,pods=1", "-n", &ns]);
    settle_with_kubectl(k, &ns, "resourcequotas", "q");
    k.ok(&["create", "configmap", "c1", "-n", &ns]);
    k.ok(&["create", "configmap", "c2", "-n", &ns]);
    let (ok, _, err) = k.attempt(&["create", "configmap", "c3", "-n", &ns]);
    assert!(!ok, "c3 was created");
    assert!(
        err.contains(
            "configmaps \"c3\" is forbidden: exceeded quota: q, requested: configmaps=1, used: configmaps=2, limited: configmaps=2"
        ),
        "{err}"
    );
    let out = k.ok(&["describe", "quota", "q", "-n", &ns]);
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert!(rows.contains(&vec!["configmaps", "2", "2"]), "{out}");
    assert!(rows.contains(&vec!["pods", "0", "1"]), "{out}");
    k.ok(&["delete", "configmap", "c1", "-n", &ns]);
    k.ok(&["create", "configmap", "c3", "-n", &ns]);

    let lr = dir.join(format!("lr-{}.yaml", k.minor()));
    std::fs::write(
        &lr,
        "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: lr\nspec:\n  limits:\n  - type: Container\n    max: {cpu: \"1\"}\n    defaultRequest: {cpu: 100m}\n",
    )
    .unwrap();
    k.ok(&["apply", "-f", lr.to_str().unwrap(), "-n", &ns]);
    settle_with_kubectl(k, &ns, "limitranges", "lr");
    let (ok, _, err) = k.attempt(&[
        "run",
        "big",
        "--image=nginx",
        "-n",
        &ns,
        "--overrides",
        r#"{"spec":{"containers":[{"name":"big","image":"nginx","resources":{"limits":{"cpu":"2"}}}]}}"#,
    ]);
    assert!(!ok, "big was created");
    assert!(
        err.contains("pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"),
        "{err}"
    );
    k.ok(&["run", "small", "--image=nginx", "-n", &ns]);
    let res = k.ok(&[
        "get",
        "pod",
        "small",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.containers[0].resources}",
    ]);
    let res: Value = serde_json::from_str(&res).unwrap();
    assert_eq!(res, json!({"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_sees_quota_and_limit_range_admission() {
    crate::kubectl::with_each_kubectl("quota and limit ranges", kubectl_quota_and_limits).await;
}

#[tokio::test]
async fn pods_get_default_tolerations_and_a_qos_class_claims_and_volumes_their_defaults() {
    let s = TestServer::new().await;
    let guaranteed =
        json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}});
    let (code, created) = s.post(&format!("{NS}/pods"), pod("g", guaranteed)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"]["qosClass"], "Guaranteed");
    let tolerations = created["spec"]["tolerations"].as_array().unwrap();
    let keys: Vec<(&str, i64)> = tolerations
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap(),
                t["tolerationSeconds"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("node.kubernetes.io/not-ready", 300),
            ("node.kubernetes.io/unreachable", 300)
        ]
    );
    let (_, best_effort) = s.post(&format!("{NS}/pods"), pod("b", json!({}))).await;
    assert_eq!(best_effort["status"]["qosClass"], "BestEffort");

    let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "fast", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "example.com/fast"});
    let (code, class) = s.post("/apis/storage.k8s.io/v1/storageclasses", class).await;
    assert_eq!(code, 201, "{class}");
    let rv = class["metadata"]["resourceVersion"].as_str().unwrap();
    let (code, _) = s
        .get(&format!(
            "/apis/storage.k8s.io/v1/storageclasses?resourceVersion={rv}"
        ))
        .await;
    assert_eq!(code, 200);
    let claim = |name: &str, class: Option<&str>| {
        let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        if let Some(class) = class {
            c["spec"]["storageClassName"] = json!(class);
        }
        c
    };
    let (code, defaulted) = s
        .post(&format!("{NS}/persistentvolumeclaims"), claim("d", None))
        .await;
    assert_eq!(code, 201, "{defaulted}");
    assert_eq!(defaulted["spec"]["storageClassName"], "fast");
    assert_eq!(
        defaulted["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );
    let (_, classless) = s
        .post(&format!("{NS}/persistentvolumeclaims"), claim("n", Some("")))
        .await;
    assert_eq!(classless["spec"]["storageClassName"], "");
    let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/pv1"}}});
    let (code, pv) = s.post("/api/v1/persistentvolumes", pv).await;
    assert_eq!(code, 201, "{pv}");
    assert_eq!(
        pv["metadata"]["finalizers"],
        json!(["kubernetes.io/pv-protection"])
    );
}
