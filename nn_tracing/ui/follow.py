"""Following a run directory that a process is writing: pages that update as epochs arrive.

Any process may be writing a run directory of the runs folder (the sidebar's runs, a script
with ``train(..., out=...)`` or ``RunWriter``): while its writer lives
(:attr:`~nn_tracing.ui.traces.ActiveTrace.following`), the Overview and Neurons pages draw
their body through :func:`follow` — inside a fragment that reruns every
:data:`POLL_SECONDS`. Each rerun stats the manifest (the trace is loaded again only when its
stamp changed: a new epoch, see :mod:`nn_tracing.ui.traces`) and redraws the page's body
from cached frames, so a new epoch shows within about ``POLL_SECONDS`` plus one load, without
a full-page rerun (the sidebar and the rest of the app are left alone). When the run ends or
its writer goes, one full rerun redraws the app without the fragment: a finished run never
polls. A trace that does not grow is drawn directly, as before.

Other pages (their analyses are slow) do not follow: :func:`live_note` says that the run is
still being written, which epochs the page shows, and offers a button that loads the newer
ones.

A leaf module: pages import it; it imports no page.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from ..timeaxis import time_key
from . import state
from .text import md_escape
from .traces import ActiveTrace, resolve_active

__all__ = ["POLL_SECONDS", "follow", "live_note"]

#: Seconds between two polls of a followed run's manifest (a new epoch shows within about
#: this, plus its load).
POLL_SECONDS = 1.0


def follow(active: ActiveTrace, body: Callable[[ActiveTrace], None]) -> None:
    """Draw ``body(active)``; for a run directory that is still being written, inside a
    fragment that polls its manifest and redraws ``body`` with each new epoch."""
    if not active.following:
        body(active)
        return
    st.fragment(run_every=POLL_SECONDS)(_followed)(active.ref, body)


def _followed(ref: str, body: Callable[[ActiveTrace], None]) -> None:
    """The body of a followed run, with its live mark; one full rerun once it stops growing
    (or another trace became active), so that the app draws it without polling."""
    active, _ = resolve_active()
    if active is None or active.ref != ref or active.entry is None or not active.following:
        st.rerun()
        return
    st.caption(
        f"{md_escape(active.entry.mark())} · this page follows the run as it is written "
        f"(checked every {POLL_SECONDS:g} s)"
    )
    body(active)


def live_note(active: ActiveTrace, shows: str) -> None:
    """On a page that does not follow a growing run: say that it grows, what the page
    ``shows`` (e.g. "the analyses use the epochs recorded so far"), and — for a run
    directory — offer to load the newer epochs. Nothing for a trace that does not grow."""
    if active.source == "live":  # this session's own job: the sidebar reruns the app
        st.info(f"This run is still training: {shows}.", icon="⏳")
        return
    if not active.following or active.entry is None:
        return
    epochs = active.trace.epochs
    st.info(
        f"This run is still being written ({md_escape(active.entry.mark())}): {shows} — "
        f"the {len(epochs)} recorded when the page last loaded it ({time_key(epochs[0])} … "
        f"{time_key(epochs[-1])}). The Overview and Neurons pages follow it as it grows.",
        icon="⏳",
    )
    st.button(
        "Load the newer epochs",
        key=state.LIVE_REFRESH,
        help="Reload the run as it is now: the page is drawn again with every epoch recorded "
        "so far.",
    )
