"""udplab.aio against asyncio's own DatagramProtocol and asyncio-dgram: an echo round trip.

    python benches/aio_echo.py [--reps 5] [--quick] [--uvloop] [--out FILE]

Each contender runs the same program, written the way its documentation shows: an echo server
(one socket, every datagram sent back to its sender) and a client in another process.

  udplab.aio    ``async for data, addr in sock: await sock.sendto(data, addr)``; the client
                ``await sock.send(...)``, ``await sock.recv(...)`` on a connected socket
  asyncio       a ``DatagramProtocol`` whose ``datagram_received`` sends the datagram back; the
                client a protocol that completes a future per reply
  asyncio-dgram ``await server.recv()`` / ``await server.send(data, addr)``; the client
                ``await stream.send(...)``, ``await stream.recv()``
  udplab.aio-thread  udplab.aio on a loop without ``add_reader`` (what Windows' proactor loop
                is): the hand-off thread and ``call_soon_threadsafe`` instead of the loop
                watching the socket, to show what that design costs

Two loads, each a fresh server and client process per run, the server pinned to one CPU and
the client to another:

- latency: one task, 32-byte datagrams, one round trip at a time; p50 and p99 in µs;
- throughput: 64 tasks, each with its own connected socket, one round trip at a time each,
  for a fixed number of round trips; round trips per second.

The contenders run interleaved, ``--reps`` times, the order shifted by one each repetition;
the tables give medians (min-max) and ratios udplab.aio / the faster of asyncio and
asyncio-dgram, from this one invocation. ``--uvloop`` runs every contender on uvloop instead.
The machine's load (``os.getloadavg``) is printed before and after.

Needs ``pip install -r benches/requirements.txt`` (asyncio-dgram, uvloop) besides udplab.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

PAYLOAD = b"x" * 32
CONTENDERS = ["udplab.aio", "asyncio", "asyncio-dgram", "udplab.aio-thread"]


# ---------------------------------------------------------------------------------------------
# The programs under test


class _EchoProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class _ClientProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)


async def serve(kind: str, ready: Any) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def wait_for_stdin() -> None:  # closed: stop (a thread: not every loop has add_reader)
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set_result, None)

    threading.Thread(target=wait_for_stdin, daemon=True).start()
    if kind.startswith("udplab.aio"):
        import udplab.aio

        sock = await udplab.aio.bind(("127.0.0.1", 0))

        async def echo() -> None:
            async for data, addr in sock:
                await sock.sendto(data, addr)

        task = asyncio.ensure_future(echo())
        ready(sock.getsockname()[1])
        await stop
        sock.close()
        await task
    elif kind == "asyncio":
        transport, _ = await loop.create_datagram_endpoint(
            _EchoProtocol, local_addr=("127.0.0.1", 0))
        ready(transport.get_extra_info("sockname")[1])
        await stop
        transport.close()
    elif kind == "asyncio-dgram":
        import asyncio_dgram

        server = await asyncio_dgram.bind(("127.0.0.1", 0))

        async def echo_dgram() -> None:
            while True:
                data, addr = await server.recv()
                await server.send(data, addr)

        task = asyncio.ensure_future(echo_dgram())
        ready(server.sockname[1])
        await stop
        task.cancel()
        server.close()
    else:
        raise SystemExit(f"unknown contender {kind}")


async def client(kind: str, port: int, tasks: int, trips: int) -> list[float]:
    """Round trips of ``tasks`` concurrent tasks, ``trips`` each; every round trip's seconds."""
    addr = ("127.0.0.1", port)
    times: list[float] = []
    clock = time.perf_counter
    loop = asyncio.get_running_loop()

    if kind.startswith("udplab.aio"):
        import udplab.aio

        async def one() -> None:
            async with udplab.aio.connect(addr) as sock:
                for _ in range(trips):
                    started = clock()
                    await sock.send(PAYLOAD)
                    await sock.recv(2048)
                    times.append(clock() - started)
    elif kind == "asyncio":
        async def one() -> None:
            transport, protocol = await loop.create_datagram_endpoint(
                _ClientProtocol, remote_addr=addr)
            try:
                for _ in range(trips):
                    started = clock()
                    protocol.waiter = loop.create_future()
                    transport.sendto(PAYLOAD)
                    await protocol.waiter
                    times.append(clock() - started)
            finally:
                transport.close()
    elif kind == "asyncio-dgram":
        import asyncio_dgram

        async def one() -> None:
            stream = await asyncio_dgram.connect(addr)
            try:
                for _ in range(trips):
                    started = clock()
                    await stream.send(PAYLOAD)
                    await stream.recv()
                    times.append(clock() - started)
            finally:
                stream.close()
    else:
        raise SystemExit(f"unknown contender {kind}")

    await asyncio.gather(*(one() for _ in range(tasks)))
    return times


class _NoReaders(asyncio.SelectorEventLoop):
    """A loop without add_reader/add_writer, as Windows' proactor loop is."""

    def add_reader(self, *args: Any) -> None:  # type: ignore[override]
        raise NotImplementedError

    def add_writer(self, *args: Any) -> None:  # type: ignore[override]
        raise NotImplementedError


def run_loop(kind: str, uvloop: bool, main: Any) -> Any:
    if kind == "udplab.aio-thread":
        loop: asyncio.AbstractEventLoop = _NoReaders()
    elif uvloop:
        import uvloop as uv

        loop = uv.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


# ---------------------------------------------------------------------------------------------
# The driver


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(kind: str, tasks: int, trips: int, uvloop: bool) -> dict[str, Any]:
    """A fresh server process and a fresh client process; the client's numbers."""
    me = [sys.executable, os.path.abspath(__file__)] + (["--uvloop"] if uvloop else [])
    server = subprocess.Popen(me + ["--serve", kind], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        cpu_before = cpu_seconds(server.pid)
        out = subprocess.run(
            me + ["--client", kind, str(port), str(tasks), str(trips)],
            capture_output=True, text=True, timeout=300, check=True).stdout
        result: dict[str, Any] = json.loads(out)
        result["server_cpu"] = cpu_seconds(server.pid) - cpu_before
        return result
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


def summarize(times: list[float], wall: float) -> dict[str, Any]:
    ordered = sorted(times)
    return {
        "trips": len(times),
        "p50_us": ordered[len(ordered) // 2] * 1e6,
        "p99_us": ordered[int(len(ordered) * 0.99)] * 1e6,
        "per_second": len(times) / wall,
    }


def pin(cpu: int) -> None:
    """Keep this process on one CPU (the server on one, the client on another, for every
    contender alike): a process that wanders between CPUs, or meets its peer on one, makes
    the single-task round trip bimodal."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[cpu % len(cpus)]})


def client_main(kind: str, port: int, tasks: int, trips: int, uvloop: bool) -> None:
    pin(1)
    started = time.perf_counter()
    times = run_loop(kind, uvloop, client(kind, port, tasks, trips))
    print(json.dumps(summarize(times, time.perf_counter() - started)))


def server_main(kind: str, uvloop: bool) -> None:
    pin(0)

    def ready(port: int) -> None:
        print(f"PORT {port}", flush=True)

    run_loop(kind, uvloop, serve(kind, ready))


def table(rows: dict[str, list[dict[str, Any]]], key: str, unit: str) -> list[str]:
    lines = [f"| contender | {key} ({unit}), median [min-max] |", "|---|---|"]
    for kind, runs in rows.items():
        values = [r[key] for r in runs]
        lines.append(f"| {kind} | {statistics.median(values):.1f} "
                     f"[{min(values):.1f}-{max(values):.1f}] |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 repetition, a fifth the trips")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--only", default=",".join(CONTENDERS))
    parser.add_argument("--out")
    parser.add_argument("--serve")
    parser.add_argument("--client", nargs=4)
    args = parser.parse_args()
    if args.serve:
        return server_main(args.serve, args.uvloop)
    if args.client:
        kind, port, tasks, trips = args.client
        return client_main(kind, int(port), int(tasks), int(trips), args.uvloop)

    reps = 1 if args.quick else args.reps
    scale = 5 if args.quick else 1
    loads = {"latency": (1, 20_000 // scale), "throughput": (64, 1_000 // scale)}
    kinds = args.only.split(",")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from run import udplab_build_kind

    kind, path = udplab_build_kind()
    print(f"udplab: {path} ({kind} build)")
    if kind == "debug":
        print("WARNING: a debug build: its numbers are not udplab's (maturin develop --release)")
    print(f"load before: {os.getloadavg()}, {os.cpu_count()} CPUs, "
          f"{'uvloop' if args.uvloop else 'asyncio'} loops", flush=True)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        load: {k: [] for k in kinds} for load in loads}
    for rep in range(reps):
        order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]
        for load, (tasks, trips) in loads.items():
            for kind in order:
                r = one_run(kind, tasks, trips, args.uvloop)
                results[load][kind].append(r)
                print(f"rep {rep} {load} {kind}: p50 {r['p50_us']:.1f} us, p99 "
                      f"{r['p99_us']:.1f} us, {r['per_second']:.0f} round trips/s, server "
                      f"CPU {r['server_cpu']:.2f} s", flush=True)
    print(f"load after: {os.getloadavg()}")
    print("\n### latency (1 task)\n")
    print("\n".join(table(results["latency"], "p50_us", "µs")))
    print()
    print("\n".join(table(results["latency"], "p99_us", "µs")))
    print("\n### throughput (64 tasks)\n")
    print("\n".join(table(results["throughput"], "per_second", "round trips/s")))
    print()
    print("\n".join(table(results["throughput"], "p50_us", "µs")))
    baselines = [k for k in ("asyncio", "asyncio-dgram") if k in kinds]
    if "udplab.aio" in kinds and baselines:
        print("\n### ratios udplab.aio / the faster baseline (medians of this invocation)\n")

        def med(load: str, kind: str, key: str) -> float:
            return float(statistics.median(r[key] for r in results[load][kind]))

        best_p50 = min(baselines, key=lambda k: med("latency", k, "p50_us"))
        best_rate = max(baselines, key=lambda k: med("throughput", k, "per_second"))
        p50 = med("latency", "udplab.aio", "p50_us") / med("latency", best_p50, "p50_us")
        rate = (med("throughput", "udplab.aio", "per_second")
                / med("throughput", best_rate, "per_second"))
        print(f"- latency p50: {p50:.2f}x {best_p50} (target <= 1.0)")
        print(f"- throughput: {rate:.2f}x {best_rate} (target >= 1.0)")

        def paired(load: str, key: str, other: str) -> str:
            """The ratio in each repetition (its runs are next to each other in time), as
            median [min-max]: what drift in the machine's state does not move."""
            ratios = sorted(a[key] / b[key] for a, b in zip(results[load]["udplab.aio"],
                                                             results[load][other]))
            return (f"{statistics.median(ratios):.2f}x [{ratios[0]:.2f}-{ratios[-1]:.2f}]")

        for other in baselines:
            print(f"- per repetition, against {other}: latency p50 "
                  f"{paired('latency', 'p50_us', other)}, throughput "
                  f"{paired('throughput', 'per_second', other)}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"load": os.getloadavg(), "uvloop": args.uvloop, "results": results}, f,
                      indent=1)


if __name__ == "__main__":
    main()
