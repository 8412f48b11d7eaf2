"""Keep Rust log records in step with Python's ``logging`` configuration.

udplab's Rust core logs through pyo3-log, which caches each logger's level on first use so that
a record below the level costs no trip into Python. Python's own ``logging`` invalidates its
level caches by calling ``Manager._clear_cache()`` whenever a level changes (``basicConfig``,
``setLevel``, ``dictConfig``, ``disable``); hooking that call drops the Rust cache at the same
moments, so configuring logging after ``import udplab`` works as a learner expects.
"""

from __future__ import annotations

import logging

from . import _core


def refresh_logging() -> None:
    """Make Rust log records follow the current ``logging`` levels.

    Called automatically whenever ``logging`` levels change; exposed for the rare setup that
    changes levels behind ``logging``'s back.
    """
    _core._reset_log_cache()


def _install_hook() -> None:
    manager = logging.Logger.manager
    original = getattr(manager, "_clear_cache", None)
    if original is None or getattr(original, "_udplab_hook", False):
        return

    def _clear_cache() -> None:
        original()
        refresh_logging()

    _clear_cache._udplab_hook = True  # type: ignore[attr-defined]
    manager._clear_cache = _clear_cache  # type: ignore[attr-defined]


_install_hook()
