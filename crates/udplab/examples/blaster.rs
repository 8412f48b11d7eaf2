//! The native baseline of the chat benchmark (benches/run.py): the least a chat server can do.
//!
//! It binds 127.0.0.1 on a free port and prints `PORT <n>` as its first line. Every new source
//! address is recorded for good (no expiry, no `quit`); a heartbeat (`HB`, optionally followed by
//! `\n` or `\r\n`) is recorded and answered with nothing; `quit` and empty datagrams are ignored;
//! anything else is sent back as `ACK` + payload to every recorded address with a plain
//! `UdpSocket::send_to` per address. No logging, no clocks on the datagram path.
//!
//! With `--mmsg` it sends the way udplab's server does instead (`src/fanout.rs`): `sendmmsg`
//! in batches of 64 from a socket that asks for "don't fragment" (`IP_PMTUDISC_DO`), so it is
//! the native program doing udplab's sends and nothing else.
//!
//! It stops when standard input reaches end of file or after `--max-seconds` (default 600),
//! and then prints one line of counters to stderr.
//!
//! ```text
//! cargo run --release --example blaster -- [--max-seconds S] [--rcvbuf BYTES] [--sndbuf BYTES] [--mmsg]
//! ```

// An example program: printing its port and counters is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Socket, Type};

/// `data` is `word`, alone or followed by one `\n` or `\r\n` (what netcat sends).
fn is_word(data: &[u8], word: &[u8]) -> bool {
    let data = data
        .strip_suffix(b"\r\n")
        .or_else(|| data.strip_suffix(b"\n"))
        .unwrap_or(data);
    data == word
}

/// Socket buffers as large as asked: SO_RCVBUFFORCE/SO_SNDBUFFORCE when allowed (root), else
/// the plain options, which the kernel caps at net.core.rmem_max / wmem_max.
fn set_buffers(sock: &Socket, rcvbuf: usize, sndbuf: usize) {
    if setsockopt(sock, sockopt::RcvBufForce, &rcvbuf).is_err() {
        let _ = sock.set_recv_buffer_size(rcvbuf);
    }
    if setsockopt(sock, sockopt::SndBufForce, &sndbuf).is_err() {
        let _ = sock.set_send_buffer_size(sndbuf);
    }
}

/// Sends `msg` to every peer with `sendmmsg`, 64 per call; a datagram the kernel stops at is
/// counted as an error and skipped. Returns (sent, errors).
fn send_batched(sock: &UdpSocket, msg: &[u8], peers: &[SocketAddr]) -> (u64, u64) {
    use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
    let iov = [std::io::IoSlice::new(msg)];
    let (mut sent, mut errors) = (0u64, 0u64);
    for chunk in peers.chunks(64) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let addrs: Vec<SocketAddrAny> = rest.iter().map(|&a| a.into()).collect();
            let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = rest
                .iter()
                .map(|_| SendAncillaryBuffer::default())
                .collect();
            let mut headers: Vec<MMsgHdr<'_>> = addrs
                .iter()
                .zip(controls.iter_mut())
                .map(|(addr, control)| MMsgHdr::new_with_addr(addr, &iov, control))
                .collect();
            let done = sendmmsg(sock, &mut headers, SendFlags::empty()).unwrap_or(0);
            sent += done as u64;
            rest = &rest[done..];
            if !rest.is_empty() {
                errors += 1;
                rest = &rest[1..];
            }
        }
    }
    (sent, errors)
}

fn parse_args() -> Result<(f64, usize, usize, bool), String> {
    let (mut max_seconds, mut rcvbuf, mut sndbuf, mut mmsg) = (600.0, 8 << 20, 8 << 20, false);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--max-seconds" => max_seconds = value()?.parse().map_err(|e| format!("{e}"))?,
            "--rcvbuf" => rcvbuf = value()?.parse().map_err(|e| format!("{e}"))?,
            "--sndbuf" => sndbuf = value()?.parse().map_err(|e| format!("{e}"))?,
            "--mmsg" => mmsg = true,
            "-h" | "--help" => {
                return Err(
                    "usage: blaster [--max-seconds S] [--rcvbuf BYTES] [--sndbuf BYTES] [--mmsg]"
                        .into(),
                )
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok((max_seconds, rcvbuf, sndbuf, mmsg))
}

fn main() -> std::io::Result<()> {
    let (max_seconds, rcvbuf, sndbuf, mmsg) = match parse_args() {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    set_buffers(&sock, rcvbuf, sndbuf);
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let sock: UdpSocket = sock.into();
    if mmsg {
        use rustix::net::sockopt::{set_ip_mtu_discover, Ipv4PathMtuDiscovery};
        set_ip_mtu_discover(&sock, Ipv4PathMtuDiscovery::DO)?;
    }
    // Wake up now and then to notice the end of the run even when no datagram comes.
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let port = sock.local_addr()?.port();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "PORT {port}")?;
        out.flush()?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            stop.store(true, Ordering::Relaxed);
        });
    }
    let deadline = Instant::now() + Duration::from_secs_f64(max_seconds);

    let mut known: HashSet<SocketAddr> = HashSet::new();
    let mut peers: Vec<SocketAddr> = Vec::new();
    // Received payloads land after the prefix, so a broadcast needs no copy.
    let mut buf = vec![0u8; 3 + 65536];
    buf[..3].copy_from_slice(b"ACK");
    let (mut received, mut sent, mut send_errors) = (0u64, 0u64, 0u64);
    let mut tick = 0u32;
    loop {
        tick = tick.wrapping_add(1);
        if tick & 255 == 0 && (stop.load(Ordering::Relaxed) || Instant::now() >= deadline) {
            break;
        }
        let (n, src) = match sock.recv_from(&mut buf[3..]) {
            Ok(got) => got,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    break;
                }
                continue;
            }
            Err(_) => continue, // EINTR, or an ICMP error queued on the socket
        };
        received += 1;
        let data = &buf[3..3 + n];
        if n == 0 || is_word(data, b"quit") {
            continue;
        }
        if known.insert(src) {
            peers.push(src);
        }
        if is_word(data, b"HB") {
            continue;
        }
        let msg = &buf[..3 + n];
        if mmsg {
            let (ok, failed) = send_batched(&sock, msg, &peers);
            sent += ok;
            send_errors += failed;
            continue;
        }
        for peer in &peers {
            match sock.send_to(msg, peer) {
                Ok(_) => sent += 1,
                Err(_) => send_errors += 1,
            }
        }
    }
    eprintln!(
        "blaster: received {received} sent {sent} send_errors {send_errors} peers {}",
        peers.len()
    );
    Ok(())
}
