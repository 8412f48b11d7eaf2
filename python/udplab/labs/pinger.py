"""Lab 1, the pinger: what the student writes, the echo server it pings, and how it is judged.

The student's file defines

- ``RttEstimator``: ``srtt``, ``rttvar`` and ``rto`` (seconds; ``rto`` starts at
  :data:`INITIAL_RTO`, the others at None), ``sample(rtt)`` after each measured round trip
  and ``timed_out()`` after each ping that got no echo in time, as RFC 6298 says;
- ``ping(sock, server, count, estimator)``: send ``count`` pings from the socket ``sock`` to
  ``server`` one at a time, each with its own bytes, wait for each echo at most
  ``estimator.rto`` seconds, and return a list with each ping's round-trip time in seconds or
  None when it got no echo;
- ``summarize(rtts)``: ``{"sent", "received", "loss", "min", "avg", "max"}`` of such a list.

A ping's echo counts only if it is byte for byte the ping sent: an echo of an earlier ping
(late or duplicated) or a damaged one is read and skipped.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import udplab

from ._text import _

#: RFC 6298's gains and factor (section 2) and the clock granularity G, in seconds.
ALPHA = 1 / 8
BETA = 1 / 4
K = 4
G = 0.001
#: RFC 6298 starts at 1 s (2.1), rounds a smaller RTO up to 1 s (2.4) and allows a maximum of
#: 60 s or more (2.5). On loopback, with round trips of milliseconds, the lab scales these
#: down, so that a lost ping costs a fraction of a second.
INITIAL_RTO = 0.5
MIN_RTO = 0.1
MAX_RTO = 2.0

#: How close two seconds must be to count as equal, for values the student computed.
TOLERANCE = 1e-9
#: A measured round trip may be shorter than the link's by at most this (the link stamps its
#: captures with another clock than the student's ``time.monotonic()``).
CLOCKS = 0.001


class Rfc6298:
    """The grader's own computation of RFC 6298, to hold the student's ``RttEstimator`` to."""

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self.rto = INITIAL_RTO

    def sample(self, rtt: float) -> None:
        if self.srtt is None or self.rttvar is None:
            self.srtt, self.rttvar = rtt, rtt / 2  # (2.2)
        else:  # (2.3): RTTVAR first, with the SRTT before this sample
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - rtt)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * rtt
        self.rto = min(max(self.srtt + max(G, K * self.rttvar), MIN_RTO), MAX_RTO)

    def timed_out(self) -> None:
        self.rto = min(2 * self.rto, MAX_RTO)  # (5.5), within the maximum of (2.5)

    def state(self) -> dict[str, float | None]:
        return {"srtt": self.srtt, "rttvar": self.rttvar, "rto": self.rto}


#: What the student's estimator is put through before the pings: the first sample (2.2),
#: later ones (2.3), backing off (5.5) up to the maximum, a sample after backing off, and
#: samples so steady that the RTO falls to the minimum.
STEPS: tuple[float | None, ...] = (
    0.2, 0.3, 0.05, None, None, None, 0.02, *([0.02] * 12), None, 0.03,
)


def _same(a: object, b: float | None) -> bool:
    if b is None or a is None:
        return a is None and b is None
    if isinstance(a, bool) or not isinstance(a, (int, float)):
        return False
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def check_estimator(estimator_class: Any) -> str | None:
    """Why the student's ``RttEstimator`` does not follow RFC 6298, or None when it does.
    Runs the student's code: the harness calls it, in the student's process."""
    theirs, ours = estimator_class(), Rfc6298()
    done: list[str] = []
    for value in (*STEPS, "end"):
        for name, want in ours.state().items():
            if not hasattr(theirs, name):
                return _("RttEstimator has no attribute {name}").format(name=name)
            got = getattr(theirs, name)
            if not _same(got, want):
                after = ", ".join(done) if done else "RttEstimator()"
                return _("RttEstimator: after {steps}, {name} is {got!r}; RFC 6298 gives "
                         "{want!r}").format(steps=after, name=name, got=got, want=want)
        if value is None:
            theirs.timed_out()
            ours.timed_out()
            done.append("timed_out()")
        elif isinstance(value, float):
            theirs.sample(value)
            ours.sample(value)
            done.append(f"sample({value})")
    return None


def replay(rtts: list[float | None]) -> tuple[list[float], dict[str, float | None]]:
    """The timeout each ping should have waited, and the estimator's state at the end, for
    ``rtts`` as the student measured them."""
    ours, timeouts = Rfc6298(), []
    for rtt in rtts:
        timeouts.append(ours.rto)
        if rtt is None:
            ours.timed_out()
        else:
            ours.sample(rtt)
    return timeouts, ours.state()


def summarize(rtts: list[float | None]) -> dict[str, Any]:
    """The summary the student's ``summarize`` must return."""
    answered = [r for r in rtts if r is not None]
    return {
        "sent": len(rtts),
        "received": len(answered),
        "loss": (len(rtts) - len(answered)) / len(rtts) if rtts else 0.0,
        "min": min(answered) if answered else None,
        "avg": sum(answered) / len(answered) if answered else None,
        "max": max(answered) if answered else None,
    }


def plain(summary: object) -> object:
    """The student's summary as JSON can carry it (numbers stay numbers, other things their
    repr), so the grader can compare it."""
    if not isinstance(summary, dict):
        return repr(summary)
    return {str(k): v if v is None or isinstance(v, (int, float)) else repr(v)
            for k, v in summary.items()}


def not_a_list(value: object) -> str:
    return _("ping() must return a list of round-trip times (seconds) or None, got "
             "{value}").format(value=_short(value))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def judge(rtts: list[float | None], state: dict[str, float | None], summary: object,
          count: int, pings: list[tuple[float, bytes]],
          echoes: list[tuple[float, bytes]]) -> str | None:
    """Why the pinger's results are wrong, or None when they are right.

    ``pings``: ``(time, bytes)`` of each datagram the student sent, as the link received them;
    ``echoes``: ``(time, bytes)`` of each datagram the link delivered back to the student
    (damaged ones included), both from the link's capture.
    """
    if len(pings) != count:
        return _("sent {sent} datagrams for {count} pings: send each ping once").format(
            sent=len(pings), count=count)
    seen: dict[bytes, int] = {}
    for i, (_t, data) in enumerate(pings):
        if data in seen:
            return _("pings {a} and {b} have the same bytes, so their echoes cannot be told "
                     "apart: put the ping's number in it").format(a=seen[data], b=i)
        seen[data] = i
    if len(rtts) != count:
        return _("ping() returned {n} results for {count} pings").format(n=len(rtts),
                                                                         count=count)
    timeouts, final = replay(rtts)
    for i, ((sent_at, data), rtt) in enumerate(zip(pings, rtts)):
        back = [t - sent_at for t, echo in echoes if echo == data and t >= sent_at]
        if rtt is not None:
            if not back:
                return _("ping {i}: you report {rtt}, but no intact echo of ping {i} reached "
                         "you (was it the echo of another ping, or a damaged one?)").format(
                             i=i, rtt=_ms(rtt))
            if rtt < min(back) - CLOCKS:
                return _("ping {i}: you report {rtt}, but its echo reached you {link} after "
                         "it left: the echo you took was another ping's").format(
                             i=i, rtt=_ms(rtt), link=_ms(min(back)))
        elif back and min(back) < timeouts[i] / 2:
            return _("ping {i}: its echo reached you {link} after it left, well within the "
                     "timeout of {rto}, but you report it lost").format(
                         i=i, link=_ms(min(back)), rto=_ms(timeouts[i]))
    for name, want in final.items():
        if not _same(state.get(name), want):
            return _("after ping() the estimator's {name} is {got!r}; your own results fed to "
                     "RFC 6298 give {want!r}: call estimator.sample(rtt) after each echo and "
                     "estimator.timed_out() after each timeout, and wait estimator.rto").format(
                         name=name, got=state.get(name), want=want)
    want_summary = summarize(rtts)
    if not isinstance(summary, dict):
        return _("summarize() must return a dict, got {got}").format(got=summary)
    for key, value in want_summary.items():
        if not _same(summary.get(key), value):
            return _("summarize(): {key} is {got!r}, should be {want!r}").format(
                key=key, got=summary.get(key), want=value)
    return None


class EchoServer:
    """A UDP echo server on a thread named ``echo``: every datagram goes back to its sender as
    it came. ``addr`` is where it listens; use it as a context manager, or ``start()`` and
    ``stop()`` (which returns once the thread has ended and the port is free)."""

    def __init__(self, listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self._listen = listen
        self._sock: udplab.UdpSocket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._addr: tuple[Any, ...] | None = None
        self.echoed = 0
        """Datagrams echoed so far."""

    @property
    def addr(self) -> tuple[Any, ...]:
        """Where it listens (once started)."""
        if self._addr is None:
            raise RuntimeError("the echo server has not been started")
        return self._addr

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the echo server is running already")
        sock = udplab.socket()
        sock.bind(self._listen)
        sock.settimeout(0.05)  # how soon stop() is noticed
        self._sock = sock
        self._addr = tuple(sock.getsockname())
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="echo",
                                        daemon=True)
        self._thread.start()

    def _serve(self, sock: udplab.UdpSocket) -> None:
        while not self._stop.is_set():
            try:
                data, sender = sock.recvfrom(65535)
                sock.sendto(data, sender)
            except (TimeoutError, ConnectionError):
                continue
            self.echoed += 1

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> EchoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
