//! `keelson`: the all-in-one binary.
//!
//! - `keelson server`: the store, the Kubernetes API server, the scheduler and the
//!   controller-manager in one process (and simulated nodes with `--simulated-nodes N`).
//! - `keelson store`: a store member (raft + rocksdb, or in memory) serving the etcd v3 API.
//! - `keelson kv`: an etcdctl-like client for that API.
//! - `keelson scheduler`, `keelson controller-manager`, `keelson kubelet --simulated`: the
//!   components on their own, against any kubeconfig.

mod components;
mod kvctl;
mod server;
mod store;
mod urls;

use clap::{Parser, Subcommand};

/// mimalloc: fewer lock round-trips and less fragmentation than glibc's malloc under the
/// many-threaded, allocation-heavy request paths (gRPC, raft, watch fan-out).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keelson: a Kubernetes-compatible cluster in one binary.
#[derive(Debug, Parser)]
#[command(name = "keelson", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Keelson: the store and the Kubernetes API server (TLS, admin kubeconfig).
    Server(server::ServerArgs),
    /// Run a store member serving the etcd v3 API (etcd's flag names).
    Store(store::StoreArgs),
    /// Talk to a store over the etcd v3 API (like etcdctl).
    Kv(kvctl::KvArgs),
    /// Run the scheduler against a cluster (kube-scheduler's flags).
    Scheduler(scheduler::cli::Args),
    /// Run the controller-manager against a cluster (kube-controller-manager's flags).
    ControllerManager(Box<controller_manager::cli::Args>),
    /// Run a node agent against a cluster; for now only `--simulated` nodes.
    Kubelet(kubelet::cli::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The components set up their own logging from their `-v`.
    if matches!(
        cli.command,
        Command::Server(_) | Command::Store(_) | Command::Kv(_)
    ) {
        init_logging();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = worker_threads(&cli.command) {
        builder.worker_threads(workers);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Store(args) => store::run(args).await,
            Command::Kv(args) => kvctl::run(args).await,
            Command::Scheduler(args) => component(scheduler::cli::run_command(args, shutdown())).await,
            Command::ControllerManager(args) => {
                component(controller_manager::cli::run_command(*args, shutdown())).await
            }
            Command::Kubelet(args) => component(kubelet::cli::run_command(args, shutdown())).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A token cancelled on SIGINT or SIGTERM.
fn shutdown() -> tokio_util::sync::CancellationToken {
    component_base::signals::shutdown_on_signals()
}

/// Runs a component's command to its end.
async fn component<E: std::error::Error + Send + Sync + 'static>(
    run: impl std::future::Future<Output = Result<(), E>>,
) -> anyhow::Result<()> {
    Ok(run.await?)
}

/// Worker threads for a store member: half of this machine's cores (at least one), shared by
/// the members of its group that run here (their peer URLs name the same host, e.g. a group on
/// loopback). A member's hot path is serial (one raft core, one apply, one log fsync at a time),
/// and more workers mostly add wake-ups, work stealing and context switches; the other half is
/// left to rocksdb's background threads and to what shares the machine (clients, the API
/// server, a kubelet). Measured on 2 cores with `keelson-bench suite --cases put-c64`: one member
/// on 1 worker instead of 2 did 12-17 % more puts with ~25 % less CPU per put (34-37k vs
/// 29-33k/s); three members on one worker each instead of two, ~15 % more puts (10.5-10.7k vs
/// 8.8-9.3k/s) with ~20 % less CPU per put. `None` (other commands, or `TOKIO_WORKER_THREADS`
/// set) keeps tokio's own choice.
fn worker_threads(command: &Command) -> Option<usize> {
    let Command::Store(args) = command else {
        return None;
    };
    if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some(workers_per_member(args.members_on_this_machine(), cores))
}

/// Each of `members` members' share of half of `cores` (at least one worker).
fn workers_per_member(members: usize, cores: usize) -> usize {
    (cores / 2 / members.max(1)).max(1)
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info` for keelson's crates, `warn` else).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "warn,keelson=info,apiserver=info,storage=info,storage_raft=info,storage_etcd=info,\
             component_base=info,scheduler=info,controller_manager=info,kubelet=info",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// How many members `keelson store FLAGS` counts on this machine.
    fn members_here(flags: &[&str]) -> usize {
        let cli = Cli::try_parse_from(["keelson", "store"].iter().chain(flags)).unwrap();
        let Command::Store(args) = cli.command else {
            unreachable!("parsed as store")
        };
        args.members_on_this_machine()
    }

    #[test]
    fn members_on_one_host_share_the_cores() {
        assert_eq!(workers_per_member(1, 1), 1);
        assert_eq!(workers_per_member(1, 2), 1);
        assert_eq!(workers_per_member(1, 16), 8);
        assert_eq!(workers_per_member(3, 2), 1);
        assert_eq!(workers_per_member(3, 12), 2);
        assert_eq!(workers_per_member(5, 2), 1);

        let group = "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://[::1]:3";
        let peer = ["--listen-peer-urls", "http://127.0.0.1:1"];
        assert_eq!(members_here(&[peer[0], peer[1], "--initial-cluster", group]), 3);
        // Members on one routable host share it too.
        let one_host = "a=https://10.0.0.1:2380,b=https://10.0.0.1:2381,c=https://10.0.0.2:2380";
        assert_eq!(
            members_here(&[
                "--listen-peer-urls",
                "https://10.0.0.1:2381",
                "--initial-cluster",
                one_host
            ]),
            2
        );
        // A lone member, and members on other machines, count as one.
        assert_eq!(members_here(&[]), 1);
        assert_eq!(
            members_here(&[peer[0], peer[1], "--initial-cluster", "a=http://127.0.0.1:1"]),
            1
        );
        let spread = "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380,c=https://10.0.0.3:2380";
        assert_eq!(
            members_here(&[
                "--listen-peer-urls",
                "https://10.0.0.1:2380",
                "--initial-cluster",
                spread
            ]),
            1
        );
        // A member advertising a routable address is not on loopback, whatever it binds.
        assert_eq!(
            members_here(&[
                peer[0],
                peer[1],
                "--initial-advertise-peer-urls",
                "https://10.0.0.1:2380",
                "--initial-cluster",
                group
            ]),
            1
        );
    }
}
