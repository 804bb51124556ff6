//! Field selectors' field sets, as one table: the field labels each built-in kind accepts
//! (upstream's field label conversion functions, `pkg/apis/<group>/<version>/conversion.go`)
//! and where each label's value comes from (upstream's `GetAttrs`/`ToSelectableFields` in
//! `pkg/registry/...`). Upstream reads a typed object, so a field the object does not set reads
//! as its Go zero value: `""` for strings, `"false"` for bools, `"0"` for integers. A Node
//! without `spec.unschedulable` therefore matches `spec.unschedulable=false`.

use serde_json::Value;

/// Where a selectable field's value comes from in the object's JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    /// A string (or other scalar) at a dotted path; `""` when absent.
    Text(String),
    /// A bool at a dotted path; `"false"` when absent.
    Bool(String),
    /// An integer at a dotted path; `"0"` when absent.
    Int(String),
    /// The first of these paths that holds a non-empty value; `""` when none does.
    FirstOf(Vec<String>),
    /// A label upstream accepts but does not put in its field set: always `""`.
    Unset,
}

impl FieldValue {
    /// The value as upstream's field set renders it.
    pub fn read(&self, obj: &Value) -> String {
        match self {
            FieldValue::Text(path) => lookup(obj, path).map(render).unwrap_or_default(),
            FieldValue::Bool(path) => lookup(obj, path).map(render).unwrap_or_else(|| "false".into()),
            FieldValue::Int(path) => lookup(obj, path).map(render).unwrap_or_else(|| "0".into()),
            FieldValue::FirstOf(paths) => paths
                .iter()
                .filter_map(|p| lookup(obj, p).map(render))
                .find(|v| !v.is_empty())
                .unwrap_or_default(),
            FieldValue::Unset => String::new(),
        }
    }
}

/// The value at a dotted path (numeric segments index arrays); None when absent or null.
fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for part in path.split('.') {
        cur = match cur {
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => cur.get(part)?,
        };
    }
    (!cur.is_null()).then_some(cur)
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// How a kind refuses a field label it does not support (the text of upstream's conversion
/// function's error, which the API answers as the 400's message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Upstream's default for kinds without a conversion function:
    /// `"x" is not a known field selector: only "metadata.name", "metadata.namespace"`.
    Default,
    /// `field label not supported: x` (core/v1 and certificates.k8s.io kinds).
    NotSupported,
    /// `field label "x" not supported for batchv1.Job`.
    NotSupportedForBatchJob,
    /// `field label not supported for <group>/<version>, Kind=<kind>: x` (resource.k8s.io).
    NotSupportedForGvk,
}

impl Refusal {
    /// The message for `label` on the kind `group`/`version`/`kind`.
    pub fn message(self, label: &str, group: &str, version: &str, kind: &str) -> String {
        match self {
            Refusal::Default => format!(
                "\"{label}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            ),
            Refusal::NotSupported => format!("field label not supported: {label}"),
            Refusal::NotSupportedForBatchJob => {
                format!("field label \"{label}\" not supported for batchv1.Job")
            }
            Refusal::NotSupportedForGvk => {
                format!("field label not supported for {group}/{version}, Kind={kind}: {label}")
            }
        }
    }
}

/// The field selectors one kind supports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSet {
    /// Every accepted label (metadata ones included) with where its value comes from.
    pub fields: Vec<(String, FieldValue)>,
    /// How other labels are refused.
    pub refusal: Refusal,
}

impl Default for FieldSet {
    /// Upstream's default: `metadata.name` and `metadata.namespace` for every kind (a
    /// cluster-scoped object's namespace reads as `""`).
    fn default() -> Self {
        FieldSet {
            fields: vec![
                ("metadata.name".into(), FieldValue::Text("metadata.name".into())),
                (
                    "metadata.namespace".into(),
                    FieldValue::Text("metadata.namespace".into()),
                ),
            ],
            refusal: Refusal::Default,
        }
    }
}

impl FieldSet {
    /// The default set plus a custom resource's selectable fields (dotted paths; an absent
    /// field reads as `""`, as upstream's JSONPath evaluation leaves it out of the set).
    pub fn with_custom(paths: impl IntoIterator<Item = String>) -> FieldSet {
        let mut set = FieldSet::default();
        for p in paths {
            set.fields.push((p.clone(), FieldValue::Text(p)));
        }
        set
    }

    /// Where `label`'s value comes from, or None when the kind does not support it.
    pub fn source(&self, label: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|(l, _)| l == label).map(|(_, v)| v)
    }

    /// The set of a built-in kind: its row of [`BUILTIN`], else the default.
    pub fn builtin(group: &str, kind: &str) -> FieldSet {
        let Some(row) = BUILTIN.iter().find(|r| r.group == group && r.kind == kind) else {
            return FieldSet::default();
        };
        let mut fields = vec![(
            "metadata.name".to_string(),
            FieldValue::Text("metadata.name".into()),
        )];
        if row.namespace_label {
            fields.push((
                "metadata.namespace".into(),
                FieldValue::Text("metadata.namespace".into()),
            ));
        }
        for (label, source) in row.fields {
            let value = match source {
                Source::Text(p) => FieldValue::Text(p.to_string()),
                Source::Bool(p) => FieldValue::Bool(p.to_string()),
                Source::Int(p) => FieldValue::Int(p.to_string()),
                Source::FirstOf(ps) => FieldValue::FirstOf(ps.iter().map(|p| p.to_string()).collect()),
                Source::Unset => FieldValue::Unset,
            };
            fields.push((label.to_string(), value));
        }
        FieldSet {
            fields,
            refusal: row.refusal,
        }
    }
}

/// A row's field source (the static form of [`FieldValue`]).
enum Source {
    Text(&'static str),
    Bool(&'static str),
    Int(&'static str),
    FirstOf(&'static [&'static str]),
    Unset,
}

/// A kind with its own conversion function upstream.
struct Row {
    group: &'static str,
    kind: &'static str,
    /// Whether `metadata.namespace` is among the accepted labels.
    namespace_label: bool,
    refusal: Refusal,
    /// Labels beyond the metadata ones.
    fields: &'static [(&'static str, Source)],
}

use Source::{Bool, FirstOf, Int, Text, Unset};

const CORE_EVENT: &[(&str, Source)] = &[
    ("involvedObject.kind", Text("involvedObject.kind")),
    ("involvedObject.namespace", Text("involvedObject.namespace")),
    ("involvedObject.name", Text("involvedObject.name")),
    ("involvedObject.uid", Text("involvedObject.uid")),
    ("involvedObject.apiVersion", Text("involvedObject.apiVersion")),
    (
        "involvedObject.resourceVersion",
        Text("involvedObject.resourceVersion"),
    ),
    ("involvedObject.fieldPath", Text("involvedObject.fieldPath")),
    ("reason", Text("reason")),
    ("reportingComponent", Text("reportingComponent")),
    ("source", FirstOf(&["source.component", "reportingComponent"])),
    ("type", Text("type")),
];

const RESOURCE_SLICE: &[(&str, Source)] = &[
    ("spec.nodeName", Text("spec.nodeName")),
    ("spec.driver", Text("spec.driver")),
];

/// Every built-in kind whose field selectors differ from the default.
const BUILTIN: &[Row] = &[
    Row {
        group: "",
        kind: "Pod",
        namespace_label: true,
        refusal: Refusal::NotSupported,
        fields: &[
            ("spec.nodeName", Text("spec.nodeName")),
            ("spec.restartPolicy", Text("spec.restartPolicy")),
            ("spec.schedulerName", Text("spec.schedulerName")),
            ("spec.serviceAccountName", Text("spec.serviceAccountName")),
            ("spec.hostNetwork", Bool("spec.hostNetwork")),
            ("status.phase", Text("status.phase")),
            // Upstream reads the first of `podIPs`, which its conversion fills from `podIP`.
            ("status.podIP", FirstOf(&["status.podIPs.0.ip", "status.podIP"])),
            ("status.podIPs", Unset),
            ("status.nominatedNodeName", Text("status.nominatedNodeName")),
            // Old v1 clients' name for spec.nodeName.
            ("spec.host", Text("spec.nodeName")),
        ],
    },
    Row {
        group: "",
        kind: "Node",
        namespace_label: false,
        refusal: Refusal::NotSupported,
        fields: &[("spec.unschedulable", Bool("spec.unschedulable"))],
    },
    Row {
        group: "",
        kind: "ReplicationController",
        namespace_label: true,
        refusal: Refusal::NotSupported,
        fields: &[("status.replicas", Int("status.replicas"))],
    },
    Row {
        group: "",
        kind: "Event",
        namespace_label: true,
        refusal: Refusal::NotSupported,
        fields: CORE_EVENT,
    },
    Row {
        group: "events.k8s.io",
        kind: "Event",
        namespace_label: true,
        refusal: Refusal::NotSupported,
        // Stored as core Events (see `registry::event_versions`): selected on the core form.
        fields: CORE_EVENT,
    },
    Row {
        group: "",
        kind: "Namespace",
        namespace_label: false,
        refusal: Refusal::NotSupported,
        fields: &[("status.phase", Text("status.phase"))],
    },
    Row {
        group: "",
        kind: "Secret",
        namespace_label: true,
        refusal: Refusal::NotSupported,
        fields: &[("type", Text("type"))],
    },
    Row {
        group: "",
        kind: "Service",
        namespace_label: true,
        refusal: Refusal::NotSupported,
        fields: &[
            ("spec.clusterIP", Text("spec.clusterIP")),
            ("spec.type", Text("spec.type")),
        ],
    },
    Row {
        group: "batch",
        kind: "Job",
        namespace_label: true,
        refusal: Refusal::NotSupportedForBatchJob,
        fields: &[("status.successful", Int("status.succeeded"))],
    },
    Row {
        group: "certificates.k8s.io",
        kind: "CertificateSigningRequest",
        namespace_label: false,
        refusal: Refusal::NotSupported,
        fields: &[("spec.signerName", Text("spec.signerName"))],
    },
    Row {
        group: "certificates.k8s.io",
        kind: "ClusterTrustBundle",
        namespace_label: false,
        refusal: Refusal::NotSupported,
        fields: &[("spec.signerName", Text("spec.signerName"))],
    },
    Row {
        group: "certificates.k8s.io",
        kind: "PodCertificateRequest",
        namespace_label: false,
        refusal: Refusal::NotSupported,
        fields: &[
            ("spec.signerName", Text("spec.signerName")),
            ("spec.podName", Text("spec.podName")),
            ("spec.nodeName", Text("spec.nodeName")),
        ],
    },
    Row {
        group: "resource.k8s.io",
        kind: "ResourceSlice",
        namespace_label: false,
        refusal: Refusal::NotSupportedForGvk,
        fields: RESOURCE_SLICE,
    },
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(group: &str, kind: &str, label: &str, obj: &Value) -> String {
        let set = FieldSet::builtin(group, kind);
        set.source(label)
            .unwrap_or_else(|| panic!("{kind} lacks {label}"))
            .read(obj)
    }

    #[test]
    fn absent_fields_read_as_go_zero_values() {
        let empty = json!({"metadata": {"name": "x"}});
        let zeros = [
            ("", "Pod", "spec.nodeName", ""),
            ("", "Pod", "spec.restartPolicy", ""),
            ("", "Pod", "spec.schedulerName", ""),
            ("", "Pod", "spec.serviceAccountName", ""),
            ("", "Pod", "spec.hostNetwork", "false"),
            ("", "Pod", "status.phase", ""),
            ("", "Pod", "status.podIP", ""),
            ("", "Pod", "status.podIPs", ""),
            ("", "Pod", "status.nominatedNodeName", ""),
            ("", "Pod", "metadata.namespace", ""),
            ("", "Node", "spec.unschedulable", "false"),
            ("", "ReplicationController", "status.replicas", "0"),
            ("", "Event", "source", ""),
            ("", "Event", "involvedObject.kind", ""),
            ("events.k8s.io", "Event", "reportingComponent", ""),
            ("", "Namespace", "status.phase", ""),
            ("", "Secret", "type", ""),
            ("", "Service", "spec.type", ""),
            ("batch", "Job", "status.successful", "0"),
            (
                "certificates.k8s.io",
                "CertificateSigningRequest",
                "spec.signerName",
                "",
            ),
            ("resource.k8s.io", "ResourceSlice", "spec.nodeName", ""),
            ("", "ConfigMap", "metadata.namespace", ""),
        ];
        for (group, kind, label, zero) in zeros {
            assert_eq!(read(group, kind, label, &empty), zero, "{kind} {label}");
        }
    }

    #[test]
    fn set_fields_render_as_upstream() {
        let node = json!({"spec": {"unschedulable": true}});
        assert_eq!(read("", "Node", "spec.unschedulable", &node), "true");
        let pod = json!({"spec": {"hostNetwork": true, "nodeName": "n1"},
            "status": {"podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}});
        assert_eq!(read("", "Pod", "spec.hostNetwork", &pod), "true");
        assert_eq!(read("", "Pod", "status.podIP", &pod), "10.0.0.1");
        assert_eq!(read("", "Pod", "spec.host", &pod), "n1");
        // A pod written with only the singular field still selects by it.
        let legacy = json!({"status": {"podIP": "10.0.0.9"}});
        assert_eq!(read("", "Pod", "status.podIP", &legacy), "10.0.0.9");
        let job = json!({"status": {"succeeded": 3}});
        assert_eq!(read("batch", "Job", "status.successful", &job), "3");
        let rc = json!({"status": {"replicas": 2}});
        assert_eq!(read("", "ReplicationController", "status.replicas", &rc), "2");
        let ev = json!({"source": {}, "reportingComponent": "kubelet"});
        assert_eq!(read("", "Event", "source", &ev), "kubelet");
        let ev = json!({"source": {"component": "scheduler"}, "reportingComponent": "kubelet"});
        assert_eq!(read("", "Event", "source", &ev), "scheduler");
        let ev = json!({"involvedObject": {"kind": "Pod"}, "reportingComponent": "kubelet"});
        assert_eq!(read("events.k8s.io", "Event", "involvedObject.kind", &ev), "Pod");
        assert_eq!(read("events.k8s.io", "Event", "source", &ev), "kubelet");
    }

    #[test]
    fn accepted_labels_and_refusals() {
        let node = FieldSet::builtin("", "Node");
        assert!(node.source("metadata.namespace").is_none());
        assert_eq!(
            node.refusal.message("spec.x", "", "v1", "Node"),
            "field label not supported: spec.x"
        );
        let cm = FieldSet::builtin("", "ConfigMap");
        assert!(cm.source("metadata.namespace").is_some() && cm.source("data").is_none());
        assert_eq!(
            cm.refusal.message("spec.x", "", "v1", "ConfigMap"),
            r#""spec.x" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        // Cluster-scoped kinds without their own conversion accept a namespace (never matching
        // anything but "").
        assert!(
            FieldSet::builtin("rbac.authorization.k8s.io", "ClusterRole")
                .source("metadata.namespace")
                .is_some()
        );
        let slice = FieldSet::builtin("resource.k8s.io", "ResourceSlice");
        assert_eq!(
            slice
                .refusal
                .message("spec.pool", "resource.k8s.io", "v1", "ResourceSlice"),
            "field label not supported for resource.k8s.io/v1, Kind=ResourceSlice: spec.pool"
        );
        assert_eq!(
            FieldSet::builtin("batch", "Job")
                .refusal
                .message("spec.x", "batch", "v1", "Job"),
            r#"field label "spec.x" not supported for batchv1.Job"#
        );
        let pcr = FieldSet::builtin("certificates.k8s.io", "PodCertificateRequest");
        assert!(pcr.source("metadata.namespace").is_none() && pcr.source("spec.podName").is_some());
    }

    #[test]
    fn every_row_names_a_served_kind() {
        let rows = crate::builtin::rows();
        for row in BUILTIN {
            let served: Vec<_> = rows
                .iter()
                .filter(|d| d.group == row.group && d.kind == row.kind)
                .collect();
            assert!(
                !served.is_empty(),
                "{}/{} is not a built-in kind",
                row.group,
                row.kind
            );
            assert!(
                served
                    .iter()
                    .all(|d| d.selectable_fields == FieldSet::builtin(row.group, row.kind)),
                "{}/{}",
                row.group,
                row.kind
            );
        }
    }
}
