//! The chat server. Every datagram is received in [`ChatServer::serve`] and handled in
//! [`Hub::handle`]; clients expire in [`Hub::expire`] (on a timer as well as before every
//! broadcast, so silent clients go even when nobody talks).
//!
//! [`Hub`] is the whole protocol with no socket and no clock: it is given the time and a send
//! function, so its tests fabricate both.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::endpoint::{Endpoint, Handler, Loop, Options, Tap, Waker, DEFAULT_RCVBUF, DEFAULT_SPIN};
use crate::fanout::{Fanout, SocketFanout};
use crate::peers::{PeerTable, Touch, DEFAULT_MAX_CLIENTS};
use crate::proto::{BytesRepr, Message, Words, DEFAULT_PREFIX, UDP_MAX_PAYLOAD};
use crate::throttle::{held_note, RateLimit};
use crate::watch::{Feed, Sighting, Watchers};
use log::{debug, info, warn};

/// Events kept for [`ChatServer::events`].
pub const DEFAULT_HISTORY: usize = 4096;
/// Notices kept for callbacks before the oldest are dropped.
pub const NOTICE_QUEUE: usize = 4096;
/// A receive buffer that holds any datagram whole.
const RECV_BUFFER: usize = crate::endpoint::MAX_DATAGRAM;

/// How a chat server behaves. [`ServerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A client silent for longer than this is dropped.
    pub inval: Duration,
    /// The heartbeat and quit words.
    pub words: Words,
    /// What a broadcast puts before the payload.
    pub prefix: Vec<u8>,
    /// Whether the sender gets its own message back.
    pub echo: bool,
    /// New addresses past this many clients are refused.
    pub max_clients: usize,
    /// Longer chat payloads are dropped.
    pub max_payload: usize,
    /// `SO_RCVBUF` to ask for; `None` keeps the system's default.
    pub rcvbuf: Option<usize>,
    /// How many events [`ChatServer::events`] keeps: this many heartbeats and, apart from
    /// them, this many other events (a thousand clients heartbeating every second must not push
    /// the joins, messages, quits and expiries out).
    pub history: usize,
    /// Whether to queue [`Notice`]s for [`ChatServer::wait_notices`] (callbacks).
    pub notify: bool,
    /// After a broadcast, poll for the next datagram this long before sleeping: the next
    /// message of a conversation then skips the scheduler's wake-up (about 30 µs on the
    /// benchmark machine), for at most this much CPU per broadcast. Heartbeats never spin.
    pub spin: Duration,
}

impl ServerConfig {
    /// The defaults with the given expiry interval.
    pub fn new(inval: Duration) -> ServerConfig {
        ServerConfig {
            inval,
            words: Words::default(),
            prefix: DEFAULT_PREFIX.to_vec(),
            echo: true,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_payload: UDP_MAX_PAYLOAD,
            rcvbuf: Some(DEFAULT_RCVBUF),
            history: DEFAULT_HISTORY,
            notify: false,
            spin: DEFAULT_SPIN,
        }
    }

    /// Checks the values that have no sensible meaning.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.inval.is_zero() {
            return Err(ConfigError("inval must be positive"));
        }
        if self.max_clients == 0 {
            return Err(ConfigError("max_clients must be at least 1"));
        }
        if self.spin > Duration::from_secs(1) {
            return Err(ConfigError("spin must be at most 1 second"));
        }
        if self.max_payload == 0 {
            return Err(ConfigError("max_payload must be at least 1"));
        }
        if self.prefix.len() >= UDP_MAX_PAYLOAD {
            return Err(ConfigError(
                "prefix leaves no room for a payload in a UDP datagram",
            ));
        }
        Ok(())
    }
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError(pub &'static str);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Why a received datagram was not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A zero-length datagram.
    Empty,
    /// A chat payload longer than `max_payload`.
    TooLong,
    /// A payload whose prefixed broadcast would not fit in one UDP datagram.
    Oversize,
    /// A new address while the table holds `max_clients`.
    Refused,
    /// The quit word from an address that is not a client.
    UnknownQuit,
}

impl DropReason {
    /// Every reason, in the order of [`Stats::dropped`].
    pub const ALL: [DropReason; 5] = [
        DropReason::Empty,
        DropReason::TooLong,
        DropReason::Oversize,
        DropReason::Refused,
        DropReason::UnknownQuit,
    ];

    /// A short name, as used in `stats()` and log lines.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Empty => "empty",
            DropReason::TooLong => "too_long",
            DropReason::Oversize => "oversize",
            DropReason::Refused => "refused",
            DropReason::UnknownQuit => "unknown_quit",
        }
    }

    /// The fate of a datagram dropped for this reason, as a watcher shows it.
    pub fn fate(self) -> &'static str {
        match self {
            DropReason::Empty => "dropped:empty",
            DropReason::TooLong => "dropped:too_long",
            DropReason::Oversize => "dropped:oversize",
            DropReason::Refused => "dropped:refused",
            DropReason::UnknownQuit => "dropped:unknown_quit",
        }
    }
}

/// Counters since the server was created. Every received datagram is counted exactly once in
/// `heartbeats`, `quits`, `messages` or `dropped`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received.
    pub received: u64,
    /// Chat messages broadcast.
    pub messages: u64,
    /// Datagrams sent by broadcasts.
    pub sent: u64,
    /// Heartbeats honoured.
    pub heartbeats: u64,
    /// Addresses that became clients.
    pub joins: u64,
    /// Clients that said quit.
    pub quits: u64,
    /// Clients dropped for silence.
    pub expiries: u64,
    /// Failed sends to one client.
    pub send_errors: u64,
    /// Failed receives (other than timeouts).
    pub recv_errors: u64,
    /// Notices dropped because callbacks fell behind.
    pub notices_dropped: u64,
    /// Datagrams dropped, by [`DropReason::ALL`] order.
    pub dropped: [u64; 5],
}

/// A one-line summary for the log: the totals a person asks for when a server stops.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "totals: {} received, {} messages, {} sent, {} heartbeats, {} joins, {} quits, \
             {} expiries, {} dropped, {} send errors",
            self.received,
            self.messages,
            self.sent,
            self.heartbeats,
            self.joins,
            self.quits,
            self.expiries,
            self.dropped.iter().sum::<u64>(),
            self.send_errors,
        )
    }
}

impl Stats {
    /// Drops for one reason.
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }
}

/// What happened to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A new address became a client.
    Join,
    /// A client's heartbeat.
    Heartbeat,
    /// A client's chat message (broadcast).
    Message,
    /// A client said quit.
    Quit,
    /// A client was dropped for silence.
    Expire,
}

impl EventKind {
    /// A short name, as used in `events()`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Join => "join",
            EventKind::Heartbeat => "heartbeat",
            EventKind::Message => "message",
            EventKind::Quit => "quit",
            EventKind::Expire => "expire",
        }
    }
}

/// One entry of the event history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// When it happened (monotonic).
    pub at: Instant,
    /// When it happened by the wall clock, read then (not converted later, so a clock step or a
    /// suspend afterwards does not move it).
    pub wall: SystemTime,
    /// What happened.
    pub kind: EventKind,
    /// To which client.
    pub addr: SocketAddr,
}

/// An event handed to callbacks, with the payload of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The event.
    pub event: Event,
    /// The chat payload for [`EventKind::Message`], else empty.
    pub payload: Vec<u8>,
}

fn errno_key(e: &io::Error) -> i64 {
    e.raw_os_error().map_or(-(e.kind() as i64) - 1, i64::from)
}

/// One log line the hub has to say, kept until its lock is released.
#[derive(Debug)]
enum Line {
    Heartbeat(SocketAddr),
    Joined(SocketAddr),
    Left(SocketAddr),
    /// A message, its payload at this range of [`Logs::bytes`].
    Says(SocketAddr, std::ops::Range<usize>),
    Expired(SocketAddr, Duration),
    /// A rare, rate-limited warning, already written out.
    Warn(String),
}

/// Log lines collected while the hub's lock is held and emitted after it is released: a
/// Python `logging` handler runs on the thread that logs, takes the GIL, and may call back into
/// the server (`server.raddrs`, `stats()`), which takes the hub's lock. Emitting under the lock
/// would deadlock it, and make the receive path wait for the GIL while holding the lock.
#[derive(Debug, Default)]
pub struct Logs {
    lines: Vec<Line>,
    /// Payloads of [`Line::Says`], back to back (reused, so logging allocates nothing).
    bytes: Vec<u8>,
}

impl Logs {
    fn push(&mut self, line: Line) {
        self.lines.push(line);
    }

    fn says(&mut self, from: SocketAddr, payload: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.lines.push(Line::Says(from, start..self.bytes.len()));
    }

    /// Whether there is nothing to emit.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Logs every collected line (call it without holding the hub's lock) and empties itself.
    pub fn emit(&mut self) {
        for line in self.lines.drain(..) {
            match line {
                Line::Heartbeat(from) => debug!("chat {from} heartbeat"),
                Line::Joined(from) => info!("chat {from} joined"),
                Line::Left(from) => info!("chat {from} left"),
                Line::Says(from, range) => {
                    info!("chat {from} says {}", BytesRepr(&self.bytes[range]))
                }
                Line::Expired(addr, silent) => info!(
                    "chat {addr} expired after {:.1}s of silence",
                    silent.as_secs_f64()
                ),
                Line::Warn(text) => warn!("{text}"),
            }
        }
        self.bytes.clear();
    }
}

/// The chat protocol's state: clients, counters and history.
#[derive(Debug)]
pub struct Hub {
    config: ServerConfig,
    peers: PeerTable,
    stats: Stats,
    /// Joins, messages, quits and expiries, with a sequence number for merging.
    history: VecDeque<(u64, Event)>,
    /// Heartbeats, kept apart so they cannot push the others out.
    heartbeat_history: VecDeque<(u64, Event)>,
    /// Events recorded so far (the next sequence number).
    recorded: u64,
    /// Reads the wall clock (replaced in tests).
    wall_clock: fn() -> SystemTime,
    notices: VecDeque<Notice>,
    /// The prefixed broadcast, reused so a message allocates nothing.
    out: Vec<u8>,
    /// The recipients other than the sender, when `echo` is off (reused likewise).
    others: Vec<SocketAddr>,
    limit: RateLimit,
    /// What to log once the caller has released the hub ([`Hub::take_logs`]).
    logs: Logs,
    /// Who watches every datagram and event (`udplab.view`), and the server's own address
    /// to show them.
    watchers: Watchers,
    here: SocketAddr,
}

impl Hub {
    /// An empty hub.
    pub fn new(config: ServerConfig) -> Hub {
        Hub {
            peers: PeerTable::new(config.max_clients),
            stats: Stats::default(),
            history: VecDeque::with_capacity(config.history.min(DEFAULT_HISTORY)),
            heartbeat_history: VecDeque::new(),
            recorded: 0,
            wall_clock: SystemTime::now,
            notices: VecDeque::new(),
            out: Vec::with_capacity(RECV_BUFFER),
            others: Vec::new(),
            limit: RateLimit::default(),
            logs: Logs::default(),
            watchers: Watchers::default(),
            here: SocketAddr::from(([0, 0, 0, 0], 0)),
            config,
        }
    }

    /// Tells `feed` of every datagram received and sent and of every join and expiry, from
    /// now on; the sightings name the server `here`.
    pub fn watch(&mut self, feed: Arc<Feed>, here: SocketAddr) {
        self.here = here;
        self.watchers.add(feed);
    }

    /// Stops telling `feed`; true if it was watching.
    pub fn unwatch(&mut self, feed: &Arc<Feed>) -> bool {
        self.watchers.remove(feed)
    }

    /// Handles one datagram received at `now`; `fanout` delivers broadcasts.
    pub fn handle(&mut self, data: &[u8], from: SocketAddr, now: Instant, fanout: &mut dyn Fanout) {
        self.stats.received += 1;
        self.expire(now);
        match Message::parse(data, &self.config.words) {
            Message::Empty => self.drop_datagram(DropReason::Empty, data, from, now),
            Message::Heartbeat => {
                if self.touch(from, data, now) {
                    self.stats.heartbeats += 1;
                    self.record(EventKind::Heartbeat, from, now, &[], data);
                    self.logs.push(Line::Heartbeat(from));
                }
            }
            Message::Quit => match self.peers.remove(&from) {
                Some(_) => {
                    self.stats.quits += 1;
                    self.record(EventKind::Quit, from, now, &[], data);
                    self.logs.push(Line::Left(from));
                }
                None => self.drop_datagram(DropReason::UnknownQuit, data, from, now),
            },
            Message::Chat(payload) => {
                if payload.len() > self.config.max_payload {
                    self.drop_datagram(DropReason::TooLong, data, from, now);
                } else if self.config.prefix.len() + payload.len() > UDP_MAX_PAYLOAD {
                    self.drop_datagram(DropReason::Oversize, data, from, now);
                } else if self.touch(from, data, now) {
                    self.stats.messages += 1;
                    self.record(EventKind::Message, from, now, payload, data);
                    self.logs.says(from, payload);
                    self.broadcast(payload, from, now, fanout);
                }
            }
        }
    }

    /// Drops every client silent for longer than `inval`.
    pub fn expire(&mut self, now: Instant) {
        let inval = self.config.inval;
        if self.peers.next_expiry(inval).is_none_or(|due| due >= now) {
            return;
        }
        let mut gone = Vec::new();
        self.peers
            .expire(now, inval, |addr, last| gone.push((addr, last)));
        for (addr, last) in gone {
            self.stats.expiries += 1;
            self.record(EventKind::Expire, addr, now, &[], &[]);
            let silent = now.saturating_duration_since(last);
            self.logs.push(Line::Expired(addr, silent));
        }
    }

    /// Joins or refreshes `from`, who sent `data`; false (and a counted drop) when the table
    /// is full.
    fn touch(&mut self, from: SocketAddr, data: &[u8], now: Instant) -> bool {
        match self.peers.touch_at(from, now, (self.wall_clock)()) {
            Touch::Refreshed => true,
            Touch::Joined => {
                self.stats.joins += 1;
                self.record(EventKind::Join, from, now, &[], &[]);
                self.logs.push(Line::Joined(from));
                true
            }
            Touch::Refused => {
                self.drop_datagram(DropReason::Refused, data, from, now);
                false
            }
        }
    }

    fn broadcast(
        &mut self,
        payload: &[u8],
        from: SocketAddr,
        now: Instant,
        fanout: &mut dyn Fanout,
    ) {
        self.out.clear();
        self.out.extend_from_slice(&self.config.prefix);
        self.out.extend_from_slice(payload);
        let mut to = self.peers.destinations();
        if !self.config.echo {
            self.others.clear();
            self.others.extend(to.iter().filter(|&&a| a != from));
            to = &self.others;
        }
        let (stats, limit, logs) = (&mut self.stats, &mut self.limit, &mut self.logs);
        let (watchers, here, out) = (&self.watchers, self.here, &self.out);
        let mut failed = Vec::new();
        stats.sent += fanout.send_all(&self.out, to, &mut |addr, e| {
            stats.send_errors += 1;
            if !watchers.is_empty() {
                failed.push(addr);
            }
            if let Some(held) = limit.allow(("send", errno_key(&e)), now) {
                let text = format!("chat send to {addr} failed: {e}{}", held_note(held));
                logs.push(Line::Warn(text));
            }
        });
        for &addr in to {
            watchers.tell(|| {
                let end = if failed.contains(&addr) {
                    "send_errors"
                } else {
                    "delivered"
                };
                Sighting::new(now, "broadcast", end, here, addr, out)
            });
        }
    }

    fn drop_datagram(&mut self, reason: DropReason, data: &[u8], from: SocketAddr, now: Instant) {
        self.stats.dropped[reason as usize] += 1;
        let here = self.here;
        self.watchers
            .tell(|| Sighting::new(now, "dropped", reason.fate(), from, here, data));
        if let Some(held) = self.limit.allow((reason.name(), 0), now) {
            let text = format!(
                "chat dropped a datagram from {from}: {}{}",
                reason.name(),
                held_note(held)
            );
            self.logs.push(Line::Warn(text));
        }
    }

    fn recv_error(&mut self, e: &io::Error, now: Instant) {
        self.stats.recv_errors += 1;
        if let Some(held) = self.limit.allow(("recv", errno_key(e)), now) {
            let text = format!("chat receive failed: {e}{}", held_note(held));
            self.logs.push(Line::Warn(text));
        }
    }

    /// Keeps an event in the history (and for callbacks, and tells the watchers): `payload` is
    /// a message's chat payload, `datagram` the bytes received (empty for a join or expiry).
    fn record(
        &mut self,
        kind: EventKind,
        addr: SocketAddr,
        at: Instant,
        payload: &[u8],
        datagram: &[u8],
    ) {
        let here = self.here;
        self.watchers
            .tell(|| Sighting::new(at, kind.name(), "delivered", addr, here, datagram));
        let wall = (self.wall_clock)();
        let event = Event {
            at,
            wall,
            kind,
            addr,
        };
        if self.config.history > 0 {
            let history = if kind == EventKind::Heartbeat {
                &mut self.heartbeat_history
            } else {
                &mut self.history
            };
            if history.len() == self.config.history {
                history.pop_front();
            }
            history.push_back((self.recorded, event));
            self.recorded += 1;
        }
        if self.config.notify && kind != EventKind::Heartbeat {
            if self.notices.len() == NOTICE_QUEUE {
                self.notices.pop_front();
                self.stats.notices_dropped += 1;
            }
            self.notices.push_back(Notice {
                event,
                payload: payload.to_vec(),
            });
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The clients and when each was last seen, oldest first.
    pub fn clients(&self) -> impl Iterator<Item = (SocketAddr, Instant)> + '_ {
        self.peers.iter()
    }

    /// The event history, oldest first: up to `history` heartbeats and, apart from them, up to
    /// `history` other events.
    pub fn events(&self) -> Vec<Event> {
        let mut merged = Vec::with_capacity(self.history.len() + self.heartbeat_history.len());
        let (mut a, mut b) = (
            self.history.iter().peekable(),
            self.heartbeat_history.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                (Some(_), Some(_)) | (None, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => break,
            };
            merged.extend(next.map(|(_, e)| *e));
        }
        merged
    }

    /// Replaces the wall clock events are stamped with (for tests).
    pub fn set_wall_clock(&mut self, clock: fn() -> SystemTime) {
        self.wall_clock = clock;
    }

    /// Moves the log lines collected so far into `into` (emit them with [`Logs::emit`] once the
    /// hub's lock is released). Whoever calls [`handle`](Self::handle) or
    /// [`expire`](Self::expire) should take them now and then, or they pile up.
    pub fn take_logs(&mut self, into: &mut Logs) {
        std::mem::swap(&mut self.logs, into);
    }

    /// When the oldest client is due to expire (it expires once this has passed).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.peers.next_expiry(self.config.inval)
    }

    /// Takes the queued notices.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.notices.drain(..).collect()
    }

    /// Forgets every client (counters and history stay).
    pub fn forget_clients(&mut self) {
        self.peers.clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A bound chat server. [`serve`](ChatServer::serve) runs it on the calling thread until
/// [`stop`](ChatServer::stop); [`spawn`](ChatServer::spawn) runs it on a thread of its own.
#[derive(Debug)]
pub struct ChatServer {
    addr: SocketAddr,
    /// The socket and its receive loop until `serve` takes them (or `stop` drops them).
    endpoint: Mutex<Option<(Endpoint, Loop)>>,
    waker: Waker,
    hub: Mutex<Hub>,
    notices_ready: Condvar,
}

/// What [`ChatServer::serve`] runs on its [`Loop`]: the server's half of the receive loop.
struct Serving<'a> {
    server: &'a ChatServer,
    /// Log lines taken from the hub, emitted once its lock is released.
    logs: Logs,
    endpoint: Endpoint,
    fanout: SocketFanout,
    spin: Duration,
    /// Poll without sleeping until then (set after a broadcast, see [`ServerConfig::spin`]).
    busy_until: Option<Instant>,
    /// When the oldest client expires.
    next_expiry: Option<Instant>,
}

impl Serving<'_> {
    /// Runs `f` on the hub, wakes callbacks waiting for notices and re-reads the expiry
    /// deadline, then logs what the hub had to say after releasing it.
    fn with_hub(&mut self, f: impl FnOnce(&mut Hub, &mut SocketFanout, &Endpoint)) {
        let mut hub = lock(&self.server.hub);
        let notices_before = hub.notices.len();
        f(&mut hub, &mut self.fanout, &self.endpoint);
        if hub.notices.len() != notices_before {
            self.server.notices_ready.notify_all();
        }
        // Expiry is due strictly after `inval` has passed.
        self.next_expiry = hub
            .next_expiry()
            .and_then(|due| due.checked_add(Duration::from_nanos(1)));
        hub.take_logs(&mut self.logs);
        drop(hub);
        if !self.logs.is_empty() {
            self.logs.emit();
        }
    }
}

impl Handler for Serving<'_> {
    fn endpoints(&self) -> &[Endpoint] {
        std::slice::from_ref(&self.endpoint)
    }

    fn datagram(&mut self, _index: usize, data: &[u8], from: SocketAddr, now: Instant) {
        let mut broadcast = false;
        self.with_hub(|hub, fanout, endpoint| {
            let messages_before = hub.stats.messages;
            hub.handle(data, from, now, &mut fanout.on(endpoint));
            broadcast = hub.stats.messages != messages_before;
        });
        if broadcast && !self.spin.is_zero() {
            self.busy_until = Some(now + self.spin);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.next_expiry
    }

    fn timer(&mut self, now: Instant) {
        self.with_hub(|hub, _, _| hub.expire(now));
    }

    fn busy_until(&self) -> Option<Instant> {
        self.busy_until
    }

    fn recv_error(&mut self, _index: usize, error: io::Error, now: Instant) -> io::Result<()> {
        self.with_hub(|hub, _, _| hub.recv_error(&error, now));
        Ok(())
    }
}

impl ChatServer {
    /// Validates `config` and binds `addr` (port 0 picks a free port).
    pub fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<ChatServer> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let options = Options {
            rcvbuf: config.rcvbuf,
            ..Options::default()
        };
        let endpoint = Endpoint::bind(addr, &options)?;
        let event_loop = Loop::new()?;
        let addr = endpoint.local_addr();
        if addr.ip().is_unspecified() {
            warn!("chat server on {addr} listens on every interface");
        }
        info!("chat server listening on {addr}");
        Ok(ChatServer {
            addr,
            waker: event_loop.waker(),
            endpoint: Mutex::new(Some((endpoint, event_loop))),
            hub: Mutex::new(Hub::new(config)),
            notices_ready: Condvar::new(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the tap that sees every datagram the server receives and sends; only before
    /// [`serve`](Self::serve) (false after, and nothing changes).
    pub fn set_tap(&self, tap: Option<Arc<dyn Tap>>) -> bool {
        match lock(&self.endpoint).as_mut() {
            Some((endpoint, _)) => {
                endpoint.set_tap(tap);
                true
            }
            None => false,
        }
    }

    /// Receives and handles datagrams until [`stop`](Self::stop), then closes the socket (the
    /// port is free when this returns) and forgets the clients. Runs once per server.
    pub fn serve(&self) -> io::Result<()> {
        let (endpoint, mut event_loop) = lock(&self.endpoint)
            .take()
            .ok_or_else(|| io::Error::other("chat server already served or stopped"))?;
        let spin = lock(&self.hub).config.spin;
        let mut serving = Serving {
            server: self,
            logs: Logs::default(),
            fanout: SocketFanout::new(&endpoint),
            endpoint,
            spin,
            busy_until: None,
            next_expiry: None,
        };
        let result = event_loop.run(&mut serving);
        drop(serving);
        lock(&self.hub).forget_clients();
        self.notices_ready.notify_all();
        let totals = self.stats();
        match &result {
            Ok(()) => info!("chat server on {} stopped; {totals}", self.addr),
            Err(e) => warn!("chat server on {} stopped: {e}; {totals}", self.addr),
        }
        result
    }

    /// Makes [`serve`](Self::serve) return at once (it frees the port as it does). Idempotent.
    pub fn stop(&self) {
        self.waker.stop();
        // A server that never served still holds its socket: free the port now.
        lock(&self.endpoint).take();
        self.notices_ready.notify_all();
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.waker.is_stopped()
    }

    /// Serves on a new thread named `servicer`, for use from Rust.
    pub fn spawn(self: &Arc<Self>) -> io::Result<JoinHandle<io::Result<()>>> {
        let server = Arc::clone(self);
        std::thread::Builder::new()
            .name("servicer".into())
            .spawn(move || server.serve())
    }

    /// A copy of the counters.
    pub fn stats(&self) -> Stats {
        lock(&self.hub).stats().clone()
    }

    /// The counters and the number of live clients, read together (one snapshot).
    pub fn stats_and_clients(&self) -> (Stats, usize) {
        let hub = lock(&self.hub);
        (hub.stats().clone(), hub.peers.len())
    }

    /// The live clients and the wall-clock time each was last heard from.
    pub fn clients(&self) -> Vec<(SocketAddr, SystemTime)> {
        lock(&self.hub).peers.iter_wall().collect()
    }

    /// Tells `feed` of every datagram and event from now on (running or not).
    pub fn watch(&self, feed: Arc<Feed>) {
        lock(&self.hub).watch(feed, self.addr);
    }

    /// Stops telling `feed`; true if it was watching.
    pub fn unwatch(&self, feed: &Arc<Feed>) -> bool {
        lock(&self.hub).unwatch(feed)
    }

    /// The event history with wall-clock times, oldest first.
    pub fn events(&self) -> Vec<(SystemTime, EventKind, SocketAddr)> {
        let events = lock(&self.hub).events();
        events
            .into_iter()
            .map(|e| (e.wall, e.kind, e.addr))
            .collect()
    }

    /// Waits up to `timeout` for notices (only queued with [`ServerConfig::notify`]) and takes
    /// them; empty after a timeout or once stopped.
    pub fn wait_notices(&self, timeout: Duration) -> Vec<Notice> {
        let mut hub = lock(&self.hub);
        if hub.notices.is_empty() && !self.is_stopped() {
            hub = self
                .notices_ready
                .wait_timeout(hub, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        hub.take_notices()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::PerAddress;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A hub and a log of what it sent: (payload, destination); sends to `fail_to` fail.
    struct Harness {
        hub: Hub,
        t0: Instant,
        sent: Vec<(Vec<u8>, SocketAddr)>,
        fail_to: Option<SocketAddr>,
    }

    impl Harness {
        fn new(config: ServerConfig) -> Harness {
            Harness {
                hub: Hub::new(config),
                t0: Instant::now(),
                sent: Vec::new(),
                fail_to: None,
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn recv(&mut self, ms: u64, from: u16, data: &[u8]) {
            let now = self.at(ms);
            let (sent, fail_to) = (&mut self.sent, self.fail_to);
            let send = |buf: &[u8], to: SocketAddr| {
                if Some(to) == fail_to {
                    return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
                }
                sent.push((buf.to_vec(), to));
                Ok(buf.len())
            };
            self.hub
                .handle(data, addr(from), now, &mut PerAddress(send));
        }

        fn recipients(&mut self) -> Vec<u16> {
            let mut ports: Vec<u16> = self.sent.drain(..).map(|(_, a)| a.port()).collect();
            ports.sort_unstable();
            ports
        }

        fn accounted(&self) -> bool {
            let s = self.hub.stats();
            s.received == s.heartbeats + s.quits + s.messages + s.dropped.iter().sum::<u64>()
        }
    }

    fn config() -> ServerConfig {
        ServerConfig::new(Duration::from_secs(1))
    }

    #[test]
    fn broadcast_reaches_every_client_including_sender() {
        let mut h = Harness::new(config());
        h.recv(0, 1, b"HB");
        h.recv(0, 2, b"HB\n");
        h.recv(10, 3, b"hello");
        assert_eq!(h.recipients(), vec![1, 2, 3]);
        h.recv(20, 1, b"again");
        assert!(h.sent.iter().all(|(p, _)| p == b"ACKagain"));
        let s = h.hub.stats();
        assert_eq!((s.joins, s.messages, s.sent, s.heartbeats), (3, 2, 6, 2));
        assert!(h.accounted());
    }

    #[test]
    fn echo_off_skips_the_sender() {
        let mut c = config();
        c.echo = false;
        let mut h = Harness::new(c);
        h.recv(0, 1, b"HB");
        h.recv(0, 2, b"hi");
        assert_eq!(h.recipients(), vec![1]);
    }

    #[test]
    fn heartbeat_is_not_broadcast_and_quit_removes() {
        let mut h = Harness::new(config());
        h.recv(0, 1, b"HB");
        h.recv(0, 2, b"HB\r\n");
        assert!(h.sent.is_empty());
        h.recv(5, 2, b"quit\n");
        h.recv(6, 9, b"quit"); // never joined: ignored, counted
        h.recv(7, 1, b"x");
        assert_eq!(h.recipients(), vec![1]);
        let s = h.hub.stats();
        assert_eq!(s.quits, 1);
        assert_eq!(s.dropped_for(DropReason::UnknownQuit), 1);
        assert!(h.accounted());
    }

    #[test]
    fn expired_client_gets_no_broadcast_and_can_rejoin() {
        let mut h = Harness::new(config());
        h.recv(0, 1, b"HB");
        h.recv(900, 2, b"HB");
        h.recv(1000, 3, b"at the limit");
        assert_eq!(h.recipients(), vec![1, 2, 3]);
        h.recv(1001, 3, b"just past it");
        assert_eq!(h.recipients(), vec![2, 3]);
        assert_eq!(h.hub.stats().expiries, 1);
        h.recv(1002, 1, b"back");
        assert_eq!(h.recipients(), vec![1, 2, 3]);
        assert_eq!(h.hub.stats().joins, 4);
    }

    #[test]
    fn timer_expiry_without_traffic() {
        let mut h = Harness::new(config());
        h.recv(0, 1, b"HB");
        h.hub.expire(h.at(1000));
        assert_eq!(h.hub.clients().count(), 1);
        h.hub.expire(h.at(1001));
        assert_eq!(h.hub.clients().count(), 0);
        let kinds: Vec<EventKind> = h.hub.events().iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![EventKind::Join, EventKind::Heartbeat, EventKind::Expire]
        );
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let mut c = config();
        c.max_clients = 1;
        c.max_payload = 10;
        let mut h = Harness::new(c);
        h.recv(0, 1, b"");
        h.recv(0, 1, b"HB");
        h.recv(0, 2, b"HB"); // table full
        h.recv(0, 2, b"hello"); // still full
        h.recv(0, 1, &[b'x'; 11]);
        let s = h.hub.stats().clone();
        assert_eq!(s.dropped_for(DropReason::Empty), 1);
        assert_eq!(s.dropped_for(DropReason::Refused), 2);
        assert_eq!(s.dropped_for(DropReason::TooLong), 1);
        assert!(h.sent.is_empty());
        assert!(h.accounted());
    }

    #[test]
    fn oversize_prefixed_payload_is_dropped() {
        let mut h = Harness::new(config());
        h.recv(0, 1, &vec![b'x'; UDP_MAX_PAYLOAD - 3]);
        assert_eq!(h.recipients(), vec![1]);
        h.recv(0, 1, &vec![b'x'; UDP_MAX_PAYLOAD - 2]);
        assert!(h.sent.is_empty());
        assert_eq!(h.hub.stats().dropped_for(DropReason::Oversize), 1);
    }

    #[test]
    fn send_error_to_one_client_is_counted_and_others_still_served() {
        let mut h = Harness::new(config());
        for port in 1..=3 {
            h.recv(0, port, b"HB");
        }
        h.fail_to = Some(addr(2));
        h.recv(1, 1, b"m1");
        h.recv(2, 1, b"m2");
        assert_eq!(h.recipients(), vec![1, 1, 3, 3]);
        assert_eq!(h.hub.stats().send_errors, 2);
        assert_eq!(h.hub.stats().sent, 4);
    }

    #[test]
    fn connection_reset_and_message_size_errors_are_counted_and_skipped() {
        // The receive errors Windows reports where Linux reports nothing (an ICMP "port
        // unreachable" for an earlier send, a datagram longer than the buffer), injected
        // ahead of a real datagram: the server counts them and serves on.
        let server = Arc::new(ChatServer::bind(addr(0), config()).unwrap());
        {
            let parked = lock(&server.endpoint);
            let (endpoint, _) = parked.as_ref().unwrap();
            endpoint.inject_recv_error(io::Error::from(io::ErrorKind::ConnectionReset));
            let too_long = crate::platform::errno::EMSGSIZE;
            endpoint.inject_recv_error(io::Error::from_raw_os_error(too_long));
        }
        let thread = server.spawn().unwrap();
        let client = std::net::UdpSocket::bind(addr(0)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.send_to(b"hello", server.local_addr()).unwrap();
        let mut buf = [0u8; 64];
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ACKhello");
        let stats = server.stats();
        assert_eq!((stats.recv_errors, stats.messages), (2, 1));
        server.stop();
        thread.join().unwrap().unwrap();
    }

    #[test]
    fn notices_carry_payloads_and_skip_heartbeats() {
        let mut c = config();
        c.notify = true;
        let mut h = Harness::new(c);
        h.recv(0, 1, b"HB");
        h.recv(1, 1, b"hi");
        h.recv(2, 1, b"quit");
        let notices = h.hub.take_notices();
        let kinds: Vec<_> = notices.iter().map(|n| n.event.kind).collect();
        assert_eq!(
            kinds,
            vec![EventKind::Join, EventKind::Message, EventKind::Quit]
        );
        assert_eq!(notices[1].payload, b"hi");
    }

    #[test]
    fn heartbeats_cannot_push_other_events_out_of_the_history() {
        let mut c = config();
        c.history = 3;
        let mut h = Harness::new(c);
        h.recv(0, 1, b"hi");
        for ms in 1..100 {
            h.recv(ms, 1, b"HB");
        }
        h.recv(100, 1, b"bye");
        let kinds: Vec<EventKind> = h.hub.events().iter().map(|e| e.kind).collect();
        use EventKind::{Heartbeat as H, Join, Message};
        assert_eq!(kinds, vec![Join, Message, H, H, H, Message]);
        assert_eq!(h.hub.stats().heartbeats, 99);
    }

    #[test]
    fn wall_times_are_taken_when_events_happen() {
        let mut h = Harness::new(config());
        h.hub
            .set_wall_clock(|| SystemTime::UNIX_EPOCH + Duration::from_secs(1000));
        h.recv(0, 1, b"HB");
        h.hub
            .set_wall_clock(|| SystemTime::UNIX_EPOCH + Duration::from_secs(5));
        h.recv(7, 2, b"HB");
        // The clock stepped back between the two: each keeps the time read when it happened.
        let walls: Vec<u64> = h
            .hub
            .events()
            .iter()
            .map(|e| {
                e.wall
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
            })
            .collect();
        assert_eq!(walls, vec![1000, 1000, 5, 5]);
    }

    #[test]
    fn history_is_bounded() {
        let mut c = config();
        c.history = 3;
        let mut h = Harness::new(c);
        for port in 1..=10 {
            h.recv(u64::from(port), port, b"HB"); // a join and a heartbeat each
        }
        assert_eq!(h.hub.events().len(), 6); // the last 3 of each
    }

    #[test]
    fn config_validation_names_the_problem() {
        let mut c = config();
        c.inval = Duration::ZERO;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "inval must be positive"
        );
        assert!(config().validate().is_ok());
    }
}
