//! Fuzzing the server's handling path: arbitrary datagrams from a small pool of addresses, at
//! arbitrary clock advances, through [`Hub::handle`] with a send function that sometimes fails.
//!
//! Every step is checked against a deliberately simple model of the chat (a list of clients in
//! last-seen order and plain counters), and after every step:
//!
//! - nothing panicked;
//! - every datagram is accounted for: `received = heartbeats + quits + messages + drops`;
//! - a broadcast went only to addresses in `hub.clients()`, each exactly once, and is exactly
//!   `prefix + payload`;
//! - no client is older than `inval`, and there are never more than `max_clients`.
//!
//! The parser alone is fuzzed by the proptests in `src/proto.rs`, the peer table against its own
//! model in `src/peers.rs`. Runs `UDPLAB_FUZZ_CASES` cases (default 512) so that a longer soak is
//! one environment variable away.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config;
use udplab::fanout::PerAddress;
use udplab::proto::{Words, UDP_MAX_PAYLOAD};
use udplab::server::{DropReason, EventKind, Hub, ServerConfig, Stats};

/// The pool datagrams come from: IPv4 and IPv6, an IPv4-mapped IPv6 address (a different
/// client from its IPv4 twin), a scoped link-local address, port 0 and the unspecified address.
fn pool() -> Vec<SocketAddr> {
    let v6 =
        |ip: Ipv6Addr, port: u16, scope: u32| SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope));
    vec![
        SocketAddr::from((Ipv4Addr::LOCALHOST, 40001)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 40002)),
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 7), 40001)),
        v6(Ipv6Addr::LOCALHOST, 40001, 0),
        v6(Ipv4Addr::LOCALHOST.to_ipv6_mapped(), 40001, 0),
        v6("fe80::1".parse().expect("literal"), 40001, 2),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 65535)),
    ]
}

const POOL: usize = 8;

#[derive(Debug, Clone)]
enum Op {
    /// A datagram from `pool()[from]` after `advance`; sends to addresses whose bit is set in
    /// `fail` fail with `errno`.
    Datagram {
        from: usize,
        data: Vec<u8>,
        advance: Duration,
        fail: u8,
        errno: i32,
    },
    /// The serve loop's idle tick: expire only.
    Tick(Duration),
    /// Callbacks take the queued notices.
    TakeNotices,
    /// `stop()` forgets the clients.
    Forget,
}

fn small_word() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b'H'),
            Just(b'B'),
            Just(b'\n'),
            Just(b'\r'),
            any::<u8>()
        ],
        1..5,
    )
}

fn words() -> impl Strategy<Value = Words> {
    prop_oneof![
        3 => Just(Words::default()),
        1 => (small_word(), small_word())
            .prop_filter_map("invalid words", |(hb, quit)| Words::new(hb, quit).ok()),
    ]
}

fn config() -> impl Strategy<Value = ServerConfig> {
    (
        // Zero and other values `validate()` refuses are included: the hub must not panic.
        prop_oneof![Just(0u64), 1..50u64, 50..3000u64],
        words(),
        prop_oneof![
            Just(b"ACK".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..5),
            (UDP_MAX_PAYLOAD - 4..=UDP_MAX_PAYLOAD + 1).prop_map(|n| vec![b'P'; n]),
        ],
        any::<bool>(),
        0..=POOL + 1,
        prop_oneof![
            Just(UDP_MAX_PAYLOAD),
            0..40usize,
            UDP_MAX_PAYLOAD - 8..UDP_MAX_PAYLOAD + 40
        ],
        0..6usize,
        any::<bool>(),
    )
        .prop_map(
            |(inval, words, prefix, echo, max_clients, max_payload, history, notify)| {
                let mut c = ServerConfig::new(Duration::from_millis(inval));
                c.words = words;
                c.prefix = prefix;
                c.echo = echo;
                c.max_clients = max_clients;
                c.max_payload = max_payload;
                c.history = history;
                c.notify = notify;
                c
            },
        )
}

/// Datagrams that matter to this configuration: its words with and without line ends and with
/// other trailing bytes, truncated words, short and random bytes (mostly not UTF-8), and long
/// runs around `max_payload` and around the largest payload the prefix leaves room for.
fn datagram(c: &ServerConfig) -> BoxedStrategy<Vec<u8>> {
    let words = [c.words.heartbeat.clone(), c.words.quit.clone()];
    let word = prop_oneof![Just(words[0].clone()), Just(words[1].clone())];
    let suffix = prop_oneof![
        Just(b"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b" ".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..3),
    ];
    let near_word = (word.clone(), suffix).prop_map(|(mut w, s)| {
        w.extend_from_slice(&s);
        w
    });
    let truncated = (word, any::<prop::sample::Index>()).prop_map(|(w, i)| {
        let keep = i.index(w.len());
        w[..keep].to_vec()
    });
    let room = UDP_MAX_PAYLOAD.saturating_sub(c.prefix.len());
    let long_len = prop_oneof![
        c.max_payload.saturating_sub(2)..=c.max_payload + 2,
        room.saturating_sub(2)..=room + 2,
        UDP_MAX_PAYLOAD - 2..=65_535usize,
    ];
    let long = (long_len, any::<u8>()).prop_map(|(n, fill)| vec![fill; n]);
    prop_oneof![
        1 => Just(Vec::new()),
        6 => near_word,
        1 => truncated,
        2 => proptest::collection::vec(any::<u8>(), 1..3),
        3 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => long,
    ]
    .boxed()
}

fn advance(inval: Duration) -> impl Strategy<Value = Duration> {
    let inval_ms = u64::try_from(inval.as_millis()).unwrap_or(u64::MAX).max(1);
    prop_oneof![
        8 => Just(Duration::ZERO),
        4 => (0..=inval_ms / 4).prop_map(Duration::from_millis),
        2 => (0..=inval_ms * 2).prop_map(Duration::from_millis),
        // Exactly at and just past the expiry boundary.
        1 => Just(inval),
        1 => Just(inval + Duration::from_nanos(1)),
        1 => (0..3_600_000u64).prop_map(Duration::from_millis),
    ]
}

fn op(c: &ServerConfig) -> impl Strategy<Value = Op> {
    let errno = prop_oneof![
        Just(libc::ECONNREFUSED),
        Just(libc::ENOBUFS),
        Just(libc::EAGAIN),
        Just(libc::EHOSTUNREACH),
        Just(libc::EMSGSIZE),
    ];
    prop_oneof![
        12 => (0..POOL, datagram(c), advance(c.inval), prop_oneof![3 => Just(0u8), 1 => any::<u8>()], errno)
            .prop_map(|(from, data, advance, fail, errno)| Op::Datagram { from, data, advance, fail, errno }),
        2 => advance(c.inval).prop_map(Op::Tick),
        1 => Just(Op::TakeNotices),
        1 => Just(Op::Forget),
    ]
}

fn case() -> impl Strategy<Value = (ServerConfig, Vec<Op>)> {
    config().prop_flat_map(|c| {
        let ops = proptest::collection::vec(op(&c), 0..120);
        (Just(c), ops)
    })
}

/// The chat as the issue states it, written the obvious way.
struct Model {
    config: ServerConfig,
    /// Clients, least recently heard from first.
    clients: Vec<(SocketAddr, Instant)>,
    stats: Stats,
    history: Vec<(EventKind, SocketAddr)>,
    notices: Vec<(EventKind, SocketAddr, Vec<u8>)>,
}

fn is_line(data: &[u8], word: &[u8]) -> bool {
    [&b""[..], b"\n", b"\r\n"]
        .iter()
        .any(|end| data == [word, end].concat().as_slice())
}

impl Model {
    fn new(config: ServerConfig) -> Model {
        Model {
            config,
            clients: Vec::new(),
            stats: Stats::default(),
            history: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// The history the hub keeps: the last `keep` heartbeats and, apart, the last `keep` other
    /// events, in the order they happened.
    fn kept_history(&self, keep: usize) -> Vec<(EventKind, SocketAddr)> {
        let is_hb = |kind: &EventKind| *kind == EventKind::Heartbeat;
        let heartbeats = self.history.iter().filter(|(k, _)| is_hb(k)).count();
        let others = self.history.len() - heartbeats;
        let (mut skip_hb, mut skip_other) =
            (heartbeats.saturating_sub(keep), others.saturating_sub(keep));
        let mut kept = Vec::new();
        for &(kind, addr) in &self.history {
            let skip = if is_hb(&kind) {
                &mut skip_hb
            } else {
                &mut skip_other
            };
            if *skip > 0 {
                *skip -= 1;
            } else {
                kept.push((kind, addr));
            }
        }
        kept
    }

    fn event(&mut self, kind: EventKind, addr: SocketAddr, payload: &[u8]) {
        self.history.push((kind, addr));
        if self.config.notify && kind != EventKind::Heartbeat {
            self.notices.push((kind, addr, payload.to_vec()));
        }
    }

    fn expire(&mut self, now: Instant) {
        let inval = self.config.inval;
        let (gone, kept): (Vec<_>, Vec<_>) = self
            .clients
            .iter()
            .partition(|(_, seen)| now.saturating_duration_since(*seen) > inval);
        self.clients = kept;
        for (addr, _) in gone {
            self.stats.expiries += 1;
            self.event(EventKind::Expire, addr, &[]);
        }
    }

    fn drop_for(&mut self, reason: DropReason) {
        self.stats.dropped[reason as usize] += 1;
    }

    /// Joins or refreshes; false when the table is full.
    fn touch(&mut self, from: SocketAddr, now: Instant) -> bool {
        if let Some(i) = self.clients.iter().position(|(a, _)| *a == from) {
            self.clients.remove(i);
            self.clients.push((from, now));
            return true;
        }
        if self.clients.len() >= self.config.max_clients.max(1) {
            self.drop_for(DropReason::Refused);
            return false;
        }
        self.clients.push((from, now));
        self.stats.joins += 1;
        self.event(EventKind::Join, from, &[]);
        true
    }

    /// Handles one datagram; returns the addresses a broadcast must reach (empty if none).
    fn handle(&mut self, data: &[u8], from: SocketAddr, now: Instant) -> Vec<SocketAddr> {
        self.stats.received += 1;
        self.expire(now);
        let words = self.config.words.clone();
        if data.is_empty() {
            self.drop_for(DropReason::Empty);
        } else if is_line(data, &words.heartbeat) {
            if self.touch(from, now) {
                self.stats.heartbeats += 1;
                self.event(EventKind::Heartbeat, from, &[]);
            }
        } else if is_line(data, &words.quit) {
            match self.clients.iter().position(|(a, _)| *a == from) {
                Some(i) => {
                    self.clients.remove(i);
                    self.stats.quits += 1;
                    self.event(EventKind::Quit, from, &[]);
                }
                None => self.drop_for(DropReason::UnknownQuit),
            }
        } else if data.len() > self.config.max_payload {
            self.drop_for(DropReason::TooLong);
        } else if self.config.prefix.len() + data.len() > UDP_MAX_PAYLOAD {
            self.drop_for(DropReason::Oversize);
        } else if self.touch(from, now) {
            self.stats.messages += 1;
            self.event(EventKind::Message, from, data);
            return self
                .clients
                .iter()
                .map(|(a, _)| *a)
                .filter(|a| self.config.echo || *a != from)
                .collect();
        }
        Vec::new()
    }
}

fn dropped_total(s: &Stats) -> u64 {
    s.dropped.iter().sum()
}

fn counts(addrs: impl IntoIterator<Item = SocketAddr>) -> BTreeMap<SocketAddr, usize> {
    let mut m = BTreeMap::new();
    for a in addrs {
        *m.entry(a).or_insert(0) += 1;
    }
    m
}

fn run(config: ServerConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let addrs = pool();
    let mut hub = Hub::new(config.clone());
    let mut model = Model::new(config.clone());
    let mut now = Instant::now();

    for op in ops {
        match op {
            Op::Datagram {
                from,
                data,
                advance,
                fail,
                errno,
            } => {
                now += advance;
                let from = addrs[from];
                let mut tried: Vec<(SocketAddr, Vec<u8>, bool)> = Vec::new();
                let send = |buf: &[u8], to: SocketAddr| -> io::Result<usize> {
                    let failed = addrs
                        .iter()
                        .position(|a| *a == to)
                        .is_some_and(|i| fail & (1 << i) != 0);
                    tried.push((to, buf.to_vec(), failed));
                    if failed {
                        Err(io::Error::from_raw_os_error(errno))
                    } else {
                        Ok(buf.len())
                    }
                };
                let before = hub.stats().clone();
                hub.handle(&data, from, now, &mut PerAddress(send));
                let expected = model.handle(&data, from, now);

                // A broadcast reaches exactly the live clients (less the sender without echo),
                // each once, and only them.
                let live: Vec<SocketAddr> = hub.clients().map(|(a, _)| a).collect();
                for (to, buf, _) in &tried {
                    prop_assert!(
                        live.contains(to),
                        "broadcast to {to}, not a client: {live:?}"
                    );
                    prop_assert_eq!(buf.len(), config.prefix.len() + data.len());
                    prop_assert!(buf.starts_with(&config.prefix) && buf.ends_with(&data));
                }
                prop_assert_eq!(counts(tried.iter().map(|t| t.0)), counts(expected));
                let failed = tried.iter().filter(|t| t.2).count() as u64;
                let after = hub.stats();
                prop_assert_eq!(after.sent - before.sent, tried.len() as u64 - failed);
                prop_assert_eq!(after.send_errors - before.send_errors, failed);
                model.stats.sent = after.sent;
                model.stats.send_errors = after.send_errors;
            }
            Op::Tick(advance) => {
                now += advance;
                hub.expire(now);
                model.expire(now);
            }
            Op::TakeNotices => {
                let got: Vec<_> = hub
                    .take_notices()
                    .into_iter()
                    .map(|n| (n.event.kind, n.event.addr, n.payload))
                    .collect();
                prop_assert_eq!(got, std::mem::take(&mut model.notices));
            }
            Op::Forget => {
                hub.forget_clients();
                model.clients.clear();
            }
        }

        let s = hub.stats();
        prop_assert_eq!(
            s.received,
            s.heartbeats + s.quits + s.messages + dropped_total(s),
            "accounting broke: {:?}",
            s
        );
        prop_assert_eq!(s, &model.stats);
        let clients: Vec<(SocketAddr, Instant)> = hub.clients().collect();
        prop_assert_eq!(&clients, &model.clients);
        prop_assert!(clients.len() <= config.max_clients.max(1));
        for (addr, seen) in &clients {
            prop_assert!(
                now.saturating_duration_since(*seen) <= config.inval,
                "{addr} outlived inval"
            );
        }
        let events: Vec<_> = hub.events().iter().map(|e| (e.kind, e.addr)).collect();
        prop_assert_eq!(events, model.kept_history(config.history));
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("UDPLAB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(Config { cases: cases(), ..Config::default() })]

    #[test]
    fn hub_survives_arbitrary_datagrams((config, ops) in case()) {
        run(config, ops)?;
    }
}
