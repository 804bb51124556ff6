//! Lease bookkeeping shared by the implementations: which leases exist, their TTLs, the keys
//! attached to each, and (on the member that enforces them) when each expires.
//!
//! Deadlines are not replicated: like etcd, the member that enforces expiry (the only member, or
//! the raft leader) keeps them in memory and restarts every lease's full TTL when it takes over.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Error, Event, EventKind, LeaseId, LeaseInfo, Result};

/// Largest TTL accepted, in seconds (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Smallest TTL a lease gets, in seconds: shorter requests are raised to it.
pub const MIN_LEASE_TTL: i64 = 1;

#[derive(Clone, Debug)]
struct Lease {
    ttl: i64,
    keys: BTreeSet<Bytes>,
    deadline: Instant,
}

/// Every lease of a store.
#[derive(Clone, Debug, Default)]
pub struct LeaseTable {
    leases: HashMap<LeaseId, Lease>,
}

impl LeaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a grant request and returns the TTL the lease will get.
    pub fn check_grant(&self, id: LeaseId, ttl: i64) -> Result<i64> {
        if id < 0 {
            return Err(Error::InvalidArgument(format!("lease ID {id} is negative")));
        }
        if ttl > MAX_LEASE_TTL {
            return Err(Error::InvalidArgument(format!(
                "lease TTL {ttl} is too large (max {MAX_LEASE_TTL})"
            )));
        }
        if id != 0 && self.leases.contains_key(&id) {
            return Err(Error::LeaseExists(id));
        }
        Ok(ttl.max(MIN_LEASE_TTL))
    }

    /// Creates a lease (`id` must be non-zero: pick one with [`new_lease_id`]).
    pub fn grant(&mut self, id: LeaseId, ttl: i64, now: Instant) -> Result<LeaseInfo> {
        let ttl = self.check_grant(id, ttl)?;
        if id == 0 {
            return Err(Error::InvalidArgument("lease ID 0 is reserved".into()));
        }
        self.leases.insert(
            id,
            Lease {
                ttl,
                keys: BTreeSet::new(),
                deadline: deadline(now, ttl),
            },
        );
        Ok(LeaseInfo {
            id,
            ttl,
            granted_ttl: ttl,
            keys: Vec::new(),
        })
    }

    /// Removes a lease, returning the keys attached to it (to be deleted by the caller).
    pub fn revoke(&mut self, id: LeaseId) -> Result<Vec<Bytes>> {
        let lease = self.leases.remove(&id).ok_or(Error::LeaseNotFound(id))?;
        Ok(lease.keys.into_iter().collect())
    }

    /// The keys attached to a lease.
    pub fn keys(&self, id: LeaseId) -> Result<Vec<Bytes>> {
        let lease = self.leases.get(&id).ok_or(Error::LeaseNotFound(id))?;
        Ok(lease.keys.iter().cloned().collect())
    }

    /// Restarts a lease's TTL; returns it.
    pub fn keep_alive(&mut self, id: LeaseId, now: Instant) -> Result<i64> {
        let lease = self.leases.get_mut(&id).ok_or(Error::LeaseNotFound(id))?;
        lease.deadline = deadline(now, lease.ttl);
        Ok(lease.ttl)
    }

    /// A lease's state.
    pub fn time_to_live(&self, id: LeaseId, with_keys: bool, now: Instant) -> Result<LeaseInfo> {
        let lease = self.leases.get(&id).ok_or(Error::LeaseNotFound(id))?;
        let left = lease.deadline.saturating_duration_since(now);
        // Round up, as a remaining 0.4 s is not "expired".
        let ttl = left.as_secs() as i64 + i64::from(left.subsec_nanos() > 0);
        Ok(LeaseInfo {
            id,
            ttl,
            granted_ttl: lease.ttl,
            keys: if with_keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Every lease's ID, sorted.
    pub fn ids(&self) -> Vec<LeaseId> {
        let mut ids: Vec<_> = self.leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Whether a lease exists.
    pub fn contains(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }

    /// Attaches `key` to lease `id` (if the lease exists), as loading a member's keys does.
    pub fn attach(&mut self, id: LeaseId, key: Bytes) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key);
        }
    }

    /// Updates key attachments from committed events.
    pub fn apply_events(&mut self, events: &[Event]) {
        for e in events {
            if let Some(prev) = &e.prev_kv
                && prev.lease != 0
                && let Some(l) = self.leases.get_mut(&prev.lease)
            {
                l.keys.remove(&prev.key);
            }
            if e.kind == EventKind::Put
                && e.kv.lease != 0
                && let Some(l) = self.leases.get_mut(&e.kv.lease)
            {
                l.keys.insert(e.kv.key.clone());
            }
        }
    }

    /// Leases whose deadline has passed.
    pub fn expired(&self, now: Instant) -> Vec<LeaseId> {
        let mut ids: Vec<_> = self
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Gives every lease its full TTL from `now` (when a member takes over enforcing them).
    pub fn reset_deadlines(&mut self, now: Instant) {
        for l in self.leases.values_mut() {
            l.deadline = deadline(now, l.ttl);
        }
    }

    /// Every lease with its TTL and keys (for snapshots).
    pub fn export(&self) -> Vec<LeaseInfo> {
        let mut out: Vec<_> = self
            .leases
            .iter()
            .map(|(id, l)| LeaseInfo {
                id: *id,
                ttl: l.ttl,
                granted_ttl: l.ttl,
                keys: l.keys.iter().cloned().collect(),
            })
            .collect();
        out.sort_unstable_by_key(|l| l.id);
        out
    }

    /// Rebuilds a table from [`LeaseTable::export`]ed leases, deadlines starting at `now`.
    pub fn import(leases: impl IntoIterator<Item = LeaseInfo>, now: Instant) -> Self {
        let leases = leases
            .into_iter()
            .map(|l| {
                let lease = Lease {
                    ttl: l.granted_ttl,
                    keys: l.keys.into_iter().collect(),
                    deadline: deadline(now, l.granted_ttl),
                };
                (l.id, lease)
            })
            .collect();
        LeaseTable { leases }
    }
}

fn deadline(now: Instant, ttl: i64) -> Instant {
    now + Duration::from_secs(ttl.max(0) as u64)
}

/// A fresh, positive, practically unique lease ID.
pub fn new_lease_id() -> LeaseId {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    // Keep it positive and non-zero.
    ((h.finish() >> 1) as i64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyValue;

    #[test]
    fn lease_lifecycle() {
        let now = Instant::now();
        let mut t = LeaseTable::new();
        let info = t.grant(5, 10, now).unwrap();
        assert_eq!(info.ttl, 10);
        assert!(matches!(t.grant(5, 10, now), Err(Error::LeaseExists(5))));
        let kv = KeyValue {
            key: "k".into(),
            lease: 5,
            ..Default::default()
        };
        t.apply_events(&[Event {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev_kv: None,
        }]);
        assert_eq!(t.keys(5).unwrap(), vec![Bytes::from("k")]);
        assert_eq!(t.time_to_live(5, false, now).unwrap().ttl, 10);
        assert!(t.expired(now + Duration::from_secs(9)).is_empty());
        assert_eq!(t.expired(now + Duration::from_secs(10)), vec![5]);
        t.keep_alive(5, now + Duration::from_secs(9)).unwrap();
        assert!(t.expired(now + Duration::from_secs(10)).is_empty());
        // Overwriting the key without a lease detaches it.
        let plain = KeyValue {
            key: "k".into(),
            ..Default::default()
        };
        t.apply_events(&[Event {
            kind: EventKind::Put,
            kv: plain,
            prev_kv: Some(kv),
        }]);
        assert!(t.keys(5).unwrap().is_empty());
        assert!(t.revoke(5).unwrap().is_empty());
        assert!(matches!(t.revoke(5), Err(Error::LeaseNotFound(5))));
    }

    #[test]
    fn ids_are_positive_and_distinct() {
        let a = new_lease_id();
        let b = new_lease_id();
        assert!(a > 0 && b > 0 && a != b);
    }
}
