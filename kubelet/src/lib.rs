//! Keelson's node agent. For now its simulated mode (`keelson kubelet --simulated`), like KWOK:
//! one process registers many Nodes, keeps their Leases and status fresh, and plays the
//! kubelet's part for the pods bound to them without running containers: pods get an IP from
//! their node's range, their containers "start", become ready after their readiness probe's
//! initial delay, end when their command is a short program (`sleep 5`, `exit 3`, `true`), restart
//! as their restart policy says, and deleted pods stop and are removed.
//!
//! What is not specific to the simulation (the Node object, its status and Lease, the pod
//! phase and conditions, the restart back-off) lives in [`node`] and [`pod`] for the real kubelet
//! to reuse; [`simulated`] holds the fake runtime.

pub mod cli;
pub mod config;
pub mod node;
pub mod pod;
pub mod simulated;

pub use config::Config;

use tokio_util::sync::CancellationToken;

/// Failures of the kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Only the simulated mode exists so far.
    #[error(
        "only the simulated kubelet exists so far: pass --simulated (pods on its nodes run without containers)"
    )]
    NotSimulated,
    /// The configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// Building the API client.
    #[error(transparent)]
    Client(#[from] component_base::ClientError),
    /// The health endpoint.
    #[error(transparent)]
    Serving(#[from] component_base::ServingError),
}

/// Runs the kubelet until `shutdown` is cancelled.
pub async fn run(config: Config, client: kube::Client, shutdown: CancellationToken) -> Result<(), Error> {
    if !config.simulated {
        return Err(Error::NotSimulated);
    }
    simulated::run(config, client, shutdown).await
}
