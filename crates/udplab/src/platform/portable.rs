//! The portable path: std and socket2 only, every socket non-blocking, waits by rounds of
//! receives with a backoff sleep between them; see the module above.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use super::{errno, Interest, Woke};
use crate::timing::SEND_WAIT;

/// The first sleep after a round that found nothing.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_micros(50);
/// The longest sleep between rounds: how late an idle loop sees a datagram at worst.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_millis(1);

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

    /// Something happened: the next sleep is short again.
    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_MIN;
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

/// What a loop and its wakers share.
#[derive(Default)]
struct Shared {
    /// Set by a wake-up, cleared by the wait that sees it.
    woken: AtomicBool,
    /// The thread that waits last, to unpark.
    thread: Mutex<Option<Thread>>,
}

/// A loop's side: its backoff between rounds that found nothing.
pub(crate) struct Waiter {
    shared: Arc<Shared>,
    backoff: Backoff,
}

/// The wakers' side: a flag and the loop's thread to unpark.
pub(crate) struct Notifier(Arc<Shared>);

/// A new wake-up channel.
pub(crate) fn waker_pair() -> io::Result<(Waiter, Notifier)> {
    let shared = Arc::new(Shared::default());
    let waiter = Waiter {
        shared: Arc::clone(&shared),
        backoff: Backoff::new(),
    };
    Ok((waiter, Notifier(shared)))
}

impl Notifier {
    /// Wakes the loop: at once if it sleeps, else before its next sleep.
    pub(crate) fn notify(&self) {
        self.0.woken.store(true, Ordering::SeqCst);
        if let Some(thread) = self
            .0
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            thread.unpark();
        }
    }

    /// Wakes the loop for the last time.
    pub(crate) fn close(&self) {
        self.notify();
    }
}

impl Waiter {
    /// One round: unless `idle` (nothing arrived since the last round) returns at once; else
    /// sleeps one backoff step, at most `wait`, or until notified. Every socket is then to be
    /// tried (all their indexes are left in `ready`): only a receive tells whether something
    /// is queued without taking away an error the receive should report.
    pub(crate) fn wait<'a>(
        &mut self,
        sockets: impl ExactSizeIterator<Item = &'a UdpSocket>,
        wait: Duration,
        ready: &mut Vec<usize>,
        idle: bool,
    ) -> io::Result<Woke> {
        ready.clear();
        ready.extend(0..sockets.len());
        if !idle {
            self.backoff.reset();
        } else {
            // Registered before the flag is read: a wake-up either sets the flag before this
            // reads it, or finds the thread and unparks it (then the park returns at once).
            let current = thread::current();
            {
                let mut registered = self.shared.thread.lock().unwrap_or_else(|e| e.into_inner());
                if registered.as_ref().map(Thread::id) != Some(current.id()) {
                    *registered = Some(current);
                }
            }
            if !self.shared.woken.load(Ordering::SeqCst) {
                thread::park_timeout(self.backoff.step(wait));
            }
        }
        Ok(Woke {
            notified: self.shared.woken.swap(false, Ordering::SeqCst),
            hung_up: false,
        })
    }
}

/// How a socket call waits: it cannot ask whether the socket is ready without taking away an
/// error a receive should report, so it sleeps one backoff step and lets the call try again,
/// saying false once per `wait` (a slice) so that the caller runs its check.
pub(crate) struct SocketWait {
    backoff: Backoff,
    slice_started: Instant,
}

impl SocketWait {
    pub(crate) fn new() -> SocketWait {
        SocketWait {
            backoff: Backoff::new(),
            slice_started: Instant::now(),
        }
    }

    /// True: try again now (after a sleep, or at once when `closing`); false: a slice of
    /// `wait` has passed since the last false.
    pub(crate) fn wait(
        &mut self,
        _socket: &UdpSocket,
        _interest: Interest,
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
        thread::sleep(self.backoff.step(left));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_resets() {
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
        b.reset();
        assert_eq!(b.step(long), BACKOFF_MIN);
    }

    #[test]
    fn a_waker_ends_a_sleeping_wait_at_once() {
        let (mut waiter, notifier) = waker_pair().unwrap();
        // Sleep steps of up to 10 s: only an unpark ends the wait early.
        waiter.backoff.next = Duration::from_secs(10);
        let shared = Arc::clone(&waiter.shared);
        let t = thread::spawn(move || {
            let mut ready = Vec::new();
            let started = Instant::now();
            let woke = waiter
                .wait(
                    std::iter::empty(),
                    Duration::from_secs(10),
                    &mut ready,
                    true,
                )
                .unwrap();
            (woke.notified, started.elapsed())
        });
        // Once the waiting thread is registered, it is asleep or about to read the flag.
        let deadline = Instant::now() + Duration::from_secs(5);
        while shared.thread.lock().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the wait never began");
            thread::yield_now();
        }
        notifier.notify();
        let (notified, took) = t.join().unwrap();
        assert!(notified);
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }

    #[test]
    fn a_wake_up_before_the_wait_is_not_lost() {
        let (mut waiter, notifier) = waker_pair().unwrap();
        notifier.notify();
        waiter.backoff.next = Duration::from_secs(10);
        let started = Instant::now();
        let woke = waiter
            .wait(
                std::iter::empty(),
                Duration::from_secs(10),
                &mut Vec::new(),
                true,
            )
            .unwrap();
        assert!(woke.notified);
        assert!(started.elapsed() < Duration::from_secs(5));
        // Seen once: the next wait sleeps its step.
        waiter.backoff.next = Duration::from_millis(1);
        let woke = waiter
            .wait(
                std::iter::empty(),
                Duration::from_secs(1),
                &mut Vec::new(),
                true,
            )
            .unwrap();
        assert!(!woke.notified);
    }

    #[test]
    fn a_round_after_traffic_does_not_sleep_and_resets_the_backoff() {
        let (mut waiter, _notifier) = waker_pair().unwrap();
        let sockets = [
            UdpSocket::bind("127.0.0.1:0").unwrap(),
            UdpSocket::bind("127.0.0.1:0").unwrap(),
        ];
        waiter.backoff.next = Duration::from_secs(10);
        let mut ready = Vec::new();
        let started = Instant::now();
        waiter
            .wait(sockets.iter(), Duration::from_secs(10), &mut ready, false)
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(ready, [0, 1]);
        assert_eq!(waiter.backoff.next, BACKOFF_MIN);
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
