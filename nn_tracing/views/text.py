"""Text the views build: untrusted strings made literal for Markdown, durations.

Strings that come from a trace (its meta, layer and class names, file names) are data, not
markup: :func:`md_escape` makes them literal before they enter a Markdown string. The app's
text helpers re-export both functions; they live here so that the views, which build the
pages' captions without Streamlit, write them the same way.
"""

from __future__ import annotations

import math
import re

__all__ = ["fmt_duration", "md_escape"]

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
    """``"0:07"``, ``"3:25"``, ``"1:02:03"``; ``"–"`` when unknown.

    >>> fmt_duration(3723.4)
    '1:02:03'
    """
    if seconds is None or not math.isfinite(seconds):
        return "–"
    total = max(round(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
