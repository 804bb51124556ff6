use serde_json::{Value, json};

use super::*;
use crate::validation::test_support::{lines, pair};

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

/// The errors of `valid()` with `patch` merged into it (top-level keys replaced).
fn with(patch: Value) -> Vec<(String, String)> {
    let mut s = valid();
    for (k, v) in patch.as_object().unwrap() {
        s[k] = v.clone();
    }
    spec_errs(s)
}

#[test]
fn security_contexts_pass_when_well_formed() {
    let mut s = valid();
    s["securityContext"] = json!({
        "runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "runAsNonRoot": true,
        "supplementalGroups": [4000], "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
        "appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-apparmor-example"},
        "sysctls": [{"name": "kernel.shm_rmid_forced", "value": "0"}, {"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}],
        "seLinuxOptions": {"level": "s0:c123,c456"},
        "windowsOptions": {"runAsUserName": "NT AUTHORITY\\SYSTEM"}
    });
    s["containers"][0]["securityContext"] = json!({
        "allowPrivilegeEscalation": false, "runAsUser": 0, "readOnlyRootFilesystem": true,
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
        "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"},
        "procMount": "Default"
    });
    assert_eq!(spec_errs(s), []);
}

#[test]
fn pod_security_context_rules() {
    let errs = with(json!({
        "hostPID": true, "shareProcessNamespace": true, "hostNetwork": true,
        "securityContext": {
            "runAsUser": -1, "fsGroup": 2147483648_i64, "supplementalGroups": [1, -2],
            "fsGroupChangePolicy": "Sometimes",
            "sysctls": [{"name": "net.core.somaxconn"}, {"name": "Bad_Name"}, {"name": "kernel.msgmax"}, {"name": "kernel.msgmax"}],
            "seccompProfile": {"type": "Localhost"},
            "appArmorProfile": {"type": "RuntimeDefault", "localhostProfile": "x"}
        }
    }));
    let range = "must be between 0 and 2147483647, inclusive";
    assert_eq!(
        errs,
        [
            pair(
                "spec.securityContext.fsGroup",
                &format!("Invalid value: 2147483648: {range}")
            ),
            pair(
                "spec.securityContext.runAsUser",
                &format!("Invalid value: -1: {range}")
            ),
            pair(
                "spec.securityContext.supplementalGroups[1]",
                &format!("Invalid value: -2: {range}")
            ),
            pair(
                "spec.securityContext.shareProcessNamespace",
                "Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled"
            ),
            pair(
                "spec.securityContext.sysctls[0].name",
                "Invalid value: \"net.core.somaxconn\": may not be specified when 'hostNetwork' is true"
            ),
            pair(
                "spec.securityContext.sysctls[1].name",
                "Invalid value: \"Bad_Name\": must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$"
            ),
            pair(
                "spec.securityContext.sysctls[3].name",
                "Duplicate value: \"kernel.msgmax\""
            ),
            pair(
                "spec.securityContext.fsGroupChangePolicy",
                "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnRootMismatch\""
            ),
            pair(
                "spec.securityContext.seccompProfile.localhostProfile",
                "Required value: must be set when seccomp type is Localhost"
            ),
            pair(
                "spec.securityContext.appArmorProfile.localhostProfile",
                "Invalid value: \"x\": can only be set when AppArmor type is Localhost"
            ),
        ]
    );
}

#[test]
fn container_security_context_rules() {
    let mut s = valid();
    s["containers"][0]["securityContext"] = json!({
        "allowPrivilegeEscalation": false, "privileged": true, "runAsGroup": -5,
        "procMount": "Unmasked",
        "seccompProfile": {"type": "Custom"},
        "windowsOptions": {"gmsaCredentialSpecName": "Bad", "runAsUserName": "a\\b\\c"},
        "appArmorProfile": {"type": "Localhost", "localhostProfile": " padded"}
    });
    s["initContainers"][0]["securityContext"] =
        json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "/abs/../x"}});
    let errs = spec_errs(s);
    let p = "spec.containers[0].securityContext";
    let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            format!("{p}.runAsGroup"),
            format!("{p}.procMount"),
            format!("{p}.seccompProfile.type"),
            p.to_string(),
            format!("{p}.windowsOptions.gmsaCredentialSpecName"),
            format!("{p}.windowsOptions.runAsUserName"),
            format!("{p}.appArmorProfile.localhostProfile"),
            "spec.initContainers[0].securityContext.seccompProfile.localhostProfile".into(),
            "spec.initContainers[0].securityContext.seccompProfile.localhostProfile".into(),
        ]
    );
    assert_eq!(
        errs[1].1,
        "Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`"
    );
    assert_eq!(
        errs[2].1,
        "Unsupported value: \"Custom\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""
    );
    assert!(
        errs[3]
            .1
            .ends_with(": cannot set `allowPrivilegeEscalation` to false and `privileged` to true")
    );
    assert_eq!(
        errs[5].1,
        "Invalid value: \"a\\\\b\\\\c\": runAsUserName cannot contain more than one backslash"
    );
    assert_eq!(
        errs[6].1,
        "Invalid value: \" padded\": must not be padded with whitespace"
    );
    assert_eq!(errs[7].1, "Invalid value: \"/abs/../x\": must be a relative path");
    assert_eq!(errs[8].1, "Invalid value: \"/abs/../x\": must not contain '..'");
}

#[test]
fn affinity_passes_when_well_formed() {
    let errs = with(json!({"affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["antarctica-east1"]},
                                      {"key": "cores", "operator": "Gt", "values": ["4"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node-1"]}]}
            ]},
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]
        },
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchExpressions": [{"key": "security", "operator": "In", "values": ["S1"]}]}, "topologyKey": "topology.kubernetes.io/zone"}
        ]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "namespaces": ["default"], "topologyKey": "kubernetes.io/hostname"}}
        ]}
    }, "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2, "labelSelector": {"matchLabels": {"app": "web"}}},
        {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "nodeTaintsPolicy": "Honor"}
    ]}));
    assert_eq!(errs, []);
}

#[test]
fn affinity_rules() {
    let errs = with(json!({"affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "a", "operator": "In"}, {"key": "b", "operator": "Exists", "values": ["x"]},
                                      {"key": "c", "operator": "Lt", "values": ["1", "2"]}, {"key": "d", "operator": "Near"}]},
                {"matchFields": [{"key": "spec.nodeName", "operator": "In", "values": ["a", "b"]}]}
            ]},
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 101, "preference": {}}]
        },
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "web"}}}]}
    }}));
    let n = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms";
    assert_eq!(
        errs,
        [
            pair(
                &format!("{n}[0].matchExpressions[0].values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'"
            ),
            pair(
                &format!("{n}[0].matchExpressions[1].values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            ),
            pair(
                &format!("{n}[0].matchExpressions[2].values"),
                "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"
            ),
            pair(
                &format!("{n}[0].matchExpressions[3].operator"),
                "Invalid value: \"Near\": not a valid selector operator"
            ),
            pair(
                &format!("{n}[1].matchFields[0].values"),
                "Required value: must be only one value when `operator` is 'In' or 'NotIn' for node field selector"
            ),
            pair(
                &format!("{n}[1].matchFields[0].key"),
                "Invalid value: \"spec.nodeName\": not a valid field selector key"
            ),
            pair(
                "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
                "Invalid value: 101: must be in the range 1-100"
            ),
            pair(
                "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
                "Required value: can not be empty"
            ),
        ]
    );
    let errs = with(
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}}),
    );
    assert_eq!(
        errs,
        [pair(
            n,
            "Required value: must have at least one node selector term"
        )]
    );
}

#[test]
fn topology_spread_rules() {
    let errs = with(json!({"topologySpreadConstraints": [
        {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "minDomains": 0},
        {"maxSkew": 1, "topologyKey": "", "whenUnsatisfiable": "Maybe", "nodeAffinityPolicy": "Sometimes"},
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ]}));
    let p = "spec.topologySpreadConstraints";
    assert_eq!(
        errs,
        [
            pair(
                &format!("{p}[0].maxSkew"),
                "Invalid value: 0: must be greater than zero"
            ),
            pair(
                &format!("{p}[0].{{topologyKey, whenUnsatisfiable}}"),
                "Duplicate value: \"{zone, ScheduleAnyway}\""
            ),
            pair(
                &format!("{p}[0].minDomains"),
                "Invalid value: 0: must be greater than zero"
            ),
            pair(
                &format!("{p}[0].minDomains"),
                "Invalid value: 0: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway"
            ),
            pair(&format!("{p}[1].topologyKey"), "Required value: can not be empty"),
            pair(
                &format!("{p}[1].whenUnsatisfiable"),
                "Unsupported value: \"Maybe\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\""
            ),
            pair(
                &format!("{p}[1].nodeAffinityPolicy"),
                "Unsupported value: \"Sometimes\": supported values: \"Honor\", \"Ignore\""
            ),
        ]
    );
}

#[test]
fn host_ports_are_unique_and_env_from_is_well_formed() {
    let mut s = valid();
    s["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]);
    s["containers"][0]["envFrom"] = json!([
        {"prefix": "CFG_", "configMapRef": {"name": "cfg"}},
        {"secretRef": {"name": "Bad_Name"}},
        {"prefix": "A=B"},
        {"configMapRef": {"name": ""}, "secretRef": {"name": "s"}}
    ]);
    let mut second = s["containers"][0].clone();
    second["name"] = json!("sidecar");
    second["envFrom"] = json!([]);
    second["volumeMounts"] = json!([]);
    second["ports"] = json!([{"containerPort": 81, "hostPort": 8080, "protocol": "UDP"}, {"containerPort": 82, "hostPort": 8080, "protocol": "TCP"}]);
    s["containers"].as_array_mut().unwrap().push(second);
    let errs = spec_errs(s);
    let p = "spec.containers[0].envFrom";
    assert_eq!(errs[0].0, format!("{p}[1].secretRef.name"));
    assert!(
        errs[0]
            .1
            .starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain")
    );
    assert_eq!(
        errs[1..],
        [
            pair(
                &format!("{p}[2].prefix"),
                "Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"
            ),
            pair(
                p,
                "Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`"
            ),
            pair(&format!("{p}[3].configMapRef.name"), "Required value"),
            pair(
                p,
                "Invalid value: \"\": may not have more than one field specified at a time"
            ),
            pair(
                "spec.containers[1].ports[1].hostPort",
                "Duplicate value: \"TCP//8080\""
            ),
        ]
    );
}

#[test]
fn creates_may_not_set_ephemeral_containers_or_a_gated_node() {
    let mut errs = Errs::default();
    super::create(&json!({"spec": valid()}), &mut errs);
    assert!(errs.0.is_empty());
    let mut s = valid();
    s["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]);
    s["nodeName"] = json!("node-1");
    s["schedulingGates"] = json!([{"name": "example.com/gate"}]);
    super::create(&json!({"spec": s}), &mut errs);
    let got = lines(&errs);
    assert_eq!(
        got,
        [
            "spec.ephemeralContainers: Forbidden: cannot be set on create",
            "spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared",
        ]
    );
}

#[test]
fn os_names() {
    assert_eq!(with(json!({"os": {"name": "linux"}})), []);
    assert_eq!(
        with(json!({"os": {"name": "plan9"}})),
        [pair(
            "spec.os",
            "Unsupported value: \"plan9\": supported values: \"linux\", \"windows\""
        )]
    );
    assert_eq!(
        with(json!({"os": {}})),
        [pair("spec.os.name", "Required value: cannot be empty")]
    );
}

#[test]
fn init_containers_need_restart_policy_always_for_probes_and_hooks() {
    let mut s = valid();
    s["initContainers"] = json!([
        {"name": "sidecar", "image": "proxy", "restartPolicy": "Always",
         "livenessProbe": {"exec": {"command": ["true"]}}, "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}},
        {"name": "setup", "image": "busybox", "startupProbe": {"exec": {"command": ["true"]}},
         "lifecycle": {"postStart": {}}},
        {"name": "other", "image": "busybox", "restartPolicy": "OnFailure"}
    ]);
    s["containers"][0]["restartPolicy"] = json!("Always");
    assert_eq!(
        spec_errs(s),
        [
            pair(
                "spec.containers[0].restartPolicy",
                "Forbidden: may not be set for non-init containers"
            ),
            pair(
                "spec.initContainers[1].lifecycle",
                "Forbidden: may not be set for init containers without restartPolicy=Always"
            ),
            pair(
                "spec.initContainers[1].startupProbe",
                "Forbidden: may not be set for init containers without restartPolicy=Always"
            ),
            pair(
                "spec.initContainers[2].restartPolicy",
                "Unsupported value: \"OnFailure\": supported values: \"Always\""
            ),
        ]
    );
}

#[test]
fn windows_user_names() {
    use super::security::run_as_user_name as check;
    assert!(check("NT AUTHORITY\\SYSTEM").is_empty());
    assert!(check("ContainerUser").is_empty());
    assert!(check("example.com\\svc-web").is_empty());
    assert_eq!(
        check("a\\b\\c"),
        ["runAsUserName cannot contain more than one backslash"]
    );
    assert_eq!(check("dom\\"), ["runAsUserName's User cannot be empty"]);
    assert_eq!(
        check(".. ."),
        ["runAsUserName's User cannot contain only periods or spaces"]
    );
    assert_eq!(
        check("bad:domain\\u@x"),
        [
            "runAsUserName's Domain doesn't match the NetBios nor the DNS format",
            "runAsUserName's User cannot contain the following characters: \"/\\:;|=,+*?<>@[]"
        ]
    );
}

#[test]
fn match_label_keys() {
    let errs = with(json!({
        "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone",
             "matchLabelKeys": ["pod-template-hash", "tier"], "mismatchLabelKeys": ["tier"]},
            {"topologyKey": "zone", "matchLabelKeys": ["pod-template-hash"]}
        ]}},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["pod-template-hash", "app"]},
            {"maxSkew": 1, "topologyKey": "host", "whenUnsatisfiable": "DoNotSchedule", "matchLabelKeys": ["x"]}
        ]
    }));
    let a = "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution";
    let t = "spec.topologySpreadConstraints";
    assert_eq!(
        errs,
        [
            pair(
                &format!("{a}[0].matchLabelKeys[1]"),
                "Invalid value: \"tier\": exists in both matchLabelKeys and mismatchLabelKeys"
            ),
            pair(
                &format!("{a}[1].matchLabelKeys"),
                "Forbidden: must not be specified when labelSelector is not set"
            ),
            pair(
                &format!("{t}[0].matchLabelKeys[1]"),
                "Invalid value: \"app\": exists in both matchLabelKeys and labelSelector"
            ),
            pair(
                &format!("{t}[1].matchLabelKeys"),
                "Forbidden: must not be specified when labelSelector is not set"
            ),
        ]
    );
}

#[test]
fn extended_resources_need_limits_and_huge_pages_need_cpu_or_memory() {
    let mut s = valid();
    s["containers"][0]["resources"] = json!({"requests": {"example.com/gpu": "1", "hugepages-2Mi": "2Mi"}, "limits": {"hugepages-2Mi": "2Mi"}});
    assert_eq!(
        spec_errs(s),
        [
            pair(
                "spec.containers[0].resources.limits",
                "Required value: Limit must be set for non overcommitable resources"
            ),
            pair(
                "spec.containers[0].resources",
                "Forbidden: HugePages require cpu or memory"
            ),
        ]
    );
}

#[test]
fn profile_fields_must_match_legacy_annotations_on_create() {
    let mut s = valid();
    s["securityContext"] = json!({"seccompProfile": {"type": "RuntimeDefault"}, "appArmorProfile": {"type": "Localhost", "localhostProfile": "a"}});
    s["containers"][0]["securityContext"] =
        json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}});
    let pod = |annotations: Value| json!({"metadata": {"annotations": annotations}, "spec": s.clone()});
    let mut errs = Errs::default();
    super::create(
        &pod(json!({
            "seccomp.security.alpha.kubernetes.io/pod": "docker/default",
            "container.seccomp.security.alpha.kubernetes.io/web": "localhost/p.json",
            "container.apparmor.security.beta.kubernetes.io/web": "localhost/a"
        })),
        &mut errs,
    );
    assert!(errs.0.is_empty(), "{:?}", errs.0);
    super::create(
        &pod(json!({
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/web": "localhost/other.json",
            "container.apparmor.security.beta.kubernetes.io/init": "runtime/default"
        })),
        &mut errs,
    );
    let got = lines(&errs);
    assert_eq!(
        got,
        [
            "spec.securityContext.seccompProfile.type: Forbidden: seccomp type in annotation and field must match",
            "spec.containers[0].securityContext.seccompProfile.localhostProfile: Forbidden: seccomp profile in annotation and field must match",
            "spec.initContainers[0].securityContext.appArmorProfile.type: Forbidden: apparmor type in annotation and field must match",
        ]
    );
}
