//! The notes' two programs in Rust: a chat server and a chat client on the udplab core.
//!
//! ```text
//! cargo run --example chat -- server 10007 [--host 127.0.0.1] [--inval 10]
//! cargo run --example chat -- client 10007 [--host 127.0.0.1] [--name alice]
//! ```
//!
//! The server logs joins, messages, quits and expiries until it is killed (Ctrl-C). The client
//! heartbeats every second, sends each line typed (or piped) on standard input and logs what
//! comes back; `/quit` or the end of the input says quit to the server and ends it. Port 0
//! lets the system pick a free port (the server logs which). Log lines follow the notes'
//! format: time, thread name, message.

// A program that talks to a person prints; the workspace denies printing in library code.
#![allow(clippy::print_stderr)]

use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use udplab::client::{ChatClient, ClientConfig};
use udplab::server::{ChatServer, ServerConfig};

const USAGE: &str = "usage: chat server PORT [--host IP] [--inval SECONDS]
       chat client PORT [--host IP] [--name NAME]";

/// Writes `time thread message` lines to standard error, as the notes' logging format does.
struct NotesFormat;

impl Log for NotesFormat {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Info
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let day = since.as_secs() % 86_400;
        let thread = std::thread::current();
        eprintln!(
            "{:02}:{:02}:{:02}.{:03} UTC {} {}",
            day / 3600,
            day / 60 % 60,
            day % 60,
            since.subsec_millis(),
            thread.name().unwrap_or("main"),
            record.args()
        );
    }

    fn flush(&self) {}
}

struct Args {
    role: String,
    port: u16,
    host: IpAddr,
    inval: f64,
    name: Option<String>,
}

fn parse(mut words: impl Iterator<Item = String>) -> Result<Args, String> {
    let role = words.next().ok_or("say server or client")?;
    if role != "server" && role != "client" {
        return Err(format!("unknown role {role:?}: say server or client"));
    }
    let port = words.next().ok_or("give the server's port")?;
    let port = port
        .parse()
        .map_err(|_| format!("the port must be a number from 0 to 65535, not {port:?}"))?;
    let mut args = Args {
        role,
        port,
        host: IpAddr::from([127, 0, 0, 1]),
        inval: 10.0,
        name: None,
    };
    while let Some(option) = words.next() {
        let value = words
            .next()
            .ok_or_else(|| format!("{option} needs a value"))?;
        match option.as_str() {
            "--host" => {
                args.host = value
                    .parse()
                    .map_err(|_| format!("--host must be an IP address, not {value:?}"))?
            }
            "--inval" => {
                args.inval = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                    .ok_or_else(|| {
                        format!("--inval must be seconds in (0, 86400], not {value:?}")
                    })?
            }
            "--name" => args.name = Some(value),
            _ => return Err(format!("unknown option {option}")),
        }
    }
    Ok(args)
}

fn server(args: &Args) -> std::io::Result<()> {
    let config = ServerConfig::new(Duration::from_secs_f64(args.inval));
    let server = Arc::new(ChatServer::bind(
        SocketAddr::new(args.host, args.port),
        config,
    )?);
    // Serves on this thread, named as the notes name the server's thread, until killed.
    std::thread::Builder::new()
        .name("servicer".into())
        .spawn(move || server.serve())?
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the server's thread panicked")))
}

fn client(args: &Args) -> std::io::Result<()> {
    let config = ClientConfig {
        name: args.name.clone(),
        ..ClientConfig::default()
    };
    let user = Arc::new(ChatClient::connect(
        SocketAddr::new(args.host, args.port),
        config,
    )?);
    user.set_heartbeat(Some(Duration::from_secs(1)));
    let threads = user.spawn()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim() == "/quit" {
            break;
        }
        if let Err(e) = user.send(line.as_bytes()) {
            eprintln!("not sent: {e}");
        }
    }
    // Let the last answers arrive before saying quit (piped input ends at once).
    std::thread::sleep(Duration::from_millis(500));
    user.stop();
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

fn main() {
    log::set_logger(&NotesFormat).expect("the only logger");
    log::set_max_level(LevelFilter::Info);
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) => {
            eprintln!("chat: {why}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let ran = if args.role == "server" {
        server(&args)
    } else {
        client(&args)
    };
    if let Err(e) = ran {
        eprintln!("chat: {e}");
        std::process::exit(1);
    }
}
