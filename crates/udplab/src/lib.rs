//! udplab: UDP networking to learn from and to run.
//!
//! The core of the Python package `udplab`, as plain Rust: nothing here knows about Python (the
//! extension module is the separate crate `udplab-python`), so Rust programs and Rust tests use
//! it alone.
//!
//! - [`capture`]: every datagram an endpoint sees, written to a pcap file for Wireshark;
//! - [`endpoint`]: one UDP socket and its receive loop (stop, wake-up, timers, a tap on every
//!   datagram in and out), which the server, the client and the link run on;
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
//!   Windows, and Linux with the cargo feature `portable`);
//! - [`watch`]: a live feed of every datagram and its fate, for a watcher such as a web view;
//! - [`timing`]: how long the core waits ([`timing::TICK`], [`timing::SEND_WAIT`]) and how it
//!   places a monotonic instant on the wall clock.
//!
//! Each module uses only the ones listed after it in this order: `timing`, `platform` and
//! `watch` at the bottom, then `socket`, `proto` and `peers`, then `endpoint`, then what runs on
//! it.
//!
//! # A chat server and a client
//!
//! The server expires clients silent for `inval`; the client heartbeats and receives on two
//! threads of its own. Every message goes back to every client with the prefix `ACK`:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use udplab::client::{ChatClient, ClientConfig};
//! use udplab::server::{ChatServer, ServerConfig};
//!
//! # fn main() -> std::io::Result<()> {
//! // Port 0: the system picks a free port.
//! let server = Arc::new(ChatServer::bind(
//!     "127.0.0.1:0".parse().unwrap(),
//!     ServerConfig::new(Duration::from_secs(5)),
//! )?);
//! let serving = server.spawn()?;
//!
//! let alice = Arc::new(ChatClient::connect(server.local_addr(), ClientConfig::default())?);
//! let threads = alice.spawn()?;
//! alice.send(b"hello")?;
//! let answer = alice.recv(Some(Duration::from_secs(5)), &mut || Ok(()))?;
//! assert_eq!(answer, b"ACKhello");
//!
//! alice.stop(); // says quit to the server
//! for thread in threads {
//!     thread.join().unwrap();
//! }
//! server.stop();
//! serving.join().unwrap()?;
//! assert_eq!(server.stats().messages, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # A lossy link in between
//!
//! A [`link::Relay`] stands between clients and any UDP server. Here it loses every datagram
//! towards the server, so nothing comes back; the fate of each datagram depends only on the seed
//! and its number, never on timing:
//!
//! ```
//! use std::net::UdpSocket;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use udplab::link::{Impairment, LinkConfig, Loss, Relay};
//!
//! # fn main() -> std::io::Result<()> {
//! let echo = UdpSocket::bind("127.0.0.1:0")?;
//! let mut config = LinkConfig::new(7);
//! config.up = Impairment { loss: Loss::Random(1.0), ..Impairment::default() };
//! let link = Arc::new(Relay::bind("127.0.0.1:0".parse().unwrap(), echo.local_addr()?, config)?);
//! let relaying = {
//!     let link = Arc::clone(&link);
//!     std::thread::spawn(move || link.serve())
//! };
//!
//! let client = UdpSocket::bind("127.0.0.1:0")?;
//! client.send_to(b"ping", link.local_addr())?;
//! // Wait (bounded) until the link has decided the datagram's fate.
//! for _ in 0..500 {
//!     if link.stats().up.received == 1 {
//!         break;
//!     }
//!     std::thread::sleep(Duration::from_millis(10));
//! }
//! link.stop();
//! relaying.join().unwrap()?;
//! let up = link.stats().up;
//! assert_eq!((up.received, up.lost, up.forwarded), (1, 1, 0));
//! # Ok(())
//! # }
//! ```
//!
//! # A capture file for Wireshark
//!
//! A [`capture::Capture`] writes every datagram its tap sees to a pcap file, with IP and UDP
//! headers of the real addresses, from [`begin`](capture::Capture::begin) on (so a server that
//! fails to start never empties an earlier capture):
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use udplab::capture::Capture;
//! use udplab::client::{ChatClient, ClientConfig};
//! use udplab::server::{ChatServer, ServerConfig};
//!
//! # fn main() -> std::io::Result<()> {
//! let path = std::env::temp_dir().join(format!("udplab-doc-{}.pcap", std::process::id()));
//! let capture = Capture::create(&path, 1 << 20)?;
//! let server = Arc::new(ChatServer::bind(
//!     "127.0.0.1:0".parse().unwrap(),
//!     ServerConfig::new(Duration::from_secs(5)),
//! )?);
//! server.set_tap(Some(capture.tap()));
//! let serving = server.spawn()?;
//! capture.begin(); // only now is an earlier file at `path` replaced
//!
//! let alice = Arc::new(ChatClient::connect(server.local_addr(), ClientConfig::default())?);
//! let threads = alice.spawn()?;
//! alice.send(b"hello")?;
//! alice.recv(Some(Duration::from_secs(5)), &mut || Ok(()))?;
//! alice.stop();
//! for thread in threads {
//!     thread.join().unwrap();
//! }
//! server.stop();
//! serving.join().unwrap()?;
//! capture.close(); // writes what is queued and flushes
//!
//! // The message in and the broadcast out (the quit may arrive after the server stopped).
//! assert!(capture.stats().records >= 2);
//! assert_eq!(&std::fs::read(&path)?[..4], &[0x4d, 0x3c, 0xb2, 0xa1]); // pcap, nanoseconds
//! std::fs::remove_file(&path)?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
mod throttle;
pub mod timing;
pub mod watch;

// The crate's README, whose example runs as a doctest too.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
