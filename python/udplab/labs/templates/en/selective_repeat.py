"""Lab 4: Selective Repeat over a link that loses, duplicates, reorders, damages and delays
datagrams.

Fill in the two places marked TODO (each raises NotImplementedError until you do), then grade
this file:

    udplab grade selective-repeat selective_repeat.py
    udplab grade selective-repeat selective_repeat.py --tier sanity --seeds 1   # a quick try

The grader runs your receive() and your send() at the same time, on two threads of one
process, with two UDP sockets and a udplab.Link between them; the test passes when receive()
returns exactly the bytes given to send(), and both have returned. It passes window=8 to both;
notebook 8 tries other windows.

Keep the names and arguments of send() and receive() as they are: the grader calls them. The
rest (packets, constants, helper functions) you may change as you like.
"""

import struct
import time

WINDOW = 8  # packets sent and not yet acknowledged, at most; and kept by the receiver
TIMEOUT = 0.1  # seconds before an unacknowledged packet is sent again (each has its own timer)
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
    - An ACK carrying n acknowledges packet n alone. Skip a damaged packet (parse_packet()
      gives None) and an ACK of a packet acknowledged already. Move base past every
      acknowledged packet.
    - Every packet sent and not acknowledged has its own timer of TIMEOUT seconds: wait
      (sock.settimeout, time.monotonic) until the timer that runs out first, and when it does,
      send that packet alone again and start its timer again.
    - When every packet is acknowledged, send a FIN numbered len(packets) until its ACK
      (carrying len(packets)) comes; but after FIN_TRIES tries, return anyway: once receive()
      has returned, nobody acknowledges it.
    """
    # TODO: replace the next line.
    raise NotImplementedError("send() is yours to write")


def receive(sock, window=WINDOW):
    """Receive what send() sends to the bound UDP socket ``sock``, and return all its bytes,
    in order, when the FIN arrives.

    - Skip a damaged packet (parse_packet() gives None).
    - Keep ``expected``, the number of the next packet to deliver (0 first), and keep packets
      that arrive ahead of it, up to ``expected + window - 1``; ignore any beyond that.
    - Acknowledge every intact packet below expected + window with an ACK carrying its own
      number, sent back to the address it came from (sock.recvfrom gives it), including the
      ones below ``expected``: a duplicate comes because its first ACK was lost.
    - Whenever the packet numbered ``expected`` is kept, deliver it and every kept packet that
      follows without a gap, moving ``expected`` on.
    - The FIN numbered ``expected``: acknowledge it, then return the bytes.
    """
    # TODO: replace the next line.
    raise NotImplementedError("receive() is yours to write")
