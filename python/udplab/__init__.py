"""udplab: learn and run UDP networking, with a Rust core.

- ``udplab.socket(...)`` is a datagram socket with the methods and errors of Python's
  ``socket.socket``, so the tutorial's server and client run after ``import udplab as socket``.
- ``udplab.ChatS`` / ``udplab.ChatC`` are the tutorial's group chat server and client, with
  heartbeat expiry, done right.
- ``udplab.Link`` stands between clients and a UDP server and loses, duplicates, reorders,
  corrupts, delays and rate-limits datagrams, the same way for the same seed.
"""

from __future__ import annotations

import socket as _stdlib_socket

from . import _logging
from ._core import UdpSocket, __version__
from ._logging import refresh_logging
from .chat import Address, ChatC, ChatS
from .link import GEModel, Link

AF_INET = _stdlib_socket.AF_INET
AF_INET6 = _stdlib_socket.AF_INET6
SOCK_DGRAM = _stdlib_socket.SOCK_DGRAM
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
    "Address",
    "ChatC",
    "ChatS",
    "GEModel",
    "Link",
    "SOCK_DGRAM",
    "UdpSocket",
    "__version__",
    "error",
    "gaierror",
    "refresh_logging",
    "socket",
    "timeout",
]
