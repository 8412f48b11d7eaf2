//! The NAT table alone: sockets are numbers, the time is made up.

use super::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A table of at most `max` mappings, idle after 100 ms; socket 0 faces the clients, and a
/// client on port p gets socket p + 1000 bound to port p + 2000.
fn table(max: usize) -> Nat<u16> {
    Nat::new(0, max, ms(100))
}

fn map(nat: &mut Nat<u16>, port: u16, now: Instant) -> usize {
    assert_eq!(nat.find(addr(port)), None);
    nat.insert(addr(port), port + 1000, addr(port + 2000), now)
}

/// Every index leads to the same mapping whichever way it is looked up.
fn consistent(nat: &Nat<u16>) {
    assert_eq!(nat.sockets().len(), nat.len() + 1);
    for (client, upstream) in nat.view().clients {
        let i = nat.find(client).unwrap();
        assert_eq!(nat.sockets()[i], client.port() + 1000);
        assert_eq!(upstream.port(), client.port() + 2000);
    }
}

#[test]
fn a_new_client_gets_the_next_socket_and_is_found_again() {
    let t0 = Instant::now();
    let mut nat = table(10);
    assert!(nat.is_empty() && nat.sockets() == [0]);
    assert_eq!(map(&mut nat, 1, t0), 1);
    assert_eq!(map(&mut nat, 2, t0), 2);
    assert_eq!(nat.find(addr(1)), Some(1));
    assert_eq!(nat.heard(2, t0), Some(addr(2)));
    assert_eq!(nat.heard(0, t0), None); // the clients' socket is nobody's mapping
    assert_eq!(nat.heard(3, t0), None);
    assert_eq!(nat.upstream(addr(2), t0), Some(&1002));
    assert_eq!(nat.upstream(addr(3), t0), None);
    let view = nat.view();
    assert_eq!(view.clients, [(addr(1), addr(2001)), (addr(2), addr(2002))]);
    assert_eq!((view.mapped, view.forgotten), (2, 0));
    consistent(&nat);
}

#[test]
fn full_at_max() {
    let t0 = Instant::now();
    let mut nat = table(2);
    map(&mut nat, 1, t0);
    assert!(!nat.is_full());
    map(&mut nat, 2, t0);
    assert!(nat.is_full());
    nat.sweep(t0 + ms(100));
    assert!(nat.is_empty() && !nat.is_full());
}

#[test]
fn idle_mappings_are_forgotten_with_their_sockets_and_the_rest_stay_in_step() {
    let t0 = Instant::now();
    let mut nat = table(100);
    for port in 1..=6 {
        map(&mut nat, port, t0);
    }
    // Traffic both ways keeps a mapping: 2 heard (received from the target), 5 used to send.
    nat.heard(nat.find(addr(2)).unwrap(), t0 + ms(60));
    nat.upstream(addr(5), t0 + ms(60));
    let generation = nat.generation();
    assert_eq!(nat.sweep(t0 + ms(99)), []);
    assert_eq!(nat.generation(), generation);
    let mut gone = nat.sweep(t0 + ms(100));
    gone.sort();
    assert_eq!(gone, [addr(1), addr(3), addr(4), addr(6)]);
    assert_ne!(nat.generation(), generation);
    consistent(&nat);
    let view = nat.view();
    assert_eq!(view.clients, [(addr(2), addr(2002)), (addr(5), addr(2005))]);
    assert_eq!((view.mapped, view.forgotten), (6, 4));
    let mut sockets = nat.sockets().to_vec();
    sockets.sort();
    assert_eq!(sockets, [0, 1002, 1005]);
    // Mapped again later: a new mapping at the end, the view still in mapping order.
    map(&mut nat, 1, t0 + ms(120));
    assert_eq!(nat.view().clients.last(), Some(&(addr(1), addr(2001))));
    assert_eq!(nat.view().mapped, 7);
    consistent(&nat);
}

#[test]
fn a_mapping_with_copies_queued_is_not_idle() {
    let t0 = Instant::now();
    let mut nat = table(10);
    map(&mut nat, 1, t0);
    nat.queued(addr(1), 2); // e.g. two copies delayed for 2 s
    assert_eq!(nat.sweep(t0 + ms(1000)), []);
    nat.dequeued(addr(1), t0 + ms(2000));
    assert_eq!(nat.sweep(t0 + ms(2500)), []);
    nat.dequeued(addr(1), t0 + ms(2010));
    // The last copy left at 2010 ms: idle from 2110 ms on.
    assert_eq!(nat.sweep(t0 + ms(2109)), []);
    assert_eq!(nat.sweep(t0 + ms(2110)), [addr(1)]);
    // Counting for a client with no mapping changes nothing.
    nat.queued(addr(9), 1);
    nat.dequeued(addr(9), t0);
    assert!(nat.is_empty());
}
