//! Sending one broadcast to many clients: where the chat server's time goes.
//!
//! Each delivery is one datagram through the kernel's send path, and on loopback also through
//! the receiver's queue and wake-up; that is nearly all of a broadcast's cost. Two Linux fast
//! paths trim the sender's part (gains measured in BENCHMARKS.md), each with a safe fallback:
//!
//! - `sendmmsg(2)` batches save the per-call overhead (syscall entry, file lookup): +5-8%
//!   deliveries/s at 100-1000 clients. Through nix's safe wrapper; where the kernel lacks it,
//!   [`SocketFanout`] falls back to one `send_to` per client for good.
//! - On IPv4 the socket asks for "don't fragment" (`IP_PMTUDISC_DO`). A datagram that may not
//!   be fragmented needs no IP identification number (it goes out as 0), which otherwise the
//!   kernel draws from a shared, hashed counter for every datagram (`__ip_select_ident`, ~4%
//!   of the server's CPU in a profile). Linux's default (`IP_PMTUDISC_WANT`) already sets the
//!   DF bit on every datagram that fits the path MTU, so the packets differ only in that
//!   number. A datagram too large for its path is refused (`EMSGSIZE`) instead of fragmented;
//!   then the fanout switches back to the default for the rest of that broadcast and re-sends
//!   it, so large messages still arrive, in fragments, as before.

use std::io;
use std::net::SocketAddr;

use log::debug;

/// Delivers one payload to many addresses.
pub trait Fanout {
    /// Sends `payload` to every address in `to`, reports each failure to `failed`, and
    /// returns how many were sent.
    fn send_all(
        &mut self,
        payload: &[u8],
        to: &[SocketAddr],
        failed: &mut dyn FnMut(SocketAddr, io::Error),
    ) -> u64;
}

/// A [`Fanout`] that calls a function once per address: for tests and simulations.
pub struct PerAddress<F>(pub F);

impl<F: FnMut(&[u8], SocketAddr) -> io::Result<usize>> Fanout for PerAddress<F> {
    fn send_all(
        &mut self,
        payload: &[u8],
        to: &[SocketAddr],
        failed: &mut dyn FnMut(SocketAddr, io::Error),
    ) -> u64 {
        let mut sent = 0;
        for &addr in to {
            match (self.0)(payload, addr) {
                Ok(_) => sent += 1,
                Err(e) => failed(addr, e),
            }
        }
        sent
    }
}

/// Messages handed to the kernel per `sendmmsg` call (the kernel's own cap is 1024).
const BATCH: usize = 64;

/// A [`Fanout`] over a UDP socket.
pub struct SocketFanout<'a> {
    socket: &'a std::net::UdpSocket,
    #[cfg(target_os = "linux")]
    batch: Option<mmsg::Batch>,
    fragments: Fragments,
}

impl<'a> SocketFanout<'a> {
    /// Sends through `socket`, in batches and unfragmented where the system allows.
    pub fn new(socket: &'a std::net::UdpSocket) -> SocketFanout<'a> {
        SocketFanout {
            socket,
            #[cfg(target_os = "linux")]
            batch: Some(mmsg::Batch::new()),
            fragments: Fragments::forbid(socket),
        }
    }
}

impl Fanout for SocketFanout<'_> {
    fn send_all(
        &mut self,
        payload: &[u8],
        to: &[SocketAddr],
        failed: &mut dyn FnMut(SocketAddr, io::Error),
    ) -> u64 {
        let socket = self.socket;
        let fragments = &mut self.fragments;
        let mut alone = |addr| send_alone(socket, fragments, payload, addr, failed);
        let mut sent = None;
        #[cfg(target_os = "linux")]
        if to.len() > 1 {
            if let Some(batch) = self.batch.as_mut() {
                match batch.send(socket, payload, to, &mut alone) {
                    Ok(n) => sent = Some(n),
                    Err(e) => {
                        debug!("sendmmsg unavailable ({e}); sending one datagram per call");
                        self.batch = None;
                    }
                }
            }
        }
        let sent = sent.unwrap_or_else(|| to.iter().filter(|&&addr| alone(addr)).count() as u64);
        self.fragments.restore(socket);
        sent
    }
}

/// Sends one datagram with `send_to`; if "don't fragment" made the kernel refuse it, lets the
/// rest of this broadcast fragment and tries once more. Reports a failure; true if sent.
fn send_alone(
    socket: &std::net::UdpSocket,
    fragments: &mut Fragments,
    payload: &[u8],
    addr: SocketAddr,
    failed: &mut dyn FnMut(SocketAddr, io::Error),
) -> bool {
    let result = match socket.send_to(payload, addr) {
        Err(e) if fragments.allow_after(&e, socket) => socket.send_to(payload, addr),
        other => other,
    };
    result.map_err(|e| failed(addr, e)).is_ok()
}

/// Whether the socket's IPv4 datagrams are sent with "don't fragment" (see the module docs).
struct Fragments {
    /// DF is asked for on this socket (Linux, IPv4, and the option was accepted).
    forbidden: bool,
    /// DF is lifted until [`restore`](Self::restore), for a datagram too large for its path.
    lifted: bool,
}

impl Fragments {
    /// Asks for DF on an IPv4 socket; elsewhere, or if the kernel declines, leaves it alone.
    fn forbid(socket: &std::net::UdpSocket) -> Fragments {
        let v4 = matches!(socket.local_addr(), Ok(SocketAddr::V4(_)));
        let forbidden = v4 && pmtu::set(socket, pmtu::DO).is_ok();
        Fragments {
            forbidden,
            lifted: false,
        }
    }

    /// After a failed send: if DF is why (`EMSGSIZE` while it is asked for), lifts it and
    /// returns true, so the caller sends again.
    fn allow_after(&mut self, e: &io::Error, socket: &std::net::UdpSocket) -> bool {
        if !self.forbidden || self.lifted || e.raw_os_error() != Some(libc::EMSGSIZE) {
            return false;
        }
        self.lifted = pmtu::set(socket, pmtu::WANT).is_ok();
        self.lifted
    }

    /// Asks for DF again after a broadcast that lifted it.
    fn restore(&mut self, socket: &std::net::UdpSocket) {
        if self.lifted {
            self.lifted = false;
            if let Err(e) = pmtu::set(socket, pmtu::DO) {
                debug!("could not ask for unfragmented datagrams again ({e}); sending as usual");
                self.forbidden = false;
            }
        }
    }
}

/// `IP_MTU_DISCOVER`, which nix does not wrap on Linux: declared with nix's public
/// `sockopt_impl!`, its documented way to add a socket option.
#[cfg(target_os = "linux")]
mod pmtu {
    use nix::sys::socket::setsockopt;
    use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};

    // SAFETY: the macro expands to `libc::setsockopt`/`getsockopt` calls on a borrowed, open
    // descriptor with a pointer to one `c_int` and its size, which is the argument the kernel
    // reads and writes for IP_MTU_DISCOVER (ip(7)).
    sockopt_impl!(
        /// Path MTU discovery mode of an IPv4 socket (ip(7)).
        MtuDiscover,
        Both,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::c_int
    );

    /// DF on every datagram; larger than the path MTU fails with EMSGSIZE.
    pub(super) const DO: libc::c_int = libc::IP_PMTUDISC_DO;
    /// Linux's default: DF when the datagram fits the path MTU, fragments otherwise.
    pub(super) const WANT: libc::c_int = libc::IP_PMTUDISC_WANT;

    pub(super) fn set(socket: &std::net::UdpSocket, mode: libc::c_int) -> nix::Result<()> {
        setsockopt(socket, MtuDiscover, &mode)
    }

    #[cfg(test)]
    pub(super) fn get(socket: &std::net::UdpSocket) -> nix::Result<libc::c_int> {
        nix::sys::socket::getsockopt(socket, MtuDiscover)
    }
}

/// Elsewhere datagrams go out as the system sends them.
#[cfg(not(target_os = "linux"))]
mod pmtu {
    pub(super) const DO: i32 = 0;
    pub(super) const WANT: i32 = 0;

    pub(super) fn set(_: &std::net::UdpSocket, _: i32) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

#[cfg(target_os = "linux")]
mod mmsg {
    use std::io::{self, IoSlice};
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    use nix::errno::Errno;
    use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

    use super::BATCH;

    /// Reused buffers for `sendmmsg`: headers and encoded addresses for one batch.
    pub(super) struct Batch {
        headers: MultiHeaders<SockaddrStorage>,
        addrs: Vec<Option<SockaddrStorage>>,
    }

    impl Batch {
        pub(super) fn new() -> Batch {
            Batch {
                headers: MultiHeaders::preallocate(BATCH, None),
                addrs: Vec::with_capacity(BATCH),
            }
        }

        /// Sends to every address, each one the kernel stops at with `alone`; `Err` only when
        /// the system has no `sendmmsg` at all.
        pub(super) fn send(
            &mut self,
            socket: &std::net::UdpSocket,
            payload: &[u8],
            to: &[SocketAddr],
            alone: &mut dyn FnMut(SocketAddr) -> bool,
        ) -> io::Result<u64> {
            let iov = [IoSlice::new(payload)];
            let mut sent = 0;
            let mut next = 0;
            while next < to.len() {
                let chunk = &to[next..(next + BATCH).min(to.len())];
                self.addrs.clear();
                self.addrs
                    .extend(chunk.iter().map(|&a| Some(SockaddrStorage::from(a))));
                let slices = std::iter::repeat_n(&iov, chunk.len());
                let result = sendmmsg(
                    socket.as_raw_fd(),
                    &mut self.headers,
                    slices,
                    &self.addrs,
                    [],
                    MsgFlags::empty(),
                )
                .map(|r| r.count());
                let done = match result {
                    Ok(n) => n,
                    Err(Errno::ENOSYS) if sent == 0 => return Err(Errno::ENOSYS.into()),
                    Err(_) => 0,
                };
                sent += done as u64;
                next += done;
                if done < chunk.len() {
                    // The kernel stopped at a datagram it could not send and kept the reason
                    // to itself: send that one alone to learn it, then go on past it.
                    sent += u64::from(alone(to[next]));
                    next += 1;
                }
            }
            Ok(sent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> std::net::UdpSocket {
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
    }

    /// `n` bound receivers and their addresses.
    fn receivers(n: usize) -> (Vec<std::net::UdpSocket>, Vec<SocketAddr>) {
        let socks: Vec<_> = (0..n).map(|_| bound()).collect();
        let addrs = socks.iter().map(|r| r.local_addr().unwrap()).collect();
        (socks, addrs)
    }

    #[test]
    fn every_address_gets_the_payload_once() {
        let sender = bound();
        let (receivers, to) = receivers(BATCH * 2 + 3);
        let mut fanout = SocketFanout::new(&sender);
        let mut failures = 0;
        let sent = fanout.send_all(b"ACKhi", &to, &mut |_, _| failures += 1);
        assert_eq!((sent, failures), (to.len() as u64, 0));
        for r in &receivers {
            let mut buf = [0u8; 16];
            let (n, from) = r.recv_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&b"ACKhi"[..], sender.local_addr().unwrap())
            );
        }
    }

    #[test]
    fn a_failing_address_is_reported_and_the_rest_still_sent() {
        let sender = bound();
        let (good, mut to) = receivers(5);
        // An IPv6 destination cannot be reached from an IPv4 socket: the kernel refuses it.
        to.insert(2, "[::1]:9".parse().unwrap());
        let mut fanout = SocketFanout::new(&sender);
        let mut failed = Vec::new();
        let sent = fanout.send_all(b"x", &to, &mut |addr, e| failed.push((addr, e.kind())));
        assert_eq!(sent, 5);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, to[2]);
        for r in &good {
            assert_eq!(r.recv(&mut [0u8; 4]).unwrap(), 1);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ipv4_broadcasts_ask_for_dont_fragment_and_ipv6_ones_are_left_alone() {
        let v4 = bound();
        let fanout = SocketFanout::new(&v4);
        assert!(fanout.fragments.forbidden);
        assert_eq!(pmtu::get(&v4).unwrap(), pmtu::DO);
        let v6 = std::net::UdpSocket::bind("[::1]:0").unwrap();
        assert!(!SocketFanout::new(&v6).fragments.forbidden);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_refused_datagram_is_retried_with_fragments_allowed_and_dont_fragment_comes_back() {
        let sender = bound();
        let (receivers, to) = receivers(3);
        let mut fanout = SocketFanout::new(&sender);
        // Over UDP's 65,507-byte limit: EMSGSIZE with or without DF, so the retry runs and
        // fails too, and each address is reported once.
        let huge = vec![0u8; 65_508];
        let mut failed = Vec::new();
        let sent = fanout.send_all(&huge, &to, &mut |addr, e| {
            failed.push((addr, e.raw_os_error()))
        });
        assert_eq!(sent, 0);
        let emsgsize = Some(libc::EMSGSIZE);
        assert_eq!(
            failed,
            to.iter().map(|&a| (a, emsgsize)).collect::<Vec<_>>()
        );
        assert!(!fanout.fragments.lifted);
        assert_eq!(pmtu::get(&sender).unwrap(), pmtu::DO);
        assert_eq!(fanout.send_all(b"ok", &to, &mut |_, _| panic!()), 3);
        for r in &receivers {
            assert_eq!(r.recv(&mut [0u8; 4]).unwrap(), 2);
        }
    }

    /// Runs `child` (an ignored test of this binary) in a private network namespace whose
    /// loopback has an MTU of 1280, so DF refuses larger datagrams. None where not allowed.
    #[cfg(target_os = "linux")]
    fn in_small_mtu_namespace(child: &str) -> Option<std::process::Output> {
        use std::process::Command;
        let allowed = Command::new("unshare").args(["-rn", "true"]).output();
        if !allowed.is_ok_and(|o| o.status.success()) {
            return None;
        }
        let exe = std::env::current_exe().unwrap();
        let script = "ip link set lo up mtu 1280 && exec \"$0\" --exact \"$1\" --ignored";
        let output = Command::new("unshare")
            .args(["-rn", "sh", "-c", script])
            .arg(exe)
            .arg(child)
            .output()
            .unwrap();
        Some(output)
    }

    #[cfg(target_os = "linux")]
    #[test]
    #[allow(clippy::print_stderr)] // a skip must say so
    fn datagrams_larger_than_the_path_mtu_are_sent_fragmented() {
        let child = "fanout::tests::larger_than_the_mtu_in_namespace";
        let Some(output) = in_small_mtu_namespace(child) else {
            eprintln!("skipped: network namespaces (unshare -rn) are not allowed here");
            return;
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "run by datagrams_larger_than_the_path_mtu_are_sent_fragmented in a namespace"]
    fn larger_than_the_mtu_in_namespace() {
        let sender = bound();
        let (receivers, to) = receivers(3);
        let mut fanout = SocketFanout::new(&sender);
        let big = vec![7u8; 2000];
        // DF alone refuses it here: the fallback is what gets it through.
        assert_eq!(
            sender.send_to(&big, to[0]).unwrap_err().raw_os_error(),
            Some(libc::EMSGSIZE)
        );
        assert_eq!(
            fanout.send_all(&big, &to, &mut |a, e| panic!("{a}: {e}")),
            3
        );
        assert_eq!(pmtu::get(&sender).unwrap(), pmtu::DO);
        for r in &receivers {
            let mut buf = [0u8; 4096];
            let n = r.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &big[..]);
        }
    }
}
