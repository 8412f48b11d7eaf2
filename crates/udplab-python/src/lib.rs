//! The Python extension module `udplab._core`: the one place where a Python call crosses into
//! Rust. It converts arguments, releases the GIL around every call that can wait, and maps
//! errors; everything else lives in the core modules. This file holds the conversions and the
//! error mapping; `socket.rs`, `chat.rs` and `link.rs` hold the classes.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::exceptions::{
    PyBufferError, PyOSError, PyOverflowError, PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString, PyTuple};

use udplab::socket::{self as core_socket, Family, ResolveError};

mod capture;
mod chat;
mod link;
mod socket;
mod watch;

pub(crate) use udplab::platform::consts::{AF_INET, AF_INET6, SOCK_DGRAM};
/// A datagram can be no longer than this, so a larger receive buffer would only waste memory.
pub(crate) const MAX_DATAGRAM: usize = 65_536;

static LOG_RESET: OnceLock<pyo3_log::ResetHandle> = OnceLock::new();

// ---------------------------------------------------------------------------------------------
// Errors

/// Maps an OS error to the `OSError` subclass Python itself would raise, keeping `errno`.
pub(crate) fn os_error(e: io::Error) -> PyErr {
    match e.raw_os_error() {
        Some(code) => {
            let text = e.to_string();
            let suffix = format!(" (os error {code})");
            let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
            os_error_code(code, message)
        }
        None if e.kind() == io::ErrorKind::TimedOut => PyTimeoutError::new_err("timed out"),
        None => PyOSError::new_err(e.to_string()),
    }
}

/// [`os_error`] of opening the file at `path` (a str, bytes or path-like object): the error
/// `open()` raises, `filename` set (`[Errno 2] No such file or directory: 'x.pcap'`).
pub(crate) fn file_error(e: io::Error, path: &Bound<'_, PyAny>) -> PyErr {
    let filename = match path
        .py()
        .import("os")
        .and_then(|os| os.call_method1("fspath", (path,)))
    {
        Ok(filename) => filename,
        Err(err) => return err,
    };
    let Some(code) = e.raw_os_error() else {
        return PyOSError::new_err(format!(
            "{e}: {}",
            filename.repr().map(|r| r.to_string()).unwrap_or_default()
        ));
    };
    let text = e.to_string();
    let message = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text)
        .to_owned();
    let filename = filename.unbind();
    if udplab::platform::WINDOWS_ERROR_CODES {
        PyOSError::new_err((code, message, filename, code))
    } else {
        PyOSError::new_err((code, message, filename))
    }
}

/// `OSError(code, message)` of the subclass Python gives `code`. On Windows the code is a
/// Windows Sockets one, which `OSError` takes as its fourth argument (`winerror`) and derives
/// `errno` and the subclass from, as Python's own socket errors do.
pub(crate) fn os_error_code(code: i32, message: String) -> PyErr {
    if udplab::platform::WINDOWS_ERROR_CODES {
        PyOSError::new_err((code, message, None::<i32>, code))
    } else {
        PyOSError::new_err((code, message))
    }
}

pub(crate) fn resolve_error(py: Python<'_>, e: &ResolveError) -> PyErr {
    let (name, reason, host) = match e {
        ResolveError::NotFound { host } => ("EAI_NONAME", "Name or service not known", host),
        ResolveError::WrongFamily { host, .. } => (
            "EAI_ADDRFAMILY",
            "Address family for hostname not supported",
            host,
        ),
    };
    let make = || -> PyResult<PyErr> {
        let socket = py.import("socket")?;
        let code = socket.getattr(name)?;
        let message = format!("{reason}: {host:?}");
        let err = socket.getattr("gaierror")?.call1((code, message))?;
        Ok(PyErr::from_value(err))
    };
    make().unwrap_or_else(|err| err)
}

/// Runs a call that may wait with the GIL released, checking for signals (Ctrl-C) whenever it
/// has waited a slice, and raises whatever the check raised.
pub(crate) fn blocking<T: Send>(
    py: Python<'_>,
    f: impl FnOnce(core_socket::Check<'_>) -> io::Result<T> + Send,
) -> PyResult<T> {
    let mut raised: Option<PyErr> = None;
    let outcome = py.detach(|| {
        let mut check = || match Python::try_attach(|py| py.check_signals()) {
            Some(Ok(())) => Ok(()),
            Some(Err(err)) => {
                raised = Some(err);
                Err(io::Error::from(io::ErrorKind::Interrupted))
            }
            // The interpreter is shutting down (a daemon thread's call at exit): end the call
            // quietly; the thread ends when it tries to attach again.
            None => Err(io::Error::other("the Python interpreter is shutting down")),
        };
        f(&mut check)
    });
    outcome.map_err(|e| raised.take().unwrap_or_else(|| os_error(e)))
}

// ---------------------------------------------------------------------------------------------
// Conversions

/// Bytes-like data: borrowed from an immutable `bytes`, copied from anything else with the
/// buffer protocol (it may change while the GIL is released). Other buffers are read through a
/// `memoryview`: the stable ABI (`abi3`) has the buffer protocol itself only from Python 3.11.
pub(crate) fn data<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Cow::Owned(b.to_vec()));
    }
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "a bytes-like object is required, not 'str' (encode it first, e.g. msg.encode())",
        ));
    }
    match PyMemoryView::from(obj) {
        Ok(view) => {
            if !view.getattr("c_contiguous")?.is_truthy()? {
                // What the stdlib's sendto says, which takes only contiguous buffers.
                return Err(PyBufferError::new_err(
                    "memoryview: underlying buffer is not C-contiguous",
                ));
            }
            let copy = view.call_method0("tobytes")?;
            Ok(Cow::Owned(copy.cast::<PyBytes>()?.as_bytes().to_vec()))
        }
        Err(_) => Err(PyTypeError::new_err(format!(
            "a bytes-like object is required, not '{}'",
            obj.get_type().name()?
        ))),
    }
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "AF_INET",
        Family::V6 => "AF_INET6",
    }
}

pub(crate) fn family_from(value: i32) -> PyResult<Family> {
    match value {
        AF_INET => Ok(Family::V4),
        AF_INET6 => Ok(Family::V6),
        other => Err(PyValueError::new_err(format!(
            "udplab supports AF_INET ({AF_INET}) and AF_INET6 ({AF_INET6}), not family {other}"
        ))),
    }
}

pub(crate) fn port(obj: &Bound<'_, PyAny>, method: &str) -> PyResult<u16> {
    let value: i128 = match obj.extract() {
        Ok(v) => v,
        Err(err) if err.is_instance_of::<PyOverflowError>(obj.py()) => i128::MAX,
        Err(err) => return Err(err),
    };
    u16::try_from(value)
        .map_err(|_| PyOverflowError::new_err(format!("{method}(): port must be 0-65535.")))
}

pub(crate) fn host(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return std::str::from_utf8(b.as_bytes())
            .map(str::to_owned)
            .map_err(|_| PyValueError::new_err("host name bytes must be ASCII"));
    }
    Err(PyTypeError::new_err(format!(
        "str, bytes or bytearray expected, not {}",
        obj.get_type().name()?
    )))
}

/// Resolves `host` for `family`, releasing the GIL only when a name lookup is needed.
pub(crate) fn resolve(
    py: Python<'_>,
    host: &str,
    port: u16,
    family: Family,
) -> PyResult<SocketAddr> {
    let result = if core_socket::is_literal(host) {
        core_socket::resolve(host, port, family)
    } else {
        py.detach(|| core_socket::resolve(host, port, family))
    };
    result.map_err(|e| resolve_error(py, &e))
}

/// Parses a Python address tuple the way the `socket` module does for `family`.
pub(crate) fn address(
    obj: &Bound<'_, PyAny>,
    family: Family,
    method: &str,
) -> PyResult<SocketAddr> {
    let name = family_name(family);
    let tuple = obj.cast::<PyTuple>().map_err(|_| {
        let type_name = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        PyTypeError::new_err(format!(
            "{method}(): {name} address must be tuple, not {type_name}"
        ))
    })?;
    let len = tuple.len();
    let ok_len = match family {
        Family::V4 => len == 2,
        Family::V6 => (2..=4).contains(&len),
    };
    if !ok_len {
        return Err(PyTypeError::new_err(match family {
            Family::V4 => "AF_INET address must be a pair (host, port)",
            Family::V6 => "AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])",
        }));
    }
    let host = host(&tuple.get_item(0)?)?;
    let port = port(&tuple.get_item(1)?, method)?;
    let addr = resolve(obj.py(), &host, port, family)?;
    if len > 2 {
        let flowinfo: u32 = tuple.get_item(2)?.extract()?;
        let scope_id: u32 = if len > 3 {
            tuple.get_item(3)?.extract()?
        } else {
            0
        };
        return Ok(core_socket::v6_with_scope(addr, flowinfo, scope_id));
    }
    Ok(addr)
}

/// An address as Python's `socket` returns it: `(host, port)`, or a 4-tuple for IPv6.
pub(crate) fn address_tuple<'py>(
    py: Python<'py>,
    addr: SocketAddr,
) -> PyResult<Bound<'py, PyTuple>> {
    match addr {
        SocketAddr::V4(a) => (a.ip().to_string(), a.port()).into_pyobject(py),
        SocketAddr::V6(a) => {
            (a.ip().to_string(), a.port(), a.flowinfo(), a.scope_id()).into_pyobject(py)
        }
    }
}

/// A wall-clock time as `time.time()` gives it.
pub(crate) fn epoch_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A timeout in seconds as Python's `settimeout` takes it: `None`, or a finite number >= 0.
pub(crate) fn timeout(value: Option<f64>) -> PyResult<Option<Duration>> {
    let Some(secs) = value else { return Ok(None) };
    if secs.is_nan() {
        return Err(PyValueError::new_err("Invalid value NaN (not a number)"));
    }
    if secs < 0.0 {
        return Err(PyValueError::new_err("Timeout value out of range"));
    }
    Duration::try_from_secs_f64(secs)
        .map(Some)
        .map_err(|_| PyOverflowError::new_err(format!("timeout too large: {secs}")))
}

pub(crate) fn bufsize(n: isize, method: &str) -> PyResult<usize> {
    if n <= 0 {
        return Err(PyValueError::new_err(format!(
            "{method}(): bufsize must be positive, got {n}"
        )));
    }
    Ok(n.unsigned_abs())
}

// ---------------------------------------------------------------------------------------------
// The module

/// Forgets pyo3-log's cached logger levels, so that a later `logging` configuration is seen.
#[pyfunction]
fn _reset_log_cache() {
    if let Some(handle) = LOG_RESET.get() {
        handle.reset();
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let logger = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::LoggersAndLevels)?;
    // A second import in the same process (e.g. a sub-interpreter) keeps the first logger.
    if let Ok(handle) = logger.install() {
        let _ = LOG_RESET.set(handle);
    }
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("_PORTABLE", udplab::platform::PORTABLE)?;
    m.add_class::<socket::PyUdpSocket>()?;
    m.add_function(wrap_pyfunction!(_reset_log_cache, m)?)?;
    m.add_class::<capture::PyCapture>()?;
    chat::register(m)?;
    link::register(m)?;
    watch::register(m)?;
    Ok(())
}
