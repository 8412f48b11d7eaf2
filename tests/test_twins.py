"""The Chinese notebooks (``notebooks/zh/``) stay twins of the English ones.

Every English notebook has a Chinese twin of the same name with the same cells in the same order,
and each code cell runs the same code: only comments and string literals may differ (they are
translated). So a change made to one notebook and not to its twin fails here. The sample answers
(``answers.py``) are twins in the same way.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ZH = NOTEBOOKS / "zh"
ENGLISH = sorted(NOTEBOOKS.glob("*.ipynb"))
HAN = re.compile(r"[\u4e00-\u9fff]")

#: Tokens that carry text rather than code. Python 3.12+ splits f-strings into several tokens.
TEXT_TOKENS = {tokenize.COMMENT, tokenize.STRING} | {
    getattr(tokenize, name) for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
    if hasattr(tokenize, name)
}
LAYOUT = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def code_only(source: str) -> list[str]:
    """The tokens of ``source`` with every comment dropped and every string literal (f-strings
    with what they contain) replaced by one placeholder."""
    tokens: list[str] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT or token.type in LAYOUT:
            continue
        if token.type in TEXT_TOKENS:
            if tokens[-1:] != ["<text>"]:  # adjacent literals, and f-string parts, are one text
                tokens.append("<text>")
            continue
        tokens.append(token.string)
    return tokens


def test_every_english_notebook_has_a_twin() -> None:
    assert ENGLISH, NOTEBOOKS
    assert [p.name for p in sorted(ZH.glob("*.ipynb"))] == [p.name for p in ENGLISH]


@pytest.mark.parametrize("english", ENGLISH, ids=lambda p: p.stem)
def test_twins_have_the_same_cells_and_code(english: Path) -> None:
    twin = ZH / english.name
    en_cells = nbformat.read(english, as_version=4).cells
    zh_cells = nbformat.read(twin, as_version=4).cells
    assert [c.cell_type for c in zh_cells] == [c.cell_type for c in en_cells], (
        f"{twin.name}: the cells differ in number or kind from the English notebook"
    )
    for index, (en, zh) in enumerate(zip(en_cells, zh_cells)):
        if en.cell_type == "code":
            assert code_only(zh.source) == code_only(en.source), (
                f"{english.name} cell {index}: the code differs between the twins\n"
                f"--- English\n{en.source}\n--- Chinese\n{zh.source}"
            )
        else:
            assert HAN.search(zh.source), f"zh/{twin.name} cell {index} is not in Chinese"


def test_the_sample_answers_are_twins() -> None:
    english = (NOTEBOOKS / "answers.py").read_text(encoding="utf-8")
    chinese = (ZH / "answers.py").read_text(encoding="utf-8")
    assert code_only(chinese) == code_only(english)
    assert HAN.search(chinese)


def test_code_only_sets_aside_text_and_nothing_else() -> None:
    assert code_only('print("hello")  # greet\n') == code_only("print('你好')\n")
    assert code_only('x = f"{n:,} sent"\n') == code_only('x = f"已发送 {n:,} 条"\n')
    assert code_only("print(a)\n") != code_only("print(b)\n")
    assert code_only("f(1)\n") != code_only("f(1, 2)\n")
