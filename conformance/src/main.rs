//! `keelson-conformance`: runs Keelson's kubectl conformance subset against any cluster and
//! prints PASS/FAIL per case.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use conformance::{CaseReport, Kubectl, Suite};

/// Runs the stock-kubectl conformance subset against the cluster of a kubeconfig.
#[derive(Debug, Parser)]
#[command(name = "keelson-conformance", version, about)]
struct Args {
    /// The cluster's kubeconfig (its current context is used).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// kubectl binaries to run the suite with, one after another (repeatable).
    #[arg(long, required = true)]
    kubectl: Vec<PathBuf>,
    /// Suffix for every name, so the suite can run again against the same cluster
    /// (default: derived from the time).
    #[arg(long)]
    run_id: Option<String>,
    /// Print only failures and the summary.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let run_id = args.run_id.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("{:x}", secs % 0x10_0000)
    });
    let mut all_ok = true;
    for bin in &args.kubectl {
        let kubectl = match Kubectl::new(bin, &args.kubeconfig) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::from(2);
            }
        };
        let suite = match Suite::new(kubectl) {
            Ok(s) => s.with_run_id(&run_id),
            Err(e) => {
                eprintln!("Error: scratch directory: {e}");
                return ExitCode::from(2);
            }
        };
        println!(
            "# kubectl 1.{} ({}), names ending in -{}",
            suite.kubectl().minor(),
            bin.display(),
            suite.ctx().tag()
        );
        let quiet = args.quiet;
        let mut print = |c: &CaseReport| {
            if !quiet || !matches!(c.outcome, conformance::Outcome::Pass) {
                println!("{c}");
            }
        };
        let report = suite.run(&mut print, &mut |_| {});
        let (pass, fail, known) = report.counts();
        println!(
            "# kubectl 1.{}: {pass} passed, {fail} failed, {known} known failures",
            suite.kubectl().minor()
        );
        all_ok &= report.ok();
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
