"""``udplab grade``: the labs' grader on the command line (see ``udplab.cli.SUBCOMMANDS``).

    udplab grade go-back-n go_back_n.py                   # every tier on seeds 1-10
    udplab grade go-back-n go_back_n.py --tier sanity --seeds 1
    udplab grade go-back-n --template > go_back_n.py      # a file to start from
    udplab grade go-back-n --reference                    # the reference solution (teachers)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .._i18n import _
from . import grading
from .spec import LABS, TIERS
from .templates import template, write_template


def add_grade(sub: Any) -> None:
    from ..cli import _positive_seconds, _subcommand, _whole

    p = _subcommand(
        sub, "grade", _("grade a lab: run a student's file over bad links, seed by seed"),
        _("Run STUDENT_FILE's code for LAB in a process of its own, once per seed and tier, "
          "over a udplab.Link that makes the same losses, duplicates, reorderings and damage "
          "for the same seed (sanity: none; basic: a fifth of the datagrams lost each way; "
          "advanced: loss, duplication, reordering, corruption, delay, jitter and a rate "
          "limit), check what arrived, and print a line per run: passed or failed and why, "
          "the time, the datagrams sent and sent again, the goodput. The exit status is 0 only "
          "if every run passed. --template prints the file a student starts from."),
        "udplab grade stop-and-wait --template > stop_and_wait.py",
        "udplab grade stop-and-wait stop_and_wait.py --tier sanity --seeds 1",
        "udplab grade stop-and-wait stop_and_wait.py --csv results.csv",
        "udplab grade go-back-n --reference --teacher path/to/udplab/teacher")
    p.add_argument("lab", metavar="LAB", choices=list(LABS),
                   help=_("one of: {labs}").format(labs=", ".join(LABS)))
    p.add_argument("student", metavar="STUDENT_FILE", nargs="?",
                   help=_("the student's Python file"))
    p.add_argument("--seeds", type=lambda text: _whole(text, 1, 1000), default=10, metavar="N",
                   help=_("how many seeds: 1 to N (default 10)"))
    p.add_argument("--first-seed", type=lambda text: _whole(text, 0, 2**32), default=1,
                   metavar="S",
                   help=_("start at seed S instead of 1: seeds S to S+N-1 (a teacher's seeds "
                          "the students have not tried)"))
    p.add_argument("--tier", choices=[*TIERS, "all"], default="all",
                   help=_("the tier to grade, or all of them in order (default all)"))
    p.add_argument("--csv", metavar="PATH",
                   help=_("also write the table to PATH as CSV"))
    p.add_argument("--time-limit", type=_positive_seconds,
                   default=grading.TIME_LIMIT, metavar="SECONDS",
                   help=_("seconds a run may take (default {s:g}); a run without a datagram "
                          "for {idle:g} s stops earlier").format(s=grading.TIME_LIMIT,
                                                                 idle=grading.IDLE_LIMIT))
    p.add_argument("--reference", action="store_true",
                   help=_("grade the reference solution instead of a student's file"))
    p.add_argument("--teacher", metavar="DIR",
                   help=_("where the reference solutions are: the teacher/ folder of udplab's "
                          "source (default: $UDPLAB_TEACHER, else the source this udplab runs "
                          "from)"))
    p.add_argument("--template", action="store_true",
                   help=_("print LAB's template, the file a student fills in (or write it to "
                          "STUDENT_FILE, if that does not exist yet)"))
    p.set_defaults(run=run_grade)


def run_grade(args: argparse.Namespace) -> int:
    from ..cli import _fail

    if args.template:
        if args.reference:
            return _fail(args.prog, _("--template and --reference do not go together"))
        if args.student is None:
            sys.stdout.write(template(args.lab))
            return 0
        if not write_template(args.lab, args.student):
            return _fail(args.prog, _("{path} exists already: the template is written only to "
                                      "a new file").format(path=args.student))
        print(_("wrote {path}: fill in what is marked TODO, then: udplab grade {lab} "
                "{path}").format(path=args.student, lab=args.lab))
        return 0
    if args.reference:
        if args.student is not None:
            return _fail(args.prog, _("give STUDENT_FILE or --reference, not both"))
        try:
            student = grading.reference(args.lab, args.teacher)
        except FileNotFoundError as e:
            return _fail(args.prog, str(e))
    elif args.student is None:
        return _fail(args.prog, _("which file? give STUDENT_FILE (or --template to start one, "
                                  "or --reference)"))
    else:
        student = Path(args.student)
        if not student.is_file():
            return _fail(args.prog, _("no such file: {path}").format(path=args.student))
    try:
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        report = grading.grade(args.lab, student, seeds=seeds, tiers=args.tier,
                               time_limit=args.time_limit, csv_path=args.csv)
    except KeyboardInterrupt:
        print(_("stopped (Ctrl-C)"), file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The table went into a pipe whose reader stopped (| head): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    if args.csv:
        print(_("wrote {path}").format(path=args.csv))
    return 0 if report.passed else 1
