"""Lab 3, Go-Back-N: a reference solution (for teachers; see teacher/README.md).

Grade it with ``udplab grade go-back-n teacher/labs/go_back_n.py`` (or ``--reference``).
"""

import struct
import time

WINDOW = 8  # packets sent and not yet acknowledged, at most
TIMEOUT = 0.1  # seconds before the oldest unacknowledged packet and all after it are resent
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
    deadline = None  # when the oldest unacknowledged packet times out
    while base < len(packets):
        while next_seq < min(base + window, len(packets)):
            sock.sendto(packets[next_seq], peer)
            if next_seq == base:
                deadline = time.monotonic() + TIMEOUT
            next_seq += 1
        acked = wait_for_ack(sock, deadline)
        if acked is None:  # timed out: go back to base and send it and all after it again
            next_seq = base
        elif acked > base:  # cumulative: every packet before ``acked`` has arrived
            base = acked
            deadline = time.monotonic() + TIMEOUT
    fin = make_packet(FIN, len(packets))
    for _ in range(FIN_TRIES):
        sock.sendto(fin, peer)
        if wait_for_ack(sock, time.monotonic() + TIMEOUT, at_least=len(packets) + 1):
            return


def wait_for_ack(sock, deadline, at_least=0):
    """The number in the next intact acknowledgement of at least ``at_least`` (the receiver's
    next expected packet), or None when ``deadline`` passes first."""
    while True:
        # Once the time is up, a datagram already waiting still counts: on a busy machine this
        # thread can wake up late, after an acknowledgement that came in time.
        sock.settimeout(max(deadline - time.monotonic(), 0))
        try:
            packet = sock.recv(MAX_DATAGRAM)
        except (TimeoutError, BlockingIOError):
            return None
        parsed = parse_packet(packet)
        if parsed is not None and parsed[0] == ACK and parsed[1] >= at_least:
            return parsed[1]


def receive(sock):
    expected = 0
    chunks = []
    while True:
        packet, sender = sock.recvfrom(MAX_DATAGRAM)
        parsed = parse_packet(packet)
        if parsed is None:
            continue  # damaged: as good as lost
        kind, seq, payload = parsed
        if seq == expected:
            if kind == FIN:
                sock.sendto(make_packet(ACK, expected + 1), sender)
                return b"".join(chunks)
            chunks.append(payload)
            expected += 1
        # In order or not, say what we expect next: for a packet out of order, a duplicate or a
        # packet after a gap, this repeats the last acknowledgement (Go-Back-N keeps nothing).
        sock.sendto(make_packet(ACK, expected), sender)
