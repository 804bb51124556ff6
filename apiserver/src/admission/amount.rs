//! Resource amounts that admission adds up and compares: `resource.Quantity` values (the shared
//! [`Quantity`] of validation, which keeps the format its canonical string prints in).

use serde_json::{Map, Value};

pub use crate::validation::quantity::Quantity as Amount;
/// A resource list (`{"cpu": "500m", "memory": "1Gi"}`), sorted by name.
pub use api_util::resources::ResourceList as Resources;
pub use api_util::resources::render;

/// The amounts of a JSON resource list (entries that are not quantities are skipped: validation
/// rejects them before admission runs).
pub fn resources(v: Option<&Value>) -> Resources {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Amount::from_json(v).map(|a| (k.clone(), a)))
                .collect()
        })
        .unwrap_or_default()
}

/// A resource list as JSON.
pub fn to_json(list: &Resources) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect::<Map<_, _>>(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn a(s: &str) -> Amount {
        Amount::from_json(&json!(s)).unwrap()
    }

    #[test]
    fn parses_adds_and_prints_canonically() {
        assert_eq!((a("500m") + a("500m")).to_string(), "1");
        assert_eq!((a("512Mi") + a("512Mi")).to_string(), "1Gi");
        assert_eq!(a("1.5").to_string(), "1500m");
        assert_eq!(a("2k").to_string(), "2k");
        assert_eq!(Amount::from_json(&json!(3)).unwrap(), Amount::count(3));
        assert_eq!(a("1e3"), a("1k"));
        assert!(a("100m") < a("1"));
        assert!(Amount::from_json(&json!("1x")).is_none());
        assert_eq!((a("1") - a("250m")).to_string(), "750m");
    }

    #[test]
    fn ratios_compare_exactly() {
        assert!(!a("2").ratio_exceeds(a("1"), a("2")));
        assert!(a("2001m").ratio_exceeds(a("1"), a("2")));
        assert!(a("3Gi").ratio_exceeds(a("1Gi"), a("2500m")));
        assert_eq!(format!("{:.6}", a("3").ratio(a("2"))), "1.500000");
    }

    #[test]
    fn renders_lists_as_upstream() {
        let list: Resources = [("pods".to_string(), Amount::count(1)), ("cpu".into(), a("2"))].into();
        assert_eq!(render(&list), "cpu=2,pods=1");
        assert_eq!(to_json(&list), json!({"cpu": "2", "pods": "1"}));
    }
}
