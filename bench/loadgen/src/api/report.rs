//! The API server report: each API case next to the raw store doing the same work, their ratio, the
//! footprint figures, and every goal of the benchmark with whether it is met.

use std::fmt::Write as _;

use crate::api::{CASES, STORE_TARGET};
use crate::report::{ResultLine, fmt_num, fmt_ratio, ratio};

/// Footprint cases of the API server: (case, field, unit).
const FOOTPRINT: &[(&str, &str, &str)] = &[
    ("startup-fresh", "ms", "ms"),
    ("idle-rss", "rss_mb", "MiB"),
    ("rss-after-load", "rss_mb", "MiB"),
    ("startup-restart", "ms", "ms"),
    ("idle-rss-restart", "rss_mb", "MiB"),
];

fn find<'a>(lines: &'a [ResultLine], case: &str, target: &str) -> Option<&'a ResultLine> {
    lines.iter().rev().find(|l| l.case == case && l.target == target)
}

fn notes(l: &ResultLine) -> String {
    let v: Vec<String> = l
        .fields
        .iter()
        .filter(|(k, v)| (k == "errors" && v != "0") || k == "error" || (k == "missing_events" && v != "0"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    v.join(" ")
}

fn row(out: &mut String, case: &str, name: &str, l: Option<&ResultLine>) {
    let Some(l) = l else {
        let _ = writeln!(out, "{case:<22} {name:<18} {:>9}  (not run)", "-");
        return;
    };
    let _ = writeln!(
        out,
        "{case:<22} {name:<18} {:>9} {:>8} {:>8} {:>8} {:>10}  {}",
        fmt_num(l.num("ops_s")),
        fmt_num(l.num("p50_ms")),
        fmt_num(l.num("p99_ms")),
        fmt_num(l.num("max_ms")),
        fmt_num(l.num("server_cpu_us_op")),
        notes(l)
    );
}

/// A goal line: `label: value (goal ...): met / NOT met / n/a`.
fn goal(out: &mut String, label: &str, value: String, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "n/a",
    };
    let _ = writeln!(out, "  {label:<58} {value:>30}  {verdict}");
}

/// Renders the report for API server `target`; the last line is the creates/s ratio at 64 clients.
pub fn render(lines: &[ResultLine], target: &str) -> String {
    let api = |case: &str| find(lines, case, target);
    let store = |case: &str| find(lines, case, STORE_TARGET);
    let num = |l: Option<&ResultLine>, f: &str| l.and_then(|l| l.num(f));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "== {target} (kube-rs over TLS) vs raw store (etcd v3 gRPC), same writes, same run; \
         ratio = {target}/store =="
    );
    let _ = writeln!(
        out,
        "{:<22} {:<18} {:>9} {:>8} {:>8} {:>8} {:>10}  notes",
        "case", "target", "ops/s", "p50_ms", "p99_ms", "max_ms", "cpu_us/op"
    );
    for (case, store_case) in CASES {
        let (a, s) = (
            api(case),
            (!store_case.is_empty()).then(|| store(store_case)).flatten(),
        );
        if a.is_none() && s.is_none() {
            continue;
        }
        row(&mut out, case, target, a);
        if let Some(s) = s {
            row(&mut out, case, &format!("store {store_case}"), Some(s));
            let r = |f: &str| fmt_ratio(ratio(num(a, f), num(Some(s), f)));
            let _ = writeln!(
                out,
                "{case:<22} {:<18} {:>9} {:>8} {:>8} {:>8} {:>10}",
                format!("{target}/store"),
                r("ops_s"),
                r("p50_ms"),
                r("p99_ms"),
                r("max_ms"),
                r("server_cpu_us_op")
            );
        }
    }
    let mut any_footprint = false;
    for (case, field, unit) in FOOTPRINT {
        if let Some(v) = num(api(case), field) {
            if !any_footprint {
                let _ = writeln!(out, "footprint of {target}:");
                any_footprint = true;
            }
            let _ = writeln!(out, "  {case:<20} {:>9} {unit}", fmt_num(Some(v)));
        }
    }

    let _ = writeln!(out, "goals:");
    let create_ratio = |c: &str, s: &str| ratio(num(api(c), "ops_s"), num(store(s), "ops_s"));
    for (clients, c, s) in [(1, "create-c1", "put-c1"), (64, "create-c64", "put-c64")] {
        let r = create_ratio(c, s);
        goal(
            &mut out,
            &format!("creates/s at {clients} client(s) >= 50% of raw store puts/s"),
            fmt_ratio(r),
            r.map(|r| r >= 0.5),
        );
    }
    let p99 = num(api("create-c64"), "p99_ms");
    goal(
        &mut out,
        "p99 create latency at 64 clients < 25 ms",
        format!("{} ms", fmt_num(p99)),
        p99.map(|v| v < 25.0),
    );
    let w = api("watch-1000");
    let (wp99, wmax, missing) = (num(w, "p99_ms"), num(w, "max_ms"), num(w, "missing_events"));
    let watch_ok = w.map(|l| {
        missing == Some(0.0)
            && wp99.is_some_and(|v| v < 50.0)
            && l.num("errors") == Some(0.0)
            && l.fields.iter().all(|(k, _)| k != "error")
    });
    goal(
        &mut out,
        &format!(
            "{} watchers, {} creates/s: every event delivered, p99 < 50 ms",
            num(w, "watchers").map_or_else(|| "1000".to_owned(), |n| format!("{n:.0}")),
            w.and_then(|l| l.get("put_rate")).unwrap_or("-")
        ),
        format!(
            "p99 {} max {} ms, missing {}",
            fmt_num(wp99),
            fmt_num(wmax),
            missing.map_or_else(|| "-".to_owned(), |m| format!("{m:.0}"))
        ),
        watch_ok,
    );
    let rss = num(api("idle-rss"), "rss_mb");
    goal(
        &mut out,
        "idle RSS < 60 MiB (fresh data dir, 2 s after ready)",
        format!("{} MiB", fmt_num(rss)),
        rss.map(|v| v < 60.0),
    );
    let ready = num(api("startup-restart"), "ms");
    goal(
        &mut out,
        "ready < 300 ms on an existing data dir (start -> first GET)",
        format!("{} ms", fmt_num(ready)),
        ready.map(|v| v < 300.0),
    );
    let _ = writeln!(
        out,
        "creates/s at 1 client, {target}/raw store: {}",
        fmt_ratio(create_ratio("create-c1", "put-c1"))
    );
    let _ = write!(
        out,
        "creates/s at 64 clients, {target}/raw store: {}",
        fmt_ratio(create_ratio("create-c64", "put-c64"))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_and_last_line_come_from_the_lines() {
        let lines = vec![
            ResultLine::new("put-c64", STORE_TARGET, 1).field("ops_s", "1000"),
            ResultLine::new("create-c64", "apiserver", 1)
                .field("ops_s", "600")
                .field("p99_ms", "30.0"),
            ResultLine::new("startup-restart", "apiserver", 1).field("ms", "120"),
        ];
        let out = render(&lines, "apiserver");
        assert_eq!(
            out.lines().last(),
            Some("creates/s at 64 clients, apiserver/raw store: 0.60")
        );
        let line = |needle: &str| {
            out.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(line("creates/s at 64 client(s)").ends_with(" met"), "{out}");
        assert!(line("p99 create latency").ends_with("NOT met"), "{out}");
        assert!(line("ready < 300 ms").ends_with(" met"), "{out}");
        assert!(line("idle RSS").ends_with("n/a"), "{out}");
    }
}
