"""How quickly udplab.view's page shows events, and whether it stays smooth with many.

    python benches/view_bench.py [--rate 1000] [--seconds 10] [--shown 10000]

A chat server with one client, watched by ``udplab.view``, its page open in a real headless
Chromium (apt's ``chromium`` and ``chromium-driver``, driven by selenium). The client sends
messages at a steady pace so that the view makes ``--rate`` events per second (each message is
two events: the message and its broadcast back).

1. **lag**: for every event, the page notes when it arrived (``Date.now()``) minus when it
   happened (the event's ``t``, placed on the same wall clock by the core): p50, p99, max over
   ``--seconds`` of traffic. It includes the view's gathering (10 ms) and holding back of
   out-of-order sightings (30 ms) on purpose: that is what a person waits.
2. **frames**: once the page holds ``--shown`` events, the longest task that held the page up
   (Chromium's long-task timing: every task over 50 ms is reported; none means none over 50)
   and the longest redraw of the ladder, over ``--seconds`` of traffic at ``--rate`` while
   following live, then while scrolled to the middle and paused, with a scroll every 0.25 s.
3. **CPU**: the CPU seconds Chromium's processes and the chat's process used during (1),
   per second of traffic.

Prints one line per measure and the machine's load (``/proc/loadavg``) before and after: the
machine is shared, and other work on it shows in the frame gaps first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time

import udplab


def pace(client: udplab.ChatC, per_second: float, seconds: float, stop: threading.Event) -> int:
    """Send ``per_second`` messages a second for ``seconds``; the number sent."""
    sent = 0
    start = time.monotonic()
    while not stop.is_set():
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * per_second)
        while sent < due:
            client.send(b"m%d" % sent)
            sent += 1
        time.sleep(0.001)
    return sent


def browsers() -> list[int]:
    """The process ids of every Chromium process (children of chromedriver's)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() in ("chromium", "chrome", "headless_shell"):
                        found.append(int(pid))
            except OSError:
                pass
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds of ``pids`` so far (from /proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tick


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="each measure's duration")
    parser.add_argument("--shown", type=int, default=10_000, help="events on the page")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,860"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"),
                              options=options)
    load_before = open("/proc/loadavg").read().split()[:3]
    server = udplab.ChatS("127.0.0.1", 0, 30.0, daemon=True)
    server.start()
    client = udplab.ChatC(*server.addr, interval=None, queue=1, daemon=True)
    view = udplab.view(server, daemon=True)
    results: dict[str, object] = {"rate": args.rate, "seconds": args.seconds}
    stop = threading.Event()
    try:
        driver.get(view.url)
        while not driver.execute_script("return !!(window.udplabView && "
                                        "window.udplabView.st.connected)"):
            time.sleep(0.05)
        client.start()
        per_second = args.rate / 2

        # 1. lag at the rate
        cpu_before = cpu_seconds(browsers()), cpu_seconds([os.getpid()])
        sent = pace(client, per_second, args.seconds, stop)
        cpu_after = cpu_seconds(browsers()), cpu_seconds([os.getpid()])
        results["cpu_per_second"] = {
            "chromium": round((cpu_after[0] - cpu_before[0]) / args.seconds, 3),
            "chat and view": round((cpu_after[1] - cpu_before[1]) / args.seconds, 3)}
        print(f"CPU per second of traffic: Chromium {results['cpu_per_second']['chromium']} s, "
              f"this process (chat, view, sender) {results['cpu_per_second']['chat and view']} s",
              flush=True)
        time.sleep(1.0)
        lag = driver.execute_script("return window.udplabView.perf.lag")
        results["sent"] = sent
        results["lag_events"] = len(lag)
        results["lag_ms"] = {k: round(1000 * v, 1) for k, v in (
            ("p50", statistics.median(lag)), ("p99", percentile(lag, 99)), ("max", max(lag)))}
        print(f"lag at {args.rate:g} events/s over {args.seconds:g} s: {len(lag)} events, "
              f"p50 {results['lag_ms']['p50']} ms, p99 {results['lag_ms']['p99']} ms, "
              f"max {results['lag_ms']['max']} ms", flush=True)

        # 2. frames with --shown events on the page
        have = driver.execute_script("return window.udplabView.st.events.length")
        if have < args.shown:
            pace(client, 5000, (args.shown - have) / 2 / 5000 + 0.2, stop)
            time.sleep(1.0)
        for phase in ("following live", "scrolled to the middle, paused"):
            if phase.startswith("scrolled"):
                driver.execute_script(
                    "document.getElementById('pause').click();"
                    "const s = document.getElementById('scroll');"
                    "s.scrollTop = s.scrollHeight / 2;")
            driver.execute_script("Object.assign(window.udplabView.perf, "
                                  "{longest: 0, longestRender: 0, frames: 0});")
            ticker = threading.Thread(target=pace, args=(client, per_second, args.seconds, stop))
            ticker.start()
            if phase.startswith("scrolled"):
                for i in range(int(args.seconds * 4)):  # a person scrolling now and then
                    driver.execute_script(
                        "document.getElementById('scroll').scrollTop += arguments[0];",
                        200 if i % 2 else -150)
                    time.sleep(0.25)
            ticker.join()
            perf = driver.execute_script(
                "const p = window.udplabView.perf; const st = window.udplabView.st;"
                "return {frames: p.frames, longest: p.longest, render: p.longestRender,"
                " events: st.events.length, shown: st.shown};")
            results[phase] = perf
            print(f"frames {phase}, {perf['shown']} events shown: {perf['frames']} frames, "
                  f"longest task {perf['longest']:.1f} ms (0: none over 50 ms), longest redraw "
                  f"{perf['render']:.1f} ms", flush=True)
        results["view"] = view.stats()
    finally:
        stop.set()
        driver.quit()
        view.stop()
        client.stop()
        server.stop()
    results["load"] = {"before": load_before,
                       "after": open("/proc/loadavg").read().split()[:3]}
    print(f"load average before {' '.join(load_before)}, after "
          f"{' '.join(results['load']['after'])}; view: {results['view']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
