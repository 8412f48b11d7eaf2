"""ChatS and ChatC: the tutorial's group chat, each behaviour on real loopback sockets."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import tutorial_chat
import udplab
from conftest import Raw, accounted, process_cpu, wait_until

LO = "127.0.0.1"


@pytest.fixture
def raws(server: udplab.ChatS) -> Iterator[list[Raw]]:
    made: list[Raw] = []
    yield made
    for r in made:
        r.close()


def join(server: udplab.ChatS, raws: list[Raw], n: int) -> list[Raw]:
    new = [Raw(server) for _ in range(n)]
    raws.extend(new)
    for r in new:
        r.say(b"HB")
    wait_until(lambda: all(r.addr in server.raddrs for r in new))
    return new


def test_join_by_heartbeat(server: udplab.ChatS, raws: list[Raw]) -> None:
    (a,) = join(server, raws, 1)
    assert list(server.raddrs) == [a.addr]
    assert server.stats()["joins"] == 1


def test_broadcast_reaches_everyone_including_sender(server: udplab.ChatS, raws: list[Raw]) -> None:
    a, b, c = join(server, raws, 3)
    b.say(b"hello")
    assert [r.hear() for r in (a, b, c)] == [b"ACKhello"] * 3


def test_echo_off_skips_the_sender(raws: list[Raw]) -> None:
    with udplab.ChatS("127.0.0.1", 0, 5, echo=False) as quiet:
        a, b = join(quiet, raws, 2)
        a.say(b"only for b")
        assert b.hear() == b"ACKonly for b"
        assert a.hears_nothing()


def test_heartbeat_is_not_broadcast(server: udplab.ChatS, raws: list[Raw]) -> None:
    a, b = join(server, raws, 2)
    a.say(b"HB")
    b.say(b"HB\n")
    wait_until(lambda: server.stats()["heartbeats"] == 4)
    assert a.hears_nothing() and b.hears_nothing()


def test_quit_from_known_and_unknown(server: udplab.ChatS, raws: list[Raw]) -> None:
    a, b = join(server, raws, 2)
    stranger = Raw(server)
    raws.append(stranger)
    a.say(b"quit")
    stranger.say(b"quit")  # never joined: ignored, counted, nothing breaks
    wait_until(lambda: server.stats()["received"] == 4)
    assert list(server.raddrs) == [b.addr]
    b.say(b"still here")
    assert b.hear() == b"ACKstill here"
    stats = server.stats()
    assert (stats["quits"], stats["dropped"]["unknown_quit"]) == (1, 1)
    assert accounted(stats)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_netcat_style_trailing_newline(
    server: udplab.ChatS, raws: list[Raw], newline: bytes
) -> None:
    a, b = join(server, raws, 2)
    a.say(b"HB" + newline)
    a.say(b"hi" + newline)
    assert b.hear() == b"ACKhi" + newline  # chat text is passed on unchanged
    a.say(b"quit" + newline)
    wait_until(lambda: a.addr not in server.raddrs)
    b.say(b"HB \n")  # other trailing bytes: a message, not a heartbeat
    assert b.hear() == b"ACKHB \n"


def test_expiry_with_no_traffic_at_all(raws: list[Raw]) -> None:
    inval = 0.3
    with udplab.ChatS("127.0.0.1", 0, inval) as s:
        (a,) = join(s, raws, 1)
        wait_until(lambda: not s.raddrs, timeout=inval + 5)  # a bound for a hang only
        assert s.stats()["expiries"] == 1
        events = s.events()
        assert [k for _, k, _ in events][-1] == "expire"
        # Not before inval: the times the server recorded when it happened (an upper bound
        # would be a speed claim that a loaded machine can break).
        assert events[-1][0] - events[0][0] >= inval


def test_expired_client_gets_no_broadcast(raws: list[Raw]) -> None:
    with udplab.ChatS("127.0.0.1", 0, 0.3) as s:
        a, b = join(s, raws, 2)
        wait_until(lambda: not s.raddrs, timeout=2)
        b.say(b"HB")
        wait_until(lambda: b.addr in s.raddrs)
        b.say(b"after a expired")
        assert b.hear() == b"ACKafter a expired"
        assert a.hears_nothing()


def test_raddrs_is_a_copy_with_wall_clock_times(server: udplab.ChatS, raws: list[Raw]) -> None:
    before = time.time()
    (a,) = join(server, raws, 1)
    snapshot = server.raddrs
    assert before - 0.01 <= snapshot[a.addr] <= time.time() + 0.01
    snapshot.clear()
    assert a.addr in server.raddrs


def test_dual_stack_server_lists_ipv4_clients_as_ipv4() -> None:
    try:
        server = udplab.ChatS("::", 0, 5, daemon=True)
        server.start()
    except OSError as e:
        pytest.skip(f"no IPv6 here: {e}")
    try:
        with udplab.ChatC(LO, server.addr[1], daemon=True) as client:
            wait_until(lambda: len(server.raddrs) == 1)
            assert client.addr in server.raddrs  # ('127.0.0.1', port), not ('::ffff:...', ...)
            client.send(b"hi")
            assert client.recv(timeout=5) == b"ACKhi"
    finally:
        server.stop()


def test_stop_is_prompt_and_frees_the_port_50_times() -> None:
    s = udplab.ChatS("127.0.0.1", 0, 5)
    s.start()
    port = s.addr[1]
    for _ in range(50):
        s.stop()  # returns once the servicer has ended (its loop is woken, not timed out)
        assert not s.running and s.raddrs == {}
        s = udplab.ChatS("127.0.0.1", port, 5)  # the same port, at once
        s.start()
        assert s.addr[1] == port
    s.stop()
    s.stop()  # idempotent


def test_start_twice_is_an_error_and_restart_works(server: udplab.ChatS) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        server.start()
    server.stop()
    server.start()
    assert server.running


def test_raising_callback_is_logged_and_server_goes_on(
    raws: list[Raw], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[bytes] = []

    def on_message(addr: Any, payload: bytes) -> None:
        seen.append(payload)
        raise ValueError("callback bug")

    with udplab.ChatS("127.0.0.1", 0, 5, on_message=on_message) as s:
        (a,) = join(s, raws, 1)
        for i in range(3):
            a.say(b"m%d" % i)
            assert a.hear() == b"ACKm%d" % i
        wait_until(lambda: len(seen) == 3)
    assert seen == [b"m0", b"m1", b"m2"]
    assert "callback bug" in caplog.text


def test_join_and_leave_callbacks(raws: list[Raw]) -> None:
    joined: list[Any] = []
    left: list[Any] = []
    with udplab.ChatS("127.0.0.1", 0, 5, on_join=joined.append,
                      on_leave=lambda addr, why: left.append((addr, why))) as s:
        (a,) = join(s, raws, 1)
        a.say(b"quit")
        wait_until(lambda: left)
    assert joined == [a.addr]
    assert left == [(a.addr, "quit")]


def test_closed_client_port_does_not_stop_the_server(
    server: udplab.ChatS, raws: list[Raw]
) -> None:
    a, b = join(server, raws, 2)
    a.close()
    for i in range(5):
        b.say(b"m%d" % i)
        assert b.hear() == b"ACKm%d" % i
    assert server.running


def test_oversize_payload_is_dropped_and_counted(server: udplab.ChatS, raws: list[Raw]) -> None:
    (a,) = join(server, raws, 1)
    a.say(b"x" * (65507 - 3))  # fits with the prefix
    assert len(a.hear()) == 65507
    a.say(b"x" * 65507)  # would not fit
    wait_until(lambda: server.stats()["dropped"]["oversize"] == 1)
    assert a.hears_nothing()
    assert accounted(server.stats())


def test_max_clients_refuses_new_addresses(raws: list[Raw]) -> None:
    with udplab.ChatS("127.0.0.1", 0, 5, max_clients=2) as s:
        a, b = join(s, raws, 2)
        c = Raw(s)
        raws.append(c)
        c.say(b"let me in")
        wait_until(lambda: s.stats()["dropped"]["refused"] == 1)
        assert c.addr not in s.raddrs and c.hears_nothing()
        a.say(b"members only")
        assert b.hear() == b"ACKmembers only"


def test_200_clients_receive_every_one_of_100_messages(server: udplab.ChatS) -> None:
    clients = [udplab.ChatC("127.0.0.1", server.addr[1], queue=200) for _ in range(200)]
    try:
        for c in clients:
            c.start()
            c.send(b"HB")
        wait_until(lambda: len(server.raddrs) == 200)
        sender = clients[0]
        for i in range(100):
            sender.send(b"message %03d" % i)
            if i % 10 == 9:  # a paced sender: stay below what the receive queues hold
                wait_until(lambda n=i + 1: all(c.stats()["received"] >= n for c in clients), 10)
        expected = [b"ACKmessage %03d" % i for i in range(100)]
        for c in clients:
            assert [c.recv(timeout=5) for _ in range(100)] == expected
        assert server.stats()["sent"] == 200 * 100
    finally:
        for c in clients:
            c.stop()


def test_chatc_send_recv_and_stop_says_quit(server: udplab.ChatS) -> None:
    with udplab.ChatC("127.0.0.1", server.addr[1]) as c:
        c.send(b"hi")
        assert c.recv(timeout=5) == b"ACKhi"
        assert c.addr in server.raddrs
        with pytest.raises(TypeError, match="encode"):
            c.send("text")  # type: ignore[arg-type]
        with pytest.raises(TimeoutError):
            c.recv(timeout=0.05)
    wait_until(lambda: c.addr not in server.raddrs)
    assert server.stats()["quits"] == 1
    with pytest.raises(RuntimeError, match="not running"):
        c.send(b"after stop")


def test_chatc_heartbeat_keeps_it_alive_and_none_pauses() -> None:
    with udplab.ChatS("127.0.0.1", 0, 0.4) as s, udplab.ChatC("127.0.0.1", s.addr[1]) as c:
        c.hb(0.1)
        wait_until(lambda: c.addr in s.raddrs)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # several expiry intervals pass
            assert c.addr in s.raddrs
            time.sleep(0.05)
        c.hb(None)
        wait_until(lambda: c.addr not in s.raddrs, timeout=2)
        assert s.stats()["expiries"] == 1


def test_client_survives_a_server_that_is_not_up_yet() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with udplab.ChatC("127.0.0.1", port, interval=0.05) as c:
        wait_until(lambda: c.stats()["errors"] >= 1)  # ICMP refusals while nobody listens
        with udplab.ChatS("127.0.0.1", port, 5) as s:
            wait_until(lambda: c.addr in s.raddrs)
            c.send(b"now you're up")
            assert c.recv(timeout=5) == b"ACKnow you're up"


def test_a_server_not_answering_is_a_warning_and_its_return_an_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="udplab")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    def records(level: int, text: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.levelno == level and text in r.getMessage()]

    with udplab.ChatC("127.0.0.1", port, interval=0.02) as c:
        wait_until(lambda: c.stats()["errors"] >= 20)  # many refusals ...
        warnings = records(logging.WARNING, "is not answering")
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]  # ... one warning
        assert f"chat server 127.0.0.1:{port} is not answering: connection refused: nothing " \
            "listens on that port" in warnings[0].getMessage()
        assert warnings[0].threadName in ("user", "hb")
        with udplab.ChatS("127.0.0.1", port, 5) as s:
            wait_until(lambda: c.addr in s.raddrs)
            c.send(b"hello")
            assert c.recv(timeout=5) == b"ACKhello"
            assert len(records(logging.INFO, "answers again")) == 1
        assert len(records(logging.WARNING, "is not answering")) == 1


def test_thread_names_in_log_records(
    server: udplab.ChatS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="udplab")
    with udplab.ChatC("127.0.0.1", server.addr[1], interval=0.05) as c:
        c.send(b"named")
        assert c.recv(timeout=5) == b"ACKnamed"
        wait_until(lambda: any(r.threadName == "hb" for r in caplog.records))
    names = {(r.threadName, r.name) for r in caplog.records}
    assert ("servicer", "udplab.server") in names
    assert ("user", "udplab.client") in names
    assert ("hb", "udplab.client") in names
    said = [r for r in caplog.records if r.threadName == "user"]
    assert said[0].getMessage() == "b'ACKnamed'"


#: Payloads and how a log line must show them: as Python's repr() of the text when they are
#: UTF-8 with non-ASCII characters, else as repr() of the bytes.
PAYLOADS = [
    "你好".encode(),
    "ACK 你好，世界！".encode(),
    "多行\n第二行\r\nchat 127.0.0.1:1 joined".encode(),  # a forged line stays on one line
    "颜色\x1b[31m红\x1b[0m".encode(),  # no terminal escape reaches the log
    "bidi \u202etxet\u202c zero\u200bwidth \u2028sep \u3000".encode(),
    "它's \"quoted\" \\".encode(),
    "🎉 e\u0301".encode(),
    b"plain ascii",
    b"ascii with \n newline",
    b"\xe4\xbd\xa0\xe5\xa5",  # cut in the middle of a character: not UTF-8
    b"\xff\xfe\x00binary",
    "latin-1 caf\xe9".encode("latin-1"),
]


def shown(payload: bytes) -> str:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return repr(payload)
    return repr(payload) if text.isascii() else repr(text)


def test_payloads_in_log_lines_are_text_when_they_are_utf8(
    server: udplab.ChatS, raws: list[Raw], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="udplab")
    with udplab.ChatC("127.0.0.1", server.addr[1]) as c:
        wait_until(lambda: c.addr in server.raddrs)
        for payload in PAYLOADS:
            c.send(payload)
            assert c.recv(timeout=5) == b"ACK" + payload

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.threadName == "servicer"
                and " says " in r.getMessage()]

    # The server logs a message after broadcasting it (outside its lock): wait for the last.
    wait_until(lambda: len(said()) == len(PAYLOADS))
    says = said()
    heard = [r.getMessage() for r in caplog.records if r.threadName == "user"]
    assert [line.split(" says ", 1)[1] for line in says] == [shown(p) for p in PAYLOADS]
    assert heard == [shown(b"ACK" + p) for p in PAYLOADS]
    assert "'你好'" in says[0] and heard[0] == "'ACK你好'"
    for line in says + heard:
        assert not any(ch in line for ch in "\n\r\x1b\u2028\u202e")


def test_a_named_client_shows_its_name_in_threads_and_log_lines(
    server: udplab.ChatS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="udplab")
    with udplab.ChatC(*server.addr, name="alice", interval=0.05) as alice:
        assert alice.name == "alice" and "name='alice'" in repr(alice)
        assert {"user-alice", "hb-alice"} <= {t.name for t in threading.enumerate()}
        alice.send("你好".encode())
        assert alice.recv(timeout=5) == "ACK你好".encode()
        wait_until(lambda: any(r.threadName == "hb-alice" for r in caplog.records))
    mine = [r for r in caplog.records if r.name == "udplab.client"]
    heard = [r.getMessage() for r in mine if r.threadName == "user-alice"]
    assert heard == ["alice: 'ACK你好'"]
    port = alice.addr[1]
    lines = [r.getMessage() for r in mine]
    assert f"chat client alice (127.0.0.1:{port}) talks to 127.0.0.1:{server.addr[1]}" in lines
    assert f"chat client alice (127.0.0.1:{port}) stopped" in lines
    assert udplab.ChatC(LO, 9).name is None


@pytest.mark.parametrize("name, error", [
    ("", ValueError), (" alice", ValueError), ("a\nb", ValueError), ("a\x1b", ValueError),
    (b"alice", TypeError), (1, TypeError),
])
def test_bad_names_are_refused(name: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="name must be"):
        udplab.ChatC(LO, 9, name=name)  # type: ignore[arg-type]


def test_logging_configured_after_import_is_seen(server: udplab.ChatS, raws: list[Raw]) -> None:
    """pyo3-log caches levels; changing them later must still take effect."""
    logger = logging.getLogger("udplab")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.setLevel(logging.WARNING)
        (a,) = join(server, raws, 1)  # the join is logged at INFO: filtered and cached
        assert not [r for r in records if "joined" in r.getMessage()]
        logger.setLevel(logging.DEBUG)  # must invalidate the Rust-side cache
        (b,) = join(server, raws, 1)
        wait_until(lambda: any(f"{b.addr[0]}:{b.addr[1]} joined" in r.getMessage()
                               for r in records))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


# --- wire compatibility with the corrected pure-Python tutorial code ------------------------


def test_udplab_server_with_tutorial_client() -> None:
    with udplab.ChatS("127.0.0.1", 0, 5) as s:
        c = tutorial_chat.ChatC("127.0.0.1", s.addr[1])
        c.start()
        try:
            c.hb(0.05)
            wait_until(lambda: len(s.raddrs) == 1)
            c.send(b"from the notes")
            assert c.received.get(timeout=5) == b"ACKfrom the notes"
        finally:
            c.stop()
        wait_until(lambda: not s.raddrs)
        assert s.stats()["quits"] == 1


def test_tutorial_server_with_udplab_client() -> None:
    s = tutorial_chat.ChatS("127.0.0.1", 0, 5)
    s.start()
    try:
        with udplab.ChatC("127.0.0.1", s.addr[1], interval=0.05) as c:
            wait_until(lambda: len(s.raddrs) == 1)
            c.send(b"from udplab")
            assert c.recv(timeout=5) == b"ACKfrom udplab"
        wait_until(lambda: not s.raddrs)
    finally:
        s.stop()


def test_server_stop_from_its_own_callback_does_not_deadlock(raws: list[Raw]) -> None:
    done = threading.Event()
    holder: list[udplab.ChatS] = []

    def on_message(addr: Any, payload: bytes) -> None:
        holder[0].stop()
        done.set()

    s = udplab.ChatS("127.0.0.1", 0, 5, on_message=on_message)
    holder.append(s)
    s.start()
    (a,) = join(s, raws, 1)
    a.say(b"stop please")
    assert done.wait(5)
    wait_until(lambda: not s.running)
    s.stop()


def test_demo_runs_a_whole_chat_and_ends_by_itself() -> None:
    import subprocess
    import sys

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "udplab", "demo"], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    log = done.stderr
    for needle in (" servicer chat ", " joined", " says b'hello", " expired after",
                   " left", "client got b'ackmsg'"):
        assert needle in log, needle
    # Who is who: each client's name, its address, and its own lines.
    for name in ("alice", "bob", "carol"):
        port = int(re.search(rf" MainThread {name} is at 127\.0\.0\.1:(\d+)\n", log)[1])
        assert f" chat client {name} (127.0.0.1:{port}) talks to " in log
        assert f" user-{name} {name}: b'ACKhello, everyone'\n" in log
    assert " user b'" not in log


@pytest.mark.parametrize("argv, start, says", [
    (["--help"], "usage: python -m udplab [-h] COMMAND", "run the tutorial's server"),
    (["demo", "--help"], "usage: python -m udplab demo [-h] [--inval INVAL]", "alice, bob"),
    (["demo", "--inval", "10"], "python -m udplab demo: error: argument --inval: ",
     "must be in (0, 5]"),
    (["demo", "--inval", "soon"], "python -m udplab demo: error: ", "not a number of seconds"),
])
def test_command_line_help_and_errors(
    argv: list[str], start: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from udplab.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv, prog="python -m udplab")
    out, err = capsys.readouterr()
    text = out + err
    assert exited.value.code == (0 if "--help" in argv else 2)
    assert text.startswith(start) and says in text, text
    if exited.value.code:  # an error is one line, naming what was wrong
        assert out == "" and len(err.splitlines()) == 1
    assert "``" not in text  # no raw reST markup


def test_chatc_queue_is_bounded_and_drops_oldest(server: udplab.ChatS) -> None:
    with udplab.ChatC("127.0.0.1", server.addr[1], queue=3) as c:
        for i in range(5):
            c.send(b"%d" % i)
        wait_until(lambda: c.stats()["received"] == 5)
        assert c.stats()["dropped"] == 2
        assert [c.recv(timeout=1) for _ in range(3)] == [b"ACK2", b"ACK3", b"ACK4"]


@pytest.mark.parametrize("spin", [0, 0.0002, 0.05])
def test_spin_after_broadcast_keeps_every_message_and_order(raws: list[Raw], spin: float) -> None:
    with udplab.ChatS("127.0.0.1", 0, 5, spin=spin) as s:
        a, b = join(s, raws, 2)
        for i in range(20):
            a.say(b"m%d" % i)
            if i % 3 == 0:
                a.say(b"HB")  # heartbeats in between, while the server polls
        assert [b.hear() for _ in range(20)] == [b"ACKm%d" % i for i in range(20)]
    assert not s.running  # stop() ends a loop that is polling too


def test_spin_is_validated() -> None:
    for bad, error in ((-1, ValueError), (2, ValueError), ("0.1", TypeError)):
        with pytest.raises(error, match="spin"):
            udplab.ChatS("127.0.0.1", 0, 5, spin=bad)  # type: ignore[arg-type]


def test_heartbeats_do_not_start_the_polling(raws: list[Raw]) -> None:
    """Only a broadcast makes the server poll: with heartbeats alone it sleeps."""
    with udplab.ChatS("127.0.0.1", 0, 5, spin=0.05) as s:  # 50 ms of polling per broadcast
        (a,) = join(s, raws, 1)
        before = process_cpu()
        for _ in range(20):  # paced, so polling after each would burn ~all of 0.2 s
            a.say(b"HB")
            time.sleep(0.01)
        idle = process_cpu() - before
        before = process_cpu()
        for _ in range(20):
            a.say(b"talk")
            assert a.hear() == b"ACKtalk"
            time.sleep(0.01)
        talking = process_cpu() - before
    assert idle < 0.05, f"{idle:.3f} CPU s in ~0.2 s of heartbeats"
    assert talking > idle  # the polling is real after broadcasts
