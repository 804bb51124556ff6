//! The cluster as one scheduling cycle sees it (upstream's `NodeInfo` snapshot): each node with
//! its allocatable resources, labels, taints and the pods assigned to it, with the per-pod facts
//! the plugins need computed once. [`Snapshot::assume`] and [`Snapshot::forget`] update it pod by
//! pod, so a scheduler keeps one snapshot and moves it along with its informers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, PodAffinityTerm, Taint, Toleration};

use crate::resource::{self, Resource};
use crate::selector::Selector;
use crate::volumes::Volumes;

/// A host port a container asks for (defaults applied: protocol `TCP`, IP `0.0.0.0`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host IP (`0.0.0.0` for every address).
    pub ip: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port.
    pub port: i32,
}

const ANY_IP: &str = "0.0.0.0";

impl HostPort {
    /// True when `self` and `other` cannot both be bound on one node: same protocol and port,
    /// and the same IP or either is `0.0.0.0`.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == ANY_IP || other.ip == ANY_IP)
    }
}

/// A pod (anti-)affinity term with its selectors converted (upstream's `AffinityTerm`).
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Pods the term selects.
    pub selector: Selector,
    /// Namespaces named by the term (the pod's own when neither these nor a namespace selector
    /// are given).
    pub namespaces: BTreeSet<String>,
    /// Namespaces selected by labels (nothing when unset).
    pub namespace_selector: Selector,
    /// The node label defining the topology domain.
    pub topology_key: String,
}

impl AffinityTerm {
    fn new(owner_namespace: &str, term: &PodAffinityTerm) -> AffinityTerm {
        let mut namespaces: BTreeSet<String> = term.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.insert(owner_namespace.to_string());
        }
        AffinityTerm {
            selector: Selector::from_label_selector(term.label_selector.as_ref()),
            namespaces,
            namespace_selector: Selector::from_label_selector(term.namespace_selector.as_ref()),
            topology_key: term.topology_key.clone(),
        }
    }

    /// True when the term selects `pod`, whose namespace carries `ns_labels`.
    pub fn matches(&self, pod: &PodInfo, ns_labels: &BTreeMap<String, String>) -> bool {
        (self.namespaces.contains(&pod.namespace) || self.namespace_selector.matches(ns_labels))
            && self.selector.matches(&pod.labels)
    }
}

/// A preferred affinity term and its weight.
#[derive(Clone, Debug)]
pub struct WeightedAffinityTerm {
    /// The term.
    pub term: AffinityTerm,
    /// 1..100.
    pub weight: i64,
}

/// A pod with what the plugins ask of it computed once.
#[derive(Clone, Debug)]
pub struct PodInfo {
    /// The pod.
    pub pod: Arc<Pod>,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.nodeName`, if set.
    pub node_name: Option<String>,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// True once `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// Effective requests (containers, init and sidecar containers, overhead).
    pub requests: Resource,
    /// CPU (milli) and memory requests with upstream's defaults for containers that set none.
    pub non_zero: (i64, i64),
    /// Host ports of the app containers.
    pub host_ports: Vec<HostPort>,
    /// `requiredDuringScheduling` pod affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// `requiredDuringScheduling` pod anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// `preferredDuringScheduling` pod affinity terms.
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    /// `preferredDuringScheduling` pod anti-affinity terms.
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
}

impl PodInfo {
    /// Computes the pod's facts.
    pub fn new(pod: impl Into<Arc<Pod>>) -> PodInfo {
        let pod = pod.into();
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let host_ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.unwrap_or(0) > 0)
            .map(|p| HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| ANY_IP.into()),
                protocol: p
                    .protocol
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "TCP".into()),
                port: p.host_port.unwrap_or(0),
            })
            .collect();
        let affinity = spec.affinity.as_ref();
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(&namespace, t))
                .collect::<Vec<_>>()
        };
        let preferred = |terms: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .map(|t| WeightedAffinityTerm {
                    term: AffinityTerm::new(&namespace, &t.pod_affinity_term),
                    weight: i64::from(t.weight),
                })
                .collect::<Vec<_>>()
        };
        PodInfo {
            name: meta.name.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            priority: spec.priority.unwrap_or(0),
            terminating: meta.deletion_timestamp.is_some(),
            requests: resource::pod_requests(&spec),
            non_zero: resource::pod_non_zero_requests(&spec),
            host_ports,
            required_affinity: required(
                pa.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref()),
            ),
            required_anti_affinity: required(
                paa.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref()),
            ),
            preferred_affinity: preferred(
                pa.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref()),
            ),
            preferred_anti_affinity: preferred(
                paa.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref()),
            ),
            namespace,
            pod,
        }
    }

    /// The pod's tolerations.
    pub fn tolerations(&self) -> &[Toleration] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default()
    }

    /// True when the pod has any pod affinity or anti-affinity term.
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }
}

/// A node and the pods assigned to it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node.
    pub node: Arc<Node>,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// `status.allocatable`.
    pub allocatable: Resource,
    /// Pods assigned to the node (bound or assumed).
    pub pods: Vec<Arc<PodInfo>>,
    /// Sum of the pods' requests.
    pub requested: Resource,
    /// Sum of the pods' CPU and memory requests with defaults for unset ones (for scoring).
    pub non_zero_requested: (i64, i64),
    /// Host ports in use, one entry per container port.
    pub used_ports: Vec<HostPort>,
    /// Pods with any pod (anti-)affinity term.
    pub pods_with_affinity: usize,
    /// Pods with a required anti-affinity term.
    pub pods_with_required_anti_affinity: usize,
    /// Images on the node (`status.images` names) and their sizes.
    pub images: HashMap<String, i64>,
}

impl NodeInfo {
    /// A node without pods.
    pub fn new(node: impl Into<Arc<Node>>) -> NodeInfo {
        let node = node.into();
        let spec = node.spec.clone().unwrap_or_default();
        let status = node.status.as_ref();
        let allocatable = status
            .and_then(|s| s.allocatable.as_ref())
            .map(Resource::from_list)
            .unwrap_or_default();
        let images = status
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|i| {
                let size = i.size_bytes.unwrap_or(0);
                i.names.iter().flatten().map(move |n| (n.clone(), size))
            })
            .collect();
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.taints.unwrap_or_default(),
            unschedulable: spec.unschedulable.unwrap_or(false),
            allocatable,
            pods: Vec::new(),
            requested: Resource::default(),
            non_zero_requested: (0, 0),
            used_ports: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            images,
            node,
        }
    }

    /// Adds a pod's usage.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.update_usage(&pod, 1);
        self.pods.push(pod);
    }

    /// Removes the pod `namespace/name`, returning it.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        let i = self
            .pods
            .iter()
            .position(|p| p.namespace == namespace && p.name == name)?;
        let pod = self.pods.swap_remove(i);
        self.update_usage(&pod, -1);
        Some(pod)
    }

    fn update_usage(&mut self, pod: &PodInfo, sign: i64) {
        if sign > 0 {
            self.requested.add(&pod.requests);
            self.used_ports.extend(pod.host_ports.iter().cloned());
        } else {
            self.requested.sub(&pod.requests);
            for p in &pod.host_ports {
                if let Some(i) = self.used_ports.iter().position(|u| u == p) {
                    self.used_ports.swap_remove(i);
                }
            }
        }
        self.non_zero_requested.0 += sign * pod.non_zero.0;
        self.non_zero_requested.1 += sign * pod.non_zero.1;
        let step = |n: &mut usize, yes: bool| {
            if yes {
                *n = n.saturating_add_signed(sign as isize);
            }
        };
        step(&mut self.pods_with_affinity, pod.has_affinity());
        step(
            &mut self.pods_with_required_anti_affinity,
            !pod.required_anti_affinity.is_empty(),
        );
    }
}

/// Why a pod cannot be assumed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// The node is not in the snapshot.
    #[error("node {0:?} not found")]
    NodeNotFound(String),
    /// The pod is already on a node.
    #[error("pod {0}/{1} is already assigned")]
    AlreadyAssigned(String, String),
}

/// How widely an image is spread (upstream's `ImageStateSummary.NumNodes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageSpread {
    /// Nodes reporting the image.
    pub num_nodes: usize,
}

/// Nodes, their pods and namespace labels.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    nodes: Vec<NodeInfo>,
    by_name: HashMap<String, usize>,
    pod_nodes: HashMap<(String, String), usize>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    images: HashMap<String, ImageSpread>,
    no_labels: BTreeMap<String, String>,
    volumes: Volumes,
}

impl Snapshot {
    /// Builds a snapshot: pods bound to a node in `nodes` and not terminal (`Succeeded` /
    /// `Failed`) count on it; others are left out.
    pub fn new(
        nodes: impl IntoIterator<Item = Node>,
        pods: impl IntoIterator<Item = Pod>,
        namespaces: impl IntoIterator<Item = Namespace>,
    ) -> Snapshot {
        let mut s = Snapshot::default();
        for node in nodes {
            s.add_node(node);
        }
        for ns in namespaces {
            s.set_namespace(&ns);
        }
        for pod in pods {
            let terminal = matches!(
                pod.status.as_ref().and_then(|st| st.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
            let info = PodInfo::new(pod);
            if let (Some(node), false) = (info.node_name.clone(), terminal) {
                let _ = s.assume(info, &node);
            }
        }
        s
    }

    /// The claims, volumes and classes (VolumeBinding's view).
    pub fn volumes(&self) -> &Volumes {
        &self.volumes
    }

    /// The claims, volumes and classes, to update.
    pub fn volumes_mut(&mut self) -> &mut Volumes {
        &mut self.volumes
    }

    /// Adds a node (or replaces the one with its name, keeping its pods).
    pub fn add_node(&mut self, node: Node) {
        let mut info = NodeInfo::new(node);
        match self.by_name.get(&info.name) {
            Some(&i) => {
                let old = std::mem::replace(&mut self.nodes[i], NodeInfo::new(Node::default()));
                self.count_images(&old, -1);
                for pod in old.pods {
                    info.add_pod(pod);
                }
                self.count_images(&info, 1);
                self.nodes[i] = info;
            }
            None => {
                self.count_images(&info, 1);
                self.by_name.insert(info.name.clone(), self.nodes.len());
                self.nodes.push(info);
            }
        }
    }

    /// Removes a node and the pods on it.
    pub fn remove_node(&mut self, name: &str) -> Option<NodeInfo> {
        let i = self.by_name.remove(name)?;
        let info = self.nodes.swap_remove(i);
        self.count_images(&info, -1);
        for p in &info.pods {
            self.pod_nodes.remove(&p.key());
        }
        if i < self.nodes.len() {
            let moved = &self.nodes[i];
            self.by_name.insert(moved.name.clone(), i);
            for p in &moved.pods {
                self.pod_nodes.insert(p.key(), i);
            }
        }
        Some(info)
    }

    fn count_images(&mut self, node: &NodeInfo, sign: isize) {
        for name in node.images.keys() {
            let e = self.images.entry(name.clone()).or_default();
            e.num_nodes = e.num_nodes.saturating_add_signed(sign);
            if e.num_nodes == 0 {
                self.images.remove(name);
            }
        }
    }

    /// Records a namespace's labels (for namespace selectors of affinity terms).
    pub fn set_namespace(&mut self, ns: &Namespace) {
        if let Some(name) = &ns.metadata.name {
            self.namespaces
                .insert(name.clone(), ns.metadata.labels.clone().unwrap_or_default());
        }
    }

    /// Counts `pod` on `node` (a bound pod, or one the scheduler assumes before the binding
    /// is confirmed).
    pub fn assume(&mut self, pod: impl Into<Arc<PodInfo>>, node: &str) -> Result<(), SnapshotError> {
        let pod = pod.into();
        let &i = self
            .by_name
            .get(node)
            .ok_or_else(|| SnapshotError::NodeNotFound(node.into()))?;
        let key = pod.key();
        if self.pod_nodes.contains_key(&key) {
            return Err(SnapshotError::AlreadyAssigned(key.0, key.1));
        }
        self.pod_nodes.insert(key, i);
        self.nodes[i].add_pod(pod);
        Ok(())
    }

    /// Stops counting the pod `namespace/name` (deleted, or an assumption whose binding
    /// failed), returning it.
    pub fn forget(&mut self, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        let i = self
            .pod_nodes
            .remove(&(namespace.to_string(), name.to_string()))?;
        self.nodes[i].remove_pod(namespace, name)
    }

    /// The nodes, in a stable order.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.by_name.get(name).map(|&i| &self.nodes[i])
    }

    /// The node `namespace/name` is counted on.
    pub fn node_of(&self, namespace: &str, name: &str) -> Option<&NodeInfo> {
        self.pod_nodes
            .get(&(namespace.to_string(), name.to_string()))
            .map(|&i| &self.nodes[i])
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True without nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A namespace's labels (none when unknown).
    pub fn namespace_labels(&self, namespace: &str) -> &BTreeMap<String, String> {
        self.namespaces.get(namespace).unwrap_or(&self.no_labels)
    }

    /// How many nodes report the image `name`.
    pub fn image_spread(&self, name: &str) -> ImageSpread {
        self.images.get(name).copied().unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A node from JSON-ish parts: `cpu`, `memory`, `pods` allocatable and labels.
    pub fn node(name: &str, cpu: &str, memory: &str, extra: Value) -> Node {
        let mut v = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}}
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    /// A pod in `default` requesting `cpu` and `memory` in one container.
    pub fn pod(name: &str, cpu: &str, memory: &str, extra: Value) -> Pod {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    /// Deep-merges `extra` into `v` (objects merge, anything else replaces).
    pub fn merge(v: &mut Value, extra: Value) {
        match (v, extra) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, bv) in b {
                    merge(a.entry(k).or_insert(Value::Null), bv);
                }
            }
            (slot, other) => *slot = other,
        }
    }

    #[test]
    fn assume_and_forget_update_usage() {
        let mut s = Snapshot::new(
            [node("a", "2", "4Gi", json!({}))],
            [pod("p1", "500m", "1Gi", json!({"spec": {"nodeName": "a"}}))],
            [],
        );
        let a = s.node("a").unwrap();
        assert_eq!((a.requested.milli_cpu, a.requested.memory), (500, 1 << 30));
        assert_eq!(a.allocatable.allowed_pod_number, 110);
        let p2 = PodInfo::new(pod(
            "p2",
            "250m",
            "0",
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}),
        ));
        s.assume(p2.clone(), "a").unwrap();
        assert_eq!(
            s.assume(p2, "a"),
            Err(SnapshotError::AlreadyAssigned("default".into(), "p2".into()))
        );
        let a = s.node("a").unwrap();
        assert_eq!(a.pods.len(), 2);
        assert_eq!(a.used_ports.len(), 1);
        assert_eq!(a.non_zero_requested, (600, (1 << 30) + (200 << 20)));
        assert!(s.forget("default", "p2").is_some());
        let a = s.node("a").unwrap();
        assert_eq!(
            (a.pods.len(), a.used_ports.len(), a.requested.milli_cpu),
            (1, 0, 500)
        );
        assert_eq!(s.node_of("default", "p1").unwrap().name, "a");
    }

    #[test]
    fn terminal_and_unassigned_pods_are_left_out() {
        let s = Snapshot::new(
            [node("a", "2", "4Gi", json!({}))],
            [
                pod(
                    "done",
                    "1",
                    "1Gi",
                    json!({"spec": {"nodeName": "a"}, "status": {"phase": "Succeeded"}}),
                ),
                pod("pending", "1", "1Gi", json!({})),
                pod("elsewhere", "1", "1Gi", json!({"spec": {"nodeName": "gone"}})),
            ],
            [],
        );
        assert!(s.node("a").unwrap().pods.is_empty());
    }

    #[test]
    fn node_update_keeps_pods_and_remove_reindexes() {
        let mut s = Snapshot::new(
            [node("a", "2", "4Gi", json!({})), node("b", "2", "4Gi", json!({}))],
            [pod("p", "1", "1Gi", json!({"spec": {"nodeName": "b"}}))],
            [],
        );
        s.add_node(node("b", "4", "4Gi", json!({"spec": {"unschedulable": true}})));
        let b = s.node("b").unwrap();
        assert!(b.unschedulable);
        assert_eq!((b.allocatable.milli_cpu, b.requested.milli_cpu), (4000, 1000));
        s.remove_node("a");
        assert_eq!(s.node_of("default", "p").unwrap().name, "b");
        assert_eq!(s.len(), 1);
    }
}
