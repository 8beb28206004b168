"""Text the views build: untrusted strings made literal for Markdown, durations, changes.

Strings that come from a trace (its meta, layer and class names, file names) are data, not
markup: :func:`md_escape` makes them literal before they enter a Markdown string. The app's
text helpers re-export both functions; they live here so that the views, which build the
pages' captions without Streamlit, write them the same way.
"""

from __future__ import annotations

import math
import re

__all__ = ["change_words", "difference_words", "fmt_duration", "md_escape"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


def md_escape(text: object, max_length: int = 200) -> str:
    """``text`` as a literal in Markdown: special characters escaped, newlines removed.

    Parameters
    ----------
    text
        Any object; its ``str`` is escaped.
    max_length
        At most this many characters of the flattened text are kept (the last one an ``…``).

    >>> md_escape("**bold** <b>x</b>")
    '\\\\*\\\\*bold\\\\*\\\\* \\\\<b\\\\>x\\\\</b\\\\>'
    """
    flat = " ".join(str(text).split())
    if len(flat) > max_length:
        flat = flat[: max_length - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", flat)


def fmt_duration(seconds: float | None) -> str:
    """``"0.8 s"``, ``"42 s"``, ``"3:25"``, ``"1:02:03"``; ``"–"`` when unknown. Under a
    minute a duration reads in seconds (a clock's ``"0:00"`` would hide a 0.4 s training).

    >>> fmt_duration(0.43), fmt_duration(41.6), fmt_duration(3723.4)
    ('0.4 s', '42 s', '1:02:03')
    """
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f} s"
    if seconds < 59.5:
        return f"{round(seconds)} s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def change_words(amount: float, what: str, *, down: str = "lowers", up: str = "raises") -> str:
    """A signed change in words, its size without a sign: ``amount`` is how much ``what``
    went *down* (a drop), so a negative drop is a rise.

    >>> change_words(3.79, "the score")
    'lowers the score by 3.79'
    >>> change_words(-1.39, "the score")
    'raises the score by 1.39'
    """
    if not math.isfinite(amount):
        return f"changes {what} by an undefined amount"
    if amount == 0:
        return f"leaves {what} unchanged"
    return f"{down if amount > 0 else up} {what} by {abs(amount):.3g}"


def difference_words(largest: float, these: str, those: str) -> str:
    """How far ``these`` are from ``those`` at most, in words: "equal … exactly" when the
    largest difference is 0 (never "by at most 0").

    >>> difference_words(0.0, "the activations", "the recorded ones")
    'the activations equal the recorded ones exactly'
    >>> difference_words(2.4e-07, "the outputs", "the ablated network's")
    "the outputs differ from the ablated network's by at most 2.4e-07"
    """
    if largest == 0:
        return f"{these} equal {those} exactly"
    return f"{these} differ from {those} by at most {largest:.2g}"
