//! `udplab._core.ChatServer` and `ChatClient`: the Rust halves of `udplab.ChatS` and
//! `udplab.ChatC`. The Python classes own the threads (so log records carry the tutorial's
//! thread names); each thread runs one loop here with the GIL released.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::{address_tuple, blocking, data, epoch_seconds, host, os_error, port};
use udplab::client::{ChatClient, ClientConfig, ClientStats, DEFAULT_QUEUE};
use udplab::endpoint::DEFAULT_RCVBUF;
use udplab::peers::DEFAULT_MAX_CLIENTS;
use udplab::proto::{Words, UDP_MAX_PAYLOAD};
use udplab::server::{ChatServer, DropReason, ServerConfig, Stats, DEFAULT_HISTORY};
use udplab::socket::{self as core_socket, Family};

/// A positive, finite number of seconds.
fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    if !(value.is_finite() && value > 0.0) {
        return Err(PyValueError::new_err(format!(
            "{name} must be a positive, finite number of seconds, got {value}"
        )));
    }
    // from_secs_f64 would panic past Duration::MAX (about 585 billion years).
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyOverflowError::new_err(format!("{name} is too large: {value} seconds")))
}

/// Resolves a chat address of either family: IPv4 first, as the tutorial's sockets are.
fn chat_address(
    py: Python<'_>,
    ip: &Bound<'_, PyAny>,
    port_obj: &Bound<'_, PyAny>,
    who: &str,
) -> PyResult<SocketAddr> {
    let host = host(ip)?;
    let port = port(port_obj, who)?;
    py.detach(|| {
        core_socket::resolve(&host, port, Family::V4)
            .or_else(|_| core_socket::resolve(&host, port, Family::V6))
    })
    .map_err(|e| super::resolve_error(py, &e))
}

fn words(heartbeat: &Bound<'_, PyAny>, quit: &Bound<'_, PyAny>) -> PyResult<Words> {
    Words::new(data(heartbeat)?.to_vec(), data(quit)?.to_vec())
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

fn stats_dict<'py>(py: Python<'py>, s: &Stats, clients: usize) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("received", s.received)?;
    d.set_item("messages", s.messages)?;
    d.set_item("sent", s.sent)?;
    d.set_item("heartbeats", s.heartbeats)?;
    d.set_item("joins", s.joins)?;
    d.set_item("quits", s.quits)?;
    d.set_item("expiries", s.expiries)?;
    d.set_item("send_errors", s.send_errors)?;
    d.set_item("recv_errors", s.recv_errors)?;
    d.set_item("notices_dropped", s.notices_dropped)?;
    d.set_item("clients", clients)?;
    let dropped = PyDict::new(py);
    for reason in DropReason::ALL {
        dropped.set_item(reason.name(), s.dropped_for(reason))?;
    }
    d.set_item("dropped", dropped)?;
    Ok(d)
}

fn client_stats_dict<'py>(py: Python<'py>, s: &ClientStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("received", s.received)?;
    d.set_item("dropped", s.dropped)?;
    d.set_item("sent", s.sent)?;
    d.set_item("heartbeats", s.heartbeats)?;
    d.set_item("errors", s.errors)?;
    Ok(d)
}

/// The chat server's Rust half: bound at construction, served by `serve()` on a Python thread.
#[pyclass(name = "ChatServer", module = "udplab._core", frozen)]
struct PyChatServer {
    inner: Arc<ChatServer>,
}

#[pymethods]
impl PyChatServer {
    #[new]
    #[pyo3(signature = (
        ip, port, inval, *, heartbeat, quit, prefix, echo = true,
        max_clients = DEFAULT_MAX_CLIENTS, max_payload = UDP_MAX_PAYLOAD,
        rcvbuf = Some(DEFAULT_RCVBUF), history = DEFAULT_HISTORY, notify = false, spin = 0.0002
    ), text_signature = "(ip, port, inval, *, heartbeat, quit, prefix, echo=True, \
        max_clients=10000, max_payload=65507, rcvbuf=4194304, history=4096, notify=False, \
        spin=0.0002)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        ip: &Bound<'_, PyAny>,
        port: &Bound<'_, PyAny>,
        inval: f64,
        heartbeat: &Bound<'_, PyAny>,
        quit: &Bound<'_, PyAny>,
        prefix: &Bound<'_, PyAny>,
        echo: bool,
        max_clients: usize,
        max_payload: usize,
        rcvbuf: Option<usize>,
        history: usize,
        notify: bool,
        spin: f64,
    ) -> PyResult<Self> {
        let mut config = ServerConfig::new(seconds("inval", inval)?);
        config.words = words(heartbeat, quit)?;
        config.prefix = data(prefix)?.to_vec();
        config.echo = echo;
        config.max_clients = max_clients;
        config.max_payload = max_payload;
        config.rcvbuf = rcvbuf;
        config.history = history;
        config.notify = notify;
        config.spin = match spin {
            0.0 => Duration::ZERO,
            s => seconds("spin", s)?,
        };
        config
            .validate()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let addr = chat_address(py, ip, port, "ChatS")?;
        let inner = py
            .detach(|| ChatServer::bind(addr, config))
            .map_err(os_error)?;
        Ok(PyChatServer {
            inner: Arc::new(inner),
        })
    }

    /// The counters of a server that has not started: every one zero.
    #[staticmethod]
    fn zero_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        stats_dict(py, &Stats::default(), 0)
    }

    /// Records every datagram in `capture`; only before serving (False after).
    fn set_capture(&self, capture: &super::capture::PyCapture) -> bool {
        self.inner.set_tap(Some(capture.tap()))
    }

    /// Tells `feed` of every datagram and event (join, expire) from now on.
    fn watch(&self, feed: &super::watch::PyFeed) {
        self.inner.watch(Arc::clone(&feed.inner));
    }

    /// Stops telling `feed`; True if it was watching.
    fn unwatch(&self, feed: &super::watch::PyFeed) -> bool {
        self.inner.unwatch(&feed.inner)
    }

    /// Serves until `stop()`; run it on a thread of its own.
    fn serve(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.serve()).map_err(os_error)
    }

    /// Asks `serve()` to return at once.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.inner.stop());
    }

    #[getter]
    fn addr<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        address_tuple(py, self.inner.local_addr())
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (stats, clients) = py.detach(|| self.inner.stats_and_clients());
        stats_dict(py, &stats, clients)
    }

    fn clients<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let clients = py.detach(|| self.inner.clients());
        let d = PyDict::new(py);
        for (addr, seen) in clients {
            d.set_item(address_tuple(py, addr)?, epoch_seconds(seen))?;
        }
        Ok(d)
    }

    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let events = py.detach(|| self.inner.events());
        let list = PyList::empty(py);
        for (at, kind, addr) in events {
            list.append((epoch_seconds(at), kind.name(), address_tuple(py, addr)?))?;
        }
        Ok(list)
    }

    /// Waits up to `timeout` seconds for join/message/quit/expire notices and takes them.
    fn wait_notices<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyList>> {
        let wait = seconds("timeout", timeout)?;
        let notices = py.detach(|| self.inner.wait_notices(wait));
        let list = PyList::empty(py);
        for n in notices {
            list.append((
                epoch_seconds(n.event.wall),
                n.event.kind.name(),
                address_tuple(py, n.event.addr)?,
                PyBytes::new(py, &n.payload),
            ))?;
        }
        Ok(list)
    }
}

/// The chat client's Rust half: connected at construction; `receive_loop()` and
/// `heartbeat_loop()` run on Python threads.
#[pyclass(name = "ChatClient", module = "udplab._core", frozen)]
struct PyChatClient {
    inner: Arc<ChatClient>,
}

#[pymethods]
impl PyChatClient {
    #[new]
    #[pyo3(
        signature = (rip, rport, *, heartbeat, quit, queue = DEFAULT_QUEUE, name = None),
        text_signature = "(rip, rport, *, heartbeat, quit, queue=1024, name=None)"
    )]
    fn new(
        py: Python<'_>,
        rip: &Bound<'_, PyAny>,
        rport: &Bound<'_, PyAny>,
        heartbeat: &Bound<'_, PyAny>,
        quit: &Bound<'_, PyAny>,
        queue: usize,
        name: Option<String>,
    ) -> PyResult<Self> {
        if queue == 0 {
            return Err(PyValueError::new_err("queue must be at least 1"));
        }
        if let Some(n) = &name {
            if n.is_empty() || n.chars().any(char::is_control) {
                return Err(PyValueError::new_err(format!(
                    "name must be non-empty text without control characters, got {n:?}"
                )));
            }
        }
        let config = ClientConfig {
            words: words(heartbeat, quit)?,
            queue,
            name,
        };
        let server = chat_address(py, rip, rport, "ChatC")?;
        if server.port() == 0 {
            return Err(PyValueError::new_err(
                "ChatC(): the server's port must not be 0",
            ));
        }
        let inner = py
            .detach(|| ChatClient::connect(server, config))
            .map_err(os_error)?;
        Ok(PyChatClient {
            inner: Arc::new(inner),
        })
    }

    /// The counters of a client that has not started: every one zero.
    #[staticmethod]
    fn zero_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        client_stats_dict(py, &ClientStats::default())
    }

    /// Records every datagram in `capture`; only before serving (False after).
    fn set_capture(&self, capture: &super::capture::PyCapture) -> bool {
        self.inner.set_tap(Some(capture.tap()))
    }

    /// Tells `feed` of every datagram sent and received from now on.
    fn watch(&self, feed: &super::watch::PyFeed) {
        self.inner.watch(Arc::clone(&feed.inner));
    }

    /// Stops telling `feed`; True if it was watching.
    fn unwatch(&self, feed: &super::watch::PyFeed) -> bool {
        self.inner.unwatch(&feed.inner)
    }

    fn receive_loop(&self, py: Python<'_>) {
        py.detach(|| self.inner.receive_loop());
    }

    fn heartbeat_loop(&self, py: Python<'_>) {
        py.detach(|| self.inner.heartbeat_loop());
    }

    /// Starts or re-times (seconds) or pauses (`None`) the heartbeat.
    #[pyo3(signature = (interval))]
    fn set_heartbeat(&self, py: Python<'_>, interval: Option<f64>) -> PyResult<()> {
        let interval = interval.map(|i| seconds("interval", i)).transpose()?;
        py.detach(|| self.inner.set_heartbeat(interval));
        Ok(())
    }

    fn send(&self, py: Python<'_>, msg: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data(msg)?;
        let payload: &[u8] = &bytes;
        py.detach(|| self.inner.send(payload)).map_err(os_error)
    }

    /// Sends without waiting for buffer space: `BlockingIOError` when it is full.
    fn try_send(&self, msg: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data(msg)?;
        let payload: &[u8] = &bytes;
        self.inner.try_send(payload).map_err(os_error)
    }

    /// Up to `max_count` queued datagrams, waiting up to `timeout` seconds for the first.
    #[pyo3(signature = (timeout, max_count))]
    fn recv_many<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
        max_count: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let wait = super::timeout(timeout)?;
        let got = blocking(py, |check| self.inner.recv_many(wait, max_count, check))?;
        PyList::new(py, got.iter().map(|d| PyBytes::new(py, d)))
    }

    #[pyo3(signature = (timeout = None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        let wait = super::timeout(timeout)?;
        let data = blocking(py, |check| self.inner.recv(wait, check))?;
        Ok(PyBytes::new(py, &data))
    }

    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.inner.stop());
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        client_stats_dict(py, &self.inner.stats())
    }

    #[getter]
    fn addr<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        address_tuple(py, self.inner.local_addr())
    }

    #[getter]
    fn raddr<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        address_tuple(py, self.inner.server_addr())
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyChatServer>()?;
    m.add_class::<PyChatClient>()?;
    Ok(())
}
