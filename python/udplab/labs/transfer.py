"""Labs 2-4, reliable transfer over a bad link (stop-and-wait, Go-Back-N, Selective Repeat):
what the student writes and how the result is judged.

The student's file defines ``send(sock, peer, data)`` (Go-Back-N and Selective Repeat: also
``window=``), which sends the bytes ``data`` from the socket ``sock`` to the address ``peer``
and returns once they have all been acknowledged, and ``receive(sock)`` (Selective Repeat: also
``window=``), which returns the bytes that arrived at the bound socket ``sock``, whole and in
order, once the sender has said that they were all. The grader runs both in one process, on
two threads, with a link between the two sockets; the packets, their checksum, the sequence
numbers, the acknowledgements and how the end is signalled are the student's.
"""

from __future__ import annotations

from ._text import _


def judge(sent: bytes, received: bytes) -> str | None:
    """Why ``received`` is not ``sent``, or None when it is, byte for byte."""
    if received == sent:
        return None
    differ = next((i for i, (a, b) in enumerate(zip(sent, received)) if a != b),
                  min(len(sent), len(received)))
    if len(received) > len(sent):
        hint = _("more bytes than were sent: was a duplicate delivered twice?")
    elif len(received) < len(sent):
        hint = _("bytes missing: was a packet skipped?")
    else:
        hint = _("some bytes changed: was a damaged packet delivered? (check the checksum)")
    return _("wrong bytes: receive() returned {got:,} bytes, {want:,} were sent, the first "
             "difference at byte {at:,} ({hint})").format(got=len(received), want=len(sent),
                                                          at=differ, hint=hint)


def retransmissions(datagrams: list[bytes]) -> int:
    """How many of the datagrams the sender sent repeat an earlier one byte for byte: a packet
    sent again is the same packet, whatever the protocol, so this needs no knowledge of it."""
    return len(datagrams) - len(set(datagrams))
