//! A datagram socket with the timeout rules of Python's `socket` module.
//!
//! As in CPython's `socket` module, the OS socket always stays non-blocking and every wait goes
//! through `poll(2)` (`WSAPoll` on Windows; on the portable path also ended every 20 ms to look
//! at `close()`, see [`platform`]): a call that has data ready costs one syscall, and a call
//! that waits does so for at most [`WAIT_SLICE`] at a time, then runs a caller-supplied check
//! (the Python binding checks for Ctrl-C there) and looks at its own deadline. The timeout is
//! the user's setting alone: no OS socket option changes with it, so threads sharing a socket
//! cannot leave it in a mode another thread's call does not expect.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::platform::{self, errno, Interest, SocketWait};

/// The longest a blocking call waits before it looks at its deadline and interrupt check.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

/// A check run between waiting slices: returning an error ends the call with that error.
pub type Check<'a> = &'a mut dyn FnMut() -> io::Result<()>;

/// The address families udplab speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &SocketAddr) -> Family {
        match addr {
            SocketAddr::V4(_) => Family::V4,
            SocketAddr::V6(_) => Family::V6,
        }
    }

    /// The unspecified address of the family (what `''` means in Python's address tuples).
    pub fn unspecified(self) -> IpAddr {
        match self {
            Family::V4 => Ipv4Addr::UNSPECIFIED.into(),
            Family::V6 => Ipv6Addr::UNSPECIFIED.into(),
        }
    }

    fn domain(self) -> Domain {
        match self {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        }
    }
}

/// Why a host name did not give an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// No address at all for the name.
    NotFound {
        /// The name looked up.
        host: String,
    },
    /// Addresses exist, but none of the socket's family.
    WrongFamily {
        /// The name looked up.
        host: String,
        /// The family that was asked for.
        family: Family,
    },
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::NotFound { host } => write!(f, "{host:?}: name or service not known"),
            ResolveError::WrongFamily { host, family } => {
                write!(f, "{host:?}: no address of family {family:?}")
            }
        }
    }
}

impl std::error::Error for ResolveError {}

/// Turns a host and port into an address of `family`, as Python does for address tuples:
/// `""` is the unspecified address, `"<broadcast>"` the IPv4 broadcast address, literals are
/// parsed without a lookup, and anything else is resolved by the system resolver.
pub fn resolve(host: &str, port: u16, family: Family) -> Result<SocketAddr, ResolveError> {
    let candidates: Vec<SocketAddr> = match literal(host, family) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => (host, port)
            .to_socket_addrs()
            .map_err(|_| ResolveError::NotFound {
                host: host.to_owned(),
            })?
            .collect(),
    };
    if candidates.is_empty() {
        return Err(ResolveError::NotFound {
            host: host.to_owned(),
        });
    }
    candidates
        .into_iter()
        .find(|a| Family::of(a) == family)
        .ok_or_else(|| ResolveError::WrongFamily {
            host: host.to_owned(),
            family,
        })
}

/// Whether `host` needs no name lookup (so resolving it cannot block).
pub fn is_literal(host: &str) -> bool {
    literal(host, Family::V4).is_some() || literal(host, Family::V6).is_some()
}

fn literal(host: &str, family: Family) -> Option<IpAddr> {
    match host {
        "" => Some(family.unspecified()),
        "<broadcast>" if family == Family::V4 => Some(Ipv4Addr::BROADCAST.into()),
        _ => host.parse::<IpAddr>().ok(),
    }
}

/// Builds an IPv6 address with flow info and scope id, the 4-tuple form of Python's AF_INET6.
pub fn v6_with_scope(addr: SocketAddr, flowinfo: u32, scope_id: u32) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => SocketAddrV6::new(*a.ip(), a.port(), flowinfo, scope_id).into(),
        v4 => v4,
    }
}

/// The error of a call on a closed socket, as Python raises it: `EBADF` (Windows:
/// `WSAENOTSOCK`).
pub fn closed_error() -> io::Error {
    io::Error::from_raw_os_error(errno::EBADF)
}

/// The error of a receive woken without a sender while nobody closed the socket or stopped the
/// loop: the socket was shut down by another thread or a forked process that shares it.
pub fn shut_down_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the socket was shut down by another thread or process",
    )
}

/// The error of a call whose timeout ran out (Python's `TimeoutError('timed out')`).
pub fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// Receives one datagram like `std::net::UdpSocket::recv_from`, but a receive woken by a
/// `shutdown` of the socket (how [`UdpSocket::close`] and the chat server's `stop` wake a
/// blocked thread) comes back as `Ok((0, None))`: std asserts on the address-less result and
/// panics.
pub fn recv_from_raw(
    sock: &std::net::UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, Option<SocketAddr>)> {
    platform::recv_from(sock, buf)
}

/// When a wait of `timeout` from now ends: `None` (never) without a timeout, or for one past
/// what `Instant` can hold.
pub fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// How long to wait next: what is left until `deadline`, at most one [`WAIT_SLICE`]; the
/// [`timed_out`] error once it has passed.
pub fn next_wait(deadline: Option<Instant>) -> io::Result<Duration> {
    let Some(d) = deadline else {
        return Ok(WAIT_SLICE);
    };
    let left = d.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out());
    }
    Ok(left.min(WAIT_SLICE))
}

/// Marks "no timeout" in the atomic timeout fields.
const NONE: u64 = u64::MAX;

fn to_nanos(d: Option<Duration>) -> u64 {
    d.map_or(NONE, |d| u64::try_from(d.as_nanos()).unwrap_or(NONE - 1))
}

fn from_nanos(n: u64) -> Option<Duration> {
    (n != NONE).then(|| Duration::from_nanos(n))
}

/// A UDP socket that can be shared between threads, closed from any of them, and whose blocking
/// calls never wait longer than [`WAIT_SLICE`] without running their check.
#[derive(Debug)]
pub struct UdpSocket {
    sock: RwLock<Option<std::net::UdpSocket>>,
    family: Family,
    /// The user's timeout: `NONE` blocks forever, 0 is non-blocking.
    timeout: AtomicU64,
    /// Set by `close` before it wakes blocked calls, so they report `EBADF`, not data.
    closing: AtomicBool,
    /// The process that made the socket: only there does `close` shut it down to wake blocked
    /// calls (a forked child shares the socket with its parent, but not its threads).
    owner: u32,
}

impl UdpSocket {
    /// Creates an unbound socket of `family`, blocking with no timeout.
    pub fn new(family: Family) -> io::Result<UdpSocket> {
        let sock = Socket::new(family.domain(), Type::DGRAM, Some(Protocol::UDP))?;
        if family == Family::V6 {
            // Python's default on Linux too: an AF_INET6 socket also takes IPv4-mapped traffic.
            sock.set_only_v6(false)?;
        }
        sock.set_nonblocking(true)?;
        Ok(UdpSocket {
            sock: RwLock::new(Some(sock.into())),
            family,
            timeout: AtomicU64::new(NONE),
            closing: AtomicBool::new(false),
            owner: std::process::id(),
        })
    }

    /// Creates a socket of the address's family and binds it.
    pub fn bind_new(addr: SocketAddr) -> io::Result<UdpSocket> {
        let sock = UdpSocket::new(Family::of(&addr))?;
        sock.bind(addr)?;
        Ok(sock)
    }

    /// The socket's address family.
    pub fn family(&self) -> Family {
        self.family
    }

    fn get(&self) -> io::Result<RwLockReadGuard<'_, Option<std::net::UdpSocket>>> {
        let guard = self.sock.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(closed_error());
        }
        Ok(guard)
    }

    /// Runs `f` on the open OS socket, or fails with `EBADF` once closed.
    pub fn with<T>(&self, f: impl FnOnce(&std::net::UdpSocket) -> io::Result<T>) -> io::Result<T> {
        let guard = self.get()?;
        f(guard.as_ref().ok_or_else(closed_error)?)
    }

    /// Binds to a local address.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.check_family(&addr)?;
        self.with(|s| SockRef::from(s).bind(&addr.into()))
    }

    /// Sets the default destination and accepts datagrams only from it.
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        self.check_family(&addr)?;
        self.with(|s| s.connect(addr))
    }

    fn check_family(&self, addr: &SocketAddr) -> io::Result<()> {
        if Family::of(addr) == self.family {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(errno::EAFNOSUPPORT))
        }
    }

    /// The bound address (the unspecified address and port 0 before the socket is bound).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with(|s| s.local_addr())
    }

    /// The connected peer, or `ENOTCONN`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.with(|s| s.peer_addr())
    }

    /// The OS file descriptor (Windows: the socket handle), or `None` once closed.
    pub fn fileno(&self) -> Option<i64> {
        let guard = self.sock.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(platform::fileno)
    }

    /// Closes the socket; later calls fail with `EBADF`. Closing twice is fine. A call blocked
    /// in another thread is woken and fails with `EBADF` too. In a forked child, only the
    /// child's copy is closed, as Python's `close()` does: the parent's socket goes on.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        // Linux wakes a receive blocked on a shut-down UDP socket (it returns 0); the shutdown
        // itself reports ENOTCONN for an unconnected socket, which changes nothing here. (The
        // portable path's waits also look at `closing` every 20 ms.) A shutdown acts on
        // the socket every process holding it shares: from a forked child it would leave the
        // parent's receives finding a hang-up and no datagram, spinning until their timeout.
        if std::process::id() == self.owner {
            let _ = self.with(|s| SockRef::from(s).shutdown(std::net::Shutdown::Both));
        }
        let mut guard = self.sock.write().unwrap_or_else(|e| e.into_inner());
        guard.take();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.sock
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// `None` blocks forever, zero never blocks, anything else fails with [`timed_out`] after
    /// that long. Negative or NaN values are the caller's to refuse.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.timeout.store(to_nanos(timeout), Ordering::Relaxed);
    }

    /// The timeout set by [`set_timeout`](Self::set_timeout).
    pub fn timeout(&self) -> Option<Duration> {
        from_nanos(self.timeout.load(Ordering::Relaxed))
    }

    /// Sets the kernel's receive buffer size (`SO_RCVBUF`; Linux doubles and caps the value).
    pub fn set_recv_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.with(|s| SockRef::from(s).set_recv_buffer_size(bytes))
    }

    /// The kernel's receive buffer size.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.with(|s| SockRef::from(s).recv_buffer_size())
    }

    /// Receives one datagram into `buf`; a longer datagram is truncated to `buf.len()` and the
    /// rest discarded, as with Python's `recvfrom(bufsize)`.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from_checked(buf, &mut || Ok(()))
    }

    /// [`recv_from`](Self::recv_from), running `check` whenever the call has waited a slice or
    /// was interrupted by a signal.
    pub fn recv_from_checked(
        &self,
        buf: &mut [u8],
        check: Check<'_>,
    ) -> io::Result<(usize, SocketAddr)> {
        self.wait_for(Interest::Receive, check, |s| {
            match recv_from_raw(s, buf)? {
                (n, Some(from)) => Ok((n, from)),
                // Only a wake-up by `close` has no sender; the closing check turns it into EBADF.
                (_, None) => Err(io::ErrorKind::Interrupted.into()),
            }
        })
    }

    /// Receives from the connected peer.
    pub fn recv_checked(&self, buf: &mut [u8], check: Check<'_>) -> io::Result<usize> {
        self.wait_for(Interest::Receive, check, |s| s.recv(buf))
    }

    /// Sends one datagram to `addr`.
    pub fn send_to(&self, data: &[u8], addr: SocketAddr) -> io::Result<usize> {
        self.send_to_checked(data, addr, &mut || Ok(()))
    }

    /// [`send_to`](Self::send_to) with a check while waiting for buffer space.
    pub fn send_to_checked(
        &self,
        data: &[u8],
        addr: SocketAddr,
        check: Check<'_>,
    ) -> io::Result<usize> {
        self.check_family(&addr)?;
        self.wait_for(Interest::Send, check, |s| s.send_to(data, addr))
    }

    /// Sends one datagram to the connected peer (`EDESTADDRREQ` when not connected).
    pub fn send_checked(&self, data: &[u8], check: Check<'_>) -> io::Result<usize> {
        self.wait_for(Interest::Send, check, |s| s.send(data))
    }

    /// Receives up to `max` datagrams, one `recvfrom` each, handing every one to `each` (its
    /// bytes, truncated to `buf.len()`, and its sender): how an event loop takes what is queued
    /// in one call. Only the first receive waits, up to `wait` (`None`: until a datagram comes
    /// or the socket is closed; zero: not at all), whatever the socket's own timeout says.
    ///
    /// Returns how many were received and the error that ended the batch, if one did: a
    /// refusal the system reports for an earlier datagram (`ECONNREFUSED`, once), `EBADF` once
    /// closed, the check's error. Finding nothing (more) queued, or waiting `wait` in vain, is
    /// no error. An error comes after the datagrams received before it, so none is lost.
    pub fn recv_many(
        &self,
        max: usize,
        wait: Option<Duration>,
        buf: &mut [u8],
        check: Check<'_>,
        mut each: impl FnMut(&[u8], SocketAddr),
    ) -> (usize, Option<io::Error>) {
        let mut received = 0;
        while received < max {
            let within = if received == 0 {
                wait
            } else {
                Some(Duration::ZERO)
            };
            // A receive without a sender is a shutdown: `close`'s (the closing check makes it
            // EBADF) or another process's; retried, it would spin, as it never waits.
            let got =
                self.wait_within(
                    within,
                    Interest::Receive,
                    &mut *check,
                    |s| match recv_from_raw(s, buf)? {
                        (n, Some(from)) => Ok((n, from)),
                        (_, None) => Err(shut_down_error()),
                    },
                );
            match got {
                Ok((n, from)) => {
                    each(&buf[..n.min(buf.len())], from);
                    received += 1;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return (received, Some(e)),
            }
        }
        (received, None)
    }

    /// The one waiting loop: tries `op`, and while the kernel says "would block" waits for
    /// readiness a slice at a time (running `check` after each full slice or signal) until the
    /// user's deadline. A timeout of zero never waits.
    fn wait_for<T>(
        &self,
        interest: Interest,
        check: Check<'_>,
        op: impl FnMut(&std::net::UdpSocket) -> io::Result<T>,
    ) -> io::Result<T> {
        self.wait_within(self.timeout(), interest, check, op)
    }

    /// [`wait_for`](Self::wait_for) with a timeout of its own instead of the socket's.
    fn wait_within<T>(
        &self,
        timeout: Option<Duration>,
        interest: Interest,
        check: Check<'_>,
        mut op: impl FnMut(&std::net::UdpSocket) -> io::Result<T>,
    ) -> io::Result<T> {
        let deadline = deadline(timeout);
        let mut waiting = SocketWait::new();
        loop {
            let waited = self.with(|s| {
                let result = op(s);
                if self.closing.load(Ordering::Relaxed) {
                    return Err(closed_error());
                }
                match result {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if timeout == Some(Duration::ZERO) {
                            return Err(e);
                        }
                        let wait = next_wait(deadline)?;
                        waiting.wait(s, interest, wait, &self.closing).map(Err)
                    }
                    other => other.map(Ok),
                }
            });
            match waited {
                Ok(Ok(done)) => return Ok(done),
                // Ready: try again at once. A slice without readiness, or a signal: check first.
                Ok(Err(true)) => {}
                Ok(Err(false)) => check()?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => check()?,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(family: Family) -> UdpSocket {
        let ip: IpAddr = match family {
            Family::V4 => Ipv4Addr::LOCALHOST.into(),
            Family::V6 => Ipv6Addr::LOCALHOST.into(),
        };
        UdpSocket::bind_new(SocketAddr::new(ip, 0)).expect("bind loopback")
    }

    #[test]
    fn resolve_follows_python_rules() {
        assert_eq!(
            resolve("", 5, Family::V4).unwrap(),
            "0.0.0.0:5".parse().unwrap()
        );
        assert_eq!(
            resolve("", 5, Family::V6).unwrap(),
            "[::]:5".parse().unwrap()
        );
        assert_eq!(
            resolve("<broadcast>", 1, Family::V4).unwrap(),
            "255.255.255.255:1".parse().unwrap()
        );
        assert_eq!(
            resolve("127.0.0.1", 80, Family::V4).unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert!(matches!(
            resolve("::1", 80, Family::V4),
            Err(ResolveError::WrongFamily { .. })
        ));
        assert!(matches!(
            resolve("no-such-host.invalid", 80, Family::V4),
            Err(ResolveError::NotFound { .. })
        ));
        assert_eq!(
            resolve("localhost", 7, Family::V4).unwrap(),
            "127.0.0.1:7".parse().unwrap()
        );
    }

    #[test]
    fn round_trip_and_truncation() {
        let a = local(Family::V4);
        let b = local(Family::V4);
        let b_addr = b.local_addr().unwrap();
        a.send_to(b"hello world", b_addr).unwrap();
        let mut buf = [0u8; 5];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((n, &buf[..n]), (5, &b"hello"[..]));
        assert_eq!(from, a.local_addr().unwrap());
        // The truncated tail was discarded with its datagram.
        b.set_timeout(Some(Duration::ZERO));
        let err = b.recv_from(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn timeout_fires_and_check_runs() {
        let a = local(Family::V4);
        a.set_timeout(Some(Duration::from_millis(250)));
        let mut checks = 0;
        let started = Instant::now();
        let err = a
            .recv_from_checked(&mut [0u8; 8], &mut || {
                checks += 1;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(checks >= 2, "check ran {checks} times");
    }

    #[test]
    fn check_error_ends_a_blocking_call() {
        let a = local(Family::V4);
        let err = a
            .recv_from_checked(&mut [0u8; 8], &mut || Err(io::Error::other("stop")))
            .unwrap_err();
        assert_eq!(err.to_string(), "stop");
    }

    #[test]
    fn send_unconnected_and_closed_errors() {
        let a = local(Family::V4);
        let err = a.send_checked(b"x", &mut || Ok(())).unwrap_err();
        #[cfg(unix)]
        assert_eq!(err.raw_os_error(), Some(libc::EDESTADDRREQ));
        a.close();
        a.close();
        assert!(a.is_closed());
        assert_eq!(
            a.local_addr().unwrap_err().raw_os_error(),
            Some(errno::EBADF)
        );
        assert_eq!(a.fileno(), None);
    }

    #[test]
    fn recv_many_takes_what_is_queued_and_waits_only_for_the_first() {
        let a = local(Family::V4);
        let b = local(Family::V4);
        let b_addr = b.local_addr().unwrap();
        let mut buf = [0u8; 4];
        let mut got = Vec::new();
        let mut none = || Ok(());
        // Nothing queued and no wait: nothing, and no error.
        let (n, err) = b.recv_many(8, Some(Duration::ZERO), &mut buf, &mut none, |_, _| {});
        assert!(n == 0 && err.is_none());
        for word in [&b"one"[..], b"two", b"three"] {
            a.send_to(word, b_addr).unwrap();
        }
        // The first waits (it may not have arrived yet); two of three fit `max`, truncated.
        let (n, err) = b.recv_many(2, None, &mut buf, &mut none, |d, from| {
            got.push((d.to_vec(), from))
        });
        assert!(n == 2 && err.is_none(), "{n} {err:?}");
        let from = a.local_addr().unwrap();
        assert_eq!(got, [(b"one".to_vec(), from), (b"two".to_vec(), from)]);
        let (n, _) = b.recv_many(
            8,
            Some(Duration::from_secs(5)),
            &mut buf,
            &mut none,
            |d, _| assert_eq!(d, b"thre"),
        );
        assert_eq!(n, 1);
        // A wait in vain ends without an error, after about `wait`.
        let started = Instant::now();
        let (n, err) = b.recv_many(
            8,
            Some(Duration::from_millis(30)),
            &mut buf,
            &mut none,
            |_, _| {},
        );
        assert!(n == 0 && err.is_none());
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn recv_many_reports_a_refusal_once_after_the_datagrams_before_it() {
        let dead = local(Family::V4);
        let dead_addr = dead.local_addr().unwrap();
        dead.close();
        let a = local(Family::V4);
        a.connect(dead_addr).unwrap();
        a.send_to(b"x", dead_addr).unwrap();
        let mut buf = [0u8; 8];
        let mut none = || Ok(());
        let (n, err) = a.recv_many(
            8,
            Some(Duration::from_secs(5)),
            &mut buf,
            &mut none,
            |_, _| {},
        );
        assert_eq!(n, 0);
        assert_eq!(err.unwrap().kind(), io::ErrorKind::ConnectionRefused);
        // Reported once: the socket goes on.
        let (n, err) = a.recv_many(8, Some(Duration::ZERO), &mut buf, &mut none, |_, _| {});
        assert!(n == 0 && err.is_none(), "{err:?}");
        a.close();
        let (_, err) = a.recv_many(8, None, &mut buf, &mut none, |_, _| {});
        assert_eq!(err.unwrap().raw_os_error(), Some(errno::EBADF));
    }

    #[test]
    fn bind_busy_port_is_eaddrinuse() {
        let a = local(Family::V4);
        let err = UdpSocket::bind_new(a.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn close_from_another_thread_ends_a_blocked_receive() {
        let a = std::sync::Arc::new(local(Family::V4));
        let reader = std::sync::Arc::clone(&a);
        let (waited_tx, waited_rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            // The check runs only after a whole slice of waiting: it proves the reader blocked.
            let mut check = || {
                let _ = waited_tx.send(());
                Ok(())
            };
            reader.recv_from_checked(&mut [0u8; 8], &mut check)
        });
        waited_rx.recv().unwrap();
        a.close();
        let err = t.join().unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(errno::EBADF));
    }

    #[test]
    fn ipv6_round_trip_when_available() {
        let Ok(a) = UdpSocket::bind_new("[::1]:0".parse().unwrap()) else {
            return; // no IPv6 loopback on this machine
        };
        let b = local(Family::V6);
        b.send_to(b"six", a.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"six");
        assert_eq!(from, b.local_addr().unwrap());
    }

    #[test]
    fn wrong_family_is_refused() {
        let a = local(Family::V4);
        let err = a.send_to(b"x", "[::1]:9".parse().unwrap()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(errno::EAFNOSUPPORT));
    }
}
