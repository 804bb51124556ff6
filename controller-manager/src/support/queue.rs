//! A work queue with upstream client-go semantics: an item queued several times is processed
//! once, an item re-added while it is processed is processed again after `done`, and failing
//! items come back after a per-item exponential backoff (`add_rate_limited`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

struct State<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    shut_down: bool,
}

/// A deduplicating, rate-limited work queue. Cloning shares it.
pub struct WorkQueue<T> {
    state: Arc<Mutex<State<T>>>,
    notify: Arc<Notify>,
    base_delay: Duration,
    max_delay: Duration,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue {
            state: self.state.clone(),
            notify: self.notify.clone(),
            base_delay: self.base_delay,
            max_delay: self.max_delay,
        }
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> Default for WorkQueue<T> {
    /// Upstream's default per-item backoff: 5 ms doubling up to 1 000 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(5), Duration::from_secs(1000))
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> WorkQueue<T> {
    /// A queue whose failing items wait `base_delay * 2^failures`, at most `max_delay`.
    pub fn new(base_delay: Duration, max_delay: Duration) -> Self {
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                shut_down: false,
            })),
            notify: Arc::new(Notify::new()),
            base_delay,
            max_delay,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` unless it is queued already.
    pub fn add(&self, item: T) {
        let mut s = self.lock();
        if s.shut_down || !s.dirty.insert(item.clone()) {
            return;
        }
        if !s.processing.contains(&item) {
            s.queue.push_back(item);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Queues `item` after `delay`.
    pub fn add_after(&self, item: T, delay: Duration) {
        if delay.is_zero() {
            self.add(item);
            return;
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(item);
        });
    }

    /// Queues `item` after its next backoff.
    pub fn add_rate_limited(&self, item: T) {
        let delay = {
            let mut s = self.lock();
            let n = s.failures.entry(item.clone()).or_insert(0);
            let delay = self
                .base_delay
                .saturating_mul(2u32.saturating_pow((*n).min(31)))
                .min(self.max_delay);
            *n += 1;
            delay
        };
        self.add_after(item, delay);
    }

    /// Resets `item`'s backoff.
    pub fn forget(&self, item: &T) {
        self.lock().failures.remove(item);
    }

    /// How many times `item` failed since its last `forget`.
    pub fn failures(&self, item: &T) -> u32 {
        self.lock().failures.get(item).copied().unwrap_or(0)
    }

    /// The next item (marked in process until `done`), or `None` once shut down.
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.shut_down {
                    return None;
                }
                if let Some(item) = s.queue.pop_front() {
                    s.dirty.remove(&item);
                    s.processing.insert(item.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        self.notify.notify_one();
                    }
                    return Some(item);
                }
            }
            notified.await;
        }
    }

    /// Ends the processing of `item`; it is queued again if it was added meanwhile.
    pub fn done(&self, item: &T) {
        let mut s = self.lock();
        s.processing.remove(item);
        if s.dirty.contains(item) {
            s.queue.push_back(item.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Items waiting (not in process).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes every `get` with `None`; later adds are dropped.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn duplicates_collapse_and_re_adds_while_processing_come_back_after_done() {
        let q: WorkQueue<&str> = WorkQueue::default();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, Some("a"));
        q.add("a");
        assert_eq!(q.len(), 1, "a is in process: not queued twice");
        assert_eq!(q.get().await, Some("b"));
        q.done(&"a");
        assert_eq!(q.get().await, Some("a"));
        q.done(&"a");
        q.done(&"b");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_until_forgotten() {
        let q: WorkQueue<u32> = WorkQueue::new(Duration::from_millis(10), Duration::from_millis(25));
        q.add_rate_limited(1);
        q.add_rate_limited(1);
        q.add_rate_limited(1);
        assert_eq!(q.failures(&1), 3);
        assert!(q.is_empty());
        let start = tokio::time::Instant::now();
        assert_eq!(q.get().await, Some(1));
        assert!(start.elapsed() >= Duration::from_millis(10));
        q.forget(&1);
        assert_eq!(q.failures(&1), 0);
    }

    #[tokio::test]
    async fn shut_down_wakes_waiting_workers() {
        let q: WorkQueue<u32> = WorkQueue::default();
        let worker = {
            let q = q.clone();
            tokio::spawn(async move { q.get().await })
        };
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(worker.await.unwrap(), None);
        q.add(1);
        assert!(q.is_empty());
    }
}
