"""Broadcasts larger than the path MTU still arrive (the server asks for "don't fragment").

The chat server sends IPv4 datagrams with DF and falls back to fragmenting a datagram the
kernel refuses as too large for its path (crates/udplab/src/fanout.rs). Loopback's MTU (65536) never
refuses anything, so this runs the server in a private network namespace (``unshare -rn``)
whose loopback has an MTU of 1280. Skipped where namespaces are not allowed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

CHILD = r"""
import json, socket, subprocess, time
import udplab

subprocess.run(["ip", "link", "set", "lo", "up", "mtu", "1280"], check=True)
out = {}
# The setting under test really refuses: a plain socket with DF cannot send 2000 bytes here.
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# IP_MTU_DISCOVER = 10, IP_PMTUDISC_DO = 2 on Linux (socket has the names from Python 3.12).
probe.setsockopt(socket.IPPROTO_IP, 10, 2)
try:
    probe.sendto(b"x" * 2000, ("127.0.0.1", 9))
    out["probe"] = "sent"
except OSError as e:
    out["probe"] = e.errno
probe.close()

server = udplab.ChatS("127.0.0.1", 0, 10.0)
server.start()
clients = []
for _ in range(3):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    c.settimeout(5)
    c.sendto(b"HB", server.addr)
    clients.append(c)
deadline = time.monotonic() + 5
while len(server.raddrs) < 3 and time.monotonic() < deadline:
    time.sleep(0.005)
heard = []
for payload in (b"b" * 2000, b"small", b"c" * 3000):
    clients[0].sendto(payload, server.addr)
    heard.append([c.recv(65536) == b"ACK" + payload for c in clients])
out["heard"] = heard
out["send_errors"] = server.stats()["send_errors"]
server.stop()
print(json.dumps(out))
"""


def test_messages_larger_than_the_mtu_reach_every_client() -> None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs unshare(1) and ip(8)")
    allowed = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if allowed.returncode != 0:
        pytest.skip(f"network namespaces not allowed: {allowed.stderr.decode().strip()}")
    run = subprocess.run(
        ["unshare", "-rn", sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["probe"] == 90  # EMSGSIZE: without the fallback these broadcasts would be lost
    assert out["heard"] == [[True] * 3] * 3
    assert out["send_errors"] == 0
