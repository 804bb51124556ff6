//! Closed-loop KV workloads: puts, Kubernetes-style Txn creates, point gets and prefix lists
//! (driven by [`crate::driver::closed_loop`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use etcd_client::{Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp};
use tokio::task::JoinSet;

use crate::conn::Pool;
use crate::stats::Latencies;

/// Size of every value written.
pub const VALUE_SIZE: usize = 256;

/// What each request of a case does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Put a 256-byte value under a key never written before.
    Put,
    /// Kubernetes create: `If(mod_revision(key) == 0) Then(Put) Else(Get)` on a new key.
    TxnCreate,
    /// Get one of the preloaded keys.
    Get {
        /// Serializable (local, possibly stale) instead of linearizable.
        serializable: bool,
    },
    /// Linearizable range over a 100-key prefix.
    List,
}

/// How long and how hard a case runs.
#[derive(Debug, Clone)]
pub struct Load {
    /// Logical clients (concurrent requests in flight).
    pub clients: usize,
    /// Time before measurement starts (requests run but are not recorded).
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Hard cap on requests issued, warm-up included.
    pub max_ops: u64,
}

/// What a case measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Successful requests in the measurement window.
    pub ops: u64,
    /// Failed requests (whole case).
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Measurement window.
    pub elapsed: Duration,
    /// Request latencies of the measurement window.
    pub latencies: Latencies,
    /// CPU seconds the servers used in the window.
    pub server_cpu_s: f64,
    /// CPU seconds this process used in the window.
    pub loadgen_cpu_s: f64,
    /// Extra `key=value` fields for the result line.
    pub extra: Vec<(String, String)>,
}

/// A 256-byte value, filled with printable bytes.
pub fn value(seed: u64) -> Vec<u8> {
    let mut v = vec![b'x'; VALUE_SIZE];
    for (i, b) in v.iter_mut().enumerate().take(16) {
        *b = b'a' + ((seed >> (i * 4)) & 0xf) as u8;
    }
    v
}

/// The end of the range covering every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Writes keys `prefix{i:06}` for `i < n` with 16 concurrent clients.
pub async fn preload(pool: &Pool, prefix: &str, n: u64) -> Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for w in 0..16 {
        let mut kv = pool.kv(w);
        let next = next.clone();
        let prefix = prefix.to_owned();
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                kv.put(format!("{prefix}{i:06}"), value(i), None).await?;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// Number of keys [`run`] preloads for `Op::Get`.
pub const GET_KEYSPACE: u64 = 1000;
/// Number of keys under the listed prefix for `Op::List`.
pub const LIST_KEYS: u64 = 100;

/// Prepares the data a case reads and runs it.
pub async fn run(pool: &Pool, case: &str, op: Op, load: &Load, server_pids: &[u32]) -> Result<Outcome> {
    let base = format!("/bench/{case}/");
    match op {
        Op::Get { .. } => preload(pool, &base, GET_KEYSPACE).await?,
        Op::List => preload(pool, &format!("{base}items/"), LIST_KEYS).await?,
        Op::Put | Op::TxnCreate => {}
    }
    drive(pool, &base, op, load, server_pids).await
}

/// Per-client state.
struct ClientTask {
    kv: KvClient,
    id: usize,
    base: String,
    op: Op,
    rng: u64,
}

impl ClientTask {
    fn next_rand(&mut self) -> u64 {
        crate::stats::xorshift(&mut self.rng)
    }

    async fn one(&mut self, seq: u64) -> Result<()> {
        match self.op {
            Op::Put => {
                let key = format!("{}c{:03}/{seq:010}", self.base, self.id);
                self.kv.put(key, value(seq), None).await?;
            }
            Op::TxnCreate => {
                let key = format!("{}c{:03}/{seq:010}", self.base, self.id);
                let txn = Txn::new()
                    .when([Compare::mod_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key.clone(), value(seq), None)])
                    .or_else([TxnOp::get(key, None)]);
                let resp = self.kv.txn(txn).await?;
                if !resp.succeeded() {
                    bail!("txn create of a new key took the else branch");
                }
            }
            Op::Get { serializable } => {
                let i = self.next_rand() % GET_KEYSPACE;
                let opts = serializable.then(|| GetOptions::new().with_serializable());
                let resp = self.kv.get(format!("{}{i:06}", self.base), opts).await?;
                if resp.kvs().len() != 1 {
                    bail!("get of a preloaded key returned {} kvs", resp.kvs().len());
                }
            }
            Op::List => {
                let prefix = format!("{}items/", self.base);
                let end = prefix_end(prefix.as_bytes());
                let resp = self
                    .kv
                    .get(prefix, Some(GetOptions::new().with_range(end)))
                    .await?;
                if resp.kvs().len() as u64 != LIST_KEYS {
                    bail!("list returned {} kvs, expected {LIST_KEYS}", resp.kvs().len());
                }
            }
        }
        Ok(())
    }
}

impl crate::driver::Client for ClientTask {
    async fn one(&mut self, seq: u64) -> Result<()> {
        ClientTask::one(self, seq).await
    }
}

/// Runs `load.clients` closed-loop clients doing `op` and measures them.
async fn drive(pool: &Pool, base: &str, op: Op, load: &Load, server_pids: &[u32]) -> Result<Outcome> {
    let clients = (0..load.clients)
        .map(|id| ClientTask {
            kv: pool.kv(id),
            id,
            base: base.to_owned(),
            op,
            rng: 0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) << 17),
        })
        .collect();
    crate::driver::closed_loop(clients, load, server_pids).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn values_are_256_bytes() {
        assert_eq!(value(7).len(), VALUE_SIZE);
        assert_ne!(value(1), value(2));
    }
}
