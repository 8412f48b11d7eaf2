"""The README's Python snippets run as written."""

from __future__ import annotations

import logging
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_snippets_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README shows no Python snippet"
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        for code in blocks:
            exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


def test_readme_names_the_commands_ci_runs() -> None:
    text = README.read_text(encoding="utf-8")
    assert "pip install . && python -m udplab demo" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/check" in text and "bash scripts/check" in ci
