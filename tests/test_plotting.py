"""udplab.plotting: Chinese plot text renders with the font udplab ships, with no missing glyph.

matplotlib warns "Glyph ... missing from font(s)" when it draws a character no font of its list
has; pytest turns warnings into errors here, and the notebook test fails on any warning printed.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import nbformat
import pytest
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font
from udplab import plotting

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

ZH = Path(__file__).resolve().parent.parent / "notebooks" / "zh"
HAN = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def test_the_shipped_font_is_registered_once_behind_matplotlibs_own() -> None:
    families = plotting.use_chinese_font()
    assert families[:2] == ["DejaVu Sans", plotting.FAMILY]
    plotting.use_chinese_font()
    entries = [e for e in font_manager.fontManager.ttflist if e.name == plotting.FAMILY]
    assert len(entries) == 1 and Path(entries[0].fname) == plotting.FONT_FILE
    assert plotting.FONT_FILE.with_name("OFL.txt").is_file(), "the font's licence ships with it"


def test_the_font_has_every_chinese_character_of_the_notebooks_code() -> None:
    sources = [
        cell.source
        for path in sorted(ZH.glob("*.ipynb"))
        for cell in nbformat.read(path, as_version=4).cells
        if cell.cell_type == "code"
    ]
    used = set(HAN.findall("".join(sources)))
    assert len(used) > 50, "the Chinese notebooks' code should carry Chinese labels"
    charmap = FT2Font(str(plotting.FONT_FILE)).get_charmap()
    missing = sorted(ch for ch in used if ord(ch) not in charmap)
    assert not missing, f"not in {plotting.FONT_FILE.name}: {''.join(missing)}"


def test_a_chinese_plot_draws_without_missing_glyphs(tmp_path: Path) -> None:
    plotting.use_chinese_font()
    fig, ax = plt.subplots()
    try:
        ax.plot([0, 1], [0, -1], label="客户端（心跳）")
        ax.set_title("服务器端、群聊、丢包、乱序、超时 (timeout)：µs")
        ax.legend()
        fig.savefig(tmp_path / "plot.png")  # any "Glyph ... missing" warning fails the test
    finally:
        plt.close(fig)


def test_a_character_no_font_has_is_reported() -> None:
    """The guard works: without the Chinese font, the same text warns."""
    matplotlib.rcParams["font.family"] = ["DejaVu Sans"]
    fig, ax = plt.subplots()
    try:
        ax.set_title("群聊")
        with pytest.warns(UserWarning, match="missing from font"):
            fig.canvas.draw()
    finally:
        plt.close(fig)
        plotting.use_chinese_font()
