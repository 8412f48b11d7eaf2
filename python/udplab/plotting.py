"""Chinese text in matplotlib plots, on any machine.

The notebooks in ``notebooks/zh/`` title and label their plots in Chinese. matplotlib's own
fonts have no Chinese glyphs, and many machines have no Chinese font installed, so udplab ships
one: a subset of Noto Sans CJK SC with the 6,763 hanzi of GB 2312 (``fonts/udplab-sans-sc.otf``,
SIL Open Font License 1.1, see ``fonts/OFL.txt``; ``scripts/make_cjk_font.py`` builds it).

:func:`use_chinese_font` registers it and puts it behind matplotlib's default font, so Latin text
looks as usual and Chinese glyphs come from the shipped font. A Chinese font installed on the
machine comes after it, for the rare character that GB 2312 lacks.

matplotlib is needed only here: ``pip install "udplab[notebook]"`` installs it.
"""

from __future__ import annotations

from pathlib import Path

#: The family name of the shipped font.
FAMILY = "udplab Sans SC"
#: The shipped font file.
FONT_FILE = Path(__file__).resolve().parent / "fonts" / "udplab-sans-sc.otf"
#: Chinese fonts often installed by an operating system, used for characters past GB 2312.
SYSTEM_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "SimHei",
)


def use_chinese_font() -> list[str]:
    """Let matplotlib draw Chinese text; returns the ``font.family`` list it now uses.

    Safe to call again: the font is registered once.
    """
    import matplotlib
    from matplotlib import font_manager

    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    if FAMILY not in installed:
        font_manager.fontManager.addfont(str(FONT_FILE))
    default = "DejaVu Sans"  # matplotlib's own font, which it always has
    system = [name for name in SYSTEM_FAMILIES if name in installed]
    families = [default, FAMILY, *system]
    # A list of families (not "sans-serif"): matplotlib takes each glyph from the first family
    # of the list that has it.
    matplotlib.rcParams["font.family"] = families
    return families
