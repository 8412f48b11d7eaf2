"""A chat server behind a link slower than loopback: no broadcast is lost to backpressure.

Loopback takes a datagram as fast as the server can send it, so a send never has to wait. A
classroom LAN does not: once the link's queue and the socket's send buffer are full, a send has
to wait for room. udplab's server keeps its socket blocking for sends (waiting at most
``SEND_WAIT``, 0.5 s per broadcast) and only polls for the next datagram without blocking
(``MSG_DONTWAIT``); before, it made the whole socket non-blocking for ``spin`` after each
broadcast, and every send in that window that met a full buffer was counted as a failed client
and lost.

The test builds a real link in private network namespaces (``unshare -rn``, no privileges
needed where user namespaces are allowed): a veth pair between the server's namespace and the
clients', limited to 20 Mbit/s by a token bucket (``tc qdisc ... tbf``) on the server's side.
Skipped, with the reason, where namespaces or the tools are not available.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

CLIENTS = 10
MESSAGES = 40  # per client
PAYLOAD = 500  # bytes: the 10 copies of a message take about 2 ms at 20 Mbit/s

# Runs in a network namespace of its own, the clients' end of the link (v1, 10.77.0.2).
CLIENT_SIDE = r"""
import json, select, socket, subprocess, sys, time

print("ready", flush=True)
port = int(sys.stdin.readline())
clients, messages, payload = (int(a) for a in sys.argv[1:4])
for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "10.77.0.2/24", "dev", "v1"],
            ["ip", "link", "set", "v1", "up"]):
    subprocess.run(cmd, check=True)
server = ("10.77.0.1", port)
socks = []
for _ in range(clients):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.77.0.2", 0))
    s.setblocking(False)
    socks.append(s)
received = {s: 0 for s in socks}
tag = {s: b"%02d" % i for i, s in enumerate(socks)}
echoed = {s: -1 for s in socks}  # the last of its own messages each client got back


def drain(wait):
    readable, _, _ = select.select(socks, [], [], wait)
    for s in readable:
        while True:
            try:
                data = s.recv(65536)
            except BlockingIOError:
                break
            received[s] += 1
            if data[3:5] == tag[s]:  # b"ACK" + client + sequence number
                echoed[s] = max(echoed[s], int(data[5:10]))
    return bool(readable)


# Join (the link needs a moment to come up: heartbeat twice).
for s in socks:
    s.sendto(b"HB", server)
time.sleep(0.5)
for s in socks:
    s.sendto(b"HB", server)
time.sleep(0.2)
# Every client keeps up to WINDOW of its messages in flight: 50 messages, 500 copies, queue at
# the server's side of the link, far more than its send buffer holds, while the server's
# receive queue holds at most 50 messages (its size is capped by net.core.rmem_max). A client
# whose message is not back within 1 s goes on anyway (a copy was lost).
WINDOW = 4
sent = {s: 0 for s in socks}
stalled_since = time.monotonic()
end = time.monotonic() + 60
while any(n < messages for n in sent.values()) and time.monotonic() < end:
    for s in socks:
        late = time.monotonic() - stalled_since > 1
        if sent[s] < messages and (sent[s] - echoed[s] <= WINDOW or late):
            s.sendto(b"%s%05d" % (tag[s], sent[s]) + b"x" * (payload - 7), server)
            sent[s] += 1
            stalled_since = time.monotonic()
    drain(0.01)
# Collect until the link has been quiet for 2 s (bounded by 30 s).
quiet_until, end = time.monotonic() + 2, time.monotonic() + 30
while time.monotonic() < min(quiet_until, end):
    if drain(0.1):
        quiet_until = time.monotonic() + 2
print(json.dumps({"delivered": sum(received.values())}), flush=True)
"""

# Runs in the server's namespace (v0, 10.77.0.1, rate-limited), started by `unshare -rn`.
SERVER_SIDE = r"""
import json, subprocess, sys
import udplab

clients, messages, payload = sys.argv[1:4]
peer = subprocess.Popen(
    ["unshare", "-n", sys.executable, "-c", sys.argv[4], clients, messages, payload],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
)
assert peer.stdout.readline() == "ready\n"
for cmd in (
    ["ip", "link", "set", "lo", "up"],
    ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", str(peer.pid)],
    ["ip", "addr", "add", "10.77.0.1/24", "dev", "v0"],
    ["ip", "link", "set", "v0", "up"],
    # 20 Mbit/s with a queue far larger than the socket's send buffer: the sender meets a full
    # send buffer, not a full queue (a full queue would drop silently in the qdisc).
    ["tc", "qdisc", "add", "dev", "v0", "root", "tbf", "rate", "20mbit", "burst", "16kb",
     "latency", "2s"],
):
    subprocess.run(cmd, check=True)
server = udplab.ChatS("10.77.0.1", 0, 60)
server.start()
peer.stdin.write(f"{server.addr[1]}\n")
peer.stdin.flush()
result = json.loads(peer.stdout.readline())
peer.wait(10)
stats = server.stats()
server.stop()
result.update(messages=stats["messages"], sent=stats["sent"], send_errors=stats["send_errors"],
              joins=stats["joins"])
print(json.dumps(result))
"""


def run_in_namespaces() -> dict[str, int]:
    for tool in ("unshare", "ip", "tc"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool}(8) to build a rate-limited link")
    allowed = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if allowed.returncode != 0:
        pytest.skip(f"network namespaces not allowed: {allowed.stderr.decode().strip()}")
    args = [str(CLIENTS), str(MESSAGES), str(PAYLOAD), CLIENT_SIDE]
    run = subprocess.run(
        ["unshare", "-rn", sys.executable, "-c", SERVER_SIDE, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0 and "Operation not supported" in run.stderr:
        pytest.skip(f"veth or tbf not available here: {run.stderr.strip()[-300:]}")
    assert run.returncode == 0, run.stderr
    out: dict[str, int] = json.loads(run.stdout)
    return out


def test_broadcasts_over_a_20_mbit_link_wait_for_room_instead_of_being_lost() -> None:
    out = run_in_namespaces()
    expected = CLIENTS * MESSAGES
    assert out["joins"] == CLIENTS
    assert out["messages"] == expected  # every message reached the server
    # Every copy of every message was sent, none refused for a full buffer, and all arrived.
    assert (out["sent"], out["send_errors"]) == (expected * CLIENTS, 0), out
    assert out["delivered"] == expected * CLIENTS, out
