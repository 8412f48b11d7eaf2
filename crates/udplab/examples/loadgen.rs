//! Load generator of the chat benchmark (benches/run.py): N chat clients in one native process.
//!
//! ```text
//! cargo run --release --example loadgen -- --server 127.0.0.1:PORT [--clients N] [--messages M]
//!     [--size BYTES] [--window W] [--mode sleep|spin] [--hb-interval S] [--timeout-ms MS]
//!     [--max-seconds S] [--rcvbuf BYTES] [--json]
//! ```
//!
//! What it does:
//!
//! 1. opens N client sockets, each bound to 127.0.0.1:0 (connected to the server, large
//!    SO_RCVBUF), and joins them by sending a heartbeat `HB` from each, in small paced batches;
//! 2. waits until the server knows all N: client 0 sends a warm-up message, and the clients whose
//!    copy did not come back heartbeat again, up to 10 tries;
//! 3. client 0 sends M messages of `size` bytes, each starting with its sequence number (u64,
//!    little-endian), keeping at most W of them incomplete. A message is complete when every one
//!    of the N clients has received `ACK` + its payload; receipt is tracked per (message, client)
//!    in a bitmap. A message still incomplete after `--timeout-ms` is given up: its missing
//!    copies count as lost. All N clients keep heartbeating every `--hb-interval` seconds, spread
//!    evenly over the interval, for the whole run;
//! 4. every client sends `quit`, and the result is printed (one line, or JSON with `--json`).
//!
//! Receiving: each readable socket is drained with `recvmmsg` batches. `--mode sleep` blocks in
//! `epoll_wait` over the N sockets between datagrams, like real clients. `--mode spin` never
//! sleeps, so it never makes the server wait, and never registers for wake-ups either: it asks
//! `poll(2)` with a zero timeout which sockets are readable, which puts nothing on the sockets'
//! wait queues. (An epoll set would: then every datagram delivered runs epoll's wake-up
//! callback on the sender's CPU, 12-22% of the server's CPU in a profile, although nobody
//! sleeps.)
//!
//! Everything is bounded: the run ends after M messages or `--max-seconds` (default 60, counted
//! from the start, joining included), whichever comes first; messages not sent by then are
//! reported as `unsent`, and the copies still missing of those in flight as `cut_off`.
//!
//! Reported: deliveries/s (copies received by all clients for completed and given-up messages,
//! divided by the elapsed time of the measured phase), p50/p99 completion latency (send ->
//! last client's copy received) in microseconds over completed messages, lost copies, messages
//! completed, and the generator's own CPU time (to see whether it was the bottleneck): in the
//! measured phase (`gen_cpu_s`) and in the whole run, joining and leaving included.

// An example program: printing its results is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{recvmmsg, setsockopt, sockopt, MsgFlags, MultiHeaders, SockaddrIn};
use socket2::{Domain, Socket, Type};

const USAGE: &str = "usage: loadgen --server 127.0.0.1:PORT [--clients N] [--messages M] \
[--size BYTES] [--window W] [--mode sleep|spin] [--hb-interval S] [--timeout-ms MS] \
[--max-seconds S] [--rcvbuf BYTES] [--json]";

/// Datagrams taken from one socket per recvmmsg call.
const BATCH: usize = 32;
/// Sequence numbers of warm-up messages: far above any real one, ignored once measuring.
const WARMUP_SEQ: u64 = u64::MAX - 1000;
const WARMUP_TRIES: u64 = 10;
/// Heartbeats sent in one go while joining, before a short pause that lets the server catch up.
const JOIN_BATCH: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sleep,
    Spin,
}

struct Args {
    server: SocketAddr,
    clients: usize,
    messages: u64,
    size: usize,
    window: usize,
    mode: Mode,
    hb_interval: f64,
    timeout: Duration,
    max_seconds: f64,
    rcvbuf: usize,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or(format!("{flag} needs a value"))?;
        v.parse().map_err(|_| format!("{flag}: cannot parse {v:?}"))
    }
    let mut a = Args {
        server: SocketAddr::from(([127, 0, 0, 1], 0)),
        clients: 10,
        messages: 10_000,
        size: 32,
        window: 8,
        mode: Mode::Sleep,
        hb_interval: 1.0,
        timeout: Duration::from_millis(1000),
        max_seconds: 60.0,
        rcvbuf: 4 << 20,
        json: false,
    };
    let mut have_server = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--server" => {
                a.server = num(&flag, it.next())?;
                have_server = true;
            }
            "--clients" => a.clients = num(&flag, it.next())?,
            "--messages" => a.messages = num(&flag, it.next())?,
            "--size" => a.size = num(&flag, it.next())?,
            "--window" => a.window = num(&flag, it.next())?,
            "--mode" => {
                a.mode = match it.next().as_deref() {
                    Some("sleep") => Mode::Sleep,
                    Some("spin") => Mode::Spin,
                    _ => return Err("--mode is sleep or spin".into()),
                }
            }
            "--hb-interval" => a.hb_interval = num(&flag, it.next())?,
            "--timeout-ms" => a.timeout = Duration::from_millis(num(&flag, it.next())?),
            "--max-seconds" => a.max_seconds = num(&flag, it.next())?,
            "--rcvbuf" => a.rcvbuf = num(&flag, it.next())?,
            "--json" => a.json = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if !have_server {
        return Err(format!("--server is required\n{USAGE}"));
    }
    if !a.server.ip().is_loopback() {
        return Err("--server must be a loopback address (127.0.0.1 or ::1)".into());
    }
    if a.clients == 0 || a.window == 0 {
        return Err("--clients and --window must be at least 1".into());
    }
    if !(8..=65000).contains(&a.size) {
        return Err("--size must be 8..=65000 (the sequence number takes 8 bytes)".into());
    }
    if !(a.hb_interval > 0.0 && a.max_seconds > 0.0) {
        return Err("--hb-interval and --max-seconds must be positive".into());
    }
    Ok(a)
}

/// One chat client: a nonblocking socket connected to the server.
fn client_socket(server: SocketAddr, rcvbuf: usize) -> std::io::Result<UdpSocket> {
    let domain = if server.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = Socket::new(domain, Type::DGRAM, None)?;
    // SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it the kernel caps SO_RCVBUF at rmem_max.
    if setsockopt(&sock, sockopt::RcvBufForce, &rcvbuf).is_err() {
        let _ = sock.set_recv_buffer_size(rcvbuf);
    }
    let local: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        "[::1]:0".parse().expect("literal address")
    };
    sock.bind(&local.into())?;
    sock.connect(&server.into())?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// CPU time this (single-threaded) process has run, from /proc/self/schedstat.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(f64::NAN, |ns| ns as f64 / 1e9)
}

/// Receive buffers for one recvmmsg call.
struct Batch {
    bufs: Vec<u8>,
    buflen: usize,
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
    headers: MultiHeaders<SockaddrIn>,
}

impl Batch {
    fn new(buflen: usize) -> Self {
        Batch {
            bufs: vec![0; buflen * BATCH],
            buflen,
            lens: [0; BATCH],
            truncated: [false; BATCH],
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Take up to BATCH queued datagrams from `fd` without blocking; returns how many.
    fn recv(&mut self, fd: RawFd) -> nix::Result<usize> {
        let mut chunks = self.bufs.chunks_exact_mut(self.buflen);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().expect("BATCH chunks"))]);
        let got = recvmmsg(
            fd,
            &mut self.headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        let mut n = 0;
        for msg in got {
            self.lens[n] = msg.bytes;
            self.truncated[n] = msg.flags.contains(MsgFlags::MSG_TRUNC);
            n += 1;
        }
        Ok(n)
    }

    fn datagram(&self, i: usize) -> &[u8] {
        &self.bufs[i * self.buflen..i * self.buflen + self.lens[i]]
    }
}

/// A message in flight and which clients have their copy.
struct Slot {
    seq: u64,
    active: bool,
    sent_at: Instant,
    got: usize,
    bits: Vec<u64>,
}

#[derive(Default)]
struct Counters {
    /// Copies received of messages that completed or were given up (not counting late ones).
    delivered: u64,
    /// Copies never received before their message was given up after `--timeout-ms`.
    lost: u64,
    /// Copies still missing of the messages in flight when `--max-seconds` ended the run.
    cut_off: u64,
    completed: u64,
    timed_out: u64,
    /// Copies of a message already completed or given up (late or duplicated).
    late: u64,
    /// Datagrams that are not `ACK` + one of our payloads.
    other: u64,
    hb_sent: u64,
    send_errors: u64,
}

/// Which copies of which messages arrived: the bookkeeping of the measured run.
struct Tracker {
    clients: usize,
    timeout: Duration,
    slots: Vec<Slot>,
    in_flight: usize,
    /// `ACK` + payload length: the only datagram length the server should send us.
    expect_len: usize,
    latencies_ns: Vec<u64>,
    c: Counters,
}

impl Tracker {
    fn find_slot(&self, seq: u64) -> Option<usize> {
        let guess = (seq % self.slots.len() as u64) as usize;
        if self.slots[guess].active && self.slots[guess].seq == seq {
            return Some(guess);
        }
        self.slots.iter().position(|s| s.active && s.seq == seq)
    }

    /// A free slot for message `seq`, preferably seq % W.
    fn free_slot(&self, seq: u64) -> Option<usize> {
        let guess = (seq % self.slots.len() as u64) as usize;
        if !self.slots[guess].active {
            return Some(guess);
        }
        self.slots.iter().position(|s| !s.active)
    }

    fn on_datagram(&mut self, client: usize, data: &[u8]) {
        if data.len() != self.expect_len || !data.starts_with(b"ACK") {
            self.c.other += 1;
            return;
        }
        let seq = u64::from_le_bytes(data[3..11].try_into().expect("8 bytes"));
        let Some(idx) = self.find_slot(seq) else {
            if seq < WARMUP_SEQ {
                self.c.late += 1;
            }
            return;
        };
        let slot = &mut self.slots[idx];
        let (word, bit) = (client / 64, 1u64 << (client % 64));
        if slot.bits[word] & bit != 0 {
            self.c.late += 1; // a duplicate
            return;
        }
        slot.bits[word] |= bit;
        slot.got += 1;
        if slot.got == self.clients {
            slot.active = false;
            self.latencies_ns
                .push(slot.sent_at.elapsed().as_nanos() as u64);
            self.in_flight -= 1;
            self.c.completed += 1;
            self.c.delivered += self.clients as u64;
        }
    }

    /// Give up the messages older than the timeout: their missing copies are lost.
    fn expire(&mut self, now: Instant) {
        let n = self.clients as u64;
        for slot in self.slots.iter_mut().filter(|s| s.active) {
            if now.duration_since(slot.sent_at) >= self.timeout {
                slot.active = false;
                self.in_flight -= 1;
                self.c.timed_out += 1;
                self.c.delivered += slot.got as u64;
                self.c.lost += n - slot.got as u64;
            }
        }
    }

    /// Abandon every message in flight (the run is over): missing copies are cut off, not lost.
    fn abandon(&mut self) {
        let n = self.clients as u64;
        for slot in self.slots.iter_mut().filter(|s| s.active) {
            slot.active = false;
            self.c.delivered += slot.got as u64;
            self.c.cut_off += n - slot.got as u64;
        }
        self.in_flight = 0;
    }
}

struct Gen {
    args: Args,
    socks: Vec<UdpSocket>,
    fds: Vec<RawFd>,
    /// The N sockets for `--mode sleep`; None when spinning (see the module docs).
    epoll: Option<Epoll>,
    events: Vec<EpollEvent>,
    batch: Batch,
    t: Tracker,
    payload: Vec<u8>,
    hb_start: Instant,
    hb_total: u64,
}

impl Gen {
    fn new(args: Args) -> Result<Self, String> {
        let epoll = match args.mode {
            Mode::Sleep => Some(
                Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| format!("epoll: {e}"))?,
            ),
            Mode::Spin => None,
        };
        let mut socks = Vec::with_capacity(args.clients);
        for i in 0..args.clients {
            let s =
                client_socket(args.server, args.rcvbuf).map_err(|e| format!("client {i}: {e}"))?;
            if let Some(epoll) = &epoll {
                epoll
                    .add(s.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
                    .map_err(|e| format!("epoll add: {e}"))?;
            }
            socks.push(s);
        }
        let words = args.clients.div_ceil(64);
        let t = Tracker {
            clients: args.clients,
            timeout: args.timeout,
            slots: (0..args.window)
                .map(|_| Slot {
                    seq: 0,
                    active: false,
                    sent_at: Instant::now(),
                    got: 0,
                    bits: vec![0; words],
                })
                .collect(),
            in_flight: 0,
            expect_len: 3 + args.size,
            latencies_ns: Vec::with_capacity(args.messages.min(10_000_000) as usize),
            c: Counters::default(),
        };
        Ok(Gen {
            fds: socks.iter().map(|s| s.as_raw_fd()).collect(),
            events: vec![EpollEvent::empty(); args.clients.min(1024)],
            batch: Batch::new(3 + args.size + 64),
            t,
            payload: vec![b'x'; args.size],
            hb_start: Instant::now(),
            hb_total: 0,
            socks,
            epoll,
            args,
        })
    }

    /// Send one small control word from client `i`; errors are only counted.
    fn send_word(&mut self, i: usize, word: &[u8]) {
        if self.socks[i].send(word).is_err() {
            self.t.c.send_errors += 1;
        }
    }

    /// Heartbeats from all N clients every hb_interval, spread evenly: send those now due.
    fn heartbeats(&mut self, now: Instant) {
        let n = self.args.clients as u64;
        let periods = now.duration_since(self.hb_start).as_secs_f64() / self.args.hb_interval;
        let due = (periods * n as f64) as u64;
        // After a stall, do not flood the server: at most one round at once.
        if due > self.hb_total + n {
            self.hb_total = due - n;
        }
        while self.hb_total < due {
            self.send_word((self.hb_total % n) as usize, b"HB");
            self.hb_total += 1;
            self.t.c.hb_sent += 1;
        }
    }

    /// Client 0 sends message `seq`; false if no slot is free or the socket cannot take it now.
    fn send_message(&mut self, seq: u64) -> bool {
        let Some(idx) = self.t.free_slot(seq) else {
            return false;
        };
        self.payload[..8].copy_from_slice(&seq.to_le_bytes());
        if self.socks[0].send(&self.payload).is_err() {
            self.t.c.send_errors += 1;
            return false;
        }
        let slot = &mut self.t.slots[idx];
        slot.seq = seq;
        slot.active = true;
        slot.got = 0;
        slot.bits.fill(0);
        slot.sent_at = Instant::now();
        self.t.in_flight += 1;
        true
    }

    /// Handle every datagram queued now, after waiting up to 1 ms for one in `--mode sleep`.
    fn pump(&mut self) -> Result<(), String> {
        let Some(epoll) = &self.epoll else {
            return self.pump_spinning();
        };
        let ready = match epoll.wait(&mut self.events, EpollTimeout::from(1u16)) {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(e) => return Err(format!("epoll_wait: {e}")),
        };
        for e in 0..ready {
            self.drain(self.events[e].data() as usize);
        }
        Ok(())
    }

    /// `poll` with a zero timeout registers no wake-up on the sockets, unlike epoll.
    fn pump_spinning(&mut self) -> Result<(), String> {
        let mut fds: Vec<PollFd<'_>> = (self.socks.iter())
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready: Vec<usize> = (fds.iter().enumerate())
            .filter(|(_, fd)| fd.any() == Some(true))
            .map(|(client, _)| client)
            .collect();
        for client in ready {
            self.drain(client);
        }
        Ok(())
    }

    /// Take and handle everything queued on one client's socket.
    fn drain(&mut self, client: usize) {
        loop {
            // EAGAIN: drained. ECONNREFUSED (an ICMP error: the server's port closed) or
            // EINTR: nothing to take now either; the run's bounds end it.
            let got = self.batch.recv(self.fds[client]).unwrap_or(0);
            for i in 0..got {
                if self.batch.truncated[i] {
                    self.t.c.other += 1;
                } else {
                    self.t.on_datagram(client, self.batch.datagram(i));
                }
            }
            if got < BATCH {
                break;
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64
}

fn run(args: Args) -> Result<String, String> {
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    let deadline = started + Duration::from_secs_f64(args.max_seconds);
    let mut g = Gen::new(args)?;
    let n = g.args.clients;
    let spin = g.args.mode == Mode::Spin;

    // 1. Join: a heartbeat from each client, in paced batches.
    for i in 0..n {
        g.send_word(i, b"HB");
        if i % JOIN_BATCH == JOIN_BATCH - 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    g.hb_start = Instant::now();
    g.hb_total = 0;

    // 2. Warm-up: until one broadcast reaches all N clients.
    let warm_timeout = Duration::from_millis(1000);
    let mut joined = false;
    let mut tries = 0;
    while tries < WARMUP_TRIES && Instant::now() < deadline {
        let seq = WARMUP_SEQ + tries;
        tries += 1;
        if !g.send_message(seq) {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let idx = g.t.find_slot(seq).expect("just sent");
        let sent = Instant::now();
        while g.t.slots[idx].active && sent.elapsed() < warm_timeout && Instant::now() < deadline {
            g.heartbeats(Instant::now());
            g.pump()?;
        }
        if !g.t.slots[idx].active {
            joined = true;
            break;
        }
        // The server missed some heartbeats: the clients without a copy send one again.
        let missing: Vec<usize> = (0..n)
            .filter(|&c| g.t.slots[idx].bits[c / 64] & (1 << (c % 64)) == 0)
            .collect();
        g.t.abandon();
        for (k, &c) in missing.iter().enumerate() {
            g.send_word(c, b"HB");
            if k % JOIN_BATCH == JOIN_BATCH - 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !joined {
        for i in 0..n {
            g.send_word(i, b"quit");
        }
        return Err(format!(
            "the server did not reach all {n} clients after {tries} warm-up messages"
        ));
    }

    // 3. Measure.
    g.t.c = Counters {
        hb_sent: g.t.c.hb_sent,
        ..Counters::default()
    };
    g.t.latencies_ns.clear();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut next_seq = 0u64;
    let mut hit_deadline = false;
    loop {
        let now = Instant::now();
        g.heartbeats(now);
        while g.t.in_flight < g.args.window && next_seq < g.args.messages {
            if !g.send_message(next_seq) {
                break;
            }
            next_seq += 1;
        }
        g.t.expire(now);
        if next_seq >= g.args.messages && g.t.in_flight == 0 {
            break;
        }
        if now >= deadline {
            g.t.abandon();
            hit_deadline = true;
            break;
        }
        g.pump()?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let gen_cpu = cpu_seconds() - cpu0;

    // 4. Leave.
    for i in 0..n {
        g.send_word(i, b"quit");
    }

    let mut lat = std::mem::take(&mut g.t.latencies_ns);
    lat.sort_unstable();
    let c = &g.t.c;
    let a = &g.args;
    let rate = c.delivered as f64 / elapsed;
    let p50 = percentile(&lat, 50.0) / 1e3;
    let p99 = percentile(&lat, 99.0) / 1e3;
    let mode = if spin { "spin" } else { "sleep" };
    let unsent = a.messages - next_seq;
    Ok(if a.json {
        let num = |x: f64| {
            if x.is_finite() {
                format!("{x:.3}")
            } else {
                "null".into()
            }
        };
        format!(
            "{{\"server\": \"{}\", \"clients\": {}, \"messages\": {}, \"size\": {}, \"window\": {}, \
\"mode\": \"{mode}\", \"elapsed_s\": {}, \"deliveries\": {}, \"deliveries_per_s\": {}, \
\"p50_us\": {}, \"p99_us\": {}, \"lost\": {}, \"cut_off\": {}, \"completed\": {}, \"timed_out\": {}, \
\"unsent\": {unsent}, \"late\": {}, \"other\": {}, \"hb_sent\": {}, \"send_errors\": {}, \
\"warmup_tries\": {tries}, \"hit_deadline\": {hit_deadline}, \"gen_cpu_s\": {}, \
\"gen_cpu_total_s\": {}}}",
            a.server,
            n,
            a.messages,
            a.size,
            a.window,
            num(elapsed),
            c.delivered,
            num(rate),
            num(p50),
            num(p99),
            c.lost,
            c.cut_off,
            c.completed,
            c.timed_out,
            c.late,
            c.other,
            c.hb_sent,
            c.send_errors,
            num(gen_cpu),
            num(cpu_seconds() - cpu_start),
        )
    } else {
        format!(
            "{mode} N={n} M={} size={} W={}: {:.0} deliveries/s, {:.3} s, p50 {p50:.0} us, \
p99 {p99:.0} us, completed {}/{}, lost {}, timed out {}, cut off {}, unsent {unsent}, late {}, \
other {}, generator cpu {gen_cpu:.2} s",
            a.messages,
            a.size,
            a.window,
            rate,
            elapsed,
            c.completed,
            a.messages,
            c.lost,
            c.timed_out,
            c.cut_off,
            c.late,
            c.other
        )
    })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    match run(args) {
        Ok(line) => println!("{line}"),
        Err(msg) => {
            eprintln!("loadgen: {msg}");
            std::process::exit(1);
        }
    }
}
