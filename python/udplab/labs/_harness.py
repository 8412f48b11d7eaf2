"""The child process of one graded run: ``python -m udplab.labs._harness LAB STUDENT_FILE WORK``.

It loads the student's file, makes the sockets, tells the grader where the receiver listens,
waits to hear where the link is, then calls the student's functions and reports, one JSON
object per line on what was standard output. The student's own prints and errors go to files
in ``WORK`` instead (file descriptors 1 and 2 are moved there before the student's code is
loaded), so nothing they write can be taken for a report. Everything about the verdict is
decided by the grader (``grading.py``), which also owns the link, the time limit and the kill.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, TextIO

import udplab

from . import pinger
from .spec import LABS, Lab

_lock = threading.Lock()


def _report(channel: TextIO, event: str, **fields: Any) -> None:
    with _lock:
        channel.write(json.dumps({"event": event, **fields}) + "\n")
        channel.flush()


def _move_output(work: Path) -> TextIO:
    """Point file descriptors 1 and 2 (and so ``print`` and any C code) at files in ``work``;
    return a channel on what was standard output, for the reports."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
        target = os.open(work / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    devnull = os.open(os.devnull, os.O_RDONLY)
    sys.stdin = os.fdopen(os.dup(0), "r", encoding="utf-8")  # the grader's orders come here
    os.dup2(devnull, 0)  # the student's code reads nothing from the grader's pipe
    os.close(devnull)
    sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", buffering=1, closefd=False)
    return channel


def describe(error: BaseException, student: Path) -> dict[str, Any]:
    """What went wrong, where in the student's file, and the traceback of the student's frames
    (the harness's own frames say nothing to a student)."""
    frames = traceback.extract_tb(error.__traceback__)
    theirs = [f for f in frames if Path(f.filename).resolve() == student]
    where = None
    if theirs:
        where = {"line": theirs[-1].lineno, "code": (theirs[-1].line or "").strip(),
                 "function": theirs[-1].name}
    elif isinstance(error, SyntaxError) and error.lineno is not None:
        where = {"line": error.lineno, "code": (error.text or "").strip(), "function": None}
    shown = "".join(traceback.format_list(theirs)) if theirs else ""
    return {
        "type": type(error).__name__,
        "message": str(error),
        "where": where,
        "traceback": "Traceback (most recent call last):\n" + shown
                     + "".join(traceback.format_exception_only(type(error), error)),
    }


def load(student: str | os.PathLike[str]) -> ModuleType:
    """The module of the Python file ``student``, loaded afresh on every call (so an edited file
    is seen as it is now), as the grader loads a student's file."""
    spec = importlib.util.spec_from_file_location("student_lab", student)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {student} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _call(channel: TextIO, name: str, student: Path, function: Callable[..., Any],
          *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """``(True, result)``, or ``(False, None)`` after reporting the error."""
    try:
        return True, function(*args, **kwargs)
    except BaseException as e:  # noqa: B036 - a student's sys.exit() is a failure to report too
        _report(channel, "error", function=name, error=describe(e, student))
        return False, None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def run_pinger(channel: TextIO, module: ModuleType, student: Path, orders: dict[str, Any],
               sock: Any) -> None:
    """The estimator put through RFC 6298's steps, then ``ping`` and ``summarize``."""
    estimator_class = module.RttEstimator
    ok, wrong = _call(channel, "RttEstimator", student, pinger.check_estimator, estimator_class)
    if not ok:
        return
    if wrong is not None:
        _report(channel, "wrong", function="RttEstimator", why=wrong)
        return
    ok, estimator = _call(channel, "RttEstimator", student, estimator_class)
    if not ok:
        return
    start = time.monotonic()
    ok, rtts = _call(channel, "ping", student, module.ping, sock, tuple(orders["link"]),
                     orders["count"], estimator)
    seconds = time.monotonic() - start
    if not ok:
        return
    if not isinstance(rtts, (list, tuple)) or not all(
            r is None or _number(r) is not None for r in rtts):
        _report(channel, "wrong", function="ping",
                why=pinger.not_a_list(rtts))
        return
    rtts = [None if r is None else float(r) for r in rtts]
    ok, summary = _call(channel, "summarize", student, module.summarize, list(rtts))
    if not ok:
        return
    _report(channel, "pinged", rtts=rtts, seconds=seconds,
            estimator={k: _number(getattr(estimator, k, None)) for k in ("srtt", "rttvar", "rto")},
            summary=pinger.plain(summary))


def run_transfer(channel: TextIO, lab: Lab, module: ModuleType, student: Path,
                 orders: dict[str, Any], work: Path, receiver: Any, sender: Any) -> None:
    """``receive`` on a thread, ``send`` on this one; what arrived goes to ``received.bin``."""
    data = (work / "data.bin").read_bytes()
    window = {} if orders.get("window") is None else {"window": orders["window"]}
    peer = tuple(orders["link"])
    start = time.monotonic()
    done = threading.Event()

    def receive() -> None:
        ok, got = _call(channel, "receive", student, module.receive, receiver,
                        **(window if lab.receiver_window else {}))
        if ok:
            seconds = time.monotonic() - start
            if isinstance(got, (bytes, bytearray, memoryview)):
                (work / "received.bin").write_bytes(bytes(got))
                _report(channel, "received", seconds=seconds, size=len(got))
            else:
                _report(channel, "wrong", function="receive", why=type(got).__name__)
        done.set()

    thread = threading.Thread(target=receive, name="receive", daemon=True)
    thread.start()
    ok, _ = _call(channel, "send", student, module.send, sender, peer, data, **window)
    if ok:
        _report(channel, "sent", seconds=time.monotonic() - start)
    done.wait()


def main(argv: list[str]) -> int:
    lab_name, student_arg, work_arg = argv
    lab = LABS[lab_name]
    student, work = Path(student_arg).resolve(), Path(work_arg)
    channel = _move_output(work)
    try:
        module = load(student)
    except BaseException as e:  # noqa: B036 - SystemExit at import is a broken file too
        _report(channel, "load_error", error=describe(e, student))
        return 0
    missing = [name for name in lab.functions if not callable(getattr(module, name, None))]
    if missing:
        _report(channel, "missing", names=missing)
        return 0
    # The receiver's socket, whose address the link needs, and the sender's (the pinger's).
    sockets = [udplab.socket(), udplab.socket()]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    _report(channel, "ready", receiver=list(sockets[0].getsockname()))
    line = sys.stdin.readline()
    if not line:
        return 0  # the grader gave up on us
    orders = json.loads(line)
    if lab.kind == "pinger":
        run_pinger(channel, module, student, orders, sockets[1])
    else:
        run_transfer(channel, lab, module, student, orders, work, *sockets)
    _report(channel, "finished")
    channel.close()
    # A thread of the student's may still block in a receive: end without waiting for it.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
