//! What the kubelet publishes about its node, shared by the simulated and (later) the real
//! kubelet: the Node object it registers ([`registration`]), its status ([`status`]) and its
//! heartbeat Lease ([`lease`]).

pub mod lease;
pub mod status;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus, NodeSystemInfo, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// `kubernetes.io/hostname`.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// `kubernetes.io/os`.
pub const LABEL_OS: &str = "kubernetes.io/os";
/// `kubernetes.io/arch`.
pub const LABEL_ARCH: &str = "kubernetes.io/arch";
/// `beta.kubernetes.io/os` (still set by upstream's kubelet).
pub const LABEL_OS_BETA: &str = "beta.kubernetes.io/os";
/// `beta.kubernetes.io/arch` (still set by upstream's kubelet).
pub const LABEL_ARCH_BETA: &str = "beta.kubernetes.io/arch";
/// The annotation with which the kubelet leaves attach/detach to the controller-manager.
pub const ANNOTATION_CONTROLLER_ATTACH: &str = "volumes.kubernetes.io/controller-managed-attach-detach";

/// What is the same for every node this kubelet registers.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTemplate {
    /// Labels beyond the ones the kubelet always sets (`--node-labels`, markers).
    pub labels: BTreeMap<String, String>,
    /// Taints set when the node is registered (`--register-with-taints`).
    pub taints: Vec<Taint>,
    /// `status.capacity`.
    pub capacity: BTreeMap<String, Quantity>,
    /// `status.allocatable`.
    pub allocatable: BTreeMap<String, Quantity>,
    /// The kubelet's port (`status.daemonEndpoints.kubeletEndpoint.Port`).
    pub kubelet_port: i32,
    /// `status.nodeInfo`, except the per-node ids (machine id, system UUID, boot id).
    pub system: NodeSystemInfo,
}

/// The Go name of the architecture this process runs on (`amd64`, `arm64`, ...).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The labels the kubelet always sets on its node: hostname, OS and architecture (also under
/// their beta names, as upstream still does).
pub fn default_labels(name: &str, system: &NodeSystemInfo) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_HOSTNAME.to_string(), name.to_string()),
        (LABEL_OS.to_string(), system.operating_system.clone()),
        (LABEL_ARCH.to_string(), system.architecture.clone()),
        (LABEL_OS_BETA.to_string(), system.operating_system.clone()),
        (LABEL_ARCH_BETA.to_string(), system.architecture.clone()),
    ])
}

/// All labels of the node: the template's, then the kubelet's own (which win).
pub fn labels(name: &str, template: &NodeTemplate) -> BTreeMap<String, String> {
    let mut labels = template.labels.clone();
    labels.extend(default_labels(name, &template.system));
    labels
}

/// The Node to register: name, labels, the attach/detach annotation, taints, and a full status
/// (conditions included, so it is Ready as soon as it exists).
pub fn registration(name: &str, template: &NodeTemplate, status: NodeStatus) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels(name, template)),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_CONTROLLER_ATTACH.to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!template.taints.is_empty()).then(|| template.taints.clone()),
            ..NodeSpec::default()
        }),
        status: Some(status),
    }
}

/// `InternalIP` and `Hostname` addresses.
pub fn addresses(name: &str, ip: std::net::IpAddr) -> Vec<NodeAddress> {
    vec![
        NodeAddress {
            type_: "InternalIP".into(),
            address: ip.to_string(),
        },
        NodeAddress {
            type_: "Hostname".into(),
            address: name.to_string(),
        },
    ]
}

/// Parses `--register-with-taints`: `key[=value]:Effect` items separated by commas.
pub fn parse_taints(s: &str) -> Result<Vec<Taint>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (kv, effect) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("invalid taint spec {item:?}: want key[=value]:Effect"))?;
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(format!(
                "invalid taint effect {effect:?} in {item:?}: want NoSchedule, PreferNoSchedule or NoExecute"
            ));
        }
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv, None),
        };
        if key.is_empty() {
            return Err(format!("invalid taint spec {item:?}: empty key"));
        }
        out.push(Taint {
            key: key.to_string(),
            value: value.filter(|v| !v.is_empty()),
            effect: effect.to_string(),
            time_added: None,
        });
    }
    Ok(out)
}

/// Parses `--node-labels`: `key=value` items separated by commas.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("invalid label {item:?}: want key=value"))?;
        if k.is_empty() {
            return Err(format!("invalid label {item:?}: empty key"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_as_upstream_writes_them() {
        let t = parse_taints("dedicated=gpu:NoSchedule, node.example/spot:PreferNoSchedule").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].key.as_str(), t[0].value.as_deref(), t[0].effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        assert_eq!(
            (t[1].key.as_str(), t[1].value.as_deref()),
            ("node.example/spot", None)
        );
        assert!(parse_taints("a=b").is_err());
        assert!(parse_taints("a=b:Sometimes").is_err());
        assert!(parse_taints("").unwrap().is_empty());
    }

    #[test]
    fn labels_parse_and_kubelet_labels_win() {
        let l = parse_labels("tier=web,zone=a").unwrap();
        assert_eq!(l.get("zone").map(String::as_str), Some("a"));
        assert!(parse_labels("novalue").is_err());
        let template = NodeTemplate {
            labels: BTreeMap::from([(LABEL_HOSTNAME.to_string(), "spoof".to_string())]),
            taints: vec![],
            capacity: BTreeMap::new(),
            allocatable: BTreeMap::new(),
            kubelet_port: 10250,
            system: NodeSystemInfo {
                operating_system: "linux".into(),
                architecture: "amd64".into(),
                ..NodeSystemInfo::default()
            },
        };
        let all = labels("sim-0", &template);
        assert_eq!(all[LABEL_HOSTNAME], "sim-0");
        assert_eq!(all[LABEL_OS], "linux");
        assert_eq!(all[LABEL_ARCH_BETA], "amd64");
    }
}
