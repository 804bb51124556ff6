//! Reads of the MVCC data in rocksdb: ranges at a past revision, the events of past revisions
//! (watch history) and the latest version of every key (loaded into memory at start).

use std::collections::BTreeMap;

use bytes::Bytes;
use rocksdb::{DB, DBRawIteratorWithThreadMode, ReadOptions, SnapshotWithThreadMode};
use storage::{Error, Event, EventKind, KeyValue, Result, Revision};

use crate::codec;
use crate::db::{CF_EVENTS, CF_KV, Db};

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(e.to_string())
}

fn read_options(snapshot: Option<&SnapshotWithThreadMode<'_, DB>>) -> ReadOptions {
    let mut ro = ReadOptions::default();
    if let Some(s) = snapshot {
        ro.set_snapshot(s);
    }
    ro
}

/// Live keys in `[key, range_end)` as of revision `at`, at most `limit` (0: all), and the count.
pub fn range_at(
    db: &Db,
    snapshot: Option<&SnapshotWithThreadMode<'_, DB>>,
    key: &[u8],
    range_end: &[u8],
    at: Revision,
    limit: u64,
) -> Result<(Vec<KeyValue>, u64)> {
    let cf = db.cf(CF_KV).map_err(internal)?;
    let mut ro = read_options(snapshot);
    if range_end.is_empty() {
        // One key: the newest version at or below `at`.
        let mut it = db.raw().raw_iterator_cf_opt(cf, ro);
        it.seek_for_prev(codec::encode_version_key(key, at));
        let prefix = codec::range_start(key);
        if let (Some(k), Some(v)) = (it.key(), it.value())
            && codec::key_part(k) == prefix.as_slice()
        {
            let rev = codec::revision_of(k).ok_or_else(|| internal("bad kv key"))?;
            if let Some(kv) = codec::decode_version(key, rev, v).map_err(internal)? {
                return Ok((vec![kv], 1));
            }
        }
        it.status().map_err(internal)?;
        return Ok((Vec::new(), 0));
    }
    if range_end != [0] {
        if range_end <= key {
            return Ok((Vec::new(), 0));
        }
        ro.set_iterate_upper_bound(codec::range_start(range_end));
    }
    let mut it = db.raw().raw_iterator_cf_opt(cf, ro);
    it.seek(codec::range_start(key));
    let take = if limit == 0 { usize::MAX } else { limit as usize };
    let mut kvs = Vec::new();
    let mut count = 0u64;
    // The escaped key of the group being scanned and its newest version at or below `at`.
    let mut group: Vec<u8> = Vec::new();
    let mut candidate: Option<(Revision, Vec<u8>)> = None;
    let mut finish =
        |group: &[u8], candidate: Option<(Revision, Vec<u8>)>, kvs: &mut Vec<KeyValue>| -> Result<()> {
            if let Some((rev, raw)) = candidate
                && !codec::is_tombstone(&raw)
            {
                count += 1;
                if kvs.len() < take {
                    let mut full = group.to_vec();
                    full.extend_from_slice(&rev.to_be_bytes());
                    let (user_key, _) =
                        codec::decode_version_key(&full).ok_or_else(|| internal("bad kv key"))?;
                    if let Some(kv) = codec::decode_version(&user_key, rev, &raw).map_err(internal)? {
                        kvs.push(kv);
                    }
                }
            }
            Ok(())
        };
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let part = codec::key_part(k);
        if part != group.as_slice() {
            finish(&group, candidate.take(), &mut kvs)?;
            group.clear();
            group.extend_from_slice(part);
        }
        let rev = codec::revision_of(k).ok_or_else(|| internal("bad kv key"))?;
        if rev <= at {
            candidate = Some((rev, v.to_vec()));
        }
        it.next();
    }
    it.status().map_err(internal)?;
    finish(&group, candidate.take(), &mut kvs)?;
    Ok((kvs, count))
}

/// The version of `key` written at exactly `revision` (`None` for a tombstone or no record), and
/// the newest version before it.
fn version_and_prev(
    it: &mut DBRawIteratorWithThreadMode<'_, DB>,
    key: &[u8],
    revision: Revision,
) -> Result<(Option<KeyValue>, Option<KeyValue>)> {
    let prefix = codec::range_start(key);
    let exact = codec::encode_version_key(key, revision);
    it.seek_for_prev(&exact);
    let mut current = None;
    if let (Some(k), Some(v)) = (it.key(), it.value())
        && k == exact.as_slice()
    {
        current = codec::decode_version(key, revision, v).map_err(internal)?;
        it.prev();
    }
    let mut prev = None;
    if let (Some(k), Some(v)) = (it.key(), it.value())
        && codec::key_part(k) == prefix.as_slice()
    {
        let rev = codec::revision_of(k).ok_or_else(|| internal("bad kv key"))?;
        if rev < revision {
            prev = codec::decode_version(key, rev, v).map_err(internal)?;
        }
    }
    it.status().map_err(internal)?;
    Ok((current, prev))
}

/// The events of the revisions in `from..=to`, each with its previous version.
pub fn events(db: &Db, from: Revision, to: Revision) -> Result<Vec<(Revision, Vec<Event>)>> {
    let snapshot = db.raw().snapshot();
    let events_cf = db.cf(CF_EVENTS).map_err(internal)?;
    let kv_cf = db.cf(CF_KV).map_err(internal)?;
    let mut ro = read_options(Some(&snapshot));
    ro.set_iterate_upper_bound(to.saturating_add(1).to_be_bytes().to_vec());
    let mut revs = db.raw().raw_iterator_cf_opt(events_cf, ro);
    let mut kv_it = db.raw().raw_iterator_cf_opt(kv_cf, read_options(Some(&snapshot)));
    revs.seek(from.to_be_bytes());
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (revs.key(), revs.value()) {
        let revision = u64::from_be_bytes(k.try_into().map_err(internal)?);
        let keys = codec::decode_event_keys(v).map_err(internal)?;
        let mut evs = Vec::with_capacity(keys.len());
        for (kind, key) in keys {
            let (current, prev_kv) = version_and_prev(&mut kv_it, &key, revision)?;
            let kv = match (kind, current) {
                (EventKind::Put, Some(kv)) => kv,
                (EventKind::Put, None) => {
                    return Err(internal(format!("missing version of event at {revision}")));
                }
                (EventKind::Delete, _) => KeyValue {
                    key: Bytes::from(key),
                    mod_revision: revision,
                    ..Default::default()
                },
            };
            evs.push(Event { kind, kv, prev_kv });
        }
        out.push((revision, evs));
        revs.next();
    }
    revs.status().map_err(internal)?;
    Ok(out)
}

/// The newest version at or below revision `at` of every key live then (the in-memory index).
/// `go_on` is asked every few thousand versions; the load gives up (`Ok(None)`) when it says no.
pub fn load_latest(
    db: &Db,
    at: Revision,
    mut go_on: impl FnMut() -> bool,
) -> Result<Option<BTreeMap<Bytes, KeyValue>>> {
    let cf = db.cf(CF_KV).map_err(internal)?;
    let mut it = db.raw().raw_iterator_cf(cf);
    it.seek_to_first();
    let mut index = BTreeMap::new();
    // The newest version seen so far of the key being scanned (versions come oldest first).
    let mut last: Option<(Vec<u8>, Vec<u8>)> = None;
    let flush = |last: Option<(Vec<u8>, Vec<u8>)>, index: &mut BTreeMap<Bytes, KeyValue>| -> Result<()> {
        if let Some((k, v)) = last {
            let (user_key, rev) = codec::decode_version_key(&k).ok_or_else(|| internal("bad kv key"))?;
            if let Some(kv) = codec::decode_version(&user_key, rev, &v).map_err(internal)? {
                index.insert(kv.key.clone(), kv);
            }
        }
        Ok(())
    };
    let mut seen = 0u32;
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        seen = seen.wrapping_add(1);
        if seen.is_multiple_of(4096) && !go_on() {
            return Ok(None);
        }
        let rev = codec::revision_of(k).ok_or_else(|| internal("bad kv key"))?;
        if rev <= at {
            if let Some((lk, _)) = &last
                && codec::key_part(lk) != codec::key_part(k)
            {
                flush(last.take(), &mut index)?;
            }
            match &mut last {
                Some((lk, lv)) => {
                    lk.clear();
                    lk.extend_from_slice(k);
                    lv.clear();
                    lv.extend_from_slice(v);
                }
                None => last = Some((k.to_vec(), v.to_vec())),
            }
        }
        it.next();
    }
    it.status().map_err(internal)?;
    flush(last, &mut index)?;
    Ok(Some(index))
}
