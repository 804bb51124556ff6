//! One simulated pod: its containers' lives as a small discrete-event simulation driven by the
//! clock, and the container statuses they show. Pure: the caller says what time it is
//! ([`Clock`]) and when to come back ([`SimPod::advance`] returns the next deadline).
//!
//! The rules, as a kubelet with a container runtime would play them:
//! - init containers run one after the other, each after the previous one exited 0; a sidecar
//!   (init container with `restartPolicy: Always`) starts in turn, lets the next start once it has
//!   *started* (after its startup probe's `initialDelaySeconds`), and keeps running; the regular
//!   containers start together once all init containers are done;
//! - a container ends as its command says ([`super::command`]); whether it restarts follows the
//!   pod's `restartPolicy` (init containers restart only after a failure, sidecars always), with
//!   upstream's crash-loop back-off between restarts ([`crate::pod::backoff`]);
//! - a running container is *started* after its startup probe's initial delay and *ready* after
//!   its readiness probe's initial delay (both counted from its start; no probe: at once);
//! - when the pod is stopped for good (deleted, or past `activeDeadlineSeconds`), running
//!   containers stop cleanly (exit 0, `Completed`) and containers that never ran are reported as
//!   upstream reports them (`ContainerStatusUnknown`, 137).

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

use super::command::{self, Behavior};
use crate::pod::backoff::RestartBackoff;
use crate::pod::status::is_sidecar;

/// "Now", both as a monotonic instant (for deadlines) and as wall-clock time (for the status).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The monotonic time.
    pub now: Instant,
    /// The same moment on the wall clock.
    pub wall: Timestamp,
}

impl Clock {
    /// The current time.
    pub fn current() -> Self {
        Clock {
            now: Instant::now(),
            wall: Timestamp::now(),
        }
    }

    /// The wall-clock time of `at`, in whole seconds as the API shows it.
    pub fn time_at(&self, at: Instant) -> Time {
        let behind = self.now.saturating_duration_since(at);
        let wall = self
            .wall
            .checked_sub(SignedDuration::try_from(behind).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(self.wall);
        Time(Timestamp::from_second(wall.as_second()).unwrap_or(wall))
    }

    /// The monotonic instant of a wall-clock time in the past (for containers adopted after a
    /// restart of the simulator).
    pub fn instant_of(&self, t: &Time) -> Instant {
        let behind = self.wall.duration_since(t.0);
        match Duration::try_from(behind) {
            Ok(d) => self.now.checked_sub(d).unwrap_or(self.now),
            Err(_) => self.now,
        }
    }
}

/// What kind of container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular init container: runs to completion before the next.
    Init,
    /// An init container with `restartPolicy: Always`.
    Sidecar,
    /// A regular container.
    Regular,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// The exit code.
    pub code: i32,
    /// `Completed`, `Error` or `ContainerStatusUnknown`.
    pub reason: &'static str,
    /// A message (for `ContainerStatusUnknown`).
    pub message: Option<&'static str>,
    /// When it started; `None` if it never ran.
    pub started_at: Option<Time>,
    /// When it ended.
    pub finished_at: Option<Time>,
    /// Its container id; `None` if it never ran.
    pub id: Option<String>,
    /// When it ended, monotonic.
    pub at: Instant,
}

/// Where a container is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not started yet.
    NotStarted,
    /// Running since `since`.
    Running {
        /// When it started.
        since: Instant,
        /// The same, on the wall clock.
        started_at: Time,
        /// Its container id.
        id: String,
    },
    /// Waiting out the restart back-off after an exit (`CrashLoopBackOff`).
    BackOff {
        /// When it restarts.
        until: Instant,
        /// The back-off in force.
        backoff: Duration,
    },
    /// Ended for good.
    Exited(Ended),
}

/// One simulated container.
#[derive(Debug, Clone)]
pub struct SimContainer {
    /// Its name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Init, sidecar or regular.
    pub kind: Kind,
    behavior: Behavior,
    startup_delay: Duration,
    ready_delay: Duration,
    /// How many times it restarted.
    pub restart_count: i32,
    /// Its state.
    pub state: State,
    /// How its previous run ended.
    pub last: Option<Ended>,
    backoff: RestartBackoff,
}

fn probe_delay(probe: Option<&k8s_openapi::api::core::v1::Probe>) -> Duration {
    probe
        .and_then(|p| p.initial_delay_seconds)
        .map_or(Duration::ZERO, |s| {
            Duration::from_secs(s.max(0).unsigned_abs().into())
        })
}

impl SimContainer {
    fn new(c: &Container, kind: Kind) -> Self {
        let empty = Vec::new();
        SimContainer {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            kind,
            behavior: command::behavior(
                c.command.as_ref().unwrap_or(&empty),
                c.args.as_ref().unwrap_or(&empty),
            ),
            startup_delay: probe_delay(c.startup_probe.as_ref()),
            ready_delay: probe_delay(c.readiness_probe.as_ref()),
            restart_count: 0,
            state: State::NotStarted,
            last: None,
            backoff: RestartBackoff::default(),
        }
    }

    /// When a running container counts as started.
    fn started_from(&self, since: Instant) -> Instant {
        since + self.startup_delay
    }

    /// When a running container becomes ready. Init containers have no readiness.
    fn ready_from(&self, since: Instant) -> Instant {
        since + self.startup_delay.max(self.ready_delay)
    }

    fn is_started(&self, now: Instant) -> bool {
        matches!(self.state, State::Running { since, .. } if self.started_from(since) <= now)
    }

    fn is_ready(&self, now: Instant) -> bool {
        match &self.state {
            State::Running { since, .. } => self.kind != Kind::Init && self.ready_from(*since) <= now,
            State::Exited(e) => self.kind == Kind::Init && e.code == 0,
            _ => false,
        }
    }

    fn exit_time(&self) -> Option<Instant> {
        match (&self.state, self.behavior) {
            (State::Running { since, .. }, Behavior::Exits { after, .. }) => Some(*since + after),
            _ => None,
        }
    }

    fn start(&mut self, at: Instant, clock: &Clock, id: String) {
        self.state = State::Running {
            since: at,
            started_at: clock.time_at(at),
            id,
        };
    }
}

/// The pod's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// `Always` (the default).
    Always,
    /// `OnFailure`.
    OnFailure,
    /// `Never`.
    Never,
}

/// Why the pod was stopped for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// It is being deleted.
    Deleted,
    /// It ran past `activeDeadlineSeconds`.
    DeadlineExceeded,
}

/// A simulated pod.
#[derive(Debug, Clone)]
pub struct SimPod {
    /// Init containers (in order), then regular containers.
    pub containers: Vec<SimContainer>,
    policy: RestartPolicy,
    /// When the pod started on the node (the sandbox came up).
    pub started: Instant,
    /// `status.startTime`.
    pub start_time: Time,
    stop: Option<(Instant, StopCause)>,
    /// Set once the pod is stopped for good, with the cause.
    pub stopped: Option<StopCause>,
    deadline: Option<Instant>,
    ids: u64,
    uid: String,
}

impl SimPod {
    /// The simulation of `pod`, started at `clock`. Containers already shown in the pod's
    /// status (a pod adopted after the simulator restarted) keep their state, start time and
    /// restart count.
    pub fn new(pod: &Pod, clock: &Clock) -> Self {
        let spec = pod.spec.clone().unwrap_or_default();
        let status = pod.status.as_ref();
        // A pod adopted after a restart keeps its start time; a new one starts now (the
        // status shows whole seconds, the simulation keeps the exact instant).
        let (start_time, started) = match status.and_then(|s| s.start_time.clone()) {
            Some(t) => {
                let at = clock.instant_of(&t);
                (t, at)
            }
            None => (clock.time_at(clock.now), clock.now),
        };
        let mut containers: Vec<SimContainer> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| SimContainer::new(c, if is_sidecar(c) { Kind::Sidecar } else { Kind::Init }))
            .chain(
                spec.containers
                    .iter()
                    .map(|c| SimContainer::new(c, Kind::Regular)),
            )
            .collect();
        if let Some(status) = status {
            let shown = status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten());
            for s in shown {
                if let Some(c) = containers.iter_mut().find(|c| c.name == s.name) {
                    adopt(c, s, clock);
                }
            }
        }
        let policy = match spec.restart_policy.as_deref() {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        };
        for c in &mut containers {
            // An adopted container shown as ended that its policy restarts: restart it.
            if let State::Exited(e) = &c.state
                && e.id.is_some()
                && wants_restart(policy, c.kind, e.code)
            {
                c.last = Some(e.clone());
                c.state = State::BackOff {
                    until: clock.now,
                    backoff: Duration::ZERO,
                };
            }
        }
        let deadline = spec
            .active_deadline_seconds
            .map(|s| started + Duration::from_secs(s.max(0).unsigned_abs()));
        SimPod {
            containers,
            policy,
            started,
            start_time,
            stop: None,
            stopped: None,
            deadline,
            ids: 0,
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }

    /// Asks the pod to stop at `at` (deletion: after the shorter of its grace period and the
    /// simulated stop time). An earlier request stands.
    pub fn stop_at(&mut self, at: Instant, cause: StopCause) {
        if self.stopped.is_some() {
            return;
        }
        match self.stop {
            Some((t, _)) if t <= at => {}
            _ => self.stop = Some((at, cause)),
        }
    }

    /// Whether the pod's containers are done for good: stopped, or ended under
    /// `restartPolicy: Never`/`OnFailure` (all regular containers, or a failed init container
    /// with `Never`).
    pub fn is_done(&self) -> bool {
        self.stopped.is_some()
            || self.regular_done()
            || (self.policy == RestartPolicy::Never && self.init_failed())
    }

    /// A new container id: 64 hex digits, unique per pod and start.
    fn next_id(&mut self) -> String {
        self.ids += 1;
        container_id(&self.uid, self.ids)
    }

    fn wants_restart(&self, kind: Kind, code: i32) -> bool {
        wants_restart(self.policy, kind, code)
    }

    fn exit(&mut self, i: usize, at: Instant, code: i32, clock: &Clock) {
        let State::Running { started_at, id, .. } = self.containers[i].state.clone() else {
            return;
        };
        let ended = Ended {
            code,
            reason: if code == 0 { "Completed" } else { "Error" },
            message: None,
            started_at: Some(started_at),
            finished_at: Some(clock.time_at(at)),
            id: Some(id),
            at,
        };
        let kind = self.containers[i].kind;
        if !self.wants_restart(kind, code) {
            self.containers[i].state = State::Exited(ended);
            return;
        }
        let c = &mut self.containers[i];
        c.last = Some(ended);
        c.state = match c.backoff.restart_at(at, at) {
            Some((until, backoff)) => State::BackOff { until, backoff },
            None => State::BackOff {
                until: at,
                backoff: Duration::ZERO,
            },
        };
    }

    fn restart(&mut self, i: usize, at: Instant, clock: &Clock) {
        let id = self.next_id();
        let c = &mut self.containers[i];
        let exited = c.last.as_ref().map_or(at, |e| e.at);
        c.backoff.restarted(exited, at);
        c.restart_count += 1;
        c.start(at, clock, id);
    }

    /// Stops everything at `at`.
    fn stop_all(&mut self, at: Instant, cause: StopCause, clock: &Clock) {
        for c in &mut self.containers {
            let ended = match &c.state {
                State::Exited(_) => continue,
                // Deleted: it stops cleanly within the grace period. Past the deadline: killed.
                State::Running { started_at, id, .. } => Ended {
                    code: if cause == StopCause::Deleted { 0 } else { 137 },
                    reason: if cause == StopCause::Deleted {
                        "Completed"
                    } else {
                        "Error"
                    },
                    message: None,
                    started_at: Some(started_at.clone()),
                    finished_at: Some(clock.time_at(at)),
                    id: Some(id.clone()),
                    at,
                },
                State::NotStarted | State::BackOff { .. } => Ended {
                    code: 137,
                    reason: "ContainerStatusUnknown",
                    message: Some("The container could not be located when the pod was terminated"),
                    started_at: None,
                    finished_at: None,
                    id: None,
                    at,
                },
            };
            c.state = State::Exited(ended);
        }
        self.stop = None;
        self.stopped = Some(cause);
    }

    /// Whether all regular containers have ended for good (the pod is done, `Never` /
    /// `OnFailure`).
    fn regular_done(&self) -> bool {
        let mut regular = self
            .containers
            .iter()
            .filter(|c| c.kind == Kind::Regular)
            .peekable();
        regular.peek().is_some() && regular.all(|c| matches!(c.state, State::Exited(_)))
    }

    /// Whether a failed init container ended the pod (`restartPolicy: Never`).
    fn init_failed(&self) -> bool {
        self.containers
            .iter()
            .any(|c| c.kind == Kind::Init && matches!(&c.state, State::Exited(e) if e.code != 0))
    }

    /// Plays every transition due by `clock.now`, in time order. Returns the next time something
    /// will change (an exit, a restart, readiness, the stop), if any.
    pub fn advance(&mut self, clock: &Clock) -> Option<Instant> {
        let now = clock.now;
        // Each pass makes at least one transition or ends the loop; chains (an init container
        // exiting, the next starting at that moment) take several passes.
        for _ in 0..10_000 {
            if self.stopped.is_some() {
                return None;
            }
            if let Some(deadline) = self.deadline
                && deadline <= now
            {
                self.stop_at(deadline, StopCause::DeadlineExceeded);
            }
            if let Some((at, cause)) = self.stop
                && at <= now
            {
                self.stop_all(at, cause, clock);
                return None;
            }
            if !self.step(clock) {
                break;
            }
        }
        if self.is_done() {
            // The pod is done: its sidecars are stopped with it, and its deadline no longer
            // applies.
            let at = self
                .containers
                .iter()
                .filter_map(|c| match &c.state {
                    State::Exited(e) => Some(e.at),
                    _ => None,
                })
                .max()
                .unwrap_or(now);
            for c in &mut self.containers {
                if c.kind != Kind::Sidecar {
                    continue;
                }
                match &c.state {
                    State::Running { started_at, id, .. } => {
                        c.state = State::Exited(Ended {
                            code: 0,
                            reason: "Completed",
                            message: None,
                            started_at: Some(started_at.clone()),
                            finished_at: Some(clock.time_at(at)),
                            id: Some(id.clone()),
                            at,
                        });
                    }
                    State::BackOff { .. } => {
                        if let Some(last) = c.last.take() {
                            c.state = State::Exited(last);
                        }
                    }
                    _ => {}
                }
            }
            self.deadline = None;
        }
        self.next_deadline(now)
    }

    /// The earliest due transition, played; false when none is due.
    fn step(&mut self, clock: &Clock) -> bool {
        let now = clock.now;
        // The earliest exit or restart that is due.
        let mut due: Option<(Instant, usize, bool)> = None;
        for (i, c) in self.containers.iter().enumerate() {
            let candidate = match &c.state {
                State::Running { .. } => c.exit_time().map(|t| (t, i, true)),
                State::BackOff { until, .. } => Some((*until, i, false)),
                _ => None,
            };
            if let Some(cand) = candidate
                && cand.0 <= now
                && due.is_none_or(|d| cand.0 < d.0)
            {
                due = Some(cand);
            }
        }
        // The next container to start, and from when it may.
        let start = self.next_start();
        match (due, start) {
            (Some((t, i, exits)), start) if start.as_ref().is_none_or(|(s, _)| t <= *s) => {
                if exits {
                    let Behavior::Exits { code, .. } = self.containers[i].behavior else {
                        return false;
                    };
                    self.exit(i, t, code, clock);
                } else {
                    self.restart(i, t, clock);
                }
                true
            }
            (_, Some((t, indices))) if t <= now => {
                for i in indices {
                    let id = self.next_id();
                    self.containers[i].start(t, clock, id);
                }
                true
            }
            _ => false,
        }
    }

    /// The containers to start next and the time they may start: the next init container once
    /// the ones before it are done, else all regular containers not started yet.
    fn next_start(&self) -> Option<(Instant, Vec<usize>)> {
        let mut ready_at = self.started;
        for (i, c) in self.containers.iter().enumerate() {
            match c.kind {
                Kind::Regular => break,
                Kind::Init => match &c.state {
                    State::Exited(e) if e.code == 0 => ready_at = ready_at.max(e.at),
                    State::NotStarted => return Some((ready_at, vec![i])),
                    _ => return None,
                },
                Kind::Sidecar => match &c.state {
                    State::NotStarted => return Some((ready_at, vec![i])),
                    State::Running { since, .. } => ready_at = ready_at.max(c.started_from(*since)),
                    // A sidecar restarting after the regular containers ran does not hold them.
                    _ if self.any_regular_started() => {}
                    _ => return None,
                },
            }
        }
        let waiting: Vec<usize> = self
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == Kind::Regular && c.state == State::NotStarted)
            .map(|(i, _)| i)
            .collect();
        (!waiting.is_empty()).then_some((ready_at, waiting))
    }

    fn any_regular_started(&self) -> bool {
        self.containers
            .iter()
            .any(|c| c.kind == Kind::Regular && (c.state != State::NotStarted || c.last.is_some()))
    }

    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| {
            if t > now && next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        for c in &self.containers {
            match &c.state {
                State::Running { since, .. } => {
                    if let Some(t) = c.exit_time() {
                        consider(t);
                    }
                    consider(c.started_from(*since));
                    consider(c.ready_from(*since));
                }
                State::BackOff { until, .. } => consider(*until),
                _ => {}
            }
        }
        if let Some((t, _)) = self.next_start() {
            consider(t);
        }
        if let Some((t, _)) = self.stop {
            consider(t);
        }
        if let Some(t) = self.deadline {
            consider(t);
        }
        next
    }

    /// The init container statuses and the regular container statuses at `clock`.
    pub fn statuses(&self, pod: &Pod, clock: &Clock) -> (Vec<ContainerStatus>, Vec<ContainerStatus>) {
        let spec = pod.spec.as_ref();
        let has_init = spec.is_some_and(|s| s.init_containers.as_ref().is_some_and(|i| !i.is_empty()));
        // Containers not started yet wait as upstream shows them.
        let waiting_reason = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let mut init = Vec::new();
        let mut regular = Vec::new();
        for c in &self.containers {
            let status = self.status_of(c, waiting_reason, pod, clock);
            if c.kind == Kind::Regular {
                regular.push(status);
            } else {
                init.push(status);
            }
        }
        (init, regular)
    }

    fn status_of(&self, c: &SimContainer, waiting_reason: &str, pod: &Pod, clock: &Clock) -> ContainerStatus {
        let now = clock.now;
        let (state, container_id) = match &c.state {
            State::NotStarted => (
                ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(waiting_reason.into()),
                        message: None,
                    }),
                    ..ContainerState::default()
                },
                None,
            ),
            State::Running { started_at, id, .. } => (
                ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(started_at.clone()),
                    }),
                    ..ContainerState::default()
                },
                Some(format!("sim://{id}")),
            ),
            State::BackOff { backoff, .. } => (
                ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("CrashLoopBackOff".into()),
                        message: Some(format!(
                            "back-off {} restarting failed container={} pod={}_{}({})",
                            api_util::duration::format_std(*backoff),
                            c.name,
                            pod.metadata.name.as_deref().unwrap_or_default(),
                            pod.metadata.namespace.as_deref().unwrap_or_default(),
                            self.uid,
                        )),
                    }),
                    ..ContainerState::default()
                },
                None,
            ),
            State::Exited(e) => (terminated(e), e.id.as_ref().map(|id| format!("sim://{id}"))),
        };
        ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: image_id(&c.image),
            container_id,
            ready: c.is_ready(now),
            restart_count: c.restart_count,
            started: Some(c.is_started(now)),
            state: Some(state),
            last_state: Some(c.last.as_ref().map(terminated).unwrap_or_default()),
            ..ContainerStatus::default()
        }
    }

    /// Whether the pod's spec still matches the containers simulated (names and images).
    pub fn matches_spec(&self, spec: &PodSpec) -> bool {
        let wanted = spec.init_containers.iter().flatten().chain(&spec.containers);
        let mut n = 0;
        for c in wanted {
            n += 1;
            if !self
                .containers
                .iter()
                .any(|s| s.name == c.name && Some(&s.image) == c.image.as_ref())
            {
                return false;
            }
        }
        n == self.containers.len()
    }

    /// Restarts containers whose image changed in `spec` (an image update of a running pod
    /// kills and recreates the container; its restart count goes up).
    pub fn update_images(&mut self, spec: &PodSpec, clock: &Clock) {
        let wanted = spec.init_containers.iter().flatten().chain(&spec.containers);
        for w in wanted {
            let Some(image) = w.image.as_ref() else { continue };
            let Some(i) = self.containers.iter().position(|c| c.name == w.name) else {
                continue;
            };
            if self.containers[i].image == *image {
                continue;
            }
            self.containers[i].image = image.clone();
            if let State::Running { started_at, id, .. } = self.containers[i].state.clone() {
                self.containers[i].last = Some(Ended {
                    code: 0,
                    reason: "Completed",
                    message: None,
                    started_at: Some(started_at),
                    finished_at: Some(clock.time_at(clock.now)),
                    id: Some(id),
                    at: clock.now,
                });
                let new_id = self.next_id();
                let c = &mut self.containers[i];
                c.restart_count += 1;
                c.start(clock.now, clock, new_id);
            }
        }
    }
}

/// Whether a container of `kind` that exited with `code` restarts under `policy`.
fn wants_restart(policy: RestartPolicy, kind: Kind, code: i32) -> bool {
    match kind {
        Kind::Sidecar => true,
        Kind::Init => code != 0 && policy != RestartPolicy::Never,
        Kind::Regular => match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Never => false,
        },
    }
}

fn terminated(e: &Ended) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: e.id.as_ref().map(|id| format!("sim://{id}")),
            exit_code: e.code,
            finished_at: e.finished_at.clone(),
            message: e.message.map(Into::into),
            reason: Some(e.reason.into()),
            signal: None,
            started_at: e.started_at.clone(),
        }),
        ..ContainerState::default()
    }
}

/// Takes over a container's state from the status a previous simulator wrote.
fn adopt(c: &mut SimContainer, s: &ContainerStatus, clock: &Clock) {
    c.restart_count = s.restart_count;
    let id_of = |cid: &Option<String>| {
        cid.as_deref()
            .map(|id| id.rsplit("://").next().unwrap_or(id).to_string())
    };
    let ended_of = |t: &ContainerStateTerminated| Ended {
        code: t.exit_code,
        reason: match t.reason.as_deref() {
            Some("Completed") => "Completed",
            Some("ContainerStatusUnknown") => "ContainerStatusUnknown",
            _ => "Error",
        },
        message: None,
        started_at: t.started_at.clone(),
        finished_at: t.finished_at.clone(),
        id: id_of(&t.container_id),
        at: t.finished_at.as_ref().map_or(clock.now, |f| clock.instant_of(f)),
    };
    c.last = s
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .map(ended_of);
    let Some(state) = &s.state else { return };
    if let Some(r) = &state.running {
        let started_at = r.started_at.clone().unwrap_or_else(|| clock.time_at(clock.now));
        c.state = State::Running {
            since: clock.instant_of(&started_at),
            started_at,
            id: id_of(&s.container_id).unwrap_or_default(),
        };
    } else if let Some(t) = &state.terminated {
        c.state = State::Exited(ended_of(t));
    } else if c.last.is_some() {
        // Was in back-off: restart when the simulation resumes.
        c.state = State::BackOff {
            until: clock.now,
            backoff: Duration::ZERO,
        };
    }
}

/// A 64-hex-digit container id derived from the pod's uid and a counter.
fn container_id(uid: &str, n: u64) -> String {
    let seed = format!("{uid}/{n}/{:?}", std::time::SystemTime::now());
    hex_digest(seed.as_bytes())
}

/// `docker.io/library/nginx:1.27` → `docker.io/library/nginx@sha256:<digest of the name>`.
pub fn image_id(image: &str) -> String {
    let repo = match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => image,
    };
    let repo = repo.split('@').next().unwrap_or(repo);
    format!("{repo}@sha256:{}", hex_digest(image.as_bytes()))
}

fn hex_digest(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
