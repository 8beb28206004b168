"""Text helpers for the app: safe rendering of untrusted strings, durations, guarded sections.

Strings that come from a trace (its meta, layer names, file names) are data, not markup:
:func:`md_escape` makes them literal before they enter a Markdown string (it and
:func:`fmt_duration` live in :mod:`nn_tracing.views.text`, for the views too), and
:func:`guarded` turns an unexpected exception in one section of a page into an ``st.error``
message while the traceback goes to the server log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from streamlit.runtime.runtime import Runtime, RuntimeState

from ..views.text import fmt_duration, md_escape

__all__ = ["fmt_duration", "guarded", "md_escape", "server_stopping", "show_message"]

logger = logging.getLogger("nn_tracing.ui")


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
        if server_stopping():  # a script run outliving Ctrl-C: the shutdown's error, not ours
            logger.info("stopped while %s, as the server shuts down (%s)", what, exc)
            return
        logger.exception("error while %s", what)
        st.error(
            f"Something went wrong while {what}: {md_escape(type(exc).__name__)}: "
            f"{md_escape(exc, max_length=400)}. The rest of the app keeps working; the details "
            "are in the server log."
        )


def server_stopping() -> bool:
    """Whether the server is shutting down (Ctrl-C, SIGTERM): a script run still drawing then
    fails where the interpreter refuses new work (a thread pool after its shutdown), and that
    is no error of the page's."""
    if sys.is_finalizing():
        return True
    if not Runtime.exists():
        return False
    return Runtime.instance().state in (RuntimeState.STOPPING, RuntimeState.STOPPED)
