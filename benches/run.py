"""The chat benchmark of udplab issue 5, in one command.

    python benches/run.py [--quick] [--reps 5] [--out benches/results.json] [--build-udplab]

Run it with the Python that has udplab installed, e.g. ``.venv/bin/python benches/run.py``;
``--build-udplab`` first runs ``maturin develop --release`` for it (a debug build of udplab is
detected and warned about: its numbers mean nothing). For the uvloop contender install uvloop
(``pip install -r benches/requirements.txt``). Contenders that cannot start are skipped.

What it does:

1. ``cargo build --release --example loadgen --example blaster`` in the repository;
2. for each load — throughput with N = 10, 100, 1000 clients (window 8), latency with N = 100
   (window 1) — and each generator mode (sleep, spin), runs the contenders interleaved,
   ``--reps`` times, starting the order one further each repetition:
     udplab    benches/servers/udplab_chat.py (udplab.ChatS from Python)
     tutorial  tests/tutorial_chat.py (threaded pure Python, the notes' design corrected)
     asyncio   benches/servers/asyncio_chat.py
     uvloop    benches/servers/asyncio_chat.py --uvloop
     blaster   crates/udplab/examples/blaster.rs (native, no bookkeeping, plain send_to
               per client)
     blaster-mmsg  the same with --mmsg (sending as udplab does: sendmmsg + DF)
   Each run starts the server as a subprocess (it prints ``PORT n``), runs the example loadgen
   against it, reads the server's user and system CPU seconds from /proc/<pid>/stat before and
   after the generator run, then closes the server's stdin and waits for it to exit;
3. a micro-benchmark of ``udplab.socket`` against ``socket.socket`` on the same calls:
   ``sendto`` of 32 bytes to a socket that a drain process empties, and ``recvfrom`` of
   datagrams queued beforehand, interleaved, timing wall clock and thread CPU time; with
   ``--baseline`` it runs once per repetition for udplab and for udplab-base, alternating;
4. prints markdown tables (medians with min and max, ratios udplab/contender, server CPU seconds
   per million deliveries) and writes every run and the summary as JSON to ``--out``.

A run during which the machine was busy with something else than the server and the generator
(from /proc/stat) is marked disturbed and run again, at most twice while a retry budget lasts;
medians are taken over the undisturbed runs. The tables name the contenders with disturbed runs.

Everything is bounded: every subprocess has a timeout and every generator run --max-seconds.
The default command takes about 10 minutes on 2 cores, ``--quick`` (1 repetition, a fifth of
the messages) about 1 to 2.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")

CONTENDERS = {
    "udplab": [PY, os.path.join(HERE, "servers", "udplab_chat.py")],
    "tutorial": [PY, os.path.join(REPO, "tests", "tutorial_chat.py")],
    "asyncio": [PY, os.path.join(HERE, "servers", "asyncio_chat.py")],
    "uvloop": [PY, os.path.join(HERE, "servers", "asyncio_chat.py"), "--uvloop"],
    "blaster": None,  # filled in with the built binary
}
# Extra environment of a contender (``--baseline`` adds one with its own PYTHONPATH).
CONTENDER_ENV = {}
# (name, clients, messages, window): messages chosen so that one run lasts about 2 s.
LOADS = [
    ("throughput N=10", 10, 100_000, 8),
    ("throughput N=100", 100, 10_000, 8),
    ("throughput N=1000", 1000, 1_000, 8),
    ("latency N=100", 100, 2_000, 1),
]
MODES = ["sleep", "spin"]
INVAL = 10.0
HB_INTERVAL = 1.0


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def build(skip):
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    bins = {
        name: os.path.join(target, "release", "examples", name) for name in ("loadgen", "blaster")
    }
    if not skip:
        log("building: cargo build --release --example loadgen --example blaster")
        subprocess.run(
            ["cargo", "build", "--release", "--example", "loadgen", "--example", "blaster"],
            cwd=REPO,
            check=True,
            timeout=1200,
        )
    for path in bins.values():
        if not os.path.exists(path):
            sys.exit(f"missing {path}: build the examples first")
    return bins


def build_udplab():
    """`maturin develop --release` into the Python running this script (its virtualenv)."""
    maturin = os.path.join(os.path.dirname(PY), "maturin")
    env = dict(os.environ, VIRTUAL_ENV=sys.prefix)
    log("building udplab: maturin develop --release")
    subprocess.run(
        [maturin if os.path.exists(maturin) else "maturin", "develop", "--release"],
        cwd=REPO,
        check=True,
        timeout=1800,
        env=env,
    )


def debug_info_bytes(path):
    """Total size of the .debug_* sections of an ELF64 little-endian file (None if not one)."""
    import struct

    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x7fELF\x02\x01":
        return None
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i):  # (name offset, file offset, size)
        base = shoff + i * shentsize
        (name,) = struct.unpack_from("<I", data, base)
        offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        return name, offset, size

    names_at = section(shstrndx)[1]
    total = 0
    for i in range(shnum):
        name, _, size = section(i)
        end = data.index(b"\0", names_at + name)
        if data[names_at + name : end].startswith(b".debug_"):
            total += size
    return total


def udplab_build_kind():
    """'debug' if the udplab extension carries megabytes of debug info (a `maturin develop`
    without --release: its numbers would not be udplab's), else 'release'; None if unknown."""
    r = subprocess.run(
        [PY, "-c", "import udplab._core as c; print(c.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    path = r.stdout.strip()
    if r.returncode != 0 or not os.path.exists(path):
        return None, None
    size = debug_info_bytes(path)
    if size is None:
        return None, path
    return ("debug" if size > 1 << 20 else "release"), path


def importable(code):
    """Can the benchmark's Python run `code` (e.g. an import)?"""
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    return r.returncode == 0, (r.stderr.strip().splitlines() or [""])[-1]


def cpu_seconds(pid):
    """(user, system) CPU seconds of a whole process, all threads, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def descendants_cpu_seconds(pid):
    """User + system CPU seconds of every process below ``pid`` (a contender's browser), from
    /proc; 0 when it has none."""
    parents = {}
    for child in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{child}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])
        parents.setdefault(int(fields[1]), []).append((int(child), ticks))
    total, todo = 0, [pid]
    while todo:
        for child, ticks in parents.get(todo.pop(), []):
            total += ticks
            todo.append(child)
    return total / TICK


def machine_seconds():
    """Machine-wide CPU seconds from /proc/stat: (busy without irq/softirq, irq+softirq, idle)."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + steal) / TICK, (irq + softirq) / TICK, (idle + iowait) / TICK


def read_port(proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(b"PORT "):
            return int(line.split()[1])
    raise RuntimeError("the server did not print its PORT line")


def stop_server(proc):
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def one_run(name, argv, loadgen, load, mode, max_seconds):
    _, clients, messages, window = load
    native = name.startswith("blaster")
    args = list(argv) + ([] if native else ["--inval", str(INVAL)])
    if native:
        args += ["--max-seconds", str(max_seconds + 30)]
    udplab_like = name.startswith("udplab")
    err = open(os.devnull, "w") if not udplab_like else subprocess.PIPE
    env = dict(os.environ, **CONTENDER_ENV[name]) if name in CONTENDER_ENV else None
    proc = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env
    )
    record = {"contender": name, "load": load[0], "mode": mode}
    try:
        port = read_port(proc, 30)
        u0, s0 = cpu_seconds(proc.pid)
        b0 = descendants_cpu_seconds(proc.pid)
        m0 = machine_seconds()
        cmd = [
            loadgen,
            "--server",
            f"127.0.0.1:{port}",
            "--clients",
            str(clients),
            "--messages",
            str(messages),
            "--window",
            str(window),
            "--mode",
            mode,
            "--hb-interval",
            str(HB_INTERVAL),
            "--max-seconds",
            str(max_seconds),
            "--json",
        ]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=max_seconds + 30)
        u1, s1 = cpu_seconds(proc.pid)
        b1 = descendants_cpu_seconds(proc.pid)
        m1 = machine_seconds()
        if r.returncode != 0:
            record["error"] = (r.stderr.strip() or f"loadgen exit {r.returncode}")[-300:]
        else:
            record.update(json.loads(r.stdout))
        record["server_user_s"] = round(u1 - u0, 3)
        record["server_sys_s"] = round(s1 - s0, 3)
        # The server's own children (the Chromium of udplab-view): part of what is measured.
        record["children_cpu_s"] = round(b1 - b0, 3)
        # The kernel accounts the softirq work of loopback delivery (done in the sender's
        # sendto) to the machine, not to the process: it is reported here, machine-wide.
        busy, soft, idle = (b - a for a, b in zip(m0, m1))
        record["machine_softirq_s"] = round(soft, 3)
        record["machine_idle_s"] = round(idle, 3)
        gen = record.get("gen_cpu_total_s", record.get("gen_cpu_s"))
        if gen is not None:
            # Busy time (softirq included) of neither the server nor the generator: other
            # processes, and tick rounding. Near zero (even a little negative) on a quiet
            # machine; large means that something else ran, and the run is marked disturbed.
            record["other_busy_s"] = round(busy + soft - (u1 - u0) - (s1 - s0) - (b1 - b0) - gen, 3)
            record["disturbed"] = record["other_busy_s"] > 0.05 + 0.15 * record["elapsed_s"]
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        record["error"] = f"{type(e).__name__}: {e}"
    finally:
        stop_server(proc)
        if udplab_like:
            tail = proc.stderr.read().decode(errors="replace").strip().splitlines()
            try:
                record["server_stats"] = json.loads(tail[-1])
            except (IndexError, ValueError):
                if tail:
                    record.setdefault("server_stderr", tail[-1][-300:])
    return record


def summarize(runs, names, loads, modes):
    """Medians (with min, max) per load, mode and contender, and the ratios against udplab."""
    summary = []
    for load in loads:
        for mode in modes:
            rows = {}
            for name in names:
                ok = [
                    r
                    for r in runs
                    if r["contender"] == name
                    and r["load"] == load[0]
                    and r["mode"] == mode
                    and "error" not in r
                ]
                # Medians over the undisturbed runs, when there are any.
                disturbed = sum(1 for r in ok if r.get("disturbed"))
                ok = [r for r in ok if not r.get("disturbed")] or ok
                bad = [
                    r
                    for r in runs
                    if r["contender"] == name
                    and r["load"] == load[0]
                    and r["mode"] == mode
                    and "error" in r
                ]
                if not ok:
                    if bad:
                        rows[name] = {"error": bad[0]["error"]}
                    continue

                def stat(key, scale=1.0, rs=ok):
                    vals = [r[key] * scale for r in rs if r.get(key) is not None]
                    if not vals:
                        return None
                    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}

                per_m = [
                    dict(
                        r,
                        user_per_m=r["server_user_s"] / r["deliveries"] * 1e6,
                        sys_per_m=r["server_sys_s"] / r["deliveries"] * 1e6,
                        softirq_per_m=r["machine_softirq_s"] / r["deliveries"] * 1e6,
                    )
                    for r in ok
                    if r["deliveries"]
                ]
                rows[name] = {
                    "reps": len(ok),
                    "disturbed_runs": disturbed,
                    "failed_reps": len(bad),
                    "deliveries_per_s": stat("deliveries_per_s"),
                    "p50_us": stat("p50_us"),
                    "p99_us": stat("p99_us"),
                    "lost": sum(r["lost"] for r in ok),
                    "cut_off": sum(r.get("cut_off", 0) for r in ok),
                    "user_s_per_m": stat("user_per_m", rs=per_m),
                    "sys_s_per_m": stat("sys_per_m", rs=per_m),
                    "machine_softirq_s_per_m": stat("softirq_per_m", rs=per_m),
                    "other_busy_s": stat("other_busy_s"),
                    "gen_cpu_share": stat(
                        "gen_cpu_s",
                        rs=[
                            dict(r, gen_cpu_s=r["gen_cpu_s"] / r["elapsed_s"])
                            for r in ok
                            if r.get("gen_cpu_s") is not None
                        ],
                    ),
                    "children_cpu_share": stat(
                        "children_cpu_s",
                        rs=[
                            dict(r, children_cpu_s=r["children_cpu_s"] / r["elapsed_s"])
                            for r in ok
                            if r.get("children_cpu_s") is not None
                        ],
                    ),
                }
            u = rows.get("udplab", {})
            for row in rows.values():
                if "error" in row or "error" in u or not u:
                    continue
                row["udplab_over_this_throughput"] = (
                    u["deliveries_per_s"]["median"] / row["deliveries_per_s"]["median"]
                )
                if u["p50_us"] and row["p50_us"]:
                    row["udplab_over_this_p50"] = u["p50_us"]["median"] / row["p50_us"]["median"]
            summary.append(
                {
                    "load": load[0],
                    "clients": load[1],
                    "messages": load[2],
                    "window": load[3],
                    "mode": mode,
                    "contenders": rows,
                }
            )
    return summary


# (contender, baseline): throughput ratios taken within each repetition, whose runs follow
# each other, so that the machine's drift between repetitions cancels out.
PAIRS = [
    ("udplab-view", "udplab"),
    ("udplab-view-no-page", "udplab"),
    ("udplab-base-view", "udplab-base"),
    ("udplab-base-view-no-page", "udplab-base"),
    ("udplab", "udplab-base"),
]


def per_repetition(runs, name, load, mode):
    """{repetition: (deliveries/s, children's CPU s/s)} of one contender at one load and mode:
    medians over its undisturbed attempts, else over all."""
    reps = {}
    for r in runs:
        if (r["contender"], r["load"], r["mode"]) == (name, load, mode) and "error" not in r:
            reps.setdefault(r["rep"], []).append(r)
    for rep, rs in reps.items():
        rs = [r for r in rs if not r.get("disturbed")] or rs
        reps[rep] = (
            statistics.median(r["deliveries_per_s"] for r in rs),
            statistics.median(r.get("children_cpu_s", 0) / r["elapsed_s"] for r in rs),
        )
    return reps


def paired(runs, loads, modes):
    """Per load and mode, for each pair of PAIRS that ran: the ratio of deliveries/s within
    each repetition, and the contender's children's CPU (its browser) per second."""
    out = []
    for load in loads:
        for mode in modes:
            for name, base in PAIRS:
                a = per_repetition(runs, name, load[0], mode)
                b = per_repetition(runs, base, load[0], mode)
                both = sorted(set(a) & set(b))
                if both:
                    out.append(
                        {
                            "load": load[0],
                            "mode": mode,
                            "contender": name,
                            "baseline": base,
                            "ratios": [a[rep][0] / b[rep][0] for rep in both],
                            "children_cpu_per_s": statistics.median(a[rep][1] for rep in both),
                        }
                    )
    return out


def paired_markdown(pairs):
    if not pairs:
        return ""
    out = [
        "\n### throughput ratios within each repetition\n",
        "| load | generator | contender / baseline | median [min–max] | per repetition | "
        "contender's children CPU s/s |",
        "|---|---|---|---|---|---|",
    ]
    for p in pairs:
        rs = p["ratios"]
        out.append(
            f"| {p['load']} | {p['mode']} | {p['contender']} / {p['baseline']} | "
            f"{statistics.median(rs):.2f} [{min(rs):.2f}–{max(rs):.2f}] | "
            f"{' '.join(f'{r:.2f}' for r in rs)} | {p['children_cpu_per_s']:.3f} |"
        )
    return "\n".join(out)


def fmt_range(s, fmt="{:,.0f}"):
    if not s:
        return "-"
    return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}–{fmt.format(s['max'])}]"


def markdown(summary, micro):
    out = []
    for block in summary:
        if not block["contenders"]:
            continue
        latency = block["load"].startswith("latency")
        out.append(
            f"\n### {block['load']}, M={block['messages']}, window {block['window']}, "
            f"generator {block['mode']}\n"
        )
        out.append(
            "| contender | deliveries/s median [min–max] | p50 µs | p99 µs | lost | "
            "server user s / M deliv | server sys s / M deliv | machine softirq s / M deliv | "
            + ("udplab/this p50 latency |" if latency else "udplab/this throughput |")
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for name, row in block["contenders"].items():
            if "error" in row:
                out.append(f"| {name} | failed: {row['error'][:80]} | | | | | | | |")
                continue
            ratio = row.get("udplab_over_this_p50" if latency else "udplab_over_this_throughput")
            if row.get("disturbed_runs"):
                name = f"{name} ({row['disturbed_runs']} disturbed)"
            out.append(
                f"| {name} | {fmt_range(row['deliveries_per_s'])} | {fmt_range(row['p50_us'])} | "
                f"{fmt_range(row['p99_us'])} | {row['lost']} | "
                f"{fmt_range(row['user_s_per_m'], '{:.2f}')} | "
                f"{fmt_range(row['sys_s_per_m'], '{:.2f}')} | "
                f"{fmt_range(row['machine_softirq_s_per_m'], '{:.2f}')} | "
                f"{'-' if ratio is None else f'{ratio:.2f}'} |"
            )
    if micro:
        out.append("\n### micro-benchmark: per call, 32-byte datagrams, median over rounds\n")
        out.append("| call | socket.socket ns | udplab.socket ns | udplab/stdlib |")
        out.append("|---|---|---|---|")
        if "error" in micro:
            out.append(f"| failed: {micro['error'][:100]} | | | |")
        else:
            for call in ("sendto", "recvfrom"):
                m = micro[call]
                out.append(
                    f"| {call} | {m['stdlib_ns']:.0f} | {m['udplab_ns']:.0f} | "
                    f"{m['udplab_ns'] / m['stdlib_ns']:.2f} |"
                )
    return "\n".join(out)


# ---------------------------------------------------------------- micro-benchmark

DRAIN = r"""
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
buf = bytearray(2048)
while True:  # until stdin closes, or 10 s of silence
    r, _, _ = select.select([s, sys.stdin], [], [], 10)
    if not r or sys.stdin in r:
        break
    try:
        while True:
            s.recv_into(buf, 0, socket.MSG_DONTWAIT)
    except BlockingIOError:
        pass
"""


def micro_child(scale):
    """Runs in a child process (bounded by the parent's timeout): prints one JSON line."""
    import socket

    import udplab

    rounds, sends, batch, batches = 20, int(10_000 * scale), 1000, max(1, int(10 * scale))
    drain = subprocess.Popen([PY, "-c", DRAIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        dest = ("127.0.0.1", int(drain.stdout.readline()))
        payload = b"x" * 32
        makers = {
            "stdlib": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
            "udplab": lambda: udplab.socket(udplab.AF_INET, udplab.SOCK_DGRAM),
        }
        socks = {}
        for name, make in makers.items():
            tx, rx = make(), make()
            tx.bind(("127.0.0.1", 0))
            rx.bind(("127.0.0.1", 0))
            # A large receive buffer so a whole batch queues without loss (set through a
            # duplicate of the descriptor, which shares the socket).
            with socket.socket(fileno=os.dup(rx.fileno())) as view:
                view.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            socks[name] = (tx, rx, rx.getsockname())
        feeder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        times = {(call, name): [] for call in ("sendto", "recvfrom") for name in makers}
        # CPU time of this thread too (user + system): unlike the wall clock it does not count
        # the time another process held the CPU, which on a shared machine is most of the noise.
        cpu = {key: [] for key in times}
        order = list(makers)
        for r in range(rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                tx, rx, rx_addr = socks[name]
                sendto = tx.sendto
                t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                for _ in range(sends):
                    sendto(payload, dest)
                times[("sendto", name)].append((time.perf_counter_ns() - t0) / sends)
                cpu[("sendto", name)].append((time.thread_time_ns() - c0) / sends)
                recvfrom, total, cpu_total = rx.recvfrom, 0, 0
                for _ in range(batches):
                    for _ in range(batch):
                        feeder.sendto(payload, rx_addr)
                    t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                    for _ in range(batch):
                        recvfrom(2048)
                    total += time.perf_counter_ns() - t0
                    cpu_total += time.thread_time_ns() - c0
                times[("recvfrom", name)].append(total / (batch * batches))
                cpu[("recvfrom", name)].append(cpu_total / (batch * batches))
        result = {
            "rounds": rounds,
            "sendto_calls_each": rounds * sends,
            "recvfrom_calls_each": rounds * batch * batches,
        }
        for call in ("sendto", "recvfrom"):
            result[call] = {f"{name}_ns": statistics.median(times[(call, name)]) for name in makers}
            result[call].update({f"{name}_ns_min": min(times[(call, name)]) for name in makers})
            result[call].update(
                {f"{name}_cpu_ns": statistics.median(cpu[(call, name)]) for name in makers}
            )
        print(json.dumps(result))
    finally:
        drain.stdin.close()
        drain.wait(15)


def micro(scale, name="udplab"):
    log(f"micro-benchmark: {name}'s udplab.socket vs socket.socket")
    env = dict(os.environ, **CONTENDER_ENV[name]) if name in CONTENDER_ENV else None
    try:
        r = subprocess.run(
            [PY, os.path.abspath(__file__), "--micro-child", str(scale)],
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


MICRO_KEYS = ("stdlib_ns", "udplab_ns", "stdlib_cpu_ns", "udplab_cpu_ns")


def micro_ab(scale, reps):
    """With --baseline: the micro-benchmark of udplab and of udplab-base, one child process
    each per repetition, interleaved (the order alternates); medians over the children."""
    children = {"udplab": [], "udplab-base": []}
    for rep in range(reps):
        for name in list(children)[:: 1 if rep % 2 == 0 else -1]:
            r = micro(scale, name)
            if "error" in r:
                return {"error": f"{name}: {r['error']}"}
            children[name].append(r)
    return {
        name: {
            call: {key: statistics.median(r[call][key] for r in rs) for key in MICRO_KEYS}
            for call in ("sendto", "recvfrom")
        }
        for name, rs in children.items()
    }


def micro_ab_markdown(ab, reps):
    """udplab against udplab-base, per call; each child's udplab/stdlib ratio first cancels
    the drift of the machine between children."""
    out = [f"\n### micro-benchmark A/B: udplab vs udplab-base, {reps} children each\n"]
    if "error" in ab:
        return "\n".join(out + [f"failed: {ab['error']}"])
    out.append(
        "| call, clock | udplab-base ns (stdlib) | udplab ns (stdlib) | ratio of udplab/stdlib |"
    )
    out.append("|---|---|---|---|")
    for call in ("sendto", "recvfrom"):
        for clock, suffix in (("wall", "_ns"), ("thread CPU", "_cpu_ns")):
            a, b = ab["udplab-base"][call], ab["udplab"][call]
            ra = a[f"udplab{suffix}"] / a[f"stdlib{suffix}"]
            rb = b[f"udplab{suffix}"] / b[f"stdlib{suffix}"]
            out.append(
                f"| {call}, {clock} | {a[f'udplab{suffix}']:.0f} ({a[f'stdlib{suffix}']:.0f}) | "
                f"{b[f'udplab{suffix}']:.0f} ({b[f'stdlib{suffix}']:.0f}) | {rb / ra:.3f} |"
            )
    return "\n".join(out)


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description="udplab chat benchmark (issue 5)")
    parser.add_argument(
        "--quick", action="store_true", help="1 repetition, a fifth of the messages"
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5, quick 1)")
    parser.add_argument(
        "--out", default=os.path.join(HERE, "results.json"), help="JSON output file"
    )
    parser.add_argument("--only", default="", help="comma-separated contenders to run")
    parser.add_argument("--loads", default="", help="comma-separated load indexes (0-3) to run")
    parser.add_argument("--modes", default=",".join(MODES), help="generator modes to run")
    parser.add_argument("--skip-build", action="store_true", help="use the examples already built")
    parser.add_argument(
        "--build-udplab",
        action="store_true",
        help="first run `maturin develop --release` for this Python",
    )
    parser.add_argument("--no-micro", action="store_true", help="skip the socket micro-benchmark")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run the udplab installed in DIR (pip install --target DIR a wheel of another "
        "commit) as the contender udplab-base, for A/B runs in one invocation (with "
        "--info-logging or --view, its variants too: udplab-base-info, udplab-base-view, "
        "udplab-base-view-no-page)",
    )
    parser.add_argument(
        "--info-logging",
        action="store_true",
        help="also run udplab with logging.basicConfig(level=INFO) (to a null file) as udplab-info",
    )
    parser.add_argument(
        "--capture",
        action="store_true",
        help="also run udplab with capture= (a pcap file in the temporary directory) as "
        "udplab-capture (with --baseline, the baseline too, as udplab-base-capture)",
    )
    parser.add_argument(
        "--view",
        action="store_true",
        help="also run udplab watched by udplab.view with its page open in headless Chromium "
        "as udplab-view, and with no page open as udplab-view-no-page",
    )
    parser.add_argument(
        "--micro-only", action="store_true", help="only the socket micro-benchmark, no chat load"
    )
    parser.add_argument("--micro-child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.micro_child is not None:
        micro_child(args.micro_child)
        return

    reps = args.reps or (1 if args.quick else 5)
    scale = 0.2 if args.quick else 1.0
    max_seconds = 20 if args.quick else 60
    # N = 1000 clients need 1000 descriptors in the generator.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))

    bins = build(args.skip_build)
    if args.build_udplab:
        build_udplab()
    CONTENDERS["blaster"] = [bins["blaster"]]
    # The same native loop sending as udplab does (sendmmsg, DF): crates/udplab/examples/blaster.rs.
    CONTENDERS["blaster-mmsg"] = [bins["blaster"], "--mmsg"]
    udplab_argv = CONTENDERS["udplab"]
    if args.info_logging:
        CONTENDERS["udplab-info"] = udplab_argv + ["--log-info"]
    if args.capture:
        pcap = os.path.join(tempfile.gettempdir(), f"udplab-bench-{os.getpid()}.pcap")
        CONTENDERS["udplab-capture"] = udplab_argv + ["--capture", pcap]
    if args.view:
        CONTENDERS["udplab-view"] = udplab_argv + ["--view"]
        CONTENDERS["udplab-view-no-page"] = udplab_argv + ["--view-no-page"]
    if args.baseline:
        CONTENDERS["udplab-base"] = list(udplab_argv)
        CONTENDER_ENV["udplab-base"] = {"PYTHONPATH": os.path.abspath(args.baseline)}
        extras = {
            "info": args.info_logging and ["--log-info"],
            "view": args.view and ["--view"],
            "view-no-page": args.view and ["--view-no-page"],
        }
        for extra, flags in extras.items():
            if flags:
                CONTENDERS[f"udplab-base-{extra}"] = udplab_argv + flags
                CONTENDER_ENV[f"udplab-base-{extra}"] = CONTENDER_ENV["udplab-base"]
        if args.capture:  # an A/B of the capture writer itself
            CONTENDERS["udplab-base-capture"] = list(CONTENDERS["udplab-capture"])
            CONTENDER_ENV["udplab-base-capture"] = CONTENDER_ENV["udplab-base"]
    names = [n for n in CONTENDERS if not args.only or n in args.only.split(",")]
    have_udplab, why = importable("import udplab; udplab.ChatS")
    skipped = {}
    if "udplab" in names and not have_udplab:
        skipped["udplab"] = why
    if "uvloop" in names:
        ok, why = importable("import uvloop")
        if not ok:
            skipped["uvloop"] = why + " (pip install -r benches/requirements.txt)"
    for name, why in skipped.items():
        log(f"skipping {name}: {why}")
    udplab_kind, udplab_path = udplab_build_kind() if have_udplab else (None, None)
    if udplab_kind == "debug":
        log(
            f"WARNING: {udplab_path} looks like a debug build: its numbers are not udplab's. "
            "Rebuild with `maturin develop --release` (or pass --build-udplab)."
        )
    names = [n for n in names if n not in skipped]
    loads = [LOADS[int(i)] for i in args.loads.split(",")] if args.loads else LOADS
    if args.micro_only:
        loads = []
    modes = args.modes.split(",")
    loads = [(n, c, max(1, int(m * scale)), w) for n, c, m, w in loads]

    runs = []
    started = time.monotonic()
    retry_budget = 90 if args.quick else 720  # seconds into the run after which none retry

    def report(r):
        head = f"{r['load']} {r['mode']} rep {r['rep']} {r['contender']}"
        if "error" in r:
            log(f"{head}: ERROR {r['error']}")
            return
        log(
            f"{head}: {r['deliveries_per_s']:,.0f} deliveries/s, p50 {r['p50_us']:.0f} us, "
            f"lost {r['lost']}, server cpu {r['server_user_s']:.2f}u+{r['server_sys_s']:.2f}s, "
            f"other busy {r.get('other_busy_s', 0):.2f}s of {r['elapsed_s']:.2f}s"
            + (" DISTURBED" if r.get("disturbed") else "")
        )

    for load in loads:
        for mode in modes:
            for rep in range(reps):
                order = names[rep % len(names) :] + names[: rep % len(names)]
                for name in order:
                    # A run that something else disturbed is run again, at most twice, while
                    # the retry budget lasts; all attempts are kept in the JSON.
                    for attempt in range(3):
                        r = one_run(
                            name, CONTENDERS[name], bins["loadgen"], load, mode, max_seconds
                        )
                        r["rep"], r["attempt"] = rep, attempt
                        runs.append(r)
                        report(r)
                        if not r.get("disturbed") or time.monotonic() - started > retry_budget:
                            break
                        time.sleep(1.0)
    micro_result = micro_ab_result = None
    if not args.no_micro and args.baseline and have_udplab:
        micro_ab_result = micro_ab(scale, reps)
    elif not args.no_micro:
        micro_result = micro(scale) if have_udplab else {"error": "udplab not importable: " + why}
    summary = summarize(runs, names, loads, modes)
    pairs = paired(runs, loads, modes)
    print(markdown(summary, micro_result))
    print(paired_markdown(pairs))
    if micro_ab_result:
        print(micro_ab_markdown(micro_ab_result, reps))
    for base, what in (
        ("blaster", "native, plain send_to"),
        ("blaster-mmsg", "native, sendmmsg + DF as udplab sends"),
    ):
        rows = []
        for block in summary:
            u, c = block["contenders"].get("udplab"), block["contenders"].get(base)
            if u and c and "error" not in u and "error" not in c:
                ratio = u["deliveries_per_s"]["median"] / c["deliveries_per_s"]["median"]
                rows.append(f"| {block['load']} | {block['mode']} | {ratio:.2f} |")
        if rows:
            print(f"\n### udplab / {base} ({what}), deliveries/s\n")
            print(f"| load | generator | udplab/{base} |\n|---|---|---|")
            print("\n".join(rows))
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "reps": reps,
        "quick": args.quick,
        "inval": INVAL,
        "hb_interval": HB_INTERVAL,
        "skipped": skipped,
        "udplab_build": udplab_kind,
        "udplab_extension": udplab_path,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    with open(args.out, "w") as f:
        json.dump(
            {
                "meta": meta,
                "summary": summary,
                "paired": pairs,
                "micro": micro_result,
                "micro_ab": micro_ab_result,
                "runs": runs,
            },
            f,
            indent=1,
        )
    log(f"wrote {args.out} ({meta['wall_seconds']} s)")


if __name__ == "__main__":
    main()
