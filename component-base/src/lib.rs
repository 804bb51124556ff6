//! What every Keelson component (scheduler, controller-manager, kubelet, proxy, addons) shares,
//! written once:
//!
//! - [`client`]: a `kube::Client` from a kubeconfig, the in-cluster config or the environment,
//!   with the component's user agent and a client-side rate limit ([`ratelimit`], QPS + burst as
//!   client-go's token bucket);
//! - [`leader`]: leader election on a `coordination.k8s.io/v1` Lease with upstream's semantics
//!   (lease duration, renew deadline, retry period, holder identity, transitions); losing the
//!   lease stops the work;
//! - [`serving`]: `/healthz`, `/livez`, `/readyz` and `/metrics` (Prometheus) on a TLS port, with
//!   `/metrics` behind delegated authentication and authorization (TokenReview and
//!   SubjectAccessReview), as upstream's components serve them;
//! - [`logging`]: tracing set up from klog-style `-v` levels;
//! - [`signals`]: a shutdown token cancelled on SIGINT or SIGTERM;
//! - [`events`]: an event recorder (`events.k8s.io/v1`, with event series);
//! - [`options`]: the command-line flags all of the above take, to flatten into a component's
//!   own flags.
//!
//! Components depend on this crate, `kube` and `k8s-openapi`, never on the API server or the
//! store: they talk to the cluster only through the API.

pub mod client;
pub mod events;
pub mod healthz;
pub mod leader;
pub mod logging;
pub mod options;
pub mod ratelimit;
pub mod serving;
pub mod signals;

pub use client::{ClientError, build_client};
pub use leader::{LeaderElection, LeaderElectionConfig, LeaderElectionError};
pub use options::ComponentOptions;
pub use serving::{HealthServer, ServingConfig, ServingError};
