//! The Unix path: `poll(2)`, a Unix datagram socket pair as the wake-up channel, receives with
//! `MSG_DONTWAIT`, and on Linux `sendmmsg(2)` and `IP_MTU_DISCOVER`; see the module above.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rustix::net::RecvFlags;

use super::{readiness, Interest};
use crate::timing::SEND_WAIT;

/// An endpoint's socket: blocking for sends, at most [`SEND_WAIT`] per call (`SO_SNDTIMEO`);
/// receives do not wait ([`recv_now`]).
pub(crate) fn prepare_endpoint(socket: &UdpSocket) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    socket.set_write_timeout(Some(SEND_WAIT))
}

/// Sends one datagram to `to`; `wait`: for buffer space, at most [`SEND_WAIT`].
pub(crate) fn send_to(
    socket: &UdpSocket,
    payload: &[u8],
    to: SocketAddr,
    wait: bool,
) -> io::Result<usize> {
    if wait {
        socket.send_to(payload, to)
    } else {
        socket2::SockRef::from(socket).send_to_with_flags(payload, &to.into(), libc::MSG_DONTWAIT)
    }
}

/// Sends one datagram to the connected peer; `wait`: for buffer space, at most [`SEND_WAIT`].
pub(crate) fn send(socket: &UdpSocket, payload: &[u8], wait: bool) -> io::Result<usize> {
    if wait {
        socket.send(payload)
    } else {
        socket2::SockRef::from(socket).send_with_flags(payload, libc::MSG_DONTWAIT)
    }
}

/// Receives one datagram if one is queued (`MSG_DONTWAIT`): `Ok(None)` when there is none; a
/// sender of `None` when the receive came back without one (a shut-down socket).
pub(crate) fn recv_now(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Option<SocketAddr>)>> {
    match rustix::net::recvfrom(socket, buf, RecvFlags::DONTWAIT) {
        Ok((n, _, from)) => Ok(Some((n, from.and_then(|a| SocketAddr::try_from(a).ok())))),
        Err(e) if e == rustix::io::Errno::AGAIN => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Receives one datagram as the socket's mode says; a sender of `None` when the receive came
/// back without one (std's `recv_from` would fail on that).
pub(crate) fn recv_from(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, Option<SocketAddr>)> {
    let (n, _, from) = rustix::net::recvfrom(socket, buf, RecvFlags::empty())?;
    Ok((n, from.and_then(|a| SocketAddr::try_from(a).ok())))
}

/// A loop's side of its wake-up channel, a Unix datagram socket pair.
pub(crate) type Waiter = readiness::Waiter<UnixDatagram>;
/// The wakers' side.
pub(crate) type Notifier = readiness::Notifier<UnixDatagram>;

impl readiness::WakeSocket for UnixDatagram {
    fn wake(&self) {
        let _ = self.send(&[1]);
    }

    fn drain(&self) {
        while self.recv(&mut [0u8; 8]).is_ok() {}
    }
}

/// A new wake-up channel.
pub(crate) fn waker_pair() -> io::Result<(Waiter, Notifier)> {
    let (tx, rx) = UnixDatagram::pair()?;
    tx.set_nonblocking(true)?;
    rx.set_nonblocking(true)?;
    Ok(readiness::channel(rx, tx))
}

/// How a socket call waits for readiness: one `poll` per wait, nothing to remember.
pub(crate) struct SocketWait;

impl SocketWait {
    pub(crate) fn new() -> SocketWait {
        SocketWait
    }

    /// Waits up to `wait` for `socket` to be readable (or writable); true when it is (or has an
    /// error or hang-up to report), false after `wait` or a signal. A `close` wakes the poll
    /// by shutting the socket down, so `closing` needs no look here.
    pub(crate) fn wait(
        &mut self,
        socket: &UdpSocket,
        interest: Interest,
        wait: Duration,
        _closing: &AtomicBool,
    ) -> io::Result<bool> {
        readiness::wait_one(socket, interest, wait)
    }
}

/// Linux only: `sendmmsg(2)` and `IP_MTU_DISCOVER`.
#[cfg(target_os = "linux")]
pub(crate) mod linux {
    use std::io::{self, IoSlice};
    use std::net::{SocketAddr, UdpSocket};

    use rustix::io::Errno;
    use rustix::net::sockopt::{self, Ipv4PathMtuDiscovery};
    use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};

    /// Reused buffers for `sendmmsg`: the encoded addresses of one batch.
    pub(crate) struct Batch {
        addrs: Vec<SocketAddrAny>,
        controls: Vec<SendAncillaryBuffer<'static, 'static, 'static>>,
    }

    impl Batch {
        /// Buffers for batches of up to `capacity` datagrams.
        pub(crate) fn new(capacity: usize) -> Option<Batch> {
            Some(Batch {
                addrs: Vec::with_capacity(capacity),
                controls: (0..capacity)
                    .map(|_| SendAncillaryBuffer::default())
                    .collect(),
            })
        }

        /// Sends `payload` to each address of `to` (at most the capacity) in one call, waiting
        /// for buffer space if `wait`; returns how many were sent, from the first on: fewer
        /// than asked (maybe 0) when the kernel stopped at one it could not send. `Err` only
        /// when the system has no `sendmmsg` at all.
        pub(crate) fn send(
            &mut self,
            socket: &UdpSocket,
            payload: &[u8],
            to: impl Iterator<Item = SocketAddr>,
            wait: bool,
        ) -> io::Result<usize> {
            let iov = [IoSlice::new(payload)];
            self.addrs.clear();
            self.addrs.extend(to.map(SocketAddrAny::from));
            let mut headers: Vec<MMsgHdr<'_>> = self
                .addrs
                .iter()
                .zip(self.controls.iter_mut())
                .map(|(addr, control)| MMsgHdr::new_with_addr(addr, &iov, control))
                .collect();
            let flags = if wait {
                SendFlags::empty()
            } else {
                SendFlags::DONTWAIT
            };
            match sendmmsg(socket, &mut headers, flags) {
                Ok(n) => Ok(n),
                Err(Errno::NOSYS) => Err(Errno::NOSYS.into()),
                Err(_) => Ok(0),
            }
        }
    }

    /// Asks for "don't fragment" on every IPv4 datagram (`IP_PMTUDISC_DO`: one larger than the
    /// path MTU fails with `EMSGSIZE`), or (`false`) goes back to Linux's default
    /// (`IP_PMTUDISC_WANT`: DF when the datagram fits the path MTU, fragments otherwise).
    pub(crate) fn dont_fragment(socket: &UdpSocket, on: bool) -> io::Result<()> {
        let mode = if on {
            Ipv4PathMtuDiscovery::DO
        } else {
            Ipv4PathMtuDiscovery::WANT
        };
        Ok(sockopt::set_ip_mtu_discover(socket, mode)?)
    }

    /// Whether "don't fragment" is asked for (tests).
    #[cfg(test)]
    pub(crate) fn dont_fragment_is_set(socket: &UdpSocket) -> io::Result<bool> {
        Ok(sockopt::ip_mtu_discover(socket)? == Ipv4PathMtuDiscovery::DO)
    }
}
