"""Idle cost of a udplab chat server: 1000 live clients, no chat traffic.

Joins N clients (one heartbeat each; inval long enough that none expires), then measures the
CPU time the whole process uses over a quiet window. Run: ``python benches/idle.py [-n 1000]``.
"""

from __future__ import annotations

import argparse
import resource
import socket
import time

import udplab


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="clients (default 1000)")
    parser.add_argument("--window", type=float, default=5.0, help="seconds measured")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.n + 100)), hard))
    clients = []
    with udplab.ChatS("127.0.0.1", 0, args.window * 4) as server:
        try:
            for _ in range(args.n):
                c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                c.bind(("127.0.0.1", 0))
                c.sendto(b"HB", server.addr)
                clients.append(c)
            deadline = time.monotonic() + 10
            while len(server.raddrs) < args.n and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(server.raddrs) == args.n, "clients did not all join"
            before, started = cpu_seconds(), time.monotonic()
            time.sleep(args.window)
            used, elapsed = cpu_seconds() - before, time.monotonic() - started
            assert len(server.raddrs) == args.n
        finally:
            for c in clients:
                c.close()
    print(f"idle server, {args.n} live clients: {used:.4f} CPU s over {elapsed:.2f} s "
          f"= {100 * used / elapsed:.3f}% of a core")


if __name__ == "__main__":
    main()
