//! `udplab._core.Link`: the Rust half of `udplab.Link`. The Python class checks and spells out
//! every option (one value per direction) and owns the thread; `serve()` runs the relay with
//! the GIL released.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::{address, address_tuple, epoch_seconds, os_error};
use udplab::link::{Impairment, LaneStats, LinkConfig, LinkStats, Loss, Relay};
use udplab::socket::Family;

/// One direction's settings, as `udplab.link` spells them out: a dict with every key.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Lane {
    loss: LossArg,
    duplicate: f64,
    reorder: f64,
    corrupt: f64,
    delay: f64,
    jitter: f64,
    rate: Option<f64>,
    limit: usize,
}

/// A loss probability, or netem's `gemodel` parameters `(p, r, 1-h, 1-k)`.
#[derive(FromPyObject)]
enum LossArg {
    Random(f64),
    GilbertElliott((f64, f64, f64, f64)),
}

fn duration(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a finite number of seconds >= 0, got {value}"
        ))
    })
}

impl Lane {
    fn impairment(&self) -> PyResult<Impairment> {
        Ok(Impairment {
            loss: match self.loss {
                LossArg::Random(p) => Loss::Random(p),
                LossArg::GilbertElliott((p, r, h, k)) => {
                    Loss::gemodel(p, Some(r), Some(h), Some(k))
                }
            },
            duplicate: self.duplicate,
            reorder: self.reorder,
            corrupt: self.corrupt,
            delay: duration("delay", self.delay)?,
            jitter: duration("jitter", self.jitter)?,
            rate: self.rate,
            limit: self.limit,
        })
    }
}

/// The family an address tuple asks for: IPv6 for a 4-tuple or an IPv6 literal.
fn family_of(obj: &Bound<'_, PyAny>) -> Family {
    let Ok(tuple) = obj.cast::<PyTuple>() else {
        return Family::V4;
    };
    let v6_host = tuple
        .get_item(0)
        .ok()
        .and_then(|h| {
            h.cast::<PyString>()
                .ok()
                .map(|s| s.to_string().contains(':'))
        })
        .unwrap_or(false);
    if tuple.len() > 2 || v6_host {
        Family::V6
    } else {
        Family::V4
    }
}

fn lane_dict<'py>(py: Python<'py>, s: &LaneStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, value) in s.fields() {
        d.set_item(name, value)?;
    }
    Ok(d)
}

fn stats_dict<'py>(py: Python<'py>, s: &LinkStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("up", lane_dict(py, &s.up)?)?;
    d.set_item("down", lane_dict(py, &s.down)?)?;
    d.set_item("clients", s.clients)?;
    d.set_item("mapped", s.mapped)?;
    d.set_item("forgotten", s.forgotten)?;
    Ok(d)
}

/// The link's Rust half: bound at construction, served by `serve()` on a Python thread.
#[pyclass(name = "Link", module = "udplab._core", frozen)]
struct PyLink {
    inner: Arc<Relay>,
}

#[pymethods]
impl PyLink {
    #[new]
    #[pyo3(signature = (target, listen, up, down, *, seed, max_clients, idle, history, spin))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        listen: &Bound<'_, PyAny>,
        up: Lane,
        down: Lane,
        seed: u64,
        max_clients: usize,
        idle: f64,
        history: usize,
        spin: f64,
    ) -> PyResult<Self> {
        let target: SocketAddr = address(target, family_of(target), "Link")?;
        if target.port() == 0 {
            return Err(PyValueError::new_err(
                "Link(): the target's port must not be 0",
            ));
        }
        let listen = address(listen, family_of(listen), "Link")?;
        let config = LinkConfig {
            up: up.impairment()?,
            down: down.impairment()?,
            seed,
            max_clients,
            idle: duration("idle", idle)?,
            history,
            spin: duration("spin", spin)?,
        };
        config
            .validate()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let inner = py
            .detach(|| Relay::bind(listen, target, config))
            .map_err(os_error)?;
        Ok(PyLink {
            inner: Arc::new(inner),
        })
    }

    /// Records every datagram in `capture`; only before serving (False after).
    fn set_capture(&self, capture: &super::capture::PyCapture) -> bool {
        self.inner.set_tap(Some(capture.tap()))
    }

    /// Tells `feed` of every datagram's fate from now on.
    fn watch(&self, feed: &super::watch::PyFeed) {
        self.inner.watch(Arc::clone(&feed.inner));
    }

    /// Stops telling `feed`; True if it was watching.
    fn unwatch(&self, feed: &super::watch::PyFeed) -> bool {
        self.inner.unwatch(&feed.inner)
    }

    /// Relays until `stop()`; run it on a thread of its own.
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

    #[getter]
    fn target<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        address_tuple(py, self.inner.target())
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &py.detach(|| self.inner.stats()))
    }

    /// The counters of a link that has not started: all zero.
    #[staticmethod]
    fn zero_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        stats_dict(py, &LinkStats::default())
    }

    fn clients<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let clients = py.detach(|| self.inner.clients());
        let d = PyDict::new(py);
        for (client, upstream) in clients {
            d.set_item(address_tuple(py, client)?, address_tuple(py, upstream)?)?;
        }
        Ok(d)
    }

    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let events = py.detach(|| self.inner.events());
        let list = PyList::empty(py);
        for (at, direction, client, outcome, size) in events {
            list.append((
                epoch_seconds(at),
                direction.name(),
                address_tuple(py, client)?,
                outcome.name(),
                size,
            ))?;
        }
        Ok(list)
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLink>()
}
