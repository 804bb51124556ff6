//! Upstream's table columns for the rest of the common built-in types (RBAC, batch, networking,
//! policy, scheduling, quota, the other workloads, leases): column definitions and row cells,
//! as kube-apiserver's printers define them.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{AGE, Column, NAME, age, col, containers_joined, i, match_labels, or_none, s};
use crate::descriptor::ResourceDescriptor;

const CONTAINERS: Column = col(
    "Containers",
    "string",
    1,
    "Names of each container in the template.",
);
const IMAGES: Column = col(
    "Images",
    "string",
    1,
    "Images referenced by each container in the template.",
);
const SELECTOR: Column = col("Selector", "string", 1, "Label selector for pods.");
const CREATED_AT: Column = col("Created At", "date", 0, "Time the object was created.");

/// A certificate request's state as `kubectl get csr` shows it: Denied, Approved or Pending, then
/// `,Failed` and `,Issued` when so.
fn csr_condition(obj: &Value) -> String {
    let has = |ty: &str| {
        obj.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.get("type").and_then(Value::as_str) == Some(ty))
            })
    };
    let mut out = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        out.push_str(",Failed");
    }
    if !s(obj, "/status/certificate").is_empty() {
        out.push_str(",Issued");
    }
    out
}

/// The columns of `desc`, when this module knows the type.
pub(super) fn columns(desc: &ResourceDescriptor) -> Option<Vec<Column>> {
    Some(match (desc.group.as_str(), desc.resource.as_str()) {
        ("", "serviceaccounts") => vec![NAME, col("Secrets", "string", 0, "Number of secrets."), AGE],
        ("", "componentstatuses") => vec![
            NAME,
            col("Status", "string", 0, "Status of the component conditions"),
            col("Message", "string", 0, "Message of the component conditions"),
            col("Error", "string", 0, "Error of the component conditions"),
        ],
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => vec![NAME, CREATED_AT],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            NAME,
            col("Role", "string", 0, "The role the binding refers to."),
            AGE,
            col("Users", "string", 1, "Users in the binding."),
            col("Groups", "string", 1, "Groups in the binding."),
            col("ServiceAccounts", "string", 1, "Service accounts in the binding."),
        ],
        ("batch", "cronjobs") => vec![
            NAME,
            col("Schedule", "string", 0, "The schedule in Cron format."),
            col("Timezone", "string", 0, "The time zone of the schedule."),
            col("Suspend", "boolean", 0, "Whether subsequent runs are suspended."),
            col("Active", "integer", 0, "Number of running jobs."),
            col("Last Schedule", "string", 0, "When a job was last scheduled."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        ("batch", "jobs") => vec![
            NAME,
            col("Status", "string", 0, "Status of the job."),
            col(
                "Completions",
                "string",
                0,
                "Succeeded pods of the wanted completions.",
            ),
            col("Duration", "string", 0, "Time required to complete the job."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        ("networking.k8s.io", "ingresses") => vec![
            NAME,
            col("Class", "string", 0, "The IngressClass of the ingress."),
            col("Hosts", "string", 0, "Hosts the ingress rules match."),
            col("Address", "string", 0, "Ingress points of the load balancer."),
            col("Ports", "string", 0, "Ports of TLS configurations that open."),
            AGE,
        ],
        ("policy", "poddisruptionbudgets") => vec![
            NAME,
            col(
                "Min Available",
                "string",
                0,
                "The minimum number of pods that must be available.",
            ),
            col(
                "Max Unavailable",
                "string",
                0,
                "The maximum number of pods that may be unavailable.",
            ),
            col(
                "Allowed Disruptions",
                "integer",
                0,
                "Pods that may be disrupted now.",
            ),
            AGE,
        ],
        ("scheduling.k8s.io", "priorityclasses") => vec![
            NAME,
            col("Value", "integer", 0, "The priority value."),
            col(
                "Global-Default",
                "boolean",
                0,
                "Whether this is the default priority.",
            ),
            AGE,
            col("PreemptionPolicy", "string", 1, "The preemption policy."),
        ],
        ("", "resourcequotas") => vec![
            NAME,
            AGE,
            col("Request", "string", 0, "Used and hard request quotas."),
            col("Limit", "string", 0, "Used and hard limit quotas."),
        ],
        ("apps", "replicasets") | ("", "replicationcontrollers") => vec![
            NAME,
            col("Desired", "integer", 0, "Wanted replicas."),
            col("Current", "integer", 0, "Observed replicas."),
            col("Ready", "integer", 0, "Ready replicas."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        ("apps", "statefulsets") => vec![
            NAME,
            col("Ready", "string", 0, "Ready pods of the wanted replicas."),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        ("apps", "daemonsets") => vec![
            NAME,
            col("Desired", "integer", 0, "Nodes that should run the pod."),
            col("Current", "integer", 0, "Nodes running the pod."),
            col("Ready", "integer", 0, "Nodes with a ready pod."),
            col("Up-to-date", "integer", 0, "Nodes running the updated pod."),
            col("Available", "integer", 0, "Nodes with an available pod."),
            col("Node Selector", "string", 0, "The pod template's node selector."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        ("coordination.k8s.io", "leases") => {
            vec![NAME, col("Holder", "string", 0, "The holder of the lease."), AGE]
        }
        ("certificates.k8s.io", "certificatesigningrequests") => vec![
            NAME,
            AGE,
            col("SignerName", "string", 0, "The signer the request is for."),
            col("Requestor", "string", 0, "The user who created the request."),
            col(
                "RequestedDuration",
                "string",
                0,
                "The validity the request asks for.",
            ),
            col(
                "Condition",
                "string",
                0,
                "Approved, Denied or Pending; Failed and Issued when so.",
            ),
        ],
        ("", "events") => vec![
            col("Last Seen", "string", 0, "When the event was last seen."),
            col("Type", "string", 0, "Type of the event (Normal or Warning)."),
            col("Reason", "string", 0, "Why the event happened."),
            col("Object", "string", 0, "The object the event is about."),
            col(
                "Subobject",
                "string",
                1,
                "The part of the object the event is about.",
            ),
            col("Source", "string", 1, "The component reporting the event."),
            col("Message", "string", 0, "A human-readable description."),
            col("First Seen", "string", 1, "When the event was first seen."),
            col("Count", "string", 1, "How often the event happened."),
            Column { priority: 1, ..NAME },
        ],
        ("", "endpoints") => vec![
            NAME,
            col("Endpoints", "string", 0, "Addresses and ports of the endpoints."),
            AGE,
        ],
        _ => return None,
    })
}

fn int_or_string(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => json!(s),
        Some(Value::Number(n)) => json!(n.to_string()),
        _ => json!("N/A"),
    }
}

/// `users, groups, service accounts` of a binding, each joined with ", ".
fn subjects(obj: &Value) -> [String; 3] {
    let mut out: [Vec<String>; 3] = Default::default();
    for subj in obj
        .pointer("/subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s(subj, "/name").to_string();
        match s(subj, "/kind") {
            "User" => out[0].push(name),
            "Group" => out[1].push(name),
            "ServiceAccount" => out[2].push(match s(subj, "/namespace") {
                "" => name,
                ns => format!("{ns}/{name}"),
            }),
            _ => {}
        }
    }
    out.map(|v| v.join(", "))
}

fn has_condition(obj: &Value, ty: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == ty && s(c, "/status") == "True")
        })
}

fn job_status(obj: &Value) -> &'static str {
    if has_condition(obj, "Complete") {
        "Complete"
    } else if has_condition(obj, "Failed") {
        "Failed"
    } else if !s(obj, "/metadata/deletionTimestamp").is_empty() {
        "Terminating"
    } else if has_condition(obj, "Suspended") {
        "Suspended"
    } else if has_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

fn job_completions(obj: &Value) -> String {
    let succeeded = i(obj, "/status/succeeded");
    match obj.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match i(obj, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

fn job_duration(obj: &Value, now: Timestamp) -> String {
    let parse = |ptr: &str| s(obj, ptr).parse::<Timestamp>().ok();
    match (parse("/status/startTime"), parse("/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), end) => super::human_duration(end.unwrap_or(now).as_second() - start.as_second()),
    }
}

fn ingress_hosts(obj: &Value) -> String {
    let rules: Vec<&Value> = obj
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut hosts = Vec::new();
    let mut more = false;
    for rule in &rules {
        if hosts.len() == 3 {
            more = true;
        }
        if !more && !s(rule, "/host").is_empty() {
            hosts.push(s(rule, "/host"));
        }
    }
    if hosts.is_empty() {
        return "*".into();
    }
    let joined = hosts.join(",");
    if more {
        format!("{joined} + {} more...", rules.len() - 3)
    } else {
        joined
    }
}

fn load_balancer_address(obj: &Value) -> String {
    let mut addrs: Vec<&str> = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|x| {
            if s(x, "/ip").is_empty() {
                s(x, "/hostname")
            } else {
                s(x, "/ip")
            }
        })
        .filter(|a| !a.is_empty())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs.join(",")
}

fn quota_columns(obj: &Value) -> (String, String) {
    let hard = obj.pointer("/status/hard").and_then(Value::as_object);
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    let mut names: Vec<&String> = hard.map(|h| h.keys().collect()).unwrap_or_default();
    names.sort();
    for name in names {
        let used = obj
            .pointer("/status/used")
            .and_then(|u| u.get(name.as_str()))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let limit = hard
            .and_then(|h| h.get(name.as_str()))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let cell = format!("{name}: {used}/{limit}");
        if name.starts_with("limits.") {
            limits.push(cell)
        } else {
            requests.push(cell)
        }
    }
    (requests.join(", "), limits.join(", "))
}

/// The External-IP cell of a service: by type, as upstream prints it (before `<none>` filling).
pub(super) fn service_external_ip(obj: &Value, external_ips: String) -> String {
    match s(obj, "/spec/type") {
        "LoadBalancer" => {
            let lb = load_balancer_address(obj);
            match (lb.is_empty(), external_ips.is_empty()) {
                (true, true) => "<pending>".into(),
                (false, true) => lb,
                (true, false) => external_ips,
                (false, false) => format!("{lb},{external_ips}"),
            }
        }
        "ExternalName" => s(obj, "/spec/externalName").to_string(),
        _ => external_ips,
    }
}

fn since(t: &str, now: Timestamp) -> String {
    if t.is_empty() {
        "<unknown>".into()
    } else {
        age(t, now)
    }
}

fn event_cells(obj: &Value, now: Timestamp, name: Value) -> Vec<Value> {
    let first = match s(obj, "/firstTimestamp") {
        "" => since(s(obj, "/eventTime"), now),
        t => since(t, now),
    };
    let mut last = match s(obj, "/lastTimestamp") {
        "" => first.clone(),
        t => since(t, now),
    };
    let mut count = i(obj, "/count");
    if obj.pointer("/series").is_some_and(Value::is_object) {
        last = since(s(obj, "/series/lastObservedTime"), now);
        count = i(obj, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = s(obj, "/involvedObject/kind").to_lowercase();
    let target = match s(obj, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = match s(obj, "/source/component") {
        "" => s(obj, "/reportingComponent"),
        c => c,
    };
    let host = match s(obj, "/source/host") {
        "" => s(obj, "/reportingInstance"),
        h => h,
    };
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(s(obj, "/type")),
        json!(s(obj, "/reason")),
        json!(target),
        json!(s(obj, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(obj, "/message").trim()),
        json!(first),
        json!(count),
        name,
    ]
}

/// Up to three `ip:port` pairs of an Endpoints object, then `+ N more...`; `<none>` when empty.
fn endpoints(obj: &Value) -> String {
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for subset in obj
        .pointer("/subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let addrs: Vec<&str> = subset
            .pointer("/addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| s(a, "/ip"))
            .collect();
        let ports: Vec<i64> = subset
            .pointer("/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| i(p, "/port"))
            .collect();
        let pairs: Vec<String> = if ports.is_empty() {
            addrs.iter().map(|a| a.to_string()).collect()
        } else {
            ports
                .iter()
                .flat_map(|p| {
                    addrs.iter().map(move |a| {
                        if a.contains(':') {
                            format!("[{a}]:{p}")
                        } else {
                            format!("{a}:{p}")
                        }
                    })
                })
                .collect()
        };
        for pair in pairs {
            if list.len() < MAX {
                list.push(pair);
            }
            count += 1;
        }
    }
    match (list.is_empty(), count > MAX) {
        (true, _) => "<none>".into(),
        (false, true) => format!("{} + {} more...", list.join(","), count - MAX),
        (false, false) => list.join(","),
    }
}

fn selector(obj: &Value) -> Value {
    or_none(match_labels(obj.pointer("/spec/selector/matchLabels")))
}

/// The row cells of `obj`, when this module knows the type (`name` and `age` precomputed).
pub(super) fn cells(
    desc: &ResourceDescriptor,
    obj: &Value,
    now: Timestamp,
    name: Value,
    age_cell: Value,
) -> Option<Vec<Value>> {
    let pod = "/spec/template/spec/containers";
    Some(match (desc.group.as_str(), desc.resource.as_str()) {
        ("", "componentstatuses") => {
            let healthy = obj
                .pointer("/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Healthy"));
            let status = match healthy {
                Some(c) if c["status"] == "True" => "Healthy",
                Some(_) => "Unhealthy",
                None => "Unknown",
            };
            let field = |f: &str| json!(healthy.and_then(|c| c[f].as_str()).unwrap_or(""));
            vec![name, json!(status), field("message"), field("error")]
        }
        ("", "serviceaccounts") => {
            let secrets = obj
                .pointer("/secrets")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![name, json!(secrets), age_cell]
        }
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => {
            vec![name, json!(s(obj, "/metadata/creationTimestamp"))]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            let [users, groups, sas] = subjects(obj);
            vec![
                name,
                json!(format!("{}/{}", s(obj, "/roleRef/kind"), s(obj, "/roleRef/name"))),
                age_cell,
                json!(users),
                json!(groups),
                json!(sas),
            ]
        }
        ("batch", "cronjobs") => {
            let last = match s(obj, "/status/lastScheduleTime") {
                "" => "<none>".to_string(),
                t => age(t, now),
            };
            let tz = match s(obj, "/spec/timeZone") {
                "" => "<none>",
                t => t,
            };
            let suspend = obj
                .pointer("/spec/suspend")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let active = obj
                .pointer("/status/active")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let tpl = "/spec/jobTemplate/spec/template/spec/containers";
            vec![
                name,
                json!(s(obj, "/spec/schedule")),
                json!(tz),
                json!(if suspend { "True" } else { "False" }),
                json!(active),
                json!(last),
                age_cell,
                json!(containers_joined(obj, tpl, "name")),
                json!(containers_joined(obj, tpl, "image")),
                or_none(match_labels(
                    obj.pointer("/spec/jobTemplate/spec/selector/matchLabels"),
                )),
            ]
        }
        ("batch", "jobs") => vec![
            name,
            json!(job_status(obj)),
            json!(job_completions(obj)),
            json!(job_duration(obj, now)),
            age_cell,
            json!(containers_joined(obj, pod, "name")),
            json!(containers_joined(obj, pod, "image")),
            selector(obj),
        ],
        ("networking.k8s.io", "ingresses") => {
            let class = match s(obj, "/spec/ingressClassName") {
                "" => "<none>",
                c => c,
            };
            let tls = obj
                .pointer("/spec/tls")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty());
            vec![
                name,
                json!(class),
                json!(ingress_hosts(obj)),
                json!(load_balancer_address(obj)),
                json!(if tls { "80, 443" } else { "80" }),
                age_cell,
            ]
        }
        ("policy", "poddisruptionbudgets") => vec![
            name,
            int_or_string(obj.pointer("/spec/minAvailable")),
            int_or_string(obj.pointer("/spec/maxUnavailable")),
            json!(i(obj, "/status/disruptionsAllowed")),
            age_cell,
        ],
        ("scheduling.k8s.io", "priorityclasses") => vec![
            name,
            json!(i(obj, "/value")),
            json!(
                obj.pointer("/globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age_cell,
            json!(s(obj, "/preemptionPolicy")),
        ],
        ("", "resourcequotas") => {
            let (requests, limits) = quota_columns(obj);
            vec![name, age_cell, json!(requests), json!(limits)]
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => {
            let sel = if desc.group.is_empty() {
                or_none(match_labels(obj.pointer("/spec/selector")))
            } else {
                selector(obj)
            };
            vec![
                name,
                json!(i(obj, "/spec/replicas")),
                json!(i(obj, "/status/replicas")),
                json!(i(obj, "/status/readyReplicas")),
                age_cell,
                json!(containers_joined(obj, pod, "name")),
                json!(containers_joined(obj, pod, "image")),
                sel,
            ]
        }
        ("apps", "statefulsets") => vec![
            name,
            json!(format!(
                "{}/{}",
                i(obj, "/status/readyReplicas"),
                i(obj, "/spec/replicas")
            )),
            age_cell,
            json!(containers_joined(obj, pod, "name")),
            json!(containers_joined(obj, pod, "image")),
        ],
        ("apps", "daemonsets") => vec![
            name,
            json!(i(obj, "/status/desiredNumberScheduled")),
            json!(i(obj, "/status/currentNumberScheduled")),
            json!(i(obj, "/status/numberReady")),
            json!(i(obj, "/status/updatedNumberScheduled")),
            json!(i(obj, "/status/numberAvailable")),
            or_none(match_labels(obj.pointer("/spec/template/spec/nodeSelector"))),
            age_cell,
            json!(containers_joined(obj, pod, "name")),
            json!(containers_joined(obj, pod, "image")),
            selector(obj),
        ],
        ("coordination.k8s.io", "leases") => vec![name, json!(s(obj, "/spec/holderIdentity")), age_cell],
        ("certificates.k8s.io", "certificatesigningrequests") => vec![
            name,
            age_cell,
            json!(s(obj, "/spec/signerName")),
            json!(s(obj, "/spec/username")),
            obj.pointer("/spec/expirationSeconds")
                .and_then(Value::as_i64)
                .map_or(json!("<none>"), |secs| json!(super::human_duration(secs))),
            json!(csr_condition(obj)),
        ],
        ("", "events") => event_cells(obj, now, name),
        ("", "endpoints") => vec![name, json!(endpoints(obj)), age_cell],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_completions_and_status() {
        let job = json!({"spec": {"completions": 3}, "status": {"succeeded": 1}});
        assert_eq!(job_completions(&job), "1/3");
        assert_eq!(job_completions(&json!({"spec": {"parallelism": 2}})), "0/1 of 2");
        assert_eq!(job_status(&job), "Running");
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(job_status(&done), "Complete");
    }

    #[test]
    fn binding_subjects_and_quota_cells() {
        let rb = json!({"subjects": [
            {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
            {"kind": "ServiceAccount", "name": "robot", "namespace": "ns"}]});
        assert_eq!(
            subjects(&rb),
            ["alice, bob".to_string(), String::new(), "ns/robot".into()]
        );
        let q = json!({"status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"},
            "used": {"pods": "3"}}});
        assert_eq!(
            quota_columns(&q),
            (
                "pods: 3/10, requests.cpu: 0/1".to_string(),
                "limits.cpu: 0/2".to_string()
            )
        );
    }

    #[test]
    fn every_row_has_a_cell_per_column() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        for desc in crate::builtin::rows() {
            let obj = json!({"metadata": {"name": "x"}});
            let cells = cells(&desc, &obj, now, json!("x"), json!("1s"));
            assert_eq!(
                cells.map(|c| c.len()),
                columns(&desc).map(|c| c.len()),
                "{}",
                desc.resource
            );
        }
    }

    #[test]
    fn endpoints_and_events() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
            "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(endpoints(&ep), "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...");
        assert_eq!(endpoints(&json!({})), "<none>");
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let ev = json!({"type": "Normal", "reason": "Scheduled", "message": "done ",
            "involvedObject": {"kind": "Pod", "name": "p"}, "source": {"component": "scheduler"},
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:05:00Z", "count": 2});
        assert_eq!(
            event_cells(&ev, now, json!("e1")),
            [
                json!("5m"),
                json!("Normal"),
                json!("Scheduled"),
                json!("pod/p"),
                json!(""),
                json!("scheduler"),
                json!("done"),
                json!("10m"),
                json!(2),
                json!("e1")
            ]
        );
    }

    #[test]
    fn ingress_hosts_are_capped() {
        let rules: Vec<Value> = (0..5).map(|n| json!({"host": format!("h{n}")})).collect();
        assert_eq!(
            ingress_hosts(&json!({"spec": {"rules": rules}})),
            "h0,h1,h2 + 2 more..."
        );
        assert_eq!(ingress_hosts(&json!({"spec": {"rules": [{}]}})), "*");
    }
}
