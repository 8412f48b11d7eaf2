"""Bring the message catalog in step with the code: ``python scripts/i18n.py``.

Extracts every text marked with ``_()``, ``ngettext()`` or ``N_()`` in ``python/udplab`` (with
Babel), adds the new ones to ``python/udplab/locale/zh/LC_MESSAGES/udplab.po`` with an empty
translation, drops the ones no longer used, and compiles the ``.mo`` the package ships. Entries
are sorted by text and carry no line numbers, so two people adding messages rarely touch the
same lines. tests/test_i18n.py fails while the files are out of step with the code. See
``python/udplab/_i18n.py`` for how to add a message.
"""

from __future__ import annotations

import datetime
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "udplab"
PO = PACKAGE / "locale" / "zh" / "LC_MESSAGES" / "udplab.po"
MO = PO.with_suffix(".mo")
# Fixed, so that running the script changes the files only when the messages change.
DATE = datetime.datetime(2026, 12, 4, tzinfo=datetime.timezone.utc)


def extracted() -> Catalog:
    """Every marked text of the package, as a template."""
    template = Catalog(domain="udplab", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            PACKAGE, comment_tags=("TRANSLATORS:",), strip_comment_tags=True):
        template.add(message, None, [(filename, lineno)], auto_comments=comments,
                     context=context)
    return template


def updated() -> Catalog:
    """The ``.po`` catalog with the template's messages: translations kept, new ones empty."""
    if PO.exists():
        with PO.open("rb") as f:
            catalog = read_po(f, locale="zh")
    else:
        catalog = Catalog(locale="zh", domain="udplab", charset="utf-8")
    catalog.update(extracted(), no_fuzzy_matching=True)
    catalog.obsolete.clear()
    catalog.project, catalog.version = "udplab", ""
    catalog.creation_date = catalog.revision_date = DATE
    catalog.language_team = catalog.last_translator = "udplab <udplab@localhost>"
    return catalog


def po_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_po(out, catalog, width=0, no_location=True, sort_output=True, ignore_obsolete=True)
    return out.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def main() -> int:
    catalog = updated()
    files = {PO: po_bytes(catalog), MO: mo_bytes(catalog)}
    stale = [path for path, data in files.items()
             if not path.exists() or path.read_bytes() != data]
    PO.parent.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_bytes(files[path])
        print(f"wrote {path.relative_to(ROOT)}")
    untranslated = [m.id for m in catalog if m.id and not all(_strings(m.string))]
    for message in untranslated:
        print(f"to translate: {message!r}")
    return 0


def _strings(string: str | tuple[str, ...]) -> tuple[str, ...]:
    return string if isinstance(string, tuple) else (string,)


if __name__ == "__main__":
    sys.exit(main())
