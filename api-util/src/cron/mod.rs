//! CronJob schedules (upstream's CronJob controller with `robfig/cron`'s standard parser): five
//! fields (minute, hour, day of month, month, day of week; names, ranges, steps, `?`), the
//! descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`,
//! `@every <duration>`, and a leading `CRON_TZ=<zone>` or `TZ=<zone>`. The grammar is checked
//! with the parser's messages ([`check`]); evaluation is the `croner` crate's, over `jiff` time
//! zones.

mod grammar;

pub use grammar::check;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// Why a schedule does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not of the standard parser's grammar: its message ([`check`]).
    #[error("{0}")]
    Grammar(String),
    /// A pattern croner cannot evaluate.
    #[error("invalid schedule {schedule:?}: {reason}")]
    Pattern {
        /// The schedule.
        schedule: String,
        /// Why.
        reason: String,
    },
    /// An unknown time zone (`spec.timeZone`).
    #[error("provided bad location {0}: unknown time zone {0}")]
    TimeZone(String),
}

#[derive(Clone, Debug)]
enum Kind {
    Cron(Box<Cron>),
    /// `@every`: a constant delay in whole seconds (at least one).
    Every(i64),
}

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    kind: Kind,
    tz: TimeZone,
}

impl Schedule {
    /// Parses a schedule, with a `CRON_TZ=`/`TZ=` prefix naming its zone (UTC otherwise).
    pub fn parse(schedule: &str) -> Result<Schedule, ScheduleError> {
        Self::parse_in(schedule, None)
    }

    /// Parses a schedule as the CronJob controller does with `spec.timeZone` (which, when set,
    /// overrides a `TZ=` prefix).
    pub fn parse_in(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        check(schedule).map_err(ScheduleError::Grammar)?;
        let (zone, spec) = grammar::split_zone(schedule.trim());
        let tz = match time_zone.or(zone) {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|_| ScheduleError::TimeZone(name.to_string()))?,
        };
        let pattern = |reason: String| ScheduleError::Pattern {
            schedule: schedule.to_string(),
            reason,
        };
        if let Some(every) = spec.strip_prefix("@every ") {
            let nanos = crate::duration::parse(every).map_err(|e| pattern(e.to_string()))?;
            // Sub-second delays round down to whole seconds, at least one.
            return Ok(Schedule {
                kind: Kind::Every((nanos / 1_000_000_000).max(1)),
                tz,
            });
        }
        let spec = match spec {
            s if s.eq_ignore_ascii_case("@midnight") => "@daily",
            s => s,
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .sloppy_ranges(true)
            .build()
            .parse(spec)
            .map_err(|e| pattern(e.to_string()))?;
        Ok(Schedule {
            kind: Kind::Cron(Box::new(cron)),
            tz,
        })
    }

    /// The schedule's time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The first scheduled time strictly after `after` (as `robfig/cron`'s `Next`: whole
    /// seconds), or `None` when there is none.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let whole = Timestamp::from_second(after.as_second()).ok()?;
        match &self.kind {
            Kind::Every(secs) => whole.checked_add(jiff::SignedDuration::from_secs(*secs)).ok(),
            Kind::Cron(cron) => {
                let start: Zoned = whole.to_zoned(self.tz.clone());
                cron.find_next_occurrence(&start, false)
                    .ok()
                    .map(|z| z.timestamp())
            }
        }
    }

    /// The latest scheduled time in `(after, until]`, if any, and how many scheduled times that
    /// interval holds, counting at most `limit` (what the CronJob controller needs to find a
    /// missed run and to notice too many missed starts).
    pub fn most_recent(
        &self,
        after: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> (Option<Timestamp>, usize) {
        let (mut last, mut count) = (None, 0);
        let mut t = after;
        while count < limit {
            match self.next_after(t) {
                Some(next) if next <= until => {
                    last = Some(next);
                    count += 1;
                    t = next;
                }
                _ => break,
            }
        }
        (last, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(schedule: &str, after: &str) -> String {
        Schedule::parse(schedule)
            .unwrap()
            .next_after(ts(after))
            .unwrap()
            .to_string()
    }

    #[test]
    fn standard_fields() {
        assert_eq!(
            next("*/5 * * * *", "2026-01-01T10:02:30Z"),
            "2026-01-01T10:05:00Z"
        );
        assert_eq!(
            next("*/5 * * * *", "2026-01-01T10:05:00Z"),
            "2026-01-01T10:10:00Z"
        );
        assert_eq!(
            next("0 9-17 * * mon-fri", "2026-01-03T12:00:00Z"),
            "2026-01-05T09:00:00Z"
        );
        assert_eq!(
            next("15,45 */2 1 jan,jul ?", "2026-01-01T00:20:00Z"),
            "2026-01-01T00:45:00Z"
        );
        assert_eq!(
            next("0 0 1 */3 *", "2026-02-10T00:00:00Z"),
            "2026-04-01T00:00:00Z"
        );
        // Day of month and day of week both restricted: either matches (2026-03-02 is a Monday).
        assert_eq!(next("0 0 13 * 1", "2026-03-01T00:00:00Z"), "2026-03-02T00:00:00Z");
        // Steps from a single start run to the end of the range.
        assert_eq!(
            next("50/5 * * * *", "2026-01-01T10:51:00Z"),
            "2026-01-01T10:55:00Z"
        );
    }

    #[test]
    fn descriptors() {
        assert_eq!(next("@hourly", "2026-01-01T10:02:00Z"), "2026-01-01T11:00:00Z");
        assert_eq!(next("@daily", "2026-01-01T10:02:00Z"), "2026-01-02T00:00:00Z");
        assert_eq!(next("@midnight", "2026-01-01T10:02:00Z"), "2026-01-02T00:00:00Z");
        assert_eq!(next("@weekly", "2026-01-01T10:02:00Z"), "2026-01-04T00:00:00Z");
        assert_eq!(next("@monthly", "2026-01-01T10:02:00Z"), "2026-02-01T00:00:00Z");
        assert_eq!(next("@yearly", "2026-01-01T10:02:00Z"), "2027-01-01T00:00:00Z");
        assert_eq!(next("@annually", "2026-01-01T10:02:00Z"), "2027-01-01T00:00:00Z");
        assert_eq!(
            next("@every 1h30m", "2026-01-01T10:02:00.5Z"),
            "2026-01-01T11:32:00Z"
        );
        assert_eq!(
            next("@every 100ms", "2026-01-01T10:02:00Z"),
            "2026-01-01T10:02:01Z"
        );
    }

    #[test]
    fn time_zones() {
        // 09:00 in New York (EST, UTC-5) in January.
        assert_eq!(
            next("CRON_TZ=America/New_York 0 9 * * *", "2026-01-01T00:00:00Z"),
            "2026-01-01T14:00:00Z"
        );
        assert_eq!(
            next("TZ=Europe/Berlin 0 9 * * *", "2026-07-01T00:00:00Z"),
            "2026-07-01T07:00:00Z"
        );
        let s = Schedule::parse_in("0 9 * * *", Some("Asia/Tokyo")).unwrap();
        // 09:00 in Tokyo is 00:00 UTC; strictly after it comes the next day's.
        assert_eq!(
            s.next_after(ts("2026-01-01T00:00:00Z")).unwrap().to_string(),
            "2026-01-02T00:00:00Z"
        );
        assert_eq!(
            Schedule::parse_in("* * * * *", Some("Nowhere/Special")).unwrap_err(),
            ScheduleError::TimeZone("Nowhere/Special".into())
        );
        assert_eq!(
            Schedule::parse("TZ=Nowhere/Special * * * * *")
                .unwrap_err()
                .to_string(),
            "provided bad location Nowhere/Special: unknown time zone Nowhere/Special"
        );
    }

    #[test]
    fn rejects_what_upstream_rejects() {
        assert_eq!(
            Schedule::parse("* * * *").unwrap_err().to_string(),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        for bad in [
            "0 * * * * *",
            "61 * * * *",
            "* * * foo *",
            "0 0 L * *",
            "0 0 * * 1#2",
            "@every x",
            "@often",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn most_recent_counts_missed_runs() {
        let s = Schedule::parse("*/10 * * * *").unwrap();
        let (last, n) = s.most_recent(ts("2026-01-01T10:00:00Z"), ts("2026-01-01T10:35:00Z"), 100);
        assert_eq!(
            (last.unwrap().to_string().as_str(), n),
            ("2026-01-01T10:30:00Z", 3)
        );
        assert_eq!(
            s.most_recent(ts("2026-01-01T10:00:00Z"), ts("2026-01-01T10:05:00Z"), 100),
            (None, 0)
        );
        assert_eq!(
            s.most_recent(ts("2026-01-01T10:00:00Z"), ts("2026-01-02T10:00:00Z"), 5)
                .1,
            5
        );
    }
}
