"""Lab 2: stop-and-wait (the alternating-bit protocol) over a link that loses, duplicates,
damages and delays datagrams.

Fill in the three places marked TODO (each raises NotImplementedError until you do), then
grade this file:

    udplab grade stop-and-wait stop_and_wait.py
    udplab grade stop-and-wait stop_and_wait.py --tier sanity --seeds 1   # a first quick try

The grader runs your receive() and your send() at the same time, on two threads of one
process, with two UDP sockets and a udplab.Link between them; the test passes when receive()
returns exactly the bytes given to send(), and both have returned.

Keep the names and arguments of send() and receive() as they are: the grader calls them. The
rest (packets, constants, helper functions) you may change as you like.
"""

import struct
import time

TIMEOUT = 0.1  # seconds to wait for an acknowledgement before sending a packet again
PAYLOAD = 1000  # bytes of data per packet
FIN_TRIES = 8  # how many times to send the end before giving up on its acknowledgement
MAX_DATAGRAM = 65535  # a buffer for the largest datagram, so that none is cut short

# A packet is a header, then the payload: the kind (one byte: data, acknowledgement, or the end
# of the transfer, which TCP calls FIN), a sequence number (4 bytes; here only 0 or 1, the
# alternating bit), and a checksum of the kind, the number and the payload (2 bytes).
DATA, ACK, FIN = b"D", b"A", b"F"
HEADER = struct.Struct("!cIH")


def checksum(data):
    """The Internet checksum of ``data`` (RFC 1071), the one in UDP's own header: split the
    bytes into 16-bit big-endian words (with a zero byte added to an odd length), add them up,
    fold the carries back in (while the total has more than 16 bits: total = (total & 0xFFFF)
    + (total >> 16)), and return the ones' complement of the result (~total & 0xFFFF).
    Flipping any one bit of the data changes it."""
    # TODO: replace the next line.
    raise NotImplementedError("checksum() is yours to write")


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
    """Send the bytes ``data`` from the UDP socket ``sock`` to the address ``peer`` reliably,
    and return once they have all arrived.

    - Cut ``data`` into pieces of PAYLOAD bytes; send each as a DATA packet whose sequence
      number alternates 0, 1, 0, 1, ...
    - After each, wait up to TIMEOUT seconds for the ACK carrying the same number
      (sock.settimeout, time.monotonic). Skip anything else that arrives (a damaged packet, for
      which parse_packet() gives None, or the acknowledgement of the packet before, late or
      duplicated). No ACK in time: send the same packet again, and wait again.
    - Then send a FIN with the next number, the same way, until it is acknowledged; but after
      FIN_TRIES tries, return anyway: once receive() has returned, nobody acknowledges it.
    """
    # TODO: replace the next line.
    raise NotImplementedError("send() is yours to write")


def receive(sock):
    """Receive what send() sends to the bound UDP socket ``sock``, and return all its bytes,
    in order, when the FIN arrives.

    - Skip a damaged packet (parse_packet() gives None): the sender will send it again.
    - Acknowledge every intact packet with an ACK carrying its number, sent back to the address
      it came from (sock.recvfrom gives it); a duplicate too, as the sender sends one again
      when it did not get the first acknowledgement.
    - Keep the payload only of the packet with the number you expect (0 first, then 1, 0, ...);
      one with the other number is a duplicate of a packet you have.
    - The FIN with the expected number: acknowledge it, then return the bytes.
    """
    # TODO: replace the next line.
    raise NotImplementedError("receive() is yours to write")
