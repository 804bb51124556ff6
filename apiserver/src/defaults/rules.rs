//! The per-type default rules (values from upstream `pkg/apis/*/v1/defaults.go`).

use serde_json::{Map, Value, json};

use super::Fill::{Derived, Edit, Json};
use super::Rule;

const fn r(at: &'static str, field: &'static str, fill: super::Fill) -> Rule {
    Rule { at, field, fill }
}

/// Defaults of a pod spec (relative to the spec), shared by pods and every pod template.
pub(super) const POD_SPEC: &[Rule] = &[
    r("", "restartPolicy", Json(r#""Always""#)),
    r("", "dnsPolicy", Json(r#""ClusterFirst""#)),
    r("", "schedulerName", Json(r#""default-scheduler""#)),
    r("", "terminationGracePeriodSeconds", Json("30")),
    r("", "securityContext", Json("{}")),
    r("volumes[]", "emptyDir", Derived(empty_dir_when_no_source)),
    r("volumes[].secret", "defaultMode", Json("420")),
    r("volumes[].configMap", "defaultMode", Json("420")),
    r("volumes[].downwardAPI", "defaultMode", Json("420")),
    r("volumes[].projected", "defaultMode", Json("420")),
    r("volumes[].hostPath", "type", Json(r#""""#)),
    r("volumes[].iscsi", "iscsiInterface", Json(r#""default""#)),
    r("volumes[].rbd", "pool", Json(r#""rbd""#)),
    r("volumes[].rbd", "user", Json(r#""admin""#)),
    r("volumes[].rbd", "keyring", Json(r#""/etc/ceph/keyring""#)),
    r("volumes[].azureDisk", "cachingMode", Json(r#""ReadWrite""#)),
    r("volumes[].azureDisk", "kind", Json(r#""Shared""#)),
    r("volumes[].azureDisk", "fsType", Json(r#""ext4""#)),
    r("volumes[].azureDisk", "readOnly", Json("false")),
    r("volumes[].scaleIO", "storageMode", Json(r#""ThinProvisioned""#)),
    r("volumes[].scaleIO", "fsType", Json(r#""xfs""#)),
    r(
        "volumes[].downwardAPI.items[].fieldRef",
        "apiVersion",
        Json(r#""v1""#),
    ),
    r(
        "volumes[].projected.sources[].downwardAPI.items[].fieldRef",
        "apiVersion",
        Json(r#""v1""#),
    ),
    r(
        "volumes[].projected.sources[].serviceAccountToken",
        "expirationSeconds",
        Json("3600"),
    ),
    r(
        "volumes[].ephemeral.volumeClaimTemplate.spec",
        "volumeMode",
        Json(r#""Filesystem""#),
    ),
];

/// Defaults of a container (relative to the container), for containers, init containers and
/// ephemeral containers.
pub(super) const CONTAINER: &[Rule] = &[
    r("", "terminationMessagePath", Json(r#""/dev/termination-log""#)),
    r("", "terminationMessagePolicy", Json(r#""File""#)),
    r("", "imagePullPolicy", Derived(image_pull_policy)),
    r("", "resources", Json("{}")),
    r("ports[]", "protocol", Json(r#""TCP""#)),
    r("env[].valueFrom.fieldRef", "apiVersion", Json(r#""v1""#)),
    r("lifecycle.postStart.httpGet", "path", Json(r#""/""#)),
    r("lifecycle.postStart.httpGet", "scheme", Json(r#""HTTP""#)),
    r("lifecycle.preStop.httpGet", "path", Json(r#""/""#)),
    r("lifecycle.preStop.httpGet", "scheme", Json(r#""HTTP""#)),
];

/// Defaults of a probe (relative to the probe).
pub(super) const PROBE: &[Rule] = &[
    r("", "timeoutSeconds", Json("1")),
    r("", "periodSeconds", Json("10")),
    r("", "successThreshold", Json("1")),
    r("", "failureThreshold", Json("3")),
    r("httpGet", "path", Json(r#""/""#)),
    r("httpGet", "scheme", Json(r#""HTTP""#)),
    r("grpc", "service", Json(r#""""#)),
];

/// Pod-only defaults (not pod templates): `SetDefaults_Pod` and what DefaultTolerationSeconds
/// admission adds (the priority comes from the Priority admission, `admission::priority`).
const POD_ONLY: &[Rule] = &[
    r("spec", "enableServiceLinks", Json("true")),
    r("spec", "tolerations", Json("[]")),
    r("spec", "tolerations", Edit(add_default_tolerations)),
    r(
        "spec.containers[].resources",
        "requests",
        Edit(requests_from_limits),
    ),
    r(
        "spec.initContainers[].resources",
        "requests",
        Edit(requests_from_limits),
    ),
    r("spec", "hostNetwork", Edit(host_network_ports)),
];

const DEPLOYMENT: &[Rule] = &[
    r("spec", "replicas", Json("1")),
    r("spec", "strategy", Json("{}")),
    r("spec.strategy", "type", Json(r#""RollingUpdate""#)),
    r(
        "spec.strategy",
        "rollingUpdate",
        Derived(rolling_update_when_rolling),
    ),
    r("spec.strategy.rollingUpdate", "maxUnavailable", Json(r#""25%""#)),
    r("spec.strategy.rollingUpdate", "maxSurge", Json(r#""25%""#)),
    r("spec", "revisionHistoryLimit", Json("10")),
    r("spec", "progressDeadlineSeconds", Json("600")),
];

const REPLICATED: &[Rule] = &[r("spec", "replicas", Json("1"))];

const STATEFUL_SET: &[Rule] = &[
    r("spec", "replicas", Json("1")),
    r("spec", "podManagementPolicy", Json(r#""OrderedReady""#)),
    r("spec", "updateStrategy", Json("{}")),
    r("spec.updateStrategy", "type", Json(r#""RollingUpdate""#)),
    r(
        "spec.updateStrategy",
        "rollingUpdate",
        Derived(rolling_update_when_rolling),
    ),
    r("spec.updateStrategy.rollingUpdate", "partition", Json("0")),
    r("spec", "revisionHistoryLimit", Json("10")),
    r(
        "spec",
        "persistentVolumeClaimRetentionPolicy",
        Json(r#"{"whenDeleted":"Retain","whenScaled":"Retain"}"#),
    ),
    r(
        "spec.volumeClaimTemplates[].spec",
        "volumeMode",
        Json(r#""Filesystem""#),
    ),
];

const DAEMON_SET: &[Rule] = &[
    r("spec", "updateStrategy", Json("{}")),
    r("spec.updateStrategy", "type", Json(r#""RollingUpdate""#)),
    r(
        "spec.updateStrategy",
        "rollingUpdate",
        Derived(rolling_update_when_rolling),
    ),
    r("spec.updateStrategy.rollingUpdate", "maxUnavailable", Json("1")),
    r("spec.updateStrategy.rollingUpdate", "maxSurge", Json("0")),
    r("spec", "revisionHistoryLimit", Json("10")),
];

const JOB: &[Rule] = &[
    r("spec", "completions", Derived(job_completions)),
    r("spec", "parallelism", Json("1")),
    r("spec", "backoffLimit", Derived(job_backoff_limit)),
    r("spec", "completionMode", Json(r#""NonIndexed""#)),
    r("spec", "suspend", Json("false")),
    r("spec", "podReplacementPolicy", Derived(job_pod_replacement)),
];

const CRON_JOB: &[Rule] = &[
    r("spec", "concurrencyPolicy", Json(r#""Allow""#)),
    r("spec", "suspend", Json("false")),
    r("spec", "successfulJobsHistoryLimit", Json("3")),
    r("spec", "failedJobsHistoryLimit", Json("1")),
];

const SERVICE: &[Rule] = &[
    r("spec", "type", Json(r#""ClusterIP""#)),
    r("spec", "sessionAffinity", Json(r#""None""#)),
    r("spec", "sessionAffinityConfig", Derived(session_affinity_config)),
    r("spec.ports[]", "protocol", Json(r#""TCP""#)),
    r(
        "spec.ports[]",
        "targetPort",
        Derived(|port| port.get("port").cloned()),
    ),
    r("spec", "externalTrafficPolicy", Derived(external_traffic_policy)),
    r(
        "spec",
        "internalTrafficPolicy",
        Derived(|s| not_external(s).then(|| json!("Cluster"))),
    ),
    r(
        "spec",
        "ipFamilyPolicy",
        Derived(|s| not_external(s).then(|| json!("SingleStack"))),
    ),
    r(
        "spec",
        "ipFamilies",
        Derived(|s| not_external(s).then(|| json!(["IPv4"]))),
    ),
    r(
        "spec",
        "allocateLoadBalancerNodePorts",
        Derived(load_balancer_node_ports),
    ),
];

const ENDPOINTS: &[Rule] = &[r("subsets[].ports[]", "protocol", Json(r#""TCP""#))];

const SECRET: &[Rule] = &[r("", "type", Json(r#""Opaque""#))];

const PVC: &[Rule] = &[r("spec", "volumeMode", Json(r#""Filesystem""#))];

const PV: &[Rule] = &[
    r("spec", "persistentVolumeReclaimPolicy", Json(r#""Retain""#)),
    r("spec", "volumeMode", Json(r#""Filesystem""#)),
];

/// Status defaults (upstream defaults `status.phase` on every decode, so it shows even after a
/// strategy resets the status on create).
const PHASE_PENDING: &[Rule] = &[
    r("", "status", Json("{}")),
    r("status", "phase", Json(r#""Pending""#)),
];

/// Defaults of a LimitRange (upstream `SetDefaults_LimitRangeItem`).
const LIMIT_RANGE: &[Rule] = &[r(
    "spec.limits[]",
    "defaultRequest",
    Edit(crate::admission::limit_range::default_item),
)];

/// The status rule groups of a resource.
pub(super) fn status_for_resource(group: &str, resource: &str) -> &'static [Rule] {
    match (group, resource) {
        ("", "persistentvolumes" | "persistentvolumeclaims") => PHASE_PENDING,
        _ => &[],
    }
}

/// Where pod templates live in each workload, with the type's own rules.
fn workload(group: &str, resource: &str) -> Option<(&'static [Rule], &'static str)> {
    Some(match (group, resource) {
        ("", "pods") => (POD_ONLY, "spec"),
        ("", "podtemplates") => (&[], "template.spec"),
        ("", "replicationcontrollers") => (REPLICATED, "spec.template.spec"),
        ("apps", "replicasets") => (REPLICATED, "spec.template.spec"),
        ("apps", "deployments") => (DEPLOYMENT, "spec.template.spec"),
        ("apps", "statefulsets") => (STATEFUL_SET, "spec.template.spec"),
        ("apps", "daemonsets") => (DAEMON_SET, "spec.template.spec"),
        ("batch", "jobs") => (JOB, "spec.template.spec"),
        ("batch", "cronjobs") => (CRON_JOB, "spec.jobTemplate.spec.template.spec"),
        _ => return None,
    })
}

/// The rule groups of a resource, each with the path it applies below.
pub(super) fn for_resource(group: &str, resource: &str) -> Vec<(&'static str, &'static [Rule])> {
    if let Some((own, pod_spec)) = workload(group, resource) {
        let mut out = vec![("", own), (pod_spec, POD_SPEC)];
        for containers in CONTAINER_LISTS {
            out.push((container_path(pod_spec, containers), CONTAINER));
            for probe in PROBES {
                out.push((probe_path(pod_spec, containers, probe), PROBE));
            }
        }
        return out;
    }
    match (group, resource) {
        ("", "services") => vec![("", SERVICE)],
        ("", "secrets") => vec![("", SECRET)],
        ("", "endpoints") => vec![("", ENDPOINTS)],
        ("", "persistentvolumeclaims") => vec![("", PVC)],
        ("", "persistentvolumes") => vec![("", PV)],
        ("", "limitranges") => vec![("", LIMIT_RANGE)],
        _ => Vec::new(),
    }
}

const CONTAINER_LISTS: [&str; 3] = ["containers[]", "initContainers[]", "ephemeralContainers[]"];
const PROBES: [&str; 3] = ["livenessProbe", "readinessProbe", "startupProbe"];

/// Interned `prefix.containers[]` paths (the table is static; the few combinations are leaked
/// once).
fn container_path(pod_spec: &'static str, containers: &'static str) -> &'static str {
    intern(format!("{pod_spec}.{containers}"))
}

fn probe_path(pod_spec: &'static str, containers: &'static str, probe: &'static str) -> &'static str {
    intern(format!("{pod_spec}.{containers}.{probe}"))
}

fn intern(s: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{LazyLock, Mutex};
    static SEEN: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);
    let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = seen.get(s.as_str()) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    seen.insert(leaked);
    leaked
}

fn empty_dir_when_no_source(volume: &Map<String, Value>) -> Option<Value> {
    let has_source = crate::validation::pod::VOLUME_SOURCES
        .iter()
        .any(|s| volume.contains_key(*s));
    (!has_source).then(|| json!({}))
}

/// `Always` for `:latest` or untagged images (digests count as tagged), else `IfNotPresent`.
pub(super) fn image_pull_policy(container: &Map<String, Value>) -> Option<Value> {
    let image = container.get("image").and_then(Value::as_str).unwrap_or("");
    let name = image.rsplit('/').next().unwrap_or(image);
    let tagged_not_latest = image.contains('@')
        || name
            .split_once(':')
            .is_some_and(|(_, tag)| !tag.is_empty() && tag != "latest");
    Some(json!(if tagged_not_latest {
        "IfNotPresent"
    } else {
        "Always"
    }))
}

fn is_rolling_update(strategy: &Map<String, Value>) -> bool {
    strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
}

fn rolling_update_when_rolling(strategy: &Map<String, Value>) -> Option<Value> {
    is_rolling_update(strategy).then(|| json!({}))
}

fn job_completions(spec: &Map<String, Value>) -> Option<Value> {
    (!spec.contains_key("parallelism") || spec["parallelism"].is_null()).then(|| json!(1))
}

fn job_backoff_limit(spec: &Map<String, Value>) -> Option<Value> {
    Some(
        if spec.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null()) {
            json!(i32::MAX)
        } else {
            json!(6)
        },
    )
}

fn job_pod_replacement(spec: &Map<String, Value>) -> Option<Value> {
    Some(if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
        json!("Failed")
    } else {
        json!("TerminatingOrFailed")
    })
}

fn service_type(spec: &Map<String, Value>) -> &str {
    spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP")
}

fn session_affinity_config(spec: &Map<String, Value>) -> Option<Value> {
    (spec.get("sessionAffinity").and_then(Value::as_str) == Some("ClientIP"))
        .then(|| json!({"clientIP": {"timeoutSeconds": 10800}}))
}

fn external_traffic_policy(spec: &Map<String, Value>) -> Option<Value> {
    matches!(service_type(spec), "NodePort" | "LoadBalancer").then(|| json!("Cluster"))
}

fn load_balancer_node_ports(spec: &Map<String, Value>) -> Option<Value> {
    (service_type(spec) == "LoadBalancer").then_some(json!(true))
}

fn not_external(spec: &Map<String, Value>) -> bool {
    service_type(spec) != "ExternalName"
}

const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// DefaultTolerationSeconds: pods tolerate not-ready/unreachable nodes for 300 s unless they
/// already tolerate them.
fn add_default_tolerations(spec: &mut Map<String, Value>) {
    let Some(tolerations) = spec.get_mut("tolerations").and_then(Value::as_array_mut) else {
        return;
    };
    for key in [NOT_READY_TAINT, UNREACHABLE_TAINT] {
        let tolerated = tolerations.iter().any(|t| {
            let t_key = t.get("key").and_then(Value::as_str).unwrap_or("");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let any_key = t.get("operator").and_then(Value::as_str) == Some("Exists") && t_key.is_empty();
            (t_key == key || any_key) && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            tolerations.push(json!({
                "key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300
            }));
        }
    }
}

/// A pod's containers request what they limit unless they say otherwise.
fn requests_from_limits(resources: &mut Map<String, Value>) {
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let requests = resources.entry("requests").or_insert_with(|| json!({}));
    if let Some(requests) = requests.as_object_mut() {
        for (name, quantity) in limits {
            requests.entry(name).or_insert(quantity);
        }
    }
}

/// With host networking, container ports default their host port to the container port.
fn host_network_ports(spec: &mut Map<String, Value>) {
    if spec.get("hostNetwork").and_then(Value::as_bool) != Some(true) {
        return;
    }
    for list in ["containers", "initContainers"] {
        let containers = spec.get_mut(list).and_then(Value::as_array_mut);
        for container in containers.into_iter().flatten() {
            let ports = container.get_mut("ports").and_then(Value::as_array_mut);
            for port in ports.into_iter().flatten().filter_map(Value::as_object_mut) {
                let unset = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0;
                if unset && let Some(cp) = port.get("containerPort").cloned() {
                    port.insert("hostPort".into(), cp);
                }
            }
        }
    }
}

/// Upstream's job strategy: unless `manualSelector`, label the template with the Job's uid and
/// name and select on the uid.
pub(super) fn generate_job_selector(obj: &mut Value) {
    if obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if let Some(template) = template.as_object_mut() {
        let meta = template.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                for (key, value) in [
                    ("controller-uid", &uid),
                    ("batch.kubernetes.io/controller-uid", &uid),
                    ("job-name", &name),
                    ("batch.kubernetes.io/job-name", &name),
                ] {
                    labels.entry(key).or_insert_with(|| value.clone());
                }
            }
        }
    }
    if spec.get("selector").is_none_or(Value::is_null) {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
    }
}
