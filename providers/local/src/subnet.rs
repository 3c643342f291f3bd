//! A cluster network's subnet, chosen by provision: Docker gives a
//! container a chosen address (`--ip`) only on a network whose subnet was
//! given at creation ("user specified IP address is supported only when
//! connecting to networks with user configured subnets"), as a cloud lets
//! a server ask for a fixed IP on its subnet. A /24 from Docker's own
//! default pools (172.18–31.x.0) is taken that overlaps no Docker network
//! and no route of this host.

use std::net::Ipv4Addr;

/// An IPv4 network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: u32,
    pub prefix: u8,
}

impl Net {
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }

    /// `a.b.c.d/n`; `None` for anything else (IPv6 included).
    pub fn parse(s: &str) -> Option<Net> {
        let (addr, prefix) = s.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        Some(Net {
            addr: u32::from(addr) & Net::mask(prefix),
            prefix,
        })
    }

    pub fn overlaps(&self, other: &Net) -> bool {
        let mask = Net::mask(self.prefix.min(other.prefix));
        self.addr & mask == other.addr & mask
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

/// The /24s of 172.18.0.0–172.31.255.0.
const CANDIDATES: u32 = 14 * 256;

/// The first /24 of 172.18.0.0–172.31.255.0 from the `start`th on (round
/// the end) that overlaps nothing in `used`. Clusters made at once start at
/// different places (their id), so they seldom reach for the same one.
pub fn pick(used: &[Net], start: u32) -> Option<Net> {
    (0..CANDIDATES)
        .map(|i| (start + i) % CANDIDATES)
        .map(|i| Net {
            addr: (172 << 24) | ((18 + i / 256) << 16) | ((i % 256) << 8),
            prefix: 24,
        })
        .find(|candidate| !used.iter().any(|u| u.overlaps(candidate)))
}

/// Where a cluster's search starts, from its id.
pub fn start_for(cluster_id: &str) -> u32 {
    // FNV-1a: stable across runs and builds, unlike the std hasher.
    let hash = cluster_id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    hash % CANDIDATES
}

/// The destinations of this host's routes (`/proc/net/route`), but the
/// default route.
pub fn host_routes() -> Vec<Net> {
    std::fs::read_to_string("/proc/net/route")
        .map(|text| parse_routes(&text))
        .unwrap_or_default()
}

fn parse_routes(text: &str) -> Vec<Net> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Little-endian hex, as the kernel prints them.
            let dest = u32::from_str_radix(fields.get(1)?, 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?.swap_bytes();
            let prefix = mask.leading_ones() as u8;
            (prefix > 0).then_some(Net { addr: dest, prefix })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_slash_24_is_picked_around_what_is_used() {
        let net = |s| Net::parse(s).unwrap();
        assert_eq!(pick(&[], 0).unwrap().to_string(), "172.18.0.0/24");
        let used = [
            net("172.17.0.0/16"),
            net("172.18.0.0/16"),
            net("172.19.0.0/24"),
        ];
        assert_eq!(pick(&used, 0).unwrap().to_string(), "172.19.1.0/24");
        assert_eq!(pick(&used, 257).unwrap().to_string(), "172.19.1.0/24");
        // From the last one round to the first free.
        let last = pick(&[net("172.18.0.0/24")], CANDIDATES - 1).unwrap();
        assert_eq!(last.to_string(), "172.31.255.0/24");
        let round = pick(&[net("172.31.255.0/24")], CANDIDATES - 1).unwrap();
        assert_eq!(round.to_string(), "172.18.0.0/24");
        let all = [net("172.16.0.0/12")];
        assert_eq!(pick(&all, 0), None);
        assert_ne!(start_for("a1b2"), start_for("a1b3"));
        assert!(start_for("a1b2") < CANDIDATES);
        assert!(net("10.0.0.0/8").overlaps(&net("10.1.2.0/24")));
        assert!(!net("10.0.0.0/24").overlaps(&net("10.0.1.0/24")));
        assert_eq!(Net::parse("fd00::/64"), None);
    }

    #[test]
    fn host_routes_are_read_as_the_kernel_prints_them() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let routes: Vec<String> = parse_routes(text).iter().map(Net::to_string).collect();
        assert_eq!(routes, ["192.168.0.0/24", "172.17.0.0/16"]);
    }
}
