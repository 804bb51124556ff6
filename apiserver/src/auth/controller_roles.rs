//! Upstream's per-controller roles (`system:controller:<name>`), each bound to the ServiceAccount
//! `kube-system/<name>` that the controller-manager runs that controller as with
//! `--use-service-account-credentials`; and the role of the simulated-node agent.

use serde_json::{Value, json};

use super::bootstrap::{cluster_role, events_rule, named, rule};

const GET_LIST_WATCH: &[&str] = &["get", "list", "watch"];
const LIST_WATCH: &[&str] = &["list", "watch"];
const CRUD: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
const UPDATE: &[&str] = &["update"];
const PATCH_UPDATE: &[&str] = &["patch", "update"];
const APPS: &[&str] = &["apps", "extensions"];

/// The namespace of the controllers' ServiceAccounts.
pub const CONTROLLER_NAMESPACE: &str = "kube-system";
/// The name prefix of the controllers' roles and bindings.
pub const CONTROLLER_ROLE_PREFIX: &str = "system:controller:";
/// The role and user of the simulated-node agent (`keelson kubelet --simulated`).
pub const SIMULATED_NODES_USER: &str = "system:keelson:simulated-nodes";

/// Each controller's rules, without the events rule most of them share.
fn controllers() -> Vec<(&'static str, Vec<Value>, bool)> {
    // (controller, rules, also may write events)
    vec![
        (
            "attachdetach-controller",
            vec![
                rule(
                    LIST_WATCH,
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(GET_LIST_WATCH, &[""], &["nodes"]),
                rule(PATCH_UPDATE, &[""], &["nodes/status"]),
                rule(LIST_WATCH, &[""], &["pods"]),
                rule(
                    &["create", "delete", "get", "list", "watch"],
                    &["storage.k8s.io"],
                    &["volumeattachments"],
                ),
                rule(GET_LIST_WATCH, &["storage.k8s.io"], &["csidrivers"]),
                rule(GET_LIST_WATCH, &["storage.k8s.io"], &["csinodes"]),
            ],
            true,
        ),
        (
            "certificate-controller",
            vec![
                rule(
                    &["delete", "get", "list", "watch"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                rule(
                    UPDATE,
                    &["certificates.k8s.io"],
                    &[
                        "certificatesigningrequests/approval",
                        "certificatesigningrequests/status",
                    ],
                ),
                named(
                    &["approve"],
                    &["certificates.k8s.io"],
                    &["signers"],
                    &["kubernetes.io/kube-apiserver-client-kubelet"],
                ),
                named(
                    &["sign"],
                    &["certificates.k8s.io"],
                    &["signers"],
                    &[
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                        "kubernetes.io/legacy-unknown",
                    ],
                ),
                rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
            ],
            true,
        ),
        (
            "clusterrole-aggregation-controller",
            vec![rule(
                &["escalate", "get", "list", "patch", "update", "watch"],
                &["rbac.authorization.k8s.io"],
                &["clusterroles"],
            )],
            false,
        ),
        (
            "cronjob-controller",
            vec![
                rule(&["get", "list", "update", "watch"], &["batch"], &["cronjobs"]),
                rule(CRUD, &["batch"], &["jobs"]),
                rule(UPDATE, &["batch"], &["cronjobs/status"]),
                rule(UPDATE, &["batch"], &["cronjobs/finalizers"]),
                rule(&["delete", "list", "watch"], &[""], &["pods"]),
            ],
            true,
        ),
        (
            "daemon-set-controller",
            vec![
                rule(GET_LIST_WATCH, APPS, &["daemonsets"]),
                rule(UPDATE, APPS, &["daemonsets/status"]),
                rule(UPDATE, APPS, &["daemonsets/finalizers"]),
                rule(LIST_WATCH, &[""], &["nodes"]),
                rule(&["create", "delete", "list", "patch", "watch"], &[""], &["pods"]),
                rule(&["create"], &[""], &["pods/binding"]),
                rule(CRUD, &["apps"], &["controllerrevisions"]),
            ],
            true,
        ),
        (
            "deployment-controller",
            vec![
                rule(&["get", "list", "update", "watch"], APPS, &["deployments"]),
                rule(UPDATE, APPS, &["deployments/status"]),
                rule(UPDATE, APPS, &["deployments/finalizers"]),
                rule(CRUD, APPS, &["replicasets"]),
                rule(&["get", "list", "update", "watch"], &[""], &["pods"]),
            ],
            true,
        ),
        (
            "disruption-controller",
            vec![
                rule(GET_LIST_WATCH, APPS, &["deployments"]),
                rule(GET_LIST_WATCH, APPS, &["replicasets"]),
                rule(GET_LIST_WATCH, &[""], &["replicationcontrollers"]),
                rule(GET_LIST_WATCH, &["policy"], &["poddisruptionbudgets"]),
                rule(GET_LIST_WATCH, &["apps"], &["statefulsets"]),
                rule(UPDATE, &["policy"], &["poddisruptionbudgets/status"]),
                rule(PATCH_UPDATE, &[""], &["pods/status"]),
                rule(&["get"], &["*"], &["*/scale"]),
            ],
            true,
        ),
        (
            "endpoint-controller",
            vec![
                rule(GET_LIST_WATCH, &[""], &["pods", "services"]),
                rule(
                    &["create", "delete", "get", "list", "update", "watch"],
                    &[""],
                    &["endpoints"],
                ),
                rule(&["create"], &[""], &["endpoints/restricted"]),
            ],
            true,
        ),
        (
            "endpointslice-controller",
            vec![
                rule(GET_LIST_WATCH, &[""], &["nodes", "pods", "services"]),
                rule(UPDATE, &[""], &["services/finalizers"]),
                rule(
                    &["create", "delete", "get", "list", "update", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
            true,
        ),
        (
            "endpointslicemirroring-controller",
            vec![
                rule(GET_LIST_WATCH, &[""], &["endpoints", "services"]),
                rule(UPDATE, &[""], &["services/finalizers"]),
                rule(UPDATE, &[""], &["endpoints/finalizers"]),
                rule(
                    &["create", "delete", "get", "list", "update", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
            true,
        ),
        (
            "ephemeral-volume-controller",
            vec![
                rule(GET_LIST_WATCH, &[""], &["pods"]),
                rule(UPDATE, &[""], &["pods/finalizers"]),
                rule(
                    &["create", "get", "list", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
            ],
            true,
        ),
        (
            "expand-controller",
            vec![
                rule(
                    &["get", "list", "patch", "update", "watch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                rule(PATCH_UPDATE, &[""], &["persistentvolumeclaims/status"]),
                rule(GET_LIST_WATCH, &[""], &["persistentvolumeclaims"]),
            ],
            true,
        ),
        (
            "generic-garbage-collector",
            vec![rule(
                &["delete", "get", "list", "patch", "update", "watch"],
                &["*"],
                &["*"],
            )],
            true,
        ),
        (
            "horizontal-pod-autoscaler",
            vec![
                rule(GET_LIST_WATCH, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(UPDATE, &["autoscaling"], &["horizontalpodautoscalers/status"]),
                rule(&["get", "update"], &["*"], &["*/scale"]),
                rule(LIST_WATCH, &[""], &["pods"]),
                rule(LIST_WATCH, &["metrics.k8s.io"], &["pods"]),
                rule(GET_LIST_WATCH, &["custom.metrics.k8s.io"], &["*"]),
                rule(GET_LIST_WATCH, &["external.metrics.k8s.io"], &["*"]),
            ],
            true,
        ),
        (
            "job-controller",
            vec![
                rule(
                    &["get", "list", "patch", "update", "watch"],
                    &["batch"],
                    &["jobs"],
                ),
                rule(UPDATE, &["batch"], &["jobs/status"]),
                rule(UPDATE, &["batch"], &["jobs/finalizers"]),
                rule(&["create", "delete", "list", "patch", "watch"], &[""], &["pods"]),
            ],
            true,
        ),
        (
            "legacy-service-account-token-cleaner",
            vec![
                named(
                    &["get"],
                    &[""],
                    &["configmaps"],
                    &["kube-apiserver-legacy-service-account-token-tracking"],
                ),
                rule(&["delete", "patch"], &[""], &["secrets"]),
            ],
            false,
        ),
        (
            "namespace-controller",
            vec![
                rule(&["delete", "get", "list", "watch"], &[""], &["namespaces"]),
                rule(UPDATE, &[""], &["namespaces/finalize", "namespaces/status"]),
                rule(
                    &["delete", "deletecollection", "get", "list", "watch"],
                    &["*"],
                    &["*"],
                ),
            ],
            false,
        ),
        (
            "node-controller",
            vec![
                rule(
                    &["delete", "get", "list", "patch", "update", "watch"],
                    &[""],
                    &["nodes"],
                ),
                rule(PATCH_UPDATE, &[""], &["nodes/status"]),
                rule(PATCH_UPDATE, &[""], &["pods/status"]),
                rule(&["delete", "get", "list", "watch"], &[""], &["pods"]),
            ],
            true,
        ),
        (
            "persistent-volume-binder",
            vec![
                rule(
                    &["create", "delete", "get", "list", "update", "watch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                rule(UPDATE, &[""], &["persistentvolumes/status"]),
                rule(
                    &["get", "list", "update", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(UPDATE, &[""], &["persistentvolumeclaims/status"]),
                rule(&["create", "delete", "get", "list", "watch"], &[""], &["pods"]),
                rule(GET_LIST_WATCH, &["storage.k8s.io"], &["storageclasses"]),
                rule(LIST_WATCH, &[""], &["nodes"]),
                rule(&["watch"], &[""], &["events"]),
            ],
            true,
        ),
        (
            "pod-garbage-collector",
            vec![
                rule(&["delete", "list", "watch"], &[""], &["pods"]),
                rule(GET_LIST_WATCH, &[""], &["nodes"]),
                rule(&["patch"], &[""], &["pods/status"]),
            ],
            false,
        ),
        (
            "pv-protection-controller",
            vec![rule(
                &["get", "list", "update", "watch"],
                &[""],
                &["persistentvolumes"],
            )],
            true,
        ),
        (
            "pvc-protection-controller",
            vec![
                rule(
                    &["get", "list", "update", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(UPDATE, &[""], &["persistentvolumeclaims/status"]),
                rule(GET_LIST_WATCH, &[""], &["pods"]),
            ],
            true,
        ),
        (
            "replicaset-controller",
            vec![
                rule(&["get", "list", "update", "watch"], APPS, &["replicasets"]),
                rule(UPDATE, APPS, &["replicasets/status"]),
                rule(UPDATE, APPS, &["replicasets/finalizers"]),
                rule(&["create", "delete", "list", "patch", "watch"], &[""], &["pods"]),
            ],
            true,
        ),
        (
            "replication-controller",
            vec![
                rule(
                    &["get", "list", "update", "watch"],
                    &[""],
                    &["replicationcontrollers"],
                ),
                rule(UPDATE, &[""], &["replicationcontrollers/status"]),
                rule(UPDATE, &[""], &["replicationcontrollers/finalizers"]),
                rule(&["create", "delete", "list", "patch", "watch"], &[""], &["pods"]),
            ],
            true,
        ),
        (
            "resourcequota-controller",
            vec![
                rule(LIST_WATCH, &["*"], &["*"]),
                rule(UPDATE, &[""], &["resourcequotas/status"]),
            ],
            true,
        ),
        (
            "root-ca-cert-publisher",
            vec![rule(&["create", "update"], &[""], &["configmaps"])],
            true,
        ),
        (
            "route-controller",
            vec![
                rule(LIST_WATCH, &[""], &["nodes"]),
                rule(&["patch"], &[""], &["nodes/status"]),
            ],
            true,
        ),
        (
            "service-account-controller",
            vec![rule(&["create"], &[""], &["serviceaccounts"])],
            true,
        ),
        (
            "service-controller",
            vec![
                rule(GET_LIST_WATCH, &[""], &["services"]),
                rule(PATCH_UPDATE, &[""], &["services/status"]),
                rule(LIST_WATCH, &[""], &["nodes"]),
            ],
            true,
        ),
        (
            "statefulset-controller",
            vec![
                rule(LIST_WATCH, &[""], &["pods"]),
                rule(GET_LIST_WATCH, &["apps"], &["statefulsets"]),
                rule(UPDATE, &["apps"], &["statefulsets/status"]),
                rule(UPDATE, &["apps"], &["statefulsets/finalizers"]),
                rule(&["create", "delete", "get", "patch", "update"], &[""], &["pods"]),
                rule(CRUD, &["apps"], &["controllerrevisions"]),
                rule(
                    &["create", "get", "list", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(&["delete", "update"], &[""], &["persistentvolumeclaims"]),
                rule(UPDATE, &[""], &["pods/finalizers"]),
            ],
            true,
        ),
        (
            "ttl-after-finished-controller",
            vec![rule(&["delete", "get", "list", "watch"], &["batch"], &["jobs"])],
            true,
        ),
        (
            "ttl-controller",
            vec![rule(&["list", "patch", "update", "watch"], &[""], &["nodes"])],
            true,
        ),
        (
            "validatingadmissionpolicy-status-controller",
            vec![
                rule(
                    GET_LIST_WATCH,
                    &["admissionregistration.k8s.io"],
                    &["validatingadmissionpolicies"],
                ),
                rule(
                    &["get", "patch", "update"],
                    &["admissionregistration.k8s.io"],
                    &["validatingadmissionpolicies/status"],
                ),
            ],
            true,
        ),
    ]
}

/// The controllers' ClusterRoles and the simulated-node agent's.
pub fn roles() -> Vec<Value> {
    let mut roles: Vec<Value> = controllers()
        .into_iter()
        .map(|(name, mut rules, events)| {
            if events {
                rules.extend(events_rule());
            }
            cluster_role(&format!("{CONTROLLER_ROLE_PREFIX}{name}"), rules)
        })
        .collect();
    let mut simulated = vec![
        rule(
            &["create", "delete", "get", "list", "patch", "update", "watch"],
            &[""],
            &["nodes"],
        ),
        rule(PATCH_UPDATE, &[""], &["nodes/status"]),
        rule(CRUD, &["coordination.k8s.io"], &["leases"]),
        rule(&["delete", "get", "list", "watch"], &[""], &["pods"]),
        rule(PATCH_UPDATE, &[""], &["pods/status"]),
    ];
    simulated.extend(events_rule());
    roles.push(cluster_role(SIMULATED_NODES_USER, simulated));
    roles
}

/// The bindings of those roles: `system:controller:<name>` to `kube-system/<name>`.
pub fn bindings() -> Vec<Value> {
    let mut bindings: Vec<Value> = controllers()
        .into_iter()
        .map(|(name, _, _)| {
            let subject = json!({"kind": "ServiceAccount", "name": name, "namespace": CONTROLLER_NAMESPACE});
            binding_of(&format!("{CONTROLLER_ROLE_PREFIX}{name}"), subject)
        })
        .collect();
    let user = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": SIMULATED_NODES_USER});
    bindings.push(binding_of(SIMULATED_NODES_USER, user));
    bindings
}

/// The namespaced Roles of the bootstrap-token controllers, as upstream's namespace policy:
/// the bootstrap signer reads token Secrets in kube-system and signs `cluster-info` in
/// kube-public; the token cleaner deletes expired token Secrets.
pub fn namespaced_roles() -> Vec<Value> {
    let role = |ns: &str, name: &str, rules: Vec<Value>| {
        let mut r = cluster_role(&format!("{CONTROLLER_ROLE_PREFIX}{name}"), rules);
        r["kind"] = json!("Role");
        r["metadata"]["namespace"] = json!(ns);
        r
    };
    let mut signer_public = vec![
        rule(&["get", "list", "watch"], &[""], &["configmaps"]),
        super::bootstrap::named(&["update"], &[""], &["configmaps"], &["cluster-info"]),
    ];
    signer_public.extend(events_rule());
    let mut cleaner = vec![rule(&["delete", "get", "list", "watch"], &[""], &["secrets"])];
    cleaner.extend(events_rule());
    vec![
        role(
            CONTROLLER_NAMESPACE,
            "bootstrap-signer",
            vec![rule(&["get", "list", "watch"], &[""], &["secrets"])],
        ),
        role("kube-public", "bootstrap-signer", signer_public),
        role(CONTROLLER_NAMESPACE, "token-cleaner", cleaner),
    ]
}

/// Their RoleBindings, to the controllers' ServiceAccounts in kube-system.
pub fn namespaced_bindings() -> Vec<Value> {
    namespaced_roles()
        .into_iter()
        .map(|role| {
            let name = role["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let ns = role["metadata"]["namespace"].clone();
            let account = name.trim_start_matches(CONTROLLER_ROLE_PREFIX);
            let subject =
                json!({"kind": "ServiceAccount", "name": account, "namespace": CONTROLLER_NAMESPACE});
            let mut b = binding_of(&name, subject);
            b["kind"] = json!("RoleBinding");
            b["roleRef"]["kind"] = json!("Role");
            b["metadata"]["namespace"] = ns;
            b
        })
        .collect()
}

fn binding_of(role: &str, subject: Value) -> Value {
    let mut b = super::bootstrap::binding(role, &[]);
    b["subjects"] = json!([subject]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_controller_role_is_bound_to_its_service_account() {
        let roles = roles();
        let bindings = bindings();
        assert_eq!(roles.len(), bindings.len());
        let deployment = bindings
            .iter()
            .find(|b| b["metadata"]["name"] == "system:controller:deployment-controller")
            .expect("deployment controller binding");
        assert_eq!(
            deployment["subjects"][0],
            json!({"kind": "ServiceAccount", "name": "deployment-controller", "namespace": "kube-system"})
        );
        assert_eq!(
            deployment["roleRef"]["name"],
            "system:controller:deployment-controller"
        );
        for r in &roles {
            let name = r["metadata"]["name"].as_str().unwrap();
            assert!(
                bindings.iter().any(|b| b["roleRef"]["name"] == name),
                "{name} unbound"
            );
        }
    }

    #[test]
    fn events_rule_only_where_upstream_grants_it() {
        let has_events = |name: &str| {
            roles()
                .into_iter()
                .find(|r| r["metadata"]["name"] == format!("{CONTROLLER_ROLE_PREFIX}{name}"))
                .unwrap()["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| {
                    r["resources"] == json!(["events"]) && r["verbs"] == json!(["create", "patch", "update"])
                })
        };
        assert!(has_events("replicaset-controller"));
        assert!(!has_events("namespace-controller"));
        assert!(!has_events("pod-garbage-collector"));
    }
}
