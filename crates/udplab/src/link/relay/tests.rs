//! The relay on real loopback sockets: a target that echoes, clients that count.

use super::*;
use crate::link::Loss;
use std::net::UdpSocket;

/// A target that echoes every datagram until it has echoed `n` or a second passes in silence.
fn echo_target(n: usize) -> (SocketAddr, JoinHandle<usize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut echoed = 0;
        while echoed < n {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                break;
            };
            socket.send_to(&buf[..len], from).unwrap();
            echoed += 1;
        }
        echoed
    });
    (addr, handle)
}

fn start(target: SocketAddr, config: LinkConfig) -> (Arc<Relay>, JoinHandle<io::Result<()>>) {
    let relay = Arc::new(Relay::bind("127.0.0.1:0".parse().unwrap(), target, config).unwrap());
    let handle = relay.spawn().unwrap();
    (relay, handle)
}

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    c
}

#[test]
fn round_trip_through_a_perfect_link() {
    let (target, echo) = echo_target(20);
    let (relay, handle) = start(target, LinkConfig::new(1));
    let c = client();
    let mut buf = [0u8; 64];
    for i in 0..20u8 {
        c.send_to(&[i; 10], relay.local_addr()).unwrap();
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&[i; 10][..], relay.local_addr()));
    }
    let seen = relay.clients();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, c.local_addr().unwrap());
    relay.stop();
    handle.join().unwrap().unwrap();
    assert_eq!(echo.join().unwrap(), 20);
    let s = relay.stats();
    assert_eq!(
        (s.up.received, s.up.forwarded, s.down.forwarded),
        (20, 20, 20)
    );
    assert!(s.up.balanced() && s.down.balanced());
    // The port is free again.
    UdpSocket::bind(relay.local_addr()).unwrap();
}

#[test]
fn each_client_gets_its_own_upstream_and_its_own_replies() {
    let (target, echo) = echo_target(6);
    let (relay, handle) = start(target, LinkConfig::new(1));
    let clients: Vec<UdpSocket> = (0..3).map(|_| client()).collect();
    let mut buf = [0u8; 64];
    for round in 0..2u8 {
        for (i, c) in clients.iter().enumerate() {
            c.send_to(&[i as u8, round], relay.local_addr()).unwrap();
        }
        for (i, c) in clients.iter().enumerate() {
            let n = c.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i as u8, round]);
        }
    }
    let map = relay.clients();
    let upstreams: std::collections::HashSet<SocketAddr> = map.iter().map(|m| m.1).collect();
    assert_eq!(upstreams.len(), 3);
    relay.stop();
    handle.join().unwrap().unwrap();
    echo.join().unwrap();
    assert_eq!(relay.stats().mapped, 3);
}

#[test]
fn max_clients_refuses_and_idle_mappings_are_forgotten() {
    let (target, _echo) = echo_target(0);
    let mut config = LinkConfig::new(1);
    config.max_clients = 1;
    config.idle = Duration::from_millis(100);
    let (relay, handle) = start(target, config);
    let (a, b) = (client(), client());
    a.send_to(b"a", relay.local_addr()).unwrap();
    // Until a's mapping is forgotten, b is refused.
    let give_up = Instant::now() + Duration::from_secs(5);
    while relay.stats().up.refused == 0 && Instant::now() < give_up {
        b.send_to(b"b", relay.local_addr()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(relay.stats().up.refused >= 1);
    while relay.stats().forgotten == 0 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(10));
    }
    b.send_to(b"b", relay.local_addr()).unwrap();
    while relay.stats().mapped < 2 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    relay.stop();
    handle.join().unwrap().unwrap();
    let s = relay.stats();
    assert!(s.forgotten >= 1 && s.mapped == 2, "{s:?}");
    assert!(s.up.balanced());
}

#[test]
fn stop_is_prompt_with_a_full_delay_queue_and_flushes_it() {
    let (target, _echo) = echo_target(0);
    let imp = Impairment {
        delay: Duration::from_secs(60),
        limit: 100,
        ..Impairment::default()
    };
    let (relay, handle) = start(target, LinkConfig::new(1).both(imp));
    let c = client();
    for _ in 0..150 {
        c.send_to(b"x", relay.local_addr()).unwrap();
    }
    let give_up = Instant::now() + Duration::from_secs(5);
    while relay.stats().up.received < 150 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    relay.stop();
    handle.join().unwrap().unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let s = relay.stats().up;
    assert_eq!(
        (s.received, s.queue_dropped, s.flushed, s.queued),
        (150, 50, 100, 0)
    );
    assert!(s.balanced());
}

#[test]
fn bind_refuses_an_invalid_config() {
    let mut config = LinkConfig::new(1);
    config.down.loss = Loss::Random(2.0);
    let err = Relay::bind(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:9".parse().unwrap(),
        config,
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "loss (down) must be a probability from 0 to 1, got 2"
    );
}

/// A free port on loopback (free a moment ago).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn bind_refuses_a_target_that_is_the_bound_address() {
    // As when port 0 was asked and the system picked the target's port: only the bound
    // address can tell.
    let port = free_port();
    for (listen, target) in [
        (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}")),
        (format!("0.0.0.0:{port}"), format!("127.0.0.1:{port}")),
    ] {
        let err = Relay::bind(
            listen.parse().unwrap(),
            target.parse().unwrap(),
            LinkConfig::new(1),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .starts_with(&format!("target {target} is the link's own address")),
            "{err}"
        );
        // The socket is closed again.
        UdpSocket::bind(listen.as_str()).unwrap();
    }
}

/// Waits up to 5 s for `done`.
fn wait_for(done: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(5);
    while !done() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(done(), "not within 5 s");
}

#[test]
fn a_backlog_longer_than_idle_is_sent_before_the_mapping_is_forgotten() {
    // Failed before: the mapping was forgotten 50 ms after the last datagram arrived, with its
    // three copies (flushed 3, forwarded 0).
    let (target, echo) = echo_target(3);
    let mut config = LinkConfig::new(1);
    config.up.delay = Duration::from_millis(300);
    config.idle = Duration::from_millis(50);
    let (relay, handle) = start(target, config);
    let c = client();
    for i in 0..3u8 {
        c.send_to(&[i], relay.local_addr()).unwrap();
    }
    wait_for(|| relay.stats().forgotten == 1);
    relay.stop();
    handle.join().unwrap().unwrap();
    let s = relay.stats();
    assert_eq!((s.up.forwarded, s.up.flushed), (3, 0), "{s:?}");
    // The echoes came back while the mapping lasted.
    assert_eq!(echo.join().unwrap(), 3);
    assert_eq!(s.down.forwarded, 3);
}

#[test]
fn a_client_without_an_upstream_socket_is_a_socket_error() {
    // A link-local IPv6 target without its interface cannot be connected to (EINVAL).
    let (relay, handle) = start("[fe80::1]:9".parse().unwrap(), LinkConfig::new(1));
    let c = client();
    c.send_to(b"x", relay.local_addr()).unwrap();
    wait_for(|| relay.stats().up.received == 1);
    relay.stop();
    handle.join().unwrap().unwrap();
    let s = relay.stats();
    assert_eq!((s.up.socket_errors, s.up.refused, s.clients), (1, 0, 0));
    assert!(s.up.balanced());
}

#[test]
fn clients_and_counters_stay_after_stop() {
    let (target, _echo) = echo_target(1);
    let (relay, handle) = start(target, LinkConfig::new(1));
    let c = client();
    c.send_to(b"x", relay.local_addr()).unwrap();
    wait_for(|| relay.stats().clients == 1);
    relay.stop();
    handle.join().unwrap().unwrap();
    assert_eq!(relay.stats().clients, 1);
    assert_eq!(relay.clients()[0].0, c.local_addr().unwrap());
}
