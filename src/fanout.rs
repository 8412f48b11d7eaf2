//! Sending one broadcast to many clients: where the chat server's time goes.
//!
//! Each delivery is one datagram through the kernel's send path, and on loopback also through
//! the receiver's queue and wake-up; that is nearly all of a broadcast's cost. Batching the
//! sends with `sendmmsg(2)` saves the per-call overhead (syscall entry, file lookup): +5-8%
//! deliveries/s at 100-1000 clients on the benchmark machine (BENCHMARKS.md). It goes through
//! nix's safe wrapper; where the kernel lacks it, [`SocketFanout`] falls back to one `send_to`
//! per client for good.

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
}

impl<'a> SocketFanout<'a> {
    /// Sends through `socket`, in batches where the system allows.
    pub fn new(socket: &'a std::net::UdpSocket) -> SocketFanout<'a> {
        SocketFanout {
            socket,
            #[cfg(target_os = "linux")]
            batch: Some(mmsg::Batch::new()),
        }
    }

    /// One `send_to` per address: the portable path.
    fn send_each(
        &self,
        payload: &[u8],
        to: &[SocketAddr],
        failed: &mut dyn FnMut(SocketAddr, io::Error),
    ) -> u64 {
        PerAddress(|data: &[u8], addr| self.socket.send_to(data, addr))
            .send_all(payload, to, failed)
    }
}

impl Fanout for SocketFanout<'_> {
    fn send_all(
        &mut self,
        payload: &[u8],
        to: &[SocketAddr],
        failed: &mut dyn FnMut(SocketAddr, io::Error),
    ) -> u64 {
        #[cfg(target_os = "linux")]
        if to.len() > 1 {
            if let Some(batch) = self.batch.as_mut() {
                match batch.send(self.socket, payload, to, failed) {
                    Ok(sent) => return sent,
                    Err(e) => {
                        debug!("sendmmsg unavailable ({e}); sending one datagram per call");
                        self.batch = None;
                    }
                }
            }
        }
        self.send_each(payload, to, failed)
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

        /// Sends to every address; `Err` only when the system has no `sendmmsg` at all.
        pub(super) fn send(
            &mut self,
            socket: &std::net::UdpSocket,
            payload: &[u8],
            to: &[SocketAddr],
            failed: &mut dyn FnMut(SocketAddr, io::Error),
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
                    // to itself: send that one alone to report it, then go on past it.
                    let addr = to[next];
                    match socket.send_to(payload, addr) {
                        Ok(_) => sent += 1,
                        Err(e) => failed(addr, e),
                    }
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

    #[test]
    fn every_address_gets_the_payload_once() {
        let sender = bound();
        let receivers: Vec<_> = (0..(BATCH * 2 + 3)).map(|_| bound()).collect();
        let to: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
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
        let good: Vec<_> = (0..5).map(|_| bound()).collect();
        let mut to: Vec<SocketAddr> = good.iter().map(|r| r.local_addr().unwrap()).collect();
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
}
