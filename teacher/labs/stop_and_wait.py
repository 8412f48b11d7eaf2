"""Lab 2, stop-and-wait (the alternating-bit protocol): a reference solution (for teachers; see
teacher/README.md).

Grade it with ``udplab grade stop-and-wait teacher/labs/stop_and_wait.py`` (or ``--reference``).
"""

import struct
import time

TIMEOUT = 0.1  # seconds to wait for an acknowledgement before sending again
PAYLOAD = 1000  # bytes of data per packet
FIN_TRIES = 8  # how often the end is sent before giving up on its acknowledgement
MAX_DATAGRAM = 65535

DATA, ACK, FIN = b"D", b"A", b"F"
HEADER = struct.Struct("!cIH")  # kind, sequence number, checksum; the payload follows


def checksum(data):
    """The Internet checksum (RFC 1071), which UDP's own header carries: the ones' complement of
    the ones' complement sum of the 16-bit words. Any one flipped bit changes it."""
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


def send(sock, peer, data):
    bit = 0
    for start in range(0, len(data), PAYLOAD):
        packet = make_packet(DATA, bit, data[start:start + PAYLOAD])
        while True:
            sock.sendto(packet, peer)
            if acknowledged(sock, bit):
                break
        bit ^= 1
    # The end: all data is acknowledged, so the receiver has it all. Its acknowledgement of the
    # end may be lost after it has returned, when nobody answers any more: give up after a few.
    fin = make_packet(FIN, bit)
    for _ in range(FIN_TRIES):
        sock.sendto(fin, peer)
        if acknowledged(sock, bit):
            return


def acknowledged(sock, bit):
    """Whether the acknowledgement of ``bit`` arrives within TIMEOUT. Anything else (a damaged
    packet, the acknowledgement of the previous packet, late or duplicated) is skipped."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        # Once the time is up, a datagram already waiting still counts: on a busy machine this
        # thread can wake up late, after an acknowledgement that came in time.
        sock.settimeout(max(deadline - time.monotonic(), 0))
        try:
            packet = sock.recv(MAX_DATAGRAM)
        except (TimeoutError, BlockingIOError):
            return False
        if parse_packet(packet) == (ACK, bit, b""):
            return True


def receive(sock):
    expected = 0
    chunks = []
    while True:
        packet, sender = sock.recvfrom(MAX_DATAGRAM)
        parsed = parse_packet(packet)
        if parsed is None:
            continue  # damaged: as good as lost, the sender will send it again
        kind, bit, payload = parsed
        # Acknowledge a duplicate too: the sender sends it again because our first
        # acknowledgement was lost.
        sock.sendto(make_packet(ACK, bit), sender)
        if bit != expected:
            continue  # a duplicate of what we have
        if kind == FIN:
            return b"".join(chunks)
        chunks.append(payload)
        expected ^= 1
