//! Sending one broadcast to many clients: where the chat server's time goes.
//!
//! Each delivery is one datagram through the kernel's send path, and on loopback also through
//! the receiver's queue and wake-up; that is nearly all of a broadcast's cost. Two Linux fast
//! paths trim the sender's part (gains measured in BENCHMARKS.md), each with a safe fallback
//! (the calls themselves are in [`platform`]; elsewhere, and on the portable path, broadcasts
//! go out one `send_to` per client, as the system sends them):
//!
//! - `sendmmsg(2)` batches save the per-call overhead (syscall entry, file lookup): +5-8%
//!   deliveries/s at 100-1000 clients. Through rustix's safe wrapper; where the kernel lacks
//!   it, [`SocketFanout`] falls back to one `send_to` per client for good.
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

use crate::endpoint::Endpoint;
use crate::platform::{self, errno, Batch};

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

/// The reusable state of broadcasts through an [`Endpoint`]: batch buffers and whether DF is
/// asked for. [`on`](Self::on) pairs it with its endpoint as a [`Fanout`].
pub struct SocketFanout {
    /// `sendmmsg`'s buffers, where the system has it.
    batch: Option<Batch>,
    fragments: Fragments,
}

/// A [`SocketFanout`] with its endpoint: what [`Fanout::send_all`] runs on.
pub struct OnEndpoint<'a> {
    state: &'a mut SocketFanout,
    endpoint: &'a Endpoint,
}

impl SocketFanout {
    /// Broadcasts through `endpoint`, in batches and unfragmented where the system allows.
    pub fn new(endpoint: &Endpoint) -> SocketFanout {
        SocketFanout {
            batch: Batch::new(BATCH),
            fragments: Fragments::forbid(endpoint.socket()),
        }
    }

    /// This state on `endpoint` (the one it was made for).
    pub fn on<'a>(&'a mut self, endpoint: &'a Endpoint) -> OnEndpoint<'a> {
        OnEndpoint {
            state: self,
            endpoint,
        }
    }
}

impl Fanout for OnEndpoint<'_> {
    /// Each send waits for buffer space as [`Endpoint::send_to`] does; once one has waited
    /// [`SEND_WAIT`](crate::timing::SEND_WAIT) in vain (the link is stalled), the rest of this
    /// broadcast is tried without waiting, so one broadcast holds the server up at most that
    /// long.
    fn send_all(
        &mut self,
        payload: &[u8],
        to: &[SocketAddr],
        failed: &mut dyn FnMut(SocketAddr, io::Error),
    ) -> u64 {
        let endpoint = self.endpoint;
        let state = &mut *self.state;
        let mut send = Sender {
            endpoint,
            fragments: &mut state.fragments,
            stalled: false,
        };
        let mut sent = None;
        if to.len() > 1 {
            if let Some(batch) = state.batch.as_mut() {
                match send.batched(batch, payload, to, failed) {
                    Ok(n) => sent = Some(n),
                    Err(e) => {
                        debug!("sendmmsg unavailable ({e}); sending one datagram per call");
                        state.batch = None;
                    }
                }
            }
        }
        let sent = sent.unwrap_or_else(|| {
            to.iter()
                .filter(|&&addr| send.alone(payload, addr, failed))
                .count() as u64
        });
        state.fragments.restore(endpoint.socket());
        sent
    }
}

/// One broadcast's sends.
struct Sender<'a> {
    endpoint: &'a Endpoint,
    fragments: &'a mut Fragments,
    /// A send waited its whole time for buffer space: do not wait again in this broadcast.
    stalled: bool,
}

impl Sender<'_> {
    fn note(&mut self, e: &io::Error) {
        if e.kind() == io::ErrorKind::WouldBlock {
            self.stalled = true;
        }
    }

    /// Sends one datagram; if "don't fragment" made the kernel refuse it, lets the rest of
    /// this broadcast fragment and tries once more. Reports a failure; true if sent.
    fn alone(
        &mut self,
        payload: &[u8],
        addr: SocketAddr,
        failed: &mut dyn FnMut(SocketAddr, io::Error),
    ) -> bool {
        let socket = self.endpoint.socket();
        let wire = self.endpoint.wire_addr(addr);
        let wait = !self.stalled;
        let result = match platform::send_to(socket, payload, wire, wait) {
            Err(e) if self.fragments.allow_after(&e, socket) => {
                platform::send_to(socket, payload, wire, wait)
            }
            other => other,
        };
        match result {
            Ok(_) => {
                self.endpoint.tap_sent(payload, addr);
                true
            }
            Err(e) => {
                self.note(&e);
                failed(addr, e);
                false
            }
        }
    }

    /// Sends to every address in `sendmmsg` batches, each one the kernel stops at alone; `Err`
    /// only when the system has no `sendmmsg` at all.
    fn batched(
        &mut self,
        batch: &mut Batch,
        payload: &[u8],
        to: &[SocketAddr],
        failed: &mut dyn FnMut(SocketAddr, io::Error),
    ) -> io::Result<u64> {
        let endpoint = self.endpoint;
        let mut sent = 0;
        let mut next = 0;
        while next < to.len() {
            let chunk = &to[next..(next + BATCH).min(to.len())];
            let wire = chunk.iter().map(|&a| endpoint.wire_addr(a));
            let done = match batch.send(endpoint.socket(), payload, wire, !self.stalled) {
                Ok(n) => n,
                Err(e) if sent == 0 => return Err(e),
                Err(_) => 0,
            };
            for &addr in &chunk[..done] {
                endpoint.tap_sent(payload, addr);
            }
            sent += done as u64;
            next += done;
            if done < chunk.len() {
                // The kernel stopped at a datagram it could not send and kept the reason to
                // itself: send that one alone to learn it, then go on past it.
                sent += u64::from(self.alone(payload, to[next], failed));
                next += 1;
            }
        }
        Ok(sent)
    }
}

/// Whether the socket's IPv4 datagrams are sent with "don't fragment" (see the module docs).
struct Fragments {
    /// DF is asked for on this socket (Linux's Unix path, IPv4, and the option was accepted).
    forbidden: bool,
    /// DF is lifted until [`restore`](Self::restore), for a datagram too large for its path.
    lifted: bool,
}

impl Fragments {
    /// Asks for DF on an IPv4 socket; elsewhere, or if the kernel declines, leaves it alone.
    fn forbid(socket: &std::net::UdpSocket) -> Fragments {
        let v4 = matches!(socket.local_addr(), Ok(SocketAddr::V4(_)));
        let forbidden = v4 && platform::dont_fragment(socket, true).is_ok();
        Fragments {
            forbidden,
            lifted: false,
        }
    }

    /// After a failed send: if DF is why (`EMSGSIZE` while it is asked for), lifts it and
    /// returns true, so the caller sends again.
    fn allow_after(&mut self, e: &io::Error, socket: &std::net::UdpSocket) -> bool {
        if !self.forbidden || self.lifted || e.raw_os_error() != Some(errno::EMSGSIZE) {
            return false;
        }
        self.lifted = platform::dont_fragment(socket, false).is_ok();
        self.lifted
    }

    /// Asks for DF again after a broadcast that lifted it.
    fn restore(&mut self, socket: &std::net::UdpSocket) {
        if self.lifted {
            self.lifted = false;
            if let Err(e) = platform::dont_fragment(socket, true) {
                debug!("could not ask for unfragmented datagrams again ({e}); sending as usual");
                self.forbidden = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> std::net::UdpSocket {
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
    }

    fn endpoint(addr: &str) -> Endpoint {
        Endpoint::bind(addr.parse().unwrap(), &crate::endpoint::Options::default()).unwrap()
    }

    /// `n` bound receivers and their addresses.
    fn receivers(n: usize) -> (Vec<std::net::UdpSocket>, Vec<SocketAddr>) {
        let socks: Vec<_> = (0..n).map(|_| bound()).collect();
        let addrs = socks.iter().map(|r| r.local_addr().unwrap()).collect();
        (socks, addrs)
    }

    #[test]
    fn every_address_gets_the_payload_once() {
        let sender = endpoint("127.0.0.1:0");
        let (receivers, to) = receivers(BATCH * 2 + 3);
        let mut fanout = SocketFanout::new(&sender);
        let mut failures = 0;
        let sent = fanout
            .on(&sender)
            .send_all(b"ACKhi", &to, &mut |_, _| failures += 1);
        assert_eq!((sent, failures), (to.len() as u64, 0));
        for r in &receivers {
            let mut buf = [0u8; 16];
            let (n, from) = r.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"ACKhi"[..], sender.local_addr()));
        }
    }

    #[test]
    fn a_failing_address_is_reported_and_the_rest_still_sent() {
        let sender = endpoint("127.0.0.1:0");
        let (good, mut to) = receivers(5);
        // An IPv6 destination cannot be reached from an IPv4 socket: the kernel refuses it.
        to.insert(2, "[::1]:9".parse().unwrap());
        let mut fanout = SocketFanout::new(&sender);
        let mut failed = Vec::new();
        let sent = fanout
            .on(&sender)
            .send_all(b"x", &to, &mut |addr, e| failed.push((addr, e.kind())));
        assert_eq!(sent, 5);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, to[2]);
        for r in &good {
            assert_eq!(r.recv(&mut [0u8; 4]).unwrap(), 1);
        }
    }

    #[test]
    fn ipv4_broadcasts_ask_for_dont_fragment_and_ipv6_ones_are_left_alone() {
        let v4 = endpoint("127.0.0.1:0");
        let fanout = SocketFanout::new(&v4);
        // Asked for where the option exists (Linux's Unix path), left alone elsewhere.
        assert_eq!(fanout.fragments.forbidden, platform::DONT_FRAGMENT);
        let set = platform::dont_fragment_is_set(v4.socket()).unwrap();
        assert_eq!(set, platform::DONT_FRAGMENT);
        let v6 = endpoint("[::1]:0");
        assert!(!SocketFanout::new(&v6).fragments.forbidden);
    }

    #[test]
    fn a_refused_datagram_is_retried_with_fragments_allowed_and_dont_fragment_comes_back() {
        let sender = endpoint("127.0.0.1:0");
        let (receivers, to) = receivers(3);
        let mut fanout = SocketFanout::new(&sender);
        // Over UDP's 65,507-byte limit: EMSGSIZE with or without DF, so the retry runs and
        // fails too, and each address is reported once.
        let huge = vec![0u8; 65_508];
        let mut failed = Vec::new();
        let sent = fanout.on(&sender).send_all(&huge, &to, &mut |addr, e| {
            failed.push((addr, e.raw_os_error()))
        });
        assert_eq!(sent, 0);
        let emsgsize = Some(errno::EMSGSIZE);
        assert_eq!(
            failed,
            to.iter().map(|&a| (a, emsgsize)).collect::<Vec<_>>()
        );
        assert!(!fanout.fragments.lifted);
        let set = platform::dont_fragment_is_set(sender.socket()).unwrap();
        assert_eq!(set, platform::DONT_FRAGMENT);
        assert_eq!(
            fanout
                .on(&sender)
                .send_all(b"ok", &to, &mut |_, _| panic!()),
            3
        );
        for r in &receivers {
            assert_eq!(r.recv(&mut [0u8; 4]).unwrap(), 2);
        }
    }
}
