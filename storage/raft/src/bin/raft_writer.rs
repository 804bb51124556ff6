//! Test helper for crash-durability tests: starts a single-member store in `DATA_DIR` and writes
//! keys `w/<task>/<n>` from several tasks forever, printing `ACK <key> <revision>` for each
//! acknowledged write. The test kills it with SIGKILL and checks every acknowledged key.
//!
//! Usage: `raft_writer DATA_DIR [TASKS [SNAPSHOT_AFTER_LOGS]]`; with the last argument the store
//! snapshots (and purges its log) that often, so a kill can land after purges.

use std::io::Write;
use std::sync::Arc;

use storage::{PutRequest, Storage};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data_dir = args
        .next()
        .ok_or("usage: raft_writer DATA_DIR [TASKS [SNAPSHOT_AFTER_LOGS]]")?;
    let tasks: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(16);
    let snapshot_after: Option<u64> = args.next().map(|s| s.parse()).transpose()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let mut config = storage_raft::Config::new("writer", &data_dir, url);
    config.allow_plain_http = true;
    if let Some(n) = snapshot_after {
        config.snapshot_after_logs = n;
        config.logs_kept_after_snapshot = 0;
    }
    let store = storage_raft::RaftStorage::start_with_listener(config, Some(listener)).await?;
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    {
        let mut o = out.lock().map_err(|_| "stdout lock")?;
        writeln!(o, "READY")?;
        o.flush()?;
    }
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        let out = out.clone();
        handles.push(tokio::spawn(async move {
            for n in 0u64.. {
                let key = format!("w/{t}/{n}");
                let req = PutRequest {
                    key: key.clone().into(),
                    value: key.clone().into(),
                    ..Default::default()
                };
                match store.put(req).await {
                    Ok(resp) => {
                        if let Ok(mut o) = out.lock() {
                            let _ = writeln!(o, "ACK {key} {}", resp.revision);
                            let _ = o.flush();
                        }
                    }
                    Err(e) => {
                        eprintln!("put {key} failed: {e}");
                        return;
                    }
                }
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    Ok(())
}
