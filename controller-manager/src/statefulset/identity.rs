//! A StatefulSet pod's stable identity and storage: its name `<set>-<ordinal>`, the labels
//! `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and
//! `controller-revision-hash`, hostname and subdomain, one PVC `<claim>-<set>-<ordinal>` per
//! volume claim template mounted as the volume named after the template, and the owner
//! references `persistentVolumeClaimRetentionPolicy` puts on those PVCs.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use crate::history::POD_REVISION_LABEL;
use crate::ownership::Owner;

/// The label naming the pod (upstream's `StatefulSetPodNameLabel`).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying the pod's ordinal (upstream's `PodIndexLabel`).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The first ordinal (`spec.ordinals.start`, else 0).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0)
}

/// `spec.replicas` (default 1).
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.replicas.unwrap_or(1).max(0)
}

/// `<set>-<ordinal>`.
pub fn pod_name(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

/// The parent name and ordinal a pod name encodes (`web-3` → `("web", 3)`).
pub fn parse_name(name: &str) -> Option<(&str, i32)> {
    let (parent, ord) = name.rsplit_once('-')?;
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) || (ord.len() > 1 && ord.starts_with('0')) {
        return None;
    }
    Some((parent, ord.parse().ok()?))
}

/// The ordinal of a pod of `set` (`None` when its name is not `<set>-<n>`).
pub fn ordinal_of(set: &str, pod: &Pod) -> Option<i32> {
    let name = pod.metadata.name.as_deref()?;
    parse_name(name).filter(|(p, _)| *p == set).map(|(_, o)| o)
}

/// `<claim>-<set>-<ordinal>`.
pub fn claim_name(claim: &str, set: &str, ordinal: i32) -> String {
    format!("{claim}-{set}-{ordinal}")
}

/// The set's volume claim templates.
pub fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec.volume_claim_templates.as_deref().unwrap_or_default()
}

/// The PVCs the pod of `ordinal` needs: each template named `<claim>-<set>-<ordinal>`, in the
/// set's namespace, labelled with the template's labels plus the selector's `matchLabels`.
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let set_name = set.name_any();
    let match_labels = set.spec.selector.match_labels.clone().unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|t| {
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(match_labels.clone());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&t.name_any(), &set_name, ordinal)),
                    namespace: set.namespace(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    ..ObjectMeta::default()
                },
                spec: t.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// The pod of `ordinal` made from `template` (a revision's), labelled with `revision`.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let set_name = set.name_any();
    let name = pod_name(&set_name, ordinal);
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(POD_REVISION_LABEL.into(), revision.to_string());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    let service = set.spec.service_name.clone();
    if let Some(service) = service.filter(|s| !s.is_empty()) {
        spec.subdomain = Some(service);
    }
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for t in claim_templates(set) {
        let claim = t.name_any();
        let volume = Volume {
            name: claim.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&claim, &set_name, ordinal),
                read_only: None,
            }),
            ..Volume::default()
        };
        match volumes.iter_mut().find(|v| v.name == claim) {
            Some(v) => *v = volume,
            None => volumes.push(volume),
        }
    }
    if volumes.is_empty() {
        spec.volumes = None;
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![Owner::of(set).controller_ref()]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The identity labels a pod lacks or has wrong (empty when its identity holds).
pub fn missing_identity_labels(set: &StatefulSet, pod: &Pod, ordinal: i32) -> BTreeMap<String, String> {
    let want = [
        (POD_NAME_LABEL, pod_name(&set.name_any(), ordinal)),
        (POD_INDEX_LABEL, ordinal.to_string()),
    ];
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    want.into_iter()
        .filter(|(k, v)| labels.get(*k) != Some(v))
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// `whenDeleted` / `whenScaled` is `Delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Delete the PVCs with the set.
    pub when_deleted: bool,
    /// Delete the PVCs of pods scaled away.
    pub when_scaled: bool,
}

impl Retention {
    /// The set's policy (`Retain` for both when unset).
    pub fn of(set: &StatefulSet) -> Retention {
        let p = set.spec.persistent_volume_claim_retention_policy.as_ref();
        let delete = |v: Option<&String>| v.is_some_and(|v| v == "Delete");
        Retention {
            when_deleted: delete(p.and_then(|p| p.when_deleted.as_ref())),
            when_scaled: delete(p.and_then(|p| p.when_scaled.as_ref())),
        }
    }
}

fn plain_ref(api_version: &str, kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: None,
        block_owner_deletion: None,
    }
}

/// The owner references a PVC of `pod` should carry under `policy` (upstream's
/// `updateClaimOwnerRefForSetAndPod`): the set's when `whenDeleted: Delete` (unless the pod was
/// scaled away under `whenScaled: Delete`), the pod's when it was scaled away
/// (`scaled_down`) under `whenScaled: Delete`; other references are kept. `None` when the
/// current references already comply.
pub fn claim_owner_refs(
    current: &[OwnerReference],
    set: &Owner,
    pod: &Pod,
    policy: Retention,
    scaled_down: bool,
) -> Option<Vec<OwnerReference>> {
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    let want_set = policy.when_deleted && !(policy.when_scaled && scaled_down);
    let want_pod = policy.when_scaled && scaled_down;
    let mut refs: Vec<OwnerReference> = current
        .iter()
        .filter(|r| {
            let is_set = r.uid == set.uid;
            let is_pod = r.uid == pod_uid && r.kind == "Pod";
            (!is_set || want_set) && (!is_pod || want_pod)
        })
        .cloned()
        .collect();
    if want_set && !refs.iter().any(|r| r.uid == set.uid) {
        refs.push(plain_ref(&set.api_version, &set.kind, &set.name, &set.uid));
    }
    if want_pod && !pod_uid.is_empty() && !refs.iter().any(|r| r.uid == pod_uid) {
        refs.push(plain_ref("v1", "Pod", &pod.name_any(), &pod_uid));
    }
    (refs != current).then_some(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set() -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "s1"},
            "spec": {
                "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "nginx"}],
                                      "volumes": [{"name": "www", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www", "labels": {"tier": "disk"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                    "status": {"phase": "Pending"}}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn names_parse_back_to_parent_and_ordinal() {
        assert_eq!(parse_name("web-3"), Some(("web", 3)));
        assert_eq!(parse_name("my-web-12"), Some(("my-web", 12)));
        assert_eq!(parse_name("web-x"), None);
        assert_eq!(parse_name("web-"), None);
        assert_eq!(parse_name("web-01"), None);
        assert_eq!(parse_name("web"), None);
    }

    #[test]
    fn pods_get_identity_storage_and_revision() {
        let s = set();
        let template = s.spec.template.clone();
        let pod = new_pod(&s, &template, 2, "web-abc");
        assert_eq!(pod.metadata.name.as_deref(), Some("web-2"));
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-2");
        assert_eq!(labels[POD_INDEX_LABEL], "2");
        assert_eq!(labels[POD_REVISION_LABEL], "web-abc");
        assert_eq!(labels["app"], "web");
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vols = spec.volumes.as_ref().unwrap();
        assert_eq!(
            vols.len(),
            1,
            "the template's volume of the same name is replaced"
        );
        assert_eq!(
            vols[0].persistent_volume_claim.as_ref().unwrap().claim_name,
            "www-web-2"
        );
        assert!(missing_identity_labels(&s, &pod, 2).is_empty());
        let mut bare = pod.clone();
        bare.metadata.labels = None;
        assert_eq!(missing_identity_labels(&s, &bare, 2).len(), 2);
    }

    #[test]
    fn claims_are_named_per_ordinal_and_carry_the_selector() {
        let c = claims_for(&set(), 0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].metadata.name.as_deref(), Some("www-web-0"));
        let l = c[0].metadata.labels.as_ref().unwrap();
        assert_eq!((l["app"].as_str(), l["tier"].as_str()), ("web", "disk"));
        assert!(c[0].status.is_none());
    }

    #[test]
    fn start_ordinal_and_replicas_default() {
        let mut s = set();
        assert_eq!((start_ordinal(&s), replicas(&s)), (0, 1));
        s.spec.ordinals = Some(serde_json::from_value(json!({"start": 5})).unwrap());
        s.spec.replicas = Some(3);
        assert_eq!((start_ordinal(&s), replicas(&s)), (5, 3));
    }

    #[test]
    fn retention_policy_decides_the_claim_owners() {
        let owner = Owner::of(&set());
        let mut pod = new_pod(&set(), &PodTemplateSpec::default(), 0, "r");
        pod.metadata.uid = Some("p1".into());
        let both = |d, s| Retention {
            when_deleted: d,
            when_scaled: s,
        };
        let uids = |refs: Vec<OwnerReference>| refs.into_iter().map(|r| r.uid).collect::<Vec<_>>();
        // Retain/Retain: nothing to add, and our references are removed.
        assert_eq!(
            claim_owner_refs(&[], &owner, &pod, both(false, false), false),
            None
        );
        let set_ref = plain_ref("apps/v1", "StatefulSet", "web", "s1");
        let other = plain_ref("v1", "ConfigMap", "x", "c1");
        assert_eq!(
            claim_owner_refs(&[set_ref.clone(), other], &owner, &pod, both(false, false), false).map(uids),
            Some(vec!["c1".to_string()])
        );
        // whenDeleted=Delete: the set owns the claim.
        assert_eq!(
            claim_owner_refs(&[], &owner, &pod, both(true, false), true).map(uids),
            Some(vec!["s1".to_string()])
        );
        assert_eq!(
            claim_owner_refs(
                std::slice::from_ref(&set_ref),
                &owner,
                &pod,
                both(true, false),
                false
            ),
            None
        );
        // whenScaled=Delete: the pod owns it once scaled away, the set no longer.
        assert_eq!(
            claim_owner_refs(&[set_ref], &owner, &pod, both(true, true), true).map(uids),
            Some(vec!["p1".to_string()])
        );
        assert_eq!(
            claim_owner_refs(&[], &owner, &pod, both(false, true), false),
            None
        );
        let pod_ref = plain_ref("v1", "Pod", "web-0", "p1");
        assert_eq!(
            claim_owner_refs(&[pod_ref], &owner, &pod, both(false, true), false).map(uids),
            Some(vec![]),
            "scaled back up: the pod's reference goes"
        );
    }
}
