"""Text helpers for the app: safe rendering of untrusted strings, durations, guarded sections.

Strings that come from a trace (its meta, layer names, file names) are data, not markup:
:func:`md_escape` makes them literal before they enter a Markdown string, and
:func:`guarded` turns an unexpected exception in one section of a page into an ``st.error``
message while the traceback goes to the server log.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

__all__ = ["fmt_duration", "guarded", "md_escape", "show_message"]

logger = logging.getLogger("nn_tracing.ui")

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


def md_escape(text: object, max_length: int = 200) -> str:
    """``text`` as a literal in Markdown: special characters escaped, newlines removed.

    >>> md_escape("**bold** <b>x</b>")
    '\\\\*\\\\*bold\\\\*\\\\* \\\\<b\\\\>x\\\\</b\\\\>'
    """
    flat = " ".join(str(text).split())
    if len(flat) > max_length:
        flat = flat[: max_length - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", flat)


def fmt_duration(seconds: float | None) -> str:
    """``"0:07"``, ``"3:25"``, ``"1:02:03"``; ``"–"`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    total = max(round(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def show_message(message: tuple[str, str] | None) -> None:
    """Show a ``(kind, text)`` message (kind: error, warning, success, info) as plain text."""
    if not message:
        return
    kind, text = message
    show = {"error": st.error, "warning": st.warning, "success": st.success}.get(kind, st.info)
    show(md_escape(text, max_length=600))


@contextmanager
def guarded(what: str) -> Iterator[None]:
    """Run a section of a page; an unexpected error becomes an ``st.error`` that names it.

    The traceback goes to the server log only. Streamlit's own control flow (``st.rerun``,
    ``st.switch_page``) derives from ``BaseException`` and passes through.
    """
    try:
        yield
    except Exception as exc:
        logger.exception("error while %s", what)
        st.error(
            f"Something went wrong while {what}: {md_escape(type(exc).__name__)}: "
            f"{md_escape(exc, max_length=400)}. The rest of the app keeps working; the details "
            "are in the server log."
        )
