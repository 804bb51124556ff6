//! The restart back-off of a crashing container, as upstream's kubelet keeps it per container
//! (client-go's `flowcontrol.Backoff` with 10 s initial and 5 min maximum): the first restart
//! happens at once and arms a 10 s back-off; each later restart waits the current back-off
//! (counted from the exit) and doubles it up to the maximum; a container that has not restarted
//! for twice the maximum (10 min) starts over.

use std::time::Duration;

use tokio::time::Instant;

/// Upstream's initial container restart back-off.
pub const INITIAL: Duration = Duration::from_secs(10);
/// Upstream's maximum container restart back-off (`MaxContainerBackOff`).
pub const MAX: Duration = Duration::from_secs(300);

/// One container's restart back-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartBackoff {
    initial: Duration,
    max: Duration,
    entry: Option<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
}

impl Default for RestartBackoff {
    fn default() -> Self {
        Self::new(INITIAL, MAX)
    }
}

impl RestartBackoff {
    /// A back-off starting at `initial` and doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        RestartBackoff {
            initial,
            max,
            entry: None,
        }
    }

    fn expired(&self, at: Instant, entry: &Entry) -> bool {
        at.saturating_duration_since(entry.last_update) > self.max * 2
    }

    /// When a container that exited at `exited_at` may restart, judged at `now`: `None` if at
    /// once, else the time and the back-off in force (for the `CrashLoopBackOff` message).
    pub fn restart_at(&self, exited_at: Instant, now: Instant) -> Option<(Instant, Duration)> {
        let entry = self.entry.as_ref()?;
        if self.expired(now, entry) {
            return None;
        }
        let until = exited_at + entry.backoff;
        (now < until).then_some((until, entry.backoff))
    }

    /// Records a restart at `now` of a container that exited at `exited_at`: arms or doubles the
    /// back-off.
    pub fn restarted(&mut self, exited_at: Instant, now: Instant) {
        let backoff = match &self.entry {
            Some(e) if !self.expired(exited_at, e) => (e.backoff * 2).min(self.max),
            _ => self.initial,
        };
        self.entry = Some(Entry {
            backoff,
            last_update: now,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Restarts a container that exits as soon as it starts, `n` times, returning the waits.
    fn waits(n: usize) -> Vec<u64> {
        let mut b = RestartBackoff::default();
        let mut now = Instant::now();
        let mut out = Vec::new();
        for _ in 0..n {
            let exited = now;
            let wait = match b.restart_at(exited, now) {
                None => Duration::ZERO,
                Some((until, _)) => until - now,
            };
            out.push(wait.as_secs());
            now += wait;
            b.restarted(exited, now);
        }
        out
    }

    #[test]
    fn first_restart_is_immediate_then_doubles_to_five_minutes() {
        assert_eq!(waits(9), vec![0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn a_container_running_long_enough_starts_over() {
        let mut b = RestartBackoff::default();
        let t0 = Instant::now();
        b.restarted(t0, t0);
        b.restarted(t0, t0 + Duration::from_secs(10));
        // It then ran for 11 minutes before exiting again: no back-off, and the next is 10 s.
        let exit = t0 + Duration::from_secs(10 + 660);
        assert_eq!(b.restart_at(exit, exit), None);
        b.restarted(exit, exit);
        let (until, backoff) = b.restart_at(exit, exit).unwrap();
        assert_eq!((until - exit, backoff), (INITIAL, INITIAL));
    }

    #[test]
    fn the_wait_counts_from_the_exit() {
        let mut b = RestartBackoff::default();
        let t0 = Instant::now();
        b.restarted(t0, t0);
        let exited = t0 + Duration::from_secs(3);
        let (until, _) = b.restart_at(exited, exited + Duration::from_secs(4)).unwrap();
        assert_eq!(until, exited + INITIAL);
        assert_eq!(b.restart_at(exited, exited + INITIAL), None);
    }
}
