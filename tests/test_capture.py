"""capture=: every datagram a chat server, client or link handles, in a pcap file; and
udplab.read_capture, the reader for such files."""

from __future__ import annotations

import collections
import io
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import udplab
import udplab.wireshark as udplab_wireshark
from conftest import ipv6_available, wait_until

TSHARK = shutil.which("tshark")


def chat(host: str, path: Path | Any, clients: int = 3, messages: int = 5,
         **options: Any) -> tuple[dict[str, Any], list[bytes], udplab.ChatS]:
    """Run a chat with capture on; return the server's stats, what the clients sent and the
    server."""
    sent: list[bytes] = []
    with udplab.ChatS(host, 0, 30, capture=path, **options) as server:
        port = server.addr[1]
        members = [udplab.ChatC(host, port, interval=None) for _ in range(clients)]
        for c in members:
            c.start()
            c.send(b"HB")
            sent.append(b"HB")
        wait_until(lambda: len(server.raddrs) == clients)
        for i in range(messages):
            for n, c in enumerate(members):
                msg = f"client {n} message {i}".encode()
                c.send(msg)
                sent.append(msg)
        for c in members:
            for _ in range(clients * messages):
                c.recv(5)
        for c in members:
            c.stop()  # says quit
            sent.append(b"quit")
        wait_until(lambda: server.stats()["quits"] == clients)
    return server.stats(), sent, server


def checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def raw_packets(path: Path) -> list[bytes]:
    """The IP packets of a little-endian pcap file, parsed here independently."""
    data = path.read_bytes()
    assert data[:4] == b"\x4d\x3c\xb2\xa1"  # nanosecond magic
    assert struct.unpack_from("<HHiIII", data, 4) == (2, 4, 0, 0, 262144, 101)
    packets, offset = [], 24
    while offset < len(data):
        _, frac, included, original = struct.unpack_from("<IIII", data, offset)
        assert included == original  # no snapping
        assert frac < 1_000_000_000
        packets.append(data[offset + 16:offset + 16 + included])
        offset += 16 + included
    assert offset == len(data)
    return packets


def assert_checksums(packet: bytes) -> None:
    if packet[0] >> 4 == 4:
        assert checksum(packet[:20]) == 0, "IPv4 header checksum"
        assert struct.unpack_from("!H", packet, 2)[0] == len(packet)
        pseudo, udp = packet[12:20] + struct.pack("!BBH", 0, 17, len(packet) - 20), packet[20:]
    else:
        assert struct.unpack_from("!H", packet, 4)[0] == len(packet) - 40
        pseudo = packet[8:40] + struct.pack("!IxxxB", len(packet) - 40, 17)
        udp = packet[40:]
    assert struct.unpack_from("!H", udp, 4)[0] == len(udp)
    assert checksum(pseudo + udp) == 0, "UDP checksum"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_capture_holds_what_the_server_counted_payload_for_payload(
        tmp_path: Path, host: str) -> None:
    if host == "::1" and not ipv6_available():
        pytest.skip("no IPv6 loopback here")
    path = tmp_path / "chat.pcap"
    stats, sent, server = chat(host, path)
    addr = server.addr[:2]
    records = list(udplab.read_capture(path))
    inbound = [r for r in records if r.dst[:2] == addr]
    outbound = [r for r in records if r.src[:2] == addr]
    assert len(inbound) + len(outbound) == len(records) == stats["capture"]["records"]
    assert len(inbound) == stats["received"] == len(sent)
    assert len(outbound) == stats["sent"] == 3 * 5 * 3
    assert collections.Counter(r.payload for r in inbound) == collections.Counter(sent)
    expected = collections.Counter(b"ACK" + m for m in sent if m.startswith(b"client")
                                   for _ in range(3))
    assert collections.Counter(r.payload for r in outbound) == expected
    times = [r.time for r in records]
    assert times == sorted(times) or max(times) - min(times) < 60
    assert all(abs(t - time.time()) < 60 for t in times)
    assert stats["capture"]["bytes"] == path.stat().st_size
    assert stats["capture"]["skipped"] == stats["capture"]["errors"] == 0
    packets = raw_packets(path)
    assert len(packets) == len(records)
    for p in packets:
        assert p[0] >> 4 == (4 if host == "127.0.0.1" else 6)
        assert_checksums(p)


def test_records_are_in_time_order_when_threads_race(tmp_path: Path) -> None:
    """Two threads send on one capturing client while it heartbeats every millisecond and its
    own thread receives. A datagram's time is read before its send, so another thread's later
    datagram can reach the capture first. Before, records were sorted only within the batch
    the writer took: 4-9 steps back in time per run (up to 20 ms), negative deltas in
    Wireshark."""
    path = tmp_path / "client.pcap"
    with udplab.ChatS("127.0.0.1", 0, 30) as server:
        client = udplab.ChatC("127.0.0.1", server.addr[1], interval=0.001, capture=path)
        with client:
            def send(tag: str) -> None:
                for i in range(5000):
                    client.send(f"{tag} {i}".encode())

            senders = [threading.Thread(target=send, args=(tag,)) for tag in ("a", "b")]
            for t in senders:
                t.start()
            for t in senders:
                t.join(timeout=60)
    times = [r.time for r in udplab.read_capture(path)]
    assert len(times) == client.stats()["capture"]["records"] > 10_000
    back = [earlier - later for earlier, later in zip(times, times[1:]) if later < earlier]
    assert not back, f"{len(back)} steps back in time, up to {max(back) * 1e3:.3f} ms"


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (scripts/check installs it "
                    "where it runs as root)")
def test_tshark_reads_the_capture_with_good_checksums(tmp_path: Path) -> None:
    path = tmp_path / "chat.pcap"
    stats, sent, server = chat("127.0.0.1", path, clients=2, messages=3)
    out = subprocess.run(
        [str(TSHARK), "-r", str(path), "-o", "ip.check_checksum:TRUE",
         "-o", "udp.check_checksum:TRUE", "-T", "fields", "-e", "ip.checksum.status",
         "-e", "udp.checksum.status", "-e", "udp.dstport", "-e", "udp.payload"],
        capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert len(out) == stats["received"] + stats["sent"]
    rows = [line.split("\t") for line in out]
    assert all(r[0] == "1" and r[1] == "1" for r in rows), "tshark: checksum status Good"
    to_server = [bytes.fromhex(r[3]) for r in rows if int(r[2]) == server.addr[1]]
    assert collections.Counter(to_server) == collections.Counter(sent)


def test_client_capture_records_its_side(tmp_path: Path) -> None:
    path = tmp_path / "client.pcap"
    with udplab.ChatS("127.0.0.1", 0, 30) as server:
        with udplab.ChatC("127.0.0.1", server.addr[1], interval=None, capture=path) as c:
            c.send(b"hello")
            assert c.recv(5) == b"ACKhello"
            addr = c.addr
        stats = c.stats()
    records = list(udplab.read_capture(path))
    assert [(r.src, r.payload) for r in records] == [
        (addr, b"hello"), (server.addr, b"ACKhello"), (addr, b"quit")]
    assert stats["capture"]["records"] == 3


def test_link_capture_shows_both_sides_and_what_it_lost(tmp_path: Path) -> None:
    path = tmp_path / "link.pcap"
    with udplab.ChatS("127.0.0.1", 0, 30) as server:
        with udplab.Link(server.addr, loss=(0.5, 0.0), seed=7, capture=path) as link:
            with udplab.ChatC(*link.addr[:2], interval=None) as c:
                for i in range(40):
                    c.send(f"m{i}".encode())

                def answered() -> bool:
                    # every message the link forwarded has come back as a broadcast (both
                    # counts start at 0, so wait for all 40 to have reached the link first)
                    s = link.stats()
                    return (s["up"]["received"] == 40
                            and s["down"]["forwarded"] == s["up"]["forwarded"])

                wait_until(answered)
            wait_until(lambda: link.stats()["up"]["received"] == 41)  # with the quit
        stats = link.stats()
    records = list(udplab.read_capture(path))
    from_client = [r for r in records if r.dst == link.addr[:2]]
    to_target = [r for r in records if r.dst == server.addr[:2]]
    assert len(from_client) == stats["up"]["received"] == 41
    assert len(to_target) == stats["up"]["forwarded"]
    assert 0 < len(to_target) < 41  # some lost: in, never out
    assert {r.payload for r in to_target} <= {r.payload for r in from_client}
    # replies come back from the target and go on to the client
    back = [r for r in records if r.src == server.addr[:2]]
    assert len(back) == stats["down"]["received"] > 0
    assert stats["capture"]["records"] == len(records)


def test_records_past_the_limit_are_skipped_and_the_chat_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "small.pcap"
    limit = 24 + 10 * 60
    stats, sent, _ = chat("127.0.0.1", path, capture_limit=limit)
    cap = stats["capture"]
    assert cap["records"] > 0 and cap["skipped"] > 0
    assert cap["records"] + cap["skipped"] == stats["received"] + stats["sent"]
    assert path.stat().st_size == cap["bytes"] <= limit
    assert len(list(udplab.read_capture(path))) == cap["records"]
    assert stats["messages"] == 15  # every message was still handled


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_full_disk_is_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    stats, sent, _ = chat("127.0.0.1", "/dev/full")
    cap = stats["capture"]
    assert cap["records"] == 0
    assert cap["errors"] == stats["received"] + stats["sent"] > 0
    assert stats["messages"] == 15
    failures = [r for r in caplog.records if "writing failed" in r.getMessage()]
    assert len(failures) == 1
    assert "No space left on device" in failures[0].getMessage()


def test_an_open_binary_file_and_a_closed_one(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    stats, _, _ = chat("127.0.0.1", buffer, clients=1, messages=2)
    assert len(buffer.getvalue()) == stats["capture"]["bytes"]
    path = tmp_path / "copy.pcap"
    path.write_bytes(buffer.getvalue())
    assert len(list(udplab.read_capture(path))) == stats["capture"]["records"] == 6

    closing = io.BytesIO()
    with udplab.ChatS("127.0.0.1", 0, 30, capture=closing) as server:
        with udplab.ChatC("127.0.0.1", server.addr[1], interval=None) as c:
            c.send(b"one")
            c.recv(5)
            wait_until(lambda: server.stats()["capture"]["records"] == 2)
            closing.close()
            c.send(b"two")
            assert c.recv(5) == b"ACKtwo"  # the chat goes on
    assert server.stats()["capture"]["errors"] >= 2
    with pytest.raises(RuntimeError, match="already holds the capture of an earlier start"):
        server.start()  # a second file header in the middle of the first capture
    assert not server.running


def test_bad_capture_options() -> None:
    with pytest.raises(TypeError, match="binary mode"):
        udplab.ChatS("127.0.0.1", 0, 3, capture=io.StringIO())
    with pytest.raises(TypeError, match="path or a binary file"):
        udplab.ChatC("127.0.0.1", 9, capture=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capture_limit must be at least 24"):
        udplab.Link(("127.0.0.1", 9), capture="x.pcap", capture_limit=10)
    server = udplab.ChatS("127.0.0.1", 0, 3, capture="/nonexistent/dir/chat.pcap")
    with pytest.raises(FileNotFoundError):
        server.start()
    assert not server.running


@pytest.mark.parametrize("spelling", [str, Path])
def test_a_capture_path_that_cannot_be_opened_is_named_as_open_names_it(
        tmp_path: Path, spelling: Any) -> None:
    """Before, the error said ``[Errno 2] No such file or directory`` and no more: no path in
    the message, ``filename`` None."""
    missing = tmp_path / "no such dir" / "chat.pcap"
    with pytest.raises(FileNotFoundError) as raised:
        open(spelling(missing), "wb")
    server = udplab.ChatS("127.0.0.1", 0, 3, capture=spelling(missing))
    with pytest.raises(FileNotFoundError) as caught:
        server.start()
    assert caught.value.filename == raised.value.filename == str(missing)
    assert str(caught.value) == str(raised.value)
    assert caught.value.errno == raised.value.errno
    with pytest.raises(IsADirectoryError) as caught:
        udplab.Link(("127.0.0.1", 9), capture=tmp_path).start()
    assert caught.value.filename == str(tmp_path) and str(tmp_path) in str(caught.value)


def test_a_start_that_fails_leaves_an_earlier_capture_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start that fails once the capture is open (here: no thread can be started) writes
    nothing, and leaves nothing running. Before, the file was opened by truncating it and held
    a lone file header (24 bytes) instead of the earlier capture, and the object stayed
    half-started (``running`` true, its port bound)."""
    earlier = tmp_path / "earlier.pcap"
    stats, _, _ = chat("127.0.0.1", earlier, clients=1, messages=2)
    content = earlier.read_bytes()
    assert len(content) == stats["capture"]["bytes"] > 24
    new = tmp_path / "new.pcap"

    def refuse(self: Any) -> None:
        raise RuntimeError("can't start new thread")

    server = udplab.ChatS("127.0.0.1", 0, 3, capture=earlier)
    with monkeypatch.context() as m:
        m.setattr(threading.Thread, "start", refuse)
        for obj in (server, udplab.Link(("127.0.0.1", 9), capture=earlier),
                    udplab.ChatS("127.0.0.1", 0, 3, capture=new)):
            with pytest.raises(RuntimeError, match="can't start new thread"):
                obj.start()
            assert earlier.read_bytes() == content
            assert not new.exists(), "a failed start left behind a file it made"
            assert not obj.running
    server.start()  # the port was freed and the file released
    server.stop()
    assert len(earlier.read_bytes()) == 24  # a start that succeeded rewrites it


def test_two_objects_cannot_write_one_capture_file(tmp_path: Path) -> None:
    """A second writer would interleave its records into the first one's file: refused while
    the first runs (the same path by another spelling, or the same file object), with nothing
    left running; free again once the first stops."""
    path = tmp_path / "chat.pcap"
    with udplab.ChatS("127.0.0.1", 0, 3, capture=path) as server:
        other = str(tmp_path / "sub" / ".." / "chat.pcap")
        (tmp_path / "sub").mkdir()
        client = udplab.ChatC("127.0.0.1", server.addr[1], capture=other)
        writing = r"capture: chat server on .* is writing to .*chat\.pcap"
        with pytest.raises(RuntimeError, match=writing):
            client.start()
        assert not client.running
    with udplab.ChatC("127.0.0.1", server.addr[1], interval=None, capture=path):
        pass  # the server stopped, so the file is free
    assert udplab.read_capture(path) is not None
    sink = io.BytesIO()
    with udplab.ChatS("127.0.0.1", 0, 3, capture=sink) as server:
        link = udplab.Link(server.addr, capture=sink)
        with pytest.raises(RuntimeError, match="is writing to this file object"):
            link.start()
        assert not link.running


CRASHING = textwrap.dedent("""
    import sys, udplab
    server = udplab.ChatS("127.0.0.1", 0, 30, capture=sys.argv[1], daemon=True)
    server.start()
    client = udplab.ChatC("127.0.0.1", server.addr[1], interval=None, daemon=True)
    client.start()
    i = 0
    while True:
        client.send(b"message %d" % i)
        client.recv(5)
        i += 1
""")


def test_a_crash_mid_capture_leaves_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "crash.pcap"
    child = subprocess.Popen([sys.executable, "-c", CRASHING, str(path)])
    try:
        wait_until(lambda: path.exists() and path.stat().st_size > 20_000, timeout=30)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    records = list(udplab.read_capture(path))  # no ValueError: whole records only
    assert len(records) > 200
    sent = [r.payload for r in records if not r.payload.startswith(b"ACK")]
    assert sent == [b"message %d" % i for i in range(len(sent))]


def write_pcap(path: Path, magic: bytes, linktype: int, records: list[bytes],
               order: str = "<") -> None:
    header = magic + struct.pack(order + "HHiIII", 2, 4, 0, 0, 65535, linktype)
    body = b"".join(struct.pack(order + "IIII", 10, 500, len(r), len(r)) + r for r in records)
    path.write_bytes(header + body)


def udp4(payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 1000, 2000, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return ip + udp


def test_read_capture_reads_microsecond_big_endian_pcap(tmp_path: Path) -> None:
    path = tmp_path / "micro.pcap"
    tcp = udp4(b"x")[:9] + b"\x06" + udp4(b"x")[10:]
    write_pcap(path, b"\xa1\xb2\xc3\xd4", 101, [udp4(b"hi"), tcp, udp4(b"")], ">")
    records = list(udplab.read_capture(path))
    assert records == [
        udplab.Record(10.0005, ("10.0.0.1", 1000), ("10.0.0.2", 2000), b"hi"),
        udplab.Record(10.0005, ("10.0.0.1", 1000), ("10.0.0.2", 2000), b""),
    ]


def test_read_capture_names_what_is_wrong_and_where(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"hello, this is not a capture file")
    with pytest.raises(ValueError, match=r"not a pcap file: magic 68656c6c at offset 0"):
        list(udplab.read_capture(bad))
    bad.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))
    with pytest.raises(ValueError, match="pcapng"):
        list(udplab.read_capture(bad))
    bad.write_bytes(b"\xd4\xc3\xb2\xa1")
    with pytest.raises(ValueError, match="shorter than the 24-byte file header"):
        list(udplab.read_capture(bad))
    write_pcap(bad, b"\xd4\xc3\xb2\xa1", 1, [udp4(b"x")])
    with pytest.raises(ValueError, match="link type 1 at offset 20.*Ethernet"):
        list(udplab.read_capture(bad))
    write_pcap(bad, b"\xd4\xc3\xb2\xa1", 101, [udp4(b"one"), udp4(b"two")])
    bad.write_bytes(bad.read_bytes()[:-2])
    got = []
    with pytest.raises(ValueError, match=r"record 2 at offset 71 is truncated: 29 of its 31"):
        for r in udplab.read_capture(bad):
            got.append(r.payload)
    assert got == [b"one"]  # what came before the fault was read
    write_pcap(bad, b"\xd4\xc3\xb2\xa1", 101, [b"\x75" + bytes(30)])
    with pytest.raises(ValueError, match="record 1 at offset 24: IP version 7"):
        list(udplab.read_capture(bad))


def test_udplab_wireshark_says_where_the_dissector_is() -> None:
    out = subprocess.run([sys.executable, "-m", "udplab", "wireshark", "--port", "5000"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lua = Path(out.splitlines()[0].split(": ", 1)[1])
    assert lua.name == "udplab.lua" and lua.is_file()
    assert lua == udplab_wireshark.DISSECTOR
    assert f"-X lua_script:{lua} -d udp.port==5000,udplab" in out
    assert "-o udplab.port:5000" in out


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (scripts/check installs it "
                    "where it runs as root)")
@pytest.mark.parametrize("how", ["decode-as", "preference"])
def test_the_dissector_labels_every_kind_in_tshark(tmp_path: Path, how: str) -> None:
    path = tmp_path / "chat.pcap"
    stats, sent, server = chat("127.0.0.1", path, clients=2, messages=2)
    port = server.addr[1]
    told = (["-d", f"udp.port=={port},udplab"] if how == "decode-as"
            else ["-o", f"udplab.port:{port}"])
    out = subprocess.run(
        [str(TSHARK), "-X", f"lua_script:{udplab_wireshark.DISSECTOR}", *told, "-r", str(path),
         "-T", "fields", "-e", "udp.dstport", "-e", "udplab.kind", "-e", "udplab.prefix",
         "-e", "udplab.message"],
        capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    rows = [line.split("\t") for line in out]
    kinds = collections.Counter(r[1] for r in rows)
    assert kinds == {"heartbeat": 2, "message": 4, "quit": 2, "broadcast": stats["sent"]}
    assert all(int(r[0]) == port for r in rows if r[1] != "broadcast")
    broadcasts = [(r[2], r[3]) for r in rows if r[1] == "broadcast"]
    assert set(broadcasts) == {("ACK", m.decode()) for m in sent if m.startswith(b"client")}


def expected_kind(record: udplab.Record, servers: list[tuple[Any, ...]]) -> str:
    """What the dissector should call a record, from the addresses udplab knows."""
    if record.payload == b"":
        return "empty"
    if record.src[:2] in servers:
        return "broadcast"
    assert record.dst[:2] in servers, record
    word = record.payload.removesuffix(b"\n")
    return {b"HB": "heartbeat", b"quit": "quit"}.get(word, "message")


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (scripts/check installs it "
                    "where it runs as root)")
def test_the_dissector_labels_every_datagram_of_a_chat_and_a_link_without_a_port(
        tmp_path: Path) -> None:
    """Before: with no port named nothing was labelled, and with the server's port named the
    half of a link capture between the clients and the link stayed plain UDP (and an empty
    datagram never reached any dissector)."""
    chat_pcap, link_pcap = tmp_path / "chat.pcap", tmp_path / "link.pcap"
    with udplab.ChatS("127.0.0.1", 0, 30, capture=chat_pcap) as server:
        # Seed 0 loses the first datagram upstream, bob's heartbeat: the dissector must find
        # the server behind the link from the messages the link passes on.
        with udplab.Link(server.addr, loss=(0.5, 0), seed=0, capture=link_pcap) as link:
            alice = udplab.ChatC(*server.addr[:2], interval=None)
            bob = udplab.ChatC(*link.addr[:2], interval=None)
            with alice, bob, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nc:
                alice.send(b"HB")
                bob.send(b"HB")
                for i in range(6):
                    bob.send(f"你好 {i}".encode())
                # Bob's heartbeat lost, what the link passed on are his messages only.
                wait_until(lambda: link.stats()["up"]["received"] == 7
                           and server.stats()["messages"] == link.stats()["up"]["forwarded"])
                nc.sendto(b"hi from nc\n", server.addr[:2])  # netcat: no heartbeat
                alice.send(b"")  # dropped by the server, labelled all the same
                bob.send(b"")
                alice.send(b"ACKnowledged")  # a message that looks like a broadcast
                for member in (alice, bob):  # the last broadcast has reached both
                    while member.recv(5) != b"ACKACKnowledged":
                        pass
                nc.sendto(b"quit\n", server.addr[:2])
            wait_until(lambda: link.stats()["up"]["received"] == 9)  # bob's quit (may be lost)
            wait_until(lambda: server.stats()["quits"] >= 2)
    for path in (chat_pcap, link_pcap):
        records = list(udplab.read_capture(path))
        to_server = [r.payload for r in records if r.dst[:2] == server.addr[:2]]
        if path == link_pcap:
            assert to_server and to_server[0] != b"HB", to_server  # the heartbeat was lost
        out = subprocess.run(
            [str(TSHARK), "-X", f"lua_script:{udplab_wireshark.DISSECTOR}", "-r", str(path),
             "-T", "fields", "-e", "udplab.kind"],
            capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
        servers = [server.addr[:2], link.addr[:2]]
        assert out == [expected_kind(r, servers) for r in records], (path, out)
        assert {"heartbeat", "message", "broadcast", "quit", "empty"} <= set(out)
