//! The suite's machinery: a [`Ctx`] per kubectl (its names, namespace and scratch directory),
//! [`Case`]s grouped in ordered [`Phase`]s, and the [`Report`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kubectl::{Kubectl, Output};

/// Why a case failed: what was run and what was wrong.
#[derive(Debug, Clone)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The result of a case.
pub type CaseResult = Result<(), Failure>;

/// Fails the case with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::suite::Failure(format!($($arg)+)));
        }
    };
}

/// The suite's phases, in order. A caller may do anything between them (the root test restarts
/// the server on the same data directory): objects made in [`Phase::Create`] are checked in
/// [`Phase::Verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Discovery, every `create`, get/describe/watch, apply, diff, edit, patch, label, annotate,
    /// scale, explain, raw gets. Leaves its objects in place.
    Create,
    /// The objects of [`Phase::Create`] are all still there; then changes to them, every kind of
    /// delete and wait.
    Verify,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 2] = [Phase::Create, Phase::Verify];

    /// `create` or `verify`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Verify => "verify",
        }
    }
}

/// One case: a name, its phase and the check.
#[derive(Clone, Copy)]
pub struct Case {
    /// Unique, kebab-case (`get-wide`, `create-secret-tls`).
    pub name: &'static str,
    /// When it runs.
    pub phase: Phase,
    /// The check.
    pub run: fn(&Ctx) -> CaseResult,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("phase", &self.phase)
            .finish()
    }
}

/// What a case's run needs: one kubectl, the names it owns and a scratch directory.
#[derive(Debug)]
pub struct Ctx<'a> {
    kubectl: &'a Kubectl,
    dir: &'a Path,
    tag: String,
}

impl<'a> Ctx<'a> {
    /// A context whose names end in `-<tag>`.
    pub fn new(kubectl: &'a Kubectl, dir: &'a Path, tag: String) -> Ctx<'a> {
        Ctx { kubectl, dir, tag }
    }

    /// The kubectl.
    pub fn kubectl(&self) -> &Kubectl {
        self.kubectl
    }

    /// kubectl's minor version.
    pub fn minor(&self) -> u32 {
        self.kubectl.minor()
    }

    /// The suffix of every name this run makes (`k127`).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The run's own namespace, passed to every command.
    pub fn ns(&self) -> String {
        format!("conf-{}", self.tag)
    }

    /// `<base>-<tag>`.
    pub fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.tag)
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir
    }

    fn with_ns<'s>(&self, ns: &'s str, args: &[&'s str]) -> Vec<&'s str> {
        let mut all = vec!["--namespace", ns];
        all.extend_from_slice(args);
        all
    }

    /// Runs kubectl in the run's namespace.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// Runs kubectl in the run's namespace with extra environment.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let ns = self.ns();
        self.kubectl.run(&self.with_ns(&ns, args), env)
    }

    /// Starts kubectl in the background (output to `log`).
    pub fn spawn(&self, args: &[&str], log: &Path) -> Result<std::process::Child, Failure> {
        let ns = self.ns();
        self.kubectl
            .spawn(&self.with_ns(&ns, args), log)
            .map_err(|e| Failure(format!("cannot start kubectl {args:?}: {e}")))
    }

    /// Runs and requires exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String, Failure> {
        let out = self.run(args);
        ensure!(out.success(), "expected success:\n{out}");
        Ok(out.stdout)
    }

    /// Runs and requires a non-zero exit; returns the output.
    pub fn fails(&self, args: &[&str]) -> Result<Output, Failure> {
        let out = self.run(args);
        ensure!(!out.success(), "expected a failure:\n{out}");
        Ok(out)
    }

    /// Runs and requires stdout to be exactly `expected` (after trimming).
    pub fn ok_eq(&self, args: &[&str], expected: &str) -> CaseResult {
        let out = self.run(args);
        ensure!(
            out.success() && out.stdout.trim() == expected.trim(),
            "expected stdout {expected:?}:\n{out}"
        );
        Ok(())
    }

    /// `get <what...> -o jsonpath=<template>`.
    pub fn jsonpath(&self, what: &[&str], template: &str) -> Result<String, Failure> {
        let o = format!("jsonpath={template}");
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", &o]);
        self.ok(&args)
    }

    /// `get <what...> -o json`, parsed.
    pub fn json(&self, what: &[&str]) -> Result<Value, Failure> {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        let out = self.ok(&args)?;
        serde_json::from_str(&out).map_err(|e| Failure(format!("get {what:?} -o json: {e}:\n{out}")))
    }

    /// Writes a scratch file `<tag>-<file>`; returns its path.
    pub fn file(&self, file: &str, content: &str) -> Result<String, Failure> {
        let path: PathBuf = self.dir.join(format!("{}-{file}", self.tag));
        std::fs::write(&path, content).map_err(|e| Failure(format!("write {}: {e}", path.display())))?;
        Ok(path.to_string_lossy().into_owned())
    }

    /// Polls `check` on the file `log` until it holds or `timeout` passes; returns the text.
    pub fn wait_for_output(
        &self,
        log: &Path,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String, Failure> {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if check(&text) {
                return Ok(text);
            }
            ensure!(
                start.elapsed() < timeout,
                "{} did not show the expected output within {timeout:?}:\n{text}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Requires `haystack` to contain every needle.
pub fn contains_all(haystack: &str, needles: &[&str], what: &str) -> CaseResult {
    for n in needles {
        ensure!(haystack.contains(n), "{what} lacks {n:?}:\n{haystack}");
    }
    Ok(())
}

/// Splits a table into rows of whitespace-separated cells (header first).
pub fn table(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Requires the table's header to be exactly `header` and a row starting with `row_start`.
pub fn table_has(text: &str, header: &[&str], row_start: &[&str]) -> CaseResult {
    let rows = table(text);
    // `*` matches any cell, `*suffix` any cell ending so (counts that depend on whether
    // controllers and nodes run, e.g. READY `*/2`).
    let cell_matches = |want: &str, got: &String| match want.strip_prefix('*') {
        Some(suffix) => got.ends_with(suffix),
        None => got == want,
    };
    ensure!(
        rows.first().is_some_and(|h| h == header),
        "expected the header {header:?}:\n{text}"
    );
    ensure!(
        rows.iter().skip(1).any(|r| r.len() >= row_start.len()
            && row_start.iter().zip(r).all(|(want, got)| cell_matches(want, got))),
        "expected a row starting with {row_start:?}:\n{text}"
    );
    Ok(())
}

/// How one case ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Everything checked out.
    Pass,
    /// A check failed.
    Fail(Failure),
    /// It failed, as [`KNOWN_FAILURES`] says it does (the reason is there).
    KnownFailure(Failure),
}

/// Cases that fail against Keelson today, with the reason: they still run and are reported as
/// `KNOWN-FAIL` (a pass is reported too, so the entry can go).
pub const KNOWN_FAILURES: &[(&str, &str)] = &[];

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// kubectl's minor version.
    pub minor: u32,
    /// The phase.
    pub phase: Phase,
    /// The case.
    pub name: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

impl std::fmt::Display for CaseReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = format!("kubectl 1.{} {}/{}", self.minor, self.phase.as_str(), self.name);
        match &self.outcome {
            Outcome::Pass => write!(f, "PASS       {label} ({:.1?})", self.elapsed),
            Outcome::KnownFailure(e) => write!(f, "KNOWN-FAIL {label}\n{}", indent(&e.0)),
            Outcome::Fail(e) => write!(f, "FAIL       {label}\n{}", indent(&e.0)),
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// The results of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every case run, in order.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// No unexpected failure.
    pub fn ok(&self) -> bool {
        !self.cases.iter().any(|c| matches!(c.outcome, Outcome::Fail(_)))
    }

    /// Adds the cases of `other`.
    pub fn extend(&mut self, other: Report) {
        self.cases.extend(other.cases);
    }

    /// `passed, failed, known failures`.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut n = (0, 0, 0);
        for c in &self.cases {
            match c.outcome {
                Outcome::Pass => n.0 += 1,
                Outcome::Fail(_) => n.1 += 1,
                Outcome::KnownFailure(_) => n.2 += 1,
            }
        }
        n
    }

    /// The failed cases, one block each.
    pub fn failures(&self) -> String {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.cases {
            writeln!(f, "{c}")?;
        }
        let (pass, fail, known) = self.counts();
        write!(f, "{pass} passed, {fail} failed, {known} known failures")
    }
}

/// The suite for one kubectl: runs the phases in order, with a hook between them.
#[derive(Debug)]
pub struct Suite {
    kubectl: Kubectl,
    dir: tempfile::TempDir,
    tag: String,
}

impl Suite {
    /// The suite for `kubectl`; names end in `-k1<minor>` (`-k127`).
    pub fn new(kubectl: Kubectl) -> std::io::Result<Suite> {
        let tag = format!("k1{}", kubectl.minor());
        Ok(Suite {
            kubectl,
            dir: tempfile::tempdir()?,
            tag,
        })
    }

    /// Appends `-<run_id>` to every name (for repeated runs against one cluster).
    pub fn with_run_id(mut self, run_id: &str) -> Suite {
        self.tag = format!("{}-{run_id}", self.tag);
        self
    }

    /// The kubectl.
    pub fn kubectl(&self) -> &Kubectl {
        &self.kubectl
    }

    /// The context the cases get.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx::new(&self.kubectl, self.dir.path(), self.tag.clone())
    }

    /// Runs the cases of `phase` in order, telling `observe` about each as it ends.
    pub fn run_phase(&self, phase: Phase, observe: &mut dyn FnMut(&CaseReport)) -> Report {
        let ctx = self.ctx();
        let mut report = Report::default();
        for case in crate::cases::all().into_iter().filter(|c| c.phase == phase) {
            let start = Instant::now();
            let result = (case.run)(&ctx);
            let known = KNOWN_FAILURES.iter().any(|(n, _)| *n == case.name);
            let outcome = match result {
                Ok(()) => Outcome::Pass,
                Err(e) if known => Outcome::KnownFailure(e),
                Err(e) => Outcome::Fail(e),
            };
            let r = CaseReport {
                minor: self.kubectl.minor(),
                phase,
                name: case.name,
                outcome,
                elapsed: start.elapsed(),
            };
            observe(&r);
            report.cases.push(r);
        }
        report
    }

    /// Runs every phase in order, calling `between(finished_phase)` after each but the last.
    pub fn run(&self, observe: &mut dyn FnMut(&CaseReport), between: &mut dyn FnMut(Phase)) -> Report {
        let mut report = Report::default();
        for (i, phase) in Phase::ALL.iter().enumerate() {
            report.extend(self.run_phase(*phase, observe));
            if i + 1 < Phase::ALL.len() {
                between(*phase);
            }
        }
        report
    }
}

/// Runs several suites (one per kubectl) phase by phase: every suite's first phase, then
/// `between(finished_phase)`, then every suite's next phase, and so on.
pub fn run_suites(
    suites: &[Suite],
    observe: &mut dyn FnMut(&CaseReport),
    between: &mut dyn FnMut(Phase),
) -> Report {
    let mut report = Report::default();
    for (i, phase) in Phase::ALL.iter().enumerate() {
        for suite in suites {
            report.extend(suite.run_phase(*phase, observe));
        }
        if i + 1 < Phase::ALL.len() {
            between(*phase);
        }
    }
    report
}
