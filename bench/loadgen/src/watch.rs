//! Watch fan-out: N watchers on one collection, a few writers creating objects in it; measures how
//! long each event takes from just before its write is sent to its arrival at every watcher, and
//! events/s.
//!
//! The harness ([`fan_out`]) is generic over where events come from ([`EventSource`]) and how objects
//! are written ([`Writer`]); this module also has the etcd v3 implementation (one gRPC watch stream per
//! watcher, spread over the pooled connections). Every written value carries its send time (ns on
//! this process's monotonic clock, [`now_ns`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use etcd_client::{KvClient, WatchClient, WatchOptions, WatchStream};
use tokio::task::JoinSet;

use crate::conn::Pool;
use crate::kv::{Outcome, VALUE_SIZE};
use crate::stats::{Latencies, cpu_seconds, now_ns, servers_cpu_seconds};

/// Shape of a watch case.
#[derive(Debug, Clone)]
pub struct WatchLoad {
    /// Number of watchers (streams).
    pub watchers: usize,
    /// Puts to issue in total.
    pub puts: u64,
    /// Concurrent putters.
    pub putters: usize,
    /// Putting stops after this long even if `puts` were not all issued.
    pub put_time_limit: Duration,
    /// How long watchers may still wait for events once putting stopped.
    pub drain: Duration,
    /// Writes per second over all putters (write `n` is sent no earlier than `n / rate` s after
    /// the first); `None`: each putter writes again as soon as its last write was answered.
    pub rate: Option<f64>,
}

/// One open watch.
pub trait EventSource: Send + 'static {
    /// Waits for the next message and returns the send times ([`now_ns`]) carried by its events
    /// (empty for messages without events); `None` when the stream ended.
    fn next_stamps(&mut self) -> impl Future<Output = Result<Option<Vec<u64>>>> + Send;
}

/// One writer.
pub trait Writer: Send + 'static {
    /// Creates object number `seq` (unique per case) carrying `now_ns()` taken just before sending.
    fn write(&mut self, seq: u64) -> impl Future<Output = Result<()>> + Send;
}

/// Opens `n` things with `open(i)`, at most 64 at a time, in index order of completion.
pub async fn open_all<T, F, Fut>(n: usize, open: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let mut out = Vec::with_capacity(n);
    let mut opening = JoinSet::new();
    let mut next = 0usize;
    while out.len() < n {
        while next < n && opening.len() < 64 {
            opening.spawn(open(next));
            next += 1;
        }
        match opening.join_next().await {
            Some(r) => out.push(r??),
            None => break,
        }
    }
    Ok(out)
}

struct WatcherResult {
    latencies: Latencies,
    events: u64,
    last_event_ns: u64,
    error: Option<String>,
}

/// Runs the fan-out case on watches that are already open: `load.puts` writes by the `writers`
/// (one task each), every event timed at every source.
pub async fn fan_out<S: EventSource, W: Writer>(
    sources: Vec<S>,
    writers: Vec<W>,
    load: &WatchLoad,
    server_pids: &[u32],
) -> Result<Outcome> {
    let watchers = sources.len();
    // Writing stops at `expected` = acknowledged writes; receivers stop when they have them all or
    // at the deadline.
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let deadline_ns = Arc::new(AtomicU64::new(
        now_ns() + (load.put_time_limit + load.drain).as_nanos() as u64,
    ));
    let mut receivers = JoinSet::new();
    for mut src in sources {
        let expected = expected.clone();
        let deadline_ns = deadline_ns.clone();
        let cap = usize::try_from(load.puts).unwrap_or(0).min(1 << 20);
        receivers.spawn(async move {
            let mut r = WatcherResult {
                latencies: Latencies::with_capacity(cap),
                events: 0,
                last_event_ns: 0,
                error: None,
            };
            loop {
                if r.events >= expected.load(Ordering::Acquire)
                    || now_ns() >= deadline_ns.load(Ordering::Acquire)
                {
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(50), src.next_stamps()).await {
                    Err(_) => continue,
                    Ok(Ok(Some(stamps))) => {
                        let now = now_ns();
                        for sent in stamps {
                            r.latencies.record_ns(now.saturating_sub(sent));
                            r.events += 1;
                            r.last_event_ns = now;
                        }
                    }
                    Ok(Ok(None)) => {
                        r.error = Some("watch stream ended".to_owned());
                        break;
                    }
                    Ok(Err(e)) => {
                        r.error = Some(format!("{e:#}"));
                        break;
                    }
                }
            }
            r
        });
    }

    let cpu0 = servers_cpu_seconds(server_pids);
    let self0 = cpu_seconds("self").unwrap_or(0.0);
    let first_put_ns = now_ns();
    let put_deadline = first_put_ns + load.put_time_limit.as_nanos() as u64;
    let issued = Arc::new(AtomicU64::new(0));
    let mut putters = JoinSet::new();
    for mut w in writers {
        let issued = issued.clone();
        let total = load.puts;
        let rate = load.rate.filter(|r| *r > 0.0);
        putters.spawn(async move {
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            loop {
                let seq = issued.fetch_add(1, Ordering::Relaxed);
                if seq >= total || now_ns() >= put_deadline {
                    break;
                }
                if let Some(rate) = rate {
                    let due = first_put_ns + (seq as f64 * 1e9 / rate) as u64;
                    let wait = due.saturating_sub(now_ns());
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_nanos(wait)).await;
                    }
                }
                match w.write(seq).await {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                        if errors > 100 && ok == 0 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            (ok, errors, first_error)
        });
    }
    let mut out = Outcome::default();
    let mut puts_ok = 0u64;
    while let Some(r) = putters.join_next().await {
        let (ok, errors, first_error) = r?;
        puts_ok += ok;
        out.errors += errors;
        if out.first_error.is_none() {
            out.first_error = first_error;
        }
    }
    let puts_done_ns = now_ns();
    expected.store(puts_ok, Ordering::Release);
    let drain_deadline = puts_done_ns + load.drain.as_nanos() as u64;
    deadline_ns.fetch_min(drain_deadline, Ordering::AcqRel);

    let mut last_event_ns = first_put_ns;
    let mut stream_errors = 0u64;
    while let Some(r) = receivers.join_next().await {
        let r = r?;
        out.ops += r.events;
        out.latencies.merge(r.latencies);
        last_event_ns = last_event_ns.max(r.last_event_ns);
        if let Some(e) = r.error {
            stream_errors += 1;
            if out.first_error.is_none() {
                out.first_error = Some(e);
            }
        }
    }
    out.errors += stream_errors;
    out.server_cpu_s = servers_cpu_seconds(server_pids) - cpu0;
    out.loadgen_cpu_s = cpu_seconds("self").unwrap_or(0.0) - self0;
    out.elapsed = Duration::from_nanos(last_event_ns.saturating_sub(first_put_ns));
    let want = puts_ok * watchers as u64;
    out.extra = vec![
        ("watchers".to_owned(), watchers.to_string()),
        (
            "put_rate".to_owned(),
            load.rate.map_or_else(|| "max".to_owned(), |r| format!("{r:.0}")),
        ),
        ("puts".to_owned(), puts_ok.to_string()),
        (
            "put_ops_s".to_owned(),
            format!(
                "{:.0}",
                puts_ok as f64 / ((puts_done_ns - first_put_ns) as f64 / 1e9).max(1e-9)
            ),
        ),
        ("events".to_owned(), out.ops.to_string()),
        (
            "missing_events".to_owned(),
            want.saturating_sub(out.ops).to_string(),
        ),
        (
            "max_ms".to_owned(),
            format!("{:.3}", out.latencies.percentile_ms(100.0)),
        ),
    ];
    Ok(out)
}

/// An etcd watch stream whose values start with their send time (8 bytes, big-endian).
struct EtcdSource(WatchStream);

impl EventSource for EtcdSource {
    async fn next_stamps(&mut self) -> Result<Option<Vec<u64>>> {
        let Some(resp) = self.0.message().await? else {
            return Ok(None);
        };
        if resp.canceled() {
            bail!("watch canceled: {}", resp.cancel_reason());
        }
        let now = now_ns();
        Ok(Some(
            resp.events()
                .iter()
                .filter_map(|ev| ev.kv())
                .map(|kv| {
                    kv.value()
                        .get(..8)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map_or(now, u64::from_be_bytes)
                })
                .collect(),
        ))
    }
}

/// Puts `{prefix}p{id}/{seq}` with a 256-byte value starting with the send time.
struct EtcdWriter {
    kv: KvClient,
    id: usize,
    prefix: String,
}

impl Writer for EtcdWriter {
    async fn write(&mut self, seq: u64) -> Result<()> {
        let mut v = vec![b'w'; VALUE_SIZE];
        v[..8].copy_from_slice(&now_ns().to_be_bytes());
        self.kv
            .put(format!("{}p{}/{seq:08}", self.prefix, self.id), v, None)
            .await?;
        Ok(())
    }
}

/// Runs the fan-out case against an etcd v3 server: one watch stream per watcher on one prefix.
pub async fn run(pool: &Pool, case: &str, load: &WatchLoad, server_pids: &[u32]) -> Result<Outcome> {
    let prefix = format!("/bench/{case}/");
    // Open every watcher first, so that no event is missed.
    let sources = open_all(load.watchers, |i| {
        let (wc, p) = (pool.watch(i), prefix.clone());
        async move { open_one(wc, &p).await.map(EtcdSource) }
    })
    .await?;
    let writers = (0..load.putters)
        .map(|id| EtcdWriter {
            kv: pool.kv(id),
            id,
            prefix: prefix.clone(),
        })
        .collect();
    fan_out(sources, writers, load, server_pids).await
}

/// Opens one watch stream and waits until the server confirms the watch was created.
async fn open_one(mut wc: WatchClient, prefix: &str) -> Result<WatchStream> {
    let mut ws = wc
        .watch(prefix.to_owned(), Some(WatchOptions::new().with_prefix()))
        .await
        .context("opening watch stream")?;
    loop {
        match ws.message().await? {
            Some(resp) if resp.created() => return Ok(ws),
            Some(resp) if resp.canceled() => bail!("watch canceled: {}", resp.cancel_reason()),
            Some(_) => {}
            None => bail!("watch stream closed before the watch was created"),
        }
    }
}
