"""The Chinese notebooks (``notebooks/zh/``) and README stay twins of the English ones.

Every English notebook has a Chinese twin of the same name with the same cells in the same order,
and each code cell runs the same code: only comments and string literals may differ (they are
translated). So a change made to one notebook and not to its twin fails here. The answers to the
exercises (``teacher/notebooks/``) are twins in the same way, and so are the labs' templates and
reference solutions.

``README.zh-CN.md`` is the twin of ``README.md``: the same sections (headings of the same levels)
in the same order, in each section the same code blocks (comments and strings translated) and
table rows naming the same code, and nothing that sends the reader to the English one.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
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


ANSWERS = sorted((NOTEBOOKS.parent / "teacher" / "notebooks").glob("*.py"))


@pytest.mark.parametrize("english", ANSWERS, ids=lambda p: p.stem)
def test_the_answers_are_twins(english: Path) -> None:
    """The teacher's answers to the notebooks' exercises, in teacher/notebooks/ and zh/."""
    assert len(ANSWERS) == 7  # notebooks 1-6 and 9 (7 and 8 grade lab files)
    chinese = english.parent / "zh" / english.name
    assert code_only(chinese.read_text(encoding="utf-8")) == code_only(
        english.read_text(encoding="utf-8"))
    assert HAN.search(chinese.read_text(encoding="utf-8"))


def test_code_only_sets_aside_text_and_nothing_else() -> None:
    assert code_only('print("hello")  # greet\n') == code_only("print('你好')\n")
    assert code_only('x = f"{n:,} sent"\n') == code_only('x = f"已发送 {n:,} 条"\n')
    assert code_only("print(a)\n") != code_only("print(b)\n")
    assert code_only("f(1)\n") != code_only("f(1, 2)\n")


# -- README.md and README.zh-CN.md ----------------------------------------------------------------

ROOT = NOTEBOOKS.parent
README_EN = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"
HEADING = re.compile(r"^(#{1,6}) +(.*?) *#* *$")
FENCE = re.compile(r"^ *(```|~~~)(\S*)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")


@dataclass
class Section:
    """A heading and what stands under it, up to the next heading."""

    level: int
    title: str
    code_blocks: list[tuple[str, str]] = field(default_factory=list)  # (language, code)
    table_rows: list[str] = field(default_factory=list)
    prose: list[str] = field(default_factory=list)

    def name(self) -> str:
        return f"{'#' * self.level} {self.title}"


def sections(markdown: str) -> list[Section]:
    """The sections of a Markdown text, in order (text before the first heading is dropped)."""
    found: list[Section] = []
    fence: tuple[str, str] | None = None  # (marker, language) of the open code fence
    code: list[str] = []
    for line in markdown.split("\n"):
        opening = FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1) == fence[0] and not opening.group(2):
                found[-1].code_blocks.append((fence[1], "\n".join(code)))
                fence = None
            else:
                code.append(line)
        elif opening:
            fence, code = (opening.group(1), opening.group(2)), []
        elif heading := HEADING.match(line):
            found.append(Section(len(heading.group(1)), heading.group(2)))
        elif found and line.lstrip().startswith("|"):
            found[-1].table_rows.append(line.strip())
        elif found and line.strip():
            found[-1].prose.append(line)
    return found


def shell_code(code: str) -> list[str]:
    """Shell commands with their comments dropped and spacing evened out."""
    commands = []
    for line in code.split("\n"):
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            commands.append(" ".join(line.split()))
    return commands


def same_code(language: str, en: str, zh: str) -> bool:
    """Python compares by :func:`code_only` (comments and strings are translated), a shell
    session without its comments, anything else as written."""
    if language == "python":
        return code_only(en) == code_only(zh)
    if language in ("sh", "bash", "shell", "console"):
        return shell_code(en) == shell_code(zh)
    return en.strip() == zh.strip()


def require(condition: bool, message: str) -> None:
    """Fails with ``message`` alone: it says which section or code block differs, and how."""
    if not condition:
        pytest.fail(message, pytrace=False)


def outline(found: list[Section]) -> str:
    return "\n".join(f"  {i}. {s.name()}" for i, s in enumerate(found, start=1))


def test_the_readmes_have_the_same_sections_in_the_same_order() -> None:
    en = sections(README_EN.read_text(encoding="utf-8"))
    zh = sections(README_ZH.read_text(encoding="utf-8"))
    both = (f"\nREADME.md:\n{outline(en)}\nREADME.zh-CN.md:\n{outline(zh)}\n"
            "Add or move the section in both, as the twin of the other.")
    require(len(en) > 5, "README.md has no sections?")
    for number, (e, z) in enumerate(zip(en, zh), start=1):
        require(e.level == z.level, (
            f"section {number}: README.md has {e.name()!r}, README.zh-CN.md has {z.name()!r} "
            f"(heading levels {e.level} and {z.level}).{both}"))
        # What a heading names in code (`udplab.Link`) is not translated: the same names.
        require(CODE_SPAN.findall(e.title) == CODE_SPAN.findall(z.title), (
            f"section {number}: {e.name()!r} and {z.name()!r} name different code.{both}"))
    require(len(en) == len(zh), (
        f"README.md has {len(en)} sections, README.zh-CN.md has {len(zh)}.{both}"))


def test_the_readmes_show_the_same_code_and_tables_section_by_section() -> None:
    en = sections(README_EN.read_text(encoding="utf-8"))
    zh = sections(README_ZH.read_text(encoding="utf-8"))
    for e, z in zip(en, zh):
        where = f"section {e.name()!r} (README.zh-CN.md: {z.name()!r})"
        require(len(e.code_blocks) == len(z.code_blocks), (
            f"{where}: {len(e.code_blocks)} code blocks in README.md, {len(z.code_blocks)} in "
            "README.zh-CN.md"))
        for number, ((e_lang, e_code), (z_lang, z_code)) in enumerate(
                zip(e.code_blocks, z.code_blocks), start=1):
            require(e_lang == z_lang and same_code(e_lang, e_code, z_code), (
                f"{where}, code block {number} (```{e_lang}) differs; only comments and string "
                "literals may be translated.\n"
                f"--- README.md\n{e_code}\n--- README.zh-CN.md\n{z_code}"))
        require(len(e.table_rows) == len(z.table_rows), (
            f"{where}: the table has {len(e.table_rows)} rows in README.md, "
            f"{len(z.table_rows)} in README.zh-CN.md"))
        for e_row, z_row in zip(e.table_rows, z.table_rows):
            # Each row names the same code (paths, functions) in both languages, in the order
            # each language puts it.
            require(sorted(CODE_SPAN.findall(e_row)) == sorted(CODE_SPAN.findall(z_row)), (
                f"{where}: a table row names different code:\n--- README.md\n{e_row}\n"
                f"--- README.zh-CN.md\n{z_row}"))
        if e.prose:
            require(HAN.search("".join(z.prose)) is not None,
                    f"{where}: the prose of README.zh-CN.md is not in Chinese")


def test_the_chinese_readme_stands_on_its_own() -> None:
    text = README_ZH.read_text(encoding="utf-8")
    # One link to the English README: the language switch at the top, nothing that sends the
    # reader there for what this one leaves out.
    require(text.count("](README.md") == 1 and "](README.md)" in text.split("\n## ")[0],
            "README.zh-CN.md links to README.md once, at the top, and nowhere else")
    for phrase in ("详见", "英文版的 README", "see the English", "](README.md#"):
        require(phrase not in text, f"README.zh-CN.md sends the reader elsewhere: {phrase!r}")


def test_the_twin_check_says_what_differs() -> None:
    en = sections("# a\n## `x` one\n```sh\nls -l  # list\n```\n| a | `p` |\n")
    zh = sections("# 甲\n## `x` 一\n```sh\nls  -l   # 列出\n```\n| 甲 | `p` |\n")
    assert [(s.level, s.title) for s in en] == [(1, "a"), (2, "`x` one")]
    assert same_code("sh", en[1].code_blocks[0][1], zh[1].code_blocks[0][1])
    assert not same_code("sh", "ls -l", "ls -la")
    assert same_code("python", "print('hi')  # greet", "print('你好')")
    assert not same_code("python", "f(1)", "f(2)")
    assert en[1].table_rows == ["| a | `p` |"] and not en[1].prose


ROOT = NOTEBOOKS.parent
TEMPLATES = ROOT / "python" / "udplab" / "labs" / "templates"
#: The labs' templates (what students start from) and the reference solutions (what a teacher
#: may hand out afterwards): English, then the Chinese twin.
LAB_FILES = [(TEMPLATES / "en" / p.name, TEMPLATES / "zh" / p.name)
             for p in sorted((TEMPLATES / "en").glob("*.py"))] + [
    (p, p.parent / "zh" / p.name) for p in sorted((ROOT / "teacher" / "labs").glob("*.py"))]


def english_comments(source: str) -> list[str]:
    """Comments with English words and no Chinese in them."""
    return [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type == tokenize.COMMENT and re.search("[A-Za-z]{3} [a-z]{2}", t.string)
            and not HAN.search(t.string)]


@pytest.mark.parametrize(("english", "chinese"), LAB_FILES,
                         ids=[f"{e.parent.name}-{e.stem}" for e, _ in LAB_FILES])
def test_the_labs_files_are_twins(english: Path, chinese: Path) -> None:
    assert len(LAB_FILES) == 8
    en = english.read_text(encoding="utf-8")
    zh = chinese.read_text(encoding="utf-8")
    assert code_only(zh) == code_only(en), f"{chinese} runs other code than {english}"
    assert HAN.search(zh.split('"""')[1]), f"{chinese}: the module's docstring is not in Chinese"
    assert not english_comments(zh), f"{chinese}: comments left in English"


#: Other pages with a Chinese twin: the lesson plan, and the teacher's folder's README.
DOCUMENTS = [(NOTEBOOKS / "LESSONS.md", ZH / "LESSONS.md"),
             (ROOT / "teacher" / "README.md", ROOT / "teacher" / "README.zh-CN.md")]


@pytest.mark.parametrize(("english", "chinese"), DOCUMENTS, ids=["lessons", "teacher"])
def test_the_other_documents_are_twins(english: Path, chinese: Path) -> None:
    en = sections(english.read_text(encoding="utf-8"))
    zh = sections(chinese.read_text(encoding="utf-8"))
    require([s.level for s in en] == [s.level for s in zh],
            f"{chinese.name}: other sections than {english.name}:\n{outline(en)}\n{outline(zh)}")
    for e, z in zip(en, zh):
        where = f"{chinese.relative_to(ROOT)}, section {z.name()!r}"
        require([lang for lang, _ in e.code_blocks] == [lang for lang, _ in z.code_blocks]
                and all(same_code(lang, a, b) for (lang, a), (_, b)
                        in zip(e.code_blocks, z.code_blocks)), f"{where}: other code")
        require(len(e.table_rows) == len(z.table_rows), f"{where}: other table rows")
        for e_row, z_row in zip(e.table_rows, z.table_rows):
            require(sorted(CODE_SPAN.findall(e_row)) == sorted(CODE_SPAN.findall(z_row)),
                    f"{where}: a row names other code:\n{e_row}\n{z_row}")
        require(HAN.search(z.title + "".join(z.prose)) is not None, f"{where}: not in Chinese")
