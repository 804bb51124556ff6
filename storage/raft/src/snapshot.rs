//! Snapshots of the state machine: one streamed dump format for raft snapshots (sent to lagging
//! or new members) and for backups ([`storage::Storage::snapshot`] / [`crate::restore_snapshot`]).
//!
//! Format: `MAGIC`, `u32` length + postcard [`SnapshotMeta`], then records
//! `tag u8, key_len u32, key, value_len u32, value` (tag = 1 + index in [`SM_CFS`]), then the end
//! tag `0xff` and an FNV-1a 64 checksum of everything before it. All integers are big-endian.
//! The dump is read from one rocksdb snapshot, so it is consistent; the metadata (last applied
//! log id, membership, revision) comes from the same snapshot as the data.

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use openraft::storage::RaftSnapshotBuilder;
use openraft::{AnyError, LogId, SnapshotMeta, StorageError, StorageIOError, StoredMembership};
use rocksdb::{DB, IteratorMode, ReadOptions, SnapshotWithThreadMode, WriteBatch};

use crate::db::{CF_SM_META, Db, DbError, SM_CFS};
use crate::state_machine::{KEY_LAST_APPLIED, KEY_MEMBERSHIP, KEY_REVISION, SmShared};
use crate::types::{Node, NodeId, TypeConfig};

const MAGIC: &[u8; 10] = b"KEELSNAP1\n";
const END_TAG: u8 = 0xff;
const CURRENT: &str = "current.snap";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Failures reading or writing a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// File or stream IO failed.
    #[error("snapshot io: {0}")]
    Io(#[from] std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The data is not a valid snapshot.
    #[error("invalid snapshot: {0}")]
    Invalid(String),
}

impl From<rocksdb::Error> for SnapshotError {
    fn from(e: rocksdb::Error) -> Self {
        SnapshotError::Db(DbError::Rocks(e))
    }
}

/// FNV-1a 64, computed while writing or reading.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, data: &[u8]) {
        for b in data {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A writer that checksums what passes through it.
struct Summing<W> {
    inner: W,
    sum: Fnv,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sum.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn meta_value<T: serde::de::DeserializeOwned>(
    db: &Db,
    snap: &SnapshotWithThreadMode<'_, DB>,
    key: &[u8],
) -> Result<Option<T>, SnapshotError> {
    match snap.get_cf(db.cf(CF_SM_META)?, key)? {
        Some(raw) => Ok(Some(
            postcard::from_bytes(&raw).map_err(|e| SnapshotError::Invalid(e.to_string()))?,
        )),
        None => Ok(None),
    }
}

/// Writes a dump of the state machine as of `snap`. Returns its metadata.
fn write_dump(
    db: &Db,
    snap: &SnapshotWithThreadMode<'_, DB>,
    out: impl Write,
) -> Result<SnapshotMeta<NodeId, Node>, SnapshotError> {
    let last_applied: Option<LogId<NodeId>> =
        meta_value::<Option<LogId<NodeId>>>(db, snap, KEY_LAST_APPLIED)?.flatten();
    let membership: StoredMembership<NodeId, Node> =
        meta_value(db, snap, KEY_MEMBERSHIP)?.unwrap_or_default();
    let revision: u64 = meta_value(db, snap, KEY_REVISION)?.unwrap_or(1);
    let meta = SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership,
        snapshot_id: format!(
            "{}-{}-{}",
            last_applied.map_or(0, |l| l.index),
            revision,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ),
    };
    let mut w = Summing {
        inner: out,
        sum: Fnv::new(),
    };
    w.write_all(MAGIC)?;
    let raw_meta = postcard::to_stdvec(&meta).map_err(|e| SnapshotError::Invalid(e.to_string()))?;
    w.write_all(&(raw_meta.len() as u32).to_be_bytes())?;
    w.write_all(&raw_meta)?;
    for (i, name) in SM_CFS.iter().enumerate() {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(snap);
        for item in db.raw().iterator_cf_opt(db.cf(name)?, ro, IteratorMode::Start) {
            let (k, v) = item?;
            w.write_all(&[i as u8 + 1])?;
            w.write_all(&(k.len() as u32).to_be_bytes())?;
            w.write_all(&k)?;
            w.write_all(&(v.len() as u32).to_be_bytes())?;
            w.write_all(&v)?;
        }
    }
    w.write_all(&[END_TAG])?;
    let sum = w.sum.0;
    w.inner.write_all(&sum.to_be_bytes())?;
    w.inner.flush()?;
    Ok(meta)
}

/// One record of a dump: (column family, key, value).
pub(crate) type Record<'a> = (&'static str, &'a [u8], &'a [u8]);

/// A parsed dump held in memory.
pub(crate) struct Dump {
    /// The metadata in the dump's header.
    pub meta: SnapshotMeta<NodeId, Node>,
    data: Vec<u8>,
    /// Offset of the first record.
    start: usize,
}

impl Dump {
    /// Checks and parses a dump.
    pub fn parse(data: Vec<u8>) -> Result<Dump, SnapshotError> {
        let bad = |m: &str| SnapshotError::Invalid(m.to_string());
        if data.len() < MAGIC.len() + 4 + 9 || &data[..MAGIC.len()] != MAGIC {
            return Err(bad("not a Keelson snapshot"));
        }
        let body_end = data.len() - 8;
        let mut sum = Fnv::new();
        sum.update(&data[..body_end]);
        let stored = u64::from_be_bytes(data[body_end..].try_into().map_err(|_| bad("checksum"))?);
        if sum.0 != stored {
            return Err(bad("checksum mismatch (truncated or corrupt)"));
        }
        let meta_len = u32::from_be_bytes(
            data[MAGIC.len()..MAGIC.len() + 4]
                .try_into()
                .map_err(|_| bad("header"))?,
        );
        let start = MAGIC.len() + 4 + meta_len as usize;
        let meta = postcard::from_bytes(data.get(MAGIC.len() + 4..start).ok_or_else(|| bad("header"))?)
            .map_err(|e| SnapshotError::Invalid(e.to_string()))?;
        Ok(Dump { meta, data, start })
    }

    /// The records: (column family, key, value).
    pub fn records(&self) -> Result<Vec<Record<'_>>, SnapshotError> {
        let bad = || SnapshotError::Invalid("truncated record".into());
        let mut out = Vec::new();
        let mut pos = self.start;
        let d = &self.data;
        loop {
            let tag = *d.get(pos).ok_or_else(bad)?;
            if tag == END_TAG {
                return Ok(out);
            }
            let cf = *SM_CFS.get(usize::from(tag).wrapping_sub(1)).ok_or_else(bad)?;
            let len = |p: usize| -> Result<usize, SnapshotError> {
                Ok(
                    u32::from_be_bytes(d.get(p..p + 4).ok_or_else(bad)?.try_into().map_err(|_| bad())?)
                        as usize,
                )
            };
            let klen = len(pos + 1)?;
            let key = d.get(pos + 5..pos + 5 + klen).ok_or_else(bad)?;
            let vpos = pos + 5 + klen;
            let vlen = len(vpos)?;
            let value = d.get(vpos + 4..vpos + 4 + vlen).ok_or_else(bad)?;
            out.push((cf, key, value));
            pos = vpos + 4 + vlen;
        }
    }
}

/// Replaces the state-machine column families with a dump's records, in one synced batch.
/// `fresh_cluster` drops the raft position (last applied, membership): used by restore, where the
/// data starts a new cluster with a new log.
fn load_dump(db: &Db, dump: &Dump, fresh_cluster: bool) -> Result<(), SnapshotError> {
    let mut batch = WriteBatch::default();
    for name in SM_CFS {
        let cf = db.cf(name)?;
        let mut it = db.raw().raw_iterator_cf(cf);
        it.seek_to_last();
        if let Some(last) = it.key() {
            let mut end = last.to_vec();
            end.push(0);
            batch.delete_range_cf(cf, Vec::new(), end);
        }
        it.status()?;
    }
    for (cf, key, value) in dump.records()? {
        if fresh_cluster && cf == CF_SM_META && (key == KEY_LAST_APPLIED || key == KEY_MEMBERSHIP) {
            continue;
        }
        batch.put_cf(db.cf(cf)?, key, value);
    }
    db.write_sync(batch)?;
    Ok(())
}

fn storage_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes a dump of the current state to `<dir>/current.snap` (atomically) and returns its
/// metadata.
fn build_current(shared: &SmShared) -> Result<SnapshotMeta<NodeId, Node>, SnapshotError> {
    std::fs::create_dir_all(&shared.snapshot_dir)?;
    let tmp = shared
        .snapshot_dir
        .join(format!("build-{}.tmp", COUNTER.fetch_add(1, Ordering::Relaxed)));
    let meta = {
        let snap = shared.db.raw().snapshot();
        let file = std::fs::File::create(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let meta = write_dump(&shared.db, &snap, &mut out)?;
        let file = out.into_inner().map_err(|e| SnapshotError::Io(e.into_error()))?;
        file.sync_all()?;
        meta
    };
    std::fs::rename(&tmp, shared.snapshot_dir.join(CURRENT))?;
    fsync_dir(&shared.snapshot_dir)?;
    Ok(meta)
}

/// Builds raft snapshots of the state machine.
pub struct Builder {
    pub(crate) shared: Arc<SmShared>,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<openraft::Snapshot<TypeConfig>, StorageError<NodeId>> {
        let shared = self.shared.clone();
        let meta = tokio::task::spawn_blocking(move || build_current(&shared))
            .await
            .map_err(storage_err)?
            .map_err(storage_err)?;
        tracing::info!(snapshot = %meta.snapshot_id, last_log = ?meta.last_log_id, "built raft snapshot");
        let file = tokio::fs::File::open(self.shared.snapshot_dir.join(CURRENT))
            .await
            .map_err(storage_err)?;
        Ok(openraft::Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

/// A file to receive a snapshot from the leader into.
pub(crate) async fn begin_receiving(shared: &SmShared) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
    tokio::fs::create_dir_all(&shared.snapshot_dir)
        .await
        .map_err(storage_err)?;
    // Leftovers of earlier receptions are of no use.
    if let Ok(mut dir) = tokio::fs::read_dir(&shared.snapshot_dir).await {
        while let Ok(Some(e)) = dir.next_entry().await {
            if e.file_name().to_string_lossy().starts_with("recv-") {
                let _ = tokio::fs::remove_file(e.path()).await;
            }
        }
    }
    let path = shared
        .snapshot_dir
        .join(format!("recv-{}.tmp", COUNTER.fetch_add(1, Ordering::Relaxed)));
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .await
        .map_err(storage_err)?;
    Ok(Box::new(file))
}

/// Installs a snapshot received from the leader: replaces the state machine and keeps the file
/// as the current snapshot.
pub(crate) async fn install(
    shared: &Arc<SmShared>,
    meta: &SnapshotMeta<NodeId, Node>,
    mut file: Box<tokio::fs::File>,
) -> Result<(), StorageError<NodeId>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    file.seek(SeekFrom::Start(0)).await.map_err(storage_err)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).await.map_err(storage_err)?;
    let shared2 = shared.clone();
    let meta2 = meta.clone();
    tokio::task::spawn_blocking(move || -> Result<(), SnapshotError> {
        let dump = Dump::parse(data)?;
        if dump.meta.last_log_id != meta2.last_log_id {
            return Err(SnapshotError::Invalid(format!(
                "snapshot data is at {:?}, its metadata says {:?}",
                dump.meta.last_log_id, meta2.last_log_id
            )));
        }
        load_dump(&shared2.db, &dump, false)?;
        shared2.reload()?;
        std::fs::create_dir_all(&shared2.snapshot_dir)?;
        let tmp = shared2
            .snapshot_dir
            .join(format!("inst-{}.tmp", COUNTER.fetch_add(1, Ordering::Relaxed)));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&dump.data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, shared2.snapshot_dir.join(CURRENT))?;
        fsync_dir(&shared2.snapshot_dir)?;
        Ok(())
    })
    .await
    .map_err(storage_err)?
    .map_err(storage_err)?;
    tracing::info!(snapshot = %meta.snapshot_id, last_log = ?meta.last_log_id, "installed raft snapshot");
    Ok(())
}

/// Reads the header of a snapshot file.
fn read_meta(path: &Path) -> Result<SnapshotMeta<NodeId, Node>, SnapshotError> {
    let mut f = std::fs::File::open(path)?;
    let mut head = [0u8; 14];
    f.read_exact(&mut head)?;
    if &head[..10] != MAGIC {
        return Err(SnapshotError::Invalid("not a Keelson snapshot".into()));
    }
    let len = u32::from_be_bytes([head[10], head[11], head[12], head[13]]) as usize;
    let mut raw = vec![0u8; len];
    f.read_exact(&mut raw)?;
    f.seek(SeekFrom::Start(0))?;
    postcard::from_bytes(&raw).map_err(|e| SnapshotError::Invalid(e.to_string()))
}

/// The current raft snapshot, if one was built or installed.
pub(crate) async fn current(
    shared: &SmShared,
) -> Result<Option<openraft::Snapshot<TypeConfig>>, StorageError<NodeId>> {
    let path = shared.snapshot_dir.join(CURRENT);
    let p2 = path.clone();
    let meta = match tokio::task::spawn_blocking(move || read_meta(&p2))
        .await
        .map_err(storage_err)?
    {
        Ok(meta) => meta,
        Err(SnapshotError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(storage_err(e)),
    };
    let file = tokio::fs::File::open(&path).await.map_err(storage_err)?;
    Ok(Some(openraft::Snapshot {
        meta,
        snapshot: Box::new(file),
    }))
}

/// Streams a consistent dump of the state machine in chunks (for [`storage::Storage::snapshot`]).
pub(crate) fn stream(shared: &Arc<SmShared>) -> storage::SnapshotStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<storage::Result<Bytes>>(8);
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        struct Chunks {
            tx: tokio::sync::mpsc::Sender<storage::Result<Bytes>>,
            buf: Vec<u8>,
        }
        impl Write for Chunks {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                self.buf.extend_from_slice(data);
                if self.buf.len() >= 256 * 1024 {
                    self.flush()?;
                }
                Ok(data.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                if !self.buf.is_empty() {
                    let chunk = Bytes::from(std::mem::take(&mut self.buf));
                    self.tx
                        .blocking_send(Ok(chunk))
                        .map_err(|_| std::io::Error::other("snapshot reader went away"))?;
                }
                Ok(())
            }
        }
        let mut chunks = Chunks {
            tx: tx.clone(),
            buf: Vec::new(),
        };
        let snap = shared.db.raw().snapshot();
        if let Err(e) = write_dump(&shared.db, &snap, &mut chunks).and_then(|_| Ok(chunks.flush()?)) {
            let _ = tx.blocking_send(Err(storage::Error::internal(e.to_string())));
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Creates a member's data directory from a backup made with [`storage::Storage::snapshot`]:
/// the keys, leases and revision are kept; the raft log and membership start anew, so the
/// member must then be started as a new cluster (it bootstraps from its `initial_cluster`).
/// Fails if `data_dir` already holds a database.
pub fn restore_snapshot(mut backup: impl Read, data_dir: &Path) -> Result<RestoreSummary, SnapshotError> {
    let db_path = db_path(data_dir);
    for existing in [&db_path, &log_path(data_dir)] {
        if existing.exists() {
            return Err(SnapshotError::Invalid(format!(
                "{} already exists",
                existing.display()
            )));
        }
    }
    let mut data = Vec::new();
    backup.read_to_end(&mut data)?;
    let dump = Dump::parse(data)?;
    std::fs::create_dir_all(data_dir)?;
    let db = Db::open(&db_path)?;
    load_dump(&db, &dump, true)?;
    let state = crate::state_machine::load_state(&db, false)?;
    Ok(RestoreSummary {
        revision: state.revision,
        keys: state.index.loaded().map_or(0, |index| index.len() as u64),
    })
}

/// What [`restore_snapshot`] restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSummary {
    /// The store's revision.
    pub revision: u64,
    /// Live keys.
    pub keys: u64,
}

/// Where a member keeps its database inside its data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("db")
}

/// Where a member keeps its raft log's segment files inside its data directory.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("raft-log")
}
