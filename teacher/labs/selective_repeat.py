"""Lab 4, Selective Repeat: a reference solution (for teachers; see teacher/README.md).

Grade it with ``udplab grade selective-repeat teacher/labs/selective_repeat.py`` (or
``--reference``).
"""

import struct
import time

WINDOW = 8  # packets sent and not yet acknowledged, at most (and kept by the receiver)
TIMEOUT = 0.1  # seconds before an unacknowledged packet is sent again (each has its own timer)
PAYLOAD = 1000  # bytes of data per packet
FIN_TRIES = 8  # how often the end is sent before giving up on its acknowledgement
MAX_DATAGRAM = 65535

DATA, ACK, FIN = b"D", b"A", b"F"
HEADER = struct.Struct("!cIH")  # kind, sequence number, checksum; the payload follows


def checksum(data):
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def make_packet(kind, seq, payload=b""):
    return HEADER.pack(kind, seq, checksum(kind + seq.to_bytes(4, "big") + payload)) + payload


def parse_packet(packet):
    """``(kind, seq, payload)``, or None for a packet that is damaged or not one of ours."""
    if len(packet) < HEADER.size:
        return None
    kind, seq, check = HEADER.unpack_from(packet)
    payload = packet[HEADER.size:]
    if kind not in (DATA, ACK, FIN) or checksum(packet[:5] + payload) != check:
        return None
    return kind, seq, payload


def send(sock, peer, data, window=WINDOW):
    packets = [make_packet(DATA, seq, data[start:start + PAYLOAD])
               for seq, start in enumerate(range(0, len(data), PAYLOAD))]
    base = 0  # the oldest packet not acknowledged
    next_seq = 0  # the next packet never sent
    deadlines = {}  # packet -> when it times out, for each one sent and not acknowledged
    while base < len(packets):
        while next_seq < min(base + window, len(packets)):
            sock.sendto(packets[next_seq], peer)
            deadlines[next_seq] = time.monotonic() + TIMEOUT
            next_seq += 1
        seq = min(deadlines, key=deadlines.get)  # the timer that runs out first
        acked = wait_for_ack(sock, deadlines[seq])
        if acked is None:  # only this one is sent again
            sock.sendto(packets[seq], peer)
            deadlines[seq] = time.monotonic() + TIMEOUT
        elif acked in deadlines:
            del deadlines[acked]
            while base < next_seq and base not in deadlines:
                base += 1
    fin = make_packet(FIN, len(packets))
    for _ in range(FIN_TRIES):
        sock.sendto(fin, peer)
        if wait_for_ack(sock, time.monotonic() + TIMEOUT) == len(packets):
            return


def wait_for_ack(sock, deadline):
    """The number of the next intact acknowledgement, or None when ``deadline`` passes first."""
    while True:
        # Once the time is up, a datagram already waiting still counts: on a busy machine this
        # thread can wake up late, after an acknowledgement that came in time.
        sock.settimeout(max(deadline - time.monotonic(), 0))
        try:
            packet = sock.recv(MAX_DATAGRAM)
        except (TimeoutError, BlockingIOError):
            return None
        parsed = parse_packet(packet)
        if parsed is not None and parsed[0] == ACK:
            return parsed[1]


def receive(sock, window=WINDOW):
    expected = 0  # the next packet to deliver
    kept = {}  # packets that arrived ahead of ``expected``, by number
    chunks = []
    while True:
        packet, sender = sock.recvfrom(MAX_DATAGRAM)
        parsed = parse_packet(packet)
        if parsed is None:
            continue  # damaged: as good as lost
        kind, seq, payload = parsed
        if seq >= expected + window:
            continue  # beyond the window: the sender cannot have sent it yet
        # Acknowledge everything in the window and below it: below, it is a duplicate whose
        # first acknowledgement was lost, and without a new one the sender would try forever.
        sock.sendto(make_packet(ACK, seq), sender)
        if kind == FIN and seq == expected:
            return b"".join(chunks)
        if seq >= expected and kind == DATA:
            kept[seq] = payload
            while expected in kept:
                chunks.append(kept.pop(expected))
                expected += 1
