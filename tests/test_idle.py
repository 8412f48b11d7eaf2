"""What a udplab object costs while nothing happens, on either platform path (scripts/check runs
this file on the default build and on the portable one, which Windows runs).

The figures for the record are measured by ``benches/idle.py`` (BENCHMARKS.md); these tests
only hold a ceiling far above them, so that a wait that polls in rounds again fails here.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import udplab
from conftest import process_cpu, wait_until

LO = "127.0.0.1"
WINDOW = 1.0


def idle_cpu() -> float:
    """CPU seconds this process uses over WINDOW seconds of sleep, as a share of a core."""
    before, started = process_cpu(), time.monotonic()
    time.sleep(WINDOW)
    return (process_cpu() - before) / (time.monotonic() - started)


def test_an_idle_server_sleeps() -> None:
    """Before, on the portable path, an idle ChatS woke every millisecond to try its socket:
    1.5-2.4 % of a core (now 0.03 %, as on the Unix path)."""
    with udplab.ChatS(LO, 0, 30):
        share = idle_cpu()
    assert share < 0.01, f"an idle ChatS used {100 * share:.2f}% of a core"


def test_an_idle_link_with_many_mapped_clients_sleeps() -> None:
    """Before, on the portable path, every millisecond a link tried a receive on each of its
    sockets: with 1,000 mapped clients 24-28 % of a core, with these 300 about 6 % (now 0.6 %
    and about 0.2 %, as on the Unix path: one poll over all of them per wake-up)."""
    clients = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
            target.bind((LO, 0))
            with udplab.Link(target.getsockname(), idle=60) as link:
                for _ in range(300):
                    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    clients.append(c)
                    c.bind((LO, 0))
                    c.sendto(b"map me", link.addr)
                wait_until(lambda: link.stats()["up"]["forwarded"] == 300, timeout=20)
                share = idle_cpu()
                assert link.stats()["clients"] == 300
    finally:
        for c in clients:
            c.close()
    assert share < 0.03, f"an idle link with 300 clients used {100 * share:.2f}% of a core"


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_a_blocked_receive_sleeps(timeout: float | None) -> None:
    """Before, on the portable path, a blocked ``recv`` slept at most 1 ms between two tries:
    1.0-1.9 % of a core (now 0.1-0.2 %: it polls, looking at ``close()`` every 20 ms; 0.04 %
    on the Unix path)."""
    with udplab.socket(udplab.AF_INET, udplab.SOCK_DGRAM) as s:
        s.bind((LO, 0))
        s.settimeout(timeout)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(s.recv(16)), daemon=True)
        reader.start()
        time.sleep(0.05)  # not measured: the thread starting and blocking
        share = idle_cpu()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"wake up", s.getsockname())
        reader.join(5)
        assert got == [b"wake up"]
    assert share < 0.005, f"a blocked recv used {100 * share:.2f}% of a core"
