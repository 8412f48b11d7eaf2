//! `udplab.UdpSocket`: Python's `socket.socket` for datagrams, backed by [`udplab::socket`].

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::{
    address_tuple, blocking, bufsize, family_from, os_error, os_error_code, timeout, AF_INET,
    AF_INET6, MAX_DATAGRAM, SOCK_DGRAM,
};
use udplab::platform::consts::{IPPROTO_UDP, SOCK_CLOEXEC, SOCK_NONBLOCK};
use udplab::platform::errno;
use udplab::socket::{self as core_socket, Family, UdpSocket};

thread_local! {
    /// The receive buffer of `_recv_batch`: one whole datagram, reused by every call on the
    /// thread.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; MAX_DATAGRAM]);
}

/// A UDP socket with the methods, arguments and errors of Python's `socket.socket`.
#[pyclass(name = "UdpSocket", module = "udplab", frozen)]
pub(crate) struct PyUdpSocket {
    inner: UdpSocket,
    proto: i32,
}

#[pymethods]
impl PyUdpSocket {
    #[new]
    #[pyo3(
        signature = (family = AF_INET, r#type = SOCK_DGRAM, proto = 0),
        text_signature = "(family=2, type=2, proto=0)"
    )]
    fn new(family: i32, r#type: i32, proto: i32) -> PyResult<Self> {
        let family = family_from(family)?;
        let base = r#type & !(SOCK_NONBLOCK | SOCK_CLOEXEC);
        if base != SOCK_DGRAM {
            return Err(PyValueError::new_err(format!(
                "udplab sockets are datagram-only: type must be SOCK_DGRAM ({SOCK_DGRAM}), got {type}",
                type = r#type
            )));
        }
        if proto != 0 && proto != IPPROTO_UDP {
            return Err(PyValueError::new_err(format!(
                "udplab sockets speak UDP: proto must be 0 or IPPROTO_UDP ({}), got {proto}",
                IPPROTO_UDP
            )));
        }
        let inner = UdpSocket::new(family).map_err(os_error)?;
        if r#type & SOCK_NONBLOCK != 0 {
            inner.set_timeout(Some(Duration::ZERO));
        }
        Ok(PyUdpSocket { inner, proto })
    }

    /// Binds to `address`, a `(host, port)` tuple.
    #[pyo3(signature = (address, /))]
    fn bind(&self, address: &Bound<'_, PyAny>) -> PyResult<()> {
        let addr = super::address(address, self.inner.family(), "bind")?;
        self.inner.bind(addr).map_err(os_error)
    }

    /// Sets the default destination; only datagrams from it are received afterwards.
    #[pyo3(signature = (address, /))]
    fn connect(&self, address: &Bound<'_, PyAny>) -> PyResult<()> {
        let addr = super::address(address, self.inner.family(), "connect")?;
        refuse_broadcast(addr)?;
        self.inner.connect(addr).map_err(os_error)
    }

    /// Sends `data` to `address`; returns the number of bytes sent.
    #[pyo3(signature = (data, address, /))]
    fn sendto(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let bytes = super::data(data)?;
        let addr = super::address(address, self.inner.family(), "sendto")?;
        refuse_broadcast(addr)?;
        let payload: &[u8] = &bytes;
        self.call(py, |check| self.inner.send_to_checked(payload, addr, check))
    }

    /// Sends `data` to the connected address.
    #[pyo3(signature = (data, /))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let bytes = super::data(data)?;
        let payload: &[u8] = &bytes;
        self.call(py, |check| self.inner.send_checked(payload, check))
    }

    /// Receives one datagram of at most `bufsize` bytes; returns `(data, address)`.
    #[pyo3(signature = (bufsize, /))]
    fn recvfrom<'py>(
        &self,
        py: Python<'py>,
        bufsize: isize,
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyTuple>)> {
        let mut buf = vec![0u8; bufsize_alloc(bufsize, "recvfrom")?];
        let (n, from) = self.call(py, |check| self.inner.recv_from_checked(&mut buf, check))?;
        Ok((PyBytes::new(py, &buf[..n]), address_tuple(py, from)?))
    }

    /// Receives one datagram of at most `bufsize` bytes.
    #[pyo3(signature = (bufsize, /))]
    fn recv<'py>(&self, py: Python<'py>, bufsize: isize) -> PyResult<Bound<'py, PyBytes>> {
        let mut buf = vec![0u8; bufsize_alloc(bufsize, "recv")?];
        let n = self.call(py, |check| self.inner.recv_checked(&mut buf, check))?;
        Ok(PyBytes::new(py, &buf[..n]))
    }

    /// For `udplab.aio`: receives up to `max_count` datagrams in one call, whole. Waits up to
    /// `wait` seconds for the first (`None`: until one comes or the socket is closed; `0`: not
    /// at all, and then the GIL is kept: nothing blocks), never for the others. Returns
    /// `([(data, address), ...], error)`: `error` is the `OSError` that ended a batch after
    /// some datagrams (raised instead when none came before it), else `None`.
    #[pyo3(signature = (max_count, wait, /))]
    fn _recv_batch<'py>(
        &self,
        py: Python<'py>,
        max_count: usize,
        wait: Option<f64>,
    ) -> PyResult<(Bound<'py, PyList>, Option<Bound<'py, PyAny>>)> {
        let wait = timeout(wait)?;
        let mut got: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
        let mut receive = |check: core_socket::Check<'_>| {
            SCRATCH.with_borrow_mut(|buf| {
                let (n, err) = self
                    .inner
                    .recv_many(max_count, wait, buf, check, |d, from| {
                        got.push((d.to_vec(), from))
                    });
                match err {
                    Some(e) if n == 0 => Err(e),
                    other => Ok(other),
                }
            })
        };
        let err = if wait == Some(Duration::ZERO) {
            receive(&mut || Ok(())).map_err(os_error)?
        } else {
            blocking(py, receive)?
        };
        let list = PyList::empty(py);
        for (data, from) in got {
            list.append((PyBytes::new(py, &data), address_tuple(py, from)?))?;
        }
        Ok((
            list,
            err.map(|e| os_error(e).into_value(py).into_bound(py).into_any()),
        ))
    }

    /// Closes the socket. Closing twice is allowed.
    fn close(&self, py: Python<'_>) {
        // Waits for a call blocked in another thread to finish its slice.
        py.detach(|| self.inner.close());
    }

    /// `None`: block; `0`: never block; `t > 0`: raise `TimeoutError` after `t` seconds.
    #[pyo3(signature = (value, /))]
    fn settimeout(&self, value: Option<f64>) -> PyResult<()> {
        let value = timeout(value)?;
        self.open()?;
        self.inner.set_timeout(value);
        Ok(())
    }

    fn gettimeout(&self) -> Option<f64> {
        self.inner.timeout().map(|d| d.as_secs_f64())
    }

    #[pyo3(signature = (flag, /))]
    fn setblocking(&self, flag: bool) -> PyResult<()> {
        self.open()?;
        self.inner
            .set_timeout(if flag { None } else { Some(Duration::ZERO) });
        Ok(())
    }

    fn getblocking(&self) -> bool {
        self.inner.timeout() != Some(Duration::ZERO)
    }

    fn getsockname<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        address_tuple(py, self.inner.local_addr().map_err(os_error)?)
    }

    fn getpeername<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        address_tuple(py, self.inner.peer_addr().map_err(os_error)?)
    }

    /// The file descriptor, or -1 once closed (as `socket.socket.fileno`).
    fn fileno(&self) -> i64 {
        self.inner.fileno().unwrap_or(-1)
    }

    /// `socket.AddressFamily.AF_INET` or `AF_INET6`, as the stdlib's `family`.
    #[getter]
    fn family<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        stdlib_enum(py, "AddressFamily", self.family_number())
    }

    /// `socket.SocketKind.SOCK_DGRAM`, as the stdlib's `type`.
    #[getter]
    fn r#type<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        stdlib_enum(py, "SocketKind", SOCK_DGRAM)
    }

    #[getter]
    fn proto(&self) -> i32 {
        self.proto
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) {
        self.close(py);
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let head = format!(
            "<udplab.UdpSocket{} fd={}, family={}, type={}, proto={}",
            if self.inner.is_closed() {
                " [closed]"
            } else {
                ""
            },
            self.fileno(),
            self.family(py)?,
            self.r#type(py)?,
            self.proto
        );
        let mut text = head;
        if let Ok(local) = self.inner.local_addr() {
            text.push_str(&format!(", laddr={}", address_tuple(py, local)?.repr()?));
        }
        if let Ok(peer) = self.inner.peer_addr() {
            text.push_str(&format!(", raddr={}", address_tuple(py, peer)?.repr()?));
        }
        text.push('>');
        Ok(text)
    }
}

/// `socket.<enum_name>(value)`: the stdlib's enum member for a constant.
fn stdlib_enum<'py>(py: Python<'py>, enum_name: &str, value: i32) -> PyResult<Bound<'py, PyAny>> {
    py.import("socket")?.getattr(enum_name)?.call1((value,))
}

impl PyUdpSocket {
    /// Runs a call that may wait: with the GIL released (see [`blocking`]), unless the socket
    /// never waits (timeout zero, as `udplab.aio` sets it). Then the call is one system call
    /// and keeping the GIL spares an event loop's thread a wait for it to come back.
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(core_socket::Check<'_>) -> std::io::Result<T> + Send,
    ) -> PyResult<T> {
        if self.inner.timeout() == Some(Duration::ZERO) {
            f(&mut || Ok(())).map_err(os_error)
        } else {
            blocking(py, f)
        }
    }

    fn family_number(&self) -> i32 {
        match self.inner.family() {
            Family::V4 => AF_INET,
            Family::V6 => AF_INET6,
        }
    }

    /// `EBADF` once closed, as the stdlib raises from `settimeout` and `setblocking`.
    fn open(&self) -> PyResult<()> {
        if self.inner.is_closed() {
            return Err(os_error(udplab::socket::closed_error()));
        }
        Ok(())
    }
}

/// The limited broadcast address (`"<broadcast>"`): the kernel refuses it (`EACCES`) without
/// `SO_BROADCAST`, which udplab sockets do not offer; say so instead of a bare "Permission
/// denied".
fn refuse_broadcast(addr: std::net::SocketAddr) -> PyResult<()> {
    match addr {
        std::net::SocketAddr::V4(a) if a.ip().is_broadcast() => Err(os_error_code(
            errno::EACCES,
            "udplab sockets do not broadcast: '<broadcast>' (255.255.255.255) needs the \
             SO_BROADCAST option, which udplab does not set (it is for loopback and trusted \
             networks); send to each address instead"
                .into(),
        )),
        _ => Ok(()),
    }
}

fn bufsize_alloc(n: isize, method: &str) -> PyResult<usize> {
    Ok(bufsize(n, method)?.min(MAX_DATAGRAM))
}
