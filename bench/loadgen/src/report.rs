//! `RESULT` lines (one per case and target) and the keelson/etcd comparison built from them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Throughput cases, in the order they run and are reported.
pub const PERF_CASES: &[&str] = &[
    "put-c1",
    "put-c64",
    "txn-create-c64",
    "get-lin-c64",
    "get-ser-c64",
    "list100-c8",
    "watch-100",
    "watch-1000",
];

/// Footprint cases: (case, field, unit).
pub const FOOTPRINT_CASES: &[(&str, &str, &str)] = &[
    ("startup-fresh", "ms", "ms"),
    ("idle-rss", "rss_mb", "MB"),
    ("rss-after-load", "rss_mb", "MB"),
    ("startup-restart", "ms", "ms"),
    ("idle-rss-restart", "rss_mb", "MB"),
];

/// One measured case for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultLine {
    /// Case name (see [`PERF_CASES`] and [`FOOTPRINT_CASES`]).
    pub case: String,
    /// `etcd` or `keelson`.
    pub target: String,
    /// Cluster size.
    pub members: u32,
    /// Measured fields in print order.
    pub fields: Vec<(String, String)>,
}

impl ResultLine {
    /// A line with no fields yet.
    pub fn new(case: &str, target: &str, members: u32) -> Self {
        Self {
            case: case.to_owned(),
            target: target.to_owned(),
            members,
            fields: Vec::new(),
        }
    }

    /// Adds a field; whitespace in the value is replaced so that the line stays splittable.
    pub fn field(mut self, key: &str, value: impl ToString) -> Self {
        let v: String = value
            .to_string()
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .take(160)
            .collect();
        self.fields.push((key.to_owned(), v));
        self
    }

    /// The value of field `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of field `key` as a number.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    }

    /// Renders `RESULT case=.. target=.. members=.. k=v ..`.
    pub fn render(&self) -> String {
        let mut s = format!(
            "RESULT case={} target={} members={}",
            self.case, self.target, self.members
        );
        for (k, v) in &self.fields {
            let _ = write!(s, " {k}={v}");
        }
        s
    }

    /// Parses a line produced by [`ResultLine::render`]; other lines give `None`.
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix("RESULT ")?;
        let mut case = None;
        let mut target = None;
        let mut members = None;
        let mut fields = Vec::new();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "case" => case = Some(v.to_owned()),
                "target" => target = Some(v.to_owned()),
                "members" => members = v.parse().ok(),
                _ => fields.push((k.to_owned(), v.to_owned())),
            }
        }
        Some(Self {
            case: case?,
            target: target?,
            members: members?,
            fields,
        })
    }
}

pub(crate) fn fmt_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x >= 100.0 => format!("{x:.0}"),
        Some(x) if x.is_finite() => format!("{x:.2}"),
        _ => "-".to_owned(),
    }
}

pub(crate) fn ratio(k: Option<f64>, e: Option<f64>) -> Option<f64> {
    match (k, e) {
        (Some(k), Some(e)) if e > 0.0 && k.is_finite() && e.is_finite() => Some(k / e),
        _ => None,
    }
}

pub(crate) fn fmt_ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.2}"))
}

/// The comparison tables for every cluster size found, ending with the put-at-64-clients ratio line.
pub fn render(lines: &[ResultLine]) -> String {
    let mut by: BTreeMap<(u32, String, String), &ResultLine> = BTreeMap::new();
    for l in lines {
        by.insert((l.members, l.case.clone(), l.target.clone()), l);
    }
    let get = |m: u32, case: &str, target: &str| by.get(&(m, case.to_owned(), target.to_owned())).copied();
    let mut members: Vec<u32> = lines.iter().map(|l| l.members).collect();
    members.sort_unstable();
    members.dedup();

    let mut out = String::new();
    for m in members {
        let _ = writeln!(
            out,
            "== {m} member(s): ratio = keelson/etcd (ops/s: >1 is better; ms and CPU: <1 is better) =="
        );
        let _ = writeln!(
            out,
            "{:<16} {:<13} {:>10} {:>9} {:>9} {:>12}  notes",
            "case", "target", "ops/s", "p50_ms", "p99_ms", "srv_cpu_us/op"
        );
        for case in PERF_CASES {
            let (e, k) = (get(m, case, "etcd"), get(m, case, "keelson"));
            if e.is_none() && k.is_none() {
                continue;
            }
            for (name, l) in [("etcd", e), ("keelson", k)] {
                let Some(l) = l else {
                    let _ = writeln!(out, "{case:<16} {name:<13} {:>10}  (not run)", "-");
                    continue;
                };
                let notes: Vec<String> = l
                    .fields
                    .iter()
                    .filter(|(k, v)| (k == "errors" && v != "0") || k == "error" || k == "missing_events")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "{case:<16} {name:<13} {:>10} {:>9} {:>9} {:>12}  {}",
                    fmt_num(l.num("ops_s")),
                    fmt_num(l.num("p50_ms")),
                    fmt_num(l.num("p99_ms")),
                    fmt_num(l.num("server_cpu_us_op")),
                    notes.join(" ")
                );
            }
            let r = |f: &str| fmt_ratio(ratio(k.and_then(|l| l.num(f)), e.and_then(|l| l.num(f))));
            let _ = writeln!(
                out,
                "{case:<16} {:<13} {:>10} {:>9} {:>9} {:>12}",
                "keelson/etcd",
                r("ops_s"),
                r("p50_ms"),
                r("p99_ms"),
                r("server_cpu_us_op")
            );
        }
        let _ = writeln!(out, "{:<18} {:<13} {:>10}", "footprint", "target", "value");
        for (case, field, unit) in FOOTPRINT_CASES {
            let (e, k) = (get(m, case, "etcd"), get(m, case, "keelson"));
            if e.is_none() && k.is_none() {
                continue;
            }
            for (name, l) in [("etcd", e), ("keelson", k)] {
                let v = l.and_then(|l| l.num(field));
                let _ = writeln!(out, "{case:<18} {name:<13} {:>10} {unit}", fmt_num(v));
            }
            let rv = ratio(k.and_then(|l| l.num(field)), e.and_then(|l| l.num(field)));
            let _ = writeln!(out, "{case:<18} {:<13} {:>10}", "keelson/etcd", fmt_ratio(rv));
        }
        out.push('\n');
    }
    let put = |t: &str| get(1, "put-c64", t).and_then(|l| l.num("ops_s"));
    let _ = write!(
        out,
        "put throughput at 64 clients, keelson/etcd: {}",
        fmt_ratio(ratio(put("keelson"), put("etcd")))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_parse_round_trip() {
        let l = ResultLine::new("put-c64", "etcd", 1)
            .field("ops_s", "123.4")
            .field("error", "a b\tc");
        let s = l.render();
        assert_eq!(
            s,
            "RESULT case=put-c64 target=etcd members=1 ops_s=123.4 error=a_b_c"
        );
        assert_eq!(ResultLine::parse(&s), Some(l));
        assert_eq!(ResultLine::parse("hello"), None);
    }

    #[test]
    fn last_line_has_the_put_ratio() {
        let lines = vec![
            ResultLine::new("put-c64", "etcd", 1).field("ops_s", "200"),
            ResultLine::new("put-c64", "keelson", 1).field("ops_s", "100"),
        ];
        let out = render(&lines);
        assert_eq!(
            out.lines().last(),
            Some("put throughput at 64 clients, keelson/etcd: 0.50")
        );
    }

    #[test]
    fn missing_keelson_gives_na() {
        let lines = vec![ResultLine::new("put-c64", "etcd", 1).field("ops_s", "200")];
        let out = render(&lines);
        assert_eq!(
            out.lines().last(),
            Some("put throughput at 64 clients, keelson/etcd: n/a")
        );
    }
}
