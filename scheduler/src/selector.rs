//! Label selectors as the scheduler evaluates them (upstream's `metav1.LabelSelectorAsSelector`):
//! a missing selector selects nothing, an empty one everything, `matchLabels` are equalities and
//! `matchExpressions` use `In`, `NotIn`, `Exists`, `DoesNotExist` (converted and matched by
//! `api_util::labels`). A selector that does not convert (an unknown operator, `In` without
//! values) selects nothing, as upstream's callers that ignore the conversion error do.

use std::collections::BTreeMap;

use api_util::labels::{LabelRequirement, LabelSelector as Requirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A converted label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Selects nothing (a nil selector, or one that does not convert).
    Nothing,
    /// Selects label sets satisfying every requirement (none: everything).
    All(Requirements),
}

impl Selector {
    /// The selector that selects everything.
    pub fn everything() -> Selector {
        Selector::All(Requirements::default())
    }

    /// Converts an optional `metav1.LabelSelector`.
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Selector {
        match sel.map(Requirements::from_label_selector) {
            Some(Ok(reqs)) => Selector::All(reqs),
            None | Some(Err(_)) => Selector::Nothing,
        }
    }

    /// Adds the requirement `key in (value)` (upstream adds `matchLabelKeys` this way).
    pub fn and_equals(&mut self, key: &str, value: &str) {
        if let Selector::All(reqs) = self {
            reqs.0
                .push(LabelRequirement::In(key.to_string(), vec![value.to_string()]));
        }
    }

    /// True when `labels` satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::All(reqs) => reqs.matches(labels),
        }
    }

    /// True when the selector selects nothing at all.
    pub fn is_nothing(&self) -> bool {
        matches!(self, Selector::Nothing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(v: serde_json::Value) -> Selector {
        Selector::from_label_selector(Some(&serde_json::from_value(v).unwrap()))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nil_selects_nothing_and_empty_everything() {
        assert!(!Selector::from_label_selector(None).matches(&labels(&[])));
        assert!(sel(json!({})).matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn operators() {
        let s = sel(json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "NotIn", "values": ["db"]},
            {"key": "env", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"}
        ]}));
        assert!(s.matches(&labels(&[("app", "web"), ("env", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "x"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "x"), ("legacy", "")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(sel(json!({"matchExpressions": [{"key": "a", "operator": "In"}]})).is_nothing());
        assert!(
            sel(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})).is_nothing()
        );
    }
}
