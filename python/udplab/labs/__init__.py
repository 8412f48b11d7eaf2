"""``udplab.labs``: four graded labs on top of ``udplab.Link`` — a pinger with an adaptive
timeout, and reliable transfer by stop-and-wait, Go-Back-N and Selective Repeat.

A student fills in a template (:func:`template`), and :func:`grade` (``udplab grade LAB FILE``)
runs the file in a child process per seed and tier over a seeded link and prints a table.
The reference solutions are kept out of the package, in ``teacher/labs/`` of udplab's source,
so that a teacher can withhold them (:func:`reference`).
"""

from __future__ import annotations

from ._harness import load
from .grading import IDLE_LIMIT, TIME_LIMIT, Report, Row, grade, reference, run
from .pinger import EchoServer
from .spec import LABS, TIERS, Lab
from .templates import template, write_template

__all__ = [
    "IDLE_LIMIT",
    "LABS",
    "TIERS",
    "TIME_LIMIT",
    "EchoServer",
    "Lab",
    "Report",
    "Row",
    "grade",
    "load",
    "reference",
    "run",
    "template",
    "write_template",
]
