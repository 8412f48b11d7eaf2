"""The Wireshark dissector shipped with udplab (``udplab.lua``) and ``udplab wireshark``, the
subcommand that says where it is and how to load it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._i18n import _, wrap

__all__ = ["DISSECTOR", "add_wireshark", "instructions"]

#: The Lua dissector of the chat protocol: protocol ``udplab``, field ``udplab.kind``.
DISSECTOR = Path(__file__).with_name("udplab.lua")


def instructions(port: int = 10007) -> str:
    """Where the dissector is and how to load it (``port``: the server's, for the options that
    name it)."""
    lua = DISSECTOR
    return "\n".join([
        _("udplab's Wireshark dissector: {path}").format(path=lua),
        "",
        *wrap(_("It labels every datagram of a chat or a link capture (field udplab.kind): "
                "heartbeat, quit, message and empty towards the server, broadcast from it (the "
                "prefix shown apart). No port needs naming: it finds the chat by its words (a "
                "heartbeat shows where the server is; a link's port counts as a server's)."), 79),
        "",
        f"  tshark -X lua_script:{lua} -r chat.pcap",
        f"  wireshark -X lua_script:{lua} chat.pcap",
        "",
        *wrap(_("If the clients never sent a heartbeat (netcat alone), give tshark -2 (two "
                "passes: what a later reply shows applies to the datagrams before it). For a "
                "server started with other words, or a capture with other traffic, name the "
                "server's port:"), 79),
        "",
        f"  tshark -X lua_script:{lua} -d udp.port=={port},udplab -r chat.pcap",
        f"  tshark -X lua_script:{lua} -o udplab.port:{port} -r chat.pcap",
        "",
        *wrap(_("In Wireshark: Analyze > Decode As... (UDP port -> UDPLAB), or Edit > "
                "Preferences > Protocols > UDPLAB > Server port. To load it every time, copy "
                "the file into the personal Lua plugins folder that Help > About Wireshark > "
                "Folders shows. Write a capture with ChatS(..., capture='chat.pcap') (or ChatC, "
                "Link), or --capture FILE."), 79),
    ])


def add_wireshark(sub: Any) -> None:
    """The ``wireshark`` subcommand of ``udplab`` (see ``udplab.cli.SUBCOMMANDS``)."""
    p = sub.add_parser(
        "wireshark", help=_("say where udplab's Wireshark dissector is and how to load it"),
        description="\n".join(wrap(_(
            "Print the path of udplab's Lua dissector for Wireshark and tshark, and the options "
            "that load it."), 79)))
    p.add_argument("--port", type=int, default=10007,
                   help=_("the chat server's port, for the examples that name it (default "
                          "10007)"))
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    print(instructions(args.port))
    return 0
