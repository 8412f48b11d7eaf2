"""The Wireshark dissector shipped with udplab (``udplab.lua``) and ``udplab wireshark``, the
subcommand that says where it is and how to load it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["DISSECTOR", "add_wireshark", "instructions"]

#: The Lua dissector of the chat protocol: protocol ``udplab``, field ``udplab.kind``.
DISSECTOR = Path(__file__).with_name("udplab.lua")


def instructions(port: int = 10007) -> str:
    """Where the dissector is and how to load it, for a server on ``port``."""
    lua = DISSECTOR
    return "\n".join([
        f"udplab's Wireshark dissector: {lua}",
        "",
        "It labels every datagram of a chat (field udplab.kind): heartbeat, quit and message",
        "(client to server) and broadcast (server to client, the prefix shown apart). The chat",
        "has no header of its own, so tell it the server's UDP port, in either way:",
        "",
        f"  tshark -X lua_script:{lua} -d udp.port=={port},udplab -r chat.pcap",
        f"  tshark -X lua_script:{lua} -o udplab.port:{port} -r chat.pcap",
        f"  wireshark -X lua_script:{lua} -o udplab.port:{port} chat.pcap",
        "",
        "In Wireshark: Analyze > Decode As... (UDP port -> UDPLAB), or Edit > Preferences >",
        "Protocols > UDPLAB > Server port. To load it every time, copy the file into the",
        "personal Lua plugins folder that Help > About Wireshark > Folders shows.",
        "Write a capture with ChatS(..., capture='chat.pcap') (or ChatC, Link).",
    ])


def add_wireshark(sub: Any) -> None:
    """The ``wireshark`` subcommand of ``udplab`` (see ``udplab.cli.SUBCOMMANDS``)."""
    p = sub.add_parser(
        "wireshark", help="say where udplab's Wireshark dissector is and how to load it",
        description="Print the path of udplab's Lua dissector for Wireshark and tshark, and "
                    "the options that load it and name the chat server's port.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=10007,
                   help="the chat server's port, for the examples printed (default 10007)")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    print(instructions(args.port))
    return 0
