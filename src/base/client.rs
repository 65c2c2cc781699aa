//! Which client an address counts as, for limits per client: an IPv4 address, or an IPv6 /64
//! (one host commonly holds a whole /64, so counting single IPv6 addresses would not limit it).

use std::collections::HashMap;
use std::net::IpAddr;

/// The client an address counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(u128);

impl ClientKey {
    pub(crate) fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(u128::from(u32::from(v4))),
                None => ClientKey((u128::from(v6) >> 64 << 64) | 1),
            },
        }
    }
}

/// Things held per client, each client with a cap.
#[derive(Debug, Default)]
pub(crate) struct Tally(HashMap<ClientKey, u32>);

impl Tally {
    /// Takes one for `key` unless it holds `max` already.
    pub(crate) fn take(&mut self, key: ClientKey, max: usize) -> bool {
        let n = self.0.entry(key).or_insert(0);
        if *n as usize >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives one of `key`'s back.
    pub(crate) fn give(&mut self, key: ClientKey) {
        if let Some(n) = self.0.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&key);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn count(&self, key: ClientKey) -> u32 {
        self.0.get(&key).copied().unwrap_or(0)
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(ClientKey::of(v4), ClientKey::of(mapped));
        assert_ne!(
            ClientKey::of(v4),
            ClientKey::of("10.1.2.4".parse().unwrap())
        );
    }

    #[test]
    fn a_tally_caps_each_client_and_forgets_clients_with_nothing() {
        let mut t = Tally::default();
        let a = ClientKey::of("10.0.0.1".parse().unwrap());
        let b = ClientKey::of("10.0.0.2".parse().unwrap());
        assert!(t.take(a, 2) && t.take(a, 2) && !t.take(a, 2));
        assert!(t.take(b, 2));
        t.give(a);
        assert_eq!(t.count(a), 1);
        t.give(a);
        t.give(b);
        assert!(t.is_empty());
    }
}
