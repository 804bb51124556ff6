//! Go `time.Duration` strings (`1h30m`, `300ms`, `1.5h`, `-2s`): parsing exactly as Go's
//! `time.ParseDuration` (integer nanoseconds, overflow checked, its error messages) and printing
//! as `Duration.String`. The JSON form of `metav1.Duration` and of duration command-line flags.

use std::time::Duration;

/// Why a string is not a Go duration, in Go's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Malformed, or out of the `i64` nanosecond range.
    #[error("time: invalid duration \"{0}\"")]
    Invalid(String),
    /// A number without a unit (`5`).
    #[error("time: missing unit in duration \"{0}\"")]
    MissingUnit(String),
    /// An unknown unit (`5x`).
    #[error("time: unknown unit \"{unit}\" in duration \"{input}\"")]
    UnknownUnit {
        /// The unit.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A negative duration where only non-negative ones make sense.
    #[error("duration \"{0}\" must not be negative")]
    Negative(String),
}

const NANOS_PER_SECOND: u64 = 1_000_000_000;

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3600 * NANOS_PER_SECOND,
        _ => return None,
    })
}

/// Parses a Go duration into signed nanoseconds (`time.ParseDuration`).
pub fn parse(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let (negative, mut s) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        // Whole part.
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for c in s[..digits].bytes() {
            if whole > LIMIT / 10 {
                return Err(invalid());
            }
            whole = whole * 10 + u64::from(c - b'0');
            if whole > LIMIT {
                return Err(invalid());
            }
        }
        let pre = digits > 0;
        s = &s[digits..];
        // Fraction: digits past what fits are ignored, as Go does.
        let (mut frac, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix('.') {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for c in rest[..digits].bytes() {
                if overflow || frac > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = frac * 10 + u64::from(c - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                frac = next;
                scale *= 10.0;
            }
            post = digits > 0;
            s = &rest[digits..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let Some(per) = unit_nanos(unit) else {
            return Err(DurationError::UnknownUnit {
                unit: unit.to_string(),
                input: input.to_string(),
            });
        };
        if whole > LIMIT / per {
            return Err(invalid());
        }
        let mut v = whole * per;
        if frac > 0 {
            // Go computes the fraction in floating point, nanosecond-exact up to hours.
            v += (frac as f64 * (per as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// Parses a Go duration that must not be negative (flags, timeouts, intervals).
pub fn parse_std(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse(input)?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| DurationError::Negative(input.to_string()))
}

/// Parses a duration flag: a Go duration (`1h30m`, `500ms`), or a bare number of seconds
/// (`90`, `0.5`); not negative.
pub fn parse_flag(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    let bare = !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || c == b'.');
    if bare && s != "0" {
        return parse_std(&format!("{s}s")).map_err(|_| DurationError::Invalid(input.to_string()));
    }
    parse_std(s)
}

/// Formats signed nanoseconds as Go's `Duration.String` does (`1h2m3.5s`, `1.5ms`, `0s`).
pub fn format(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < NANOS_PER_SECOND {
        let (unit, div) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", decimal(n, div));
    }
    let hours = n / (3600 * NANOS_PER_SECOND);
    let minutes = n / (60 * NANOS_PER_SECOND) % 60;
    let rest = n % (60 * NANOS_PER_SECOND);
    let mut out = sign.to_string();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&decimal(rest, NANOS_PER_SECOND));
    out.push('s');
    out
}

/// Formats a std duration (saturating at Go's maximum).
pub fn format_std(d: Duration) -> String {
    format(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn decimal(value: u64, div: u64) -> String {
    let (whole, frac) = (value / div, value % div);
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn parses_as_go() {
        for (text, nanos) in [
            ("0", 0),
            ("-0", 0),
            ("5s", 5 * S),
            ("1h30m", 5400 * S),
            ("300ms", 300_000_000),
            ("1.5h", 5400 * S),
            ("-1.5s", -1_500_000_000),
            ("+2m", 120 * S),
            (".5s", S / 2),
            ("1.s", S),
            ("10us", 10_000),
            ("10µs", 10_000),
            ("10μs", 10_000),
            ("1h2m3.5s", 3723 * S + S / 2),
            ("0.100000000000000000000h", 360 * S),
            ("0.830103483285477580700h", (49 * 60 + 48) * S + 372_539_827),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
        ] {
            assert_eq!(parse(text), Ok(nanos), "{text}");
        }
    }

    #[test]
    fn errors_as_go() {
        assert_eq!(parse("").unwrap_err().to_string(), "time: invalid duration \"\"");
        assert_eq!(
            parse("5").unwrap_err().to_string(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse("5x").unwrap_err().to_string(),
            "time: unknown unit \"x\" in duration \"5x\""
        );
        for bad in [
            ".",
            "-",
            "s",
            "1.2.3s",
            "9223372036854775808ns",
            "3000000h",
            "1h-2m",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_std("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_std("-1s"), Err(DurationError::Negative("-1s".into())));
        assert_eq!(parse_flag("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_flag("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_flag(" 1h30m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_flag("0"), Ok(Duration::ZERO));
        assert!(parse_flag("-5").is_err() && parse_flag("1.2.3").is_err() && parse_flag("").is_err());
    }

    #[test]
    fn formats_as_go() {
        for (nanos, text) in [
            (0, "0s"),
            (1_500_000, "1.5ms"),
            (2_000, "2µs"),
            (7, "7ns"),
            (90 * S, "1m30s"),
            (3600 * S, "1h0m0s"),
            (3723 * S + S / 2, "1h2m3.5s"),
            (-5 * S, "-5s"),
        ] {
            assert_eq!(format(nanos), text);
            assert_eq!(parse(text), Ok(nanos), "{text}");
        }
        assert_eq!(format_std(Duration::from_millis(300)), "300ms");
    }
}
