//! Validation of the built-in types as upstream kube-apiserver does it, after defaulting: one
//! table from (group, resource) to the kind's checks, with shared helpers for metadata, the pod
//! template several kinds embed, selectors, names and quantities. Every failure is one
//! [`FieldError`] with upstream's field path and message; the registry answers them as a 422
//! `Invalid` Status.

mod admission;
mod autoscaling;
mod batch;
pub mod certificates;
mod cluster;
mod config;
pub mod field;
mod metadata;
pub mod names;
mod networking;
pub(crate) mod pod;
mod policy;
mod priority;
pub mod quantity;
mod quota;
mod rbac;
mod service;
mod storage;
#[cfg(test)]
mod test_support;
mod workloads;

use serde_json::Value;

use crate::descriptor::ResourceDescriptor;
use crate::error::FieldError;
use field::Errs;

/// Checks of a new object (create, and the new side of an update).
type Check = fn(&Value, &mut Errs);
/// Checks of an update against the stored object (immutability).
type UpdateCheck = fn(&Value, &Value, &mut Errs);

/// What one resource validates.
struct Rules {
    object: Check,
    update: Option<UpdateCheck>,
    status: Option<Check>,
}

const fn rules(object: Check, update: Option<UpdateCheck>, status: Option<Check>) -> Rules {
    Rules {
        object,
        update,
        status,
    }
}

fn pod_spec(obj: &Value, errs: &mut Errs) {
    pod::spec(obj.get("spec").unwrap_or(&Value::Null), "spec", errs);
}

/// The validated resources.
const TABLE: &[(&str, &str, Rules)] = &[
    ("", "pods", rules(pod_spec, Some(pod::update), Some(pod::status))),
    ("", "podtemplates", rules(workloads::pod_template, None, None)),
    (
        "",
        "replicationcontrollers",
        rules(workloads::replication_controller, None, Some(workloads::status)),
    ),
    (
        "apps",
        "deployments",
        rules(
            workloads::deployment,
            Some(workloads::selector_immutable),
            Some(workloads::status),
        ),
    ),
    (
        "apps",
        "replicasets",
        rules(
            workloads::replica_set,
            Some(workloads::selector_immutable),
            Some(workloads::status),
        ),
    ),
    (
        "apps",
        "statefulsets",
        rules(
            workloads::stateful_set,
            Some(workloads::stateful_set_update),
            Some(workloads::status),
        ),
    ),
    (
        "apps",
        "daemonsets",
        rules(
            workloads::daemon_set,
            Some(workloads::selector_immutable),
            Some(workloads::status),
        ),
    ),
    (
        "batch",
        "jobs",
        rules(batch::job, Some(batch::job_update), Some(batch::job_status)),
    ),
    (
        "batch",
        "cronjobs",
        rules(batch::cron_job, Some(batch::cron_job_update), None),
    ),
    ("", "services", rules(service::service, None, None)),
    (
        "",
        "configmaps",
        rules(config::config_map, Some(config::update), None),
    ),
    (
        "",
        "secrets",
        rules(config::secret, Some(config::secret_update), None),
    ),
    ("", "namespaces", rules(cluster::namespace, None, None)),
    ("", "nodes", rules(cluster::node, None, None)),
    ("", "events", rules(cluster::core_event, None, None)),
    ("events.k8s.io", "events", rules(cluster::event, None, None)),
    ("coordination.k8s.io", "leases", rules(cluster::lease, None, None)),
    (
        "",
        "persistentvolumeclaims",
        rules(
            cluster::persistent_volume_claim,
            Some(cluster::persistent_volume_claim_update),
            None,
        ),
    ),
    (
        "rbac.authorization.k8s.io",
        "roles",
        rules(rbac::role, None, None),
    ),
    (
        "rbac.authorization.k8s.io",
        "clusterroles",
        rules(rbac::cluster_role, None, None),
    ),
    (
        "rbac.authorization.k8s.io",
        "rolebindings",
        rules(rbac::role_binding, Some(rbac::binding_update), None),
    ),
    (
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        rules(rbac::cluster_role_binding, Some(rbac::binding_update), None),
    ),
    (
        "networking.k8s.io",
        "ingresses",
        rules(networking::ingress, None, None),
    ),
    (
        "networking.k8s.io",
        "ingressclasses",
        rules(
            networking::ingress_class,
            Some(networking::ingress_class_update),
            None,
        ),
    ),
    (
        "networking.k8s.io",
        "networkpolicies",
        rules(networking::network_policy, None, None),
    ),
    (
        "autoscaling",
        "horizontalpodautoscalers",
        rules(autoscaling::horizontal_pod_autoscaler, None, None),
    ),
    (
        "policy",
        "poddisruptionbudgets",
        rules(policy::pod_disruption_budget, None, None),
    ),
    (
        "storage.k8s.io",
        "storageclasses",
        rules(storage::storage_class, Some(storage::storage_class_update), None),
    ),
    (
        "",
        "persistentvolumes",
        rules(
            storage::persistent_volume,
            Some(storage::persistent_volume_update),
            None,
        ),
    ),
    (
        "scheduling.k8s.io",
        "priorityclasses",
        rules(
            priority::priority_class,
            Some(priority::priority_class_update),
            None,
        ),
    ),
    (
        "",
        "resourcequotas",
        rules(quota::resource_quota, Some(quota::resource_quota_update), None),
    ),
    ("", "limitranges", rules(quota::limit_range, None, None)),
    (
        "certificates.k8s.io",
        "certificatesigningrequests",
        rules(certificates::csr, None, None),
    ),
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        rules(admission::validating, None, None),
    ),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        rules(admission::mutating, None, None),
    ),
];

/// Checks only a create makes (an update of such fields is governed by the update rules).
const CREATE_ONLY: &[(&str, &str, Check)] = &[
    ("", "pods", pod::create),
    ("networking.k8s.io", "ingresses", networking::ingress_create),
];

fn rules_for(desc: &ResourceDescriptor) -> Option<&'static Rules> {
    TABLE
        .iter()
        .find(|(g, r, _)| *g == desc.group && *r == desc.resource)
        .map(|(_, _, rules)| rules)
}

/// Validates a new object (create): metadata, then the resource's own rules.
pub fn validate(desc: &ResourceDescriptor, obj: &Value) -> Vec<FieldError> {
    let mut errs = Errs::default();
    metadata::validate(obj, &mut errs);
    if let Some(rules) = rules_for(desc) {
        (rules.object)(obj, &mut errs);
    }
    for (_, _, check) in CREATE_ONLY
        .iter()
        .filter(|(g, r, _)| *g == desc.group && *r == desc.resource)
    {
        check(obj, &mut errs);
    }
    errs.0
}

/// Validates an update: the new object as on create, then what may not change.
pub fn validate_update(desc: &ResourceDescriptor, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Errs::default();
    metadata::validate(new, &mut errs);
    if let Some(rules) = rules_for(desc) {
        (rules.object)(new, &mut errs);
        if let Some(update) = rules.update {
            update(new, old, &mut errs);
        }
    }
    errs.0
}

/// Validates a write of `pods/ephemeralcontainers`: the pod as on create (its ephemeral
/// containers included), then what may change.
pub fn validate_ephemeral_containers(desc: &ResourceDescriptor, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Errs::default();
    metadata::validate(new, &mut errs);
    if let Some(rules) = rules_for(desc) {
        (rules.object)(new, &mut errs);
    }
    pod::ephemeral_containers_update(new, old, &mut errs);
    errs.0
}

/// Validates an update of a CertificateSigningRequest's conditions and certificate, through
/// the main resource, `status` or `approval`.
pub fn validate_csr_update(new: &Value, old: &Value, write: certificates::CsrWrite) -> Vec<FieldError> {
    let mut errs = Errs::default();
    certificates::csr_update(new, old, write, &mut errs);
    errs.0
}

/// Validates a write of the `status` subresource (the rest of the object is the stored one).
pub fn validate_status(desc: &ResourceDescriptor, new: &Value) -> Vec<FieldError> {
    let mut errs = Errs::default();
    if let Some(status) = rules_for(desc).and_then(|r| r.status) {
        status(new, &mut errs);
    }
    errs.0
}

#[cfg(test)]
mod tests;
