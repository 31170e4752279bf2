//! The address blocks a plugin's request may not reach through a name: the IANA
//! special-purpose address registries, row by row, and the few blocks outside them
//! that are not ordinary unicast destinations either.
//!
//! Source: the "IANA IPv4 Special-Purpose Address Registry" and the "IANA IPv6
//! Special-Purpose Address Registry" (RFC 6890), both last updated 2025-10-09,
//! transcribed here in the registries' order, one entry per row (the IPv4 row
//! "192.0.0.170/32, 192.0.0.171/32" is two entries), each with the RFC the
//! registry names and its "Globally Reachable" value. No crate encodes both
//! registries completely (the `iprfc` crate stops at RFC 6890's 2013 rows; the
//! standard library's `is_global` is unstable), so the table lives here; when the
//! registries change, change it and the test in `address`.
//!
//! A block is refused when the most specific row that holds the address is not
//! "True" (a "False", an "N/A" or a terminated row's empty value): the registries
//! carve globally reachable blocks out of refused ones (IPv4 footnote 2 on
//! 192.0.0.0/24: "Not usable unless by virtue of a more specific reservation";
//! IPv6 footnote 1 on 2001::/23: "Unless allowed by a more specific allocation").

use std::net::{Ipv4Addr, Ipv6Addr};

/// A registry row's "Globally Reachable" column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reachable {
    True,
    False,
    /// "N/A": reachability depends on what the address carries (6to4, Teredo).
    NotApplicable,
    /// Left empty: the row's allocation was terminated.
    Terminated,
}

/// One block: a registry row, or one of the blocks beyond the registries.
#[derive(Debug)]
pub(super) struct Block<A> {
    pub(super) address: A,
    pub(super) prefix: u8,
    pub(super) name: &'static str,
    pub(super) rfc: &'static str,
    pub(super) reachable: Reachable,
}

use Reachable::{False, NotApplicable, Terminated, True};

const fn v4(
    [a, b, c, d]: [u8; 4],
    prefix: u8,
    name: &'static str,
    rfc: &'static str,
    reachable: Reachable,
) -> Block<Ipv4Addr> {
    Block {
        address: Ipv4Addr::new(a, b, c, d),
        prefix,
        name,
        rfc,
        reachable,
    }
}

const fn v6(
    [a, b, c, d, e, f, g, h]: [u16; 8],
    prefix: u8,
    name: &'static str,
    rfc: &'static str,
    reachable: Reachable,
) -> Block<Ipv6Addr> {
    Block {
        address: Ipv6Addr::new(a, b, c, d, e, f, g, h),
        prefix,
        name,
        rfc,
        reachable,
    }
}

/// IANA IPv4 Special-Purpose Address Registry, last updated 2025-10-09.
#[rustfmt::skip]
pub(super) const IPV4: &[Block<Ipv4Addr>] = &[
    v4([0, 0, 0, 0], 8, "\"This network\"", "RFC 791, section 3.2", False),
    v4([0, 0, 0, 0], 32, "\"This host on this network\"", "RFC 1122, section 3.2.1.3", False),
    v4([10, 0, 0, 0], 8, "Private-Use", "RFC 1918", False),
    v4([100, 64, 0, 0], 10, "Shared Address Space", "RFC 6598", False),
    v4([127, 0, 0, 0], 8, "Loopback", "RFC 1122, section 3.2.1.3", False),
    v4([169, 254, 0, 0], 16, "Link Local", "RFC 3927", False),
    v4([172, 16, 0, 0], 12, "Private-Use", "RFC 1918", False),
    v4([192, 0, 0, 0], 24, "IETF Protocol Assignments", "RFC 6890, section 2.1", False),
    v4([192, 0, 0, 0], 29, "IPv4 Service Continuity Prefix", "RFC 7335", False),
    v4([192, 0, 0, 8], 32, "IPv4 dummy address", "RFC 7600", False),
    v4([192, 0, 0, 9], 32, "Port Control Protocol Anycast", "RFC 7723", True),
    v4([192, 0, 0, 10], 32, "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    v4([192, 0, 0, 170], 32, "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 section 2.2", False),
    v4([192, 0, 0, 171], 32, "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 section 2.2", False),
    v4([192, 0, 2, 0], 24, "Documentation (TEST-NET-1)", "RFC 5737", False),
    v4([192, 31, 196, 0], 24, "AS112-v4", "RFC 7535", True),
    v4([192, 52, 193, 0], 24, "AMT", "RFC 7450", True),
    v4([192, 88, 99, 0], 24, "Deprecated (6to4 Relay Anycast)", "RFC 7526", Terminated),
    v4([192, 88, 99, 2], 32, "6a44-relay anycast address", "RFC 6751", False),
    v4([192, 168, 0, 0], 16, "Private-Use", "RFC 1918", False),
    v4([192, 175, 48, 0], 24, "Direct Delegation AS112 Service", "RFC 7534", True),
    v4([198, 18, 0, 0], 15, "Benchmarking", "RFC 2544", False),
    v4([198, 51, 100, 0], 24, "Documentation (TEST-NET-2)", "RFC 5737", False),
    v4([203, 0, 113, 0], 24, "Documentation (TEST-NET-3)", "RFC 5737", False),
    v4([240, 0, 0, 0], 4, "Reserved", "RFC 1112, section 4", False),
    v4([255, 255, 255, 255], 32, "Limited Broadcast", "RFC 8190, RFC 919 section 7", False),
];

/// IANA IPv6 Special-Purpose Address Registry, last updated 2025-10-09.
#[rustfmt::skip]
pub(super) const IPV6: &[Block<Ipv6Addr>] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "Loopback Address", "RFC 4291", False),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, "Unspecified Address", "RFC 4291", False),
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "IPv4-mapped Address", "RFC 4291", False),
    // Globally reachable itself; `address` judges the IPv4 address it carries.
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, "IPv4-IPv6 Translat.", "RFC 6052", True),
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "IPv4-IPv6 Translat.", "RFC 8215", False),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "Discard-Only Address Block", "RFC 6666", False),
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, "Dummy IPv6 Prefix", "RFC 9780", False),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, "IETF Protocol Assignments", "RFC 2928", False),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "TEREDO", "RFC 4380, RFC 8190", NotApplicable),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, "Port Control Protocol Anycast", "RFC 7723", True),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, "DNS-SD Service Registration Protocol Anycast", "RFC 9665", True),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "Benchmarking", "RFC 5180, RFC Errata 1752", False),
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, "AMT", "RFC 7450", True),
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, "AS112-v6", "RFC 7535", True),
    v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, "Deprecated (previously ORCHID)", "RFC 4843", Terminated),
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, "ORCHIDv2", "RFC 7343", True),
    v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", True),
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "Documentation", "RFC 3849", False),
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4", "RFC 3056", NotApplicable),
    v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48, "Direct Delegation AS112 Service", "RFC 7534", True),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "Documentation", "RFC 9637", False),
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, "Segment Routing (SRv6) SIDs", "RFC 9602", False),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "Unique-Local", "RFC 4193, RFC 8190", False),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "Link-Local Unicast", "RFC 4291", False),
];

/// Refused IPv4 blocks that are not in the special-purpose registry: multicast
/// (the IANA IPv4 Multicast Address Space Registry).
#[rustfmt::skip]
pub(super) const IPV4_BEYOND: &[Block<Ipv4Addr>] = &[
    v4([224, 0, 0, 0], 4, "Multicast", "RFC 5771", False),
];

/// Refused IPv6 blocks that are not in the special-purpose registry: the
/// deprecated IPv4-compatible and site-local prefixes (noted in the IANA IPv6
/// Address Space Registry) and multicast.
#[rustfmt::skip]
pub(super) const IPV6_BEYOND: &[Block<Ipv6Addr>] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96, "IPv4-compatible (deprecated)", "RFC 4291, section 2.5.5.1", False),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "Site-Local (deprecated)", "RFC 3879", False),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "Multicast", "RFC 4291, section 2.7", False),
];

impl Block<Ipv4Addr> {
    pub(super) fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.address) & mask
    }

    /// The block's last address.
    #[cfg(test)]
    pub(super) fn last(&self) -> Ipv4Addr {
        let host = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
        Ipv4Addr::from(u32::from(self.address) | host)
    }
}

impl Block<Ipv6Addr> {
    pub(super) fn contains(&self, ip: Ipv6Addr) -> bool {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix))
            .unwrap_or(0);
        u128::from(ip) & mask == u128::from(self.address) & mask
    }

    /// The block's last address.
    #[cfg(test)]
    pub(super) fn last(&self) -> Ipv6Addr {
        let host = u128::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
        Ipv6Addr::from(u128::from(self.address) | host)
    }
}

/// The block that makes `ip` refused, if one does.
pub(super) fn refused_v4(ip: Ipv4Addr) -> Option<&'static Block<Ipv4Addr>> {
    let row = IPV4
        .iter()
        .filter(|b| b.contains(ip))
        .max_by_key(|b| b.prefix);
    row.filter(|b| b.reachable != True)
        .or_else(|| IPV4_BEYOND.iter().find(|b| b.contains(ip)))
}

/// The block that makes `ip` refused, if one does.
pub(super) fn refused_v6(ip: Ipv6Addr) -> Option<&'static Block<Ipv6Addr>> {
    let row = IPV6
        .iter()
        .filter(|b| b.contains(ip))
        .max_by_key(|b| b.prefix);
    row.filter(|b| b.reachable != True)
        .or_else(|| IPV6_BEYOND.iter().find(|b| b.contains(ip)))
}
