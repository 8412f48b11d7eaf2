"""udplab.socket against the stdlib socket: the same calls must give the same outcome."""

from __future__ import annotations

import array
import errno
import os
import platform
import signal
import socket as stdlib
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import udplab
from conftest import ipv6_available, wait_until

BOTH = pytest.mark.parametrize("mod", [stdlib, udplab], ids=["stdlib", "udplab"])
V6 = pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback")


def outcome(fn: Callable[[], Any]) -> Any:
    """What a call did: its value, or its exception class and errno."""
    try:
        return ("ok", fn())
    except Exception as e:  # noqa: BLE001 - the exception is the result under test
        return ("raised", type(e), getattr(e, "errno", None))


@pytest.fixture
def peer() -> Iterator[stdlib.socket]:
    """A stdlib socket on a free loopback port."""
    s = stdlib.socket(stdlib.AF_INET, stdlib.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    yield s
    s.close()


def bound(mod: Any, family: int = stdlib.AF_INET) -> Any:
    s = mod.socket(family, mod.SOCK_DGRAM)
    s.bind(("127.0.0.1" if family == stdlib.AF_INET else "::1", 0))
    s.settimeout(5)
    return s


def same(call: Callable[[Any], Any]) -> None:
    """Run ``call`` with a fresh bound socket of each module and compare the outcomes."""
    results = []
    for mod in (stdlib, udplab):
        s = bound(mod)
        try:
            results.append(outcome(lambda s=s: call(s)))
        finally:
            s.close()
    assert results[0] == results[1]


def test_constants_equal_the_stdlib() -> None:
    assert udplab.AF_INET == stdlib.AF_INET
    assert udplab.AF_INET6 == stdlib.AF_INET6
    assert udplab.SOCK_DGRAM == stdlib.SOCK_DGRAM
    assert isinstance(udplab.socket(type=udplab.SOCK_DGRAM), udplab.UdpSocket)


def test_other_socket_types_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="datagram-only"):
        udplab.socket(stdlib.AF_INET, stdlib.SOCK_STREAM)
    with pytest.raises(ValueError, match="AF_INET"):
        udplab.socket(stdlib.AF_UNIX, stdlib.SOCK_DGRAM)


def test_send_unconnected_is_edestaddrreq() -> None:
    same(lambda s: s.send(b"x"))
    with pytest.raises(OSError) as info:
        bound(udplab).send(b"x")
    assert info.value.errno == errno.EDESTADDRREQ


def test_bind_busy_port_is_eaddrinuse(peer: stdlib.socket) -> None:
    for mod in (stdlib, udplab):
        with mod.socket(type=mod.SOCK_DGRAM) as s, pytest.raises(OSError) as info:
            s.bind(peer.getsockname())
        assert info.value.errno == errno.EADDRINUSE


@BOTH
def test_recvfrom_returns_data_and_address(mod: Any, peer: stdlib.socket) -> None:
    with bound(mod) as s:
        peer.sendto(b"hello", s.getsockname())
        data, addr = s.recvfrom(1024)
        assert (data, addr) == (b"hello", peer.getsockname())
        assert type(data) is bytes and type(addr) is tuple


@BOTH
def test_long_datagram_is_truncated_and_rest_discarded(mod: Any, peer: stdlib.socket) -> None:
    with bound(mod) as s:
        peer.sendto(b"0123456789", s.getsockname())
        peer.sendto(b"next", s.getsockname())
        assert s.recv(4) == b"0123"
        assert s.recv(1024) == b"next"


def test_timeout_raises_timeout_error() -> None:
    same(lambda s: (s.settimeout(0.05), s.recv(16)))
    s = bound(udplab)
    s.settimeout(0.05)
    with pytest.raises(TimeoutError, match="timed out"):
        s.recvfrom(16)


def test_nonblocking_without_data_is_blocking_io_error() -> None:
    same(lambda s: (s.setblocking(False), s.recv(16)))


@pytest.mark.parametrize("data", ["text", 42, None])
def test_non_bytes_data_is_type_error(data: Any) -> None:
    same(lambda s: s.sendto(data, ("127.0.0.1", 9)))


@pytest.mark.parametrize("make", [bytes, bytearray, memoryview], ids=lambda f: f.__name__)
def test_bytes_like_data_is_accepted(make: Any, peer: stdlib.socket) -> None:
    with bound(udplab) as s:
        assert s.sendto(make(b"abc"), peer.getsockname()) == 3
        assert peer.recv(16) == b"abc"


@pytest.mark.parametrize(
    "data",
    [array.array("H", [1, 2, 515]), memoryview(b"abcdef")[1:4], memoryview(b"abcdef")[::2]],
    ids=["array of uint16", "memoryview slice", "strided memoryview"],
)
def test_any_buffer_is_sent_as_its_bytes_like_the_stdlib(data: Any, peer: stdlib.socket) -> None:
    """Read through memoryview (the stable ABI's way): the stdlib's bytes, or its error."""
    got = []
    for mod in (stdlib, udplab):
        with bound(mod) as s:
            got.append(outcome(lambda s=s: (s.sendto(data, peer.getsockname()), peer.recv(64))))
    assert got[0] == got[1]


@pytest.mark.parametrize("port", [-1, 65536, 2**70])
def test_port_out_of_range_is_overflow_error(port: int) -> None:
    same(lambda s: s.sendto(b"x", ("127.0.0.1", port)))
    with pytest.raises(OverflowError, match="0-65535"):
        bound(udplab).sendto(b"x", ("127.0.0.1", port))


@pytest.mark.parametrize(
    "addr", ["127.0.0.1", ("127.0.0.1",), ("127.0.0.1", "80"), (1, 80), ("no.such.host.invalid", 9)]
)
def test_bad_addresses_fail_like_the_stdlib(addr: Any) -> None:
    same(lambda s: s.sendto(b"x", addr))


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.recv(1),
        lambda s: s.recvfrom(1),
        lambda s: s.sendto(b"x", ("127.0.0.1", 9)),
        lambda s: s.send(b"x"),
        lambda s: s.bind(("127.0.0.1", 0)),
        lambda s: s.connect(("127.0.0.1", 9)),
        lambda s: s.getsockname(),
    ],
)
def test_closed_socket_is_ebadf(call: Callable[[Any], Any]) -> None:
    def closed_call(s: Any) -> Any:
        s.close()
        return call(s)

    same(closed_call)
    with pytest.raises(OSError) as info:
        closed_call(bound(udplab))
    assert info.value.errno == errno.EBADF


def test_close_twice_and_fileno_after_close() -> None:
    same(lambda s: (s.close(), s.close(), s.fileno()))


def test_connection_refused_keeps_errno_and_subclass() -> None:
    """A connected socket sees the ICMP 'port unreachable' of an earlier send."""
    free = stdlib.socket(stdlib.AF_INET, stdlib.SOCK_DGRAM)
    free.bind(("127.0.0.1", 0))
    addr = free.getsockname()
    free.close()  # nobody listens there now
    for mod in (stdlib, udplab):
        with bound(mod) as s:
            s.connect(addr)
            s.send(b"anyone?")
            with pytest.raises(ConnectionRefusedError) as info:
                s.recv(16)
            assert info.value.errno == errno.ECONNREFUSED


@BOTH
def test_connect_then_send_and_peername(mod: Any, peer: stdlib.socket) -> None:
    with bound(mod) as s:
        s.connect(peer.getsockname())
        assert s.getpeername() == peer.getsockname()
        s.send(b"via connect")
        data, addr = peer.recvfrom(64)
        assert (data, addr) == (b"via connect", s.getsockname())


def test_settimeout_validation_matches() -> None:
    for value in (-1, float("nan")):
        same(lambda s, value=value: s.settimeout(value))
    s = bound(udplab)
    s.settimeout(2.5)
    assert s.gettimeout() == 2.5
    s.setblocking(True)
    assert s.gettimeout() is None


def test_unbound_getsockname_matches() -> None:
    for mod in (stdlib, udplab):
        with mod.socket(type=mod.SOCK_DGRAM) as s:
            assert s.getsockname() == ("0.0.0.0", 0)


def test_bufsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bufsize must be positive"):
        bound(udplab).recv(0)
    same(lambda s: s.recv(-1))


def test_repr_and_context_manager() -> None:
    with udplab.socket(type=udplab.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert f"laddr=('127.0.0.1', {port})" in repr(s)
    assert "[closed]" in repr(s)
    assert s.closed


# --- interop ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family,host", [(stdlib.AF_INET, "127.0.0.1"), pytest.param(stdlib.AF_INET6, "::1", marks=V6)]
)
def test_interop_both_ways(family: int, host: str) -> None:
    ours = bound(udplab, family)
    theirs = bound(stdlib, family)
    try:
        ours.sendto(b"from udplab", theirs.getsockname())
        data, addr = theirs.recvfrom(64)
        assert (data, addr) == (b"from udplab", ours.getsockname())
        theirs.sendto(b"from stdlib", addr)
        data, addr = ours.recvfrom(64)
        assert (data, addr) == (b"from stdlib", theirs.getsockname())
        if family == stdlib.AF_INET6:
            assert len(addr) == 4
    finally:
        ours.close()
        theirs.close()


# --- the tutorial's sections 1 and 2, in our words, with matching ports ----------------------


def test_tutorial_server_and_client_run_on_udplab() -> None:
    import udplab as socket  # the notes' code, with only this import changed

    servicer = socket.socket(type=socket.SOCK_DGRAM)
    servicer.bind(("127.0.0.1", 0))
    addr = servicer.getsockname()  # the client uses the server's real port (mistake 3)

    def serve() -> None:
        data, raddr = servicer.recvfrom(1024)
        servicer.sendto(b"ack" + data, raddr)

    t = threading.Thread(target=serve)
    t.start()
    user = socket.socket(type=socket.SOCK_DGRAM)
    user.settimeout(5)
    user.sendto(b"msg", addr)
    assert user.recv(1024) == b"ackmsg"
    t.join(5)
    user.connect(addr)  # the commented-out variant: connect, then send
    with pytest.raises(OSError) as info:
        servicer.send(b"no destination")  # an unconnected server cannot send()
    assert info.value.errno == errno.EDESTADDRREQ
    user.close()
    servicer.close()


# --- Ctrl-C ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["recv", "recvfrom"])
def test_sigint_interrupts_a_blocking_receive(method: str) -> None:
    assert threading.current_thread() is threading.main_thread()
    s = bound(udplab)
    s.settimeout(None)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            getattr(s, method)(1024)
    finally:
        timer.cancel()
        s.close()


@pytest.mark.parametrize("method", ["recv", "recvfrom"])
def test_close_from_another_thread_wakes_a_blocked_receive(method: str) -> None:
    """The blocked call fails with EBADF at once (no panic, no wait for a timeout)."""
    s = bound(udplab)
    s.settimeout(None)
    outcome: list[BaseException] = []

    def receive() -> None:
        try:
            getattr(s, method)(1024)
        except BaseException as e:  # noqa: BLE001 - the exception is the result under test
            outcome.append(e)

    t = threading.Thread(target=receive, daemon=True)  # daemon: a failed test must not hang
    t.start()
    # Proof that it blocked: the thread sits in poll(2), as CPython's blocking calls do (on
    # both paths: the portable one wakes every 20 ms to look at close() too).
    wait_until(lambda: in_wait(t.native_id), timeout=5)
    s.close()
    t.join(5)  # a bound for a hang, not a speed claim
    assert not t.is_alive()
    assert isinstance(outcome[0], OSError) and outcome[0].errno == errno.EBADF


# The system calls a blocked receive sits in, by architecture, as /proc/<pid>/task/<tid>/syscall
# shows them: poll(2) and ppoll(2).
WAIT_SYSCALLS = {"x86_64": {"7", "271"}, "aarch64": {"73"}}


def in_wait(tid: int | None) -> bool:
    numbers = WAIT_SYSCALLS.get(platform.machine())
    if numbers is None:
        pytest.skip(f"the wait's system call number on {platform.machine()} is not listed here")
    with open(f"/proc/self/task/{tid}/syscall") as f:
        return f.read().split()[0] in numbers


@pytest.mark.parametrize("seconds", [1e18, 1.5e19])
def test_a_timeout_past_the_clocks_range_waits_like_none(seconds: float) -> None:
    s = bound(udplab)
    s.settimeout(seconds)
    closer = threading.Timer(0.2, s.close)
    closer.start()
    try:
        with pytest.raises(OSError) as info:  # woken by close(), not a panic or a timeout
            s.recv(16)
        assert info.value.errno == errno.EBADF
    finally:
        closer.cancel()


@pytest.mark.parametrize("method", ["sendto", "connect"])
def test_broadcast_is_refused_with_a_reason(method: str) -> None:
    with bound(udplab) as s:
        with pytest.raises(PermissionError, match="SO_BROADCAST") as info:
            if method == "sendto":
                s.sendto(b"x", ("<broadcast>", 9))
            else:
                s.connect(("<broadcast>", 9))
        assert info.value.errno == errno.EACCES  # what the stdlib raises without SO_BROADCAST


# --- threads sharing one socket ----------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity")
def test_threads_switching_the_mode_leave_a_blocking_receive_waiting_not_spinning() -> None:
    """Two threads switch one socket between blocking and non-blocking calls; afterwards a
    blocking receive with nothing to read must sleep in its wait, not spin.

    Before e498f27 each call read a cached O_NONBLOCK mode, changed the descriptor's mode and
    stored the new mode, with no lock. A thread preempted between its change and its store
    recorded "blocking" while the other thread had meanwhile left the descriptor non-blocking:
    every later blocking call trusted the cache, met EAGAIN at once and went round again, taking
    the GIL on every pass. Here ``toggle`` alternates the two kinds of call in a loop and
    ``interrupt``, woken by a timer on the same CPU, preempts it at an arbitrary point of that
    loop (sometimes inside the window) and makes one call of each kind. On e498f27^ with CPython
    3.11 this failed 20/20 runs, first in round 0 to 96 of the 200 (the spinning receive used
    its whole 5 ms in CPU time).
    """
    cpu = min(os.sched_getaffinity(0))
    sink = stdlib.socket(stdlib.AF_INET, stdlib.SOCK_DGRAM)  # never read: full, it drops
    sink.bind(("127.0.0.1", 0))
    dest = sink.getsockname()
    s = bound(udplab)

    def toggle(both: threading.Barrier, done: threading.Event) -> None:
        os.sched_setaffinity(0, {cpu})  # this thread only
        both.wait()
        while not done.is_set():
            s.setblocking(False)
            s.sendto(b"", dest)
            s.setblocking(True)
            s.sendto(b"", dest)

    def interrupt(both: threading.Barrier, done: threading.Event) -> None:
        os.sched_setaffinity(0, {cpu})
        both.wait()
        try:
            # Not synchronisation: the wake-up from this timer is what preempts toggle at an
            # arbitrary point of its loop.
            time.sleep(0.0002)
            s.setblocking(True)
            s.sendto(b"", dest)
            s.setblocking(False)
            s.sendto(b"", dest)
            s.setblocking(True)
        finally:
            done.set()

    stop_at = time.monotonic() + 3  # bounds the test on a loaded machine
    try:
        for round_ in range(200):
            both, done = threading.Barrier(2), threading.Event()
            threads = [
                threading.Thread(target=f, args=(both, done), daemon=True)
                for f in (toggle, interrupt)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)  # a bound for a hang, not a speed claim
                assert not t.is_alive()
            s.settimeout(0.005)
            spent = time.thread_time()
            with pytest.raises(TimeoutError):
                s.recvfrom(1)
            spent = time.thread_time() - spent
            # Waiting costs next to no CPU time; spinning costs about the whole 5 ms.
            assert spent < 0.0025, f"round {round_}: the receive spun for {spent * 1e3:.1f} ms"
            if time.monotonic() > stop_at:
                break
    finally:
        s.close()
        sink.close()
