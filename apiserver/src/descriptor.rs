//! The resource descriptor table: one row per served group/version/resource. Every built-in type
//! is a row generated from k8s-openapi's constants ([`crate::builtin`]); CRDs will add rows at run
//! time through [`ResourceTable::install`]. Nothing else in the server knows about a type.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use serde_json::Value;

use crate::error::GroupResource;

/// The REST verbs a resource supports, in the order discovery lists them (alphabetical).
pub const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A set of REST verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verbs(u16);

impl Verbs {
    /// Every verb of a normal stored resource.
    pub const ALL: Verbs = Verbs(0xff);
    /// Only `create` (reviews, bindings).
    pub const CREATE_ONLY: Verbs = Verbs(1);
    /// `get` and `list` (componentstatuses).
    pub const READ_ONLY: Verbs = Verbs(0b1_1000);

    /// True when `verb` is in the set.
    pub fn has(self, verb: &str) -> bool {
        ALL_VERBS
            .iter()
            .position(|v| *v == verb)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The verbs, in discovery order.
    pub fn names(self) -> Vec<String> {
        ALL_VERBS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, v)| v.to_string())
            .collect()
    }
}

/// What a subresource does (only the ones the registry implements are listed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubresourceKind {
    /// `/status`: get/update/patch of `.status` only.
    Status,
    /// `/scale`: an `autoscaling/v1 Scale` view of `spec.replicas`.
    Scale,
    /// `pods/binding`: sets `spec.nodeName`.
    Binding,
    /// `pods/eviction`: deletes the pod.
    Eviction,
    /// `namespaces/finalize`: updates `spec.finalizers`.
    Finalize,
    /// `serviceaccounts/token`: issues a bound ServiceAccount token (TokenRequest).
    Token,
    /// `pods/ephemeralcontainers`: get/update/patch of the pod, changing only
    /// `spec.ephemeralContainers` (adding containers; existing ones stay as they are).
    EphemeralContainers,
    /// `certificatesigningrequests/approval`: get/update/patch of the request, changing only
    /// `status.conditions` (Approved/Denied).
    Approval,
}

/// One subresource of a resource, as discovery shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubresourceDescriptor {
    /// Its name (`status`, `scale`, ...).
    pub name: String,
    /// What it does.
    pub kind: SubresourceKind,
    /// Group of the object it takes and returns.
    pub response_group: String,
    /// Version of that object.
    pub response_version: String,
    /// Kind of that object.
    pub response_kind: String,
    /// Verbs allowed on it.
    pub verbs: Vec<String>,
}

/// Resources that are not stored: the request is answered from the request itself (component
/// statuses: by probing the components).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtualKind {
    /// `SelfSubjectAccessReview`, `SubjectAccessReview`, `LocalSubjectAccessReview`.
    AccessReview,
    /// `SelfSubjectRulesReview`.
    RulesReview,
    /// `SelfSubjectReview` (`kubectl auth whoami`).
    SelfSubjectReview,
    /// `TokenReview`.
    TokenReview,
    /// `core/v1 bindings` (the pod binding, through the collection).
    Binding,
    /// `core/v1 componentstatuses`: read-only, probed on every read.
    ComponentStatus,
}

/// The type check of a built-in: decodes the JSON into the k8s-openapi type and encodes it again,
/// failing with a path-qualified message when a field has the wrong type.
pub type RoundTrip = fn(&Value) -> Result<Value, String>;

/// One served group/version/resource.
#[derive(Clone, Debug)]
pub struct ResourceDescriptor {
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Kind of its list.
    pub list_kind: String,
    /// Resource name (plural), the URL segment.
    pub resource: String,
    /// Singular name (lower-case kind).
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Supported verbs.
    pub verbs: Verbs,
    /// kubectl short names (`po`, `deploy`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Subresources.
    pub subresources: Vec<SubresourceDescriptor>,
    /// Storage key prefix shared by every version of the resource, ending in `/`
    /// (`/registry/pods/`, `/registry/apps/deployments/`).
    pub storage_prefix: String,
    /// The type check for built-ins; None for schemaless rows (CRDs until schemas exist).
    pub round_trip: Option<RoundTrip>,
    /// The field selectors the type supports and where each reads its value.
    pub selectable_fields: crate::field_set::FieldSet,
    /// DELETE answers with the deleted object instead of a `Status` (pods, services).
    pub return_deleted_object: bool,
    /// Not stored: answered by a built-in handler.
    pub virtual_kind: Option<VirtualKind>,
    /// The structural OpenAPI v3 schema of the whole object (a CRD version's
    /// `schema.openAPIV3Schema`), published in `/openapi/v2` and `/openapi/v3`. None for
    /// built-ins, whose schemas come from k8s-openapi.
    pub openapi_schema: Option<Arc<Value>>,
    /// Behaviour beyond the generic registry (CRD validation, custom resource schemas).
    pub hooks: Option<Arc<dyn crate::registry::hooks::ObjectHooks>>,
}

impl ResourceDescriptor {
    /// `apiVersion` of objects of this row (`v1`, `apps/v1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group and resource, for messages.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.resource)
    }

    /// The kind qualified by group (`Deployment.apps`), as `Invalid` messages show it.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// True when the resource has a `status` subresource.
    pub fn has_status(&self) -> bool {
        self.subresource(SubresourceKind::Status).is_some()
    }

    /// The subresource of a kind, if the resource has it.
    pub fn subresource(&self, kind: SubresourceKind) -> Option<&SubresourceDescriptor> {
        self.subresources.iter().find(|s| s.kind == kind)
    }

    /// The subresource by name.
    pub fn subresource_named(&self, name: &str) -> Option<&SubresourceDescriptor> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("{}{namespace}/{name}", self.storage_prefix)
        } else {
            format!("{}{name}", self.storage_prefix)
        }
    }

    /// The storage prefix of a collection (one namespace, or all when `namespace` is empty).
    pub fn collection_prefix(&self, namespace: &str) -> String {
        if self.namespaced && !namespace.is_empty() {
            format!("{}{namespace}/", self.storage_prefix)
        } else {
            self.storage_prefix.clone()
        }
    }

    /// True when `field` is a supported field selector label.
    pub fn field_selectable(&self, field: &str) -> bool {
        self.selectable_fields.source(field).is_some()
    }
}

/// How upstream orders versions: GA before beta before alpha, higher numbers first, then the
/// rest alphabetically. Returns a sort key (smaller sorts first).
pub fn version_priority(version: &str) -> (u8, i64, i64, String) {
    let parse = || -> Option<(u8, i64, i64)> {
        let rest = version.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (2, n)
        } else {
            return None;
        };
        let minor: i64 = num.parse().ok()?;
        Some((level, -major, -minor))
    };
    match parse() {
        Some((level, major, minor)) => (level, major, minor, String::new()),
        None => (3, 0, 0, version.to_string()),
    }
}

/// The served resources, shared by every request. Reads take a short read lock; rows are `Arc`s.
#[derive(Debug, Default)]
pub struct ResourceTable {
    rows: RwLock<BTreeMap<(String, String, String), Arc<ResourceDescriptor>>>,
    generation: AtomicU64,
}

impl ResourceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a row.
    pub fn install(&self, row: ResourceDescriptor) {
        let key = (row.group.clone(), row.version.clone(), row.resource.clone());
        self.rows.write().insert(key, Arc::new(row));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A counter that changes whenever a row is installed or removed (caches built from the
    /// table compare it).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Removes a row.
    pub fn remove(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceDescriptor>> {
        let removed =
            self.rows
                .write()
                .remove(&(group.to_string(), version.to_string(), resource.to_string()));
        self.generation.fetch_add(1, Ordering::Release);
        removed
    }

    /// The row of a group/version/resource.
    pub fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceDescriptor>> {
        self.rows
            .read()
            .get(&(group.to_string(), version.to_string(), resource.to_string()))
            .cloned()
    }

    /// The row of a group/version/kind.
    pub fn lookup_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceDescriptor>> {
        self.rows
            .read()
            .values()
            .find(|d| d.group == group && d.version == version && d.kind == kind)
            .cloned()
    }

    /// Every row.
    pub fn all(&self) -> Vec<Arc<ResourceDescriptor>> {
        self.rows.read().values().cloned().collect()
    }

    /// The rows of one group/version, by resource name.
    pub fn resources(&self, group: &str, version: &str) -> Vec<Arc<ResourceDescriptor>> {
        self.rows
            .read()
            .values()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect()
    }

    /// The served groups (core excluded) with their versions, preferred version first. Groups are
    /// in upstream's order for the well-known ones, then alphabetical.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.rows.read().values() {
            if d.group.is_empty() {
                continue;
            }
            let versions = groups.entry(d.group.clone()).or_default();
            if !versions.contains(&d.version) {
                versions.push(d.version.clone());
            }
        }
        let mut out: Vec<(String, Vec<String>)> = groups
            .into_iter()
            .map(|(g, mut vs)| {
                vs.sort_by_key(|v| version_priority(v));
                (g, vs)
            })
            .collect();
        out.sort_by_key(|(g, _)| (group_priority(g), g.clone()));
        out
    }

    /// True when the group/version is served.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.rows
            .read()
            .keys()
            .any(|(g, v, _)| g == group && v == version)
    }

    /// The preferred (first) version of a resource's group that has this resource.
    pub fn preferred(&self, group: &str, resource: &str) -> Option<Arc<ResourceDescriptor>> {
        let rows = self.rows.read();
        let mut candidates: Vec<_> = rows
            .values()
            .filter(|d| d.group == group && d.resource == resource)
            .cloned()
            .collect();
        candidates.sort_by_key(|d| version_priority(&d.version));
        candidates.into_iter().next()
    }
}

/// Upstream's order of built-in groups in `/apis` (a smaller number comes first).
fn group_priority(group: &str) -> usize {
    const ORDER: [&str; 24] = [
        "apiregistration.k8s.io",
        "apps",
        "events.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "networking.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "node.k8s.io",
        "discovery.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "resource.k8s.io",
        "internal.apiserver.k8s.io",
        "storagemigration.k8s.io",
        "lifecycle.k8s.io",
        "",
    ];
    ORDER.iter().position(|g| *g == group).unwrap_or(ORDER.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_upstream() {
        let mut vs = vec!["v1alpha1", "v1beta1", "v2", "v1", "v1beta2", "foo", "v2beta1"];
        vs.sort_by_key(|v| version_priority(v));
        assert_eq!(
            vs,
            ["v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn verbs_render_in_order() {
        assert_eq!(Verbs::ALL.names().len(), 8);
        assert_eq!(Verbs::CREATE_ONLY.names(), ["create"]);
        assert_eq!(Verbs::READ_ONLY.names(), ["get", "list"]);
        assert!(Verbs::READ_ONLY.has("list") && !Verbs::READ_ONLY.has("watch"));
    }
}
