//! WATCH: Kubernetes watch events from the resource's watch cache (or, for a resourceVersion older
//! than the cache's history, from a storage watch of its own), with selector transitions computed
//! from each event's previous value (an object that stops matching is DELETED for that watcher),
//! bookmarks from progress notifications, `timeoutSeconds`, and 410 as an ERROR event.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use storage::{EventKind, ProgressHandle, Revision, WatchItem, WatchRequest, prefix_end};

use super::{ListOptions, Registry};
use crate::cache::{CacheMessage, CachedEvent, Start};
use crate::descriptor::ResourceDescriptor;
use crate::error::{ApiError, ApiResult};
use crate::objstore::{decode_kv, set_resource_version};
use crate::selector::{FieldSelector, LabelSelector};

/// Watch events (`{"type": ..., "object": ...}`), in order.
pub type WatchStream = BoxStream<'static, Value>;

/// Watch events as [`WatchEvent`]s, in order: what the HTTP handler streams.
pub type WatchEventStream = BoxStream<'static, WatchEvent>;

/// One event for one watcher.
#[derive(Debug)]
pub enum WatchEvent {
    /// An event made for this watcher (initial objects, bookmarks, errors, selector exits).
    Value(Value),
    /// A change of the watch cache delivered as it is: every watcher of the resource that gets
    /// it as the same event type can share one encoding ([`CachedEvent::encoded`]).
    Shared {
        /// The change.
        change: Arc<CachedEvent>,
        /// ADDED, MODIFIED or DELETED.
        event_type: &'static str,
    },
}

impl WatchEvent {
    /// The event as `{"type": ..., "object": ...}`, the object presented as `desc`.
    pub fn into_value(self, desc: &ResourceDescriptor) -> Value {
        match self {
            WatchEvent::Value(v) => v,
            WatchEvent::Shared { change, event_type } => {
                event(event_type, present(desc, Value::clone(&change.object)))
            }
        }
    }
}

/// An object as a client of `desc` sees it: its apiVersion and kind, and the type's own touches.
fn present(desc: &ResourceDescriptor, mut obj: Value) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(desc.api_version()));
        map.insert("kind".into(), Value::String(desc.kind.clone()));
    }
    if let Some(hooks) = &desc.hooks {
        hooks.present(&mut obj);
    }
    obj
}

/// Options of a watch.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `resourceVersion`: unset or 0 sends the current state first; N starts after N.
    pub resource_version: Option<Revision>,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// `sendInitialEvents`: current state, then a bookmark marking its end.
    pub send_initial_events: bool,
}

fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

/// What feeds one watcher: the shared cache or a storage watch of its own.
enum Source {
    Cache(tokio::sync::mpsc::Receiver<CacheMessage>),
    Store(storage::WatchStream),
}

/// One item of a source.
enum SourceItem {
    Events(Vec<Arc<CachedEvent>>),
    Progress(Revision),
    Failed(ApiError),
    End,
}

impl Source {
    async fn next(&mut self) -> SourceItem {
        match self {
            Source::Cache(rx) => match rx.recv().await {
                Some(CacheMessage::Event(e)) => SourceItem::Events(vec![e]),
                Some(CacheMessage::Progress(rv)) => SourceItem::Progress(rv),
                None => SourceItem::End,
            },
            Source::Store(s) => match s.next().await {
                None => SourceItem::End,
                Some(Ok(WatchItem::Events { revision, events })) => {
                    match events.iter().map(|e| decode_event(e, revision)).collect() {
                        Ok(evs) => SourceItem::Events(evs),
                        Err(e) => SourceItem::Failed(e),
                    }
                }
                Some(Ok(WatchItem::Progress { revision })) => SourceItem::Progress(revision),
                // A compacted start or a watcher that fell behind: the client re-lists (410) or
                // re-watches from its last revision.
                Some(Err(e @ storage::Error::Compacted { .. })) => SourceItem::Failed(e.into()),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "watch ended by storage");
                    SourceItem::End
                }
            },
        }
    }
}

/// A storage event decoded as the cache holds them.
fn decode_event(e: &storage::Event, revision: Revision) -> ApiResult<Arc<CachedEvent>> {
    let prev = e.prev_kv.as_ref().map(decode_kv).transpose()?;
    let object = match e.kind {
        EventKind::Put => decode_kv(&e.kv)?,
        EventKind::Delete => {
            let mut p = prev.clone().unwrap_or(Value::Null);
            set_resource_version(&mut p, revision);
            p
        }
    };
    Ok(Arc::new(CachedEvent {
        revision,
        key: String::from_utf8_lossy(&e.kv.key).into_owned(),
        kind: e.kind,
        object: Arc::new(object),
        prev: prev.map(Arc::new),
        frames: Default::default(),
    }))
}

struct State {
    desc: Arc<ResourceDescriptor>,
    labels: LabelSelector,
    fields: FieldSelector,
    pending: VecDeque<WatchEvent>,
    source: Source,
    progress: ProgressHandle,
    /// Ends the watch at its timeout (kept armed across events: no timer registered per event).
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    ticker: Option<tokio::time::Interval>,
    bookmark_due: bool,
    last_rv: Revision,
    done: bool,
}

impl State {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches_object(obj)
    }

    fn present(&self, obj: Value) -> Value {
        present(&self.desc, obj)
    }

    fn bookmark(&self, rv: Revision, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event(
            "BOOKMARK",
            json!({"kind": self.desc.kind, "apiVersion": self.desc.api_version(), "metadata": meta}),
        )
    }

    /// The watch event (if any) one change is for this watcher.
    fn translate(&self, e: &Arc<CachedEvent>) -> Option<WatchEvent> {
        let prev_passes = e.prev.as_deref().is_some_and(|p| self.matches(p));
        let shared = |event_type| WatchEvent::Shared {
            change: e.clone(),
            event_type,
        };
        // An object leaving the selector is DELETED as it was before the change.
        let left = |p: &Value| {
            let mut p = p.clone();
            set_resource_version(&mut p, e.revision);
            WatchEvent::Value(event("DELETED", self.present(p)))
        };
        match e.kind {
            EventKind::Put => {
                let cur_passes = self.matches(&e.object);
                match (cur_passes, prev_passes) {
                    (true, true) => Some(shared("MODIFIED")),
                    (true, false) => Some(shared("ADDED")),
                    (false, true) => e.prev.as_deref().map(left),
                    (false, false) => None,
                }
            }
            EventKind::Delete => prev_passes.then(|| shared("DELETED")),
        }
    }

    fn push_events(&mut self, events: &[Arc<CachedEvent>]) {
        for e in events {
            if e.revision <= self.last_rv {
                continue;
            }
            if let Some(ev) = self.translate(e) {
                self.pending.push_back(ev);
            }
        }
        if let Some(last) = events.last() {
            self.last_rv = self.last_rv.max(last.revision);
        }
    }

    async fn next_event(mut self) -> Option<(WatchEvent, State)> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                crate::metrics::watch_event_sent();
                return Some((ev, self));
            }
            if self.done {
                return None;
            }
            tokio::select! {
                _ = &mut self.deadline => self.done = true,
                _ = async {
                    match self.ticker.as_mut() {
                        Some(t) => { t.tick().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    self.bookmark_due = true;
                    self.progress.request();
                }
                item = self.source.next() => match item {
                    SourceItem::End => self.done = true,
                    SourceItem::Events(events) => self.push_events(&events),
                    SourceItem::Progress(revision) => {
                        if self.bookmark_due && revision > 0 {
                            self.bookmark_due = false;
                            self.last_rv = self.last_rv.max(revision);
                            let bm = self.bookmark(self.last_rv, false);
                            self.pending.push_back(WatchEvent::Value(bm));
                        }
                    }
                    SourceItem::Failed(err) => {
                        self.pending.push_back(WatchEvent::Value(event("ERROR", err.to_json())));
                        self.done = true;
                    }
                },
            }
        }
    }
}

/// The registered-watchers gauge, decremented when the watch ends.
struct Registered;

impl Registered {
    fn new() -> Self {
        crate::metrics::watcher_registered(1);
        Registered
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        crate::metrics::watcher_registered(-1);
    }
}

impl Registry {
    /// Starts a watch of a collection.
    pub async fn watch(
        &self,
        desc: Arc<ResourceDescriptor>,
        ns: &str,
        opts: WatchOptions,
    ) -> ApiResult<WatchStream> {
        let events = self.watch_events(desc.clone(), ns, opts).await?;
        Ok(events.map(move |e| e.into_value(&desc)).boxed())
    }

    /// Starts a watch of a collection whose cache changes stay shared (see [`WatchEvent`]).
    pub async fn watch_events(
        &self,
        desc: Arc<ResourceDescriptor>,
        ns: &str,
        opts: WatchOptions,
    ) -> ApiResult<WatchEventStream> {
        let initial = opts.send_initial_events || matches!(opts.resource_version, None | Some(0));
        // A watch-list "not older than N" first waits for N (upstream: an ERROR event after 3 s).
        if let (true, Some(rv)) = (opts.send_initial_events, opts.resource_version)
            && let Err(too_large) = self.ensure_revision(&desc, rv).await
        {
            let error = WatchEvent::Value(event("ERROR", too_large.to_json()));
            return Ok(futures::stream::iter([error]).boxed());
        }
        let prefix = desc.collection_prefix(ns);
        let mut state = match self.watch_from_cache(&desc, &prefix, &opts, initial).await? {
            Some(state) => state,
            None => match self.watch_from_store(&desc, ns, &opts, initial).await? {
                Ok(state) => state,
                Err(too_old) => {
                    // Answer 200 and an ERROR event: clients re-list on it (a 410 status would
                    // not reset kube-rs's watcher).
                    let error = WatchEvent::Value(event("ERROR", too_old.to_json()));
                    return Ok(futures::stream::iter([error]).boxed());
                }
            },
        };
        if opts.send_initial_events && opts.allow_bookmarks {
            let bm = state.bookmark(state.last_rv, true);
            state.pending.push_back(WatchEvent::Value(bm));
        }
        let registered = Registered::new();
        Ok(
            futures::stream::unfold((state, registered), |(state, reg)| async move {
                state.next_event().await.map(|(ev, state)| (ev, (state, reg)))
            })
            .boxed(),
        )
    }

    fn new_state(
        &self,
        desc: &Arc<ResourceDescriptor>,
        opts: &WatchOptions,
        source: Source,
        progress: ProgressHandle,
        last_rv: Revision,
    ) -> State {
        let timeout = opts.timeout.unwrap_or(self.config.default_watch_timeout);
        let ticker = opts.allow_bookmarks.then(|| {
            let period = self.config.bookmark_interval;
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        State {
            desc: desc.clone(),
            labels: opts.labels.clone(),
            fields: opts.fields.clone(),
            pending: VecDeque::new(),
            source,
            progress,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            ticker,
            bookmark_due: false,
            last_rv,
            done: false,
        }
    }

    /// A watcher fed by the resource's cache; `None` when the cache cannot serve it (disabled, or
    /// a resourceVersion older than its history).
    async fn watch_from_cache(
        &self,
        desc: &Arc<ResourceDescriptor>,
        prefix: &str,
        opts: &WatchOptions,
        initial: bool,
    ) -> ApiResult<Option<State>> {
        if !self.config.watch_cache {
            return Ok(None);
        }
        let cache = self.caches.get(&desc.storage_prefix).await?;
        if initial && opts.resource_version.is_none() {
            // The current state: as fresh as the store (else served by the store).
            let current = self.store.current_revision().await?;
            if !cache.wait_fresh(current, crate::cache::FRESHNESS_TIMEOUT).await {
                return Ok(None);
            }
        }
        let from = if initial { None } else { opts.resource_version };
        let Some(sub) = cache.subscribe(prefix, from) else {
            return Ok(None);
        };
        let mut state = self.new_state(desc, opts, Source::Cache(sub.live), sub.progress, sub.revision);
        match sub.initial {
            Start::Objects(objects) => {
                let added: Vec<WatchEvent> = objects
                    .iter()
                    .filter(|o| state.matches(o))
                    .map(|o| WatchEvent::Value(event("ADDED", state.present(Value::clone(o)))))
                    .collect();
                state.pending.extend(added);
            }
            Start::Events(events) => {
                state.last_rv = from.unwrap_or(0);
                state.push_events(&events);
                state.last_rv = state.last_rv.max(sub.revision);
            }
        }
        Ok(Some(state))
    }

    /// A watcher with its own storage watch (a resourceVersion older than the cache's history);
    /// `Err` holds the 410 for a compacted one.
    async fn watch_from_store(
        &self,
        desc: &Arc<ResourceDescriptor>,
        ns: &str,
        opts: &WatchOptions,
        initial: bool,
    ) -> ApiResult<Result<State, ApiError>> {
        let mut pending = VecDeque::new();
        let start = if initial {
            let list = ListOptions {
                labels: opts.labels.clone(),
                fields: opts.fields.clone(),
                ..Default::default()
            };
            let page = self.list_page_from_store(desc, ns, &list).await?;
            for mut item in page.items {
                self.present(desc, &mut item);
                pending.push_back(WatchEvent::Value(event("ADDED", item)));
            }
            page.revision
        } else {
            opts.resource_version.unwrap_or(0)
        };
        let prefix = desc.collection_prefix(ns);
        let watched = self
            .store
            .kv()
            .watch(WatchRequest {
                key: prefix.clone().into_bytes().into(),
                range_end: prefix_end(prefix.as_bytes()),
                start_revision: start + 1,
                prev_kv: true,
                ..Default::default()
            })
            .await;
        let watcher = match watched {
            Ok(w) => w,
            Err(e @ storage::Error::Compacted { .. }) => return Ok(Err(ApiError::from(e))),
            Err(e) => return Err(e.into()),
        };
        let mut state = self.new_state(desc, opts, Source::Store(watcher.stream), watcher.progress, start);
        state.pending = pending;
        Ok(Ok(state))
    }
}
