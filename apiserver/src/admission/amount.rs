//! Resource amounts that admission adds up and compares: a `resource.Quantity` in nano-units
//! with the format its canonical string keeps (`validation::quantity` only parses and compares;
//! quotas also need sums).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::validation::quantity::Quantity;

const NANO: i128 = 1_000_000_000;

/// An amount of a resource (`500m`, `1Gi`, `3`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount {
    nanos: i128,
    binary: bool,
}

impl Amount {
    /// A whole count (`pods=1`).
    pub fn count(n: i64) -> Amount {
        Amount {
            nanos: i128::from(n) * NANO,
            binary: false,
        }
    }

    /// Parses a JSON quantity; `None` when it is not one.
    pub fn from_json(v: &Value) -> Option<Amount> {
        let text = match v {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        // The shared parser decides validity and is the reference for the value.
        Quantity::parse(&text)?;
        let binary = text.ends_with('i');
        Some(Amount {
            nanos: nanos_of(&text)?,
            binary,
        })
    }

    /// True for zero.
    pub fn is_zero(self) -> bool {
        self.nanos == 0
    }

    /// `self / other` as a decimal number (`limit / request`).
    pub fn ratio(self, other: Amount) -> f64 {
        self.nanos as f64 / other.nanos as f64
    }

    /// `self / other > max` computed exactly.
    pub fn ratio_exceeds(self, other: Amount, max: Amount) -> bool {
        match (self.nanos.checked_mul(NANO), max.nanos.checked_mul(other.nanos)) {
            (Some(lhs), Some(rhs)) => lhs > rhs,
            _ => self.ratio(other) > max.nanos as f64 / NANO as f64,
        }
    }

    /// As a JSON string in canonical form.
    pub fn to_json(self) -> Value {
        Value::String(self.to_string())
    }
}

/// The nano-units of a quantity string the shared parser accepted.
fn nanos_of(text: &str) -> Option<i128> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(end);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let (base2, base10): (u32, i32) = match suffix {
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "" => (0, 0),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        s => (0, s.get(1..)?.parse().ok()?),
    };
    let mut n: i128 = 0;
    for c in whole.bytes().chain(frac.bytes()) {
        n = n.checked_mul(10)?.checked_add(i128::from(c - b'0'))?;
    }
    n = n.checked_mul(1i128.checked_shl(base2)?)?;
    let scale = base10 + 9 - i32::try_from(frac.len()).ok()?;
    if scale >= 0 {
        n = n.checked_mul(10i128.checked_pow(scale.unsigned_abs())?)?;
    } else {
        let div = 10i128.checked_pow(scale.unsigned_abs()).unwrap_or(i128::MAX);
        n = n / div + i128::from(n % div != 0);
    }
    Some(if negative { -n } else { n })
}

impl std::ops::Add for Amount {
    type Output = Amount;

    /// The sum, in the left operand's format (as upstream's `Quantity.Add`).
    fn add(self, other: Amount) -> Amount {
        Amount {
            nanos: self.nanos.saturating_add(other.nanos),
            binary: if self.nanos == 0 {
                other.binary
            } else {
                self.binary
            },
        }
    }
}

impl std::ops::Sub for Amount {
    type Output = Amount;

    fn sub(self, other: Amount) -> Amount {
        Amount {
            nanos: self.nanos.saturating_sub(other.nanos),
            binary: self.binary,
        }
    }
}

impl fmt::Display for Amount {
    /// The canonical form upstream prints (`1000m` → `1`, `1024Mi` → `1Gi`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let n = self.nanos.unsigned_abs();
        let unit = NANO.unsigned_abs();
        if self.binary && n >= 1024 * unit && n.is_multiple_of(unit) {
            let mut whole = n / unit;
            let mut k = 0;
            while whole.is_multiple_of(1024) && k < 6 {
                whole /= 1024;
                k += 1;
            }
            return write!(f, "{sign}{whole}{}", ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k]);
        }
        if n == 0 {
            return f.write_str("0");
        }
        let (mut m, mut e) = (n, 0usize);
        while m.is_multiple_of(1000) && e < 9 {
            m /= 1000;
            e += 1;
        }
        write!(
            f,
            "{sign}{m}{}",
            ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"][e]
        )
    }
}

/// A resource list (`{"cpu": "500m", "memory": "1Gi"}`), sorted by name.
pub type Resources = BTreeMap<String, Amount>;

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

/// `a=1,b=2` (upstream's rendering of a resource list in quota messages).
pub fn render(list: &Resources) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
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
