//! The link's benchmark (issue 12; results in BENCHMARKS.md): `udplab::link::Relay` with no
//! impairment against a minimal hand-written relay (a blocking `recv_from`/`send` loop per
//! direction), in the same run, interleaved; then the delay's accuracy.
//!
//! `udplab.Link` runs exactly this `Relay::serve` loop on its Python thread with the GIL
//! released, so measuring the Rust type measures the Python class's relaying.
//!
//! 1. forwarding rate: one sender blasts 32-byte datagrams through the relay to a sink for
//!    `--seconds`; the rate is what the sink counted per second.
//! 2. added latency: a client pings an echo server with 32 bytes, directly and through each
//!    relay (both directions cross the relay): the link as configured by default, the link with
//!    `spin` = 0 (sleeping in `poll(2)` whenever no datagram is ready) and the minimal relay;
//!    p50, p90 and p99 of the round trip.
//! 3. delay accuracy: 1000 datagrams/s through a `Relay` with delay = 20 ms; |arrival - send -
//!    20 ms - the direct one-way time| at p50, p99 and max.
//!
//! ```text
//! cargo run --release --example link_bench -- [--reps 5] [--seconds 2]
//! ```

// A benchmark program: printing its results is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use udplab::link::{Impairment, LinkConfig, Relay};

const PAYLOAD: usize = 32;
const LO: &str = "127.0.0.1:0";
const SLICE: Duration = Duration::from_millis(50);

fn socket(timeout: Option<Duration>) -> UdpSocket {
    let s = UdpSocket::bind(LO).unwrap();
    s.set_read_timeout(timeout).unwrap();
    s
}

/// A relay under test, running: where clients send, and how to stop it.
enum Contender {
    Link(Arc<Relay>, JoinHandle<std::io::Result<()>>),
    Minimal(SocketAddr, Arc<AtomicBool>, Vec<JoinHandle<()>>),
}

impl Contender {
    fn link(target: SocketAddr, imp: Impairment) -> Contender {
        Contender::link_with(target, LinkConfig::new(1).both(imp))
    }

    fn link_with(target: SocketAddr, config: LinkConfig) -> Contender {
        let relay = Arc::new(Relay::bind(LO.parse().unwrap(), target, config).unwrap());
        let thread = relay.spawn().unwrap();
        Contender::Link(relay, thread)
    }

    /// The least a relay can do: one thread per direction, blocking `recv_from` and `send`,
    /// one client (the last one heard from), no queue, no counters.
    fn minimal(target: SocketAddr) -> Contender {
        let listen = socket(Some(SLICE));
        let upstream = socket(Some(SLICE));
        upstream.connect(target).unwrap();
        let addr = listen.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let client = Arc::new(Mutex::new(None::<SocketAddr>));
        let up = {
            let (listen, upstream) = (listen.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (stop, client) = (stop.clone(), client.clone());
            thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let mut known = None;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = listen.recv_from(&mut buf) {
                        if known != Some(from) {
                            known = Some(from);
                            *client.lock().unwrap() = known;
                        }
                        let _ = upstream.send(&buf[..n]);
                    }
                }
            })
        };
        let down = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = upstream.recv(&mut buf) {
                        if let Some(c) = *client.lock().unwrap() {
                            let _ = listen.send_to(&buf[..n], c);
                        }
                    }
                }
            })
        };
        Contender::Minimal(addr, stop, vec![up, down])
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Contender::Link(relay, _) => relay.local_addr(),
            Contender::Minimal(addr, _, _) => *addr,
        }
    }

    fn stop(self) {
        match self {
            Contender::Link(relay, thread) => {
                relay.stop();
                thread.join().unwrap().unwrap();
            }
            Contender::Minimal(_, stop, threads) => {
                stop.store(true, Ordering::Relaxed);
                for t in threads {
                    t.join().unwrap();
                }
            }
        }
    }
}

/// Datagrams per second that reach a sink through `make(sink)` while one sender blasts.
fn forwarding_rate(make: &dyn Fn(SocketAddr) -> Contender, seconds: f64) -> f64 {
    let sink = socket(Some(SLICE));
    let relay = make(sink.local_addr().unwrap());
    let to = relay.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicU64::new(0));
    let counter = {
        let (stop, counted) = (stop.clone(), counted.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if sink.recv(&mut buf).is_ok() {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let sender = {
        let stop = stop.clone();
        thread::spawn(move || {
            let s = socket(None);
            let data = [7u8; PAYLOAD];
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    let _ = s.send_to(&data, to);
                }
            }
        })
    };
    thread::sleep(Duration::from_millis(200)); // warm up
    let (start, before) = (Instant::now(), counted.load(Ordering::Relaxed));
    thread::sleep(Duration::from_secs_f64(seconds));
    let rate = (counted.load(Ordering::Relaxed) - before) as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    counter.join().unwrap();
    relay.stop();
    rate
}

/// An echo server on a thread; stops when `stop` is set.
fn echo(stop: Arc<AtomicBool>) -> (SocketAddr, JoinHandle<()>) {
    let s = socket(Some(SLICE));
    let addr = s.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], from);
            }
        }
    });
    (addr, handle)
}

/// Round trips in µs of `n` pings to `to` (after 200 unmeasured ones).
fn round_trips(to: SocketAddr, n: usize) -> Vec<f64> {
    let c = socket(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 2048];
    let data = [1u8; PAYLOAD];
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 200 {
        let t = Instant::now();
        c.send_to(&data, to).unwrap();
        c.recv(&mut buf).unwrap();
        if i >= 200 {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    times
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// |arrival - send - delay - direct one-way| in µs for `n` datagrams at `per_second`.
fn delay_errors(delay: Duration, per_second: u32, n: usize, one_way_us: f64) -> Vec<f64> {
    let sink = socket(Some(Duration::from_secs(1)));
    let imp = Impairment {
        delay,
        ..Impairment::default()
    };
    let relay = Contender::link(sink.local_addr().unwrap(), imp);
    let to = relay.addr();
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let sender = {
        let sent = sent.clone();
        thread::spawn(move || {
            let s = socket(None);
            let start = Instant::now();
            let gap = Duration::from_secs(1) / per_second;
            for i in 0..n {
                let at = start + gap * i as u32;
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                sent.lock().unwrap().push(Instant::now());
                s.send_to(&(i as u64).to_le_bytes(), to).unwrap();
            }
        })
    };
    let mut errors = Vec::with_capacity(n);
    let mut buf = [0u8; 64];
    for _ in 0..n {
        let Ok(len) = sink.recv(&mut buf) else { break };
        let arrived = Instant::now();
        let i = u64::from_le_bytes(buf[..len].try_into().unwrap()) as usize;
        let took = arrived
            .duration_since(sent.lock().unwrap()[i])
            .as_secs_f64()
            * 1e6;
        errors.push((took - delay.as_secs_f64() * 1e6 - one_way_us).abs());
    }
    sender.join().unwrap();
    relay.stop();
    errors
}

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let reps = arg("--reps", 5.0) as usize;
    let seconds = arg("--seconds", 2.0);
    let link = |target| Contender::link(target, Impairment::default());
    let minimal = |target| Contender::minimal(target);
    // The link with `spin` = 0: it sleeps in poll(2) between any two datagrams.
    let asleep = |target| {
        let config = LinkConfig {
            spin: Duration::ZERO,
            ..LinkConfig::new(1)
        };
        Contender::link_with(target, config)
    };

    println!("## forwarding rate, 32-byte datagrams, one stream ({reps} reps of {seconds} s, interleaved)");
    let (mut l, mut m) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        l.push(forwarding_rate(&link, seconds));
        m.push(forwarding_rate(&minimal, seconds));
        println!("rep {rep}: link {:.0}/s, minimal {:.0}/s", l[rep], m[rep]);
    }
    let (l, m) = (median(l), median(m));
    println!(
        "median: link {l:.0}/s, minimal {m:.0}/s, ratio {:.2}",
        l / m
    );

    println!("## round trip through an echo server, µs ({reps} reps of 2000 pings, interleaved)");
    let stop = Arc::new(AtomicBool::new(false));
    let (server, echo_thread) = echo(stop.clone());
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("direct", vec![]),
        ("link", vec![]),
        ("link spin=0", vec![]),
        ("minimal", vec![]),
    ];
    for _ in 0..reps {
        rows[0].1.extend(round_trips(server, 2000));
        for (k, make) in [
            (1, &link as &dyn Fn(SocketAddr) -> Contender),
            (2, &asleep),
            (3, &minimal),
        ] {
            let relay = make(server);
            rows[k].1.extend(round_trips(relay.addr(), 2000));
            relay.stop();
        }
    }
    stop.store(true, Ordering::Relaxed);
    echo_thread.join().unwrap();
    let mut p50 = Vec::new();
    for (name, mut times) in rows {
        times.sort_by(f64::total_cmp);
        let (a, b) = (percentile(&times, 0.5), percentile(&times, 0.99));
        let c = percentile(&times, 0.9);
        println!("{name}: p50 {a:.1}, p90 {c:.1}, p99 {b:.1}");
        p50.push(a);
    }
    println!(
        "added p50 round trip (two crossings): link {:.1} µs, link spin=0 {:.1} µs, minimal {:.1} µs",
        p50[1] - p50[0],
        p50[2] - p50[0],
        p50[3] - p50[0]
    );

    let one_way = p50[0] / 2.0;
    println!("## delay accuracy: 1000 datagrams/s, delay 20 ms, 3000 datagrams");
    let mut errors = delay_errors(Duration::from_millis(20), 1000, 3000, one_way);
    errors.sort_by(f64::total_cmp);
    println!(
        "received {}, |actual - asked| µs: p50 {:.0}, p99 {:.0}, max {:.0}",
        errors.len(),
        percentile(&errors, 0.5),
        percentile(&errors, 0.99),
        errors.last().copied().unwrap_or(f64::NAN)
    );
}
