//! Debian's `etcdctl` (3.4, API v3) against a real `keelson store`.
//!
//! Backend: `KEELSON_TEST_STORE=memory|raft` (default raft, one member).

mod common;

use common::*;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn b64(s: &str) -> String {
    // Minimal standard base64 (etcdctl -w json encodes bytes that way).
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | (u32::from(c) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn put_get_del_with_options() {
    let m = Member::start_default("kv");
    assert_eq!(etcdctl(&m, &["put", "foo", "bar"]).ok(), "OK\n");
    assert_eq!(etcdctl(&m, &["get", "foo"]).ok(), "foo\nbar\n");
    let first_rev = revision(&m);
    assert_eq!(etcdctl(&m, &["put", "foo", "baz"]).ok(), "OK\n");
    for (k, v) in [("dir/a", "1"), ("dir/b", "2"), ("dir/c", "3"), ("dis", "x")] {
        assert_eq!(etcdctl(&m, &["put", k, v]).ok(), "OK\n");
    }

    // Reads at an older revision see the older value.
    assert_eq!(
        etcdctl(&m, &["get", "foo", &format!("--rev={first_rev}")]).ok(),
        "foo\nbar\n"
    );
    assert_eq!(etcdctl(&m, &["get", "foo"]).ok(), "foo\nbaz\n");
    assert_eq!(
        etcdctl(&m, &["get", "dir/", "--prefix"]).ok(),
        "dir/a\n1\ndir/b\n2\ndir/c\n3\n"
    );
    assert_eq!(
        etcdctl(&m, &["get", "dir/", "--prefix", "--limit=2"]).ok(),
        "dir/a\n1\ndir/b\n2\n"
    );
    assert_eq!(
        etcdctl(&m, &["get", "dir/", "--prefix", "--print-value-only"]).ok(),
        "1\n2\n3\n"
    );
    assert_eq!(
        etcdctl(&m, &["get", "dir/", "--prefix", "--keys-only"]).ok(),
        "dir/a\n\ndir/b\n\ndir/c\n\n"
    );
    assert_eq!(
        etcdctl(
            &m,
            &["get", "dir/", "--prefix", "--sort-by=VALUE", "--order=DESCEND"]
        )
        .ok(),
        "dir/c\n3\ndir/b\n2\ndir/a\n1\n"
    );
    assert_eq!(
        etcdctl(&m, &["get", "dir/a", "dir/c"]).ok(),
        "dir/a\n1\ndir/b\n2\n"
    );
    assert_eq!(etcdctl(&m, &["get", "nothing-here"]).ok(), "");

    // JSON output: header, paging fields, base64 keys, revisions.
    let v = json(&etcdctl(&m, &["get", "dir/", "--prefix", "--limit=1", "-w", "json"]).ok());
    assert_eq!(v["count"], 3);
    assert_eq!(v["more"], true);
    assert_eq!(v["kvs"][0]["key"], b64("dir/a"));
    assert_eq!(v["kvs"][0]["value"], b64("1"));
    assert_eq!(v["kvs"][0]["version"], 1);
    let header_rev = v["header"]["revision"].as_i64().unwrap();
    assert_eq!(header_rev, revision(&m));
    assert!(v["header"]["cluster_id"].as_u64().unwrap() != 0);
    assert!(v["header"]["member_id"].as_u64().unwrap() != 0);
    let foo = json(&etcdctl(&m, &["get", "foo", "-w", "json"]).ok());
    assert_eq!(foo["kvs"][0]["version"], 2);
    assert_eq!(foo["kvs"][0]["create_revision"].as_i64().unwrap(), first_rev);
    assert_eq!(foo["kvs"][0]["mod_revision"].as_i64().unwrap(), first_rev + 1);

    // put --prev-kv prints the old pair.
    assert_eq!(
        etcdctl(&m, &["put", "foo", "qux", "--prev-kv"]).ok(),
        "OK\nfoo\nbaz\n"
    );

    // Deletes: single, prefix (with prev-kv), missing.
    assert_eq!(etcdctl(&m, &["del", "foo"]).ok(), "1\n");
    assert_eq!(etcdctl(&m, &["del", "foo"]).ok(), "0\n");
    assert_eq!(
        etcdctl(&m, &["del", "dir/", "--prefix", "--prev-kv"]).ok(),
        "3\ndir/a\n1\ndir/b\n2\ndir/c\n3\n"
    );
    assert_eq!(etcdctl(&m, &["get", "di", "--prefix"]).ok(), "dis\nx\n");
}

#[test]
fn watch_replays_from_a_revision_and_follows_live_changes() {
    let m = Member::start_default("watch");
    etcdctl(&m, &["put", "w/a", "1"]).ok();
    let start = revision(&m);
    etcdctl(&m, &["put", "w/a", "2"]).ok();
    etcdctl(&m, &["del", "w/a"]).ok();
    let dir = tempfile::tempdir().unwrap();
    let mut watch = etcdctl_background(
        &m,
        &["watch", "w/", "--prefix", &format!("--rev={start}"), "--prev-kv"],
        dir.path().join("watch.stderr"),
    );
    // History from `start`: the put of 1, the put of 2 (with prev 1), the delete (with prev 2).
    let lines = watch.stdout.wait_lines(10);
    assert_eq!(
        lines,
        vec!["PUT", "w/a", "1", "PUT", "w/a", "1", "w/a", "2", "DELETE", "w/a"],
        "{lines:?}"
    );
    // Live: a new put after the replay.
    etcdctl(&m, &["put", "w/b", "live"]).ok();
    watch.stdout.wait_for("the live put", |l| l == "live");
    let all = watch.stdout.seen.join("\n");
    assert!(all.ends_with("PUT\nw/b\nlive"), "{all}");

    // A watch that only follows new changes, without prev-kv.
    let mut plain = etcdctl_background(
        &m,
        &["watch", "w/b", &format!("--rev={}", revision(&m) + 1)],
        dir.path().join("p.stderr"),
    );
    etcdctl(&m, &["put", "w/b", "again"]).ok();
    assert_eq!(plain.stdout.wait_lines(3), vec!["PUT", "w/b", "again"]);
}

#[test]
fn txn_with_compares_on_value_version_and_revisions() {
    let m = Member::start_default("txn");
    etcdctl(&m, &["put", "k1", "v1"]).ok();
    let v = json(&etcdctl(&m, &["get", "k1", "-w", "json"]).ok());
    let mod_rev = v["kvs"][0]["mod_revision"].as_i64().unwrap();

    // Create-if-absent (Kubernetes' create): compare mod == 0 on a missing key.
    let create = "mod(\"k2\") = \"0\"\n\nput k2 created\n\nget k2\n\n";
    assert_eq!(
        etcdctl_stdin(&m, &["txn", "--interactive=false"], create).ok(),
        "SUCCESS\n\nOK\n"
    );
    // Second create fails and the failure branch reads the current value.
    assert_eq!(
        etcdctl_stdin(&m, &["txn", "--interactive=false"], create).ok(),
        "FAILURE\n\nk2\ncreated\n"
    );

    // CAS on mod revision (Kubernetes' update), and on value and version.
    let cas = format!(
        "mod(\"k1\") = \"{mod_rev}\"\nvalue(\"k1\") = \"v1\"\nver(\"k1\") = \"1\"\n\nput k1 v2\n\nget k1\n\n"
    );
    assert_eq!(
        etcdctl_stdin(&m, &["txn", "--interactive=false"], &cas).ok(),
        "SUCCESS\n\nOK\n"
    );
    assert_eq!(
        etcdctl_stdin(&m, &["txn", "--interactive=false"], &cas).ok(),
        "FAILURE\n\nk1\nv2\n"
    );
    let create_cmp = format!("create(\"k1\") = \"{mod_rev}\"\nver(\"k1\") > \"1\"\n\ndel k2\n\n\n");
    assert_eq!(
        etcdctl_stdin(&m, &["txn", "--interactive=false"], &create_cmp).ok(),
        "SUCCESS\n\n1\n"
    );

    // A failure branch that writes. (Lease compares are covered with the etcd-client crate in
    // storage-etcd's tests: etcdctl 3.4 panics parsing `lease("k") = "..."`.)
    let no_match = "value(\"k1\") = \"nope\"\n\n\nput failure-branch yes\n\n";
    assert_eq!(
        etcdctl_stdin(&m, &["txn", "--interactive=false"], no_match).ok(),
        "FAILURE\n\nOK\n"
    );
    assert_eq!(
        etcdctl(&m, &["get", "failure-branch", "--print-value-only"]).ok(),
        "yes\n"
    );

    // Several writes in one transaction share one revision.
    let before = revision(&m);
    let multi = "\nput m1 a\nput m2 b\n\n\n";
    assert_eq!(
        etcdctl_stdin(&m, &["txn", "--interactive=false"], multi).ok(),
        "SUCCESS\n\nOK\n\nOK\n"
    );
    let v = json(&etcdctl(&m, &["get", "m", "--prefix", "-w", "json"]).ok());
    assert_eq!(v["kvs"][0]["mod_revision"].as_i64().unwrap(), before + 1);
    assert_eq!(v["kvs"][1]["mod_revision"].as_i64().unwrap(), before + 1);

    // A transaction that writes one key twice is refused with etcd's error.
    let dup = "\nput d 1\nput d 2\n\n\n";
    let err = etcdctl_stdin(&m, &["txn", "--interactive=false"], dup).err();
    assert!(
        err.contains("etcdserver: duplicate key given in txn request"),
        "{err}"
    );
}

#[test]
fn leases_grant_keepalive_timetolive_list_revoke_and_expire() {
    let m = Member::start_default("lease");
    let grant = etcdctl(&m, &["lease", "grant", "60"]).ok();
    assert!(
        grant.starts_with("lease ") && grant.ends_with(" granted with TTL(60s)\n"),
        "{grant}"
    );
    let id = grant.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(
        etcdctl(&m, &["put", "lk", "v", &format!("--lease={id}")]).ok(),
        "OK\n"
    );

    let ttl = etcdctl(&m, &["lease", "timetolive", &id, "--keys"]).ok();
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(60s), remaining(")),
        "{ttl}"
    );
    assert!(ttl.ends_with("s), attached keys([lk])\n"), "{ttl}");

    let ka = etcdctl(&m, &["lease", "keep-alive", "--once", &id]).ok();
    assert_eq!(ka, format!("lease {id} keepalived with TTL(60)\n"));

    let list = etcdctl(&m, &["lease", "list"]).ok();
    assert!(
        list.starts_with("found 1 leases\n") && list.contains(&format!("{id}\n")),
        "{list}"
    );

    assert_eq!(
        etcdctl(&m, &["lease", "revoke", &id]).ok(),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        etcdctl(&m, &["get", "lk"]).ok(),
        "",
        "keys of a revoked lease are deleted"
    );
    assert_eq!(
        etcdctl(&m, &["lease", "timetolive", &id]).ok(),
        format!("lease {id} already expired\n")
    );
    let err = etcdctl(&m, &["lease", "revoke", &id]).err();
    assert!(err.contains("etcdserver: requested lease not found"), "{err}");

    // A short lease expires by itself and takes its key along.
    let short = etcdctl(&m, &["lease", "grant", "1"]).ok();
    let sid = short.split_whitespace().nth(1).unwrap().to_owned();
    etcdctl(&m, &["put", "short", "v", &format!("--lease={sid}")]).ok();
    eventually("the leased key to expire", || {
        etcdctl(&m, &["get", "short"]).ok().is_empty()
    });
    assert_eq!(etcdctl(&m, &["lease", "list"]).ok(), "found 0 leases\n");
}

#[test]
fn member_list_endpoint_status_and_health() {
    let m = Member::start_default("solo");
    let list = etcdctl(&m, &["member", "list"]).ok();
    let fields: Vec<&str> = list.trim_end().split(", ").collect();
    assert_eq!(fields.len(), 6, "{list}");
    assert_eq!(fields[0], m.member_id);
    assert_eq!(fields[1], "started");
    assert_eq!(fields[5], "false");
    if Backend::from_env() == Backend::Raft {
        assert_eq!(fields[2], "solo");
        assert_eq!(fields[3], m.peer_url);
        assert_eq!(fields[4], m.client_url);
    }

    let status = etcdctl(&m, &["endpoint", "status"]).ok();
    assert!(
        status.starts_with(&format!("{}, {}, 3.5.17, ", m.endpoint(), m.member_id)),
        "{status}"
    );
    assert!(
        status.contains(", true, false, "),
        "the only member leads and is no learner: {status}"
    );
    let v = json(&etcdctl(&m, &["endpoint", "status", "-w", "json"]).ok());
    assert_eq!(v[0]["Status"]["version"], "3.5.17");
    assert!(v[0]["Status"]["header"]["revision"].as_i64().unwrap() >= 1);

    let health = etcdctl(&m, &["endpoint", "health"]);
    let text = format!("{}{}", health.stdout, health.stderr);
    assert!(health.ok, "{text}");
    assert!(
        text.contains(&format!(
            "{} is healthy: successfully committed proposal",
            m.endpoint()
        )),
        "{text}"
    );
}

/// etcd's documentation writes endpoints as URLs. For its per-endpoint calls etcdctl then sends
/// the URL as the requests' `:authority`, which HTTP/2 servers other than etcd's refuse.
#[test]
fn per_endpoint_calls_work_with_url_endpoints() {
    let m = Member::start_default("urls");
    assert!(m.client_url.starts_with("http://"), "{}", m.client_url);
    let with_url = |args: &[&str]| run_cmd(etcdctl_cmd(&m.client_url, args));
    assert_eq!(with_url(&["put", "u/1", "one"]).ok(), "OK\n");

    let status = with_url(&["endpoint", "status"]).ok();
    assert!(
        status.starts_with(&format!("{}, {}, 3.5.17, ", m.client_url, m.member_id)),
        "{status}"
    );
    // `<endpoint>, <hash>`: the same hash whichever way the endpoint is written.
    let hash_of = |out: String, endpoint: &str| -> String {
        out.strip_prefix(&format!("{endpoint}, "))
            .unwrap_or_else(|| panic!("not a hash line for {endpoint}: {out}"))
            .trim()
            .to_owned()
    };
    let hash = hash_of(with_url(&["endpoint", "hashkv"]).ok(), &m.client_url);
    let plain = hash_of(etcdctl(&m, &["endpoint", "hashkv"]).ok(), &m.endpoint());
    assert!(hash.parse::<u32>().is_ok_and(|h| h != 0), "{hash}");
    assert_eq!(hash, plain);
    let defrag = with_url(&["defrag"]).ok();
    assert!(
        defrag.contains(&format!("Finished defragmenting etcd member[{}]", m.client_url)),
        "{defrag}"
    );
}

#[test]
fn snapshot_save_writes_an_etcd_shaped_file() {
    let m = Member::start_default("snap");
    etcdctl(&m, &["put", "s/1", "one"]).ok();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let out = etcdctl(&m, &["snapshot", "save", file.to_str().unwrap()]);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(out.ok, "{text}");
    assert!(
        text.contains(&format!("Snapshot saved at {}", file.display())),
        "{text}"
    );
    let data = std::fs::read(&file).unwrap();
    assert_eq!(data.len() % 512, 32, "etcd's size + sha256 shape");
}

#[test]
fn compaction_makes_old_revisions_unreadable() {
    let m = Member::start_default("compact");
    etcdctl(&m, &["put", "c", "1"]).ok();
    let old = revision(&m);
    etcdctl(&m, &["put", "c", "2"]).ok();
    let new = revision(&m);
    assert_eq!(
        etcdctl(&m, &["compaction", &new.to_string()]).ok(),
        format!("compacted revision {new}\n")
    );
    let err = etcdctl(&m, &["get", "c", &format!("--rev={old}")]).err();
    assert!(
        err.contains("etcdserver: mvcc: required revision has been compacted"),
        "{err}"
    );
    assert_eq!(etcdctl(&m, &["get", "c", &format!("--rev={new}")]).ok(), "c\n2\n");
    assert_eq!(etcdctl(&m, &["get", "c"]).ok(), "c\n2\n");
    let err = etcdctl(&m, &["compaction", &old.to_string()]).err();
    assert!(
        err.contains("etcdserver: mvcc: required revision has been compacted"),
        "{err}"
    );
    let err = etcdctl(&m, &["get", "c", "--rev=100000"]).err();
    assert!(
        err.contains("etcdserver: mvcc: required revision is a future revision"),
        "{err}"
    );

    // A watch from below the compaction point is canceled with the compact revision.
    let dir = tempfile::tempdir().unwrap();
    let w = etcdctl_background(
        &m,
        &["watch", "c", &format!("--rev={old}")],
        dir.path().join("w.stderr"),
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let all = format!("{}{}", w.stdout.seen.join("\n"), w.stderr());
        if all.contains("required revision has been compacted") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no compacted error: {all}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn malformed_requests_get_etcd_errors() {
    let m = Member::start_default("bad");
    // Over --max-request-bytes (1.5 MiB) but under the gRPC message limit: etcd's own error.
    let big = "x".repeat(1_600_000);
    let err = etcdctl_stdin(&m, &["put", "big"], &big).err();
    assert!(err.contains("etcdserver: request is too large"), "{err}");
    // Empty key.
    let err = etcdctl(&m, &["put", "", "v"]).err();
    assert!(
        err.contains("key is not provided") || err.contains("put command needs"),
        "{err}"
    );
    let err = etcdctl(&m, &["get", ""]).err();
    assert!(
        err.contains("etcdserver: key is not provided") || err.contains("get command needs"),
        "{err}"
    );
    // Unknown lease.
    let err = etcdctl(&m, &["put", "k", "v", "--lease=1234abcd"]).err();
    assert!(err.contains("etcdserver: requested lease not found"), "{err}");
    // The server is still fine.
    assert_eq!(etcdctl(&m, &["put", "k", "v"]).ok(), "OK\n");
}
