"""What the ``udplab`` command and ``udplab demo`` print, in the learner's language.

The source texts are English; ``locale/zh/LC_MESSAGES/udplab.po`` holds their Chinese and
``udplab.mo`` beside it is that file compiled, shipped in the package and read by the standard
library's :mod:`gettext`. The language follows ``UDPLAB_LANG`` (``zh``, ``en``) if set, else
the locale as gettext reads it (``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``): any
``zh...`` locale gets Chinese, everything else English. Log lines of the Rust core stay English
(tests and the notes' log format read them); only what the Python side prints is translated.

Adding a message (a new subcommand's help, a prompt, an error):

1. write it in English inside ``_()`` at the place it is printed, with named ``{fields}``
   filled by ``.format()`` after the translation (``_("got {n} lines").format(n=n)``), never
   an f-string (the catalog could not find it); a text built at import time is marked with
   ``N_()`` and translated with ``_()`` where it is shown;
2. run ``python scripts/i18n.py``: it extracts every marked text of ``python/udplab`` into the
   ``.po`` file (new entries have an empty translation) and compiles the ``.mo``;
3. fill in the Chinese (``msgstr``) in the ``.po`` file and run the script again.

``tests/test_i18n.py`` fails while a marked text has no translation, a translation lost a
``{field}``, or the ``.mo`` is not the ``.po`` compiled. Use the learners' words: 数据报,
套接字, 心跳, 群聊, 客户端, 服务器.
"""

from __future__ import annotations

import argparse
import contextlib
import gettext
import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

__all__ = ["N_", "_", "argparse_translated", "columns", "language", "ngettext", "wrap"]

DOMAIN = "udplab"
LOCALE_DIR = Path(__file__).with_name("locale")

# The variables that choose the language, in the order gettext reads them.
_VARIABLES = ("UDPLAB_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


_LOADED: dict[tuple[str, ...], gettext.NullTranslations] = {}


def _translations() -> gettext.NullTranslations:
    """The catalog for the environment as it is now (looked up once per setting)."""
    variables = tuple(os.environ.get(name, "") for name in _VARIABLES)
    if variables not in _LOADED:
        chosen = variables[0]
        _LOADED[variables] = gettext.translation(
            DOMAIN, LOCALE_DIR, languages=[chosen] if chosen else None, fallback=True)
    return _LOADED[variables]


def _(message: str) -> str:
    """``message`` in the learner's language."""
    return _translations().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """``singular`` or ``plural`` as ``n`` asks, in the learner's language."""
    return _translations().ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for the catalog without translating it (yet): for texts built at import
    time, translated with ``_()`` where they are shown."""
    return message


def language() -> str:
    """``zh`` or ``en``: the language ``_()`` speaks now."""
    return "zh" if isinstance(_translations(), gettext.GNUTranslations) else "en"


# argparse's own texts (headings, its error messages) go through gettext too: the ones a learner
# meets, so the catalog translates them. Python 3.9 calls the options heading "optional arguments".
_ARGPARSE = [
    N_("usage: "), N_("positional arguments"), N_("options"), N_("optional arguments"),
    N_("show this help message and exit"), N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"), N_("argument %(argument_name)s: %(message)s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"), N_("expected one argument"),
    N_("invalid %(type)s value: %(value)r"), N_("ambiguous option: %(option)s could match "
                                                "%(matches)s"),
]


@contextlib.contextmanager
def argparse_translated() -> Iterator[None]:
    """Within the block, argparse speaks the learner's language (its module-level ``_`` and
    ``ngettext`` are the gettext hooks it translates through); restored after."""
    saved = vars(argparse).get("_"), vars(argparse).get("ngettext")
    if saved[0] is None or saved[1] is None:  # an argparse without the hooks: stay English
        yield
        return
    argparse._ = _  # type: ignore[attr-defined]
    argparse.ngettext = ngettext  # type: ignore[attr-defined]
    try:
        yield
    finally:
        argparse._, argparse.ngettext = saved  # type: ignore[attr-defined]


def columns(text: str) -> int:
    """How many terminal columns ``text`` takes: two for a wide (Chinese) character."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


_WIDE = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"  # CJK characters and full-width forms
_OPENING, _CLOSING = "（《「『", "，。；：、）！？》」』…"
# A word or one wide character, with the opening punctuation before it and the closing after.
_TOKEN = re.compile(rf"\s+|[{_OPENING}]*(?:[^\s{_WIDE}]+|[{_WIDE}])[{_CLOSING}]*")


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` terminal columns: broken at spaces, and between
    two Chinese characters (each two columns wide), never before closing punctuation nor after
    opening punctuation."""
    lines: list[str] = []
    line, used = "", 0
    for token in _TOKEN.findall(text):
        if token.isspace():
            if line:
                line, used = line + " ", used + 1
            continue
        size = columns(token)
        if line.strip() and used + size > width:
            lines.append(line.rstrip())
            line, used = "", 0
        line, used = line + token, used + size
    if line.strip():
        lines.append(line.rstrip())
    return lines
