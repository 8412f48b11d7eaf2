"""The tutorial's group chat, ``ChatS`` and ``ChatC``, with a Rust core.

The Rust side receives, broadcasts and expires; this module owns the threads. Each loop runs on
a Python ``threading.Thread`` named as in the tutorial (``servicer``, ``user``, ``hb``) that
calls into Rust with the GIL released, so log records carry those names. What the chat shares
with ``udplab.Link`` (lifetimes, exit and fork, captures, option checks) is in ``_background``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional, Union

from . import _background, _core
from ._background import (
    DEFAULT_CAPTURE_LIMIT,
    Address,
    CaptureTarget,
    _Background,
    _count,
    _host,
    _port,
    _seconds,
    _serve,
    _spin,
)
from ._logging import refresh_logging

__all__ = ["DEFAULT_CAPTURE_LIMIT", "Address", "CaptureTarget", "ChatC", "ChatS"]

Buffer = Union[bytes, bytearray, memoryview]

log = logging.getLogger("udplab.chat")

#: ChatC's default heartbeat interval, in seconds.
DEFAULT_INTERVAL = 1.0
#: How long a callback thread waits for notices before it looks at ``stop()`` again.
_NOTICE_WAIT = 0.1


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


Notice = tuple[float, str, Address, bytes]
"""What the server tells its callbacks: ``(time, kind, address, payload)``."""
Callbacks = tuple[
    Optional[Callable[[Address], object]],
    Optional[Callable[[Address, bytes], object]],
    Optional[Callable[[Address, str], object]],
]


def _callback(callbacks: Callbacks, notice: Notice) -> tuple[str, Callable[..., object], tuple[
        object, ...]] | None:
    """Which callback a notice calls and with what: ``(name, function, arguments)``."""
    on_join, on_message, on_leave = callbacks
    _at, kind, addr, payload = notice
    if kind == "join" and on_join is not None:
        return "on_join", on_join, (addr,)
    if kind == "message" and on_message is not None:
        return "on_message", on_message, (addr, payload)
    if kind in ("quit", "expire") and on_leave is not None:
        return "on_leave", on_leave, (addr, kind)
    return None


def _call_back(callbacks: Callbacks) -> Callable[[list[Notice]], None]:
    """Runs each notice's callback on this thread; an exception is logged."""

    def handle(notices: list[Notice]) -> None:
        for notice in notices:
            call = _callback(callbacks, notice)
            if call is None:
                continue
            name, fn, args = call
            try:
                fn(*args)
            except BaseException:  # SystemExit too: it would end this thread and every callback
                log.exception("chat callback %s%r raised; the server goes on", name, args)

    return handle


def _dispatch(
    core: _core.ChatServer, stopped: threading.Event, handle: Callable[[list[Notice]], None]
) -> None:
    """Hand the server's notices to ``handle``, a batch at a time, off the receive path, until
    stopped (and the last ones after)."""
    while True:
        last_round = stopped.is_set()
        notices = core.wait_notices(_NOTICE_WAIT)
        if notices:
            handle(notices)
        if last_round:
            return


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
        self._callbacks: Callbacks = (on_join, on_message, on_leave)
        super().__init__(daemon, capture, capture_limit)

    def start(self) -> None:
        """Bind and start receiving on a background thread named ``servicer``."""
        with self._lock:
            self._refuse_if_running()
            refresh_logging()
            handle = self._notice_handler()
            notify = handle is not None
            stopped = self._stopped = threading.Event()

            def threads(core: _core.ChatServer) -> list[threading.Thread]:
                made = [threading.Thread(target=_serve, args=(core, stopped, log, "chat server"),
                                         name="servicer")]
                if handle is not None:
                    made.append(threading.Thread(
                        target=_dispatch, args=(core, stopped, handle), name="callbacks"))
                return made

            self._launch(lambda: _core.ChatServer(self._ip, self._port, self._inval,
                                                  notify=notify, **self._options), threads)

    def _notice_handler(self) -> Callable[[list[Notice]], None] | None:
        """What the thread ``callbacks`` does with each batch of notices (``None``: no such
        thread, and the core keeps no notices)."""
        if all(cb is None for cb in self._callbacks):
            return None
        return _call_back(self._callbacks)

    def stop(self) -> None:
        """Stop receiving, free the port and forget the clients. Idempotent; returns once the
        threads have ended."""
        super().stop()

    @property
    def addr(self) -> Address:
        """The address the server is bound to (the requested one before ``start()``; in a
        forked child, the parent's server's)."""
        if self._core is not None:
            return self._core.addr
        return self._parents_addr or (self._ip, self._port)

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

    _stops_last = True

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
            self._stopped = threading.Event()
            user = self._thread_name("user")
            self._launch(lambda: _core.ChatClient(self._rip, self._rport, **self._options),
                         lambda core: [threading.Thread(target=core.receive_loop, name=user)])
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
            if _background._exiting.is_set() and threading.current_thread().daemon:
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
        """The local address (``None`` before ``start()``; in a forked child, the parent's
        client's)."""
        return self._core.addr if self._core is not None else self._parents_addr

    @property
    def raddr(self) -> Address:
        """The server's address."""
        return self._core.raddr if self._core is not None else (self._rip, self._rport)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        name = "" if self._name is None else f" name={self._name!r}"
        return f"<udplab.ChatC {state}{name} addr={self.addr!r} raddr={self.raddr!r}>"
