//! Which nodes a DaemonSet's pod belongs on (upstream's `NodeShouldRunDaemonPod`): the
//! template's `nodeName`, `nodeSelector` and required node affinity must match the node, and
//! its taints must be tolerated by the template's tolerations plus those upstream adds to every
//! daemon pod; and how a daemon pod is pinned to its node (node affinity `matchFields
//! metadata.name In [node]`, so the default scheduler binds it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec,
    Taint, Toleration,
};

use crate::node_lifecycle::eviction::tolerates;

/// Whether a node should run the daemon pod, and whether a pod already there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eligibility {
    /// A pod should be created there.
    pub should_run: bool,
    /// A pod there may keep running (it tolerates the NoExecute taints).
    pub should_continue_running: bool,
}

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        value: None,
        toleration_seconds: None,
    }
}

/// Adds the tolerations upstream gives every daemon pod (`AddOrUpdateDaemonPodTolerations`):
/// not-ready and unreachable (NoExecute), disk/memory/pid pressure and unschedulable
/// (NoSchedule), and network-unavailable (NoSchedule) for host-network pods.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(toleration("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for t in wanted {
        // Same key, operator, value and effect: replaced (keeps one copy); else appended.
        match tolerations.iter_mut().find(|e| {
            e.key == t.key
                && e.operator.as_deref().unwrap_or("Equal") == "Exists"
                && e.value.as_deref().unwrap_or("").is_empty()
                && e.effect == t.effect
        }) {
            Some(existing) => *existing = t,
            None => tolerations.push(t),
        }
    }
}

fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let label = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => label.is_some_and(|l| values.contains(l)),
        "NotIn" => label.is_none_or(|l| !values.contains(l)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(v), Some(l)) = (
                values.first().and_then(|v| v.parse::<i64>().ok()),
                label.and_then(|l| l.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if op == "Gt" { l > v } else { l < v }
        }
        _ => false,
    }
}

fn field_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    if r.key != "metadata.name" {
        return false;
    }
    match r.operator.as_str() {
        "In" => values.iter().any(|v| v == node_name),
        "NotIn" => !values.iter().any(|v| v == node_name),
        _ => false,
    }
}

fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    (!exprs.is_empty() || !fields.is_empty())
        && exprs.iter().all(|r| requirement_matches(r, labels))
        && fields.iter().all(|r| field_matches(r, node_name))
}

/// The pod spec's `nodeSelector` and required node affinity hold for `node`.
pub fn affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if !spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    match spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref())
    {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, &labels, name)),
    }
}

fn untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration], effects: &[&str]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// Upstream's `NodeShouldRunDaemonPod` for the DaemonSet's template `spec` (the daemon
/// tolerations are added here).
pub fn eligibility(template: &PodSpec, node: &Node) -> Eligibility {
    const NO: Eligibility = Eligibility {
        should_run: false,
        should_continue_running: false,
    };
    let node_name = node.metadata.name.as_deref().unwrap_or_default();
    if template
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != node_name)
    {
        return NO;
    }
    if !affinity_matches(template, node) {
        return NO;
    }
    let mut only = PodSpec {
        tolerations: template.tolerations.clone(),
        host_network: template.host_network,
        ..PodSpec::default()
    };
    add_daemon_tolerations(&mut only);
    let tolerations = only.tolerations.unwrap_or_default();
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if untolerated(&taints, &tolerations, &["NoSchedule", "NoExecute"]).is_some() {
        return Eligibility {
            should_run: false,
            should_continue_running: untolerated(&taints, &tolerations, &["NoExecute"]).is_none(),
        };
    }
    Eligibility {
        should_run: true,
        should_continue_running: true,
    }
}

/// Pins a pod spec to `node` (upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`): the
/// required node affinity becomes the single term `metadata.name In [node]`.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// The node a daemon pod is for: its `nodeName`, else the node its affinity pins it to
/// (upstream's `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": labels},
            "spec": {"taints": taints}
        }))
        .unwrap()
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        let mut v = v;
        v["containers"] = json!([{"name": "c", "image": "i"}]);
        serde_json::from_value(v).unwrap()
    }

    const YES: Eligibility = Eligibility {
        should_run: true,
        should_continue_running: true,
    };

    #[test]
    fn node_selector_and_required_affinity_decide() {
        let n = node(json!({"disk": "ssd", "zone": "a"}), json!([]));
        assert_eq!(eligibility(&spec(json!({})), &n), YES);
        assert_eq!(
            eligibility(&spec(json!({"nodeSelector": {"disk": "ssd"}})), &n),
            YES
        );
        assert!(!eligibility(&spec(json!({"nodeSelector": {"disk": "hdd"}})), &n).should_run);
        let aff = |op: &str, vals: serde_json::Value| {
            spec(
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": op, "values": vals}]}]}}}}),
            )
        };
        assert!(eligibility(&aff("In", json!(["a", "b"])), &n).should_run);
        assert!(!eligibility(&aff("NotIn", json!(["a"])), &n).should_run);
        assert!(eligibility(&aff("Exists", json!(null)), &n).should_run);
        assert!(!eligibility(&aff("DoesNotExist", json!(null)), &n).should_run);
        let other = spec(json!({"nodeName": "n2"}));
        assert!(!eligibility(&other, &n).should_run);
    }

    #[test]
    fn taints_need_tolerations_and_noexecute_evicts() {
        let no_schedule = node(
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        let e = eligibility(&spec(json!({})), &no_schedule);
        assert_eq!(
            e,
            Eligibility {
                should_run: false,
                should_continue_running: true
            },
            "a NoSchedule taint keeps running pods"
        );
        let tolerant = spec(
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
        );
        assert_eq!(eligibility(&tolerant, &no_schedule), YES);
        let no_execute = node(json!({}), json!([{"key": "dedicated", "effect": "NoExecute"}]));
        assert_eq!(
            eligibility(&spec(json!({})), &no_execute),
            Eligibility {
                should_run: false,
                should_continue_running: false
            }
        );
        let prefer = node(json!({}), json!([{"key": "x", "effect": "PreferNoSchedule"}]));
        assert_eq!(eligibility(&spec(json!({})), &prefer), YES);
    }

    #[test]
    fn daemon_tolerations_cover_node_conditions() {
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ] {
            let n = node(json!({}), json!([{"key": key, "effect": effect}]));
            assert_eq!(eligibility(&spec(json!({})), &n), YES, "{key}");
        }
        let net = node(
            json!({}),
            json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
        );
        assert!(!eligibility(&spec(json!({})), &net).should_run);
        assert_eq!(eligibility(&spec(json!({"hostNetwork": true})), &net), YES);
        let mut s = spec(
            json!({"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]}),
        );
        add_daemon_tolerations(&mut s);
        add_daemon_tolerations(&mut s);
        assert_eq!(s.tolerations.unwrap().len(), 6, "no duplicates");
    }

    #[test]
    fn pods_are_pinned_by_node_affinity_and_found_again() {
        let mut s = spec(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}),
        );
        pin_to_node(&mut s, "n7");
        let pod = Pod {
            spec: Some(s.clone()),
            ..Pod::default()
        };
        assert_eq!(target_node(&pod).as_deref(), Some("n7"));
        let terms = &s
            .affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        assert!(terms[0].match_expressions.is_none());
        let bound = Pod {
            spec: Some(spec(json!({"nodeName": "n3"}))),
            ..Pod::default()
        };
        assert_eq!(target_node(&bound).as_deref(), Some("n3"));
    }
}
