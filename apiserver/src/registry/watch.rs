//! WATCH: storage events turned into Kubernetes watch events, with selector transitions computed
//! from each event's previous value (an object that stops matching is DELETED for that watcher),
//! bookmarks from storage progress notifications, `timeoutSeconds`, and 410 as an ERROR event.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use storage::{Event, EventKind, ProgressHandle, Revision, WatchItem, WatchRequest, prefix_end};

use super::{ListOptions, Registry};
use crate::descriptor::ResourceDescriptor;
use crate::error::{ApiError, ApiResult};
use crate::objstore::{decode_kv, set_resource_version};
use crate::selector::{FieldSelector, LabelSelector};

/// Watch events (`{"type": ..., "object": ...}`), in order.
pub type WatchStream = BoxStream<'static, Value>;

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

struct State {
    desc: Arc<ResourceDescriptor>,
    labels: LabelSelector,
    fields: FieldSelector,
    pending: VecDeque<Value>,
    events: storage::WatchStream,
    progress: ProgressHandle,
    deadline: tokio::time::Instant,
    ticker: Option<tokio::time::Interval>,
    last_rv: Revision,
    done: bool,
}

impl State {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches_object(obj)
    }

    fn present(&self, mut obj: Value) -> Value {
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), Value::String(self.desc.api_version()));
            map.insert("kind".into(), Value::String(self.desc.kind.clone()));
        }
        if let Some(hooks) = &self.desc.hooks {
            hooks.present(&mut obj);
        }
        obj
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

    /// The watch event (if any) one storage event is for this watcher.
    fn translate(&self, e: &Event, revision: Revision) -> ApiResult<Option<Value>> {
        let prev = e.prev_kv.as_ref().map(decode_kv).transpose()?;
        let prev_passes = prev.as_ref().is_some_and(|p| self.matches(p));
        let deleted = |mut p: Value| {
            set_resource_version(&mut p, revision);
            event("DELETED", self.present(p))
        };
        match e.kind {
            EventKind::Put => {
                let cur = decode_kv(&e.kv)?;
                let cur_passes = self.matches(&cur);
                Ok(match (cur_passes, prev_passes) {
                    (true, true) => Some(event("MODIFIED", self.present(cur))),
                    (true, false) => Some(event("ADDED", self.present(cur))),
                    (false, true) => prev.map(deleted),
                    (false, false) => None,
                })
            }
            EventKind::Delete => Ok(if prev_passes { prev.map(deleted) } else { None }),
        }
    }

    async fn next_event(mut self) -> Option<(Value, State)> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some((ev, self));
            }
            if self.done {
                return None;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => self.done = true,
                _ = async {
                    match self.ticker.as_mut() {
                        Some(t) => { t.tick().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => self.progress.request(),
                item = self.events.next() => match item {
                    None => self.done = true,
                    Some(Ok(WatchItem::Events { revision, events })) => {
                        for e in &events {
                            match self.translate(e, revision) {
                                Ok(Some(ev)) => self.pending.push_back(ev),
                                Ok(None) => {}
                                Err(err) => {
                                    self.pending.push_back(event("ERROR", err.to_json()));
                                    self.done = true;
                                    break;
                                }
                            }
                        }
                        self.last_rv = revision;
                    }
                    Some(Ok(WatchItem::Progress { revision })) => {
                        if self.ticker.is_some() && revision > 0 {
                            self.last_rv = self.last_rv.max(revision);
                            let bm = self.bookmark(self.last_rv, false);
                            self.pending.push_back(bm);
                        }
                    }
                    Some(Err(e)) => {
                        // A compacted start or a watcher that fell behind: the client re-lists
                        // (410) or re-watches from its last revision.
                        if matches!(e, storage::Error::Compacted { .. }) {
                            self.pending.push_back(event("ERROR", ApiError::from(e).to_json()));
                        } else {
                            tracing::debug!(error = %e, "watch ended by storage");
                        }
                        self.done = true;
                    }
                },
            }
        }
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
        let mut pending = VecDeque::new();
        let present = |mut o: Value| {
            if let Some(map) = o.as_object_mut() {
                map.insert("apiVersion".into(), Value::String(desc.api_version()));
                map.insert("kind".into(), Value::String(desc.kind.clone()));
            }
            o
        };
        let initial = opts.send_initial_events || matches!(opts.resource_version, None | Some(0));
        let start = if initial {
            let list = ListOptions {
                labels: opts.labels.clone(),
                fields: opts.fields.clone(),
                ..Default::default()
            };
            let page = self.list_page(&desc, ns, &list).await?;
            for item in page.items {
                pending.push_back(event("ADDED", present(item)));
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
            Err(e @ storage::Error::Compacted { .. }) => {
                // Answer 200 and an ERROR event: clients re-list on it (a 410 status would not
                // reset kube-rs's watcher).
                let err = ApiError::from(e);
                return Ok(futures::stream::iter([event("ERROR", err.to_json())]).boxed());
            }
            Err(e) => return Err(e.into()),
        };
        let timeout = opts.timeout.unwrap_or(self.config.default_watch_timeout);
        let ticker = opts.allow_bookmarks.then(|| {
            let period = self.config.bookmark_interval;
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut state = State {
            desc: desc.clone(),
            labels: opts.labels,
            fields: opts.fields,
            pending,
            events: watcher.stream,
            progress: watcher.progress,
            deadline: tokio::time::Instant::now() + timeout,
            ticker,
            last_rv: start,
            done: false,
        };
        if opts.send_initial_events && opts.allow_bookmarks {
            let bm = state.bookmark(start, true);
            state.pending.push_back(bm);
        }
        Ok(futures::stream::unfold(state, State::next_event).boxed())
    }
}
