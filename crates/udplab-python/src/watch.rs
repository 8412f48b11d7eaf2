//! `udplab._core.Feed`: the live feed of src/watch.rs, handed to a chat server, client or link
//! with their `watch`, and read by `udplab.view` with `take`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use super::{address_tuple, epoch_seconds};
use udplab::watch::{Feed, DEFAULT_CAPACITY};

/// A bounded feed of sightings: pushes into a full feed are counted as `dropped`.
#[pyclass(name = "Feed", module = "udplab._core", frozen)]
pub(crate) struct PyFeed {
    pub(crate) inner: Arc<Feed>,
}

#[pymethods]
impl PyFeed {
    #[new]
    #[pyo3(signature = (capacity = DEFAULT_CAPACITY), text_signature = "(capacity=8192)")]
    fn new(capacity: usize) -> Self {
        PyFeed {
            inner: Arc::new(Feed::new(capacity)),
        }
    }

    /// Waits up to `timeout` seconds for sightings and takes the newest `most` of them (the
    /// older ones are counted as dropped), as tuples `(time, left, what, fate, src, dst, size,
    /// preview)`; `left` is `None` except for a copy the link forwarded.
    #[pyo3(signature = (timeout, most = None))]
    fn take<'py>(
        &self,
        py: Python<'py>,
        timeout: f64,
        most: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let wait = super::timeout(Some(timeout))?.unwrap_or_default();
        let most = most.unwrap_or(usize::MAX);
        let taken = py.detach(|| self.inner.take(wait, most));
        let list = PyList::empty(py);
        for s in taken {
            let left = s.left.map(|at| epoch_seconds(self.inner.wall(at)));
            list.append((
                epoch_seconds(self.inner.wall(s.at)),
                left,
                s.what,
                s.fate(),
                address_tuple(py, s.from)?,
                address_tuple(py, s.to)?,
                s.size,
                PyBytes::new(py, s.preview()),
            ))?;
        }
        Ok(list)
    }

    /// Counters: `seen`, `dropped` (the feed was full), `queued`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("seen", s.seen)?;
        d.set_item("dropped", s.dropped)?;
        d.set_item("queued", s.queued)?;
        Ok(d)
    }

    /// Ends the feed: a waiting `take` returns, later sightings are ignored. Idempotent.
    fn close(&self) {
        self.inner.close();
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFeed>()
}
