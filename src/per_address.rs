//! A cap per client address on what one listener holds for it (open connections, TLS
//! handshakes in progress), so that one host cannot take every slot of a listener's cap. IPv6
//! clients count per /64 (one host's usual allotment), IPv4-mapped ones as IPv4.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Slots per client address, at most `max` each (0: no cap).
#[derive(Debug, Clone)]
pub struct PerAddress {
    inner: Option<Arc<Slots>>,
}

#[derive(Debug)]
struct Slots {
    max: usize,
    taken: Mutex<HashMap<IpAddr, usize>>,
}

/// One slot of one address, given back when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    held: Option<(Arc<Slots>, IpAddr)>,
}

impl PerAddress {
    /// At most `max` slots per address; 0 for no cap.
    pub fn new(max: usize) -> Self {
        Self {
            inner: (max > 0).then(|| {
                Arc::new(Slots {
                    max,
                    taken: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    /// The slots per address; 0 when there is no cap.
    pub fn max(&self) -> usize {
        self.inner.as_ref().map_or(0, |slots| slots.max)
    }

    /// A slot for a client at `ip` (`None`: an address this cap does not apply to), or `None`
    /// when that address holds all of its slots.
    pub fn try_take(&self, ip: Option<IpAddr>) -> Option<AddressSlot> {
        let (Some(slots), Some(ip)) = (&self.inner, ip) else {
            return Some(AddressSlot { held: None });
        };
        let key = address_key(ip);
        let mut taken = slots.taken.lock().unwrap_or_else(|e| e.into_inner());
        let count = taken.entry(key).or_insert(0);
        if *count >= slots.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            held: Some((Arc::clone(slots), key)),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some((slots, key)) = self.held.take() else {
            return;
        };
        let mut taken = slots.taken.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = taken.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                taken.remove(&key);
            }
        }
    }
}

/// What one client is counted as: its IPv4 address, or its IPv6 /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

/// A connection's client address, for caps per address (`None`: checked elsewhere, or
/// unknown).
pub trait PeerAddress {
    /// The client's IP address.
    fn peer_ip(&self) -> Option<IpAddr>;
}

impl PeerAddress for tokio::net::TcpStream {
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer_addr().ok().map(|addr| addr.ip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn each_address_gets_its_own_slots_back_when_dropped() {
        let cap = PerAddress::new(2);
        let first = cap.try_take(ip("10.0.0.1")).unwrap();
        let _second = cap.try_take(ip("10.0.0.1")).unwrap();
        assert!(
            cap.try_take(ip("10.0.0.1")).is_none(),
            "the third is refused"
        );
        assert!(
            cap.try_take(ip("10.0.0.2")).is_some(),
            "another host is not"
        );
        drop(first);
        assert!(
            cap.try_take(ip("10.0.0.1")).is_some(),
            "a freed slot is reused"
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let cap = PerAddress::new(1);
        let _held = cap.try_take(ip("2001:db8:1:2::1")).unwrap();
        assert!(cap.try_take(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(cap.try_take(ip("2001:db8:1:3::1")).is_some());
        let _v4 = cap.try_take(ip("192.0.2.7")).unwrap();
        assert!(cap.try_take(ip("::ffff:192.0.2.7")).is_none());
    }

    #[test]
    fn no_cap_and_unknown_addresses_always_get_a_slot() {
        let none = PerAddress::new(0);
        assert_eq!((none.max(), PerAddress::new(7).max()), (0, 7));
        let held: Vec<_> = (0..100).map(|_| none.try_take(ip("10.0.0.1"))).collect();
        assert!(held.iter().all(Option::is_some));
        let one = PerAddress::new(1);
        let _a = one.try_take(None).unwrap();
        assert!(one.try_take(None).is_some());
    }
}
