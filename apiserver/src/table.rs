//! Server-side printing: `meta.k8s.io/v1 Table` answers for `kubectl get` (upstream columns for
//! the common kinds, `Name`/`Age` for the rest) and `PartialObjectMetadata(List)` answers.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::descriptor::ResourceDescriptor;

mod more;
mod storage;

/// `includeObject`: what each Table row embeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the query value (default Metadata).
    pub fn parse(v: Option<&str>) -> IncludeObject {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    priority: i32,
    description: &'static str,
}

const fn col(name: &'static str, ty: &'static str, priority: i32, description: &'static str) -> Column {
    Column {
        name,
        ty,
        format: "",
        priority,
        description,
    }
}

const NAME: Column = Column {
    name: "Name",
    ty: "string",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace.",
};
const AGE: Column = col(
    "Age",
    "string",
    0,
    "Time since the object was created (metadata.creationTimestamp).",
);

fn columns(desc: &ResourceDescriptor) -> Vec<Column> {
    match (desc.group.as_str(), desc.resource.as_str()) {
        ("", "pods") => vec![
            NAME,
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted.",
            ),
            AGE,
            col("IP", "string", 1, "IP address allocated to the pod."),
            col("Node", "string", 1, "Name of the Node this pod runs on."),
            col(
                "Nominated Node",
                "string",
                1,
                "Node the scheduler nominated for this pod.",
            ),
            col("Readiness Gates", "string", 1, "Pod readiness gates."),
        ],
        ("apps", "deployments") => vec![
            NAME,
            col(
                "Ready",
                "string",
                0,
                "Number of ready pods over desired replicas.",
            ),
            col(
                "Up-to-date",
                "integer",
                0,
                "Total number of non-terminated pods with the desired template spec.",
            ),
            col("Available", "integer", 0, "Total number of available pods."),
            AGE,
            col(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            col(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            col("Selector", "string", 1, "Label selector for pods."),
        ],
        ("", "services") => vec![
            NAME,
            col("Type", "string", 0, "How the service is exposed."),
            col(
                "Cluster-IP",
                "string",
                0,
                "The IP address of the service inside the cluster.",
            ),
            col(
                "External-IP",
                "string",
                0,
                "External IP addresses of the service.",
            ),
            col("Port(s)", "string", 0, "The ports the service exposes."),
            AGE,
            col("Selector", "string", 1, "Pods the service routes traffic to."),
        ],
        ("", "namespaces") => vec![
            NAME,
            col("Status", "string", 0, "The lifecycle phase of the namespace."),
            AGE,
        ],
        ("", "configmaps") => vec![NAME, col("Data", "integer", 0, "Number of data keys."), AGE],
        ("", "secrets") => vec![
            NAME,
            col("Type", "string", 0, "The type of the secret."),
            col("Data", "integer", 0, "Number of data keys."),
            AGE,
        ],
        ("", "nodes") => vec![
            NAME,
            col("Status", "string", 0, "The readiness of the node."),
            col("Roles", "string", 0, "The roles of the node."),
            AGE,
            col("Version", "string", 0, "Kubelet version reported by the node."),
            col("Internal-IP", "string", 1, "The node's internal IP."),
            col("External-IP", "string", 1, "The node's external IP."),
            col("OS-Image", "string", 1, "OS image reported by the node."),
            col(
                "Kernel-Version",
                "string",
                1,
                "Kernel version reported by the node.",
            ),
            col(
                "Container-Runtime",
                "string",
                1,
                "Container runtime reported by the node.",
            ),
        ],
        _ => more::columns(desc)
            .or_else(|| storage::columns(desc))
            .unwrap_or_else(|| vec![NAME, AGE]),
    }
}

fn s<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(v: String) -> Value {
    Value::String(if v.is_empty() { "<none>".into() } else { v })
}

fn count_keys(obj: &Value, fields: &[&str]) -> usize {
    fields
        .iter()
        .filter_map(|f| obj.get(*f).and_then(Value::as_object))
        .map(|m| m.len())
        .sum()
}

fn pod_status(pod: &Value) -> String {
    if !s(pod, "/metadata/deletionTimestamp").is_empty() {
        return "Terminating".into();
    }
    let mut status = match s(pod, "/status/reason") {
        "" => s(pod, "/status/phase").to_string(),
        r => r.to_string(),
    };
    if let Some(cs) = pod.pointer("/status/containerStatuses").and_then(Value::as_array) {
        for c in cs {
            let waiting = s(c, "/state/waiting/reason");
            let terminated = s(c, "/state/terminated/reason");
            if !waiting.is_empty() {
                status = waiting.to_string();
            } else if !terminated.is_empty() {
                status = terminated.to_string();
            }
        }
    }
    status
}

fn containers_joined(obj: &Value, ptr: &str, field: &str) -> String {
    obj.pointer(ptr)
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| s(c, &format!("/{field}")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn match_labels(sel: Option<&Value>) -> String {
    sel.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn node_address(node: &Value, kind: &str) -> String {
    node.pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| s(x, "/type") == kind))
        .map(|x| s(x, "/address").to_string())
        .unwrap_or_default()
}

fn cells(desc: &ResourceDescriptor, obj: &Value, now: Timestamp) -> Vec<Value> {
    let name = Value::String(s(obj, "/metadata/name").to_string());
    let age = Value::String(age(s(obj, "/metadata/creationTimestamp"), now));
    match (desc.group.as_str(), desc.resource.as_str()) {
        ("", "pods") => {
            let statuses = obj.pointer("/status/containerStatuses").and_then(Value::as_array);
            let ready = statuses.map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let restarts: i64 = statuses.map_or(0, |cs| cs.iter().map(|c| i(c, "/restartCount")).sum());
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(obj)),
                json!(restarts.to_string()),
                age,
                or_none(s(obj, "/status/podIP").to_string()),
                or_none(s(obj, "/spec/nodeName").to_string()),
                or_none(s(obj, "/status/nominatedNodeName").to_string()),
                json!("<none>"),
            ]
        }
        ("apps", "deployments") => vec![
            name,
            json!(format!(
                "{}/{}",
                i(obj, "/status/readyReplicas"),
                i(obj, "/spec/replicas")
            )),
            json!(i(obj, "/status/updatedReplicas")),
            json!(i(obj, "/status/availableReplicas")),
            age,
            json!(containers_joined(obj, "/spec/template/spec/containers", "name")),
            json!(containers_joined(obj, "/spec/template/spec/containers", "image")),
            or_none(match_labels(obj.pointer("/spec/selector/matchLabels"))),
        ],
        ("", "services") => {
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let proto = match s(p, "/protocol") {
                                "" => "TCP",
                                x => x,
                            };
                            match i(p, "/nodePort") {
                                0 => format!("{}/{proto}", i(p, "/port")),
                                np => format!("{}:{np}/{proto}", i(p, "/port")),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let external_ips = obj
                .pointer("/spec/externalIPs")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            let external = more::service_external_ip(obj, external_ips);
            vec![
                name,
                json!(match s(obj, "/spec/type") {
                    "" => "ClusterIP",
                    t => t,
                }),
                or_none(s(obj, "/spec/clusterIP").to_string()),
                or_none(external),
                or_none(ports),
                age,
                or_none(match_labels(obj.pointer("/spec/selector"))),
            ]
        }
        ("", "namespaces") => vec![name, json!(s(obj, "/status/phase")), age],
        ("", "configmaps") => vec![name, json!(count_keys(obj, &["data", "binaryData"])), age],
        ("", "secrets") => vec![
            name,
            json!(s(obj, "/type")),
            json!(count_keys(obj, &["data"])),
            age,
        ],
        ("", "nodes") => {
            let ready = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "Ready"))
                .map(|c| match s(c, "/status") {
                    "True" => "Ready",
                    "False" => "NotReady",
                    _ => "Unknown",
                })
                .unwrap_or("Unknown");
            let mut status = ready.to_string();
            if obj.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<&str> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .filter(|r| !r.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                json!(status),
                or_none(roles.join(",")),
                age,
                json!(s(obj, "/status/nodeInfo/kubeletVersion")),
                or_none(node_address(obj, "InternalIP")),
                or_none(node_address(obj, "ExternalIP")),
                json!(s(obj, "/status/nodeInfo/osImage")),
                json!(s(obj, "/status/nodeInfo/kernelVersion")),
                json!(s(obj, "/status/nodeInfo/containerRuntimeVersion")),
            ]
        }
        _ => more::cells(desc, obj, now, name.clone(), age.clone())
            .or_else(|| storage::cells(desc, obj, name.clone(), age.clone()))
            .unwrap_or_else(|| vec![name, age]),
    }
}

/// Upstream's short human duration (`5s`, `3m2s`, `5h`, `3d4h`, `2y`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if days < 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if years < 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

fn age(created: &str, now: Timestamp) -> String {
    match created.parse::<Timestamp>() {
        Ok(t) => human_duration(now.as_second() - t.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

/// `PartialObjectMetadata` of an object, as `api_version` (`meta.k8s.io/v1` or `/v1beta1`).
pub fn partial_metadata(obj: &Value, api_version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": api_version,
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// `PartialObjectMetadataList` of a list, as `api_version`.
pub fn partial_metadata_list(list: &Value, api_version: &str) -> Value {
    let items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|o| partial_metadata(o, api_version)).collect())
        .unwrap_or_default();
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": api_version,
        "metadata": list.get("metadata").cloned().unwrap_or(json!({})),
        "items": items,
    })
}

/// A Table of one object or of a list (`items`).
pub fn to_table(desc: &ResourceDescriptor, value: &Value, include: IncludeObject) -> Value {
    let now = Timestamp::now();
    let (objects, meta): (Vec<&Value>, Value) = match value.get("items").and_then(Value::as_array) {
        Some(items) => (
            items.iter().collect(),
            value.get("metadata").cloned().unwrap_or(json!({})),
        ),
        None => (
            vec![value],
            json!({"resourceVersion": s(value, "/metadata/resourceVersion")}),
        ),
    };
    let custom = desc
        .hooks
        .as_ref()
        .and_then(|h| h.table_columns().map(|c| (h, c)));
    let defs: Vec<Value> = match &custom {
        Some((_, defs)) => defs.clone(),
        None => columns(desc)
            .iter()
            .map(|c| {
                json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority})
            })
            .collect(),
    };
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|o| {
            let cells = match &custom {
                Some((hooks, _)) => hooks.table_cells(o),
                None => cells(desc, o, now),
            };
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(o, "meta.k8s.io/v1"),
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: &str, resource: &str) -> ResourceDescriptor {
        crate::builtin::rows()
            .into_iter()
            .find(|d| d.group == group && d.resource == resource && d.version == "v1")
            .unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(60 * 30), "30m");
        assert_eq!(human_duration(3600 * 5 + 60 * 2), "5h2m");
        assert_eq!(human_duration(3600 * 20), "20h");
        assert_eq!(human_duration(3600 * 24 * 3 + 3600 * 4), "3d4h");
        assert_eq!(human_duration(3600 * 24 * 400), "400d");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn pod_and_deployment_rows() {
        let pod = json!({"metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "containerStatuses": [{"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1}]}});
        let t = to_table(&row("", "pods"), &pod, IncludeObject::Metadata);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "3");
        assert_eq!(cells[6], "n1");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let list = json!({"metadata": {"resourceVersion": "9"}, "items": [
            {"metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}}},
             "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}]});
        let t = to_table(&row("apps", "deployments"), &list, IncludeObject::None);
        assert_eq!(t["metadata"]["resourceVersion"], "9");
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "2/3", 3, 2, "<unknown>", "nginx", "nginx:1", "app=web"])
        );
        assert!(t["rows"][0].get("object").is_none());
    }
}
