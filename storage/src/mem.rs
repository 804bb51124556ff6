//! `MemStorage`: the in-memory reference implementation of [`Storage`]. Used by tests, by
//! `--ephemeral` servers and as the model the raft store is checked against.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::RwLock;

use crate::hub::{History, HubConfig, WatchHub};
use crate::lease::{LeaseTable, new_lease_id};
use crate::mvcc::{self, MvccRead, WriteSet};
use crate::{
    Error, Event, EventKind, KeyValue, LeaseId, LeaseInfo, Member, RangeRequest, RangeResponse, Result,
    Revision, SnapshotStream, Status, Storage, TxnRequest, TxnResponse, WatchRequest, Watcher,
};

/// How often expired leases are looked for.
const LEASE_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// The in-memory MVCC store.
#[derive(Clone)]
pub struct MemStorage {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    hub: WatchHub,
}

#[derive(Default)]
struct State {
    /// Every key's versions, oldest first. `None` marks a deletion.
    keys: BTreeMap<Bytes, Vec<(Revision, Option<KeyValue>)>>,
    /// The events of each revision.
    events: BTreeMap<Revision, Arc<[Event]>>,
    revision: Revision,
    compacted: Revision,
    leases: LeaseTable,
}

impl MvccRead for State {
    fn current_revision(&self) -> Revision {
        self.revision
    }

    fn compacted_revision(&self) -> Revision {
        self.compacted
    }

    fn range_at(
        &self,
        key: &[u8],
        range_end: &[u8],
        at: Revision,
        limit: u64,
    ) -> Result<(Vec<KeyValue>, u64)> {
        let Some(bounds) = mvcc::key_bounds(key, range_end) else {
            return Ok((Vec::new(), 0));
        };
        let live = self.keys.range::<[u8], _>(bounds).filter_map(|(_, versions)| {
            let idx = versions.partition_point(|(rev, _)| *rev <= at);
            idx.checked_sub(1).and_then(|i| versions[i].1.as_ref())
        });
        let (kept, count) = mvcc::take_counting(live, limit);
        Ok((kept.into_iter().cloned().collect(), count))
    }

    fn lease_exists(&self, id: LeaseId) -> bool {
        self.leases.contains(id)
    }
}

impl State {
    fn commit(&mut self, ws: &WriteSet) {
        if ws.is_empty() {
            return;
        }
        for e in &ws.events {
            let version = match e.kind {
                EventKind::Put => Some(e.kv.clone()),
                EventKind::Delete => None,
            };
            self.keys
                .entry(e.kv.key.clone())
                .or_default()
                .push((ws.revision, version));
        }
        self.leases.apply_events(&ws.events);
        self.events.insert(ws.revision, ws.events.clone().into());
        self.revision = ws.revision;
    }

    fn compact(&mut self, upto: Revision) {
        self.keys.retain(|_, versions| {
            // Keep the newest version at or below `upto` (what a read at `upto` sees) and all newer ones.
            let keep_from = versions
                .partition_point(|(rev, _)| *rev <= upto)
                .saturating_sub(1);
            versions.drain(..keep_from);
            if let Some((rev, None)) = versions.first()
                && *rev < upto
            {
                versions.remove(0);
            }
            !versions.is_empty()
        });
        self.events = self.events.split_off(&upto);
        self.compacted = upto;
    }
}

/// Serves watch history from the event log.
struct EventLog(Weak<Inner>);

impl History for EventLog {
    fn events(&self, from: Revision, to: Revision) -> Result<Vec<(Revision, Vec<Event>)>> {
        let inner = self
            .0
            .upgrade()
            .ok_or_else(|| Error::Unavailable("store closed".into()))?;
        let state = inner.state.read();
        if from < state.compacted {
            return Err(Error::Compacted {
                requested: from,
                compacted: state.compacted,
            });
        }
        Ok(state
            .events
            .range(from..=to)
            .map(|(rev, events)| (*rev, events.to_vec()))
            .collect())
    }

    fn compacted_revision(&self) -> Revision {
        self.0.upgrade().map_or(0, |inner| inner.state.read().compacted)
    }
}

impl Default for MemStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemStorage {
    /// An empty store. Lease expiry runs on the current tokio runtime, if there is one.
    pub fn new() -> Self {
        Self::with_hub_config(HubConfig::default())
    }

    /// An empty store with the given watch buffer sizes.
    pub fn with_hub_config(config: HubConfig) -> Self {
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| Inner {
            state: RwLock::new(State {
                revision: 1,
                ..Default::default()
            }),
            hub: WatchHub::new(Arc::new(EventLog(weak.clone())), 1, config),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(expire_leases(Arc::downgrade(&inner)));
        }
        MemStorage { inner }
    }

    fn write(&self, req: &TxnRequest) -> Result<TxnResponse> {
        let mut state = self.inner.state.write();
        let (resp, ws) = mvcc::evaluate_txn(&*state, req)?;
        state.commit(&ws);
        if !ws.is_empty() {
            // Published under the lock so revisions reach the hub in order.
            self.inner.hub.publish(ws.revision, ws.events);
        }
        Ok(resp)
    }

    fn revoke(&self, id: LeaseId) -> Result<Revision> {
        let mut state = self.inner.state.write();
        let keys = state.leases.keys(id)?;
        let (_, ws) = mvcc::evaluate_txn(&*state, &mvcc::revoke_txn(keys))?;
        state.commit(&ws);
        state.leases.revoke(id)?;
        if !ws.is_empty() {
            self.inner.hub.publish(ws.revision, ws.events);
        }
        Ok(state.revision)
    }
}

async fn expire_leases(weak: Weak<Inner>) {
    let mut tick = tokio::time::interval(LEASE_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let store = MemStorage { inner };
        let expired = store.inner.state.read().leases.expired(Instant::now());
        for id in expired {
            match store.revoke(id) {
                Ok(_) | Err(Error::LeaseNotFound(_)) => {}
                Err(e) => tracing::warn!(lease = id, error = %e, "revoking expired lease failed"),
            }
        }
    }
}

#[async_trait]
impl Storage for MemStorage {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        mvcc::range(&*self.inner.state.read(), &req)
    }

    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        self.write(&req)
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        self.inner.hub.watch(req)
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.state.read().revision)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut state = self.inner.state.write();
        mvcc::read_revision(&*state, revision)?;
        if revision <= state.compacted {
            return Err(Error::Compacted {
                requested: revision,
                compacted: state.compacted,
            });
        }
        state.compact(revision);
        Ok(())
    }

    async fn lease_grant(&self, id: LeaseId, ttl: i64) -> Result<LeaseInfo> {
        let mut state = self.inner.state.write();
        let id = if id == 0 { new_lease_id() } else { id };
        state.leases.grant(id, ttl, Instant::now())
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<Revision> {
        self.revoke(id)
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<i64> {
        self.inner.state.write().leases.keep_alive(id, Instant::now())
    }

    async fn lease_time_to_live(&self, id: LeaseId, keys: bool) -> Result<LeaseInfo> {
        self.inner
            .state
            .read()
            .leases
            .time_to_live(id, keys, Instant::now())
    }

    async fn lease_list(&self) -> Result<Vec<LeaseId>> {
        Ok(self.inner.state.read().leases.ids())
    }

    async fn member_list(&self) -> Result<Vec<Member>> {
        Ok(vec![Member {
            id: 1,
            name: "memory".into(),
            ..Default::default()
        }])
    }

    async fn status(&self) -> Result<Status> {
        let state = self.inner.state.read();
        let db_size = state
            .keys
            .iter()
            .map(|(k, versions)| {
                k.len()
                    + versions
                        .iter()
                        .map(|(_, kv)| kv.as_ref().map_or(16, |kv| kv.value.len() + 48))
                        .sum::<usize>()
            })
            .sum::<usize>() as u64;
        Ok(Status {
            member_id: 1,
            leader_id: 1,
            revision: state.revision,
            compact_revision: state.compacted,
            db_size,
            ..Default::default()
        })
    }

    async fn snapshot(&self) -> Result<SnapshotStream> {
        let state = self.inner.state.read();
        let (kvs, _) = state.range_at(&[0], &[0], state.revision, 0)?;
        let dump = MemSnapshot {
            revision: state.revision,
            kvs,
            leases: state.leases.export(),
        };
        let bytes = serde_json::to_vec(&dump).map_err(Error::internal)?;
        Ok(Box::pin(futures::stream::once(
            async move { Ok(Bytes::from(bytes)) },
        )))
    }
}

/// The snapshot format of [`MemStorage`]: the live keys at one revision and the leases.
#[derive(serde::Serialize, serde::Deserialize)]
struct MemSnapshot {
    revision: Revision,
    kvs: Vec<KeyValue>,
    leases: Vec<LeaseInfo>,
}

impl MemStorage {
    /// A store holding what [`Storage::snapshot`] of another `MemStorage` produced.
    pub fn restore(snapshot: &[u8]) -> Result<Self> {
        let dump: MemSnapshot = serde_json::from_slice(snapshot)
            .map_err(|e| Error::InvalidArgument(format!("bad snapshot: {e}")))?;
        let store = MemStorage::new();
        {
            let mut state = store.inner.state.write();
            let mut keys: BTreeMap<Bytes, Vec<(Revision, Option<KeyValue>)>> = BTreeMap::new();
            for kv in dump.kvs {
                keys.insert(kv.key.clone(), vec![(kv.mod_revision, Some(kv))]);
            }
            state.keys = keys;
            state.revision = dump.revision;
            state.compacted = dump.revision;
            state.leases = LeaseTable::import(dump.leases, Instant::now());
        }
        store.inner.hub.reset(dump.revision);
        Ok(store)
    }

    /// Number of keys holding versions (live or historical), for tests.
    pub fn key_count(&self) -> usize {
        self.inner.state.read().keys.len()
    }
}
