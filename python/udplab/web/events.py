"""The one event shape the live view, the static ladder and the notebooks share, and how it is
made: from the core's sightings (``_core.Feed.take``) or from a capture file's records.

An event is a dict that ``json.dumps`` writes as it is::

    {"id": 7, "t": 1764000000.123, "src": "alice", "dst": "server", "kind": "message",
     "fate": "forwarded+delayed", "size": 7, "preview": "hello", "via": "link", "delay": 0.05}

- ``t``: when it was sent (for a datagram through a link: when it reached the link), in
  seconds since the epoch as ``time.time()``.
- ``src``, ``dst``: lifeline names (a client's ``name``, else its ``ip:port``; ``server``;
  ``link``). For ``join`` and ``expire``, ``src`` is the client and ``dst`` the server.
- ``kind``: ``heartbeat``, ``message``, ``quit`` (client to server), ``broadcast`` (server to
  client), ``join``, ``expire`` (the server's client table), ``datagram`` (anything else).
- ``fate``: in the names of the link's counters (``Link.stats()``), joined by ``+``: first how
  it ended (``forwarded``, ``lost``, ``queue_dropped``, ``refused``, ``socket_errors``,
  ``send_errors``, ``flushed``; ``delivered`` where no link decides; ``dropped:REASON`` when
  the server did not act on it), then what the link did on the way (``duplicated``: the
  second copy of a duplicated datagram, ``reordered``, ``corrupted``, ``delayed``).
  :func:`fates` splits it.
- ``size``: the datagram's whole length in bytes; ``preview``: at most :data:`PREVIEW_CHARS`
  characters of it, control characters escaped, ``…`` when cut.
- ``via``: the link it crossed (absent otherwise); ``delay``: seconds it waited in the link.

A lifeline is ``{"name": ..., "role": "client" | "link" | "server", "addr": "ip:port"}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["PREVIEW_CHARS", "Shaper", "classify", "fates", "from_records", "preview"]

Event = dict[str, Any]
Lifeline = dict[str, str]
Address = tuple[Any, ...]
Sighting = tuple[float, "float | None", str, str, Address, Address, int, bytes]

#: Characters of a payload an event shows, at most.
PREVIEW_CHARS = 24
#: The chat's words when nothing else is known (``ChatS``'s defaults).
DEFAULT_WORDS = (b"HB", b"quit", b"ACK")
#: What the server's own sightings are called; a datagram's kind when it is one of them.
_SERVER_KINDS = {"join", "heartbeat", "message", "quit", "expire"}
_ROLES = ("client", "link", "server")


def fates(fate: str) -> list[str]:
    """The parts of a ``fate``: ``"forwarded+delayed"`` -> ``["forwarded", "delayed"]``."""
    return fate.split("+")


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def preview(payload: bytes, size: int | None = None) -> str:
    """At most :data:`PREVIEW_CHARS` characters of ``payload`` (the start of a datagram of
    ``size`` bytes), UTF-8 text as text, every control character and invalid byte escaped
    (``\\n``, ``\\x1b``), ``…`` at the end when cut. Safe for a log line; the page and the SVG
    still write it as text, never as markup."""
    size = len(payload) if size is None else size
    cut = size > len(payload)
    if cut:
        # The preview may end inside a character: drop its first bytes rather than escape them.
        for back in range(1, min(4, len(payload)) + 1):
            lead = payload[-back]
            if lead & 0xC0 != 0x80:
                if lead >= 0xC0 and back < (2 if lead < 0xE0 else 3 if lead < 0xF0 else 4):
                    payload = payload[:-back]
                break
    text = _escape(payload.decode("utf-8", "backslashreplace"))
    if len(text) > PREVIEW_CHARS:
        text, cut = text[:PREVIEW_CHARS], True
    return text + "…" if cut else text


def classify(payload: bytes, size: int, to_server: bool,
             words: tuple[bytes, bytes, bytes] = DEFAULT_WORDS) -> str:
    """A datagram's kind from its bytes, as the chat server would read it: towards the server,
    the heartbeat word (with one trailing ``\\n`` or ``\\r\\n``, as netcat sends it) is a
    ``heartbeat``, the quit word a ``quit``, anything else a ``message``; from the server,
    ``prefix`` + text is a ``broadcast``. ``payload`` may be just the start of the datagram
    (``size`` says how long it was)."""
    heartbeat, quit, prefix = words
    if to_server:
        whole = payload if size == len(payload) else None
        if whole is not None:
            body = whole[:-2] if whole.endswith(b"\r\n") else (
                whole[:-1] if whole.endswith(b"\n") else whole)
            if whole == heartbeat or body == heartbeat:
                return "heartbeat"
            if whole == quit or body == quit:
                return "quit"
        return "message" if size else "datagram"
    return "broadcast" if payload.startswith(prefix) and size >= len(prefix) else "datagram"


#: Seconds a sighting is held back so that a later one that happened earlier goes out first.
HOLD = 0.03


def _done(s: Sighting) -> float:
    """When the datagram of a sighting was done with: a forwarded copy when it left."""
    return s[1] if s[1] is not None else s[0]


def _addr(a: Address) -> str:
    host = str(a[0])
    return f"[{host}]:{a[1]}" if ":" in host else f"{host}:{a[1]}"


class Shaper:
    """Turns sightings into events and names the lifelines.

    It knows the watched objects: ``servers`` ``{address: (name, words)}``, ``links``
    ``{address: (name, target)}`` and ``clients`` ``{address: name}``. A datagram is shown once,
    where it says most: through a watched link, by the link (with its fate); else by the
    server; a client's own sightings only when neither its server nor a link to it is watched.
    ``upstream`` maps the address a server sees for a client behind a link to the client (as
    ``Link.clients()`` gives it reversed); ``resolve`` is asked when an address is not in it.
    """

    def __init__(self, servers: dict[Address, tuple[str, tuple[bytes, bytes, bytes]]] | None = None,
                 links: dict[Address, tuple[str, Address]] | None = None,
                 clients: dict[Address, str] | None = None,
                 resolve: Any = None) -> None:
        self.servers: dict[Address, tuple[str, tuple[bytes, bytes, bytes]]] = {}
        self.links: dict[Address, tuple[str, Address]] = {}
        self.clients: dict[Address, str] = {}
        self.upstream: dict[Address, Address] = {}
        self._resolve = resolve
        self._names: dict[Address, str] = {}
        self.lifelines: list[Lifeline] = []
        self._new: list[Lifeline] = []
        self._held: list[Sighting] = []
        self._next_id = 0
        #: Sightings that made no event (another object's sighting showed the datagram).
        self.discarded = 0
        self.know(servers or {}, links or {}, clients or {})

    def know(self, servers: dict[Address, tuple[str, tuple[bytes, bytes, bytes]]],
             links: dict[Address, tuple[str, Address]], clients: dict[Address, str]) -> None:
        """Learn (more) watched objects' addresses; servers and links get their lifelines."""
        self.servers.update(servers)
        self.links.update(links)
        self.clients.update(clients)
        for addr, (name, _words) in servers.items():
            self._lifeline(addr, name, "server")
        for addr, (name, _target) in links.items():
            self._lifeline(addr, name, "link")

    def _lifeline(self, addr: Address, name: str, role: str) -> str:
        key = tuple(addr[:2])
        if key not in self._names:
            taken = {line["name"] for line in self.lifelines}
            unique, n = name, 2
            while unique in taken:
                unique, n = f"{name} {n}", n + 1
            self._names[key] = unique
            line = {"name": unique, "role": role, "addr": _addr(addr)}
            self.lifelines.append(line)
            self._new.append(line)
        return self._names[key]

    def name(self, addr: Address) -> str:
        """The lifeline of ``addr`` (made as a client's when new)."""
        key = tuple(addr[:2])
        if key in self._names:
            return self._names[key]
        return self._lifeline(addr, self.clients.get(key, _addr(addr)), "client")

    def take_lifelines(self) -> list[Lifeline]:
        """The lifelines made since the last call."""
        new, self._new = self._new, []
        return new

    def _behind_link(self, addr: Address) -> Address | None:
        """The client behind a watched link that the server sees as ``addr``, if any."""
        key = tuple(addr[:2])
        if key not in self.upstream and self._resolve is not None:
            self.upstream.update(self._resolve())
        return self.upstream.get(key)

    def _event(self, t: float, src: Address, dst: Address, kind: str, fate: str, size: int,
               payload: bytes, **more: Any) -> Event:
        self._next_id += 1
        event: Event = {"id": self._next_id, "t": t, "src": self.name(src),
                        "dst": self.name(dst), "kind": kind, "fate": fate, "size": size,
                        "preview": preview(payload, size)}
        event.update(more)
        return event

    def _words(self, server: Address) -> tuple[bytes, bytes, bytes]:
        found = self.servers.get(tuple(server[:2]))
        return found[1] if found else DEFAULT_WORDS

    def add(self, sightings: Iterable[Sighting], now: float | None = None) -> list[Event]:
        """The events for ``sightings``, lifelines as needed, in the order the datagrams were
        done with (a copy the link forwarded: when it left).

        Threads push sightings in about that order, not exactly (a client's receive thread can
        report the reply before its sending thread reports the send), so with ``now`` (the
        wall-clock time, as ``time.time()``) the sightings of the last :data:`HOLD` seconds are
        held back for the next call; without it, everything goes out."""
        self._held.extend(sightings)
        self._held.sort(key=_done)
        cut = len(self._held)
        if now is not None:
            while cut and _done(self._held[cut - 1]) > now - HOLD:
                cut -= 1
        ready, self._held = self._held[:cut], self._held[cut:]
        events: list[Event] = []
        for t, left, what, fate, src, dst, size, payload in ready:
            event = self._one(t, left, what, fate, src, dst, size, payload)
            if event is not None:
                events.append(event)
            else:
                self.discarded += 1
        return events

    def _one(self, t: float, left: float | None, what: str, fate: str, src: Address,
             dst: Address, size: int, payload: bytes) -> Event | None:
        if what in ("up", "down"):
            up = what == "up"
            link = self._link_for(dst if up else src)
            target = dst if up else src
            self._lifeline(target, _addr(target), "server")
            kind = classify(payload, size, up, self._words(target))
            more: dict[str, Any] = {"via": link}
            if left is not None:
                more["delay"] = round(max(0.0, left - t), 6)
            return self._event(t, src, dst, kind, fate, size, payload, **more)
        if what in ("sent", "received"):
            server = dst if what == "sent" else src
            if tuple(server[:2]) in self.servers or tuple(server[:2]) in self.links:
                return None  # the server or the link shows it, with more to say
            self._lifeline(server, _addr(server), "server")
            kind = classify(payload, size, what == "sent", self._words(server))
            return self._event(t, src, dst, kind, fate, size, payload)
        # The server's own sightings: src is the client (dst for a broadcast).
        client = dst if what == "broadcast" else src
        behind = self._behind_link(client)
        if behind is not None:
            if what not in ("join", "expire"):
                return None  # the link shows the datagram, with its fate
            src = behind
        if what in _SERVER_KINDS:
            kind = what
        elif what == "broadcast":
            kind = "broadcast"
        else:  # dropped: what it was, and why it was dropped
            kind = classify(payload, size, True, self._words(dst))
        return self._event(t, src, dst, kind, fate, size, payload)

    def _link_for(self, target: Address) -> str:
        for addr, (name, link_target) in self.links.items():
            if tuple(link_target[:2]) == tuple(target[:2]):
                return self._names.get(tuple(addr[:2]), name)
        return "link"


def from_records(records: Iterable[Any],
                 words: tuple[bytes, bytes, bytes] = DEFAULT_WORDS) -> tuple[list[Lifeline],
                                                                              list[Event]]:
    """The lifelines and events of a capture's records (``read_capture``): each datagram as
    it crossed a socket, ``delivered``. The server is the address that receives the heartbeat
    or quit word, or sends ``prefix`` + text, most often; every other address is a client.
    A client's first datagram to the server adds a ``join``, as the server's own table does."""
    records = list(records)
    heartbeat, quit, prefix = words
    score: dict[Address, int] = {}
    for r in records:
        kind = classify(r.payload, len(r.payload), True, words)
        if kind in ("heartbeat", "quit", "message"):
            score[tuple(r.dst[:2])] = score.get(tuple(r.dst[:2]), 0) + (kind != "message")
        if r.payload.startswith(prefix):
            score[tuple(r.src[:2])] = score.get(tuple(r.src[:2]), 0) + 1
    server = max(score, key=lambda a: score[a]) if score else None
    shaper = Shaper(servers={server: ("server", words)} if server else {})
    events: list[Event] = []
    joined: set[Address] = set()
    for r in sorted(records, key=lambda r: r.time):
        to_server = server is not None and tuple(r.dst[:2]) == server
        kind = classify(r.payload, len(r.payload), to_server, words)
        client = tuple(r.src[:2])
        if to_server and client not in joined and kind in ("heartbeat", "message"):
            joined.add(client)
            events.append(shaper._event(r.time, r.src, r.dst, "join", "delivered", 0, b""))
        if to_server and kind == "quit":
            joined.discard(client)
        events.append(shaper._event(r.time, r.src, r.dst, kind, "delivered", len(r.payload),
                                    r.payload[:64]))
    return shaper.lifelines, events
