"""Reading capture files: ``read_capture(path)`` yields the UDP datagrams of a classic pcap file
of link type RAW (IPv4 and IPv6), such as the files ``capture=`` writes.

The reader is plain Python (``struct``), independent of the Rust writer in
``crates/udplab/src/capture.rs``, so each checks the other. Both timestamp resolutions (magic
``0xa1b2c3d4``: microseconds, ``0xa1b23c4d``: nanoseconds) and both byte orders are read.
Packets that are not UDP, and fragments, are skipped; anything malformed raises ``ValueError``
naming the record and the byte offset.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

__all__ = ["Record", "read_capture"]

#: Link types whose records start with an IP header: RAW, IPV4, IPV6.
_RAW_TYPES = {101: "RAW", 228: "IPV4", 229: "IPV6"}
_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_UDP = 17


class Record(NamedTuple):
    """One datagram: ``time`` (seconds since the epoch, as ``time.time()``), ``src`` and
    ``dst`` (``(ip, port)``, or ``(ip, port, 0, 0)`` for IPv6, as sockets write them) and the
    UDP ``payload``."""

    time: float
    src: tuple[Any, ...]
    dst: tuple[Any, ...]
    payload: bytes


def _address(ip: bytes, port: int) -> tuple[Any, ...]:
    if len(ip) == 4:
        return (str(ipaddress.IPv4Address(ip)), port)
    return (str(ipaddress.IPv6Address(ip)), port, 0, 0)


def _udp(packet: bytes, where: str) -> tuple[bytes, bytes, bytes] | None:
    """``(source ip, destination ip, UDP datagram)``, or None for something else than UDP."""
    if not packet:
        raise ValueError(f"{where}: an empty packet")
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        if ihl < 20 or len(packet) < ihl:
            raise ValueError(f"{where}: an IPv4 header of {ihl} bytes in a packet of "
                             f"{len(packet)} bytes")
        total = struct.unpack_from("!H", packet, 2)[0]
        if not ihl <= total <= len(packet):
            raise ValueError(f"{where}: the IPv4 total length ({total}) does not fit the "
                             f"packet of {len(packet)} bytes")
        flags_offset = struct.unpack_from("!H", packet, 6)[0]
        if packet[9] != _UDP or flags_offset & 0x3FFF:  # not UDP, or a fragment
            return None
        return packet[12:16], packet[16:20], packet[ihl:total]
    if version == 6:
        if len(packet) < 40:
            raise ValueError(f"{where}: an IPv6 packet of {len(packet)} bytes (the header "
                             "alone is 40)")
        length = struct.unpack_from("!H", packet, 4)[0]
        if 40 + length > len(packet):
            raise ValueError(f"{where}: the IPv6 payload length ({length}) does not fit the "
                             f"packet of {len(packet)} bytes")
        if packet[6] != _UDP:  # another protocol, or extension headers
            return None
        return packet[8:24], packet[24:40], packet[40:40 + length]
    raise ValueError(f"{where}: IP version {version}, neither 4 nor 6")


def read_capture(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Yield a :class:`Record` ``(time, src, dst, payload)`` for every UDP datagram of the
    pcap file at ``path``, in file order.

    ``ValueError`` names what is wrong and where: not a pcap file (a pcapng file, for
    instance), a link type other than RAW/IPv4/IPv6 (such as Ethernet), a truncated record or
    a malformed IP or UDP header. Datagrams before the fault have been yielded by then.
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError(f"{name} is not a pcap file: {len(data)} bytes, shorter than the "
                         "24-byte file header")
    magic = data[:4]
    if magic not in _MAGICS:
        hint = " (a pcapng file: save it as pcap)" if magic == b"\x0a\x0d\x0d\x0a" else ""
        raise ValueError(f"{name} is not a pcap file: magic {magic.hex()} at offset 0{hint}")
    order, unit = _MAGICS[magic]
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    if linktype not in _RAW_TYPES:
        raise ValueError(f"{name}: link type {linktype} at offset 20; only RAW (101), IPV4 "
                         "(228) and IPV6 (229) are read (1 is Ethernet: udplab writes RAW)")
    offset, number = 24, 0
    while offset < len(data):
        number += 1
        where = f"{name}: record {number} at offset {offset}"
        if offset + 16 > len(data):
            raise ValueError(f"{where} is truncated: {len(data) - offset} bytes of its "
                             "16-byte header")
        seconds, fraction, included, _original = struct.unpack_from(order + "IIII", data,
                                                                    offset)
        body = offset + 16
        if body + included > len(data):
            raise ValueError(f"{where} is truncated: {len(data) - body} of its {included} "
                             "bytes")
        found = _udp(data[body:body + included], where)
        offset = body + included
        if found is None:
            continue
        src_ip, dst_ip, udp = found
        if len(udp) < 8:
            raise ValueError(f"{where}: a UDP datagram of {len(udp)} bytes, shorter than its "
                             "header")
        sport, dport, length = struct.unpack_from("!HHH", udp)
        if not 8 <= length <= len(udp):
            raise ValueError(f"{where}: the UDP length ({length}) does not fit the "
                             f"{len(udp)} bytes after the IP header")
        yield Record(seconds + fraction * unit, _address(src_ip, sport),
                     _address(dst_ip, dport), bytes(udp[8:length]))
