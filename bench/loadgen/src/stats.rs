//! Latency samples, percentiles, and process CPU time and memory read from `/proc`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Clock ticks per second used by `/proc/<pid>/stat` (USER_HZ, 100 on every Linux target we run on).
const TICKS_PER_SECOND: f64 = 100.0;

static BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process: a monotonic clock that fits in a `u64` and can be
/// written into a value so that a watcher in the same process can compute put→event latency.
pub fn now_ns() -> u64 {
    let base = BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Next value of a xorshift64* generator: cheap, deterministic per seed (`state` must not be 0).
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A bag of latency samples in nanoseconds.
#[derive(Debug, Default)]
pub struct Latencies {
    samples: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    /// An empty bag with room for `n` samples.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            samples: Vec::with_capacity(n),
            sorted: false,
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds one sample given in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        self.samples.push(ns);
        self.sorted = false;
    }

    /// Moves all samples of `other` into `self`.
    pub fn merge(&mut self, mut other: Latencies) {
        self.samples.append(&mut other.samples);
        self.sorted = false;
    }

    /// The `p`-th percentile (0..=100) in milliseconds, or NaN when there are no samples.
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        if !self.sorted {
            self.samples.sort_unstable();
            self.sorted = true;
        }
        let rank = (p / 100.0 * self.samples.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, self.samples.len()) - 1;
        self.samples[idx] as f64 / 1e6
    }
}

/// User plus system CPU seconds consumed so far by process `pid` ("self" for this process).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; the fields after its closing ')' are fixed.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Sum of CPU seconds of the given server processes; processes that vanished count as 0.
pub fn servers_cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| cpu_seconds(&p.to_string())).sum()
}

/// True while process `pid` exists and has not exited (an exited child not yet reaped is a zombie).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// Resident set size (VmRSS) of `pid` in kB.
pub fn vm_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let mut l = Latencies::default();
        for ms in 1..=100u64 {
            l.record_ns(ms * 1_000_000);
        }
        assert_eq!(l.percentile_ms(50.0), 50.0);
        assert_eq!(l.percentile_ms(99.0), 99.0);
        assert_eq!(l.percentile_ms(100.0), 100.0);
        assert_eq!(l.percentile_ms(0.0), 1.0);
    }

    #[test]
    fn empty_percentile_is_nan() {
        assert!(Latencies::default().percentile_ms(50.0).is_nan());
    }

    #[test]
    fn reads_own_cpu_and_rss() {
        assert!(cpu_seconds("self").is_some());
        assert!(vm_rss_kb(std::process::id()).unwrap_or(0) > 0);
        assert!(alive(std::process::id()));
    }
}
