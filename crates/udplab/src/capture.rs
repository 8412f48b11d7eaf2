//! Capture: every datagram an endpoint's [`Tap`] sees, written to a pcap file that Wireshark,
//! tshark and `udplab.read_capture` open.
//!
//! - Format: classic pcap, little-endian, nanosecond timestamps (magic `0xa1b23c4d`), link type
//!   RAW (101: each record starts with an IPv4 or IPv6 header). Every record holds an IP and a
//!   UDP header built from the endpoint's and the peer's real addresses and ports, with correct
//!   lengths and checksums, and the whole payload (nothing is snapped).
//! - Off the hot path: the tap copies the datagram into a bounded queue ([`QUEUE`] records,
//!   32 MiB of payload, no allocation per datagram; a full queue counts the datagram as
//!   `dropped`) under a short lock and returns. The first datagram of a batch wakes the writer
//!   thread (named `capture`), which lets the batch grow for [`GATHER`] and takes it whole.
//! - Records in the file are in time order. A datagram's time is read before the tap sees it
//!   (before the send, for a sent one), and the threads of an endpoint (or of several) reach
//!   the queue in either order, so a batch may hold a record stamped before one already taken.
//!   The writer therefore holds every record back for [`HOLD`] after taking it and writes, in
//!   time order, the records whose hold is over: a record is never overtaken by one stamped
//!   later unless its thread took longer than [`HOLD`] from reading the clock to the tap (a
//!   machine under heavy load). Such a straggler is written with the time of the record before
//!   it, so that the order holds; a step back of more than [`CLOCK_STEP`] is the wall clock
//!   being set back, and its records keep their own times.
//! - Each round's records are encoded and written in one write, then flushed: what was seen
//!   reaches the file well within [`FLUSH_EVERY`], and at [`Capture::close`]. The file only
//!   ever grows by whole records, so it is readable while it grows, and after a crash up to
//!   its last whole record.
//! - A size cap (`limit`, [`DEFAULT_LIMIT`]): the first record that would make the file larger
//!   is counted as `skipped`, and so is every later one.
//! - A write error (a full disk, a closed file) is logged once; the records it lost and every
//!   later one are counted as `errors`. The chat never notices.
//! - Nothing is written before [`Capture::begin`]: a file opened by path ([`Capture::create`])
//!   keeps what it held until then, and a capture closed without beginning leaves it as it was
//!   (and removes it if `create` made it). The owner begins once what it records has started,
//!   so a start that fails (a port in use) never empties an earlier capture.
//!
//! An endpoint bound to an unspecified address (`0.0.0.0`, `::`) does not know which of its
//! addresses a datagram used; the record then shows the loopback address when the peer is on
//! loopback, else the unspecified address of the peer's family.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use byteorder_slice::LittleEndian;
use etherparse::PacketBuilder;
use log::warn;
use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::{DataLink, Endianness, TsResolution};

use crate::endpoint::{Datagram, Direction, Tap};

/// The default size cap of a capture file, in bytes (100 MiB).
pub const DEFAULT_LIMIT: u64 = 100 * 1024 * 1024;
/// What is written reaches the file at most this long after its datagram was seen (in
/// practice about [`GATHER`], [`HOLD`] and the time of one write).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How long the writer thread, woken by the first datagram of a batch, lets the batch grow
/// before it takes it: one wake-up per batch, not one per datagram.
pub const GATHER: Duration = Duration::from_millis(10);
/// How long a record taken from the queue waits before it is written, so that a record
/// stamped earlier but queued later can still go before it (see the module documentation).
/// Measured before this existed, on a loaded machine: such records came up to 20 ms late.
pub const HOLD: Duration = Duration::from_millis(50);
/// A record stamped more than this before the last one written is taken as the wall clock
/// set back, not as a late record: it keeps its time.
pub const CLOCK_STEP: Duration = Duration::from_secs(1);
/// Datagrams waiting for the writer thread; past this the tap counts them as `dropped`.
pub const QUEUE: usize = 65_536;
/// The file header's snapshot length: more than any IP packet holding a UDP datagram, so
/// nothing is cut (libpcap's own maximum).
pub const SNAPLEN: u32 = 262_144;
/// The length of the file header.
pub const HEADER_LEN: u64 = 24;
/// Encoded bytes kept before a write even when [`FLUSH_EVERY`] has not passed.
const BATCH: usize = 1 << 20;
/// Hop limit written into the IP headers.
const TTL: u8 = 64;

/// The counters of a capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Records written to the file.
    pub records: u64,
    /// Bytes in the file, the header included.
    pub bytes: u64,
    /// Records not written because the file reached its limit.
    pub skipped: u64,
    /// Datagrams not recorded because the writer fell [`QUEUE`] records behind (or the
    /// capture was closed).
    pub dropped: u64,
    /// Records lost to write errors.
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    records: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
    /// Set once the file reached its limit: the tap counts what follows as skipped at once.
    full: AtomicBool,
}

/// The 24-byte file header: nanosecond pcap, link type RAW, no snapping.
pub fn file_header() -> Vec<u8> {
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: SNAPLEN,
        datalink: DataLink::RAW,
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::Little,
    };
    let mut out = Vec::with_capacity(HEADER_LEN as usize);
    header
        .write_to(&mut out)
        .expect("a constant header encodes");
    out
}

/// The address a record shows for an endpoint bound to `local` talking to `peer` (see the
/// module documentation), in the peer's family.
fn shown_local(local: IpAddr, peer: IpAddr) -> IpAddr {
    match (local, peer) {
        (l, p) if !l.is_unspecified() && l.is_ipv4() == p.is_ipv4() => l,
        (_, IpAddr::V4(p)) if p.is_loopback() => Ipv4Addr::LOCALHOST.into(),
        (_, IpAddr::V4(_)) => Ipv4Addr::UNSPECIFIED.into(),
        (_, IpAddr::V6(p)) if p.is_loopback() => Ipv6Addr::LOCALHOST.into(),
        (_, IpAddr::V6(_)) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// The IP packet (IP header, UDP header, payload) of a datagram as it crossed the socket.
/// Fails only for a payload longer than an IP packet can hold.
pub fn packet(datagram: &Datagram<'_>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    write_packet(datagram, &mut out)?;
    Ok(out)
}

fn write_packet(datagram: &Datagram<'_>, out: &mut Vec<u8>) -> io::Result<()> {
    let local = SocketAddr::new(
        shown_local(datagram.local.ip(), datagram.peer.ip()),
        datagram.local.port(),
    );
    let (src, dst) = match datagram.direction {
        Direction::In => (datagram.peer, local),
        Direction::Out => (local, datagram.peer),
    };
    let builder = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), TTL),
        (s, d) => PacketBuilder::ipv6(v6(s).octets(), v6(d).octets(), TTL),
    }
    .udp(src.port(), dst.port());
    out.reserve(builder.size(datagram.payload.len()));
    builder
        .write(out, datagram.payload)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Appends the pcap record (16-byte record header and the IP packet) of `datagram` to `out`.
pub fn encode_record(datagram: &Datagram<'_>, out: &mut Vec<u8>) -> io::Result<()> {
    encode_with(datagram, &mut Vec::new(), out)
}

/// [`encode_record`] with a buffer for the IP packet that is reused across records.
fn encode_with(
    datagram: &Datagram<'_>,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    scratch.clear();
    write_packet(datagram, scratch)?;
    let since_epoch = datagram.at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let len = u32::try_from(scratch.len()).expect("an IP packet is shorter than 4 GiB");
    PcapPacket::new(since_epoch, len, scratch)
        .write_to::<_, LittleEndian>(out, TsResolution::NanoSecond, SNAPLEN)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok(())
}

/// A datagram seen by a tap, its payload at `start..start + len` of the queue's bytes.
#[derive(Clone, Copy)]
struct Meta {
    direction: Direction,
    at: SystemTime,
    local: SocketAddr,
    peer: SocketAddr,
    start: usize,
    len: usize,
}

/// What the taps hand to the writer thread: every payload copied into one growing buffer, so
/// a datagram costs no allocation of its own.
#[derive(Default)]
struct Queue {
    metas: Vec<Meta>,
    bytes: Vec<u8>,
    /// Set by [`Capture::begin`]: the writer may write.
    begun: bool,
    closed: bool,
}

/// Payload bytes waiting for the writer thread; past this the tap counts datagrams as
/// `dropped`.
const QUEUE_BYTES: usize = 32 << 20;

/// What the taps and the writer thread share.
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when the queue gets its first datagram, at begin and at close.
    ready: Condvar,
    counters: Counters,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the tap holds: the queue to the writer and the counters.
struct CaptureTap(Arc<Shared>);

impl Tap for CaptureTap {
    fn datagram(&self, d: &Datagram<'_>) {
        let counters = &self.0.counters;
        if counters.full.load(Ordering::Relaxed) {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut queue = self.0.queue();
        if queue.closed
            || queue.metas.len() >= QUEUE
            || queue.bytes.len() + d.payload.len() > QUEUE_BYTES
        {
            drop(queue);
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let start = queue.bytes.len();
        queue.bytes.extend_from_slice(d.payload);
        queue.metas.push(Meta {
            direction: d.direction,
            at: d.at,
            local: d.local,
            peer: d.peer,
            start,
            len: d.payload.len(),
        });
        let first = queue.metas.len() == 1;
        drop(queue);
        if first {
            self.0.ready.notify_one();
        }
    }
}

/// A batch taken from the queue, sorted by time, with the instant its [`HOLD`] is over and its
/// first record not written yet.
struct Batch {
    due: Instant,
    records: Queue,
    next: usize,
}

impl Batch {
    fn head(&self) -> Option<&Meta> {
        self.records.metas.get(self.next)
    }
}

/// The batches taken and not wholly written yet, oldest first. Records are written by merging
/// the batches in time order, so no record is moved or copied while it waits.
#[derive(Default)]
struct Held {
    batches: Vec<Batch>,
    /// Emptied batches, whose buffers (and their capacity) take the next batch.
    spare: Vec<Queue>,
}

/// How many emptied batches are kept for their buffers.
const SPARE: usize = 4;

impl Held {
    /// Empty buffers to swap with the queue's.
    fn buffers(&mut self) -> Queue {
        self.spare.pop().unwrap_or_default()
    }

    /// Takes in a batch from the queue, to be written from `due` on.
    fn admit(&mut self, mut records: Queue, due: Instant) {
        if records.metas.is_empty() {
            self.spare.push(records);
            return;
        }
        // Stable: records of one time keep the order they were queued in.
        records.metas.sort_by_key(|m| m.at);
        self.batches.push(Batch {
            due,
            records,
            next: 0,
        });
    }

    /// The batch whose next record is the earliest of all (the oldest batch among equals).
    fn first(&self) -> Option<usize> {
        self.batches
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.head().map(|m| (m.at, i)))
            .min()
            .map(|(_, i)| i)
    }

    /// When the earliest record may be written (it holds back the ones after it).
    fn next_due(&self) -> Option<Instant> {
        self.first().map(|i| self.batches[i].due)
    }

    /// Keeps the buffers of the batches wholly written.
    fn release_written(&mut self) {
        let mut i = 0;
        while i < self.batches.len() {
            if self.batches[i].head().is_some() {
                i += 1;
                continue;
            }
            let mut done = self.batches.remove(i).records;
            if self.spare.len() < SPARE {
                done.metas.clear();
                done.bytes.clear();
                self.spare.push(done);
            }
        }
    }
}

/// What the writer thread writes to: told when the capture begins, and when it was closed
/// without beginning.
trait Sink: Write + Send + 'static {
    /// The capture begins: the first write follows.
    fn begin(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// The capture was closed before it began: undo what opening it did.
    fn abandon(&mut self) {}
}

/// Any writer, as it is.
struct Plain<W>(W);

impl<W: Write> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send + 'static> Sink for Plain<W> {}

/// A file opened by [`Capture::create`]: emptied when the capture begins, not when opened.
struct PathFile {
    file: File,
    path: PathBuf,
    /// Whether opening it made it (then a capture that never began removes it).
    created: bool,
}

impl PathFile {
    fn open(path: &Path) -> io::Result<PathFile> {
        let made = OpenOptions::new().write(true).create_new(true).open(path);
        let (file, created) = match made {
            Ok(file) => (file, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                (OpenOptions::new().write(true).open(path)?, false)
            }
            Err(e) => return Err(e),
        };
        Ok(PathFile {
            file,
            path: path.to_owned(),
            created,
        })
    }
}

impl Write for PathFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sink for PathFile {
    fn begin(&mut self) -> io::Result<()> {
        // A pipe or a device (a FIFO that Wireshark reads, /dev/stdout) has nothing to empty.
        if self.file.metadata()?.is_file() {
            self.file.set_len(0)?;
        }
        Ok(())
    }

    fn abandon(&mut self) {
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Encodes batches of records, each sorted by time (an endpoint's receiving and sending
/// threads reach the queue in either order), and writes each batch to the sink as whole
/// records in one write: the writer thread's state.
struct Writer<W: Sink> {
    sink: W,
    name: String,
    limit: u64,
    /// Bytes in the file plus bytes in `encoded`.
    size: u64,
    /// Encoded records not written yet, and how many.
    encoded: Vec<u8>,
    pending: u64,
    /// The IP packet being encoded.
    scratch: Vec<u8>,
    /// The time of the last record encoded: none goes into the file before it.
    last: Option<SystemTime>,
    failed: bool,
    shared: Arc<Shared>,
}

/// The size of a datagram's pcap record: record header, IP header, UDP header, payload.
fn record_len(m: &Meta) -> usize {
    // the packet has the peer's family (see `shown_local`)
    let ip = if m.peer.is_ipv4() { 20 } else { 40 };
    16 + ip + 8 + m.len
}

impl<W: Sink> Writer<W> {
    fn new(sink: W, name: String, limit: u64, shared: Arc<Shared>) -> Writer<W> {
        Writer {
            sink,
            name,
            limit,
            size: HEADER_LEN,
            encoded: Vec::new(),
            pending: 0,
            scratch: Vec::new(),
            last: None,
            failed: false,
            shared,
        }
    }

    fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Writes the held records whose hold is over at `now` (all of them when `all`), in time
    /// order, and keeps the others.
    fn write_due(&mut self, held: &mut Held, now: Instant, all: bool) {
        while let Some(i) = held.first() {
            if !all && held.batches[i].due > now {
                break;
            }
            // The records of batch i up to the earliest head of the others go in one run.
            let limit = held
                .batches
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .filter_map(|(j, b)| b.head().map(|m| (m.at, j)))
                .min();
            let batch = &mut held.batches[i];
            while let Some(&m) = batch.head() {
                if limit.is_some_and(|first| (m.at, i) > first) {
                    break;
                }
                batch.next += 1;
                self.add(&m, &batch.records.bytes[m.start..m.start + m.len]);
            }
        }
        self.flush();
        held.release_written();
    }

    /// The time to write for a record stamped `at`: never before the last one written,
    /// unless the wall clock was set back (see the module documentation).
    fn in_order(&mut self, at: SystemTime) -> SystemTime {
        let at = match self.last {
            Some(last)
                if at < last && last.duration_since(at).unwrap_or_default() <= CLOCK_STEP =>
            {
                last
            }
            _ => at,
        };
        self.last = Some(at);
        at
    }

    fn add(&mut self, m: &Meta, payload: &[u8]) {
        if self.failed {
            self.counters().errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let len = record_len(m) as u64;
        if self.size + len > self.limit {
            self.counters().skipped.fetch_add(1, Ordering::Relaxed);
            if !self.counters().full.swap(true, Ordering::Relaxed) {
                warn!(
                    "capture {} reached its limit of {} bytes: later datagrams are counted as \
                     skipped, not written",
                    self.name, self.limit
                );
            }
            return;
        }
        let datagram = Datagram {
            direction: m.direction,
            at: self.in_order(m.at),
            local: m.local,
            peer: m.peer,
            payload,
        };
        let start = self.encoded.len();
        if let Err(e) = encode_with(&datagram, &mut self.scratch, &mut self.encoded) {
            self.encoded.truncate(start);
            self.counters().errors.fetch_add(1, Ordering::Relaxed);
            warn!(
                "capture {}: a datagram could not be recorded: {e}",
                self.name
            );
            return;
        }
        self.size += len;
        self.pending += 1;
        if self.encoded.len() >= BATCH {
            self.flush();
        }
    }

    /// Writes the encoded records (whole records, one write) and flushes the sink.
    fn flush(&mut self) {
        if self.encoded.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.pending);
        let result = self
            .sink
            .write_all(&self.encoded)
            .and_then(|()| self.sink.flush());
        match result {
            Ok(()) => {
                self.counters()
                    .records
                    .fetch_add(records, Ordering::Relaxed);
                let bytes = self.encoded.len() as u64;
                self.counters().bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(e) => {
                self.fail(&e);
                self.counters().errors.fetch_add(records, Ordering::Relaxed);
            }
        }
        self.encoded.clear();
    }

    fn fail(&mut self, e: &io::Error) {
        if !self.failed {
            self.failed = true;
            warn!(
                "capture {}: writing failed ({e}); the chat goes on, and datagrams from now on \
                 are counted as capture errors, not written",
                self.name
            );
        }
    }

    /// Waits for [`Capture::begin`]; true once begun, false when closed first (then the
    /// sink is abandoned and what was queued counted as dropped).
    fn wait_for_begin(&mut self) -> bool {
        let mut queue = self.shared.queue();
        while !queue.begun && !queue.closed {
            queue = self
                .shared
                .ready
                .wait(queue)
                .unwrap_or_else(|e| e.into_inner());
        }
        if queue.begun {
            return true;
        }
        let never_written = queue.metas.len() as u64;
        drop(queue);
        self.counters()
            .dropped
            .fetch_add(never_written, Ordering::Relaxed);
        self.sink.abandon();
        false
    }

    fn run(mut self) {
        if !self.wait_for_begin() {
            return;
        }
        let header = file_header();
        match self.sink.begin().and_then(|()| {
            self.sink.write_all(&header)?;
            self.sink.flush()
        }) {
            Ok(()) => {
                self.counters()
                    .bytes
                    .fetch_add(HEADER_LEN, Ordering::Relaxed);
            }
            Err(e) => self.fail(&e),
        }
        let shared = Arc::clone(&self.shared);
        let mut held = Held::default();
        loop {
            let mut queue = shared.queue();
            // Until datagrams come, the first held record's hold is over, or the capture closes.
            while queue.metas.is_empty() && !queue.closed {
                let Some(due) = held.next_due() else {
                    queue = shared.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
                    continue;
                };
                let Some(left) = due.checked_duration_since(Instant::now()) else {
                    break;
                };
                queue = shared
                    .ready
                    .wait_timeout(queue, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if !queue.metas.is_empty() && !queue.closed {
                // Let the batch grow (or the capture close) for a moment.
                queue = shared
                    .ready
                    .wait_timeout(queue, GATHER)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            // Swapped with emptied buffers, so both keep their capacity.
            let mut taken = held.buffers();
            std::mem::swap(&mut taken.metas, &mut queue.metas);
            std::mem::swap(&mut taken.bytes, &mut queue.bytes);
            let closed = queue.closed;
            drop(queue);
            let now = Instant::now();
            held.admit(taken, now + HOLD);
            self.write_due(&mut held, now, closed);
            if closed {
                break;
            }
        }
    }
}

/// A capture file being written. Give [`tap`](Self::tap) to the endpoints to record; call
/// [`close`](Self::close) (or drop it) once they are done.
pub struct Capture {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    name: String,
    /// The process whose thread writes: a forked child holds a copy of this struct, but
    /// neither the thread nor the file are its own.
    pid: u32,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("name", &self.name)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Capture {
    /// Opens the file at `path` for a capture (creating it if it does not exist) and starts
    /// the writer thread. The file is left as it is until [`begin`](Self::begin) empties it
    /// and writes the file header. The error is the one of opening the file.
    pub fn create(path: &Path, limit: u64) -> io::Result<Capture> {
        check_limit(limit)?;
        let file = PathFile::open(path)?;
        Capture::start(file, path.display().to_string(), limit)
    }

    /// Starts the writer thread, which writes the file header to `sink` at
    /// [`begin`](Self::begin). `name` names the capture in log lines. `limit` is the size cap
    /// in bytes, at least [`HEADER_LEN`]. Write errors, the header's included, are logged and
    /// counted, never returned.
    pub fn new(sink: impl Write + Send + 'static, name: String, limit: u64) -> io::Result<Capture> {
        check_limit(limit)?;
        Capture::start(Plain(sink), name, limit)
    }

    fn start(sink: impl Sink, name: String, limit: u64) -> io::Result<Capture> {
        let shared = Arc::new(Shared::default());
        let writer = Writer::new(sink, name.clone(), limit, Arc::clone(&shared));
        let handle = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || writer.run())?;
        Ok(Capture {
            shared,
            writer: Mutex::new(Some(handle)),
            name,
            pid: std::process::id(),
        })
    }

    /// Lets the writer write: the file header, then what the tap has queued and will queue.
    /// Call it once what is recorded has started. Idempotent.
    pub fn begin(&self) {
        self.shared.queue().begun = true;
        self.shared.ready.notify_one();
    }

    /// The tap to set on every endpoint whose datagrams this file records.
    pub fn tap(&self) -> Arc<dyn Tap> {
        Arc::new(CaptureTap(Arc::clone(&self.shared)))
    }

    /// What the file is called in log lines.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A copy of the counters.
    pub fn stats(&self) -> CaptureStats {
        let c = &self.shared.counters;
        CaptureStats {
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// Writes what is queued, flushes and ends the writer thread; datagrams tapped later are
    /// counted as dropped. A capture that never began writes nothing: its file is left as it
    /// was (removed if [`create`](Self::create) made it). Idempotent. In a forked child it
    /// does nothing (see [`Drop`](#impl-Drop-for-Capture)).
    pub fn close(&self) {
        if self.forked() {
            return;
        }
        let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            self.shared.queue().closed = true;
            self.shared.ready.notify_one();
            let _ = handle.join();
        }
    }
}

fn check_limit(limit: u64) -> io::Result<()> {
    if limit < HEADER_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "capture_limit must be at least {HEADER_LEN} bytes (the file header), not {limit}"
            ),
        ));
    }
    Ok(())
}

impl Capture {
    /// Whether this is a forked child's copy: the writer thread is not in this process.
    fn forked(&self) -> bool {
        std::process::id() != self.pid
    }
}

/// Closes the capture. A forked child's copy forgets the writer thread instead: joining a
/// thread that does not exist in the child panics or hangs, and locking the queue could wait
/// for ever on a lock a parent's thread held at the fork. The parent's file stays whole.
impl Drop for Capture {
    fn drop(&mut self) {
        if self.forked() {
            let writer = self.writer.get_mut().unwrap_or_else(|e| e.into_inner());
            // Dropping the handle would detach a thread that does not exist here.
            std::mem::forget(writer.take());
            return;
        }
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram<'a>(
        direction: Direction,
        local: &str,
        peer: &str,
        payload: &'a [u8],
    ) -> Datagram<'a> {
        Datagram {
            direction,
            at: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            local: local.parse().unwrap(),
            peer: peer.parse().unwrap(),
            payload,
        }
    }

    #[test]
    fn file_header_is_nanosecond_raw_pcap() {
        assert_eq!(
            file_header(),
            [
                0x4d, 0x3c, 0xb2, 0xa1, // magic 0xa1b23c4d, little-endian
                2, 0, 4, 0, // version 2.4
                0, 0, 0, 0, 0, 0, 0, 0, // thiszone, sigfigs
                0, 0, 4, 0, // snaplen 262144
                101, 0, 0, 0, // LINKTYPE_RAW
            ]
        );
    }

    // Bytes checked by hand against RFC 791/768 and by tshark ("[Checksum Status: Good]").
    #[test]
    fn ipv4_record_matches_known_bytes() {
        let d = datagram(Direction::In, "127.0.0.1:9999", "127.0.0.1:40000", b"HB");
        let mut out = Vec::new();
        encode_record(&d, &mut out).unwrap();
        let expected: Vec<u8> = vec![
            // record header: seconds, nanoseconds, included and original length (30)
            0x00, 0xf1, 0x53, 0x65, 0x15, 0xcd, 0x5b, 0x07, 30, 0, 0, 0, 30, 0, 0, 0,
            // IPv4: version/IHL, TOS, total length 30, id 0, DF, TTL 64, UDP, checksum
            0x45, 0x00, 0x00, 0x1e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x3c, 0xcd, 127, 0, 0, 1,
            127, 0, 0, 1, // UDP: 40000 -> 9999, length 10, checksum
            0x9c, 0x40, 0x27, 0x0f, 0x00, 0x0a, 0xf6, 0x45, b'H', b'B',
        ];
        assert_eq!(out, expected);
    }

    /// RFC 1071: the one's complement sum of 16-bit words.
    fn sum(data: &[u8], mut acc: u32) -> u32 {
        for pair in data.chunks(2) {
            acc += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
        acc
    }

    fn fold(mut acc: u32) -> u16 {
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn ipv6_packet_has_valid_lengths_and_checksum() {
        let payload = b"ACKhello, world";
        let d = datagram(Direction::Out, "[::1]:9999", "[::1]:40000", payload);
        let p = packet(&d).unwrap();
        assert_eq!(p.len(), 40 + 8 + payload.len());
        assert_eq!(p[0] >> 4, 6);
        assert_eq!(u16::from_be_bytes([p[4], p[5]]) as usize, 8 + payload.len());
        assert_eq!(p[6], 17);
        assert_eq!(&p[8..24], &Ipv6Addr::LOCALHOST.octets());
        assert_eq!(&p[40..42], &9999u16.to_be_bytes()); // sent: source is the endpoint
                                                        // pseudo-header + UDP header + payload sums to 0xffff when the checksum is right
        let mut acc = sum(&p[8..40], 0);
        acc += 17 + (8 + payload.len()) as u32;
        assert_eq!(fold(sum(&p[40..], acc)), 0);
    }

    #[test]
    fn unspecified_local_address_shows_the_peers_loopback() {
        let d = datagram(Direction::In, "[::]:9999", "127.0.0.1:40000", b"x");
        let p = packet(&d).unwrap();
        assert_eq!(p[0] >> 4, 4);
        assert_eq!(&p[16..20], &[127, 0, 0, 1]);
        let d = datagram(Direction::In, "0.0.0.0:9999", "192.0.2.7:40000", b"x");
        assert_eq!(&packet(&d).unwrap()[16..20], &[0, 0, 0, 0]);
    }

    /// A sink that fails every write, as a full disk does.
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn writer<W: Write + Send + 'static>(sink: W, limit: u64) -> Writer<Plain<W>> {
        Writer::new(Plain(sink), "test".into(), limit, Arc::default())
    }

    fn add<W: Sink>(w: &mut Writer<W>, payload: &[u8]) {
        let d = datagram(Direction::In, "127.0.0.1:1", "127.0.0.1:2", payload);
        let m = Meta {
            direction: d.direction,
            at: d.at,
            local: d.local,
            peer: d.peer,
            start: 0,
            len: payload.len(),
        };
        w.add(&m, payload);
    }

    #[test]
    fn records_past_the_limit_are_skipped() {
        // each record: 16 + 20 + 8 + 4 = 48 bytes; room for two after the header
        let mut w = writer(Vec::new(), HEADER_LEN + 2 * 48 + 47);
        for _ in 0..5 {
            add(&mut w, b"data");
        }
        w.flush();
        assert_eq!(w.sink.0.len(), 96);
        let c = w.counters();
        assert_eq!(c.records.load(Ordering::Relaxed), 2);
        assert_eq!(c.skipped.load(Ordering::Relaxed), 3);
        assert!(c.full.load(Ordering::Relaxed));
    }

    #[test]
    fn a_write_error_counts_every_later_record() {
        let mut w = writer(Full, DEFAULT_LIMIT);
        add(&mut w, b"a");
        add(&mut w, b"b");
        w.flush();
        add(&mut w, b"c");
        w.flush();
        assert!(w.failed);
        assert_eq!(w.counters().errors.load(Ordering::Relaxed), 3);
        assert_eq!(w.counters().records.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_record_reaches_the_file_while_the_capture_runs() {
        let path = std::env::temp_dir().join(format!("udplab-live-{}.pcap", std::process::id()));
        let capture = Capture::create(&path, DEFAULT_LIMIT).unwrap();
        capture.begin();
        capture
            .tap()
            .datagram(&datagram(Direction::In, "127.0.0.1:1", "127.0.0.1:2", b"x"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::metadata(&path).unwrap().len() < 24 + 16 + 29 {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing written without close()"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(capture.stats().records, 1);
        drop(capture);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn capture_writes_what_its_tap_saw_by_close() {
        let path = std::env::temp_dir().join(format!("udplab-capture-{}.pcap", std::process::id()));
        let capture = Capture::create(&path, DEFAULT_LIMIT).unwrap();
        let tap = capture.tap();
        capture.begin();
        for i in 0..100u8 {
            tap.datagram(&datagram(
                Direction::Out,
                "127.0.0.1:1",
                "127.0.0.1:2",
                &[i],
            ));
        }
        capture.close();
        tap.datagram(&datagram(
            Direction::Out,
            "127.0.0.1:1",
            "127.0.0.1:2",
            b"late",
        ));
        let stats = capture.stats();
        assert_eq!(stats.records, 100);
        assert_eq!(stats.dropped, 1);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(bytes.len() as u64, stats.bytes);
        assert_eq!(bytes.len(), 24 + 100 * (16 + 29));
        assert_eq!(bytes[24 + 16 + 28], 0); // first payload
        assert_eq!(*bytes.last().unwrap(), 99); // last payload
    }

    fn temp_path(what: &str) -> PathBuf {
        std::env::temp_dir().join(format!("udplab-{what}-{}.pcap", std::process::id()))
    }

    /// Before `begin` existed, `create` truncated the file at once: a start that failed
    /// afterwards (a port in use) left an earlier capture empty.
    #[test]
    fn a_capture_that_never_began_leaves_an_existing_file_as_it_was() {
        let path = temp_path("kept");
        std::fs::write(&path, b"an earlier capture").unwrap();
        let capture = Capture::create(&path, DEFAULT_LIMIT).unwrap();
        let tap = capture.tap();
        tap.datagram(&datagram(Direction::In, "127.0.0.1:1", "127.0.0.1:2", b"x"));
        assert_eq!(std::fs::read(&path).unwrap(), b"an earlier capture");
        capture.close();
        assert_eq!(std::fs::read(&path).unwrap(), b"an earlier capture");
        assert_eq!((capture.stats().records, capture.stats().dropped), (0, 1));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_capture_that_never_began_removes_the_file_it_made() {
        let path = temp_path("made");
        let _ = std::fs::remove_file(&path);
        drop(Capture::create(&path, DEFAULT_LIMIT).unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn begin_replaces_what_the_file_held() {
        let path = temp_path("replaced");
        std::fs::write(&path, vec![7u8; 1000]).unwrap();
        let capture = Capture::create(&path, DEFAULT_LIMIT).unwrap();
        let tap = capture.tap();
        tap.datagram(&datagram(Direction::In, "127.0.0.1:1", "127.0.0.1:2", b"x"));
        capture.begin();
        capture.close();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(bytes.len(), 24 + 16 + 29);
        assert_eq!(bytes[..24], file_header());
        assert_eq!(capture.stats().records, 1);
    }

    #[test]
    fn a_bad_limit_is_refused_before_the_file_is_touched() {
        let path = temp_path("limit");
        std::fs::write(&path, b"keep").unwrap();
        let err = Capture::create(&path, HEADER_LEN - 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
        std::fs::remove_file(&path).unwrap();
    }

    /// The times of the pcap records in `bytes` (records only, no file header).
    fn record_times(mut bytes: &[u8]) -> Vec<Duration> {
        let mut times = Vec::new();
        while !bytes.is_empty() {
            let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
            times.push(Duration::new(word(0).into(), word(4)));
            bytes = &bytes[16 + word(8) as usize..];
        }
        times
    }

    /// A batch as the tap queues it: one record per time, `ms` after [`datagram`]'s time.
    fn batch(ms: &[u64]) -> Queue {
        let mut queue = Queue::default();
        for &ms in ms {
            let d = datagram(Direction::In, "127.0.0.1:1", "127.0.0.1:2", b"x");
            queue.metas.push(Meta {
                direction: d.direction,
                at: d.at + Duration::from_millis(ms),
                local: d.local,
                peer: d.peer,
                start: queue.bytes.len(),
                len: 1,
            });
            queue.bytes.push(b'x');
        }
        queue
    }

    fn ms_after_start(times: Vec<Duration>) -> Vec<u64> {
        let start = datagram(Direction::In, "127.0.0.1:1", "127.0.0.1:2", b"")
            .at
            .duration_since(UNIX_EPOCH)
            .unwrap();
        times
            .into_iter()
            .map(|t| (t - start).as_millis() as u64)
            .collect()
    }

    #[test]
    fn a_record_queued_after_a_later_one_is_still_written_before_it() {
        let mut w = writer(Vec::new(), DEFAULT_LIMIT);
        let mut held = Held::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        held.admit(batch(&[10, 20]), t0 + HOLD);
        w.write_due(&mut held, t0, false);
        assert!(w.sink.0.is_empty(), "written before its hold was over");
        // Stamped at 15 ms, but its thread reached the queue after the batch above was taken.
        held.admit(batch(&[15, 30]), t0 + ms(5) + HOLD);
        w.write_due(&mut held, t0 + HOLD, false);
        // 10 is due; 15 is not yet, and holds back 20 (due) behind it.
        assert_eq!(ms_after_start(record_times(&w.sink.0)), [10]);
        w.write_due(&mut held, t0 + ms(5) + HOLD, false);
        assert_eq!(ms_after_start(record_times(&w.sink.0)), [10, 15, 20, 30]);
        assert!(held.batches.is_empty() && held.spare.len() == 2);
    }

    proptest::proptest! {
        /// However the records are spread over batches, and whenever the writer looks, the file
        /// never steps back in time and holds every record; looked at only once all batches are
        /// in, it holds them exactly in time order.
        #[test]
        fn the_merge_of_the_batches_is_in_time_order(
            batches in proptest::collection::vec(proptest::collection::vec(0u64..500, 0..20), 0..8),
            looks in proptest::collection::vec(proptest::option::of(0u64..100), 0..8),
        ) {
            let mut w = writer(Vec::new(), DEFAULT_LIMIT);
            let mut held = Held::default();
            let t0 = Instant::now();
            for (k, times) in batches.iter().enumerate() {
                held.admit(batch(times), t0 + Duration::from_millis(10 * k as u64));
                if let Some(Some(ms)) = looks.get(k) {
                    w.write_due(&mut held, t0 + Duration::from_millis(*ms), false);
                }
            }
            w.write_due(&mut held, t0, true);
            let written = ms_after_start(record_times(&w.sink.0));
            let mut all: Vec<u64> = batches.concat();
            all.sort();
            proptest::prop_assert!(written.windows(2).all(|p| p[0] <= p[1]), "{:?}", written);
            proptest::prop_assert_eq!(written.len(), all.len());
            if looks.iter().take(batches.len()).all(Option::is_none) {
                proptest::prop_assert_eq!(written, all);
            }
            proptest::prop_assert!(held.batches.is_empty());
        }
    }

    #[test]
    fn a_straggler_past_the_hold_takes_the_time_before_it_but_a_clock_step_does_not() {
        let mut w = writer(Vec::new(), DEFAULT_LIMIT);
        let mut held = Held::default();
        let now = Instant::now();
        held.admit(batch(&[100]), now);
        w.write_due(&mut held, now, false);
        held.admit(batch(&[40, 2000]), now); // 60 ms late: written as of 100 ms
        w.write_due(&mut held, now, false);
        // the wall clock set back by more than CLOCK_STEP: a new time line begins
        held.admit(batch(&[500, 600]), now);
        w.write_due(&mut held, now, true);
        assert_eq!(
            ms_after_start(record_times(&w.sink.0)),
            [100, 100, 2000, 500, 600]
        );
    }

    /// Before, each batch was written as soon as it was taken: a record stamped before the
    /// last one written but queued after it (its thread was held up between reading the clock
    /// and the tap) went into the file after it, a step back in time (negative deltas in
    /// Wireshark; 4-9 per run of 10,000 sends from two threads on a loaded machine).
    #[test]
    fn the_file_never_steps_back_in_time() {
        let path = temp_path("order");
        let capture = Capture::create(&path, DEFAULT_LIMIT).unwrap();
        let tap = capture.tap();
        capture.begin();
        let late = datagram(Direction::Out, "127.0.0.1:1", "127.0.0.1:2", b"late");
        let mut early = late;
        early.at += Duration::from_millis(2);
        tap.datagram(&early);
        let deadline = Instant::now() + Duration::from_secs(5);
        while capture.stats().records == 0 {
            assert!(Instant::now() < deadline, "nothing written");
            std::thread::sleep(Duration::from_millis(1));
        }
        tap.datagram(&late);
        capture.close();
        assert_eq!(capture.stats().records, 2);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let times = record_times(&bytes[24..]);
        assert!(times[0] <= times[1], "{times:?}");
    }
}
