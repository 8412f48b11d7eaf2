"""Run by scripts/wheel-test inside a fresh virtual environment that has only the udplab wheel
(and its dependencies):
checks that udplab comes from that environment (not from a source tree) as the stable-ABI
extension, then runs a chat on loopback, a socket round trip, one with udplab.aio and
`udplab client --help` (the console script), and grades a lab's reference solution from the
source tree (which the wheel must not hold). Prints one line on success."""

import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import prompt_toolkit  # noqa: F401  (the wheel's dependency, for `udplab client`)
import udplab
import udplab._core as core
import udplab.cli  # noqa: F401

assert core.__file__.startswith(sys.prefix), (
    f"udplab was not imported from the venv: {core.__file__}"
)
# The stable-ABI extension's name: _core.abi3.so on Linux and macOS, _core.pyd on Windows.
assert core.__file__.endswith((".abi3.so", ".pyd")), f"not the abi3 extension: {core.__file__}"

capture = Path(tempfile.mkdtemp()) / "chat.pcap"
with udplab.ChatS("127.0.0.1", 0, inval=5, capture=capture) as server:
    with udplab.ChatC(*server.addr, interval=1) as alice:
        alice.send(b"hello")
        got = alice.recv(timeout=5)
        assert got == b"ACKhello", got
    messages = server.stats()["messages"]
assert messages == 1, messages
# The capture file, read back, and the Wireshark dissector shipped beside the package's code.
stats = server.stats()
records = list(udplab.read_capture(capture))
assert len(records) == stats["received"] + stats["sent"] == stats["capture"]["records"], records
from udplab.wireshark import DISSECTOR  # noqa: E402

assert DISSECTOR.is_file() and str(DISSECTOR).startswith(sys.prefix), DISSECTOR

with udplab.socket(type=udplab.SOCK_DGRAM) as a, udplab.socket(type=udplab.SOCK_DGRAM) as b:
    a.bind(("127.0.0.1", 0))
    a.settimeout(5)
    b.sendto(bytearray(b"ping"), a.getsockname())  # a buffer other than bytes: via memoryview
    data, _ = a.recvfrom(16)
    assert data == b"ping", data

# udplab.aio on this Python (scripts/wheel-test runs the oldest and the newest there is).
import asyncio  # noqa: E402

import udplab.aio  # noqa: E402


async def echo() -> bytes:
    async with udplab.aio.bind(("127.0.0.1", 0)) as server, \
            udplab.aio.connect(server.getsockname()) as client:
        await client.send(b"ping")
        data, addr = await server.recvfrom(16)
        await server.sendto(b"ack" + data, addr)
        return await asyncio.wait_for(client.recv(16), 5)


assert asyncio.run(echo()) == b"ackping"

# The console script.
script = Path(sys.executable).with_name("udplab.exe" if sys.platform == "win32" else "udplab")
usage = subprocess.run([str(script), "client", "--help"], capture_output=True, text=True,
                       check=True, timeout=60).stdout
assert usage.startswith("usage: udplab client"), usage
# The compiled Chinese catalog ships in the wheel.
usage = subprocess.run([str(script), "client", "--help"], capture_output=True, text=True,
                       encoding="utf-8", check=True, timeout=60,
                       env={**os.environ, "UDPLAB_LANG": "zh"}).stdout
assert usage.startswith("用法：udplab client"), usage

# The labs: the templates ship in the wheel and the reference solutions do not (a teacher
# withholds them); a reference from the source tree passes through the installed grader.
import io  # noqa: E402

from udplab import labs  # noqa: E402

package = Path(udplab.__file__).parent
assert labs.template("go-back-n", "zh").startswith('"""实验 3'), "the templates ship"
shipped = [p for p in package.rglob("*.py")
           if any(mark in p.read_text("utf-8") for mark in ("reference solution (for teachers",
                                                            "参考答案（供教师使用"))]
assert not shipped, f"a reference solution is in the wheel: {shipped}"
try:
    labs.reference("stop-and-wait")
except FileNotFoundError:
    pass
else:
    raise AssertionError("the installed udplab found a reference solution")
source = Path(__file__).resolve().parents[1] / "teacher"
report = labs.grade("stop-and-wait", labs.reference("stop-and-wait", source), seeds=1,
                    tiers="sanity", out=io.StringIO())
assert report.passed, report.rows

print(f"chat, socket, udplab command, labs ok: CPython {platform.python_version()}, "
      f"{core.__file__}")
