"""``udplab.view``: watch a chat and a link live in the browser, as a ladder of datagrams.

``view(*objects)`` returns a :class:`View`, a background object like ``ChatS`` (``start()``,
``stop()``, ``with``, ``daemon=``) that serves one page at ``view.url``: a lifeline per
endpoint, an arrow per datagram with its kind and fate (see :mod:`udplab.web.events` for the
event shape). ``view("chat.pcap")`` replays a capture file instead.

How it is built: every watched object's core pushes sightings into one bounded
``_core.Feed`` (a full feed drops and counts, so the chat never waits for the page); the thread
``view-feed`` turns them into events (:class:`~udplab.web.events.Shaper`) and hands each to
every open page's own bounded queue; a standard-library ``ThreadingHTTPServer`` on the thread
``view-http`` serves the page (``static/``) and the events as Server-Sent Events at
``/events``, one connection thread per page. ``ladder(source)`` draws the same picture as a
static SVG (:mod:`udplab.web.ladder`).
"""

from __future__ import annotations

import collections
import ipaddress
import json
import logging
import os
import socket
import threading
import time
import warnings
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Union
from urllib.parse import parse_qs

from .. import _core
from .._background import Address, _Background, _count, _host, _port
from ..capture import read_capture
from ..chat import ChatC, ChatS
from ..link import Link
from .events import Event, Lifeline, Shaper, from_records

__all__ = ["DEFAULT_HISTORY", "DEFAULT_RATE", "View", "view"]

log = logging.getLogger("udplab.web")

#: Events a view keeps for pages opened later and for ``ladder(view)``.
DEFAULT_HISTORY = 10_000
#: Events per second a view shows at most, by default: far more than a person can follow, and
#: a bound on what watching costs a busy chat (the core drops the rest, counted, cheaply).
DEFAULT_RATE = 1000
#: Events queued for one page before the newest are dropped (and counted) for it.
PAGE_QUEUE = 8192
#: How long the feed thread waits for sightings before it looks at ``stop()`` and the held
#: sightings (``events.HOLD``) again.
_FEED_WAIT = 0.02
#: In a flood, the feed thread takes sightings when it has this many seconds' worth of
#: ``rate`` (fifty times a second), not whenever one more may be shown.
_ROUND = 0.02
#: A page that has had nothing for this long gets a comment line (which also finds a closed
#: connection).
_KEEPALIVE = 5.0
#: Seconds at least between two writes to a page: in a flood, a browser woken for every batch
#: the feed thread makes (fifty a second) takes CPU from the chat it shows; alone, an
#: event still goes out at once.
_PAGE_PACE = 0.05
#: The files of the page: path -> (file in static/, content type).
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/ladder.css": ("ladder.css", "text/css; charset=utf-8"),
    "/strings.json": ("strings.json", "application/json; charset=utf-8"),
}
#: Nothing on the page may come from anywhere but the view itself.
_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
           "img-src 'self' data:; base-uri 'none'; form-action 'none'")

#: Every view made, so that ``ladder(chat)`` finds the events of a view that watched it.
_views: weakref.WeakSet[View] = weakref.WeakSet()

Watchable = Union[ChatS, ChatC, Link]
Source = Union[str, "os.PathLike[str]"]


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


class _Page:
    """One open page: its queue of items to send, bounded; what does not fit is counted."""

    def __init__(self) -> None:
        self.items: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self.dropped = 0
        self.wake = threading.Event()

    def put(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        room = PAGE_QUEUE - len(self.items)
        self.items.extend(items[:max(room, 0)])
        self.dropped += max(len(items) - max(room, 0), 0)
        self.wake.set()


class _Board:
    """What the view has to say: the lifelines, the recent events, the open pages."""

    def __init__(self, history: int, replay: bool) -> None:
        self.lock = threading.Lock()
        self.lifelines: list[Lifeline] = []
        self.events: collections.deque[Event] = collections.deque(maxlen=history)
        self.status: dict[str, Any] = {"replay": replay, "dropped": 0, "events": 0}
        self.pages: set[_Page] = set()
        self.closed = threading.Event()

    def publish(self, lifelines: list[Lifeline], events: list[Event]) -> None:
        items = [("lifeline", line) for line in lifelines] + [("event", e) for e in events]
        with self.lock:
            self.lifelines.extend(lifelines)
            self.events.extend(events)
            self.status["events"] += len(events)
            for page in self.pages:
                page.put(items)

    def set_status(self, **changes: Any) -> None:
        with self.lock:
            if all(self.status.get(k) == v for k, v in changes.items()):
                return
            self.status.update(changes)
            for page in self.pages:
                page.put([("status", dict(self.status))])

    def open(self) -> tuple[_Page, list[tuple[str, dict[str, Any]]]]:
        """A new page and what it must be sent first (everything kept so far)."""
        page = _Page()
        with self.lock:
            first = [("status", dict(self.status))]
            first += [("lifeline", line) for line in self.lifelines]
            first += [("event", e) for e in self.events]
            self.pages.add(page)
        return page, first

    def close_page(self, page: _Page) -> None:
        with self.lock:
            self.pages.discard(page)

    def close(self) -> None:
        self.closed.set()
        with self.lock:
            for page in self.pages:
                page.wake.set()


def _sse(kind: str, data: Any) -> bytes:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = "" if kind == "event" else f"event: {kind}\n"
    return f"{head}data: {body}\n\n".encode()


def _sse_items(items: list[tuple[str, dict[str, Any]]], batch: bool) -> bytes:
    """The SSE messages of ``items``: one per item, or with ``batch`` one ``events`` message
    (a JSON array) per run of events, in the same order (the page's way: a browser dispatches
    and parses each message on its own, a cost per event in a flood)."""
    if not batch:
        return b"".join(_sse(kind, data) for kind, data in items)
    out, run = [], []
    for kind, data in items:
        if kind == "event":
            run.append(data)
            continue
        if run:
            out.append(_sse("events", run))
            run = []
        out.append(_sse(kind, data))
    if run:
        out.append(_sse("events", run))
    return b"".join(out)


class _Handler(BaseHTTPRequestHandler):
    """Serves the page's files and, at ``/events``, the board's items to one page."""

    board: _Board
    server_version = "udplab-view"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("view %s %s", self.address_string(), format % args)

    def _headers(self, status: int, ctype: str, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Security-Policy", _POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        path, _, query = self.path.partition("?")
        if path == "/events":
            self._events(batch="batch" in parse_qs(query, keep_blank_values=True))
        elif path in _STATIC:
            name, ctype = _STATIC[path]
            body = _static(name)
            self._headers(200, ctype, len(body))
            self.wfile.write(body)
        else:
            body = b"not found\n"
            self._headers(404, "text/plain; charset=utf-8", len(body))
            self.wfile.write(body)

    def _events(self, batch: bool) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        page, first = self.board.open()
        reported = 0
        try:
            self.wfile.write(b"retry: 1000\n\n" + _sse_items(first, batch))
            self.wfile.flush()
            written = time.monotonic()
            while not self.board.closed.is_set():
                if not page.wake.wait(_KEEPALIVE):
                    self.wfile.write(b": idle\n\n")
                    self.wfile.flush()
                    continue
                if self.board.closed.wait(written + _PAGE_PACE - time.monotonic()):
                    break
                page.wake.clear()
                items = []
                while page.items:
                    items.append(page.items.popleft())
                out = _sse_items(items, batch)
                if page.dropped != reported:
                    reported = page.dropped
                    out += _sse("missed", {"missed": reported})
                if out:
                    self.wfile.write(out)
                    self.wfile.flush()
                    written = time.monotonic()
            self.wfile.write(_sse("end", {}))
            self.wfile.flush()
        except (BrokenPipeError, ConnectionError, OSError):
            pass  # the page was closed
        finally:
            self.board.close_page(page)


def _handler(board: _Board) -> type[_Handler]:
    return type("Handler", (_Handler,), {"board": board})


class _Http(ThreadingHTTPServer):
    daemon_threads = True
    # stop() ends the pages' threads itself (the board closes); it must not wait for a
    # connection a browser keeps open.
    block_on_close = False


class _Http6(_Http):
    address_family = socket.AF_INET6


class _ViewCore:
    """What ``View.stop()`` stops: the feed, the pages and the HTTP server."""

    def __init__(self, http: _Http, feed: _core.Feed | None, board: _Board) -> None:
        self.http, self.feed, self.board = http, feed, board

    def stop(self) -> None:
        if self.feed is not None:
            self.feed.close()
        self.board.close()
        self.http.shutdown()
        self.http.server_close()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class View(_Background[_ViewCore]):
    """A live ladder of datagrams in the browser (see :func:`view`)."""

    def __init__(self, *objects: Watchable | Source, host: str = "127.0.0.1", port: int = 0,
                 history: int = DEFAULT_HISTORY, rate: int = DEFAULT_RATE,
                 daemon: bool = False) -> None:
        self._host = _host("host", host)
        self._port = _port("port", port)
        self._history = _count("history", history, 1)
        self._rate = _count("rate", rate, 1)
        self._replay: str | None = None
        paths = [o for o in objects if isinstance(o, (str, os.PathLike))]
        if paths:
            if len(objects) != 1:
                raise TypeError("view: give one capture file to replay, or chat objects and "
                                "links to watch, not both")
            self._replay = os.fspath(paths[0])
            # Read now: a missing or malformed file fails here, naming the file and the fault.
            self._records = list(read_capture(self._replay))
        for obj in objects:
            if not isinstance(obj, (ChatS, ChatC, Link, str, os.PathLike)):
                raise TypeError("view() takes ChatS, ChatC and Link objects or a capture "
                                f"file's path, not {type(obj).__name__}")
        if not objects:
            raise TypeError("view() needs something to show: ChatS, ChatC or Link objects, "
                            "or a capture file's path")
        self._objects: list[Watchable] = [o for o in objects
                                          if isinstance(o, (ChatS, ChatC, Link))]
        self._board: _Board | None = None
        self._addr: Address | None = None
        super().__init__(daemon)
        _views.add(self)

    @property
    def addr(self) -> Address:
        """The address the page is served on (the requested one before ``start()``)."""
        return self._addr if self._addr is not None else (self._host, self._port)

    @property
    def url(self) -> str:
        """The page's address, such as ``http://127.0.0.1:8765/``."""
        host, port = self.addr[:2]
        if ":" in str(host):
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    @property
    def objects(self) -> list[Watchable]:
        """What the view watches."""
        return list(self._objects)

    def start(self) -> None:
        """Bind ``(host, port)`` and serve the page and its events on background threads
        (``view-http``, ``view-feed``); watched objects may start before or after."""
        with self._lock:
            self._refuse_if_running()
            board = _Board(self._history, self._replay is not None)
            server_class = _Http6 if ":" in self._host else _Http
            http = server_class((self._host, self._port), _handler(board))
            self._addr = http.server_address[:2]
            if not _loopback(self._host):
                warnings.warn(f"udplab.view on {self._host}: anyone who can reach this machine "
                              "can watch the chat; use host='127.0.0.1' to keep it local",
                              stacklevel=2)
            self._stopped = stopped = threading.Event()
            threads = [threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="view-http")]
            feed: _core.Feed | None = None
            if self._replay is not None:
                lifelines, events = from_records(self._records)
                board.publish(lifelines, events)
            else:
                feed = _core.Feed()
                threads.append(threading.Thread(target=self._pump, args=(feed, board, stopped),
                                                name="view-feed"))
            self._board = board
            self._launch(lambda: _ViewCore(http, feed, board), lambda core: threads)
            if feed is not None:
                for obj in self._objects:
                    obj._watch(feed)
        log.debug("udplab view on %s", self.url)

    def stop(self) -> None:
        """Stop serving, close every page's connection and stop watching. Idempotent."""
        core = self._core
        super().stop()
        if core is not None and core.feed is not None:
            for obj in self._objects:
                obj._unwatch(core.feed)

    def _shaper(self) -> Shaper:
        def resolve() -> dict[Address, Address]:
            found: dict[Address, Address] = {}
            for link in self._objects:
                if isinstance(link, Link):
                    found.update({tuple(up[:2]): c for c, up in link.clients().items()})
            return found
        return Shaper(resolve=resolve)

    def _know(self, shaper: Shaper) -> None:
        """Tell ``shaper`` the addresses of the watched objects (known once they started)."""
        servers, links, clients = {}, {}, {}
        for obj in self._objects:
            if obj._core is None or obj.addr is None:
                continue
            addr = tuple(obj.addr[:2])
            if isinstance(obj, ChatS):
                o = obj._options
                servers[addr] = ("server", (o["heartbeat"], o["quit"], o["prefix"]))
            elif isinstance(obj, Link):
                links[addr] = ("link", obj.target)
            else:
                clients[addr] = obj.name or "{}:{}".format(*addr)
        shaper.know(servers, links, clients)

    def _pump(self, feed: _core.Feed, board: _Board, stopped: threading.Event) -> None:
        shaper = self._shaper()
        last_status = 0.0
        # A token bucket of ``rate`` events a second, bursts of up to a second's worth: a
        # round takes a sighting per token, the newest (the feed counts the older ones as
        # dropped), and pays a token back for each sighting that made no event (a client's
        # send that its server saw too). Short of a round's worth, it waits for them.
        rate = self._rate
        least = max(1.0, rate * _ROUND)
        tokens, refilled = float(rate), time.monotonic()
        while True:
            last_round = stopped.is_set()
            now = time.monotonic()
            tokens = min(float(rate), tokens + (now - refilled) * rate)
            refilled = now
            if tokens < least and not last_round:
                stopped.wait((least - tokens) / rate)
                continue
            batch = feed.take(_FEED_WAIT, int(tokens))
            self._know(shaper)
            discarded = shaper.discarded
            events = shaper.add(batch, None if last_round else time.time())
            tokens -= len(batch) - (shaper.discarded - discarded)
            lifelines = shaper.take_lifelines()
            if events or lifelines:
                board.publish(lifelines, events)
            now = time.monotonic()
            if now - last_status >= 0.5:
                last_status = now
                board.set_status(dropped=feed.stats()["dropped"])
            if last_round:
                return

    def events(self) -> list[Event]:
        """The events kept (the last ``history``), oldest first."""
        board = self._board
        if board is None:
            return []
        with board.lock:
            return list(board.events)

    def lifelines(self) -> list[Lifeline]:
        """The lifelines so far: ``{"name", "role", "addr"}`` each."""
        board = self._board
        if board is None:
            return []
        with board.lock:
            return list(board.lifelines)

    def stats(self) -> dict[str, Any]:
        """``events`` (made so far), ``dropped`` (sightings the feed had no room for: the view
        fell behind), ``pages`` (open now) and ``page_dropped`` (events not sent to a page
        that fell behind, over every page)."""
        board, core = self._board, self._core
        if board is None or core is None:
            return {"events": 0, "dropped": 0, "pages": 0, "page_dropped": 0}
        with board.lock:
            pages = list(board.pages)
            made = board.status["events"]
        return {"events": made,
                "dropped": core.feed.stats()["dropped"] if core.feed is not None else 0,
                "pages": len(pages), "page_dropped": sum(p.dropped for p in pages)}

    def _describe(self) -> str:
        return f"view on {self.url}"

    def _repr_html_(self) -> str:
        """In Jupyter: the page itself, inline."""
        if not self.running:
            return f"<p>udplab view (not running): {self.url}</p>"
        return (f'<iframe src="{self.url}" width="100%" height="560" '
                f'style="border:1px solid #ccc" title="udplab view"></iframe>')

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        what = f"replay={self._replay!r}" if self._replay else f"objects={len(self._objects)}"
        return f"<udplab.View {state} url={self.url!r} {what}>"


def view(*objects: Watchable | Source, host: str = "127.0.0.1", port: int = 0,
         history: int = DEFAULT_HISTORY, rate: int = DEFAULT_RATE,
         daemon: bool = False) -> View:
    """Start a :class:`View` of ``objects`` (``ChatS``, ``ChatC`` and ``Link``, running or
    not yet started) or the replay of one capture file, and return it; open ``view.url`` in a
    browser (in Jupyter, a view as a cell's last value shows the page inline).

    ``host``/``port``: where the page is served (loopback by default; any other address warns,
    since anyone who reaches it can watch). ``rate``: events a second it shows at most (1000;
    when datagrams come faster, the newest are shown and the rest counted as ``dropped``, so
    watching a flood costs the chat little). ``history``: events kept for pages opened later.
    ``daemon``: as for ``ChatS``. Stop it with ``stop()`` or use it in ``with``.
    """
    v = View(*objects, host=host, port=port, history=history, rate=rate, daemon=daemon)
    v.start()
    return v
