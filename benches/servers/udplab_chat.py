"""udplab's chat server, started from Python as a user would: a contender of benches/run.py.

    python benches/servers/udplab_chat.py [--inval S] [--max-seconds S] [--log-info]

With ``--log-info`` the server logs as the notes configure it, ``logging.basicConfig(level=INFO)``
(into a null file, so the cost measured is udplab's and ``logging``'s, not a terminal's).
Prints ``PORT <n>`` first, serves on 127.0.0.1 until stdin closes, SIGTERM or --max-seconds,
then prints the server's counters (``chats.stats()``) as one JSON line on stderr.
Needs udplab installed (``maturin develop --release`` in the repository).
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading

import udplab


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inval", type=float, default=10.0, help="client expiry in seconds")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long")
    parser.add_argument("--log-info", action="store_true", help="log at INFO to a null file")
    args = parser.parse_args()
    if args.log_info:
        logging.basicConfig(level=logging.INFO, filename=os.devnull)

    chats = udplab.ChatS("127.0.0.1", 0, args.inval)
    chats.start()
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
        stats = chats.stats()
        chats.stop()
    print(json.dumps(stats, default=str), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
