//! client-go's rate-limited work queue: a key is queued at most once (dirty set), is never
//! processed by two workers at once (a key added while processing is queued again when it is
//! done), can be added after a delay (the earliest wins), and failed keys come back after the
//! larger of a per-item exponential backoff (5 ms doubling to 1000 s) and an overall token
//! bucket (10 per second, burst 100), as upstream's `DefaultControllerRateLimiter`.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::QueueMetrics;

/// Per-item exponential backoff bounds and the overall bucket, as upstream's defaults.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// First delay after a failure (5 ms).
    pub base: Duration,
    /// Largest per-item delay (1000 s).
    pub max: Duration,
    /// Overall requeues per second (10).
    pub qps: f64,
    /// Overall burst (100).
    pub burst: f64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
            qps: 10.0,
            burst: 100.0,
        }
    }
}

/// The per-item backoff and the overall bucket (pure; time passed in).
#[derive(Debug)]
struct Limiter {
    limits: RateLimits,
    failures: HashMap<String, u32>,
    tokens: f64,
    last: Option<Instant>,
}

impl Limiter {
    fn new(limits: RateLimits) -> Self {
        Limiter {
            limits,
            failures: HashMap::new(),
            tokens: limits.burst,
            last: None,
        }
    }

    /// The delay before `item` may be retried; counts one more failure.
    fn when(&mut self, item: &str, now: Instant) -> Duration {
        let n = self.failures.entry(item.to_string()).or_insert(0);
        let exp = 2f64.powi((*n).min(62) as i32);
        *n += 1;
        let backoff = self.limits.base.as_secs_f64() * exp;
        let per_item = Duration::from_secs_f64(backoff.min(self.limits.max.as_secs_f64()));
        let elapsed = self
            .last
            .map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
        self.last = Some(now);
        self.tokens = (self.tokens + elapsed * self.limits.qps).min(self.limits.burst) - 1.0;
        let bucket = if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.limits.qps)
        };
        per_item.max(bucket)
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    waiting: BTreeSet<(Instant, u64, String)>,
    waiting_at: HashMap<String, (Instant, u64)>,
    seq: u64,
    shutting_down: bool,
}

struct Inner {
    name: String,
    metrics: Option<QueueMetrics>,
    state: Mutex<State>,
    limiter: Mutex<Limiter>,
    ready: Notify,
    delayed: Notify,
}

/// A rate-limited, deduplicating queue of object keys (`namespace/name`).
#[derive(Clone)]
pub struct WorkQueue {
    inner: Arc<Inner>,
}

impl WorkQueue {
    /// A queue with upstream's default rate limits; its delay timer runs until
    /// [`WorkQueue::shut_down`]. Must be called inside a tokio runtime.
    pub fn new(name: &str) -> Self {
        Self::with_limits(name, RateLimits::default())
    }

    /// A queue with the given rate limits.
    pub fn with_limits(name: &str, limits: RateLimits) -> Self {
        Self::with_metrics(name, limits, None)
    }

    /// A queue reporting upstream's work-queue metrics under `name`.
    pub fn with_metrics(name: &str, limits: RateLimits, metrics: Option<QueueMetrics>) -> Self {
        let q = WorkQueue {
            inner: Arc::new(Inner {
                name: name.to_string(),
                metrics,
                state: Mutex::default(),
                limiter: Mutex::new(Limiter::new(limits)),
                ready: Notify::new(),
                delayed: Notify::new(),
            }),
        };
        tokio::spawn(q.clone().delay_loop());
        q
    }

    /// The queue's name (the controller's).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Queues `item` unless it is already queued; an item being processed is queued again
    /// when it is done.
    pub fn add(&self, item: impl Into<String>) {
        let item = item.into();
        let mut st = self.inner.state.lock();
        if st.shutting_down || !st.dirty.insert(item.clone()) {
            return;
        }
        self.count(|m, n| m.adds.with_label_values(&[n]).inc());
        if !st.processing.contains(&item) {
            st.queue.push_back(item);
            drop(st);
            self.count(|m, n| m.depth.with_label_values(&[n]).inc());
            self.inner.ready.notify_one();
        }
    }

    fn count(&self, f: impl FnOnce(&QueueMetrics, &str)) {
        if let Some(m) = &self.inner.metrics {
            f(m, &self.inner.name);
        }
    }

    /// Queues `item` after `delay` (at once when zero); of several pending delays the earliest
    /// wins.
    pub fn add_after(&self, item: impl Into<String>, delay: Duration) {
        let item = item.into();
        if delay.is_zero() {
            return self.add(item);
        }
        let at = Instant::now() + delay;
        let mut st = self.inner.state.lock();
        if st.shutting_down {
            return;
        }
        if let Some(&(prev, seq)) = st.waiting_at.get(&item) {
            if prev <= at {
                return;
            }
            st.waiting.remove(&(prev, seq, item.clone()));
        }
        st.seq += 1;
        let seq = st.seq;
        st.waiting.insert((at, seq, item.clone()));
        st.waiting_at.insert(item, (at, seq));
        drop(st);
        self.inner.delayed.notify_one();
    }

    /// Queues `item` after its rate-limited delay (one more failure counted).
    pub fn add_rate_limited(&self, item: impl Into<String>) {
        let item = item.into();
        let delay = self.inner.limiter.lock().when(&item, Instant::now());
        self.count(|m, n| m.retries.with_label_values(&[n]).inc());
        self.add_after(item, delay);
    }

    /// Forgets `item`'s failures (after a successful sync).
    pub fn forget(&self, item: &str) {
        self.inner.limiter.lock().failures.remove(item);
    }

    /// How many times `item` failed since it was last forgotten.
    pub fn num_requeues(&self, item: &str) -> u32 {
        self.inner.limiter.lock().failures.get(item).copied().unwrap_or(0)
    }

    /// Items queued and ready.
    pub fn len(&self) -> usize {
        self.inner.state.lock().queue.len()
    }

    /// True when nothing is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next item, waiting until one is ready; `None` after shutdown.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.inner.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.inner.state.lock();
                if st.shutting_down {
                    return None;
                }
                if let Some(item) = st.queue.pop_front() {
                    st.dirty.remove(&item);
                    st.processing.insert(item.clone());
                    drop(st);
                    self.count(|m, n| m.depth.with_label_values(&[n]).dec());
                    return Some(item);
                }
            }
            notified.await;
        }
    }

    /// Marks `item` processed; queues it again if it was added meanwhile.
    pub fn done(&self, item: &str) {
        let mut st = self.inner.state.lock();
        st.processing.remove(item);
        if st.dirty.contains(item) {
            st.queue.push_back(item.to_string());
            drop(st);
            self.count(|m, n| m.depth.with_label_values(&[n]).inc());
            self.inner.ready.notify_one();
        }
    }

    /// Stops the queue: [`WorkQueue::get`] returns `None` from now on.
    pub fn shut_down(&self) {
        self.inner.state.lock().shutting_down = true;
        self.inner.ready.notify_waiters();
        self.inner.delayed.notify_one();
    }

    async fn delay_loop(self) {
        loop {
            let notified = self.inner.delayed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let mut st = self.inner.state.lock();
                if st.shutting_down {
                    return;
                }
                let now = Instant::now();
                let mut due = Vec::new();
                while let Some(first) = st.waiting.first().cloned() {
                    if first.0 > now {
                        break;
                    }
                    st.waiting.pop_first();
                    st.waiting_at.remove(&first.2);
                    due.push(first.2);
                }
                let next = st.waiting.first().map(|w| w.0);
                drop(st);
                for item in due {
                    self.add(item);
                }
                next
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// Runs `workers` tasks that take keys from `queue` and call `sync`; a failed key is requeued
/// rate-limited (dropped after `max_retries` when set), a successful one forgotten. Returns
/// once `shutdown` is cancelled and the workers have finished their current keys.
pub async fn run_workers<F, Fut, E>(
    queue: WorkQueue,
    workers: usize,
    max_retries: Option<u32>,
    shutdown: CancellationToken,
    sync: F,
) where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display + Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let sync = sync.clone();
        tasks.spawn(async move {
            while let Some(key) = queue.get().await {
                let started = Instant::now();
                let result = sync(key.clone()).await;
                let took = started.elapsed().as_secs_f64();
                queue.count(|m, n| m.work_duration.with_label_values(&[n]).observe(took));
                match result {
                    Ok(()) => queue.forget(&key),
                    Err(e) => {
                        if max_retries.is_none_or(|m| queue.num_requeues(&key) < m) {
                            tracing::info!(controller = queue.name(), key = %key, error = %e, "error syncing; requeuing");
                            queue.add_rate_limited(key.clone());
                        } else {
                            tracing::warn!(controller = queue.name(), key = %key, error = %e, "dropping key out of the queue after too many retries");
                            queue.forget(&key);
                        }
                    }
                }
                queue.done(&key);
            }
        });
    }
    shutdown.cancelled().await;
    queue.shut_down();
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_item_backoff_doubles_from_5ms_to_1000s() {
        let mut l = Limiter::new(RateLimits {
            burst: 1e9,
            ..RateLimits::default()
        });
        let now = Instant::now();
        let delays: Vec<_> = (0..4).map(|_| l.when("a", now)).collect();
        assert_eq!(delays, [5, 10, 20, 40].map(Duration::from_millis).to_vec());
        for _ in 0..40 {
            l.when("a", now);
        }
        assert_eq!(l.when("a", now), Duration::from_secs(1000));
        assert_eq!(l.when("b", now), Duration::from_millis(5), "per item");
        l.failures.remove("a");
        assert_eq!(l.when("a", now), Duration::from_millis(5), "forgotten");
    }

    #[test]
    fn the_overall_bucket_limits_bursts_of_failures() {
        let mut l = Limiter::new(RateLimits::default());
        let now = Instant::now();
        for i in 0..100 {
            assert_eq!(l.when(&format!("k{i}"), now), Duration::from_millis(5));
        }
        // The 101st distinct key waits for a token: 1/10 s.
        assert_eq!(l.when("k100", now), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn keys_are_deduplicated_and_never_processed_twice_at_once() {
        let q = WorkQueue::new("t");
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(a, "a");
        q.add("a"); // while processing: held back until done
        assert_eq!(q.get().await.unwrap(), "b");
        assert!(q.is_empty());
        q.done("a");
        assert_eq!(q.get().await.unwrap(), "a");
        q.shut_down();
        assert_eq!(q.get().await, None);
    }

    #[tokio::test]
    async fn metrics_count_adds_depth_and_retries() {
        let registry = prometheus::Registry::new();
        let m = QueueMetrics::new(Some(&registry)).unwrap();
        let q = WorkQueue::with_metrics("deployment", RateLimits::default(), Some(m.clone()));
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(m.depth.with_label_values(&["deployment"]).get(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(m.depth.with_label_values(&["deployment"]).get(), 1);
        q.add_rate_limited(a.clone());
        q.done(&a);
        assert_eq!(m.retries.with_label_values(&["deployment"]).get(), 1);
        assert_eq!(
            m.adds.with_label_values(&["deployment"]).get(),
            2,
            "duplicates are not added"
        );
        let names: Vec<String> = registry.gather().iter().map(|f| f.name().to_string()).collect();
        assert!(names.contains(&"workqueue_depth".to_string()), "{names:?}");
        q.shut_down();
    }

    #[tokio::test]
    async fn delayed_adds_arrive_after_their_delay_earliest_wins() {
        let q = WorkQueue::new("t");
        let start = Instant::now();
        q.add_after("a", Duration::from_secs(30));
        q.add_after("a", Duration::from_millis(200));
        assert!(q.is_empty());
        assert_eq!(q.get().await.unwrap(), "a");
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
        q.shut_down();
    }
}
