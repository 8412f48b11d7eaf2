"""Grading: the student's file run in a child process per seed and tier, over a seeded
``udplab.Link``, judged, and printed as a table.

The link's dice make the same decisions for the k-th datagram of a direction whatever the
timing, so with the same file and seeds the verdicts, the reasons and the datagram counts come
out the same on every grading; the time and the goodput are measured, and vary. One exception:
with a window of packets in flight over the advanced tier's delay and reordering, which packet
a reordered one overtakes depends on when each was sent, to the millisecond; on a quiet machine
that comes out the same (no difference in 60 such runs), but on one so busy that a process
wakes milliseconds late, the counts of such a run can shift by a few datagrams (3 of 60 runs
at a load of 8-10 on 2 cores). Verdicts did not change.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable, TextIO

from .._i18n import columns
from ..capture import read_capture
from ..link import Link
from . import pinger, transfer
from ._text import _, speaking
from .spec import LABS, TIERS, Lab

#: Seconds a run may take in all.
TIME_LIMIT = 20.0
#: Seconds a run may go without a datagram crossing the link before it counts as hung. The
#: longest wait of a correct solution is one timeout (the pinger's at most ``MAX_RTO``, 2 s).
IDLE_LIMIT = 3.0
#: Seconds the child process may take to start and load the student's file.
STARTUP = 15.0
#: The result of a run that was not started because the seed failed an easier tier.
SKIP = "SKIP"


@dataclasses.dataclass
class Row:
    """One run: ``result`` is ``PASS``, ``FAIL`` or ``SKIP``; ``why`` says why in a line;
    ``seconds`` is how long the transfer (or the pings) took; ``sent`` counts the datagrams the
    student's sender sent (its first copies and all it sent again), ``retransmissions`` those
    that repeat an earlier one byte for byte; ``goodput`` is the bytes delivered per second."""

    seed: int
    tier: str
    result: str
    why: str
    seconds: float | None = None
    sent: int | None = None
    retransmissions: int | None = None
    goodput: float | None = None
    details: str = ""
    """The traceback of a crash, or what the child wrote to standard error when it died."""
    stops_all: str = ""
    """``broken`` (the file does not load or lacks a function) or ``not done`` (a template's
    ``NotImplementedError``): no other run would say anything else."""

    @property
    def passed(self) -> bool:
        return self.result == "PASS"


@dataclasses.dataclass
class Report:
    """Every run of one grading, in the order they ran."""

    lab: str
    student: Path
    rows: list[Row]
    stopped: str = ""
    """Why the grading stopped at its first run, if it did: ``broken`` or ``not done``."""

    @property
    def passed(self) -> bool:
        return not self.stopped and bool(self.rows) and all(r.passed for r in self.rows)


def lab_named(name: str) -> Lab:
    try:
        return LABS[name]
    except KeyError:
        raise ValueError(f"no lab named {name!r}: the labs are {', '.join(LABS)}") from None


def teacher_folder(teacher: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder of the reference solutions: ``teacher``, else ``$UDPLAB_TEACHER``, else the
    ``teacher/`` folder of the source checkout this udplab runs from, if there is one."""
    if teacher is None:
        teacher = os.environ.get("UDPLAB_TEACHER")
    if teacher is not None:
        return Path(teacher)
    checkout = Path(__file__).resolve().parents[3] / "teacher"
    return checkout if checkout.is_dir() else None


def reference(lab: str, teacher: str | os.PathLike[str] | None = None) -> Path:
    """The reference solution of ``lab``. It is not part of the installed package, so that
    students who install udplab do not get it: it lives in ``teacher/labs/`` of udplab's
    source. ``FileNotFoundError`` says where it was looked for."""
    stem = lab_named(lab).stem
    folder = teacher_folder(teacher)
    why = _("the reference solutions are not installed with udplab (so that students do not "
            "get them); they are in teacher/labs/ of udplab's source: give that teacher/ folder "
            "(--teacher DIR, or UDPLAB_TEACHER)")
    if folder is None:
        raise FileNotFoundError(why)
    path = folder / "labs" / f"{stem}.py"
    if not path.is_file():
        raise FileNotFoundError(_("no reference solution at {path}: {why}").format(path=path,
                                                                                   why=why))
    return path


class _Child:
    """The student's process: JSON reports read from its standard output on a thread; orders
    written to its standard input; its standard error kept for when it dies."""

    def __init__(self, lab: Lab, student: Path, work: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "udplab.labs._harness", lab.name, str(student), str(work)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=student.parent, text=True, encoding="utf-8", errors="replace",
        )
        self.reports: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr = ""
        self._threads = [threading.Thread(target=self._read, name="grade-reports", daemon=True),
                         threading.Thread(target=self._errors, name="grade-stderr", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.reports.put(json.loads(line))
            except ValueError:
                continue  # not a report: something written before the output was moved
        self.reports.put(None)

    def _errors(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()[-4000:]

    def next(self, timeout: float) -> dict[str, Any] | None | bool:
        """The next report; None once the child's output ended; False if none came in time."""
        try:
            return self.reports.get(timeout=timeout)
        except queue.Empty:
            return False

    def order(self, order: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(order) + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: its reports (or their absence) will say so

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@dataclasses.dataclass
class _Outcome:
    """What one run produced, for the judge."""

    reports: dict[str, dict[str, Any]]
    ended: str  # "finished", "crashed", "exited", "idle", "time" or "startup"
    stats: dict[str, Any]
    records: list[Any]
    link: tuple[Any, ...]
    returncode: int | None
    stderr: str


def _where(error: dict[str, Any], student: Path) -> str:
    where = error.get("where")
    if not where:
        return ""
    return _(" ({file} line {line}: {code})").format(file=student.name, line=where["line"],
                                                     code=where["code"])


def _crash(function: str, error: dict[str, Any], student: Path) -> tuple[str, bool]:
    """The reason for an exception out of the student's code, and whether it means the file
    is not done yet (a template's ``NotImplementedError``)."""
    if error["type"] == "NotImplementedError":
        where = error.get("where") or {}
        name = f"{where['function']}()" if where.get("function") else _call_name(function)
        return _("not done yet: {function} raises NotImplementedError: fill it in "
                 "({file} line {line})").format(function=name, file=student.name,
                                                line=where.get("line", "?")), True
    message = f"{error['type']}: {error['message']}" if error["message"] else error["type"]
    return _("crashed: {function} raised {message}{where}").format(
        function=_call_name(function), message=message, where=_where(error, student)), False


def _call_name(function: str) -> str:
    return function if function == "RttEstimator" else f"{function}()"


def _unfinished(lab: Lab, out: _Outcome, limit: float, idle: float) -> str:
    sent, received = "sent" in out.reports, "received" in out.reports
    if out.ended == "exited":
        return _("the process ended before the run did (exit code {code})").format(
            code=out.returncode)
    if lab.kind == "pinger":
        if out.ended == "idle":
            return _("hung: ping() has not returned and nothing was sent for {idle:g} s").format(
                idle=idle)
        return _("time limit: ping() had not returned after {limit:g} s").format(limit=limit)
    if out.ended == "time":
        return _("time limit: not done after {limit:g} s (send() {s}, receive() {r})").format(
            limit=limit, s=_("returned") if sent else _("running"),
            r=_("returned") if received else _("running"))
    if sent:
        return _("receive() still waiting {idle:g} s after the last datagram, but send() had "
                 "returned before all the data arrived (a lost packet never sent again? a "
                 "damaged acknowledgement believed?)").format(idle=idle)
    if received:
        return _("send() still running {idle:g} s after the last datagram, though receive() "
                 "had returned every byte: does send() give up on the end of the transfer "
                 "after a few tries?").format(idle=idle)
    return _("hung: neither send() nor receive() returned, and nothing was sent for "
             "{idle:g} s").format(idle=idle)


def _judge(lab: Lab, student: Path, seed: int, tier: str, data: bytes, out: _Outcome,
           work: Path, limit: float, idle: float) -> Row:
    row = Row(seed, tier, "FAIL", "")
    up = [r for r in out.records if tuple(r.dst) == out.link]
    # A run that ended quietly (finished, or idle) has counts that depend on the seed alone;
    # one cut short while the student's code was busy (a crash, the time limit) has not.
    if out.ended in ("finished", "idle"):
        row.sent = out.stats["up"]["received"]
        if lab.kind == "transfer":
            row.retransmissions = transfer.retransmissions([r.payload for r in up])
    reports = out.reports
    if "load_error" in reports:
        error = reports["load_error"]["error"]
        row.why = _("could not load {file}: {type}: {message}{where}").format(
            file=student.name, type=error["type"], message=error["message"],
            where=_where(error, student))
        row.details, row.stops_all = error["traceback"], "broken"
        return row
    if "missing" in reports:
        row.why = _("{file} does not define {names}").format(
            file=student.name, names=", ".join(reports["missing"]["names"]))
        row.stops_all = "broken"
        return row
    if out.ended == "startup":
        row.why = _("the process did not start within {s:g} s").format(s=STARTUP)
        row.details = out.stderr
        return row
    if "error" in reports:
        report = reports["error"]
        row.why, not_done = _crash(report["function"], report["error"], student)
        if not_done:
            row.stops_all = "not done"
        else:
            row.details = report["error"]["traceback"]
        return row
    if "wrong" in reports:
        report = reports["wrong"]
        if report["function"] == "receive":
            row.why = _("receive() returned {type}, not bytes").format(type=report["why"])
        else:
            row.why = report["why"]
        return row
    if lab.kind == "pinger":
        if "pinged" not in reports:
            row.why, row.details = _unfinished(lab, out, limit, idle), out.stderr
            return row
        pinged = reports["pinged"]
        row.seconds = pinged["seconds"]
        down = [r for r in out.records if tuple(r.src) == out.link]
        why = pinger.judge(pinged["rtts"], pinged["estimator"], pinged["summary"], lab.size,
                           [(r.time, r.payload) for r in up], [(r.time, r.payload) for r in down])
        if why is not None:
            row.why = why
            return row
        echoed = sum(r is not None for r in pinged["rtts"])
        row.result = "PASS"
        row.why = _("{echoed} of {count} pings echoed").format(echoed=echoed, count=lab.size)
        return row
    if "received" in reports:
        row.seconds = reports["received"]["seconds"]
        why = transfer.judge(data, (work / "received.bin").read_bytes())
        if why is not None:
            row.why = why
            return row
    if out.ended != "finished":
        row.why, row.details = _unfinished(lab, out, limit, idle), out.stderr
        return row
    row.result = "PASS"
    row.why = _("{n:,} bytes arrived intact").format(n=len(data))
    if row.seconds:
        row.goodput = len(data) / row.seconds
    return row


def run(lab: str, student: str | os.PathLike[str], *, seed: int = 1, tier: str = "sanity",
        link: dict[str, Any] | None = None, size: int | None = None, window: int | None = None,
        time_limit: float = TIME_LIMIT, idle_limit: float = IDLE_LIMIT) -> Row:
    """One run of ``student`` (a file) in its own process, over a ``udplab.Link`` with
    ``seed`` and the options of ``tier`` (or ``link``, a dict of ``Link`` options), judged.
    ``size``: bytes to transfer instead of the lab's; ``window``: passed to the student's
    functions instead of the lab's."""
    spec = lab_named(lab)
    if window is not None and spec.window is None:
        raise ValueError(f"{spec.name} has no window: give window=None")
    if tier not in TIERS:
        raise ValueError(f"no tier named {tier!r}: the tiers are {', '.join(TIERS)}")
    path = Path(student).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {student}")
    options = dict(TIERS[tier] if link is None else link)
    with tempfile.TemporaryDirectory(prefix="udplab-grade-") as tmp:
        work = Path(tmp)
        data = spec.data(seed)
        if size is not None and spec.kind == "transfer":
            data = dataclasses.replace(spec, size=size).data(seed)
        (work / "data.bin").write_bytes(data)
        order = {"count": spec.size, "window": window if window is not None else spec.window}
        out = _execute(spec, path, work, seed, options, order, time_limit, idle_limit)
        return _judge(spec, path, seed, tier, data, out, work, time_limit, idle_limit)


def _execute(lab: Lab, student: Path, work: Path, seed: int, options: dict[str, Any],
             order: dict[str, Any], limit: float, idle: float) -> _Outcome:
    child = _Child(lab, student, work)
    reports: dict[str, dict[str, Any]] = {}
    echo = pinger.EchoServer() if lab.kind == "pinger" else None
    capture = work / "link.pcap"
    ended = "startup"
    stats: dict[str, Any] = {"up": {"received": 0}, "down": {"received": 0}}
    link_addr: tuple[Any, ...] = ()
    try:
        ready = child.next(STARTUP)
        while isinstance(ready, dict) and ready["event"] != "ready":
            reports[ready["event"]] = ready
            ready = child.next(STARTUP)
        if isinstance(ready, dict):
            if echo is not None:
                echo.start()
                target = echo.addr
            else:
                target = tuple(ready["receiver"])
            with Link(target, seed=seed, capture=capture, daemon=True, **options) as link:
                link_addr = tuple(link.addr)
                child.order({"link": list(link.addr), **order})
                ended = _watch(child, link, reports, limit, idle)
            stats = link.stats()
        elif ready is None:
            ended = "exited" if not reports else "finished"
    finally:
        if echo is not None:
            echo.stop()
        child.end()
    records = list(read_capture(capture)) if capture.exists() else []
    return _Outcome(reports, ended, stats, records, link_addr, child.proc.returncode,
                    child.stderr)


def _watch(child: _Child, link: Link, reports: dict[str, dict[str, Any]], limit: float,
           idle: float) -> str:
    """Collect the child's reports until it finishes, crashes, dies, or goes past the time
    limit or the idle limit; say which."""
    start = time.monotonic()
    quiet_since, crossed = start, -1
    while True:
        report = child.next(0.02)
        if report is None:
            return "exited"
        if isinstance(report, dict):
            reports.setdefault(report["event"], report)
            if report["event"] == "finished":
                return "finished"
            if report["event"] in ("error", "wrong"):
                return "crashed"
            continue
        now = time.monotonic()
        stats = link.stats()
        total = stats["up"]["received"] + stats["down"]["received"]
        if total != crossed:
            crossed, quiet_since = total, now
        if now - quiet_since > idle:
            return "idle"
        if now - start > limit:
            return "time"


def _number(value: float | None, fmt: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def _rate(bytes_per_second: float | None) -> str:
    if bytes_per_second is None:
        return "-"
    return f"{bytes_per_second / 1000:,.0f} kB/s"


def _pad(text: str, width: int, right: bool = False) -> str:
    """``text`` padded to ``width`` terminal columns (a Chinese character takes two)."""
    space = " " * max(0, width - columns(text))
    return space + text if right else text + space


def header() -> str:
    return "  ".join([_pad(_("seed"), 4, True), _pad(_("tier"), 8), _pad(_("result"), 6),
                      _pad(_("time"), 7, True), _pad(_("sent"), 5, True),
                      _pad(_("resent"), 6, True), _pad(_("goodput"), 11, True), _("why")])


def format_row(row: Row) -> str:
    result = {"PASS": _("PASS"), "FAIL": _("FAIL"), SKIP: _("SKIP")}[row.result]
    return "  ".join([_pad(str(row.seed), 4, True), _pad(row.tier, 8), _pad(result, 6),
                      _pad(_number(row.seconds, ".3f", " s"), 7, True),
                      _pad(_number(row.sent, "d"), 5, True),
                      _pad(_number(row.retransmissions, "d"), 6, True),
                      _pad(_rate(row.goodput), 11, True), row.why])


def write_csv(report: Report, path: str | os.PathLike[str]) -> None:
    """One line per run, in the order of the table, with plain numbers (seconds, bytes/s)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["lab", "seed", "tier", "result", "why", "seconds", "datagrams_sent",
                         "retransmissions", "goodput_bytes_per_s"])
        for r in report.rows:
            writer.writerow([report.lab, r.seed, r.tier, r.result, r.why,
                             "" if r.seconds is None else f"{r.seconds:.4f}",
                             "" if r.sent is None else r.sent,
                             "" if r.retransmissions is None else r.retransmissions,
                             "" if r.goodput is None else f"{r.goodput:.0f}"])


def _tiers(tiers: str | Sequence[str] | None) -> list[str]:
    if tiers is None or tiers == "all":
        return list(TIERS)
    chosen = [tiers] if isinstance(tiers, str) else list(tiers)
    for tier in chosen:
        if tier not in TIERS:
            raise ValueError(f"no tier named {tier!r}: the tiers are {', '.join(TIERS)}, all")
    return [t for t in TIERS if t in chosen]


def grade(lab: str, student: str | os.PathLike[str], *, seeds: int | Iterable[int] = 10,
          tiers: str | Sequence[str] | None = "all", time_limit: float = TIME_LIMIT,
          idle_limit: float = IDLE_LIMIT, csv_path: str | os.PathLike[str] | None = None,
          out: TextIO | None = None, language: str | None = None,
          progress: Callable[[Row], None] | None = None) -> Report:
    """Grade ``student`` (a file) for ``lab`` on ``seeds`` (a count: seeds 1 to n; or the
    seeds themselves) and ``tiers`` (a name, names, or ``all``), printing the table to ``out``
    (standard output by default) in ``language`` (``en`` or ``zh``) as the runs finish.

    Tiers run in order, each on every seed; a seed that fails a tier skips the harder ones
    (``SKIP``), and a file that does not load or is not written yet stops the grading at its
    first run. ``csv_path`` also writes the table as CSV. Returns the :class:`Report`; it
    ``passed`` only if every run passed."""
    spec = lab_named(lab)
    path = Path(student)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {student}")
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("seeds must name at least one seed")
    chosen = _tiers(tiers)
    stream = sys.stdout if out is None else out
    report = Report(spec.name, path, [])
    with speaking(language):
        print(_("udplab grade {lab} {file}: seeds {seeds}; tiers {tiers}").format(
            lab=spec.name, file=path, seeds=_seed_range(seed_list),
            tiers=", ".join(chosen)), file=stream)
        print(header(), file=stream, flush=True)
        failed: dict[int, str] = {}
        for tier in chosen:
            for seed in seed_list:
                if seed in failed:
                    row = Row(seed, tier, SKIP, _("failed {tier}").format(tier=failed[seed]))
                else:
                    row = run(spec.name, path, seed=seed, tier=tier, time_limit=time_limit,
                              idle_limit=idle_limit)
                    if not row.passed:
                        failed[seed] = tier
                report.rows.append(row)
                print(format_row(row), file=stream, flush=True)
                if progress is not None:
                    progress(row)
                if row.stops_all:
                    report.stopped = row.stops_all
                    break
            if report.stopped:
                break
        _footer(report, stream)
    if csv_path is not None:
        write_csv(report, csv_path)
    return report


def _seed_range(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 1:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _footer(report: Report, stream: TextIO) -> None:
    if report.stopped == "not done":
        print(_("Stopped after the first run: the file is not done yet."), file=stream)
    elif report.stopped:
        print(_("Stopped after the first run: the file cannot run as it is."), file=stream)
    passed = sum(r.passed for r in report.rows)
    print(_("{passed} of {total} runs passed.").format(passed=passed, total=len(report.rows)),
          file=stream)
    shown = set()
    for row in report.rows:
        if row.details and row.why not in shown:
            shown.add(row.why)
            print("\n" + _("Seed {seed}, {tier}: {why}").format(seed=row.seed, tier=row.tier,
                                                                 why=row.why), file=stream)
            print(row.details.rstrip(), file=stream)
    print(_("Time and goodput are measured, and vary; the rest is the same every time for the "
            "same file and seeds (on a very busy machine, the counts of a window's advanced runs "
            "can shift a little)."), file=stream, flush=True)
