"""Run by scripts/wheel-test inside a fresh virtual environment that has only the udplab wheel
(and its dependencies):
checks that udplab comes from that environment (not from a source tree) as the stable-ABI
extension, then runs a chat on loopback, a socket round trip and `udplab client --help` (the
console script). Prints one line on success."""

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

print(f"chat, socket, udplab command ok: CPython {platform.python_version()}, {core.__file__}")
