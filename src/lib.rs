//! udplab: UDP networking to learn from and to run.
//!
//! The core is plain Rust and usable without Python:
//!
//! - [`capture`]: every datagram an endpoint sees, written to a pcap file for Wireshark;
//! - [`endpoint`]: one UDP socket and its receive loop (stop, wake-up, timers, a tap on every
//!   datagram in and out), which the server and the client run on;
//! - [`socket`]: a datagram socket with timeouts and interruptible blocking calls;
//! - [`proto`]: the chat's wire format, parsed once into a [`proto::Message`];
//! - [`peers`]: the table of chat clients ordered by last-seen time, where clients expire;
//! - [`server`]: the chat server, where every datagram is received and handled;
//! - [`fanout`]: how one broadcast reaches every client (batched where the system allows);
//! - [`client`]: the chat client with its heartbeat;
//! - [`link`]: a relay that loses, duplicates, reorders, corrupts, delays and rate-limits
//!   datagrams, the same way for the same seed;
//! - [`platform`]: every call that differs per system (waiting on sockets, waking a loop,
//!   batched sends), with a Unix path (Linux, macOS) and a portable one (std and socket2 only:
//!   Windows, and Linux with the cargo feature `portable`).
//!
//! The Python extension module `udplab._core` lives in one private module, `python`, which only
//! converts types, releases the GIL around blocking calls and maps errors.

pub mod capture;
pub mod client;
pub mod endpoint;
pub mod fanout;
pub mod link;
pub mod peers;
pub mod platform;
pub mod proto;
pub mod server;
pub mod socket;

mod python;
