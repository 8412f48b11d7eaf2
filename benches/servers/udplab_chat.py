"""udplab's chat server, started from Python as a user would: a contender of benches/run.py.

    python benches/servers/udplab_chat.py [--inval S] [--max-seconds S] [--log-info]
                                          [--capture FILE]

With ``--log-info`` the server logs as the notes configure it, ``logging.basicConfig(level=INFO)``
(into a null file, so the cost measured is udplab's and ``logging``'s, not a terminal's).
With ``--capture FILE`` the server writes every datagram to a pcap file (``capture=``), with a
size cap large enough for the whole run; the file is removed at exit.
With ``--view`` a ``udplab.view`` watches the server and one headless Chromium (apt's
``chromium``) has its page open, drawing every event, before ``PORT`` is printed; with
``--view-no-page`` the view watches and serves, with no page open.
Prints ``PORT <n>`` first, serves on 127.0.0.1 until stdin closes, SIGTERM or --max-seconds,
then prints the server's counters (``chats.stats()``) as one JSON line on stderr.
Needs udplab installed (``maturin develop --release`` in the repository).
"""

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import udplab

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from run import descendants_cpu_seconds  # noqa: E402 (benches/run.py, beside this folder)


def open_view(chats):
    """A view of ``chats`` and a headless Chromium showing it; returns once the page reads."""
    view = udplab.view(chats, daemon=True)
    profile = tempfile.mkdtemp(prefix="udplab-bench-chromium-")
    browser = subprocess.Popen(
        [shutil.which("chromium") or "chromium", "--headless=new", "--no-sandbox",
         "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", view.url],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while view.stats()["pages"] < 1:
        if time.monotonic() > deadline or browser.poll() is not None:
            sys.exit("udplab_chat.py --view: Chromium did not open the page")
        time.sleep(0.05)
    # A Chromium just started keeps busy for about a second after the page opens (its own
    # pages, caches): what is measured is a browser showing the chat, not one starting up.
    settled = time.monotonic() + 10
    used = descendants_cpu_seconds(os.getpid())
    while time.monotonic() < settled:
        time.sleep(0.25)
        used, before = descendants_cpu_seconds(os.getpid()), used
        if used - before < 0.025:
            break
    return view, browser, profile


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inval", type=float, default=10.0, help="client expiry in seconds")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long")
    parser.add_argument("--log-info", action="store_true", help="log at INFO to a null file")
    parser.add_argument("--capture", metavar="FILE", help="capture every datagram to FILE")
    parser.add_argument("--view", action="store_true",
                        help="watch with udplab.view, its page open in headless Chromium")
    parser.add_argument("--view-no-page", action="store_true",
                        help="watch with udplab.view, no page open")
    args = parser.parse_args()
    if args.log_info:
        logging.basicConfig(level=logging.INFO, filename=os.devnull)

    capture = dict(capture=args.capture, capture_limit=2**40) if args.capture else {}
    chats = udplab.ChatS("127.0.0.1", 0, args.inval, **capture)
    chats.start()
    page = open_view(chats) if args.view else None
    quiet_view = udplab.view(chats, daemon=True) if args.view_no_page else None
    print("PORT", chats.addr[1], flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin():
        while sys.stdin.buffer.read1(4096):
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        stop.wait(args.max_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        chats.stop()
        stats = chats.stats()  # after stop(): the capture's counters are final
        if quiet_view is not None:
            stats["view"] = quiet_view.stats()
            quiet_view.stop()
        if page is not None:
            view, browser, profile = page
            stats["view"] = view.stats()
            browser.terminate()
            browser.wait(10)
            view.stop()
            shutil.rmtree(profile, ignore_errors=True)
        if args.capture:
            os.remove(args.capture)
    print(json.dumps(stats, default=str), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
