"""What each lab is: the functions a student writes, what is sent, and the tiers of links.

One table for everything that grades (``grading.py``), runs the student's code
(``_harness.py``) and explains the labs (the templates, the notebooks, the README).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

#: The links of the tiers, as ``udplab.Link`` options, in the order they are graded. The same
#: for every lab. ``basic`` loses a fifth of the datagrams each way, so 36 % of round trips fail
#: (the classic pinger lab's server meant to drop 30 % and dropped 4 of 11, 36 %).
#: ``advanced`` does everything at once: every copy may be lost, duplicated, reordered (sent
#: ahead of those waiting out the delay) or corrupted (one bit flipped), and waits 10 ± 2 ms
#: and its turn at 500 kB/s. Its delay is more than twice its jitter, so a duplicate is never
#: older than the packet after next, which the alternating bit needs.
TIERS: dict[str, dict[str, Any]] = {
    "sanity": {},
    "basic": {"loss": 0.2},
    "advanced": {
        "loss": 0.1, "duplicate": 0.1, "reorder": 0.1, "corrupt": 0.1,
        "delay": 0.010, "jitter": 0.002, "rate": 500_000,
    },
}


@dataclasses.dataclass(frozen=True)
class Lab:
    """One lab: ``name`` (as ``udplab grade`` takes it), ``stem`` (its template's and reference
    solution's file name), ``functions`` the student's file must define, ``kind`` (``pinger``
    or ``transfer``), ``size`` (bytes transferred, or pings sent), and ``window`` (passed as
    ``window=`` to ``send``, and to ``receive`` when ``receiver_window``)."""

    name: str
    stem: str
    title: str
    functions: tuple[str, ...]
    kind: str
    size: int
    window: int | None = None
    receiver_window: bool = False

    def data(self, seed: int) -> bytes:
        """The bytes a transfer of this seed sends: random, so no two packets are alike and a
        checksum cannot be fooled by a pattern, and the same for the same seed."""
        return random.Random(seed).randbytes(self.size) if self.kind == "transfer" else b""


LABS: dict[str, Lab] = {
    lab.name: lab
    for lab in (
        Lab("pinger", "pinger", "a pinger with an adaptive timeout (RFC 6298)",
            ("RttEstimator", "ping", "summarize"), "pinger", 10),
        Lab("stop-and-wait", "stop_and_wait", "stop-and-wait (the alternating-bit protocol)",
            ("send", "receive"), "transfer", 10_000),
        Lab("go-back-n", "go_back_n", "Go-Back-N", ("send", "receive"), "transfer", 30_000,
            window=8),
        Lab("selective-repeat", "selective_repeat", "Selective Repeat", ("send", "receive"),
            "transfer", 30_000, window=8, receiver_window=True),
    )
}
