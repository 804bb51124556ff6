//! The conditions the namespace deleter maintains on a terminating namespace (upstream's
//! `namespaceConditionUpdater`): each of the five types is True with the failure, or False with
//! its "ok" reason and message.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::NamespaceCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Discovery failed for some groups.
pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
/// Some group versions did not parse.
pub const GV_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
/// Deleting some resource types failed.
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
/// Objects remain.
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
/// Objects remain because of finalizers.
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// The condition types, in upstream's order, with their "ok" reason and message.
const TYPES: [(&str, &str, &str); 5] = [
    (
        DISCOVERY_FAILURE,
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        GV_PARSING_FAILURE,
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        CONTENT_FAILURE,
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        CONTENT_REMAINING,
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        FINALIZERS_REMAINING,
        "ContentRemoved",
        "All content successfully removed",
    ),
];

/// What one pass of content deletion found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeletionReport {
    /// The discovery failure message, if any group failed.
    pub discovery_error: Option<String>,
    /// Group versions that did not parse.
    pub unparsable: Vec<String>,
    /// Per resource type that failed, why.
    pub content_errors: Vec<String>,
    /// `<resource>.<group>` → objects remaining.
    pub remaining: BTreeMap<String, usize>,
    /// Finalizer → objects remaining with it.
    pub finalizers: BTreeMap<String, usize>,
}

fn failure(kind: &str, reason: &str, message: String) -> (String, String, String) {
    (kind.to_string(), reason.to_string(), message)
}

/// The failing conditions of `report` as (type, reason, message).
fn failures(report: &DeletionReport) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if let Some(e) = &report.discovery_error {
        out.push(failure(DISCOVERY_FAILURE, "DiscoveryFailed", e.clone()));
    }
    if let Some(gv) = report.unparsable.first() {
        out.push(failure(
            GV_PARSING_FAILURE,
            "GroupVersionParsingFailed",
            format!("unexpected GroupVersion string: {gv}"),
        ));
    }
    if !report.content_errors.is_empty() {
        let mut msgs = report.content_errors.clone();
        msgs.sort();
        out.push(failure(
            CONTENT_FAILURE,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                msgs.len(),
                msgs.join(", ")
            ),
        ));
    }
    if !report.remaining.is_empty() {
        let mut remaining: Vec<String> = report
            .remaining
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(gr, n)| format!("{gr} has {n} resource instances"))
            .collect();
        remaining.sort();
        out.push(failure(
            CONTENT_REMAINING,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", remaining.join(", ")),
        ));
    }
    if !report.finalizers.is_empty() {
        let mut by_finalizer: Vec<String> = report
            .finalizers
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        by_finalizer.sort();
        out.push(failure(
            FINALIZERS_REMAINING,
            "SomeFinalizerRemain",
            format!("Some finalizers are remaining: {}", by_finalizer.join(", ")),
        ));
    }
    out
}

/// Updates `conditions` from `report` at `now`: every type present, True with its failure or
/// False with its ok reason; the transition time moves only when the status flips. True when
/// anything changed.
pub fn update(conditions: &mut Vec<NamespaceCondition>, report: &DeletionReport, now: &Time) -> bool {
    let failing = failures(report);
    let mut changed = false;
    for (kind, ok_reason, ok_message) in TYPES {
        let (status, reason, message) = match failing.iter().find(|(k, _, _)| k == kind) {
            Some((_, r, m)) => ("True", r.clone(), m.clone()),
            None => ("False", ok_reason.to_string(), ok_message.to_string()),
        };
        match conditions.iter_mut().find(|c| c.type_ == kind) {
            None => {
                conditions.push(NamespaceCondition {
                    type_: kind.to_string(),
                    status: status.to_string(),
                    reason: Some(reason),
                    message: Some(message),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
            Some(c) => {
                if c.status != status
                    || c.reason.as_deref() != Some(&reason)
                    || c.message.as_deref() != Some(&message)
                {
                    if c.status != status {
                        c.last_transition_time = Some(now.clone());
                    }
                    c.status = status.to_string();
                    c.reason = Some(reason);
                    c.message = Some(message);
                    changed = true;
                }
            }
        }
    }
    changed
}

/// The discovery condition's message for a failure of `failed` group versions (upstream's
/// `ErrGroupDiscoveryFailed` wording).
pub fn discovery_message(failed: usize, error: &str) -> String {
    format!("Discovery failed for some groups, {failed} failing: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn get<'a>(c: &'a [NamespaceCondition], t: &str) -> &'a NamespaceCondition {
        c.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn a_clean_pass_sets_every_condition_false_with_upstreams_ok_reasons() {
        let mut c = Vec::new();
        assert!(update(
            &mut c,
            &DeletionReport::default(),
            &time("2026-01-01T00:00:00Z")
        ));
        let types: Vec<&str> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [
                DISCOVERY_FAILURE,
                GV_PARSING_FAILURE,
                CONTENT_FAILURE,
                CONTENT_REMAINING,
                FINALIZERS_REMAINING
            ]
        );
        assert!(c.iter().all(|c| c.status == "False"));
        assert_eq!(get(&c, CONTENT_FAILURE).reason.as_deref(), Some("ContentDeleted"));
        assert_eq!(
            get(&c, CONTENT_REMAINING).message.as_deref(),
            Some("All content successfully removed")
        );
        assert!(!update(
            &mut c,
            &DeletionReport::default(),
            &time("2026-01-01T00:01:00Z")
        ));
    }

    #[test]
    fn remaining_content_and_finalizers_read_like_upstream() {
        let report = DeletionReport {
            remaining: [
                ("configmaps.".to_string(), 2),
                ("widgets.example.com".to_string(), 1),
            ]
            .into(),
            finalizers: [("example.com/hold".to_string(), 1)].into(),
            content_errors: vec!["b failed".into(), "a failed".into()],
            discovery_error: Some(discovery_message(
                1,
                "unable to retrieve the complete list of server APIs: x/v1: boom",
            )),
            unparsable: vec!["a/b/c".into()],
        };
        let mut c = Vec::new();
        update(&mut c, &report, &time("2026-01-01T00:00:00Z"));
        let remaining = get(&c, CONTENT_REMAINING);
        assert_eq!(remaining.status, "True");
        assert_eq!(remaining.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            remaining.message.as_deref(),
            Some(
                "Some resources are remaining: configmaps. has 2 resource instances, widgets.example.com has 1 resource instances"
            )
        );
        let fins = get(&c, FINALIZERS_REMAINING);
        assert_eq!(fins.reason.as_deref(), Some("SomeFinalizerRemain"));
        assert_eq!(
            fins.message.as_deref(),
            Some("Some finalizers are remaining: example.com/hold in 1 resource instances")
        );
        assert_eq!(
            get(&c, CONTENT_FAILURE).message.as_deref(),
            Some("Failed to delete all resource types, 2 remaining: a failed, b failed")
        );
        assert_eq!(
            get(&c, DISCOVERY_FAILURE).message.as_deref(),
            Some(
                "Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: x/v1: boom"
            )
        );
        assert_eq!(
            get(&c, GV_PARSING_FAILURE).message.as_deref(),
            Some("unexpected GroupVersion string: a/b/c")
        );
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_flips() {
        let t0 = time("2026-01-01T00:00:00Z");
        let t1 = time("2026-01-01T00:01:00Z");
        let t2 = time("2026-01-01T00:02:00Z");
        let mut c = Vec::new();
        let mut report = DeletionReport {
            remaining: [("configmaps.".to_string(), 2)].into(),
            ..DeletionReport::default()
        };
        update(&mut c, &report, &t0);
        report.remaining.insert("configmaps.".into(), 1);
        assert!(update(&mut c, &report, &t1), "the message changed");
        assert_eq!(get(&c, CONTENT_REMAINING).last_transition_time, Some(t0));
        assert!(update(&mut c, &DeletionReport::default(), &t2));
        let cond = get(&c, CONTENT_REMAINING);
        assert_eq!(
            (cond.status.as_str(), cond.last_transition_time.clone()),
            ("False", Some(t2))
        );
    }
}
