"""The tutorial's group chat, ``ChatS`` and ``ChatC``, with a Rust core.

The Rust side receives, broadcasts and expires; this module owns the threads. Each loop runs on
a Python ``threading.Thread`` named as in the tutorial (``servicer``, ``user``, ``hb``) that
calls into Rust with the GIL released, so log records carry those names.

It also owns the objects' lifetimes, which follow ``threading``'s: a started object is kept in
``_running`` until stopped (so garbage collection never stops it); ``_at_exit`` runs when a
script's main thread ends and keeps serving until SIGINT/SIGTERM while a non-daemon object runs
(an interactive session stops everything at once instead); a forked child disowns every object.
"""

from __future__ import annotations

import io
import logging
import math
import os
import signal
import sys
import threading
import weakref
from typing import Any, BinaryIO, Callable, Generic, TypeVar, Union

from . import _core
from ._logging import refresh_logging

__all__ = ["DEFAULT_CAPTURE_LIMIT", "Address", "CaptureTarget", "ChatC", "ChatS"]

Address = tuple[Any, ...]
"""``(ip, port)``, or ``(ip, port, flowinfo, scope_id)`` for IPv6."""
Buffer = Union[bytes, bytearray, memoryview]
CaptureTarget = Union[str, "os.PathLike[str]", BinaryIO]
"""Where ``capture=`` writes: a path (created or truncated at each ``start()``) or a binary
file open for writing (``open(path, "wb")``, ``io.BytesIO()``)."""
#: The default ``capture_limit``: a capture file stops growing at 100 MiB.
DEFAULT_CAPTURE_LIMIT = 100 * 1024 * 1024

log = logging.getLogger("udplab.chat")

#: ChatC's default heartbeat interval, in seconds.
DEFAULT_INTERVAL = 1.0
#: How long a callback thread waits for notices before it looks at ``stop()`` again.
_NOTICE_WAIT = 0.1

_running: set[_Background[Any]] = set()
"""Every started and not yet stopped object: a running object is never garbage-collected."""
_registry_lock = threading.Lock()
#: Set whenever an object stops, so that ``_serve_until_signal`` looks again.
_changed = threading.Event()
#: Set once the interpreter is exiting and ``_at_exit`` stops everything.
_exiting = threading.Event()
#: Every object made in this process, so that a forked child can disown them.
_made: weakref.WeakSet[_Background[Any]] = weakref.WeakSet()


def _interactive() -> bool:
    """Whether a person drives this interpreter from a prompt: the standard REPL (``sys.ps1``
    exists, or ``python -i``), IPython, or a Jupyter kernel (an IPython shell exists). Ending
    such a session (``exit()``, Ctrl-D, a kernel restart or shutdown) is a request to stop."""
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    return callable(get_ipython) and get_ipython() is not None


class _Signalled(BaseException):
    """Raised in the main thread by SIGINT or SIGTERM while ``_serve_until_signal`` waits."""


def _raise_signalled(signum: int, frame: object) -> None:
    raise _Signalled(signum)


def _non_daemon() -> list[_Background[Any]]:
    with _registry_lock:
        return [obj for obj in _running if not obj.daemon and obj.running]


def _serve_until_signal(keepers: list[_Background[Any]]) -> dict[int, Any]:
    """Wait, in the main thread, until SIGINT or SIGTERM arrives or every non-daemon object
    has been stopped by other means (a callback, another thread). Returns the signal handlers
    to put back once everything has stopped."""
    previous: dict[int, Any] = {}
    try:
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, _raise_signalled)
        except ValueError:  # not the main thread: Ctrl-C stays a KeyboardInterrupt
            pass
        log.info("%s: serving until Ctrl-C (or SIGTERM)",
                 ", ".join(obj._describe() for obj in keepers))
        while _non_daemon():
            _changed.wait()
            _changed.clear()
    except (_Signalled, KeyboardInterrupt):
        pass
    # A second Ctrl-C while everything stops (a fraction of a second) would only interrupt
    # the stopping with a traceback.
    for number in previous:
        signal.signal(number, signal.SIG_IGN)
    return previous


def _at_exit() -> None:
    """Runs when the main thread has ended, before the interpreter joins non-daemon threads
    (plain ``atexit`` would run after, too late). A script keeps serving while a non-daemon
    object runs, as a non-daemon thread keeps it alive; an interactive session stops at once."""
    keepers = _non_daemon()
    handlers = _serve_until_signal(keepers) if keepers and not _interactive() else {}
    _exiting.set()
    with _registry_lock:
        running = list(_running)
    # Clients fall silent, then servers stop, then clients say quit: a server of the same
    # process would log a parting quit from a client that never joined (as an unknown quit),
    # and a client would warn that a server stopped before it is not answering.
    clients = [obj for obj in running if isinstance(obj, ChatC)]
    for client in clients:
        client._fall_silent()
    for obj in running:
        if not isinstance(obj, ChatC):
            obj.stop()
    for client in clients:
        client.stop()
    for signum, handler in handlers.items():
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)


threading._register_atexit(_at_exit)  # type: ignore[attr-defined]


def _after_fork_in_child() -> None:
    """A forked child (``multiprocessing``'s default on Linux) shares the parent's sockets but
    not its threads: its copies of the chat objects must never stop, send or wait on them."""
    global _registry_lock, _changed, _exiting
    # A lock or event held by a parent thread at the fork would never be released here.
    _registry_lock, _changed, _exiting = threading.Lock(), threading.Event(), threading.Event()
    _running.clear()
    for obj in list(_made):
        obj._disown()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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


def _name(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"name must be a str such as 'alice', not {type(value).__name__}")
    if not value or not value.isprintable() or value.strip() != value:
        raise ValueError(f"name must be printable text without surrounding spaces, such as "
                         f"'alice', got {value!r}")
    return value


def _word(name: str, value: object) -> bytes:
    if isinstance(value, str):
        raise TypeError(f"{name} must be bytes, not str: write b{value!r}")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _capture_target(value: object) -> CaptureTarget | None:
    if value is None or isinstance(value, (str, os.PathLike)):
        return value
    if isinstance(value, io.TextIOBase):
        raise TypeError("capture must be a path or a file opened in binary mode "
                        "(open(path, 'wb')), not a text file")
    if callable(getattr(value, "write", None)) and callable(getattr(value, "flush", None)):
        return value  # type: ignore[return-value]
    raise TypeError("capture must be a path or a binary file open for writing, "
                    f"not {type(value).__name__}")


def _serve(core: _core.ChatServer | _core.Link, stopped: threading.Event,
           logger: logging.Logger, what: str) -> None:
    """Run ``core.serve()`` on this thread (a server's or a link's); an error is logged."""
    try:
        core.serve()
    except Exception:
        # stop() right after start() can free the port before this thread first runs; then
        # serve() finds no socket, which is no error.
        if not stopped.is_set():
            logger.exception("%s stopped with an error", what)


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
    under a lock. A started object stays registered (so never garbage-collected) until it is
    stopped; at interpreter exit a script keeps serving while a non-daemon object runs."""

    def __init__(self, daemon: bool = False, capture: object = None,
                 capture_limit: int = DEFAULT_CAPTURE_LIMIT) -> None:
        self._capture_target = _capture_target(capture)
        self._capture_limit = _count("capture_limit", capture_limit, 24, 2**64 - 1)
        self._capture: _core.Capture | None = None
        self._capture_used = False
        self._lock = threading.Lock()
        self._core: _CoreT | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self._daemon = bool(daemon)
        _made.add(self)

    @property
    def running(self) -> bool:
        """Whether it has been started and not stopped."""
        return self._core is not None and not self._stopped.is_set()

    @property
    def daemon(self) -> bool:
        """As for ``threading.Thread``: when the main thread of a script ends, a running
        non-daemon object (the default) keeps the program serving until Ctrl-C or SIGTERM;
        a daemon one is stopped. Settable only while not running."""
        return self._daemon

    @daemon.setter
    def daemon(self, value: bool) -> None:
        if self.running:
            raise RuntimeError(f"cannot set daemon on a running {type(self).__name__}")
        self._daemon = bool(value)

    def _refuse_if_running(self) -> None:
        if self.running:
            name = type(self).__name__
            raise RuntimeError(f"{name} is already running on {self.addr}; stop() it first")
        if self._capture_used and not isinstance(self._capture_target, (str, os.PathLike)):
            raise RuntimeError("capture: this file already holds the capture of an earlier "
                               "start(); give a path (rewritten at each start) or a new file")

    @property
    def addr(self) -> Address | None:
        raise NotImplementedError

    def _describe(self) -> str:
        """Who it is, for the log line at exit."""
        return f"{type(self).__name__} on {self.addr}"

    def start(self) -> None:
        raise NotImplementedError

    def _launch(self, core: _CoreT, threads: list[threading.Thread]) -> None:
        """Start ``threads`` driving ``core``. Call with the lock held."""
        self._capture = None
        if self._capture_target is not None:
            self._capture_used = True
            try:
                capture = _core.Capture(self._capture_target, self._capture_limit)
            except BaseException:
                core.stop()  # frees the port it bound
                raise
            core.set_capture(capture)
            self._capture = capture
        self._core = core
        self._threads = threads
        for t in threads:
            t.daemon = self._daemon
            t.start()
        with _registry_lock:
            _running.add(self)

    def stop(self) -> None:
        """Stop the threads and close the port. Idempotent; returns once the threads ended
        (except the calling thread, when a callback stops its own server)."""
        # The lock is held only to flag and stop: joining under it would wait forever on a
        # callback that is itself waiting for the lock in stop().
        with self._lock:
            core = self._core
            if core is None:
                return
            if not self._stopped.is_set():
                self._stopped.set()  # before core.stop(): the threads read it
                core.stop()
                with _registry_lock:
                    _running.discard(self)
                _changed.set()
            threads = list(self._threads)
        current = threading.current_thread()
        for t in threads:
            if t is not current and t.ident is not None:
                t.join()
        if self._capture is not None:
            self._capture.close()  # the last records written and flushed

    def _with_capture(self, stats: dict[str, Any]) -> dict[str, Any]:
        """``stats`` with the capture's counters under ``capture`` when there is a capture."""
        if self._capture is not None:
            stats["capture"] = self._capture.stats()
        return stats

    def _disown(self) -> None:
        """In a forked child: forget the parent's core without touching it."""
        self._lock = threading.Lock()
        self._core = None
        self._capture = None  # the parent's writer thread is not in this process
        self._threads = []
        self._stopped = threading.Event()

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
    thread of their own; an exception is logged and the server goes on); ``capture`` (a
    path or a binary file: every datagram received and sent goes into a pcap file, see
    ``read_capture``) and ``capture_limit`` (its size cap in bytes, 100 MiB by default; later
    datagrams are counted as skipped); ``daemon``.

    Lifecycle, as with ``threading.Thread``: a started server runs until ``stop()``; it is
    never stopped by garbage collection. When a script's main thread ends while a non-daemon
    server or client (the default) runs, udplab logs that it serves until Ctrl-C and keeps
    serving; SIGINT or SIGTERM then stops every chat object (clients say quit, servers log
    their totals) and the program exits with status 0. ``daemon=True`` objects are stopped
    when the interpreter exits instead. An interactive session (the Python REPL, IPython, a
    Jupyter kernel) stops everything when it ends (``exit()``, Ctrl-D, kernel restart or
    shutdown).
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
        capture: CaptureTarget | None = None,
        capture_limit: int = DEFAULT_CAPTURE_LIMIT,
        daemon: bool = False,
    ) -> None:
        self._ip = _host("ip", ip)
        self._port = _port("port", port)
        self._inval = _seconds("inval", inval)
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
        super().__init__(daemon, capture, capture_limit)

    def start(self) -> None:
        """Bind and start receiving on a background thread named ``servicer``."""
        with self._lock:
            self._refuse_if_running()
            refresh_logging()
            notify = any(cb is not None for cb in self._callbacks)
            core = _core.ChatServer(self._ip, self._port, self._inval, notify=notify,
                                    **self._options)
            stopped = self._stopped = threading.Event()
            threads = [threading.Thread(target=_serve, args=(core, stopped, log, "chat server"),
                                        name="servicer")]
            if notify:
                threads.append(threading.Thread(
                    target=_dispatch, args=(core, stopped, *self._callbacks), name="callbacks"))
            self._launch(core, threads)

    def stop(self) -> None:
        """Stop receiving, free the port and forget the clients. Idempotent; returns once the
        threads have ended."""
        super().stop()

    @property
    def addr(self) -> Address:
        """The address the server is bound to (the requested one before ``start()``)."""
        return self._core.addr if self._core is not None else (self._ip, self._port)

    @property
    def inval(self) -> float:
        """Seconds of silence after which a client is dropped (fixed when the server is made)."""
        return self._inval

    def _describe(self) -> str:
        return "chat server on {}:{}".format(*self.addr[:2])

    @property
    def raddrs(self) -> dict[Address, float]:
        """A copy of ``{client address: last seen}``, times as ``time.time()`` floats."""
        return self._core.clients() if self.running and self._core is not None else {}

    def stats(self) -> dict[str, Any]:
        """Counters: ``received``, ``messages``, ``sent``, ``heartbeats``, ``joins``, ``quits``,
        ``expiries``, ``send_errors``, ``recv_errors``, ``notices_dropped``, ``clients`` and
        ``dropped`` (a dict by reason). ``received`` always equals ``heartbeats + quits +
        messages + sum(dropped.values())``. With ``capture``, also ``capture``: ``records``
        and ``bytes`` written, ``skipped`` (past ``capture_limit``), ``dropped`` (the writer
        fell behind) and ``errors`` (lost to write errors). All zero before ``start()``; kept
        after ``stop()``."""
        core = self._core
        return self._with_capture(
            core.stats() if core is not None else _core.ChatServer.zero_stats())

    def events(self) -> list[tuple[float, str, Address]]:
        """The recent ``(time, kind, address)`` history, oldest first; ``kind`` is one of
        ``join``, ``heartbeat``, ``message``, ``quit``, ``expire``. Up to ``history``
        heartbeats are kept and, apart from them, up to ``history`` other events, so heartbeats
        cannot push the rest out. ``time`` is the wall clock read when it happened (later clock
        steps do not move it). Kept after ``stop()``."""
        return self._core.events() if self._core is not None else []

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<udplab.ChatS {state} addr={self.addr!r} inval={self.inval}>"


class ChatC(_Background[_core.ChatClient]):
    """The group chat client of the tutorial.

    ``ChatC(rip, rport)``: talk to the server at ``(rip, rport)`` from an ephemeral local port.
    ``start()`` starts the receive thread ``user``, which logs every datagram at INFO and keeps
    it for ``recv()``, and the heartbeat thread ``hb``, which sends the heartbeat word every
    ``interval`` seconds (1 by default, so any server with an ``inval`` of 3 s or more keeps
    the client even when two heartbeats in a row are lost; ``interval=None`` or ``hb(None)``
    sends none). ``name`` (such as ``"alice"``) names the threads ``user-alice`` and
    ``hb-alice`` and starts the client's log lines (``alice: b'ACKhi'``). ``capture``,
    ``capture_limit`` and ``daemon`` are as for ``ChatS``.
    """

    def __init__(
        self,
        rip: str,
        rport: int,
        *,
        interval: float | None = DEFAULT_INTERVAL,
        heartbeat: Buffer = b"HB",
        quit: Buffer = b"quit",
        queue: int = 1024,
        name: str | None = None,
        capture: CaptureTarget | None = None,
        capture_limit: int = DEFAULT_CAPTURE_LIMIT,
        daemon: bool = False,
    ) -> None:
        self._rip = _host("rip", rip)
        self._name = None if name is None else _name(name)
        self._rport = _port("rport", rport)
        if self._rport == 0:
            raise ValueError("rport must be the server's port, not 0")
        self._interval = None if interval is None else _seconds("interval", interval)
        self._options: dict[str, Any] = dict(
            heartbeat=_word("heartbeat", heartbeat), quit=_word("quit", quit),
            queue=_count("queue", queue, 1), name=self._name,
        )
        super().__init__(daemon, capture, capture_limit)

    def _running_core(self) -> _core.ChatClient:
        if self._core is None or self._stopped.is_set():
            raise RuntimeError("ChatC is not running: call start() first")
        return self._core

    def start(self) -> None:
        """Open an ephemeral local port and start receiving and heartbeating (unless
        ``interval`` is ``None``) on background threads."""
        with self._lock:
            self._refuse_if_running()
            refresh_logging()
            core = _core.ChatClient(self._rip, self._rport, **self._options)
            self._stopped = threading.Event()
            user = threading.Thread(target=core.receive_loop, name=self._thread_name("user"))
            self._launch(core, [user])
        if self._interval is not None:
            self.hb(self._interval)

    def hb(self, interval: float | None) -> None:
        """Send the heartbeat word now and then every ``interval`` seconds, on the thread
        ``hb``; calling it again re-times it, ``None`` pauses it. Returns at once."""
        seconds = None if interval is None else _seconds("interval", interval)
        with self._lock:
            core = self._running_core()
            core.set_heartbeat(seconds)
            self._interval = seconds
            hb = self._thread_name("hb")
            if not any(t.name == hb for t in self._threads):
                t = threading.Thread(target=core.heartbeat_loop, name=hb, daemon=self._daemon)
                self._threads.append(t)
                t.start()

    def _fall_silent(self) -> None:
        """Stop heartbeating (before everything stops at exit)."""
        with self._lock:
            if self.running and self._core is not None:
                self._core.set_heartbeat(None)

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

    def stats(self) -> dict[str, Any]:
        """Counters: ``received``, ``dropped`` (queue overflow), ``sent``, ``heartbeats``,
        ``errors``, and ``capture`` as for ``ChatS``. All zero before ``start()``; kept after
        ``stop()``."""
        core = self._core
        return self._with_capture(
            core.stats() if core is not None else _core.ChatClient.zero_stats())

    @property
    def name(self) -> str | None:
        """The name given (``None``: none), shown in thread names and log lines."""
        return self._name

    def _thread_name(self, thread: str) -> str:
        return thread if self._name is None else f"{thread}-{self._name}"

    @property
    def interval(self) -> float | None:
        """Seconds between heartbeats (``None``: none are sent); change it with ``hb()``."""
        return self._interval

    def _describe(self) -> str:
        who = "" if self._name is None else f" {self._name}"
        return "chat client{} of {}:{}".format(who, *self.raddr[:2])

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
        name = "" if self._name is None else f" name={self._name!r}"
        return f"<udplab.ChatC {state}{name} addr={self.addr!r} raddr={self.raddr!r}>"
