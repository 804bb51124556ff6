//! `podFailurePolicy` matching: the first rule whose exit codes or pod conditions match a failed
//! pod decides what its failure means.

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// What a matched rule asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fail the whole Job at once (reason `PodFailurePolicy`) with this message.
    FailJob(String),
    /// Fail the pod's index (with `backoffLimitPerIndex`).
    FailIndex,
    /// Do not count the failure.
    Ignore,
    /// Count the failure towards the backoff limit (also the answer when no rule matches).
    Count,
}

/// The action for failed `pod` under `policy`.
pub fn action_for(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Action {
    let Some(policy) = policy else {
        return Action::Count;
    };
    for (i, rule) in policy.rules.iter().enumerate() {
        if let Some(why) = matches(rule, pod) {
            return match rule.action.as_str() {
                "FailJob" => Action::FailJob(format!("{why} matching FailJob rule at index {i}")),
                "FailIndex" => Action::FailIndex,
                "Ignore" => Action::Ignore,
                "Count" => Action::Count,
                other => {
                    tracing::warn!(
                        "unknown podFailurePolicy action {other:?} at index {i}: counting the failure"
                    );
                    Action::Count
                }
            };
        }
    }
    Action::Count
}

/// Why `rule` matches `pod` (the start of upstream's message), if it does.
fn matches(rule: &PodFailurePolicyRule, pod: &Pod) -> Option<String> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let status = pod.status.as_ref()?;
    if let Some(req) = &rule.on_exit_codes {
        let statuses = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for cs in statuses {
            if req.container_name.as_ref().is_some_and(|c| c != &cs.name) {
                continue;
            }
            let Some(code) = cs
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code)
            else {
                continue;
            };
            // Exit code 0 never matches (upstream skips succeeded containers).
            if code == 0 {
                continue;
            }
            let listed = req.values.contains(&code);
            let hit = match req.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                _ => false,
            };
            if hit {
                return Some(format!(
                    "Container {} for pod {ns}/{name} failed with exit code {code}",
                    cs.name
                ));
            }
        }
        return None;
    }
    for pattern in rule.on_pod_conditions.iter().flatten() {
        let want = pattern.status.as_deref().unwrap_or("True");
        let found = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == pattern.type_ && c.status == want);
        if found {
            return Some(format!("Pod {ns}/{name} has condition {}", pattern.type_));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failed_pod(container: &str, code: i32, conditions: &[(&str, &str)]) -> Pod {
        let conditions: Vec<_> = conditions
            .iter()
            .map(|(t, s)| json!({"type": t, "status": s}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": conditions, "containerStatuses": [{
                "name": container, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code}}
            }]}
        }))
        .unwrap()
    }

    fn policy(rules: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(json!({"rules": rules})).unwrap()
    }

    #[test]
    fn first_matching_rule_wins() {
        let p = policy(json!([
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
        ]));
        assert_eq!(
            action_for(Some(&p), &failed_pod("main", 42, &[])),
            Action::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
                    .into()
            )
        );
        assert_eq!(
            action_for(Some(&p), &failed_pod("main", 42, &[("DisruptionTarget", "True")])),
            Action::Ignore
        );
        assert_eq!(action_for(Some(&p), &failed_pod("side", 42, &[])), Action::Count);
        assert_eq!(action_for(Some(&p), &failed_pod("main", 1, &[])), Action::Count);
        assert_eq!(action_for(None, &failed_pod("main", 42, &[])), Action::Count);
    }

    #[test]
    fn fail_index_and_condition_messages() {
        let p = policy(json!([
            {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [3]}},
            {"action": "FailJob", "onPodConditions": [{"type": "ConfigIssue", "status": "True"}]},
        ]));
        assert_eq!(action_for(Some(&p), &failed_pod("c", 3, &[])), Action::FailIndex);
        assert_eq!(
            action_for(Some(&p), &failed_pod("c", 0, &[("ConfigIssue", "True")])),
            Action::FailJob("Pod ns/p has condition ConfigIssue matching FailJob rule at index 1".into())
        );
    }
}
