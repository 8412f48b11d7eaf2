//! The link's socket loop: one listening socket for the clients and, like a NAT, one upstream
//! socket per client address, connected to the target, so replies find their way back. Every
//! datagram goes through [`Impairer`], which decides its fate and when it leaves; this loop
//! only receives, waits until the next copy is due, and sends.
//!
//! TODO(issue 11): this loop waits on its sockets with ppoll(2) itself. It should move onto the
//! shared receive-loop endpoint (`src/endpoint.rs`) once that covers several sockets.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};
use nix::errno::Errno;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, Socket, Type};

use super::fate::{Direction, Impairer, Impairment, ImpairmentError, LaneStats, Outcome};
use super::DEFAULT_EVENTS;
use crate::server::{wall_time, RateLimit, DEFAULT_RCVBUF};
use crate::socket::Family;

/// The logger (`udplab.link` in Python).
const LOG: &str = "udplab::link";
/// Clients mapped at most, by default.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// A mapping with no traffic either way for this long is forgotten, by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);
/// The longest the loop sleeps, so it notices idle mappings without traffic.
const TICK: Duration = Duration::from_millis(100);
/// Datagrams taken from one socket before the others get their turn.
const BATCH: usize = 64;
/// A buffer that holds any datagram whole.
const RECV_BUFFER: usize = 65_536;

/// How a link behaves. [`LinkConfig::new`] gives a perfect link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Client to target.
    pub up: Impairment,
    /// Target to client.
    pub down: Impairment,
    /// The seed of both directions' dice.
    pub seed: u64,
    /// New client addresses past this many mappings are refused.
    pub max_clients: usize,
    /// Mappings silent both ways for this long are forgotten.
    pub idle: Duration,
    /// Events kept for [`Relay::events`].
    pub history: usize,
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
        }
    }

    /// The same impairment both ways.
    pub fn both(mut self, imp: Impairment) -> LinkConfig {
        self.up = imp.clone();
        self.down = imp;
        self
    }

    /// Checks every value; the error names the option (and the direction).
    pub fn validate(&self) -> Result<(), ImpairmentError> {
        for (imp, dir) in [(&self.up, Direction::Up), (&self.down, Direction::Down)] {
            imp.validate()
                .map_err(|e| ImpairmentError(format!("{} ({})", e.0, dir.name())))?;
        }
        if self.max_clients == 0 {
            return Err(ImpairmentError("max_clients must be at least 1".into()));
        }
        if self.idle.is_zero() {
            return Err(ImpairmentError("idle must be positive".into()));
        }
        Ok(())
    }
}

/// Counters of the whole link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Up (client to target) and down.
    pub up: LaneStats,
    /// Target to client.
    pub down: LaneStats,
    /// Clients mapped now.
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
    /// `(client, the address the target sees)`, in mapping order.
    clients: Vec<(SocketAddr, SocketAddr)>,
    mapped: u64,
    forgotten: u64,
    limit: RateLimit,
}

/// One client's way to the target.
#[derive(Debug)]
struct Mapping {
    socket: UdpSocket,
    last: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
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
    socket: Mutex<Option<UdpSocket>>,
    /// A second handle on the listening socket, shut down by `stop` to wake the loop.
    waker: Mutex<Option<UdpSocket>>,
    shared: Mutex<Shared>,
    stop: AtomicBool,
}

impl Relay {
    /// Validates `config` and binds `listen` (port 0 picks a free port); clients' datagrams
    /// go to `target`.
    pub fn bind(listen: SocketAddr, target: SocketAddr, config: LinkConfig) -> io::Result<Relay> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let socket = Socket::new(
            Domain::for_address(listen),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        socket.set_recv_buffer_size(DEFAULT_RCVBUF)?;
        socket.bind(&listen.into())?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from(socket);
        let addr = socket.local_addr()?;
        // Logged before any datagram, on the caller's thread: any run can be replayed.
        info!(target: LOG, "link {addr} -> {target} seed {}", config.seed);
        Ok(Relay {
            addr,
            target,
            seed: config.seed,
            max_clients: config.max_clients,
            idle: config.idle,
            waker: Mutex::new(Some(socket.try_clone()?)),
            socket: Mutex::new(Some(socket)),
            shared: Mutex::new(Shared {
                core: Impairer::new(config.up, config.down, config.seed, config.history),
                clients: Vec::new(),
                mapped: 0,
                forgotten: 0,
                limit: RateLimit::default(),
            }),
            stop: AtomicBool::new(false),
        })
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
    /// `flushed`) and closes every socket (the port is free when this returns).
    pub fn serve(&self) -> io::Result<()> {
        let socket = lock(&self.socket)
            .take()
            .ok_or_else(|| io::Error::other("link already served or stopped"))?;
        let mut maps: HashMap<SocketAddr, Mapping> = HashMap::new();
        let result = self.run(&socket, &mut maps);
        let mut shared = lock(&self.shared);
        shared.core.flush(Instant::now());
        shared.clients.clear();
        if let Err(e) = &result {
            warn!(target: LOG, "link {} stopped by an error: {e}", self.addr);
        }
        result
    }

    fn run(&self, socket: &UdpSocket, maps: &mut HashMap<SocketAddr, Mapping>) -> io::Result<()> {
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut order: Vec<SocketAddr> = Vec::new();
        let mut ready: Vec<bool> = Vec::new();
        let mut next_sweep = Instant::now() + self.sweep_every();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let now = Instant::now();
            let due = {
                let mut shared = lock(&self.shared);
                self.send_due(&mut shared, socket, maps, now);
                if now >= next_sweep {
                    self.forget_idle(&mut shared, maps, now);
                    next_sweep = now + self.sweep_every();
                }
                shared.core.next_due()
            };
            let wait = due.map_or(TICK, |d| d.saturating_duration_since(now).min(TICK));
            order.clear();
            order.extend(maps.keys().copied());
            {
                let mut fds = Vec::with_capacity(order.len() + 1);
                fds.push(PollFd::new(socket.as_fd(), PollFlags::POLLIN));
                fds.extend(
                    order
                        .iter()
                        .map(|c| PollFd::new(maps[c].socket.as_fd(), PollFlags::POLLIN)),
                );
                match ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None) {
                    Ok(0) | Err(Errno::EINTR) => continue,
                    Ok(_) => {}
                    Err(e) => return Err(e.into()),
                }
                ready.clear();
                ready.extend(
                    fds.iter()
                        .map(|f| f.revents().is_some_and(|r| !r.is_empty())),
                );
            }
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let now = Instant::now();
            let mut shared = lock(&self.shared);
            if ready[0] {
                self.receive_up(&mut shared, socket, maps, &mut buf, now);
            }
            for (client, _) in order.iter().zip(&ready[1..]).filter(|(_, &r)| r) {
                if let Some(map) = maps.get_mut(client) {
                    receive_down(&mut shared, *client, map, &mut buf, now);
                }
            }
        }
    }

    fn sweep_every(&self) -> Duration {
        (self.idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Takes datagrams from clients until none waits (or a batch is done).
    fn receive_up(
        &self,
        shared: &mut Shared,
        socket: &UdpSocket,
        maps: &mut HashMap<SocketAddr, Mapping>,
        buf: &mut [u8],
        now: Instant,
    ) {
        for _ in 0..BATCH {
            let (n, from) = match crate::socket::recv_from_raw(socket, buf) {
                Ok(got) => got,
                Err(e) if is_would_block(&e) => return,
                Err(e) => return log_error(shared, "receiving from clients", &e, now),
            };
            let Some(from) = from else { return };
            let data = &buf[..n];
            match maps.get_mut(&from) {
                Some(map) => map.last = now,
                None => {
                    // Idle mappings are swept every `sweep_every`, not here: a flood of new
                    // addresses must not cost a scan of every mapping per datagram.
                    if maps.len() >= self.max_clients {
                        shared.core.refuse(n, from, now);
                        if let Some(held) = shared.limit.allow(("refused", 0), now) {
                            warn!(target: LOG, "link refused {from}: {} clients mapped already{}",
                                self.max_clients, crate::server::held_note(held));
                        }
                        continue;
                    }
                    match self.map(now) {
                        Ok(map) => {
                            let upstream = map.socket.local_addr().unwrap_or(self.target);
                            shared.clients.push((from, upstream));
                            shared.mapped += 1;
                            maps.insert(from, map);
                            if let Some(held) = shared.limit.allow(("mapped", 0), now) {
                                info!(target: LOG, "link {from} mapped to {upstream}{}",
                                    crate::server::held_note(held));
                            }
                        }
                        Err(e) => {
                            shared.core.refuse(n, from, now);
                            log_error(shared, "opening an upstream socket", &e, now);
                            continue;
                        }
                    }
                }
            }
            shared.core.admit(Direction::Up, data, from, now);
        }
    }

    /// A new upstream socket for a client, connected to the target.
    fn map(&self, now: Instant) -> io::Result<Mapping> {
        let family = Family::of(&self.target);
        let socket = Socket::new(
            Domain::for_address(self.target),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        socket.set_recv_buffer_size(DEFAULT_RCVBUF)?;
        socket.bind(&SocketAddr::new(family.unspecified(), 0).into())?;
        socket.connect(&self.target.into())?;
        socket.set_nonblocking(true)?;
        Ok(Mapping {
            socket: socket.into(),
            last: now,
        })
    }

    /// Sends every copy whose time has come, both ways.
    fn send_due(
        &self,
        shared: &mut Shared,
        socket: &UdpSocket,
        maps: &mut HashMap<SocketAddr, Mapping>,
        now: Instant,
    ) {
        for direction in Direction::BOTH {
            while let Some(copy) = shared.core.pop_due(direction, now) {
                let sent = match direction {
                    Direction::Up => match maps.get_mut(&copy.client) {
                        Some(map) => {
                            map.last = now;
                            map.socket.send(&copy.data)
                        }
                        None => Err(io::Error::from(io::ErrorKind::NotConnected)),
                    },
                    Direction::Down => socket.send_to(&copy.data, copy.client),
                };
                if let Err(e) = &sent {
                    log_error(shared, "sending", e, now);
                }
                shared.core.sent(direction, copy, sent.is_ok(), now);
            }
        }
    }

    /// Forgets the mappings silent both ways for `idle`, with the copies still waiting for them.
    fn forget_idle(
        &self,
        shared: &mut Shared,
        maps: &mut HashMap<SocketAddr, Mapping>,
        now: Instant,
    ) {
        let before = maps.len();
        maps.retain(|client, map| {
            let keep = now.saturating_duration_since(map.last) < self.idle;
            if !keep {
                shared.core.forget(*client, now);
            }
            keep
        });
        let gone = before - maps.len();
        if gone > 0 {
            shared.forgotten += gone as u64;
            shared.clients.retain(|(c, _)| maps.contains_key(c));
            info!(target: LOG, "link forgot {gone} idle client(s); {} mapped", maps.len());
        }
    }

    /// Makes [`serve`](Self::serve) return at once (it frees the port as it does). Idempotent.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(waker) = lock(&self.waker).take() {
            // Shutting the socket down makes ppoll(2) report it at once.
            let _ = socket2::SockRef::from(&waker).shutdown(std::net::Shutdown::Both);
        }
        // A link that never served still holds its socket: free the port now.
        lock(&self.socket).take();
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
            clients: shared.clients.len(),
            mapped: shared.mapped,
            forgotten: shared.forgotten,
        }
    }

    /// `(client, the address the target sees it as)` for every mapped client.
    pub fn clients(&self) -> Vec<(SocketAddr, SocketAddr)> {
        lock(&self.shared).clients.clone()
    }

    /// The history with wall-clock times, oldest first.
    pub fn events(&self) -> Vec<(SystemTime, Direction, SocketAddr, Outcome, usize)> {
        lock(&self.shared)
            .core
            .events()
            .map(|e| (wall_time(e.at), e.direction, e.client, e.outcome, e.size))
            .collect()
    }
}

/// Takes the target's datagrams for one client until none waits (or a batch is done).
fn receive_down(
    shared: &mut Shared,
    client: SocketAddr,
    map: &mut Mapping,
    buf: &mut [u8],
    now: Instant,
) {
    for _ in 0..BATCH {
        match map.socket.recv(buf) {
            Ok(n) => {
                map.last = now;
                shared.core.admit(Direction::Down, &buf[..n], client, now);
            }
            Err(e) if is_would_block(&e) => return,
            // The target's port is closed (an ICMP error came back): nothing to relay.
            Err(e) => return log_error(shared, "receiving from the target", &e, now),
        }
    }
}

fn log_error(shared: &mut Shared, what: &'static str, e: &io::Error, now: Instant) {
    let key = (what, e.raw_os_error().map_or(-1, i64::from));
    if let Some(held) = shared.limit.allow(key, now) {
        warn!(target: LOG, "link error {what}: {e}{}", crate::server::held_note(held));
    }
}

#[cfg(test)]
mod tests;
