"""`udplab server --view`, `udplab link --view` and `udplab view FILE`, run in a
pseudo-terminal as a person runs them: the address printed serves the page and its events."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pexpect
import udplab
from conftest import wait_until


def spawn(*args: str, lang: str = "en") -> pexpect.spawn:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TERM="xterm", UDPLAB_LANG=lang)
    return pexpect.spawn(sys.executable, ["-m", "udplab", *args], env=env, encoding="utf-8",
                         timeout=15, dimensions=(24, 200))


def first_events(url: str, n: int) -> list[dict[str, object]]:
    """The first ``n`` events a page reads from ``url``'s /events."""
    found: list[dict[str, object]] = []
    with urllib.request.urlopen(url + "events", timeout=10) as stream:
        for raw in stream:
            line = raw.decode()
            if line.startswith("data: {\"id\""):
                found.append(json.loads(line[6:]))
                if len(found) == n:
                    break
    return found


def stop(child: pexpect.spawn) -> int:
    child.sendintr()
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus is not None
    return int(child.exitstatus)


def test_server_view_prints_the_address_of_a_live_ladder() -> None:
    child = spawn("server", "--port", "0", "--view")
    try:
        child.expect(r"udplab server listening on 127\.0\.0\.1:(\d+)")
        port = int(child.match[1])
        child.expect(r"live view: (http://127\.0\.0\.1:\d+/) \(open it in a browser\)")
        url = child.match[1]
        with urllib.request.urlopen(url, timeout=10) as page:
            assert b"app.js" in page.read()
        alice = udplab.ChatC("127.0.0.1", port, name="alice", interval=None)
        alice.start()
        alice.send(b"hello")
        events = first_events(url, 3)
        alice.stop()
        assert [e["kind"] for e in events] == ["join", "message", "broadcast"]
        assert stop(child) == 0
    finally:
        child.close(force=True)


def test_link_view_shows_the_links_fates(tmp_path: Path) -> None:
    server = udplab.ChatS("127.0.0.1", 0, 5.0)
    server.start()
    child = spawn("link", "127.0.0.1", str(server.addr[1]), "--loss", "1,0", "--view")
    try:
        child.expect(r"udplab link on 127\.0\.0\.1:(\d+)")
        port = int(child.match[1])
        child.expect(r"live view: (http://127\.0\.0\.1:\d+/)")
        url = child.match[1]
        client = udplab.ChatC("127.0.0.1", port, interval=None)
        client.start()
        client.send(b"lost on the way")
        (event,) = first_events(url, 1)
        client.stop()
        assert (event["kind"], event["fate"], event["via"]) == ("message", "lost", "link")
        assert stop(child) == 0
    finally:
        child.close(force=True)
        server.stop()


def test_view_replays_a_capture_file(tmp_path: Path) -> None:
    path = tmp_path / "chat.pcap"
    server = udplab.ChatS("127.0.0.1", 0, 5.0, capture=path)
    server.start()
    client = udplab.ChatC(*server.addr, interval=None)
    client.start()
    client.send(b"hi")
    client.recv(timeout=5)
    client.stop()
    wait_until(lambda: server.stats()["quits"] == 1)
    server.stop()
    child = spawn("view", str(path), lang="zh")
    try:
        child.expect(r"udplab view 在 (http://127\.0\.0\.1:\d+/) 回放 ")
        events = first_events(child.match[1], 4)
        assert [e["kind"] for e in events] == ["join", "message", "broadcast", "quit"]
        assert stop(child) == 0
    finally:
        child.close(force=True)


def test_view_of_a_missing_file_exits_2_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "udplab", "view", str(tmp_path / "no.pcap")],
                          capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, UDPLAB_LANG="en"))
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert re.search(r"cannot replay .*no\.pcap: ", done.stderr), done.stderr
