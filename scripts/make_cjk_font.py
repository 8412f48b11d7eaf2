"""Build udplab's Chinese plot font: a subset of Noto Sans CJK SC (SIL Open Font License 1.1).

The notebooks in notebooks/zh/ label their plots in Chinese. matplotlib ships no font with
Chinese glyphs, and many machines have none installed, so udplab ships this one. It keeps the
characters of GB 2312 (the 6,763 hanzi of everyday Simplified Chinese, with its punctuation and
symbols) plus ASCII and Latin-1, which keeps the file near 3 MB instead of 16 MB. As the licence
asks of a modified version, the subset is renamed and carries the licence beside it (OFL.txt).

    python scripts/make_cjk_font.py /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

(the file of Debian's package fonts-noto-cjk; a NotoSansCJKsc-Regular.otf works as well).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont

FAMILY = "udplab Sans SC"
OUT = Path(__file__).resolve().parent.parent / "python" / "udplab" / "fonts" / "udplab-sans-sc.otf"


def gb2312() -> set[int]:
    """Every character GB 2312 encodes (rows 0xA1-0xF7, cells 0xA1-0xFE)."""
    chars = set()
    for row in range(0xA1, 0xF8):
        for cell in range(0xA1, 0xFF):
            try:
                chars.add(ord(bytes([row, cell]).decode("gb2312")))
            except UnicodeDecodeError:
                pass
    return chars


def load(path: Path) -> TTFont:
    if path.suffix.lower() == ".ttc":
        for font in TTCollection(str(path)).fonts:
            if font["name"].getDebugName(1) == "Noto Sans CJK SC":
                return font
        raise SystemExit(f"{path}: no Noto Sans CJK SC face in this collection")
    return TTFont(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="Noto Sans CJK SC (.otf) or Noto Sans CJK (.ttc)")
    args = parser.parse_args()
    font = load(args.source)
    options = subset.Options()
    options.name_IDs = ["*"]
    options.layout_features = ["*"]
    options.hinting = False  # matplotlib renders unhinted glyphs well; a seventh smaller
    subsetter = subset.Subsetter(options)
    unicodes = gb2312() | set(range(0x20, 0x7F)) | set(range(0xA0, 0x100)) | {0x3000, 0xB5}
    subsetter.populate(unicodes=sorted(unicodes))
    subsetter.subset(font)
    names = font["name"]
    for record in names.names:
        if record.nameID in (1, 16):
            names.setName(FAMILY, record.nameID, record.platformID, record.platEncID, record.langID)
        elif record.nameID in (3, 4):
            names.setName(FAMILY, record.nameID, record.platformID, record.platEncID, record.langID)
        elif record.nameID == 6:
            names.setName(FAMILY.replace(" ", "") + "-Regular", 6, record.platformID,
                          record.platEncID, record.langID)
    if "CFF " in font:  # the PostScript name inside the CFF table, too
        cff = font["CFF "].cff
        cff.fontNames = [FAMILY.replace(" ", "") + "-Regular"]
        top = cff.topDictIndex[0]
        top.FamilyName = top.FullName = FAMILY
    OUT.parent.mkdir(parents=True, exist_ok=True)
    font.save(str(OUT))
    print(f"{OUT}: {OUT.stat().st_size / 1e6:.1f} MB, {len(unicodes)} characters")


if __name__ == "__main__":
    main()
