"""The Rust extension module behind udplab (built by maturin from ``src/``)."""

import builtins
import os
import socket
from types import TracebackType
from typing import Any, BinaryIO, final

from typing_extensions import Buffer as _Buffer
from typing_extensions import Self

_Address = tuple[Any, ...]
_BufferLike = bytes | bytearray | memoryview | _Buffer

__all__ = [
    "Capture", "ChatClient", "ChatServer", "Feed", "Link", "LinkConfig", "UdpSocket", "_PORTABLE",
    "__version__",
    "_reset_log_cache",
]
__version__: str
#: Whether this build runs the portable path of ``crates/udplab/src/platform/`` (std sockets,
#: non-blocking, a loopback UDP pair to wake a loop: what Windows runs) instead of the Unix one.
_PORTABLE: bool

def _reset_log_cache() -> None:
    """Forget pyo3-log's cached logger levels (see ``udplab.refresh_logging``)."""

_Sighting = tuple[float, float | None, str, str, _Address, _Address, int, bytes]

@final
class Feed:
    """A live feed of sightings (``crates/udplab/src/watch.rs``), handed to cores with
    ``watch``: bounded to ``capacity`` not yet taken; when it is full, the oldest is forgotten
    and counted as ``dropped``."""

    def __new__(cls, capacity: int = 8192) -> Self: ...
    def take(self, timeout: float, most: int | None = None) -> list[_Sighting]:
        """Wait up to ``timeout`` seconds for sightings and take the newest ``most`` (all with
        ``None``; the older ones count as dropped), as tuples ``(time, left, what, fate, src,
        dst, size, preview)``."""

    def stats(self) -> dict[str, int]:
        """Counters: ``seen``, ``dropped``, ``queued``."""

    def close(self) -> None:
        """End the feed: a waiting ``take`` returns, later sightings are ignored."""

@final
class Capture:
    """A pcap file being written by a thread of its own (``crates/udplab/src/capture.rs``):
    ``target`` is a path (opened, created if missing, and left as it is until ``begin()``) or
    a binary file with ``write`` and ``flush``; ``limit`` is the size cap in bytes (at least
    24, the file header). A path that cannot be opened raises the ``OSError`` of ``open()``,
    ``filename`` set."""

    def __new__(cls, target: str | os.PathLike[str] | BinaryIO, limit: int = 104857600) -> Self: ...
    def begin(self) -> None:
        """Let the writer write: the file header, then every datagram recorded (a path's old
        content is replaced now). Idempotent."""

    def stats(self) -> dict[str, int]:
        """Counters: ``records``, ``bytes``, ``skipped``, ``dropped``, ``errors``."""

    def close(self) -> None:
        """Write what is queued, flush and end the writer thread. Idempotent. Closed before
        ``begin()``, it writes nothing: a path is left as it was (removed if it was made)."""

@final
class UdpSocket:
    """A UDP socket with the methods, arguments and errors of ``socket.socket``.

    Blocking calls release the GIL and wake every 0.1 s to check for Ctrl-C.
    """

    def __new__(cls, family: int = 2, type: int = 2, proto: int = 0) -> Self:
        """``family`` is ``AF_INET`` or ``AF_INET6``; ``type`` must be ``SOCK_DGRAM``
        (``ValueError`` otherwise: udplab sockets are datagram-only)."""

    @property
    def family(self) -> socket.AddressFamily:
        """``socket.AddressFamily.AF_INET`` or ``AF_INET6``, as the stdlib's."""

    @property
    def type(self) -> socket.SocketKind:
        """``socket.SocketKind.SOCK_DGRAM``, as the stdlib's."""

    @property
    def proto(self) -> int: ...
    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""

    def bind(self, address: _Address, /) -> None:
        """Claim a local ``(host, port)``; port 0 lets the system pick a free one."""

    def connect(self, address: _Address, /) -> None:
        """Set the default destination; afterwards only its datagrams are received."""

    def sendto(self, data: _BufferLike, address: _Address, /) -> int:
        """Send one datagram to ``address``; returns the bytes sent."""

    def send(self, data: _BufferLike, /) -> int:
        """Send to the connected address (``OSError`` EDESTADDRREQ if not connected)."""

    def recvfrom(self, bufsize: int, /) -> tuple[bytes, _Address]:
        """Receive one datagram: ``(data, address)``. A longer datagram is truncated to
        ``bufsize`` bytes and the rest discarded. ``bufsize`` must be positive."""

    def _recv_batch(
        self, max_count: int, wait: float | None, /
    ) -> tuple[list[tuple[bytes, _Address]], OSError | None]:
        """For ``udplab.aio``: up to ``max_count`` whole datagrams in one call, waiting up to
        ``wait`` seconds for the first (``None``: until one comes or the socket is closed;
        ``0``: not at all), never for the rest. Returns them with the ``OSError`` that ended
        the batch after some datagrams (raised instead when none came before it), or None."""

    def recv(self, bufsize: int, /) -> bytes:
        """Receive one datagram's data (truncated to ``bufsize``)."""

    def close(self) -> None:
        """Close the socket; later calls raise ``OSError`` (EBADF). Idempotent."""

    def settimeout(self, value: float | None, /) -> None:
        """``None``: block; ``0``: never block (``BlockingIOError``); ``t > 0``: raise
        ``TimeoutError`` after ``t`` seconds."""

    def gettimeout(self) -> float | None: ...
    def setblocking(self, flag: bool, /) -> None: ...
    def getblocking(self) -> bool: ...
    def getsockname(self) -> _Address: ...
    def getpeername(self) -> _Address: ...
    def fileno(self) -> int:
        """The file descriptor, or -1 once closed."""

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: builtins.type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...

@final
class ChatServer:
    """The Rust half of ``udplab.ChatS``: binds on construction; ``serve()`` runs the
    receive loop until ``stop()``."""

    def __new__(
        cls,
        ip: str,
        port: int,
        inval: float,
        *,
        heartbeat: _BufferLike,
        quit: _BufferLike,
        prefix: _BufferLike,
        echo: bool = True,
        max_clients: int = 10000,
        max_payload: int = 65507,
        rcvbuf: int | None = 4194304,
        history: int = 4096,
        notify: bool = False,
        spin: float = 0.0002,
    ) -> Self: ...
    @property
    def addr(self) -> _Address: ...
    @staticmethod
    def zero_stats() -> dict[str, Any]:
        """The counters of a server that has not started: every one zero."""

    def set_capture(self, capture: Capture) -> bool:
        """Record every datagram in ``capture``; only before serving (False after)."""

    def watch(self, feed: Feed) -> None:
        """Tell ``feed`` of every datagram from now on."""

    def unwatch(self, feed: Feed) -> bool:
        """Stop telling ``feed``; True if it was watching."""

    def serve(self) -> None:
        """Receive and handle datagrams until ``stop()``; closes the socket on return."""

    def stop(self) -> None:
        """Ask ``serve()`` to return at once. Idempotent."""

    def stats(self) -> dict[str, Any]: ...
    def clients(self) -> dict[_Address, float]: ...
    def events(self) -> list[tuple[float, str, _Address]]: ...
    def wait_notices(self, timeout: float) -> list[tuple[float, str, _Address, bytes]]:
        """Wait up to ``timeout`` s for join/message/quit/expire notices and take them."""

@final
class ChatClient:
    """The Rust half of ``udplab.ChatC``: a socket connected to the server."""

    def __new__(
        cls,
        rip: str,
        rport: int,
        *,
        heartbeat: _BufferLike,
        quit: _BufferLike,
        queue: int = 1024,
        name: str | None = None,
    ) -> Self: ...
    @property
    def addr(self) -> _Address: ...
    @property
    def raddr(self) -> _Address: ...
    @staticmethod
    def zero_stats() -> dict[str, int]:
        """The counters of a client that has not started: every one zero."""

    def set_capture(self, capture: Capture) -> bool:
        """Record every datagram in ``capture``; only before serving (False after)."""

    def watch(self, feed: Feed) -> None:
        """Tell ``feed`` of every datagram from now on."""

    def unwatch(self, feed: Feed) -> bool:
        """Stop telling ``feed``; True if it was watching."""

    def receive_loop(self) -> None:
        """Receive, log and queue datagrams until ``stop()``."""

    def heartbeat_loop(self) -> None:
        """Send heartbeats as ``set_heartbeat`` says until ``stop()``."""

    def set_heartbeat(self, interval: float | None) -> None: ...
    def send(self, msg: _BufferLike) -> None: ...
    def recv(self, timeout: float | None = None) -> bytes: ...
    def recv_many(self, timeout: float | None, max_count: int) -> list[bytes]:
        """Up to ``max_count`` queued datagrams, waiting up to ``timeout`` seconds (``None``:
        until one comes or the client stops) for the first."""

    def try_send(self, msg: _BufferLike) -> None:
        """Sends without waiting for room in the send buffer (``BlockingIOError`` if full)."""
    def stop(self) -> None:
        """Send the quit word, end both loops, close the socket. Idempotent."""

    def stats(self) -> dict[str, int]: ...

@final
class LinkConfig:
    """A link's options, checked by the core when made (``ValueError`` naming the option and
    what it allows). ``up`` and ``down`` are dicts with every key: ``loss`` (a probability or
    ``(p, r, 1-h, 1-k)``), ``duplicate``, ``reorder``, ``corrupt``, ``delay``, ``jitter``
    (seconds), ``rate`` (bytes/s or ``None``), ``limit``."""

    def __new__(
        cls,
        up: dict[str, Any],
        down: dict[str, Any],
        *,
        seed: int,
        max_clients: int,
        idle: float,
        history: int,
        spin: float,
    ) -> Self: ...
    @staticmethod
    def check_loss(loss: float | tuple[float, float, float, float]) -> None:
        """``ValueError`` if the loss model is not allowed (for ``udplab.GEModel``)."""

@final
class Link:
    """The Rust half of ``udplab.Link``: binds ``listen`` on construction; ``serve()`` relays
    until ``stop()``. ``ValueError`` if ``target`` is the bound address itself."""

    def __new__(cls, target: _Address, listen: _Address, config: LinkConfig) -> Self: ...
    @staticmethod
    def check_target(target: _Address, listen: _Address) -> None:
        """``ValueError`` if ``target`` has port 0 or is the link's own address (``listen``,
        or any address of this machine on its port when ``listen`` is a wildcard); names
        are looked up only when the ports match, and one that cannot be is left for
        ``Link()`` to report."""

    @property
    def addr(self) -> _Address: ...
    @property
    def target(self) -> _Address: ...
    def set_capture(self, capture: Capture) -> bool:
        """Record every datagram in ``capture``; only before serving (False after)."""

    def watch(self, feed: Feed) -> None:
        """Tell ``feed`` of every datagram from now on."""

    def unwatch(self, feed: Feed) -> bool:
        """Stop telling ``feed``; True if it was watching."""

    def serve(self) -> None:
        """Relay until ``stop()``; discards what still waits and closes every socket on return."""

    def stop(self) -> None:
        """Ask ``serve()`` to return at once. Idempotent."""

    def stats(self) -> dict[str, Any]:
        """``{"up": {...}, "down": {...}, "clients": n, "mapped": m, "forgotten": f}``; each
        direction counts ``received``, ``refused``, ``socket_errors``, ``lost``,
        ``duplicated``, ``reordered``, ``corrupted``, ``delayed``, ``queue_dropped``,
        ``forwarded``, ``send_errors``, ``flushed``, ``queued``, ``forwarded_bytes``. Kept
        after ``serve()`` returns."""

    @staticmethod
    def zero_stats() -> dict[str, Any]:
        """The counters of a link that has not started: all zero."""

    def clients(self) -> dict[_Address, _Address]:
        """Mapped clients in mapping order; as they were at the stop once ``serve()`` returned."""

    def events(self) -> list[tuple[float, str, _Address, str, int]]: ...
