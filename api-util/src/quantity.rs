//! `resource.Quantity` (upstream `k8s.io/apimachinery/pkg/api/resource`): parsing the string form
//! (binary `Ki`..`Ei` and decimal `n`..`E` suffixes, `e`/`E` exponents), exact comparison and
//! arithmetic, and upstream's canonical string form. A value is held in nano-units; finer values
//! round up to 10^-9 as upstream's do.

use std::cmp::Ordering;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde_json::Value;

/// Upstream's message for strings that are not quantities.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// How a quantity is written, which its canonical form keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// `1k`, `500m`, `2`.
    DecimalSi,
    /// `1Ki`, `2Gi`.
    BinarySi,
    /// `1e3`.
    DecimalExponent,
}

/// A parsed quantity in nano-units.
#[derive(Clone, Copy, Debug)]
pub struct Quantity(i128, Format);

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

const NANO: i128 = 1_000_000_000;

impl Default for Quantity {
    fn default() -> Self {
        Quantity(0, Format::DecimalSi)
    }
}

impl Quantity {
    /// A whole count (`pods=1`).
    pub fn count(n: i64) -> Quantity {
        Quantity(i128::from(n).saturating_mul(NANO), Format::DecimalSi)
    }

    /// True for zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self / other` as a decimal number (`limit / request`).
    pub fn ratio(self, other: Quantity) -> f64 {
        self.0 as f64 / other.0 as f64
    }

    /// `self / other > max`, computed exactly where it fits.
    pub fn ratio_exceeds(self, other: Quantity, max: Quantity) -> bool {
        match (self.0.checked_mul(NANO), max.0.checked_mul(other.0)) {
            (Some(lhs), Some(rhs)) => lhs > rhs,
            _ => self.ratio(other) > max.as_f64(),
        }
    }

    /// The canonical string as JSON.
    pub fn to_json(self) -> Value {
        Value::String(self.canonical())
    }

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
        let format = match suffix {
            "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => Format::DecimalSi,
            s if s.ends_with('i') => Format::BinarySi,
            _ => Format::DecimalExponent,
        };
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
        Some(Quantity(if negative { -n } else { n }, format))
    }

    /// Parses a JSON quantity (string or number; surrounding spaces are ignored, as upstream's
    /// JSON decoding does).
    pub fn from_json(v: &Value) -> Option<Quantity> {
        match v {
            Value::String(s) => Quantity::parse(s.trim()),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => None,
        }
    }

    /// The value as a float (for ratios).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / NANO as f64
    }

    /// True below zero.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// True for whole numbers.
    pub fn is_integer(self) -> bool {
        self.0 % 1_000_000_000 == 0
    }

    /// The canonical string form upstream prints (`1000m` → `1`, `1024Mi` → `1Gi`).
    pub fn canonical(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let n = self.0.unsigned_abs();
        let binary = self.1 == Format::BinarySi
            && n >= 1024 * NANO.unsigned_abs()
            && n.is_multiple_of(NANO.unsigned_abs());
        if binary {
            let mut whole = n / NANO.unsigned_abs();
            let mut k = 0;
            while whole.is_multiple_of(1024) && k < 6 {
                whole /= 1024;
                k += 1;
            }
            return format!("{sign}{whole}{}", ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k]);
        }
        if n == 0 {
            return "0".into();
        }
        let (mut m, mut e) = (n, -9i32);
        while m.is_multiple_of(1000) && e < 18 {
            m /= 1000;
            e += 3;
        }
        let suffix = match (self.1, e) {
            (Format::DecimalExponent, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, e) => ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"]
                [usize::try_from(e / 3 + 3).unwrap_or(3)]
            .to_string(),
        };
        format!("{sign}{m}{suffix}")
    }

    /// Compares two quantities.
    pub fn cmp_to(self, other: Quantity) -> Ordering {
        self.0.cmp(&other.0)
    }

    /// The value in whole units, rounded up (away from zero for fractions, as upstream's
    /// `Quantity.Value`): `1500m` → 2.
    pub fn value(self) -> i64 {
        self.scaled_ceil(NANO)
    }

    /// The value in thousandths, rounded up as upstream's `Quantity.MilliValue`: `1.0001m` → 2.
    pub fn milli_value(self) -> i64 {
        self.scaled_ceil(NANO / 1000)
    }

    /// A quantity of `milli` thousandths (`milli_value` back), printed in decimal SI.
    pub fn from_milli(milli: i64) -> Quantity {
        Quantity(i128::from(milli).saturating_mul(NANO / 1000), Format::DecimalSi)
    }

    /// `self / unit`, rounded away from zero, saturated to `i64`.
    fn scaled_ceil(self, unit: i128) -> i64 {
        let (q, r) = (self.0 / unit, self.0 % unit);
        let q = q + r.signum();
        i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
    }

    /// Parses k8s-openapi's `Quantity` (its string form).
    pub fn from_k8s(q: &K8sQuantity) -> Option<Quantity> {
        Quantity::parse(q.0.trim())
    }

    /// The canonical string as k8s-openapi's `Quantity`.
    pub fn to_k8s(self) -> K8sQuantity {
        K8sQuantity(self.canonical())
    }
}

impl std::ops::Neg for Quantity {
    type Output = Quantity;

    fn neg(self) -> Quantity {
        Quantity(self.0.saturating_neg(), self.1)
    }
}

impl std::ops::AddAssign for Quantity {
    fn add_assign(&mut self, other: Quantity) {
        *self = *self + other;
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    /// Parses the string form, with upstream's error messages.
    fn from_str(s: &str) -> Result<Quantity, QuantityError> {
        match Quantity::parse(s) {
            Some(q) => Ok(q),
            None if has_quantity_shape(s) => Err(QuantityError::Suffix),
            None => Err(QuantityError::Format),
        }
    }
}

/// Why a string is not a quantity (upstream's `ErrFormatWrong` / `ErrSuffix`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not of the quantity shape.
    #[error("{FORMAT_ERROR}")]
    Format,
    /// The right shape with an unknown suffix (`32MMi`).
    #[error("{SUFFIX_ERROR}")]
    Suffix,
}

impl std::ops::Add for Quantity {
    type Output = Quantity;

    /// The sum, in the left operand's format unless it is zero (as upstream's `Quantity.Add`).
    fn add(self, other: Quantity) -> Quantity {
        let format = if self.0 == 0 { other.1 } else { self.1 };
        Quantity(self.0.saturating_add(other.0), format)
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;

    fn sub(self, other: Quantity) -> Quantity {
        Quantity(self.0.saturating_sub(other.0), self.1)
    }
}

impl std::fmt::Display for Quantity {
    /// The canonical form ([`Quantity::canonical`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The string form of a JSON quantity as it appears in messages: canonical when it parses.
pub fn display(v: &Value) -> String {
    match (Quantity::from_json(v), v) {
        (Some(q), _) => q.canonical(),
        (None, Value::String(s)) => s.clone(),
        (None, other) => other.to_string(),
    }
}

/// Upstream's message for quantities of the right shape with an unknown suffix (`32MMi`).
pub const SUFFIX_ERROR: &str = "unable to parse quantity's suffix";

/// True when `s` matches upstream's `^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$`.
fn has_quantity_shape(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number = s.bytes().take_while(|c| c.is_ascii_digit() || *c == b'.').count();
    if number == 0 {
        return false;
    }
    let rest = &s[number..];
    let letters = rest.bytes().take_while(|c| b"eEinumkKMGTP".contains(c)).count();
    let rest = &rest[letters..];
    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    rest.bytes().all(|c| c.is_ascii_digit())
}

/// Why a JSON quantity would not decode (upstream's `resource.Quantity` unmarshalling), if so.
pub fn decode_error(v: &Value) -> Option<&'static str> {
    let s = match v {
        Value::String(s) => s.trim(),
        Value::Number(_) | Value::Null => return None,
        _ => return Some(FORMAT_ERROR),
    };
    if Quantity::parse(s).is_some() {
        None
    } else if has_quantity_shape(s) {
        Some(SUFFIX_ERROR)
    } else {
        Some(FORMAT_ERROR)
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
        assert_eq!(q("1n").0, 1);
        for (input, canonical) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("512", "512"),
            ("100Ki", "100Ki"),
            ("1e3", "1e3"),
            ("1000e3", "1e6"),
            ("2000", "2k"),
            ("-1500m", "-1500m"),
            ("0", "0"),
            ("0.5Ki", "512"),
        ] {
            assert_eq!(q(input).canonical(), canonical, "{input}");
        }
        for bad in ["", "abc", "1.2.3", "1Xi", "1e", "m", "1 Gi", "1ee3"] {
            assert!(Quantity::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn binary_decimal_and_exponent_forms() {
        assert_eq!(q("1Ei"), q("1152921504606846976"));
        assert_eq!(q("1E"), q("1e18"));
        assert_eq!(q("1.5e-3"), q("1500u"));
        assert_eq!(q("2E+2"), q("200"));
        assert_eq!(q("+3"), q("3"));
        assert_eq!(q("5Mi").canonical(), "5Mi");
        assert_eq!(q("1e-3").canonical(), "1e-3");
        assert_eq!(q("12e2").canonical(), "1200");
        assert_eq!(q("1.5k").canonical(), "1500");
        assert_eq!(q("100u").canonical(), "100u");
        // Finer than nano rounds up, as upstream.
        assert_eq!(q("0.1n").canonical(), "1n");
        assert_eq!(q("-0.1n").canonical(), "-1n");
    }

    #[test]
    fn values_round_up_as_upstream() {
        assert_eq!(q("1500m").value(), 2);
        assert_eq!(q("2").value(), 2);
        assert_eq!(q("-1500m").value(), -2);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(Quantity::from_milli(250).canonical(), "250m");
        assert_eq!(Quantity::from_milli(2000).canonical(), "2");
    }

    #[test]
    fn arithmetic_keeps_formats() {
        assert_eq!((q("500m") + q("500m")).to_string(), "1");
        assert_eq!((q("512Mi") + q("512Mi")).to_string(), "1Gi");
        assert_eq!((Quantity::default() + q("1Ki")).to_string(), "1Ki");
        assert_eq!((q("1") - q("250m")).to_string(), "750m");
        assert_eq!((-q("1Gi")).to_string(), "-1Gi");
        let mut sum = q("1");
        sum += q("1");
        assert_eq!(sum, q("2"));
        assert_eq!(Quantity::count(3).to_string(), "3");
    }

    #[test]
    fn errors_and_k8s_quantities() {
        assert_eq!("32MMi".parse::<Quantity>(), Err(QuantityError::Suffix));
        assert_eq!("abc".parse::<Quantity>(), Err(QuantityError::Format));
        assert_eq!(decode_error(&Value::String("1x".into())), Some(FORMAT_ERROR));
        assert_eq!(decode_error(&Value::String("1Gi".into())), None);
        let k = K8sQuantity("1024Mi".into());
        assert_eq!(
            Quantity::from_k8s(&k).unwrap().to_k8s(),
            K8sQuantity("1Gi".into())
        );
        assert_eq!(display(&Value::String("2000m".into())), "2");
    }
}
