//! `udplab._core.Capture`: a capture file (src/capture.rs) opened from a path or a Python
//! binary file, handed to a chat server, client or link with their `set_capture`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::{file_error, os_error};
use udplab::capture::{Capture, CaptureStats, DEFAULT_LIMIT};
use udplab::endpoint::Tap;

/// A Python binary file as the capture's sink: the writer thread attaches to the interpreter
/// to call its `write` and `flush`.
struct PyFile(Py<PyAny>);

fn attached<T>(f: impl FnOnce(Python<'_>) -> PyResult<T>) -> io::Result<T> {
    match Python::try_attach(|py| f(py).map_err(|e| io::Error::other(e.to_string()))) {
        Some(result) => result,
        None => Err(io::Error::other("the Python interpreter is shutting down")),
    }
}

impl Write for PyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        attached(|py| {
            let n = self.0.call_method1(py, "write", (PyBytes::new(py, buf),))?;
            // A raw (unbuffered) file may write less and says how much; None: all of it.
            Ok(n.extract::<Option<usize>>(py)?.unwrap_or(buf.len()))
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        attached(|py| self.0.call_method0(py, "flush").map(drop))
    }
}

pub(crate) fn capture_stats_dict<'py>(
    py: Python<'py>,
    s: &CaptureStats,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("records", s.records)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("skipped", s.skipped)?;
    d.set_item("dropped", s.dropped)?;
    d.set_item("errors", s.errors)?;
    Ok(d)
}

/// A bad limit (or a path with a NUL byte) is a `ValueError`; opening a path fails as `open()`
/// does, naming it.
fn capture_error(e: io::Error, path: Option<&Bound<'_, PyAny>>) -> PyErr {
    match (e.kind(), path) {
        (io::ErrorKind::InvalidInput, _) => PyValueError::new_err(e.to_string()),
        (_, Some(path)) => file_error(e, path),
        (_, None) => os_error(e),
    }
}

/// A capture file being written: `Capture(target, limit)`, `target` a path or an open binary
/// file (anything with `write` and `flush`).
#[pyclass(name = "Capture", module = "udplab._core", frozen)]
pub(crate) struct PyCapture {
    inner: Arc<Capture>,
}

impl PyCapture {
    pub(crate) fn tap(&self) -> Arc<dyn Tap> {
        self.inner.tap()
    }
}

#[pymethods]
impl PyCapture {
    #[new]
    #[pyo3(signature = (target, limit = DEFAULT_LIMIT), text_signature = "(target, limit=104857600)")]
    fn new(py: Python<'_>, target: &Bound<'_, PyAny>, limit: u64) -> PyResult<Self> {
        let made = if let Ok(path) = target.extract::<PathBuf>() {
            py.detach(|| Capture::create(&path, limit))
                .map_err(|e| capture_error(e, Some(target)))
        } else if target.hasattr("write")? && target.hasattr("flush")? {
            let name = target
                .getattr("name")
                .and_then(|n| n.str().map(|s| s.to_string()))
                .unwrap_or_else(|_| {
                    format!(
                        "<{}>",
                        target
                            .get_type()
                            .name()
                            .map(|n| n.to_string())
                            .unwrap_or_default()
                    )
                });
            let sink = PyFile(target.clone().unbind());
            Capture::new(sink, name, limit).map_err(|e| capture_error(e, None))
        } else {
            return Err(PyTypeError::new_err(format!(
                "capture must be a path or a binary file open for writing, not '{}'",
                target.get_type().name()?
            )));
        };
        Ok(PyCapture {
            inner: Arc::new(made?),
        })
    }

    /// Lets the writer write: the file header, then every datagram recorded. Before it, a
    /// file given by path is left as it was. Idempotent.
    fn begin(&self) {
        self.inner.begin();
    }

    /// Counters: `records`, `bytes`, `skipped`, `dropped`, `errors`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        capture_stats_dict(py, &self.inner.stats())
    }

    /// Writes what is queued, flushes and ends the writer thread. Idempotent. Closed before
    /// `begin`, it writes nothing (a path is left as it was, removed if it was made).
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.inner.close());
    }
}
