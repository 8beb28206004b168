"""Wording of numbers in the views' sentences (nn_tracing/views/text.py): a change says its
direction in a verb and its size without a sign; a difference of 0 is "exactly"."""

from __future__ import annotations

import math

from nn_tracing.views.text import change_words, difference_words, fmt_duration


def test_a_drop_lowers_and_a_negative_drop_raises() -> None:
    assert change_words(3.79, "the score") == "lowers the score by 3.79"
    assert change_words(-1.39, "the score") == "raises the score by 1.39"
    assert change_words(0.0, "the score") == "leaves the score unchanged"
    assert change_words(math.nan, "the score") == "changes the score by an undefined amount"
    assert change_words(-0.5, "accuracy", down="costs", up="adds to") == "adds to accuracy by 0.5"


def test_a_zero_difference_is_exact_and_never_at_most_zero() -> None:
    assert difference_words(0.0, "a", "b") == "a equal b exactly"
    assert difference_words(3.2e-07, "a", "b") == "a differ from b by at most 3.2e-07"
    assert "at most 0" not in difference_words(0.0, "a", "b")


def test_a_duration_under_a_minute_reads_in_seconds_not_as_a_clock() -> None:
    assert fmt_duration(0.43) == "0.4 s"  # a demo's training is not "0:00"
    assert fmt_duration(9.94) == "9.9 s"
    assert fmt_duration(9.96) == "10 s"
    assert fmt_duration(41.6) == "42 s"
    assert fmt_duration(59.4) == "59 s"
    assert fmt_duration(59.6) == "1:00"
    assert fmt_duration(125.0) == "2:05"
    assert fmt_duration(3723.4) == "1:02:03"
    assert fmt_duration(-0.2) == "0.0 s"
    assert fmt_duration(None) == fmt_duration(math.nan) == "–"
