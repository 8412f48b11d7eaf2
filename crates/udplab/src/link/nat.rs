//! The link's NAT table: which upstream socket stands for which client, when each mapping last
//! saw traffic, and how many of its client's copies still wait in the delay queues. One
//! structure, so the sockets the loop waits on, the mappings and the lookup by address cannot
//! drift apart; no clock (the time is passed in) and no socket type of its own (`S`: the
//! relay's endpoints, plain numbers in the tests).
//!
//! The rules: a new client gets a mapping while fewer than `max` exist; a mapping is
//! forgotten once it has had no traffic either way for `idle` **and** has no copy queued (a
//! backlog of delay or rate longer than `idle` is not silence).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One client's mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    client: SocketAddr,
    /// The address the target sees the client as.
    upstream: SocketAddr,
    /// The last datagram from or to the client (received or sent by the link).
    last: Instant,
    /// Copies from or for the client waiting in a queue.
    queued: u64,
    /// Mapping order, for [`Nat::clients`].
    made: u64,
}

/// What callers outside the loop see of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatView {
    /// `(client, the address the target sees)`, in mapping order.
    pub clients: Vec<(SocketAddr, SocketAddr)>,
    /// Mappings made.
    pub mapped: u64,
    /// Mappings forgotten for being idle.
    pub forgotten: u64,
}

/// The table, with the sockets: `sockets()[0]` faces the clients, `sockets()[i]` for `i > 0`
/// is the upstream socket of one mapping.
#[derive(Debug)]
pub struct Nat<S> {
    sockets: Vec<S>,
    /// `mappings[i]` is served by `sockets[i + 1]`.
    mappings: Vec<Mapping>,
    /// Client address to its index in `mappings`.
    index: HashMap<SocketAddr, usize>,
    max: usize,
    idle: Duration,
    mapped: u64,
    forgotten: u64,
    /// Bumped by every change a [`NatView`] shows.
    generation: u64,
}

impl<S> Nat<S> {
    /// An empty table beside `front`, the socket facing the clients.
    pub fn new(front: S, max: usize, idle: Duration) -> Nat<S> {
        Nat {
            sockets: vec![front],
            mappings: Vec::new(),
            index: HashMap::new(),
            max,
            idle,
            mapped: 0,
            forgotten: 0,
            generation: 0,
        }
    }

    /// The socket facing the clients, then one per mapping: what the loop waits on.
    pub fn sockets(&self) -> &[S] {
        &self.sockets
    }

    /// Mappings now.
    pub fn len(&self) -> usize {
        self.mappings.len()
    }

    /// Whether no client is mapped.
    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// Whether a new client would be refused.
    pub fn is_full(&self) -> bool {
        self.mappings.len() >= self.max
    }

    /// The socket index of `client`'s mapping.
    pub fn find(&self, client: SocketAddr) -> Option<usize> {
        self.index.get(&client).map(|&i| i + 1)
    }

    /// Maps `client` to `socket` (bound to `upstream`) at `now`; its socket index. The caller
    /// has looked that `client` is new and the table not full.
    pub fn insert(
        &mut self,
        client: SocketAddr,
        socket: S,
        upstream: SocketAddr,
        now: Instant,
    ) -> usize {
        debug_assert!(!self.index.contains_key(&client) && !self.is_full());
        self.mapped += 1;
        self.generation += 1;
        self.mappings.push(Mapping {
            client,
            upstream,
            last: now,
            queued: 0,
            made: self.mapped,
        });
        self.sockets.push(socket);
        self.index.insert(client, self.mappings.len() - 1);
        self.mappings.len()
    }

    /// A datagram came from or went to the client of socket `index` at `now`; the client.
    pub fn heard(&mut self, index: usize, now: Instant) -> Option<SocketAddr> {
        let mapping = self.mappings.get_mut(index.checked_sub(1)?)?;
        mapping.last = now;
        Some(mapping.client)
    }

    /// The upstream socket of `client`'s mapping; marks traffic at `now`.
    pub fn upstream(&mut self, client: SocketAddr, now: Instant) -> Option<&S> {
        let index = self.find(client)?;
        self.heard(index, now);
        self.sockets.get(index)
    }

    /// `copies` from or for `client` entered a queue.
    pub fn queued(&mut self, client: SocketAddr, copies: u64) {
        if let Some(&i) = self.index.get(&client) {
            self.mappings[i].queued += copies;
        }
    }

    /// A copy from or for `client` left its queue at `now` (sent, or failed to be).
    pub fn dequeued(&mut self, client: SocketAddr, now: Instant) {
        if let Some(&i) = self.index.get(&client) {
            let mapping = &mut self.mappings[i];
            mapping.queued = mapping.queued.saturating_sub(1);
            mapping.last = now;
        }
    }

    /// Forgets every mapping idle at `now` (no traffic for `idle`, nothing queued), closing
    /// its socket (dropped); the clients forgotten.
    pub fn sweep(&mut self, now: Instant) -> Vec<SocketAddr> {
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.mappings.len() {
            let m = self.mappings[i];
            if m.queued > 0 || now.saturating_duration_since(m.last) < self.idle {
                i += 1;
                continue;
            }
            self.index.remove(&m.client);
            self.mappings.swap_remove(i);
            self.sockets.swap_remove(i + 1);
            if let Some(moved) = self.mappings.get(i) {
                self.index.insert(moved.client, i);
            }
            gone.push(m.client);
        }
        if !gone.is_empty() {
            self.forgotten += gone.len() as u64;
            self.generation += 1;
        }
        gone
    }

    /// Changes with every mapping made or forgotten.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What callers see: the mappings in the order they were made, and the totals.
    pub fn view(&self) -> NatView {
        let mut mappings: Vec<&Mapping> = self.mappings.iter().collect();
        mappings.sort_by_key(|m| m.made);
        NatView {
            clients: mappings.iter().map(|m| (m.client, m.upstream)).collect(),
            mapped: self.mapped,
            forgotten: self.forgotten,
        }
    }
}

#[cfg(test)]
mod tests;
