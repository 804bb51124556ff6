//! `keelson kv` (the etcdctl equivalent) against a real `keelson store`.

mod common;

use common::*;

#[test]
fn put_get_del() {
    let m = Member::start_default("kvcli");
    assert_eq!(kv(&m, &["put", "a/1", "one"]).ok(), "OK\n");
    assert_eq!(kv(&m, &["put", "a/2", "two"]).ok(), "OK\n");
    let rev = revision(&m);
    assert_eq!(kv(&m, &["put", "a/1", "uno", "--prev-kv"]).ok(), "OK\na/1\none\n");
    assert_eq!(kv(&m, &["get", "a/1"]).ok(), "a/1\nuno\n");
    assert_eq!(
        kv(&m, &["get", "a/1", "--rev", &rev.to_string()]).ok(),
        "a/1\none\n"
    );
    assert_eq!(kv(&m, &["get", "a/", "--prefix"]).ok(), "a/1\nuno\na/2\ntwo\n");
    assert_eq!(
        kv(&m, &["get", "a/", "--prefix", "--limit", "1"]).ok(),
        "a/1\nuno\n"
    );
    assert_eq!(
        kv(&m, &["get", "a/", "--prefix", "--keys-only"]).ok(),
        "a/1\na/2\n"
    );
    assert_eq!(
        kv(&m, &["get", "a/", "--prefix", "--print-value-only"]).ok(),
        "uno\ntwo\n"
    );
    assert_eq!(kv(&m, &["get", "a/", "--prefix", "--count-only"]).ok(), "2\n");
    assert_eq!(kv(&m, &["del", "a/", "--prefix"]).ok(), "2\n");
    assert_eq!(kv(&m, &["get", "a/", "--prefix"]).ok(), "");
    let err = kv(&m, &["put", "k", "v", "--lease", "abc"]).err();
    assert!(err.contains("etcdserver: requested lease not found"), "{err}");
}

#[test]
fn watch_prints_events() {
    let m = Member::start_default("kvwatch");
    kv(&m, &["put", "w/x", "1"]).ok();
    let from = revision(&m);
    kv(&m, &["put", "w/x", "2"]).ok();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(keelson_bin());
    cmd.args([
        "kv",
        "--endpoints",
        &m.client_url,
        "watch",
        "w/",
        "--prefix",
        "--rev",
        &from.to_string(),
    ]);
    let mut w = Proc::spawn(cmd, dir.path().join("watch.stderr"));
    assert_eq!(w.stdout.wait_lines(6), vec!["PUT", "w/x", "1", "PUT", "w/x", "2"]);
    kv(&m, &["del", "w/x"]).ok();
    w.stdout.wait_for("the delete", |l| l == "DELETE");
    assert_eq!(w.stdout.wait_lines(9)[6..], ["DELETE", "w/x", ""]);
}

#[test]
fn leases() {
    let m = Member::start_default("kvlease");
    let grant = kv(&m, &["lease", "grant", "90"]).ok();
    assert!(grant.ends_with(" granted with TTL(90s)\n"), "{grant}");
    let id = grant.split_whitespace().nth(1).unwrap().to_owned();
    kv(&m, &["put", "held", "v", "--lease", &id]).ok();
    assert_eq!(kv(&m, &["lease", "list"]).ok(), format!("found 1 leases\n{id}\n"));
    assert_eq!(
        kv(&m, &["lease", "keep-alive", &id, "--once"]).ok(),
        format!("lease {id} keepalived with TTL(90)\n")
    );
    let ttl = kv(&m, &["lease", "timetolive", &id, "--keys"]).ok();
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(90s), remaining(")),
        "{ttl}"
    );
    assert!(ttl.ends_with(", attached keys([held])\n"), "{ttl}");
    assert_eq!(
        kv(&m, &["lease", "revoke", &id]).ok(),
        format!("lease {id} revoked\n")
    );
    assert_eq!(kv(&m, &["get", "held"]).ok(), "");
    assert_eq!(
        kv(&m, &["lease", "timetolive", &id]).ok(),
        format!("lease {id} already expired\n")
    );
}

#[test]
fn member_status_compact_and_snapshot() {
    let m = Member::start_default("kvadmin");
    let list = kv(&m, &["member", "list"]).ok();
    assert!(list.starts_with(&format!("{}, started, ", m.member_id)), "{list}");
    if Backend::from_env() == Backend::Raft {
        assert!(
            list.trim_end().ends_with(&format!("{}, false", m.client_url)),
            "{list}"
        );
    }
    let status = kv(&m, &["status"]).ok();
    assert!(
        status.starts_with(&format!("{}, {}, 3.5.17, ", m.client_url, m.member_id)),
        "{status}"
    );

    kv(&m, &["put", "c", "1"]).ok();
    let old = revision(&m);
    kv(&m, &["put", "c", "2"]).ok();
    let now = revision(&m);
    assert_eq!(
        kv(&m, &["compact", &now.to_string()]).ok(),
        format!("compacted revision {now}\n")
    );
    let err = kv(&m, &["get", "c", "--rev", &old.to_string()]).err();
    assert!(
        err.contains("etcdserver: mvcc: required revision has been compacted"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.db");
    let saved = kv(&m, &["snapshot", "save", file.to_str().unwrap()]).ok();
    assert!(
        saved.starts_with(&format!("Snapshot saved at {}", file.display())),
        "{saved}"
    );
    assert_eq!(std::fs::metadata(&file).unwrap().len() % 512, 32);

    if Backend::from_env() == Backend::Raft {
        // Restore into a new data directory and start a member on it: the data is back.
        let data_dir = dir.path().join("restored");
        let mut cmd = std::process::Command::new(keelson_bin());
        cmd.args([
            "kv",
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]);
        let out = run_cmd(cmd).ok();
        assert!(
            out.starts_with(&format!("restored snapshot: revision {now}, ")),
            "{out}"
        );
        let mut spec = MemberSpec::new("restored", Backend::Raft);
        spec.data_dir = Some(data_dir);
        let r = spec.start();
        assert_eq!(kv(&r, &["get", "c"]).ok(), "c\n2\n");
        assert_eq!(revision(&r), now);
    }
}

#[test]
fn sigterm_stops_the_store_cleanly() {
    let mut m = Member::start_default("stop");
    kv(&m, &["put", "k", "v"]).ok();
    let status = m.proc.terminate();
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        m.proc.stderr()
    );
}
