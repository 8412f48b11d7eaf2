"""The errata tables of the notes' mistakes and the notebooks agree.

The notebooks cite the notes' mistakes by number ("mistake 4", in the Chinese twins "错误 4"). The
table (``notebooks/README.md``; its Chinese twin, the 勘误表 of ``notebooks/zh/README.md``) gives
each number the notebook and the heading of the section that shows it. Here: the numbers run 1..N
in the order a reader of the notebooks meets them, every number cited anywhere is in the table,
each row's notebook has that heading with the mistake cited in its section, and the two tables
point at the same notebooks.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

#: A row of the table: | number | ... | `notebook.ipynb`, *heading* |
ROW = re.compile(r"^\|\s*(\d+)\s*\|.*\|\s*`([\w.]+\.ipynb)`[,，]\s*\*(.+)\*\s*\|\s*$")
CITE = re.compile(r"\b[Mm]istakes? (\d+)\b")
#: (README with the table, its notebooks' folder, how they cite a mistake)
LANGUAGES = {
    "en": (NOTEBOOKS / "README.md", NOTEBOOKS, CITE),
    "zh": (NOTEBOOKS / "zh" / "README.md", NOTEBOOKS / "zh", re.compile(r"错误 ?(\d+)\b")),
}
HEADING = re.compile(r"^(#+)\s+(.*?)\s*$")


def table(readme: Path) -> dict[int, tuple[str, str]]:
    """{mistake number: (notebook file name, heading)} from the errata table of ``readme``."""
    rows: dict[int, tuple[str, str]] = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            number = int(match.group(1))
            assert number not in rows, f"{readme.name}: mistake {number} has two rows"
            rows[number] = (match.group(2), match.group(3))
    return rows


def sections(path: Path) -> list[tuple[str, str]]:
    """(heading, text) for every markdown heading of a notebook; the text runs until the next
    heading of the same or a higher level, across cells, code cells included."""
    lines: list[tuple[int, str]] = []  # (heading level or 0, text)
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "markdown":
            lines.append((0, cell.source))  # code counts as text, never as a heading
            continue
        for line in cell.source.splitlines():
            match = HEADING.match(line)
            lines.append((len(match.group(1)), match.group(2)) if match else (0, line))
    result = []
    for start, (level, heading) in enumerate(lines):
        if level:
            end = next(
                (i for i in range(start + 1, len(lines)) if 0 < lines[i][0] <= level), len(lines)
            )
            result.append((heading, "\n".join(text for _, text in lines[start:end])))
    return result


def citations(path: Path, cite: re.Pattern[str]) -> list[int]:
    """Every mistake number a notebook cites, in reading order (markdown and code)."""
    cells = nbformat.read(path, as_version=4).cells
    return [int(n) for cell in cells for n in cite.findall(cell.source)]


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_table_numbers_the_mistakes_in_reading_order(language: str) -> None:
    readme, folder, cite = LANGUAGES[language]
    rows = table(readme)
    assert sorted(rows) == list(range(1, len(rows) + 1)) and len(rows) == 15, sorted(rows)
    first_seen: list[int] = []
    for path in sorted(folder.glob("*.ipynb")):
        for number in citations(path, cite):
            assert number in rows, f"{path.name} cites mistake {number}, which the table lacks"
            if number not in first_seen:
                first_seen.append(number)
    assert first_seen == sorted(rows), f"the notebooks show the mistakes in the order {first_seen}"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("number", range(1, 16))
def test_each_row_points_at_a_section_that_shows_the_mistake(language: str, number: int) -> None:
    readme, folder, cite = LANGUAGES[language]
    notebook, heading = table(readme)[number]
    path = folder / notebook
    assert path.is_file(), f"mistake {number}: no notebook {notebook}"
    texts = [text for title, text in sections(path) if title == heading]
    assert texts, f"mistake {number}: {notebook} has no heading {heading!r}"
    assert number in [int(n) for n in cite.findall(texts[0])], (
        f"mistake {number}: the section {heading!r} of {notebook} does not show it"
    )


def test_the_chinese_table_is_a_twin_of_the_english_one() -> None:
    english, chinese = table(NOTEBOOKS / "README.md"), table(NOTEBOOKS / "zh" / "README.md")
    assert {n: nb for n, (nb, _) in chinese.items()} == {n: nb for n, (nb, _) in english.items()}


def test_docs_and_tests_cite_only_mistakes_in_the_table() -> None:
    rows = table(NOTEBOOKS / "README.md")
    files = [ROOT / name for name in ("README.md", "RELIABILITY.md", "BENCHMARKS.md")]
    files += sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "python").rglob("*.py"))
    for path in files:
        for number in CITE.findall(path.read_text(encoding="utf-8")):
            assert int(number) in rows, f"{path.relative_to(ROOT)} cites mistake {number}"


LINK = re.compile(r"\]\(([^)\s]+)\)")


def slugs(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings, as GitHub and JupyterLab make them."""
    text = path.read_text(encoding="utf-8")
    return {
        re.sub(r"[^\w\- ]", "", match.group(2).strip().lower()).replace(" ", "-")
        for match in map(HEADING.match, text.splitlines())
        if match
    }


def test_links_in_the_docs_and_notebooks_point_inside_the_project() -> None:
    root = NOTEBOOKS.parent
    pages = [root / "README.md", root / "README.zh-CN.md", NOTEBOOKS / "README.md"]
    pages += [NOTEBOOKS / "zh" / "README.md"]
    sources = [(page, page.read_text(encoding="utf-8")) for page in pages]
    for path in sorted(NOTEBOOKS.glob("*.ipynb")) + sorted(NOTEBOOKS.glob("zh/*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        sources.append((path, "\n".join(c.source for c in cells if c.cell_type == "markdown")))
    checked = 0
    for page, text in sources:
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # a URL, not a file of the project
            file, _, anchor = target.partition("#")
            linked = (page.parent / file).resolve() if file else page
            assert linked.is_file() and root in linked.parents, f"{page.name}: {target}"
            if anchor:
                assert anchor in slugs(linked), f"{page.name}: no heading for #{anchor}"
            checked += 1
    assert checked >= 10
