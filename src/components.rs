//! The components `keelson server` runs in its own process, as `k3s server` does: the scheduler
//! and the controller-manager (each with its own identity over loopback TLS and upstream's
//! bootstrap RBAC roles), and with `--simulated-nodes N` the simulated node agent. Each runs
//! exactly as its own subcommand would (`keelson scheduler --kubeconfig ...`), with the arguments
//! built here plus the user's `--kube-scheduler-arg`-style extras.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;

use anyhow::Context;
use clap::Parser;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The components `--disable` can turn off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The scheduler (`keelson scheduler`).
    Scheduler,
    /// The controller-manager (`keelson controller-manager`).
    ControllerManager,
    /// The default `local-path` StorageClass (volumes in directories under the data dir).
    LocalStorage,
}

/// The flags of `keelson server` about its components (k3s's names where they exist).
#[derive(Debug, Clone, clap::Args)]
pub struct ComponentFlags {
    /// Components not to run in this process (comma-separated: scheduler, controller-manager,
    /// local-storage).
    #[arg(long, value_delimiter = ',', value_enum)]
    disable: Vec<Component>,
    /// Register this many simulated nodes (`keelson kubelet --simulated`) that "run" the pods
    /// bound to them without containers.
    #[arg(long, default_value_t = 0)]
    simulated_nodes: usize,
    /// The pods' address range: node pod CIDRs are allocated from it.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// An extra flag for the scheduler, `flag=value` (repeatable).
    #[arg(long = "kube-scheduler-arg")]
    scheduler_args: Vec<String>,
    /// An extra flag for the controller-manager, `flag=value` (repeatable).
    #[arg(long = "kube-controller-manager-arg")]
    controller_manager_args: Vec<String>,
    /// An extra flag for the simulated node agent, `flag=value` (repeatable).
    #[arg(long = "kubelet-arg")]
    kubelet_args: Vec<String>,
}

/// Where the components serve `/healthz` and `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The scheduler's secure port.
    pub scheduler: u16,
    /// The controller-manager's secure port.
    pub controller_manager: u16,
}

impl Ports {
    /// Upstream's ports (10259, 10257), or free ones when the API server itself takes a free
    /// port (`--secure-port 0`, as tests do), so that several servers can run side by side.
    pub fn choose(free: bool) -> anyhow::Result<Ports> {
        if !free {
            return Ok(Ports {
                scheduler: 10259,
                controller_manager: 10257,
            });
        }
        // Both held at once so that they differ.
        let (a, b) = (free_port()?, free_port()?);
        Ok(Ports {
            scheduler: a.local_addr()?.port(),
            controller_manager: b.local_addr()?.port(),
        })
    }
}

fn free_port() -> anyhow::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")
}

impl ComponentFlags {
    fn enabled(&self, c: Component) -> bool {
        !self.disable.contains(&c)
    }

    /// What `componentstatuses` probes: the components this process runs.
    pub fn probes(&self, ports: Ports) -> Vec<apiserver::componentstatus::ComponentProbe> {
        let probe = |name: &str, port: u16| apiserver::componentstatus::ComponentProbe {
            name: name.into(),
            url: format!(
                "https://{}/healthz",
                SocketAddr::from((Ipv4Addr::LOCALHOST, port))
            ),
        };
        let mut probes = Vec::new();
        if self.enabled(Component::ControllerManager) {
            probes.push(probe("controller-manager", ports.controller_manager));
        }
        if self.enabled(Component::Scheduler) {
            probes.push(probe("scheduler", ports.scheduler));
        }
        probes
    }

    /// Starts the enabled components; each ends when `shutdown` is cancelled. A component that
    /// fails ends its task with the error.
    pub fn start(
        &self,
        data_dir: &Path,
        ports: Ports,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<JoinSet<anyhow::Result<()>>> {
        let mut tasks = JoinSet::new();
        let file = |name: &str| data_dir.join(name).display().to_string();
        let common = |kubeconfig: &str, port: u16| {
            vec![
                format!("--kubeconfig={}", file(kubeconfig)),
                format!("--secure-port={port}"),
                "--bind-address=127.0.0.1".to_string(),
            ]
        };
        if self.enabled(Component::Scheduler) {
            let mut argv = common("scheduler.kubeconfig", ports.scheduler);
            argv.extend(extra(&self.scheduler_args));
            let args: scheduler::cli::Args = parse("scheduler", argv)?;
            let token = shutdown.child_token();
            tasks.spawn(async move {
                scheduler::cli::run_command(args, token)
                    .await
                    .context("the scheduler stopped")
            });
        }
        if self.enabled(Component::ControllerManager) {
            let mut argv = common("controller-manager.kubeconfig", ports.controller_manager);
            argv.extend([
                "--use-service-account-credentials=true".to_string(),
                format!("--root-ca-file={}", file("pki/ca.crt")),
                format!("--service-account-private-key-file={}", file("pki/sa.key")),
                format!("--cluster-signing-cert-file={}", file("pki/ca.crt")),
                format!("--cluster-signing-key-file={}", file("pki/ca.key")),
                "--allocate-node-cidrs=true".to_string(),
                format!("--cluster-cidr={}", self.cluster_cidr),
                format!("--local-path-root={}", file("storage")),
            ]);
            argv.extend(extra(&self.controller_manager_args));
            let args: controller_manager::cli::Args = parse("controller-manager", argv)?;
            let token = shutdown.child_token();
            tasks.spawn(async move {
                controller_manager::cli::run_command(args, token)
                    .await
                    .context("the controller-manager stopped")
            });
        }
        if self.enabled(Component::ControllerManager) && self.enabled(Component::LocalStorage) {
            let kubeconfig = data_dir.join("admin.kubeconfig");
            let token = shutdown.child_token();
            tasks.spawn(async move {
                tokio::select! {
                    () = token.cancelled() => Ok(()),
                    r = default_storage_class(&kubeconfig) => r,
                }
            });
        }
        if self.simulated_nodes > 0 {
            let mut argv = vec![
                format!("--kubeconfig={}", file("simulated-nodes.kubeconfig")),
                "--simulated".to_string(),
                format!("--nodes={}", self.simulated_nodes),
                format!("--cluster-cidr={}", self.cluster_cidr),
                "--secure-port=0".to_string(),
                "--bind-address=127.0.0.1".to_string(),
            ];
            argv.extend(extra(&self.kubelet_args));
            let args: kubelet::cli::Args = parse("kubelet", argv)?;
            let token = shutdown.child_token();
            tasks.spawn(async move {
                kubelet::cli::run_command(args, token)
                    .await
                    .context("the simulated nodes stopped")
            });
        }
        Ok(tasks)
    }
}

/// The first component that fails or panics; pending while they all run (or if none runs).
pub async fn first_failure(tasks: &mut JoinSet<anyhow::Result<()>>) -> anyhow::Error {
    loop {
        match tasks.join_next().await {
            Some(Ok(Ok(()))) => continue,
            Some(Ok(Err(e))) => return e,
            Some(Err(e)) => return anyhow::anyhow!("a component panicked: {e}"),
            None => std::future::pending::<()>().await,
        }
    }
}

/// Creates the default `local-path` StorageClass unless a StorageClass exists (as k3s ships
/// one), retrying while the API server settles.
async fn default_storage_class(admin_kubeconfig: &Path) -> anyhow::Result<()> {
    let kc = kube::config::Kubeconfig::read_from(admin_kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let mut delay = std::time::Duration::from_millis(100);
    for _ in 0..20 {
        match controller_manager::persistentvolume::ensure_default_storage_class(&client).await {
            Ok(created) => {
                if created {
                    tracing::info!("created the default local-path StorageClass");
                }
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(error = %e, "creating the default StorageClass; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
    anyhow::bail!("could not create the default StorageClass")
}

/// `flag=value` or `flag` (k3s's `--kube-*-arg` syntax) as `--flag=value`.
fn extra(args: &[String]) -> impl Iterator<Item = String> + '_ {
    args.iter().map(|a| format!("--{}", a.trim_start_matches('-')))
}

/// A component's flags parsed from `argv`, with the component's name in errors.
fn parse<T: clap::Args>(name: &str, argv: Vec<String>) -> anyhow::Result<T> {
    #[derive(Parser)]
    struct Command<T: clap::Args> {
        #[command(flatten)]
        args: T,
    }
    let argv = std::iter::once(format!("keelson {name}")).chain(argv);
    Command::<T>::try_parse_from(argv)
        .map(|c| c.args)
        .with_context(|| format!("the {name} flags"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_flags_take_k3s_syntax() {
        let got: Vec<String> = extra(&["v=2".into(), "--leader-elect=false".into()]).collect();
        assert_eq!(got, ["--v=2", "--leader-elect=false"]);
    }

    #[test]
    fn free_ports_differ_from_upstreams() {
        let ports = Ports::choose(true).unwrap();
        assert_ne!(ports.scheduler, 10259);
        assert_ne!(ports.scheduler, ports.controller_manager);
        let fixed = Ports::choose(false).unwrap();
        assert_eq!((fixed.scheduler, fixed.controller_manager), (10259, 10257));
    }
}
