"""``udplab.Link``: a relay that makes the network between clients and a UDP target as bad as
asked (loss, duplication, reordering, corruption, delay, rate), the same way for the same seed.

The Rust side (``crates/udplab/src/link/``) checks the options (``options.rs`` there: the one
place that says which values are allowed), decides every datagram's fate and relays; this
module turns the options into numbers and owns the thread, named ``link``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Callable
from typing import Any, TypeVar, Union

from . import _core
from ._background import DEFAULT_CAPTURE_LIMIT, Address, CaptureTarget, _Background, _serve
from ._logging import refresh_logging

__all__ = ["GEModel", "Link"]

log = logging.getLogger("udplab.link")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class GEModel:
    """Burst loss by the Gilbert-Elliott model, with the parameters of netem's ``loss gemodel
    p r 1-h 1-k``: the link is in a good or a bad state; at each datagram it goes from good to
    bad with probability ``p`` and from bad to good with ``r``; a datagram is lost with
    probability ``one_minus_h`` in the bad state and ``one_minus_k`` in the good one. As in
    netem, ``r`` defaults to ``1 - p``, ``one_minus_h`` to 1 and ``one_minus_k`` to 0.

    Bursts last ``1 / r`` datagrams on average; the long-run loss rate is
    ``(p * one_minus_h + r * one_minus_k) / (p + r)``.
    """

    p: float
    r: float | None = None
    one_minus_h: float = 1.0
    one_minus_k: float = 0.0

    def __post_init__(self) -> None:
        for field in ("p", "r", "one_minus_h", "one_minus_k"):
            if field == "r" and self.r is None:
                continue  # 1 - p, as in netem
            _probability(f"GEModel {field}", getattr(self, field))
        _core.LinkConfig.check_loss(self.parameters())

    def parameters(self) -> tuple[float, float, float, float]:
        """``(p, r, 1-h, 1-k)`` with the defaults filled in."""
        r = 1.0 - self.p if self.r is None else self.r
        return (float(self.p), float(r), float(self.one_minus_h), float(self.one_minus_k))


Loss = Union[float, GEModel]
#: One value for both directions, or an ``(up, down)`` pair.
Either = Union[T, tuple[T, T]]


# Python only turns each option into the numbers the core takes (a TypeError names what it
# expected); the core says whether the values are allowed (a ValueError names the range).

def _number(name: str, value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}")
    return float(value)


def _probability(name: str, value: object) -> float:
    return _number(name, value, "a probability (a number)")


def _loss(name: str, value: object) -> float | tuple[float, float, float, float]:
    if isinstance(value, GEModel):
        return value.parameters()
    return _probability(name, value)


def _seconds(name: str, value: object) -> float:
    return _number(name, value, "a number of seconds")


def _rate(name: str, value: object) -> float | None:
    if value is None:
        return None
    return _number(name, value, "a number of bytes per second, or None for no limit")


def _whole(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def _both(name: str, value: object, check: Callable[[str, object], T]) -> tuple[T, T]:
    """``(up, down)`` from one value or a pair, each checked."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{name} must be one value or an (up, down) pair, got {len(value)} values")
        return check(f"{name} (up)", value[0]), check(f"{name} (down)", value[1])
    one = check(name, value)
    return one, one


def _address(name: str, value: object) -> tuple[Any, ...]:
    if not isinstance(value, tuple):
        raise TypeError(f"{name} must be an address tuple such as ('127.0.0.1', 9999), "
                        f"not {type(value).__name__}")
    return value


class Link(_Background[_core.Link]):
    """A relay between clients and the UDP server at ``target`` that loses, duplicates,
    reorders, corrupts, delays and rate-limits datagrams, the same way for the same ``seed``.

    Clients send to ``link.addr`` instead of the target; each client address gets its own
    upstream port (like a NAT), so replies go back to the right client.

    Every impairment takes one value for both directions or an ``(up, down)`` pair (up: client
    to target). ``loss``, ``duplicate``, ``reorder`` and ``corrupt`` are probabilities per
    datagram (``loss`` may also be a :class:`GEModel` for burst loss); ``delay`` and ``jitter``
    are seconds (the delay varies uniformly within ``delay ± jitter``); ``rate`` is bytes per
    second of payload (``None``: no limit); ``limit`` bounds the datagrams waiting in a
    direction's queue (more are dropped). ``reorder`` sends a datagram at once, ahead of those
    waiting out the delay, so it needs ``delay > 0``.

    ``seed``: the same seed makes the same decisions for the k-th datagram of a direction,
    whatever the timing; ``None`` picks one (``link.seed``, logged at start). ``listen``: the
    address to listen on; a ``target`` that is this very address (or, listening on ``0.0.0.0``
    or ``::``, any address of this machine on that port) is refused with a ``ValueError``,
    since the link would relay to itself for ever. ``max_clients``: client addresses mapped at
    once (more are refused; fewer when the process's file descriptor limit, ``ulimit -n``,
    leaves less room: the link keeps 64 descriptors free for the rest of the process);
    ``idle``: seconds after which a silent client's mapping is forgotten (a client with
    datagrams still queued is not silent); ``history``: events kept for :meth:`events`;
    ``spin``: seconds to keep polling after each datagram before sleeping, so that a reply or
    the next datagram is relayed without waiting for the thread to wake up (on an idle
    machine, waking up is most of the latency a crossing adds), for at most that much CPU per
    datagram; 0 turns it off; ``capture``, ``capture_limit``: as for
    ``ChatS``, recording both sides (what came in from a client, and what went on towards the
    target and back: a datagram the link lost appears once, on the way in); ``daemon``: as for
    ``ChatS`` (a running non-daemon link keeps a script serving after its last line until
    Ctrl-C).

    Values out of range raise ``ValueError`` naming the option and what it allows; the core
    checks them (``crates/udplab/src/link/options.rs``), for Python and the ``udplab link``
    command alike.

    What happens to each datagram, in this order: from a new client while the table is full,
    it is refused (or counted in ``socket_errors`` if no socket could be made for it); else it
    may be lost; a survivor may be duplicated; each copy may then be corrupted (one bit
    flipped), and is either reordered (sent at once, ahead of the queue) or delayed; it waits
    in its direction's queue (dropped if ``limit`` copies wait already; with ``rate``, also
    behind the copies before it) and is sent when due. Copies still waiting at ``stop()`` are
    discarded and counted as ``flushed``.

    Where udplab differs from netem (``man tc-netem``): loss is decided once, before
    duplication (netem duplicates first and may lose the copy on its own); no correlation and
    no ``gap``; the jitter is uniform; ``rate`` counts payload bytes, not whole frames. The
    details are in ``crates/udplab/src/link/mod.rs``.
    """

    def __init__(
        self,
        target: Address,
        *,
        loss: Either[Loss] = 0.0,
        duplicate: Either[float] = 0.0,
        reorder: Either[float] = 0.0,
        corrupt: Either[float] = 0.0,
        delay: Either[float] = 0.0,
        jitter: Either[float] = 0.0,
        rate: Either[float | None] = None,
        limit: Either[int] = 1000,
        seed: int | None = None,
        listen: Address = ("127.0.0.1", 0),
        max_clients: int = 1024,
        idle: float = 60.0,
        history: int = 10_000,
        spin: float = 0.0002,
        capture: CaptureTarget | None = None,
        capture_limit: int = DEFAULT_CAPTURE_LIMIT,
        daemon: bool = False,
    ) -> None:
        self.target = _address("target", target)
        self._listen = _address("listen", listen)
        options: dict[str, tuple[Any, Any]] = {
            "loss": _both("loss", loss, _loss),
            "duplicate": _both("duplicate", duplicate, _probability),
            "reorder": _both("reorder", reorder, _probability),
            "corrupt": _both("corrupt", corrupt, _probability),
            "delay": _both("delay", delay, _seconds),
            "jitter": _both("jitter", jitter, _seconds),
            "rate": _both("rate", rate, _rate),
            "limit": _both("limit", limit, _whole),
        }
        up, down = ({key: pair[i] for key, pair in options.items()} for i in (0, 1))
        if seed is None:
            seed = random.SystemRandom().getrandbits(64)
        self._config = _core.LinkConfig(
            up, down, seed=_whole("seed", seed), max_clients=_whole("max_clients", max_clients),
            idle=_seconds("idle", idle), history=_whole("history", history),
            spin=_seconds("spin", spin))
        self.seed: int = seed
        """The seed in use (the one given, or the one picked when ``None`` was)."""
        _core.Link.check_target(self.target, self._listen)
        super().__init__(daemon, capture, capture_limit)

    def start(self) -> None:
        """Bind ``listen`` and start relaying on a background thread named ``link``."""
        with self._lock:
            self._refuse_if_running()
            refresh_logging()
            stopped = self._stopped = threading.Event()
            self._launch(
                lambda: _core.Link(self.target, self._listen, self._config),
                lambda core: [threading.Thread(target=_serve, args=(core, stopped, log, "link"),
                                               name="link")])

    def stop(self) -> None:
        """Stop relaying and free the port; datagrams still waiting are discarded (counted as
        ``flushed``). Idempotent; returns once the thread has ended."""
        super().stop()

    @property
    def addr(self) -> Address:
        """Where clients send (the requested address before ``start()``; in a forked child,
        the parent's link's)."""
        if self._core is not None:
            return self._core.addr
        return self._parents_addr or self._listen

    def clients(self) -> dict[Address, Address]:
        """``{client address: the address the target sees it as}`` for every mapped client, in
        the order they were mapped. Kept after ``stop()`` as it was then (the sockets are
        closed); ``{}`` before ``start()``."""
        return self._core.clients() if self._core is not None else {}

    def stats(self) -> dict[str, Any]:
        """``{"up": {...}, "down": {...}, "clients": n, "mapped": m, "forgotten": f}``.

        Each direction counts ``received``, ``refused`` (a new client while the table is full),
        ``socket_errors`` (a new client whose upstream socket the system refused), ``lost``,
        ``duplicated``, ``reordered``, ``corrupted``, ``delayed``, ``queue_dropped``,
        ``forwarded``, ``send_errors``, ``flushed``, ``queued`` and ``forwarded_bytes``, and
        always ``received + duplicated == refused + socket_errors + lost + forwarded +
        queue_dropped + send_errors + flushed + queued`` (``queued`` is 0 after ``stop()``).
        ``clients``: mapped now; ``mapped``, ``forgotten``: mappings made and forgotten. All
        zero before ``start()``; kept after ``stop()`` as they were then (``clients``
        included). With ``capture``, also ``capture`` as for ``ChatS``."""
        core = self._core
        return self._with_capture(core.stats() if core is not None else _core.Link.zero_stats())

    def events(self) -> list[tuple[float, str, Address, str, int]]:
        """The recent ``(time, direction, client, fate, size)`` history, oldest first.
        ``direction`` is ``up`` or ``down``; ``fate`` is ``lost``, ``refused``, ``socket_error``,
        ``queue_dropped``, ``send_error``, ``flushed``, or ``forwarded`` followed by
        ``+duplicate``, ``+reordered``, ``+corrupted`` as they apply. Kept after ``stop()``."""
        return self._core.events() if self._core is not None else []

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<udplab.Link {state} addr={self.addr!r} target={self.target!r} seed={self.seed}>"

