//! `keelson-bench api`: drives a Kubernetes API server over TLS with kube-rs (creates, gets, lists of
//! 1 000 objects, a 1 000-watcher fan-out) and, when given a raw `keelson store`, runs the store's
//! counterpart of each case (same writes: 256-byte values) right before or after it, so that the
//! API layer's overhead is a ratio from the same run.

pub mod objects;
mod ops;
pub mod ready;
pub mod report;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::task::JoinSet;

use crate::conn::Pool;
use crate::kv::{self, Load, Op, Outcome};
use crate::report::ResultLine;
use crate::watch::WatchLoad;
use crate::{TargetArgs, print_outcome};
use ops::{ApiOp, ApiTask, READ_OBJECTS, read_name};

/// Label of the raw store's RESULT lines.
pub const STORE_TARGET: &str = "store";

/// Arguments of `keelson-bench api`.
#[derive(Args, Debug)]
pub struct ApiArgs {
    /// Kubeconfig of the API server under test (its current context is used).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Label of the API server in RESULT lines.
    #[arg(long, default_value = "apiserver")]
    target: String,
    /// PID of the API server process, to sample its CPU time (local servers only).
    #[arg(long)]
    pid: Option<u32>,
    /// Client URL (http://127.0.0.1:PORT) of a raw `keelson store`: the write and read cases also
    /// run their store counterpart (put-c1, put-c64, get-lin-c64, watch-1000).
    #[arg(long)]
    store_endpoint: Option<String>,
    /// PID of that store process.
    #[arg(long)]
    store_pid: Option<u32>,
    /// gRPC connections the store's 64-client cases share (as in bench/storage.sh).
    #[arg(long, default_value_t = 8)]
    store_conns: usize,
    /// Measured seconds per throughput case.
    #[arg(long, default_value_t = 5.0)]
    duration_s: f64,
    /// Unmeasured warm-up seconds before each throughput case.
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    /// Cap on requests per throughput case (warm-up included).
    #[arg(long, default_value_t = 2_000_000)]
    max_ops: u64,
    /// Watchers in the fan-out case.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Creates (puts) in each fan-out case.
    #[arg(long, default_value_t = 500)]
    watch_puts: u64,
    /// Creates per second in the paced fan-out case `watch-1000` (each delivered to every
    /// watcher: 100/s with 1 000 watchers is 100 000 events/s); `watch-1000-max` writes as fast
    /// as the creates are answered.
    #[arg(long, default_value_t = 100.0)]
    watch_rate: f64,
    /// Short smoke-test run: 1 s cases, 0.3 s warm-up, 50 watch writes.
    #[arg(long)]
    quick: bool,
    /// Only these cases (comma-separated API case names as printed); all when empty.
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
}

/// Arguments of `keelson-bench api-wait-ready`.
#[derive(Args, Debug)]
pub struct ApiWaitArgs {
    /// Admin kubeconfig of the server (read on every attempt).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Label of the server in the RESULT line.
    #[arg(long, default_value = "apiserver")]
    target: String,
    /// Name of the RESULT case (startup-fresh, startup-restart).
    #[arg(long)]
    case: String,
    /// Server PID: waiting stops with an error when it exits.
    #[arg(long)]
    pid: Option<u32>,
    /// Unix-epoch nanoseconds taken just before the server was started (`date +%s%N`).
    #[arg(long)]
    since_ns: u128,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout_s: f64,
}

/// What an API case does.
#[derive(Clone, Copy)]
enum ApiKind {
    Closed(ApiOp, usize),
    /// The fan-out; `true`: writes paced at `--watch-rate`, else as fast as they are answered.
    Watch(bool),
}

/// The raw store's counterpart of a case.
#[derive(Clone, Copy)]
enum StoreKind {
    Kv(Op, usize),
    /// The fan-out, paced or not (as [`ApiKind::Watch`]).
    Watch(bool),
}

/// API cases in run order with the store case doing the same work ("" for none).
pub const CASES: &[(&str, &str)] = &[
    ("create-c1", "put-c1"),
    ("create-c64", "put-c64"),
    ("get-c64", "get-lin-c64"),
    ("list1000-c1", ""),
    ("list1000-paged500-c1", ""),
    ("watch-1000", "watch-1000"),
    ("watch-1000-max", "watch-1000-max"),
];

fn kinds(case: &str, watchers: usize) -> (ApiKind, Option<StoreKind>) {
    match case {
        "create-c1" => (ApiKind::Closed(ApiOp::Create, 1), Some(StoreKind::Kv(Op::Put, 1))),
        "create-c64" => (
            ApiKind::Closed(ApiOp::Create, 64),
            Some(StoreKind::Kv(Op::Put, 64)),
        ),
        "get-c64" => (
            ApiKind::Closed(ApiOp::Get, 64),
            Some(StoreKind::Kv(Op::Get { serializable: false }, 64)),
        ),
        "list1000-c1" => (ApiKind::Closed(ApiOp::List { limit: 0 }, 1), None),
        "list1000-paged500-c1" => (ApiKind::Closed(ApiOp::List { limit: 500 }, 1), None),
        _ => {
            let paced = case == "watch-1000";
            (
                ApiKind::Watch(paced),
                (watchers > 0).then_some(StoreKind::Watch(paced)),
            )
        }
    }
}

/// Namespaces of one run: creates, preloaded reads, watches.
struct Namespaces {
    create: String,
    read: String,
    watch: String,
}

impl Namespaces {
    fn new() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let base = format!("kbench-{secs}-{}", std::process::id());
        Self {
            create: format!("{base}-c"),
            read: format!("{base}-r"),
            watch: format!("{base}-w"),
        }
    }

    fn all(&self) -> [&str; 3] {
        [&self.create, &self.read, &self.watch]
    }
}

/// Creates [`READ_OBJECTS`] ConfigMaps with 16 concurrent clients.
async fn preload(api: &Api<ConfigMap>) -> Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for _ in 0..16 {
        let (api, next) = (api.clone(), next.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= READ_OBJECTS {
                    return anyhow::Ok(());
                }
                let cm = objects::config_map(read_name(i), 0);
                api.create(&PostParams::default(), &cm)
                    .await
                    .with_context(|| format!("preloading {}", read_name(i)))?;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// Everything the cases need.
struct Run<'a> {
    a: &'a ApiArgs,
    load: Load,
    watch_load: WatchLoad,
    client: Client,
    watch_client: Client,
    ns: Namespaces,
    pids: Vec<u32>,
    store_pids: Vec<u32>,
}

impl Run<'_> {
    /// The fan-out's shape, its writes paced at `--watch-rate` or not.
    fn watch_load(&self, paced: bool) -> WatchLoad {
        WatchLoad {
            rate: if paced { Some(self.a.watch_rate) } else { None },
            ..self.watch_load.clone()
        }
    }

    async fn api_case(&self, case: &str, kind: ApiKind) -> Result<Outcome> {
        match kind {
            ApiKind::Closed(op, clients) => {
                let ns = if op == ApiOp::Create {
                    &self.ns.create
                } else {
                    &self.ns.read
                };
                let tasks = (0..clients)
                    .map(|id| ApiTask::new(Api::namespaced(self.client.clone(), ns), case, id, op))
                    .collect();
                crate::driver::closed_loop(tasks, &self.load, &self.pids).await
            }
            ApiKind::Watch(paced) => {
                watch::run(
                    &self.watch_client,
                    &self.client,
                    &self.ns.watch,
                    case,
                    &self.watch_load(paced),
                    &self.pids,
                )
                .await
            }
        }
    }

    async fn store_case(&self, endpoint: &str, case: &str, kind: StoreKind) -> Result<Outcome> {
        let endpoints = [endpoint.to_owned()];
        match kind {
            StoreKind::Kv(op, clients) => {
                let pool = Pool::connect(&endpoints, self.a.store_conns.min(clients)).await?;
                let load = Load {
                    clients,
                    ..self.load.clone()
                };
                kv::run(&pool, case, op, &load, &self.store_pids).await
            }
            StoreKind::Watch(paced) => {
                let pool = Pool::connect(&endpoints, self.a.store_conns).await?;
                crate::watch::run(&pool, case, &self.watch_load(paced), &self.store_pids).await
            }
        }
    }
}

fn print_result(target: &str, case: &str, r: Result<Outcome>) {
    let t = TargetArgs {
        target: target.to_owned(),
        members: 1,
    };
    match r {
        Ok(o) => print_outcome(&t, case, o),
        Err(e) => println!(
            "{}",
            ResultLine::new(case, target, 1)
                .field("error", format!("{e:#}"))
                .render()
        ),
    }
}

/// Runs the API cases (and their store counterparts) and prints one RESULT line per case and target.
pub async fn run(a: ApiArgs) -> Result<()> {
    let (duration, warmup, puts) = if a.quick {
        (Duration::from_secs(1), Duration::from_millis(300), 50)
    } else {
        (
            Duration::from_secs_f64(a.duration_s),
            Duration::from_secs_f64(a.warmup_s),
            a.watch_puts,
        )
    };
    if let Some(ep) = &a.store_endpoint {
        crate::conn::check_loopback(std::slice::from_ref(ep))?;
    }
    let client = objects::client(&a.kubeconfig, Some(Duration::from_secs(30))).await?;
    let watch_client = objects::client(&a.kubeconfig, None).await?;
    let run = Run {
        a: &a,
        load: Load {
            clients: 1,
            warmup,
            duration,
            max_ops: a.max_ops,
        },
        watch_load: WatchLoad {
            watchers: a.watchers,
            puts,
            putters: 4,
            put_time_limit: duration * 3,
            drain: Duration::from_secs(10),
            rate: None,
        },
        client,
        watch_client,
        ns: Namespaces::new(),
        pids: a.pid.into_iter().collect(),
        store_pids: a.store_pid.into_iter().collect(),
    };
    let wanted = |c: &str| a.cases.is_empty() || a.cases.iter().any(|x| x == c);
    if let Some(bad) = a.cases.iter().find(|c| !CASES.iter().any(|(n, _)| n == c)) {
        bail!("unknown case {bad}");
    }
    println!(
        "INFO api target={} kubeconfig={} namespaces={} clients: one kube-rs Client (HTTP/1.1 over \
         TLS: one connection per request in flight) shared by the 64 clients, another by the {} \
         watchers; store: {}",
        a.target,
        a.kubeconfig.display(),
        run.ns.all().join(","),
        a.watchers,
        a.store_endpoint.as_deref().unwrap_or("none"),
    );
    for ns in run.ns.all() {
        objects::create_namespace(&run.client, ns).await?;
    }
    if wanted("get-c64") || wanted("list1000-c1") || wanted("list1000-paged500-c1") {
        preload(&Api::namespaced(run.client.clone(), &run.ns.read)).await?;
    }
    for (i, (case, store_case)) in CASES.iter().filter(|(c, _)| wanted(c)).enumerate() {
        let (api_kind, store_kind) = kinds(case, a.watchers);
        let store = a.store_endpoint.as_deref().zip(store_kind);
        // Alternate which goes first, so that slow drift in background load evens out.
        let api_first = i % 2 == 1 || store.is_none();
        if api_first {
            print_result(&a.target, case, run.api_case(case, api_kind).await);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if let Some((ep, kind)) = store {
            print_result(
                STORE_TARGET,
                store_case,
                run.store_case(ep, store_case, kind).await,
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if !api_first {
            print_result(&a.target, case, run.api_case(case, api_kind).await);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for ns in run.ns.all() {
        if let Err(e) = objects::delete_namespace(&run.client, ns).await {
            println!("INFO could not delete namespace {ns}: {e:#}");
        }
    }
    Ok(())
}

/// Waits for the first successful request and prints the start-up time as a RESULT line.
pub async fn wait_ready(a: ApiWaitArgs) -> Result<()> {
    let ms = ready::wait_ready(
        &a.kubeconfig,
        a.pid,
        a.since_ns,
        Duration::from_secs_f64(a.timeout_s),
    )
    .await
    .with_context(|| format!("{} never answered a request", a.target))?;
    println!(
        "{}",
        ResultLine::new(&a.case, &a.target, 1)
            .field("ms", format!("{ms:.0}"))
            .render()
    );
    Ok(())
}
