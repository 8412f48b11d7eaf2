//! The link: a relay between clients and one UDP target that makes the path between them as
//! bad as asked, the same way every time for the same seed.
//!
//! [`fate`] decides (no socket, no clock: the time is passed in); [`nat`] keeps the table of
//! clients and their upstream sockets (no clock either); [`options`] checks every option, with
//! the messages a learner reads; the relay's socket loop only moves datagrams in and out.
//!
//! # What happens to a datagram, in order
//!
//! Each direction (up: client to target; down: target to client) has its own settings, its own
//! dice and its own queue. The k-th datagram of a direction goes through:
//!
//! 1. **refusal** (up only): from a new client while the table is full (`max_clients` are
//!    mapped, or one more upstream socket would leave the process fewer than
//!    [`DESCRIPTOR_HEADROOM`] file descriptors), it is counted as `refused`; when the system
//!    refuses the new client's upstream socket, as `socket_errors`. Either way it takes no part
//!    in what follows (it does not count as a k);
//! 2. **loss**: independent (`loss random`) or Gilbert-Elliott (`loss gemodel p r 1-h 1-k`,
//!    netem's parameters and defaults); a lost datagram ends here;
//! 3. **duplication**: a second copy is made;
//! 4. for each copy: **corruption** (one random bit flipped), then **reordering** (the copy is
//!    due at once, ahead of everything waiting), else **delay** (`delay` ± `jitter`, uniform,
//!    never below zero);
//! 5. the copy enters the queue, unless `limit` copies wait already (tail drop,
//!    `queue_dropped`); with a `rate`, a delayed copy is also due no earlier than the one before
//!    it has left, plus its own `len / rate` seconds on the wire;
//! 6. at its due time it is sent (`forwarded`, or `send_errors`); copies still waiting when
//!    the link stops are `flushed`. A client's mapping is forgotten only when nothing of its
//!    own waits in either queue (see [`nat`]).
//!
//! Steps 2-4 take a fixed number of random draws per datagram, whatever they decide, so the
//! k-th datagram's fate (lost, duplicated, corrupted and which bit, reordered, its delay)
//! depends only on the seed, the direction and k (and its length, which bounds the bit). Two
//! runs with one seed over the same datagrams decide the same, at any pace. Only step 5 looks
//! at the time: which copies find the queue full depends on how fast they arrive.
//!
//! # Accounting
//!
//! Per direction, at any moment and exactly after stop:
//!
//! `received + duplicated == refused + socket_errors + lost + forwarded + queue_dropped +
//! send_errors + flushed + queued`
//!
//! ([`fate::LaneStats::balanced`]; `queued` is 0 after stop).
//!
//! # Where udplab differs from netem (tc-netem(8))
//!
//! - netem decides duplication before loss and sends the copy through netem again, where it
//!   may be lost on its own; udplab decides loss once per datagram and duplicates survivors,
//!   so `loss` is exactly the share of datagrams lost.
//! - No correlation parameters and no `gap` for reordering: each copy is reordered
//!   independently with probability `reorder`, which is netem's `reorder P` without `gap`
//!   (there, too, reordering needs a delay).
//! - The jitter is uniform within `delay ± jitter`; netem draws from a table when given a
//!   distribution. As in netem, jitter alone can reorder copies (they leave by due time), but
//!   only copies that skipped the queue count as `reordered`.
//! - `rate` counts payload bytes; netem counts the whole frame with its headers.
//! - `limit` bounds every waiting copy, as netem's does; reordered copies wait in the same
//!   queue (for no time) and count against it.

pub mod fate;
pub mod nat;
pub mod options;
pub mod relay;

pub use fate::{
    Impairer, Impairment, LaneStats, LinkEvent, Loss, Outcome, Way, DEFAULT_EVENTS, DEFAULT_LIMIT,
};
pub use options::{
    both, check_target, Allowed, Opt, OptionError, Problem, MAX_DELAY, MAX_SPIN, MIN_RATE,
};
pub use relay::{
    LinkConfig, LinkStats, Relay, DEFAULT_IDLE, DEFAULT_MAX_CLIENTS, DESCRIPTOR_HEADROOM,
};
