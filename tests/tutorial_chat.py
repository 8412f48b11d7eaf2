"""The tutorial's UDP group chat (ChatS / ChatC), written again with its mistakes fixed.

This is the reference udplab must stay wire-compatible with, and contender 2 of the chat
benchmark (benches/run.py). It keeps the notes' API and thread names (``servicer``, ``user``,
``hb``) and uses nothing but the standard library.

What changed against the notes (mistake numbers from the errata table in notebooks/README.md):

* payloads are compared with bytes, and the heartbeat word is ``b"HB"`` on both sides (5, 12);
  a trailing ``\\n`` or ``\\r\\n`` is allowed, as netcat sends one;
* ``quit`` from an unknown client is ignored instead of killing the thread with KeyError (6);
* expiry uses the monotonic clock; ``raddrs`` still reports wall-clock times (15);
* silent clients expire on a timer as well, not only when somebody talks (14);
* ``stop()`` wakes the blocked receive thread, which then ends cleanly and is joined (7, 13);
* the client binds an ephemeral port, never the server's address (10), and says ``quit`` (13);
* datagrams are received with a 64 KiB buffer, so none is truncated (2).

The receive path is kept lean because it is benchmarked: the socket stays blocking with no
timeout (in CPython a timeout makes every ``sendto`` and ``recvfrom`` poll() first), so stop()
wakes the thread by sending an empty datagram to the server's own address.

Run ``python tests/tutorial_chat.py [--inval S]`` to serve on 127.0.0.1 with a free port: the
first line printed is ``PORT <n>``; it serves until stdin closes or SIGTERM arrives.
"""

import logging
import queue
import socket
import threading
import time

FORMAT = "%(asctime)s %(threadName)s %(message)s"
HEARTBEAT = b"HB"
QUIT = b"quit"
PREFIX = b"ACK"
BUFSIZE = 65536  # the largest UDP payload fits: nothing is truncated

log = logging.getLogger("tutorial_chat")


def word(data):
    """The datagram without one trailing newline (``\\n`` or ``\\r\\n``)."""
    if data.endswith(b"\n"):
        return data[:-2] if data.endswith(b"\r\n") else data[:-1]
    return data


class ChatS:
    """Group chat server: everything a client says goes to every live client, itself included."""

    def __init__(self, ip, port, inval):
        self.addr = (ip, port)
        self.inval = inval
        self.sock = socket.socket(
            socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM
        )
        self.event = threading.Event()
        self.lock = threading.Lock()
        # addr -> time.monotonic() of the last datagram, oldest first (a refresh moves it last).
        self.seen = {}
        self.threads = []

    @property
    def raddrs(self):
        """Known clients: {(ip, port): wall-clock time they were last heard from}."""
        with self.lock:
            offset = time.time() - time.monotonic()
            return {a: t + offset for a, t in self.seen.items()}

    def start(self):
        self.sock.bind(self.addr)
        self.addr = self.sock.getsockname()  # the real port when 0 was asked for
        for target, name in ((self._recv, "servicer"), (self._reaper, "reaper")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def _expire(self, now):
        """Drop the clients not heard from within inval seconds. Call with the lock held."""
        seen, limit = self.seen, now - self.inval
        while seen:
            addr = next(iter(seen))  # the oldest
            if seen[addr] >= limit:
                break
            del seen[addr]
            log.info("expired %s", addr)

    def _reaper(self):
        # Expiry when nobody talks: without it silent clients would stay forever.
        while not self.event.wait(min(self.inval, 1.0)):
            with self.lock:
                self._expire(time.monotonic())

    def _recv(self):
        recvfrom, sendto, seen = self.sock.recvfrom, self.sock.sendto, self.seen
        while True:
            try:
                data, raddr = recvfrom(BUFSIZE)
            except OSError:
                if self.event.is_set() or self.sock.fileno() < 0:
                    break
                continue  # e.g. an ICMP error queued on the socket: keep serving
            if self.event.is_set():
                break
            if len(data) <= 6:  # room for b"quit\r\n": only then can it be a control word
                if not data:
                    continue
                w = word(data)
                if w == QUIT:
                    with self.lock:
                        if seen.pop(raddr, None) is not None:
                            log.info("quit %s", raddr)
                    continue
                if w == HEARTBEAT:
                    with self.lock:
                        if seen.pop(raddr, None) is None:
                            log.info("joined %s", raddr)
                        seen[raddr] = time.monotonic()
                    continue
            msg = PREFIX + data
            with self.lock:
                now = time.monotonic()
                if seen.pop(raddr, None) is None:
                    log.info("joined %s", raddr)
                seen[raddr] = now
                self._expire(now)
                for addr in seen:
                    try:
                        sendto(msg, addr)
                    except OSError:
                        pass  # one unreachable client must not stop the others' copies

    def stop(self):
        if self.event.is_set():
            return
        self.event.set()
        if not self.threads:  # never started
            self.sock.close()
            return
        # Wake the receive thread blocked in recvfrom: send it an empty datagram. Retry in case
        # a full receive buffer dropped the first one.
        for _ in range(50):
            if not self.threads[0].is_alive():
                break
            try:
                self.sock.sendto(b"", self.addr)
            except OSError:
                pass
            self.threads[0].join(0.1)
        for thread in self.threads:
            thread.join(1.0)
        self.sock.close()
        with self.lock:
            self.seen.clear()


class ChatC:
    """Chat client: logs what arrives and keeps it on the queue ``received``."""

    def __init__(self, rip, rport):
        self.raddr = (rip, rport)
        self.sock = socket.socket(
            socket.AF_INET6 if ":" in rip else socket.AF_INET, socket.SOCK_DGRAM
        )
        self.event = threading.Event()
        self.received = queue.Queue()
        self.threads = []

    def start(self):
        # An ephemeral port (the notes bound the server's own address: "address in use").
        local = {"127.0.0.1": "127.0.0.1", "::1": "::1"}.get(self.raddr[0], "")
        self.sock.bind((local, 0))
        self.addr = self.sock.getsockname()
        self._spawn(self._recv, "user")

    def _spawn(self, target, name, *args):
        thread = threading.Thread(target=target, name=name, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _recv(self):
        while True:
            try:
                data, raddr = self.sock.recvfrom(BUFSIZE)
            except OSError:
                if self.event.is_set() or self.sock.fileno() < 0:
                    break
                continue  # e.g. ECONNREFUSED while the server is not there yet
            if self.event.is_set():
                break
            logging.info(data)
            self.received.put(data)

    def hb(self, interval):
        """Send a heartbeat now and every ``interval`` seconds, from a thread named hb."""
        self._spawn(self._hb, "hb", interval)

    def _hb(self, interval):
        while True:
            try:
                self.sock.sendto(HEARTBEAT, self.raddr)
            except OSError:
                pass
            if self.event.wait(interval):
                break

    def send(self, msg):
        if isinstance(msg, str):
            msg = msg.encode()
        self.sock.sendto(msg, self.raddr)

    def stop(self):
        if self.event.is_set():
            return
        try:
            self.sock.sendto(QUIT, self.raddr)
        except OSError:
            pass
        self.event.set()
        for thread in self.threads:
            for _ in range(50):
                if thread.name == "user":  # wake it from recvfrom, as ChatS.stop does
                    try:
                        self.sock.sendto(b"", self.addr)
                    except OSError:
                        pass
                thread.join(0.1)
                if not thread.is_alive():
                    break
        self.sock.close()


def main(argv=None):
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description="Serve the tutorial chat on 127.0.0.1, free port.")
    parser.add_argument("--inval", type=float, default=10.0, help="client expiry in seconds")
    parser.add_argument("--ip", default="127.0.0.1", choices=["127.0.0.1", "::1"])
    parser.add_argument("-v", "--verbose", action="store_true", help="log joins and leaves")
    args = parser.parse_args(argv)
    logging.basicConfig(format=FORMAT, level=logging.INFO if args.verbose else logging.WARNING)

    def terminate(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    server = ChatS(args.ip, 0, args.inval)
    server.start()
    try:
        print("PORT", server.addr[1], flush=True)
        while sys.stdin.buffer.read1(4096):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
