//! The portable path: std and socket2 for the sockets, every socket non-blocking, sends that
//! retry while the send buffer is full, and waits with `poll`/`WSAPoll` through rustix (see
//! `readiness.rs`) over a loopback UDP socket pair as the wake-up channel; see the module
//! above.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{errno, readiness, Interest};
use crate::timing::SEND_WAIT;

/// The first sleep of a send that found the send buffer full.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_micros(50);
/// The longest sleep between two tries of such a send.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_millis(1);
/// How often a wait of the Python-style socket looks at `close()` again: a close from another
/// thread shuts the socket down, which ends a `poll` on Linux but is not known to end a
/// `WSAPoll`.
pub(crate) const CLOSE_CHECK: Duration = Duration::from_millis(20);

/// Sleeps that start at [`BACKOFF_MIN`] and double up to [`BACKOFF_MAX`] while nothing happens.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { next: BACKOFF_MIN }
    }

    /// The next sleep, at most `left`; the one after is twice as long.
    pub(crate) fn step(&mut self, left: Duration) -> Duration {
        let sleep = self.next.min(left);
        self.next = (self.next * 2).min(BACKOFF_MAX);
        sleep
    }
}

/// An endpoint's socket: non-blocking; sends wait by retrying ([`send_to`]).
pub(crate) fn prepare_endpoint(socket: &UdpSocket) -> io::Result<()> {
    socket.set_nonblocking(true)
}

/// Runs `send` once, or while it fails with `WouldBlock` and `wait` is asked for, again after
/// a backoff sleep, for up to [`SEND_WAIT`]; then returns its last result.
pub(crate) fn retry_send(
    wait: bool,
    mut send: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    let started = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        match send() {
            Err(e) if wait && e.kind() == io::ErrorKind::WouldBlock => {
                let left = SEND_WAIT.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(e);
                }
                thread::sleep(backoff.step(left));
            }
            other => return other,
        }
    }
}

/// Sends one datagram to `to`; `wait`: for buffer space, at most [`SEND_WAIT`].
pub(crate) fn send_to(
    socket: &UdpSocket,
    payload: &[u8],
    to: SocketAddr,
    wait: bool,
) -> io::Result<usize> {
    retry_send(wait, || socket.send_to(payload, to))
}

/// Sends one datagram to the connected peer; `wait`: for buffer space, at most [`SEND_WAIT`].
pub(crate) fn send(socket: &UdpSocket, payload: &[u8], wait: bool) -> io::Result<usize> {
    retry_send(wait, || socket.send(payload))
}

/// Whether a receive's error means it came back without a sender: std's `recv_from` fails with
/// `InvalidInput` and no OS code when the system gives no address (a BSD socket shut down),
/// and Windows reports a shut-down socket as `WSAESHUTDOWN`.
pub(crate) fn without_sender(e: &io::Error) -> bool {
    e.raw_os_error() == Some(errno::ESHUTDOWN)
        || (e.kind() == io::ErrorKind::InvalidInput && e.raw_os_error().is_none())
}

/// Receives one datagram if one is queued: `Ok(None)` when there is none; a sender of `None`
/// when the receive came back without one (a shut-down socket).
pub(crate) fn recv_now(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Option<SocketAddr>)>> {
    match recv_from(socket, buf) {
        Ok(got) => Ok(Some(got)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Receives one datagram as the socket's mode says; a sender of `None` when the receive came
/// back without one.
pub(crate) fn recv_from(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, Option<SocketAddr>)> {
    match socket.recv_from(buf) {
        Ok((n, from)) => Ok((n, Some(from))),
        Err(e) if without_sender(&e) => Ok((0, None)),
        Err(e) => Err(e),
    }
}

/// A loop's side of its wake-up channel, a loopback UDP socket pair.
pub(crate) type Waiter = readiness::Waiter<UdpSocket>;
/// The wakers' side.
pub(crate) type Notifier = readiness::Notifier<UdpSocket>;

impl readiness::WakeSocket for UdpSocket {
    fn wake(&self) {
        let _ = self.send(&[1]);
    }

    fn drain(&self) {
        while self.recv(&mut [0u8; 8]).is_ok() {}
    }
}

/// A new wake-up channel: two UDP sockets on the loopback address (std has no socket pair on
/// Windows), connected to each other so that the receiving end takes datagrams from the
/// sending end only.
pub(crate) fn waker_pair() -> io::Result<(Waiter, Notifier)> {
    let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .or_else(|_| UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)))?;
    let tx = UdpSocket::bind(SocketAddr::new(rx.local_addr()?.ip(), 0))?;
    rx.connect(tx.local_addr()?)?;
    tx.connect(rx.local_addr()?)?;
    rx.set_nonblocking(true)?;
    tx.set_nonblocking(true)?;
    Ok(readiness::channel(rx, tx))
}

/// How a socket call waits: `poll` on the socket, at most [`CLOSE_CHECK`] at a time so that a
/// `close()` from another thread is seen, saying false once per `wait` (a slice) so that the
/// caller runs its check.
pub(crate) struct SocketWait {
    slice_started: Instant,
}

impl SocketWait {
    pub(crate) fn new() -> SocketWait {
        SocketWait {
            slice_started: Instant::now(),
        }
    }

    /// True: try again now (the socket is ready, [`CLOSE_CHECK`] has passed, or `closing`);
    /// false: a slice of `wait` has passed since the last false.
    pub(crate) fn wait(
        &mut self,
        socket: &UdpSocket,
        interest: Interest,
        wait: Duration,
        closing: &AtomicBool,
    ) -> io::Result<bool> {
        if closing.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let left = wait.saturating_sub(self.slice_started.elapsed());
        if left.is_zero() {
            self.slice_started = Instant::now();
            return Ok(false);
        }
        readiness::wait_one(socket, interest, left.min(CLOSE_CHECK))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new();
        let long = Duration::from_secs(1);
        let steps: Vec<_> = (0..7).map(|_| b.step(long)).collect();
        let us = Duration::from_micros;
        assert_eq!(
            steps,
            [
                us(50),
                us(100),
                us(200),
                us(400),
                us(800),
                us(1000),
                us(1000)
            ]
        );
        assert_eq!(b.step(us(30)), us(30), "never longer than what is left");
    }

    #[test]
    fn a_waker_ends_a_wait_at_once_and_is_seen_once() {
        let (mut waiter, notifier) = waker_pair().unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let t = thread::spawn(move || {
            let started = Instant::now();
            let woke = waiter
                .wait(
                    [&socket].into_iter(),
                    Duration::from_secs(10),
                    &mut Vec::new(),
                )
                .unwrap();
            let again = waiter
                .wait(
                    [&socket].into_iter(),
                    Duration::from_millis(20),
                    &mut Vec::new(),
                )
                .unwrap();
            (woke.notified, started.elapsed(), again.notified)
        });
        thread::sleep(Duration::from_millis(20)); // the wait has begun, or a wake-up waits for it
        notifier.notify();
        notifier.notify();
        let (notified, took, again) = t.join().unwrap();
        assert!(notified);
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(!again, "two wake-ups before one wait are one");
    }

    #[test]
    fn the_wake_up_channel_takes_datagrams_from_its_notifier_only() {
        let (mut waiter, notifier) = waker_pair().unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = stranger.send_to(b"!", waiter.receiver().local_addr().unwrap());
        let woke = waiter
            .wait(
                std::iter::empty(),
                Duration::from_millis(30),
                &mut Vec::new(),
            )
            .unwrap();
        assert!(!woke.notified);
        notifier.close();
        let woke = waiter
            .wait(std::iter::empty(), Duration::from_secs(10), &mut Vec::new())
            .unwrap();
        assert!(woke.notified, "close wakes the loop a last time");
        notifier.notify(); // after close: nothing, and no error
    }

    #[test]
    fn a_socket_wait_sleeps_until_a_datagram_or_its_slice_is_over() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let closing = AtomicBool::new(false);
        let mut waiting = SocketWait::new();
        let started = Instant::now();
        let mut tries = 0;
        while waiting
            .wait(
                &socket,
                Interest::Receive,
                Duration::from_millis(100),
                &closing,
            )
            .unwrap()
        {
            tries += 1;
        }
        // Woken every CLOSE_CHECK (20 ms) to look at close(), not every millisecond.
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(tries <= 10, "{tries} tries in one slice");
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"x", socket.local_addr().unwrap())
            .unwrap();
        let started = Instant::now();
        assert!(waiting
            .wait(
                &socket,
                Interest::Receive,
                Duration::from_secs(10),
                &closing
            )
            .unwrap());
        assert!(started.elapsed() < Duration::from_secs(5));
        closing.store(true, Ordering::Relaxed);
        assert!(waiting
            .wait(
                &socket,
                Interest::Receive,
                Duration::from_secs(10),
                &closing
            )
            .unwrap());
    }

    #[test]
    fn a_receive_without_a_sender_is_told_apart() {
        assert!(without_sender(&io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid argument"
        )));
        assert!(without_sender(&io::Error::from_raw_os_error(
            errno::ESHUTDOWN
        )));
        assert!(!without_sender(&io::Error::from_raw_os_error(
            errno::EMSGSIZE
        )));
        assert!(!without_sender(&io::ErrorKind::WouldBlock.into()));
    }

    #[test]
    fn a_send_retries_while_the_buffer_is_full_then_gives_up_with_its_error() {
        let mut tries = 0;
        let sent = retry_send(true, || {
            tries += 1;
            if tries < 4 {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(7)
            }
        });
        assert_eq!((sent.unwrap(), tries), (7, 4));

        let started = Instant::now();
        let err = retry_send(true, || Err(io::ErrorKind::WouldBlock.into())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() >= SEND_WAIT);

        let mut tries = 0;
        let err = retry_send(false, || {
            tries += 1;
            Err(io::ErrorKind::WouldBlock.into())
        })
        .unwrap_err();
        assert_eq!((err.kind(), tries), (io::ErrorKind::WouldBlock, 1));
        let mut tries = 0;
        let err = retry_send(true, || {
            tries += 1;
            Err(io::ErrorKind::ConnectionRefused.into())
        })
        .unwrap_err();
        assert_eq!((err.kind(), tries), (io::ErrorKind::ConnectionRefused, 1));
    }
}
