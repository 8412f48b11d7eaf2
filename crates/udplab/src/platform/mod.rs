//! Everything the core asks of the operating system beyond what std and socket2 offer on every
//! system, in one place, with two implementations. The rest of the core does not know which one
//! it runs on.
//!
//! - Both paths wait the same way (`readiness.rs`): one `poll` over all the sockets a loop
//!   receives on and its wake-up channel, which a [`Waker`](crate::endpoint::Waker) writes
//!   to; the thread sleeps until a socket is readable, a wake-up comes or the time is up, and
//!   a socket shut down by someone else shows as a hang-up (`POLLRDHUP`/`POLLHUP`). It is
//!   rustix's safe wrapper of `poll(2)` (as `ppoll`, so timeouts are exact, where the system
//!   has it) and, on Windows, of `WSAPoll`.
//! - The **Unix path** (`unix.rs`, the default on Linux and macOS): the wake-up channel is a
//!   Unix datagram socket pair. An endpoint's socket stays blocking for sends (with
//!   `SO_SNDTIMEO`) and receives with `MSG_DONTWAIT`. On Linux, broadcasts go out in
//!   `sendmmsg(2)` batches and IPv4 ones without an IP identification number
//!   (`IP_MTU_DISCOVER`, see [`fanout`](crate::fanout)). The system calls go through rustix's
//!   safe wrappers.
//! - The **portable path** (`portable.rs`) uses std and socket2 for the sockets, and rustix
//!   only for the wait, so it builds where they do (Windows; other systems). It is the one
//!   used where `cfg(unix)` does not hold, and the cargo feature `portable` forces it on Linux
//!   too, so that it is tested here (`cargo test --features portable`). The wake-up channel is
//!   a pair of UDP sockets on the loopback address, connected to each other. Every socket is
//!   non-blocking. A call of the Python-style [`socket`](crate::socket) that would block polls
//!   its socket, at most 20 ms at a time so that it sees `close()` from another thread (a
//!   shutdown ends a `poll` on Linux; nothing says it ends a `WSAPoll`), and runs its
//!   interrupt check once per slice, as on the Unix path. A send that finds the send buffer
//!   full retries with short sleeps (50 µs, doubling up to 1 ms) for up to
//!   [`SEND_WAIT`](crate::timing::SEND_WAIT), then fails with `WouldBlock` as the Unix path's
//!   timed-out send does. Broadcasts send one datagram per client, and IPv4 datagrams go out
//!   as the system sends them (no `IP_MTU_DISCOVER`).
//!
//! What the portable path costs: the same as the Unix path while idle, one `poll` per wake-up
//! whatever the number of sockets (`benches/idle.py`, in BENCHMARKS.md: an idle chat server
//! 0.03 % of a core, a link with 1,000 mapped clients 0.6 %, as on the Unix path). A blocked
//! `recv` of the Python-style socket wakes 50 times a second to look at `close()`, 0.1-0.2 %
//! of a core. Before it polled (until issue 20), it tried a receive on every socket in rounds
//! with sleeps of up to 1 ms between them: a datagram arrived up to 1 ms late, and an idle
//! link with 1,000 clients cost 24-28 % of a core. On Windows, `WSAPoll` rounds timeouts up to
//! whole milliseconds, so a loop's timer may fire up to 1 ms late, and a socket shut down by
//! another thread or process is also noticed where the receive reports it (`WSAESHUTDOWN`).
//!
//! Per system, not per path: the OS error codes the core makes and compares
//! (`io::Error::raw_os_error` gives Windows Sockets codes on Windows, errno values elsewhere),
//! the socket constants Python's `socket` module uses, and a socket's number (`fileno`).
//!
//! Windows differs for UDP in two more ways the receive loops already survive (see
//! [`server`](crate::server)): an ICMP "port unreachable" makes the next receive on an
//! unconnected socket fail with `WSAECONNRESET`, and a datagram longer than the buffer fails
//! with `WSAEMSGSIZE` instead of being truncated; both are counted and skipped.

use std::net::UdpSocket;

#[cfg(any(not(unix), feature = "portable"))]
mod portable;
mod readiness;
#[cfg(all(unix, not(feature = "portable")))]
mod unix;

#[cfg(any(not(unix), feature = "portable"))]
use portable as path;
#[cfg(all(unix, not(feature = "portable")))]
use unix as path;

pub(crate) use path::{
    prepare_endpoint, recv_from, recv_now, send, send_to, waker_pair, Notifier, SocketWait, Waiter,
};

#[cfg(all(test, target_os = "linux", not(feature = "portable")))]
pub(crate) use unix::linux::dont_fragment_is_set;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
pub(crate) use unix::linux::{dont_fragment, Batch};
#[cfg(all(test, not(all(target_os = "linux", not(feature = "portable")))))]
pub(crate) use without::dont_fragment_is_set;
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
pub(crate) use without::{dont_fragment, Batch};

#[cfg(test)]
/// Whether broadcasts can ask for "don't fragment" and go out in `sendmmsg` batches (Linux's
/// Unix path).
pub(crate) const DONT_FRAGMENT: bool = cfg!(all(target_os = "linux", not(feature = "portable")));

/// Whether this build runs the portable path (Python sees it as `udplab._core._PORTABLE`).
pub const PORTABLE: bool = cfg!(any(not(unix), feature = "portable"));

/// Whether `io::Error::raw_os_error` gives Windows error codes (else errno values).
pub const WINDOWS_ERROR_CODES: bool = cfg!(windows);

/// What a socket wait waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    /// A datagram to receive.
    Receive,
    /// Room in the send buffer.
    Send,
}

/// What a [`Waiter`] saw besides readable sockets.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Woke {
    /// The [`Notifier`] was notified (a wake-up or a stop).
    pub notified: bool,
    /// A socket was shut down (the Unix path's hang-up).
    pub hung_up: bool,
}

/// OS error codes as `io::Error::raw_os_error` reports them on this system.
pub mod errno {
    #[cfg(all(unix, feature = "portable"))]
    pub use libc::ESHUTDOWN;
    #[cfg(unix)]
    pub use libc::{EACCES, EAFNOSUPPORT, EBADF, EMSGSIZE};

    // Windows Sockets codes (winerror.h). A call on a closed socket: Python's socket module
    // reports what Winsock says for an invalid handle, WSAENOTSOCK, where Unix says EBADF.
    /// WSAEACCES: permission denied (a broadcast without `SO_BROADCAST`).
    #[cfg(windows)]
    pub const EACCES: i32 = 10013;
    /// WSAEAFNOSUPPORT: an address of the wrong family for the socket.
    #[cfg(windows)]
    pub const EAFNOSUPPORT: i32 = 10047;
    /// WSAENOTSOCK: a call on a closed socket (Unix says EBADF).
    #[cfg(windows)]
    pub const EBADF: i32 = 10038;
    /// WSAEMSGSIZE: a datagram too long to send, or longer than the receive buffer.
    #[cfg(windows)]
    pub const EMSGSIZE: i32 = 10040;
    /// WSAESHUTDOWN: a call on a socket that was shut down.
    #[cfg(windows)]
    pub const ESHUTDOWN: i32 = 10058;
}

/// The numbers of Python's `socket` constants on this system (the Python layer's arguments).
pub mod consts {
    #[cfg(unix)]
    pub use libc::{AF_INET, AF_INET6, IPPROTO_UDP, SOCK_DGRAM};
    /// `socket.AF_INET` (IPv4).
    #[cfg(windows)]
    pub const AF_INET: i32 = 2;
    /// `socket.AF_INET6` (IPv6).
    #[cfg(windows)]
    pub const AF_INET6: i32 = 23;
    /// `socket.SOCK_DGRAM` (datagrams).
    #[cfg(windows)]
    pub const SOCK_DGRAM: i32 = 2;
    /// `socket.IPPROTO_UDP`.
    #[cfg(windows)]
    pub const IPPROTO_UDP: i32 = 17;

    /// Flags Linux lets `socket()` take in its type argument (`socket.SOCK_NONBLOCK`,
    /// `socket.SOCK_CLOEXEC`); elsewhere Python has no such constants.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub use libc::{SOCK_CLOEXEC, SOCK_NONBLOCK};
    /// No such flag here: nothing to strip from a type argument.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub const SOCK_NONBLOCK: i32 = 0;
    /// No such flag here: nothing to strip from a type argument.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub const SOCK_CLOEXEC: i32 = 0;
}

/// The socket's number, as Python's `fileno()` gives it: a file descriptor on Unix, a
/// `SOCKET` handle on Windows.
pub(crate) fn fileno(socket: &UdpSocket) -> i64 {
    #[cfg(unix)]
    let n = std::os::fd::AsRawFd::as_raw_fd(socket).into();
    #[cfg(windows)]
    let n = std::os::windows::io::AsRawSocket::as_raw_socket(socket) as i64;
    n
}

/// How many file descriptors the process may still open after `socket`, just made, and how
/// many it may have (the soft `RLIMIT_NOFILE`): Unix gives a new descriptor the lowest free
/// number, so every number below it is in use. `None` where there is no such limit (Windows,
/// or a limit of "unlimited").
pub(crate) fn descriptors_left(socket: &UdpSocket) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current?;
        let used = fileno(socket).unsigned_abs() + 1;
        Some((limit.saturating_sub(used), limit))
    }
    #[cfg(not(unix))]
    {
        let _ = socket;
        None
    }
}

/// Where there is no batched send and no "don't fragment" option to set.
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
mod without {
    use std::io;
    use std::net::{SocketAddr, UdpSocket};

    /// No batched send here: [`Batch::new`] gives none, so nothing ever calls `send`.
    pub(crate) enum Batch {}

    impl Batch {
        pub(crate) fn new(_capacity: usize) -> Option<Batch> {
            None
        }

        pub(crate) fn send(
            &mut self,
            _: &UdpSocket,
            _: &[u8],
            _: impl Iterator<Item = SocketAddr>,
            _: bool,
        ) -> io::Result<usize> {
            match *self {}
        }
    }

    /// Datagrams go out as the system sends them.
    pub(crate) fn dont_fragment(_: &UdpSocket, _: bool) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    #[cfg(test)]
    pub(crate) fn dont_fragment_is_set(_: &UdpSocket) -> io::Result<bool> {
        Ok(false)
    }
}
