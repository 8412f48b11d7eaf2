"""How long chat objects live: the notes' programs run as scripts and serve until Ctrl-C or
SIGTERM, ``daemon=True`` objects stop at exit, interactive sessions (the REPL, a Jupyter kernel)
end promptly, garbage collection never stops a started object, a forked child never touches
its parent's objects, and ``stop()`` never deadlocks with a callback that stops too.

Everything that needs a fresh interpreter runs in a subprocess of ``sys.executable`` (or a
pseudo-terminal, for the REPL) with a timeout, on loopback, with ports from port 0.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
import udplab
from conftest import process_cpu, python, read_line, wait_until

LO = "127.0.0.1"
LOG_SETUP = """
import logging
logging.basicConfig(format="%(asctime)s %(threadName)s %(message)s", level=logging.INFO)
"""

#: The notes' server program, with port 0 and its port printed for the test.
NOTES_SERVER = """
import udplab
if __name__ == '__main__':
    chat_servicer = udplab.ChatS('127.0.0.1', 0, 10)
    chat_servicer.start()
    print(chat_servicer.addr[1], flush=True)
"""

#: The notes' client program, given the server's port.
NOTES_CLIENT = """
import sys, udplab
if __name__ == '__main__':
    user = udplab.ChatC('127.0.0.1', int(sys.argv[1]))
    user.start()
    user.send(b'hello from a script')
    print(user.addr[1], flush=True)
"""


def script(code: str, *args: str) -> subprocess.Popen[str]:
    """Runs ``code`` in a fresh interpreter, logging as the notes do, to standard error."""
    return python(LOG_SETUP + textwrap.dedent(code), *args)


def still_running_after(proc: subprocess.Popen[str], seconds: float) -> bool:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


def finish(proc: subprocess.Popen[str], signum: int | None = None) -> tuple[int, str]:
    """Sends ``signum`` (if any) and returns the exit status and standard error."""
    if signum is not None:
        proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    return proc.returncode, err


def talks(port: int) -> bool:
    """Whether a chat server answers on ``port``: a message comes back with its prefix."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LO, 0))
        s.settimeout(5)
        s.sendto(b"probe", (LO, port))
        try:
            return s.recv(1024) == b"ACKprobe"
        except OSError:
            return False


def assert_clean(err: str) -> None:
    assert "Traceback" not in err and "Exception" not in err, err
    assert "panicked" not in err, err


# --- scripts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_notes_server_and_client_serve_until_a_signal(signum: int) -> None:
    server = script(NOTES_SERVER)
    try:
        port = int(read_line(server))
        client = script(NOTES_CLIENT, str(port))
        try:
            read_line(client)
            assert still_running_after(server, 2) and still_running_after(client, 0.1)
            assert talks(port)
            status, client_err = finish(client, signum)
        finally:
            client.kill()
        assert status == 0, client_err
        assert_clean(client_err)
        assert client_err.count("serving until Ctrl-C") == 1
        assert "b'ACKhello from a script'" in client_err  # heard its own message
        assert "chat client" in client_err and " stopped" in client_err
        assert still_running_after(server, 0.5)
        status, server_err = finish(server, signum)
    finally:
        server.kill()
    assert status == 0, server_err
    assert_clean(server_err)
    assert server_err.count("serving until Ctrl-C") == 1
    assert " left" in server_err  # the client said quit when it was stopped
    # The final totals: the client's message and the probe, the client's join and quit.
    assert "stopped; totals: " in server_err and " 2 messages," in server_err
    assert " 1 quits," in server_err


def test_a_default_client_heartbeats_and_outlives_an_inval_of_3_s() -> None:
    with udplab.ChatS(LO, 0, 3) as server, udplab.ChatC(*server.addr) as client:
        assert client.interval == udplab.chat.DEFAULT_INTERVAL == 1.0
        wait_until(lambda: client.addr in server.raddrs)  # it never sent anything else
        # The first heartbeat goes at start(), then one a second: the fifth comes after 4 s,
        # longer than inval.
        wait_until(lambda: server.stats()["heartbeats"] >= 5, timeout=10)
        assert client.addr in server.raddrs
        assert server.stats()["expiries"] == 0
        client.hb(None)
        assert client.interval is None


def test_daemon_objects_stop_when_the_script_ends() -> None:
    child = script("""
    import udplab
    server = udplab.ChatS('127.0.0.1', 0, 10, daemon=True)
    server.start()
    client = udplab.ChatC(*server.addr, daemon=True)
    client.start()
    assert server.daemon and client.daemon
    print(server.addr[1], flush=True)
    """)
    read_line(child)
    status, err = finish(child)
    assert status == 0, err
    assert_clean(err)
    assert "serving until" not in err
    assert "chat server on" in err and "stopped; totals" in err
    assert "chat client" in err and err.count(" stopped") == 2


def test_an_unreferenced_started_server_serves_on() -> None:
    child = script("""
    import gc, udplab
    server = udplab.ChatS('127.0.0.1', 0, 10)
    server.start()
    port = server.addr[1]
    del server
    gc.collect()
    print(port, flush=True)
    """)
    try:
        port = int(read_line(child))
        assert still_running_after(child, 1)
        assert talks(port)
        status, err = finish(child, signal.SIGINT)
    finally:
        child.kill()
    assert status == 0, err
    assert_clean(err)
    assert "stopped; totals: 1 received," in err


def test_garbage_collection_never_stops_a_started_object() -> None:
    def start_and_forget() -> tuple[weakref.ref[udplab.ChatS], weakref.ref[udplab.ChatC]]:
        server = udplab.ChatS(LO, 0, 30)
        server.start()
        client = udplab.ChatC(*server.addr, interval=0.05)
        client.start()
        return weakref.ref(server), weakref.ref(client)

    def serve_on_then_stop() -> None:
        server, client = server_ref(), client_ref()
        assert server is not None and client is not None
        try:
            assert server.running and client.running
            seen = server.stats()["heartbeats"]
            wait_until(lambda: server.stats()["heartbeats"] > seen + 2)  # heartbeats go on
            assert talks(server.addr[1])
        finally:
            client.stop()
            server.stop()

    server_ref, client_ref = start_and_forget()
    gc.collect()
    serve_on_then_stop()
    gc.collect()
    assert server_ref() is None and client_ref() is None  # stopped, it can be collected


def test_daemon_cannot_change_while_running() -> None:
    server = udplab.ChatS(LO, 0, 5)
    assert server.daemon is False
    server.daemon = True
    with server:
        with pytest.raises(RuntimeError, match="daemon"):
            server.daemon = False
    server.daemon = False
    assert not server.daemon


# --- interactive sessions ----------------------------------------------------------------------

REPL_START = (
    "import logging, udplab; logging.basicConfig(level=logging.INFO, "
    "format='%(threadName)s %(message)s')",
    "s = udplab.ChatS('127.0.0.1', 0, 5); s.start(); c = udplab.ChatC(*s.addr); c.start()",
    "print('ready', s.addr[1])",
)


@pytest.mark.parametrize("ending", ["exit()", "Ctrl-D"])
def test_the_repl_ends_promptly_with_chat_objects_running(ending: str) -> None:
    import pexpect  # a test dependency (pyproject.toml)
    env = {**os.environ, "PYTHON_BASIC_REPL": "1", "TERM": "dumb", "NO_COLOR": "1"}
    repl = pexpect.spawn(sys.executable, ["-q"], env=env, encoding="utf-8", timeout=10)
    try:
        repl.expect(">>> ")
        for line in REPL_START:  # (log lines may break up the prompts: type ahead)
            repl.sendline(line)
        repl.expect(r"ready \d+")
        started = time.monotonic()
        if ending == "exit()":
            repl.sendline("exit()")
        else:
            repl.sendeof()
        repl.expect(pexpect.EOF)
        took = time.monotonic() - started
        text = repl.before or ""
        repl.close()
    finally:
        repl.terminate(force=True)
    assert repl.exitstatus == 0, text
    assert took < 2, text
    assert "Traceback" not in text and "serving until" not in text
    assert "stopped; totals" in text and "chat client" in text


def test_a_jupyter_kernel_shutdown_stops_chat_objects_promptly(tmp_path: Path) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = tmp_path / "kernels" / "udplab-lifecycle"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "udplab lifecycle test", "language": "python",
    }))
    km = KernelManager(kernel_name="udplab-lifecycle",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
    log_path = tmp_path / "kernel.err"
    with open(log_path, "w") as kernel_err:
        km.start_kernel(stderr=kernel_err, stdout=subprocess.DEVNULL)
        try:
            kc = km.client()
            kc.start_channels()
            kc.wait_for_ready(timeout=30)
            code = (
                "import logging, udplab\n"
                f"logging.basicConfig(filename={str(tmp_path / 'kernel.log')!r}, "
                "level=logging.INFO, format='%(threadName)s %(message)s')\n" + REPL_START[1])
            reply = kc.execute_interactive(code, timeout=30)
            assert reply["content"]["status"] == "ok", reply
            kc.stop_channels()
            started = time.monotonic()
            km.shutdown_kernel(now=False)
            took = time.monotonic() - started
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    err = log_path.read_text()
    text = (tmp_path / "kernel.log").read_text()
    assert took < 2, (text, err)
    assert "Traceback" not in err and "Traceback" not in text and "serving until" not in text
    assert "stopped; totals" in text and "chat client" in text


# --- fork --------------------------------------------------------------------------------------


def _forked_child(server: udplab.ChatS, client: udplab.ChatC) -> None:
    # The child's copies are disowned: stopping them (and the child's exit) touches nothing.
    assert not server.running and not client.running
    server.stop()
    client.stop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_leaves_the_parents_objects_alone() -> None:
    with udplab.ChatS(LO, 0, 30) as server, udplab.ChatC(*server.addr, interval=0.02) as client:
        client.send(b"before")
        assert client.recv(timeout=5) == b"ACKbefore"
        for _ in range(3):
            child = multiprocessing.get_context("fork").Process(
                target=_forked_child, args=(server, client))
            child.start()
            child.join(timeout=10)
            if child.exitcode is None:
                child.kill()
            assert child.exitcode == 0
        assert server.running and client.running
        client.send(b"after")
        assert client.recv(timeout=5) == b"ACKafter"
        assert server.stats()["quits"] == 0 and client.addr in server.raddrs
        client.stop()  # the parent's own stop still says quit
        wait_until(lambda: server.stats()["quits"] == 1)


FORKING_WHILE_CAPTURING = """
import os, sys, time, traceback, udplab
folder = sys.argv[1]
# daemon: a failure below ends the script instead of serving on
server = udplab.ChatS("127.0.0.1", 0, 30, capture=f"{folder}/server.pcap", daemon=True)
server.start()
link = udplab.Link(server.addr, capture=f"{folder}/link.pcap", seed=1, daemon=True)
link.start()
clients = [udplab.ChatC(*link.addr, interval=0.005, capture=f"{folder}/client{i}.pcap",
                        daemon=True) for i in range(4)]
for c in clients:
    c.start()
where = (server.addr, link.addr, [c.addr for c in clients])
for n in range(5):
    for c in clients:
        c.send(b"parent %d" % n)  # datagrams in every queue and on every thread at the fork
    pid = os.fork()
    if pid == 0:
        try:
            assert (server.addr, link.addr, [c.addr for c in clients]) == where, (
                (server.addr, link.addr, [c.addr for c in clients]), where)
            assert not server.running and not link.running
            for addr in (link.addr, server.addr):  # the parent's link and server still serve
                with udplab.ChatC(*addr, interval=None) as child:
                    child.send(b"child %d" % n)
                    assert child.recv(timeout=5) == b"ACKchild %d" % n
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    deadline = time.monotonic() + 20
    while (ended := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            sys.exit(f"child {n} hung")
        time.sleep(0.005)
    if ended[1] != 0:
        sys.exit(f"child {n} failed: wait status {ended[1]}")
for c in clients:
    c.recv(timeout=5)
    c.stop()
link.stop()
server.stop()
for name, obj in [("server", server), ("link", link)] + [
        (f"client{i}", c) for i, c in enumerate(clients)]:
    stats = obj.stats()["capture"]
    records = list(udplab.read_capture(f"{folder}/{name}.pcap"))
    assert len(records) == stats["records"] > 0, (name, len(records), stats)
    assert os.path.getsize(f"{folder}/{name}.pcap") == stats["bytes"], (name, stats)
    assert stats["errors"] == stats["dropped"] == 0, (name, stats)
payloads = [r.payload for r in udplab.read_capture(f"{folder}/server.pcap")]
assert all(b"child %d" % n in payloads for n in range(5))
print("whole")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_forgets_the_parents_captures_and_keeps_their_addresses(
        tmp_path: Path) -> None:
    """Six capturing objects, five forks. Each child sees the addresses its parent serves on
    and chats through them; every capture file stays whole. Before: the child raised
    ``PanicException: threads should not terminate unexpectedly`` while dropping the captures
    in the at-fork handler, died of SIGSEGV or hung in ``pthread_join`` (joining a writer thread
    that is not in the child); and ``server.addr`` and ``link.addr`` said port 0."""
    done = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c",
                           FORKING_WHILE_CAPTURING, str(tmp_path)],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0 and done.stdout == "whole\n", done.stderr[-3000:]
    assert "panicked" not in done.stderr and "Exception" not in done.stderr, done.stderr[-3000:]


def _close_in_child(sock: udplab.socket) -> None:
    sock.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_closing_its_socket_leaves_the_parents_working() -> None:
    """As with Python's sockets, a child's close() closes only its copy. Before, close() shut
    the shared socket down: the parent's receives then found a hang-up and no datagram, and
    spun at 100% CPU until their timeout (forever without one)."""
    with udplab.socket(udplab.AF_INET, udplab.SOCK_DGRAM) as sock:
        sock.bind((LO, 0))
        child = multiprocessing.get_context("fork").Process(target=_close_in_child, args=(sock,))
        child.start()
        child.join(timeout=10)
        assert child.exitcode == 0
        sock.settimeout(0.5)
        before = process_cpu()
        with pytest.raises(TimeoutError):
            sock.recvfrom(100)  # nothing sent: it waits, asleep
        assert process_cpu() - before < 0.25, "the parent's receive spun instead of waiting"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.bind((LO, 0))
            sender.sendto(b"still here", sock.getsockname())
            assert sock.recvfrom(100) == (b"still here", sender.getsockname())


# --- stop() and callbacks ----------------------------------------------------------------------


def test_stop_from_a_callback_while_another_thread_stops() -> None:
    in_callback, go_on = threading.Event(), threading.Event()
    server: udplab.ChatS

    def on_message(addr: Any, payload: bytes) -> None:
        in_callback.set()
        go_on.wait(5)
        server.stop()  # while the main thread's stop() waits for this very thread

    server = udplab.ChatS(LO, 0, 5, on_message=on_message)
    server.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"stop, please", server.addr)
        assert in_callback.wait(5)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    wait_until(lambda: not server.running)
    go_on.set()
    stopper.join(timeout=5)
    assert not stopper.is_alive(), "stop() deadlocked with a callback calling stop()"
    assert not any(t.name in ("servicer", "callbacks") for t in threading.enumerate())


# --- warts -------------------------------------------------------------------------------------


def test_inval_and_interval_are_read_only() -> None:
    server = udplab.ChatS(LO, 0, 5)
    client = udplab.ChatC(LO, 9, interval=0.5)
    with pytest.raises(AttributeError):
        server.inval = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        client.interval = 1  # type: ignore[misc]
    assert (server.inval, client.interval) == (5.0, 0.5)
    assert udplab.ChatC(LO, 9, interval=None).interval is None


def test_stats_before_start_are_zero_like_raddrs_and_events() -> None:
    server = udplab.ChatS(LO, 0, 5)
    client = udplab.ChatC(LO, 9)
    assert server.raddrs == {} and server.events() == []
    stats = server.stats()
    assert set(stats) >= {"received", "messages", "clients", "dropped"}
    assert stats["received"] == 0 and not any(stats["dropped"].values())
    with server:
        assert set(server.stats()) == set(stats)
        assert set(server.stats()["dropped"]) == set(stats["dropped"])
    assert client.stats() == dict.fromkeys(client.stats(), 0)
    assert set(client.stats()) == {"received", "dropped", "sent", "heartbeats", "errors"}
