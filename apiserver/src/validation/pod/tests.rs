use serde_json::{Value, json};

use super::*;

fn spec_errs(spec: Value) -> Vec<(String, String)> {
    let mut errs = Errs::default();
    super::spec(&spec, "spec", &mut errs);
    errs.0.into_iter().map(|e| (e.field, e.message)).collect()
}

fn valid() -> Value {
    json!({
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 30,
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}],
        "containers": [{
            "name": "web", "image": "nginx", "imagePullPolicy": "Always",
            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
            "env": [{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "1Gi", "example.com/gpu": "2"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/cfg"}]
        }],
        "initContainers": [{"name": "init", "image": "busybox"}],
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
    })
}

#[test]
fn a_valid_spec_passes() {
    assert_eq!(spec_errs(valid()), []);
}

#[test]
fn containers_are_required_and_named_uniquely() {
    let mut s = valid();
    s["containers"] = json!([]);
    assert_eq!(
        spec_errs(s),
        [("spec.containers".into(), "Required value".into())]
    );
    let mut s = valid();
    s["initContainers"] = json!([{"name": "web", "image": "x"}, {"name": "Bad_Name"}]);
    let errs = spec_errs(s);
    assert_eq!(
        errs[0],
        (
            "spec.initContainers[0].name".into(),
            "Duplicate value: \"web\"".into()
        )
    );
    assert_eq!(errs[1].0, "spec.initContainers[1].name");
    assert!(
        errs[1]
            .1
            .starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 label")
    );
    assert_eq!(
        errs[2],
        ("spec.initContainers[1].image".into(), "Required value".into())
    );
}

#[test]
fn ports_env_and_policies() {
    let mut s = valid();
    s["containers"][0]["ports"] = json!([
        {"name": "http", "containerPort": 70000, "protocol": "TCP"},
        {"name": "http", "containerPort": 81, "protocol": "ICMP"}
    ]);
    s["containers"][0]["env"] =
        json!([{"name": "A=B"}, {"name": "X", "value": "v", "valueFrom": {"fieldRef": {}}}]);
    s["restartPolicy"] = json!("Sometimes");
    s["terminationGracePeriodSeconds"] = json!(-1);
    let errs = spec_errs(s);
    let expected: Vec<(String, String)> = [
        ("spec.containers[0].ports[0].containerPort", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
        ("spec.containers[0].ports[1].name", "Duplicate value: \"http\""),
        ("spec.containers[0].ports[1].protocol", "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
        ("spec.containers[0].env[0].name", "Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"),
        ("spec.containers[0].env[1].valueFrom", "Invalid value: \"\": may not be specified when `value` is not empty"),
        ("spec.restartPolicy", "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""),
        ("spec.terminationGracePeriodSeconds", "Invalid value: -1: must be greater than or equal to 0"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(errs, expected);
}

#[test]
fn resources() {
    let mut s = valid();
    s["containers"][0]["resources"] = json!({
        "requests": {"cpu": "2", "memory": "-1", "example.com/gpu": "1", "bogus": "1"},
        "limits": {"cpu": "500m", "example.com/gpu": "2", "memory": "lots"}
    });
    let errs = spec_errs(s);
    let fields: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
    assert!(
        errs.contains(&(
            "spec.containers[0].resources.requests".into(),
            "Invalid value: \"2\": must be less than or equal to cpu limit of 500m".into()
        )),
        "{errs:?}"
    );
    assert!(errs.contains(&(
        "spec.containers[0].resources.requests[memory]".into(),
        "Invalid value: \"-1\": must be greater than or equal to 0".into()
    )));
    assert!(errs.contains(&(
        "spec.containers[0].resources.requests".into(),
        "Invalid value: \"1\": must be equal to example.com/gpu limit of 2".into()
    )));
    assert!(errs.contains(&(
        "spec.containers[0].resources.requests[bogus]".into(),
        "Invalid value: \"bogus\": must be a standard resource for containers".into()
    )));
    assert!(fields.contains(&"spec.containers[0].resources.limits[memory]"));
    // Values are shown in their canonical form.
    let mut s = valid();
    s["containers"][0]["resources"] = json!({"requests": {"memory": "2048Mi", "cpu": "1500m"}, "limits": {"memory": "1Gi", "cpu": "1000m"}});
    let mut errs = spec_errs(s);
    errs.sort();
    assert_eq!(
        errs,
        [
            (
                "spec.containers[0].resources.requests".to_string(),
                "Invalid value: \"1500m\": must be less than or equal to cpu limit of 1".to_string()
            ),
            (
                "spec.containers[0].resources.requests".to_string(),
                "Invalid value: \"2Gi\": must be less than or equal to memory limit of 1Gi".to_string()
            ),
        ]
    );
}

#[test]
fn volumes_and_mounts() {
    let mut s = valid();
    s["volumes"] = json!([
        {"name": "data", "emptyDir": {}, "hostPath": {"path": "/x"}},
        {"name": "data", "secret": {}},
        {"name": "none"}
    ]);
    s["containers"][0]["volumeMounts"] = json!([
        {"name": "data", "mountPath": "/a"}, {"name": "missing", "mountPath": "/a"}
    ]);
    let errs = spec_errs(s);
    let expected: Vec<(String, String)> = [
        (
            "spec.volumes[0].emptyDir",
            "Forbidden: may not specify more than 1 volume type",
        ),
        ("spec.volumes[1].name", "Duplicate value: \"data\""),
        ("spec.volumes[1].secret.secretName", "Required value"),
        ("spec.volumes[2]", "Required value: must specify a volume type"),
        (
            "spec.containers[0].volumeMounts[1].name",
            "Not found: \"missing\"",
        ),
        (
            "spec.containers[0].volumeMounts[1].mountPath",
            "Invalid value: \"/a\": must be unique",
        ),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(errs, expected);
}

#[test]
fn pod_updates_change_only_images_and_deadlines() {
    let old = json!({"spec": valid()});
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:2");
    new["spec"]["tolerations"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "k", "operator": "Exists"}));
    let mut errs = Errs::default();
    update(&new, &old, &mut errs);
    assert!(errs.0.is_empty(), "{:?}", errs.0);
    new["spec"]["restartPolicy"] = json!("Never");
    update(&new, &old, &mut errs);
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].field, "spec");
    assert!(
        errs.0[0].message.starts_with(
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
        )
    );
    let mut errs = Errs::default();
    let mut fewer = old.clone();
    fewer["spec"]["tolerations"] = json!([]);
    update(&fewer, &old, &mut errs);
    assert_eq!(errs.0[0].field, "spec.tolerations[0]");
}

#[test]
fn probes_and_lifecycle_handlers() {
    let mut s = valid();
    s["containers"][0]["livenessProbe"] = json!({"httpGet": {"path": "/", "port": "http", "scheme": "HTTP"},
        "periodSeconds": 10, "successThreshold": 1});
    s["containers"][0]["readinessProbe"] = json!({"tcpSocket": {"port": 80}, "successThreshold": 3});
    s["containers"][0]["lifecycle"] = json!({"preStop": {"sleep": {"seconds": 5}}});
    assert_eq!(spec_errs(s.clone()), []);
    s["containers"][0]["livenessProbe"] = json!({"successThreshold": 2, "periodSeconds": -1});
    s["containers"][0]["readinessProbe"] = json!({"exec": {"command": []}, "tcpSocket": {"port": 0}});
    s["containers"][0]["startupProbe"] = json!({"httpGet": {"port": 70000}});
    let errs = spec_errs(s);
    let expected: Vec<(String, String)> = [
        (
            "spec.containers[0].livenessProbe",
            "Required value: must specify a handler type",
        ),
        (
            "spec.containers[0].livenessProbe.periodSeconds",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "spec.containers[0].livenessProbe.successThreshold",
            "Invalid value: 2: must be 1",
        ),
        ("spec.containers[0].readinessProbe.exec.command", "Required value"),
        (
            "spec.containers[0].readinessProbe.tcpSocket",
            "Forbidden: may not specify more than 1 handler type",
        ),
        (
            "spec.containers[0].startupProbe.httpGet.port",
            "Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(errs, expected);
}
