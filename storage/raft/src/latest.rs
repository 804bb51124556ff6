//! The in-memory index of every live key's latest version, and how it is loaded at start.
//!
//! Filling the index means reading every live version from rocksdb, which takes about a second
//! per million keys. A member opening an existing data dir does not wait for that: it serves at
//! once while a background thread loads the index.
//!
//! While the index is [`LatestIndex::Loading`]:
//! - reads at the latest revision go to rocksdb, like reads at past revisions;
//! - applied writes are recorded as changes on top of the revision the load reads at, and
//!   replayed over the loaded index when it is complete;
//! - leases know their keys only from those changes, so whatever needs a lease's full key list
//!   (revoking it, `TimeToLive` with keys) finds it in rocksdb instead.
//!
//! If the load fails, the index stays loading: everything still works, from rocksdb.

use std::collections::BTreeMap;

use bytes::Bytes;
use storage::lease::LeaseTable;
use storage::{KeyValue, Revision};

/// The latest version of every live key.
pub enum LatestIndex {
    /// Complete, in memory.
    Loaded(BTreeMap<Bytes, KeyValue>),
    /// Being loaded as of revision `base`; `changes` holds what was applied since (the new
    /// latest version of each changed key, `None` for a deleted one).
    Loading {
        /// The revision the background load reads at.
        base: Revision,
        /// Changes applied after `base`.
        changes: BTreeMap<Bytes, Option<KeyValue>>,
    },
}

impl Default for LatestIndex {
    fn default() -> Self {
        LatestIndex::Loaded(BTreeMap::new())
    }
}

impl LatestIndex {
    /// Records `kv` as its key's latest version.
    pub fn put(&mut self, kv: &KeyValue) {
        match self {
            LatestIndex::Loaded(index) => {
                index.insert(kv.key.clone(), kv.clone());
            }
            LatestIndex::Loading { changes, .. } => {
                changes.insert(kv.key.clone(), Some(kv.clone()));
            }
        }
    }

    /// Records that `key` was deleted.
    pub fn delete(&mut self, key: &Bytes) {
        match self {
            LatestIndex::Loaded(index) => {
                index.remove(key);
            }
            LatestIndex::Loading { changes, .. } => {
                changes.insert(key.clone(), None);
            }
        }
    }

    /// The complete index, once loaded.
    pub fn loaded(&self) -> Option<&BTreeMap<Bytes, KeyValue>> {
        match self {
            LatestIndex::Loaded(index) => Some(index),
            LatestIndex::Loading { .. } => None,
        }
    }

    /// Completes a load: `base` holds the latest versions as of the load's revision; the
    /// changes recorded meanwhile are laid over it, and the keys of `base` that no change
    /// touched are attached to their leases (changed keys already were, as they were applied).
    /// Does nothing (returns false) when the index is no longer loading, e.g. because a snapshot
    /// install replaced the whole state meanwhile.
    pub fn complete(&mut self, mut base: BTreeMap<Bytes, KeyValue>, leases: &mut LeaseTable) -> bool {
        let LatestIndex::Loading { changes, .. } = self else {
            return false;
        };
        for (key, kv) in &base {
            if kv.lease != 0 && !changes.contains_key(key) {
                leases.attach(kv.lease, key.clone());
            }
        }
        for (key, change) in std::mem::take(changes) {
            match change {
                Some(kv) => {
                    base.insert(key, kv);
                }
                None => {
                    base.remove(&key);
                }
            }
        }
        *self = LatestIndex::Loaded(base);
        true
    }
}

#[cfg(test)]
mod tests {
    use storage::LeaseInfo;

    use super::*;

    fn kv(key: &str, lease: i64, rev: u64) -> KeyValue {
        KeyValue {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from_static(b"v"),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease,
        }
    }

    #[test]
    fn changes_made_while_loading_win_over_the_loaded_versions() {
        let mut index = LatestIndex::Loading {
            base: 10,
            changes: BTreeMap::new(),
        };
        index.put(&kv("b", 0, 11));
        index.delete(&Bytes::from_static(b"c"));
        index.put(&kv("d", 0, 12));
        assert!(index.loaded().is_none());
        let base: BTreeMap<Bytes, KeyValue> = [kv("a", 0, 2), kv("b", 0, 3), kv("c", 0, 4)]
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        let mut leases = LeaseTable::new();
        assert!(index.complete(base, &mut leases));
        let loaded = index.loaded().unwrap();
        let keys: Vec<_> = loaded.keys().map(|k| k.as_ref()).collect();
        assert_eq!(keys, [b"a".as_ref(), b"b", b"d"]);
        assert_eq!(loaded[b"b".as_ref()].mod_revision, 11);
        // A second completion (the state was replaced meanwhile) changes nothing.
        assert!(!index.complete(BTreeMap::new(), &mut leases));
        assert_eq!(index.loaded().unwrap().len(), 3);
    }

    #[test]
    fn loaded_keys_join_their_leases_unless_a_change_moved_them() {
        let info = |id| LeaseInfo {
            id,
            ttl: 60,
            granted_ttl: 60,
            keys: Vec::new(),
        };
        let mut leases = LeaseTable::import([info(7), info(8)], std::time::Instant::now());
        let mut index = LatestIndex::Loading {
            base: 5,
            changes: BTreeMap::new(),
        };
        // "b" was on lease 7 and is rewritten on lease 8 while loading.
        let moved = kv("b", 8, 6);
        leases.apply_events(&[storage::Event {
            kind: storage::EventKind::Put,
            kv: moved.clone(),
            prev_kv: None,
        }]);
        index.put(&moved);
        let base = [kv("a", 7, 2), kv("b", 7, 3)]
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        assert!(index.complete(base, &mut leases));
        assert_eq!(leases.keys(7).unwrap(), [Bytes::from_static(b"a")]);
        assert_eq!(leases.keys(8).unwrap(), [Bytes::from_static(b"b")]);
    }
}
