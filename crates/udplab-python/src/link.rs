//! `udplab._core.Link` and `LinkConfig`: the Rust half of `udplab.Link`. The Python class
//! converts every option to numbers (one value per direction) and owns the thread;
//! `LinkConfig` hands them to the core, whose checks (`udplab::link::options`) say what is
//! wrong; `serve()` runs the relay with the GIL released.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::{address, address_tuple, epoch_seconds, os_error};
use udplab::link::{
    both, check_target, Allowed, Impairment, LaneStats, LinkConfig, LinkStats, Loss, Opt,
    OptionError, Problem, Relay,
};
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
    limit: i128,
}

/// A loss probability, or netem's `gemodel` parameters `(p, r, 1-h, 1-k)`.
#[derive(FromPyObject)]
enum LossArg {
    Random(f64),
    GilbertElliott((f64, f64, f64, f64)),
}

impl LossArg {
    fn loss(&self) -> Loss {
        match *self {
            LossArg::Random(p) => Loss::Random(p),
            LossArg::GilbertElliott((p, r, h, k)) => Loss::gemodel(p, Some(r), Some(h), Some(k)),
        }
    }
}

/// `ValueError` with the core's message, and its parts in `details` (a dict) for a caller
/// that words it in another language: `option`, `direction` (`up`, `down` or `None`),
/// `problem` (`out_of_range`, `reorder_needs_delay`, `target_port_zero`,
/// `target_is_the_link`) and, as they apply, `allowed` (`probability`, `seconds`,
/// `positive_seconds`, `rate`, `at_least`, `between`), `least`, `most`, `got`, `target`,
/// `listen`.
fn value_error(e: OptionError) -> PyErr {
    let err = PyValueError::new_err(e.to_string());
    Python::attach(|py| {
        // Without the details the message still says it all.
        let _ = details(py, &e).and_then(|d| err.value(py).setattr("details", d));
    });
    err
}

fn details<'py>(py: Python<'py>, e: &OptionError) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("option", e.option())?;
    d.set_item("direction", e.direction().map(|w| w.name()))?;
    let problem = match e.problem() {
        Problem::OutOfRange { allowed, got } => {
            let (kind, least, most) = match *allowed {
                Allowed::Probability => ("probability", None, None),
                Allowed::Seconds { most } => ("seconds", None, Some(most)),
                Allowed::PositiveSeconds { most } => ("positive_seconds", None, Some(most)),
                Allowed::Rate { least } => ("rate", Some(least), None),
                Allowed::AtLeast { least } => ("at_least", Some(least), None),
                Allowed::Between { least, most } => ("between", Some(least), Some(most)),
            };
            d.set_item("allowed", kind)?;
            d.set_item("least", least)?;
            d.set_item("most", most)?;
            d.set_item("got", got)?;
            "out_of_range"
        }
        Problem::ReorderNeedsDelay => "reorder_needs_delay",
        Problem::TargetPortZero { target } => {
            d.set_item("target", target.to_string())?;
            "target_port_zero"
        }
        Problem::TargetIsTheLink { target, listen } => {
            d.set_item("target", target.to_string())?;
            d.set_item("listen", listen.to_string())?;
            "target_is_the_link"
        }
    };
    d.set_item("problem", problem)?;
    Ok(d)
}

/// A count the core takes as `usize` (its range for counts ends at `usize::MAX`).
fn count(opt: Opt, value: i128) -> PyResult<usize> {
    Ok(opt.whole(value).map_err(value_error)? as usize)
}

impl Lane {
    /// The impairment, with the durations and the limit converted (and checked) by the core;
    /// the rest is checked with the whole configuration.
    fn impairment(&self) -> Result<Impairment, OptionError> {
        Ok(Impairment {
            loss: self.loss.loss(),
            duplicate: self.duplicate,
            reorder: self.reorder,
            corrupt: self.corrupt,
            delay: Opt::Delay.seconds(self.delay)?,
            jitter: Opt::Jitter.seconds(self.jitter)?,
            rate: self.rate,
            limit: Opt::Limit.whole(self.limit)? as usize, // a count: within usize
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

/// A link's options, checked by the core when made: a `ValueError` names what is wrong.
#[pyclass(name = "LinkConfig", module = "udplab._core", frozen)]
struct PyLinkConfig {
    inner: LinkConfig,
}

#[pymethods]
impl PyLinkConfig {
    #[new]
    #[pyo3(signature = (up, down, *, seed, max_clients, idle, history, spin))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        up: Lane,
        down: Lane,
        seed: i128,
        max_clients: i128,
        idle: f64,
        history: i128,
        spin: f64,
    ) -> PyResult<Self> {
        let (up, down) = both(up.impairment(), down.impairment()).map_err(value_error)?;
        let inner = LinkConfig {
            up,
            down,
            seed: Opt::Seed.whole(seed).map_err(value_error)?,
            max_clients: count(Opt::MaxClients, max_clients)?,
            idle: Opt::Idle.seconds(idle).map_err(value_error)?,
            history: count(Opt::History, history)?,
            spin: Opt::Spin.seconds(spin).map_err(value_error)?,
        };
        inner.validate().map_err(value_error)?;
        Ok(PyLinkConfig { inner })
    }

    /// Checks one loss model (for `udplab.GEModel`).
    #[staticmethod]
    fn check_loss(loss: LossArg) -> PyResult<()> {
        let imp = Impairment {
            loss: loss.loss(),
            ..Impairment::default()
        };
        imp.validate().map_err(value_error)
    }
}

/// The link's Rust half: bound at construction, served by `serve()` on a Python thread.
#[pyclass(name = "Link", module = "udplab._core", frozen)]
struct PyLink {
    inner: Arc<Relay>,
}

/// The port of an address tuple, if it has one.
fn port_of(obj: &Bound<'_, PyAny>) -> Option<u16> {
    obj.cast::<PyTuple>().ok()?.get_item(1).ok()?.extract().ok()
}

#[pymethods]
impl PyLink {
    #[new]
    fn new(
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        listen: &Bound<'_, PyAny>,
        config: &PyLinkConfig,
    ) -> PyResult<Self> {
        let target: SocketAddr = address(target, family_of(target), "Link")?;
        let listen = address(listen, family_of(listen), "Link")?;
        let config = config.inner.clone();
        let inner = py
            .detach(|| Relay::bind(listen, target, config))
            .map_err(|e| match option_error(&e) {
                Some(option) => value_error(option.clone()),
                None => os_error(e),
            })?;
        Ok(PyLink {
            inner: Arc::new(inner),
        })
    }

    /// Refuses a target that is the link's own listening address (or has port 0) before
    /// anything binds; a name is looked up only where the ports could match, and one that
    /// cannot be is left for `Link()` to report.
    #[staticmethod]
    fn check_target(
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        listen: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let port = port_of(target);
        if port != Some(0) && port != port_of(listen) {
            return Ok(());
        }
        let (Ok(target), Ok(listen)) = (
            address(target, family_of(target), "Link"),
            address(listen, family_of(listen), "Link"),
        ) else {
            return Ok(());
        };
        py.detach(|| check_target(listen, target, None))
            .map_err(value_error)
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

/// The core's reason inside an `InvalidInput` error of `Relay::bind`.
fn option_error(e: &io::Error) -> Option<&OptionError> {
    e.get_ref()?.downcast_ref::<OptionError>()
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLinkConfig>()?;
    m.add_class::<PyLink>()
}
