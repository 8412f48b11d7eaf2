//! The link's socket loop, a [`Handler`] of the shared receive loop ([`crate::endpoint`]): the
//! endpoint facing the clients and, like a NAT, one endpoint per client address, connected to
//! the target, so replies find their way back; the [`Nat`] table holds them all. Every
//! datagram goes through [`Impairer`], which decides its fate and when it leaves; the handler
//! hands it what arrives, names the next copy's due time as the loop's deadline, and sends
//! what is due.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};

use super::fate::{Impairer, Impairment, LaneStats, Outcome, Way};
use super::nat::{Nat, NatView};
use super::options::{check_target, OptionError};
use super::DEFAULT_EVENTS;
use crate::endpoint::{Endpoint, Handler, Loop, Options, Tap, Waker};
use crate::endpoint::{DEFAULT_RCVBUF, DEFAULT_SPIN};
use crate::platform;
use crate::throttle::RateLimit;
use crate::timing::wall_time;
use crate::watch::Feed;

/// The logger (`udplab.link` in Python).
const LOG: &str = "udplab::link";
/// Clients mapped at most, by default.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// A mapping with no traffic either way for this long is forgotten, by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);
/// File descriptors a link leaves free for the rest of its process (Unix): a new client is
/// refused, as by a full table, when its upstream socket would leave fewer under the soft
/// `RLIMIT_NOFILE` (`ulimit -n`; 1,024 by default on Linux, where the default `max_clients`
/// would otherwise take every one). The limit is not raised: a descriptor numbered past 1,023
/// breaks any code of the process that still uses `select(2)`.
pub const DESCRIPTOR_HEADROOM: u64 = 64;

/// How a link behaves. [`LinkConfig::new`] gives a perfect link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Client to target.
    pub up: Impairment,
    /// Target to client.
    pub down: Impairment,
    /// The seed of both directions' dice.
    pub seed: u64,
    /// New client addresses past this many mappings are refused (fewer where the process's
    /// file descriptor limit leaves less room: see [`DESCRIPTOR_HEADROOM`]).
    pub max_clients: usize,
    /// Mappings silent both ways for this long, with nothing queued, are forgotten.
    pub idle: Duration,
    /// Events kept for [`Relay::events`].
    pub history: usize,
    /// After each datagram relayed, keep polling without sleeping for this long: a reply or
    /// the next datagram arriving meanwhile is relayed without waiting for the thread to wake
    /// up (tens of µs on an idle machine, the largest part of a crossing's latency), at the
    /// price of that much CPU per datagram. Zero: always sleep. At most one second.
    pub spin: Duration,
}

impl LinkConfig {
    /// A link that changes nothing, with `seed`.
    pub fn new(seed: u64) -> LinkConfig {
        LinkConfig {
            up: Impairment::default(),
            down: Impairment::default(),
            seed,
            max_clients: DEFAULT_MAX_CLIENTS,
            idle: DEFAULT_IDLE,
            history: DEFAULT_EVENTS,
            spin: DEFAULT_SPIN,
        }
    }

    /// The same impairment both ways.
    pub fn both(mut self, imp: Impairment) -> LinkConfig {
        self.up = imp.clone();
        self.down = imp;
        self
    }
}

/// Counters of the whole link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Up (client to target) and down.
    pub up: LaneStats,
    /// Target to client.
    pub down: LaneStats,
    /// Clients mapped now (when it stopped, for a stopped link).
    pub clients: usize,
    /// Mappings made since the start.
    pub mapped: u64,
    /// Mappings forgotten for being idle.
    pub forgotten: u64,
}

/// What the loop and the callers share.
#[derive(Debug)]
struct Shared {
    core: Impairer,
    /// The NAT table as callers see it: set by the loop whenever the table changes, and kept
    /// after it stops.
    nat: NatView,
    limit: RateLimit,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A bound link. [`serve`](Relay::serve) runs it on the calling thread until
/// [`stop`](Relay::stop).
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    seed: u64,
    max_clients: usize,
    idle: Duration,
    spin: Duration,
    /// The endpoint facing the clients and the loop, taken by `serve` (or dropped by `stop`).
    parts: Mutex<Option<(Endpoint, Loop)>>,
    waker: Waker,
    shared: Mutex<Shared>,
    /// The tap set on the clients' endpoint and on every upstream endpoint made later.
    tap: Mutex<Option<TapSlot>>,
    /// The monotonic and the wall clock read together at bind: history times are placed on
    /// it, so they do not move when read again after a clock step.
    clock: (Instant, SystemTime),
}

/// A tap held for endpoints not made yet.
#[derive(Clone)]
struct TapSlot(Arc<dyn Tap>);

impl std::fmt::Debug for TapSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

impl Relay {
    /// Validates `config` and binds `listen` (port 0 picks a free port); clients' datagrams
    /// go to `target`. An invalid option, or a `target` that is the bound address itself
    /// (see [`check_target`]), fails with `InvalidInput` and an [`OptionError`] inside.
    pub fn bind(listen: SocketAddr, target: SocketAddr, config: LinkConfig) -> io::Result<Relay> {
        let invalid = |e: OptionError| io::Error::new(io::ErrorKind::InvalidInput, e);
        config.validate().map_err(invalid)?;
        let options = Options {
            rcvbuf: Some(DEFAULT_RCVBUF),
            ..Options::default()
        };
        let endpoint = Endpoint::bind(listen, &options)?;
        let addr = endpoint.local_addr();
        let v6_only = socket2::SockRef::from(endpoint.socket()).only_v6();
        check_target(
            addr,
            target,
            Some(addr.is_ipv6() && !v6_only.unwrap_or(true)),
        )
        .map_err(invalid)?;
        let event_loop = Loop::new()?;
        // Logged before any datagram, on the caller's thread: any run can be replayed.
        info!(target: LOG, "link {addr} -> {target} seed {}", config.seed);
        Ok(Relay {
            addr,
            target,
            seed: config.seed,
            max_clients: config.max_clients,
            idle: config.idle,
            spin: config.spin,
            waker: event_loop.waker(),
            parts: Mutex::new(Some((endpoint, event_loop))),
            shared: Mutex::new(Shared {
                core: Impairer::new(config.up, config.down, config.seed, config.history),
                nat: NatView::default(),
                limit: RateLimit::default(),
            }),
            tap: Mutex::new(None),
            clock: (Instant::now(), SystemTime::now()),
        })
    }

    /// Sets the tap that sees every datagram the link receives and sends on both sides (from
    /// the clients, towards the target and back); only before [`serve`](Self::serve) (false
    /// after, and nothing changes).
    pub fn set_tap(&self, tap: Option<Arc<dyn Tap>>) -> bool {
        match lock(&self.parts).as_mut() {
            Some((endpoint, _)) => {
                endpoint.set_tap(tap.clone());
                *lock(&self.tap) = tap.map(TapSlot);
                true
            }
            None => false,
        }
    }

    /// Where clients send.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where their datagrams go.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The seed in use.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Relays until [`stop`](Self::stop), then discards what still waits (counted as
    /// `flushed`) and closes every socket (the port is free when this returns). The counters
    /// and [`clients`](Self::clients) stay as they were at the stop.
    pub fn serve(&self) -> io::Result<()> {
        let (endpoint, mut event_loop) = lock(&self.parts)
            .take()
            .ok_or_else(|| io::Error::other("link already served or stopped"))?;
        let mut relaying = Relaying {
            relay: self,
            nat: Nat::new(endpoint, self.max_clients, self.idle),
            published: 0,
            next_sweep: Instant::now() + self.sweep_every(),
            busy_until: None,
        };
        let result = event_loop.run(&mut relaying);
        drop(relaying); // closes every socket
        let mut shared = lock(&self.shared);
        shared.core.flush(Instant::now());
        if let Err(e) = &result {
            warn!(target: LOG, "link {} stopped by an error: {e}", self.addr);
        }
        result
    }

    fn sweep_every(&self) -> Duration {
        (self.idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Makes [`serve`](Self::serve) return at once (it frees the port as it does). Idempotent.
    pub fn stop(&self) {
        self.waker.stop();
        // A link that never served still holds its socket: free the port now.
        lock(&self.parts).take();
    }

    /// Serves on a new thread named `link`, for use from Rust.
    pub fn spawn(self: &Arc<Self>) -> io::Result<JoinHandle<io::Result<()>>> {
        let relay = Arc::clone(self);
        std::thread::Builder::new()
            .name("link".into())
            .spawn(move || relay.serve())
    }

    /// A copy of the counters.
    pub fn stats(&self) -> LinkStats {
        let shared = lock(&self.shared);
        let [up, down] = shared.core.stats();
        LinkStats {
            up,
            down,
            clients: shared.nat.clients.len(),
            mapped: shared.nat.mapped,
            forgotten: shared.nat.forgotten,
        }
    }

    /// `(client, the address the target sees it as)` for every mapped client, in mapping
    /// order (when it stopped, for a stopped link).
    pub fn clients(&self) -> Vec<(SocketAddr, SocketAddr)> {
        lock(&self.shared).nat.clients.clone()
    }

    /// Tells `feed` of every datagram's fate from now on (running or not).
    pub fn watch(&self, feed: Arc<Feed>) {
        lock(&self.shared).core.watch(feed, self.target);
    }

    /// Stops telling `feed`; true if it was watching.
    pub fn unwatch(&self, feed: &Arc<Feed>) -> bool {
        lock(&self.shared).core.unwatch(feed)
    }

    /// The history with wall-clock times, oldest first.
    pub fn events(&self) -> Vec<(SystemTime, Way, SocketAddr, Outcome, usize)> {
        lock(&self.shared)
            .core
            .events()
            .map(|e| {
                (
                    wall_time(e.at, self.clock),
                    e.direction,
                    e.client,
                    e.outcome,
                    e.size,
                )
            })
            .collect()
    }
}

/// The loop's handler while a link serves: the NAT table, with every endpoint.
struct Relaying<'a> {
    relay: &'a Relay,
    nat: Nat<Endpoint>,
    /// The table's generation callers see.
    published: u64,
    next_sweep: Instant,
    /// Poll without sleeping until then (see [`LinkConfig::spin`]).
    busy_until: Option<Instant>,
}

impl Relaying<'_> {
    /// The socket index of `from`'s mapping, made if new and there is room; else why not
    /// (`Refused` or `SocketError`).
    fn mapping(
        &mut self,
        shared: &mut Shared,
        from: SocketAddr,
        now: Instant,
    ) -> Result<usize, Outcome> {
        if let Some(index) = self.nat.find(from) {
            return Ok(index);
        }
        // Idle mappings are swept every `sweep_every`, not here: a flood of new addresses must
        // not cost a scan of every mapping per datagram.
        if self.nat.is_full() {
            if let Some(held) = shared.limit.allow(("refused", 0), now) {
                warn!(target: LOG, "link refused {from}: {} clients mapped already{}",
                    self.relay.max_clients, crate::throttle::held_note(held));
            }
            return Err(Outcome::Refused);
        }
        let mut endpoint = match Endpoint::connect(self.relay.target) {
            Ok(endpoint) => endpoint,
            Err(e) => {
                log_error(shared, "opening an upstream socket", &e, now);
                return Err(Outcome::SocketError);
            }
        };
        if let Some((left, limit)) = platform::descriptors_left(endpoint.socket()) {
            if left < DESCRIPTOR_HEADROOM {
                if let Some(held) = shared.limit.allow(("descriptors", 0), now) {
                    warn!(target: LOG, "link refused {from}: {} clients mapped, and one more \
                        would leave {left} of the process's {limit} file descriptors (the link \
                        keeps {DESCRIPTOR_HEADROOM} free); raise the limit to map more \
                        (ulimit -n, or resource.setrlimit in Python){}",
                        self.nat.len(), crate::throttle::held_note(held));
                }
                return Err(Outcome::Refused);
            }
        }
        // Replies from a fast target must not overflow the default receive buffer.
        let _ = socket2::SockRef::from(endpoint.socket()).set_recv_buffer_size(DEFAULT_RCVBUF);
        endpoint.set_tap(lock(&self.relay.tap).clone().map(|slot| slot.0));
        let upstream = endpoint.local_addr();
        let index = self.nat.insert(from, endpoint, upstream, now);
        if let Some(held) = shared.limit.allow(("mapped", 0), now) {
            info!(target: LOG, "link {from} mapped to {upstream}{}", crate::throttle::held_note(held));
        }
        Ok(index)
    }

    /// Sends every copy whose time has come, both ways.
    fn send_due(&mut self, shared: &mut Shared, now: Instant) {
        for direction in Way::BOTH {
            while let Some(copy) = shared.core.pop_due(direction, now) {
                let sent = match direction {
                    Way::Up => match self.nat.upstream(copy.client, now) {
                        Some(endpoint) => endpoint.send(&copy.data),
                        None => Err(io::Error::from(io::ErrorKind::NotConnected)),
                    },
                    Way::Down => self.nat.sockets()[0].send_to(&copy.data, copy.client),
                };
                self.nat.dequeued(copy.client, now);
                if let Err(e) = &sent {
                    log_error(shared, "sending", e, now);
                }
                shared.core.sent(direction, copy, sent.is_ok(), now);
            }
        }
    }

    /// Forgets the idle mappings (closing their sockets). Runs between the loop's waits, so
    /// no endpoint index is in use.
    fn forget_idle(&mut self, shared: &mut Shared, now: Instant) {
        let gone = self.nat.sweep(now).len();
        if gone > 0 {
            if let Some(held) = shared.limit.allow(("forgot", 0), now) {
                info!(target: LOG, "link forgot {gone} idle client(s); {} mapped{}",
                    self.nat.len(), crate::throttle::held_note(held));
            }
        }
    }

    /// Shows callers the table as it is now, if it changed.
    fn publish(&mut self, shared: &mut Shared) {
        if self.published != self.nat.generation() {
            self.published = self.nat.generation();
            shared.nat = self.nat.view();
        }
    }
}

impl Handler for Relaying<'_> {
    fn endpoints(&self) -> &[Endpoint] {
        self.nat.sockets()
    }

    fn datagram(&mut self, index: usize, data: &[u8], from: SocketAddr, now: Instant) {
        let relay = self.relay;
        if !relay.spin.is_zero() {
            self.busy_until = Some(now + relay.spin);
        }
        let mut shared = lock(&relay.shared);
        let (direction, client) = if index == 0 {
            match self.mapping(&mut shared, from, now) {
                Ok(i) => {
                    self.nat.heard(i, now);
                    (Way::Up, from)
                }
                Err(outcome) => {
                    shared.core.refuse(outcome, data, from, now);
                    return;
                }
            }
        } else {
            match self.nat.heard(index, now) {
                Some(client) => (Way::Down, client),
                None => return,
            }
        };
        let copies = shared.core.admit(direction, data, client, now);
        self.nat.queued(client, copies.into());
        self.publish(&mut shared);
    }

    fn busy_until(&self) -> Option<Instant> {
        self.busy_until
    }

    fn deadline(&self) -> Option<Instant> {
        let due = lock(&self.relay.shared).core.next_due();
        Some(due.map_or(self.next_sweep, |d| d.min(self.next_sweep)))
    }

    fn timer(&mut self, now: Instant) {
        let relay = self.relay;
        let mut shared = lock(&relay.shared);
        self.send_due(&mut shared, now);
        if now >= self.next_sweep {
            self.forget_idle(&mut shared, now);
            self.publish(&mut shared);
            self.next_sweep = now + relay.sweep_every();
        }
    }

    /// An upstream socket hears `ECONNREFUSED` when the target's port is closed (an ICMP
    /// error came back): logged, and the link goes on.
    fn recv_error(&mut self, _index: usize, error: io::Error, now: Instant) -> io::Result<()> {
        log_error(&mut lock(&self.relay.shared), "receiving", &error, now);
        Ok(())
    }
}

fn log_error(shared: &mut Shared, what: &'static str, e: &io::Error, now: Instant) {
    let key = (what, e.raw_os_error().map_or(-1, i64::from));
    if let Some(held) = shared.limit.allow(key, now) {
        warn!(target: LOG, "link error {what}: {e}{}", crate::throttle::held_note(held));
    }
}

#[cfg(test)]
mod tests;
