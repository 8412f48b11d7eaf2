"""The chat protocol as an asyncio DatagramProtocol: a contender of benches/run.py.

Same wire behaviour as tests/tutorial_chat.py: ``HB`` (optionally + ``\\n`` or ``\\r\\n``)
refreshes the sender; ``quit`` removes it; an empty datagram is ignored; anything else
refreshes or joins the sender and goes out as ``ACK`` + payload to every client heard from
within ``--inval`` seconds, the sender included. Silent clients also expire on a timer.

    python benches/servers/asyncio_chat.py [--inval S] [--uvloop] [--max-seconds S]

Binds 127.0.0.1 on a free port, prints ``PORT <n>`` first, and serves until stdin closes,
SIGTERM, or --max-seconds.
"""

import argparse
import asyncio
import os
import signal
import sys
import time

HEARTBEAT, QUIT, PREFIX = b"HB", b"quit", b"ACK"


def word(data):
    """The datagram without one trailing newline (``\\n`` or ``\\r\\n``)."""
    if data.endswith(b"\n"):
        return data[:-2] if data.endswith(b"\r\n") else data[:-1]
    return data


class Chat(asyncio.DatagramProtocol):
    def __init__(self, inval):
        self.inval = inval
        self.seen = {}  # addr -> monotonic time of its last datagram, oldest first
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.sendto = transport.sendto

    def expire(self, now):
        seen, limit = self.seen, now - self.inval
        while seen:
            addr = next(iter(seen))
            if seen[addr] >= limit:
                break
            del seen[addr]

    def datagram_received(self, data, addr):
        seen = self.seen
        if len(data) <= 6:  # only then can it be a control word
            if not data:
                return
            w = word(data)
            if w == QUIT:
                seen.pop(addr, None)
                return
            if w == HEARTBEAT:
                seen.pop(addr, None)
                seen[addr] = time.monotonic()
                return
        now = time.monotonic()
        seen.pop(addr, None)
        seen[addr] = now
        self.expire(now)
        msg, sendto = PREFIX + data, self.sendto
        for peer in seen:
            sendto(msg, peer)

    def error_received(self, exc):
        pass  # an ICMP error from one client must not stop the server


async def serve(args):
    loop = asyncio.get_running_loop()
    transport, chat = await loop.create_datagram_endpoint(
        lambda: Chat(args.inval), local_addr=("127.0.0.1", 0)
    )
    print("PORT", transport.get_extra_info("sockname")[1], flush=True)

    done = loop.create_future()

    def finish(*_):
        if not done.done():
            done.set_result(None)

    def on_stdin():
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            finish()

    loop.add_signal_handler(signal.SIGTERM, finish)
    loop.add_reader(sys.stdin.fileno(), on_stdin)

    def reap():
        chat.expire(time.monotonic())
        if not done.done():
            loop.call_later(min(args.inval, 1.0), reap)

    loop.call_later(min(args.inval, 1.0), reap)
    try:
        await asyncio.wait_for(done, args.max_seconds)
    except asyncio.TimeoutError:
        pass
    transport.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inval", type=float, default=10.0, help="client expiry in seconds")
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop"
    )
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long")
    args = parser.parse_args()
    if args.uvloop:
        try:
            import uvloop
        except ImportError:
            print("uvloop is not installed (pip install uvloop)", file=sys.stderr)
            sys.exit(3)
        uvloop.run(serve(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
