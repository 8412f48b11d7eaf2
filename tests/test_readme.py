"""The README's Python snippets run as written."""

from __future__ import annotations

import logging
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def run_snippets(path: Path) -> int:
    """Runs every Python snippet of a README; returns how many there were."""
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        for code in blocks:
            exec(compile(code, str(path), "exec"), {"__name__": "readme"})
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
    return len(blocks)


def test_readme_snippets_run() -> None:
    assert run_snippets(README), "the README shows no Python snippet"


def test_readme_names_the_commands_ci_runs() -> None:
    text = README.read_text(encoding="utf-8")
    assert "pip install . && python -m udplab demo" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/check" in text and "bash scripts/check" in ci


CHINESE = README.with_name("README.zh-CN.md")


def test_the_chinese_readme_runs_and_names_the_same_commands() -> None:
    text = CHINESE.read_text(encoding="utf-8")
    english = README.read_text(encoding="utf-8")
    for command in ("pip install . && python -m udplab demo", "bash scripts/check"):
        assert command in text and command in english
    assert "README.zh-CN.md" in english.split("\n## ")[0], "README.md links to it at the top"
    assert "](README.md)" in text.split("\n## ")[0], "and it links back at the top"
    assert run_snippets(CHINESE) == run_snippets(README), "every snippet of both runs"
