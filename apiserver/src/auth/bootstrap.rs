//! The bootstrap RBAC policy (upstream's `bootstrappolicy`): the default ClusterRoles and
//! ClusterRoleBindings, created on start and reconciled (missing rules, aggregation selectors and
//! subjects added) unless an object is annotated `rbac.authorization.kubernetes.io/autoupdate:
//! "false"`.

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{Value, json};

use super::rbac::{rules_of, uncovered};
use crate::error::ApiResult;
use crate::patch::PatchType;
use crate::registry::WriteOptions;
use crate::{ApiError, ApiServer};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const AGGREGATE_PREFIX: &str = "rbac.authorization.k8s.io/aggregate-to-";

fn strs(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

/// A resource rule.
pub(super) fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": strs(verbs), "apiGroups": strs(groups), "resources": strs(resources)})
}

/// A resource rule limited to some object names.
pub(super) fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    let mut r = rule(verbs, groups, resources);
    r["resourceNames"] = json!(strs(names));
    r
}

/// A non-resource rule.
fn urls(verbs: &[&str], paths: &[&str]) -> Value {
    json!({"verbs": strs(verbs), "nonResourceURLs": strs(paths)})
}

/// Writing events (core and `events.k8s.io`).
pub(super) fn events_rule() -> Vec<Value> {
    vec![rule(
        &["create", "patch", "update"],
        &["", "events.k8s.io"],
        &["events"],
    )]
}

/// A bootstrap ClusterRole.
pub(super) fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {AUTOUPDATE: "true"}},
        "rules": rules,
    })
}

/// A ClusterRole whose rules come from the roles labelled `aggregate-to-<to>`.
fn aggregated(name: &str, to: &str) -> Value {
    let mut r = cluster_role(name, Vec::new());
    r["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {format!("{AGGREGATE_PREFIX}{to}"): "true"}}]});
    r
}

fn labelled(mut role: Value, to: &str) -> Value {
    role["metadata"]["labels"][format!("{AGGREGATE_PREFIX}{to}")] = json!("true");
    role
}

/// The bootstrap ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let disc_paths = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/healthz",
        "/livez",
        "/openapi",
        "/openapi/*",
        "/readyz",
        "/version",
        "/version/",
    ];
    let mut roles = vec![
        cluster_role(
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        cluster_role("system:discovery", vec![urls(&["get"], &disc_paths)]),
        cluster_role(
            "system:public-info-viewer",
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            vec![urls(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        cluster_role(
            "system:auth-delegator",
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
            ],
        ),
        aggregated("admin", "admin"),
        labelled(aggregated("edit", "edit"), "admin"),
        labelled(aggregated("view", "view"), "edit"),
        labelled(
            cluster_role(
                "system:aggregate-to-admin",
                vec![
                    rule(
                        &["create"],
                        &["authorization.k8s.io"],
                        &["localsubjectaccessreviews"],
                    ),
                    rule(
                        READ_WRITE,
                        &["rbac.authorization.k8s.io"],
                        &["rolebindings", "roles"],
                    ),
                ],
            ),
            "admin",
        ),
        labelled(
            cluster_role(
                "system:aggregate-to-edit",
                vec![
                    rule(
                        READ,
                        &[""],
                        &[
                            "pods/attach",
                            "pods/exec",
                            "pods/portforward",
                            "pods/proxy",
                            "secrets",
                            "services/proxy",
                        ],
                    ),
                    rule(&["impersonate"], &[""], &["serviceaccounts"]),
                    rule(
                        WRITE,
                        &[""],
                        &[
                            "pods",
                            "pods/attach",
                            "pods/exec",
                            "pods/portforward",
                            "pods/proxy",
                        ],
                    ),
                    rule(&["create"], &[""], &["pods/eviction"]),
                    rule(
                        WRITE,
                        &[""],
                        &[
                            "configmaps",
                            "events",
                            "persistentvolumeclaims",
                            "replicationcontrollers",
                            "replicationcontrollers/scale",
                            "secrets",
                            "serviceaccounts",
                            "services",
                            "services/proxy",
                        ],
                    ),
                    rule(&["create"], &[""], &["serviceaccounts/token"]),
                    rule(
                        WRITE,
                        &["apps"],
                        &[
                            "daemonsets",
                            "deployments",
                            "deployments/rollback",
                            "deployments/scale",
                            "replicasets",
                            "replicasets/scale",
                            "statefulsets",
                            "statefulsets/scale",
                        ],
                    ),
                    rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                    rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
                    rule(
                        WRITE,
                        &["extensions"],
                        &[
                            "daemonsets",
                            "deployments",
                            "deployments/rollback",
                            "deployments/scale",
                            "ingresses",
                            "networkpolicies",
                            "replicasets",
                            "replicasets/scale",
                            "replicationcontrollers/scale",
                        ],
                    ),
                    rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                    rule(WRITE, &["networking.k8s.io"], &["ingresses", "networkpolicies"]),
                    rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
                ],
            ),
            "edit",
        ),
        labelled(
            cluster_role(
                "system:aggregate-to-view",
                vec![
                    rule(
                        READ,
                        &[""],
                        &[
                            "configmaps",
                            "endpoints",
                            "persistentvolumeclaims",
                            "persistentvolumeclaims/status",
                            "pods",
                            "replicationcontrollers",
                            "replicationcontrollers/scale",
                            "serviceaccounts",
                            "services",
                            "services/status",
                        ],
                    ),
                    rule(
                        READ,
                        &[""],
                        &[
                            "bindings",
                            "events",
                            "limitranges",
                            "namespaces/status",
                            "pods/log",
                            "pods/status",
                            "replicationcontrollers/status",
                            "resourcequotas",
                            "resourcequotas/status",
                        ],
                    ),
                    rule(READ, &[""], &["namespaces"]),
                    rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                    rule(
                        READ,
                        &["apps"],
                        &[
                            "controllerrevisions",
                            "daemonsets",
                            "daemonsets/status",
                            "deployments",
                            "deployments/scale",
                            "deployments/status",
                            "replicasets",
                            "replicasets/scale",
                            "replicasets/status",
                            "statefulsets",
                            "statefulsets/scale",
                            "statefulsets/status",
                        ],
                    ),
                    rule(
                        READ,
                        &["autoscaling"],
                        &["horizontalpodautoscalers", "horizontalpodautoscalers/status"],
                    ),
                    rule(
                        READ,
                        &["batch"],
                        &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    ),
                    rule(
                        READ,
                        &["extensions"],
                        &[
                            "daemonsets",
                            "daemonsets/status",
                            "deployments",
                            "deployments/scale",
                            "deployments/status",
                            "ingresses",
                            "ingresses/status",
                            "networkpolicies",
                            "replicasets",
                            "replicasets/scale",
                            "replicasets/status",
                            "replicationcontrollers/scale",
                        ],
                    ),
                    rule(
                        READ,
                        &["policy"],
                        &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                    ),
                    rule(
                        READ,
                        &["networking.k8s.io"],
                        &["ingresses", "ingresses/status", "networkpolicies"],
                    ),
                ],
            ),
            "view",
        ),
    ];
    let mut scheduler = events_rule();
    scheduler.extend([
        rule(&["create"], &["coordination.k8s.io"], &["leases"]),
        named(
            &["get", "update"],
            &["coordination.k8s.io"],
            &["leases"],
            &["kube-scheduler"],
        ),
        rule(&["delete", "get", "list", "watch"], &[""], &["pods"]),
        rule(READ, &[""], &["nodes"]),
        rule(&["create"], &[""], &["bindings", "pods/binding"]),
        rule(&["patch", "update"], &[""], &["pods/status"]),
        rule(READ, &[""], &["replicationcontrollers", "services"]),
        rule(READ, &["apps", "extensions"], &["replicasets"]),
        rule(READ, &["apps"], &["statefulsets"]),
        rule(READ, &["policy"], &["poddisruptionbudgets"]),
        rule(READ, &[""], &["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
        rule(READ, &["storage.k8s.io"], &["csinodes"]),
        rule(READ, &[""], &["namespaces"]),
        rule(READ, &["storage.k8s.io"], &["csidrivers", "csistoragecapacities"]),
    ]);
    roles.push(cluster_role("system:kube-scheduler", scheduler));
    // What the scheduler's VolumeBinding plugin reads and writes.
    roles.push(cluster_role(
        "system:volume-scheduler",
        vec![
            rule(
                &["get", "list", "patch", "update", "watch"],
                &[""],
                &["persistentvolumes", "persistentvolumeclaims"],
            ),
            rule(READ, &["storage.k8s.io"], &["storageclasses"]),
        ],
    ));
    let mut kcm = events_rule();
    kcm.extend([
        rule(&["create"], &["coordination.k8s.io"], &["leases"]),
        named(
            &["get", "update"],
            &["coordination.k8s.io"],
            &["leases"],
            &["kube-controller-manager"],
        ),
        rule(&["create"], &[""], &["secrets", "serviceaccounts"]),
        rule(&["delete"], &[""], &["secrets"]),
        rule(
            &["get"],
            &[""],
            &["configmaps", "namespaces", "secrets", "serviceaccounts"],
        ),
        rule(&["update"], &[""], &["secrets", "serviceaccounts"]),
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
        rule(&["list", "watch"], &["*"], &["*"]),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
    ]);
    roles.push(cluster_role("system:kube-controller-manager", kcm));
    let mut node = vec![
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews", "subjectaccessreviews"],
        ),
        rule(READ, &[""], &["services"]),
        rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        rule(&["patch", "update"], &[""], &["nodes/status"]),
        rule(&["patch", "update"], &[""], &["nodes"]),
    ];
    node.extend(events_rule());
    node.extend([
        rule(READ, &[""], &["pods"]),
        rule(&["create", "delete"], &[""], &["pods"]),
        rule(&["patch", "update"], &[""], &["pods/status"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(READ, &[""], &["configmaps", "secrets"]),
        rule(&["get"], &[""], &["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["get"], &[""], &["endpoints"]),
        rule(
            &["create", "get", "list", "watch"],
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
        ),
        rule(
            &["create", "delete", "get", "patch", "update"],
            &["coordination.k8s.io"],
            &["leases"],
        ),
        rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            &["get", "patch", "update"],
            &[""],
            &["persistentvolumeclaims/status"],
        ),
        rule(READ, &["storage.k8s.io"], &["csidrivers"]),
        rule(
            &["create", "delete", "get", "patch", "update"],
            &["storage.k8s.io"],
            &["csinodes"],
        ),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
    ]);
    roles.push(cluster_role("system:node", node));
    let mut proxier = vec![
        rule(&["list", "watch"], &[""], &["endpoints", "services"]),
        rule(READ, &[""], &["nodes"]),
    ];
    proxier.extend(events_rule());
    proxier.push(rule(
        &["list", "watch"],
        &["discovery.k8s.io"],
        &["endpointslices"],
    ));
    roles.push(cluster_role("system:node-proxier", proxier));
    roles.extend(certificate_roles());
    roles.extend(super::controller_roles::roles());
    roles
}

/// Upstream's roles around certificate requests: asking for them (`system:node-bootstrapper`),
/// having a kubelet client request approved automatically (`nodeclient` for a new node,
/// `selfnodeclient` for a node renewing its own), and approving requests per signer.
fn certificate_roles() -> Vec<Value> {
    const GROUP: &[&str] = &["certificates.k8s.io"];
    let mut roles = vec![cluster_role(
        "system:node-bootstrapper",
        vec![rule(
            &["create", "get", "list", "watch"],
            GROUP,
            &["certificatesigningrequests"],
        )],
    )];
    for kind in ["nodeclient", "selfnodeclient"] {
        roles.push(cluster_role(
            &format!("system:certificates.k8s.io:certificatesigningrequests:{kind}"),
            vec![rule(
                &["create"],
                GROUP,
                &[&format!("certificatesigningrequests/{kind}")],
            )],
        ));
    }
    for signer in [
        "kube-apiserver-client",
        "kube-apiserver-client-kubelet",
        "kubelet-serving",
        "legacy-unknown",
    ] {
        roles.push(cluster_role(
            &format!("system:certificates.k8s.io:{signer}-approver"),
            vec![named(
                &["approve"],
                GROUP,
                &["signers"],
                &[&format!("kubernetes.io/{signer}")],
            )],
        ));
    }
    roles
}

/// A bootstrap ClusterRoleBinding of `role` to users or groups.
pub(super) fn binding(role: &str, subjects: &[(&str, &str)]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(kind, name)| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": role, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// The bootstrap ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    let mut bindings = vec![
        binding("cluster-admin", &[("Group", "system:masters")]),
        binding("system:discovery", &[("Group", "system:authenticated")]),
        binding("system:basic-user", &[("Group", "system:authenticated")]),
        binding(
            "system:public-info-viewer",
            &[
                ("Group", "system:authenticated"),
                ("Group", "system:unauthenticated"),
            ],
        ),
        binding(
            "system:service-account-issuer-discovery",
            &[("Group", "system:serviceaccounts")],
        ),
        binding("system:kube-scheduler", &[("User", "system:kube-scheduler")]),
        binding("system:volume-scheduler", &[("User", "system:kube-scheduler")]),
        binding(
            "system:kube-controller-manager",
            &[("User", "system:kube-controller-manager")],
        ),
        binding("system:node", &[("Group", "system:nodes")]),
        binding("system:node-proxier", &[("User", "system:kube-proxy")]),
        // As kubeadm and k3s set up: nodes renew their client certificates without a person
        // approving each request.
        binding(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[("Group", "system:nodes")],
        ),
    ];
    bindings.extend(super::controller_roles::bindings());
    bindings
}

fn autoupdate(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(AUTOUPDATE))
        .and_then(Value::as_str)
        != Some("false")
}

/// What a stored object lacks compared with its bootstrap version, as a merge patch.
fn reconcile_patch(resource: &str, want: &Value, have: &Value) -> Option<Value> {
    let mut patch = json!({});
    if resource.ends_with("roles") {
        // Aggregated roles get their rules from the controller; only the selectors are reconciled.
        if let Some(sel) = want.get("aggregationRule") {
            let have_sel = have
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array);
            let want_sel = sel["clusterRoleSelectors"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut merged = have_sel.cloned().unwrap_or_default();
            for s in want_sel {
                if !merged.contains(&s) {
                    merged.push(s);
                }
            }
            if Some(&merged) != have_sel {
                patch["aggregationRule"] = json!({"clusterRoleSelectors": merged});
            }
        } else {
            // As upstream: the uncovered parts, broken down to one verb and resource each, are
            // appended.
            let have_rules = rules_of(have);
            let missing: Vec<PolicyRule> = uncovered(&have_rules, &rules_of(want));
            if !missing.is_empty() {
                let mut all = have_rules;
                all.extend(missing);
                patch["rules"] = serde_json::to_value(all).unwrap_or_default();
            }
        }
    } else {
        let have_subjects = have
            .get("subjects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut merged = have_subjects.clone();
        for s in want["subjects"].as_array().into_iter().flatten() {
            let same = |h: &Value| h["kind"] == s["kind"] && h["name"] == s["name"];
            if !merged.iter().any(same) {
                merged.push(s.clone());
            }
        }
        if merged != have_subjects {
            patch["subjects"] = Value::Array(merged);
        }
    }
    let labels = want.pointer("/metadata/labels").and_then(Value::as_object);
    for (k, v) in labels.into_iter().flatten() {
        if have.pointer("/metadata/labels").and_then(|l| l.get(k)) != Some(v) {
            patch["metadata"]["labels"][k] = v.clone();
        }
    }
    (patch != json!({})).then_some(patch)
}

/// Creates the bootstrap roles and bindings that are missing and reconciles the others.
pub async fn reconcile(api: &ApiServer) -> ApiResult<()> {
    let sets = [
        ("clusterroles", cluster_roles()),
        ("clusterrolebindings", cluster_role_bindings()),
        ("roles", super::controller_roles::namespaced_roles()),
        ("rolebindings", super::controller_roles::namespaced_bindings()),
    ];
    for (resource, objects) in sets {
        let desc = api
            .table
            .lookup("rbac.authorization.k8s.io", "v1", resource)
            .ok_or_else(|| ApiError::internal(format!("{resource} are not served")))?;
        for want in objects {
            let name = want["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let ns = want["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match api.registry.get(&desc, &ns, &name).await {
                Ok(have) => {
                    if !autoupdate(&have) {
                        continue;
                    }
                    if let Some(p) = reconcile_patch(resource, &want, &have) {
                        api.registry
                            .patch(
                                &desc,
                                &ns,
                                &name,
                                PatchType::Merge,
                                &p,
                                &WriteOptions::default(),
                                None,
                            )
                            .await?;
                        tracing::info!(resource, name, "reconciled bootstrap RBAC object");
                    }
                }
                Err(e) if e.code() == 404 => {
                    match api
                        .registry
                        .create(&desc, &ns, want, &WriteOptions::default())
                        .await
                    {
                        Ok(_) => tracing::debug!(resource, name, "created bootstrap RBAC object"),
                        Err(e) if e.reason() == "AlreadyExists" => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_parses_and_reconciles() {
        for r in cluster_roles() {
            let rules = rules_of(&r);
            assert!(
                r.get("aggregationRule").is_some() || !rules.is_empty(),
                "{}",
                r["metadata"]["name"]
            );
        }
        let want = cluster_roles()
            .into_iter()
            .find(|r| r["metadata"]["name"] == "system:basic-user")
            .unwrap();
        assert!(reconcile_patch("clusterroles", &want, &want).is_none());
        let mut have = want.clone();
        have["rules"].as_array_mut().unwrap().remove(0);
        let p = reconcile_patch("clusterroles", &want, &have).unwrap();
        let patched: Vec<PolicyRule> = serde_json::from_value(p["rules"].clone()).unwrap();
        assert!(uncovered(&patched, &rules_of(&want)).is_empty());
        assert_eq!(patched.len(), 2);
        let want = binding("system:discovery", &[("Group", "system:authenticated")]);
        let mut have = want.clone();
        have["subjects"] = json!([{"kind": "User", "name": "x"}]);
        let p = reconcile_patch("clusterrolebindings", &want, &have).unwrap();
        assert_eq!(p["subjects"].as_array().unwrap().len(), 2);
    }
}
