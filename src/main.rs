//! `keelson`: the all-in-one binary.
//!
//! - `keelson server`: the store and the Kubernetes API server in one process.
//! - `keelson store`: a store member (raft + rocksdb, or in memory) serving the etcd v3 API.
//! - `keelson kv`: an etcdctl-like client for that API.

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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

/// Logs go to stderr, filtered by `RUST_LOG` (default `info` for keelson's crates, `warn` else).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("warn,keelson=info,apiserver=info,storage=info,storage_raft=info,storage_etcd=info")
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
}
