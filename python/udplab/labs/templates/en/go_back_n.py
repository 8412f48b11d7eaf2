"""Lab 3: Go-Back-N over a link that loses, duplicates, reorders, damages and delays datagrams.

Fill in the two places marked TODO (each raises NotImplementedError until you do), then grade
this file:

    udplab grade go-back-n go_back_n.py
    udplab grade go-back-n go_back_n.py --tier sanity --seeds 1   # a first quick try

The grader runs your receive() and your send() at the same time, on two threads of one
process, with two UDP sockets and a udplab.Link between them; the test passes when receive()
returns exactly the bytes given to send(), and both have returned. It passes window=8; notebook
8 tries other windows.

Keep the names and arguments of send() and receive() as they are: the grader calls them. The
rest (packets, constants, helper functions) you may change as you like.
"""

import struct
import time

WINDOW = 8  # packets sent and not yet acknowledged, at most
TIMEOUT = 0.1  # seconds before the oldest unacknowledged packet, and all after it, are resent
PAYLOAD = 1000  # bytes of data per packet
FIN_TRIES = 8  # how many times to send the end before giving up on its acknowledgement
MAX_DATAGRAM = 65535  # a buffer for the largest datagram, so that none is cut short

# A packet is a header, then the payload: the kind (one byte: data, acknowledgement, or the end
# of the transfer, which TCP calls FIN), a sequence number (4 bytes: 0, 1, 2, ...), and a
# checksum of the kind, the number and the payload (2 bytes).
DATA, ACK, FIN = b"D", b"A", b"F"
HEADER = struct.Struct("!cIH")


def checksum(data):
    """The Internet checksum (RFC 1071), as in lab 2."""
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
    """Send the bytes ``data`` from the UDP socket ``sock`` to the address ``peer`` reliably,
    with up to ``window`` packets in flight, and return once they have all arrived.

    - Cut ``data`` into pieces of PAYLOAD bytes: DATA packets numbered 0, 1, 2, ...
    - Keep ``base``, the oldest packet not yet acknowledged, and send every packet below
      base + window that you have not sent yet.
    - An ACK carrying n (the receiver's next expected packet) acknowledges every packet below
      n: if n > base, move base to n. Skip a damaged packet (parse_packet() gives None) and an
      ACK that moves nothing.
    - One timer, for the packet at base: started when that packet is sent, started again
      when base moves. When it runs out (TIMEOUT seconds; sock.settimeout, time.monotonic):
      go back to base, and send it and every packet after it in the window again.
    - When every packet is acknowledged, send a FIN numbered len(packets) until an ACK of
      len(packets) + 1 comes; but after FIN_TRIES tries, return anyway: once receive() has
      returned, nobody acknowledges it.
    """
    # TODO: replace the next line.
    raise NotImplementedError("send() is yours to write")


def receive(sock):
    """Receive what send() sends to the bound UDP socket ``sock``, and return all its bytes,
    in order, when the FIN arrives.

    - Skip a damaged packet (parse_packet() gives None).
    - Keep ``expected``, the number of the next packet you need (0 first). Keep the payload of
      a DATA packet only when its number is ``expected``, then add 1 to ``expected``. Go-Back-N
      drops any other packet (a duplicate, or one after a gap).
    - After every intact packet, send back an ACK carrying ``expected`` to the address it came
      from (sock.recvfrom gives it): for a dropped packet, that repeats the last ACK.
    - The FIN numbered ``expected``: send an ACK of expected + 1, then return the bytes.
    """
    # TODO: replace the next line.
    raise NotImplementedError("receive() is yours to write")
