//! `keelson controller-manager`: upstream kube-controller-manager's flags, the client, health
//! and metrics on port 10257, one leader election for the process (Lease
//! `kube-system/kube-controller-manager`), then [`crate::run`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use component_base::client::{client_from_config, load_config};
use component_base::options::ComponentDefaults;
use component_base::{ComponentOptions, HealthServer, LeaderElection};
use tokio_util::sync::CancellationToken;

use crate::{Config, Error};

/// kube-controller-manager's name, QPS, burst and port.
pub const DEFAULTS: ComponentDefaults = ComponentDefaults {
    name: "kube-controller-manager",
    qps: 20.0,
    burst: 30,
    secure_port: 10257,
};

/// The command line.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The flags every component takes.
    #[command(flatten)]
    pub options: ComponentOptions,
    /// Controllers to enable: `*` enables the defaults, `foo` enables foo, `-foo` disables foo.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Run each controller with its own ServiceAccount's credentials.
    #[arg(long = "use-service-account-credentials", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub use_service_account_credentials: bool,
    /// Deployments synced concurrently.
    #[arg(long = "concurrent-deployment-syncs", default_value_t = 5)]
    pub concurrent_deployment_syncs: usize,
    /// ReplicaSets synced concurrently.
    #[arg(long = "concurrent-replicaset-syncs", default_value_t = 5)]
    pub concurrent_replicaset_syncs: usize,
    /// ReplicationControllers synced concurrently.
    #[arg(long = "concurrent-rc-syncs", default_value_t = 5)]
    pub concurrent_rc_syncs: usize,
    /// StatefulSets synced concurrently.
    #[arg(long = "concurrent-statefulset-syncs", default_value_t = 5)]
    pub concurrent_statefulset_syncs: usize,
    /// DaemonSets synced concurrently.
    #[arg(long = "concurrent-daemonset-syncs", default_value_t = 2)]
    pub concurrent_daemonset_syncs: usize,
    /// Garbage collector workers.
    #[arg(long = "concurrent-gc-syncs", default_value_t = 20)]
    pub concurrent_gc_syncs: usize,
    /// Namespaces deleted concurrently.
    #[arg(long = "concurrent-namespace-syncs", default_value_t = 10)]
    pub concurrent_namespace_syncs: usize,
    /// How often every namespace is looked at again.
    #[arg(long = "namespace-sync-period", default_value = "5m", value_parser = duration_flag)]
    pub namespace_sync_period: Duration,
    /// Legacy token Secrets synced concurrently.
    #[arg(long = "concurrent-serviceaccount-token-syncs", default_value_t = 5)]
    pub concurrent_serviceaccount_token_syncs: usize,
    /// The CA bundle published as `kube-root-ca.crt` in every namespace and put in token Secrets.
    #[arg(long = "root-ca-file")]
    pub root_ca_file: Option<PathBuf>,
    /// The private key (PEM) signing legacy ServiceAccount token Secrets.
    #[arg(long = "service-account-private-key-file")]
    pub service_account_private_key_file: Option<PathBuf>,
    /// How often node health is checked.
    #[arg(long = "node-monitor-period", default_value = "5s", value_parser = duration_flag)]
    pub node_monitor_period: Duration,
    /// How long a node may go unheard before it is marked unhealthy.
    #[arg(long = "node-monitor-grace-period", default_value = "40s", value_parser = duration_flag)]
    pub node_monitor_grace_period: Duration,
    /// How long a starting node may go unheard before it is marked unhealthy.
    #[arg(long = "node-startup-grace-period", default_value = "1m", value_parser = duration_flag)]
    pub node_startup_grace_period: Duration,
    /// Nodes per second whose pods are evicted (taints added) in a healthy zone.
    #[arg(long = "node-eviction-rate", default_value_t = 0.1)]
    pub node_eviction_rate: f64,
    /// The same in an unhealthy zone of a large cluster.
    #[arg(long = "secondary-node-eviction-rate", default_value_t = 0.01)]
    pub secondary_node_eviction_rate: f64,
    /// Zones with at most this many nodes count as small.
    #[arg(long = "large-cluster-size-threshold", default_value_t = 50)]
    pub large_cluster_size_threshold: usize,
    /// The share of not-Ready nodes that makes a zone unhealthy.
    #[arg(long = "unhealthy-zone-threshold", default_value_t = 0.55)]
    pub unhealthy_zone_threshold: f64,
    /// Assign pod CIDRs to nodes from --cluster-cidr.
    #[arg(long = "allocate-node-cidrs", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allocate_node_cidrs: bool,
    /// The pods' address ranges (comma-separated, IPv4 and/or IPv6).
    #[arg(long = "cluster-cidr", default_value = "")]
    pub cluster_cidr: String,
    /// Prefix length of each node's range (both families).
    #[arg(long = "node-cidr-mask-size")]
    pub node_cidr_mask_size: Option<u8>,
    /// Prefix length of each node's IPv4 range.
    #[arg(long = "node-cidr-mask-size-ipv4", default_value_t = 24)]
    pub node_cidr_mask_size_ipv4: u8,
    /// Prefix length of each node's IPv6 range.
    #[arg(long = "node-cidr-mask-size-ipv6", default_value_t = 64)]
    pub node_cidr_mask_size_ipv6: u8,
    /// Terminated pods kept before the oldest are deleted (0: never).
    #[arg(long = "terminated-pod-gc-threshold", default_value_t = 12500)]
    pub terminated_pod_gc_threshold: usize,
    /// How often every quota's usage is recomputed.
    #[arg(long = "resource-quota-sync-period", default_value = "5m", value_parser = duration_flag)]
    pub resource_quota_sync_period: Duration,
    /// Quotas synced concurrently.
    #[arg(long = "concurrent-resource-quota-syncs", default_value_t = 5)]
    pub concurrent_resource_quota_syncs: usize,
    /// Jobs synced concurrently.
    #[arg(long = "concurrent-job-syncs", default_value_t = 5)]
    pub concurrent_job_syncs: u16,
    /// CronJobs synced concurrently.
    #[arg(long = "concurrent-cron-job-syncs", default_value_t = 5)]
    pub concurrent_cron_job_syncs: u16,
    /// Finished Jobs checked for their TTL concurrently.
    #[arg(long = "concurrent-ttl-after-finished-syncs", default_value_t = 5)]
    pub concurrent_ttl_after_finished_syncs: u16,
    /// Services whose Endpoints are synced concurrently.
    #[arg(long = "concurrent-endpoint-syncs", default_value_t = 5)]
    pub concurrent_endpoint_syncs: usize,
    /// Services whose EndpointSlices are synced concurrently.
    #[arg(long = "concurrent-service-endpoint-syncs", default_value_t = 5)]
    pub concurrent_service_endpoint_syncs: usize,
    /// Endpoints per EndpointSlice at most.
    #[arg(long = "max-endpoints-per-slice", default_value_t = 100)]
    pub max_endpoints_per_slice: usize,
    /// Endpoints objects mirrored concurrently.
    #[arg(long = "mirroring-concurrent-service-endpoint-syncs", default_value_t = 5)]
    pub mirroring_concurrent_service_endpoint_syncs: usize,
    /// Addresses of one Endpoints subset mirrored at most.
    #[arg(long = "mirroring-max-endpoints-per-subset", default_value_t = 1000)]
    pub mirroring_max_endpoints_per_subset: usize,
    /// The CA certificate (PEM) that signs certificates for every built-in signer without a CA
    /// of its own.
    #[arg(long = "cluster-signing-cert-file")]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long = "cluster-signing-key-file")]
    pub cluster_signing_key_file: Option<PathBuf>,
    /// The longest validity of a signed certificate.
    #[arg(long = "cluster-signing-duration", default_value = "8760h", value_parser = duration_flag)]
    pub cluster_signing_duration: Duration,
    /// The CA certificate of the `kubernetes.io/kubelet-serving` signer.
    #[arg(long = "cluster-signing-kubelet-serving-cert-file")]
    pub cluster_signing_kubelet_serving_cert_file: Option<PathBuf>,
    /// Its key.
    #[arg(long = "cluster-signing-kubelet-serving-key-file")]
    pub cluster_signing_kubelet_serving_key_file: Option<PathBuf>,
    /// The CA certificate of the `kubernetes.io/kube-apiserver-client-kubelet` signer.
    #[arg(long = "cluster-signing-kubelet-client-cert-file")]
    pub cluster_signing_kubelet_client_cert_file: Option<PathBuf>,
    /// Its key.
    #[arg(long = "cluster-signing-kubelet-client-key-file")]
    pub cluster_signing_kubelet_client_key_file: Option<PathBuf>,
    /// The CA certificate of the `kubernetes.io/kube-apiserver-client` signer.
    #[arg(long = "cluster-signing-kube-apiserver-client-cert-file")]
    pub cluster_signing_kube_apiserver_client_cert_file: Option<PathBuf>,
    /// Its key.
    #[arg(long = "cluster-signing-kube-apiserver-client-key-file")]
    pub cluster_signing_kube_apiserver_client_key_file: Option<PathBuf>,
    /// The CA certificate of the `kubernetes.io/legacy-unknown` signer.
    #[arg(long = "cluster-signing-legacy-unknown-cert-file")]
    pub cluster_signing_legacy_unknown_cert_file: Option<PathBuf>,
    /// Its key.
    #[arg(long = "cluster-signing-legacy-unknown-key-file")]
    pub cluster_signing_legacy_unknown_key_file: Option<PathBuf>,
    /// How often every claim and volume is synced again.
    #[arg(long = "pvclaimbinder-sync-period", default_value = "15s", value_parser = duration_flag)]
    pub pvclaimbinder_sync_period: Duration,
    /// Where the built-in local-path provisioner puts volumes on every node.
    #[arg(long = "local-path-root", default_value = "/var/lib/keelson/storage")]
    pub local_path_root: PathBuf,
}

impl Args {
    /// The signing CAs the `--cluster-signing-*` flags name; a certificate without its key (or
    /// the reverse) is an error, as is mixing the cluster-wide pair with per-signer ones.
    fn signing(&self) -> Result<crate::certificates::signing::SigningConfig, Error> {
        use crate::certificates::request;
        use crate::certificates::signing::{CaFiles, SigningConfig};
        let pair = |cert: &Option<PathBuf>, key: &Option<PathBuf>, flag: &str| match (cert, key) {
            (Some(c), Some(k)) => Ok(Some(CaFiles {
                cert_file: c.clone(),
                key_file: k.clone(),
            })),
            (None, None) => Ok(None),
            _ => Err(Error::Flags(format!(
                "--{flag}-cert-file and --{flag}-key-file must be given together"
            ))),
        };
        let cluster = pair(
            &self.cluster_signing_cert_file,
            &self.cluster_signing_key_file,
            "cluster-signing",
        )?;
        let mut per_signer = std::collections::HashMap::new();
        for (signer, cert, key, flag) in [
            (
                request::KUBELET_SERVING,
                &self.cluster_signing_kubelet_serving_cert_file,
                &self.cluster_signing_kubelet_serving_key_file,
                "cluster-signing-kubelet-serving",
            ),
            (
                request::KUBELET_CLIENT,
                &self.cluster_signing_kubelet_client_cert_file,
                &self.cluster_signing_kubelet_client_key_file,
                "cluster-signing-kubelet-client",
            ),
            (
                request::KUBE_APISERVER_CLIENT,
                &self.cluster_signing_kube_apiserver_client_cert_file,
                &self.cluster_signing_kube_apiserver_client_key_file,
                "cluster-signing-kube-apiserver-client",
            ),
            (
                request::LEGACY_UNKNOWN,
                &self.cluster_signing_legacy_unknown_cert_file,
                &self.cluster_signing_legacy_unknown_key_file,
                "cluster-signing-legacy-unknown",
            ),
        ] {
            if let Some(files) = pair(cert, key, flag)? {
                per_signer.insert(signer.to_string(), files);
            }
        }
        if cluster.is_some() && !per_signer.is_empty() {
            return Err(Error::Flags(
                "--cluster-signing-cert-file and --cluster-signing-key-file may not be used with the per-signer --cluster-signing-* flags".into(),
            ));
        }
        Ok(SigningConfig {
            cluster,
            per_signer,
            duration: self.cluster_signing_duration,
        })
    }
}

/// A flag value in Go's duration syntax (`5m`, `30s`).
fn duration_flag(s: &str) -> Result<Duration, String> {
    api_util::duration::parse_std(s).map_err(|e| e.to_string())
}

/// Runs the controller-manager as upstream's binary does, until `shutdown`.
pub async fn run_command(args: Args, shutdown: CancellationToken) -> Result<(), Error> {
    component_base::logging::init(args.options.verbosity);
    let root_ca = match &args.root_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|source| Error::ReadFile {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let signing = args.signing()?;
    let settings = args.options.client_settings(&DEFAULTS);
    let rest = load_config(&settings).await?;
    let client = client_from_config(rest.clone(), settings.qps, settings.burst)?;
    let mut health = HealthServer::new();
    let election = match args.options.leader_election(&DEFAULTS) {
        Some(le) => {
            let lease_duration = le.lease_duration;
            let identity = le.identity.clone();
            let elector = LeaderElection::new(client.clone(), le)?;
            let status = elector.status();
            health.add_check(
                "leaderElection",
                Arc::new(move || status.healthy(lease_duration, Duration::from_secs(20))),
            );
            Some((elector, identity))
        }
        None => None,
    };
    let registry = health.registry().clone();
    let serving = health
        .serve(
            &args.options.serving(&DEFAULTS),
            Some(client.clone()),
            shutdown.clone(),
        )
        .await?;
    tracing::info!(addr = %serving.addr, "serving health and metrics");
    let mut config = Config {
        controllers: args.controllers,
        use_service_account_credentials: args.use_service_account_credentials,
        rest_config: Some(rest),
        qps: settings.qps,
        burst: settings.burst,
        concurrent_deployment_syncs: args.concurrent_deployment_syncs,
        concurrent_replicaset_syncs: args.concurrent_replicaset_syncs,
        concurrent_rc_syncs: args.concurrent_rc_syncs,
        metrics_registry: Some(registry),
        root_ca,
        service_account_key_file: args.service_account_private_key_file,
        concurrent_serviceaccount_token_syncs: args.concurrent_serviceaccount_token_syncs,
        ..Config::default()
    };
    config.garbage_collector.workers = args.concurrent_gc_syncs;
    config.namespace.workers = args.concurrent_namespace_syncs;
    config.namespace.sync_period = args.namespace_sync_period;
    let nl = &mut config.node_lifecycle;
    nl.node_monitor_period = args.node_monitor_period;
    nl.node_monitor_grace_period = args.node_monitor_grace_period;
    nl.node_startup_grace_period = args.node_startup_grace_period;
    nl.node_eviction_rate = args.node_eviction_rate;
    nl.secondary_node_eviction_rate = args.secondary_node_eviction_rate;
    nl.large_cluster_size_threshold = args.large_cluster_size_threshold;
    nl.unhealthy_zone_threshold = args.unhealthy_zone_threshold;
    let ipam = &mut config.node_ipam;
    ipam.allocate_node_cidrs = args.allocate_node_cidrs;
    ipam.cluster_cidr = args.cluster_cidr;
    ipam.node_cidr_mask_size = args.node_cidr_mask_size;
    ipam.node_cidr_mask_size_ipv4 = args.node_cidr_mask_size_ipv4;
    ipam.node_cidr_mask_size_ipv6 = args.node_cidr_mask_size_ipv6;
    config.pod_gc.terminated_pod_gc_threshold = args.terminated_pod_gc_threshold;
    config.resource_quota.resource_quota_sync_period = args.resource_quota_sync_period;
    config.resource_quota.concurrent_resource_quota_syncs = args.concurrent_resource_quota_syncs;
    config.job.workers = args.concurrent_job_syncs;
    config.cronjob.workers = args.concurrent_cron_job_syncs;
    config.ttl_after_finished.workers = args.concurrent_ttl_after_finished_syncs;
    config.endpoints.workers = args.concurrent_endpoint_syncs;
    config.endpoint_slices.workers = args.concurrent_service_endpoint_syncs;
    config.endpoint_slices.max_endpoints_per_slice = args.max_endpoints_per_slice;
    config.endpoint_slice_mirroring.workers = args.mirroring_concurrent_service_endpoint_syncs;
    config.endpoint_slice_mirroring.max_endpoints_per_subset = args.mirroring_max_endpoints_per_subset;
    config.certificates.signing = signing;
    config.statefulset.workers = args.concurrent_statefulset_syncs;
    config.daemonset.workers = args.concurrent_daemonset_syncs;
    config.persistent_volume.sync_period = args.pvclaimbinder_sync_period;
    config.persistent_volume.local_path_root = args.local_path_root;
    let outcome = match election {
        Some((elector, identity)) => {
            config.identity = identity;
            let (tx, rx) = tokio::sync::oneshot::channel();
            let led = elector
                .run(shutdown.clone(), move |token| async move {
                    let _ = tx.send(crate::run(config, client, token).await);
                })
                .await;
            match (led, rx.await) {
                (Err(e), _) => Err(e.into()),
                (Ok(()), Ok(r)) => r,
                (Ok(()), Err(_)) => Ok(()),
            }
        }
        None => crate::run(config, client, shutdown.clone()).await,
    };
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "controller-manager stopped");
    }
    serving.stopped().await;
    outcome
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
    fn defaults_are_upstreams() {
        let cli = Cli::parse_from(["x"]);
        assert_eq!(cli.args.controllers, ["*"]);
        assert!(!cli.args.use_service_account_credentials);
        assert_eq!(cli.args.concurrent_deployment_syncs, 5);
        assert_eq!(cli.args.concurrent_statefulset_syncs, 5);
        assert_eq!(cli.args.concurrent_daemonset_syncs, 2);
        let le = cli.args.options.leader_election(&DEFAULTS).unwrap();
        assert_eq!(
            (le.lease_namespace.as_str(), le.lease_name.as_str()),
            ("kube-system", "kube-controller-manager")
        );
        assert_eq!(cli.args.options.serving(&DEFAULTS).bind.port(), 10257);
        let c = cli.args.options.client_settings(&DEFAULTS);
        assert_eq!((c.qps, c.burst), (20.0, 30));
        assert_eq!(cli.args.pvclaimbinder_sync_period, Duration::from_secs(15));
        assert_eq!(
            cli.args.local_path_root,
            PathBuf::from("/var/lib/keelson/storage")
        );
        let cli = Cli::parse_from([
            "x",
            "--controllers=*,-deployment-controller",
            "--use-service-account-credentials",
        ]);
        assert_eq!(cli.args.controllers, ["*", "-deployment-controller"]);
        assert!(cli.args.use_service_account_credentials);
    }
}
