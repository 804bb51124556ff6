//! The schedule grammar of robfig/cron's standard parser, which upstream's CronJob controller
//! and validation use: five fields or a `@descriptor`; errors read like the parser's.

const FIELDS: [(u32, u32, &[&str]); 5] = [
    (0, 59, &[]),
    (0, 23, &[]),
    (1, 31, &[]),
    (
        1,
        12,
        &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    ),
    (0, 6, &["sun", "mon", "tue", "wed", "thu", "fri", "sat"]),
];

const DESCRIPTORS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// A leading `TZ=<zone>` or `CRON_TZ=<zone>`, and the rest of the schedule.
pub(super) fn split_zone(spec: &str) -> (Option<&str>, &str) {
    if !(spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=")) {
        return (None, spec);
    }
    let (zone, rest) = spec.split_once(' ').unwrap_or((spec, ""));
    (zone.split_once('=').map(|(_, n)| n), rest.trim())
}

/// Checks a schedule; the error is the parser's message.
pub fn check(schedule: &str) -> Result<(), String> {
    if schedule.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = schedule.trim();
    // A leading TZ=/CRON_TZ= zone is accepted by the parser (the CronJob validation rejects
    // it separately).
    let (zone, rest) = split_zone(spec);
    if let Some(name) = zone {
        if jiff::tz::TimeZone::get(name).is_err() {
            return Err(format!("provided bad location {name}: unknown time zone {name}"));
        }
        spec = rest;
    }
    if spec.starts_with('@') {
        if DESCRIPTORS.contains(&spec) {
            return Ok(());
        }
        if let Some(every) = spec.strip_prefix("@every ") {
            return crate::duration::parse(every)
                .map(|_| ())
                .map_err(|e| format!("failed to parse duration {spec}: {e}"));
        }
        return Err(format!("unrecognized descriptor: {spec}"));
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    for (f, (min, max, names)) in fields.iter().zip(FIELDS) {
        for part in f.split(',') {
            range(part, min, max, names)?;
        }
    }
    Ok(())
}

fn number(s: &str, names: &[&str]) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(u32::try_from(i).unwrap_or(0) + if names.len() == 12 { 1 } else { 0 });
    }
    match s.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {s}")),
        Ok(n) => u32::try_from(n).map_err(|_| format!("failed to parse int from {s}: value out of range")),
        Err(_) => Err(format!(
            "failed to parse int from {s}: strconv.Atoi: parsing \"{s}\": invalid syntax"
        )),
    }
}

fn range(expr: &str, min: u32, max: u32, names: &[&str]) -> Result<(), String> {
    let (range, step) = match expr.split('/').collect::<Vec<_>>().as_slice() {
        [r] => (*r, None),
        [r, s] => (*r, Some(*s)),
        _ => return Err(format!("too many slashes: {expr}")),
    };
    let (start, end) = match range.split('-').collect::<Vec<_>>().as_slice() {
        ["*" | "?"] => (min, max),
        [one] => {
            let n = number(one, names)?;
            (n, if step.is_some() { max } else { n })
        }
        [a, b] => (number(a, names)?, number(b, names)?),
        _ => return Err(format!("too many hyphens: {expr}")),
    };
    if let Some(step) = step
        && number(step, &[])? == 0
    {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!("end of range ({end}) above maximum ({max}): {expr}"));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check as parse;

    #[test]
    fn schedules() {
        for ok in [
            "*/5 * * * *",
            "0 0 * * 0",
            "0 9-17 * * mon-fri",
            "15,45 */2 1 jan,jul ?",
            "@hourly",
            "@every 1h30m",
            "0 0 1 */3 *",
        ] {
            assert_eq!(parse(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            parse("* * * *"),
            Err("expected exactly 4 fields, found 4: [* * * *]".replace("exactly 4", "exactly 5"))
        );
        assert_eq!(
            parse("61 * * * *"),
            Err("end of range (61) above maximum (59): 61".into())
        );
        assert_eq!(
            parse("@fortnightly"),
            Err("unrecognized descriptor: @fortnightly".into())
        );
        assert_eq!(
            parse("* * 0 * *"),
            Err("beginning of range (0) below minimum (1): 0".into())
        );
        assert_eq!(
            parse("x * * * *"),
            Err("failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax".into())
        );
        assert!(parse("*/0 * * * *").is_err());
    }
}
