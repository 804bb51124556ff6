//! The watch hub: fans committed events out to watchers.
//!
//! The store publishes the events of each revision, in revision order, once they are durable. The
//! hub keeps a ring of recent revisions and one bounded channel per watcher. A new watcher is
//! served, in order, from the store's history (revisions older than the ring, read in pages), then
//! from a copy of the ring, then from its channel, so it sees every revision exactly once.
//!
//! Slow-consumer policy: when a watcher's channel is full, the watcher is closed and its stream
//! ends with [`Error::WatchOverflow`] naming the first revision it did not get, so the client can
//! watch again from there. Nothing is buffered without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::{
    Error, Event, EventKind, ProgressHandle, Result, Revision, WatchItem, WatchRequest, Watcher, in_range,
};

/// Where the hub reads revisions older than its ring.
pub trait History: Send + Sync + 'static {
    /// The events of every revision in `from..=to`, in revision order, one entry per revision,
    /// each event with its previous version. May block (it is called on a blocking thread).
    fn events(&self, from: Revision, to: Revision) -> Result<Vec<(Revision, Vec<Event>)>>;

    /// Revisions below this one are gone.
    fn compacted_revision(&self) -> Revision;
}

/// Sizes of the hub's buffers.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Recent revisions kept in memory for new watchers.
    pub ring_revisions: usize,
    /// Items a watcher may have queued before it is closed as too slow.
    pub watcher_buffer: usize,
    /// Revisions read from history per page.
    pub history_page: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            ring_revisions: 4096,
            watcher_buffer: 1024,
            history_page: 256,
        }
    }
}

/// The watch fan-out of one store. Cheap to clone.
#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    state: Mutex<HubState>,
    history: Arc<dyn History>,
    config: HubConfig,
}

struct HubState {
    revision: Revision,
    ring: VecDeque<(Revision, Arc<[Event]>)>,
    watchers: HashMap<u64, Slot>,
    next_id: u64,
}

struct Slot {
    filter: Arc<Filter>,
    tx: mpsc::Sender<WatchItem>,
    end: Arc<Mutex<Option<End>>>,
}

/// Why a watcher's channel was closed by the hub.
#[derive(Clone, Copy, Debug)]
enum End {
    Overflow { next_revision: Revision },
    Shutdown,
}

/// What one watcher wants.
#[derive(Debug)]
struct Filter {
    req: WatchRequest,
    /// Revisions before this one are not delivered.
    start: Revision,
}

impl Filter {
    fn select(&self, revision: Revision, events: &[Event]) -> Option<WatchItem> {
        if revision < self.start {
            return None;
        }
        let picked: Vec<Event> = events
            .iter()
            .filter(|e| in_range(&e.kv.key, &self.req.key, &self.req.range_end))
            .filter(|e| match e.kind {
                EventKind::Put => !self.req.no_put,
                EventKind::Delete => !self.req.no_delete,
            })
            .map(|e| {
                let mut e = e.clone();
                if !self.req.prev_kv {
                    e.prev_kv = None;
                }
                e
            })
            .collect();
        (!picked.is_empty()).then_some(WatchItem::Events {
            revision,
            events: picked,
        })
    }
}

impl WatchHub {
    /// A hub for a store whose current revision is `revision`.
    pub fn new(history: Arc<dyn History>, revision: Revision, config: HubConfig) -> Self {
        let state = HubState {
            revision,
            ring: VecDeque::new(),
            watchers: HashMap::new(),
            next_id: 1,
        };
        WatchHub {
            inner: Arc::new(HubInner {
                state: Mutex::new(state),
                history,
                config,
            }),
        }
    }

    /// The last revision published.
    pub fn revision(&self) -> Revision {
        self.inner.state.lock().revision
    }

    /// Number of open watchers.
    pub fn watcher_count(&self) -> usize {
        self.inner.state.lock().watchers.len()
    }

    /// Delivers the events of one new revision. Revisions must be published in increasing order.
    pub fn publish(&self, revision: Revision, events: Vec<Event>) {
        let events: Arc<[Event]> = events.into();
        let mut state = self.inner.state.lock();
        debug_assert!(revision > state.revision, "revisions are published in order");
        state.revision = revision;
        state.ring.push_back((revision, events.clone()));
        while state.ring.len() > self.inner.config.ring_revisions {
            state.ring.pop_front();
        }
        state.watchers.retain(|id, slot| {
            let Some(item) = slot.filter.select(revision, &events) else {
                return true;
            };
            match slot.tx.try_send(item) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(watcher = id, revision, "closing slow watcher");
                    *slot.end.lock() = Some(End::Overflow {
                        next_revision: revision,
                    });
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Forgets buffered history and closes every watcher (they resume from the revision after
    /// the last one they got). Used when the store's state is replaced, e.g. by a snapshot.
    pub fn reset(&self, revision: Revision) {
        let mut state = self.inner.state.lock();
        let next_revision = state.revision + 1;
        for slot in state.watchers.values() {
            *slot.end.lock() = Some(End::Overflow { next_revision });
        }
        state.watchers.clear();
        state.ring.clear();
        state.revision = revision;
    }

    /// Closes every watcher; their streams end with [`Error::Unavailable`].
    pub fn shutdown(&self) {
        let mut state = self.inner.state.lock();
        for slot in state.watchers.values() {
            *slot.end.lock() = Some(End::Shutdown);
        }
        state.watchers.clear();
    }

    /// Starts a watch. Fails with [`Error::Compacted`] when `start_revision` is below the
    /// compaction point.
    pub fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        crate::mvcc::validate_range(&crate::RangeRequest {
            key: req.key.clone(),
            ..Default::default()
        })?;
        let inner = &self.inner;
        let (tx, rx) = mpsc::channel(inner.config.watcher_buffer.max(1));
        let end = Arc::new(Mutex::new(None));
        // Asked before taking the hub's lock: a store publishes while holding its own lock, so
        // calling into the store under the hub's lock could deadlock with a concurrent write. A
        // compaction racing past this check surfaces as Compacted from the history replay.
        let compacted = inner.history.compacted_revision();
        let mut state = inner.state.lock();
        if req.start_revision != 0 && req.start_revision < compacted {
            return Err(Error::Compacted {
                requested: req.start_revision,
                compacted,
            });
        }
        let current = state.revision;
        let start = if req.start_revision == 0 {
            current + 1
        } else {
            req.start_revision
        };
        let filter = Arc::new(Filter { req, start });
        // What is already committed comes from history (older than the ring) and the ring.
        let ring_first = state.ring.front().map_or(current + 1, |(rev, _)| *rev);
        let history = (start < ring_first).then(|| (start, ring_first - 1));
        let backlog: VecDeque<WatchItem> = state
            .ring
            .iter()
            .filter_map(|(rev, events)| filter.select(*rev, events))
            .collect();
        let id = state.next_id;
        state.next_id += 1;
        state.watchers.insert(
            id,
            Slot {
                filter: filter.clone(),
                tx,
                end: end.clone(),
            },
        );
        drop(state);

        let weak = Arc::downgrade(inner);
        let progress = {
            let weak = weak.clone();
            ProgressHandle::new(move || {
                if let Some(inner) = weak.upgrade() {
                    let state = inner.state.lock();
                    if let Some(slot) = state.watchers.get(&id) {
                        // A full channel drops the notification; the watcher is about to be closed anyway.
                        let _ = slot.tx.try_send(WatchItem::Progress {
                            revision: state.revision,
                        });
                    }
                }
            })
        };
        let reader = Reader {
            history,
            source: inner.history.clone(),
            page: inner.config.history_page.max(1),
            filter,
            from_history: VecDeque::new(),
            backlog,
            rx,
            end,
            _guard: SlotGuard { hub: weak, id },
            done: false,
        };
        let stream = futures::stream::unfold(reader, |mut r| async move {
            let item = r.next_item().await?;
            Some((item, r))
        })
        .boxed();
        Ok(Watcher { stream, progress })
    }
}

/// The state of one watch stream.
struct Reader {
    /// Revisions still to read from history (inclusive).
    history: Option<(Revision, Revision)>,
    source: Arc<dyn History>,
    page: u64,
    filter: Arc<Filter>,
    /// Items of the history page being delivered.
    from_history: VecDeque<WatchItem>,
    /// The copy of the ring taken when the watch started.
    backlog: VecDeque<WatchItem>,
    rx: mpsc::Receiver<WatchItem>,
    end: Arc<Mutex<Option<End>>>,
    _guard: SlotGuard,
    done: bool,
}

impl Reader {
    async fn next_item(&mut self) -> Option<Result<WatchItem>> {
        if self.done {
            return None;
        }
        // History pages go before the ring copy, which goes before the live channel.
        while self.from_history.is_empty()
            && let Some((from, to)) = self.history
        {
            let upto = to.min(from.saturating_add(self.page - 1));
            let source = self.source.clone();
            let read = tokio::task::spawn_blocking(move || source.events(from, upto)).await;
            let page = match read {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => return Some(self.fail(e)),
                Err(e) => return Some(self.fail(Error::internal(e))),
            };
            self.history = (upto < to).then_some((upto + 1, to));
            self.from_history.extend(
                page.iter()
                    .filter_map(|(rev, events)| self.filter.select(*rev, events)),
            );
        }
        if let Some(item) = self.from_history.pop_front() {
            return Some(Ok(item));
        }
        if let Some(item) = self.backlog.pop_front() {
            return Some(Ok(item));
        }
        match self.rx.recv().await {
            Some(item) => Some(Ok(item)),
            None => {
                let end = *self.end.lock();
                let err = match end {
                    Some(End::Overflow { next_revision }) => Error::WatchOverflow { next_revision },
                    Some(End::Shutdown) | None => Error::Unavailable("store is shutting down".into()),
                };
                Some(self.fail(err))
            }
        }
    }

    fn fail(&mut self, e: Error) -> Result<WatchItem> {
        self.done = true;
        Err(e)
    }
}

/// Removes a watcher from the hub when its stream is dropped.
struct SlotGuard {
    hub: Weak<HubInner>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.hub.upgrade() {
            inner.state.lock().watchers.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyValue;

    /// History that has every revision from 1, with one put of key "k/<rev>".
    struct Synthetic {
        compacted: Revision,
    }

    fn event(rev: Revision) -> Event {
        let kv = KeyValue {
            key: format!("k/{rev}").into(),
            mod_revision: rev,
            version: 1,
            ..Default::default()
        };
        Event {
            kind: EventKind::Put,
            kv,
            prev_kv: None,
        }
    }

    impl History for Synthetic {
        fn events(&self, from: Revision, to: Revision) -> Result<Vec<(Revision, Vec<Event>)>> {
            Ok((from..=to).map(|r| (r, vec![event(r)])).collect())
        }
        fn compacted_revision(&self) -> Revision {
            self.compacted
        }
    }

    fn all_keys() -> WatchRequest {
        WatchRequest {
            key: "k/".into(),
            range_end: crate::prefix_end(b"k/"),
            ..Default::default()
        }
    }

    async fn revisions(w: &mut Watcher, n: usize) -> Vec<Revision> {
        let mut out = Vec::new();
        while out.len() < n {
            match w.stream.next().await.unwrap().unwrap() {
                WatchItem::Events { revision, .. } => out.push(revision),
                WatchItem::Progress { .. } => {}
            }
        }
        out
    }

    #[tokio::test]
    async fn replays_history_then_ring_then_live_in_order() {
        let config = HubConfig {
            ring_revisions: 3,
            watcher_buffer: 16,
            history_page: 2,
        };
        let hub = WatchHub::new(Arc::new(Synthetic { compacted: 0 }), 0, config);
        for r in 1..=10 {
            hub.publish(r, vec![event(r)]);
        }
        let mut w = hub
            .watch(WatchRequest {
                start_revision: 2,
                ..all_keys()
            })
            .unwrap();
        hub.publish(11, vec![event(11)]);
        assert_eq!(revisions(&mut w, 10).await, (2..=11).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn slow_watcher_is_closed_with_resume_point() {
        let config = HubConfig {
            ring_revisions: 8,
            watcher_buffer: 2,
            history_page: 8,
        };
        let hub = WatchHub::new(Arc::new(Synthetic { compacted: 0 }), 0, config);
        let mut w = hub.watch(all_keys()).unwrap();
        for r in 1..=5 {
            hub.publish(r, vec![event(r)]);
        }
        assert_eq!(hub.watcher_count(), 0);
        assert_eq!(revisions(&mut w, 2).await, vec![1, 2]);
        let err = w.stream.next().await.unwrap().unwrap_err();
        assert!(matches!(err, Error::WatchOverflow { next_revision: 3 }), "{err}");
        assert!(w.stream.next().await.is_none());
    }

    #[tokio::test]
    async fn compacted_start_is_refused_and_progress_follows_events() {
        let hub = WatchHub::new(Arc::new(Synthetic { compacted: 5 }), 9, HubConfig::default());
        assert!(matches!(
            hub.watch(WatchRequest {
                start_revision: 4,
                ..all_keys()
            }),
            Err(Error::Compacted {
                requested: 4,
                compacted: 5
            })
        ));
        let mut w = hub
            .watch(WatchRequest {
                start_revision: 8,
                ..all_keys()
            })
            .unwrap();
        w.progress.request();
        assert_eq!(revisions(&mut w, 2).await, vec![8, 9]);
        assert_eq!(
            w.stream.next().await.unwrap().unwrap(),
            WatchItem::Progress { revision: 9 }
        );
        drop(w);
        assert_eq!(hub.watcher_count(), 0);
    }

    #[tokio::test]
    async fn filters_apply() {
        let hub = WatchHub::new(Arc::new(Synthetic { compacted: 0 }), 0, HubConfig::default());
        let mut only_2 = hub
            .watch(WatchRequest {
                key: "k/2".into(),
                ..Default::default()
            })
            .unwrap();
        let mut no_put = hub
            .watch(WatchRequest {
                no_put: true,
                ..all_keys()
            })
            .unwrap();
        for r in 1..=3 {
            hub.publish(r, vec![event(r)]);
        }
        let del = Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: "k/2".into(),
                mod_revision: 4,
                ..Default::default()
            },
            prev_kv: Some(event(2).kv),
        };
        hub.publish(4, vec![del]);
        assert_eq!(revisions(&mut only_2, 2).await, vec![2, 4]);
        match no_put.stream.next().await.unwrap().unwrap() {
            WatchItem::Events { revision: 4, events } => assert!(events[0].prev_kv.is_none()),
            other => panic!("unexpected {other:?}"),
        }
    }
}
