"""udplab: learn and run UDP networking, with a Rust core.

- ``udplab.socket(...)`` is a datagram socket with the methods and errors of Python's
  ``socket.socket``, so the tutorial's server and client run after ``import udplab as socket``.
- ``udplab.ChatS`` / ``udplab.ChatC`` are the tutorial's group chat server and client, with
  heartbeat expiry, done right.
- ``udplab.Link`` stands between clients and a UDP server and loses, duplicates, reorders,
  corrupts, delays and rate-limits datagrams, the same way for the same seed.
- ``capture=`` on all three writes every datagram to a pcap file for Wireshark;
  ``udplab.read_capture(path)`` reads one back.
- ``udplab.view(server, link, *clients)`` shows them live in the browser as a ladder of
  datagrams (``udplab.view("chat.pcap")`` replays a capture).
- ``udplab.aio`` (``import udplab.aio``) has the socket and the chat for asyncio programs:
  ``await udplab.aio.bind(addr)``, ``await sock.recvfrom(1024)``, ``udplab.aio.ChatS``...
"""

import socket as _stdlib_socket

from . import _logging
from ._core import UdpSocket, __version__
from ._logging import refresh_logging
from .capture import Record, read_capture
from .chat import Address, ChatC, ChatS
from .link import GEModel, Link
from .web import View, view
from .web.ladder import Ladder, ladder

# The socket module's constants a learner reaches for, as the stdlib's own enum members, so that
# ``import udplab as socket`` code gets udplab's error for what udplab does not do (for example
# ``socket.socket(type=socket.SOCK_STREAM)``: ValueError, datagram-only) rather than an
# AttributeError for the constant.
AF_INET = _stdlib_socket.AF_INET
AF_INET6 = _stdlib_socket.AF_INET6
AF_UNSPEC = _stdlib_socket.AF_UNSPEC
SOCK_DGRAM = _stdlib_socket.SOCK_DGRAM
SOCK_STREAM = _stdlib_socket.SOCK_STREAM
SOCK_RAW = _stdlib_socket.SOCK_RAW
IPPROTO_UDP = _stdlib_socket.IPPROTO_UDP
IPPROTO_TCP = _stdlib_socket.IPPROTO_TCP
SOL_SOCKET = _stdlib_socket.SOL_SOCKET
SO_REUSEADDR = _stdlib_socket.SO_REUSEADDR
SO_BROADCAST = _stdlib_socket.SO_BROADCAST
SO_RCVBUF = _stdlib_socket.SO_RCVBUF
SO_SNDBUF = _stdlib_socket.SO_SNDBUF
AddressFamily = _stdlib_socket.AddressFamily
SocketKind = _stdlib_socket.SocketKind
#: Exceptions under the names the ``socket`` module gives them.
error = OSError
timeout = TimeoutError
gaierror = _stdlib_socket.gaierror
#: ``udplab.socket(family=AF_INET, type=SOCK_DGRAM, proto=0)`` makes a :class:`UdpSocket`.
socket = UdpSocket

del _logging

__all__ = [
    "AF_INET",
    "AF_INET6",
    "AF_UNSPEC",
    "AddressFamily",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "SOCK_RAW",
    "SOCK_STREAM",
    "SOL_SOCKET",
    "SO_BROADCAST",
    "SO_RCVBUF",
    "SO_REUSEADDR",
    "SO_SNDBUF",
    "SocketKind",
    "Address",
    "ChatC",
    "ChatS",
    "GEModel",
    "Ladder",
    "Link",
    "Record",
    "SOCK_DGRAM",
    "UdpSocket",
    "View",
    "__version__",
    "error",
    "gaierror",
    "ladder",
    "read_capture",
    "refresh_logging",
    "socket",
    "timeout",
    "view",
]
