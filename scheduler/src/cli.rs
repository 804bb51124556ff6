//! `keelson scheduler`: upstream kube-scheduler's command line (the shared component flags and
//! `--config`), serving `/healthz`, `/readyz` and `/metrics` on the secure port and scheduling
//! while it holds the `kube-system/kube-scheduler` Lease.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use component_base::options::ComponentDefaults;
use component_base::{ComponentOptions, HealthServer, LeaderElection};
use tokio_util::sync::CancellationToken;

use crate::config::{KubeSchedulerConfiguration, Loaded};
use crate::metrics::Metrics;
use crate::queue::QueueConfig;
use crate::runtime::{self, Config, Error};

/// kube-scheduler's defaults: QPS 50, burst 100, port 10259, lease `kube-scheduler`.
pub const DEFAULTS: ComponentDefaults = ComponentDefaults {
    name: "kube-scheduler",
    qps: 50.0,
    burst: 100,
    secure_port: 10259,
};

/// The scheduler's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The flags every component takes.
    #[command(flatten)]
    pub common: ComponentOptions,
    /// The path to a KubeSchedulerConfiguration file (kubescheduler.config.k8s.io/v1). Flags
    /// given explicitly override its clientConnection and leaderElection settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

fn duration(field: &str, value: &Option<String>) -> Result<Option<Duration>, Error> {
    value
        .as_deref()
        .map(|v| {
            api_util::duration::parse_std(v)
                .map_err(|e| Error::Config(format!("leaderElection.{field}: {v:?}: {e}")))
        })
        .transpose()
}

/// Merges the configuration file into the flags: the file fills what the flags leave unset.
fn apply_file(opts: &mut ComponentOptions, loaded: &Loaded) -> Result<(), Error> {
    let cc = &loaded.raw.client_connection;
    if opts.kubeconfig.is_none() {
        opts.kubeconfig = cc.kubeconfig.clone().filter(|k| !k.is_empty()).map(PathBuf::from);
    }
    opts.kube_api_qps = opts.kube_api_qps.or(cc.qps);
    opts.kube_api_burst = opts.kube_api_burst.or(cc.burst);
    let le = &loaded.raw.leader_election;
    if let Some(elect) = le.leader_elect {
        opts.leader_elect = opts.leader_elect && elect;
    }
    if let Some(d) = duration("leaseDuration", &le.lease_duration)? {
        opts.leader_elect_lease_duration = d;
    }
    if let Some(d) = duration("renewDeadline", &le.renew_deadline)? {
        opts.leader_elect_renew_deadline = d;
    }
    if let Some(d) = duration("retryPeriod", &le.retry_period)? {
        opts.leader_elect_retry_period = d;
    }
    if let Some(ns) = le.resource_namespace.clone().filter(|s| !s.is_empty()) {
        opts.leader_elect_resource_namespace = ns;
    }
    if opts.leader_elect_resource_name.is_none() {
        opts.leader_elect_resource_name = le.resource_name.clone().filter(|s| !s.is_empty());
    }
    Ok(())
}

/// Loads `--config` (or the defaults).
pub fn load(args: &Args) -> Result<(ComponentOptions, Loaded), Error> {
    let raw = match &args.config {
        Some(path) => KubeSchedulerConfiguration::read(path).map_err(|e| Error::Config(e.to_string()))?,
        None => KubeSchedulerConfiguration {
            api_version: crate::config::API_VERSION.into(),
            kind: crate::config::KIND.into(),
            ..Default::default()
        },
    };
    let loaded = raw.load().map_err(|e| Error::Config(e.to_string()))?;
    let mut opts = args.common.clone();
    if args.config.is_some() {
        apply_file(&mut opts, &loaded)?;
    }
    Ok((opts, loaded))
}

/// Runs the scheduler as a command: client, health and metrics serving, leader election, then
/// [`runtime::run`] until `shutdown`.
pub async fn run_command(args: Args, shutdown: CancellationToken) -> Result<(), Error> {
    component_base::logging::init(args.common.verbosity);
    let (opts, loaded) = load(&args)?;
    let client = component_base::build_client(&opts.client_settings(&DEFAULTS)).await?;
    let election = opts.leader_election(&DEFAULTS);
    let mut health = HealthServer::new();
    let metrics = Metrics::new(health.registry())?;
    let synced: Arc<std::sync::atomic::AtomicBool> = Arc::default();
    let flag = synced.clone();
    health.add_ready_check(
        "sched-handler-sync",
        Arc::new(move || {
            if flag.load(std::sync::atomic::Ordering::Acquire) {
                Ok(())
            } else {
                Err("informers not synced".into())
            }
        }),
    );
    let elector = match &election {
        Some(cfg) => Some(LeaderElection::new(client.clone(), cfg.clone())?),
        None => None,
    };
    if let (Some(e), Some(cfg)) = (&elector, &election) {
        let status = e.status();
        let lease = cfg.lease_duration;
        health.add_check(
            "leaderElection",
            Arc::new(move || status.healthy(lease, Duration::from_secs(20))),
        );
    }
    let serving = health
        .serve(&opts.serving(&DEFAULTS), Some(client.clone()), shutdown.clone())
        .await?;
    tracing::info!(addr = %serving.addr, "serving health and metrics");
    let config = Config {
        profiles: loaded.profiles,
        queue: QueueConfig {
            initial_backoff: loaded.initial_backoff,
            max_backoff: loaded.max_backoff,
            ..QueueConfig::default()
        },
        instance: election
            .as_ref()
            .map(|e| e.identity.clone())
            .unwrap_or_else(component_base::leader::default_identity),
        metrics: Some(metrics),
        synced,
        ..Config::default()
    };
    let outcome = match elector {
        Some(elector) => elector
            .run(shutdown.clone(), move |token| async move {
                if let Err(e) = runtime::run(config, client, token).await {
                    tracing::error!(error = %e, "scheduler stopped");
                }
            })
            .await
            .map_err(Error::from),
        None => runtime::run(config, client, shutdown.clone()).await,
    };
    shutdown.cancel();
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
    fn defaults_are_kube_schedulers() {
        let cli = Cli::parse_from(["kube-scheduler"]);
        let (opts, loaded) = load(&cli.args).unwrap();
        let c = opts.client_settings(&DEFAULTS);
        assert_eq!((c.qps, c.burst), (50.0, 100));
        assert_eq!(opts.serving(&DEFAULTS).bind.port(), 10259);
        let le = opts.leader_election(&DEFAULTS).unwrap();
        assert_eq!(
            (le.lease_namespace.as_str(), le.lease_name.as_str()),
            ("kube-system", "kube-scheduler")
        );
        assert_eq!(loaded.profiles[0].scheduler_name, "default-scheduler");
    }

    #[test]
    fn the_config_file_fills_what_flags_leave_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sched.yaml");
        std::fs::write(
            &path,
            "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {qps: 1000, burst: 2000}
leaderElection: {leaderElect: true, leaseDuration: 30s, resourceName: other}
profiles: [{schedulerName: a}, {schedulerName: b}]
",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let cli = Cli::parse_from(["x", "--config", p, "--kube-api-burst", "5"]);
        let (opts, loaded) = load(&cli.args).unwrap();
        let c = opts.client_settings(&DEFAULTS);
        assert_eq!((c.qps, c.burst), (1000.0, 5));
        let le = opts.leader_election(&DEFAULTS).unwrap();
        assert_eq!(
            (le.lease_name.as_str(), le.lease_duration),
            ("other", Duration::from_secs(30))
        );
        assert_eq!(loaded.profiles.len(), 2);
        std::fs::write(
            &path,
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofile: []\n",
        )
        .unwrap();
        let err = load(&Cli::parse_from(["x", "--config", p]).args)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `profile`"), "{err}");
    }
}
