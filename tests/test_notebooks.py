"""The teaching notebooks in ``notebooks/``.

Policy: notebooks are committed *without* outputs or execution counts (outputs are produced by
running them, so they can't go stale in the repository). Each notebook must then run top to bottom
in a real Jupyter kernel, on loopback, with the installed udplab, in under 30 s; and running all of
its cells a second time in the same kernel must work too (no fixed ports, nothing left running).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
#: The English notebooks, then their Chinese twins (tests/test_twins.py keeps them in step).
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb")) + sorted(NOTEBOOK_DIR.glob("zh/*.ipynb"))


def _name(path: Path) -> str:
    """``03_group_chat.ipynb``, or ``zh/03_group_chat.ipynb`` for a Chinese twin."""
    return path.relative_to(NOTEBOOK_DIR).as_posix()


def _id(path: Path) -> str:
    return _name(path).replace("/", "-").removesuffix(".ipynb")


#: What the exercises' cells start with, in each language.
EXERCISE = {"en": ("## Exercise", "# Check"), "zh": ("## 练习", "# 检查")}


def _language(path: Path) -> str:
    return "zh" if path.parent.name == "zh" else "en"

#: One notebook per section of the notes, in reading order, with the section's own heading; then
#: the ones that go on from the notes (the labs' 07 and 08), with a Chinese heading of their own.
SECTIONS = {
    "01_udp_server.ipynb": "UDP服务器端",
    "02_udp_client.ipynb": "UDP客户端",
    "03_group_chat.ipynb": "UDP版本群聊",
    "04_heartbeat.ipynb": "心跳机制",
    "05_udp_vs_tcp.ipynb": "UDP与TCP的对比",
    "06_network_not_ideal.ipynb": "网络并不理想",
    "07_round_trips_and_timeouts.ipynb": "往返时间与超时",
    "08_reliable_transfer.ipynb": "可靠传输",
    "09_asyncio.ipynb": "asyncio 版客户端",
}

WALL_LIMIT = 30.0  # seconds per full run of a notebook
CELL_TIMEOUT = 30  # seconds per cell, so a hung cell fails instead of blocking the suite
KERNEL_NAME = "udplab-notebook-test"

#: Text that must never appear in a cell's output: uncaught errors in background threads,
#: errors logged by udplab, warnings.
FORBIDDEN = ("Traceback (most recent call last)", "Exception in thread", "Warning:")

#: Output that must come in this order within one cell, because the events happen in this order:
#: {notebook: [(a line of the cell's code, [texts in the order they must appear])]}. Log lines
#: and print() share standard output in the notebooks; with two streams, Jupyter interleaves
#: them by when each stream is flushed, not by when each line was written. Only orders the code
#: enforces are listed: a print, the log of a call made on the main thread before or after it
#: (start, stop), not a log line of the server's thread racing the main thread.
ORDER = {
    "03_group_chat.ipynb": [
        ('for datagram in (b"HB", b"HB\\n", b"hello"):',
         ["listening", "b'HB'", "(no answer)", "b'hello'", "-> b'ACKhello'", "stopped",
          "heartbeats:"]),
        ('print("before stop:", list(server.raddrs))',
         ["listening", "before stop:", "client", "stopped", "after stop:", "server on"]),
    ],
    # What a run measured is said after it is measured, from the numbers (not fixed prose).
    "05_udp_vs_tcp.ipynb": [
        ("N = 20_000", ["UDP:", "TCP:", "**In this run**", "UDP's sender went at"]),
        ("exchange = {", ["UDP:", "TCP:", "**In this run** one"]),
    ],
    # The measured false expiries are described from the numbers the run measured.
    "06_network_not_ideal.ipynb": [
        ("same = [key for key in expiries", ["**In this run** the servers counted", "setups"]),
    ],
    "zh/03_group_chat.ipynb": [
        ('for datagram in (b"HB", b"HB\\n", b"hello"):',
         ["listening", "b'HB'", "（没有回复）", "b'hello'", "-> b'ACKhello'", "stopped", "心跳:"]),
        ('print("stop 之前:", list(server.raddrs))',
         ["listening", "stop 之前:", "client", "stopped", "stop 之后:", "server on"]),
        # The capture's payloads show as the log shows them: Chinese text as text.
        ("records = list(udplab.read_capture(CAPTURE))",
         ["heartbeat  b'HB'", "message    '大家好'", "broadcast  'ACK大家好'"]),
    ],
    "zh/06_network_not_ideal.ipynb": [
        ("same = [key for key in expiries", ["**本次运行**，服务器端一共数出", "组两个数相等"]),
    ],
    "zh/05_udp_vs_tcp.ipynb": [
        ("N = 20_000", ["UDP:", "TCP:", "**本次运行**", "UDP 的发送方"]),
        ("exchange = {", ["UDP:", "TCP:", "**本次运行**，一次"]),
    ],
}

#: A log line (the notes' format) that starts anywhere but at the start of a line has been cut
#: into another line: print() and the log, from different threads, must not interleave.
LOG_INSIDE_A_LINE = re.compile(r"^.*\S.*?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ .*)$", re.M)

#: Numbers a notebook prints that must add up: the first group of the pattern is the sum of the
#: others (so a count read before the last datagram arrived shows).
ADDS_UP = {
    "03_group_chat.ipynb": r"(\d+) records: the (\d+) datagrams the server received and the (\d+)",
    "zh/03_group_chat.ipynb": r"(\d+) 条记录：服务器端收到的 (\d+) 个数据报和它发出的 (\d+) 个",
}

#: The answers to the exercises: kept out of the notebooks (a teacher withholds them), put in by
#: this test before a notebook's second run. ``teacher/notebooks/[zh/]NN_name.py`` is the code of
#: a notebook's answer cell; ``teacher/labs/[zh/]`` has the lab files notebooks 7 and 8 grade.
TEACHER = NOTEBOOK_DIR.parent / "teacher"
#: What a check cell says before the exercise is done, and after (lower-cased).
NOT_DONE = {"en": "not done yet", "zh": "还没有完成"}
CORRECT = {"en": "correct", "zh": "正确"}

#: Threads the notebooks start (udplab's named threads and the notebooks' own helpers), by the
#: name a thread has or starts with.
OUR_THREADS = {"servicer", "user", "hb", "callbacks", "receiver", "link", "echo", "aio"}

#: Run in the kernel after a full run: which of our threads are alive, how many sockets are open.
PROBE = """
import gc, json, os, threading
gc.collect()


def _target(fd):
    # A descriptor can close between listdir and readlink (a kernel thread's): not a socket.
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


_fds = [_target(fd) for fd in os.listdir("/proc/self/fd")] if os.path.isdir("/proc/self/fd") else []
print(json.dumps({"threads": sorted(t.name for t in threading.enumerate()),
                  "sockets": sum(link.startswith("socket:") for link in _fds)}))
"""


def _load(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


@pytest.mark.parametrize("folder", [NOTEBOOK_DIR, NOTEBOOK_DIR / "zh"], ids=["en", "zh"])
def test_one_notebook_per_section(folder: Path) -> None:
    found = [p.name for p in sorted(folder.glob("*.ipynb"))]
    assert found == list(SECTIONS), f"expected exactly {list(SECTIONS)} in {folder}, found {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_committed_clean(path: Path) -> None:
    nb = _load(path)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index}: outputs must be stripped"
            assert cell.execution_count is None, f"{path.name} cell {index}: execution count"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert SECTIONS[path.name] in first.source, "the title carries the notes' Chinese heading"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    exercise, check = EXERCISE[_language(path)]
    assert exercise in markdown
    checks = [i for i, c in enumerate(nb.cells) if c.source.startswith(check)]
    assert len(checks) == 1 and nb.cells[checks[0]].cell_type == "code"
    # The learner meets an empty answer first: the cell above the check only raises (or writes
    # a lab's template to a file, which raises where it is to be filled in).
    answer, check_code = nb.cells[checks[0] - 1], nb.cells[checks[0]].source
    assert answer.cell_type == "code"
    if answer.source.startswith("%%writefile "):
        from udplab.labs import LABS, template

        [lab] = [name for name, spec in LABS.items()
                 if answer.source.split("\n", 1)[0].endswith(f" {spec.stem}.py")]
        assert answer.source.split("\n", 1)[1] == template(lab, _language(path)).rstrip("\n")
        assert f'udplab.labs.grade("{lab}"' in check_code
    elif "write_template(" in answer.source:
        assert "udplab.labs.grade(" in check_code
    else:
        assert "raise NotImplementedError" in answer.source
        assert "with checking(" in check_code
        assert _answer(path).is_file(), f"no answer for {path.name} in teacher/notebooks"
    assert "import answers" not in check_code, "a check never falls back to an answer"


def _answer(path: Path) -> Path:
    """The teacher's answer to a notebook's exercise: the code of its answer cell."""
    return TEACHER / "notebooks" / path.relative_to(NOTEBOOK_DIR).with_suffix(".py")


def _put_in_the_answers(nb: nbformat.NotebookNode, path: Path, folder: Path) -> None:
    """What a learner who has done the exercise has: the teacher's code in the answer cell, and
    the reference solutions as the lab files in the notebook's folder."""
    labs = TEACHER / "labs" / ("zh" if _language(path) == "zh" else "")
    for solution in labs.glob("*.py"):
        shutil.copy(solution, folder / solution.name)
    check = EXERCISE[_language(path)][1]
    [index] = [i for i, c in enumerate(nb.cells) if c.source.startswith(check)]
    answer = nb.cells[index - 1]
    if answer.source.startswith("%%writefile "):
        magic = answer.source.split("\n", 1)[0]
        answer.source = magic + "\n" + (labs / magic.split()[-1]).read_text(encoding="utf-8")
    elif "write_template(" not in answer.source:
        answer.source = _answer(path).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernel spec that runs this very interpreter, so the notebooks see the udplab under test
    (a user-level ``python3`` kernel spec may point at another Python)."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL_NAME
    spec.mkdir()
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "udplab notebook test",
                "language": "python",
            }
        )
    )
    return KernelSpecManager(kernel_dirs=[str(root)])


def _outputs_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append("\n".join(out.traceback))
        elif "text/markdown" in out.get("data", {}):
            parts.append(out.data["text/markdown"])
        elif "text/plain" in out.get("data", {}):
            parts.append(out.data["text/plain"])
    return "".join(parts)


def _run_all(client: NotebookClient, nb: nbformat.NotebookNode, name: str, run: int,
             answered: bool) -> float:
    language = "zh" if name.startswith("zh/") else "en"
    check = EXERCISE[language][1]
    start = time.monotonic()
    for index, cell in enumerate(nb.cells):
        client.execute_cell(cell, index)  # raises CellExecutionError on any error
    elapsed = time.monotonic() - start
    for index, cell in enumerate(nb.cells):
        text = _outputs_text(cell)
        for bad in FORBIDDEN:
            assert bad not in text, f"{name} run {run}, cell {index} printed {bad!r}:\n{text}"
        streams = {out.name for out in cell.get("outputs", []) if out.output_type == "stream"}
        assert streams <= {"stdout"}, f"{name} cell {index} wrote to {streams}:\n{text}"
        if cell.source.startswith(check):
            said = text.lower()
            if answered:
                assert CORRECT[language] in said and NOT_DONE[language] not in said, (
                    f"{name} run {run}: the answer should pass the check:\n{text}")
            else:
                assert NOT_DONE[language] in said and CORRECT[language] not in said, (
                    f"{name} run {run}: with no answer the check should say not done yet:\n{text}")
        cut = LOG_INSIDE_A_LINE.search(text)
        assert not cut, f"{name} run {run}, cell {index}: a log line inside another:\n{text}"
    if name in ADDS_UP:
        found = re.search(ADDS_UP[name], "".join(_outputs_text(c) for c in nb.cells))
        assert found, f"{name}: no line matches {ADDS_UP[name]!r}"
        total, *parts = (int(n) for n in found.groups())
        assert total == sum(parts), f"{name} run {run}: {found.group(0)}"
    for line, expected in ORDER.get(name, []):
        [cell] = [c for c in nb.cells if line in c.source]
        _assert_in_order(_outputs_text(cell), expected, f"{name} run {run}")
    return elapsed


def _assert_in_order(text: str, expected: list[str], where: str) -> None:
    position = 0
    for part in expected:
        found = text.find(part, position)
        assert found >= 0, f"{where}: {part!r} missing or out of order after {expected}:\n{text}"
        position = found + len(part)


def _probe(client: NotebookClient) -> dict[str, Any]:
    cell = nbformat.v4.new_code_cell(PROBE)
    client.execute_cell(cell, 0, store_history=False)
    text = _outputs_text(cell).strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(text)
    return result


def _client(nb: nbformat.NotebookNode, specs: KernelSpecManager, folder: Path) -> NotebookClient:
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    return NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(folder)}},  # the kernel starts in the notebook's folder
    )


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_runs_twice_in_one_kernel(path: Path, kernel_specs: KernelSpecManager,
                                  tmp_path: Path) -> None:
    """The first run is the learner's first: the exercise not done, the check says so. The
    second has the answers put in, and the check passes. The notebook runs in a folder of its
    own, where notebooks 7 and 8 write the learner's lab files."""
    nb = nbformat.read(path, as_version=4)
    client = _client(nb, kernel_specs, tmp_path)
    start = time.monotonic()
    # cleanup_kc: shut the kernel down and close its channels, although we made its manager.
    with client.setup_kernel(cleanup_kc=True):
        first = _run_all(client, nb, _name(path), run=1, answered=False)
        keep = os.environ.get("UDPLAB_EXECUTED_NOTEBOOKS")
        if keep:  # scripts/site builds the site from this run instead of running it again
            (Path(keep) / _name(path)).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, Path(keep) / _name(path))
        total = time.monotonic() - start  # includes starting the kernel
        after_first = _probe(client)
        _put_in_the_answers(nb, path, tmp_path)
        second = _run_all(client, nb, _name(path), run=2, answered=True)
        after_second = _probe(client)
    assert total < WALL_LIMIT, f"{path.name}: {total:.1f} s (cells {first:.1f} s) > {WALL_LIMIT} s"
    assert second < WALL_LIMIT, f"{path.name}: second run took {second:.1f} s"
    for probe in (after_first, after_second):
        # A named ChatC's threads are "user-alice", "hb-alice": match on the part before "-".
        left = [t for t in probe["threads"] if t.split("-", 1)[0] in OUR_THREADS]
        assert not left, f"{path.name} left threads running: {sorted(left)}"
    assert after_second["sockets"] == after_first["sockets"], (
        f"{path.name}: open sockets grew from {after_first['sockets']} to "
        f"{after_second['sockets']} on the second run"
    )
