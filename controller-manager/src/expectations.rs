//! Expectations (upstream's `UIDTrackingExpectations`): after a controller creates or deletes
//! pods it records how many creations and which deletions it expects to see through the watch,
//! and does not act on the same controller again until they are observed (or 5 minutes pass),
//! so a lagging watch never makes it create or delete twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// How long expectations hold before a sync goes ahead anyway (upstream's `ExpectationsTimeout`).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Record {
    add: i64,
    del: i64,
    deleting: HashSet<String>,
    at: Instant,
}

impl Record {
    fn fulfilled(&self) -> bool {
        self.add <= 0 && self.del <= 0
    }
}

/// Expectations per controller key (`namespace/name`).
#[derive(Debug, Default)]
pub struct Expectations {
    records: Mutex<HashMap<String, Record>>,
}

impl Expectations {
    /// True when the controller may act: nothing expected, everything observed, or the
    /// expectations are older than [`EXPECTATIONS_TIMEOUT`].
    pub fn satisfied(&self, key: &str) -> bool {
        match self.records.lock().get(key) {
            None => true,
            Some(r) => r.fulfilled() || r.at.elapsed() > EXPECTATIONS_TIMEOUT,
        }
    }

    /// Expects `n` creations (replacing earlier expectations).
    pub fn expect_creations(&self, key: &str, n: usize) {
        self.records.lock().insert(
            key.to_string(),
            Record {
                add: n as i64,
                del: 0,
                deleting: HashSet::new(),
                at: Instant::now(),
            },
        );
    }

    /// Expects the deletion of these pods (`namespace/name` keys), replacing earlier
    /// expectations.
    pub fn expect_deletions(&self, key: &str, pods: impl IntoIterator<Item = String>) {
        let deleting: HashSet<String> = pods.into_iter().collect();
        self.records.lock().insert(
            key.to_string(),
            Record {
                add: 0,
                del: deleting.len() as i64,
                deleting,
                at: Instant::now(),
            },
        );
    }

    /// Expects `adds` creations and the deletion of `pods` (`namespace/name` keys) together,
    /// replacing earlier expectations (a controller that does both in one sync).
    pub fn expect(&self, key: &str, adds: usize, pods: impl IntoIterator<Item = String>) {
        let deleting: HashSet<String> = pods.into_iter().collect();
        self.records.lock().insert(
            key.to_string(),
            Record {
                add: adds as i64,
                del: deleting.len() as i64,
                deleting,
                at: Instant::now(),
            },
        );
    }

    /// One expected creation was observed (or will never happen).
    pub fn creation_observed(&self, key: &str) {
        if let Some(r) = self.records.lock().get_mut(key) {
            r.add -= 1;
        }
    }

    /// The deletion of `pod` was observed (counted once per pod).
    pub fn deletion_observed(&self, key: &str, pod: &str) {
        if let Some(r) = self.records.lock().get_mut(key)
            && r.deleting.remove(pod)
        {
            r.del -= 1;
        }
    }

    /// Forgets the controller (it was deleted).
    pub fn delete(&self, key: &str) {
        self.records.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_must_be_observed_before_the_next_action() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn each_deleted_pod_counts_once() {
        let e = Expectations::default();
        e.expect_deletions("ns/rs", ["ns/a".to_string(), "ns/b".to_string()]);
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/other");
        assert!(!e.satisfied("ns/rs"));
        e.deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn stale_expectations_expire() {
        let e = Expectations::default();
        e.expect_creations("ns/rs", 1);
        let Some(past) = Instant::now().checked_sub(EXPECTATIONS_TIMEOUT + Duration::from_secs(1)) else {
            return; // a monotonic clock younger than the timeout cannot express the case
        };
        e.records.lock().get_mut("ns/rs").unwrap().at = past;
        assert!(e.satisfied("ns/rs"));
    }
}
