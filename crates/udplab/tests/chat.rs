//! The chat from Rust alone: a server and clients on real loopback sockets, no Python.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use udplab::client::{ChatClient, ClientConfig};
use udplab::server::{ChatServer, ServerConfig};

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn clients_talk_expire_and_quit() {
    let mut config = ServerConfig::new(Duration::from_millis(300));
    config.rcvbuf = None;
    let server = Arc::new(ChatServer::bind(loopback(), config).unwrap());
    let serving = server.spawn().unwrap();
    let addr = server.local_addr();

    let clients: Vec<Arc<ChatClient>> = (0..3)
        .map(|_| Arc::new(ChatClient::connect(addr, ClientConfig::default()).unwrap()))
        .collect();
    let threads: Vec<_> = clients.iter().map(|c| c.spawn().unwrap()).collect();
    for c in &clients {
        c.set_heartbeat(Some(Duration::from_millis(50)));
    }
    wait_until("three joins", || server.clients().len() == 3);

    clients[0].send(b"hello").unwrap();
    for c in &clients {
        let got = c
            .recv(Some(Duration::from_secs(5)), &mut || Ok(()))
            .unwrap();
        assert_eq!(got, b"ACKhello");
    }

    // The third goes silent and expires; the second quits.
    clients[2].set_heartbeat(None);
    let silent = clients[2].local_addr();
    wait_until("expiry", || {
        server.clients().iter().all(|(a, _)| *a != silent)
    });
    clients[1].stop();
    wait_until("quit", || server.clients().len() == 1);

    let stats = server.stats();
    assert_eq!((stats.joins, stats.quits, stats.expiries), (3, 1, 1));
    assert_eq!(
        stats.received,
        stats.heartbeats + stats.quits + stats.messages + stats.dropped.iter().sum::<u64>()
    );
    let kinds: Vec<&str> = server.events().iter().map(|(_, k, _)| k.name()).collect();
    assert!(kinds.contains(&"expire") && kinds.contains(&"quit"));

    for c in &clients {
        c.stop();
    }
    for [user, hb] in threads {
        user.join().unwrap();
        hb.join().unwrap();
    }
    server.stop();
    serving.join().unwrap().unwrap();
    assert!(server.clients().is_empty());
    // The port is free again.
    ChatServer::bind(addr, ServerConfig::new(Duration::from_secs(1))).unwrap();
}

#[test]
fn serving_twice_is_an_error_not_a_panic() {
    let server =
        Arc::new(ChatServer::bind(loopback(), ServerConfig::new(Duration::from_secs(1))).unwrap());
    server.stop();
    assert!(server.serve().is_err());
}

#[test]
fn bad_config_is_refused_with_a_reason() {
    let err = ChatServer::bind(loopback(), ServerConfig::new(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("inval"));
}
