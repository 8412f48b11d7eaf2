"""The notebooks' exercises: a check says "not done yet" until the learner's answer is written.

Each exercise has a cell where the learner writes a function, which raises
``NotImplementedError`` until they do, and a check cell below it whose code runs inside
``with checking(that_function, "en"):``. While the function still raises
``NotImplementedError``, the check prints one line saying the exercise is not done yet,
instead of a traceback and instead of anything that could pass for an answer; any other error,
and a failed ``assert``, shows as usual. The answers themselves are not in the notebooks nor
in this package: they are in ``teacher/notebooks/`` of udplab's source, which a teacher can
withhold (``teacher/README.md``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Callable

from .labs._text import _, speaking

__all__ = ["checking"]


@contextlib.contextmanager
def checking(answer: Callable[..., Any], language: str | None = None) -> Iterator[None]:
    """Run a check cell's code; if the learner's ``answer`` is not written yet (something in
    the block raises ``NotImplementedError``), say so in ``language`` (``en`` or ``zh``; by
    default the ``udplab`` command's) and end the cell quietly."""
    try:
        yield
    except NotImplementedError:
        name = getattr(answer, "__name__", repr(answer))
        with speaking(language):
            print(_("Not done yet: {name}() raises NotImplementedError. Write it in the cell "
                    "above, run that cell, then run this check again.").format(name=name))
