"""udplab for asyncio programs: the datagram socket and the group chat, awaited.

::

    import asyncio
    import udplab.aio

    async def main():
        async with udplab.aio.bind(("127.0.0.1", 0)) as server, \\
                   udplab.aio.connect(server.getsockname()) as client:
            await client.send(b"hello")
            data, addr = await server.recvfrom(1024)
            await server.sendto(b"ack" + data, addr)
            print(await client.recv(1024))          # b'ackhello'

    asyncio.run(main())

How the event loop learns that something arrived, without ever blocking it:

- **A socket** (``bind``, ``connect``): where the loop can watch a descriptor
  (``loop.add_reader``: every selector loop, uvloop, Jupyter's), it watches the socket itself.
  When the socket is readable, one call into the core (``UdpSocket._recv_batch``) takes up to
  64 queued datagrams without waiting and hands them to the waiting tasks. Nothing sits
  between the kernel and the loop, so a datagram costs no thread switch. That is why the
  socket does not use the other way below: a thread that receives and then wakes the loop
  adds thread switches and a GIL hand-over to every datagram, and a round trip through that
  path took 2.4 to 5 times as long (BENCHMARKS.md, "udplab.aio").
- **Where the loop has no readers** (Windows' proactor loop, the default there, raises
  ``NotImplementedError`` from ``add_reader``), and for **the chat objects**, whose core runs
  on threads of its own anyway (receiving, broadcasting, expiring, heartbeating), a thread
  waits in the core with the GIL released and hands each batch to the loop with
  ``loop.call_soon_threadsafe``, which every loop has. It takes the next batch only once the
  loop has room for it, so a loop that falls behind leaves datagrams in the kernel's buffer
  (which counts what it drops) rather than in an unbounded queue.

Either way everything a task sees happens on the loop's thread, in one place: a ``_Mailbox``
of arrivals and waiting tasks. A datagram goes to the task that waited longest; a cancelled
``recv`` removes only its own wait, and a datagram handed to a task that is cancelled before it
runs goes to the next waiting task (or back to the front of the queue), so none is lost to a
cancellation. ``close()`` (from any task) wakes every waiting task with ``OSError`` (EBADF),
as a blocked ``udplab.socket`` is woken.

An ICMP "port unreachable" for an earlier datagram (the system reports it on a connected
socket; Windows on any socket) is raised once, as ``ConnectionRefusedError`` with a hint, by
the next ``recv``/``recvfrom`` or by the send that meets it, and the socket goes on working.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import ipaddress
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Generator
from types import TracebackType
from typing import Any, Callable, Generic, NamedTuple, Optional, TypeVar, Union

from . import chat
from ._background import DEFAULT_CAPTURE_LIMIT, Address, CaptureTarget
from ._core import UdpSocket

__all__ = ["ChatC", "ChatEvent", "ChatS", "Socket", "bind", "connect"]

Buffer = Union[bytes, bytearray, memoryview]
T = TypeVar("T")

#: Datagrams taken from the socket in one call into the core.
BATCH = 64
#: Datagrams a socket keeps for tasks that have not asked yet; past it, reading pauses and the
#: kernel's buffer holds the rest (until half of these are taken).
INBOX = 128
#: Longest sleep between tries of a send that finds the buffer full, where the loop cannot
#: watch for room (no ``add_writer``).
_SEND_RETRY_MAX = 0.01
#: A chat client's send waits this long for room in the buffer, as the threaded one does.
_CHAT_SEND_WAIT = 0.5
#: What a send on the loop's thread hands to ``Socket._send_later``.
_SEND_AGAIN = (BlockingIOError, ConnectionRefusedError, ConnectionResetError)
#: The name of the threads that hand batches to a loop.
THREAD_NAME = "aio"


# ---------------------------------------------------------------------------------------------
# Arrivals and waiters


class _Mailbox(Generic[T]):
    """What arrived and who waits for it, on the loop's thread only.

    ``put`` gives an item to the task that waited longest, else queues it. An item may be an
    exception: the task that takes it raises it (once). With ``on_room``, the producer stops
    when ``full`` (``limit`` items queued) and ``on_room`` is called once half of them have
    been taken; without, the oldest item is dropped past ``limit`` and counted in ``dropped``.
    """

    def __init__(self, limit: int, on_room: Callable[[], None] | None = None) -> None:
        self._items: deque[T | BaseException] = deque()
        self._waiters: deque[asyncio.Future[T | BaseException]] = deque()
        self._limit = limit
        self._on_room = on_room
        self._full = False
        self._closed: Callable[[], BaseException] | None = None
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return self._full

    def _hand(self, item: T | BaseException) -> bool:
        """Give ``item`` to the task that waited longest, if one still waits."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        return False

    def put(self, item: T | BaseException) -> None:
        if self._hand(item):
            return
        self._items.append(item)
        if len(self._items) >= self._limit:
            if self._on_room is None:
                self._items.popleft()
                self.dropped += 1
            else:
                self._full = True

    def _put_back(self, item: T | BaseException) -> None:
        """An item handed to a task that was cancelled before it ran: it goes to the next."""
        if not self._hand(item):
            self._items.appendleft(item)

    def _take(self) -> T | BaseException:
        item = self._items.popleft()
        if self._full and len(self._items) <= self._limit // 2:
            self._full = False
            self._on_room()  # type: ignore[misc]  # only ever full with on_room
        return item

    async def get(self) -> T:
        if self._items:
            item = self._take()
        elif self._closed is not None:
            raise self._closed()
        else:
            waiter: asyncio.Future[T | BaseException] = (
                asyncio.get_running_loop().create_future())
            self._waiters.append(waiter)
            try:
                item = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._put_back(waiter.result())
                else:
                    try:
                        self._waiters.remove(waiter)
                    except ValueError:
                        pass
                raise
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self, error: Callable[[], BaseException], keep: bool) -> None:
        """Every waiting task and every later ``get`` raises ``error()``; with ``keep``, only
        once what is queued has been taken."""
        self._closed = error
        if not keep:
            self._items.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error())

    @property
    def closed(self) -> bool:
        return self._closed is not None


class _Handoff(threading.Thread):
    """A thread that takes batches from the core (``take`` waits with the GIL released) and
    hands each to the loop (``deliver``, on the loop's thread), one batch at a time: it takes
    the next only once the loop has delivered the last and has room (``ready``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, take: Callable[[], Any],
                 deliver: Callable[[Any], bool], done: Callable[[BaseException], bool]) -> None:
        super().__init__(name=THREAD_NAME, daemon=True)
        self._loop = loop
        self._take = take
        self._deliver = deliver
        self._done = done
        self.ready = threading.Event()
        self.ready.set()
        self.stopping = False

    def _on_loop(self, batch: Any) -> None:
        if self._deliver(batch):
            self.ready.set()

    def run(self) -> None:
        while not self.stopping:
            if not self.ready.wait(0.1):  # no room on the loop yet: look at `stopping` again
                continue
            self.ready.clear()
            try:
                batch = self._take()
            except BaseException as e:  # the core's error ends the thread, after the loop hears it
                self._call(self._done, e)
                return
            if not self._call(self._on_loop, batch):
                return

    def _call(self, fn: Callable[[Any], object], arg: Any) -> bool:
        try:
            self._loop.call_soon_threadsafe(fn, arg)
            return True
        except RuntimeError:  # the loop is closed: nobody is left to hand anything to
            return False

    def stop(self) -> None:
        self.stopping = True
        self.ready.set()


# ---------------------------------------------------------------------------------------------
# Errors


def _refusal(error: OSError, peer: object, sending: bool = False) -> OSError:
    """An ICMP "port unreachable" as the next call reports it (``ECONNREFUSED``; Windows:
    ``WSAECONNRESET`` on a UDP socket) as one ``ConnectionRefusedError`` that says what it
    means; any other error unchanged."""
    if not isinstance(error, (ConnectionRefusedError, ConnectionResetError)):
        return error
    where = f" at {peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else ""
    lost = " (this datagram was not sent)" if sending else ""
    return ConnectionRefusedError(
        errno.ECONNREFUSED,
        f"Connection refused: nothing listens on the port{where}: the system's ICMP 'port "
        f"unreachable' answer to an earlier datagram; raised once{lost}, the socket still "
        "works")


def _closed() -> OSError:
    return OSError(errno.EBADF, os.strerror(errno.EBADF))


def _check_bufsize(bufsize: object, method: str) -> int:
    if isinstance(bufsize, bool) or not isinstance(bufsize, int):
        raise TypeError(f"{method}(): bufsize must be an int, not {type(bufsize).__name__}")
    if bufsize <= 0:
        raise ValueError(f"{method}(): bufsize must be positive, got {bufsize}")
    return bufsize


#: Hosts already seen, and whether each is an address literal (no name lookup needed).
_LITERAL: dict[object, bool] = {}


def _is_literal(host: object) -> bool:
    if not isinstance(host, (str, bytes)):
        return True  # nothing to look up: the core says what is wrong with it
    known = _LITERAL.get(host)
    if known is None:
        text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        if text in ("", "<broadcast>"):
            known = True
        else:
            try:
                ipaddress.ip_address(text)
                known = True
            except ValueError:
                known = False
        if len(_LITERAL) >= 1024:
            _LITERAL.clear()
        _LITERAL[host] = known
    return known


async def _lookup(address: Address, family: int | None) -> tuple[int, Address]:
    """``address`` with its host name looked up by the loop (never by a call that would block
    it), and the family it takes: IPv4 first, as ``udplab.ChatS`` does."""
    if not isinstance(address, tuple) or len(address) < 2:
        return (family or _family_of(address)), address
    host = address[0]
    if _is_literal(host):
        return (family or _family_of(address)), address
    name = host.decode("ascii") if isinstance(host, bytes) else host
    loop = asyncio.get_running_loop()
    import socket as stdlib

    infos = await loop.getaddrinfo(name, address[1], family=family or 0,
                                   type=stdlib.SOCK_DGRAM)
    infos.sort(key=lambda info: info[0] != stdlib.AF_INET)
    found_family, _, _, _, sockaddr = infos[0]
    return int(found_family), (sockaddr[0], *address[1:])


def _family_of(address: object) -> int:
    import socket as stdlib

    if isinstance(address, tuple) and address:
        if len(address) == 4:
            return int(stdlib.AF_INET6)
        host = address[0]
        if isinstance(host, str) and ":" in host:
            return int(stdlib.AF_INET6)
    return int(stdlib.AF_INET)


# ---------------------------------------------------------------------------------------------
# The socket


class Socket:
    """A UDP socket for asyncio: ``udplab.socket``'s calls, awaited, on one event loop.

    Made by ``await udplab.aio.bind(address)`` or ``await udplab.aio.connect(address)`` (or
    ``async with`` either). ``recvfrom``, ``recv``, ``sendto`` and ``send`` take the arguments
    of ``udplab.socket``'s and raise its errors; ``async for data, address in sock`` receives
    until the socket is closed. Use it from the loop it was made on.
    """

    def __init__(self, sock: UdpSocket, loop: asyncio.AbstractEventLoop) -> None:
        self._sock = sock
        self._loop = loop
        self._fd = sock.fileno()
        self._peer: Address | None = None
        self._reading = False
        self._writers: list[asyncio.Future[None]] = []
        self._handoff: _Handoff | None = None
        self._inbox: _Mailbox[tuple[bytes, Address]] = _Mailbox(INBOX, self._resume)
        try:
            loop.add_reader(self._fd, self._readable)
            self._reading = True
        except NotImplementedError:
            self._handoff = _Handoff(loop, self._take, self._delivered, self._failed)
            self._handoff.start()

    # -- receiving

    def _readable(self) -> None:
        """The socket is readable: take what is queued, without waiting."""
        try:
            batch, error = self._sock._recv_batch(
                self._room() if self._inbox else BATCH, 0.0)
        except OSError as e:
            batch, error = [], e
        put = self._inbox.put
        for item in batch:
            put(item)
        if error is not None:
            self._failed(error)
            if self._reading:
                # The error came with POLLERR, on which libuv (uvloop) stops watching the
                # descriptor while it still counts as registered (uv__poll_io): watch anew.
                self._loop.remove_reader(self._fd)
                self._loop.add_reader(self._fd, self._readable)
        if self._inbox.full and self._reading:
            # Nobody takes them: leave the rest in the kernel's buffer, which counts its drops.
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _take(self) -> tuple[list[tuple[bytes, Address]], OSError | None]:
        """On the hand-off thread: wait for datagrams (until closed)."""
        try:
            return self._sock._recv_batch(self._room(), None)
        except OSError as e:
            return [], e

    def _room(self) -> int:
        """How many to take now: a batch, or what the inbox still holds (it only grows on the
        loop's thread, which waits for this batch)."""
        return max(1, min(BATCH, INBOX - len(self._inbox)))

    def _delivered(self, batch: tuple[list[tuple[bytes, Address]], OSError | None]) -> bool:
        datagrams, error = batch
        put = self._inbox.put
        for item in datagrams:
            put(item)
        if error is not None:
            return self._failed(error)
        return not self._inbox.full

    def _failed(self, error: BaseException) -> bool:
        """A receive failed: a refusal (or another error) is raised once by the next receive;
        closing is ``close()``'s business. Whether to go on receiving."""
        if self._sock.closed or not isinstance(error, OSError):
            return False
        self._inbox.put(_refusal(error, self._peer))
        return not self._inbox.full

    def _resume(self) -> None:
        if self._handoff is not None:
            self._handoff.ready.set()
        elif not self._reading and not self._sock.closed:
            self._loop.add_reader(self._fd, self._readable)
            self._reading = True

    async def recvfrom(self, bufsize: int) -> tuple[bytes, Address]:
        """The next datagram and its sender, ``(data, address)``; a datagram longer than
        ``bufsize`` is truncated and the rest discarded, as ``udplab.socket`` does."""
        _check_bufsize(bufsize, "recvfrom")
        self._on_its_loop()
        data, addr = await self._inbox.get()
        return (data[:bufsize] if len(data) > bufsize else data), addr

    async def recv(self, bufsize: int) -> bytes:
        """The next datagram's data (truncated to ``bufsize``)."""
        _check_bufsize(bufsize, "recv")
        self._on_its_loop()
        data, _addr = await self._inbox.get()
        return data[:bufsize] if len(data) > bufsize else data

    def __aiter__(self) -> Socket:
        return self

    async def __anext__(self) -> tuple[bytes, Address]:
        """The next ``(data, address)``, whole; the iteration ends when the socket is
        closed."""
        self._on_its_loop()
        try:
            return await self._inbox.get()
        except OSError as e:
            if self._sock.closed and e.errno == errno.EBADF:
                raise StopAsyncIteration from None
            raise

    def _on_its_loop(self) -> None:
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError(f"{self!r} belongs to the event loop it was made on: use it "
                               "there (each asyncio.run() has a loop of its own)")

    # -- sending

    async def sendto(self, data: Buffer, address: Address) -> int:
        """Send one datagram to ``address``; returns the bytes sent. A host name is looked up
        by the loop."""
        self._on_its_loop()
        if type(address) is tuple and address and not _is_literal(address[0]):
            _family, address = await _lookup(address, self._sock.family)
        try:  # at once, as nearly always: the socket never waits
            return self._sock.sendto(data, address)
        except _SEND_AGAIN as e:
            return await self._send_later(e, self._sock.sendto, data, address)

    async def send(self, data: Buffer) -> int:
        """Send to the connected address (``OSError`` EDESTADDRREQ if not connected)."""
        self._on_its_loop()
        try:
            return self._sock.send(data)
        except _SEND_AGAIN as e:
            return await self._send_later(e, self._sock.send, data)

    async def _send_later(self, error: OSError, call: Callable[..., int], *args: Any) -> int:
        """A send that met an ICMP refusal (raised once, with its hint) or found the buffer
        full (tried again once there is room)."""
        delay = 0.0005
        while True:
            if not isinstance(error, BlockingIOError):
                raise _refusal(error, self._peer, sending=True) from None
            if self._handoff is None:
                await self._writable()
            else:  # no add_writer here: try again a little later
                await asyncio.sleep(delay)
                delay = min(delay * 2, _SEND_RETRY_MAX)
            try:
                return call(*args)
            except _SEND_AGAIN as e:
                error = e

    async def _writable(self) -> None:
        """Wait until the send buffer has room (every task waiting for it wakes)."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        if not self._writers:
            self._loop.add_writer(self._fd, self._wake_writers)
        self._writers.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._writers:
                self._writers.remove(waiter)
                if not self._writers:
                    self._loop.remove_writer(self._fd)

    def _wake_writers(self) -> None:
        self._loop.remove_writer(self._fd)
        writers, self._writers = self._writers, []
        for waiter in writers:
            if not waiter.done():
                waiter.set_result(None)

    # -- the rest

    def close(self) -> None:
        """Close the socket: every task waiting in ``recv``/``recvfrom`` (or for room to send)
        raises ``OSError`` (EBADF), as later calls do; an ``async for`` ends. Idempotent."""
        if self._sock.closed:
            return
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False
        if self._writers:
            self._loop.remove_writer(self._fd)
        if self._handoff is not None:
            self._handoff.stop()
        self._sock.close()  # wakes a hand-off thread waiting in the core
        self._inbox.close(_closed, keep=False)
        writers, self._writers = self._writers, []
        for waiter in writers:
            if not waiter.done():
                waiter.set_exception(_closed())

    @property
    def closed(self) -> bool:
        return self._sock.closed

    def getsockname(self) -> Address:
        """The local ``(host, port)``."""
        return self._sock.getsockname()

    def getpeername(self) -> Address:
        """The connected ``(host, port)`` (``OSError`` ENOTCONN if not connected)."""
        return self._sock.getpeername()

    @property
    def family(self) -> Any:
        """``socket.AF_INET`` or ``socket.AF_INET6``."""
        return self._sock.family

    def fileno(self) -> int:
        """The socket's descriptor (-1 once closed)."""
        return self._sock.fileno()

    async def __aenter__(self) -> Socket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " [closed]" if self.closed else ""
        parts = [f"<udplab.aio.Socket{state} fd={self.fileno()}"]
        for name, get in (("laddr", self.getsockname), ("raddr", self.getpeername)):
            try:
                parts.append(f"{name}={get()!r}")
            except OSError:
                pass
        return ", ".join(parts) + ">"


class _Opening(Awaitable[Socket]):
    """What ``bind`` and ``connect`` return: awaited, the socket; as ``async with``, the
    socket closed at the end of the block."""

    def __init__(self, address: Address, connect: bool) -> None:
        self._address = address
        self._connect = connect
        self._socket: Socket | None = None

    async def _open(self) -> Socket:
        family, address = await _lookup(self._address, None)
        sock = UdpSocket(family)
        try:
            sock.setblocking(False)
            if self._connect:
                sock.connect(address)
            else:
                sock.bind(address)
            made = Socket(sock, asyncio.get_running_loop())
        except BaseException:
            sock.close()
            raise
        if self._connect:
            made._peer = sock.getpeername()
        return made

    def __await__(self) -> Generator[Any, None, Socket]:
        return self._open().__await__()

    async def __aenter__(self) -> Socket:
        self._socket = await self._open()
        return self._socket

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._socket is not None:
            self._socket.close()


def bind(address: Address) -> _Opening:
    """A socket bound to ``address`` (``(host, port)``; port 0 lets the system pick): ``sock =
    await udplab.aio.bind(...)`` or ``async with udplab.aio.bind(...) as sock``. The family
    follows the address (IPv6 for ``"::1"`` or a 4-tuple); a host name is looked up by the
    loop, IPv4 first."""
    return _Opening(address, connect=False)


def connect(address: Address) -> _Opening:
    """A socket connected to ``address``: the system picks the local port, ``send`` sends
    there, and only its datagrams are received. Awaited or ``async with``, as ``bind``."""
    return _Opening(address, connect=True)


# ---------------------------------------------------------------------------------------------
# The chat


class ChatEvent(NamedTuple):
    """One thing that happened on a chat server, as ``ChatS.events()`` yields it."""

    time: float
    """The wall clock when it happened (as ``time.time()``)."""
    kind: str
    """``"join"``, ``"message"``, ``"quit"`` or ``"expire"`` (the last two: a client left)."""
    addr: Address
    """The client's address."""
    payload: bytes
    """The message (without the prefix) for ``"message"``; else ``b""``."""


async def _start(obj: chat.ChatS | chat.ChatC, host: str) -> None:
    """Start a threaded chat object: on the loop's thread (a socket and two threads take well
    under a millisecond), or on a worker thread when its host name needs a lookup."""
    if _is_literal(host):
        obj.start()
    else:
        await asyncio.get_running_loop().run_in_executor(None, obj.start)


async def _stop(obj: chat.ChatS | chat.ChatC) -> None:
    """Stop it on a worker thread: stopping joins its threads and flushes its capture."""
    if obj.running:
        await asyncio.get_running_loop().run_in_executor(None, obj.stop)


_ChatT = TypeVar("_ChatT", chat.ChatC, chat.ChatS)
_SelfT = TypeVar("_SelfT", bound="_Awaited[Any]")


class _Awaited(Generic[_ChatT]):
    """What both chat objects share: a threaded one inside, started and stopped awaited."""

    _inner: _ChatT

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """Whether it has been started and not stopped."""
        return self._inner.running

    def stats(self) -> dict[str, Any]:
        """The counters of the threaded class's ``stats()``."""
        return self._inner.stats()

    async def __aenter__(self: _SelfT) -> _SelfT:
        if not self.running:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return repr(self._inner).replace("<udplab.", "<udplab.aio.", 1)


class ChatC(_Awaited[chat.ChatC]):
    """The chat client of ``udplab.ChatC`` for asyncio: the same options, the same threads
    (``user`` receives and logs, ``hb`` heartbeats), and the messages awaited.

    ``async with udplab.aio.ChatC(rip, rport) as c``, then ``await c.send(b"hi")``,
    ``await c.recv()`` and ``async for msg in c`` (until ``stop()``). ``hb()``, ``stats()``,
    ``addr``, ``raddr``, ``name``, ``interval`` and ``running`` are as for ``udplab.ChatC``.
    """

    def __init__(
        self,
        rip: str,
        rport: int,
        *,
        interval: float | None = chat.DEFAULT_INTERVAL,
        heartbeat: Buffer = b"HB",
        quit: Buffer = b"quit",
        queue: int = 1024,
        name: str | None = None,
        capture: CaptureTarget | None = None,
        capture_limit: int = DEFAULT_CAPTURE_LIMIT,
        daemon: bool = False,
    ) -> None:
        self._inner = chat.ChatC(rip, rport, interval=interval, heartbeat=heartbeat, quit=quit,
                                queue=queue, name=name, capture=capture,
                                capture_limit=capture_limit, daemon=daemon)
        self._rip = rip
        self._inbox: _Mailbox[bytes] | None = None
        self._handoff: _Handoff | None = None

    async def start(self) -> None:
        """Open the port and start receiving and heartbeating, as ``udplab.ChatC.start``."""
        await _start(self._inner, self._rip)
        core = self._inner._running_core()
        loop = asyncio.get_running_loop()
        inbox: _Mailbox[bytes] = _Mailbox(BATCH, self._resume)
        self._inbox = inbox

        def deliver(batch: list[bytes]) -> bool:
            for data in batch:
                inbox.put(data)
            return not inbox.full

        def done(error: BaseException) -> bool:
            inbox.close(_closed, keep=True)
            return False

        self._handoff = _Handoff(loop, lambda: core.recv_many(None, BATCH), deliver, done)
        self._handoff.start()

    def _resume(self) -> None:
        """Room again: take more from the core (while the loop holds a batch nobody took, the
        rest wait in the core's queue: ``queue`` long, oldest dropped first, as for
        ``udplab.ChatC``)."""
        if self._handoff is not None:
            self._handoff.ready.set()

    async def stop(self) -> None:
        """Say quit, stop the threads, close the port; messages received before it can still
        be taken. Idempotent."""
        core, handoff, inbox = self._inner._core, self._handoff, self._inbox
        await _stop(self._inner)
        if handoff is None or core is None or inbox is None or inbox.closed:
            return
        handoff.stop()  # its last batch reaches the loop before the join returns
        await asyncio.get_running_loop().run_in_executor(None, handoff.join)
        while True:  # what is still in the core's queue, in order, without waiting
            try:
                batch = core.recv_many(0.0, BATCH)
            except OSError:
                break
            for data in batch:
                inbox.put(data)
        inbox.close(_closed, keep=True)

    async def send(self, msg: Buffer) -> None:
        """Send a chat message (bytes; encode a str first). Never blocks the loop: while the
        send buffer is full it waits with ``asyncio.sleep``, up to 0.5 s as ``udplab.ChatC``
        does, then raises ``BlockingIOError``."""
        core = self._inner._running_core()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CHAT_SEND_WAIT
        delay = 0.0005
        while True:
            try:
                return core.try_send(msg)
            except BlockingIOError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, _SEND_RETRY_MAX)

    async def recv(self, timeout: float | None = None) -> bytes:
        """The next datagram from the server (with its prefix); ``TimeoutError`` after
        ``timeout`` seconds. Datagrams received before ``stop()`` can still be taken after
        it; then ``OSError`` (EBADF)."""
        if self._inbox is None:
            raise RuntimeError("ChatC is not running: call start() first")
        if timeout is None:
            return await self._inbox.get()
        try:
            return await asyncio.wait_for(self._inbox.get(), timeout)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise TimeoutError("timed out") from None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[bytes]:
        while True:
            try:
                yield await self.recv()
            except OSError as e:
                if e.errno == errno.EBADF:
                    return
                raise

    def hb(self, interval: float | None) -> None:
        """Re-time (or with ``None`` pause) the heartbeat, as ``udplab.ChatC.hb``."""
        self._inner.hb(interval)

    @property
    def addr(self) -> Address | None:
        """The local address (``None`` before ``start()``)."""
        return self._inner.addr

    @property
    def raddr(self) -> Address:
        """The server's address."""
        return self._inner.raddr

    @property
    def name(self) -> str | None:
        return self._inner.name

    @property
    def interval(self) -> float | None:
        return self._inner.interval



Callback = Callable[..., Optional[Awaitable[object]]]


class _LoopServer(chat.ChatS):
    """A threaded ``ChatS`` whose thread ``callbacks`` hands every batch of notices to a
    function (``aio.ChatS`` gives one that passes them to its loop)."""

    def __init__(self, forward: Callable[[list[chat.Notice]], None], *args: Any,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._forward = forward

    def _notice_handler(self) -> Callable[[list[chat.Notice]], None]:
        return self._forward


class ChatS(_Awaited[chat.ChatS]):
    """The chat server of ``udplab.ChatS`` for asyncio: the same options, the same threads
    (``servicer`` receives, broadcasts and expires), and what happens on it awaited.

    ``async with udplab.aio.ChatS(ip, port, inval) as s``, then ``async for event in
    s.events()``: every join, message, quit and expiry from then on, as a ``ChatEvent``. The
    callbacks ``on_join(addr)``, ``on_message(addr, payload)`` and ``on_leave(addr, "quit" |
    "expire")`` may be plain functions or coroutine functions (``async def``); they run on the
    loop, one at a time, in the order things happened, and an exception is logged (the server
    goes on). ``addr``, ``inval``, ``raddrs``, ``stats()`` and ``running`` are as for
    ``udplab.ChatS``.
    """

    def __init__(
        self,
        ip: str,
        port: int,
        inval: float,
        *,
        heartbeat: Buffer = b"HB",
        quit: Buffer = b"quit",
        prefix: Buffer = b"ACK",
        echo: bool = True,
        max_clients: int = 10_000,
        max_payload: int = 65_507,
        rcvbuf: int | None = 4 << 20,
        history: int = 4096,
        spin: float = 0.0002,
        on_join: Callback | None = None,
        on_message: Callback | None = None,
        on_leave: Callback | None = None,
        capture: CaptureTarget | None = None,
        capture_limit: int = DEFAULT_CAPTURE_LIMIT,
        daemon: bool = False,
    ) -> None:
        for name, fn in (("on_join", on_join), ("on_message", on_message),
                         ("on_leave", on_leave)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, not {type(fn).__name__}")
        self._inner = _LoopServer(
            self._forward, ip, port, inval, heartbeat=heartbeat, quit=quit, prefix=prefix,
            echo=echo, max_clients=max_clients, max_payload=max_payload, rcvbuf=rcvbuf,
            history=history, spin=spin, capture=capture, capture_limit=capture_limit,
            daemon=daemon)
        self._ip = ip
        self._history = history
        self._callbacks: chat.Callbacks = (on_join, on_message, on_leave)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: list[_Mailbox[ChatEvent]] = []
        self._pending: _Mailbox[chat.Notice] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopped = False

    def _forward(self, notices: list[chat.Notice]) -> None:
        """On the thread ``callbacks``: hand the batch to the loop."""
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._arrived, notices)
            except RuntimeError:  # the loop is closed
                pass

    def _arrived(self, notices: list[chat.Notice]) -> None:
        for notice in notices:
            event = ChatEvent(*notice)
            for box in self._subscribers:
                box.put(event)
            if self._pending is not None:
                self._pending.put(notice)

    async def _dispatch(self, pending: _Mailbox[chat.Notice]) -> None:
        """Run the callbacks, one at a time, in order, until stopped and done."""
        while True:
            try:
                notice = await pending.get()
            except OSError:
                return
            call = chat._callback(self._callbacks, notice)
            if call is None:
                continue
            name, fn, args = call
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except BaseException:
                chat.log.exception("chat callback %s%r raised; the server goes on", name, args)

    async def start(self) -> None:
        """Bind and serve, as ``udplab.ChatS.start``."""
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        # Bounded as the history is: callbacks slower than the chat lose the oldest. Made
        # first, so that it keeps what happens while the start is awaited.
        pending: _Mailbox[chat.Notice] | None = None
        if any(cb is not None for cb in self._callbacks):
            pending = _Mailbox(max(self._history, BATCH))
        self._pending = pending
        try:
            await _start(self._inner, self._ip)
        except BaseException:
            self._pending = None
            raise
        if pending is not None:
            self._dispatcher = self._loop.create_task(self._dispatch(pending))

    async def stop(self) -> None:
        """Stop serving and free the port; the events that happened before it still reach
        ``events()`` and the callbacks. Idempotent."""
        await _stop(self._inner)
        self._stopped = True
        for box in self._subscribers:
            box.close(_closed, keep=True)
        self._subscribers = []
        if self._pending is not None:
            self._pending.close(_closed, keep=True)
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not asyncio.current_task():
            await dispatcher

    def events(self) -> AsyncIterator[ChatEvent]:
        """Every join, message, quit and expiry from now until ``stop()``, as ``ChatEvent``
        values (``async for event in server.events()``). Each call gives an iterator of its
        own that sees them all; one that is not read keeps the last ``history`` events."""
        box: _Mailbox[ChatEvent] = _Mailbox(max(self._history, 1))
        if self._stopped:
            box.close(_closed, keep=True)
        else:
            self._subscribers.append(box)
        return self._events(box)

    async def _events(self, box: _Mailbox[ChatEvent]) -> AsyncIterator[ChatEvent]:
        try:
            while True:
                try:
                    yield await box.get()
                except OSError:
                    return
        finally:
            if box in self._subscribers:
                self._subscribers.remove(box)

    @property
    def addr(self) -> Address:
        """The address the server is bound to."""
        return self._inner.addr

    @property
    def inval(self) -> float:
        return self._inner.inval

    @property
    def raddrs(self) -> dict[Address, float]:
        """A copy of ``{client address: last seen}``."""
        return self._inner.raddrs

