//! Crash durability with a real process: a child writes and reports each acknowledged write, is
//! killed with SIGKILL mid-stream, and every acknowledged write must be there after a restart.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use storage::{RangeRequest, Storage, prefix_end};
use storage_raft::RaftStorage;

/// Kills the child when the test ends, also on panic.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    sigkill_mid_stream_keeps_acknowledged_writes(&[]).await;
}

/// With a snapshot every 20 entries and no log kept after it, the kill lands after log purges:
/// the state the purged entries built must have been on disk before they were deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_after_log_purges() {
    sigkill_mid_stream_keeps_acknowledged_writes(&["20"]).await;
}

async fn sigkill_mid_stream_keeps_acknowledged_writes(extra_args: &[&str]) {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_raft_writer"))
        .arg(&data)
        .arg("16")
        .args(extra_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start writer");
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().expect("stdout");
    // Read acknowledgements on a thread until enough arrived, then kill mid-stream.
    let acked = tokio::task::spawn_blocking(move || {
        let mut acked: BTreeMap<String, u64> = BTreeMap::new();
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (key, rev) = rest.split_once(' ').expect("ACK line");
                acked.insert(key.to_string(), rev.parse().expect("revision"));
                if acked.len() >= 3000 {
                    break;
                }
            }
        }
        (acked, lines)
    });
    let (mut acked, lines) = acked.await.unwrap();
    guard.0.kill().expect("SIGKILL the writer");
    let _ = guard.0.wait();
    // Acknowledgements printed before the kill count too.
    for line in lines.map_while(Result::ok) {
        if let Some((key, rev)) = line.strip_prefix("ACK ").and_then(|r| r.split_once(' ')) {
            acked.insert(key.to_string(), rev.parse().unwrap());
        }
    }
    assert!(
        acked.len() >= 3000,
        "the writer acknowledged {} writes",
        acked.len()
    );

    let (l, url) = common::listener();
    let url = url.replace("https://", "http://");
    let mut config = storage_raft::Config::new("writer", &data, url);
    config.allow_plain_http = true;
    let store = RaftStorage::start_with_listener(config, Some(l)).await.unwrap();
    let all = store
        .range(RangeRequest {
            key: "w/".into(),
            range_end: prefix_end(b"w/"),
            ..Default::default()
        })
        .await
        .unwrap();
    let stored: BTreeMap<String, u64> = all
        .kvs
        .iter()
        .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.mod_revision))
        .collect();
    for (key, rev) in &acked {
        assert_eq!(
            stored.get(key),
            Some(rev),
            "acknowledged write {key}@{rev} is missing after the crash"
        );
    }
    let max = acked.values().max().copied().unwrap_or(0);
    assert!(all.revision >= max);
    tracing::info!(
        acked = acked.len(),
        stored = stored.len(),
        revision = all.revision,
        "crash check passed"
    );
    store.shutdown().await;
}
