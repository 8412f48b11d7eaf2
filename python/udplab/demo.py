"""``udplab demo``: the tutorial's programs on loopback, logged in its format; the narration
in the learner's language (see :mod:`udplab._i18n`), the core's log lines in English."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Callable

import udplab

from ._i18n import _

FORMAT = "%(asctime)s %(threadName)s %(message)s"
log = logging.getLogger("udplab.demo")


def wait_until(what: str, condition: Callable[[], bool], timeout: float) -> None:
    """Poll ``condition`` until true; fail loudly rather than hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"demo: gave up waiting for {what} after {timeout} s")
        time.sleep(0.02)


def echo_exchange() -> None:
    """Sections 1 and 2: a server answers b'ack' + data to one client."""
    log.info(_("-- sections 1-2: a UDP server and client --"))
    server = udplab.socket(type=udplab.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = udplab.socket(type=udplab.SOCK_DGRAM)
    server.settimeout(5)
    client.settimeout(5)
    with server, client:
        client.sendto(b"msg", server.getsockname())
        data, raddr = server.recvfrom(1024)
        log.info(_("server got %r from %s:%d"), data, *raddr[:2])
        server.sendto(b"ack" + data, raddr)
        log.info(_("client got %r"), client.recv(1024))


def group_chat(inval: float) -> None:
    """Sections 3 and 4: three clients talk; one goes silent and expires, one quits."""
    log.info(_("-- sections 3-4: group chat, heartbeat every %.2f s, expiry after %.1f s --"),
             inval / 3, inval)
    with udplab.ChatS("127.0.0.1", 0, inval) as server:
        ip, port = server.addr[:2]
        clients: list[udplab.ChatC] = []
        try:
            for name in ("alice", "bob", "carol"):
                c = udplab.ChatC(ip, port, interval=inval / 3, name=name)
                c.start()
                clients.append(c)
            alice, bob, carol = clients
            wait_until("three clients to join", lambda: len(server.raddrs) == 3, 5)
            for c in clients:
                assert c.addr is not None  # started
                log.info(_("%s is at %s:%d"), c.name, *c.addr[:2])
            alice.send(b"hello, everyone")
            bob.send(b"hi alice")
            carol.send(b"bye for now")
            for c in clients:  # every broadcast reaches every client
                for _reply in range(3):
                    c.recv(timeout=5)
            log.info(_("carol stops her heartbeat and goes silent"))
            carol.hb(None)
            wait_until("carol to expire", lambda: carol.addr not in server.raddrs, inval + 2)
            log.info(_("bob leaves"))
            bob.stop()
            wait_until("bob to leave", lambda: bob.addr not in server.raddrs, 5)
            alice.send(b"anyone here?")
            alice.recv(timeout=5)
            log.info(_("carol comes back just to say quit, but the server had already dropped her"))
            carol.stop()
            wait_until("carol's quit", lambda: server.stats()["dropped"]["unknown_quit"] == 1, 5)
            stats = server.stats()
            dropped = {k: v for k, v in stats.pop("dropped").items() if v}
            log.info(_("server stats: %s, dropped: %s"), {k: v for k, v in stats.items() if v},
                     dropped)
        finally:
            for c in clients:
                c.stop()


def short_inval(text: str) -> float:
    """``--inval``: a number of seconds in (0, 5]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("not a number of seconds: {text!r}").format(
            text=text)) from None
    if not 0 < value <= 5:
        raise argparse.ArgumentTypeError(
            _("must be in (0, 5] so the demo ends quickly, got {text}").format(text=text))
    return value


def run(inval: float) -> int:
    """The whole demo: the echo exchange, then the group chat."""
    logging.basicConfig(format=FORMAT, level=logging.INFO)
    echo_exchange()
    group_chat(inval)
    return 0
