//! PriorityClasses (upstream `pkg/apis/scheduling/validation`).

use serde_json::Value;

use super::field::{Errs, int, str_of, string};

/// The largest value of a priority class users may define.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

/// The system classes with their values; `system-` names are reserved for them.
const SYSTEM_CLASSES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// A PriorityClass.
pub fn priority_class(obj: &Value, errs: &mut Errs) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = int(obj, "value").unwrap_or(0);
    if name.starts_with("system-") {
        let global = obj.get("globalDefault").and_then(Value::as_bool) == Some(true);
        let problem = match SYSTEM_CLASSES.iter().find(|(n, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, v)) if *v != value => Some(format!("value of {name} PriorityClass must be {v}")),
            Some(_) if global => Some(format!("globalDefault of {name} PriorityClass must be false")),
            Some(_) => None,
        };
        if let Some(p) = problem {
            errs.forbidden(
                "metadata.name",
                &format!(
                    "priority class names with 'system-' prefix are reserved for system use only. error: {p}"
                ),
            );
        }
    } else if value > HIGHEST_USER_PRIORITY {
        errs.forbidden(
            "value",
            &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        );
    }
    const POLICIES: [&str; 2] = ["Never", "PreemptLowerPriority"];
    if let Some(policy) = str_of(obj, "preemptionPolicy")
        && !POLICIES.contains(&policy)
    {
        errs.not_supported("preemptionPolicy", &Value::from(policy), &POLICIES);
    }
}

/// `value` and `preemptionPolicy` may not change.
pub fn priority_class_update(new: &Value, old: &Value, errs: &mut Errs) {
    if int(new, "value") != int(old, "value") {
        errs.forbidden("value", "may not be changed in an update.");
    }
    let policy = |v: &Value| Value::from(str_of(v, "preemptionPolicy").unwrap_or("PreemptLowerPriority"));
    if string(new, "preemptionPolicy") != string(old, "preemptionPolicy") {
        errs.immutable("preemptionPolicy", Some(&policy(new)), Some(&policy(old)));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validation::test_support::lines;

    fn run(obj: Value) -> Vec<(String, String)> {
        let mut errs = Errs::default();
        priority_class(&obj, &mut errs);
        errs.0.into_iter().map(|e| (e.field, e.message)).collect()
    }

    #[test]
    fn priority_classes() {
        assert_eq!(
            run(json!({"metadata": {"name": "high-priority"}, "value": 1000000, "globalDefault": false})),
            []
        );
        assert_eq!(
            run(json!({"metadata": {"name": "system-node-critical"}, "value": 2000001000})),
            []
        );
        assert_eq!(
            run(json!({"metadata": {"name": "huge"}, "value": 1000000001, "preemptionPolicy": "Always"})),
            [
                (
                    "value".into(),
                    "Forbidden: maximum allowed value of a user defined priority is 1000000000".into()
                ),
                (
                    "preemptionPolicy".into(),
                    "Unsupported value: \"Always\": supported values: \"Never\", \"PreemptLowerPriority\""
                        .into()
                ),
            ]
        );
        assert_eq!(
            run(json!({"metadata": {"name": "system-mine"}, "value": 1})),
            [(
                "metadata.name".into(),
                "Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class".into()
            )]
        );
        let mut errs = Errs::default();
        priority_class_update(
            &json!({"value": 2, "preemptionPolicy": "Never"}),
            &json!({"value": 1}),
            &mut errs,
        );
        let got = lines(&errs);
        assert_eq!(
            got,
            [
                "value: Forbidden: may not be changed in an update.",
                "preemptionPolicy: Invalid value: \"Never\": field is immutable"
            ]
        );
    }
}
