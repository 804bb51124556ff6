//! Keelson's conformance subset: stock kubectl, end to end, against any kubeconfig.
//!
//! The suite is a list of cases (see [`cases::all`]) in two ordered [`Phase`]s. Each case runs
//! kubectl commands and checks what they print, not only their exit codes. Names end in the
//! kubectl version (`-k127`), and namespaced objects live in the run's own namespace
//! (`conf-k127`), so several kubectl versions can run one after another against one server.
//!
//! ```no_run
//! use conformance::{Kubectl, Phase, Suite, run_suites};
//!
//! let kubeconfig = "/tmp/keelson/admin.kubeconfig";
//! let suites: Vec<Suite> = ["kubectl-1.27", "kubectl-1.33"]
//!     .iter()
//!     .map(|bin| Suite::new(Kubectl::new(bin, kubeconfig).unwrap()).unwrap())
//!     .collect();
//! let mut print = |case: &conformance::CaseReport| eprintln!("{case}");
//! // Every suite's `Create` phase, then the hook, then every suite's `Verify` phase.
//! let report = run_suites(&suites, &mut print, &mut |_finished: Phase| {
//!     // e.g. stop the server and start it again on the same data directory
//! });
//! assert!(report.ok(), "{}", report.failures());
//! ```
//!
//! A single suite runs phase by phase with [`Suite::run_phase`] too.

pub mod cases;
pub mod kubectl;
pub mod suite;
pub mod tools;

pub use kubectl::{Kubectl, KubectlError, Output, find_kubectls};
pub use suite::{CaseReport, Ctx, KNOWN_FAILURES, Outcome, Phase, Report, Suite, run_suites};
