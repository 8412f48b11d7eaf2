"""udplab.view: the events a page reads at /events, the HTTP server's lifetime, the event shape
(tests/test_view_browser.py drives the page itself in Chromium)."""

from __future__ import annotations

import gc
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import udplab
from conftest import ipv6_available, wait_until
from udplab.web import View, view
from udplab.web.events import Shaper, classify, fates, preview

LINK_FATES = ("lost", "duplicated", "reordered", "corrupted", "delayed", "queue_dropped",
              "forwarded")


class Page:
    """What a browser does with /events: one connection, every item parsed as it comes."""

    def __init__(self, url: str, batch: bool = False) -> None:
        host, port = url.split("//")[1].strip("/").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        self.conn.request("GET", "/events?batch" if batch else "/events")
        self.response = self.conn.getresponse()
        self.items: list[tuple[str, dict[str, Any]]] = []
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        kind, data = "message", ""
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif not line and data:
                    self.items.append((kind, json.loads(data)))
                    kind, data = "message", ""
        except OSError:
            pass
        self.ended.set()

    def events(self) -> list[dict[str, Any]]:
        """The events, whether one came per message or a run of them as an array."""
        out: list[dict[str, Any]] = []
        for kind, data in list(self.items):
            if kind == "message":
                out.append(data)
            elif kind == "events":
                out.extend(data)
        return out

    def close(self) -> None:
        self.response.close()
        self.conn.close()


def test_every_datagram_the_lossy_link_counts_reaches_the_page_with_its_fate() -> None:
    server = udplab.ChatS("127.0.0.1", 0, 5.0)
    server.start()
    link = udplab.Link(server.addr, loss=0.2, duplicate=0.1, reorder=0.1, corrupt=0.1,
                       delay=0.004, jitter=0.002, seed=22)
    link.start()
    clients = [udplab.ChatC(*link.addr, name=name, interval=0.05) for name in ("ann", "bo")]
    # The rate budget out of the way: this test counts every datagram, and under load the
    # run stretches, heartbeats add up, and a budget of 1,000 a second dropped some (failed
    # 2 in about 25 runs on a loaded machine).
    with view(server, link, *clients, rate=1_000_000) as v:
        page = Page(v.url)
        for c in clients:
            c.start()
        for i in range(60):
            for c in clients:
                c.send(f"{c.name} {i}".encode())
            time.sleep(0.002)
        for c in clients:
            c.stop()
        wait_until(lambda: link.stats()["up"]["queued"] + link.stats()["down"]["queued"] == 0)
        stats = link.stats()
        copies = sum(stats[d][k] for d in ("up", "down") for k in
                     ("lost", "queue_dropped", "refused", "forwarded", "send_errors"))
        wait_until(lambda: sum(1 for e in page.events() if e.get("via")) == copies
                   or v.stats()["dropped"] > 0)
        assert v.stats()["dropped"] == 0, v.stats()
        events = [e for e in page.events() if e.get("via") == "link"]
        link.stop()
        server.stop()
    page.close()
    seen = Counter(part for e in events for part in fates(e["fate"]))
    for fate in LINK_FATES:
        assert seen[fate] == stats["up"][fate] + stats["down"][fate], fate
    assert seen["lost"] > 0 and seen["duplicated"] > 0 and seen["corrupted"] > 0
    assert {e["src"] for e in events if e["kind"] == "message"} == {"ann", "bo"}
    assert {e["dst"] for e in events if e["kind"] == "broadcast"} == {"ann", "bo"}
    up = [e for e in events if e["src"] in ("ann", "bo")]
    assert len(up) == stats["up"]["received"] + stats["up"]["duplicated"]
    assert all(e["delay"] >= 0 for e in events if "delay" in e)
    assert {"t", "src", "dst", "kind", "fate", "size", "preview"} <= set(events[0])


def test_a_chat_without_a_link_shows_joins_messages_broadcasts_and_leaves() -> None:
    server = udplab.ChatS("127.0.0.1", 0, 5.0)
    server.start()
    alice = udplab.ChatC(*server.addr, name="alice", interval=None)
    with view(server, alice) as v:
        alice.start()
        alice.send("你好, <b>world</b>\x1b[31m and a long tail past the preview".encode())
        alice.recv(timeout=5)
        alice.stop()
        wait_until(lambda: any(e["kind"] == "quit" for e in v.events()))
        events = v.events()
        lines = v.lifelines()
    server.stop()
    kinds = [(e["kind"], e["src"], e["dst"]) for e in events]
    assert kinds == [("join", "alice", "server"), ("message", "alice", "server"),
                     ("broadcast", "server", "alice"), ("quit", "alice", "server")]
    assert {e["fate"] for e in events} == {"delivered"}
    message = events[1]
    assert message["preview"] == "你好, <b>world</b>\\x1b[31m…"
    assert message["size"] > 40
    assert {(line["name"], line["role"]) for line in lines} == {("server", "server"),
                                                                 ("alice", "client")}


def test_a_client_alone_shows_its_own_datagrams() -> None:
    server = udplab.ChatS("127.0.0.1", 0, 5.0)
    server.start()
    bob = udplab.ChatC(*server.addr, interval=None)
    with view(bob) as v:
        bob.start()
        bob.send(b"hi")
        bob.recv(timeout=5)
        wait_until(lambda: len(v.events()) == 2)
        sent, received = v.events()
        bob.stop()
    server.stop()
    assert (sent["kind"], received["kind"]) == ("message", "broadcast")
    assert sent["src"] == received["dst"] == "{}:{}".format(*bob.addr[:2])
    assert {line["role"] for line in v.lifelines()} == {"client", "server"}


def test_a_page_that_asks_for_batches_gets_the_same_events_in_the_same_order() -> None:
    server = udplab.ChatS("127.0.0.1", 0, 5.0)
    server.start()
    clients = [udplab.ChatC(*server.addr, name=name, interval=None) for name in ("ann", "bo")]
    with view(server) as v:
        one, batched = Page(v.url), Page(v.url, batch=True)
        wait_until(lambda: v.stats()["pages"] == 2)
        for c in clients:
            c.start()
        for i in range(200):
            clients[i % 2].send(b"m%d" % i)
        wait_until(lambda: server.stats()["messages"] == 200)
        wait_until(lambda: len(v.events()) == 2 + 200 + server.stats()["sent"])
        made = v.events()
        wait_until(lambda: len(batched.events()) == len(one.events()) == len(made))
        arrays = [d for k, d in batched.items if k == "events"]
        singles = [d for k, d in batched.items if k == "message"]
        for c in clients:
            c.stop()
    server.stop()
    one.close()
    batched.close()
    assert batched.events()[:len(made)] == one.events()[:len(made)] == made
    assert [e["id"] for e in made] == list(range(1, len(made) + 1))
    assert not singles
    assert len(arrays) < len(made) / 4, "events come in runs, not one per message"


def test_a_flood_shows_rate_events_a_second_steadily() -> None:
    rate = 200
    server = udplab.ChatS("127.0.0.1", 0, 5.0)
    server.start()
    client = udplab.ChatC(*server.addr, interval=None, queue=10)
    with view(server, rate=rate) as v:
        client.start()
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 2.0:
            for _ in range(100):
                client.send(b"m%d" % sent)
                sent += 1
            time.sleep(0.001)
        elapsed = time.monotonic() - started
        wait_until(lambda: server.stats()["messages"] == sent, timeout=10)
        made, dropped = v.stats()["events"], v.stats()["dropped"]
        times = [e["t"] for e in v.events()]
        client.stop()
    server.stop()
    assert 2 * sent > 10 * rate * elapsed, "the client must flood the view"
    # A second's worth at once, then ``rate`` a second: never a burst of several seconds' worth.
    assert made <= rate * (elapsed + 1.3), (made, elapsed)
    assert dropped > made
    # Steadily: the flood's last half second is shown too, not a trickle after a burst.
    last = max(times)
    assert sum(1 for t in times if t > last - 0.5) >= rate * 0.5 / 4, times[-20:]


def test_a_page_that_never_reads_never_slows_the_chat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("udplab.web.PAGE_QUEUE", 100)
    server = udplab.ChatS("127.0.0.1", 0, 5.0)
    server.start()
    client = udplab.ChatC(*server.addr, interval=None, queue=100_000)
    with view(server, rate=10**6) as v:  # no limit: the page must fall behind
        stuck = socket.create_connection(v.addr[:2])
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: v.stats()["pages"] == 1)
        client.start()
        n = 30_000  # more events than the kernel's socket buffers hold
        for i in range(n):
            client.send(b"m%d" % i)
            if i % 1000 == 999:  # UDP has no flow control: let the server keep up
                wait_until(lambda i=i: server.stats()["messages"] > i - 1000, timeout=30)
        wait_until(lambda: server.stats()["messages"] == n, timeout=30)
        wait_until(lambda: v.stats()["events"] + v.stats()["dropped"] >= 2 * n, timeout=30)
        stats = v.stats()
        stuck.close()
        client.stop()
    server.stop()
    assert stats["page_dropped"] > 0, stats
    assert client.stats()["received"] == n or client.stats()["dropped"] == 0


def test_lifetime_port_freed_idempotent_stop_and_a_clear_end_for_pages() -> None:
    server = udplab.ChatS("127.0.0.1", 0, 5.0)
    v = View(server, daemon=True)
    assert not v.running and v.events() == []
    v.start()
    assert v.running and v.url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError, match="already running"):
        v.start()
    page = Page(v.url)
    wait_until(lambda: page.items)
    port = v.addr[1]
    started = time.monotonic()
    v.stop()
    v.stop()
    assert time.monotonic() - started < 3
    assert page.ended.wait(5)
    assert page.items[-1][0] == "end"
    page.close()
    with view(server, port=port) as again:  # the port is free (as for any server, the
        assert again.addr[1] == port         # closed connections' TIME_WAIT does not count)
    assert not v.running
    assert "iframe" not in v._repr_html_()


def test_the_page_and_its_files_are_served_and_nothing_else() -> None:
    with view(udplab.ChatS("127.0.0.1", 0, 5.0)) as v:
        with urllib.request.urlopen(v.url, timeout=5) as r:
            html = r.read().decode()
            policy = r.headers["Content-Security-Policy"]
        assert "app.js" in html and "http" not in html.replace(v.url, "")
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        for name in ("app.js", "style.css", "ladder.css", "strings.json"):
            with urllib.request.urlopen(v.url + name, timeout=5) as r:
                assert r.status == 200 and r.read()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(v.url + "../pyproject.toml", timeout=5)
        assert err.value.code == 404
        err.value.close()
        assert f'src="{v.url}"' in v._repr_html_()


def test_the_page_text_exists_in_both_languages() -> None:
    path = Path(udplab.__file__).parent / "web" / "static" / "strings.json"
    strings = json.loads(path.read_text(encoding="utf-8"))
    assert set(strings) == {"en", "zh"}
    assert set(strings["en"]) == set(strings["zh"])
    for key, text in strings["zh"].items():
        assert text and text != strings["en"][key] or key in ("title",) or text.isascii(), key
    assert all("\n" not in text for lang in strings.values() for text in lang.values())


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback here")
def test_ipv6_loopback() -> None:
    with view(udplab.ChatS("::1", 0, 5.0), host="::1") as v:
        assert v.url.startswith("http://[::1]:")
        with urllib.request.urlopen(v.url, timeout=5) as r:
            assert r.status == 200


def test_bound_elsewhere_warns() -> None:
    with pytest.warns(UserWarning, match="anyone who can reach this machine"):
        v = view(udplab.ChatS("127.0.0.1", 0, 5.0), host="0.0.0.0")
    v.stop()


@pytest.mark.parametrize("args, error, match", [
    ((), TypeError, "needs something to show"),
    ((42,), TypeError, "not int"),
    (("missing.pcap",), FileNotFoundError, "missing.pcap"),
])
def test_bad_input_names_what_was_wrong(args: tuple[Any, ...], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        View(*args)


def test_a_capture_and_a_live_object_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    path.write_bytes(b"")
    with pytest.raises((TypeError, ValueError)):
        View(str(path), udplab.ChatS("127.0.0.1", 0, 5.0))


def test_a_replay_of_the_servers_capture_draws_the_same_ladder(tmp_path: Path) -> None:
    path = tmp_path / "chat.pcap"
    server = udplab.ChatS("127.0.0.1", 0, 5.0, capture=path)
    server.start()
    clients = [udplab.ChatC(*server.addr, interval=None) for _ in range(2)]
    with view(server, *clients) as live:
        for c in clients:
            c.start()
        for i, c in enumerate(clients):
            c.send(b"hello %d" % i)
        for c in clients:
            c.stop()
        wait_until(lambda: sum(e["kind"] == "quit" for e in live.events()) == 2)
        server.stop()
        drawn = [(e["src"], e["dst"], e["kind"], e["preview"]) for e in live.events()]
    with view(str(path)) as replay:
        page = Page(replay.url)
        wait_until(lambda: len(page.events()) == len(drawn))
        replayed = [(e["src"], e["dst"], e["kind"], e["preview"]) for e in page.events()]
        status = [d for k, d in page.items if k == "status"][0]
        page.close()
    assert replayed == drawn
    assert status["replay"] is True


@pytest.mark.parametrize("payload, size, to_server, kind", [
    (b"HB", 2, True, "heartbeat"), (b"HB\n", 3, True, "heartbeat"),
    (b"quit\r\n", 6, True, "quit"), (b"HB", 40, True, "message"), (b"hi", 2, True, "message"),
    (b"ACKhi", 5, False, "broadcast"), (b"x", 1, False, "datagram"), (b"", 0, True, "datagram"),
])
def test_classify_reads_a_datagram_as_the_server_does(payload: bytes, size: int,
                                                      to_server: bool, kind: str) -> None:
    assert classify(payload, size, to_server) == kind


def test_preview_is_short_escaped_and_cut_on_a_character() -> None:
    assert preview(b"hi") == "hi"
    assert preview(b"\x00\n\xff") == "\\x00\\n\\xff"
    assert preview("你好".encode()[:4], size=6) == "你…"
    assert len(preview(b"x" * 100)) == 25


def test_shaper_shows_a_datagram_through_a_link_once() -> None:
    server, link, client, upstream = ("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3), \
        ("127.0.0.1", 4)
    shaper = Shaper(servers={server: ("server", (b"HB", b"quit", b"ACK"))},
                    links={link: ("link", server)}, clients={client: "ann"},
                    resolve=lambda: {upstream: client})
    events = shaper.add([
        (1.0, 1.5, "up", "forwarded+delayed", client, server, 2, b"hi"),
        (1.5, None, "join", "delivered", upstream, server, 0, b""),
        (1.5, None, "message", "delivered", upstream, server, 2, b"hi"),
        (1.0, None, "sent", "delivered", client, link, 2, b"hi"),
    ])
    assert [(e["kind"], e["src"], e["dst"]) for e in events] == [
        ("message", "ann", "server"), ("join", "ann", "server")]
    assert events[0]["delay"] == 0.5 and events[0]["via"] == "link"


def _svg(ladder: udplab.Ladder) -> ElementTree.Element:
    return ElementTree.fromstring(ladder.svg)


def _groups(root: ElementTree.Element) -> list[ElementTree.Element]:
    return [g for g in root.iter("{http://www.w3.org/2000/svg}g")
            if "ev" in g.get("class", "").split()]


def test_ladder_draws_one_row_per_event_with_a_cross_for_a_loss() -> None:
    events = [
        {"id": 1, "t": 1.0, "src": "ann", "dst": "server", "kind": "join", "fate": "delivered",
         "size": 0, "preview": ""},
        {"id": 2, "t": 1.1, "src": "ann", "dst": "server", "kind": "message", "fate": "lost",
         "size": 5, "preview": "<b>&", "via": "link"},
        {"id": 3, "t": 1.2, "src": "ann", "dst": "server", "kind": "message",
         "fate": "forwarded+delayed", "size": 2, "preview": "hi", "via": "link", "delay": 0.2},
    ]
    drawn = udplab.ladder(events, lang="zh")
    root = _svg(drawn)  # well-formed: the preview's markup is text
    groups = _groups(root)
    assert [g.get("data-id") for g in groups] == ["1", "2", "3"]
    assert "lost" in groups[1].get("class", "")
    texts = "".join(root.itertext())
    assert "✕" in texts and "<b>&" in texts and "消息" in texts and "延迟 200 ms" in texts
    assert drawn._repr_svg_() == drawn.svg


def test_ladder_of_a_view_a_capture_and_an_objects_own_history(tmp_path: Path) -> None:
    path = tmp_path / "chat.pcap"
    server = udplab.ChatS("127.0.0.1", 0, 5.0, capture=path)
    server.start()
    link = udplab.Link(server.addr, loss=0.5, seed=3)
    link.start()
    client = udplab.ChatC(*link.addr, name="ann", interval=None)
    with view(server, link, client) as v:
        client.start()
        for i in range(10):
            client.send(b"m%d" % i)
        wait_until(lambda: sum(e["kind"] == "message" for e in v.events()) == 10)
        client.stop()
        link.stop()
        server.stop()
    from_view = udplab.ladder(v)
    from_server = udplab.ladder(server)
    assert from_server.events == from_view.events == v.events()[-len(from_view.events):]
    assert len(_groups(_svg(from_view))) == len(from_view.events)
    replay = udplab.ladder(path)
    assert {e["kind"] for e in replay.events} >= {"join", "message", "broadcast"}
    v = None  # type: ignore[assignment]  # the last reference: the view is let go
    gc.collect()
    own = udplab.ladder(link)  # no view has its events any more: its own history
    assert own.events and {e["via"] for e in own.events} == {"link"}
    lost = sum("lost" in fates(e["fate"]) for e in own.events)
    assert lost == link.stats()["up"]["lost"] + link.stats()["down"]["lost"]
    out = tmp_path / "ladder.svg"
    own.save(out)
    assert out.read_text(encoding="utf-8") == own.svg


@pytest.mark.parametrize("kwargs, match", [
    ({"lang": "fr"}, "lang must be"), ({"rows": 0}, "rows must be"),
])
def test_ladder_bad_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        udplab.ladder([], **kwargs)


def test_ladder_names_an_event_that_lacks_a_field() -> None:
    with pytest.raises(ValueError, match=r"lacks \['fate'"):
        udplab.ladder([{"t": 1, "src": "a", "dst": "b", "kind": "message"}])
