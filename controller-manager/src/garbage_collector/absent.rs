//! Owners verified absent (upstream's `absentOwnerCache`): a bounded set, oldest entries
//! evicted first, so repeated lookups of the same gone owner cost no requests.

use std::collections::{HashSet, VecDeque};

use super::graph::Identity;

/// A bounded set of identities known not to exist.
#[derive(Debug)]
pub struct AbsentOwners {
    capacity: usize,
    set: HashSet<Identity>,
    order: VecDeque<Identity>,
}

impl AbsentOwners {
    /// An empty cache holding at most `capacity` identities.
    pub fn new(capacity: usize) -> Self {
        AbsentOwners {
            capacity: capacity.max(1),
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `id` as absent.
    pub fn add(&mut self, id: Identity) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    /// True when `id` is known absent.
    pub fn has(&self, id: &Identity) -> bool {
        self.set.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_entries_are_evicted() {
        let id = |n: &str| Identity {
            uid: n.into(),
            ..Identity::default()
        };
        let mut c = AbsentOwners::new(2);
        c.add(id("a"));
        c.add(id("b"));
        c.add(id("a"));
        c.add(id("c"));
        assert!(!c.has(&id("a")));
        assert!(c.has(&id("b")) && c.has(&id("c")));
    }
}
