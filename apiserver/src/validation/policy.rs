//! PodDisruptionBudgets (upstream `ValidatePodDisruptionBudgetSpec`).

use serde_json::Value;

use super::field::{Errs, str_of};
use super::{metadata, workloads};

/// A PodDisruptionBudget.
pub fn pod_disruption_budget(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let given = |f: &str| spec.get(f).filter(|v| !v.is_null());
    if given("minAvailable").is_some() && given("maxUnavailable").is_some() {
        errs.invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set");
    }
    for field in ["minAvailable", "maxUnavailable"] {
        if let Some(v) = given(field) {
            workloads::int_or_percent(v, &format!("spec.{field}"), errs);
        }
    }
    if let Some(sel) = given("selector") {
        metadata::label_selector(sel, "spec.selector", errs);
    }
    const POLICIES: [&str; 2] = ["AlwaysAllow", "IfHealthyBudget"];
    if let Some(policy) = str_of(spec, "unhealthyPodEvictionPolicy")
        && !POLICIES.contains(&policy)
    {
        errs.not_supported("spec.unhealthyPodEvictionPolicy", &Value::from(policy), &POLICIES);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(obj: Value) -> Vec<(String, String)> {
        let mut errs = Errs::default();
        pod_disruption_budget(&obj, &mut errs);
        errs.0.into_iter().map(|e| (e.field, e.message)).collect()
    }

    #[test]
    fn budgets() {
        let valid = json!({"spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "zookeeper"}}}});
        assert_eq!(run(valid), []);
        assert_eq!(
            run(json!({"spec": {"maxUnavailable": "25%", "unhealthyPodEvictionPolicy": "AlwaysAllow"}})),
            []
        );
        let errs = run(
            json!({"spec": {"minAvailable": -1, "maxUnavailable": "120%", "unhealthyPodEvictionPolicy": "Never"}}),
        );
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec",
                "spec.minAvailable",
                "spec.maxUnavailable",
                "spec.unhealthyPodEvictionPolicy"
            ]
        );
        assert!(
            errs[0]
                .1
                .ends_with(": minAvailable and maxUnavailable cannot be both set")
        );
        assert_eq!(errs[1].1, "Invalid value: -1: must be greater than or equal to 0");
        assert_eq!(
            errs[2].1,
            "Invalid value: \"120%\": must not be greater than 100%"
        );
        assert_eq!(
            errs[3].1,
            "Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""
        );
        let errs = run(json!({"spec": {"minAvailable": "half"}}));
        assert_eq!(errs[0].0, "spec.minAvailable");
        assert!(
            errs[0]
                .1
                .starts_with("Invalid value: \"half\": a valid percent string must be")
        );
    }
}
