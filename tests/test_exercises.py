"""``udplab.exercises.checking``: a notebook's check says "not done yet" while the learner's
answer still raises the template's ``NotImplementedError``, and nothing else changes."""

from __future__ import annotations

import pytest
from udplab.exercises import checking


def upper_once(sock: object) -> None:
    raise NotImplementedError("upper_once() is yours to write")


def test_an_answer_not_written_yet_is_one_line_not_a_traceback(
        capsys: pytest.CaptureFixture[str]) -> None:
    with checking(upper_once, "en"):
        upper_once(None)
        print("correct")  # never reached
    assert capsys.readouterr().out == (
        "Not done yet: upper_once() raises NotImplementedError. Write it in the cell above, run "
        "that cell, then run this check again.\n")
    with checking(upper_once, "zh"):
        upper_once(None)
    assert capsys.readouterr().out.startswith("还没有完成：upper_once() 抛出了 NotImplementedError")


def test_a_wrong_answer_still_fails_as_it_should(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(AssertionError, match="expected 5"), checking(upper_once, "en"):
        raise AssertionError("expected 5")
    with pytest.raises(ZeroDivisionError), checking(upper_once, "en"):
        _ = 1 / 0
    with checking(upper_once, "en"):
        print("correct: all good")
    assert capsys.readouterr().out == "correct: all good\n"
