"""The tutorial's group chat, ``ChatS`` and ``ChatC``, with a Rust core.

The Rust side receives, broadcasts and expires; this module owns the threads. Each loop runs on
a Python ``threading.Thread`` named as in the tutorial (``servicer``, ``user``, ``hb``) that
calls into Rust with the GIL released, so log records carry those names.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import weakref
from typing import Any, Callable, Generic, TypeVar, Union

from . import _core
from ._logging import refresh_logging

__all__ = ["Address", "ChatC", "ChatS"]

Address = tuple[Any, ...]
"""``(ip, port)``, or ``(ip, port, flowinfo, scope_id)`` for IPv6."""
Buffer = Union[bytes, bytearray, memoryview]

log = logging.getLogger("udplab.chat")

#: How long a callback thread waits for notices before it looks at ``stop()`` again.
_NOTICE_WAIT = 0.1

_live: weakref.WeakSet[_Background[Any]] = weakref.WeakSet()
#: Set once the interpreter is exiting and ``_stop_all`` has run.
_exiting = threading.Event()


def _stop_all() -> None:
    """Stop every running server and client before the interpreter joins threads at exit."""
    _exiting.set()
    # Servers first: a parting quit from a client that never joined would otherwise be logged
    # (as an unknown quit) by a server of the same process while the program exits.
    for obj in sorted(_live, key=lambda obj: isinstance(obj, ChatC)):
        obj.stop()


# Runs before threading joins non-daemon threads at exit (plain atexit would run after, too
# late: the interpreter would wait forever for the chat threads).
threading._register_atexit(_stop_all)  # type: ignore[attr-defined]


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    if value >= 2.0**64:  # past what the core's Duration holds
        raise OverflowError(f"{name} is too large: {value!r} seconds")
    return float(value)


def _spin(value: object) -> float:
    if value == 0 and not isinstance(value, bool):
        return 0.0
    seconds = _seconds("spin", value)
    if seconds > 1:
        raise ValueError(f"spin must be at most 1 second, got {value!r}")
    return seconds


def _port(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= 65535:
        raise OverflowError(f"{name} must be 0-65535, got {value}")
    return value


def _host(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str such as '127.0.0.1', not {type(value).__name__}")
    return value


def _count(name: str, value: object, least: int, most: int = sys.maxsize) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")
    if value > most:
        raise OverflowError(f"{name} must be at most {most}, got {value}")
    return value


def _word(name: str, value: object) -> bytes:
    if isinstance(value, str):
        raise TypeError(f"{name} must be bytes, not str: write b{value!r}")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _serve(core: _core.ChatServer, stopped: threading.Event) -> None:
    try:
        core.serve()
    except Exception:
        # stop() right after start() can free the port before this thread first runs; then
        # serve() finds no socket, which is no error.
        if not stopped.is_set():
            log.exception("chat server stopped with an error")


def _halt(core: _core.ChatServer, stopped: threading.Event) -> None:
    stopped.set()  # before core.stop(): _serve reads it
    core.stop()


def _dispatch(
    core: _core.ChatServer,
    stopped: threading.Event,
    on_join: Callable[[Address], object] | None,
    on_message: Callable[[Address, bytes], object] | None,
    on_leave: Callable[[Address, str], object] | None,
) -> None:
    """Run callbacks for the server's notices, off the receive path, until stopped."""

    def call(name: str, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except BaseException:  # SystemExit too: it would end this thread and every callback
            log.exception("chat callback %s%r raised; the server goes on", name, args)

    while True:
        last_round = stopped.is_set()
        for _at, kind, addr, payload in core.wait_notices(_NOTICE_WAIT):
            if kind == "join" and on_join is not None:
                call("on_join", on_join, addr)
            elif kind == "message" and on_message is not None:
                call("on_message", on_message, addr, payload)
            elif kind in ("quit", "expire") and on_leave is not None:
                call("on_leave", on_leave, addr, kind)
        if last_round:
            return


_CoreT = TypeVar("_CoreT", _core.ChatServer, _core.ChatClient, _core.Link)
_SelfT = TypeVar("_SelfT", bound="_Background[Any]")


class _Background(Generic[_CoreT]):
    """What ChatS and ChatC share: a Rust core driven by named threads, started and stopped
    under a lock, stopped at interpreter exit and when garbage-collected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._core: _CoreT | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()

    @property
    def running(self) -> bool:
        """Whether it has been started and not stopped."""
        return self._core is not None and not self._stopped.is_set()

    def _refuse_if_running(self) -> None:
        if self.running:
            name = type(self).__name__
            raise RuntimeError(f"{name} is already running on {self.addr}; stop() it first")

    @property
    def addr(self) -> Address | None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def _launch(
        self, core: _CoreT, threads: list[threading.Thread], collect: Callable[[], object]
    ) -> None:
        """Start ``threads`` driving ``core``; ``collect`` stops them if this object is
        garbage-collected while running. Call with the lock held."""
        self._core = core
        self._threads = threads
        for t in threads:
            t.start()
        weakref.finalize(self, collect)
        _live.add(self)

    def _started_core(self) -> _CoreT:
        if self._core is None:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return self._core

    def stop(self) -> None:
        """Stop the threads and close the port. Idempotent; returns once the threads ended."""
        with self._lock:
            core = self._core
            if core is None or self._stopped.is_set():
                return
            self._stopped.set()  # before core.stop(): the threads read it
            core.stop()
            current = threading.current_thread()
            for t in self._threads:
                if t is not current:
                    t.join()
            _live.discard(self)

    def __enter__(self: _SelfT) -> _SelfT:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ChatS(_Background[_core.ChatServer]):
    """The group chat server of the tutorial.

    ``ChatS(ip, port, inval)``: listen on ``(ip, port)`` (port 0 picks a free port) and drop
    clients silent for more than ``inval`` seconds. A datagram equal to the heartbeat word
    (optionally followed by ``\\n`` or ``\\r\\n``) only refreshes its sender; the quit word
    removes it; anything else is sent as ``prefix + payload`` to every live client, the sender
    included unless ``echo=False``.

    Keyword options: ``heartbeat``, ``quit``, ``prefix`` (the wire words); ``echo``;
    ``max_clients`` (new addresses past it are refused) and ``max_payload`` (longer messages are
    dropped), which bound what one datagram can make the server send; ``rcvbuf`` (the kernel
    receive buffer to ask for, ``None`` for the system default); ``history`` (events kept for
    ``events()``); ``spin`` (seconds to keep polling after a broadcast before sleeping, 0 to
    never poll: it saves the next message a scheduler wake-up); ``on_join(addr)``,
    ``on_message(addr, payload)``, ``on_leave(addr, "quit" | "expire")`` (callbacks, run on a
    thread of their own; an exception is logged and the server goes on).
    """

    def __init__(
        self,
        ip: str,
        port: int,
        inval: float,
        *,
        heartbeat: Buffer = b"HB",
        quit: Buffer = b"quit",
        prefix: Buffer = b"ACK",
        echo: bool = True,
        max_clients: int = 10_000,
        max_payload: int = 65_507,
        rcvbuf: int | None = 4 << 20,
        history: int = 4096,
        spin: float = 0.0002,
        on_join: Callable[[Address], object] | None = None,
        on_message: Callable[[Address, bytes], object] | None = None,
        on_leave: Callable[[Address, str], object] | None = None,
    ) -> None:
        self._ip = _host("ip", ip)
        self._port = _port("port", port)
        self.inval = _seconds("inval", inval)
        self._options: dict[str, Any] = dict(
            heartbeat=_word("heartbeat", heartbeat),
            quit=_word("quit", quit),
            prefix=_word("prefix", prefix),
            echo=bool(echo),
            max_clients=_count("max_clients", max_clients, 1),
            max_payload=_count("max_payload", max_payload, 1),
            rcvbuf=None if rcvbuf is None else _count("rcvbuf", rcvbuf, 0, 2**31 - 1),  # a C int
            history=_count("history", history, 0),
            spin=_spin(spin),
        )
        self._callbacks = (on_join, on_message, on_leave)
        super().__init__()

    def start(self) -> None:
        """Bind and start receiving on a background thread named ``servicer``."""
        with self._lock:
            self._refuse_if_running()
            refresh_logging()
            notify = any(cb is not None for cb in self._callbacks)
            core = _core.ChatServer(self._ip, self._port, self.inval, notify=notify,
                                    **self._options)
            stopped = self._stopped = threading.Event()
            threads = [threading.Thread(target=_serve, args=(core, stopped), name="servicer")]
            if notify:
                threads.append(threading.Thread(
                    target=_dispatch, args=(core, stopped, *self._callbacks), name="callbacks"))
            # Garbage-collected while running: stop the core and end the callbacks thread too
            # (it runs until the event is set; the core alone would leave it spinning).
            self._launch(core, threads, lambda: _halt(core, stopped))

    def stop(self) -> None:
        """Stop receiving, free the port and forget the clients. Idempotent; returns once the
        threads have ended."""
        super().stop()

    @property
    def addr(self) -> Address:
        """The address the server is bound to (the requested one before ``start()``)."""
        return self._core.addr if self._core is not None else (self._ip, self._port)

    @property
    def raddrs(self) -> dict[Address, float]:
        """A copy of ``{client address: last seen}``, times as ``time.time()`` floats."""
        return self._core.clients() if self.running and self._core is not None else {}

    def stats(self) -> dict[str, Any]:
        """Counters: ``received``, ``messages``, ``sent``, ``heartbeats``, ``joins``, ``quits``,
        ``expiries``, ``send_errors``, ``recv_errors``, ``notices_dropped``, ``clients`` and
        ``dropped`` (a dict by reason). ``received`` always equals ``heartbeats + quits +
        messages + sum(dropped.values())``. Kept after ``stop()``."""
        return self._started_core().stats()

    def events(self) -> list[tuple[float, str, Address]]:
        """The recent ``(time, kind, address)`` history, oldest first; ``kind`` is one of
        ``join``, ``heartbeat``, ``message``, ``quit``, ``expire``. Kept after ``stop()``."""
        return self._core.events() if self._core is not None else []

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<udplab.ChatS {state} addr={self.addr!r} inval={self.inval}>"


class ChatC(_Background[_core.ChatClient]):
    """The group chat client of the tutorial.

    ``ChatC(rip, rport)``: talk to the server at ``(rip, rport)`` from an ephemeral local port.
    ``start()`` starts the receive thread ``user``, which logs every datagram at INFO and keeps
    it for ``recv()``; ``hb(interval)`` starts the heartbeat thread ``hb``.
    """

    def __init__(
        self,
        rip: str,
        rport: int,
        *,
        interval: float | None = None,
        heartbeat: Buffer = b"HB",
        quit: Buffer = b"quit",
        queue: int = 1024,
    ) -> None:
        self._rip = _host("rip", rip)
        self._rport = _port("rport", rport)
        if self._rport == 0:
            raise ValueError("rport must be the server's port, not 0")
        self.interval = None if interval is None else _seconds("interval", interval)
        self._options: dict[str, Any] = dict(
            heartbeat=_word("heartbeat", heartbeat), quit=_word("quit", quit),
            queue=_count("queue", queue, 1),
        )
        super().__init__()

    def _running_core(self) -> _core.ChatClient:
        if self._core is None or self._stopped.is_set():
            raise RuntimeError("ChatC is not running: call start() first")
        return self._core

    def start(self) -> None:
        """Open an ephemeral local port and start receiving (and heartbeating, if ``interval``
        was given) on background threads."""
        with self._lock:
            self._refuse_if_running()
            refresh_logging()
            core = _core.ChatClient(self._rip, self._rport, **self._options)
            self._stopped = threading.Event()
            self._launch(core, [threading.Thread(target=core.receive_loop, name="user")],
                         core.stop)
        if self.interval is not None:
            self.hb(self.interval)

    def hb(self, interval: float | None) -> None:
        """Send the heartbeat word now and then every ``interval`` seconds, on the thread
        ``hb``; calling it again re-times it, ``None`` pauses it. Returns at once."""
        seconds = None if interval is None else _seconds("interval", interval)
        with self._lock:
            core = self._running_core()
            core.set_heartbeat(seconds)
            self.interval = seconds
            if not any(t.name == "hb" for t in self._threads):
                t = threading.Thread(target=core.heartbeat_loop, name="hb")
                self._threads.append(t)
                t.start()

    def send(self, msg: Buffer) -> None:
        """Send a chat message (bytes; encode a str first)."""
        self._running_core().send(msg)

    def recv(self, timeout: float | None = None) -> bytes:
        """The next datagram from the server (with its prefix); ``TimeoutError`` after
        ``timeout`` seconds. Datagrams received before ``stop()`` can still be read after it."""
        if self._core is None:
            raise RuntimeError("ChatC is not running: call start() first")
        try:
            return self._core.recv(timeout)
        except OSError:
            if _exiting.is_set() and threading.current_thread().daemon:
                # Stopped by interpreter exit: a daemon thread is abandoned there, not woken,
                # so keep blocking as a stdlib socket's recv would instead of printing a
                # traceback while the program ends.
                threading.Event().wait()
            raise

    def stop(self) -> None:
        """Say quit to the server, stop both threads and close the port. Idempotent."""
        super().stop()

    def stats(self) -> dict[str, int]:
        """Counters: ``received``, ``dropped`` (queue overflow), ``sent``, ``heartbeats``,
        ``errors``."""
        return self._started_core().stats()

    @property
    def addr(self) -> Address | None:
        """The local address (``None`` before ``start()``)."""
        return self._core.addr if self._core is not None else None

    @property
    def raddr(self) -> Address:
        """The server's address."""
        return self._core.raddr if self._core is not None else (self._rip, self._rport)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<udplab.ChatC {state} addr={self.addr!r} raddr={self.raddr!r}>"
