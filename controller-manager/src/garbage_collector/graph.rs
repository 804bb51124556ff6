//! The ownership graph (upstream's `GraphBuilder.uidToNode`): one node per uid, observed from
//! the metadata watches or "virtual" (an owner only known from a dependent's reference). Applying
//! a watch event updates the graph and answers which items the workers must look at.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The finalizer of a foreground deletion: dependents go first.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer of an orphaning deletion: dependents lose their references to the owner.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// Where an object is: its reference coordinates and namespace (empty when cluster-scoped or
/// not known yet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

impl Identity {
    /// The identity an owner reference of a dependent in `namespace` points at.
    pub fn of_reference(r: &OwnerReference, namespace: &str) -> Identity {
        Identity {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            namespace: namespace.to_string(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        }
    }

    /// True when `r` has these coordinates (uid, name, kind, apiVersion).
    pub fn matches_reference(&self, r: &OwnerReference) -> bool {
        r.uid == self.uid && r.name == self.name && r.kind == self.kind && r.api_version == self.api_version
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

/// An object as a metadata watch shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Where it is.
    pub identity: Identity,
    /// Its owner references.
    pub owners: Vec<OwnerReference>,
    /// It has a deletionTimestamp.
    pub deleting: bool,
    /// Its finalizers.
    pub finalizers: Vec<String>,
}

impl Observed {
    fn has(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Being deleted in the foreground (waiting for its blocking dependents).
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has(FOREGROUND_FINALIZER)
    }

    /// Being deleted with orphaning (waiting for its dependents to be released).
    pub fn orphaning(&self) -> bool {
        self.deleting && self.has(ORPHAN_FINALIZER)
    }
}

/// A change the graph builder applies.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphEvent {
    /// An object was added or changed.
    Upsert(Observed),
    /// An object was deleted (seen by a watch).
    Delete(Observed),
    /// A worker verified with a live lookup that nothing exists at this identity.
    VirtualDelete(Identity),
}

/// One object of the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where it is (for a virtual node, as its first dependent referenced it).
    pub identity: Identity,
    /// Its owner references (empty for a virtual node).
    pub owners: Vec<OwnerReference>,
    /// Uids of objects with an owner reference to it.
    pub dependents: HashSet<String>,
    /// Seen by a watch (false: virtual).
    pub observed: bool,
    /// Has a deletionTimestamp.
    pub being_deleted: bool,
    /// Being deleted in the foreground.
    pub deleting_dependents: bool,
    /// Being deleted with the orphan finalizer.
    pub orphaning: bool,
}

impl Node {
    fn virtual_node(identity: Identity) -> Node {
        Node {
            identity,
            owners: Vec::new(),
            dependents: HashSet::new(),
            observed: false,
            being_deleted: false,
            deleting_dependents: false,
            orphaning: false,
        }
    }
}

/// What the workers must do after an event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Actions {
    /// Uids for the attempt-to-delete queue.
    pub attempt_delete: Vec<String>,
    /// Uids for the attempt-to-delete queue after a backoff.
    pub attempt_delete_later: Vec<String>,
    /// Uids for the attempt-to-orphan queue.
    pub attempt_orphan: Vec<String>,
    /// Identities now known not to exist.
    pub absent: Vec<Identity>,
}

/// The ownership graph.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

/// Dependents of `node` (by uid) whose references to `owner` agree (matching) or disagree
/// (nonmatching) with its coordinates.
fn partition_dependents(
    nodes: &HashMap<String, Node>,
    dependents: &HashSet<String>,
    owner: &Identity,
) -> (Vec<String>, Vec<String>) {
    let mut matching = Vec::new();
    let mut nonmatching = Vec::new();
    let owner_namespaced = !owner.namespace.is_empty();
    let mut deps: Vec<&String> = dependents.iter().collect();
    deps.sort();
    for uid in deps {
        let Some(dep) = nodes.get(uid) else { continue };
        let (mut found_match, mut found_mismatch) = (false, false);
        if owner_namespaced && owner.namespace != dep.identity.namespace {
            found_mismatch = true;
        } else {
            for r in dep.owners.iter().filter(|r| r.uid == owner.uid) {
                if owner.matches_reference(r) {
                    found_match = true;
                } else {
                    found_mismatch = true;
                }
            }
        }
        if found_match {
            matching.push(uid.clone());
        }
        if found_mismatch {
            nonmatching.push(uid.clone());
        }
    }
    (matching, nonmatching)
}

impl Graph {
    /// The node of `uid`.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// How many nodes (observed and virtual).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dependents of `uid` whose reference to it has `blockOwnerDeletion: true`.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<Node> {
        let Some(node) = self.nodes.get(uid) else {
            return Vec::new();
        };
        let mut out: Vec<Node> = node
            .dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| a.identity.cmp(&b.identity));
        out
    }

    /// The dependents of `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<Node> {
        let Some(node) = self.nodes.get(uid) else {
            return Vec::new();
        };
        let mut out: Vec<Node> = node
            .dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.identity.cmp(&b.identity));
        out
    }

    /// Uids of the observed nodes (for a relist: the ones not listed again are gone).
    pub fn observed_uids(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values().filter(|n| n.observed)
    }

    /// Adds `dependent` to the dependents of each of `refs`' owners, creating virtual owners
    /// (queued for verification) when unknown.
    fn add_dependent_to_owners(&mut self, dependent: &Identity, refs: &[OwnerReference], out: &mut Actions) {
        for r in refs {
            match self.nodes.get_mut(&r.uid) {
                Some(owner) => {
                    owner.dependents.insert(dependent.uid.clone());
                    // An owner already deleting in the foreground waits for this one too
                    // (the watch may list the dependent after the owner's transition).
                    if owner.deleting_dependents {
                        out.attempt_delete.push(dependent.uid.clone());
                    }
                }
                None => {
                    let mut owner = Node::virtual_node(Identity::of_reference(r, &dependent.namespace));
                    owner.dependents.insert(dependent.uid.clone());
                    self.nodes.insert(r.uid.clone(), owner);
                    out.attempt_delete.push(r.uid.clone());
                }
            }
        }
    }

    fn remove_dependent_from_owners(&mut self, dependent: &str, refs: &[OwnerReference]) {
        for r in refs {
            if let Some(owner) = self.nodes.get_mut(&r.uid) {
                owner.dependents.remove(dependent);
            }
        }
    }

    /// Owners that were blocked by `removed` or `changed` references and are waiting for their
    /// dependents: they may be finished now.
    fn unblocked_owners(
        &self,
        removed: &[OwnerReference],
        changed: &[(OwnerReference, OwnerReference)],
        out: &mut Actions,
    ) {
        let mut check = |r: &OwnerReference| {
            if let Some(owner) = self.nodes.get(&r.uid)
                && owner.deleting_dependents
            {
                out.attempt_delete.push(r.uid.clone());
            }
        };
        for r in removed {
            if r.block_owner_deletion == Some(true) {
                check(r);
            }
        }
        for (old, new) in changed {
            if old.block_owner_deletion == Some(true) && new.block_owner_deletion != Some(true) {
                check(new);
            }
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, event: GraphEvent) -> Actions {
        let mut out = Actions::default();
        match event {
            GraphEvent::Upsert(obj) => self.upsert(obj, &mut out),
            GraphEvent::Delete(obj) => {
                self.observe(&obj.identity, &mut out);
                self.delete_observed(&obj.identity, &mut out);
            }
            GraphEvent::VirtualDelete(identity) => self.delete_virtual(&identity, &mut out),
        }
        out
    }

    /// A virtual node seen by a watch becomes observed, taking the observed identity; its
    /// dependents that referenced it otherwise are re-checked.
    fn observe(&mut self, identity: &Identity, out: &mut Actions) {
        let Some(node) = self.nodes.get(&identity.uid) else {
            return;
        };
        if node.observed {
            return;
        }
        if node.identity != *identity {
            let (_, invalid) = partition_dependents(&self.nodes, &node.dependents, identity);
            out.attempt_delete.extend(invalid);
        }
        if let Some(node) = self.nodes.get_mut(&identity.uid) {
            node.identity = identity.clone();
            node.observed = true;
        }
    }

    fn upsert(&mut self, obj: Observed, out: &mut Actions) {
        let uid = obj.identity.uid.clone();
        self.observe(&obj.identity, out);
        let (was_deleting_dependents, was_orphaning) = match self.nodes.get(&uid) {
            None => {
                let node = Node {
                    identity: obj.identity.clone(),
                    owners: obj.owners.clone(),
                    dependents: HashSet::new(),
                    observed: true,
                    being_deleted: obj.deleting,
                    deleting_dependents: false,
                    orphaning: false,
                };
                self.nodes.insert(uid.clone(), node);
                self.add_dependent_to_owners(&obj.identity, &obj.owners, out);
                (false, false)
            }
            Some(existing) => {
                let (added, removed, changed) = reference_diffs(&existing.owners, &obj.owners);
                let state = (existing.deleting_dependents, existing.orphaning);
                if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
                    self.unblocked_owners(&removed, &changed, out);
                    if let Some(n) = self.nodes.get_mut(&uid) {
                        n.owners = obj.owners.clone();
                    }
                    self.add_dependent_to_owners(&obj.identity, &added, out);
                    self.remove_dependent_from_owners(&uid, &removed);
                }
                if let Some(n) = self.nodes.get_mut(&uid) {
                    n.being_deleted |= obj.deleting;
                }
                state
            }
        };
        // Transitions (upstream `processTransitions`).
        let orphaning = obj.orphaning();
        let deleting_dependents = obj.deleting_dependents();
        if let Some(n) = self.nodes.get_mut(&uid) {
            n.orphaning = orphaning;
        }
        if orphaning && !was_orphaning {
            out.attempt_orphan.push(uid);
            return;
        }
        if deleting_dependents && !was_deleting_dependents {
            if let Some(n) = self.nodes.get_mut(&uid) {
                n.deleting_dependents = true;
                let mut deps: Vec<String> = n.dependents.iter().cloned().collect();
                deps.sort();
                out.attempt_delete.extend(deps);
            }
            out.attempt_delete.push(uid);
        }
    }

    /// Removes a node seen deleted by a watch: its dependents are checked (their owner is gone)
    /// and so are its owners waiting for their dependents.
    fn delete_observed(&mut self, identity: &Identity, out: &mut Actions) {
        if let Some(node) = self.nodes.remove(&identity.uid) {
            self.removed(node, identity, out);
        }
    }

    fn removed(&mut self, node: Node, identity: &Identity, out: &mut Actions) {
        self.remove_dependent_from_owners(&node.identity.uid, &node.owners);
        if !node.dependents.is_empty() {
            out.absent.push(identity.clone());
        }
        let mut deps: Vec<String> = node.dependents.iter().cloned().collect();
        deps.sort();
        out.attempt_delete.extend(deps);
        for r in &node.owners {
            if self.nodes.get(&r.uid).is_some_and(|o| o.deleting_dependents) {
                out.attempt_delete.push(r.uid.clone());
            }
        }
    }

    /// A worker verified nothing exists at `deleted`.
    fn delete_virtual(&mut self, deleted: &Identity, out: &mut Actions) {
        let Some(existing) = self.nodes.get(&deleted.uid) else {
            return;
        };
        let (matching, nonmatching) = partition_dependents(&self.nodes, &existing.dependents, deleted);
        if existing.observed {
            if existing.identity == *deleted {
                let node = self
                    .nodes
                    .remove(&deleted.uid)
                    .unwrap_or_else(|| Node::virtual_node(deleted.clone()));
                self.removed(node, deleted, out);
            } else if !matching.is_empty() {
                // The real object lives elsewhere: only the dependents that point here lose it.
                out.absent.push(deleted.clone());
                out.attempt_delete.extend(matching);
            }
            return;
        }
        if nonmatching.is_empty() {
            let node = self
                .nodes
                .remove(&deleted.uid)
                .unwrap_or_else(|| Node::virtual_node(deleted.clone()));
            self.removed(node, deleted, out);
            return;
        }
        // Dependents disagree about where the owner is: keep the node for the others.
        if !matching.is_empty() {
            out.absent.push(deleted.clone());
            out.attempt_delete.extend(matching);
        }
        if existing.identity == *deleted {
            let replacement = self.alternate_identity(&nonmatching, deleted);
            if let (Some(identity), Some(node)) = (replacement, self.nodes.get_mut(&deleted.uid)) {
                node.identity = identity;
                out.attempt_delete_later.push(deleted.uid.clone());
            }
        }
    }

    /// Another identity the `dependents` reference the verified-absent owner by: the first in
    /// order after `absent`, else the first.
    fn alternate_identity(&self, dependents: &[String], absent: &Identity) -> Option<Identity> {
        let mut candidates: Vec<Identity> = dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .flat_map(|d| {
                d.owners
                    .iter()
                    .filter(|r| r.uid == absent.uid)
                    .map(|r| Identity::of_reference(r, &d.identity.namespace))
                    .collect::<Vec<_>>()
            })
            .filter(|c| c != absent)
            .collect();
        candidates.sort();
        candidates.dedup();
        candidates
            .iter()
            .find(|c| *c > absent)
            .or(candidates.first())
            .cloned()
    }
}

/// Owner references added, removed, and changed (same uid, other fields) between `old` and
/// `new`.
#[allow(clippy::type_complexity)]
pub fn reference_diffs(
    old: &[OwnerReference],
    new: &[OwnerReference],
) -> (
    Vec<OwnerReference>,
    Vec<OwnerReference>,
    Vec<(OwnerReference, OwnerReference)>,
) {
    let old_by_uid: HashMap<&str, &OwnerReference> = old.iter().map(|r| (r.uid.as_str(), r)).collect();
    let new_uids: HashSet<&str> = new.iter().map(|r| r.uid.as_str()).collect();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for r in new {
        match old_by_uid.get(r.uid.as_str()) {
            None => added.push(r.clone()),
            Some(o) if *o != r => changed.push(((*o).clone(), r.clone())),
            Some(_) => {}
        }
    }
    let removed = old
        .iter()
        .filter(|r| !new_uids.contains(r.uid.as_str()))
        .cloned()
        .collect();
    (added, removed, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, name: &str, uid: &str) -> Identity {
        Identity {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: "ns".into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn owned_by(owner: &Identity, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            block_owner_deletion: block.then_some(true),
            ..OwnerReference::default()
        }
    }

    fn obj(identity: &Identity, owners: Vec<OwnerReference>) -> Observed {
        Observed {
            identity: identity.clone(),
            owners,
            ..Observed::default()
        }
    }

    fn deleting(identity: &Identity, finalizer: &str) -> Observed {
        Observed {
            identity: identity.clone(),
            deleting: true,
            finalizers: vec![finalizer.into()],
            ..Observed::default()
        }
    }

    #[test]
    fn an_unknown_owner_becomes_a_virtual_node_to_verify() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "owner", "o");
        let dep = id("ConfigMap", "dep", "d");
        let a = g.apply(GraphEvent::Upsert(obj(&dep, vec![owned_by(&owner, false)])));
        assert_eq!(a.attempt_delete, ["o"]);
        let virt = g.get("o").unwrap();
        assert!(!virt.observed);
        assert_eq!(virt.identity, owner);
        assert!(virt.dependents.contains("d"));
        // The owner shows up: observed, nothing else to do.
        let a = g.apply(GraphEvent::Upsert(obj(&owner, vec![])));
        assert_eq!(a, Actions::default());
        assert!(g.get("o").unwrap().observed);
    }

    #[test]
    fn a_deleted_owner_sends_its_dependents_to_the_delete_queue() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "owner", "o");
        g.apply(GraphEvent::Upsert(obj(&owner, vec![])));
        for d in ["d1", "d2"] {
            g.apply(GraphEvent::Upsert(obj(
                &id("Secret", d, d),
                vec![owned_by(&owner, false)],
            )));
        }
        let a = g.apply(GraphEvent::Delete(obj(&owner, vec![])));
        assert_eq!(a.attempt_delete, ["d1", "d2"]);
        assert_eq!(a.absent, [owner]);
        assert!(g.get("o").is_none());
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn a_verified_absent_virtual_owner_is_removed_and_its_dependents_checked() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ghost", "g");
        let dep = id("ConfigMap", "dep", "d");
        g.apply(GraphEvent::Upsert(obj(&dep, vec![owned_by(&owner, false)])));
        let a = g.apply(GraphEvent::VirtualDelete(owner.clone()));
        assert_eq!(a.attempt_delete, ["d"]);
        assert_eq!(a.absent, [owner]);
        assert!(g.get("g").is_none());
    }

    #[test]
    fn dependents_disagreeing_about_a_virtual_owner_keep_it_under_another_identity() {
        let mut g = Graph::default();
        let wrong = id("ConfigMap", "a", "u");
        let other = Identity {
            kind: "Secret".into(),
            ..wrong.clone()
        };
        g.apply(GraphEvent::Upsert(obj(
            &id("ConfigMap", "d1", "d1"),
            vec![owned_by(&wrong, false)],
        )));
        g.apply(GraphEvent::Upsert(obj(
            &id("ConfigMap", "d2", "d2"),
            vec![owned_by(&other, false)],
        )));
        let a = g.apply(GraphEvent::VirtualDelete(wrong));
        assert_eq!(a.attempt_delete, ["d1"]);
        assert_eq!(a.attempt_delete_later, ["u"]);
        assert_eq!(g.get("u").unwrap().identity, other);
    }

    #[test]
    fn a_foreground_deletion_queues_the_owner_and_its_dependents_once() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "owner", "o");
        g.apply(GraphEvent::Upsert(obj(&owner, vec![])));
        g.apply(GraphEvent::Upsert(obj(
            &id("ConfigMap", "b", "b"),
            vec![owned_by(&owner, true)],
        )));
        g.apply(GraphEvent::Upsert(obj(
            &id("ConfigMap", "n", "n"),
            vec![owned_by(&owner, false)],
        )));
        let a = g.apply(GraphEvent::Upsert(deleting(&owner, FOREGROUND_FINALIZER)));
        assert_eq!(a.attempt_delete, ["b", "n", "o"]);
        assert!(g.get("o").unwrap().deleting_dependents);
        let blocking: Vec<String> = g
            .blocking_dependents("o")
            .into_iter()
            .map(|n| n.identity.uid)
            .collect();
        assert_eq!(blocking, ["b"]);
        // The same state again is no transition.
        assert_eq!(
            g.apply(GraphEvent::Upsert(deleting(&owner, FOREGROUND_FINALIZER))),
            Actions::default()
        );
        // The blocking dependent going away re-checks the owner.
        let a = g.apply(GraphEvent::Delete(obj(
            &id("ConfigMap", "b", "b"),
            vec![owned_by(&owner, true)],
        )));
        assert_eq!(a.attempt_delete, ["o"]);
        assert!(g.blocking_dependents("o").is_empty());
    }

    #[test]
    fn a_dependent_seen_after_its_owner_started_a_foreground_deletion_is_queued() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "owner", "o");
        g.apply(GraphEvent::Upsert(deleting(&owner, FOREGROUND_FINALIZER)));
        let a = g.apply(GraphEvent::Upsert(obj(
            &id("ConfigMap", "late", "l"),
            vec![owned_by(&owner, false)],
        )));
        assert_eq!(a.attempt_delete, ["l"]);
    }

    #[test]
    fn dropping_a_blocking_reference_re_checks_a_waiting_owner() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "owner", "o");
        let dep = id("ConfigMap", "b", "b");
        g.apply(GraphEvent::Upsert(obj(&owner, vec![])));
        g.apply(GraphEvent::Upsert(obj(&dep, vec![owned_by(&owner, true)])));
        g.apply(GraphEvent::Upsert(deleting(&owner, FOREGROUND_FINALIZER)));
        let a = g.apply(GraphEvent::Upsert(obj(&dep, vec![owned_by(&owner, false)])));
        assert_eq!(a.attempt_delete, ["o"]);
        let a = g.apply(GraphEvent::Upsert(obj(&dep, vec![])));
        assert_eq!(a, Actions::default());
        assert!(g.get("o").unwrap().dependents.is_empty());
    }

    #[test]
    fn an_orphaning_deletion_queues_the_owner_for_orphaning() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "owner", "o");
        g.apply(GraphEvent::Upsert(obj(&owner, vec![])));
        let a = g.apply(GraphEvent::Upsert(deleting(&owner, ORPHAN_FINALIZER)));
        assert_eq!(a.attempt_orphan, ["o"]);
        assert!(a.attempt_delete.is_empty());
        assert_eq!(
            g.apply(GraphEvent::Upsert(deleting(&owner, ORPHAN_FINALIZER))),
            Actions::default()
        );
        // Seen for the first time already orphaning (a restart): queued too.
        let mut fresh = Graph::default();
        assert_eq!(
            fresh
                .apply(GraphEvent::Upsert(deleting(&owner, ORPHAN_FINALIZER)))
                .attempt_orphan,
            ["o"]
        );
    }

    #[test]
    fn reference_diffs_split_added_removed_and_changed() {
        let a = id("ConfigMap", "a", "a");
        let b = id("ConfigMap", "b", "b");
        let c = id("ConfigMap", "c", "c");
        let (added, removed, changed) = reference_diffs(
            &[owned_by(&a, true), owned_by(&b, false)],
            &[owned_by(&a, false), owned_by(&c, false)],
        );
        assert_eq!(added, [owned_by(&c, false)]);
        assert_eq!(removed, [owned_by(&b, false)]);
        assert_eq!(changed, [(owned_by(&a, true), owned_by(&a, false))]);
    }
}
