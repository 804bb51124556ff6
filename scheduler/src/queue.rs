//! The scheduling queue (upstream's `PriorityQueue`): pending pods wait in one of
//!
//! - *active*: ready for a scheduling attempt, highest `spec.priority` first, then the earliest
//!   enqueued;
//! - *backoff*: failed recently; each pod waits `initial * 2^(attempts-1)` (capped at the
//!   maximum) after its last failure before it goes back to active;
//! - *unschedulable*: rejected, waiting for a cluster event that can help one of the plugins
//!   that rejected it, or at most `max_in_unschedulable` (5 minutes);
//! - *gated*: pods with `spec.schedulingGates`, not attempted until the gates are removed.
//!
//! Time is passed in, so the queue is a pure data structure.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster_event::ClusterEvent;
use crate::snapshot::PodInfo;

/// A pod's `(namespace, name)`.
pub type PodKey = (String, String);

/// The queue's timings (upstream's defaults: 1 s, 10 s, 5 min).
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// Backoff after the first failed attempt (`podInitialBackoffSeconds`).
    pub initial_backoff: Duration,
    /// Longest backoff (`podMaxBackoffSeconds`).
    pub max_backoff: Duration,
    /// Longest stay among unschedulable pods without a helpful event.
    pub max_in_unschedulable: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_in_unschedulable: Duration::from_secs(5 * 60),
        }
    }
}

/// Which sub-queue a pod is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Ready for an attempt.
    Active,
    /// Waiting for its backoff to expire.
    Backoff,
    /// Waiting for a helpful cluster event.
    Unschedulable,
    /// Blocked by scheduling gates.
    Gated,
    /// Popped; its attempt is running.
    InFlight,
}

/// A pod handed out for a scheduling attempt.
#[derive(Clone, Debug)]
pub struct QueuedPod {
    /// The pod.
    pub pod: Arc<PodInfo>,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// The attempt's scheduling cycle.
    pub cycle: u64,
    /// When the pod first entered the queue.
    pub initial_enqueue: Instant,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<PodInfo>,
    place: Place,
    /// When the pod was (re-)added: orders active pods and starts the backoff.
    timestamp: Instant,
    initial_enqueue: Instant,
    attempts: u32,
    cycle: u64,
    rejectors: BTreeSet<&'static str>,
    /// Matches the heap item that is current for this entry.
    seq: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct ActiveItem {
    priority: i32,
    timestamp: Instant,
    seq: u64,
    key: PodKey,
}

impl Ord for ActiveItem {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.timestamp.cmp(&self.timestamp))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Sizes of the sub-queues (the `scheduler_pending_pods` gauge).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// Active pods.
    pub active: usize,
    /// Pods backing off.
    pub backoff: usize,
    /// Unschedulable pods.
    pub unschedulable: usize,
    /// Gated pods.
    pub gated: usize,
}

/// The queue.
#[derive(Debug)]
pub struct SchedulingQueue {
    config: QueueConfig,
    pods: HashMap<PodKey, Entry>,
    /// Keys of the pods in [`Place::Unschedulable`] (events scan only these).
    unschedulable: HashSet<PodKey>,
    active: BinaryHeap<ActiveItem>,
    backoff: BinaryHeap<Reverse<(Instant, u64, PodKey)>>,
    next_seq: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
}

/// True when the pod lists scheduling gates.
pub fn is_gated(pod: &PodInfo) -> bool {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

fn key_of(pod: &PodInfo) -> PodKey {
    (pod.namespace.clone(), pod.name.clone())
}

impl SchedulingQueue {
    /// An empty queue.
    pub fn new(config: QueueConfig) -> SchedulingQueue {
        SchedulingQueue {
            config,
            pods: HashMap::new(),
            unschedulable: HashSet::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            next_seq: 0,
            scheduling_cycle: 0,
            move_request_cycle: 0,
        }
    }

    /// Where the pod `key` is, if queued.
    pub fn place_of(&self, key: &PodKey) -> Option<Place> {
        self.pods.get(key).map(|e| e.place)
    }

    /// True when the pod is queued (in any sub-queue or in flight).
    pub fn contains(&self, key: &PodKey) -> bool {
        self.pods.contains_key(key)
    }

    /// The backoff a pod gets after `attempts` attempts: initial, doubled per further attempt,
    /// capped at the maximum.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.config.initial_backoff;
        for _ in 1..attempts {
            if d > self.config.max_backoff.saturating_sub(d) {
                return self.config.max_backoff;
            }
            d += d;
        }
        d.min(self.config.max_backoff)
    }

    fn backoff_expiry(&self, e: &Entry) -> Instant {
        e.timestamp + self.backoff_duration(e.attempts)
    }

    fn place(&mut self, key: PodKey, place: Place, now: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let Some(e) = self.pods.get_mut(&key) else {
            return;
        };
        if e.place == Place::Unschedulable && place != Place::Unschedulable {
            self.unschedulable.remove(&key);
        }
        e.place = place;
        e.seq = seq;
        match place {
            Place::Active => {
                let item = ActiveItem {
                    priority: e.pod.priority,
                    timestamp: e.timestamp,
                    seq,
                    key,
                };
                self.active.push(item);
            }
            Place::Backoff => {
                let (timestamp, attempts) = (e.timestamp, e.attempts);
                let expiry = timestamp + self.backoff_duration(attempts);
                self.backoff.push(Reverse((expiry.max(now), seq, key)));
            }
            Place::Unschedulable => {
                self.unschedulable.insert(key);
            }
            Place::Gated | Place::InFlight => {}
        }
    }

    /// A new pending pod (or a newer version of one already queued).
    pub fn add(&mut self, pod: Arc<PodInfo>, now: Instant) {
        let key = key_of(&pod);
        if self.pods.contains_key(&key) {
            self.update(pod, now);
            return;
        }
        let gated = is_gated(&pod);
        self.pods.insert(
            key.clone(),
            Entry {
                pod,
                place: Place::Active,
                timestamp: now,
                initial_enqueue: now,
                attempts: 0,
                cycle: 0,
                rejectors: BTreeSet::new(),
                seq: 0,
            },
        );
        self.place(key, if gated { Place::Gated } else { Place::Active }, now);
    }

    /// A queued pod changed: gates removed send it to active; a spec change of an
    /// unschedulable pod sends it to backoff or active (the change may make it fit).
    pub fn update(&mut self, pod: Arc<PodInfo>, now: Instant) {
        let key = key_of(&pod);
        let Some(e) = self.pods.get_mut(&key) else {
            self.add(pod, now);
            return;
        };
        let spec_changed = e.pod.pod.spec != pod.pod.spec || e.pod.labels != pod.labels;
        let gated = is_gated(&pod);
        e.pod = pod;
        match e.place {
            Place::Gated if !gated => {
                e.timestamp = now;
                self.place(key, Place::Active, now);
            }
            Place::Unschedulable if spec_changed => {
                let to = self.after_move(&key, now);
                self.place(key, to, now);
            }
            Place::Active => {
                // The priority may have changed: re-push under a fresh sequence number.
                self.place(key, Place::Active, now);
            }
            _ => {}
        }
    }

    /// The pod left the queue's concern (deleted, bound or terminating).
    pub fn delete(&mut self, key: &PodKey) {
        self.pods.remove(key);
        self.unschedulable.remove(key);
    }

    /// Keeps only the pods in `keys` (after the pods were listed again).
    pub fn retain(&mut self, keys: &HashSet<PodKey>) {
        self.pods.retain(|k, _| keys.contains(k));
        self.unschedulable.retain(|k| keys.contains(k));
    }

    /// Moves pods whose backoff expired to active and pods unschedulable for too long to
    /// backoff or active.
    pub fn flush(&mut self, now: Instant) {
        self.flush_backoff(now);
        self.flush_unschedulable(now);
    }

    /// Moves pods whose backoff expired to active.
    pub fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((at, seq, key))) = self.backoff.peek().cloned() {
            if at > now {
                break;
            }
            self.backoff.pop();
            if self
                .pods
                .get(&key)
                .is_some_and(|e| e.place == Place::Backoff && e.seq == seq)
            {
                self.place(key, Place::Active, now);
            }
        }
    }

    /// Moves pods unschedulable for longer than `max_in_unschedulable` to backoff or active.
    pub fn flush_unschedulable(&mut self, now: Instant) {
        let limit = self.config.max_in_unschedulable;
        let stale: Vec<PodKey> = self
            .unschedulable
            .iter()
            .filter(|k| {
                self.pods
                    .get(*k)
                    .is_some_and(|e| now.saturating_duration_since(e.timestamp) >= limit)
            })
            .cloned()
            .collect();
        for key in stale {
            let to = self.after_move(&key, now);
            self.place(key, to, now);
        }
    }

    /// Where a pod leaving the unschedulable pods goes: backoff while its backoff runs.
    fn after_move(&self, key: &PodKey, now: Instant) -> Place {
        match self.pods.get(key) {
            Some(e) if e.attempts > 0 && self.backoff_expiry(e) > now => Place::Backoff,
            _ => Place::Active,
        }
    }

    /// The next pod to attempt, marking it in flight.
    pub fn pop(&mut self, now: Instant) -> Option<QueuedPod> {
        self.flush_backoff(now);
        while let Some(item) = self.active.pop() {
            let current = self
                .pods
                .get(&item.key)
                .is_some_and(|e| e.place == Place::Active && e.seq == item.seq);
            if !current {
                continue;
            }
            self.scheduling_cycle += 1;
            let cycle = self.scheduling_cycle;
            let e = self.pods.get_mut(&item.key)?;
            e.place = Place::InFlight;
            e.attempts += 1;
            e.cycle = cycle;
            return Some(QueuedPod {
                pod: e.pod.clone(),
                attempts: e.attempts,
                cycle,
                initial_enqueue: e.initial_enqueue,
            });
        }
        None
    }

    /// The attempt for `key` succeeded (the pod is assumed and binding): it leaves the queue.
    pub fn done(&mut self, key: &PodKey) {
        if self.pods.get(key).is_some_and(|e| e.place == Place::InFlight) {
            self.pods.remove(key);
        }
    }

    /// The attempt failed. With the rejecting plugins known and no cluster event since the
    /// attempt started, the pod waits among the unschedulable ones; otherwise (an event came
    /// in meanwhile, or the failure was an error) it backs off.
    pub fn failed(&mut self, key: &PodKey, rejectors: BTreeSet<&'static str>, now: Instant) {
        let move_request_cycle = self.move_request_cycle;
        let Some(e) = self.pods.get_mut(key) else {
            return;
        };
        e.timestamp = now;
        let to = if rejectors.is_empty() || move_request_cycle >= e.cycle {
            Place::Backoff
        } else {
            Place::Unschedulable
        };
        e.rejectors = rejectors;
        self.place(key.clone(), to, now);
    }

    /// A pod whose binding failed (or was not attempted) comes back: it is no longer known as
    /// in flight, so it is added again with its attempt count, backing off.
    pub fn requeue(&mut self, pod: Arc<PodInfo>, attempts: u32, initial_enqueue: Instant, now: Instant) {
        let key = key_of(&pod);
        self.unschedulable.remove(&key);
        self.pods.insert(
            key.clone(),
            Entry {
                pod,
                place: Place::Backoff,
                timestamp: now,
                initial_enqueue,
                attempts,
                cycle: self.scheduling_cycle,
                rejectors: BTreeSet::new(),
                seq: 0,
            },
        );
        self.place(key, Place::Backoff, now);
    }

    /// A cluster event: unschedulable pods it may help move to backoff or active, and pods in
    /// flight will back off instead of waiting for another event if they fail.
    pub fn on_event(&mut self, event: ClusterEvent, now: Instant) -> usize {
        self.move_request_cycle = self.scheduling_cycle;
        let moving: Vec<PodKey> = self
            .unschedulable
            .iter()
            .filter(|k| {
                self.pods
                    .get(*k)
                    .is_some_and(|e| event.may_help_any(&e.rejectors))
            })
            .cloned()
            .collect();
        let n = moving.len();
        for key in moving {
            let to = self.after_move(&key, now);
            self.place(key, to, now);
        }
        n
    }

    /// Moves every unschedulable pod (upstream's `MoveAllToActiveOrBackoffQueue` for events
    /// without plugin filtering, e.g. a preemption's victims going away).
    pub fn move_all(&mut self, now: Instant) {
        self.move_request_cycle = self.scheduling_cycle;
        let moving: Vec<PodKey> = self.unschedulable.iter().cloned().collect();
        for key in moving {
            let to = self.after_move(&key, now);
            self.place(key, to, now);
        }
    }

    /// When the earliest backoff ends, if any pod backs off.
    pub fn next_backoff_expiry(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The sub-queues' sizes.
    pub fn pending(&self) -> Pending {
        let mut p = Pending::default();
        for e in self.pods.values() {
            match e.place {
                Place::Active => p.active += 1,
                Place::Backoff => p.backoff += 1,
                Place::Unschedulable => p.unschedulable += 1,
                Place::Gated => p.gated += 1,
                Place::InFlight => {}
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_event::NodeChange;
    use crate::plugins::testing::pod;
    use serde_json::json;

    fn p(name: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(pod(name, json!({"spec": {"priority": priority}})))
    }

    fn key(name: &str) -> PodKey {
        ("default".into(), name.into())
    }

    fn pop_name(q: &mut SchedulingQueue, now: Instant) -> Option<String> {
        q.pop(now).map(|qp| qp.pod.name.clone())
    }

    #[test]
    fn active_pods_pop_by_priority_then_enqueue_time() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(QueueConfig::default());
        q.add(p("low-early", 0), t0);
        q.add(p("high", 100), t0 + Duration::from_millis(2));
        q.add(p("low-late", 0), t0 + Duration::from_millis(3));
        q.add(p("low-mid", 0), t0 + Duration::from_millis(1));
        let now = t0 + Duration::from_millis(5);
        let order: Vec<_> = std::iter::from_fn(|| pop_name(&mut q, now)).collect();
        assert_eq!(order, ["high", "low-early", "low-mid", "low-late"]);
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_ten() {
        let q = SchedulingQueue::new(QueueConfig::default());
        let secs: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn a_failure_after_an_event_backs_off_then_returns() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(QueueConfig::default());
        q.add(p("a", 0), t0);
        let qp = q.pop(t0).unwrap();
        // A node arrives while "a" is in flight: its failure must not park it.
        q.on_event(ClusterEvent::NodeAdd, t0);
        q.failed(&key("a"), ["NodeResourcesFit"].into(), t0);
        assert_eq!(q.place_of(&key("a")), Some(Place::Backoff));
        assert_eq!(qp.attempts, 1);
        assert!(q.pop(t0 + Duration::from_millis(999)).is_none());
        assert_eq!(q.next_backoff_expiry(), Some(t0 + Duration::from_secs(1)));
        let again = q.pop(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(again.attempts, 2);
        // Second failure, no event meanwhile: unschedulable; 2 s backoff from now.
        let t1 = t0 + Duration::from_secs(1);
        q.failed(&key("a"), ["NodeResourcesFit"].into(), t1);
        assert_eq!(q.place_of(&key("a")), Some(Place::Unschedulable));
        assert!(q.pop(t1 + Duration::from_secs(60)).is_none());
    }

    #[test]
    fn only_helpful_events_move_unschedulable_pods() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(QueueConfig::default());
        q.add(p("cpu", 0), t0);
        q.add(p("taint", 0), t0);
        let a = q.pop(t0).unwrap();
        let b = q.pop(t0).unwrap();
        q.failed(&key(&a.pod.name), ["NodeResourcesFit"].into(), t0);
        q.failed(&key(&b.pod.name), ["TaintToleration"].into(), t0);
        assert_eq!(q.pending().unschedulable, 2);
        // An unrelated pod being bound helps neither.
        assert_eq!(q.on_event(ClusterEvent::AssignedPodAdd, t0), 0);
        // A taint change helps only the pod rejected for taints; its backoff (1 s) has not
        // ended, so it backs off first.
        let taints = ClusterEvent::NodeUpdate(NodeChange {
            taints: true,
            ..Default::default()
        });
        assert_eq!(q.on_event(taints, t0 + Duration::from_millis(100)), 1);
        assert_eq!(q.place_of(&key("taint")), Some(Place::Backoff));
        assert_eq!(q.place_of(&key("cpu")), Some(Place::Unschedulable));
        // A deleted pod frees resources: "cpu" moves, straight to active after its backoff.
        q.on_event(ClusterEvent::AssignedPodDelete, t0 + Duration::from_secs(2));
        assert_eq!(q.place_of(&key("cpu")), Some(Place::Active));
        let names: BTreeSet<_> =
            std::iter::from_fn(|| pop_name(&mut q, t0 + Duration::from_secs(2))).collect();
        assert_eq!(names, ["cpu".to_string(), "taint".to_string()].into());
    }

    #[test]
    fn unschedulable_pods_are_flushed_after_five_minutes() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(QueueConfig::default());
        q.add(p("a", 0), t0);
        q.pop(t0).unwrap();
        q.failed(&key("a"), ["NodeAffinity"].into(), t0);
        q.flush(t0 + Duration::from_secs(299));
        assert_eq!(q.place_of(&key("a")), Some(Place::Unschedulable));
        q.flush(t0 + Duration::from_secs(300));
        assert_eq!(
            pop_name(&mut q, t0 + Duration::from_secs(300)).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn gated_pods_wait_until_their_gates_are_removed() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(QueueConfig::default());
        let gated = Arc::new(pod(
            "g",
            json!({"spec": {"schedulingGates": [{"name": "example.com/wait"}]}}),
        ));
        q.add(gated, t0);
        assert_eq!(q.pending().gated, 1);
        assert!(q.pop(t0).is_none());
        q.on_event(ClusterEvent::NodeAdd, t0);
        q.flush(t0 + Duration::from_secs(600));
        assert!(
            q.pop(t0 + Duration::from_secs(600)).is_none(),
            "events and flushes skip gated pods"
        );
        q.update(Arc::new(pod("g", json!({"spec": {"schedulingGates": []}}))), t0);
        let qp = q.pop(t0).unwrap();
        assert_eq!((qp.pod.name.as_str(), qp.attempts), ("g", 1));
    }

    #[test]
    fn updates_of_unschedulable_pods_requeue_them_and_deletes_drop_them() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(QueueConfig::default());
        q.add(p("a", 0), t0);
        q.pop(t0).unwrap();
        q.failed(&key("a"), ["NodeAffinity"].into(), t0);
        // A status-only update changes nothing.
        q.update(p("a", 0), t0);
        assert_eq!(q.place_of(&key("a")), Some(Place::Unschedulable));
        let changed = Arc::new(pod(
            "a",
            json!({"spec": {"priority": 0, "nodeSelector": {"x": "y"}}}),
        ));
        q.update(changed, t0 + Duration::from_secs(5));
        assert_eq!(q.place_of(&key("a")), Some(Place::Active));
        q.delete(&key("a"));
        assert!(q.pop(t0 + Duration::from_secs(5)).is_none());
        assert_eq!(q.pending(), Pending::default());
    }

    #[test]
    fn errors_back_off_and_requeued_pods_keep_their_attempts() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(QueueConfig::default());
        q.add(p("a", 0), t0);
        let qp = q.pop(t0).unwrap();
        q.done(&key("a"));
        assert!(!q.contains(&key("a")));
        // The binding failed: back with 1 attempt, 1 s backoff.
        q.requeue(qp.pod, qp.attempts, qp.initial_enqueue, t0);
        assert!(q.pop(t0 + Duration::from_millis(500)).is_none());
        let again = q.pop(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(again.attempts, 2);
        q.failed(&key("a"), BTreeSet::new(), t0 + Duration::from_secs(1));
        assert_eq!(
            q.place_of(&key("a")),
            Some(Place::Backoff),
            "errors always back off"
        );
    }
}
