//! `resource.Quantity` parsing, enough to validate and compare quantities exactly: a value is
//! held in nano-units (upstream rounds finer values up to 10^-9 as well).

use std::cmp::Ordering;

use serde_json::Value;

/// Upstream's message for strings that are not quantities.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A parsed quantity in nano-units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i128);

impl Quantity {
    /// Parses the string form (`500m`, `1Gi`, `1e3`, `0.5`).
    pub fn parse(s: &str) -> Option<Quantity> {
        let (negative, rest) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(end);
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() || frac.contains('.') {
            return None;
        }
        let (base2, base10): (u32, i32) = match suffix {
            "" => (0, 0),
            "Ki" => (10, 0),
            "Mi" => (20, 0),
            "Gi" => (30, 0),
            "Ti" => (40, 0),
            "Pi" => (50, 0),
            "Ei" => (60, 0),
            "n" => (0, -9),
            "u" => (0, -6),
            "m" => (0, -3),
            "k" => (0, 3),
            "M" => (0, 6),
            "G" => (0, 9),
            "T" => (0, 12),
            "P" => (0, 15),
            "E" => (0, 18),
            s if s.starts_with(['e', 'E']) => {
                let exp = &s[1..];
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                (0, exp.parse().ok()?)
            }
            _ => return None,
        };
        // digits as an integer, scaled by 10^(base10 - frac.len() + 9) into nano-units.
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
        Some(Quantity(if negative { -n } else { n }))
    }

    /// Parses a JSON quantity (string or number).
    pub fn from_json(v: &Value) -> Option<Quantity> {
        match v {
            Value::String(s) => Quantity::parse(s),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => None,
        }
    }

    /// True below zero.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// True for whole numbers.
    pub fn is_integer(self) -> bool {
        self.0 % 1_000_000_000 == 0
    }

    /// Compares two quantities.
    pub fn cmp_to(self, other: Quantity) -> Ordering {
        self.0.cmp(&other.0)
    }
}

/// The string form of a JSON quantity as it appears in messages.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn parses_and_compares() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1Gi"), q("1073741824"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q(".5"), q("500m"));
        assert!(q("100m") < q("0.2"));
        assert!(q("-1").is_negative());
        assert!(q("2").is_integer() && !q("1500m").is_integer());
        assert_eq!(q("1n"), Quantity(1));
        for bad in ["", "abc", "1.2.3", "1Xi", "1e", "m", "1 Gi", "1ee3"] {
            assert!(Quantity::parse(bad).is_none(), "{bad}");
        }
    }
}
