"""udplab's chat server, started from Python as a user would: a contender of benches/run.py.

    python benches/servers/udplab_chat.py [--inval S] [--max-seconds S] [--log-info]
                                          [--capture FILE]

With ``--log-info`` the server logs as the notes configure it, ``logging.basicConfig(level=INFO)``
(into a null file, so the cost measured is udplab's and ``logging``'s, not a terminal's).
With ``--capture FILE`` the server writes every datagram to a pcap file (``capture=``), with a
size cap large enough for the whole run; the file is removed at exit.
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
    parser.add_argument("--capture", metavar="FILE", help="capture every datagram to FILE")
    args = parser.parse_args()
    if args.log_info:
        logging.basicConfig(level=logging.INFO, filename=os.devnull)

    capture = dict(capture=args.capture, capture_limit=2**40) if args.capture else {}
    chats = udplab.ChatS("127.0.0.1", 0, args.inval, **capture)
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
        chats.stop()
        stats = chats.stats()  # after stop(): the capture's counters are final
        if args.capture:
            os.remove(args.capture)
    print(json.dumps(stats, default=str), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
