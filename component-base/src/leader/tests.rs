use super::*;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn held(holder: &str, transitions: i32) -> Record {
    Record {
        holder: holder.into(),
        duration_seconds: 15,
        acquire_time: Some(at(0)),
        renew_time: Some(at(5)),
        transitions,
    }
}

const LEASE: Duration = Duration::from_secs(15);

#[test]
fn a_free_lease_is_taken_with_one_more_transition() {
    let d = decide(&Record::default(), Duration::ZERO, "me", LEASE, at(10));
    assert_eq!(
        d,
        Decision::Write(Record {
            holder: "me".into(),
            duration_seconds: 15,
            acquire_time: Some(at(10)),
            renew_time: Some(at(10)),
            transitions: 1,
        })
    );
}

#[test]
fn another_holders_live_lease_is_respected() {
    let d = decide(&held("other", 3), Duration::from_secs(14), "me", LEASE, at(10));
    assert_eq!(d, Decision::HeldBy("other".into()));
}

#[test]
fn a_lease_unchanged_for_its_duration_is_taken_over() {
    let Decision::Write(r) = decide(&held("other", 3), LEASE, "me", LEASE, at(30)) else {
        panic!("expired lease not taken");
    };
    assert_eq!((r.holder.as_str(), r.transitions), ("me", 4));
    assert_eq!(r.acquire_time, Some(at(30)));
}

#[test]
fn renewing_keeps_acquire_time_and_transitions() {
    let Decision::Write(r) = decide(&held("me", 3), Duration::from_secs(1), "me", LEASE, at(9)) else {
        panic!("own lease not renewed");
    };
    assert_eq!(r.acquire_time, Some(at(0)));
    assert_eq!(r.renew_time, Some(at(9)));
    assert_eq!(r.transitions, 3);
}

#[test]
fn upstreams_consistency_rules_are_checked() {
    let mut c = LeaderElectionConfig::new("x");
    assert!(c.check().is_ok());
    c.renew_deadline = c.lease_duration;
    assert!(c.check().is_err());
    let mut c = LeaderElectionConfig::new("x");
    c.retry_period = Duration::from_secs(9);
    assert!(
        c.check().is_err(),
        "renew deadline must exceed 1.2 x retry period"
    );
}

#[test]
fn identities_are_unique_per_process_start() {
    assert_ne!(default_identity(), default_identity());
}

fn fast(name: &str, identity: &str) -> LeaderElectionConfig {
    LeaderElectionConfig {
        identity: identity.into(),
        lease_duration: Duration::from_millis(1500),
        renew_deadline: Duration::from_millis(1000),
        retry_period: Duration::from_millis(200),
        ..LeaderElectionConfig::new(name)
    }
}

async fn lease(client: &kube::Client, name: &str) -> LeaseSpec {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    leases.get(name).await.unwrap().spec.unwrap()
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_candidate_leads_and_the_other_takes_over_after_a_release() {
    let server = apiserver::testing::TestServer::start().await.unwrap();
    let client = server.client();
    let (a_token, b_token) = (CancellationToken::new(), CancellationToken::new());
    let a = LeaderElection::new(client.clone(), fast("demo", "a")).unwrap();
    let b = LeaderElection::new(client.clone(), fast("demo", "b")).unwrap();
    let (a_status, b_status) = (a.status(), b.status());
    let a_run = tokio::spawn(a.run(a_token.clone(), |t| async move { t.cancelled().await }));
    until("a leads", || a_status.is_leader()).await;
    let b_run = tokio::spawn(b.run(b_token.clone(), |t| async move { t.cancelled().await }));
    // b keeps trying while a renews: several of b's retry periods pass without a takeover.
    let first = lease(&client, "demo").await;
    assert_eq!(first.holder_identity.as_deref(), Some("a"));
    let before = first.renew_time.clone().unwrap().0;
    let mut renewed = false;
    for _ in 0..50 {
        let spec = lease(&client, "demo").await;
        if spec.renew_time.clone().unwrap().0 > before {
            renewed = true;
            assert_eq!(spec.holder_identity.as_deref(), Some("a"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(renewed, "the leader never renewed");
    assert!(!b_status.is_leader());
    // a shuts down and releases: b leads well before a's lease would have expired.
    a_token.cancel();
    a_run.await.unwrap().unwrap();
    let released = Instant::now();
    until("b leads", || b_status.is_leader()).await;
    assert!(
        released.elapsed() < Duration::from_millis(1500),
        "b waited for expiry instead of the release"
    );
    let spec = lease(&client, "demo").await;
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1), "a: 0 (created), b: 1");
    b_token.cancel();
    b_run.await.unwrap().unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_leader_that_cannot_renew_stops_its_work() {
    let server = apiserver::testing::TestServer::start().await.unwrap();
    let client = server.client();
    let shutdown = CancellationToken::new();
    let elector = LeaderElection::new(client.clone(), fast("lost", "a")).unwrap();
    let status = elector.status();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel();
    let run = tokio::spawn(elector.run(shutdown.clone(), |t| async move {
        t.cancelled().await;
        let _ = stopped_tx.send(());
    }));
    until("a leads", || status.is_leader()).await;
    // Someone else writes the lease as theirs and keeps it fresh: a's renewals are refused.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let thief = tokio::spawn(async move {
        loop {
            let mut l = leases.get("lost").await.unwrap();
            let spec = l.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = Some("thief".into());
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            let _ = leases.replace("lost", &PostParams::default(), &l).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("run ended")
        .unwrap();
    thief.abort();
    assert!(
        matches!(outcome, Err(LeaderElectionError::Lost { .. })),
        "{outcome:?}"
    );
    stopped_rx.await.expect("the work was cancelled");
    assert!(!status.is_leader());
    server.shutdown().await;
}
