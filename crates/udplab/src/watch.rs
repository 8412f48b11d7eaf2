//! A live feed of what happens to datagrams, for a watcher such as `udplab.view`: the chat
//! server, the chat client and the link each tell their [`Watchers`] one [`Sighting`] per
//! datagram (and per join or expiry), where they decide its fate.
//!
//! - A [`Sighting`] says what a datagram was and what became of it in plain words (the link's
//!   counters' names), so that this module needs none of the modules that use it.
//! - A [`Feed`] is a bounded queue ([`Feed::new`]'s `capacity`) that never makes the one who
//!   pushes wait: a push into a full feed forgets the oldest sighting (counted as `dropped`),
//!   so a watcher that falls behind (a slow browser) can never slow the chat, and sees the
//!   present when it catches up. A push copies at most [`PREVIEW`] bytes of the payload and
//!   allocates nothing.
//! - The watcher takes what is queued with [`Feed::take`], which waits for the first sighting
//!   and then lets the batch grow for [`GATHER`]: one wake-up per batch, not one per datagram.
//! - Times are the monotonic instants the loops already pass around (`now`); the feed places
//!   them on the wall clock by its own anchor ([`Feed::wall`]), so the decisions stay
//!   time-injected and testable.
//!
//! Nothing here knows who watches: the Python view turns sightings into its events.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::timing::wall_time;

/// Payload bytes a sighting keeps: enough for a short preview, never the whole message.
pub const PREVIEW: usize = 32;
/// How long [`Feed::take`], woken by a first sighting, lets the batch grow.
pub const GATHER: Duration = Duration::from_millis(10);
/// The default capacity of a feed, in sightings.
pub const DEFAULT_CAPACITY: usize = 8_192;

/// What a link did to a copy on its way, whatever became of it (the link's counters of the
/// same names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    /// The second copy of a duplicated datagram.
    pub duplicated: bool,
    /// Sent ahead of the copies waiting out their delay.
    pub reordered: bool,
    /// One bit flipped.
    pub corrupted: bool,
    /// Waited a positive delay.
    pub delayed: bool,
}

/// One datagram (or event) as a watcher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// When it happened: for the link, when the datagram reached it.
    pub at: Instant,
    /// For a copy the link sent, when it left (after its delay).
    pub left: Option<Instant>,
    /// What it is, in a word: `join`, `heartbeat`, `message`, `quit`, `expire`, `dropped`,
    /// `broadcast` (the chat server), `up`, `down` (the link), `sent`, `received` (a client).
    pub what: &'static str,
    /// How it ended, in the names of the link's counters: `forwarded`, `lost`,
    /// `queue_dropped`, `refused`, `socket_errors`, `send_errors`, `flushed`; `delivered` where
    /// no link decides; `dropped:REASON` when the chat server did not act on it.
    pub end: &'static str,
    /// What the link did to it on the way.
    pub marks: Marks,
    /// Who sent it (for a join or an expiry, the client).
    pub from: SocketAddr,
    /// Who it was for (for a join or an expiry, the server).
    pub to: SocketAddr,
    /// Its whole length in bytes.
    pub size: usize,
    preview: [u8; PREVIEW],
    preview_len: u8,
}

impl Sighting {
    /// A sighting of a datagram of which `payload` is (at least the start of) the bytes.
    pub fn new(
        at: Instant,
        what: &'static str,
        end: &'static str,
        from: SocketAddr,
        to: SocketAddr,
        payload: &[u8],
    ) -> Self {
        let n = payload.len().min(PREVIEW);
        let mut preview = [0u8; PREVIEW];
        preview[..n].copy_from_slice(&payload[..n]);
        Sighting {
            at,
            left: None,
            what,
            end,
            marks: Marks::default(),
            from,
            to,
            size: payload.len(),
            preview,
            preview_len: n as u8,
        }
    }

    /// The first [`PREVIEW`] bytes of the payload (all of it when shorter).
    pub fn preview(&self) -> &[u8] {
        &self.preview[..usize::from(self.preview_len)]
    }

    /// Its fate: [`end`](Self::end), then each of [`marks`](Self::marks) that applies, joined
    /// by `+` (`forwarded+duplicated+delayed`).
    pub fn fate(&self) -> String {
        let mut name = String::from(self.end);
        let m = self.marks;
        for (on, tag) in [
            (m.duplicated, "+duplicated"),
            (m.reordered, "+reordered"),
            (m.corrupted, "+corrupted"),
            (m.delayed, "+delayed"),
        ] {
            if on {
                name.push_str(tag);
            }
        }
        name
    }
}

/// The counters of a feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Sightings pushed, taken or not.
    pub seen: u64,
    /// Sightings forgotten because the feed was full (the watcher fell behind).
    pub dropped: u64,
    /// Sightings waiting to be taken.
    pub queued: usize,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Sighting>,
    capacity: usize,
    seen: u64,
    dropped: u64,
    /// A taker sleeps on the condition variable: the next push must wake it.
    waiting: bool,
    closed: bool,
}

/// A bounded queue of sightings between the loops that push and one watcher that takes.
#[derive(Debug)]
pub struct Feed {
    state: Mutex<State>,
    ready: Condvar,
    anchor: (Instant, SystemTime),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Feed {
    /// A feed that holds at most `capacity` sightings not yet taken (at least one).
    pub fn new(capacity: usize) -> Feed {
        Feed {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(capacity.clamp(1, 1024)),
                capacity: capacity.max(1),
                seen: 0,
                dropped: 0,
                waiting: false,
                closed: false,
            }),
            ready: Condvar::new(),
            anchor: (Instant::now(), SystemTime::now()),
        }
    }

    /// Queues `sighting`; a full feed forgets its oldest one for it (counted as dropped), so
    /// what is queued is always the most recent. Never waits; wakes the taker only when it
    /// sleeps (one system call per batch, not per datagram).
    pub fn push(&self, sighting: Sighting) {
        let mut state = lock(&self.state);
        if state.closed {
            return;
        }
        state.seen += 1;
        if state.queue.len() >= state.capacity {
            state.queue.pop_front();
            state.dropped += 1;
        }
        state.queue.push_back(sighting);
        if state.waiting {
            state.waiting = false;
            self.ready.notify_one();
        }
    }

    /// Waits up to `timeout` for a first sighting, lets the batch grow for [`GATHER`], and
    /// takes what is queued (empty after the timeout, or at once once closed): the newest `most`
    /// sightings; older ones are counted as dropped (a watcher that can show only so many keeps
    /// up with the present instead of falling behind).
    pub fn take(&self, timeout: Duration, most: usize) -> Vec<Sighting> {
        let mut state = lock(&self.state);
        if state.queue.is_empty() && !state.closed {
            state.waiting = true;
            let deadline = Instant::now() + timeout;
            while state.queue.is_empty() && !state.closed {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = self
                    .ready
                    .wait_timeout(state, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            state.waiting = false;
            if !state.queue.is_empty() && !state.closed {
                drop(state);
                std::thread::sleep(GATHER);
                state = lock(&self.state);
            }
        }
        let older = state.queue.len().saturating_sub(most);
        state.dropped += older as u64;
        state.queue.drain(..older);
        state.queue.drain(..).collect()
    }

    /// Ends the feed: a waiting [`take`](Self::take) returns at once, later pushes are
    /// ignored, what is queued can still be taken. Idempotent.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_all();
    }

    /// The counters.
    pub fn stats(&self) -> FeedStats {
        let state = lock(&self.state);
        FeedStats {
            seen: state.seen,
            dropped: state.dropped,
            queued: state.queue.len(),
        }
    }

    /// The wall-clock time of `at`, placed by the feed's anchor (read once at creation).
    pub fn wall(&self, at: Instant) -> SystemTime {
        wall_time(at, self.anchor)
    }
}

/// The feeds watching one object; empty (and costing one branch per datagram) when nobody
/// watches.
#[derive(Debug, Default, Clone)]
pub struct Watchers(Vec<Arc<Feed>>);

impl Watchers {
    /// Adds `feed` (once: adding it again changes nothing).
    pub fn add(&mut self, feed: Arc<Feed>) {
        if !self.0.iter().any(|f| Arc::ptr_eq(f, &feed)) {
            self.0.push(feed);
        }
    }

    /// Removes `feed`; true if it was there.
    pub fn remove(&mut self, feed: &Arc<Feed>) -> bool {
        let before = self.0.len();
        self.0.retain(|f| !Arc::ptr_eq(f, feed));
        self.0.len() != before
    }

    /// Whether nobody watches.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Pushes the sighting `make` builds into every feed; `make` runs only when someone
    /// watches.
    #[inline]
    pub fn tell(&self, make: impl FnOnce() -> Sighting) {
        if let Some((last, others)) = self.0.split_last() {
            let sighting = make();
            for feed in others {
                feed.push(sighting);
            }
            last.push(sighting);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn sighting(payload: &[u8]) -> Sighting {
        Sighting::new(
            Instant::now(),
            "sent",
            "delivered",
            addr(1),
            addr(2),
            payload,
        )
    }

    #[test]
    fn a_full_feed_counts_drops_and_keeps_the_newest() {
        let feed = Feed::new(2);
        for i in 0..5u8 {
            feed.push(sighting(&[i]));
        }
        assert_eq!(
            feed.stats(),
            FeedStats {
                seen: 5,
                dropped: 3,
                queued: 2
            }
        );
        let taken = feed.take(Duration::ZERO, usize::MAX);
        let firsts: Vec<u8> = taken.iter().map(|s| s.preview()[0]).collect();
        assert_eq!(firsts, [3, 4]);
        assert_eq!(feed.stats().queued, 0);
    }

    #[test]
    fn take_keeps_the_newest_it_may_and_counts_the_rest() {
        let feed = Feed::new(10);
        for i in 0..6u8 {
            feed.push(sighting(&[i]));
        }
        let taken = feed.take(Duration::ZERO, 2);
        let firsts: Vec<u8> = taken.iter().map(|s| s.preview()[0]).collect();
        assert_eq!(firsts, [4, 5]);
        assert_eq!(
            feed.stats(),
            FeedStats {
                seen: 6,
                dropped: 4,
                queued: 0
            }
        );
    }

    #[test]
    fn a_preview_is_short_and_the_size_whole() {
        let long = vec![b'x'; 1000];
        let s = sighting(&long);
        assert_eq!(s.size, 1000);
        assert_eq!(s.preview(), &long[..PREVIEW]);
        assert_eq!(sighting(b"hi").preview(), b"hi");
    }

    #[test]
    fn take_waits_for_a_push_from_another_thread_and_close_ends_the_wait() {
        let feed = Arc::new(Feed::new(8));
        let pusher = {
            let feed = Arc::clone(&feed);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                feed.push(sighting(b"a"));
            })
        };
        let taken = feed.take(Duration::from_secs(10), usize::MAX);
        assert_eq!(taken.len(), 1);
        pusher.join().unwrap();
        let closer = {
            let feed = Arc::clone(&feed);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                feed.close();
            })
        };
        let started = Instant::now();
        assert!(feed.take(Duration::from_secs(10), usize::MAX).is_empty());
        assert!(started.elapsed() < Duration::from_secs(5));
        closer.join().unwrap();
        feed.push(sighting(b"late"));
        assert_eq!(feed.stats().seen, 1, "a closed feed ignores pushes");
    }

    #[test]
    fn a_fate_is_the_end_then_the_marks() {
        let mut s = sighting(b"x");
        assert_eq!(s.fate(), "delivered");
        s.end = "forwarded";
        s.marks = Marks {
            duplicated: true,
            corrupted: true,
            delayed: true,
            ..Marks::default()
        };
        assert_eq!(s.fate(), "forwarded+duplicated+corrupted+delayed");
    }

    #[test]
    fn watchers_tell_every_feed_once_and_build_nothing_when_empty() {
        let (a, b) = (Arc::new(Feed::new(8)), Arc::new(Feed::new(8)));
        let mut w = Watchers::default();
        w.tell(|| unreachable!("nobody watches"));
        w.add(Arc::clone(&a));
        w.add(Arc::clone(&a));
        w.add(Arc::clone(&b));
        w.tell(|| sighting(b"x"));
        assert_eq!((a.stats().seen, b.stats().seen), (1, 1));
        assert!(w.remove(&a));
        assert!(!w.remove(&a));
        w.tell(|| sighting(b"y"));
        assert_eq!((a.stats().seen, b.stats().seen), (1, 2));
    }

    #[test]
    fn wall_times_follow_the_anchor() {
        let feed = Feed::new(1);
        let later = feed.anchor.0 + Duration::from_secs(3);
        assert_eq!(feed.wall(later), feed.anchor.1 + Duration::from_secs(3));
    }
}
