//! The table of chat clients, ordered by when each was last heard from.
//!
//! The server touches the table for every datagram it receives and reads its destinations for
//! every broadcast, so both must be cheap: [`PeerTable::touch`] is O(1), [`PeerTable::expire`]
//! does work only for the clients that actually expire, and [`PeerTable::destinations`] hands out
//! a cached list that is rebuilt only when membership changes.
//!
//! Time is always passed in rather than read here, so the table can be tested with made-up
//! instants and behaves identically however the caller's clock is sampled.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use hashlink::linked_hash_map::Entry;
use hashlink::LinkedHashMap;

/// The default limit on how many clients one chat server keeps.
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;

/// What [`PeerTable::touch`] did with an address.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Touch {
    /// The address was new and has been added.
    Joined,
    /// The address was already known; its last-seen time was updated.
    Refreshed,
    /// The address was new but the table is full, so it was not added.
    Refused,
}

/// Known clients and when each was last seen, oldest first.
///
/// Invariant: iteration order is non-decreasing in last-seen time. `touch` keeps it by moving a
/// refreshed client to the back and by never letting time go backwards, which is what lets
/// `expire` stop at the first client that is still live.
#[derive(Debug)]
pub struct PeerTable {
    /// Last seen: the monotonic time (for expiry) and the wall-clock time (for display),
    /// both taken when the datagram was handled.
    clients: LinkedHashMap<SocketAddr, (Instant, SystemTime)>,
    max_clients: usize,
    // Rebuilt once per membership change, so a broadcast walks a flat list and allocates nothing.
    destinations: Vec<SocketAddr>,
    // Set by anything that adds or removes a client; a refresh leaves it alone.
    dirty: bool,
}

impl Default for PeerTable {
    fn default() -> Self {
        PeerTable::new(DEFAULT_MAX_CLIENTS)
    }
}

impl PeerTable {
    /// Creates an empty table that holds at most `max_clients` clients (0 is treated as 1).
    pub fn new(max_clients: usize) -> Self {
        PeerTable {
            clients: LinkedHashMap::new(),
            max_clients: max_clients.max(1),
            destinations: Vec::new(),
            dirty: false,
        }
    }

    /// Records that `addr` was heard from at `now`.
    ///
    /// A known client is refreshed and becomes the newest; an unknown one joins if there is room
    /// and is refused otherwise, leaving the table unchanged. `now` should never be earlier than
    /// a time already given; if it is, it is raised to the newest time in the table, because an
    /// out-of-order entry would let `expire` stop early and keep stale clients forever.
    pub fn touch(&mut self, addr: SocketAddr, now: Instant) -> Touch {
        self.touch_at(addr, now, SystemTime::UNIX_EPOCH)
    }

    /// [`touch`](Self::touch) that also records the wall-clock time `wall` of the datagram, as
    /// [`iter_wall`](Self::iter_wall) shows it.
    pub fn touch_at(&mut self, addr: SocketAddr, now: Instant, wall: SystemTime) -> Touch {
        let now = match self.clients.back() {
            Some((_, &(newest, _))) if now < newest => newest,
            _ => now,
        };
        let full = self.clients.len() >= self.max_clients;
        match self.clients.entry(addr) {
            Entry::Occupied(mut entry) => {
                *entry.get_mut() = (now, wall);
                entry.to_back();
                Touch::Refreshed
            }
            Entry::Vacant(_) if full => Touch::Refused,
            Entry::Vacant(entry) => {
                // A vacant entry is inserted at the back, which is where the newest belongs.
                entry.insert((now, wall));
                self.dirty = true;
                Touch::Joined
            }
        }
    }

    /// Forgets `addr`, returning when it was last seen, or `None` if it was not known.
    pub fn remove(&mut self, addr: &SocketAddr) -> Option<Instant> {
        let (last_seen, _) = self.clients.remove(addr)?;
        self.dirty = true;
        Some(last_seen)
    }

    /// Removes every client silent for longer than `inval` at `now`, oldest first.
    ///
    /// A client seen exactly `inval` ago is still live. `on_expired(addr, last_seen)` is called
    /// for each removed client, after it has been removed.
    pub fn expire(
        &mut self,
        now: Instant,
        inval: Duration,
        mut on_expired: impl FnMut(SocketAddr, Instant),
    ) {
        while let Some((_, &(last_seen, _))) = self.clients.front() {
            // Saturating: a `now` older than the entry means "just seen", not a panic.
            if now.saturating_duration_since(last_seen) <= inval {
                break;
            }
            if let Some((addr, (last_seen, _))) = self.clients.pop_front() {
                self.dirty = true;
                on_expired(addr, last_seen);
            }
        }
    }

    /// When the oldest client will expire: its last-seen time plus `inval`.
    ///
    /// `None` if the table is empty, or if that instant is too far away for `Instant` to hold,
    /// which in practice also means never.
    pub fn next_expiry(&self, inval: Duration) -> Option<Instant> {
        let (_, &(oldest, _)) = self.clients.front()?;
        oldest.checked_add(inval)
    }

    /// Whether `addr` is a current member.
    pub fn is_live(&self, addr: &SocketAddr) -> bool {
        self.clients.contains_key(addr)
    }

    /// When `addr` was last seen, or `None` if it is not a member.
    pub fn last_seen(&self, addr: &SocketAddr) -> Option<Instant> {
        self.clients.get(addr).map(|&(at, _)| at)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Forgets every member.
    pub fn clear(&mut self) {
        self.clients.clear();
        self.dirty = true;
    }

    /// The most members the table accepts.
    pub fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// Every member with its last-seen time, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, Instant)> + '_ {
        self.clients.iter().map(|(&addr, &(seen, _))| (addr, seen))
    }

    /// The clients and the wall-clock time each was last heard from, oldest first.
    pub fn iter_wall(&self) -> impl Iterator<Item = (SocketAddr, SystemTime)> + '_ {
        self.clients.iter().map(|(&addr, &(_, wall))| (addr, wall))
    }

    /// Every member's address, as one contiguous list for a broadcast.
    ///
    /// The list is cached and rebuilt (reusing its buffer) only when someone joined or left since
    /// the last call, so broadcasting to an unchanged membership allocates nothing. Its order is
    /// unspecified.
    pub fn destinations(&mut self) -> &[SocketAddr] {
        if self.dirty {
            self.destinations.clear();
            self.destinations.extend(self.clients.keys().copied());
            self.dirty = false;
        }
        &self.destinations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    fn v4(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    fn v6(port: u16) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn order(t: &PeerTable) -> Vec<SocketAddr> {
        t.iter().map(|(a, _)| a).collect()
    }

    fn dest_addrs(t: &mut PeerTable) -> BTreeSet<SocketAddr> {
        t.destinations().iter().copied().collect()
    }

    fn collect_expired(
        t: &mut PeerTable,
        now: Instant,
        inval: Duration,
    ) -> Vec<(SocketAddr, Instant)> {
        let mut out = Vec::new();
        t.expire(now, inval, |a, seen| out.push((a, seen)));
        out
    }

    #[test]
    fn join_refresh_and_refuse_at_max() {
        let t0 = Instant::now();
        let mut t = PeerTable::new(2);
        assert_eq!(t.max_clients(), 2);
        assert!(t.is_empty());
        assert_eq!(t.touch(v4(1), t0), Touch::Joined);
        assert_eq!(t.touch(v4(2), t0 + ms(1)), Touch::Joined);
        assert_eq!(t.touch(v4(3), t0 + ms(2)), Touch::Refused);
        assert_eq!(t.len(), 2);
        assert!(!t.is_live(&v4(3)));
        assert_eq!(t.last_seen(&v4(3)), None);
        // A full table still refreshes its members.
        assert_eq!(t.touch(v4(1), t0 + ms(3)), Touch::Refreshed);
        assert_eq!(t.last_seen(&v4(1)), Some(t0 + ms(3)));
        assert_eq!(t.len(), 2);
        // Room frees up once someone leaves.
        assert_eq!(t.remove(&v4(2)), Some(t0 + ms(1)));
        assert_eq!(t.touch(v4(3), t0 + ms(4)), Touch::Joined);
    }

    #[test]
    fn zero_max_is_clamped_to_one() {
        let t0 = Instant::now();
        let mut t = PeerTable::new(0);
        assert_eq!(t.max_clients(), 1);
        assert_eq!(t.touch(v4(1), t0), Touch::Joined);
        assert_eq!(t.touch(v4(2), t0), Touch::Refused);
        assert_eq!(PeerTable::default().max_clients(), DEFAULT_MAX_CLIENTS);
    }

    #[test]
    fn remove_known_and_unknown() {
        let t0 = Instant::now();
        let mut t = PeerTable::new(10);
        assert_eq!(t.remove(&v4(1)), None);
        t.touch(v4(1), t0);
        assert_eq!(t.remove(&v4(1)), Some(t0));
        assert_eq!(t.remove(&v4(1)), None);
        assert!(t.is_empty());
        assert!(t.destinations().is_empty());
    }

    #[test]
    fn expire_boundary_is_strict() {
        let t0 = Instant::now();
        let inval = ms(5000);
        let mut t = PeerTable::new(10);
        t.touch(v4(1), t0);
        assert!(collect_expired(&mut t, t0 + inval, inval).is_empty());
        assert!(t.is_live(&v4(1)));
        let gone = collect_expired(&mut t, t0 + inval + Duration::from_nanos(1), inval);
        assert_eq!(gone, vec![(v4(1), t0)]);
        assert!(t.is_empty());
    }

    #[test]
    fn expire_keeps_refreshed_clients() {
        let t0 = Instant::now();
        let inval = ms(1000);
        let mut t = PeerTable::new(10);
        t.touch(v4(1), t0);
        t.touch(v4(2), t0 + ms(100));
        t.touch(v4(3), t0 + ms(200));
        t.touch(v4(1), t0 + ms(900));
        let gone = collect_expired(&mut t, t0 + ms(1150), inval);
        assert_eq!(gone, vec![(v4(2), t0 + ms(100))]);
        assert_eq!(order(&t), vec![v4(3), v4(1)]);
        let gone = collect_expired(&mut t, t0 + ms(5000), inval);
        assert_eq!(gone, vec![(v4(3), t0 + ms(200)), (v4(1), t0 + ms(900))]);
    }

    #[test]
    fn expire_with_an_old_now_expires_nothing() {
        let t0 = Instant::now();
        let mut t = PeerTable::new(10);
        t.touch(v4(1), t0 + ms(100));
        assert!(collect_expired(&mut t, t0, Duration::ZERO).is_empty());
        assert_eq!(
            collect_expired(&mut t, t0 + ms(101), Duration::ZERO).len(),
            1
        );
    }

    #[test]
    fn refresh_moves_to_the_back() {
        let t0 = Instant::now();
        let mut t = PeerTable::new(10);
        for (i, port) in [1, 2, 3, 4].into_iter().enumerate() {
            t.touch(v4(port), t0 + ms(i as u64));
        }
        t.touch(v4(2), t0 + ms(10));
        t.touch(v4(1), t0 + ms(11));
        assert_eq!(order(&t), vec![v4(3), v4(4), v4(2), v4(1)]);
        // Refreshing the newest keeps it where it is.
        t.touch(v4(1), t0 + ms(12));
        assert_eq!(order(&t), vec![v4(3), v4(4), v4(2), v4(1)]);
    }

    #[test]
    fn next_expiry_tracks_the_oldest() {
        let t0 = Instant::now();
        let inval = ms(3000);
        let mut t = PeerTable::new(10);
        assert_eq!(t.next_expiry(inval), None);
        t.touch(v4(1), t0);
        t.touch(v4(2), t0 + ms(500));
        assert_eq!(t.next_expiry(inval), Some(t0 + inval));
        t.touch(v4(1), t0 + ms(800));
        assert_eq!(t.next_expiry(inval), Some(t0 + ms(500) + inval));
        t.remove(&v4(2));
        assert_eq!(t.next_expiry(inval), Some(t0 + ms(800) + inval));
        assert_eq!(t.next_expiry(Duration::MAX), None);
        t.clear();
        assert_eq!(t.next_expiry(inval), None);
    }

    #[test]
    fn destinations_follow_membership() {
        let t0 = Instant::now();
        let inval = ms(1000);
        let mut t = PeerTable::new(10);
        assert!(t.destinations().is_empty());

        t.touch(v4(1), t0);
        t.touch(v6(2), t0 + ms(600));
        assert_eq!(dest_addrs(&mut t), BTreeSet::from([v4(1), v6(2)]));

        // A refresh changes no membership, so the cache is served as is.
        let before = t.destinations().to_vec();
        assert_eq!(t.touch(v4(1), t0 + ms(700)), Touch::Refreshed);
        assert!(!t.dirty);
        assert_eq!(t.destinations(), before.as_slice());

        // A refusal changes nothing either.
        let mut full = PeerTable::new(1);
        full.touch(v4(1), t0);
        full.destinations();
        assert_eq!(full.touch(v4(2), t0), Touch::Refused);
        assert!(!full.dirty);

        t.touch(v4(3), t0 + ms(800));
        assert_eq!(dest_addrs(&mut t), BTreeSet::from([v4(1), v6(2), v4(3)]));

        let gone = collect_expired(&mut t, t0 + ms(1650), inval);
        assert_eq!(gone, vec![(v6(2), t0 + ms(600))]);
        assert_eq!(dest_addrs(&mut t), BTreeSet::from([v4(1), v4(3)]));

        t.remove(&v4(1));
        assert_eq!(dest_addrs(&mut t), BTreeSet::from([v4(3)]));

        t.clear();
        assert!(t.destinations().is_empty());
    }

    #[test]
    fn backwards_now_is_clamped() {
        let t0 = Instant::now();
        let mut t = PeerTable::new(10);
        t.touch(v4(1), t0 + ms(1000));
        // A stale time must not place the newcomer before the newest entry.
        assert_eq!(t.touch(v4(2), t0), Touch::Joined);
        assert_eq!(t.last_seen(&v4(2)), Some(t0 + ms(1000)));
        assert_eq!(t.touch(v4(1), t0 + ms(500)), Touch::Refreshed);
        assert_eq!(t.last_seen(&v4(1)), Some(t0 + ms(1000)));
        assert_eq!(order(&t), vec![v4(2), v4(1)]);
        let seen: Vec<Instant> = t.iter().map(|(_, s)| s).collect();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn ipv6_addresses() {
        let t0 = Instant::now();
        let scoped = SocketAddr::V6(SocketAddrV6::new(
            "fe80::1".parse().expect("valid address"),
            9000,
            0,
            3,
        ));
        let mut t = PeerTable::new(10);
        assert_eq!(t.touch(v6(9000), t0), Touch::Joined);
        assert_eq!(t.touch(scoped, t0), Touch::Joined);
        assert_eq!(t.touch(v4(9000), t0), Touch::Joined);
        assert_eq!(t.touch(v6(9000), t0 + ms(1)), Touch::Refreshed);
        assert_eq!(t.len(), 3);
        assert_eq!(
            dest_addrs(&mut t),
            BTreeSet::from([v6(9000), scoped, v4(9000)])
        );
        assert_eq!(t.remove(&scoped), Some(t0));
        assert!(t.is_live(&v6(9000)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Touch(usize),
        // Touch with an instant this many ms before the current clock, to exercise the clamp.
        TouchStale(usize, u64),
        Remove(usize),
        Advance(u64),
        Expire,
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..POOL).prop_map(Op::Touch),
            1 => (0..POOL, 0..2000u64).prop_map(|(i, back)| Op::TouchStale(i, back)),
            2 => (0..POOL).prop_map(Op::Remove),
            4 => (0..3000u64).prop_map(Op::Advance),
            3 => Just(Op::Expire),
            1 => Just(Op::Clear),
        ]
    }

    const POOL: usize = 8;
    const INVAL: Duration = Duration::from_millis(5000);

    fn pool() -> Vec<SocketAddr> {
        (0..POOL as u16)
            .map(|i| {
                if i % 2 == 0 {
                    v4(7000 + i)
                } else {
                    v6(7000 + i)
                }
            })
            .collect()
    }

    /// The obvious implementation: a plain map, scanned in full to expire.
    struct Model {
        clients: HashMap<SocketAddr, Instant>,
        max: usize,
    }

    impl Model {
        fn touch(&mut self, addr: SocketAddr, now: Instant) -> Touch {
            let newest = self.clients.values().max().copied();
            let now = newest.map_or(now, |n| n.max(now));
            if let Some(seen) = self.clients.get_mut(&addr) {
                *seen = now;
                Touch::Refreshed
            } else if self.clients.len() >= self.max {
                Touch::Refused
            } else {
                self.clients.insert(addr, now);
                Touch::Joined
            }
        }

        fn expire(&mut self, now: Instant) -> BTreeSet<(SocketAddr, Instant)> {
            let gone: BTreeSet<_> = self
                .clients
                .iter()
                .filter(|(_, &seen)| now.saturating_duration_since(seen) > INVAL)
                .map(|(&a, &s)| (a, s))
                .collect();
            for (a, _) in &gone {
                self.clients.remove(a);
            }
            gone
        }
    }

    proptest! {
        #[test]
        fn matches_the_model(max in 1..=POOL + 1, ops in proptest::collection::vec(op(), 0..200)) {
            let addrs = pool();
            let start = Instant::now() + Duration::from_secs(10);
            let mut now = start;
            let mut table = PeerTable::new(max);
            let mut model = Model { clients: HashMap::new(), max };

            for op in ops {
                match op {
                    Op::Touch(i) => {
                        prop_assert_eq!(table.touch(addrs[i], now), model.touch(addrs[i], now));
                    }
                    Op::TouchStale(i, back) => {
                        let stale = now - Duration::from_millis(back);
                        prop_assert_eq!(table.touch(addrs[i], stale), model.touch(addrs[i], stale));
                    }
                    Op::Remove(i) => {
                        prop_assert_eq!(table.remove(&addrs[i]), model.clients.remove(&addrs[i]));
                    }
                    Op::Advance(d) => now += Duration::from_millis(d),
                    Op::Expire => {
                        let mut reported = Vec::new();
                        table.expire(now, INVAL, |a, s| reported.push((a, s)));
                        let reported_set: BTreeSet<_> = reported.iter().copied().collect();
                        prop_assert_eq!(reported.len(), reported_set.len());
                        prop_assert_eq!(reported_set, model.expire(now));
                    }
                    Op::Clear => {
                        table.clear();
                        model.clients.clear();
                    }
                }

                let got: BTreeSet<_> = table.iter().collect();
                let want: BTreeSet<_> = model.clients.iter().map(|(&a, &s)| (a, s)).collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(table.len(), model.clients.len());
                prop_assert_eq!(table.is_empty(), model.clients.is_empty());
                let want_addrs: BTreeSet<_> = model.clients.keys().copied().collect();
                prop_assert_eq!(dest_addrs(&mut table), want_addrs);
                prop_assert_eq!(table.destinations().len(), model.clients.len());

                let seen: Vec<Instant> = table.iter().map(|(_, s)| s).collect();
                prop_assert!(seen.windows(2).all(|w| w[0] <= w[1]), "not oldest first");
                let oldest = model.clients.values().min().copied();
                prop_assert_eq!(table.next_expiry(INVAL), oldest.map(|o| o + INVAL));
                for addr in &addrs {
                    prop_assert_eq!(table.is_live(addr), model.clients.contains_key(addr));
                    prop_assert_eq!(table.last_seen(addr), model.clients.get(addr).copied());
                }
            }
        }
    }
}
