//! Waiting until sockets are ready, on both paths: `poll(2)` on Unix (as `ppoll` where the
//! system has it, so timeouts are exact), `WSAPoll` on Windows (timeouts rounded up to whole
//! milliseconds), both through rustix's safe wrapper. The kernel looks at every socket in one
//! call and the thread sleeps until one is ready, a wake-up arrives or the time is up: an idle
//! loop costs one call per wait, whatever the number of sockets.

use std::io;
use std::net::UdpSocket;
use std::sync::Mutex;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::AsFd;

use super::{Interest, Woke};
use crate::timing::TICK;

/// What `poll` reports for a socket shut down by someone else: on Linux `POLLRDHUP` once its
/// receiving side is shut down, `POLLHUP` once both sides are.
#[cfg(any(target_os = "linux", target_os = "android"))]
const HANG_UP: PollFlags = PollFlags::RDHUP.union(PollFlags::HUP);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const HANG_UP: PollFlags = PollFlags::HUP;
/// What a wait asks about a socket it receives on. `POLLHUP` is reported unasked, and
/// `WSAPoll` refuses a request for it (`WSAEINVAL`); `POLLRDHUP` must be asked for.
#[cfg(any(target_os = "linux", target_os = "android"))]
const RECEIVE: PollFlags = PollFlags::IN.union(PollFlags::RDHUP);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const RECEIVE: PollFlags = PollFlags::IN;

/// `wait` as poll's timeout; past what it can say, a [`TICK`] (the callers wait again).
fn timeout(wait: Duration) -> Timespec {
    Timespec::try_from(wait).unwrap_or(Timespec {
        tv_sec: TICK.as_secs() as _,
        tv_nsec: 0,
    })
}

/// Waits up to `wait` for the wake-up channel `wake` or one of `sockets` to be readable,
/// leaving the indexes of the readable sockets in `ready` (none after a hang-up). `notified`:
/// `wake` is readable (the caller empties it). A signal (`EINTR`) ends the wait early with
/// nothing seen.
pub(crate) fn wait_readable<'a>(
    wake: &impl AsFd,
    sockets: impl ExactSizeIterator<Item = &'a UdpSocket>,
    wait: Duration,
    ready: &mut Vec<usize>,
) -> io::Result<Woke> {
    ready.clear();
    let mut fds = Vec::with_capacity(sockets.len() + 1);
    fds.push(PollFd::new(wake, PollFlags::IN));
    fds.extend(sockets.map(|s| PollFd::new(s, RECEIVE)));
    let mut woke = Woke::default();
    match poll(&mut fds, Some(&timeout(wait))) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(woke),
        Err(e) => return Err(e.into()),
    }
    woke.notified = !fds[0].revents().is_empty();
    for (i, fd) in fds[1..].iter().enumerate() {
        let events = fd.revents();
        if events.intersects(HANG_UP) {
            // Shut down (a receive without waiting then says "nothing yet" for ever).
            ready.clear();
            woke.hung_up = true;
            break;
        }
        if !events.is_empty() {
            ready.push(i);
        }
    }
    Ok(woke)
}

/// One end of a wake-up channel: a non-blocking datagram socket of the pair a path makes.
pub(crate) trait WakeSocket: AsFd {
    /// Sends a one-byte wake-up; a full queue already holds one, so a failure loses nothing.
    fn wake(&self);
    /// Takes every wake-up queued.
    fn drain(&self);
}

/// A loop's side of its wake-up channel: the receiving end of the pair.
pub(crate) struct Waiter<S> {
    rx: S,
}

/// The wakers' side: the sending end, closed by [`close`](Self::close), so a stopped loop holds
/// no descriptor once it has returned.
pub(crate) struct Notifier<S> {
    tx: Mutex<Option<S>>,
}

/// A wake-up channel of the two ends of a connected, non-blocking socket pair.
pub(crate) fn channel<S: WakeSocket>(rx: S, tx: S) -> (Waiter<S>, Notifier<S>) {
    let notifier = Notifier {
        tx: Mutex::new(Some(tx)),
    };
    (Waiter { rx }, notifier)
}

impl<S: WakeSocket> Notifier<S> {
    /// Wakes the loop.
    pub(crate) fn notify(&self) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            tx.wake();
        }
    }

    /// Wakes the loop for the last time.
    pub(crate) fn close(&self) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = tx {
            tx.wake();
        }
    }
}

impl<S: WakeSocket> Waiter<S> {
    /// Polls `sockets` and the wake-up channel for up to `wait`, leaving the indexes of the
    /// readable sockets in `ready` (see [`wait_readable`]).
    pub(crate) fn wait<'a>(
        &mut self,
        sockets: impl ExactSizeIterator<Item = &'a UdpSocket>,
        wait: Duration,
        ready: &mut Vec<usize>,
    ) -> io::Result<Woke> {
        let woke = wait_readable(&self.rx, sockets, wait, ready)?;
        if woke.notified {
            // The caller's flag says whether it was a stop.
            self.rx.drain();
        }
        Ok(woke)
    }

    /// The receiving end (the portable path's tests).
    #[cfg(all(test, any(not(unix), feature = "portable")))]
    pub(crate) fn receiver(&self) -> &S {
        &self.rx
    }
}

/// Waits up to `wait` for `socket` to be readable (or writable); true when it is (or has an
/// error or hang-up to report), false after `wait` or a signal.
pub(crate) fn wait_one(socket: &UdpSocket, interest: Interest, wait: Duration) -> io::Result<bool> {
    let events = match interest {
        Interest::Receive => PollFlags::IN,
        Interest::Send => PollFlags::OUT,
    };
    let mut fds = [PollFd::new(socket, events)];
    match poll(&mut fds, Some(&timeout(wait))) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn bound() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").unwrap()
    }

    #[test]
    fn only_the_sockets_with_a_datagram_are_ready() {
        let wake = bound();
        let sockets: Vec<_> = (0..5).map(|_| bound()).collect();
        let sender = bound();
        sender
            .send_to(b"x", sockets[3].local_addr().unwrap())
            .unwrap();
        let mut ready = Vec::new();
        let woke =
            wait_readable(&wake, sockets.iter(), Duration::from_secs(5), &mut ready).unwrap();
        assert_eq!(ready, [3]);
        assert!(!woke.notified && !woke.hung_up);
    }

    #[test]
    fn an_idle_wait_sleeps_until_its_time_is_up() {
        let wake = bound();
        let sockets: Vec<_> = (0..100).map(|_| bound()).collect();
        let started = Instant::now();
        let mut ready = vec![7];
        let woke =
            wait_readable(&wake, sockets.iter(), Duration::from_millis(50), &mut ready).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(ready.is_empty() && !woke.notified);
    }

    #[test]
    fn the_wake_up_channel_ends_the_wait() {
        let wake = bound();
        let sender = bound();
        sender.send_to(b"!", wake.local_addr().unwrap()).unwrap();
        let started = Instant::now();
        let woke = wait_readable(
            &wake,
            [bound()].iter(),
            Duration::from_secs(10),
            &mut Vec::new(),
        )
        .unwrap();
        assert!(woke.notified);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn one_socket_waits_for_a_datagram_or_room_to_send() {
        let socket = bound();
        assert!(!wait_one(&socket, Interest::Receive, Duration::from_millis(20)).unwrap());
        assert!(wait_one(&socket, Interest::Send, Duration::from_secs(5)).unwrap());
        bound().send_to(b"x", socket.local_addr().unwrap()).unwrap();
        assert!(wait_one(&socket, Interest::Receive, Duration::from_secs(5)).unwrap());
    }
}
