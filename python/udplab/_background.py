"""What every background object (``ChatS``, ``ChatC``, ``Link``) shares: a Rust core driven
by named Python threads, started and stopped under a lock, and the checks of their options.

It also owns their lifetimes, which follow ``threading``'s: a started object is kept in
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
from typing import Any, BinaryIO, Callable, Generic, Protocol, TypeVar, Union, cast

from . import _core

Address = tuple[Any, ...]
"""``(ip, port)``, or ``(ip, port, flowinfo, scope_id)`` for IPv6."""
CaptureTarget = Union[str, "os.PathLike[str]", BinaryIO]
"""Where ``capture=`` writes: a path or a binary file open for writing (``open(path, "wb")``,
``io.BytesIO()``). A path is rewritten at each ``start()``, but only once the start has
succeeded: a start that fails (a port in use) leaves an earlier capture file as it was."""
#: The default ``capture_limit``: a capture file stops growing at 100 MiB.
DEFAULT_CAPTURE_LIMIT = 100 * 1024 * 1024

#: Where the lifetime's own lines go ("serving until Ctrl-C").
log = logging.getLogger("udplab")

_running: set[_Background[Any]] = set()
"""Every started and not yet stopped object: a running object is never garbage-collected."""
_registry_lock = threading.Lock()
#: Set whenever an object stops, so that ``_serve_until_signal`` looks again.
_changed = threading.Event()
#: Set once the interpreter is exiting and ``_at_exit`` stops everything.
_exiting = threading.Event()
#: Every object made in this process, so that a forked child can disown them.
_made: weakref.WeakSet[_Background[Any]] = weakref.WeakSet()
#: The capture files being written (a real path, or the id of a file object) and by whom:
#: two writers would interleave their records into a file no reader can open.
_writing: dict[tuple[str, object], _Background[Any]] = {}


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
    last = [obj for obj in running if obj._stops_last]
    for obj in last:
        obj._fall_silent()
    for obj in running:
        if not obj._stops_last:
            obj.stop()
    for obj in last:
        obj.stop()
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
    _writing.clear()
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


class _Core(Protocol):
    """What a background object drives: something that stops."""

    def stop(self) -> None: ...


class _Watched(Protocol):
    """The cores of ChatS, ChatC and Link: they take a capture and live feeds."""

    def set_capture(self, capture: _core.Capture) -> bool: ...
    def watch(self, feed: _core.Feed) -> None: ...
    def unwatch(self, feed: _core.Feed) -> bool: ...


_CoreT = TypeVar("_CoreT", bound=_Core)
_SelfT = TypeVar("_SelfT", bound="_Background[Any]")


class _Background(Generic[_CoreT]):
    """What ChatS, ChatC, Link and View share: a core driven by named threads, started and
    stopped under a lock. A started object stays registered (so never garbage-collected) until
    it is stopped; at interpreter exit a script keeps serving while a non-daemon object runs."""

    #: Stopped after the others at interpreter exit, and told to fall silent before them
    #: (a client, so that its parting quit reaches a server that is still there).
    _stops_last = False

    def __init__(self, daemon: bool = False, capture: object = None,
                 capture_limit: int = DEFAULT_CAPTURE_LIMIT) -> None:
        self._capture_target = _capture_target(capture)
        self._capture_limit = _count("capture_limit", capture_limit, 24, 2**64 - 1)
        self._capture: _core.Capture | None = None
        self._capture_used = False
        #: In a forked child, the address the parent's object had (see ``_disown``).
        self._parents_addr: Address | None = None
        self._lock = threading.Lock()
        self._core: _CoreT | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self._daemon = bool(daemon)
        #: Live feeds watching this object (``udplab.view``), given to each core it starts.
        self._feeds: list[_core.Feed] = []
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

    def _launch(self, make_core: Callable[[], _CoreT],
                make_threads: Callable[[_CoreT], list[threading.Thread]]) -> None:
        """Open the capture file (errors name it, before any port is bound), make the core
        (which binds), start its threads and only then let the capture write. A start that
        fails on the way leaves nothing running, no port bound and an earlier capture file as
        it was. Call with the lock held."""
        self._capture = None
        capture, core = None, None
        started: list[threading.Thread] = []
        before = self._core, self._threads
        try:
            if self._capture_target is not None:
                self._claim_capture()
                capture = _core.Capture(self._capture_target, self._capture_limit)
            core = make_core()
            if capture is not None:
                cast(_Watched, core).set_capture(capture)
            for feed in self._feeds:
                cast(_Watched, core).watch(feed)
            self._core, self._threads = core, make_threads(core)
            for t in self._threads:
                t.daemon = self._daemon
                t.start()
                started.append(t)
        except BaseException:
            self._stopped.set()  # the threads that started take the stop as asked for
            if core is not None:
                core.stop()  # frees the port it bound
            for t in started:
                t.join()
            self._core, self._threads = before  # what stats() showed, it shows again
            if capture is not None:
                capture.close()  # never begun: an earlier file is left as it was
            self._release_capture()
            raise
        if capture is not None:
            capture.begin()  # only now is an earlier file replaced
            self._capture_used = True
            self._capture = capture
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
        self._release_capture()

    def _capture_key(self) -> tuple[str, object]:
        target = self._capture_target
        if isinstance(target, (str, os.PathLike)):
            return ("path", os.path.realpath(target))
        return ("file", id(target))

    def _claim_capture(self) -> None:
        """Refuse a capture file that another running object writes to."""
        key = self._capture_key()
        with _registry_lock:
            owner = _writing.get(key)
            if owner is not None and owner is not self and owner.running:
                where = key[1] if key[0] == "path" else "this file object"
                raise RuntimeError(f"capture: {owner._describe()} is writing to {where}; "
                                   "give each object a capture file of its own")
            _writing[key] = self

    def _release_capture(self) -> None:
        if self._capture_target is None:
            return
        key = self._capture_key()
        with _registry_lock:
            if _writing.get(key) is self:
                del _writing[key]

    def _watch(self, feed: _core.Feed) -> None:
        """Tell ``feed`` of every datagram from now on, in this run and the next ones."""
        with self._lock:
            if feed not in self._feeds:
                self._feeds.append(feed)
                if self._core is not None:
                    cast(_Watched, self._core).watch(feed)

    def _unwatch(self, feed: _core.Feed) -> None:
        with self._lock:
            if feed in self._feeds:
                self._feeds.remove(feed)
                if self._core is not None:
                    cast(_Watched, self._core).unwatch(feed)

    def _fall_silent(self) -> None:
        """At interpreter exit, before the others stop: stop sending (see ``_stops_last``)."""

    def _with_capture(self, stats: dict[str, Any]) -> dict[str, Any]:
        """``stats`` with the capture's counters under ``capture`` when there is a capture."""
        if self._capture is not None:
            stats["capture"] = self._capture.stats()
        return stats

    def _disown(self) -> None:
        """In a forked child: forget the parent's core without touching it, but go on
        reporting the address it had (the parent still serves there)."""
        if self._core is not None:
            # A field of the core: reading it takes no lock a parent's thread might hold.
            self._parents_addr = getattr(self._core, "addr", None)
        self._lock = threading.Lock()
        self._core = None
        # The parent's writer thread is not in this process: the capture, dropped here,
        # forgets it instead of joining it, and writes nothing to the parent's file.
        self._capture = None
        self._threads = []
        self._stopped = threading.Event()

    def __enter__(self: _SelfT) -> _SelfT:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
