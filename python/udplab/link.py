"""``udplab.Link``: a relay that makes the network between clients and a UDP target as bad as
asked (loss, duplication, reordering, corruption, delay, rate), the same way for the same seed.

The Rust side (``crates/udplab/src/link/``) decides every datagram's fate and relays; this
module checks the options and owns the thread, named ``link``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import threading
from collections.abc import Callable
from typing import Any, TypeVar, Union

from . import _core
from ._background import (
    DEFAULT_CAPTURE_LIMIT,
    Address,
    CaptureTarget,
    _Background,
    _count,
    _serve,
    _spin,
)
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
        for field in ("p", "one_minus_h", "one_minus_k"):
            _probability(f"GEModel {field}", getattr(self, field))
        if self.r is not None:
            _probability("GEModel r", self.r)

    def parameters(self) -> tuple[float, float, float, float]:
        """``(p, r, 1-h, 1-k)`` with the defaults filled in."""
        r = 1.0 - self.p if self.r is None else self.r
        return (float(self.p), float(r), float(self.one_minus_h), float(self.one_minus_k))


Loss = Union[float, GEModel]
#: One value for both directions, or an ``(up, down)`` pair.
Either = Union[T, tuple[T, T]]


def _number(name: str, value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}")
    return float(value)


def _probability(name: str, value: object) -> float:
    p = _number(name, value, "a probability (a number from 0 to 1)")
    if not 0.0 <= p <= 1.0:  # NaN fails this too
        raise ValueError(f"{name} must be a probability from 0 to 1, got {value!r}")
    return p


def _loss(name: str, value: object) -> float | tuple[float, float, float, float]:
    if isinstance(value, GEModel):
        return value.parameters()
    return _probability(name, value)


#: The longest ``delay``, ``jitter`` and ``idle``, in seconds (the core's ``MAX_DELAY``).
MAX_DELAY = 86_400.0
#: The slowest ``rate``, bytes per second (the core's ``MIN_RATE``).
MIN_RATE = 1.0


def _seconds(name: str, value: object) -> float:
    s = _number(name, value, "a number of seconds")
    if not (math.isfinite(s) and 0 <= s <= MAX_DELAY):
        raise ValueError(f"{name} must be a finite number of seconds >= 0 and at most "
                         f"{MAX_DELAY:g} (a day), got {value!r}")
    return s


def _rate(name: str, value: object) -> float | None:
    if value is None:
        return None
    r = _number(name, value, "a number of bytes per second, or None for no limit")
    if not (math.isfinite(r) and r >= MIN_RATE):
        raise ValueError(f"{name} must be a positive number of bytes per second (at least "
                         f"{MIN_RATE:g}), got {value!r}")
    return r


def _limit(name: str, value: object) -> int:
    return _count(name, value, 1)


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
    address to listen on. ``max_clients``: client addresses mapped at once (more are refused);
    ``idle``: seconds after which a silent client's mapping is forgotten; ``history``: events
    kept for :meth:`events`; ``spin``: seconds to keep polling after each datagram before
    sleeping, so that a reply or the next datagram is relayed without waiting for the thread
    to wake up (on an idle machine, waking up is most of the latency a crossing adds), for at
    most that much CPU per datagram; 0 turns it off; ``capture``, ``capture_limit``: as for
    ``ChatS``, recording both sides (what came in from a client, and what went on towards the
    target and back: a datagram the link lost appears once, on the way in); ``daemon``: as for
    ``ChatS`` (a running non-daemon link keeps a script serving after its last line until
    Ctrl-C).

    What happens to each datagram, in this order: from a new client while ``max_clients`` are
    mapped, it is refused; else it may be lost; a survivor may be duplicated; each copy may
    then be corrupted (one bit flipped), and is either reordered (sent at once, ahead of the
    queue) or delayed; it waits in its direction's queue (dropped if ``limit`` copies wait
    already; with ``rate``, also behind the copies before it) and is sent when due. Copies still
    waiting at ``stop()`` are discarded and counted as ``flushed``.

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
        reorders = _both("reorder", reorder, _probability)
        delays = _both("delay", delay, _seconds)
        for direction, r, d in zip(("up", "down"), reorders, delays):
            if r > 0 and d == 0:
                raise ValueError(
                    f"reorder needs a delay ({direction}): a reordered datagram is sent at once, "
                    "ahead of the ones waiting out the delay; with delay=0 nothing waits, so "
                    "nothing can be overtaken (netem refuses it too)")
        options: dict[str, tuple[Any, Any]] = {
            "loss": _both("loss", loss, _loss),
            "duplicate": _both("duplicate", duplicate, _probability),
            "reorder": reorders,
            "corrupt": _both("corrupt", corrupt, _probability),
            "delay": delays,
            "jitter": _both("jitter", jitter, _seconds),
            "rate": _both("rate", rate, _rate),
            "limit": _both("limit", limit, _limit),
        }
        self._lanes = [{key: pair[i] for key, pair in options.items()} for i in (0, 1)]
        if seed is None:
            seed = random.SystemRandom().getrandbits(64)
        self.seed: int = _count("seed", seed, 0, 2**64 - 1)
        """The seed in use (the one given, or the one picked when ``None`` was)."""
        self._options: dict[str, Any] = dict(
            max_clients=_count("max_clients", max_clients, 1),
            idle=_seconds("idle", idle),
            history=_count("history", history, 0),
            spin=_spin(spin),
        )
        if self._options["idle"] == 0:
            raise ValueError("idle must be positive")
        super().__init__(daemon, capture, capture_limit)

    def start(self) -> None:
        """Bind ``listen`` and start relaying on a background thread named ``link``."""
        with self._lock:
            self._refuse_if_running()
            refresh_logging()
            stopped = self._stopped = threading.Event()
            self._launch(
                lambda: _core.Link(self.target, self._listen, *self._lanes, seed=self.seed,
                                   **self._options),
                lambda core: [threading.Thread(target=_serve, args=(core, stopped, log, "link"),
                                               name="link")])

    def stop(self) -> None:
        """Stop relaying and free the port; datagrams still waiting are discarded (counted as
        ``flushed``). Idempotent; returns once the thread has ended."""
        super().stop()

    @property
    def addr(self) -> Address:
        """Where clients send (the requested address before ``start()``)."""
        return self._core.addr if self._core is not None else self._listen

    def clients(self) -> dict[Address, Address]:
        """``{client address: the address the target sees it as}`` for every mapped client."""
        return self._core.clients() if self.running and self._core is not None else {}

    def stats(self) -> dict[str, Any]:
        """``{"up": {...}, "down": {...}, "clients": n, "mapped": m, "forgotten": f}``.

        Each direction counts ``received``, ``refused``, ``lost``, ``duplicated``,
        ``reordered``, ``corrupted``, ``delayed``, ``queue_dropped``, ``forwarded``,
        ``send_errors``, ``flushed``, ``queued`` and ``forwarded_bytes``, and always
        ``received + duplicated == refused + lost + forwarded + queue_dropped + send_errors +
        flushed + queued`` (``queued`` is 0 after ``stop()``). All zero before ``start()``;
        kept after ``stop()``. With ``capture``, also ``capture`` as for ``ChatS``."""
        core = self._core
        return self._with_capture(core.stats() if core is not None else _core.Link.zero_stats())

    def events(self) -> list[tuple[float, str, Address, str, int]]:
        """The recent ``(time, direction, client, fate, size)`` history, oldest first.
        ``direction`` is ``up`` or ``down``; ``fate`` is ``lost``, ``refused``,
        ``queue_dropped``, ``send_error``, ``flushed``, or ``forwarded`` followed by
        ``+duplicate``, ``+reordered``, ``+corrupted`` as they apply. Kept after ``stop()``."""
        return self._core.events() if self._core is not None else []

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<udplab.Link {state} addr={self.addr!r} target={self.target!r} seed={self.seed}>"

