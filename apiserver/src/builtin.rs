//! The built-in rows of the descriptor table, generated from k8s-openapi: group, version, kind,
//! plural, scope and list kind come from the crate's `Resource` / `ListableResource` constants;
//! whether a type has a `status` is found by round-tripping one. The few facts k8s-openapi does not
//! carry (short names, categories, extra subresources) are in [`facts`]; selectable fields come
//! from [`crate::field_set`].

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::descriptor::{ResourceDescriptor, SubresourceDescriptor, SubresourceKind, Verbs, VirtualKind};

/// Maps a k8s-openapi scope marker type to "namespaced or not".
pub trait Scoped {
    /// True for namespaced resources.
    const NAMESPACED: bool;
}

impl Scoped for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scoped for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// Decodes `value` as `K` and encodes it again; the error names the offending field path.
pub fn round_trip<K: Serialize + DeserializeOwned>(value: &Value) -> Result<Value, String> {
    let typed: K = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path.is_empty() || path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// True when `K` has a `status` field: a `status: {}` survives a round trip.
fn has_status_field<K: Serialize + DeserializeOwned + Default>() -> bool {
    let Ok(mut v) = serde_json::to_value(K::default()) else {
        return false;
    };
    let Some(obj) = v.as_object_mut() else {
        return false;
    };
    obj.insert("status".into(), Value::Object(Default::default()));
    round_trip::<K>(&v)
        .ok()
        .is_some_and(|out| out.get("status").is_some())
}

/// The storage prefix of a group/resource: `/registry/<resource>/` for core, else
/// `/registry/<group>/<resource>/` (shared by all versions).
pub fn storage_prefix(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("/registry/{resource}/")
    } else {
        format!("/registry/{group}/{resource}/")
    }
}

/// The row of a listable (stored) built-in type.
pub fn stored<K>() -> ResourceDescriptor
where
    K: k8s_openapi::ListableResource + Serialize + DeserializeOwned + Default,
    K::Scope: Scoped,
{
    let mut d = base::<K>(K::LIST_KIND);
    if has_status_field::<K>() {
        d.subresources.push(SubresourceDescriptor {
            name: "status".into(),
            kind: SubresourceKind::Status,
            response_group: K::GROUP.into(),
            response_version: K::VERSION.into(),
            response_kind: K::KIND.into(),
            verbs: vec!["get".into(), "patch".into(), "update".into()],
        });
    }
    facts(&mut d);
    d
}

/// The row of a create-only virtual type (reviews, bindings).
pub fn virtual_row<K>(kind: VirtualKind) -> ResourceDescriptor
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned,
    K::Scope: Scoped,
{
    let mut d = base::<K>("");
    d.verbs = Verbs::CREATE_ONLY;
    d.virtual_kind = Some(kind);
    d
}

fn base<K>(list_kind: &str) -> ResourceDescriptor
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned,
    K::Scope: Scoped,
{
    ResourceDescriptor {
        group: K::GROUP.into(),
        version: K::VERSION.into(),
        kind: K::KIND.into(),
        list_kind: list_kind.into(),
        resource: K::URL_PATH_SEGMENT.into(),
        singular: K::KIND.to_ascii_lowercase(),
        namespaced: <K::Scope as Scoped>::NAMESPACED,
        verbs: Verbs::ALL,
        short_names: Vec::new(),
        categories: Vec::new(),
        subresources: Vec::new(),
        storage_prefix: storage_prefix(K::GROUP, K::URL_PATH_SEGMENT),
        round_trip: Some(round_trip::<K>),
        selectable_fields: crate::field_set::FieldSet::builtin(K::GROUP, K::KIND),
        return_deleted_object: false,
        virtual_kind: None,
        openapi_schema: None,
        hooks: None,
    }
}

fn sub(name: &str, kind: SubresourceKind, gvk: (&str, &str, &str), verbs: &[&str]) -> SubresourceDescriptor {
    SubresourceDescriptor {
        name: name.into(),
        kind,
        response_group: gvk.0.into(),
        response_version: gvk.1.into(),
        response_kind: gvk.2.into(),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
    }
}

/// Upstream facts k8s-openapi does not carry: short names, categories, subresources beyond
/// `status` and delete answers.
fn facts(d: &mut ResourceDescriptor) {
    let strs = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (short, categories): (&[&str], &[&str]) = match (d.group.as_str(), d.resource.as_str()) {
        ("", "pods") => (&["po"], &["all"]),
        ("", "services") => (&["svc"], &["all"]),
        ("", "replicationcontrollers") => (&["rc"], &["all"]),
        ("", "configmaps") => (&["cm"], &[]),
        ("", "namespaces") => (&["ns"], &[]),
        ("", "nodes") => (&["no"], &[]),
        ("", "persistentvolumes") => (&["pv"], &[]),
        ("", "persistentvolumeclaims") => (&["pvc"], &[]),
        ("", "endpoints") => (&["ep"], &[]),
        ("", "events") | ("events.k8s.io", "events") => (&["ev"], &[]),
        ("", "limitranges") => (&["limits"], &[]),
        ("", "resourcequotas") => (&["quota"], &[]),
        ("", "serviceaccounts") => (&["sa"], &[]),
        ("", "componentstatuses") => (&["cs"], &[]),
        ("apps", "deployments") => (&["deploy"], &["all"]),
        ("apps", "replicasets") => (&["rs"], &["all"]),
        ("apps", "statefulsets") => (&["sts"], &["all"]),
        ("apps", "daemonsets") => (&["ds"], &["all"]),
        ("batch", "jobs") => (&[], &["all"]),
        ("batch", "cronjobs") => (&["cj"], &["all"]),
        ("autoscaling", "horizontalpodautoscalers") => (&["hpa"], &["all"]),
        ("networking.k8s.io", "ingresses") => (&["ing"], &[]),
        ("networking.k8s.io", "networkpolicies") => (&["netpol"], &[]),
        ("policy", "poddisruptionbudgets") => (&["pdb"], &[]),
        ("scheduling.k8s.io", "priorityclasses") => (&["pc"], &[]),
        ("storage.k8s.io", "storageclasses") => (&["sc"], &[]),
        ("certificates.k8s.io", "certificatesigningrequests") => (&["csr"], &[]),
        ("apiextensions.k8s.io", "customresourcedefinitions") => (&["crd", "crds"], &["api-extensions"]),
        ("apiregistration.k8s.io", "apiservices") => (&[], &["api-extensions"]),
        ("admissionregistration.k8s.io", _) => (&[], &["api-extensions"]),
        _ => (&[], &[]),
    };
    d.short_names = strs(short);
    d.categories = strs(categories);

    let scale = ("autoscaling", "v1", "Scale");
    let scale_verbs = ["get", "patch", "update"];
    match (d.group.as_str(), d.resource.as_str()) {
        ("apps", "deployments" | "replicasets" | "statefulsets") | ("", "replicationcontrollers") => {
            d.subresources
                .push(sub("scale", SubresourceKind::Scale, scale, &scale_verbs));
        }
        ("", "pods") => {
            d.subresources.push(sub(
                "binding",
                SubresourceKind::Binding,
                ("", "v1", "Binding"),
                &["create"],
            ));
            d.subresources.push(sub(
                "eviction",
                SubresourceKind::Eviction,
                ("policy", "v1", "Eviction"),
                &["create"],
            ));
            d.subresources.push(sub(
                "ephemeralcontainers",
                SubresourceKind::EphemeralContainers,
                ("", "v1", "Pod"),
                &scale_verbs,
            ));
            d.return_deleted_object = true;
        }
        ("", "namespaces") => {
            d.subresources.push(sub(
                "finalize",
                SubresourceKind::Finalize,
                ("", "v1", "Namespace"),
                &["update"],
            ));
        }
        ("", "services") => d.return_deleted_object = true,
        ("", "componentstatuses") => {
            d.verbs = Verbs::READ_ONLY;
            d.virtual_kind = Some(VirtualKind::ComponentStatus);
        }
        ("", "serviceaccounts") => d.subresources.push(sub(
            "token",
            SubresourceKind::Token,
            ("authentication.k8s.io", "v1", "TokenRequest"),
            &["create"],
        )),
        ("certificates.k8s.io", "certificatesigningrequests") => {
            let gvk = (d.group.clone(), d.version.clone(), d.kind.clone());
            d.subresources.push(sub(
                "approval",
                SubresourceKind::Approval,
                (&gvk.0, &gvk.1, &gvk.2),
                &scale_verbs,
            ));
        }
        _ => {}
    }
}

/// Calls the macro `$m` with the path of every stored built-in kind k8s-openapi has: [`rows`] and
/// the OpenAPI collector walk this one list.
macro_rules! with_stored_kinds {
    ($m:ident) => {
        $m![
            k8s_openapi::api::admissionregistration::v1::MutatingAdmissionPolicy,
            k8s_openapi::api::admissionregistration::v1::MutatingAdmissionPolicyBinding,
            k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
            k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy,
            k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
            k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
            k8s_openapi::api::admissionregistration::v1alpha1::MutatingAdmissionPolicy,
            k8s_openapi::api::admissionregistration::v1alpha1::MutatingAdmissionPolicyBinding,
            k8s_openapi::api::admissionregistration::v1beta1::MutatingAdmissionPolicy,
            k8s_openapi::api::admissionregistration::v1beta1::MutatingAdmissionPolicyBinding,
            k8s_openapi::api::apiserverinternal::v1alpha1::StorageVersion,
            k8s_openapi::api::apps::v1::ControllerRevision,
            k8s_openapi::api::apps::v1::DaemonSet,
            k8s_openapi::api::apps::v1::Deployment,
            k8s_openapi::api::apps::v1::ReplicaSet,
            k8s_openapi::api::apps::v1::StatefulSet,
            k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler,
            k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
            k8s_openapi::api::batch::v1::CronJob,
            k8s_openapi::api::batch::v1::Job,
            k8s_openapi::api::certificates::v1::CertificateSigningRequest,
            k8s_openapi::api::certificates::v1::ClusterTrustBundle,
            k8s_openapi::api::certificates::v1::PodCertificateRequest,
            k8s_openapi::api::certificates::v1beta1::ClusterTrustBundle,
            k8s_openapi::api::certificates::v1beta1::PodCertificateRequest,
            k8s_openapi::api::coordination::v1::Lease,
            k8s_openapi::api::coordination::v1alpha2::LeaseCandidate,
            k8s_openapi::api::coordination::v1beta1::LeaseCandidate,
            k8s_openapi::api::core::v1::ComponentStatus,
            k8s_openapi::api::core::v1::ConfigMap,
            k8s_openapi::api::core::v1::Endpoints,
            k8s_openapi::api::core::v1::Event,
            k8s_openapi::api::core::v1::LimitRange,
            k8s_openapi::api::core::v1::Namespace,
            k8s_openapi::api::core::v1::Node,
            k8s_openapi::api::core::v1::PersistentVolume,
            k8s_openapi::api::core::v1::PersistentVolumeClaim,
            k8s_openapi::api::core::v1::Pod,
            k8s_openapi::api::core::v1::PodTemplate,
            k8s_openapi::api::core::v1::ReplicationController,
            k8s_openapi::api::core::v1::ResourceQuota,
            k8s_openapi::api::core::v1::Secret,
            k8s_openapi::api::core::v1::Service,
            k8s_openapi::api::core::v1::ServiceAccount,
            k8s_openapi::api::discovery::v1::EndpointSlice,
            k8s_openapi::api::events::v1::Event,
            k8s_openapi::api::flowcontrol::v1::FlowSchema,
            k8s_openapi::api::flowcontrol::v1::PriorityLevelConfiguration,
            k8s_openapi::api::lifecycle::v1alpha1::Eviction,
            k8s_openapi::api::lifecycle::v1alpha1::EvictionRequest,
            k8s_openapi::api::networking::v1::IPAddress,
            k8s_openapi::api::networking::v1::Ingress,
            k8s_openapi::api::networking::v1::IngressClass,
            k8s_openapi::api::networking::v1::NetworkPolicy,
            k8s_openapi::api::networking::v1::ServiceCIDR,
            k8s_openapi::api::node::v1::RuntimeClass,
            k8s_openapi::api::policy::v1::PodDisruptionBudget,
            k8s_openapi::api::rbac::v1::ClusterRole,
            k8s_openapi::api::rbac::v1::ClusterRoleBinding,
            k8s_openapi::api::rbac::v1::Role,
            k8s_openapi::api::rbac::v1::RoleBinding,
            k8s_openapi::api::resource::v1::DeviceClass,
            k8s_openapi::api::resource::v1::DeviceTaintRule,
            k8s_openapi::api::resource::v1::ResourceClaim,
            k8s_openapi::api::resource::v1::ResourceClaimTemplate,
            k8s_openapi::api::resource::v1::ResourceSlice,
            k8s_openapi::api::resource::v1alpha3::DeviceTaintRule,
            k8s_openapi::api::resource::v1alpha3::ResourcePoolStatusRequest,
            k8s_openapi::api::resource::v1beta1::DeviceClass,
            k8s_openapi::api::resource::v1beta1::ResourceClaim,
            k8s_openapi::api::resource::v1beta1::ResourceClaimTemplate,
            k8s_openapi::api::resource::v1beta1::ResourceSlice,
            k8s_openapi::api::resource::v1beta2::DeviceClass,
            k8s_openapi::api::resource::v1beta2::DeviceTaintRule,
            k8s_openapi::api::resource::v1beta2::ResourceClaim,
            k8s_openapi::api::resource::v1beta2::ResourceClaimTemplate,
            k8s_openapi::api::resource::v1beta2::ResourceSlice,
            k8s_openapi::api::scheduling::v1::PriorityClass,
            k8s_openapi::api::scheduling::v1alpha3::CompositePodGroup,
            k8s_openapi::api::scheduling::v1alpha3::PodGroup,
            k8s_openapi::api::scheduling::v1alpha3::Workload,
            k8s_openapi::api::scheduling::v1beta1::PodGroup,
            k8s_openapi::api::scheduling::v1beta1::Workload,
            k8s_openapi::api::storage::v1::CSIDriver,
            k8s_openapi::api::storage::v1::CSINode,
            k8s_openapi::api::storage::v1::CSIStorageCapacity,
            k8s_openapi::api::storage::v1::StorageClass,
            k8s_openapi::api::storage::v1::VolumeAttachment,
            k8s_openapi::api::storage::v1::VolumeAttributesClass,
            k8s_openapi::api::storagemigration::v1::StorageVersionMigration,
            k8s_openapi::api::storagemigration::v1beta1::StorageVersionMigration,
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
            k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
        ]
    };
}
pub(crate) use with_stored_kinds;

/// Every built-in row k8s-openapi has (alpha versions included; [`crate::Config`] decides whether
/// they are served).
pub fn rows() -> Vec<ResourceDescriptor> {
    use k8s_openapi::api::{authentication::v1 as authn, authorization::v1 as authz, core::v1 as core};
    macro_rules! stored_rows {
        ($($ty:path),* $(,)?) => { vec![$(stored::<$ty>()),*] };
    }
    let mut rows = with_stored_kinds!(stored_rows);
    rows.extend([
        virtual_row::<authz::SelfSubjectAccessReview>(VirtualKind::AccessReview),
        virtual_row::<authz::SubjectAccessReview>(VirtualKind::AccessReview),
        virtual_row::<authz::LocalSubjectAccessReview>(VirtualKind::AccessReview),
        virtual_row::<authz::SelfSubjectRulesReview>(VirtualKind::RulesReview),
        virtual_row::<authn::SelfSubjectReview>(VirtualKind::SelfSubjectReview),
        virtual_row::<authn::TokenReview>(VirtualKind::TokenReview),
        virtual_row::<core::Binding>(VirtualKind::Binding),
    ]);
    // events.k8s.io/v1 Events are stored as core v1 Events, as upstream does.
    for row in rows
        .iter_mut()
        .filter(|r| r.group == "events.k8s.io" && r.resource == "events")
    {
        row.storage_prefix = storage_prefix("", "events");
        row.hooks = Some(std::sync::Arc::new(crate::registry::event_versions::EventsV1));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(rows: &'a [ResourceDescriptor], g: &str, v: &str, r: &str) -> &'a ResourceDescriptor {
        rows.iter()
            .find(|d| d.group == g && d.version == v && d.resource == r)
            .unwrap_or_else(|| panic!("no row {g}/{v}/{r}"))
    }

    #[test]
    fn rows_come_from_k8s_openapi() {
        let rows = rows();
        assert!(rows.len() > 90, "{}", rows.len());
        let pods = find(&rows, "", "v1", "pods");
        assert_eq!((pods.kind.as_str(), pods.list_kind.as_str()), ("Pod", "PodList"));
        assert!(pods.namespaced && pods.has_status());
        assert_eq!(pods.short_names, ["po"]);
        assert_eq!(pods.categories, ["all"]);
        assert_eq!(pods.storage_prefix, "/registry/pods/");
        let deploy = find(&rows, "apps", "v1", "deployments");
        assert!(deploy.subresource(SubresourceKind::Scale).is_some());
        assert_eq!(deploy.storage_prefix, "/registry/apps/deployments/");
        let cm = find(&rows, "", "v1", "configmaps");
        assert!(!cm.has_status());
        let ns = find(&rows, "", "v1", "namespaces");
        assert!(!ns.namespaced && ns.has_status());
        let ssar = find(&rows, "authorization.k8s.io", "v1", "selfsubjectaccessreviews");
        assert_eq!(ssar.verbs, Verbs::CREATE_ONLY);
        assert_eq!(ssar.singular, "selfsubjectaccessreview");
    }

    #[test]
    fn round_trip_reports_the_field_path() {
        let err = round_trip::<k8s_openapi::api::apps::v1::Deployment>(&serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"replicas": "three", "selector": {}, "template": {}}
        }))
        .unwrap_err();
        assert!(err.starts_with("spec.replicas: invalid type"), "{err}");
    }
}
