//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics:
//!
//! - a candidate takes the lease when it is free (no holder), already its own, or its record has
//!   not changed for `lease_duration` *as observed by this candidate's clock* (the record's
//!   timestamps are never compared across machines);
//! - a new holder sets `acquireTime` and increments `leaseTransitions`; renewing sets `renewTime`;
//! - candidates retry every `retry_period` (stretched by up to 120 %, as client-go jitters it);
//!   the leader renews every
//!   `retry_period` and, if it cannot renew for `renew_deadline`, stops leading;
//! - writes are compare-and-swap on the Lease's `resourceVersion`, so two candidates never both
//!   win;
//! - on a graceful shutdown the leader releases the lease (empty holder, 1 s duration) so another
//!   candidate takes over at once rather than after `lease_duration`.
//!
//! [`LeaderElection::run`] runs the component's work only while it leads; losing the lease
//! cancels the work and returns [`LeaderElectionError::Lost`], and the component exits, as
//! upstream's components do.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// How the election is run (upstream's `--leader-elect-*` flags).
#[derive(Debug, Clone)]
pub struct LeaderElectionConfig {
    /// Namespace of the Lease (`kube-system`).
    pub lease_namespace: String,
    /// Name of the Lease (`kube-scheduler`, `kube-controller-manager`).
    pub lease_name: String,
    /// This candidate's identity, written as `holderIdentity` (default: `<hostname>_<uuid>`).
    pub identity: String,
    /// How long a record must stay unchanged before another candidate may take the lease (15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading (10 s).
    pub renew_deadline: Duration,
    /// The interval between attempts to acquire or renew (2 s).
    pub retry_period: Duration,
    /// Release the lease when the work ends because of shutdown.
    pub release_on_cancel: bool,
}

impl LeaderElectionConfig {
    /// Upstream's defaults for a lease named `name` in `kube-system`, with a fresh identity.
    pub fn new(name: &str) -> Self {
        LeaderElectionConfig {
            lease_namespace: "kube-system".into(),
            lease_name: name.into(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            release_on_cancel: true,
        }
    }

    fn check(&self) -> Result<(), LeaderElectionError> {
        let bad = |m: &str| Err(LeaderElectionError::Config(m.to_string()));
        if self.lease_duration <= self.renew_deadline {
            return bad("lease duration must be greater than the renew deadline");
        }
        if self.renew_deadline.as_secs_f64() <= 1.2 * self.retry_period.as_secs_f64() {
            return bad("renew deadline must be greater than 1.2 times the retry period");
        }
        if self.retry_period.is_zero() {
            return bad("retry period must be greater than zero");
        }
        if self.identity.is_empty() || self.lease_name.is_empty() {
            return bad("the identity and the lease name must not be empty");
        }
        Ok(())
    }
}

/// `<hostname>_<uuid>`, as upstream's components name their candidates.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// Why the election ended other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum LeaderElectionError {
    /// The configuration is inconsistent (upstream's checks).
    #[error("leader election: {0}")]
    Config(String),
    /// The lease could not be renewed within the renew deadline.
    #[error("leader election lost: lease {namespace}/{name} was not renewed within {deadline:?}")]
    Lost {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// The renew deadline.
        deadline: Duration,
    },
}

/// The fields of a Lease that the election reads and writes.
#[derive(Debug, Clone, PartialEq, Default)]
struct Record {
    holder: String,
    duration_seconds: i32,
    acquire_time: Option<Timestamp>,
    renew_time: Option<Timestamp>,
    transitions: i32,
}

impl Record {
    fn from_spec(spec: &LeaseSpec) -> Record {
        Record {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    fn write_into(&self, spec: &mut LeaseSpec) {
        spec.holder_identity = (!self.holder.is_empty()).then(|| self.holder.clone());
        spec.lease_duration_seconds = Some(self.duration_seconds);
        spec.acquire_time = self.acquire_time.map(MicroTime);
        spec.renew_time = self.renew_time.map(MicroTime);
        spec.lease_transitions = Some(self.transitions);
    }
}

/// What a candidate does with the record it read (the pure core of an attempt).
#[derive(Debug, PartialEq)]
enum Decision {
    /// Write this record (take or renew the lease).
    Write(Record),
    /// Someone else holds a lease that has not expired by our clock.
    HeldBy(String),
}

/// Decides an attempt: `observed_for` is how long the current record has been unchanged as seen
/// by this candidate.
fn decide(
    current: &Record,
    observed_for: Duration,
    me: &str,
    lease_duration: Duration,
    now: Timestamp,
) -> Decision {
    let mine = current.holder == me;
    if !current.holder.is_empty() && !mine && observed_for < lease_duration {
        return Decision::HeldBy(current.holder.clone());
    }
    let (acquire_time, transitions) = if mine {
        (current.acquire_time.or(Some(now)), current.transitions)
    } else {
        (Some(now), current.transitions + 1)
    };
    Decision::Write(Record {
        holder: me.to_string(),
        duration_seconds: lease_duration.as_secs().max(1) as i32,
        acquire_time,
        renew_time: Some(now),
        transitions,
    })
}

/// Whether this process leads, for health checks and metrics.
#[derive(Debug, Default)]
pub struct LeaderStatus {
    leading: AtomicBool,
    last_renewed: Mutex<Option<Instant>>,
}

impl LeaderStatus {
    /// True while this process holds the lease.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    /// Healthy unless this process leads and has not renewed for longer than `tolerance` past the
    /// lease duration (upstream's `leaderElection` healthz check).
    pub fn healthy(&self, lease_duration: Duration, tolerance: Duration) -> Result<(), String> {
        if !self.is_leader() {
            return Ok(());
        }
        match *self.last_renewed.lock() {
            Some(at) if at.elapsed() > lease_duration + tolerance => Err(format!(
                "failed election to renew leadership on lease for {:?}",
                at.elapsed()
            )),
            _ => Ok(()),
        }
    }
}

/// One candidate in an election.
pub struct LeaderElection {
    leases: Api<Lease>,
    config: LeaderElectionConfig,
    observed: Option<(Record, String, Instant)>,
    status: Arc<LeaderStatus>,
}

impl LeaderElection {
    /// A candidate for `config`'s lease, talking through `client`.
    pub fn new(client: kube::Client, config: LeaderElectionConfig) -> Result<Self, LeaderElectionError> {
        config.check()?;
        Ok(LeaderElection {
            leases: Api::namespaced(client, &config.lease_namespace),
            config,
            observed: None,
            status: Arc::default(),
        })
    }

    /// The shared view of whether this candidate leads.
    pub fn status(&self) -> Arc<LeaderStatus> {
        self.status.clone()
    }

    /// Waits until this candidate leads, then runs `work` with a token that is cancelled when
    /// leadership is lost or `shutdown` is cancelled; returns once the work has finished.
    /// `Ok(())` after shutdown (the lease released if so configured), `Err(Lost)` when the
    /// lease could not be renewed.
    pub async fn run<F, Fut>(
        mut self,
        shutdown: CancellationToken,
        work: F,
    ) -> Result<(), LeaderElectionError>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cfg = self.config.clone();
        tracing::info!(lease = %format!("{}/{}", cfg.lease_namespace, cfg.lease_name), identity = %cfg.identity, "attempting to acquire the leader lease");
        loop {
            if self.try_acquire_or_renew().await {
                break;
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(jittered(cfg.retry_period)) => {}
            }
        }
        tracing::info!(lease = %format!("{}/{}", cfg.lease_namespace, cfg.lease_name), identity = %cfg.identity, "successfully acquired the lease");
        self.mark_leading(true);
        let work_token = shutdown.child_token();
        let mut task = tokio::spawn(work(work_token.clone()));
        let mut work_done = false;
        let outcome = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                res = &mut task, if !work_done => {
                    work_done = true;
                    if let Err(e) = res {
                        tracing::error!(error = %e, "the leader's work panicked");
                    }
                    if !shutdown.is_cancelled() {
                        // The work ended by itself: keep the lease until shutdown, as upstream's
                        // elector keeps renewing until its context ends.
                        continue;
                    }
                    break Ok(());
                }
                () = tokio::time::sleep(cfg.retry_period) => {
                    if !self.renew_within_deadline(&shutdown).await {
                        if shutdown.is_cancelled() {
                            break Ok(());
                        }
                        tracing::error!(lease = %format!("{}/{}", cfg.lease_namespace, cfg.lease_name), "leaderelection lost");
                        break Err(LeaderElectionError::Lost {
                            namespace: cfg.lease_namespace.clone(),
                            name: cfg.lease_name.clone(),
                            deadline: cfg.renew_deadline,
                        });
                    }
                }
            }
        };
        work_token.cancel();
        if !work_done {
            let _ = task.await;
        }
        self.mark_leading(false);
        if outcome.is_ok() && cfg.release_on_cancel {
            self.release().await;
        }
        outcome
    }

    fn mark_leading(&self, leading: bool) {
        self.status.leading.store(leading, Ordering::Release);
        *self.status.last_renewed.lock() = leading.then(Instant::now);
    }

    /// Retries renewing every retry period until it succeeds or the renew deadline passes.
    async fn renew_within_deadline(&mut self, shutdown: &CancellationToken) -> bool {
        let deadline = tokio::time::Instant::now() + self.config.renew_deadline;
        loop {
            let attempt = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await;
            match attempt {
                Ok(true) => {
                    *self.status.last_renewed.lock() = Some(Instant::now());
                    return true;
                }
                Ok(false) => {}
                Err(_) => return false,
            }
            let next = tokio::time::Instant::now() + self.config.retry_period;
            if next >= deadline {
                return false;
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// One attempt; true when this candidate holds the lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let now = Timestamp::now();
        let cfg = &self.config;
        let existing = match self.leases.get_opt(&cfg.lease_name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, lease = %cfg.lease_name, "error retrieving the lease");
                return false;
            }
        };
        let Some(mut lease) = existing else {
            let record = match decide(
                &Record::default(),
                cfg.lease_duration,
                &cfg.identity,
                cfg.lease_duration,
                now,
            ) {
                Decision::Write(mut r) => {
                    r.transitions = 0;
                    r
                }
                Decision::HeldBy(_) => return false,
            };
            let mut spec = LeaseSpec::default();
            record.write_into(&mut spec);
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.lease_name.clone()),
                    namespace: Some(cfg.lease_namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            return match self.leases.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(record, created.metadata.resource_version.unwrap_or_default());
                    true
                }
                Err(e) => {
                    tracing::debug!(error = %e, "creating the lease failed");
                    false
                }
            };
        };
        let current = Record::from_spec(lease.spec.as_ref().unwrap_or(&LeaseSpec::default()));
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let observed_for = match &self.observed {
            Some((record, _, at)) if *record == current => at.elapsed(),
            _ => {
                self.observed = Some((current.clone(), rv.clone(), Instant::now()));
                Duration::ZERO
            }
        };
        let record = match decide(&current, observed_for, &cfg.identity, cfg.lease_duration, now) {
            Decision::Write(r) => r,
            Decision::HeldBy(holder) => {
                tracing::debug!(%holder, "the lease is held by another candidate and has not yet expired");
                return false;
            }
        };
        let mut spec = lease.spec.take().unwrap_or_default();
        record.write_into(&mut spec);
        lease.spec = Some(spec);
        match self
            .leases
            .replace(&cfg.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(record, updated.metadata.resource_version.unwrap_or_default());
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "updating the lease failed");
                false
            }
        }
    }

    fn observe(&mut self, record: Record, rv: String) {
        self.observed = Some((record, rv, Instant::now()));
    }

    /// Gives the lease up: no holder, a one-second duration.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.leases.get_opt(&self.config.lease_name).await else {
            return;
        };
        let current = Record::from_spec(lease.spec.as_ref().unwrap_or(&LeaseSpec::default()));
        if current.holder != self.config.identity {
            return;
        }
        let now = Timestamp::now();
        let released = Record {
            holder: String::new(),
            duration_seconds: 1,
            acquire_time: Some(now),
            renew_time: Some(now),
            transitions: current.transitions,
        };
        let mut spec = lease.spec.take().unwrap_or_default();
        released.write_into(&mut spec);
        lease.spec = Some(spec);
        match self
            .leases
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.config.lease_name, "released the leader lease"),
            Err(e) => tracing::warn!(error = %e, "releasing the leader lease failed"),
        }
    }
}

/// `period` stretched by up to 120 %, as client-go's `wait.JitterUntil(f, period, 1.2, ...)`.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + 1.2 * rand::random::<f64>())
}

#[cfg(test)]
mod tests;
