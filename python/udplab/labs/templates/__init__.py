"""The labs' templates, the files students start from: ``en/`` in English, ``zh/`` in Chinese,
the same code in both (``tests/test_twins.py``). Each names what to fill in, and raises
``NotImplementedError`` there until it is filled in, which the grader reports as "not done
yet"."""

from __future__ import annotations

import os
from pathlib import Path

from .._text import check_language
from .._text import language as language_in_use
from ..spec import LABS

HERE = Path(__file__).resolve().parent


def _path(lab: str, language: str) -> Path:
    if lab not in LABS:
        raise ValueError(f"no lab named {lab!r}: the labs are {', '.join(LABS)}")
    return HERE / check_language(language) / f"{LABS[lab].stem}.py"


def template(lab: str, language: str | None = None) -> str:
    """The text of ``lab``'s template, in ``language`` (``en`` or ``zh``; by default the
    ``udplab`` command's)."""
    return _path(lab, language or language_in_use()).read_text(encoding="utf-8")


def write_template(lab: str, path: str | os.PathLike[str], language: str | None = None) -> bool:
    """Write ``lab``'s template to ``path`` unless a file is there already (a student's work
    is never overwritten); return whether it was written."""
    target = Path(path)
    if target.exists():
        return False
    target.write_text(template(lab, language), encoding="utf-8")
    return True
