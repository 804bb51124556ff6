//! Taints and tolerations (upstream's `Toleration.ToleratesTaint`).

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// True when `t` tolerates `taint`: the effect matches (or the toleration names none), the key
/// matches (or the toleration names none, with `Exists`), and the value is equal (`Equal` or no
/// operator) or anything (`Exists`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key.as_deref().is_some_and(|k| !k.is_empty() && k != taint.key) {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// True when any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first taint with effect `NoSchedule` or `NoExecute` that no toleration tolerates
/// (upstream's `FindMatchingUntoleratedTaint` with `DoNotScheduleTaintsFilterFunc`).
pub fn untolerated_no_schedule<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerated(tolerations, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tol(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            ..Default::default()
        }
    }

    #[test]
    fn toleration_rules_as_upstream() {
        let t = taint("foo", "bar", "NoSchedule");
        // (toleration, tolerates?) from upstream's ToleratesTaint table.
        let cases = [
            (
                json!({"key": "foo", "operator": "Exists", "effect": "NoSchedule"}),
                true,
            ),
            (
                json!({"key": "foo", "operator": "Equal", "value": "bar", "effect": "NoSchedule"}),
                true,
            ),
            (
                json!({"key": "foo", "value": "bar", "effect": "NoSchedule"}),
                true,
            ),
            (
                json!({"key": "foo", "operator": "Equal", "value": "baz", "effect": "NoSchedule"}),
                false,
            ),
            (
                json!({"key": "foo", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"key": "foo", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (json!({"operator": "Exists", "effect": "NoSchedule"}), true),
            (json!({"key": "other", "operator": "Exists"}), false),
            (json!({"key": "foo", "operator": "Lt", "value": "bar"}), false),
        ];
        for (i, (v, want)) in cases.into_iter().enumerate() {
            assert_eq!(tolerates(&tol(v), &t), want, "case {i}");
        }
    }

    #[test]
    fn finds_first_untolerated_hard_taint() {
        let taints = [
            taint("soft", "", "PreferNoSchedule"),
            taint("a", "1", "NoSchedule"),
            taint("b", "2", "NoExecute"),
        ];
        let tols = [tol(json!({"key": "a", "operator": "Exists"}))];
        assert_eq!(untolerated_no_schedule(&taints, &tols).unwrap().key, "b");
        assert!(untolerated_no_schedule(&taints, &[tol(json!({"operator": "Exists"}))]).is_none());
    }
}
