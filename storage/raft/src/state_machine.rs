//! The replicated state machine ([`RaftStateMachine`]): MVCC data, leases and the revision
//! counter, applied from committed log entries.
//!
//! Applying a batch of entries has three phases:
//! 1. evaluate every command against the visible state plus the batch's earlier commands
//!    ([`storage::mvcc::Overlay`]), collecting one rocksdb `WriteBatch` that also carries the new
//!    revision, compaction point and `last_applied`;
//! 2. write that batch without waiting for an fsync (no lock held): the entries are already
//!    durable in the raft log, and the log shares this database's write-ahead log, so the next
//!    synced log append (or purge) makes the applied state durable too; after a crash the entries
//!    after the recovered `last_applied` are simply applied again;
//! 3. under the state's write lock, make the batch visible (in-memory index of the latest
//!    versions, leases, revision), then publish each new revision's events to the watch hub.
//!
//! Readers therefore never see a revision whose log entry is not durable, and a read at a past revision can
//! go to rocksdb without a lock: versions at or below the visible revision never change (physical
//! compaction only removes versions no longer visible at or after the compaction point).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use parking_lot::RwLock;
use rocksdb::WriteBatch;
use storage::hub::{History, HubConfig, WatchHub};
use storage::lease::LeaseTable;
use storage::mvcc::{self, MvccRead, Overlay, WriteSet, revoke_txn};
use storage::{Error, Event, EventKind, KeyValue, LeaseId, LeaseInfo, Result, Revision, TxnRequest};

use crate::codec;
use crate::db::{CF_EVENTS, CF_KV, CF_LEASES, CF_SM_META, Db, DbError};
use crate::kv_read;
use crate::latest::LatestIndex;
use crate::snapshot;
use crate::types::{Command, CommandOutput, CommandResult, Node, NodeId, ProposalResult, TypeConfig};

/// Entries carrying at most this many command bytes are applied on the raft task itself.
const INLINE_APPLY_BYTES: usize = 256 * 1024;

pub(crate) const KEY_LAST_APPLIED: &[u8] = b"last_applied";
pub(crate) const KEY_MEMBERSHIP: &[u8] = b"membership";
pub(crate) const KEY_REVISION: &[u8] = b"revision";
pub(crate) const KEY_COMPACTED: &[u8] = b"compacted";
const KEY_COMPACTED_PHYSICAL: &[u8] = b"compacted_physical";

/// The state every reader sees.
pub struct SmState {
    /// The latest version of every live key (complete, or still loading).
    pub index: LatestIndex,
    /// The store's revision (1 for an empty store, as etcd).
    pub revision: Revision,
    /// Revisions below this one are compacted.
    pub compacted: Revision,
    /// Leases, their keys and (on the leader) their deadlines.
    pub leases: LeaseTable,
    /// The last log entry applied.
    pub last_applied: Option<LogId<NodeId>>,
    /// The last membership applied.
    pub membership: StoredMembership<NodeId, Node>,
}

/// The state machine's data, shared by the raft side and the storage API.
pub struct SmShared {
    /// The member's database.
    pub db: Arc<Db>,
    /// The visible state (shared with the index loader, which must never hold the
    /// `SmShared` itself: the last owner's drop would then run on the loader's thread, which
    /// cannot join itself, and the database would close after the owner had moved on).
    pub state: Arc<RwLock<SmState>>,
    /// Watch fan-out, fed after every durable apply.
    pub hub: WatchHub,
    /// Where raft snapshots are kept.
    pub snapshot_dir: PathBuf,
    compactor: crate::worker::Worker<Revision>,
    /// Loads the latest-version index after start (see [`crate::latest`]).
    index_loader: parking_lot::Mutex<Option<crate::worker::Worker<()>>>,
}

/// The background load of the latest-version index as of `base`, the revision at open; gives up
/// when `stop` closes (the state machine is dropped).
fn load_index(state: &RwLock<SmState>, db: &Db, base: Revision, stop: &std::sync::mpsc::Receiver<()>) {
    let started = Instant::now();
    let go_on = || matches!(stop.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty));
    match kv_read::load_latest(db, base, go_on) {
        Ok(Some(index)) => {
            let keys = index.len();
            let mut st = state.write();
            let st = &mut *st;
            if st.index.complete(index, &mut st.leases) {
                tracing::info!(
                    keys,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "latest-version index loaded"
                );
            }
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot load the latest-version index; reads stay on rocksdb"),
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(e.to_string())
}

fn decode_meta<T: serde::de::DeserializeOwned>(
    db: &Db,
    key: &[u8],
) -> std::result::Result<Option<T>, DbError> {
    match db.get(CF_SM_META, key)? {
        Some(raw) => Ok(Some(
            postcard::from_bytes(&raw).map_err(|e| DbError::Corrupt(e.to_string()))?,
        )),
        None => Ok(None),
    }
}

/// Reads the state machine's visible state from the database, with the latest-version index
/// loaded (`defer_index` false), or left to [`SmShared::open`]'s background load.
pub(crate) fn load_state(db: &Db, defer_index: bool) -> std::result::Result<SmState, DbError> {
    let last_applied = decode_meta::<Option<LogId<NodeId>>>(db, KEY_LAST_APPLIED)?.flatten();
    let membership = decode_meta::<StoredMembership<NodeId, Node>>(db, KEY_MEMBERSHIP)?.unwrap_or_default();
    let revision = decode_meta::<Revision>(db, KEY_REVISION)?.unwrap_or(1);
    let compacted = decode_meta::<Revision>(db, KEY_COMPACTED)?.unwrap_or(0);
    let mut keys: HashMap<LeaseId, Vec<Bytes>> = HashMap::new();
    let index = if defer_index {
        LatestIndex::Loading {
            base: revision,
            changes: BTreeMap::new(),
        }
    } else {
        let index = kv_read::load_latest(db, Revision::MAX, || true)
            .map_err(|e| DbError::Corrupt(e.to_string()))?
            .unwrap_or_default();
        for kv in index.values() {
            if kv.lease != 0 {
                keys.entry(kv.lease).or_default().push(kv.key.clone());
            }
        }
        LatestIndex::Loaded(index)
    };
    let mut leases = Vec::new();
    for item in db
        .raw()
        .iterator_cf(db.cf(CF_LEASES)?, rocksdb::IteratorMode::Start)
    {
        let (k, v) = item?;
        let id = i64::from_be_bytes(
            k.as_ref()
                .try_into()
                .map_err(|_| DbError::Corrupt("lease key".into()))?,
        );
        let ttl = i64::from_be_bytes(
            v.as_ref()
                .try_into()
                .map_err(|_| DbError::Corrupt("lease ttl".into()))?,
        );
        leases.push(LeaseInfo {
            id,
            ttl,
            granted_ttl: ttl,
            keys: keys.remove(&id).unwrap_or_default(),
        });
    }
    Ok(SmState {
        index,
        revision,
        compacted,
        leases: LeaseTable::import(leases, Instant::now()),
        last_applied,
        membership,
    })
}

impl SmShared {
    /// Opens the state machine on `db` and starts its background compactor and the load of its
    /// latest-version index (served from rocksdb until loaded).
    pub fn open(
        db: Arc<Db>,
        snapshot_dir: PathBuf,
        hub_config: HubConfig,
    ) -> std::result::Result<Arc<Self>, DbError> {
        let shared = Self::open_unloaded(db, snapshot_dir, hub_config)?;
        let (state, loader_db) = (shared.state.clone(), shared.db.clone());
        let base = shared.state.read().revision;
        let loader = crate::worker::Worker::spawn("kv-index-load", move |stop| {
            load_index(&state, &loader_db, base, &stop);
        })
        .map_err(|e| DbError::Corrupt(format!("cannot start the index loader: {e}")))?;
        *shared.index_loader.lock() = Some(loader);
        Ok(shared)
    }

    /// Opens the state machine with its index still to load.
    fn open_unloaded(
        db: Arc<Db>,
        snapshot_dir: PathBuf,
        hub_config: HubConfig,
    ) -> std::result::Result<Arc<Self>, DbError> {
        let state = load_state(&db, true)?;
        let revision = state.revision;
        let compactor_db = db.clone();
        let compactor =
            crate::worker::Worker::spawn("kv-compactor", move |rx| compactor_loop(compactor_db, rx))
                .map_err(|e| DbError::Corrupt(format!("cannot start compactor: {e}")))?;
        let shared = Arc::new_cyclic(|weak: &Weak<SmShared>| SmShared {
            db,
            hub: WatchHub::new(Arc::new(DbHistory(weak.clone())), revision, hub_config),
            state: Arc::new(RwLock::new(state)),
            snapshot_dir,
            compactor,
            index_loader: parking_lot::Mutex::new(None),
        });
        let pending = shared.state.read().compacted;
        let _ = shared.compactor.send(pending);
        Ok(shared)
    }

    /// Replaces the visible state with what the database holds now (after a snapshot install).
    pub(crate) fn reload(&self) -> std::result::Result<(), DbError> {
        let fresh = load_state(&self.db, false)?;
        let revision = fresh.revision;
        let compacted = fresh.compacted;
        *self.state.write() = fresh;
        self.hub.reset(revision);
        let _ = self.compactor.send(compacted);
        Ok(())
    }

    /// A read of the visible state at its current revision (and past ones, from rocksdb).
    pub fn view<'a>(&'a self, st: &'a SmState) -> SmView<'a> {
        SmView { st, db: &self.db }
    }
}

/// [`MvccRead`] over the visible state: the latest revision from memory, older ones from rocksdb.
pub struct SmView<'a> {
    st: &'a SmState,
    db: &'a Db,
}

/// Live keys of the in-memory index in `[key, range_end)`.
fn index_range(
    index: &BTreeMap<Bytes, KeyValue>,
    key: &[u8],
    range_end: &[u8],
    limit: u64,
) -> (Vec<KeyValue>, u64) {
    if range_end.is_empty() {
        // One key: a point lookup instead of a range walk (every put reads its key's version).
        let found = index.get(key).cloned();
        let count = u64::from(found.is_some());
        return (found.into_iter().collect(), count);
    }
    let Some(bounds) = mvcc::key_bounds(key, range_end) else {
        return (Vec::new(), 0);
    };
    let (kept, count) = mvcc::take_counting(index.range::<[u8], _>(bounds).map(|(_, kv)| kv), limit);
    (kept.into_iter().cloned().collect(), count)
}

impl SmView<'_> {
    /// The keys attached to lease `id` in the visible state; read from rocksdb while the
    /// latest-version index is still loading (the lease table knows only later keys then).
    pub fn lease_keys(&self, id: LeaseId) -> Result<Vec<Bytes>> {
        if self.st.index.loaded().is_some() || !self.st.leases.contains(id) {
            return self.st.leases.keys(id);
        }
        let (live, _) = kv_read::range_at(self.db, None, b"\0", b"\0", self.st.revision, 0)?;
        Ok(live
            .into_iter()
            .filter(|kv| kv.lease == id)
            .map(|kv| kv.key)
            .collect())
    }
}

impl MvccRead for SmView<'_> {
    fn current_revision(&self) -> Revision {
        self.st.revision
    }

    fn compacted_revision(&self) -> Revision {
        self.st.compacted
    }

    fn range_at(
        &self,
        key: &[u8],
        range_end: &[u8],
        at: Revision,
        limit: u64,
    ) -> Result<(Vec<KeyValue>, u64)> {
        match self.st.index.loaded() {
            Some(index) if at >= self.st.revision => Ok(index_range(index, key, range_end, limit)),
            _ => kv_read::range_at(self.db, None, key, range_end, at.min(self.st.revision), limit),
        }
    }

    fn lease_exists(&self, id: LeaseId) -> bool {
        self.st.leases.contains(id)
    }
}

/// [`MvccRead`] at a fixed past state, read from a rocksdb snapshot without holding any lock.
pub struct HistoricView<'a> {
    /// The visible revision when the snapshot was taken.
    pub current: Revision,
    /// The compaction point then.
    pub compacted: Revision,
    /// The database.
    pub db: &'a Db,
    /// A rocksdb snapshot taken after `current` was visible.
    pub snapshot: &'a rocksdb::SnapshotWithThreadMode<'a, rocksdb::DB>,
}

impl MvccRead for HistoricView<'_> {
    fn current_revision(&self) -> Revision {
        self.current
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
        kv_read::range_at(
            self.db,
            Some(self.snapshot),
            key,
            range_end,
            at.min(self.current),
            limit,
        )
    }

    fn lease_exists(&self, _id: LeaseId) -> bool {
        false
    }
}

/// Serves the watch hub's history from rocksdb.
struct DbHistory(Weak<SmShared>);

impl History for DbHistory {
    fn events(&self, from: Revision, to: Revision) -> Result<Vec<(Revision, Vec<Event>)>> {
        let shared = self
            .0
            .upgrade()
            .ok_or_else(|| Error::Unavailable("store closed".into()))?;
        let compacted = shared.state.read().compacted;
        if from < compacted {
            return Err(Error::Compacted {
                requested: from,
                compacted,
            });
        }
        kv_read::events(&shared.db, from, to)
    }

    fn compacted_revision(&self) -> Revision {
        self.0.upgrade().map_or(0, |s| s.state.read().compacted)
    }
}

/// A lease change made earlier in the batch being applied.
#[derive(Clone, Copy)]
enum LeaseChange {
    Granted,
    Revoked,
}

/// The visible state plus the lease changes of the batch being applied.
struct BatchBase<'a> {
    view: SmView<'a>,
    leases: RefCell<HashMap<LeaseId, LeaseChange>>,
}

impl MvccRead for BatchBase<'_> {
    fn current_revision(&self) -> Revision {
        self.view.current_revision()
    }

    fn compacted_revision(&self) -> Revision {
        self.view.compacted_revision()
    }

    fn range_at(
        &self,
        key: &[u8],
        range_end: &[u8],
        at: Revision,
        limit: u64,
    ) -> Result<(Vec<KeyValue>, u64)> {
        self.view.range_at(key, range_end, at, limit)
    }

    fn lease_exists(&self, id: LeaseId) -> bool {
        match self.leases.borrow().get(&id) {
            Some(LeaseChange::Granted) => true,
            Some(LeaseChange::Revoked) => false,
            None => self.view.lease_exists(id),
        }
    }
}

/// What a batch changes, in order, to be made visible after the write.
enum Change {
    Write(WriteSet),
    Grant { id: LeaseId, ttl: i64 },
    Revoke(LeaseId),
    Compact(Revision),
}

/// Which successful transaction of the batch: a command of an entry, or a lease revoke's delete.
#[derive(Clone, Copy)]
enum TxnRef {
    Command { entry: usize, command: usize },
    Revoke(usize),
}

/// Phase 1 of applying a batch: evaluation.
struct BatchEval<'a> {
    base: &'a BatchBase<'a>,
    overlay: Overlay<'a>,
    batch: WriteBatch,
    changes: Vec<Change>,
    /// Successful transactions, to rebuild the overlay after a failed one.
    done: Vec<TxnRef>,
    revokes: Vec<TxnRequest>,
    compacted: Revision,
    db: &'a Db,
}

/// The transaction a [`TxnRef`] names.
fn txn_of<'b>(entries: &'b [Vec<Command>], revokes: &'b [TxnRequest], r: TxnRef) -> Option<&'b TxnRequest> {
    match r {
        TxnRef::Command { entry, command } => match entries.get(entry)?.get(command)? {
            Command::Txn(t) => Some(t),
            _ => None,
        },
        TxnRef::Revoke(i) => revokes.get(i),
    }
}

impl<'a> BatchEval<'a> {
    /// Runs one transaction on the overlay. A failed transaction may leave partial writes in the
    /// overlay, so the overlay is then rebuilt from the successful ones.
    fn run_txn(&mut self, entries: &[Vec<Command>], r: TxnRef) -> Result<storage::TxnResponse> {
        let Some(txn) = txn_of(entries, &self.revokes, r) else {
            return Err(internal("transaction reference"));
        };
        match self.overlay.apply(txn) {
            Ok((resp, ws)) => {
                self.done.push(r);
                if !ws.is_empty() {
                    self.record_write(&ws)?;
                    self.changes.push(Change::Write(ws));
                }
                Ok(resp)
            }
            Err(e) => {
                let mut overlay = Overlay::new(self.base);
                for d in &self.done {
                    if let Some(t) = txn_of(entries, &self.revokes, *d) {
                        let _ = overlay.apply(t);
                    }
                }
                self.overlay = overlay;
                Err(e)
            }
        }
    }

    fn record_write(&mut self, ws: &WriteSet) -> Result<()> {
        let kv_cf = self.db.cf(CF_KV).map_err(internal)?;
        for e in &ws.events {
            let version = match e.kind {
                EventKind::Put => Some(&e.kv),
                EventKind::Delete => None,
            };
            self.batch.put_cf(
                kv_cf,
                codec::encode_version_key(&e.kv.key, ws.revision),
                codec::encode_version(version),
            );
        }
        let index = codec::encode_event_keys(ws.events.iter().map(|e| (e.kind, e.kv.key.as_ref())));
        self.batch.put_cf(
            self.db.cf(CF_EVENTS).map_err(internal)?,
            ws.revision.to_be_bytes(),
            index,
        );
        Ok(())
    }

    /// The keys attached to lease `id` now: the visible ones, changed by this batch's writes.
    fn lease_keys(&self, id: LeaseId) -> Vec<Bytes> {
        let mut keys: std::collections::BTreeSet<Bytes> = match self.base.view.lease_keys(id) {
            Ok(keys) => keys.into_iter().collect(),
            Err(Error::LeaseNotFound(_)) => Default::default(),
            Err(e) => {
                tracing::error!(lease = id, error = %e, "cannot read the keys of a lease");
                Default::default()
            }
        };
        for c in &self.changes {
            match c {
                Change::Write(ws) => {
                    for e in &ws.events {
                        if let Some(prev) = &e.prev_kv
                            && prev.lease == id
                        {
                            keys.remove(&prev.key);
                        }
                        if e.kind == EventKind::Put && e.kv.lease == id {
                            keys.insert(e.kv.key.clone());
                        }
                    }
                }
                Change::Grant { id: g, .. } | Change::Revoke(g) if *g == id => keys.clear(),
                _ => {}
            }
        }
        keys.into_iter().collect()
    }

    fn command(&mut self, entries: &[Vec<Command>], entry: usize, command: usize) -> CommandResult {
        let out = match entries.get(entry).and_then(|e| e.get(command)) {
            None => Err(internal("command reference")),
            Some(Command::Txn(_)) => self
                .run_txn(entries, TxnRef::Command { entry, command })
                .map(CommandOutput::Txn),
            Some(&Command::LeaseGrant { id, ttl }) => self.grant(id, ttl),
            Some(&Command::LeaseRevoke { id }) => self.revoke(entries, id),
            Some(&Command::Compact { revision }) => self.compact(revision),
        };
        out.map_err(Into::into)
    }

    fn grant(&mut self, id: LeaseId, ttl: i64) -> Result<CommandOutput> {
        if id <= 0 {
            return Err(Error::InvalidArgument(format!("lease ID {id} must be positive")));
        }
        // Validates the TTL only; existence is checked against the batch too.
        let ttl = LeaseTable::new().check_grant(id, ttl)?;
        if self.base.lease_exists(id) {
            return Err(Error::LeaseExists(id));
        }
        self.base.leases.borrow_mut().insert(id, LeaseChange::Granted);
        self.batch.put_cf(
            self.db.cf(CF_LEASES).map_err(internal)?,
            id.to_be_bytes(),
            ttl.to_be_bytes(),
        );
        self.changes.push(Change::Grant { id, ttl });
        Ok(CommandOutput::LeaseGranted(LeaseInfo {
            id,
            ttl,
            granted_ttl: ttl,
            keys: Vec::new(),
        }))
    }

    fn revoke(&mut self, entries: &[Vec<Command>], id: LeaseId) -> Result<CommandOutput> {
        if !self.base.lease_exists(id) {
            return Err(Error::LeaseNotFound(id));
        }
        let keys = self.lease_keys(id);
        self.revokes.push(revoke_txn(keys));
        let resp = self.run_txn(entries, TxnRef::Revoke(self.revokes.len() - 1))?;
        self.base.leases.borrow_mut().insert(id, LeaseChange::Revoked);
        self.batch
            .delete_cf(self.db.cf(CF_LEASES).map_err(internal)?, id.to_be_bytes());
        self.changes.push(Change::Revoke(id));
        Ok(CommandOutput::LeaseRevoked(resp.revision))
    }

    fn compact(&mut self, revision: Revision) -> Result<CommandOutput> {
        let current = self.overlay.current_revision();
        if revision > current {
            return Err(Error::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision <= self.compacted {
            return Err(Error::Compacted {
                requested: revision,
                compacted: self.compacted,
            });
        }
        self.compacted = revision;
        self.changes.push(Change::Compact(revision));
        Ok(CommandOutput::Compacted)
    }
}

/// Failures of applying; openraft stops the member on them (the state may be inconsistent).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Writing the batch failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Encoding metadata failed.
    #[error("encode: {0}")]
    Encode(String),
}

/// Applies committed entries: evaluate, write durably, make visible, publish.
pub(crate) fn apply_entries(
    shared: &SmShared,
    entries: Vec<Entry<TypeConfig>>,
) -> std::result::Result<Vec<ProposalResult>, ApplyError> {
    let Some(last) = entries.last().map(|e| e.log_id) else {
        return Ok(Vec::new());
    };
    let mut results = Vec::with_capacity(entries.len());
    let mut membership = None;
    // An undecodable proposal (a bug) answers no results; its proposer reports an error.
    let decoded: Vec<Vec<Command>> = entries
        .iter()
        .map(|e| match &e.payload {
            EntryPayload::Normal(p) => p.decode().unwrap_or_else(|err| {
                tracing::error!(log_id = %e.log_id, error = %err, "skipping undecodable proposal");
                Vec::new()
            }),
            _ => Vec::new(),
        })
        .collect();
    let (batch, changes, revision, compacted, prev_compacted) = {
        let st = shared.state.read();
        let base = BatchBase {
            view: shared.view(&st),
            leases: RefCell::new(HashMap::new()),
        };
        let mut eval = BatchEval {
            base: &base,
            overlay: Overlay::new(&base),
            batch: WriteBatch::default(),
            changes: Vec::new(),
            done: Vec::new(),
            revokes: Vec::new(),
            compacted: st.compacted,
            db: &shared.db,
        };
        for (i, entry) in entries.iter().enumerate() {
            match &entry.payload {
                EntryPayload::Blank => results.push(ProposalResult::default()),
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m.clone()));
                    results.push(ProposalResult::default());
                }
                EntryPayload::Normal(_) => {
                    let mut out = Vec::with_capacity(decoded[i].len());
                    for c in 0..decoded[i].len() {
                        out.push(eval.command(&decoded, i, c));
                    }
                    results.push(ProposalResult { results: out });
                }
            }
        }
        let revision = eval.overlay.current_revision();
        let compacted = eval.compacted;
        (eval.batch, eval.changes, revision, compacted, st.compacted)
    };
    let mut batch = batch;
    let meta = shared.db.cf(CF_SM_META)?;
    batch.put_cf(meta, KEY_LAST_APPLIED, enc(&Some(last))?);
    batch.put_cf(meta, KEY_REVISION, enc(&revision)?);
    if compacted != prev_compacted {
        batch.put_cf(meta, KEY_COMPACTED, enc(&compacted)?);
    }
    if let Some(m) = &membership {
        batch.put_cf(meta, KEY_MEMBERSHIP, enc(m)?);
    }
    shared.db.write_nosync(batch)?;

    let mut published = Vec::new();
    {
        let mut st = shared.state.write();
        let now = Instant::now();
        for change in changes {
            match change {
                Change::Write(ws) => {
                    for e in &ws.events {
                        match e.kind {
                            EventKind::Put => st.index.put(&e.kv),
                            EventKind::Delete => st.index.delete(&e.kv.key),
                        }
                    }
                    st.leases.apply_events(&ws.events);
                    st.revision = ws.revision;
                    published.push(ws);
                }
                Change::Grant { id, ttl } => {
                    if let Err(e) = st.leases.grant(id, ttl, now) {
                        tracing::warn!(lease = id, error = %e, "lease grant diverged from evaluation");
                    }
                }
                Change::Revoke(id) => {
                    let _ = st.leases.revoke(id);
                }
                Change::Compact(r) => st.compacted = r,
            }
        }
        st.revision = revision;
        st.last_applied = Some(last);
        if let Some(m) = membership {
            st.membership = m;
        }
    }
    for ws in published {
        shared.hub.publish(ws.revision, ws.events);
    }
    if compacted != prev_compacted {
        let _ = shared.compactor.send(compacted);
    }
    Ok(results)
}

fn enc<T: serde::Serialize>(v: &T) -> std::result::Result<Vec<u8>, ApplyError> {
    postcard::to_stdvec(v).map_err(|e| ApplyError::Encode(e.to_string()))
}

/// Removes versions and events that no reader can see any more: for every key, the versions
/// older than its newest version below `upto` (kept as the previous version of events at
/// `upto`), that version too when it is a deletion, and the events below `upto`.
fn compact_physically(db: &Db, upto: Revision) -> std::result::Result<(), DbError> {
    let done = decode_meta::<Revision>(db, KEY_COMPACTED_PHYSICAL)?.unwrap_or(0);
    if upto <= done {
        return Ok(());
    }
    let started = Instant::now();
    let keep_at = upto.saturating_sub(1);
    let kv = db.cf(CF_KV)?;
    let mut it = db.raw().raw_iterator_cf(kv);
    it.seek_to_first();
    let mut batch = WriteBatch::default();
    let mut deleted = 0u64;
    // Versions at or below `keep_at` of the current key group: (raw key, is tombstone).
    let mut group: Vec<u8> = Vec::new();
    let mut old: Vec<(Vec<u8>, bool)> = Vec::new();
    let finish = |old: &mut Vec<(Vec<u8>, bool)>, batch: &mut WriteBatch, deleted: &mut u64| {
        if let Some(&(_, last_is_tombstone)) = old.last() {
            let remove = if last_is_tombstone {
                old.len()
            } else {
                old.len() - 1
            };
            for (k, _) in old.drain(..remove) {
                batch.delete_cf(kv, k);
                *deleted += 1;
            }
        }
        old.clear();
    };
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let part = codec::key_part(k);
        if part != group.as_slice() {
            finish(&mut old, &mut batch, &mut deleted);
            group.clear();
            group.extend_from_slice(part);
        }
        let rev = u64::from_be_bytes(k[k.len().saturating_sub(8)..].try_into().unwrap_or_default());
        if rev <= keep_at {
            old.push((k.to_vec(), codec::is_tombstone(v)));
        }
        if batch.len() >= 10_000 {
            db.write_nosync(std::mem::take(&mut batch))?;
        }
        it.next();
    }
    it.status()?;
    finish(&mut old, &mut batch, &mut deleted);
    batch.delete_range_cf(db.cf(CF_EVENTS)?, 0u64.to_be_bytes(), upto.to_be_bytes());
    batch.put_cf(
        db.cf(CF_SM_META)?,
        KEY_COMPACTED_PHYSICAL,
        postcard::to_stdvec(&upto).unwrap_or_default(),
    );
    db.write_nosync(batch)?;
    tracing::info!(upto, deleted, elapsed = ?started.elapsed(), "compacted MVCC history");
    Ok(())
}

fn compactor_loop(db: Arc<Db>, rx: std::sync::mpsc::Receiver<Revision>) {
    while let Ok(mut upto) = rx.recv() {
        while let Ok(more) = rx.try_recv() {
            upto = upto.max(more);
        }
        if upto == 0 {
            continue;
        }
        if let Err(e) = compact_physically(&db, upto) {
            tracing::error!(error = %e, upto, "MVCC compaction failed");
        }
    }
}

/// The raft state machine (a handle on [`SmShared`]).
pub struct StateMachine {
    pub(crate) shared: Arc<SmShared>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = snapshot::Builder;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>>
    {
        let st = self.shared.state.read();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> std::result::Result<Vec<ProposalResult>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let shared = self.shared.clone();
        let last = entries.last().map(|e| e.log_id);
        let bytes: usize = entries
            .iter()
            .map(|e| match &e.payload {
                EntryPayload::Normal(p) => p.commands.len(),
                _ => 0,
            })
            .sum();
        // A usual batch is applied right here: a memtable write, well under a millisecond (the
        // hand-off to a blocking thread and back cost ~7 % of the puts/s at 64 clients). A large
        // one goes to a blocking thread, so that the runtime's workers are not held long.
        let applied = if bytes <= INLINE_APPLY_BYTES {
            apply_entries(&shared, entries)
        } else {
            tokio::task::spawn_blocking(move || apply_entries(&shared, entries))
                .await
                .map_err(sm_err)?
        };
        applied.map_err(|e| match last {
            Some(l) => StorageIOError::apply(l, AnyError::error(e.to_string())).into(),
            None => sm_err(e),
        })
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        snapshot::Builder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> std::result::Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        snapshot::begin_receiving(&self.shared).await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<tokio::fs::File>,
    ) -> std::result::Result<(), StorageError<NodeId>> {
        snapshot::install(&self.shared, meta, snapshot).await
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> std::result::Result<Option<openraft::Snapshot<TypeConfig>>, StorageError<NodeId>> {
        snapshot::current(&self.shared).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId};
    use storage::{DeleteRangeRequest, PutRequest, TxnOp};

    use super::*;
    use crate::types::Proposal;

    fn entry(index: u64, commands: Vec<Command>) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Proposal::encode(&commands).unwrap()),
        }
    }

    fn txn(op: TxnOp) -> Command {
        Command::Txn(TxnRequest {
            success: vec![op],
            ..Default::default()
        })
    }

    fn put(key: &str, value: &str, lease: LeaseId) -> Command {
        txn(TxnOp::Put(PutRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
            lease,
            ..Default::default()
        }))
    }

    fn delete(key: &str) -> Command {
        txn(TxnOp::DeleteRange(DeleteRangeRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            ..Default::default()
        }))
    }

    /// Every live key and value at the latest revision, as the storage API reads it.
    fn latest(shared: &SmShared) -> Vec<(String, String)> {
        let st = shared.state.read();
        let (kvs, _) = shared.view(&st).range_at(b"\0", b"\0", st.revision, 0).unwrap();
        kvs.into_iter()
            .map(|kv| {
                (
                    String::from_utf8(kv.key.to_vec()).unwrap(),
                    String::from_utf8(kv.value.to_vec()).unwrap(),
                )
            })
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A state machine in a fresh data dir, with `entries` applied, closed again.
    fn seeded(entries: Vec<Entry<TypeConfig>>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let shared = SmShared::open(
            Db::open(&dir.path().join("db")).unwrap(),
            dir.path().join("snap"),
            HubConfig::default(),
        )
        .unwrap();
        apply_entries(&shared, entries).unwrap();
        dir
    }

    #[test]
    fn a_reopened_state_machine_serves_writes_and_revokes_before_its_index_is_loaded() {
        let dir = seeded(vec![
            entry(1, vec![Command::LeaseGrant { id: 7, ttl: 600 }]),
            entry(
                2,
                vec![
                    put("a", "1", 7),
                    put("b", "1", 0),
                    put("c", "1", 7),
                    put("d", "1", 0),
                ],
            ),
            entry(3, vec![put("a", "2", 7)]),
        ]);
        let open = || Db::open(&dir.path().join("db")).unwrap();

        // Reopened without the background load: everything is read from rocksdb.
        let shared = SmShared::open_unloaded(open(), dir.path().join("snap"), HubConfig::default()).unwrap();
        let base = shared.state.read().revision;
        assert!(shared.state.read().index.loaded().is_none());
        assert_eq!(
            latest(&shared),
            pairs(&[("a", "2"), ("b", "1"), ("c", "1"), ("d", "1")])
        );

        apply_entries(
            &shared,
            vec![entry(4, vec![put("b", "2", 0), delete("d"), put("e", "1", 7)])],
        )
        .unwrap();
        assert_eq!(
            latest(&shared),
            pairs(&[("a", "2"), ("b", "2"), ("c", "1"), ("e", "1")])
        );
        {
            let st = shared.state.read();
            let keys = shared.view(&st).lease_keys(7).unwrap();
            assert_eq!(keys, [&b"a"[..], b"c", b"e"]);
        }

        // Revoking finds the lease's keys from before the restart too.
        apply_entries(&shared, vec![entry(5, vec![Command::LeaseRevoke { id: 7 }])]).unwrap();
        assert_eq!(latest(&shared), pairs(&[("b", "2")]));
        apply_entries(&shared, vec![entry(6, vec![put("f", "1", 0)])]).unwrap();

        // The load (as of the reopen) completes under the changes applied since.
        let (_stop_tx, stop) = std::sync::mpsc::channel();
        load_index(&shared.state, &shared.db, base, &stop);
        let st = shared.state.read();
        let index = st.index.loaded().expect("index loaded");
        let keys: Vec<_> = index.keys().map(|k| k.as_ref()).collect();
        assert_eq!(keys, [&b"b"[..], b"f"]);
        assert_eq!(index[&b"b"[..]].value.as_ref(), b"2");
        assert_eq!(index[&b"b"[..]].version, 2);
        assert!(!st.leases.contains(7));
    }

    #[test]
    fn the_background_load_attaches_loaded_keys_to_their_leases() {
        let dir = seeded(vec![
            entry(1, vec![Command::LeaseGrant { id: 8, ttl: 600 }]),
            entry(2, vec![put("x", "1", 8), put("y", "1", 8), put("z", "1", 0)]),
        ]);
        let open = || Db::open(&dir.path().join("db")).unwrap();
        let shared = SmShared::open(open(), dir.path().join("snap"), HubConfig::default()).unwrap();
        // Dropping the loader's handle joins its thread; with this few keys the loader does not
        // look for a stop request, so the load is complete then.
        drop(shared.index_loader.lock().take());
        let st = shared.state.read();
        assert_eq!(st.index.loaded().map(BTreeMap::len), Some(3));
        assert_eq!(st.leases.keys(8).unwrap(), [&b"x"[..], b"y"]);
    }
}
