//! Where a datagram's fate is decided: the dice ([`Dice`]), one direction's delay queue
//! ([`Lane`]) and both directions with their history ([`Impairer`]). No socket and no clock:
//! the time is passed in, so the tests fabricate it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_pcg::rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use crate::watch::{Feed, Marks, Sighting, Watchers};

/// Which way a datagram travels through the link: its direction (named apart from
/// [`crate::endpoint::Direction`], whether a datagram went into or out of one socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Way {
    /// From a client to the target.
    Up,
    /// From the target back to a client.
    Down,
}

impl Way {
    /// Both directions, in the order of [`Impairer::stats`].
    pub const BOTH: [Way; 2] = [Way::Up, Way::Down];

    /// `"up"` or `"down"`, as in `stats()` and `events()`.
    pub fn name(self) -> &'static str {
        match self {
            Way::Up => "up",
            Way::Down => "down",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How datagrams are lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Each datagram independently with this probability (netem's `loss random`).
    Random(f64),
    /// The Gilbert-Elliott model with netem's `loss gemodel p r 1-h 1-k` parameters: a good
    /// and a bad state; `p` is the chance to go from good to bad and `r` from bad to good at
    /// each datagram; `one_minus_h` is the loss probability in the bad state and `one_minus_k`
    /// in the good one.
    GilbertElliott {
        /// Good to bad, per datagram.
        p: f64,
        /// Bad to good, per datagram.
        r: f64,
        /// Loss probability in the bad state (netem's `1-h`).
        one_minus_h: f64,
        /// Loss probability in the good state (netem's `1-k`).
        one_minus_k: f64,
    },
}

impl Loss {
    /// netem's defaults for the parameters not given: `r = 1 - p`, `1-h = 1`, `1-k = 0`.
    pub fn gemodel(
        p: f64,
        r: Option<f64>,
        one_minus_h: Option<f64>,
        one_minus_k: Option<f64>,
    ) -> Loss {
        Loss::GilbertElliott {
            p,
            r: r.unwrap_or(1.0 - p),
            one_minus_h: one_minus_h.unwrap_or(1.0),
            one_minus_k: one_minus_k.unwrap_or(0.0),
        }
    }
}

/// What the link does to one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// How datagrams are lost.
    pub loss: Loss,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Probability that a copy skips the delay queue (is sent at once).
    pub reorder: f64,
    /// Probability that one bit of a copy is flipped.
    pub corrupt: f64,
    /// The delay every other copy waits.
    pub delay: Duration,
    /// The delay varies uniformly within `delay ± jitter` (never below zero).
    pub jitter: Duration,
    /// Bytes per second of payload; `None` for no limit.
    pub rate: Option<f64>,
    /// Copies that may wait in the queue at once; more are dropped (tail drop).
    pub limit: usize,
}

/// netem's default queue length.
pub const DEFAULT_LIMIT: usize = 1000;

impl Default for Impairment {
    /// A perfect link: nothing lost, delayed or limited.
    fn default() -> Impairment {
        Impairment {
            loss: Loss::Random(0.0),
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// What the dice decided for one copy of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyFate {
    /// The bit to flip (counted from the first byte's lowest bit), if corrupted.
    pub flip: Option<usize>,
    /// Sent at once, ahead of the delay queue.
    pub reordered: bool,
    /// How long it waits (zero when reordered).
    pub delay: Duration,
}

/// What the dice decided for one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// Lost: no copy is sent.
    pub lost: bool,
    /// The first copy, and the second when duplicated (`None` for both when lost).
    pub copies: [Option<CopyFate>; 2],
}

impl Fate {
    /// Whether a second copy is sent.
    pub fn duplicated(&self) -> bool {
        self.copies[1].is_some()
    }
}

/// Random draws per datagram, whatever they decide: loss (2), duplicate (1), then per copy
/// corrupt, bit, reorder and jitter (4 each, both copies). A fixed count is what makes the
/// k-th datagram's fate depend on the seed, the direction and k alone.
pub const DRAWS_PER_DATAGRAM: u128 = 11;

/// The random decisions of one direction: datagram k's fate is a function of the seed, the
/// direction, k and its length only (the length says which bit can flip).
///
/// The generator is PCG-64 (`rand_pcg::Pcg64`), seeded by `SeedableRng::seed_from_u64` with
/// the seed (up) or the seed xor [`DOWN_SEED_MIX`] (down), so the two directions draw
/// unrelated numbers; each datagram takes exactly [`DRAWS_PER_DATAGRAM`] draws.
#[derive(Debug, Clone)]
pub struct Dice {
    rng: Pcg64,
    /// The Gilbert-Elliott state: in the bad state.
    bad: bool,
    rolled: u64,
}

/// What the down direction's seed differs by (the golden ratio's fraction, 64 bits).
pub const DOWN_SEED_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// A uniform number in [0, 1) from 53 random bits.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A number below `n`: the high half of `x * n` (bias below 2^-50 for any datagram length).
fn below(x: u64, n: u64) -> u64 {
    ((u128::from(x) * u128::from(n)) >> 64) as u64
}

impl Dice {
    /// The dice of one direction.
    pub fn new(seed: u64, direction: Way) -> Dice {
        Dice {
            rng: Pcg64::seed_from_u64(match direction {
                Way::Up => seed,
                Way::Down => seed ^ DOWN_SEED_MIX,
            }),
            bad: false,
            rolled: 0,
        }
    }

    /// How many datagrams have been decided.
    pub fn rolled(&self) -> u64 {
        self.rolled
    }

    /// Decides the next datagram, of `len` bytes.
    pub fn roll(&mut self, imp: &Impairment, len: usize) -> Fate {
        self.rolled += 1;
        let mut draw = [0u64; DRAWS_PER_DATAGRAM as usize];
        for d in &mut draw {
            *d = self.rng.next_u64();
        }
        let lost = match imp.loss {
            Loss::Random(p) => unit(draw[0]) < p,
            Loss::GilbertElliott {
                p,
                r,
                one_minus_h,
                one_minus_k,
            } => {
                // As netem: the loss is decided in the state the datagram found, after which
                // the chain moves on.
                let (leave, lose) = if self.bad {
                    (r, one_minus_h)
                } else {
                    (p, one_minus_k)
                };
                let lost = unit(draw[1]) < lose;
                if unit(draw[0]) < leave {
                    self.bad = !self.bad;
                }
                lost
            }
        };
        if lost {
            return Fate {
                lost: true,
                copies: [None, None],
            };
        }
        let copy = |d: &[u64]| {
            let bits = len as u64 * 8;
            let flip = (bits > 0 && unit(d[0]) < imp.corrupt).then(|| below(d[1], bits) as usize);
            let reordered = unit(d[2]) < imp.reorder;
            let delay = if reordered {
                Duration::ZERO
            } else {
                jittered(imp, d[3])
            };
            CopyFate {
                flip,
                reordered,
                delay,
            }
        };
        let second = (unit(draw[2]) < imp.duplicate).then(|| copy(&draw[7..11]));
        Fate {
            lost: false,
            copies: [Some(copy(&draw[3..7])), second],
        }
    }
}

/// `delay` moved uniformly within ± `jitter`, never below zero.
fn jittered(imp: &Impairment, x: u64) -> Duration {
    if imp.jitter.is_zero() {
        return imp.delay;
    }
    let offset = (2.0 * unit(x) - 1.0) * imp.jitter.as_secs_f64();
    Duration::from_secs_f64((imp.delay.as_secs_f64() + offset).max(0.0))
}

/// Counters of one direction since the link was made.
///
/// Every datagram received is refused, finds no upstream socket, is lost, or becomes one copy
/// (two when duplicated), and every copy ends forwarded, queue-dropped, failed to send,
/// flushed at stop, or is still queued:
///
/// `received + duplicated == refused + socket_errors + lost + forwarded + queue_dropped +
/// send_errors + flushed + queued`
///
/// `corrupted`, `reordered` and `delayed` count copies by what was done to them, whatever
/// became of them afterwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Datagrams that arrived at the link in this direction.
    pub received: u64,
    /// Datagrams from a new client while the table was full (up only): `max_clients` were
    /// mapped, or another mapping would leave the process too few file descriptors.
    pub refused: u64,
    /// Datagrams from a new client whose upstream socket could not be made (up only): the
    /// system refused a socket (no descriptor left, no route to the target...).
    pub socket_errors: u64,
    /// Datagrams lost by the loss model.
    pub lost: u64,
    /// Datagrams sent twice.
    pub duplicated: u64,
    /// Copies sent ahead of the delay queue.
    pub reordered: u64,
    /// Copies with one bit flipped.
    pub corrupted: u64,
    /// Copies that waited a positive delay.
    pub delayed: u64,
    /// Copies dropped because `limit` copies were waiting already.
    pub queue_dropped: u64,
    /// Copies sent.
    pub forwarded: u64,
    /// Copies whose send failed.
    pub send_errors: u64,
    /// Copies still waiting when the link stopped (discarded).
    pub flushed: u64,
    /// Copies waiting now.
    pub queued: u64,
    /// Bytes of the copies sent.
    pub forwarded_bytes: u64,
}

impl LaneStats {
    /// Whether the accounting identity holds.
    pub fn balanced(&self) -> bool {
        self.received + self.duplicated
            == self.refused
                + self.socket_errors
                + self.lost
                + self.forwarded
                + self.queue_dropped
                + self.send_errors
                + self.flushed
                + self.queued
    }

    /// Every counter with its name, in a fixed order (for `stats()`).
    pub fn fields(&self) -> [(&'static str, u64); 14] {
        [
            ("received", self.received),
            ("refused", self.refused),
            ("socket_errors", self.socket_errors),
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("reordered", self.reordered),
            ("corrupted", self.corrupted),
            ("delayed", self.delayed),
            ("queue_dropped", self.queue_dropped),
            ("forwarded", self.forwarded),
            ("send_errors", self.send_errors),
            ("flushed", self.flushed),
            ("queued", self.queued),
            ("forwarded_bytes", self.forwarded_bytes),
        ]
    }
}

/// A copy waiting for its time, with where it goes.
#[derive(Debug)]
pub struct Queued {
    /// When it is due.
    pub due: Instant,
    /// The payload (corrupted already, if so decided).
    pub data: Vec<u8>,
    /// The client it comes from (up) or goes to (down).
    pub client: SocketAddr,
    /// The second copy of a duplicated datagram.
    pub duplicate: bool,
    /// Sent ahead of the delay queue.
    pub reordered: bool,
    /// One bit flipped.
    pub corrupted: bool,
    /// Waited a positive delay.
    pub delayed: bool,
    /// When the datagram reached the link.
    pub arrived: Instant,
}

/// The heap order: by due time, then by arrival.
#[derive(Debug)]
struct Slot {
    due: Instant,
    seq: u64,
    copy: Queued,
}

impl PartialEq for Slot {
    fn eq(&self, other: &Slot) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Slot {}
impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Slot) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Slot {
    fn cmp(&self, other: &Slot) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Spare buffers kept for reuse, so a steady stream allocates nothing.
const SPARE_BUFFERS: usize = 64;

/// One direction: its dice, its delay queue (at most `limit` copies) and its counters.
#[derive(Debug)]
pub struct Lane {
    imp: Impairment,
    dice: Dice,
    queue: BinaryHeap<Reverse<Slot>>,
    seq: u64,
    /// When the rate limit lets the next copy start (the last paced copy's due time).
    wire_free: Option<Instant>,
    stats: LaneStats,
    spare: Vec<Vec<u8>>,
}

/// What became of a datagram offered to a lane (for the event history).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Lost by the loss model.
    Lost,
    /// This many copies queued (1 or 2); the copies dropped for a full queue, by whether each
    /// was to wait a delay (first copy, then second).
    Queued {
        /// Copies now waiting.
        queued: u8,
        /// Copies dropped because the queue was full: `Some(delayed)` for each.
        dropped: [Option<bool>; 2],
    },
}

impl Lane {
    /// A lane with its own dice.
    pub fn new(imp: Impairment, seed: u64, direction: Way) -> Lane {
        Lane {
            dice: Dice::new(seed, direction),
            queue: BinaryHeap::new(),
            seq: 0,
            wire_free: None,
            stats: LaneStats::default(),
            spare: Vec::new(),
            imp,
        }
    }

    /// The counters.
    pub fn stats(&self) -> LaneStats {
        self.stats
    }

    /// Counts a datagram that never reached the dice: its client was refused, or no socket
    /// could be made for it.
    pub fn refuse(&mut self, outcome: Outcome) {
        self.stats.received += 1;
        match outcome {
            Outcome::SocketError => self.stats.socket_errors += 1,
            _ => self.stats.refused += 1,
        }
    }

    /// Decides `data`'s fate at `now` and queues its copies; `client` is kept with them.
    pub fn admit(&mut self, data: &[u8], client: SocketAddr, now: Instant) -> Admitted {
        self.stats.received += 1;
        let fate = self.dice.roll(&self.imp, data.len());
        if fate.lost {
            self.stats.lost += 1;
            return Admitted::Lost;
        }
        if fate.duplicated() {
            self.stats.duplicated += 1;
        }
        let (mut queued, mut dropped) = (0, [None, None]);
        for (i, copy) in fate.copies.into_iter().flatten().enumerate() {
            if copy.flip.is_some() {
                self.stats.corrupted += 1;
            }
            if copy.reordered {
                self.stats.reordered += 1;
            }
            if !copy.delay.is_zero() {
                self.stats.delayed += 1;
            }
            if self.queue.len() >= self.imp.limit {
                self.stats.queue_dropped += 1;
                dropped[i] = Some(!copy.delay.is_zero());
                continue;
            }
            let due = self.due(now, copy, data.len());
            let mut buf = self.spare.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(data);
            if let Some(bit) = copy.flip {
                buf[bit / 8] ^= 1 << (bit % 8);
            }
            self.seq += 1;
            self.queue.push(Reverse(Slot {
                due,
                seq: self.seq,
                copy: Queued {
                    due,
                    data: buf,
                    client,
                    duplicate: i == 1,
                    reordered: copy.reordered,
                    corrupted: copy.flip.is_some(),
                    delayed: !copy.delay.is_zero(),
                    arrived: now,
                },
            }));
            self.stats.queued += 1;
            queued += 1;
        }
        Admitted::Queued { queued, dropped }
    }

    /// When a copy is due: reordered copies at once; others after their delay and, with a
    /// rate, after the copies before them have had their time on the wire (netem's order:
    /// delay first, then serialisation behind the last paced copy).
    fn due(&mut self, now: Instant, copy: CopyFate, len: usize) -> Instant {
        if copy.reordered {
            return now;
        }
        let ready = now + copy.delay;
        match self.imp.rate {
            None => ready,
            Some(rate) => {
                let start = self.wire_free.map_or(ready, |free| free.max(ready));
                let due = start + Duration::from_secs_f64(len as f64 / rate);
                self.wire_free = Some(due);
                due
            }
        }
    }

    /// When the next copy is due, if any waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(slot)| slot.due)
    }

    /// Takes the next copy due at `now`, if any; give it back with [`Lane::sent`].
    pub fn pop_due(&mut self, now: Instant) -> Option<Queued> {
        if self.next_due()? > now {
            return None;
        }
        let Reverse(slot) = self.queue.pop()?;
        self.stats.queued -= 1;
        Some(slot.copy)
    }

    /// Accounts a copy taken with [`Lane::pop_due`]: sent when `ok`, else a send error.
    pub fn sent(&mut self, copy: Queued, ok: bool) {
        if ok {
            self.stats.forwarded += 1;
            self.stats.forwarded_bytes += copy.data.len() as u64;
        } else {
            self.stats.send_errors += 1;
        }
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(copy.data);
        }
    }

    /// Discards every waiting copy (at stop), counting them as flushed; returns them.
    pub fn flush(&mut self) -> Vec<Queued> {
        let flushed: Vec<Queued> = self.queue.drain().map(|Reverse(s)| s.copy).collect();
        self.stats.flushed += flushed.len() as u64;
        self.stats.queued = 0;
        flushed
    }
}

/// What became of a datagram or copy, as kept in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// From a new client while the client table was full.
    Refused,
    /// From a new client for whom no upstream socket could be made.
    SocketError,
    /// Lost by the loss model.
    Lost,
    /// Dropped because the queue held `limit` copies.
    QueueDropped,
    /// Its send failed.
    SendError,
    /// Still queued when the link stopped.
    Flushed,
    /// Sent, with what was done to it.
    Forwarded {
        /// The second copy of a duplicated datagram.
        duplicate: bool,
        /// Sent ahead of the delay queue.
        reordered: bool,
        /// One bit flipped.
        corrupted: bool,
    },
}

impl Outcome {
    /// A short name: `lost`, `refused`, `socket_error`, `queue_dropped`, `send_error`,
    /// `flushed`, or
    /// `forwarded` followed by `+duplicate`, `+reordered`, `+corrupted` as they apply.
    pub fn name(self) -> String {
        match self {
            Outcome::Refused => "refused".into(),
            Outcome::SocketError => "socket_error".into(),
            Outcome::Lost => "lost".into(),
            Outcome::QueueDropped => "queue_dropped".into(),
            Outcome::SendError => "send_error".into(),
            Outcome::Flushed => "flushed".into(),
            Outcome::Forwarded {
                duplicate,
                reordered,
                corrupted,
            } => {
                let mut name = String::from("forwarded");
                for (on, tag) in [
                    (duplicate, "+duplicate"),
                    (reordered, "+reordered"),
                    (corrupted, "+corrupted"),
                ] {
                    if on {
                        name.push_str(tag);
                    }
                }
                name
            }
        }
    }

    /// How it ended and what was done to it, in the names of the link's counters (for a
    /// watcher: see [`crate::watch`]).
    pub fn fate(self) -> (&'static str, Marks) {
        match self {
            Outcome::Refused => ("refused", Marks::default()),
            Outcome::SocketError => ("socket_errors", Marks::default()),
            Outcome::Lost => ("lost", Marks::default()),
            Outcome::QueueDropped => ("queue_dropped", Marks::default()),
            Outcome::SendError => ("send_errors", Marks::default()),
            Outcome::Flushed => ("flushed", Marks::default()),
            Outcome::Forwarded {
                duplicate,
                reordered,
                corrupted,
            } => (
                "forwarded",
                Marks {
                    duplicated: duplicate,
                    reordered,
                    corrupted,
                    delayed: false,
                },
            ),
        }
    }

    fn forwarded(copy: &Queued) -> Outcome {
        Outcome::Forwarded {
            duplicate: copy.duplicate,
            reordered: copy.reordered,
            corrupted: copy.corrupted,
        }
    }
}

/// One entry of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkEvent {
    /// When (monotonic).
    pub at: Instant,
    /// Which way.
    pub direction: Way,
    /// The client it came from or went to.
    pub client: SocketAddr,
    /// What became of it.
    pub outcome: Outcome,
    /// Its length in bytes.
    pub size: usize,
}

/// Events kept by default.
pub const DEFAULT_EVENTS: usize = 10_000;

/// Both directions and the history of what happened: the whole link without sockets.
#[derive(Debug)]
pub struct Impairer {
    lanes: [Lane; 2],
    history: VecDeque<LinkEvent>,
    capacity: usize,
    /// Who watches every fate (`udplab.view`), and the target to name in their sightings.
    watchers: Watchers,
    target: SocketAddr,
}

impl Impairer {
    /// A link with `up` and `down` impairments and one seed; `history` events are kept.
    pub fn new(up: Impairment, down: Impairment, seed: u64, history: usize) -> Impairer {
        Impairer {
            lanes: [
                Lane::new(up, seed, Way::Up),
                Lane::new(down, seed, Way::Down),
            ],
            history: VecDeque::with_capacity(history.min(DEFAULT_EVENTS)),
            capacity: history,
            watchers: Watchers::default(),
            target: SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// Tells `feed` of every datagram's fate from now on, naming the far end `target`.
    pub fn watch(&mut self, feed: Arc<Feed>, target: SocketAddr) {
        self.target = target;
        self.watchers.add(feed);
    }

    /// Stops telling `feed`; true if it was watching.
    pub fn unwatch(&mut self, feed: &Arc<Feed>) -> bool {
        self.watchers.remove(feed)
    }

    fn lane(&mut self, direction: Way) -> &mut Lane {
        &mut self.lanes[direction.index()]
    }

    /// Keeps what became of a datagram or copy at `at` in the history, and tells the watchers
    /// (with when it `arrived`, and whether it waited a delay).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        at: Instant,
        direction: Way,
        client: SocketAddr,
        outcome: Outcome,
        data: &[u8],
        arrived: Instant,
        delayed: bool,
    ) {
        let target = self.target;
        self.watchers.tell(|| {
            let (from, to) = match direction {
                Way::Up => (client, target),
                Way::Down => (target, client),
            };
            let (end, mut marks) = outcome.fate();
            marks.delayed = delayed;
            let mut sighting = Sighting::new(arrived, direction.name(), end, from, to, data);
            sighting.marks = marks;
            sighting.left = matches!(outcome, Outcome::Forwarded { .. }).then_some(at);
            sighting
        });
        let size = data.len();
        if self.capacity == 0 {
            return;
        }
        if self.history.len() == self.capacity {
            self.history.pop_front();
        }
        self.history.push_back(LinkEvent {
            at,
            direction,
            client,
            outcome,
            size,
        });
    }

    /// A datagram from `client` (up) or for it (down) arrives at `now`; how many copies of
    /// it now wait in the queue (0, 1 or 2).
    pub fn admit(&mut self, direction: Way, data: &[u8], client: SocketAddr, now: Instant) -> u8 {
        match self.lane(direction).admit(data, client, now) {
            Admitted::Lost => {
                self.record(now, direction, client, Outcome::Lost, data, now, false);
                0
            }
            Admitted::Queued { queued, dropped } => {
                for delayed in dropped.into_iter().flatten() {
                    let outcome = Outcome::QueueDropped;
                    self.record(now, direction, client, outcome, data, now, delayed);
                }
                queued
            }
        }
    }

    /// A datagram from a new client that gets no mapping: `Refused` (the table is full) or
    /// `SocketError` (no socket could be made for it).
    pub fn refuse(&mut self, outcome: Outcome, data: &[u8], client: SocketAddr, now: Instant) {
        debug_assert!(matches!(outcome, Outcome::Refused | Outcome::SocketError));
        self.lane(Way::Up).refuse(outcome);
        self.record(now, Way::Up, client, outcome, data, now, false);
    }

    /// The earliest time a copy of either direction is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.lanes.iter().filter_map(Lane::next_due).min()
    }

    /// Takes the next copy of `direction` due at `now`.
    pub fn pop_due(&mut self, direction: Way, now: Instant) -> Option<Queued> {
        self.lane(direction).pop_due(now)
    }

    /// Accounts a copy taken with [`Impairer::pop_due`] as sent (`ok`) or failed, at `now`.
    pub fn sent(&mut self, direction: Way, copy: Queued, ok: bool, now: Instant) {
        let outcome = if ok {
            Outcome::forwarded(&copy)
        } else {
            Outcome::SendError
        };
        let (client, arrived, delayed) = (copy.client, copy.arrived, copy.delayed);
        self.record(
            now, direction, client, outcome, &copy.data, arrived, delayed,
        );
        self.lane(direction).sent(copy, ok);
    }

    /// Discards every waiting copy (the link stops).
    pub fn flush(&mut self, now: Instant) {
        for direction in Way::BOTH {
            for copy in self.lane(direction).flush() {
                self.flushed(now, direction, &copy);
            }
        }
    }

    fn flushed(&mut self, now: Instant, direction: Way, copy: &Queued) {
        let (client, arrived, delayed) = (copy.client, copy.arrived, copy.delayed);
        self.record(
            now,
            direction,
            client,
            Outcome::Flushed,
            &copy.data,
            arrived,
            delayed,
        );
    }

    /// The counters of both directions, up first.
    pub fn stats(&self) -> [LaneStats; 2] {
        [self.lanes[0].stats(), self.lanes[1].stats()]
    }

    /// The history, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &LinkEvent> + '_ {
        self.history.iter()
    }
}

#[cfg(test)]
mod tests;
