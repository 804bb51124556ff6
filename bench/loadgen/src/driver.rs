//! The closed-loop driver shared by every request/response workload (etcd KV and Kubernetes API).
//!
//! Every logical client is a task that issues one request, waits for the reply, and issues the next,
//! until the case's time is up or its op budget is spent. Latency is measured from just before the
//! request is sent to the reply; requests that start during the warm-up are not recorded.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::task::JoinSet;

use crate::kv::{Load, Outcome};
use crate::stats::{Latencies, cpu_seconds, servers_cpu_seconds};

/// After this many consecutive failures without a single success a client gives up.
const MAX_FAILURES_WITHOUT_SUCCESS: u64 = 200;

/// One logical client: issues request number `seq` (1, 2, ...) and waits for its reply.
pub trait Client: Send + 'static {
    /// Sends one request and waits for the reply; an error counts as a failed request.
    fn one(&mut self, seq: u64) -> impl Future<Output = Result<()>> + Send;
}

struct ClientResult {
    latencies: Latencies,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

/// Runs every client of `clients` in a closed loop for `load`'s warm-up and duration and measures
/// the requests of the measurement window (`load.clients` is ignored: one task per given client).
pub async fn closed_loop<C: Client>(clients: Vec<C>, load: &Load, server_pids: &[u32]) -> Result<Outcome> {
    let start = Instant::now();
    let measure_start = start + load.warmup;
    let end = measure_start + load.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for mut client in clients {
        let issued = issued.clone();
        let max_ops = load.max_ops;
        set.spawn(async move {
            let mut r = ClientResult {
                latencies: Latencies::with_capacity(4096),
                ops: 0,
                errors: 0,
                first_error: None,
                last_done: None,
            };
            let mut seq = 0u64;
            let mut failures_in_a_row = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end || issued.fetch_add(1, Ordering::Relaxed) >= max_ops {
                    break;
                }
                seq += 1;
                match client.one(seq).await {
                    Ok(()) => {
                        failures_in_a_row = 0;
                        if t0 >= measure_start {
                            let done = Instant::now();
                            r.latencies.record(done - t0);
                            r.ops += 1;
                            r.last_done = Some(done);
                        }
                    }
                    Err(e) => {
                        r.errors += 1;
                        failures_in_a_row += 1;
                        if r.first_error.is_none() {
                            r.first_error = Some(format!("{e:#}"));
                        }
                        if failures_in_a_row >= MAX_FAILURES_WITHOUT_SUCCESS && r.ops == 0 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            r
        });
    }

    tokio::time::sleep_until(measure_start.into()).await;
    let cpu0 = servers_cpu_seconds(server_pids);
    let self0 = cpu_seconds("self").unwrap_or(0.0);
    let mut out = Outcome::default();
    let mut last_done = measure_start;
    while let Some(r) = set.join_next().await {
        let r = r?;
        out.ops += r.ops;
        out.errors += r.errors;
        if out.first_error.is_none() {
            out.first_error = r.first_error;
        }
        out.latencies.merge(r.latencies);
        if let Some(d) = r.last_done {
            last_done = last_done.max(d);
        }
    }
    out.server_cpu_s = servers_cpu_seconds(server_pids) - cpu0;
    out.loadgen_cpu_s = cpu_seconds("self").unwrap_or(0.0) - self0;
    out.elapsed = last_done.max(end.min(Instant::now())) - measure_start;
    Ok(out)
}
