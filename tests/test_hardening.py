"""Bad input: every learner's mistake gets an exception that names the problem, every hostile
datagram a counted and logged drop (or a faithful relay), and the server keeps serving.

The results are tabulated in RELIABILITY.md.
"""

from __future__ import annotations

import ast
import errno
import logging
import pickle
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import udplab
from conftest import Raw, accounted, wait_until

ROOT = Path(__file__).resolve().parent.parent
INF, NAN = float("inf"), float("nan")


def threads_settle(before: set[threading.Thread]) -> None:
    """No thread started by a failed call outlives it."""
    wait_until(lambda: set(threading.enumerate()) <= before, timeout=2)


# --- arguments: udplab.socket ------------------------------------------------------------------


def bound() -> udplab.UdpSocket:
    s = udplab.socket(udplab.AF_INET, udplab.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    return s


SOCKET_MISTAKES: list[tuple[str, Callable[[udplab.UdpSocket], object], type, str]] = [
    ("invalid IP", lambda s: s.sendto(b"x", ("999.1.1.1", 9)), socket.gaierror, "999.1.1.1"),
    ("invalid IP", lambda s: s.connect(("1.2.3.4.5", 9)), socket.gaierror, "1.2.3.4.5"),
    ("host with a space", lambda s: s.sendto(b"x", ("abc def", 9)), socket.gaierror, "abc def"),
    ("unresolvable host", lambda s: s.sendto(b"x", ("no-such-host.invalid", 9)),
     socket.gaierror, "no-such-host.invalid"),
    ("IPv6 host on IPv4", lambda s: s.sendto(b"x", ("::1", 9)), socket.gaierror, "::1"),
    ("negative port", lambda s: s.sendto(b"x", ("127.0.0.1", -1)), OverflowError, "0-65535"),
    ("port 65536", lambda s: s.connect(("127.0.0.1", 65536)), OverflowError, "0-65535"),
    ("str port", lambda s: s.sendto(b"x", ("127.0.0.1", "80")), TypeError, "str"),
    ("address not a tuple", lambda s: s.sendto(b"x", "127.0.0.1:9"), TypeError, "tuple"),
    ("address None", lambda s: s.connect(None), TypeError, "tuple"),
    ("str payload", lambda s: s.sendto("hi", ("127.0.0.1", 9)), TypeError, "encode"),
    ("None payload", lambda s: s.sendto(None, ("127.0.0.1", 9)), TypeError, "NoneType"),
    ("int payload", lambda s: s.send(5), TypeError, "'int'"),
    ("payload over the UDP maximum", lambda s: s.sendto(b"x" * 65508, ("127.0.0.1", 9)),
     OSError, "too long"),
    ("bufsize 0", lambda s: s.recv(0), ValueError, "bufsize must be positive, got 0"),
    ("bufsize -1", lambda s: s.recvfrom(-1), ValueError, "bufsize must be positive, got -1"),
    ("bufsize None", lambda s: s.recv(None), TypeError, "NoneType"),
    ("negative timeout", lambda s: s.settimeout(-1), ValueError, "out of range"),
    ("-inf timeout", lambda s: s.settimeout(-INF), ValueError, "out of range"),
    ("NaN timeout", lambda s: s.settimeout(NAN), ValueError, "NaN"),
    ("infinite timeout", lambda s: s.settimeout(INF), OverflowError, "too large"),
    ("1e300 s timeout", lambda s: s.settimeout(1e300), OverflowError, "too large"),
    ("str timeout", lambda s: s.settimeout("1"), TypeError, "str"),
]


@pytest.mark.parametrize(
    "call,exc,names", [m[1:] for m in SOCKET_MISTAKES], ids=[m[0] for m in SOCKET_MISTAKES]
)
def test_socket_argument_mistakes_raise_errors_that_name_them(
    call: Callable[[udplab.UdpSocket], object], exc: type, names: str
) -> None:
    with bound() as s:
        with pytest.raises(exc) as info:
            call(s)
        assert names in str(info.value)
        # The socket is unharmed: it still works after the mistake.
        s.sendto(b"after", s.getsockname())
        assert s.recv(16) == b"after"


@pytest.mark.parametrize("family", [999, -1, 0, socket.AF_UNIX, socket.AF_PACKET])
def test_unknown_family_is_value_error_naming_it(family: int) -> None:
    with pytest.raises(ValueError, match=f"AF_INET .*AF_INET6 .*not family {int(family)}"):
        udplab.socket(family, udplab.SOCK_DGRAM)


def test_stream_type_is_refused() -> None:
    with pytest.raises(ValueError, match="datagram-only"):
        udplab.socket(udplab.AF_INET, socket.SOCK_STREAM)
    # ... also with udplab's own constant, as `import udplab as socket` code writes it.
    with pytest.raises(ValueError, match="datagram-only: type must be SOCK_DGRAM"):
        udplab.socket(type=udplab.SOCK_STREAM)


def test_the_constants_a_learner_reaches_for_are_the_stdlibs() -> None:
    for name in ("AF_INET", "AF_INET6", "AF_UNSPEC", "SOCK_DGRAM", "SOCK_STREAM", "SOCK_RAW",
                 "IPPROTO_UDP", "IPPROTO_TCP", "SOL_SOCKET", "SO_REUSEADDR", "SO_BROADCAST",
                 "SO_RCVBUF", "SO_SNDBUF", "AddressFamily", "SocketKind"):
        assert getattr(udplab, name) is getattr(socket, name), name
        assert name in udplab.__all__
    assert "annotations" not in dir(udplab)
    public = {n for n in dir(udplab)
              if not n.startswith("_") and not isinstance(getattr(udplab, n), type(udplab))}
    assert public == set(udplab.__all__) - {"__version__"}  # beside submodules (chat, link)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_type_and_family_are_the_stdlibs_enums(family: int) -> None:
    with udplab.socket(family) as s, socket.socket(family, socket.SOCK_DGRAM) as std:
        assert type(s.type) is socket.SocketKind and s.type is std.type
        assert type(s.family) is socket.AddressFamily and s.family is std.family
        assert f"family={std.family}, type={std.type}, proto=0" in repr(s)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.settimeout(1),
        lambda s: s.setblocking(False),
        lambda s: s.recvfrom(16),
        lambda s: s.sendto(b"x", ("127.0.0.1", 9)),
        lambda s: s.getpeername(),
    ],
    ids=["settimeout", "setblocking", "recvfrom", "sendto", "getpeername"],
)
def test_closed_socket_methods_raise_ebadf_like_the_stdlib(call: Callable[[Any], object]) -> None:
    for mod in (socket, udplab):
        s = mod.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.close()
        with pytest.raises(OSError) as info:
            call(s)
        assert info.value.errno == errno.EBADF, mod


def test_huge_bufsize_does_not_allocate_it() -> None:
    """A hostile bufsize is capped at the largest datagram, not allocated."""
    with bound() as s:
        s.sendto(b"y" * 65507, s.getsockname())
        assert s.recv(2**62) == b"y" * 65507
        with pytest.raises(OverflowError):
            s.recv(2**64)


# --- arguments: ChatS and ChatC ----------------------------------------------------------------


def start_server(*args: Any, **kwargs: Any) -> None:
    s = udplab.ChatS(*args, **kwargs)
    try:
        s.start()
    finally:
        s.stop()


def start_client(*args: Any, **kwargs: Any) -> None:
    c = udplab.ChatC(*args, **kwargs)
    try:
        c.start()
    finally:
        c.stop()


LO = "127.0.0.1"
CHATS_MISTAKES: list[tuple[str, tuple[Any, ...], dict[str, Any], type, str]] = [
    ("invalid IP", ("999.1.1.1", 0, 5), {}, socket.gaierror, "999.1.1.1"),
    ("invalid IP", ("1.2.3.4.5", 0, 5), {}, socket.gaierror, "1.2.3.4.5"),
    ("unresolvable host", ("no-such-host.invalid", 0, 5), {}, socket.gaierror, "no-such-host"),
    ("address not on this host", ("192.0.2.1", 0, 5), {}, OSError, "assign"),
    ("ip None", (None, 0, 5), {}, TypeError, "ip must be a str"),
    ("ip bytes", (b"127.0.0.1", 0, 5), {}, TypeError, "ip must be a str"),
    ("negative port", (LO, -1, 5), {}, OverflowError, "port must be 0-65535, got -1"),
    ("port 65536", (LO, 65536, 5), {}, OverflowError, "port must be 0-65535, got 65536"),
    ("port 2**70", (LO, 2**70, 5), {}, OverflowError, "port must be 0-65535"),
    ("str port", (LO, "8888", 5), {}, TypeError, "port must be an int, not str"),
    ("float port", (LO, 80.0, 5), {}, TypeError, "port must be an int, not float"),
    ("bool port", (LO, True, 5), {}, TypeError, "port must be an int, not bool"),
    ("inval missing (mistake 4)", (LO, 0), {}, TypeError, "inval"),
    ("zero inval", (LO, 0, 0), {}, ValueError, "inval must be a positive, finite"),
    ("negative inval", (LO, 0, -5), {}, ValueError, "inval must be a positive, finite"),
    ("NaN inval", (LO, 0, NAN), {}, ValueError, "inval must be a positive, finite"),
    ("infinite inval", (LO, 0, INF), {}, ValueError, "inval must be a positive, finite"),
    ("-inf inval", (LO, 0, -INF), {}, ValueError, "inval must be a positive, finite"),
    ("1e300 s inval", (LO, 0, 1e300), {}, OverflowError, "inval is too large"),
    ("1e-12 s inval", (LO, 0, 1e-12), {}, ValueError, "inval must be positive"),
    ("str inval", (LO, 0, "5"), {}, TypeError, "inval must be a number of seconds, not str"),
    ("None inval", (LO, 0, None), {}, TypeError, "inval must be a number of seconds"),
    ("str heartbeat", (LO, 0, 5), {"heartbeat": "HB"}, TypeError, "heartbeat must be bytes"),
    ("empty heartbeat", (LO, 0, 5), {"heartbeat": b""}, ValueError, "heartbeat word"),
    ("heartbeat with newline", (LO, 0, 5), {"heartbeat": b"HB\n"}, ValueError, "heartbeat word"),
    ("quit equal to heartbeat", (LO, 0, 5), {"quit": b"HB"}, ValueError, "must differ"),
    ("str prefix", (LO, 0, 5), {"prefix": "ACK"}, TypeError, "prefix must be bytes"),
    ("prefix filling a datagram", (LO, 0, 5), {"prefix": b"P" * 65507}, ValueError, "prefix"),
    ("zero max_clients", (LO, 0, 5), {"max_clients": 0}, ValueError, "max_clients must be at"),
    ("negative max_clients", (LO, 0, 5), {"max_clients": -1}, ValueError, "max_clients"),
    ("str max_clients", (LO, 0, 5), {"max_clients": "10"}, TypeError, "max_clients must be an"),
    ("huge max_clients", (LO, 0, 5), {"max_clients": 2**70}, OverflowError, "max_clients"),
    ("zero max_payload", (LO, 0, 5), {"max_payload": 0}, ValueError, "max_payload must be at"),
    ("None max_payload", (LO, 0, 5), {"max_payload": None}, TypeError, "max_payload"),
    ("negative rcvbuf", (LO, 0, 5), {"rcvbuf": -1}, ValueError, "rcvbuf must be at least 0"),
    ("rcvbuf past a C int", (LO, 0, 5), {"rcvbuf": 2**40}, OverflowError, "rcvbuf must be at"),
    ("negative history", (LO, 0, 5), {"history": -1}, ValueError, "history must be at least"),
    ("unknown option", (LO, 0, 5), {"max_client": 5}, TypeError, "max_client"),
]


@pytest.mark.parametrize(
    "args,kwargs,exc,names", [m[1:] for m in CHATS_MISTAKES], ids=[m[0] for m in CHATS_MISTAKES]
)
def test_chats_mistakes_raise_errors_that_name_them(
    args: tuple[Any, ...], kwargs: dict[str, Any], exc: type, names: str
) -> None:
    before = set(threading.enumerate())
    with pytest.raises(exc) as info:
        start_server(*args, **kwargs)
    assert names in str(info.value)
    threads_settle(before)


CHATC_MISTAKES: list[tuple[str, tuple[Any, ...], dict[str, Any], type, str]] = [
    ("invalid IP", ("999.1.1.1", 9), {}, socket.gaierror, "999.1.1.1"),
    ("unresolvable host", ("no-such-host.invalid", 9), {}, socket.gaierror, "no-such-host"),
    ("broadcast address", ("255.255.255.255", 9), {}, PermissionError, "ermission"),
    ("rport 0", (LO, 0), {}, ValueError, "rport must be the server's port, not 0"),
    ("negative rport", (LO, -1), {}, OverflowError, "rport must be 0-65535, got -1"),
    ("rport 65536", (LO, 65536), {}, OverflowError, "rport must be 0-65535"),
    ("str rport", (LO, "9"), {}, TypeError, "rport must be an int"),
    ("rip None", (None, 9), {}, TypeError, "rip must be a str"),
    ("zero interval", (LO, 9), {"interval": 0}, ValueError, "interval must be a positive"),
    ("NaN interval", (LO, 9), {"interval": NAN}, ValueError, "interval must be a positive"),
    ("infinite interval", (LO, 9), {"interval": INF}, ValueError, "interval must be a positive"),
    ("1e300 s interval", (LO, 9), {"interval": 1e300}, OverflowError, "interval is too large"),
    ("str interval", (LO, 9), {"interval": "1"}, TypeError, "interval must be a number"),
    ("zero queue", (LO, 9), {"queue": 0}, ValueError, "queue must be at least 1"),
    ("negative queue", (LO, 9), {"queue": -1}, ValueError, "queue must be at least 1"),
    ("str heartbeat (mistake 12)", (LO, 9), {"heartbeat": "HB"}, TypeError, "write b'HB'"),
    ("empty quit", (LO, 9), {"quit": b""}, ValueError, "quit word must not be empty"),
]


@pytest.mark.parametrize(
    "args,kwargs,exc,names", [m[1:] for m in CHATC_MISTAKES], ids=[m[0] for m in CHATC_MISTAKES]
)
def test_chatc_mistakes_raise_errors_that_name_them(
    args: tuple[Any, ...], kwargs: dict[str, Any], exc: type, names: str
) -> None:
    before = set(threading.enumerate())
    with pytest.raises(exc) as info:
        start_client(*args, **kwargs)
    assert names in str(info.value)
    threads_settle(before)


@pytest.mark.parametrize(
    "call,exc,names",
    [
        (lambda c: c.hb(0), ValueError, "interval must be a positive"),
        (lambda c: c.hb(-1), ValueError, "interval must be a positive"),
        (lambda c: c.hb(NAN), ValueError, "interval must be a positive"),
        (lambda c: c.hb(INF), ValueError, "interval must be a positive"),
        (lambda c: c.hb(1e300), OverflowError, "interval is too large"),
        (lambda c: c.hb("1"), TypeError, "interval must be a number"),
        (lambda c: c.recv(-1), ValueError, "out of range"),
        (lambda c: c.recv(NAN), ValueError, "NaN"),
        (lambda c: c.recv(INF), OverflowError, "too large"),
        (lambda c: c.recv("1"), TypeError, "str"),
        (lambda c: c.send("hello"), TypeError, "encode"),
        (lambda c: c.send(None), TypeError, "NoneType"),
        (lambda c: c.send(42), TypeError, "'int'"),
        (lambda c: c.send(b"x" * 65508), OSError, "too long"),
    ],
    ids=["hb 0", "hb -1", "hb NaN", "hb inf", "hb 1e300", "hb str", "recv -1", "recv NaN",
         "recv inf", "recv str", "send str", "send None", "send int", "send 65508 bytes"],
)
def test_running_chatc_mistakes_leave_it_working(
    server: udplab.ChatS, call: Callable[[udplab.ChatC], object], exc: type, names: str
) -> None:
    with udplab.ChatC("127.0.0.1", server.addr[1]) as c:
        with pytest.raises(exc) as info:
            call(c)
        assert names in str(info.value)
        c.send(b"still fine")
        assert c.recv(timeout=5) == b"ACKstill fine"


def test_waits_too_long_for_a_clock_mean_forever(server: udplab.ChatS) -> None:
    """1.8e19 s fits a Duration but not an Instant: it must wait (forever), not panic."""
    with udplab.ChatC("127.0.0.1", server.addr[1], interval=None) as c:
        c.hb(1.8e19)  # one heartbeat now, the next never
        wait_until(lambda: c.addr in server.raddrs)
        later = threading.Timer(0.1, c.send, (b"late",))
        later.start()
        assert c.recv(timeout=1.8e19) == b"ACKlate"
        later.join()
        assert any(t.name == "hb" for t in threading.enumerate())  # the hb thread lives
        assert c.stats() == {"received": 1, "dropped": 0, "sent": 1, "heartbeats": 1,
                             "errors": 0}
    with bound() as s:
        s.settimeout(1.8e19)
        later = threading.Timer(0.1, s.sendto, (b"late", s.getsockname()))
        later.start()
        assert s.recv(16) == b"late"
        later.join()


def test_chatc_lifecycle_misuse() -> None:
    with udplab.ChatS("127.0.0.1", 0, 5) as s:
        c = udplab.ChatC("127.0.0.1", s.addr[1])
        for call in (lambda: c.send(b"x"), lambda: c.recv(0.1), lambda: c.hb(1)):
            with pytest.raises(RuntimeError, match=r"not running: call start\(\) first"):
                call()
        assert not any(c.stats().values())  # zero before start(), as raddrs and events()
        c.stop()  # before start: nothing to do
        c.start()
        with pytest.raises(RuntimeError, match="already running"):
            c.start()
        c.send(b"one")
        wait_until(lambda: c.stats()["received"] == 1)
        c.stop()
        c.stop()  # idempotent
        assert c.recv(timeout=1) == b"ACKone"  # what arrived before stop() is still readable
        with pytest.raises(OSError) as info:
            c.recv(timeout=1)  # then it is a closed socket's error, at once
        assert info.value.errno == errno.EBADF
        for call in (lambda: c.send(b"x"), lambda: c.hb(1)):
            with pytest.raises(RuntimeError, match="not running"):
                call()
        assert c.stats()["sent"] == 1
        c.start()  # a stopped client can start again, on a new port
        c.send(b"two")
        assert c.recv(timeout=5) == b"ACKtwo"
        c.stop()


def test_chats_lifecycle_misuse() -> None:
    s = udplab.ChatS("127.0.0.1", 0, 5)
    assert s.raddrs == {} and s.events() == [] and s.stats()["received"] == 0
    s.stop()  # before start: nothing to do
    s.start()
    with pytest.raises(RuntimeError, match="already running"):
        s.start()
    s.stop()
    s.stop()
    assert s.raddrs == {} and s.stats()["received"] == 0
    s.start()  # restarts (port 0 asked for any free port, so it may be another one)
    assert s.running and s.addr[1] != 0
    s.stop()


def test_busy_port_is_eaddrinuse_and_leaves_nothing_running() -> None:
    before = set(threading.enumerate())
    with udplab.ChatS("127.0.0.1", 0, 5) as s:
        clash = udplab.ChatS("127.0.0.1", s.addr[1], 5)
        with pytest.raises(OSError) as info:
            clash.start()
        assert info.value.errno == errno.EADDRINUSE
        assert not clash.running
    threads_settle(before)


# --- hostile datagrams -------------------------------------------------------------------------


@pytest.fixture
def raw() -> Iterator[Callable[[udplab.ChatS], Raw]]:
    made: list[Raw] = []

    def make(server: udplab.ChatS) -> Raw:
        made.append(Raw(server))
        return made[-1]

    yield make
    for r in made:
        r.sock.close()


# (id, datagram, what the server does with it). "relay" means broadcast unchanged after b"ACK".
DATAGRAMS: list[tuple[str, bytes, str]] = [
    ("empty", b"", "drop:empty"),
    ("1 byte", b"x", "relay"),
    ("1 NUL byte", b"\x00", "relay"),
    ("1 newline", b"\n", "relay"),
    ("CRLF alone", b"\r\n", "relay"),
    ("heartbeat", b"HB", "heartbeat"),
    ("heartbeat LF", b"HB\n", "heartbeat"),
    ("heartbeat CRLF", b"HB\r\n", "heartbeat"),
    ("heartbeat CR", b"HB\r", "relay"),
    ("heartbeat LF LF", b"HB\n\n", "relay"),
    ("heartbeat space", b"HB ", "relay"),
    ("heartbeat NUL", b"HB\x00", "relay"),
    ("lowercase hb", b"hb", "relay"),
    ("str-looking heartbeat (mistake 5)", b"'HB'", "relay"),
    ("quit", b"quit", "quit"),
    ("quit LF", b"quit\n", "quit"),
    ("quit CRLF", b"quit\r\n", "quit"),
    ("quit CR", b"quit\r", "relay"),
    ("quit trailing bytes", b"quit now", "relay"),
    ("QUIT", b"QUIT", "relay"),
    ("not UTF-8", b"\xff\xfe\x80 caf\xe9", "relay"),
    ("lone surrogate bytes", b"\xed\xa0\x80", "relay"),
    ("largest relayable", b"r" * (65507 - 3), "relay"),
    ("65507 bytes, prefixed too long", b"o" * 65507, "drop:oversize"),
    ("65505 bytes, prefixed too long", b"o" * 65505, "drop:oversize"),
]


@pytest.mark.parametrize("data,effect", [d[1:] for d in DATAGRAMS], ids=[d[0] for d in DATAGRAMS])
def test_hostile_datagram_from_a_member(
    server: udplab.ChatS,
    raw: Callable[[udplab.ChatS], Raw],
    caplog: pytest.LogCaptureFixture,
    data: bytes,
    effect: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="udplab")
    a, b = raw(server), raw(server)
    for r in (a, b):
        r.say(b"HB")
    wait_until(lambda: len(server.raddrs) == 2)
    before = server.stats()
    a.say(data)
    wait_until(lambda: server.stats()["received"] == before["received"] + 1)
    after = server.stats()
    moved = {k for k in ("heartbeats", "quits", "messages") if after[k] != before[k]}
    moved |= {f"drop:{r}" for r, n in after["dropped"].items() if n != before["dropped"][r]}
    if effect == "relay":
        assert moved == {"messages"}
        assert a.hear() == b.hear() == b"ACK" + data  # byte for byte, never decoded
    else:
        assert moved == {{"heartbeat": "heartbeats", "quit": "quits"}.get(effect, effect)}
        assert b.hears_nothing()
    if effect.startswith("drop:"):
        reason = effect.removeprefix("drop:")
        assert f"chat dropped a datagram from {a.addr[0]}:{a.addr[1]}: {reason}" in caplog.text
    assert (a.addr in server.raddrs) == (effect != "quit")
    # The server keeps serving.
    b.say(b"still serving?")
    assert b.hear() == b"ACKstill serving?"
    assert accounted(server.stats())


def test_control_words_from_strangers_and_limits(
    raw: Callable[[udplab.ChatS], Raw], caplog: pytest.LogCaptureFixture
) -> None:
    """Quit from an address that never joined, a full table, payloads over max_payload, and a
    zero-length prefix carrying a full 65507-byte datagram."""
    caplog.set_level(logging.WARNING, logger="udplab")
    with udplab.ChatS("127.0.0.1", 0, 5, max_clients=1, max_payload=65507, prefix=b"") as s:
        member, stranger = raw(s), raw(s)
        stranger.say(b"quit")  # never joined
        stranger.say(b"quit\r\n")
        member.say(b"HB")
        wait_until(lambda: s.stats()["received"] == 3)
        stranger.say(b"HB")  # the table is full
        stranger.say(b"let me in")
        member.say(b"m" * 65507)  # no prefix: the largest UDP payload is relayed whole
        assert member.hear() == b"m" * 65507
        assert stranger.hears_nothing()
        stats = s.stats()
        assert stats["dropped"] == {"empty": 0, "too_long": 0, "oversize": 0, "refused": 2,
                                    "unknown_quit": 2}
        assert list(s.raddrs) == [member.addr] and accounted(stats)
    for reason in ("unknown_quit", "refused"):
        assert f"{stranger.addr[1]}: {reason}" in caplog.text
    with udplab.ChatS("127.0.0.1", 0, 5, max_payload=100) as s:
        member = raw(s)
        member.say(b"p" * 101)
        member.say(b"p" * 100)
        assert member.hear() == b"ACK" + b"p" * 100
        wait_until(lambda: s.stats()["dropped"]["too_long"] == 1)
        assert accounted(s.stats())


def test_drop_logging_is_rate_limited_but_counting_is_not(
    raw: Callable[[udplab.ChatS], Raw], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="udplab")
    with udplab.ChatS("127.0.0.1", 0, 5) as s:
        r = raw(s)
        for _ in range(500):
            r.say(b"")
        wait_until(lambda: s.stats()["received"] == 500)
        assert s.stats()["dropped"]["empty"] == 500
    lines = [m for m in caplog.messages if ": empty" in m]
    assert 1 <= len(lines) <= 3, lines  # one per second at most


def test_socket_receives_hostile_datagrams_like_the_stdlib() -> None:
    for mod in (socket, udplab):
        with mod.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
            for data in (b"", b"\x00", b"\xff\xfe", b"z" * 65507):
                s.sendto(data, s.getsockname())
                got, addr = s.recvfrom(65536)
                assert (got, addr) == (data, s.getsockname()), mod
            s.sendto(b"truncate me", s.getsockname())
            assert s.recv(3) == b"tru"


# --- security ----------------------------------------------------------------------------------


def test_nothing_binds_every_interface_unless_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import inspect

    assert inspect.signature(udplab.ChatS).parameters["ip"].default is inspect.Parameter.empty
    caplog.set_level(logging.WARNING, logger="udplab")
    with udplab.ChatS("127.0.0.1", 0, 5) as s, udplab.ChatC("127.0.0.1", s.addr[1]) as c:
        assert s.addr[0] == "127.0.0.1"
        assert c.addr is not None and c.addr[0] == "127.0.0.1"  # the client's port is loopback too
    assert "every interface" not in caplog.text
    # (ChatS("", ...) binds every interface and logs a warning saying so; the tests stay on
    # loopback, so that path is read in crates/udplab/src/server.rs rather than run.)
    demo = (ROOT / "python" / "udplab" / "demo.py").read_text()
    assert "0.0.0.0" not in demo and '"127.0.0.1"' in demo


class _Exploit:
    """Unpickling this would create a directory: proof that a payload was evaluated."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.mkdir, (str(self.path),))


def test_payloads_are_relayed_never_evaluated_or_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payloads = [
        pickle.dumps(_Exploit(marker)),
        f"__import__('os').mkdir({str(marker)!r})".encode(),
        b"{{7*7}} %s %n %x ${jndi:ldap://x} \x1b[2J",
    ]
    seen: list[bytes] = []
    with udplab.ChatS("127.0.0.1", 0, 5, on_message=lambda a, p: seen.append(p)) as s:
        with udplab.ChatC("127.0.0.1", s.addr[1]) as c:
            for p in payloads:
                c.send(p)
                assert c.recv(timeout=5) == b"ACK" + p
            wait_until(lambda: len(seen) == len(payloads))
    assert seen == payloads
    assert not marker.exists()
    # And nothing in the package could: no eval/exec/compile, no pickle-like loader.
    for path in (ROOT / "python" / "udplab").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec", "compile", "__import__"}, path
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = {a.name.split(".")[0] for a in node.names} | {
                    (getattr(node, "module", None) or "").split(".")[0]
                }
                assert not names & {"pickle", "marshal", "shelve", "dill", "cloudpickle"}, path


# Macros and attributes the core may use: std's, the log crate's (format strings only) and
# proptest's in tests. A macro of another crate can expand to `unsafe` code inside udplab that
# the `forbid` lint does not flag (it does not look into other crates' expansions), as nix's
# `sockopt_impl!` once did; so the core may use no other. The binding (crates/udplab-python/) uses
# PyO3's macros, which do expand to unsafe code: README says so.
STD_MACROS = {
    "assert", "assert_eq", "assert_ne", "debug_assert", "cfg", "concat", "env", "format",
    "include_str", "matches", "panic", "unreachable", "vec", "write", "writeln",
    "debug", "info", "warn", "error", "trace", "log_enabled",
    "proptest", "prop_assert", "prop_assert_eq", "prop_oneof",
}
STD_ATTRIBUTES = {
    "allow", "cfg", "derive", "doc", "forbid", "ignore", "inline", "must_use", "test", "warn",
    "proptest_config",
}


def test_no_unsafe_rust() -> None:
    manifest = (ROOT / "Cargo.toml").read_text()
    assert re.search(r'^\[workspace\.lints\.rust\]\s*\nunsafe_code\s*=\s*"forbid"', manifest, re.M)
    for crate in ("udplab", "udplab-python"):
        assert re.search(r"^\[lints\]\s*\nworkspace\s*=\s*true", (
            ROOT / "crates" / crate / "Cargo.toml").read_text(), re.M), crate
    assert "#![forbid(unsafe_code)]" in (ROOT / "crates/udplab/src/lib.rs").read_text()
    for path in (ROOT / "crates").rglob("*.rs"):
        code = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())
        assert not re.search(r"\bunsafe\b", code), path
        if path.is_relative_to(ROOT / "crates/udplab-python") or "examples" in path.parts:
            continue
        macros = set(re.findall(r"\b([A-Za-z_]\w*)!\s*[(\[{]", code))
        assert macros <= STD_MACROS, (path, macros - STD_MACROS)
        attributes = set(re.findall(r"#!?\[\s*([A-Za-z_]\w*)", code))
        assert attributes <= STD_ATTRIBUTES, (path, attributes - STD_ATTRIBUTES)
