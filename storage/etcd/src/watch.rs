//! The `etcdserverpb.Watch` service: one bidirectional stream carries many watchers.
//!
//! Each gRPC stream is a [`Session`]: it reads the client's requests, owns the watchers, and is
//! itself the stream of responses (so responses of one watcher keep their order). It polls its
//! storage watchers' streams itself and runs only when the response stream is polled: an event
//! costs one wake-up, of the task that writes the gRPC stream, and a client that stops reading
//! stops the session (its watchers then fall behind and the store closes them as too slow).
//!
//! etcd behaviour kept here:
//! - watch IDs: an explicit ID is used as given (refused when in use); otherwise the next unused
//!   ID counting from 0 on this stream;
//! - a create is answered with `created`; an invalid one with `created` + `canceled`, watch ID -1
//!   and the reason; a start revision below the compaction point with `created`, then a response
//!   carrying `compact_revision` and `canceled`;
//! - `RequestProgress` is answered with an event-less response with watch ID -1 whose header
//!   revision R promises every event up to R has been sent on this stream, and no event above R
//!   is sent before it;
//! - watchers created with `progress_notify` get an event-less response with their own ID every
//!   progress interval (etcd: 10 minutes);
//! - a watcher the store closes (too slow, compacted, store stopping) is canceled with a reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::proto::{PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService};
use futures::stream::{AbortHandle, Abortable, BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use std::collections::VecDeque;
use storage::{Error, Event, ProgressHandle, Revision, WatchItem, WatchRequest, WatchStream};

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::Shared;
use crate::convert::{self, event_to_pb};
use crate::error::{self, to_status};

/// Watcher items taken at once when several are ready.
const READY_BATCH: usize = 64;
/// How often a progress request that has not been answered is asked again.
const PROGRESS_RETRY: Duration = Duration::from_secs(2);
/// etcd's `-1`: the watch ID of responses that concern the whole stream.
const STREAM_WATCH_ID: i64 = -1;
/// `WatchCreateRequest.FilterType.NOPUT`.
const FILTER_NOPUT: i32 = 0;
/// `WatchCreateRequest.FilterType.NODELETE`.
const FILTER_NODELETE: i32 = 1;

/// The Watch service over a store.
pub(crate) struct WatchService {
    pub(crate) shared: Arc<Shared>,
}

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = BoxStream<'static, Result<PbWatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let session = Session {
            shared: self.shared.clone(),
            outbox: VecDeque::new(),
            watchers: HashMap::new(),
            next_id: 0,
            next_gen: 0,
            round: None,
        };
        Ok(Response::new(session.responses(request.into_inner())))
    }
}

/// What one storage watcher yields to its session.
enum Pumped {
    Item(WatchItem),
    Ended(Error),
}

/// A watcher's item, tagged with the watcher it came from.
struct FromWatcher {
    id: i64,
    generation: u64,
    what: Pumped,
}

/// One live watcher of a session.
struct Entry {
    /// Distinguishes watchers that reuse an ID, so items of a canceled one are dropped.
    generation: u64,
    /// Stops the watcher's stream (it leaves the session's [`SelectAll`]).
    stop: AbortHandle,
    progress: ProgressHandle,
    progress_notify: bool,
    /// A periodic progress notification was requested and not answered yet.
    periodic_pending: bool,
}

/// An open `RequestProgress`: answered once every watcher has confirmed a common revision.
struct Round {
    /// How many requests the answer covers.
    requests: usize,
    /// Watchers that must answer, with the revision each has confirmed so far.
    answers: HashMap<i64, Option<Revision>>,
    /// The revision the answer will carry, once every watcher has answered once (the largest).
    target: Option<Revision>,
    /// Responses of watchers that already answered, above what may be sent before the answer.
    held: Vec<(i64, Revision, PbWatchResponse)>,
}

/// The state of one watch stream.
struct Session {
    shared: Arc<Shared>,
    /// Responses made and not yet taken by the gRPC stream.
    outbox: VecDeque<PbWatchResponse>,
    watchers: HashMap<i64, Entry>,
    next_id: i64,
    next_gen: u64,
    round: Option<Round>,
}

/// The session ends: the client went away or the server is stopping.
struct Closed;

/// What a session waits on besides its own state.
struct Inputs {
    inbound: Streaming<PbWatchRequest>,
    streams: SelectAll<BoxStream<'static, FromWatcher>>,
    periodic: tokio::time::Interval,
    retry: tokio::time::Interval,
    shutdown: CancellationToken,
}

impl Session {
    /// The session as the stream of responses: made step by step as the stream is polled.
    fn responses(
        self,
        inbound: Streaming<PbWatchRequest>,
    ) -> BoxStream<'static, Result<PbWatchResponse, Status>> {
        let interval = self.shared.options.progress_notify_interval;
        let mut periodic = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry = tokio::time::interval(PROGRESS_RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let inputs = Inputs {
            inbound,
            streams: SelectAll::new(),
            periodic,
            retry,
            shutdown: self.shared.shutdown.clone(),
        };
        futures::stream::unfold(
            (self, inputs, false),
            |(mut session, mut inputs, mut closed)| async move {
                loop {
                    if let Some(resp) = session.outbox.pop_front() {
                        return Some((Ok(resp), (session, inputs, closed)));
                    }
                    if closed {
                        // Dropping the inputs drops the storage watchers.
                        return None;
                    }
                    closed = session.step(&mut inputs).await.is_err();
                }
            },
        )
        .boxed()
    }

    /// Waits for the next thing to do (a request, watcher items, a timer) and does it.
    async fn step(&mut self, inputs: &mut Inputs) -> Result<(), Closed> {
        let Inputs {
            inbound,
            streams,
            periodic,
            retry,
            shutdown,
        } = inputs;
        tokio::select! {
            _ = shutdown.cancelled() => Err(Closed),
            msg = inbound.message() => match msg {
                Ok(Some(req)) => self.on_request(req, streams).await,
                Ok(None) => Err(Closed),
                Err(status) => {
                    tracing::debug!(%status, "watch stream ended");
                    Err(Closed)
                }
            },
            Some(first) = streams.next(), if !streams.is_empty() => {
                // Take what else is ready too: a watcher's backlog goes out as one response.
                let mut ready = vec![first];
                while ready.len() < READY_BATCH {
                    match streams.next().now_or_never() {
                        Some(Some(item)) => ready.push(item),
                        _ => break,
                    }
                }
                let items = if self.round.is_none() { merge_backlog(ready) } else { ready };
                for item in items {
                    self.on_pumped(item).await?;
                }
                Ok(())
            }
            _ = periodic.tick() => {
                self.request_periodic();
                Ok(())
            }
            _ = retry.tick(), if self.round.is_some() => {
                self.retry_round();
                Ok(())
            }
        }
    }

    async fn send(&mut self, resp: PbWatchResponse) -> Result<(), Closed> {
        self.outbox.push_back(resp);
        Ok(())
    }

    async fn on_request(
        &mut self,
        req: PbWatchRequest,
        streams: &mut SelectAll<BoxStream<'static, FromWatcher>>,
    ) -> Result<(), Closed> {
        match req.request_union {
            Some(PbWatchRequestUnion::CreateRequest(c)) => {
                let mut filters = (false, false);
                for f in &c.filters {
                    match *f {
                        FILTER_NOPUT => filters.0 = true,
                        FILTER_NODELETE => filters.1 = true,
                        _ => {}
                    }
                }
                let req = WatchRequest {
                    key: c.key.into(),
                    range_end: c.range_end.into(),
                    start_revision: convert::revision(c.start_revision),
                    prev_kv: c.prev_kv,
                    no_put: filters.0,
                    no_delete: filters.1,
                };
                self.create(req, c.watch_id, c.progress_notify, streams).await
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) => self.cancel(c.watch_id).await,
            Some(PbWatchRequestUnion::ProgressRequest(_)) => self.request_progress().await,
            None => Ok(()),
        }
    }

    async fn create(
        &mut self,
        req: WatchRequest,
        want_id: i64,
        progress_notify: bool,
        streams: &mut SelectAll<BoxStream<'static, FromWatcher>>,
    ) -> Result<(), Closed> {
        let header = self.shared.headers.current().await;
        let refuse = |reason: String| PbWatchResponse {
            header: Some(header),
            watch_id: STREAM_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        };
        if !req.range_end.is_empty() && req.range_end.as_ref() != [0] && req.key >= req.range_end {
            return self.send(refuse("mvcc: watcher range is empty".into())).await;
        }
        let id = if want_id != 0 {
            if want_id < 0 || self.watchers.contains_key(&want_id) {
                return self
                    .send(refuse(
                        "mvcc: duplicate watch ID provided on the WatchStream".into(),
                    ))
                    .await;
            }
            want_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        };
        let watcher = match self.shared.store.watch(req).await {
            Ok(w) => w,
            Err(Error::Compacted { compacted, .. }) => {
                let created = PbWatchResponse {
                    header: Some(header),
                    watch_id: id,
                    created: true,
                    ..Default::default()
                };
                self.send(created).await?;
                return self
                    .send(PbWatchResponse {
                        header: Some(header),
                        watch_id: id,
                        canceled: true,
                        compact_revision: convert::pb_revision(compacted),
                        ..Default::default()
                    })
                    .await;
            }
            Err(e) => return self.send(refuse(reason(e))).await,
        };
        self.send(PbWatchResponse {
            header: Some(header),
            watch_id: id,
            created: true,
            ..Default::default()
        })
        .await?;
        let generation = self.next_gen;
        self.next_gen += 1;
        let (stop, registration) = AbortHandle::new_pair();
        streams.push(tagged(id, generation, watcher.stream, registration));
        if let Some(round) = &mut self.round {
            // A watcher created while a progress request is open must confirm it too.
            round.answers.insert(id, None);
            watcher.progress.request();
        }
        self.watchers.insert(
            id,
            Entry {
                generation,
                stop,
                progress: watcher.progress,
                progress_notify,
                periodic_pending: false,
            },
        );
        Ok(())
    }

    async fn cancel(&mut self, id: i64) -> Result<(), Closed> {
        // etcd answers only for a watcher that exists.
        if !self.remove(id) {
            return Ok(());
        }
        let header = self.shared.headers.cached();
        self.send(PbWatchResponse {
            header: Some(header),
            watch_id: id,
            canceled: true,
            ..Default::default()
        })
        .await?;
        self.check_round().await
    }

    /// Forgets a watcher and stops its stream; true when it existed.
    fn remove(&mut self, id: i64) -> bool {
        let Some(entry) = self.watchers.remove(&id) else {
            return false;
        };
        entry.stop.abort();
        if let Some(round) = &mut self.round {
            round.answers.remove(&id);
            round.held.retain(|(w, _, _)| *w != id);
        }
        true
    }

    async fn request_progress(&mut self) -> Result<(), Closed> {
        if let Some(round) = &mut self.round {
            round.requests += 1;
            return Ok(());
        }
        if self.watchers.is_empty() {
            let header = self.shared.headers.current().await;
            return self
                .send(PbWatchResponse {
                    header: Some(header),
                    watch_id: STREAM_WATCH_ID,
                    ..Default::default()
                })
                .await;
        }
        let mut answers = HashMap::new();
        for (id, entry) in &self.watchers {
            answers.insert(*id, None);
            entry.progress.request();
        }
        self.round = Some(Round {
            requests: 1,
            answers,
            target: None,
            held: Vec::new(),
        });
        Ok(())
    }

    fn retry_round(&self) {
        let Some(round) = &self.round else { return };
        for (id, answer) in &round.answers {
            let behind = match (answer, round.target) {
                (None, _) => true,
                (Some(a), Some(t)) => *a < t,
                (Some(_), None) => false,
            };
            if behind && let Some(entry) = self.watchers.get(id) {
                entry.progress.request();
            }
        }
    }

    fn request_periodic(&mut self) {
        for entry in self.watchers.values_mut() {
            if entry.progress_notify && !entry.periodic_pending {
                entry.periodic_pending = true;
                entry.progress.request();
            }
        }
    }

    async fn on_pumped(&mut self, item: FromWatcher) -> Result<(), Closed> {
        let FromWatcher { id, generation, what } = item;
        if self.watchers.get(&id).is_none_or(|e| e.generation != generation) {
            return Ok(()); // A canceled watcher's leftovers.
        }
        match what {
            Pumped::Item(WatchItem::Events { revision, events }) => {
                let resp = PbWatchResponse {
                    header: Some(self.shared.headers.at(revision)),
                    watch_id: id,
                    events: events.into_iter().map(|e: Event| event_to_pb(e, true)).collect(),
                    ..Default::default()
                };
                self.emit(id, revision, resp).await
            }
            Pumped::Item(WatchItem::Progress { revision }) => {
                let periodic = self
                    .watchers
                    .get_mut(&id)
                    .is_some_and(|e| std::mem::take(&mut e.periodic_pending));
                if periodic {
                    let resp = PbWatchResponse {
                        header: Some(self.shared.headers.at(revision)),
                        watch_id: id,
                        ..Default::default()
                    };
                    self.emit(id, revision, resp).await?;
                }
                if let Some(round) = &mut self.round
                    && let Some(answer) = round.answers.get_mut(&id)
                {
                    *answer = Some(answer.map_or(revision, |a| a.max(revision)));
                }
                self.check_round().await
            }
            Pumped::Ended(e) => {
                self.remove(id);
                let header = Some(self.shared.headers.cached());
                let resp = match e {
                    Error::Compacted { compacted, .. } => PbWatchResponse {
                        header,
                        watch_id: id,
                        canceled: true,
                        compact_revision: convert::pb_revision(compacted),
                        ..Default::default()
                    },
                    Error::Unavailable(_) if self.shared.shutdown.is_cancelled() => return Err(Closed),
                    other => PbWatchResponse {
                        header,
                        watch_id: id,
                        canceled: true,
                        cancel_reason: reason(other),
                        ..Default::default()
                    },
                };
                self.send(resp).await?;
                self.check_round().await
            }
        }
    }

    /// Sends a watcher's response now, or holds it until the open progress answer is sent when
    /// it is above what that answer may be preceded by.
    async fn emit(&mut self, id: i64, revision: Revision, resp: PbWatchResponse) -> Result<(), Closed> {
        if let Some(round) = &mut self.round
            && let Some(Some(_answered)) = round.answers.get(&id)
            && round.target.is_none_or(|t| revision > t)
        {
            round.held.push((id, revision, resp));
            return Ok(());
        }
        self.send(resp).await
    }

    /// Moves an open progress request forward: fixes its revision once every watcher answered,
    /// and sends the answer once every watcher has confirmed that revision.
    async fn check_round(&mut self) -> Result<(), Closed> {
        let Some(round) = &mut self.round else {
            return Ok(());
        };
        if round.answers.values().any(Option::is_none) {
            return Ok(());
        }
        let newly_fixed = round.target.is_none();
        let target = match round.target {
            Some(t) => t,
            None => {
                let max = round.answers.values().flatten().copied().max().unwrap_or(0);
                round.target = Some(max);
                max
            }
        };
        if round.answers.values().flatten().all(|a| *a >= target) {
            let Some(round) = self.round.take() else {
                return Ok(());
            };
            let target = if round.answers.is_empty() {
                self.shared.headers.current().await.revision
            } else {
                convert::pb_revision(target)
            };
            for _ in 0..round.requests {
                let header = etcd_client::proto::PbResponseHeader {
                    revision: target,
                    ..self.shared.headers.cached()
                };
                self.send(PbWatchResponse {
                    header: Some(header),
                    watch_id: STREAM_WATCH_ID,
                    ..Default::default()
                })
                .await?;
            }
            for (_, _, resp) in round.held {
                self.send(resp).await?;
            }
            return Ok(());
        }
        if newly_fixed {
            // Send what may now go, and ask the watchers behind the target to catch up.
            let held = std::mem::take(&mut round.held);
            let (now, later): (Vec<_>, Vec<_>) = held.into_iter().partition(|(_, rev, _)| *rev <= target);
            round.held = later;
            for (id, answer) in &round.answers {
                if answer.is_some_and(|a| a < target)
                    && let Some(entry) = self.watchers.get(id)
                {
                    entry.progress.request();
                }
            }
            for (_, _, resp) in now {
                self.send(resp).await?;
            }
        }
        Ok(())
    }
}

/// The cancel reason sent for a watcher the store closed or refused.
fn reason(e: Error) -> String {
    match e {
        Error::WatchOverflow { next_revision } => {
            format!("etcdserver: watcher too slow: closed; watch again from revision {next_revision}")
        }
        Error::Unavailable(_) => error::STOPPED.to_owned(),
        other => to_status(other).message().to_owned(),
    }
}

/// Merges each watcher's consecutive event batches in `items` into one (keeping every watcher's
/// order; a progress or end item is never overtaken). Only while no progress request is open:
/// its answer must not follow an event at or below its revision.
fn merge_backlog(items: Vec<FromWatcher>) -> Vec<FromWatcher> {
    let mut out: Vec<FromWatcher> = Vec::with_capacity(items.len());
    // Per watcher, the index in `out` of its last event batch, while nothing came after it.
    let mut open: HashMap<(i64, u64), usize> = HashMap::new();
    for item in items {
        let key = (item.id, item.generation);
        match (item.what, open.get(&key)) {
            (Pumped::Item(WatchItem::Events { revision, events }), Some(&at)) => {
                if let Pumped::Item(WatchItem::Events {
                    revision: last,
                    events: merged,
                }) = &mut out[at].what
                {
                    *last = revision;
                    merged.extend(events);
                }
            }
            (what, _) => {
                if matches!(what, Pumped::Item(WatchItem::Events { .. })) {
                    open.insert(key, out.len());
                } else {
                    open.remove(&key);
                }
                out.push(FromWatcher {
                    id: item.id,
                    generation: item.generation,
                    what,
                });
            }
        }
    }
    out
}

/// One storage watcher's items tagged with its ID, ending after the first [`Pumped::Ended`] (an
/// error, or the store ending the watch) or when stopped through `registration`'s handle.
fn tagged(
    id: i64,
    generation: u64,
    stream: WatchStream,
    registration: futures::stream::AbortRegistration,
) -> BoxStream<'static, FromWatcher> {
    let items = stream
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .scan(false, move |ended, item| {
            if *ended {
                return futures::future::ready(None);
            }
            let what = match item {
                Some(Ok(item)) => Pumped::Item(item),
                Some(Err(e)) => Pumped::Ended(e),
                None => Pumped::Ended(Error::Unavailable("watch ended".into())),
            };
            *ended = matches!(what, Pumped::Ended(_));
            futures::future::ready(Some(FromWatcher { id, generation, what }))
        });
    Abortable::new(items, registration).boxed()
}

#[cfg(test)]
mod tests {
    use storage::{EventKind, KeyValue};

    use super::*;

    fn events(id: i64, revision: Revision) -> FromWatcher {
        let kv = KeyValue {
            key: format!("k{revision}").into_bytes().into(),
            mod_revision: revision,
            ..Default::default()
        };
        FromWatcher {
            id,
            generation: 0,
            what: Pumped::Item(WatchItem::Events {
                revision,
                events: vec![Event {
                    kind: EventKind::Put,
                    kv,
                    prev_kv: None,
                }],
            }),
        }
    }

    fn progress(id: i64, revision: Revision) -> FromWatcher {
        FromWatcher {
            id,
            generation: 0,
            what: Pumped::Item(WatchItem::Progress { revision }),
        }
    }

    /// (watch ID, revision, events) per item; 0 events for a progress item.
    fn shape(items: &[FromWatcher]) -> Vec<(i64, Revision, usize)> {
        items
            .iter()
            .map(|i| match &i.what {
                Pumped::Item(WatchItem::Events { revision, events }) => (i.id, *revision, events.len()),
                Pumped::Item(WatchItem::Progress { revision }) => (i.id, *revision, 0),
                Pumped::Ended(_) => (i.id, 0, 0),
            })
            .collect()
    }

    #[test]
    fn a_backlog_merges_per_watcher_and_never_jumps_a_progress_item() {
        let items = vec![
            events(1, 5),
            events(2, 5),
            events(1, 6),
            progress(2, 6),
            events(2, 7),
            events(1, 7),
            events(2, 8),
        ];
        assert_eq!(
            shape(&merge_backlog(items)),
            vec![(1, 7, 3), (2, 5, 1), (2, 6, 0), (2, 8, 2)]
        );
    }
}
