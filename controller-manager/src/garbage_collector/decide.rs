//! What to do with an object whose owners were looked up (upstream `attemptToDeleteItem`'s
//! decision): keep it, drop its references to owners that are gone or being deleted in the
//! foreground, or delete it (with which propagation).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::graph::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

/// What an owner reference points at, after a live lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists and is not being deleted in the foreground.
    Solid,
    /// Nothing with that uid exists (gone, or replaced by an object with another uid).
    Dangling,
    /// The owner is being deleted in the foreground, waiting for its dependents.
    WaitingForDependents,
}

/// The propagation policy of a delete the collector sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents are released.
    Orphan,
    /// Dependents go first.
    Foreground,
    /// Dependents are collected afterwards.
    Background,
}

impl Propagation {
    /// The kube-rs value.
    pub fn to_kube(self) -> kube::api::PropagationPolicy {
        match self {
            Propagation::Orphan => kube::api::PropagationPolicy::Orphan,
            Propagation::Foreground => kube::api::PropagationPolicy::Foreground,
            Propagation::Background => kube::api::PropagationPolicy::Background,
        }
    }
}

/// The collector's decision about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every owner exists: nothing to do.
    Keep,
    /// Some owners exist: remove the references (by owner uid) to the others.
    RemoveReferences(Vec<String>),
    /// An owner waits for its dependents and this object has dependents itself: delete it in
    /// the foreground, first making its own owner references non-blocking when `unblock` (one
    /// of its dependents is itself waiting: a possible cycle).
    DeleteForeground {
        /// Set `blockOwnerDeletion: false` on its references first.
        unblock: bool,
    },
    /// No owner exists any more: delete it with this propagation.
    Delete(Propagation),
}

/// Decides about an object with owner references `refs` (each with its owner's state), its
/// `finalizers`, whether it has dependents in the graph, and whether one of those is itself
/// being deleted in the foreground.
pub fn decide(
    refs: &[(OwnerReference, OwnerState)],
    finalizers: &[String],
    has_dependents: bool,
    a_dependent_deletes_dependents: bool,
) -> Decision {
    let count = |s: OwnerState| refs.iter().filter(|(_, st)| *st == s).count();
    let solid = count(OwnerState::Solid);
    let dangling = count(OwnerState::Dangling);
    let waiting = count(OwnerState::WaitingForDependents);
    if refs.is_empty() {
        return Decision::Keep;
    }
    if solid > 0 {
        if dangling == 0 && waiting == 0 {
            return Decision::Keep;
        }
        let mut uids: Vec<String> = refs
            .iter()
            .filter(|(_, st)| *st != OwnerState::Solid)
            .map(|(r, _)| r.uid.clone())
            .collect();
        uids.sort();
        uids.dedup();
        return Decision::RemoveReferences(uids);
    }
    if waiting > 0 && has_dependents {
        return Decision::DeleteForeground {
            unblock: a_dependent_deletes_dependents,
        };
    }
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    let policy = if has(ORPHAN_FINALIZER) {
        Propagation::Orphan
    } else if has(FOREGROUND_FINALIZER) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    Decision::Delete(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("cm-{uid}"),
            uid: uid.into(),
            ..OwnerReference::default()
        }
    }

    #[test]
    fn an_object_with_only_live_owners_is_kept() {
        assert_eq!(decide(&[], &[], false, false), Decision::Keep);
        assert_eq!(
            decide(&[(r("a"), OwnerState::Solid)], &[], true, false),
            Decision::Keep
        );
    }

    #[test]
    fn references_to_gone_or_foreground_deleting_owners_are_dropped_when_another_owner_lives() {
        let refs = [
            (r("c"), OwnerState::WaitingForDependents),
            (r("a"), OwnerState::Solid),
            (r("b"), OwnerState::Dangling),
        ];
        assert_eq!(
            decide(&refs, &[], false, false),
            Decision::RemoveReferences(vec!["b".into(), "c".into()])
        );
    }

    #[test]
    fn an_object_whose_owners_are_all_gone_is_deleted_honouring_its_finalizers() {
        let gone = [(r("a"), OwnerState::Dangling), (r("b"), OwnerState::Dangling)];
        assert_eq!(
            decide(&gone, &[], true, false),
            Decision::Delete(Propagation::Background)
        );
        assert_eq!(
            decide(&gone, &["orphan".into()], false, false),
            Decision::Delete(Propagation::Orphan)
        );
        assert_eq!(
            decide(&gone, &["foregroundDeletion".into()], false, false),
            Decision::Delete(Propagation::Foreground)
        );
    }

    #[test]
    fn a_dependent_of_a_foreground_deletion_goes_in_the_foreground_when_it_has_dependents() {
        let waiting = [(r("a"), OwnerState::WaitingForDependents)];
        assert_eq!(
            decide(&waiting, &[], false, false),
            Decision::Delete(Propagation::Background)
        );
        assert_eq!(
            decide(&waiting, &[], true, false),
            Decision::DeleteForeground { unblock: false }
        );
        assert_eq!(
            decide(&waiting, &[], true, true),
            Decision::DeleteForeground { unblock: true }
        );
        let mixed = [
            (r("a"), OwnerState::WaitingForDependents),
            (r("b"), OwnerState::Dangling),
        ];
        assert_eq!(
            decide(&mixed, &[], false, false),
            Decision::Delete(Propagation::Background)
        );
    }
}
