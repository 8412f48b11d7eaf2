"""No Chinese sentence is hard-wrapped in the Markdown a learner reads.

Markdown turns a line break inside a paragraph into a space. Between two Chinese characters that
space shows in every browser, in Jupyter and on the code host ("创建数据报 套接字"), so Chinese
paragraphs are kept on one line each. This scans every tracked Markdown file and every markdown
cell of every tracked notebook for a line ending in a CJK character or CJK punctuation followed by
a line starting with one, outside code fences.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent

#: CJK punctuation (U+3000-303F), Extension A and the unified ideographs, full-width forms.
CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
ENDS_CJK = re.compile(f"[{CJK}]\\s*$")
STARTS_CJK = re.compile(f"^\\s*[{CJK}]")
FENCE = re.compile(r"^\s*(```|~~~)")


def tracked(*patterns: str) -> list[Path]:
    """The files git tracks that match ``patterns`` (a glob of the tree outside git)."""
    try:
        names = subprocess.run(
            ["git", "ls-files", "-z", "--", *patterns],
            cwd=ROOT, capture_output=True, check=True, text=True,
        ).stdout.split("\0")
        return [ROOT / name for name in names if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", "target", "site", "node_modules"}
        return [
            path for pattern in patterns for path in ROOT.rglob(pattern.replace("**/", ""))
            if not skip & set(path.relative_to(ROOT).parts)
        ]


def wrapped_lines(text: str) -> list[tuple[int, str, str]]:
    """(line number, line, next line) for each break between two CJK characters outside code
    fences; line numbers start at 1."""
    found = []
    lines = text.split("\n")
    in_fence = False
    for number, (line, following) in enumerate(zip(lines, lines[1:]), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
        if in_fence:
            continue
        if ENDS_CJK.search(line) and STARTS_CJK.search(following):
            found.append((number, line, following))
    return found


def sources() -> list[tuple[str, str]]:
    """(where, Markdown text) for each Markdown file and notebook markdown cell."""
    texts = [
        (path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"))
        for path in tracked("*.md")
    ]
    for path in tracked("*.ipynb"):
        cells = nbformat.read(path, as_version=4).cells
        texts += [
            (f"{path.relative_to(ROOT).as_posix()} cell {index}", cell.source)
            for index, cell in enumerate(cells) if cell.cell_type == "markdown"
        ]
    return texts


def test_no_chinese_sentence_is_wrapped() -> None:
    texts = sources()
    assert any("README.zh-CN.md" in where for where, _ in texts), "found no Markdown to scan"
    assert any("zh/" in where and "cell" in where for where, _ in texts), "nor notebook cells"
    problems = [
        f"{where}, line {number}: {line.strip()[-15:]!r} / {following.strip()[:15]!r}"
        for where, text in texts for number, line, following in wrapped_lines(text)
    ]
    assert not problems, (
        "A line break between two Chinese characters renders as a space: join these lines "
        "(keep each Chinese paragraph on one line):\n" + "\n".join(problems)
    )


@pytest.mark.parametrize(
    ("text", "wrapped"),
    [
        ("创建数据报\n套接字", True),
        ("第一句。\n第二句", True),
        ("用 `socket`\n套接字", False),  # the break renders as a space, as it should here
        ("```text\n服务器\n客户端\n```", False),
        ("服务器\n\n客户端", False),
        ("Hello\nworld", False),
        ("```\n代码\n```\n正文\n接着", True),
    ],
)
def test_the_check_finds_wrapped_chinese_and_nothing_else(text: str, wrapped: bool) -> None:
    assert bool(wrapped_lines(text)) == wrapped
