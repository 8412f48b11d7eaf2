//! The chat client: a socket connected to the server, a receive loop
//! ([`ChatClient::receive_loop`], the thread `user`) that logs and queues what arrives, and a
//! heartbeat loop ([`ChatClient::heartbeat_loop`], the thread `hb`).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::endpoint::{Endpoint, Handler, Loop, Tap, Waker};
use crate::platform::errno;
use crate::proto::{BytesRepr, Words};
use crate::socket::{closed_error, deadline, next_wait, Check};
use crate::timing::TICK;
use crate::watch::{Feed, Sighting, Watchers};

/// Datagrams kept for [`ChatClient::recv`] before the oldest are dropped.
pub const DEFAULT_QUEUE: usize = 1024;

/// How a chat client behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The heartbeat and quit words.
    pub words: Words,
    /// How many received datagrams to keep for [`ChatClient::recv`].
    pub queue: usize,
    /// A name for the log lines (`alice: b'ACKhi'`), as the person using the client is known.
    pub name: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            words: Words::default(),
            queue: DEFAULT_QUEUE,
            name: None,
        }
    }
}

/// A client's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Datagrams received from the server.
    pub received: u64,
    /// Received datagrams dropped because the queue was full (oldest first).
    pub dropped: u64,
    /// Chat messages sent.
    pub sent: u64,
    /// Heartbeats sent.
    pub heartbeats: u64,
    /// Errors while receiving or heartbeating, such as the server's port being closed.
    pub errors: u64,
}

#[derive(Debug, Default)]
struct Heartbeat {
    interval: Option<Duration>,
    next: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client's half of the receive loop.
struct Receiving<'a> {
    client: &'a ChatClient,
    endpoint: Arc<Endpoint>,
}

impl Handler for Receiving<'_> {
    fn endpoints(&self) -> &[Endpoint] {
        std::slice::from_ref(&*self.endpoint)
    }

    fn datagram(&mut self, _index: usize, data: &[u8], _from: SocketAddr, now: Instant) {
        let client = self.client;
        client.sighted(false, data, now);
        client.watched(|w, now| w.answered(now));
        info!("{}{}", client.tag, BytesRepr(data));
        client.received.fetch_add(1, Ordering::Relaxed);
        let mut inbox = lock(&client.inbox);
        if inbox.len() >= client.capacity {
            inbox.pop_front();
            client.dropped.fetch_add(1, Ordering::Relaxed);
        }
        inbox.push_back(data.to_vec());
        client.arrived.notify_all();
    }

    fn recv_error(&mut self, _index: usize, error: io::Error, _now: Instant) -> io::Result<()> {
        let client = self.client;
        // Stopping: a refusal of the parting quit is no news.
        if client.is_stopped() {
            return Ok(());
        }
        client.errors.fetch_add(1, Ordering::Relaxed);
        client.watched(|w, now| w.failed(&error, now));
        if !is_refusal(&error) {
            // Whatever this is, do not spin on it.
            std::thread::sleep(TICK);
        }
        Ok(())
    }
}

/// A chat client connected to one server.
#[derive(Debug)]
pub struct ChatClient {
    /// The connected socket until `stop` (the receive loop holds its own reference while it
    /// runs, so the port is free once the loop has returned).
    endpoint: Mutex<Option<Arc<Endpoint>>>,
    /// The receive loop until `receive_loop` takes it.
    event_loop: Mutex<Option<Loop>>,
    waker: Waker,
    server: SocketAddr,
    local: SocketAddr,
    name: Option<String>,
    /// `"alice: "` for a client named alice, else empty: the start of its log lines.
    tag: String,
    words: Words,
    capacity: usize,
    inbox: Mutex<VecDeque<Vec<u8>>>,
    arrived: Condvar,
    heartbeat: Mutex<Heartbeat>,
    retimed: Condvar,
    received: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    heartbeats: AtomicU64,
    errors: AtomicU64,
    watch: Mutex<ServerWatch>,
    /// Who watches every datagram sent and received (`udplab.view`).
    watchers: Mutex<Watchers>,
}

impl ChatClient {
    /// Connects a socket of the server's family to `server`: the system binds an ephemeral
    /// local port, and only the server's datagrams are received.
    pub fn connect(server: SocketAddr, config: ClientConfig) -> io::Result<ChatClient> {
        let endpoint = Endpoint::connect(server)?;
        let event_loop = Loop::new()?;
        let local = endpoint.local_addr();
        let name = config.name;
        let tag = name.as_ref().map(|n| format!("{n}: ")).unwrap_or_default();
        match &name {
            Some(name) => info!("chat client {name} ({local}) talks to {server}"),
            None => info!("chat client {local} talks to {server}"),
        }
        Ok(ChatClient {
            endpoint: Mutex::new(Some(Arc::new(endpoint))),
            waker: event_loop.waker(),
            event_loop: Mutex::new(Some(event_loop)),
            server,
            local,
            name,
            tag,
            words: config.words,
            capacity: config.queue.max(1),
            inbox: Mutex::new(VecDeque::new()),
            arrived: Condvar::new(),
            heartbeat: Mutex::new(Heartbeat::default()),
            retimed: Condvar::new(),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            watch: Mutex::new(ServerWatch::default()),
            watchers: Mutex::default(),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The name given in [`ClientConfig::name`].
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The server's address.
    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.waker.is_stopped()
    }

    /// Sets the tap that sees every datagram the client receives and sends; only before
    /// [`receive_loop`](Self::receive_loop) runs (false after, and nothing changes).
    pub fn set_tap(&self, tap: Option<Arc<dyn Tap>>) -> bool {
        let mut endpoint = lock(&self.endpoint);
        match endpoint.as_mut().and_then(Arc::get_mut) {
            Some(endpoint) => {
                endpoint.set_tap(tap);
                true
            }
            None => false,
        }
    }

    /// Tells `feed` of every datagram sent and received from now on (running or not).
    pub fn watch(&self, feed: Arc<Feed>) {
        lock(&self.watchers).add(feed);
    }

    /// Stops telling `feed`; true if it was watching.
    pub fn unwatch(&self, feed: &Arc<Feed>) -> bool {
        lock(&self.watchers).remove(feed)
    }

    /// Tells the watchers of a datagram sent to the server (at `at`, read before the send: the
    /// server may see it before this thread runs again) or received from it.
    fn sighted(&self, sent: bool, data: &[u8], at: Instant) {
        let (from, to) = if sent {
            (self.local, self.server)
        } else {
            (self.server, self.local)
        };
        let what = if sent { "sent" } else { "received" };
        lock(&self.watchers).tell(|| Sighting::new(at, what, "delivered", from, to, data));
    }

    fn endpoint(&self) -> io::Result<Arc<Endpoint>> {
        lock(&self.endpoint).clone().ok_or_else(closed_error)
    }

    fn send_raw(&self, data: &[u8], wait: bool) -> io::Result<usize> {
        let endpoint = self.endpoint()?;
        let send = |data| {
            if wait {
                endpoint.send(data)
            } else {
                endpoint.try_send(data)
            }
        };
        let at = Instant::now();
        let sent = match send(data) {
            // A connected socket reports an earlier datagram's ICMP "port unreachable" on the
            // next call, which then sends nothing: that error is stale, so send once more.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                self.watched(|w, now| w.failed(&e, now));
                send(data)
            }
            other => other,
        };
        if sent.is_ok() {
            self.sighted(true, data, at);
        }
        sent
    }

    /// Sends a chat message (waiting at most [`SEND_WAIT`](crate::timing::SEND_WAIT) for
    /// buffer space).
    pub fn send(&self, data: &[u8]) -> io::Result<()> {
        self.send_raw(data, true)?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// [`send`](Self::send) without waiting: `WouldBlock` when the send buffer is full and
    /// nothing was sent.
    pub fn try_send(&self, data: &[u8]) -> io::Result<()> {
        self.send_raw(data, false)?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Receives datagrams until [`stop`](Self::stop): each is logged at INFO (as the tutorial's
    /// client does) and queued for [`recv`](Self::recv). Refusals from a server that is not up
    /// yet, or went away, are counted and waited out. Runs once per client.
    pub fn receive_loop(&self) {
        let taken = lock(&self.event_loop).take();
        let (Some(mut event_loop), Ok(endpoint)) = (taken, self.endpoint()) else {
            return;
        };
        if let Err(e) = event_loop.run(&mut Receiving {
            client: self,
            endpoint,
        }) {
            self.errors.fetch_add(1, Ordering::Relaxed);
            warn!(
                "{}chat client {} stopped receiving: {e}",
                self.tag, self.local
            );
        }
        let _inbox = lock(&self.inbox);
        self.arrived.notify_all();
    }

    /// Updates the [`ServerWatch`] and logs what it has to say, after releasing it.
    fn watched(&self, update: impl FnOnce(&mut ServerWatch, Instant) -> Option<WatchNote>) {
        let note = update(&mut lock(&self.watch), Instant::now());
        match note {
            Some(WatchNote::NotAnswering(why)) => {
                warn!(
                    "{}chat server {} is not answering: {why}",
                    self.tag, self.server
                )
            }
            Some(WatchNote::StillNotAnswering { down, errors }) => warn!(
                "{}chat server {} is still not answering after {} s ({errors} errors so far)",
                self.tag,
                self.server,
                down.as_secs()
            ),
            Some(WatchNote::AnswersAgain { down }) => info!(
                "{}chat server {} answers again (after {:.1} s)",
                self.tag,
                self.server,
                down.as_secs_f64()
            ),
            None => {}
        }
    }

    /// Starts, re-times (`Some`) or pauses (`None`) the heartbeat. A started or re-timed
    /// heartbeat is sent at once, then every `interval`.
    pub fn set_heartbeat(&self, interval: Option<Duration>) {
        let mut hb = lock(&self.heartbeat);
        hb.interval = interval;
        hb.next = interval.map(|_| Instant::now());
        self.retimed.notify_all();
    }

    /// The heartbeat interval, if any.
    pub fn heartbeat(&self) -> Option<Duration> {
        lock(&self.heartbeat).interval
    }

    /// Sends heartbeats as [`set_heartbeat`](Self::set_heartbeat) says, until
    /// [`stop`](Self::stop).
    pub fn heartbeat_loop(&self) {
        let mut hb = lock(&self.heartbeat);
        while !self.is_stopped() {
            let (Some(interval), Some(next)) = (hb.interval, hb.next) else {
                hb = self.retimed.wait(hb).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let now = Instant::now();
            if now < next {
                hb = self
                    .retimed
                    .wait_timeout(hb, next - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            // An interval too long for `Instant` means no further heartbeat, not a panic.
            hb.next = now.checked_add(interval);
            drop(hb);
            match self.send_raw(&self.words.heartbeat, true) {
                Ok(_) => {
                    self.heartbeats.fetch_add(1, Ordering::Relaxed);
                    debug!("chat heartbeat to {}", self.server);
                    self.watched(|w, now| w.heartbeat_sent(now));
                }
                Err(e) if e.raw_os_error() == Some(errno::EBADF) => break,
                Err(e) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    debug!("chat heartbeat to {} failed: {e}", self.server);
                    self.watched(|w, now| w.failed(&e, now));
                }
            }
            hb = lock(&self.heartbeat);
        }
    }

    /// Takes the next received datagram, waiting up to `timeout` (`None`: forever); running
    /// `check` every slice. Datagrams received before [`stop`](Self::stop) are still returned
    /// after it; then the error is `EBADF`.
    pub fn recv(&self, timeout: Option<Duration>, check: Check<'_>) -> io::Result<Vec<u8>> {
        let mut one = self.recv_many(timeout, 1, check)?;
        Ok(one.pop().unwrap_or_default())
    }

    /// Takes up to `max` (at least one) received datagrams, oldest first, waiting as
    /// [`recv`](Self::recv) does for the first: how an event loop takes what is queued in one
    /// call.
    pub fn recv_many(
        &self,
        timeout: Option<Duration>,
        max: usize,
        check: Check<'_>,
    ) -> io::Result<Vec<Vec<u8>>> {
        let deadline = deadline(timeout);
        let mut inbox = lock(&self.inbox);
        loop {
            if !inbox.is_empty() {
                let n = inbox.len().min(max.max(1));
                return Ok(inbox.drain(..n).collect());
            }
            if self.is_stopped() {
                return Err(closed_error());
            }
            let wait = next_wait(deadline)?;
            inbox = self
                .arrived
                .wait_timeout(inbox, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if inbox.is_empty() {
                drop(inbox);
                check()?;
                inbox = lock(&self.inbox);
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            received: self.received.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            heartbeats: self.heartbeats.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// Says quit to the server (best effort), ends both loops at once and closes the socket
    /// (the port is free once the receive loop has returned). Idempotent.
    pub fn stop(&self) {
        let Some(endpoint) = lock(&self.endpoint).take() else {
            return;
        };
        // Stopped before the quit goes out: a refusal of it is no news to the receive loop.
        self.waker.stop();
        let at = Instant::now();
        match endpoint.send(&self.words.quit) {
            Ok(_) => self.sighted(true, &self.words.quit, at),
            Err(e) => debug!("{}chat quit to {} failed: {e}", self.tag, self.server),
        }
        drop(endpoint);
        {
            // Taking the locks orders the flag before the loops' next wait.
            let _hb = lock(&self.heartbeat);
            self.retimed.notify_all();
        }
        {
            let _inbox = lock(&self.inbox);
            self.arrived.notify_all();
        }
        match &self.name {
            Some(name) => info!("chat client {name} ({}) stopped", self.local),
            None => info!("chat client {} stopped", self.local),
        }
    }

    /// Runs both loops on threads named `user` and `hb` (`user-alice` and `hb-alice` for a
    /// client named alice), for use from Rust.
    pub fn spawn(self: &Arc<Self>) -> io::Result<[JoinHandle<()>; 2]> {
        let user = Arc::clone(self);
        let hb = Arc::clone(self);
        let named = |thread: &str| match &self.name {
            Some(name) => format!("{thread}-{name}"),
            None => thread.to_owned(),
        };
        Ok([
            std::thread::Builder::new()
                .name(named("user"))
                .spawn(move || user.receive_loop())?,
            std::thread::Builder::new()
                .name(named("hb"))
                .spawn(move || hb.heartbeat_loop())?,
        ])
    }
}

/// How long without an error, heartbeating all along, before the server counts as answering.
pub const QUIET_MEANS_ANSWERING: Duration = Duration::from_secs(3);

/// How often a client that keeps failing to reach its server says so again.
pub const NOT_ANSWERING_REMINDER: Duration = Duration::from_secs(30);

/// Whether the server answers, as the client sees it: a pure, time-injected record that the
/// client's loops update and whose notes the client logs (at WARNING when the errors start,
/// again at most every [`NOT_ANSWERING_REMINDER`] while they go on, and once at INFO when the
/// server answers again).
///
/// A UDP server that is not there is noticed only through the ICMP errors the system reports
/// on the client's connected socket (`ECONNREFUSED`: nothing listens on that port). It is seen
/// to answer again when a datagram arrives from it, or when a heartbeat is sent and no error
/// came since the previous one nor for [`QUIET_MEANS_ANSWERING`] (a chat server does not reply
/// to heartbeats, and systems send at most about one ICMP error a second to a host, so a
/// single quiet interval proves nothing).
#[derive(Debug, Default)]
struct ServerWatch {
    /// When the current run of errors started, if one is going on.
    down_since: Option<Instant>,
    last_error: Option<Instant>,
    last_note: Option<Instant>,
    errors: u64,
    last_heartbeat: Option<Instant>,
}

/// What a [`ServerWatch`] has to say.
#[derive(Debug, Clone, PartialEq)]
enum WatchNote {
    /// The errors started; what they mean.
    NotAnswering(String),
    /// They go on, `errors` in all over `down`.
    StillNotAnswering { down: Duration, errors: u64 },
    /// The server answered after `down` without.
    AnswersAgain { down: Duration },
}

impl ServerWatch {
    fn failed(&mut self, e: &io::Error, now: Instant) -> Option<WatchNote> {
        self.last_error = Some(now);
        self.errors += 1;
        let Some(since) = self.down_since else {
            self.down_since = Some(now);
            self.last_note = Some(now);
            self.errors = 1;
            return Some(WatchNote::NotAnswering(meaning(e)));
        };
        let reminded = self.last_note.unwrap_or(since);
        if now.saturating_duration_since(reminded) < NOT_ANSWERING_REMINDER {
            return None;
        }
        self.last_note = Some(now);
        Some(WatchNote::StillNotAnswering {
            down: now.saturating_duration_since(since),
            errors: self.errors,
        })
    }

    fn answered(&mut self, now: Instant) -> Option<WatchNote> {
        let since = self.down_since.take()?;
        Some(WatchNote::AnswersAgain {
            down: now.saturating_duration_since(since),
        })
    }

    fn heartbeat_sent(&mut self, now: Instant) -> Option<WatchNote> {
        let previous = self.last_heartbeat.replace(now)?;
        let quiet =
            |e: Instant| e < previous && now.saturating_duration_since(e) >= QUIET_MEANS_ANSWERING;
        if self.down_since.is_some() && self.last_error.is_some_and(quiet) {
            return self.answered(now);
        }
        None
    }
}

/// What an error on the client's socket means, in words a learner can act on.
/// An ICMP "port unreachable" for an earlier datagram, as the next receive reports it:
/// `ECONNREFUSED` on Linux and macOS, `WSAECONNRESET` (a connection reset) on Windows.
fn is_refusal(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}

fn meaning(e: &io::Error) -> String {
    if is_refusal(e) {
        return "connection refused: nothing listens on that port (is the server running?)".into();
    }
    match e.kind() {
        io::ErrorKind::HostUnreachable => "no route to that host".into(),
        io::ErrorKind::NetworkUnreachable => "that network is unreachable".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> io::Error {
        io::Error::from(io::ErrorKind::ConnectionRefused)
    }

    #[test]
    fn warns_when_errors_start_then_at_most_every_reminder() {
        let t0 = Instant::now();
        let mut w = ServerWatch::default();
        let note = w.failed(&refused(), t0);
        assert!(matches!(&note, Some(WatchNote::NotAnswering(why))
            if why.contains("nothing listens on that port")));
        for i in 1..=29 {
            assert_eq!(w.failed(&refused(), t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(
            w.failed(&refused(), t0 + Duration::from_secs(30)),
            Some(WatchNote::StillNotAnswering {
                down: Duration::from_secs(30),
                errors: 31
            })
        );
        assert_eq!(w.failed(&refused(), t0 + Duration::from_secs(31)), None);
    }

    #[test]
    fn a_datagram_from_the_server_ends_it_once() {
        let t0 = Instant::now();
        let mut w = ServerWatch::default();
        assert_eq!(w.answered(t0), None, "never down: nothing to say");
        w.failed(&refused(), t0);
        let back = t0 + Duration::from_millis(2500);
        assert_eq!(
            w.answered(back),
            Some(WatchNote::AnswersAgain {
                down: Duration::from_millis(2500)
            })
        );
        assert_eq!(w.answered(back), None);
        // A new run of errors warns afresh.
        assert!(matches!(
            w.failed(&refused(), back),
            Some(WatchNote::NotAnswering(_))
        ));
    }

    #[test]
    fn heartbeats_without_errors_for_a_while_end_it() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = ServerWatch::default();
        assert_eq!(w.heartbeat_sent(t0), None);
        w.failed(&refused(), t0 + s / 10); // the heartbeat's ICMP refusal
        assert_eq!(
            w.heartbeat_sent(t0 + s),
            None,
            "an error since the last heartbeat"
        );
        w.failed(&refused(), t0 + s + s / 10);
        assert_eq!(w.heartbeat_sent(t0 + 2 * s), None);
        // The server is back: the heartbeat at 2 s draws no error, nor do the next ones; it
        // counts as answering once the quiet lasted QUIET_MEANS_ANSWERING.
        assert_eq!(w.heartbeat_sent(t0 + 3 * s), None);
        assert_eq!(w.heartbeat_sent(t0 + 4 * s), None);
        assert_eq!(
            w.heartbeat_sent(t0 + 5 * s),
            Some(WatchNote::AnswersAgain {
                down: Duration::from_millis(4900)
            })
        );
        assert_eq!(w.heartbeat_sent(t0 + 6 * s), None);
    }

    #[test]
    fn a_named_client_names_its_threads() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let named = |name: Option<&str>| {
            let config = ClientConfig {
                name: name.map(str::to_owned),
                ..ClientConfig::default()
            };
            let client = Arc::new(ChatClient::connect(addr, config).unwrap());
            let threads = client.spawn().unwrap();
            let names: Vec<_> = threads
                .iter()
                .map(|t| t.thread().name().unwrap_or_default().to_owned())
                .collect();
            client.stop();
            for t in threads {
                t.join().unwrap();
            }
            (client.name().map(str::to_owned), names)
        };
        assert_eq!(
            named(Some("alice")),
            (
                Some("alice".into()),
                vec!["user-alice".into(), "hb-alice".into()]
            )
        );
        assert_eq!(named(None), (None, vec!["user".into(), "hb".into()]));
    }

    #[test]
    fn recv_many_takes_in_order_and_try_send_sends() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let client = Arc::new(
            ChatClient::connect(server.local_addr().unwrap(), ClientConfig::default()).unwrap(),
        );
        let threads = client.spawn().unwrap();
        client.try_send(b"hi").unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi");
        for word in [&b"one"[..], b"two", b"three"] {
            server.send_to(word, from).unwrap();
        }
        let mut got = Vec::new();
        let wait = Some(Duration::from_secs(5));
        while got.len() < 3 {
            let batch = client.recv_many(wait, 2, &mut || Ok(())).unwrap();
            assert!((1..=2).contains(&batch.len()));
            got.extend(batch);
        }
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        assert_eq!(client.stats().sent, 1);
        client.stop();
        for t in threads {
            t.join().unwrap();
        }
        let err = client.recv_many(wait, 2, &mut || Ok(())).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(errno::EBADF));
    }

    #[test]
    fn windows_connection_reset_reads_as_a_refusal() {
        // Windows reports an ICMP "port unreachable" as WSAECONNRESET on the next receive.
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(is_refusal(&reset) && is_refusal(&refused()));
        assert_eq!(meaning(&reset), meaning(&refused()));
        assert!(meaning(&reset).contains("is the server running?"));
    }

    #[test]
    fn other_errors_keep_their_own_words() {
        let e = io::Error::from(io::ErrorKind::HostUnreachable);
        assert_eq!(meaning(&e), "no route to that host");
        let e = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(meaning(&e), e.to_string());
    }
}
