"""Load on udplab.Link: a flood of a million datagrams at a rate-limited link.

As in tests/test_load.py, the measured process runs in a subprocess (this file is also a
script: ``python tests/test_link_load.py <scenario> ...`` prints one JSON line), every run is
bounded in count and time and stays on loopback. ``UDPLAB_LOAD_SCALE=N`` multiplies the flood.
The numbers are reported in RELIABILITY.md.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from test_load import LO, SCALE, kernel_drops, rss_kib

PAYLOAD = 1000
LIMIT = 1000
RATE = 2_000_000  # bytes/s: 2,000 datagrams/s leave, the rest queue up or are dropped


def send_flood(port: int, count: int, seconds: float) -> dict[str, Any]:
    """Sends ``count`` datagrams of PAYLOAD bytes to 127.0.0.1:``port`` as fast as it can, for
    at most ``seconds``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        data, addr, send = bytes(PAYLOAD), (LO, port), s.sendto
        sent, deadline = 0, time.monotonic() + seconds
        while sent < count and time.monotonic() < deadline:
            for _ in range(min(1000, count - sent)):
                send(data, addr)
            sent += min(1000, count - sent)
    return {"sent": sent}


def scenario_link_flood(count: int, seconds: int) -> dict[str, Any]:
    """A link with ``rate`` and ``limit`` in front of a target that never reads; a flood from
    another process; the peak memory while it lasts and the counts after stop."""
    import udplab

    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind((LO, 0))
    link = udplab.Link(target.getsockname(), rate=RATE, limit=LIMIT, seed=1)
    link.start()
    port = link.addr[1]
    rss = {"before": rss_kib()}
    peak = rss["before"]
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, rss_kib())

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    sender = subprocess.run([sys.executable, __file__, "send", str(port), str(count),
                             str(seconds)], capture_output=True, text=True, timeout=seconds + 30)
    took = time.monotonic() - started
    sent = json.loads(sender.stdout.splitlines()[-1])["sent"]
    # Everything the kernel did not drop reaches the link; wait until it has taken it all.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if link.stats()["up"]["received"] + kernel_drops(port) == sent:
            break
        time.sleep(0.01)
    drops = kernel_drops(port)
    t0 = time.monotonic()
    link.stop()
    stop_took = time.monotonic() - t0
    done.set()
    watcher.join()
    rss["peak"], rss["after"] = peak, rss_kib()
    target.close()
    return {"sent": sent, "kernel_drops": drops, "stats": link.stats(),
            "rss_kib": rss, "seconds": took,
            "stop_took": stop_took}


def main(argv: list[str]) -> None:
    mode, args = argv[0], [int(a) for a in argv[1:]]
    result = send_flood(*args) if mode == "send" else scenario_link_flood(*args)
    print(json.dumps(result), flush=True)


def run_scenario(*args: str, timeout: float) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_flood_at_a_rate_limited_link_memory_bounded_by_limit_accounting_exact() -> None:
    count = 1_000_000 * SCALE
    r = run_scenario("link_flood", str(count), str(60 * SCALE), timeout=120 * SCALE)
    up = r["stats"]["up"]
    print(f"\nlink flood: {r['sent']} sent in {r['seconds']:.1f} s, {up['received']} received, "
          f"{up['forwarded']} forwarded, {up['queue_dropped']} queue-dropped, "
          f"{up['flushed']} flushed; RSS KiB {r['rss_kib']}; stop {r['stop_took'] * 1000:.0f} ms")
    assert r["sent"] == count
    # What the kernel did not drop at the link's full socket, the link received.
    assert up["received"] + r["kernel_drops"] == r["sent"]
    # Every datagram the link took in is accounted for, exactly.
    ends = ("refused", "lost", "forwarded", "queue_dropped", "send_errors", "flushed", "queued")
    assert up["received"] + up["duplicated"] == sum(up[k] for k in ends)
    assert up["queued"] == 0 and up["flushed"] <= LIMIT
    assert up["lost"] == up["send_errors"] == up["duplicated"] == 0
    # The rate held: no more left than the rate allows in the time it ran (+ one queue).
    assert up["forwarded"] <= RATE / PAYLOAD * (r["seconds"] + 11) + LIMIT
    assert up["queue_dropped"] > up["received"] // 2
    # Memory: the queue holds at most LIMIT datagrams of PAYLOAD bytes; allow the same again
    # for allocator slack and 8 MiB for the interpreter's own churn. A queue without the bound
    # would have needed about count * PAYLOAD bytes (1 GB).
    growth_kib = r["rss_kib"]["peak"] - r["rss_kib"]["before"]
    assert growth_kib * 1024 <= 2 * LIMIT * PAYLOAD + (8 << 20), r["rss_kib"]
    assert r["stop_took"] < 0.5


if __name__ == "__main__":
    main(sys.argv[1:])
