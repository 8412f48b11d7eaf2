//! One UDP socket and the loop that receives on it: the part the chat server, the chat client
//! and a relay share.
//!
//! - An [`Endpoint`] is one bound UDP socket. Every datagram received on it or sent through it
//!   passes one place, where an optional [`Tap`] sees it (for captures); without a tap that
//!   costs one branch. Sends block while the kernel's send buffer is full, at most
//!   [`SEND_WAIT`](crate::timing::SEND_WAIT) per call (a slow link slows the sender down instead of losing datagrams);
//!   receives never block ([`Endpoint::try_recv_from`]).
//! - A [`Loop`] waits on one or more endpoints at once and hands every datagram to a
//!   [`Handler`], which owns the endpoints and everything else. The handler also names the
//!   loop's next deadline ([`Handler::deadline`], for timers such as expiry or a delay queue)
//!   and may ask the loop to keep polling without sleeping for a while
//!   ([`Handler::busy_until`]). A loop sleeps at most [`TICK`] at a time.
//! - A [`Waker`], taken from the loop before it runs and usable from any thread, stops it
//!   ([`Waker::stop`]) or wakes it to look at its deadline again ([`Waker::wake`]) at once.
//!
//! It waits with one `poll` over all its sockets (`WSAPoll` on Windows): see [`platform`].
//!
//! Rules the loop keeps: a signal interrupting a wait (`EINTR`) is retried; a socket shut down
//! while nobody asked the loop to stop (by another thread, or by a forked child sharing it:
//! `poll` reports a hang-up, or a receive comes back without a sender address) ends the loop
//! with [`shut_down_error`] instead of being taken for a datagram or polled for ever.
//!
//! A relay, for instance, keeps the socket facing its clients at index 0 and one socket per
//! client towards the server after it, queues what arrives with its release time, returns the
//! earliest release from [`Handler::deadline`] and sends what is due in [`Handler::timer`]:
//!
//! ```
//! use std::collections::VecDeque;
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use udplab::endpoint::{Endpoint, Handler, Loop, Options};
//!
//! /// Sends every datagram back to its sender 10 ms later.
//! struct DelayedEcho {
//!     sockets: Vec<Endpoint>,
//!     queue: VecDeque<(Instant, Vec<u8>, SocketAddr)>,
//! }
//!
//! impl Handler for DelayedEcho {
//!     fn endpoints(&self) -> &[Endpoint] {
//!         &self.sockets
//!     }
//!     fn datagram(&mut self, _index: usize, data: &[u8], from: SocketAddr, now: Instant) {
//!         let due = now + Duration::from_millis(10);
//!         self.queue.push_back((due, data.to_vec(), from));
//!     }
//!     fn deadline(&self) -> Option<Instant> {
//!         self.queue.front().map(|(due, _, _)| *due)
//!     }
//!     fn timer(&mut self, now: Instant) {
//!         while self.queue.front().is_some_and(|(due, _, _)| *due <= now) {
//!             let (_, data, to) = self.queue.pop_front().unwrap();
//!             let _ = self.sockets[0].send_to(&data, to); // counted by a real relay
//!         }
//!     }
//! }
//!
//! let echo = Endpoint::bind("127.0.0.1:0".parse().unwrap(), &Options::default()).unwrap();
//! let addr = echo.local_addr();
//! let mut event_loop = Loop::new().unwrap();
//! let waker = event_loop.waker();
//! let thread = std::thread::spawn(move || {
//!     let mut relay = DelayedEcho { sockets: vec![echo], queue: VecDeque::new() };
//!     event_loop.run(&mut relay)
//! });
//! let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
//! client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
//! client.send_to(b"ping", addr).unwrap();
//! let mut buf = [0u8; 16];
//! let n = client.recv(&mut buf).unwrap();
//! assert_eq!(&buf[..n], b"ping");
//! waker.stop();
//! thread.join().unwrap().unwrap();
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
#[cfg(test)]
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use socket2::{Domain, Protocol, Socket, Type};

use crate::platform::{self, Notifier, Waiter};
use crate::timing::TICK;

/// The receive buffer a server or a link asks for by default. Heartbeats from a thousand
/// clients arrive while a broadcast is being sent; the kernel's default (208 KiB) overflows then
/// and loses them.
pub const DEFAULT_RCVBUF: usize = 4 << 20;
/// How long a loop keeps polling after it handled datagrams before it sleeps again (a server
/// after a broadcast, a link after each datagram): see [`Handler::busy_until`].
pub const DEFAULT_SPIN: Duration = Duration::from_micros(200);
/// A buffer this long holds any UDP datagram whole.
pub const MAX_DATAGRAM: usize = 65_536;
/// Datagrams taken from one ready socket before the loop looks at the others and its deadline.
const BURST: usize = 64;

/// Which way a datagram went through an [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received.
    In,
    /// Sent.
    Out,
}

/// One datagram as a [`Tap`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Received or sent.
    pub direction: Direction,
    /// The wall-clock time it was received or handed to the kernel.
    pub at: SystemTime,
    /// The endpoint's own address.
    pub local: SocketAddr,
    /// The other side: the sender of a received datagram, the destination of a sent one.
    pub peer: SocketAddr,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// Sees every datagram an [`Endpoint`] receives or sends (successfully), on the thread that
/// receives or sends it; keep it short. Any `Fn(&Datagram)` that is `Send + Sync` is a tap.
pub trait Tap: Send + Sync {
    /// Called once per datagram.
    fn datagram(&self, datagram: &Datagram<'_>);
}

impl<F: Fn(&Datagram<'_>) + Send + Sync> Tap for F {
    fn datagram(&self, datagram: &Datagram<'_>) {
        self(datagram)
    }
}

/// How [`Endpoint::bind`] sets up its socket.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `SO_RCVBUF` to ask for; `None` keeps the system's default.
    pub rcvbuf: Option<usize>,
    /// `SO_BROADCAST`: allow sending to a broadcast address such as 255.255.255.255.
    pub broadcast: bool,
}

pub use crate::socket::shut_down_error;

/// One UDP socket, waiting for sends (at most [`SEND_WAIT`](crate::timing::SEND_WAIT) per call) and never for
/// receives. IPv4 peers of a dual-stack IPv6 socket appear as IPv4 addresses (`127.0.0.1`, not
/// `::ffff:127.0.0.1`), and IPv4 destinations are mapped back when sending.
pub struct Endpoint {
    socket: std::net::UdpSocket,
    local: SocketAddr,
    tap: Option<Arc<dyn Tap>>,
    /// Errors the next receives return before the socket's own (tests of error handling).
    #[cfg(test)]
    injected: Mutex<std::collections::VecDeque<io::Error>>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("local", &self.local)
            .field("tap", &self.tap.is_some())
            .finish()
    }
}

impl Endpoint {
    /// Binds a new socket to `addr` (port 0 picks a free port). An IPv6 socket also takes IPv4
    /// traffic where the system allows (Linux's default).
    pub fn bind(addr: SocketAddr, options: &Options) -> io::Result<Endpoint> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if let Some(bytes) = options.rcvbuf {
            socket.set_recv_buffer_size(bytes)?;
        }
        if options.broadcast {
            socket.set_broadcast(true)?;
        }
        socket.bind(&addr.into())?;
        Endpoint::from_std(socket.into())
    }

    /// A socket connected to `peer`: the system binds an ephemeral port on the route to it, and
    /// only `peer`'s datagrams are received. [`send`](Self::send) sends to it.
    pub fn connect(peer: SocketAddr) -> io::Result<Endpoint> {
        let socket = Socket::new(Domain::for_address(peer), Type::DGRAM, Some(Protocol::UDP))?;
        if peer.is_ipv6() {
            socket.set_only_v6(false)?;
        }
        socket.connect(&peer.into())?;
        Endpoint::from_std(socket.into())
    }

    /// Takes over a bound socket (made blocking with the [`SEND_WAIT`](crate::timing::SEND_WAIT) send timeout on the
    /// Unix path, non-blocking on the portable one: see [`platform`]).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<Endpoint> {
        platform::prepare_endpoint(&socket)?;
        let local = canonical(socket.local_addr()?);
        Ok(Endpoint {
            socket,
            local,
            tap: None,
            #[cfg(test)]
            injected: Mutex::default(),
        })
    }

    /// Sets (or removes) the tap that sees every datagram in and out.
    pub fn set_tap(&mut self, tap: Option<Arc<dyn Tap>>) {
        self.tap = tap;
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The connected peer, or `ENOTCONN`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr().map(canonical)
    }

    /// The socket, for options and batched sends (which must call [`tap_sent`](Self::tap_sent)).
    pub fn socket(&self) -> &std::net::UdpSocket {
        &self.socket
    }

    /// `addr` as this socket's family writes it: IPv4 mapped into IPv6 for an IPv6 socket.
    pub fn wire_addr(&self, addr: SocketAddr) -> SocketAddr {
        match (addr, self.local) {
            (SocketAddr::V4(v4), SocketAddr::V6(_)) => {
                SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0).into()
            }
            _ => addr,
        }
    }

    /// Sends one datagram to `to`, waiting up to [`SEND_WAIT`](crate::timing::SEND_WAIT) for buffer space.
    pub fn send_to(&self, payload: &[u8], to: SocketAddr) -> io::Result<usize> {
        // The time is taken before the send: a reply can be received (and tapped, with its
        // time) before this thread runs again.
        let at = self.tap.as_ref().map(|_| SystemTime::now());
        let n = platform::send_to(&self.socket, payload, self.wire_addr(to), true)?;
        if let Some(at) = at {
            self.tap_sent_at(payload, to, at);
        }
        Ok(n)
    }

    /// Sends one datagram to the connected peer (`EDESTADDRREQ` when not connected), waiting
    /// up to [`SEND_WAIT`](crate::timing::SEND_WAIT) for buffer space.
    pub fn send(&self, payload: &[u8]) -> io::Result<usize> {
        self.send_connected(payload, true)
    }

    /// [`send`](Self::send) without waiting: `WouldBlock` when the send buffer is full (for a
    /// caller that must never block, such as an event loop's thread).
    pub fn try_send(&self, payload: &[u8]) -> io::Result<usize> {
        self.send_connected(payload, false)
    }

    fn send_connected(&self, payload: &[u8], wait: bool) -> io::Result<usize> {
        let at = self.tap.as_ref().map(|_| SystemTime::now()); // as in send_to
        let n = platform::send(&self.socket, payload, wait)?;
        if let Some(at) = at {
            if let Ok(peer) = self.peer_addr() {
                self.tap_sent_at(payload, peer, at);
            }
        }
        Ok(n)
    }

    /// Shows the tap a datagram sent to `to` by other means (batched sends).
    #[inline]
    pub fn tap_sent(&self, payload: &[u8], to: SocketAddr) {
        if self.tap.is_some() {
            self.tap_sent_at(payload, to, SystemTime::now());
        }
    }

    /// Shows the tap a datagram sent to `to` at `at`.
    fn tap_sent_at(&self, payload: &[u8], to: SocketAddr, at: SystemTime) {
        if let Some(tap) = &self.tap {
            tap.datagram(&Datagram {
                direction: Direction::Out,
                at,
                local: self.local,
                peer: to,
                payload,
            });
        }
    }

    /// Receives one datagram if one is queued, without waiting: `Ok(None)` when there is
    /// none. A datagram longer than `buf` is truncated (Windows fails with `WSAEMSGSIZE`
    /// instead). A receive without a sender (the socket was shut down) is [`shut_down_error`].
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        #[cfg(test)]
        if let Some(e) = self.injected.lock().unwrap().pop_front() {
            return Err(e);
        }
        let Some((n, from)) = platform::recv_now(&self.socket, buf)? else {
            return Ok(None);
        };
        let from = from.map(canonical).ok_or_else(shut_down_error)?;
        if let Some(tap) = &self.tap {
            tap.datagram(&Datagram {
                direction: Direction::In,
                at: SystemTime::now(),
                local: self.local,
                peer: from,
                payload: &buf[..n],
            });
        }
        Ok(Some((n, from)))
    }
}

#[cfg(test)]
impl Endpoint {
    /// Makes the next receive that finds a datagram queued fail with `error` first: how tests
    /// on Linux meet the receive errors of other systems (Windows reports an ICMP "port
    /// unreachable" as `WSAECONNRESET` on the next receive of an unconnected socket, and a
    /// datagram longer than the buffer as `WSAEMSGSIZE` instead of truncating it).
    pub(crate) fn inject_recv_error(&self, error: io::Error) {
        self.injected.lock().unwrap().push_back(error);
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it stands for; anything else unchanged.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// What a [`Loop`] does with what arrives. The handler owns the endpoints the loop listens on.
pub trait Handler {
    /// The endpoints to receive on, by index; read again before every wait, so the set may
    /// change between calls (a relay adds one socket per client).
    fn endpoints(&self) -> &[Endpoint];

    /// A datagram `data` from `from` arrived on `endpoints()[index]` at `now`.
    fn datagram(&mut self, index: usize, data: &[u8], from: SocketAddr, now: Instant);

    /// When [`timer`](Self::timer) should run next; `None`: no timer.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// The deadline has passed (`now` is at or after it).
    fn timer(&mut self, now: Instant) {
        let _ = now;
    }

    /// Until when the loop should keep polling without sleeping (a busy wait that saves the
    /// scheduler's wake-up for a datagram expected soon); `None`: sleep as usual.
    fn busy_until(&self) -> Option<Instant> {
        None
    }

    /// A receive on `endpoints()[index]` failed (other than with nothing to receive or
    /// `EINTR`), e.g. `ECONNREFUSED` on a connected socket after an ICMP "port unreachable".
    /// Returning the error ends the loop with it; the default does.
    fn recv_error(&mut self, index: usize, error: io::Error, now: Instant) -> io::Result<()> {
        let _ = (index, now);
        Err(error)
    }
}

struct Shared {
    stop: AtomicBool,
    notifier: Notifier,
}

/// Stops or wakes a [`Loop`] from any thread. Cheap to clone.
#[derive(Clone)]
pub struct Waker(Arc<Shared>);

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl Waker {
    /// Makes [`Loop::run`] return `Ok` at once (or as soon as it runs). Idempotent.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.notifier.close();
    }

    /// Makes the loop look at its handler's deadline again at once.
    pub fn wake(&self) {
        self.0.notifier.notify();
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.0.stop.load(Ordering::SeqCst)
    }
}

/// Receives on a [`Handler`]'s endpoints until stopped; see the module documentation.
pub struct Loop {
    shared: Arc<Shared>,
    waiter: Waiter,
    buf: Vec<u8>,
    ready: Vec<usize>,
}

impl fmt::Debug for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loop").finish_non_exhaustive()
    }
}

impl Loop {
    /// A loop with a receive buffer of [`MAX_DATAGRAM`] bytes.
    pub fn new() -> io::Result<Loop> {
        let (waiter, notifier) = platform::waker_pair()?;
        Ok(Loop {
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                notifier,
            }),
            waiter,
            buf: vec![0u8; MAX_DATAGRAM],
            ready: Vec::new(),
        })
    }

    /// A handle that stops or wakes this loop.
    pub fn waker(&self) -> Waker {
        Waker(Arc::clone(&self.shared))
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Receives and dispatches until [`Waker::stop`]: `Ok` then, or the first error that ends
    /// it (a failed `poll`, an error [`Handler::recv_error`] returns, [`shut_down_error`]).
    pub fn run<H: Handler + ?Sized>(&mut self, handler: &mut H) -> io::Result<()> {
        loop {
            if self.stopped() {
                return Ok(());
            }
            let now = Instant::now();
            let deadline = handler.deadline();
            if deadline.is_some_and(|d| d <= now) {
                handler.timer(now);
                continue;
            }
            let busy = handler.busy_until().is_some_and(|until| until > now);
            let wait = if busy {
                Duration::ZERO
            } else {
                deadline.map_or(TICK, |d| (d - now).min(TICK))
            };
            if !self.wait(handler, wait)? {
                return Ok(());
            }
            for i in 0..self.ready.len() {
                let index = self.ready[i];
                self.drain(handler, index)?;
                if self.stopped() {
                    return Ok(());
                }
            }
        }
    }

    /// Waits up to `wait` for a datagram on the endpoints or a wake-up (see
    /// [`platform`]), leaving the indexes of the endpoints to receive from in
    /// `self.ready`; false when stopped.
    fn wait<H: Handler + ?Sized>(&mut self, handler: &H, wait: Duration) -> io::Result<bool> {
        let sockets = handler.endpoints().iter().map(Endpoint::socket);
        let woke = self.waiter.wait(sockets, wait, &mut self.ready)?;
        if (woke.notified || woke.hung_up) && self.stopped() {
            return Ok(false);
        }
        if woke.hung_up {
            // Shut down (a receive without waiting then says "nothing yet" for ever).
            return Err(shut_down_error());
        }
        Ok(true)
    }

    /// Takes up to [`BURST`] datagrams from one endpoint.
    fn drain<H: Handler + ?Sized>(&mut self, handler: &mut H, index: usize) -> io::Result<()> {
        for _ in 0..BURST {
            let Some(endpoint) = handler.endpoints().get(index) else {
                return Ok(());
            };
            match endpoint.try_recv_from(&mut self.buf) {
                Ok(Some((n, from))) => {
                    handler.datagram(index, &self.buf[..n], from, Instant::now())
                }
                Ok(None) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A shut-down socket during stop is how the stop was asked for elsewhere.
                Err(_) if self.stopped() => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Err(e),
                Err(e) => handler.recv_error(index, e, Instant::now())?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Endpoint {
        Endpoint::bind("127.0.0.1:0".parse().unwrap(), &Options::default()).unwrap()
    }

    /// Counts what arrives on its endpoints and stops after `until` datagrams.
    struct Counter {
        endpoints: Vec<Endpoint>,
        got: Vec<(usize, Vec<u8>)>,
        until: usize,
        waker: Waker,
        timers: usize,
        deadline: Option<Instant>,
    }

    impl Handler for Counter {
        fn endpoints(&self) -> &[Endpoint] {
            &self.endpoints
        }
        fn datagram(&mut self, index: usize, data: &[u8], _from: SocketAddr, _now: Instant) {
            self.got.push((index, data.to_vec()));
            if self.got.len() == self.until {
                self.waker.stop();
            }
        }
        fn deadline(&self) -> Option<Instant> {
            self.deadline
        }
        fn timer(&mut self, _now: Instant) {
            self.timers += 1;
            self.deadline = None;
            self.waker.stop();
        }
    }

    fn counter(endpoints: Vec<Endpoint>, until: usize, l: &Loop) -> Counter {
        Counter {
            endpoints,
            got: Vec::new(),
            until,
            waker: l.waker(),
            timers: 0,
            deadline: None,
        }
    }

    #[test]
    fn receives_on_every_endpoint() {
        let (a, b) = (local(), local());
        let (aa, ba) = (a.local_addr(), b.local_addr());
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"one", aa).unwrap();
        sender.send_to(b"two", ba).unwrap();
        let mut l = Loop::new().unwrap();
        let mut h = counter(vec![a, b], 2, &l);
        l.run(&mut h).unwrap();
        h.got.sort();
        assert_eq!(h.got, vec![(0, b"one".to_vec()), (1, b"two".to_vec())]);
    }

    #[test]
    fn the_deadline_runs_the_timer_without_traffic() {
        let mut l = Loop::new().unwrap();
        let mut h = counter(vec![local()], 1, &l);
        let started = Instant::now();
        h.deadline = Some(started + Duration::from_millis(30));
        l.run(&mut h).unwrap();
        assert_eq!(h.timers, 1);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn stop_from_another_thread_wakes_a_sleeping_loop() {
        let mut l = Loop::new().unwrap();
        let waker = l.waker();
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let mut h = counter(vec![local()], usize::MAX, &l);
            entered_tx.send(()).unwrap();
            // A deadline far away: only the stop can end this run.
            h.deadline = Some(Instant::now() + Duration::from_secs(3600));
            l.run(&mut h)
        });
        entered_rx.recv().unwrap();
        waker.stop();
        t.join().unwrap().unwrap();
        assert!(waker.is_stopped());
    }

    /// `poll` reports the hang-up, on both paths (a non-blocking receive on a shut-down
    /// socket only says "nothing yet" on Linux; before the portable path polled, it waited
    /// for ever here). Windows reports the shutdown to the receive instead: next test.
    #[cfg(unix)]
    #[test]
    fn a_shutdown_without_stop_ends_the_loop_with_an_error() {
        let e = local();
        let other = e.socket().try_clone().unwrap();
        socket2::SockRef::from(&other)
            .shutdown(std::net::Shutdown::Both)
            .ok();
        let mut l = Loop::new().unwrap();
        let mut h = counter(vec![e], usize::MAX, &l);
        let err = l.run(&mut h).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        assert!(h.got.is_empty());
    }

    #[test]
    fn a_receive_without_a_sender_ends_the_loop_with_an_error() {
        // What a receive says where the system reports a shutdown to it (see the platform
        // module), injected ahead of a real datagram: that datagram is not taken for data.
        let e = local();
        e.inject_recv_error(shut_down_error());
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"late", e.local_addr()).unwrap();
        let mut l = Loop::new().unwrap();
        let mut h = counter(vec![e], usize::MAX, &l);
        let err = l.run(&mut h).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        assert!(h.got.is_empty());
    }

    #[test]
    fn the_tap_sees_every_datagram_in_and_out() {
        type Seen = Vec<(Direction, SocketAddr, Vec<u8>)>;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let record = Arc::clone(&seen);
        let mut e = local();
        e.set_tap(Some(Arc::new(move |d: &Datagram<'_>| {
            record
                .lock()
                .unwrap()
                .push((d.direction, d.peer, d.payload.to_vec()))
        })));
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let pa = peer.local_addr().unwrap();
        peer.send_to(b"in", e.local_addr()).unwrap();
        e.send_to(b"out", pa).unwrap();
        let mut l = Loop::new().unwrap();
        let mut h = counter(vec![e], 1, &l);
        l.run(&mut h).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (Direction::Out, pa, b"out".to_vec()),
                (Direction::In, pa, b"in".to_vec())
            ]
        );
    }

    #[test]
    fn dual_stack_shows_ipv4_peers_as_ipv4() {
        let Ok(e) = Endpoint::bind("[::]:0".parse().unwrap(), &Options::default()) else {
            return; // no IPv6 here: nothing dual-stack to test
        };
        let port = e.local_addr().port();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"v4", ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 8];
        let deadline = Instant::now() + Duration::from_secs(5);
        let got = loop {
            if let Some(got) = e.try_recv_from(&mut buf).unwrap() {
                break got;
            }
            assert!(Instant::now() < deadline, "nothing arrived");
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(got, (2, peer.local_addr().unwrap()));
        e.send_to(b"back", got.1).unwrap();
        assert_eq!(peer.recv(&mut buf).unwrap(), 4);
    }
}
