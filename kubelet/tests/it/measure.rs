//! An ad hoc measurement, not a test: the simulator holding many nodes against a test server,
//! in its own process (this test binary run again), its CPU and RSS sampled from /proc.
//!
//! `KUBESIM_NODES=1000 KUBESIM_SECS=60 KUBESIM_QPS=50 [KUBESIM_PODS=1000] cargo test -p kubelet \
//!   --test it -- --ignored --nocapture measure::a_thousand_nodes`

use std::time::{Duration, Instant};

use apiserver::testing::TestServer;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ListParams, PostParams};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (CPU seconds, RSS KiB) of a process.
fn sample(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, rss)
}

async fn fresh_leases(leases: &Api<Lease>, within: i64) -> usize {
    let now = Timestamp::now().as_second();
    let list = leases
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.iter()
        .filter(|l| {
            l.spec
                .as_ref()
                .and_then(|s| s.renew_time.as_ref())
                .is_some_and(|t| now - t.0.as_second() <= within)
        })
        .count()
}

#[tokio::test]
#[ignore = "a measurement; see the module docs"]
async fn a_thousand_nodes() {
    let nodes = env_or("KUBESIM_NODES", 1000);
    let secs = env_or("KUBESIM_SECS", 60);
    let qps = env_or("KUBESIM_QPS", 50);
    let server = TestServer::start().await.unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "measure::simulator_process",
            "--ignored",
            "--nocapture",
        ])
        .env("KUBESIM_KUBECONFIG", server.kubeconfig_path())
        .env("KUBESIM_NODES", nodes.to_string())
        .env("KUBESIM_QPS", qps.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(std::env::temp_dir().join("kubesim-measure.log")).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    let node_api: Api<Node> = Api::all(server.client());
    let leases: Api<Lease> = Api::namespaced(server.client(), "kube-node-lease");
    loop {
        let n = node_api
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        let l = leases
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if n as u64 >= nodes && l as u64 >= nodes {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "registration stalled at {n} nodes, {l} leases"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let registered = started.elapsed();
    let (cpu0, rss0) = sample(pid);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (cpu1, rss1) = sample(pid);
    let fresh = fresh_leases(&leases, 15).await;
    println!(
        "nodes={nodes} qps={qps}: registered with leases in {:.1}s; steady {secs}s: cpu {:.2}s ({:.1}% of a core), \
         rss {} KiB -> {} KiB; leases renewed within 15s: {fresh}/{nodes}",
        registered.as_secs_f64(),
        cpu1 - cpu0,
        (cpu1 - cpu0) * 100.0 / secs as f64,
        rss0,
        rss1
    );
    let pods = env_or("KUBESIM_PODS", 0);
    if pods > 0 {
        // Pods bound round robin to the nodes (as the scheduler would): time until all run.
        let api: Api<Pod> = Api::namespaced(server.client(), "default");
        let (cpu0, _) = sample(pid);
        let t0 = Instant::now();
        let creates = (0..pods).map(|i| {
            let api = api.clone();
            async move {
                let pod = Pod {
                    metadata: ObjectMeta {
                        name: Some(format!("p-{i}")),
                        ..ObjectMeta::default()
                    },
                    spec: Some(PodSpec {
                        node_name: Some(format!("sim-{}", i % nodes)),
                        containers: vec![Container {
                            name: "c".into(),
                            image: Some("nginx".into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                    status: None,
                };
                api.create(&PostParams::default(), &pod).await.map(|_| ())
            }
        });
        let results = futures::stream::iter(creates)
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        assert!(results.iter().all(Result::is_ok), "creating pods");
        let created = t0.elapsed();
        loop {
            let list = api
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            let running = list
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            if running as u64 >= pods {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(300),
                "only {running} pods running"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let all_running = t0.elapsed();
        let (cpu1, rss) = sample(pid);
        println!(
            "pods={pods}: created in {:.1}s, all Running after {:.1}s; simulator cpu {:.2}s, rss {rss} KiB",
            created.as_secs_f64(),
            all_running.as_secs_f64(),
            cpu1 - cpu0
        );
    }
    let hold = env_or("KUBESIM_HOLD_SECS", 0);
    if hold > 0 {
        // Time to look around with kubectl.
        println!(
            "holding {hold}s; KUBECONFIG={}",
            server.kubeconfig_path().display()
        );
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    child.kill().ok();
    child.wait().ok();
    server.shutdown().await;
}

/// The simulator, when run by [`a_thousand_nodes`] (does nothing otherwise).
#[tokio::test]
#[ignore = "run by a_thousand_nodes"]
async fn simulator_process() {
    let Ok(kubeconfig) = std::env::var("KUBESIM_KUBECONFIG") else {
        return;
    };
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: kubelet::cli::Args,
    }
    let nodes = env_or("KUBESIM_NODES", 1000).to_string();
    let qps = env_or("KUBESIM_QPS", 50).to_string();
    let cli = Cli::parse_from([
        "kubelet",
        "--simulated",
        "--nodes",
        &nodes,
        "--kubeconfig",
        &kubeconfig,
        "--kube-api-qps",
        &qps,
        "--kube-api-burst",
        &(2 * qps.parse::<u64>().unwrap_or(50)).to_string(),
        "--secure-port=0",
        "--bind-address=127.0.0.1",
    ]);
    let shutdown = tokio_util::sync::CancellationToken::new();
    kubelet::cli::run_command(cli.args, shutdown).await.unwrap();
}
