"""The ``udplab`` command in real pseudo-terminals (pexpect) and, for what the screen shows,
in tmux (capture-pane renders the terminal as a person sees it).

Every server listens on port 0 and the tests read the port it prints; every wait is bounded by
pexpect's timeout or a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
import tutorial_chat
import udplab
from conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10


def spawn(*args: str) -> pexpect.spawn:
    """``python -m udplab ARGS`` in a pseudo-terminal."""
    # pexpect is no terminal emulator: it would never answer prompt_toolkit's question where
    # the cursor is (the tmux test below runs in a terminal that does).
    env = dict(os.environ, PYTHONUNBUFFERED="1", TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
    return pexpect.spawn(sys.executable, ["-m", "udplab", *args], env=env, encoding="utf-8",
                         timeout=TIMEOUT, dimensions=(24, 160))


def ended(child: pexpect.spawn) -> int:
    """Wait (bounded) for the child to exit; its exit status."""
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    status: int = child.exitstatus
    return status


class Server:
    def __init__(self, *args: str) -> None:
        self.child = spawn("server", "--port", "0", *args)
        self.child.expect(r"udplab server listening on 127\.0\.0\.1:(\d+)")
        self.port = int(self.child.match[1])

    def log(self, pattern: str) -> None:
        self.child.expect(pattern)

    def close(self) -> None:
        if self.child.isalive():
            self.child.kill(signal.SIGKILL)
        self.child.close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server("--inval", "5")
    try:
        yield s
    finally:
        s.close()


def client(port: int, name: str) -> pexpect.spawn:
    c = spawn("client", "127.0.0.1", str(port), "--name", name)
    c.expect_exact(f"{name}>")
    return c


def joined(server: Server) -> int:
    """The client port of the next join the server logs."""
    # The time, then the core's message (before: the thread's name between, "servicer chat").
    server.log(r"\n\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} chat 127\.0\.0\.1:(\d+) joined")
    return int(server.child.match[1])


def test_a_line_typed_in_one_client_appears_in_the_other(server: Server) -> None:
    alice = client(server.port, "alice")
    joined(server)
    bob = client(server.port, "bob")
    joined(server)
    try:
        alice.sendline("hello bob, 你好")
        bob.expect_exact("ACKalice: hello bob, 你好")
        alice.expect_exact("ACKalice: hello bob, 你好")  # the server echoes to its sender
        server.log(r"says b?'alice: hello bob, ")
        bob.sendline("/quit")
        assert ended(bob) == 0
        server.log(r"chat 127\.0\.0\.1:\d+ left")
    finally:
        for c in (alice, bob):
            c.close(force=True)


@pytest.mark.parametrize("key", ["ctrl-c", "ctrl-d"])
def test_ctrl_c_and_ctrl_d_in_a_client_say_quit(server: Server, key: str) -> None:
    alice = client(server.port, "alice")
    port = joined(server)
    try:
        alice.send("half a line")
        if key == "ctrl-c":  # drops the half-typed line
            alice.sendintr()
        else:  # the end of input, as in a pipe: the half-typed line is sent first (before this
            alice.sendeof()  # fix Ctrl-D did nothing on a line that was not empty)
            server.log(rf"chat 127\.0\.0\.1:{port} says b?'alice: half a line'")
        assert ended(alice) == 0
        server.log(rf"chat 127\.0\.0\.1:{port} left")
        assert "half a line'" not in server.child.before
    finally:
        alice.close(force=True)


def test_a_client_says_who_it_is_where_it_talks_and_how_to_leave(server: Server) -> None:
    # Before: the prompt alone, not a word of what to do.
    c = spawn("client", "127.0.0.1", str(server.port), "--name", "ann")
    try:
        c.expect(r"you are ann \(127\.0\.0\.1:(\d+)\), in the chat of the server at "
                 rf"127\.0\.0\.1:{server.port}: type a line and press Enter to send it, "
                 r"/quit to leave")
        assert int(c.match[1]) == joined(server)
        c.expect_exact("ann>")
        c.sendline("/quit")
        assert ended(c) == 0
    finally:
        c.close(force=True)


def test_ctrl_c_stops_the_server_within_a_second_with_its_stats(server: Server) -> None:
    alice = client(server.port, "alice")
    joined(server)
    alice.sendline("one")
    server.log("says b?'alice: one'")
    alice.close(force=True)
    started = time.monotonic()
    server.child.sendintr()
    server.log(r"udplab server stopped; stats: received \d+, messages 1, sent 1")
    # Once: before, the core's log line gave the totals first ("chat server on ... stopped;
    # totals: ...").
    assert "stopped" not in server.child.before, server.child.before
    assert ended(server.child) == 0
    assert time.monotonic() - started < 1.0
    assert "Traceback" not in server.child.before


def test_sigterm_stops_the_server_as_ctrl_c_does(server: Server) -> None:
    server.child.kill(signal.SIGTERM)
    server.log("udplab server stopped; stats: nothing received")
    assert ended(server.child) == 0


def screen(socket_path: Path, target: str) -> list[str]:
    out = subprocess.run(["tmux", "-S", str(socket_path), "capture-pane", "-p", "-t", target],
                         capture_output=True, text=True, check=True, timeout=TIMEOUT).stdout
    return [line.rstrip() for line in out.splitlines() if line.strip()]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_broadcast_leaves_the_half_typed_line_intact(server: Server, tmp_path: Path) -> None:
    sock = tmp_path / "tmux"
    tmux = ["tmux", "-S", str(sock)]
    command = f"{sys.executable} -m udplab client 127.0.0.1 {server.port} --name bob"
    subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "20", "-s", "t", command],
                   check=True, timeout=TIMEOUT, env=dict(os.environ, TERM="xterm"))
    try:
        wait_until(lambda: screen(sock, "t")[-1:] == ["bob>"], TIMEOUT, 0.05)
        joined(server)
        subprocess.run([*tmux, "send-keys", "-t", "t", "-l", "half typ"], check=True)
        wait_until(lambda: screen(sock, "t")[-1:] == ["bob> half typ"], TIMEOUT, 0.05)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.sendto(b"carol: interrupting \xff\x1b[2J", ("127.0.0.1", server.port))
            # The message (its bad byte and escape shown escaped) above, the line below.
            wait_until(lambda: screen(sock, "t")[-2:] == [
                r"ACKcarol: interrupting \xff\x1b[2J", "bob> half typ"], TIMEOUT, 0.05)
            other.sendto(b"quit", ("127.0.0.1", server.port))
        # The line was not only redrawn but kept: finishing it sends the whole of it.
        subprocess.run([*tmux, "send-keys", "-t", "t", "-l", "ed"], check=True)
        subprocess.run([*tmux, "send-keys", "-t", "t", "Enter"], check=True)
        server.log("says b?'bob: half typed'")
    finally:
        subprocess.run([*tmux, "kill-server"], timeout=TIMEOUT)


def run_udplab(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "udplab", *args], input=stdin,
                          capture_output=True, text=True, timeout=30)


def test_piped_stdin_sends_each_line_and_prints_the_answers(server: Server) -> None:
    done = run_udplab("client", "127.0.0.1", str(server.port), "--wait", "0.5",
                      stdin="first line\nsecond, 第二\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ACKfirst line", "ACKsecond, 第二"]
    server.log(r"says b?'first line'")
    server.log(r"chat 127\.0\.0\.1:\d+ left")


def test_a_client_of_the_notes_corrected_server() -> None:
    reference = subprocess.Popen([sys.executable, str(ROOT / "tests" / "tutorial_chat.py")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reference.stdout is not None
        port = reference.stdout.readline().split()[1]
        done = run_udplab("client", "127.0.0.1", port, "--name", "ann", "--wait", "0.5",
                          stdin="hi tutorial\n")
        assert done.returncode == 0, done.stderr
        assert done.stdout == "ACKann: hi tutorial\n"
    finally:
        reference.communicate(timeout=TIMEOUT)


def test_the_notes_corrected_client_hears_a_udplab_server(server: Server) -> None:
    listener = tutorial_chat.ChatC("127.0.0.1", server.port)
    listener.start()
    listener.hb(1)
    try:
        joined(server)
        done = run_udplab("client", "127.0.0.1", str(server.port), "--wait", "0.3",
                          stdin="to everyone\n")
        assert done.returncode == 0, done.stderr
        assert listener.received.get(timeout=TIMEOUT) == b"ACKto everyone"
    finally:
        listener.stop()


@pytest.mark.skipif(shutil.which("nc") is None,
                    reason="netcat is not installed (apt-get install netcat-openbsd)")
def test_netcat_is_a_client_of_udplab_server(server: Server) -> None:
    nc = pexpect.spawn("nc", ["-u", "127.0.0.1", str(server.port)], encoding="utf-8",
                       timeout=TIMEOUT)
    try:
        nc.sendline("hi from nc")
        # The newline netcat sends is part of the chat text: logged and relayed (READMEs).
        server.log(r"says b'hi from nc\\n'")
        nc.expect_exact("ACKhi from nc\r\n")  # each broadcast on a line of its own
        done = run_udplab("client", "127.0.0.1", str(server.port), "--name", "ann", "--wait",
                          "0.3", stdin="hello nc\n")
        assert done.returncode == 0, done.stderr
        nc.expect_exact("ACKann: hello nc")
        nc.sendline("quit")
        server.log(r"chat 127\.0\.0\.1:\d+ left")
    finally:
        nc.close(force=True)


@pytest.mark.parametrize("args, says", [
    (["server", "--port", "99999"], "argument --port: a port is 0-65535, got 99999"),
    (["server", "--inval", "-1"], "argument --inval: must be a number of seconds more than 0"),
    (["server", "--host", "999.0.0.1"], "cannot listen on 999.0.0.1:10007"),
    (["server", "--bogus"], "unrecognized arguments: --bogus"),
    (["client", "127.0.0.1"], "the following arguments are required: PORT"),
    (["client", "127.0.0.1", "0"], "argument PORT: the server's port, not 0"),
    (["client", "no such host", "10007"], "cannot talk to no such host:10007"),
    (["link", "127.0.0.1", "10007", "--loss", "2"],
     "link: error: loss must be a probability from 0 to 1, got 2"),
    (["link", "127.0.0.1", "10007", "--delay", "0,-1"],
     "link: error: delay (down) must be from 0 to 86400 seconds (a day), got -1"),
    (["link", "127.0.0.1", "10007", "--rate", "fast"], "argument --rate: not a number: 'fast'"),
    (["link", "127.0.0.1", "10007", "--loss", "0,1,0"], "one value, or UP,DOWN"),
    (["link", "127.0.0.1", "10007", "--reorder", "0.5"], "reorder needs a delay"),
    (["nonsense"], "invalid choice: 'nonsense'"),
])
def test_bad_arguments_exit_2_with_one_line(args: list[str], says: str) -> None:
    done = run_udplab(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and says in done.stderr, done.stderr


def test_a_link_to_itself_exits_2_with_one_line() -> None:
    """Failed before: the link started and relayed to itself (the run timed out)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    done = run_udplab("link", "127.0.0.1", port, "--host", "0.0.0.0", "--port", port)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert f"target 127.0.0.1:{port} is the link's own address" in done.stderr


def test_a_port_in_use_exits_2_with_one_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        done = run_udplab("server", "--port", str(port))
    assert done.returncode == 2
    assert done.stderr == (f"python -m udplab server: error: cannot listen on 127.0.0.1:{port}: "
                           "address already in use (errno 98)\n")


@pytest.mark.parametrize("args", [[], ["server"], ["client"], ["link"], ["demo"]])
def test_every_help_shows_an_example(args: list[str]) -> None:
    done = run_udplab(*args, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m udplab")
    example = done.stdout.split("example:\n", 1)[1]
    assert re.search(r"^  udplab ", example, re.M), done.stdout


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("udplab")
    assert script.exists(), "pip install -e . installs the udplab command"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("usage: udplab ")


def test_link_keeps_a_live_status_line(server: Server) -> None:
    link = spawn("link", "127.0.0.1", str(server.port), "--loss", "0,1", "--seed", "7")
    try:
        link.expect(r"udplab link on 127\.0\.0\.1:(\d+) relays to 127\.0\.0\.1:\d+ \(seed 7\)")
        port = link.match[1]
        done = run_udplab("client", "127.0.0.1", port, "--wait", "0.3", "--interval", "5",
                          stdin="through the link\n")
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""  # every answer lost on the way down
        server.log("says b?'through the link'")
        # The line is rewritten in place (cleared from its start, the cursor back there): up,
        # a heartbeat, the line and a quit; down, the broadcast, lost.
        link.expect(r"\r\x1b\[Jup: in 3 out 3 lost 0 dup 0 reord 0 \| "
                    r"down: in 1 out 0 lost 1 dup 0 reord 0\r")
        link.sendintr()
        link.expect_exact("udplab link stopped; up: received 3, forwarded 3")
        link.expect_exact("udplab link stopped; down: received 1, lost 1")
        assert ended(link) == 0
    finally:
        link.close(force=True)


def test_capture_writes_what_the_server_and_a_client_saw(tmp_path: Path) -> None:
    server_pcap, client_pcap = tmp_path / "server.pcap", tmp_path / "client.pcap"
    server = Server("--capture", str(server_pcap))
    try:
        done = run_udplab("client", "127.0.0.1", str(server.port), "--wait", "0.3",
                          "--capture", str(client_pcap), stdin="captured\n")
        assert done.returncode == 0, done.stderr
        assert done.stdout == "ACKcaptured\n"
        assert re.search(r"udplab client stopped; capture: \d+ records, \d+ bytes in ",
                         done.stderr), done.stderr
        server.log(r"chat 127\.0\.0\.1:\d+ left")
        server.child.sendintr()
        server.log(rf"; capture: \d+ records, \d+ bytes in {re.escape(str(server_pcap))}")
        assert ended(server.child) == 0
    finally:
        server.close()
    for pcap in (server_pcap, client_pcap):
        payloads = [record.payload for record in udplab.read_capture(pcap)]
        assert b"captured" in payloads and b"ACKcaptured" in payloads, (pcap, payloads)


def test_a_capture_file_that_cannot_be_written_exits_2_with_one_line(tmp_path: Path) -> None:
    done = run_udplab("server", "--port", "0", "--capture", str(tmp_path / "no" / "x.pcap"))
    assert done.returncode == 2
    assert done.stderr == (f"python -m udplab server: error: cannot write the capture file "
                           f"{tmp_path}/no/x.pcap: no such file or directory (errno 2)\n")


@pytest.mark.parametrize("command", ["server", "link"])
def test_a_port_in_use_leaves_an_earlier_capture_as_it_was(tmp_path: Path, command: str) -> None:
    """Before, the command emptied the capture file (checking it could write it) before it
    bound the port: with the port in use it exited 2 and an earlier capture was 0 bytes."""
    earlier, new = tmp_path / "earlier.pcap", tmp_path / "new.pcap"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = str(taken.getsockname()[1])
        target = ["127.0.0.1", "9"] if command == "link" else []
        earlier.write_bytes(b"an earlier capture" * 1000)
        for path in (earlier, new):
            done = run_udplab(command, *target, "--port", port, "--capture", str(path))
            assert done.returncode == 2
            assert re.fullmatch(rf"python -m udplab {command}: error: cannot [a-z ]+ 127\.0\.0\.1:"
                                rf"{port}.*: address already in use \(errno 98\)\n", done.stderr)
    assert earlier.read_bytes() == b"an earlier capture" * 1000
    assert not new.exists(), "a failed start left behind a file it made"


def test_link_prints_plain_lines_when_not_on_a_terminal(server: Server) -> None:
    link = subprocess.Popen([sys.executable, "-m", "udplab", "link", "127.0.0.1",
                             str(server.port), "--seed", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert link.stdout is not None
        lines = [link.stdout.readline() for _ in range(2)]  # its start log line, and where
        port = re.search(r"udplab link on 127\.0\.0\.1:(\d+) relays", "".join(lines))
        assert port is not None, lines
        done = run_udplab("client", "127.0.0.1", port[1], "--wait", "0.3", "--interval", "5",
                          stdin="plain\n")
        assert done.stdout == "ACKplain\n"
        # Whole lines, no carriage return or escape sequence, once the counts changed: the
        # link's own log line that a client was mapped (before: "link link 127.0.0.1:...") and
        # a status line. Either may come first: the log record waits for the GIL, which the
        # status line's thread may hold (it did once on a loaded machine).
        mapped = status = None
        for _ in range(20):
            line = link.stdout.readline()
            if " mapped to " in line:
                mapped = line
            elif line.startswith("up: "):
                status = line
            if mapped and status:
                break
        assert mapped is not None and re.fullmatch(
            r"[\d:, -]+ link 127\.0\.0\.1:\d+ mapped to 127\.0\.0\.1:\d+\n", mapped), mapped
        assert status is not None and re.fullmatch(
            r"up: in \d+ out \d+ lost 0 dup 0 reord 0 \| "
            r"down: in \d+ out \d+ lost 0 dup 0 reord 0\n", status), status
        link.send_signal(signal.SIGTERM)
        rest, _ = link.communicate(timeout=TIMEOUT)
        assert link.returncode == 0
        assert "udplab link stopped; up: received" in rest and "\r" not in rest
    finally:
        if link.poll() is None:
            link.kill()
            link.communicate()


TOO_LONG = "长" * 21_836  # 65,508 bytes of UTF-8: one more than a UDP datagram over IPv4 holds


def test_a_piped_line_too_long_for_a_datagram_is_one_error_and_the_rest_is_sent(
        server: Server) -> None:
    # Before: a traceback (OSError: [Errno 90] Message too long), then the process hung in the
    # client's threads until this timeout.
    done = subprocess.run([sys.executable, "-m", "udplab", "client", "127.0.0.1",
                           str(server.port), "--wait", "0.5"],
                          input=f"before\n{TOO_LONG}\nafter\n", capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == ["ACKbefore", "ACKafter"]
    assert done.stderr == ("python -m udplab client: error: line 2 not sent: 65508 bytes are "
                           "more than one UDP datagram carries (65507 bytes over IPv4)\n")
    server.log(r"says b?'after'")


def test_a_typed_line_too_long_for_a_datagram_is_one_error_and_the_chat_goes_on(
        server: Server) -> None:
    alice = client(server.port, "alice")
    joined(server)
    try:
        alice.send(f"\x1b[200~{TOO_LONG}\x1b[201~")  # pasted (bracketed paste): one redraw
        alice.send("\r")
        # "alice: " and the line: 65,515 bytes
        alice.expect_exact("not sent: 65515 bytes are more than one UDP datagram carries")
        alice.sendline("still here")
        alice.expect_exact("ACKalice: still here")
        alice.sendline("/quit")
        assert ended(alice) == 0
        assert "Traceback" not in alice.before
    finally:
        alice.close(force=True)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_link_status_line_fits_a_narrow_terminal_and_a_resize(server: Server,
                                                                  tmp_path: Path) -> None:
    """Before: the line was cut at the terminal's width (at 51 columns: '... | down: in 1 out
    1 lo'), and after the terminal got narrower the first row of the old, rewrapped line stayed
    on the screen above the new one."""
    sock = tmp_path / "tmux"
    tmux = ["tmux", "-S", str(sock)]
    command = (f"{sys.executable} -m udplab link 127.0.0.1 {server.port} --loss 0.5,0 "
               "--seed 3")
    subprocess.run([*tmux, "new-session", "-d", "-x", "100", "-y", "12", "-s", "t", command],
                   check=True, timeout=TIMEOUT, env=dict(os.environ, TERM="xterm"))
    try:
        def status() -> list[str]:
            return [line for line in screen(sock, "t") if "in " in line and " out " in line]

        wait_until(lambda: len(status()) == 1, TIMEOUT, 0.05)
        port = re.search(r"udplab client 127\.0\.0\.1 (\d+)", "".join(screen(sock, "t")))
        assert port is not None
        done = run_udplab("client", "127.0.0.1", port[1], "--wait", "0.3", "--interval", "5",
                          stdin="".join(f"m{i}\n" for i in range(20)))
        assert done.returncode == 0, done.stderr
        wait_until(lambda: re.fullmatch(r"up: in 2\d out \d+ lost \d+ dup 0 reord 0 \| "
                                        r"down: in \d+ out \d+ lost 0 dup 0 reord 0",
                                        status()[-1]) is not None, TIMEOUT, 0.05)
        subprocess.run([*tmux, "resize-window", "-t", "t", "-x", "51"], check=True)
        # The counts that matter in full, the line on one row, and nothing left of the old one.
        wait_until(lambda: re.fullmatch(r"up: in 2\d out \d+ lost [1-9]\d* \| "
                                        r"down: in \d+ out \d+", status()[-1])
                   is not None, TIMEOUT, 0.05)
        rows = screen(sock, "t")
        assert len(status()) == 1 and rows[-1] == status()[0], rows
        assert not any("reord" in row for row in rows), rows
        subprocess.run([*tmux, "resize-window", "-t", "t", "-x", "100"], check=True)
        wait_until(lambda: "reord 0" in status()[-1], TIMEOUT, 0.05)
        assert len(status()) == 1, screen(sock, "t")
    finally:
        subprocess.run([*tmux, "kill-server"], timeout=TIMEOUT)
