//! `keelson-apiserver`: the Keelson API server on its own, over an in-memory store (for
//! development and tests; `keelson server` wires the raft store instead).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

/// Keelson's Kubernetes API server over an in-memory store.
#[derive(Debug, Parser)]
#[command(name = "keelson-apiserver", version, about)]
struct Args {
    /// Directory for certificates and admin.kubeconfig.
    #[arg(long, default_value = "./keelson-data")]
    data_dir: PathBuf,
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    bind_address: SocketAddr,
    /// Host name or IP clients use to reach the server (goes into the kubeconfig).
    #[arg(long, default_value = "")]
    advertise_address: String,
    /// Serve alpha API versions too.
    #[arg(long)]
    alpha_apis: bool,
    /// Authentication, ServiceAccount tokens and audit.
    #[command(flatten)]
    auth: apiserver::flags::AuthFlags,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let storage = Arc::new(storage::mem::MemStorage::new());
        let mut config = apiserver::Config::new(&args.data_dir).bind(args.bind_address);
        config.advertise_address = args.advertise_address;
        config.alpha_apis = args.alpha_apis;
        args.auth.apply(&mut config.auth);
        let server = match apiserver::start(config, storage).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("Error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        println!(
            "keelson-apiserver ready: {} kubeconfig={}",
            server.url,
            server.kubeconfig.display()
        );
        let token = server.shutdown_token();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            token.cancel();
        });
        server.wait().await;
        std::process::ExitCode::SUCCESS
    })
}
