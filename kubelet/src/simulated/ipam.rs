//! Pod IPs for simulated nodes: each node hands out addresses of its own range (the Node's
//! `spec.podCIDR`, else a per-node slice of the cluster CIDR) the way the `host-local` CNI plugin
//! does: round robin from after the last address given, skipping the network address, the
//! gateway (`.1`) and, for IPv4, the broadcast address, so an address comes back into use only
//! after the others have been handed out.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network, `10.244.0.0/16` or `fd00::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A CIDR that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {0:?}: want an address and a prefix length, e.g. 10.244.0.0/16")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError(s.to_string());
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        if prefix > bits(addr) {
            return Err(err());
        }
        Ok(Cidr {
            network: from_bits(addr, to_bits(addr) & mask(bits(addr), prefix)),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn to_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(like: IpAddr, value: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// The network mask of `prefix` bits in a `width`-bit address, as a number.
fn mask(width: u8, prefix: u8) -> u128 {
    let host = u32::from(width - prefix);
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if host >= 128 {
        0
    } else {
        all & !((1u128 << host) - 1)
    }
}

impl Cidr {
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The number of addresses (saturating for huge IPv6 ranges).
    fn size(&self) -> u128 {
        let host = u32::from(bits(self.network) - self.prefix);
        if host >= 128 { u128::MAX } else { 1u128 << host }
    }

    /// Whether `ip` lies in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.network.is_ipv4()
            && to_bits(ip) & mask(bits(ip), self.prefix) == to_bits(self.network)
    }

    /// The `index`th subnet of `prefix` bits, if there are that many.
    pub fn subnet(&self, index: u64, prefix: u8) -> Option<Cidr> {
        if prefix < self.prefix || prefix > bits(self.network) {
            return None;
        }
        let count_bits = u32::from(prefix - self.prefix);
        if count_bits < 64 && index >= 1u64 << count_bits {
            return None;
        }
        let host = u32::from(bits(self.network) - prefix);
        let offset = u128::from(index).checked_shl(host).filter(|_| host < 128)?;
        Some(Cidr {
            network: from_bits(self.network, to_bits(self.network) + offset),
            prefix,
        })
    }

    /// The longest prefix (smallest subnets, but at most `want`) that still splits this network
    /// into at least `count` subnets.
    pub fn prefix_for(&self, count: u64, want: u8) -> Option<u8> {
        let needed = if count <= 1 {
            0
        } else {
            64 - (count - 1).leading_zeros()
        } as u8;
        let min = self.prefix.checked_add(needed)?;
        (min <= bits(self.network)).then_some(want.max(min))
    }

    fn first_usable(&self) -> u128 {
        if self.size() > 4 { 2 } else { 0 }
    }

    fn last_usable(&self) -> u128 {
        let size = self.size();
        if size > 4 && self.network.is_ipv4() {
            size - 2
        } else {
            size - 1
        }
    }
}

/// The addresses handed out from one range.
#[derive(Debug, Clone)]
pub struct RangeAllocator {
    cidr: Cidr,
    used: BTreeSet<u128>,
    last: Option<u128>,
}

impl RangeAllocator {
    /// An allocator over `cidr` with nothing handed out.
    pub fn new(cidr: Cidr) -> Self {
        RangeAllocator {
            cidr,
            used: BTreeSet::new(),
            last: None,
        }
    }

    /// The range.
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// The next free address after the last one handed out, or `None` when all are in use.
    pub fn allocate(&mut self) -> Option<IpAddr> {
        let (first, last) = (self.cidr.first_usable(), self.cidr.last_usable());
        let start = match self.last {
            Some(l) if l < last => l + 1,
            _ => first,
        };
        let pick = self
            .free_from(start, last)
            .or_else(|| self.free_from(first, start.saturating_sub(1).max(first)))?;
        self.used.insert(pick);
        self.last = Some(pick);
        Some(from_bits(self.cidr.network, to_bits(self.cidr.network) + pick))
    }

    fn free_from(&self, from: u128, to: u128) -> Option<u128> {
        let mut candidate = from;
        for &u in self.used.range(from..=to) {
            if u != candidate {
                break;
            }
            candidate = u + 1;
        }
        (candidate <= to && !self.used.contains(&candidate)).then_some(candidate)
    }

    /// Marks `ip` as in use (an address a pod already had); false if it is outside the range or
    /// already taken.
    pub fn reserve(&mut self, ip: IpAddr) -> bool {
        if !self.cidr.contains(ip) {
            return false;
        }
        let offset = to_bits(ip) - to_bits(self.cidr.network);
        if offset < self.cidr.first_usable() || offset > self.cidr.last_usable() {
            return false;
        }
        self.used.insert(offset)
    }

    /// Frees `ip`; addresses outside the range are ignored.
    pub fn release(&mut self, ip: IpAddr) {
        if self.cidr.contains(ip) {
            self.used.remove(&(to_bits(ip) - to_bits(self.cidr.network)));
        }
    }

    /// How many addresses are in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalizes() {
        assert_eq!(cidr("10.244.3.7/16").to_string(), "10.244.0.0/16");
        assert_eq!(cidr("fd00::1/64").to_string(), "fd00::/64");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        assert!("x/8".parse::<Cidr>().is_err());
        assert!(cidr("10.244.0.0/16").contains(ip("10.244.255.1")));
        assert!(!cidr("10.244.0.0/16").contains(ip("10.245.0.1")));
        assert!(!cidr("10.244.0.0/16").contains(ip("::1")));
    }

    #[test]
    fn subnets_per_node() {
        let c = cidr("10.244.0.0/16");
        assert_eq!(c.subnet(0, 24), Some(cidr("10.244.0.0/24")));
        assert_eq!(c.subnet(3, 24), Some(cidr("10.244.3.0/24")));
        assert_eq!(c.subnet(256, 24), None);
        assert_eq!(c.prefix_for(3, 24), Some(24));
        assert_eq!(c.prefix_for(1000, 24), Some(26), "1000 nodes need 10 bits");
        assert_eq!(c.prefix_for(1 << 17, 24), None);
        assert_eq!(cidr("fd00::/48").subnet(2, 64), Some(cidr("fd00:0:0:2::/64")));
    }

    #[test]
    fn hands_out_round_robin_and_reuses_freed_addresses_after_wrapping() {
        let mut a = RangeAllocator::new(cidr("10.0.0.0/29"));
        // Usable: .2 .. .6 (network, gateway and broadcast skipped).
        let got: Vec<_> = (0..5).map(|_| a.allocate().unwrap().to_string()).collect();
        assert_eq!(got, ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
        assert_eq!(a.allocate(), None, "full");
        a.release(ip("10.0.0.3"));
        a.release(ip("10.0.0.5"));
        assert_eq!(a.allocate(), Some(ip("10.0.0.3")));
        assert_eq!(a.allocate(), Some(ip("10.0.0.5")));
        assert_eq!(a.allocate(), None);
        a.release(ip("10.0.0.2"));
        a.release(ip("10.0.0.6"));
        assert_eq!(a.allocate(), Some(ip("10.0.0.6")), "after the last one given");
        assert_eq!(a.in_use(), 4);
    }

    #[test]
    fn reserving_existing_addresses() {
        let mut a = RangeAllocator::new(cidr("10.0.1.0/24"));
        assert!(a.reserve(ip("10.0.1.2")));
        assert!(!a.reserve(ip("10.0.1.2")), "taken twice");
        assert!(!a.reserve(ip("10.0.2.2")), "outside");
        assert!(!a.reserve(ip("10.0.1.255")), "broadcast");
        assert_eq!(a.allocate(), Some(ip("10.0.1.3")));
        a.release(ip("10.9.9.9"));
        assert_eq!(a.in_use(), 2);
    }

    #[test]
    fn ipv6_ranges() {
        let mut a = RangeAllocator::new(cidr("fd00:10::/64"));
        assert_eq!(a.allocate(), Some(ip("fd00:10::2")));
        assert_eq!(a.allocate(), Some(ip("fd00:10::3")));
    }
}
