//! `keelson-bench`: drives etcd v3 gRPC servers (etcd itself, or `keelson store`) with the same
//! workloads and prints one `RESULT` line per case; `report` turns those lines into a keelson/etcd
//! comparison. `bench/storage.sh` starts the servers and calls this binary. `api` drives a
//! Kubernetes API server with kube-rs (next to a raw store doing the same writes) and `api-report`
//! compares the two; `bench/apiserver.sh` starts the servers and calls those.

mod api;
mod conn;
mod driver;
mod kv;
mod pods;
mod ready;
mod report;
mod stats;
mod watch;

use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::conn::Pool;
use crate::kv::{Load, Op, Outcome};
use crate::report::ResultLine;
use crate::stats::vm_rss_kb;
use crate::watch::WatchLoad;

/// Load generator for the Keelson vs etcd storage benchmark.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the workload cases against one (possibly multi-member) server.
    Suite(SuiteArgs),
    /// Wait until every endpoint answers a linearizable Range; print the start-up time.
    WaitReady(WaitArgs),
    /// Print the resident memory (VmRSS) of server processes as a RESULT line.
    Rss(RssArgs),
    /// Print `count` free TCP ports on 127.0.0.1, space-separated.
    Ports {
        /// How many ports.
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Read RESULT lines from files (or stdin with `-`) and print the keelson/etcd comparison.
    Report {
        /// Files holding RESULT lines.
        files: Vec<PathBuf>,
    },
    /// Drive a Kubernetes API server with kube-rs (and optionally a raw store with the same writes).
    Api(api::ApiArgs),
    /// Wait until an API server answers a GET with its kubeconfig; print the start-up time.
    ApiWaitReady(api::ApiWaitArgs),
    /// Create many pending pods (the scheduler benchmark's load).
    CreatePods(pods::PodArgs),
    /// Wait until the pods of a namespace are bound; report pods bound per second.
    WatchBound(pods::PodArgs),
    /// Create a Deployment of N replicas and wait until all are available.
    Rollout(pods::PodArgs),
    /// Read RESULT lines from files (or stdin with `-`) and print the API server report with goals.
    ApiReport {
        /// Label of the API server in the RESULT lines.
        #[arg(long, default_value = "apiserver")]
        target: String,
        /// Files holding RESULT lines.
        files: Vec<PathBuf>,
    },
}

/// Which server a line belongs to.
#[derive(Args, Debug, Clone)]
struct TargetArgs {
    /// Label of the server under test (`etcd` or `keelson`).
    #[arg(long)]
    target: String,
    /// Number of cluster members.
    #[arg(long, default_value_t = 1)]
    members: u32,
}

#[derive(Args, Debug)]
struct SuiteArgs {
    /// Number of cluster members of every server.
    #[arg(long, default_value_t = 1)]
    members: u32,
    /// Label of a server under test (`etcd`, `keelson`); repeat `--server/--endpoints/--pids` once
    /// per server. With several servers, each case runs on all of them back to back (alternating
    /// which goes first), so that load from other processes on the machine hits both alike.
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
    /// Client URLs of the matching `--server`, comma-separated (http://127.0.0.1:PORT only).
    #[arg(long = "endpoints", required = true)]
    endpoints: Vec<String>,
    /// PIDs of the matching `--server` whose CPU time is sampled, comma-separated.
    #[arg(long = "pids")]
    pids: Vec<String>,
    /// Measured seconds per throughput case.
    #[arg(long, default_value_t = 5.0)]
    duration_s: f64,
    /// Unmeasured warm-up seconds before each throughput case.
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    /// Cap on requests per throughput case (warm-up included).
    #[arg(long, default_value_t = 2_000_000)]
    max_ops: u64,
    /// gRPC connections shared by the concurrent clients (spread round-robin over endpoints).
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// Puts in the 100-watcher case.
    #[arg(long, default_value_t = 5000)]
    watch_puts_100: u64,
    /// Puts in the 1000-watcher case.
    #[arg(long, default_value_t = 500)]
    watch_puts_1000: u64,
    /// Short smoke-test run: 1 s cases, 0.3 s warm-up, few watch puts.
    #[arg(long)]
    quick: bool,
    /// Only these cases (comma-separated names as printed); all when empty.
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
}

#[derive(Args, Debug)]
struct WaitArgs {
    #[command(flatten)]
    t: TargetArgs,
    /// Name of the RESULT case to print (e.g. startup-fresh, startup-restart).
    #[arg(long)]
    case: String,
    /// Client URLs, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// Server PIDs, comma-separated: waiting stops with an error when one exits.
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// Unix-epoch nanoseconds taken just before the servers were started (`date +%s%N`).
    #[arg(long)]
    since_ns: u128,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout_s: f64,
}

#[derive(Args, Debug)]
struct RssArgs {
    #[command(flatten)]
    t: TargetArgs,
    /// Name of the RESULT case to print (e.g. idle-rss).
    #[arg(long)]
    case: String,
    /// Server PIDs, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pids: Vec<u32>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.cmd {
        Cmd::Suite(a) => rt.block_on(suite(a))?,
        Cmd::WaitReady(a) => rt.block_on(wait_ready(a))?,
        Cmd::Rss(a) => rss(&a)?,
        Cmd::Ports { count } => {
            let ports = ready::free_ports(count)?;
            let s: Vec<String> = ports.iter().map(u16::to_string).collect();
            println!("{}", s.join(" "));
        }
        Cmd::Report { files } => println!("{}", report::render(&read_results(&files)?)),
        Cmd::Api(a) => rt.block_on(api::run(a))?,
        Cmd::ApiWaitReady(a) => rt.block_on(api::wait_ready(a))?,
        Cmd::CreatePods(a) => rt.block_on(pods::create_pods(a))?,
        Cmd::WatchBound(a) => rt.block_on(pods::watch_bound(a))?,
        Cmd::Rollout(a) => rt.block_on(pods::rollout(a))?,
        Cmd::ApiReport { target, files } => {
            println!("{}", api::report::render(&read_results(&files)?, &target));
        }
    }
    Ok(())
}

async fn wait_ready(a: WaitArgs) -> Result<()> {
    let ms = ready::wait_ready(
        &a.endpoints,
        &a.pids,
        a.since_ns,
        Duration::from_secs_f64(a.timeout_s),
    )
    .await
    .with_context(|| format!("{} ({} member(s)) never became ready", a.t.target, a.t.members))?;
    let max = ms.iter().copied().fold(0.0, f64::max);
    let per: Vec<String> = ms.iter().map(|m| format!("{m:.0}")).collect();
    let line = ResultLine::new(&a.case, &a.t.target, a.t.members)
        .field("ms", format!("{max:.0}"))
        .field("per_member_ms", per.join("/"));
    println!("{}", line.render());
    Ok(())
}

fn rss(a: &RssArgs) -> Result<()> {
    let kb: Vec<u64> = a
        .pids
        .iter()
        .map(|p| vm_rss_kb(*p).with_context(|| format!("no VmRSS for pid {p}")))
        .collect::<Result<_>>()?;
    let mean_mb = kb.iter().sum::<u64>() as f64 / kb.len().max(1) as f64 / 1024.0;
    let per: Vec<String> = kb.iter().map(|k| format!("{:.1}", *k as f64 / 1024.0)).collect();
    let line = ResultLine::new(&a.case, &a.t.target, a.t.members)
        .field("rss_mb", format!("{mean_mb:.1}"))
        .field("per_member_mb", per.join("/"));
    println!("{}", line.render());
    Ok(())
}

/// The RESULT lines of `files` (`-`: stdin), in order.
fn read_results(files: &[PathBuf]) -> Result<Vec<ResultLine>> {
    let mut lines = Vec::new();
    for f in files {
        let reader: Box<dyn std::io::BufRead> = if f.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?,
            ))
        };
        for l in reader.lines() {
            if let Some(r) = ResultLine::parse(&l?) {
                lines.push(r);
            }
        }
    }
    Ok(lines)
}

/// Prints the result line of a throughput case.
fn print_outcome(t: &TargetArgs, case: &str, mut o: Outcome) {
    let secs = o.elapsed.as_secs_f64();
    let ops_s = if secs > 0.0 { o.ops as f64 / secs } else { 0.0 };
    let mut line = ResultLine::new(case, &t.target, t.members)
        .field("ops_s", format!("{ops_s:.1}"))
        .field("p50_ms", format!("{:.3}", o.latencies.percentile_ms(50.0)))
        .field("p99_ms", format!("{:.3}", o.latencies.percentile_ms(99.0)))
        .field("ops", o.ops)
        .field("secs", format!("{secs:.2}"))
        .field("errors", o.errors);
    if o.ops > 0 && o.server_cpu_s > 0.0 {
        line = line.field(
            "server_cpu_us_op",
            format!("{:.1}", o.server_cpu_s * 1e6 / o.ops as f64),
        );
    }
    line = line.field("loadgen_cpu_s", format!("{:.2}", o.loadgen_cpu_s));
    for (k, v) in o.extra {
        line = line.field(&k, v);
    }
    if let Some(e) = o.first_error {
        line = line.field("error", e);
    }
    println!("{}", line.render());
}

/// One server under test, as given on the command line.
struct Server {
    t: TargetArgs,
    endpoints: Vec<String>,
    pids: Vec<u32>,
    /// Endpoint of the single-client cases: the leader when the server says which member leads.
    single: String,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn servers_of(a: &SuiteArgs) -> Result<Vec<Server>> {
    if a.endpoints.len() != a.servers.len() || (!a.pids.is_empty() && a.pids.len() != a.servers.len()) {
        bail!("give --endpoints (and --pids, if any) once per --server");
    }
    let mut out = Vec::new();
    for (i, name) in a.servers.iter().enumerate() {
        let endpoints = split_list(&a.endpoints[i]);
        if endpoints.is_empty() {
            bail!("no endpoints for {name}");
        }
        conn::check_loopback(&endpoints)?;
        let pids = match a.pids.get(i) {
            Some(p) => split_list(p)
                .iter()
                .map(|x| x.parse::<u32>().with_context(|| format!("bad pid {x}")))
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let leader = if endpoints.len() > 1 {
            conn::find_leader(&endpoints).await
        } else {
            Some(0)
        };
        let single = endpoints[leader.unwrap_or(0)].clone();
        println!(
            "INFO target={name} members={} conns={} endpoints={} single_client_endpoint={single}{}",
            a.members,
            a.conns,
            endpoints.join(","),
            if leader.is_none() {
                " (leader unknown: Status not answered)"
            } else {
                ""
            }
        );
        out.push(Server {
            t: TargetArgs {
                target: name.clone(),
                members: a.members,
            },
            endpoints,
            pids,
            single,
        });
    }
    Ok(out)
}

/// A case of the suite.
#[derive(Clone, Copy)]
enum Case {
    Kv(Op, usize),
    Watch(usize, u64),
}

async fn run_case(a: &SuiteArgs, s: &Server, name: &str, case: Case, load: &Load) -> Result<Outcome> {
    match case {
        Case::Kv(op, clients) => {
            let pool = if clients == 1 {
                Pool::connect(std::slice::from_ref(&s.single), 1).await?
            } else {
                Pool::connect(&s.endpoints, a.conns.min(clients)).await?
            };
            kv::run(
                &pool,
                name,
                op,
                &Load {
                    clients,
                    ..load.clone()
                },
                &s.pids,
            )
            .await
        }
        Case::Watch(watchers, puts) => {
            let pool = Pool::connect(&s.endpoints, a.conns).await?;
            let wl = WatchLoad {
                watchers,
                puts,
                putters: 4,
                put_time_limit: load.duration * 3,
                drain: Duration::from_secs(10),
                rate: None,
            };
            watch::run(&pool, name, &wl, &s.pids).await
        }
    }
}

async fn suite(a: SuiteArgs) -> Result<()> {
    let (duration, warmup, puts100, puts1000) = if a.quick {
        (Duration::from_secs(1), Duration::from_millis(300), 500, 50)
    } else {
        (
            Duration::from_secs_f64(a.duration_s),
            Duration::from_secs_f64(a.warmup_s),
            a.watch_puts_100,
            a.watch_puts_1000,
        )
    };
    if a.conns == 0 {
        bail!("--conns must be at least 1");
    }
    let servers = servers_of(&a).await?;
    let load = Load {
        clients: 1,
        warmup,
        duration,
        max_ops: a.max_ops,
    };
    let cases: [(&str, Case); 8] = [
        ("put-c1", Case::Kv(Op::Put, 1)),
        ("put-c64", Case::Kv(Op::Put, 64)),
        ("txn-create-c64", Case::Kv(Op::TxnCreate, 64)),
        ("get-lin-c64", Case::Kv(Op::Get { serializable: false }, 64)),
        ("get-ser-c64", Case::Kv(Op::Get { serializable: true }, 64)),
        ("list100-c8", Case::Kv(Op::List, 8)),
        ("watch-100", Case::Watch(100, puts100)),
        ("watch-1000", Case::Watch(1000, puts1000)),
    ];
    let wanted = |c: &str| a.cases.is_empty() || a.cases.iter().any(|x| x == c);
    for (i, (name, case)) in cases.into_iter().filter(|(n, _)| wanted(n)).enumerate() {
        // Alternate which server goes first, so that slow drift in background load evens out.
        let mut order: Vec<&Server> = servers.iter().collect();
        if i % 2 == 1 {
            order.reverse();
        }
        for s in order {
            match run_case(&a, s, name, case, &load).await {
                Ok(o) => print_outcome(&s.t, name, o),
                Err(e) => println!(
                    "{}",
                    ResultLine::new(name, &s.t.target, s.t.members)
                        .field("error", format!("{e:#}"))
                        .render()
                ),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    Ok(())
}
