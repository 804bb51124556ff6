//! Zone disruption as upstream computes it: per zone, how many nodes are not Ready decides
//! how fast nodes there get the NoExecute taints (`--node-eviction-rate`,
//! `--secondary-node-eviction-rate` for large partially disrupted zones, none when every zone is
//! fully disrupted — the controller then assumes its own connectivity is at fault).

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::Node;

/// A zone's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneState {
    /// Few nodes are not Ready.
    Normal,
    /// More than two nodes and at least `--unhealthy-zone-threshold` of them are not Ready.
    PartialDisruption,
    /// No node is Ready.
    FullDisruption,
}

/// The zone key of a node (region and zone labels, as upstream's `GetZoneKey`).
pub fn zone_of(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let label = |new: &str, old: &str| {
        labels
            .and_then(|l| l.get(new).or_else(|| l.get(old)))
            .cloned()
            .unwrap_or_default()
    };
    let region = label(
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    );
    let zone = label(
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    );
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\x00:{zone}")
}

/// The state of a zone with `ready` and `not_ready` nodes.
pub fn zone_state(ready: usize, not_ready: usize, unhealthy_threshold: f64) -> ZoneState {
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f64 / (ready + not_ready) as f64 >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// The rates at which nodes get tainted.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    /// `--node-eviction-rate`, nodes per second.
    pub primary: f64,
    /// `--secondary-node-eviction-rate`.
    pub secondary: f64,
    /// `--large-cluster-size-threshold`.
    pub large_cluster: usize,
}

/// The tainting rate (nodes per second) of a zone of `size` nodes in `state`.
pub fn zone_rate(state: ZoneState, size: usize, rates: Rates) -> f64 {
    match state {
        ZoneState::Normal | ZoneState::FullDisruption => rates.primary,
        ZoneState::PartialDisruption if size > rates.large_cluster => rates.secondary,
        ZoneState::PartialDisruption => 0.0,
    }
}

/// The states of every zone, from each node's zone and readiness.
pub fn zone_states<'a>(
    nodes: impl IntoIterator<Item = (String, bool)> + 'a,
    unhealthy_threshold: f64,
) -> BTreeMap<String, (ZoneState, usize)> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (zone, ready) in nodes {
        let c = counts.entry(zone).or_default();
        if ready {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }
    counts
        .into_iter()
        .map(|(z, (r, n))| (z, (zone_state(r, n, unhealthy_threshold), r + n)))
        .collect()
}

/// A token bucket of burst one (upstream's eviction limiter).
#[derive(Debug)]
pub struct Limiter {
    tokens: f64,
    last: Instant,
}

impl Limiter {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> Limiter {
        Limiter {
            tokens: 1.0,
            last: now,
        }
    }

    /// Takes a token at `now` if one has accumulated at `qps`.
    pub fn try_take(&mut self, now: Instant, qps: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * qps).min(1.0);
        if qps > 0.0 && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn zone_states_as_upstream() {
        assert_eq!(zone_state(0, 1, 0.55), ZoneState::FullDisruption);
        assert_eq!(zone_state(3, 2, 0.55), ZoneState::Normal);
        assert_eq!(zone_state(2, 3, 0.55), ZoneState::PartialDisruption);
        assert_eq!(zone_state(10, 3, 0.55), ZoneState::Normal);
        let rates = Rates {
            primary: 0.1,
            secondary: 0.01,
            large_cluster: 50,
        };
        assert_eq!(zone_rate(ZoneState::PartialDisruption, 10, rates), 0.0);
        assert_eq!(zone_rate(ZoneState::PartialDisruption, 100, rates), 0.01);
        assert_eq!(zone_rate(ZoneState::FullDisruption, 1, rates), 0.1);
        let states = zone_states([("a".into(), true), ("b".into(), false)], 0.55);
        assert_eq!(states["a"], (ZoneState::Normal, 1));
        assert_eq!(states["b"], (ZoneState::FullDisruption, 1));
    }

    #[test]
    fn limiter_allows_one_node_per_period() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        assert!(l.try_take(t0, 0.1));
        assert!(!l.try_take(t0 + Duration::from_secs(5), 0.1));
        assert!(l.try_take(t0 + Duration::from_secs(10), 0.1));
        assert!(!l.try_take(t0 + Duration::from_secs(100), 0.0));
    }
}
