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
    /// CSV file of static bearer tokens: token,user,uid,"group1,group2".
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Let requests without credentials in as system:anonymous (group system:unauthenticated).
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    /// Issuer (`iss`) of ServiceAccount tokens.
    #[arg(long, default_value = "https://kubernetes.default.svc.cluster.local")]
    service_account_issuer: String,
    /// PKCS#8 EC P-256 key that signs ServiceAccount tokens (default: <data-dir>/pki/sa.key, created
    /// on first start).
    #[arg(long)]
    service_account_signing_key_file: Option<PathBuf>,
    /// Longest lifetime of a requested ServiceAccount token (`90s`, `30m`, `48h`; 0: no cap).
    #[arg(long, default_value = "0", value_parser = parse_duration_seconds)]
    service_account_max_token_expiration: u64,
    /// Audit log file (JSON lines); needs --audit-policy-file.
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// Audit policy (audit.k8s.io/v1 Policy, YAML).
    #[arg(long)]
    audit_policy_file: Option<PathBuf>,
    /// Name of this node (its kubelet kubeconfig authenticates as system:node:<name>); default:
    /// the host name.
    #[arg(long)]
    node_name: Option<String>,
}

/// `90`, `90s`, `30m`, `48h` as seconds.
fn parse_duration_seconds(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("invalid duration {s:?}: use s, m or h")),
    };
    Ok(n * factor)
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
        config.auth.token_auth_file = args.token_auth_file;
        config.auth.anonymous = args.anonymous_auth;
        config.auth.service_account_issuer = args.service_account_issuer;
        config.auth.service_account_signing_key_file = args.service_account_signing_key_file;
        config.auth.service_account_max_token_expiration = args.service_account_max_token_expiration;
        config.auth.audit_log_path = args.audit_log_path;
        config.auth.audit_policy_file = args.audit_policy_file;
        if let Some(n) = args.node_name {
            config.auth.node_name = n;
        }
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
