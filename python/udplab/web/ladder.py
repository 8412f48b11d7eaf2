"""``udplab.ladder(source)``: the live page's drawing as one static SVG, for notebooks and the
site. Same event shape (:mod:`udplab.web.events`), same look (``static/ladder.css``), same
words (``static/strings.json``) as the page; drawn here in Python so that it needs no browser.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from importlib import resources
from typing import Any, Union
from xml.sax.saxutils import escape, quoteattr

from ..capture import read_capture
from ..chat import ChatS
from ..link import Link
from .events import Event, Lifeline, fates, from_records

__all__ = ["Ladder", "ladder"]

#: Pixels per event row, margins and the least room between lifelines: as on the page.
ROW, TOP, MARGIN, SPACING, HEAD = 26, 12, 130, 170, 56
_ENDS = ("lost", "queue_dropped", "refused", "flushed", "send_errors")
_ROLE_ORDER = {"client": 0, "link": 1, "server": 2}
#: Events drawn by default: the last ones.
DEFAULT_ROWS = 120


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


class Ladder:
    """A drawn ladder: ``svg`` (the text of the picture), ``save(path)``, and in Jupyter the
    picture itself (``_repr_svg_``). ``events`` and ``lifelines`` are what it shows."""

    def __init__(self, svg: str, events: list[Event], lifelines: list[Lifeline]) -> None:
        self.svg = svg
        self.events = events
        self.lifelines = lifelines

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the SVG to ``path`` (UTF-8)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.svg)

    def __repr__(self) -> str:
        return f"<udplab.Ladder {len(self.events)} events, {len(self.lifelines)} lifelines>"


Source = Union[Iterable[Event], "os.PathLike[str]", str, ChatS, Link, Any]


def _from_history(obj: ChatS | Link) -> tuple[list[Lifeline], list[Event]]:
    """What an object's own history says, when no view watched it: the server's joins,
    heartbeats, messages, quits and expiries, or the link's fates (no previews, no kinds)."""
    events: list[Event] = []
    server = {"name": "server", "role": "server", "addr": "{}:{}".format(*obj.addr[:2])}
    lines: list[Lifeline] = [server]
    names: dict[Any, str] = {}

    def client(addr: Any) -> str:
        key = tuple(addr[:2])
        if key not in names:
            names[key] = "{}:{}".format(*key)
            lines.append({"name": names[key], "role": "client", "addr": names[key]})
        return names[key]

    if isinstance(obj, ChatS):
        for i, (t, kind, addr) in enumerate(obj.events(), 1):
            events.append({"id": i, "t": t, "src": client(addr), "dst": "server", "kind": kind,
                           "fate": "delivered", "size": 0, "preview": ""})
    else:
        server["addr"] = "{}:{}".format(*obj.target[:2])
        lines.append({"name": "link", "role": "link", "addr": "{}:{}".format(*obj.addr[:2])})
        for i, (t, direction, addr, fate, size) in enumerate(obj.events(), 1):
            name = client(addr)
            src, dst = (name, "server") if direction == "up" else ("server", name)
            fate = fate.replace("+duplicate", "+duplicated").replace("send_error", "send_errors")
            events.append({"id": i, "t": t, "src": src, "dst": dst, "kind": "datagram",
                           "fate": fate, "size": size, "preview": "", "via": "link"})
    return lines, events


def _source(source: Source) -> tuple[list[Lifeline], list[Event]]:
    from . import View, _views

    if isinstance(source, View):
        return source.lifelines(), source.events()
    if isinstance(source, (str, os.PathLike)):
        return from_records(read_capture(source))
    if isinstance(source, (ChatS, Link)):
        for v in list(_views):
            if source in v.objects and v.events():
                return v.lifelines(), v.events()
        return _from_history(source)
    events = [dict(e) for e in source]
    for e in events:
        missing = {"t", "src", "dst", "kind", "fate"} - set(e)
        if missing:
            raise ValueError(f"ladder: an event lacks {sorted(missing)}: {e!r}")
    return [], events


def _layout(lines: list[Lifeline], width: int) -> tuple[dict[str, float], float,
                                                         list[Lifeline]]:
    ordered = sorted(enumerate(lines), key=lambda p: (_ROLE_ORDER.get(p[1]["role"], 0), p[0]))
    order = [line for _, line in ordered]
    n = len(order)
    inner = max(width - 2 * MARGIN, (n - 1) * SPACING)
    xs = {line["name"]: MARGIN + (inner / 2 if n == 1 else i * inner / (n - 1))
          for i, line in enumerate(order)}
    return xs, inner + 2 * MARGIN, order


class _Svg:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def el(self, name: str, text: str | None = None, **attrs: Any) -> None:
        a = " ".join(f"{k.rstrip('_').replace('_', '-')}={quoteattr(_num(v))}"
                     for k, v in attrs.items())
        self.parts.append(f"<{name} {a}/>" if text is None
                          else f"<{name} {a}>{escape(text)}</{name}>")


def _num(v: Any) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)


def _renamed(lines: list[Lifeline], events: list[Event],
             names: dict[Any, str]) -> tuple[list[Lifeline], list[Event]]:
    """Lifelines named by address (``"ip:port"``) given the names in ``names``."""
    new = {}
    for addr, name in names.items():
        new[addr if isinstance(addr, str) else "{}:{}".format(*addr[:2])] = str(name)
    lines = [dict(line, name=new.get(line["name"], line["name"])) for line in lines]
    events = [dict(e, **{k: new[e[k]] for k in ("src", "dst", "via") if e.get(k) in new})
              for e in events]
    return lines, events


def ladder(source: Source, *, lang: str = "en", rows: int = DEFAULT_ROWS, width: int = 900,
           names: dict[Any, str] | None = None) -> Ladder:
    """The ladder of ``source`` as a static SVG: a list of events (the shape of
    :mod:`udplab.web.events`), a :class:`~udplab.web.View`, a ``ChatS`` or ``Link`` (the
    events of a view that watched it; without one, the object's own history, which has no
    previews and no broadcasts), or a capture file's path. ``lang``: ``"en"`` or ``"zh"``;
    ``rows``: the last so many events are drawn; ``width``: in pixels, at least; ``names``:
    ``{address: name}`` for lifelines known only by address (a capture's clients)."""
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be a positive int, got {rows!r}")
    words = json.loads(_static("strings.json"))[lang]
    lines, events = _source(source)
    if names:
        lines, events = _renamed(lines, events, names)
    lines = list(lines)
    known = {line["name"] for line in lines}
    for e in events:
        for name in (e["src"], e["dst"]):
            if name not in known:
                known.add(name)
                lines.append({"name": name, "role": "client", "addr": name})
    shown = events[-rows:]
    xs, full, order = _layout(lines, width)
    height = HEAD + 2 * TOP + len(shown) * ROW + 24
    svg = _Svg()
    svg.parts.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(float(full))}" '
                     f'height="{height}" viewBox="0 0 {_num(float(full))} {height}" '
                     f'class="udplab-ladder">')
    svg.parts.append(f"<style>{escape(_static('ladder.css'))}</style>")
    svg.el("rect", x=0, y=0, width="100%", height="100%", fill="#ffffff")
    counts = _counts(shown)
    for line in order:
        x = xs[line["name"]]
        svg.el("line", class_="lifeline " + line["role"], x1=x, y1=HEAD - 6, x2=x, y2=height)
        title = line["name"] if line["role"] == "client" else words.get(line["role"], line["role"])
        svg.el("text", title, class_="name", x=x, y=18, text_anchor="middle")
        svg.el("text", _count_text(line, counts.get(line["name"], {}), words), class_="counts",
               x=x, y=34, text_anchor="middle")
    done: list[float] = []
    for e in shown:
        done.append(max(done[-1] if done else float("-inf"), e["t"] + e.get("delay", 0.0)))

    def y_of(r: int) -> float:
        return HEAD + TOP + r * ROW + ROW / 2

    for r in range(0, len(shown), 2):
        svg.el("rect", class_="band", x=0, y=y_of(r) - ROW / 2, width="100%", height=ROW)
    placed: dict[tuple[int, int], str] = {}
    for r, e in enumerate(shown):
        _row(svg, e, r, xs, y_of, done, words, placed)
    if len(events) > len(shown):
        note = f"… {len(events) - len(shown)} earlier events not drawn"
        svg.el("text", note, class_="counts", x=8, y=HEAD - 4)
    svg.parts.append("</svg>")
    return Ladder("".join(svg.parts), shown, order)


def _counts(events: list[Event]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}

    def bump(name: str, key: str) -> None:
        counts.setdefault(name, {})
        counts[name][key] = counts[name].get(key, 0) + 1

    for e in events:
        if e["kind"] in ("join", "expire"):
            bump(e["dst"], "joins" if e["kind"] == "join" else "expiries")
            continue
        parts = fates(e["fate"])
        if "duplicated" not in parts:
            bump(e["src"], "sent")
        if parts[0] not in _ENDS and not parts[0].startswith("dropped"):
            bump(e["dst"], "received")
        if e.get("via"):
            if parts[0] not in _ENDS:
                bump(e["via"], "crossed")
            for p in parts:
                if p != "forwarded":
                    bump(e["via"], p)
    return counts


def _count_text(line: Lifeline, c: dict[str, int], w: dict[str, str]) -> str:
    n = c.get
    if line["role"] == "link":
        return (f"{w['forwarded']} {n('crossed', 0)} · ✕ {n('lost', 0)} · ×2 "
                f"{n('duplicated', 0)} · ⇄ {n('reordered', 0)} · ↯ {n('corrupted', 0)} · "
                f"{w['delayed']} {n('delayed', 0)}")
    if line["role"] == "server":
        return (f"{w['received']} {n('received', 0)} · {w['sent']} {n('sent', 0)} · "
                f"{w['joins']} {n('joins', 0)} · {w['expiries']} {n('expiries', 0)}")
    return f"{w['sent']} {n('sent', 0)} · {w['received']} {n('received', 0)}"


def _fate_text(e: Event, w: dict[str, str]) -> str:
    parts = fates(e["fate"])
    out = []
    if parts[0].startswith("dropped"):
        out.append(f"{w['dropped_by_server']} ({parts[0][8:]})")
    elif parts[0] in _ENDS:
        out.append(w[parts[0]])
    if "duplicated" in parts:
        out.append("×2 " + w["duplicated"])
    if "reordered" in parts:
        out.append("⇄ " + w["reordered"])
    if "corrupted" in parts:
        out.append("↯ " + w["corrupted"])
    if "delayed" in parts and "delay" in e:
        out.append(f"{w['delayed']} {round(e['delay'] * 1000)} ms")
    return " · ".join(out)


def _label(e: Event, w: dict[str, str]) -> str:
    kind = str(w.get(e["kind"], e["kind"]))
    return kind if e["kind"] == "heartbeat" or not e.get("preview") else f"{kind} “{e['preview']}”"


def _row(svg: _Svg, e: Event, r: int, xs: dict[str, float], y_of: Any, done: list[float],
         w: dict[str, str], placed: dict[tuple[int, int], str]) -> None:
    parts = fates(e["fate"])
    classes = " ".join(["ev", "kind-" + e["kind"], *(p for p in parts if ":" not in p)])
    svg.parts.append(f'<g class="{escape(classes)}" data-id="{e.get("id", r)}">')
    y, xs1, xd = y_of(r), xs[e["src"]], xs[e["dst"]]

    def place(x: float, at: float, text: str) -> None:
        key = (round(x), round(at / 6))
        if placed.get(key) == text:
            return
        if key in placed:
            at -= 11
        placed[key] = text
        svg.el("text", text, class_="label", x=x, y=at, text_anchor="middle")

    fate = _fate_text(e, w)
    ended = parts[0] in _ENDS or parts[0].startswith("dropped")
    if e["kind"] in ("join", "expire"):
        svg.el("line", class_="connector", x1=xs1, y1=y, x2=xd, y2=y)
        svg.el("circle", class_="mark " + e["kind"], cx=xd, cy=y, r=5.5)
        left = xd > xs1
        svg.el("text", f"{w[e['kind']]} {e['src']}", class_="mark-label",
               x=xd + (-10 if left else 10), y=y + 4, text_anchor="end" if left else "start")
    elif e.get("via") in xs:
        xl = xs[e["via"]]
        y0 = _start_y(e["t"], r, done, y_of)
        svg.el("line", class_="arrow in", x1=xs1, y1=y0, x2=xl, y2=y0)
        if "duplicated" not in parts:
            place((xs1 + xl) / 2, y0 - 5, _label(e, w))
        if ended:
            svg.el("text", "✕", class_="x", x=xl, y=y0 + 6, text_anchor="middle")
        else:
            svg.el("line", class_="arrow out", x1=xl, y1=y0, x2=xd, y2=y)
            _head(svg, xl, y0, xd, y)
        if fate:
            right = xd >= xl
            if y0 == y or ended:
                x, anchor = xl + (8 if right else -8), "start" if right else "end"
            else:
                x, anchor = xd + (-12 if right else 12), "end" if right else "start"
            svg.el("text", fate, class_="fate", x=x, y=y - 5, text_anchor=anchor)
    else:
        svg.el("line", class_="arrow", x1=xs1, y1=y, x2=xd, y2=y)
        place((xs1 + xd) / 2, y - 5, _label(e, w))
        if ended:
            svg.el("text", "✕", class_="x", x=xd, y=y + 6, text_anchor="middle")
        else:
            _head(svg, xs1, y, xd, y)
            if e["kind"] == "quit" and e["dst"] == "server":
                svg.el("circle", class_="mark leave", cx=xd, cy=y, r=4.5)
        if fate:
            right = xd > xs1
            svg.el("text", fate, class_="fate", x=xd + (-8 if right else 8), y=y - 5,
                   text_anchor="end" if right else "start")
    svg.parts.append("</g>")


def _start_y(at: float, r: int, done: list[float], y_of: Any) -> float:
    """As the page's startY: between the rows done before and after ``at``."""
    k = next((i for i in range(r + 1) if done[i] >= at), r)
    if k == r:
        return float(y_of(r))
    if k == 0:
        return float(y_of(0) - ROW / 2)
    before, after = done[k - 1], done[k]
    frac = (at - before) / (after - before) if after > before else 0.5
    return float(y_of(k - 1) + ROW * min(0.75, max(0.25, frac)))


def _head(svg: _Svg, x1: float, y1: float, x2: float, y2: float) -> None:
    a = math.atan2(y2 - y1, x2 - x1)

    def p(da: float) -> str:
        return f"{x2 - 8 * math.cos(a + da):.1f},{y2 - 8 * math.sin(a + da):.1f}"

    svg.el("path", class_="tip", d=f"M{x2:.1f},{y2:.1f} L{p(0.42)} L{p(-0.42)} Z")
