"""The language of what the labs print: the ``udplab`` command's (``udplab._i18n``: the
locale, or ``UDPLAB_LANG``), unless a caller asks for one (a Chinese notebook asks for ``zh``).
The texts are in the command's catalog, marked with ``_()`` like the command's own."""

from __future__ import annotations

import contextlib
import contextvars
import gettext
from collections.abc import Iterator

from .. import _i18n

LANGUAGES = ("en", "zh")
_asked: contextvars.ContextVar[str | None] = contextvars.ContextVar("udplab_labs_language",
                                                                    default=None)


_catalogs: dict[str, gettext.NullTranslations] = {}


def _catalog(language: str) -> gettext.NullTranslations:
    if language not in _catalogs:
        _catalogs[language] = gettext.translation(_i18n.DOMAIN, _i18n.LOCALE_DIR,
                                                  languages=[language], fallback=True)
    return _catalogs[language]


def _(message: str) -> str:
    """``message`` in the language in use."""
    asked = _asked.get()
    return _i18n._(message) if asked is None else _catalog(asked).gettext(message)


def language() -> str:
    """``en`` or ``zh``: the language in use."""
    return _asked.get() or _i18n.language()


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    return language


@contextlib.contextmanager
def speaking(language: str | None) -> Iterator[None]:
    """Use ``language`` (``en``, ``zh``, or None for the one in use) within the block."""
    if language is None:
        yield
        return
    token = _asked.set(check_language(language))
    try:
        yield
    finally:
        _asked.reset(token)
