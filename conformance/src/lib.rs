//! Keelson's conformance subset: stock kubectl, end to end, against any kubeconfig.
//!
//! The suite is a list of cases (see [`cases::all`]) in two ordered [`Phase`]s. Each case runs
//! kubectl commands and checks what they print, not only their exit codes. Names end in the
//! kubectl version (`-k127`), and namespaced objects live in the run's own namespace
//! (`conf-k127`), so several kubectl versions can run one after another against one server.
//!
//! ```no_run
//! use conformance::{Kubectl, Phase, Suite};
//!
//! let kubectl = Kubectl::new("/var/cache/keelson-kube-clients/kubectl-1.27", "admin.kubeconfig").unwrap();
//! let suite = Suite::new(kubectl).unwrap();
//! let mut print = |case: &conformance::CaseReport| eprintln!("{case}");
//! let mut report = suite.run_phase(Phase::Create, &mut print);
//! // ... restart the server on the same data directory ...
//! report.extend(suite.run_phase(Phase::Verify, &mut print));
//! assert!(report.ok(), "{}", report.failures());
//! ```

pub mod cases;
pub mod kubectl;
pub mod suite;

pub use kubectl::{Kubectl, KubectlError, Output, find_kubectls};
pub use suite::{CaseReport, Ctx, KNOWN_FAILURES, Outcome, Phase, Report, Suite};
