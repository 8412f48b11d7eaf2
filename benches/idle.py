"""Idle cost: the CPU a udplab object uses while nothing happens, as a share of one core.

Scenarios (``--scenario``, several allowed; default all):

- ``chat``: a ``ChatS`` with no client.
- ``chat-clients``: a ``ChatS`` with N live clients (one heartbeat each, ``inval`` long enough
  that none expires), no chat traffic.
- ``link``: a ``Link`` with no client.
- ``link-clients``: a ``Link`` with N mapped clients (one datagram each, so the link holds N
  sockets towards its target), no traffic after.

Each scenario runs in a fresh interpreter (``--child``): it sets the object up, waits until the
setup traffic is handled, then measures the CPU time of the whole process over a quiet window.
``--rounds R`` repeats the scenarios R times, interleaved, and prints each figure's median and
range. Which path the loaded build waits on (``udplab._core._PORTABLE``) is printed; to compare
builds, point ``PYTHONPATH`` at another one (``pip install --target DIR`` of its wheel).

Run: ``python benches/idle.py [-n 1000] [--window 5] [--rounds 3] [--scenario link-clients]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import subprocess
import sys
import time

SCENARIOS = ("chat", "chat-clients", "link", "link-clients")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_for(condition: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} within {timeout} s: no")
        time.sleep(0.01)


def measure(window: float) -> float:
    """Percent of one core used by this process over ``window`` seconds of sleep."""
    before, started = cpu_seconds(), time.monotonic()
    time.sleep(window)
    return 100 * (cpu_seconds() - before) / (time.monotonic() - started)


def clients(n: int) -> list[socket.socket]:
    made = []
    for _ in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind(("127.0.0.1", 0))
        made.append(c)
    return made


def child(scenario: str, n: int, window: float) -> dict[str, object]:
    import udplab

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 3 * n + 200)), hard))
    result: dict[str, object] = {"scenario": scenario, "portable": udplab._core._PORTABLE}
    if scenario.startswith("chat"):
        count = n if scenario == "chat-clients" else 0
        with udplab.ChatS("127.0.0.1", 0, window * 4 + 10) as server:
            socks = clients(count)
            for c in socks:
                c.sendto(b"HB", server.addr)
            wait_for(lambda: len(server.raddrs) == count, f"{count} clients joined")
            result["percent"] = measure(window)
            assert len(server.raddrs) == count
            for c in socks:
                c.close()
        result["sockets"] = 1
    else:
        count = n if scenario == "link-clients" else 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
            target.bind(("127.0.0.1", 0))
            target.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            with udplab.Link(target.getsockname(), idle=window * 4 + 10,
                             max_clients=max(count, 1)) as link:
                socks = clients(count)
                for c in socks:
                    c.sendto(b"hello", link.addr)
                wait_for(lambda: link.stats()["up"]["forwarded"] == count,
                         f"{count} clients mapped")
                result["percent"] = measure(window)
                result["sockets"] = 1 + link.stats()["clients"]
                for c in socks:
                    c.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="clients (default 1000)")
    parser.add_argument("--window", type=float, default=5.0, help="seconds measured (default 5)")
    parser.add_argument("--rounds", type=int, default=1, help="repetitions, interleaved")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS,
                        help="what to measure (default: all)")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n, args.window)))
        return
    scenarios = args.scenario or list(SCENARIOS)
    runs: dict[str, list[float]] = {s: [] for s in scenarios}
    portable = None
    for _ in range(args.rounds):
        for s in scenarios:
            done = subprocess.run(
                [sys.executable, __file__, "--child", s, "-n", str(args.n),
                 "--window", str(args.window)],
                capture_output=True, text=True, timeout=args.window + 120, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            portable = result["portable"]
            runs[s].append(result["percent"])
            print(f"  {s}: {result['percent']:.3f}% of a core ({result['sockets']} sockets)",
                  file=sys.stderr, flush=True)
    path = "portable" if portable else "unix (poll)"
    print(f"path: {path}; N={args.n}; window {args.window} s; {args.rounds} round(s)")
    for s, values in runs.items():
        print(f"{s:>13}: median {statistics.median(values):.3f}% of a core "
              f"(min {min(values):.3f}, max {max(values):.3f})")


if __name__ == "__main__":
    main()
