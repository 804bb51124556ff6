//! The flags every component takes, named as upstream's (`--kubeconfig`, `--kube-api-qps`,
//! `--leader-elect-*`, `--secure-port`, `--bind-address`, `--tls-cert-file`, `-v`), to
//! `#[command(flatten)]` into a component's own flags. Defaults that differ per component
//! (QPS, ports, the lease name) come from its [`ComponentDefaults`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::client::ClientSettings;
use crate::leader::{LeaderElectionConfig, default_identity};
use crate::serving::ServingConfig;

/// What differs between components.
#[derive(Debug, Clone)]
pub struct ComponentDefaults {
    /// The upstream name (`kube-scheduler`): user agent, lease name, reporter.
    pub name: &'static str,
    /// Default `--kube-api-qps`.
    pub qps: f32,
    /// Default `--kube-api-burst`.
    pub burst: u32,
    /// Default `--secure-port` (kube-scheduler 10259, kube-controller-manager 10257).
    pub secure_port: u16,
}

/// The shared flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ComponentOptions {
    /// Path to a kubeconfig file; without it, the in-cluster config or $KUBECONFIG /
    /// ~/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The API server's URL, overriding the kubeconfig's.
    #[arg(long)]
    pub master: Option<String>,
    /// Sustained requests per second to the API server (default depends on the component).
    #[arg(long = "kube-api-qps")]
    pub kube_api_qps: Option<f32>,
    /// Requests allowed in a burst above the QPS (default depends on the component).
    #[arg(long = "kube-api-burst")]
    pub kube_api_burst: Option<u32>,
    /// Run only while holding the leader Lease, so several replicas can run.
    #[arg(long = "leader-elect", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// How long candidates wait after the last observed renewal before taking the lease.
    #[arg(long = "leader-elect-lease-duration", default_value = "15s", value_parser = duration_flag)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader retries renewing before it stops leading.
    #[arg(long = "leader-elect-renew-deadline", default_value = "10s", value_parser = duration_flag)]
    pub leader_elect_renew_deadline: Duration,
    /// The interval between attempts to acquire or renew the lease.
    #[arg(long = "leader-elect-retry-period", default_value = "2s", value_parser = duration_flag)]
    pub leader_elect_retry_period: Duration,
    /// Namespace of the leader Lease.
    #[arg(long = "leader-elect-resource-namespace", default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
    /// Name of the leader Lease (default: the component's name).
    #[arg(long = "leader-elect-resource-name")]
    pub leader_elect_resource_name: Option<String>,
    /// The HTTPS port for /healthz, /readyz, /livez and /metrics; 0 picks a free port.
    #[arg(long = "secure-port")]
    pub secure_port: Option<u16>,
    /// The address the HTTPS port listens on.
    #[arg(long = "bind-address", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_address: IpAddr,
    /// PEM certificate for the HTTPS port (self-signed when absent).
    #[arg(long = "tls-cert-file", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM key of --tls-cert-file.
    #[arg(long = "tls-private-key-file", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Log verbosity, as klog's -v (0-2 info, 3-4 debug, 5+ trace).
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

impl ComponentOptions {
    /// How to build the API client.
    pub fn client_settings(&self, d: &ComponentDefaults) -> ClientSettings {
        ClientSettings {
            kubeconfig: self.kubeconfig.clone(),
            master: self.master.clone(),
            qps: self.kube_api_qps.unwrap_or(d.qps),
            burst: self.kube_api_burst.unwrap_or(d.burst),
            user_agent: format!("{}/{} (keelson)", d.name, env!("CARGO_PKG_VERSION")),
        }
    }

    /// The election to run, or `None` with `--leader-elect=false`.
    pub fn leader_election(&self, d: &ComponentDefaults) -> Option<LeaderElectionConfig> {
        self.leader_elect.then(|| LeaderElectionConfig {
            lease_namespace: self.leader_elect_resource_namespace.clone(),
            lease_name: self
                .leader_elect_resource_name
                .clone()
                .unwrap_or_else(|| d.name.to_string()),
            identity: default_identity(),
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
            release_on_cancel: true,
        })
    }

    /// Where the health and metrics endpoint listens.
    pub fn serving(&self, d: &ComponentDefaults) -> ServingConfig {
        ServingConfig {
            bind: SocketAddr::new(self.bind_address, self.secure_port.unwrap_or(d.secure_port)),
            cert_file: self.tls_cert_file.clone(),
            key_file: self.tls_private_key_file.clone(),
        }
    }
}

/// A flag value in Go's duration syntax (`15s`, `1m30s`, `500ms`).
fn duration_flag(s: &str) -> Result<Duration, String> {
    api_util::duration::parse_std(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: ComponentOptions,
    }

    const SCHED: ComponentDefaults = ComponentDefaults {
        name: "kube-scheduler",
        qps: 50.0,
        burst: 100,
        secure_port: 10259,
    };

    #[test]
    fn defaults_are_upstreams() {
        let cli = Cli::parse_from(["x"]);
        let le = cli.opts.leader_election(&SCHED).unwrap();
        assert_eq!(le.lease_name, "kube-scheduler");
        assert_eq!(le.lease_namespace, "kube-system");
        assert_eq!(
            (le.lease_duration, le.renew_deadline, le.retry_period),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
        );
        let c = cli.opts.client_settings(&SCHED);
        assert_eq!((c.qps, c.burst), (50.0, 100));
        assert_eq!(cli.opts.serving(&SCHED).bind.port(), 10259);
    }

    #[test]
    fn flags_override_defaults() {
        let cli = Cli::parse_from([
            "x",
            "--leader-elect=false",
            "--kube-api-qps=5",
            "--secure-port=0",
            "--bind-address=127.0.0.1",
            "--leader-elect-lease-duration=1m30s",
            "-v",
            "4",
        ]);
        assert!(cli.opts.leader_election(&SCHED).is_none());
        assert_eq!(cli.opts.client_settings(&SCHED).qps, 5.0);
        assert_eq!(cli.opts.serving(&SCHED).bind.to_string(), "127.0.0.1:0");
        assert_eq!(cli.opts.leader_elect_lease_duration, Duration::from_secs(90));
        assert_eq!(cli.opts.verbosity, 4);
    }
}
