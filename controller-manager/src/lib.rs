//! Keelson's controller-manager: upstream kube-controller-manager's controllers, each a module
//! with an idempotent reconciler, talking to the cluster only through the API (kube-rs).
//!
//! The framework every controller shares: [`informer`] (one list+watch per resource type for
//! the whole process), [`workqueue`] (upstream's rate-limited work queue), [`expectations`],
//! [`ownership`] (adopting and releasing by controller reference), [`events`], and
//! [`controllers`] (the table of controllers, `--controllers`). [`run`] starts the enabled
//! controllers; [`cli::run_command`] adds the client, health and metrics serving and the
//! leader election, as upstream's binary does.

pub mod bootstrap_tokens;
pub mod certificates;
pub mod cli;
pub mod clientbuilder;
pub mod controllers;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslice_mirroring;
pub mod events;
pub mod expectations;
pub mod garbage_collector;
pub mod history;
pub mod informer;
pub mod job;
pub mod metrics;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod ownership;
pub mod persistentvolume;
pub mod pod_gc;
pub mod podutil;
pub mod replicaset;
pub mod resource_quota;
pub mod root_ca;
pub mod routing;
pub mod serviceaccounts;
pub mod statefulset;
pub mod support;
pub mod ttl_after_finished;
pub mod workqueue;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::clientbuilder::ServiceAccountClients;
use crate::controllers::ControllerContext;
use crate::informer::SharedInformers;

/// What [`run`] needs, with upstream's defaults.
#[derive(Clone)]
pub struct Config {
    /// `--controllers`: `*` (the defaults), `name` (on), `-name` (off).
    pub controllers: Vec<String>,
    /// `--use-service-account-credentials`: each controller runs as ServiceAccount
    /// `kube-system/<its account>` (needs `rest_config`).
    pub use_service_account_credentials: bool,
    /// The connection settings the per-controller clients are built from (the manager's own
    /// credentials are dropped from them).
    pub rest_config: Option<kube::Config>,
    /// `--kube-api-qps` of each per-controller client (20).
    pub qps: f32,
    /// `--kube-api-burst` of each per-controller client (30).
    pub burst: u32,
    /// `--concurrent-deployment-syncs` (5).
    pub concurrent_deployment_syncs: usize,
    /// `--concurrent-replicaset-syncs` (5).
    pub concurrent_replicaset_syncs: usize,
    /// `--concurrent-rc-syncs` (5).
    pub concurrent_rc_syncs: usize,
    /// This process's identity, reported in events.
    pub identity: String,
    /// Where the work-queue metrics go (the `/metrics` registry).
    pub metrics_registry: Option<prometheus::Registry>,
    /// The garbage collector's settings (`--concurrent-gc-syncs`).
    pub garbage_collector: garbage_collector::GarbageCollectorConfig,
    /// The namespace controller's settings (`--concurrent-namespace-syncs`,
    /// `--namespace-sync-period`).
    pub namespace: namespace::NamespaceConfig,
    /// The ServiceAccounts every namespace gets.
    pub service_accounts: serviceaccounts::ServiceAccountsConfig,
    /// `--root-ca-file`'s bundle (PEM): published as `kube-root-ca.crt` and put in legacy
    /// token Secrets. Without it the publisher does not run, as upstream.
    pub root_ca: Option<Vec<u8>>,
    /// `--service-account-private-key-file`: signs legacy token Secrets. Without it the token
    /// controller does not run, as upstream.
    pub service_account_key_file: Option<std::path::PathBuf>,
    /// `--concurrent-serviceaccount-token-syncs` (5).
    pub concurrent_serviceaccount_token_syncs: usize,
    /// The node lifecycle controller's periods and eviction rates.
    pub node_lifecycle: node_lifecycle::NodeLifecycleConfig,
    /// Node IPAM (`--allocate-node-cidrs`, `--cluster-cidr`, `--node-cidr-mask-size*`).
    pub node_ipam: node_ipam::NodeIpamConfig,
    /// Pod GC (`--terminated-pod-gc-threshold`).
    pub pod_gc: pod_gc::PodGcConfig,
    /// The ResourceQuota controller (`--resource-quota-sync-period`,
    /// `--concurrent-resource-quota-syncs`).
    pub resource_quota: resource_quota::ResourceQuotaConfig,
    /// The Job controller (`--concurrent-job-syncs`).
    pub job: job::JobConfig,
    /// The CronJob controller (`--concurrent-cron-job-syncs`).
    pub cronjob: cronjob::CronJobConfig,
    /// The TTL-after-finished controller (`--concurrent-ttl-after-finished-syncs`).
    pub ttl_after_finished: ttl_after_finished::TtlAfterFinishedConfig,
    /// The Endpoints controller (`--concurrent-endpoint-syncs`).
    pub endpoints: endpoints::EndpointsConfig,
    /// The EndpointSlice controller (`--concurrent-service-endpoint-syncs`,
    /// `--max-endpoints-per-slice`).
    pub endpoint_slices: endpointslice::EndpointSliceConfig,
    /// The EndpointSlice mirroring controller (`--mirroring-concurrent-service-endpoint-syncs`,
    /// `--mirroring-max-endpoints-per-subset`).
    pub endpoint_slice_mirroring: endpointslice_mirroring::MirroringConfig,
    /// The StatefulSet controller (`--concurrent-statefulset-syncs`).
    pub statefulset: statefulset::StatefulSetConfig,
    /// The DaemonSet controller (`--concurrent-daemonset-syncs`).
    pub daemonset: daemonset::DaemonSetConfig,
    /// The certificate controllers (`--cluster-signing-*`).
    pub certificates: certificates::CertificatesConfig,
    /// The PV controller (`--pvclaimbinder-sync-period`, `--local-path-root`).
    pub persistent_volume: persistentvolume::PersistentVolumeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            controllers: vec!["*".into()],
            use_service_account_credentials: false,
            rest_config: None,
            qps: 20.0,
            burst: 30,
            concurrent_deployment_syncs: 5,
            concurrent_replicaset_syncs: 5,
            concurrent_rc_syncs: 5,
            identity: component_base::leader::default_identity(),
            metrics_registry: None,
            garbage_collector: Default::default(),
            namespace: Default::default(),
            service_accounts: Default::default(),
            root_ca: None,
            service_account_key_file: None,
            concurrent_serviceaccount_token_syncs: 5,
            node_lifecycle: Default::default(),
            node_ipam: Default::default(),
            pod_gc: Default::default(),
            resource_quota: Default::default(),
            job: Default::default(),
            cronjob: Default::default(),
            ttl_after_finished: Default::default(),
            endpoints: Default::default(),
            endpoint_slices: Default::default(),
            endpoint_slice_mirroring: Default::default(),
            certificates: Default::default(),
            statefulset: Default::default(),
            daemonset: Default::default(),
            persistent_volume: Default::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("controllers", &self.controllers)
            .field(
                "use_service_account_credentials",
                &self.use_service_account_credentials,
            )
            .field("qps", &self.qps)
            .field("burst", &self.burst)
            .field("concurrent_deployment_syncs", &self.concurrent_deployment_syncs)
            .field("concurrent_replicaset_syncs", &self.concurrent_replicaset_syncs)
            .field("concurrent_rc_syncs", &self.concurrent_rc_syncs)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The manager's failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--controllers` names an unknown controller.
    #[error(transparent)]
    UnknownController(#[from] controllers::UnknownController),
    /// `--use-service-account-credentials` without connection settings.
    #[error("--use-service-account-credentials needs the client configuration (rest_config)")]
    NoRestConfig,
    /// A controller's ServiceAccount client could not be made.
    #[error(transparent)]
    ClientBuilder(#[from] clientbuilder::ClientBuilderError),
    /// Building the manager's client.
    #[error(transparent)]
    Client(#[from] component_base::ClientError),
    /// Serving health and metrics.
    #[error(transparent)]
    Serving(#[from] component_base::ServingError),
    /// Leader election.
    #[error(transparent)]
    Leader(#[from] component_base::LeaderElectionError),
    /// Flags that do not go together.
    #[error("{0}")]
    Flags(String),
    /// A file named by a flag could not be read.
    #[error("reading {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A client with the manager's own credentials and its own rate limit, as upstream gives each
/// controller (user agent suffixed with the controller's account name).
fn own_client(rest: &kube::Config, name: &str, qps: f32, burst: u32) -> Result<kube::Client, Error> {
    let mut rest = rest.clone();
    clientbuilder::suffix_user_agent(&mut rest, name);
    Ok(component_base::client::client_from_config(rest, qps, burst)?)
}

/// Runs the enabled controllers over shared informers until `shutdown`. Each controller gets
/// its own client (and so its own QPS/burst budget) when `rest_config` is set, else shares
/// `client`; the informers list and watch through `client`.
pub async fn run(config: Config, client: kube::Client, shutdown: CancellationToken) -> Result<(), Error> {
    let enabled = controllers::enabled(&controllers::all(), &config.controllers)?;
    let informers = SharedInformers::new(client.clone());
    let sa_clients = if config.use_service_account_credentials {
        let rest = config.rest_config.clone().ok_or(Error::NoRestConfig)?;
        Some(ServiceAccountClients::new(
            client.clone(),
            rest,
            config.qps,
            config.burst,
            shutdown.clone(),
        ))
    } else {
        None
    };
    let metrics = match metrics::QueueMetrics::new(config.metrics_registry.as_ref()) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(error = %e, "work-queue metrics unavailable");
            None
        }
    };
    let config = Arc::new(config);
    let mut tasks = tokio::task::JoinSet::new();
    for desc in enabled {
        let controller_client = match (&sa_clients, &config.rest_config) {
            // Controllers without an account use the manager's own credentials, as upstream.
            _ if desc.service_account.is_empty() => client.clone(),
            (Some(b), _) => b.client(desc.service_account).await?,
            (None, Some(rest)) => own_client(rest, desc.service_account, config.qps, config.burst)?,
            (None, None) => client.clone(),
        };
        let ctx = ControllerContext {
            name: desc.name,
            client: controller_client,
            informers: informers.clone(),
            reader: client.clone(),
            config: config.clone(),
            identity: config.identity.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        };
        tracing::info!(controller = desc.name, "starting controller");
        let start = desc.start;
        let name = desc.name;
        tasks.spawn(async move {
            if let Err(e) = start(ctx).await {
                tracing::error!(controller = name, error = %e, "controller failed");
            }
        });
    }
    informers.start(shutdown.clone());
    while tasks.join_next().await.is_some() {}
    informers.stopped().await;
    Ok(())
}
