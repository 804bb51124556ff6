//! A replica controller's status from the pods it owns (upstream's `calculateStatus`).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::kind::{ReplicaCondition, ReplicaStatus};
use crate::podutil;

/// The condition type set when creating or deleting pods failed.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The status for `pods` (the active pods owned), keeping `current`'s conditions and
/// observed generation except that a manage error sets `ReplicaFailure` (reason `FailedCreate`
/// when pods were missing, `FailedDelete` when there were too many) and success removes it.
pub fn calculate(
    current: &ReplicaStatus,
    desired: i32,
    template_labels: &BTreeMap<String, String>,
    min_ready_seconds: i32,
    pods: &[Arc<Pod>],
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaStatus {
    let mut status = current.clone();
    let (mut labeled, mut ready, mut available) = (0, 0, 0);
    for pod in pods {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if template_labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            labeled += 1;
        }
        if podutil::is_ready(pod) {
            ready += 1;
            if podutil::is_available(pod, min_ready_seconds, now) {
                available += 1;
            }
        }
    }
    let failure = current.conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match manage_error {
        Some(err) if !failure => {
            let diff = pods.len() as i64 - i64::from(desired);
            let reason = match diff.cmp(&0) {
                std::cmp::Ordering::Less => Some("FailedCreate".to_string()),
                std::cmp::Ordering::Greater => Some("FailedDelete".to_string()),
                std::cmp::Ordering::Equal => None,
            };
            status.conditions.push(ReplicaCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason,
                message: Some(err.to_string()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if failure => status.conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = labeled;
    status.ready_replicas = ready;
    status.available_replicas = available;
    status
}

/// True when `new` differs from the stored status or the generation is not yet observed
/// (upstream writes the status only then).
pub fn needs_update(stored: &ReplicaStatus, new: &ReplicaStatus, generation: i64) -> bool {
    stored.replicas != new.replicas
        || stored.fully_labeled_replicas != new.fully_labeled_replicas
        || stored.ready_replicas != new.ready_replicas
        || stored.available_replicas != new.available_replicas
        || stored.observed_generation != generation
        || stored.conditions != new.conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::jiff::SignedDuration;

    fn pod(labels: &[(&str, &str)], ready_for: Option<i64>, now: Timestamp) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready_for.is_some() { "True" } else { "False" }.into(),
                last_transition_time: ready_for.map(|s| Time(now - SignedDuration::from_secs(s))),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        Arc::new(p)
    }

    #[test]
    fn counts_labeled_ready_and_available_with_min_ready_seconds() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let tmpl: BTreeMap<_, _> = [
            ("app".to_string(), "web".to_string()),
            ("tier".into(), "fe".into()),
        ]
        .into();
        let pods = vec![
            pod(&[("app", "web"), ("tier", "fe")], Some(30), now),
            pod(&[("app", "web")], Some(5), now),
            pod(&[("app", "web"), ("tier", "fe")], None, now),
        ];
        let s = calculate(&ReplicaStatus::default(), 3, &tmpl, 10, &pods, None, now);
        assert_eq!(
            (
                s.replicas,
                s.fully_labeled_replicas,
                s.ready_replicas,
                s.available_replicas
            ),
            (3, 2, 2, 1)
        );
    }

    #[test]
    fn a_create_error_sets_replica_failure_and_success_clears_it() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let s = calculate(
            &ReplicaStatus::default(),
            2,
            &BTreeMap::new(),
            0,
            &[],
            Some("pods \"x\" is forbidden: exceeded quota"),
            now,
        );
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(s.conditions[0].reason.as_deref(), Some("FailedCreate"));
        assert_eq!(s.conditions[0].status, "True");
        let again = calculate(&s, 2, &BTreeMap::new(), 0, &[], Some("other"), now);
        assert_eq!(
            again.conditions, s.conditions,
            "an existing failure is kept as is"
        );
        let cleared = calculate(&s, 0, &BTreeMap::new(), 0, &[], None, now);
        assert!(cleared.conditions.is_empty());
        assert!(needs_update(&s, &cleared, 0));
        assert!(!needs_update(&cleared, &cleared, 0));
        assert!(
            needs_update(&cleared, &cleared, 1),
            "a new generation is observed"
        );
    }
}
