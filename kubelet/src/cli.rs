//! `keelson kubelet`: the flags (upstream's names where upstream has them) and
//! [`run_command`], which builds the client, serves `/healthz`, `/readyz` and `/metrics`, and
//! runs the kubelet. There is no leader election: every kubelet process runs its own nodes.

use std::time::Duration;

use clap::Args as ClapArgs;
use component_base::options::ComponentDefaults;
use component_base::{ComponentOptions, HealthServer};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Resources};
use crate::{Error, node};

/// The kubelet's defaults for the shared flags: QPS 50 and burst 100 (one process speaks for
/// many simulated nodes), health on port 10250.
pub const DEFAULTS: ComponentDefaults = ComponentDefaults {
    name: "kubelet",
    qps: 50.0,
    burst: 100,
    secure_port: 10250,
};

/// `keelson kubelet` flags.
#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// The shared component flags (`--kubeconfig`, `--kube-api-qps`, `--secure-port`, `-v`, ...).
    /// `--leader-elect*` are accepted and ignored: kubelets do not elect a leader.
    #[command(flatten)]
    pub options: ComponentOptions,
    /// Simulate nodes and their pods without containers (the only mode so far).
    #[arg(long)]
    pub simulated: bool,
    /// How many nodes to simulate, named `<--node-name-prefix><index>`.
    #[arg(long = "nodes", default_value_t = 1)]
    pub nodes: usize,
    /// The prefix of simulated node names.
    #[arg(long = "node-name-prefix", default_value = "sim-")]
    pub node_name_prefix: String,
    /// Explicit node names, comma-separated (instead of --nodes and --node-name-prefix).
    #[arg(long = "node-names", value_delimiter = ',')]
    pub node_names: Vec<String>,
    /// Labels to add to every node: `key=value,...`.
    #[arg(long = "node-labels", default_value = "")]
    pub node_labels: String,
    /// Taints to register every node with: `key[=value]:Effect,...`.
    #[arg(long = "register-with-taints", default_value = "")]
    pub register_with_taints: String,
    /// Each node's CPU capacity.
    #[arg(long = "node-cpu", default_value = "32")]
    pub node_cpu: String,
    /// Each node's memory capacity.
    #[arg(long = "node-memory", default_value = "256Gi")]
    pub node_memory: String,
    /// Each node's ephemeral-storage capacity.
    #[arg(long = "node-ephemeral-storage", default_value = "100Gi")]
    pub node_ephemeral_storage: String,
    /// Each node's pod capacity.
    #[arg(long = "max-pods", default_value_t = 110)]
    pub max_pods: i64,
    /// Where nodes without `spec.podCIDR` take pod IPs from: each node gets a slice.
    #[arg(long = "cluster-cidr", default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// The prefix length of each node's slice of --cluster-cidr (narrowed when the nodes would
    /// not all fit).
    #[arg(long = "node-cidr-mask-size", default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// The lease duration of each node's heartbeat Lease, in seconds; renewed every quarter.
    #[arg(long = "node-lease-duration-seconds", default_value_t = 40)]
    pub node_lease_duration_seconds: i32,
    /// How often node status is posted even when unchanged (Go duration).
    #[arg(long = "node-status-report-frequency", default_value = "5m", value_parser = duration_flag)]
    pub node_status_report_frequency: Duration,
}

fn duration_flag(s: &str) -> Result<Duration, String> {
    api_util::duration::parse_std(s).map_err(|e| e.to_string())
}

impl Args {
    /// The [`Config`] these flags describe.
    pub fn config(&self) -> Result<Config, Error> {
        let config_err = Error::Config;
        let node_names = if self.node_names.is_empty() {
            Config::names(&self.node_name_prefix, self.nodes)
        } else {
            self.node_names
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect()
        };
        let defaults = Config::default();
        let config = Config {
            simulated: self.simulated,
            node_names,
            node_labels: node::parse_labels(&self.node_labels).map_err(config_err)?,
            register_with_taints: node::parse_taints(&self.register_with_taints).map_err(config_err)?,
            resources: Resources {
                cpu: Quantity(self.node_cpu.clone()),
                memory: Quantity(self.node_memory.clone()),
                pods: self.max_pods,
                ephemeral_storage: Quantity(self.node_ephemeral_storage.clone()),
            },
            cluster_cidr: self
                .cluster_cidr
                .parse()
                .map_err(|e: crate::simulated::ipam::CidrError| Error::Config(e.to_string()))?,
            node_cidr_mask_size: self.node_cidr_mask_size,
            node_lease_duration_seconds: self.node_lease_duration_seconds,
            node_status_report_frequency: self.node_status_report_frequency,
            ..defaults
        };
        config.template().map_err(|e| Error::Config(e.to_string()))?;
        Ok(config)
    }
}

/// Runs `keelson kubelet` with these flags until `shutdown`.
pub async fn run_command(args: Args, shutdown: CancellationToken) -> Result<(), Error> {
    component_base::logging::init(args.options.verbosity);
    let config = args.config()?;
    if !config.simulated {
        return Err(Error::NotSimulated);
    }
    let client = component_base::build_client(&args.options.client_settings(&DEFAULTS)).await?;
    let health = HealthServer::new();
    let serving = health
        .serve(
            &args.options.serving(&DEFAULTS),
            Some(client.clone()),
            shutdown.clone(),
        )
        .await?;
    tracing::info!(addr = %serving.addr, nodes = config.node_names.len(), "simulated kubelet serving health");
    let result = crate::run(config, client, shutdown.clone()).await;
    shutdown.cancel();
    serving.stopped().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_make_the_config() {
        let cli = Cli::parse_from([
            "kubelet",
            "--simulated",
            "--nodes=3",
            "--node-name-prefix=n",
            "--node-labels=zone=a",
            "--register-with-taints=gpu=yes:NoSchedule",
            "--node-cpu=4",
            "--max-pods=20",
        ]);
        let c = cli.args.config().unwrap();
        assert!(c.simulated);
        assert_eq!(c.node_names, ["n0", "n1", "n2"]);
        assert_eq!(c.node_labels["zone"], "a");
        assert_eq!(c.register_with_taints[0].key, "gpu");
        assert_eq!(c.resources.pods, 20);
        assert_eq!(cli.args.options.client_settings(&DEFAULTS).qps, 50.0);
        assert_eq!(cli.args.options.serving(&DEFAULTS).bind.port(), 10250);
    }

    #[test]
    fn explicit_names_and_bad_flags() {
        let cli = Cli::parse_from(["kubelet", "--simulated", "--node-names=a,b"]);
        assert_eq!(cli.args.config().unwrap().node_names, ["a", "b"]);
        let bad = Cli::parse_from(["kubelet", "--simulated", "--node-cpu=lots"]);
        assert!(bad.args.config().is_err());
        let bad = Cli::parse_from(["kubelet", "--simulated", "--cluster-cidr=10.0.0.0"]);
        assert!(bad.args.config().is_err());
    }

    #[tokio::test]
    async fn without_simulated_it_says_so() {
        let cli = Cli::parse_from(["kubelet"]);
        let err = run_command(cli.args, CancellationToken::new()).await.unwrap_err();
        assert!(matches!(err, Error::NotSimulated), "{err}");
        assert!(err.to_string().contains("--simulated"));
    }
}
