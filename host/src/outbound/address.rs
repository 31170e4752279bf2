//! Which resolved addresses a plugin's request may connect to: none that the IANA
//! special-purpose registries call not globally reachable, no multicast (the table
//! is in `special`), none of the host's own interface addresses, and no
//! IPv4-in-IPv6 form of any of those.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::special::{self, Block};

/// Why an address is refused, for the operator's log.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// In a special-purpose block: its name and RFC.
    Special {
        name: &'static str,
        rfc: &'static str,
    },
    /// One of the host's own addresses.
    Own,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Special { name, rfc } => write!(f, "{name} ({rfc})"),
            Self::Own => f.write_str("an address of this host"),
        }
    }
}

impl<A> From<&Block<A>> for Refused {
    fn from(block: &Block<A>) -> Self {
        Self::Special {
            name: block.name,
            rfc: block.rfc,
        }
    }
}

/// Why a name found through DNS must not lead to `ip`, or `None` when it may;
/// `own` is the host's interface addresses ([`own_addresses`]).
pub(crate) fn refused(ip: IpAddr, own: &[IpAddr]) -> Option<Refused> {
    if own.contains(&ip) {
        return Some(Refused::Own);
    }
    match ip {
        IpAddr::V4(v4) => special::refused_v4(v4).map(Refused::from),
        IpAddr::V6(v6) => match nat64(v6) {
            // The NAT64 prefix is globally reachable; what it leads to is the
            // IPv4 address inside.
            Some(v4) => refused(IpAddr::V4(v4), own),
            None => special::refused_v6(v6).map(Refused::from),
        },
    }
}

/// The IPv4 address inside `64:ff9b::/96` (NAT64, RFC 6052).
fn nat64(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    })
}

/// The host's own interface addresses (those of every interface, up or down).
///
/// Read for each request that needs them, not once at start: addresses come and
/// go while the host runs (DHCP, a container network, a VPN), and reading them is
/// one `getifaddrs` call, small next to the DNS lookup and the connection it
/// guards.
pub(crate) fn own_addresses() -> std::io::Result<Vec<IpAddr>> {
    Ok(if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| i.ip())
        .collect())
}

#[cfg(test)]
mod tests;
