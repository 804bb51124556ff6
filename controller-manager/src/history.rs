//! ControllerRevision history, shared by the StatefulSet and DaemonSet controllers (upstream's
//! `pkg/controller/history` and the DaemonSet's own history code): a workload's pod template is
//! snapshotted as a revision whose data is the strategic-merge patch
//! `{"spec":{"template":{...,"$patch":"replace"}}}` (what `kubectl rollout undo` applies and
//! `kubectl rollout history --revision` shows), named `<owner>-<hash>`, numbered, with a
//! collision count that changes the hash when two different templates hash alike. The
//! controllers list (and adopt) their revisions, find the one equal to the current template,
//! create it when missing, renumber it when an old template comes back, and truncate the
//! history beyond `revisionHistoryLimit`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use api_util::labels::LabelSelector;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::deployment::util::safe_encode;
use crate::informer::Store;
use crate::ownership::{self, Owner};

/// The label a revision carries with its hash (upstream's `ControllerRevisionHashLabel`).
pub const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The label a workload's pods carry naming their revision (StatefulSet: the revision's name;
/// DaemonSet: its hash).
pub const POD_REVISION_LABEL: &str = "controller-revision-hash";

/// How long a revision's name prefix may be (upstream's limit, leaving room for the hash).
const MAX_PREFIX: usize = 223;

/// Failures of history operations.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// Claiming revisions failed.
    #[error(transparent)]
    Claim(#[from] ownership::ClaimError),
}

/// The revision data of a template: the patch that puts it back in place (keys sorted).
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), Value::String("replace".into()));
    }
    json!({ "spec": { "template": t } })
}

/// The template a revision's data holds (what applying it puts back), if it has one.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.0.pointer("/spec/template")?.clone();
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// 32-bit FNV-1 (not 1a) over `bytes`, continuing from `h`.
fn fnv1_32(mut h: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        h = h.wrapping_mul(0x0100_0193);
        h ^= u32::from(*b);
    }
    h
}

/// Upstream's `HashControllerRevision`: FNV-1 over the data and, when set, the collision
/// count's decimal form, printed in the safe alphabet.
pub fn hash_data(data: &Value, collision_count: Option<i32>) -> String {
    let mut h = fnv1_32(0x811c_9dc5, &serde_json::to_vec(data).unwrap_or_default());
    if let Some(c) = collision_count {
        h = fnv1_32(h, c.to_string().as_bytes());
    }
    safe_encode(&h.to_string())
}

/// `<prefix>-<hash>`, the prefix cut to upstream's length limit.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let cut = prefix
        .char_indices()
        .nth(MAX_PREFIX)
        .map_or(prefix, |(i, _)| &prefix[..i]);
    format!("{cut}-{hash}")
}

/// A revision to create: owned (controller) by `owner`, labelled with the template's labels
/// plus `hash_label: hash`, named `<owner>-<hash>`.
pub fn new_revision(
    owner: &Owner,
    labels: &BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
    data: Value,
    number: i64,
    hash_label: &str,
    hash: &str,
) -> ControllerRevision {
    let mut labels = labels.clone();
    labels.insert(hash_label.to_string(), hash.to_string());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&owner.name, hash)),
            namespace: Some(owner.namespace.clone()),
            labels: Some(labels),
            annotations,
            owner_references: Some(vec![owner.controller_ref()]),
            ..ObjectMeta::default()
        },
        data: RawExtension(data),
        revision: Some(number),
    }
}

/// True when two revisions hold the same data.
pub fn same_data(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    a.data.0 == b.data.0
}

/// Sorts revisions oldest first (by number, then creation, then name), as upstream does.
pub fn sort(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
}

/// The number the next revision gets: one more than the highest.
pub fn next_number(revisions: &[ControllerRevision]) -> i64 {
    revisions.iter().filter_map(|r| r.revision).max().unwrap_or(0) + 1
}

/// The revisions to delete so at most `limit` revisions that are not `live` remain: the oldest
/// first. `revisions` must be sorted oldest first.
pub fn to_truncate<'a>(
    revisions: &'a [ControllerRevision],
    live: &HashSet<String>,
    limit: i32,
) -> Vec<&'a str> {
    let history: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    let excess = history.len().saturating_sub(limit.max(0) as usize);
    history[..excess]
        .iter()
        .map(|r| r.metadata.name.as_deref().unwrap_or_default())
        .collect()
}

/// A workload's revisions through the shared informer's store and the API.
#[derive(Clone)]
pub struct History {
    client: kube::Client,
    store: Arc<Store<ControllerRevision>>,
}

impl History {
    /// History read from `store`, written through `client`.
    pub fn new(client: kube::Client, store: Arc<Store<ControllerRevision>>) -> Self {
        History { client, store }
    }

    /// The owner's revisions, sorted oldest first: those it controls that match `selector`,
    /// adopting matching orphans and releasing its own that no longer match.
    pub async fn claim(
        &self,
        owner: &Owner,
        selector: &LabelSelector,
        can_adopt: ownership::CanAdopt,
    ) -> Result<Vec<ControllerRevision>, HistoryError> {
        let api = self.api(&owner.namespace);
        let candidates = self.store.list(&owner.namespace);
        let claimed = ownership::claim(
            &api,
            owner,
            candidates,
            |r| selector.matches(&r.metadata.labels.clone().unwrap_or_default()),
            can_adopt,
        )
        .await?;
        let mut revisions: Vec<ControllerRevision> = claimed.iter().map(|r| (**r).clone()).collect();
        sort(&mut revisions);
        Ok(revisions)
    }

    /// Creates the revision `build(collision_count)` makes; when a different revision already
    /// holds that name the collision count is raised and the next name tried. Returns the
    /// revision (the existing one when an equal one was there).
    pub async fn create(
        &self,
        namespace: &str,
        collision_count: &mut i32,
        build: impl Fn(i32) -> ControllerRevision,
    ) -> Result<ControllerRevision, HistoryError> {
        let api = self.api(namespace);
        loop {
            let rev = build(*collision_count);
            match api.create(&PostParams::default(), &rev).await {
                Ok(created) => return Ok(created),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let existing = api.get(&rev.name_any()).await?;
                    if same_data(&existing, &rev) {
                        return Ok(existing);
                    }
                    *collision_count = collision_count.saturating_add(1);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Gives `rev` the number `number` (an older template came back).
    pub async fn renumber(
        &self,
        rev: &ControllerRevision,
        number: i64,
    ) -> Result<ControllerRevision, HistoryError> {
        let mut updated = rev.clone();
        updated.revision = Some(number);
        let api = self.api(&rev.namespace().unwrap_or_default());
        Ok(api
            .replace(&rev.name_any(), &PostParams::default(), &updated)
            .await?)
    }

    /// Deletes the revision `name` (already gone is fine).
    pub async fn delete(&self, namespace: &str, name: &str) -> Result<(), HistoryError> {
        match self.api(namespace).delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces `rev` as given (e.g. with a label added).
    pub async fn update(&self, rev: &ControllerRevision) -> Result<ControllerRevision, HistoryError> {
        let api = self.api(&rev.namespace().unwrap_or_default());
        Ok(api.replace(&rev.name_any(), &PostParams::default(), rev).await?)
    }

    fn api(&self, namespace: &str) -> Api<ControllerRevision> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    fn rev(name: &str, number: i64) -> ControllerRevision {
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: RawExtension(Value::Null),
            revision: Some(number),
        }
    }

    #[test]
    fn the_patch_replaces_the_template_and_round_trips() {
        let t = template("nginx:1");
        let data = template_patch(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            data["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1"
        );
        let r = ControllerRevision {
            data: RawExtension(data),
            ..rev("web-1", 1)
        };
        assert_eq!(template_of(&r), Some(t));
    }

    #[test]
    fn hashes_follow_the_data_and_the_collision_count() {
        let a = template_patch(&template("nginx:1"));
        let b = template_patch(&template("nginx:2"));
        assert_eq!(hash_data(&a, None), hash_data(&a, None), "stable");
        assert_ne!(hash_data(&a, None), hash_data(&b, None));
        assert_ne!(hash_data(&a, Some(0)), hash_data(&a, Some(1)));
        let h = hash_data(&a, Some(0));
        assert!(
            h.bytes().all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c)),
            "{h}"
        );
        // FNV-1 of "a" is 0x050c5d7e: the digits of 84696446 encoded.
        assert_eq!(fnv1_32(0x811c_9dc5, b"a"), 0x050c_5d7e);
    }

    #[test]
    fn names_are_owner_dash_hash_with_a_bounded_prefix() {
        assert_eq!(revision_name("web", "abc"), "web-abc");
        let long = "x".repeat(300);
        assert_eq!(revision_name(&long, "h").len(), MAX_PREFIX + 2);
    }

    #[test]
    fn new_revisions_carry_labels_owner_and_number() {
        let owner = Owner {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: "web".into(),
            namespace: "ns".into(),
            uid: "u1".into(),
            deleting: false,
        };
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let r = new_revision(&owner, &labels, None, json!({}), 3, REVISION_HASH_LABEL, "h1");
        assert_eq!(r.metadata.name.as_deref(), Some("web-h1"));
        assert_eq!(r.revision, Some(3));
        let l = r.metadata.labels.unwrap();
        assert_eq!(
            (l["app"].as_str(), l[REVISION_HASH_LABEL].as_str()),
            ("web", "h1")
        );
        assert_eq!(r.metadata.owner_references.unwrap()[0].controller, Some(true));
    }

    #[test]
    fn truncation_keeps_live_revisions_and_the_newest_history() {
        let revs: Vec<ControllerRevision> = (1..=6).map(|i| rev(&format!("r{i}"), i)).collect();
        let live: HashSet<String> = ["r2".to_string(), "r6".to_string()].into();
        assert_eq!(to_truncate(&revs, &live, 2), ["r1", "r3"]);
        assert!(to_truncate(&revs, &live, 10).is_empty());
        assert_eq!(to_truncate(&revs, &live, 0), ["r1", "r3", "r4", "r5"]);
        assert_eq!(next_number(&revs), 7);
        assert_eq!(next_number(&[]), 1);
        let mut shuffled = vec![rev("b", 2), rev("a", 1), rev("c", 2)];
        sort(&mut shuffled);
        let names: Vec<String> = shuffled.iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
