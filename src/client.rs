//! The chat client: a socket connected to the server, a receive loop
//! ([`ChatClient::receive_loop`], the thread `user`) that logs and queues what arrives, and a
//! heartbeat loop ([`ChatClient::heartbeat_loop`], the thread `hb`).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::proto::{BytesRepr, Words};
use crate::socket::{closed_error, deadline, next_wait, Check, Family, UdpSocket, WAIT_SLICE};

/// Datagrams kept for [`ChatClient::recv`] before the oldest are dropped.
pub const DEFAULT_QUEUE: usize = 1024;
const RECV_BUFFER: usize = 65_536;

/// How a chat client behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The heartbeat and quit words.
    pub words: Words,
    /// How many received datagrams to keep for [`ChatClient::recv`].
    pub queue: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            words: Words::default(),
            queue: DEFAULT_QUEUE,
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

/// A chat client connected to one server.
#[derive(Debug)]
pub struct ChatClient {
    socket: UdpSocket,
    server: SocketAddr,
    local: SocketAddr,
    words: Words,
    capacity: usize,
    inbox: Mutex<VecDeque<Vec<u8>>>,
    arrived: Condvar,
    heartbeat: Mutex<Heartbeat>,
    retimed: Condvar,
    stop: AtomicBool,
    received: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    heartbeats: AtomicU64,
    errors: AtomicU64,
}

impl ChatClient {
    /// Connects a socket of the server's family to `server`: the system binds an ephemeral
    /// local port, and only the server's datagrams are received.
    pub fn connect(server: SocketAddr, config: ClientConfig) -> io::Result<ChatClient> {
        let socket = UdpSocket::new(Family::of(&server))?;
        socket.connect(server)?;
        let local = socket.local_addr()?;
        info!("chat client {local} talks to {server}");
        Ok(ChatClient {
            socket,
            server,
            local,
            words: config.words,
            capacity: config.queue.max(1),
            inbox: Mutex::new(VecDeque::new()),
            arrived: Condvar::new(),
            heartbeat: Mutex::new(Heartbeat::default()),
            retimed: Condvar::new(),
            stop: AtomicBool::new(false),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The server's address.
    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn send_raw(&self, data: &[u8], check: Check<'_>) -> io::Result<usize> {
        match self.socket.send_checked(data, check) {
            // A connected socket reports an earlier datagram's ICMP "port unreachable" on the
            // next call, which then sends nothing: that error is stale, so send once more.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                self.socket.send_checked(data, &mut || Ok(()))
            }
            other => other,
        }
    }

    /// Sends a chat message.
    pub fn send(&self, data: &[u8], check: Check<'_>) -> io::Result<()> {
        self.send_raw(data, check)?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Receives datagrams until [`stop`](Self::stop): each is logged at INFO (as the tutorial's
    /// client does) and queued for [`recv`](Self::recv). Refusals from a server that is not up
    /// yet, or went away, are counted and waited out.
    pub fn receive_loop(&self) {
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut stopped = || {
            if self.is_stopped() {
                Err(closed_error())
            } else {
                Ok(())
            }
        };
        while !self.is_stopped() {
            match self.socket.recv_checked(&mut buf, &mut stopped) {
                Ok(n) => {
                    info!("{}", BytesRepr(&buf[..n]));
                    self.received.fetch_add(1, Ordering::Relaxed);
                    let mut inbox = lock(&self.inbox);
                    if inbox.len() >= self.capacity {
                        inbox.pop_front();
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    inbox.push_back(buf[..n].to_vec());
                    self.arrived.notify_all();
                }
                Err(e) if e.raw_os_error() == Some(libc::EBADF) => break,
                Err(e) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        debug!("chat server {} is not answering", self.server);
                    } else {
                        warn!("chat client receive failed: {e}");
                        // Whatever this is, do not spin on it.
                        std::thread::sleep(WAIT_SLICE);
                    }
                }
            }
        }
        self.arrived.notify_all();
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
            match self.send_raw(&self.words.heartbeat, &mut || Ok(())) {
                Ok(_) => {
                    self.heartbeats.fetch_add(1, Ordering::Relaxed);
                    debug!("chat heartbeat to {}", self.server);
                }
                Err(e) if e.raw_os_error() == Some(libc::EBADF) => break,
                Err(e) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    debug!("chat heartbeat to {} failed: {e}", self.server);
                }
            }
            hb = lock(&self.heartbeat);
        }
    }

    /// Takes the next received datagram, waiting up to `timeout` (`None`: forever); running
    /// `check` every slice. Datagrams received before [`stop`](Self::stop) are still returned
    /// after it; then the error is `EBADF`.
    pub fn recv(&self, timeout: Option<Duration>, check: Check<'_>) -> io::Result<Vec<u8>> {
        let deadline = deadline(timeout);
        let mut inbox = lock(&self.inbox);
        loop {
            if let Some(data) = inbox.pop_front() {
                return Ok(data);
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

    /// Says quit to the server (best effort), ends both loops and closes the socket. The
    /// loops return within [`WAIT_SLICE`]. Idempotent.
    pub fn stop(&self) {
        if self.stop.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.socket.send_checked(&self.words.quit, &mut || Ok(())) {
            debug!("chat quit to {} failed: {e}", self.server);
        }
        {
            // Taking the locks orders the flag before the loops' next wait.
            let _hb = lock(&self.heartbeat);
            self.retimed.notify_all();
        }
        {
            let _inbox = lock(&self.inbox);
            self.arrived.notify_all();
        }
        self.socket.close();
        info!("chat client {} stopped", self.local);
    }

    /// Runs both loops on threads named `user` and `hb`, for use from Rust.
    pub fn spawn(self: &Arc<Self>) -> io::Result<[JoinHandle<()>; 2]> {
        let user = Arc::clone(self);
        let hb = Arc::clone(self);
        Ok([
            std::thread::Builder::new()
                .name("user".into())
                .spawn(move || user.receive_loop())?,
            std::thread::Builder::new()
                .name("hb".into())
                .spawn(move || hb.heartbeat_loop())?,
        ])
    }
}
