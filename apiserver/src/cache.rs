//! The watch cache (upstream's "cacher"): per storage prefix, one in-memory copy of the objects fed
//! by one storage watch, which serves lists at "any" / consistent revisions and fans events out to
//! every Kubernetes watch of that resource.
//!
//! - A cache is created lazily on the first watch or cached list of a prefix (any descriptor row,
//!   built-in or added at run time), from a list of the prefix and a watch from its revision.
//! - Objects are held decoded (`Arc<Value>`, `resourceVersion` stamped), in key order.
//! - The last [`HISTORY_CAPACITY`] events are kept, so a watch from a recent resourceVersion replays
//!   from memory. (Upstream's default is 100 per resource, grown dynamically; a fixed 1000 keeps a
//!   few seconds of a busy resource at a few hundred KiB to a few MiB.) A watch from an older
//!   revision goes to the store, which answers 410 once it is compacted.
//! - Each watcher has a bounded channel of [`WATCHER_BUFFER`] messages; a watcher whose channel is
//!   full is closed (its stream ends; the client re-watches from its last revision) rather than
//!   slowing down the others.
//! - If the storage watch fails, the cache is dropped with all its watchers and rebuilt on demand.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::Value;
use storage::{
    EventKind, ProgressHandle, Revision, Storage, StorageExt, WatchItem, WatchRequest, prefix_end,
};
use tokio::sync::mpsc;

use crate::error::ApiResult;
use crate::objstore::{decode_kv, set_resource_version};

/// Events kept per resource for watches from a recent resourceVersion.
pub const HISTORY_CAPACITY: usize = 1000;
/// Messages buffered per watcher before it is closed as too slow.
pub const WATCHER_BUFFER: usize = 1024;
/// How long a consistent read waits for the cache to reach the store's revision (upstream: 3 s)
/// before it is served from the store instead.
pub const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);

/// One change of one object.
#[derive(Debug)]
pub struct CachedEvent {
    /// The revision of the change.
    pub revision: Revision,
    /// The object's storage key.
    pub key: String,
    /// Put or delete.
    pub kind: EventKind,
    /// The new object; for deletes the last version, its resourceVersion set to `revision`.
    pub object: Arc<Value>,
    /// The version before the change (for selector transitions).
    pub prev: Option<Arc<Value>>,
    /// Wire encodings of this change made so far, shared by every watcher that needs the same
    /// one (see [`CachedEvent::encoded`]).
    pub frames: parking_lot::Mutex<Vec<(FrameKey<'static>, bytes::Bytes)>>,
}

/// What a watch event's encoding depends on besides the change itself: the event type, the
/// wire format and the group/version/kind it is presented as.
/// Looked up borrowed (no allocation per watcher and event), stored owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameKey<'a> {
    /// ADDED, MODIFIED or DELETED.
    pub event_type: &'static str,
    /// The watch stream's content type.
    pub content_type: &'static str,
    /// `apiVersion` the object is presented with.
    pub api_version: std::borrow::Cow<'a, str>,
    /// `kind` the object is presented with.
    pub kind: std::borrow::Cow<'a, str>,
}

impl FrameKey<'_> {
    fn to_owned_key(&self) -> FrameKey<'static> {
        FrameKey {
            event_type: self.event_type,
            content_type: self.content_type,
            api_version: std::borrow::Cow::Owned(self.api_version.clone().into_owned()),
            kind: std::borrow::Cow::Owned(self.kind.clone().into_owned()),
        }
    }
}

impl CachedEvent {
    /// The encoding for `key`: made once by `encode`, then shared by every watcher asking for
    /// the same key (with 1 000 watchers of a resource, one encoding instead of 1 000).
    pub fn encoded(&self, key: &FrameKey<'_>, encode: impl FnOnce() -> Vec<u8>) -> bytes::Bytes {
        let mut frames = self.frames.lock();
        if let Some((_, frame)) = frames.iter().find(|(k, _)| k == key) {
            return frame.clone();
        }
        let frame = bytes::Bytes::from(encode());
        frames.push((key.to_owned_key(), frame.clone()));
        frame
    }
}

/// What a watcher receives, in revision order.
#[derive(Clone, Debug)]
pub enum CacheMessage {
    /// A change.
    Event(Arc<CachedEvent>),
    /// Every change up to this revision has been sent.
    Progress(Revision),
}

/// A watch of a cache: the replayed or initial part, then live messages.
#[derive(Debug)]
pub struct Subscription {
    /// The revision the replayed part ends at; live messages are all after it.
    pub revision: Revision,
    /// Initial objects (a watch from the current state) or replayed events (a watch from a
    /// revision), in order.
    pub initial: Start,
    /// Live messages. Ends when the watcher is closed (too slow, or the cache failed).
    pub live: mpsc::Receiver<CacheMessage>,
    /// Requests a [`CacheMessage::Progress`] for every watcher of the cache.
    pub progress: ProgressHandle,
}

/// The first part of a subscription.
#[derive(Debug)]
pub enum Start {
    /// The objects under the watched prefix at [`Subscription::revision`].
    Objects(Vec<Arc<Value>>),
    /// The events after the requested revision.
    Events(Vec<Arc<CachedEvent>>),
}

#[derive(Debug)]
struct Slot {
    prefix: String,
    tx: mpsc::Sender<CacheMessage>,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Arc<Value>>,
    revision: Revision,
    history: VecDeque<Arc<CachedEvent>>,
    /// Every event after this revision is in `history`.
    history_start: Revision,
    watchers: HashMap<u64, Slot>,
    next_id: u64,
    closed: bool,
}

impl State {
    fn send(&mut self, msg: impl Fn(&Slot) -> Option<CacheMessage>) {
        self.watchers.retain(|id, slot| match msg(slot) {
            None => true,
            Some(m) => match slot.tx.try_send(m) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(watcher = id, prefix = %slot.prefix, "closing a slow watcher");
                    crate::metrics::watchers_closed_slow();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        });
    }
}

/// The cache of one storage prefix.
pub struct WatchCache {
    prefix: String,
    state: Mutex<State>,
    revision: tokio::sync::watch::Sender<Revision>,
    progress: ProgressHandle,
}

impl std::fmt::Debug for WatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl WatchCache {
    /// The revision the cache has caught up to.
    pub fn revision(&self) -> Revision {
        self.state.lock().revision
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.state.lock().objects.len()
    }

    /// True when no objects are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of registered watchers.
    pub fn watcher_count(&self) -> usize {
        self.state.lock().watchers.len()
    }

    /// Waits until the cache has seen `revision` (asking the storage watch for progress), up to
    /// `timeout`. False on timeout or when the cache failed.
    pub async fn wait_fresh(&self, revision: Revision, timeout: Duration) -> bool {
        let mut rx = self.revision.subscribe();
        if *rx.borrow() >= revision {
            return true;
        }
        self.progress.request();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The object stored under `key`, as the cache last saw it.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.state.lock().objects.get(key).cloned()
    }

    /// The objects under `prefix` that `filter` accepts, in key order, and the cache's revision.
    pub fn list(&self, prefix: &str, filter: &dyn Fn(&Value) -> bool) -> (Vec<Value>, Revision) {
        // Hold the lock only to collect the shared objects; filter and copy them after.
        let (objects, revision) = {
            let state = self.state.lock();
            let objects: Vec<Arc<Value>> = state
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .collect();
            (objects, state.revision)
        };
        let items = objects
            .iter()
            .filter(|v| filter(v))
            .map(|v| Value::clone(v))
            .collect();
        (items, revision)
    }

    /// Registers a watcher of keys under `prefix`: from the current state (`from == None`), or
    /// replaying the events after `from`. `None` when `from` is older than the history window (or
    /// the cache failed): the caller reads the store instead.
    pub fn subscribe(&self, prefix: &str, from: Option<Revision>) -> Option<Subscription> {
        let mut state = self.state.lock();
        if state.closed {
            return None;
        }
        let initial = match from {
            None => Start::Objects(
                state
                    .objects
                    .range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(_, v)| v.clone())
                    .collect(),
            ),
            Some(rv) if rv < state.history_start => return None,
            Some(rv) => Start::Events(
                state
                    .history
                    .iter()
                    .filter(|e| e.revision > rv && e.key.starts_with(prefix))
                    .cloned()
                    .collect(),
            ),
        };
        let (tx, live) = mpsc::channel(WATCHER_BUFFER);
        let id = state.next_id;
        state.next_id += 1;
        state.watchers.insert(
            id,
            Slot {
                prefix: prefix.to_string(),
                tx,
            },
        );
        Some(Subscription {
            revision: state.revision,
            initial,
            live,
            progress: self.progress.clone(),
        })
    }

    fn apply(&self, revision: Revision, events: &[storage::Event]) {
        let mut state = self.state.lock();
        for e in events {
            let key = String::from_utf8_lossy(&e.kv.key).into_owned();
            let prev = state.objects.get(&key).cloned();
            let object = match e.kind {
                EventKind::Put => match decode_kv(&e.kv) {
                    Ok(o) => Arc::new(o),
                    Err(err) => {
                        tracing::warn!(%key, error = %err.to_json(), "watch cache skips a corrupt object");
                        continue;
                    }
                },
                EventKind::Delete => {
                    let Some(p) = &prev else { continue };
                    let mut o = Value::clone(p);
                    set_resource_version(&mut o, revision);
                    Arc::new(o)
                }
            };
            match e.kind {
                EventKind::Put => state.objects.insert(key.clone(), object.clone()),
                EventKind::Delete => state.objects.remove(&key),
            };
            let ev = Arc::new(CachedEvent {
                revision,
                key,
                kind: e.kind,
                object,
                prev,
                frames: Default::default(),
            });
            if state.history.len() >= HISTORY_CAPACITY
                && let Some(old) = state.history.pop_front()
            {
                state.history_start = old.revision;
            }
            state.history.push_back(ev.clone());
            state.send(|slot| {
                ev.key
                    .starts_with(&slot.prefix)
                    .then(|| CacheMessage::Event(ev.clone()))
            });
            crate::metrics::watch_events_dispatched();
        }
        state.revision = state.revision.max(revision);
        let _ = self.revision.send(state.revision);
    }

    fn progressed(&self, revision: Revision) {
        let mut state = self.state.lock();
        state.revision = state.revision.max(revision);
        let rv = state.revision;
        state.send(|_| Some(CacheMessage::Progress(rv)));
        let _ = self.revision.send(rv);
    }

    fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        state.watchers.clear();
    }
}

/// A storage watch of everything under `prefix` from `start`, with previous values.
async fn open_watch(
    kv: &Arc<dyn Storage>,
    prefix: &str,
    start: Revision,
) -> storage::Result<storage::Watcher> {
    kv.watch(WatchRequest {
        key: prefix.as_bytes().to_vec().into(),
        range_end: prefix_end(prefix.as_bytes()),
        start_revision: start,
        prev_kv: true,
        ..Default::default()
    })
    .await
}

type CacheCell = Arc<tokio::sync::OnceCell<Arc<WatchCache>>>;

/// The caches of all resources, keyed by storage prefix.
#[derive(Clone)]
pub struct WatchCaches {
    kv: Arc<dyn Storage>,
    caches: Arc<Mutex<HashMap<String, CacheCell>>>,
}

impl std::fmt::Debug for WatchCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCaches").finish_non_exhaustive()
    }
}

impl WatchCaches {
    /// No caches yet over `kv`.
    pub fn new(kv: Arc<dyn Storage>) -> Self {
        WatchCaches {
            kv,
            caches: Arc::default(),
        }
    }

    /// The cache of `prefix`, started on first use.
    pub async fn get(&self, prefix: &str) -> ApiResult<Arc<WatchCache>> {
        let cell = self.caches.lock().entry(prefix.to_string()).or_default().clone();
        let cache = cell.get_or_try_init(|| self.start(prefix, cell.clone())).await?;
        Ok(cache.clone())
    }

    /// Drops the cache of `prefix` (a resource that is no longer served); its watchers end.
    pub fn remove(&self, prefix: &str) {
        if let Some(cell) = self.caches.lock().remove(prefix)
            && let Some(c) = cell.get()
        {
            c.close();
        }
    }

    /// `(prefix, objects, watchers)` of every running cache.
    pub fn stats(&self) -> Vec<(String, usize, usize)> {
        let cells: Vec<_> = self.caches.lock().values().cloned().collect();
        cells
            .iter()
            .filter_map(|c| c.get())
            .map(|c| (c.prefix.clone(), c.len(), c.watcher_count()))
            .collect()
    }

    async fn start(&self, prefix: &str, cell: CacheCell) -> ApiResult<Arc<WatchCache>> {
        let mut objects = BTreeMap::new();
        let mut revision = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .kv
                .list(prefix.as_bytes(), after.as_deref(), revision, 0)
                .await?;
            revision = page.revision;
            for kv in &page.kvs {
                objects.insert(
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    Arc::new(decode_kv(kv)?),
                );
            }
            after = page.kvs.last().map(|kv| kv.key.to_vec());
            if !page.more || after.is_none() {
                break;
            }
        }
        let watcher = open_watch(&self.kv, prefix, revision + 1).await?;
        let (revision_tx, _) = tokio::sync::watch::channel(revision);
        let current_progress = Arc::new(Mutex::new(watcher.progress));
        let requester = current_progress.clone();
        let cache = Arc::new(WatchCache {
            prefix: prefix.to_string(),
            state: Mutex::new(State {
                objects,
                revision,
                history_start: revision,
                ..Default::default()
            }),
            revision: revision_tx,
            progress: ProgressHandle::new(move || requester.lock().request()),
        });
        let feed = cache.clone();
        let caches = self.caches.clone();
        let kv = self.kv.clone();
        let mut stream = watcher.stream;
        tokio::spawn(async move {
            loop {
                match stream.next().await {
                    Some(Ok(WatchItem::Events { revision, events })) => feed.apply(revision, &events),
                    Some(Ok(WatchItem::Progress { revision })) => feed.progressed(revision),
                    Some(Err(storage::Error::WatchOverflow { next_revision })) => {
                        // The feed fell behind the store's hub: resume where it stopped.
                        tracing::debug!(prefix = %feed.prefix, next_revision, "watch cache feed resumes");
                        match open_watch(&kv, &feed.prefix, next_revision).await {
                            Ok(w) => {
                                *current_progress.lock() = w.progress;
                                stream = w.stream;
                            }
                            Err(e) => {
                                tracing::warn!(prefix = %feed.prefix, error = %e, "watch cache feed ended");
                                break;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(prefix = %feed.prefix, error = %e, "watch cache feed ended");
                        break;
                    }
                    None => break,
                }
            }
            feed.close();
            let mut map = caches.lock();
            if map.get(&feed.prefix).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(&feed.prefix);
            }
        });
        tracing::debug!(%prefix, revision, "watch cache started");
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::json;
    use storage::PutRequest;
    use storage::mem::MemStorage;

    use super::*;
    use crate::registry::{ListOptions, WatchOptions, WriteOptions};

    #[test]
    fn an_encoding_is_made_once_per_key_and_shared() {
        let change = CachedEvent {
            revision: 7,
            key: "/registry/configmaps/default/a".into(),
            kind: EventKind::Put,
            object: Arc::new(json!({"metadata": {"name": "a"}})),
            prev: None,
            frames: Default::default(),
        };
        let key = |event_type, kind: &'static str| FrameKey {
            event_type,
            content_type: "application/json",
            api_version: "v1".into(),
            kind: kind.into(),
        };
        let mut made = 0;
        let mut encode = |tag: &str| {
            made += 1;
            tag.as_bytes().to_vec()
        };
        let first = change.encoded(&key("ADDED", "ConfigMap"), || encode("one"));
        let again = change.encoded(&key("ADDED", "ConfigMap"), || encode("two"));
        assert_eq!((first.as_ref(), again.as_ref()), (&b"one"[..], &b"one"[..]));
        // Another event type or presentation is another encoding.
        let modified = change.encoded(&key("MODIFIED", "ConfigMap"), || encode("three"));
        assert_eq!(modified.as_ref(), b"three");
        assert_eq!(made, 2);
    }
    use crate::selector::LabelSelector;
    use crate::{ApiServer, Config};

    const PREFIX: &str = "/registry/things/";

    async fn put(kv: &MemStorage, name: &str, n: u64) -> Revision {
        let value = serde_json::to_vec(&json!({"metadata": {"name": name}, "n": n})).unwrap();
        let resp = kv
            .put(PutRequest {
                key: format!("{PREFIX}{name}").into_bytes().into(),
                value: value.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        resp.revision
    }

    fn caches() -> (Arc<MemStorage>, WatchCaches) {
        let kv = Arc::new(MemStorage::new());
        (kv.clone(), WatchCaches::new(kv))
    }

    async fn next_event(rx: &mut mpsc::Receiver<CacheMessage>) -> Arc<CachedEvent> {
        loop {
            match rx.recv().await.expect("watcher open") {
                CacheMessage::Event(e) => return e,
                CacheMessage::Progress(_) => {}
            }
        }
    }

    #[tokio::test]
    async fn fans_out_the_same_events_in_order() {
        let (kv, caches) = caches();
        put(&kv, "a", 0).await;
        let cache = caches.get(PREFIX).await.unwrap();
        let mut subs: Vec<_> = (0..5).map(|_| cache.subscribe(PREFIX, None).unwrap()).collect();
        for s in &subs {
            assert!(matches!(&s.initial, Start::Objects(o) if o.len() == 1));
        }
        let mut revs = Vec::new();
        for i in 0..10 {
            revs.push(put(&kv, &format!("o{i}"), i).await);
        }
        for s in &mut subs {
            for want in &revs {
                assert_eq!(next_event(&mut s.live).await.revision, *want);
            }
        }
        assert_eq!(cache.watcher_count(), 5);
    }

    #[tokio::test]
    async fn replays_history_and_refuses_revisions_before_it() {
        let (kv, caches) = caches();
        let before = put(&kv, "a", 0).await;
        let cache = caches.get(PREFIX).await.unwrap();
        let first = put(&kv, "a", 1).await;
        let second = put(&kv, "b", 2).await;
        assert!(cache.wait_fresh(second, Duration::from_secs(10)).await);
        let sub = cache.subscribe(PREFIX, Some(first)).unwrap();
        match sub.initial {
            Start::Events(evs) => assert_eq!(evs.iter().map(|e| e.revision).collect::<Vec<_>>(), [second]),
            Start::Objects(_) => panic!("expected a replay"),
        }
        // The cache started after `before`: older revisions are the store's to serve.
        assert!(cache.subscribe(PREFIX, Some(before - 1)).is_none());
        // Past the window the start moves up.
        let mut last = second;
        for i in 0..HISTORY_CAPACITY as u64 {
            last = put(&kv, "c", i).await;
        }
        assert!(cache.wait_fresh(last, Duration::from_secs(10)).await);
        assert!(cache.subscribe(PREFIX, Some(first)).is_none());
        assert!(cache.subscribe(PREFIX, Some(last - 10)).is_some());
    }

    #[tokio::test]
    async fn closes_a_watcher_that_does_not_keep_up() {
        let (kv, caches) = caches();
        let cache = caches.get(PREFIX).await.unwrap();
        let mut slow = cache.subscribe(PREFIX, None).unwrap();
        let mut fast = cache.subscribe(PREFIX, None).unwrap();
        let total = WATCHER_BUFFER as u64 + 10;
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while n < total {
                next_event(&mut fast.live).await;
                n += 1;
            }
            n
        });
        let mut last = 0;
        for i in 0..total {
            last = put(&kv, "x", i).await;
        }
        assert!(cache.wait_fresh(last, Duration::from_secs(10)).await);
        assert_eq!(reader.await.unwrap(), total);
        let mut received = 0;
        while let Some(m) = slow.live.recv().await {
            if matches!(m, CacheMessage::Event(_)) {
                received += 1;
            }
        }
        assert!(received <= WATCHER_BUFFER, "{received}");
        // The finished reader's slot goes at the next send.
        let rev = put(&kv, "y", 0).await;
        assert!(cache.wait_fresh(rev, Duration::from_secs(10)).await);
        assert_eq!(cache.watcher_count(), 0);
    }

    #[tokio::test]
    async fn lists_reflect_writes_the_cache_has_seen() {
        let (kv, caches) = caches();
        put(&kv, "a", 0).await;
        let cache = caches.get(PREFIX).await.unwrap();
        let rev = put(&kv, "b", 1).await;
        assert!(cache.wait_fresh(rev, Duration::from_secs(10)).await);
        let (items, at) = cache.list(PREFIX, &|_| true);
        assert_eq!(at, rev);
        let names: Vec<_> = items
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(items[1]["metadata"]["resourceVersion"], rev.to_string());
        let (only_b, _) = cache.list(PREFIX, &|o| o["n"] == 1);
        assert_eq!(only_b.len(), 1);
    }

    fn pod(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": labels},
               "spec": {"containers": [{"name": "c", "image": "i"}]}})
    }

    #[tokio::test]
    async fn watchers_see_selector_transitions_and_rv0_lists_come_from_the_cache() {
        let kv = Arc::new(MemStorage::new());
        let mut config = Config::new("/nonexistent");
        config.allow_unauthenticated = true;
        let api = ApiServer::new(config, kv);
        let reg = &api.registry;
        let ns = api.table.lookup("", "v1", "namespaces").unwrap();
        reg.create(
            &ns,
            "",
            json!({"metadata": {"name": "default"}}),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
        let pods = api.table.lookup("", "v1", "pods").unwrap();
        let opts = WatchOptions {
            labels: LabelSelector::parse("app=web").unwrap(),
            ..Default::default()
        };
        let mut watch = reg.watch(pods.clone(), "default", opts).await.unwrap();
        let wo = WriteOptions::default();
        reg.create(&pods, "default", pod(json!({"app": "web"})), &wo)
            .await
            .unwrap();
        let mut p = reg.get(&pods, "default", "p").await.unwrap();
        p["metadata"]["labels"] = json!({"app": "db"});
        reg.update(&pods, "default", "p", p, &wo, None).await.unwrap();
        let mut p = reg.get(&pods, "default", "p").await.unwrap();
        p["metadata"]["labels"] = json!({"app": "web"});
        reg.update(&pods, "default", "p", p, &wo, None).await.unwrap();
        let mut kinds = Vec::new();
        for _ in 0..3 {
            let ev = watch.next().await.unwrap();
            kinds.push(ev["type"].as_str().unwrap().to_string());
        }
        assert_eq!(kinds, ["ADDED", "DELETED", "ADDED"]);

        let any = ListOptions {
            resource_version: Some(0),
            limit: 1,
            ..Default::default()
        };
        let list = reg.list(&pods, "default", &any).await.unwrap();
        // Served from the cache: `limit` is ignored for resourceVersion=0, as upstream does.
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert!(list["metadata"].get("continue").is_none());
        let cache = reg.caches.get(&pods.storage_prefix).await.unwrap();
        assert_eq!(list["metadata"]["resourceVersion"], cache.revision().to_string());
    }
}
