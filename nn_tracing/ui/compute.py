"""The one way a page runs slow work: :func:`run_analysis`, through the library's worker.

A page computes things in one of two ways, and THE RULE says which:

* **Plain** ``st.cache_data`` (keyed by the trace's digest, the trace itself passed as an
  unhashed ``_trace`` argument): for work that is **fast and pure** — well under half a second
  on the largest trace the app is meant for, with no progress worth showing (reading a frame,
  one neuron's incoming weights, one forward pass). The cached function must not draw
  anything and must not call :func:`run_analysis`.
* **Through the worker** with :func:`run_analysis`: for work that is **slow, or has
  progress to show** — anything that can take about half a second or more on a large trace
  (Captum attribution over layers, classes or epochs; ablation curves; pruning; tests against
  chance, shuffled labels or shuffled time; projections; HMM fits; rebuilding and running a
  model on a grid), and anything whose library function takes a ``progress`` callback. It runs
  on the process-wide :data:`nn_tracing.work.WORKER` (one analysis at a time), shows a
  progress bar while it runs, and its result is shared by every session.

Why not ``st.cache_data`` with a progress bar inside? The cache replays a function's elements
on every hit and cannot draw a bar that a worker thread updates; a computation cached that way
also dies with the rerun that started it. Here a job outlives its rerun and the bar is drawn by
the script, which waits (polling the job) until the result is there — so a result always shows
within the run that asked for it, in a browser and in AppTest alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from ..progress import Progress
from ..work import WORKER, result_key
from . import state
from .text import fmt_duration

__all__ = ["AUTO_SECONDS", "computed", "recall", "remember", "run_analysis"]

#: Work estimated to take longer than this waits for a click on a button with the estimate.
AUTO_SECONDS = 15.0  # the demo trace's test against chance (≈11 s) runs without a click
#: How often the page redraws the progress bar while it waits (seconds).
POLL_SECONDS = 0.25

T = TypeVar("T")


def run_analysis(
    what: str,
    trace_key: str,
    params: Any,
    fn: Callable[[Progress], T],
    *,
    label: str,
    estimate: float | None = None,
    button: str | None = None,
    button_key: str | None = None,
) -> T | None:
    """The result of ``fn(progress)`` for ``(what, trace_key, params)``, computed once on the
    analysis worker with a progress bar on the page, then shared.

    Parameters
    ----------
    what
        The kind of analysis (a short name, part of the result's key).
    trace_key
        The active trace's key (:attr:`nn_tracing.ui.traces.ActiveTrace.key`: its digest, or
        ``live:<job>:<version>``); several joined with ``,`` when ``fn`` reads several traces.
    params
        Everything else the result depends on (JSON-like: dicts, lists, numbers, strings).
    fn
        The computation: pure library code that reports ``progress(fraction, message)``. It
        runs in another thread: it must not call Streamlit, nor modify what it reads, nor
        return ``None``.
    label
        What the progress bar says is being done.
    estimate
        Expected seconds. Above :data:`AUTO_SECONDS` the page shows the estimate and a button
        (``button`` its label, ``button_key`` its widget key) instead of starting, and this
        returns ``None`` until the user clicks it. ``None``: start at once.

    Returns
    -------
    The stored result (the same object for every caller: never modify it), or ``None`` while
    the computation waits for a click.

    Raises
    ------
    Exception
        Whatever ``fn`` raised — on the run that computed it and on every later call (errors
        are stored like results); the caller says what happened, in place.
    """
    key = result_key(what, trace_key, params)
    found = WORKER.lookup(key)
    if found is not None:
        WORKER.store.note(what, trace_key, params)  # what the findings read (ui.findings)
        return found  # type: ignore[no-any-return]
    if (
        estimate is not None
        and estimate > AUTO_SECONDS
        and not _asked(key, label, estimate, button, button_key)
    ):
        return None
    job = WORKER.submit(key, label, fn)
    bar = st.progress(0.0, text=label)
    try:
        while not job.done:
            now = job.snapshot()
            elapsed = f" ({fmt_duration(now.elapsed)})" if now.elapsed is not None else ""
            bar.progress(now.fraction, text=f"{label}: {now.message}{elapsed}")
            time.sleep(POLL_SECONDS)
    finally:
        bar.empty()
    result = job.result()
    WORKER.store.note(what, trace_key, params)
    return result  # type: ignore[no-any-return]


def _asked(
    key: str, label: str, estimate: float, button: str | None, button_key: str | None
) -> bool:
    """Show the estimate and a button; whether the user asked for this very computation."""
    st.info(
        f"{label} will take about {fmt_duration(estimate)} on this server "
        f"(an estimate on two cores). It runs when you ask for it."
    )
    widget = button_key or f"{state.RUN_ANALYSIS}:{label}"
    asked = f"{widget}:asked"
    st.button(
        button or f"Compute ({fmt_duration(estimate)})",
        key=widget,
        type="primary",
        on_click=state.put,
        args=(asked, key),
    )
    return bool(state.get(asked) == key)  # asked for this computation, not an earlier one


def computed(what: str, trace_key: str, params: Any) -> bool:
    """Whether :func:`run_analysis` has a result (or an error) for these, without running
    anything."""
    return result_key(what, trace_key, params) in WORKER.store


def recall(what: str, trace_key: str, params: Any) -> Any:
    """What :func:`remember` (or :func:`run_analysis`) kept for these, or ``None``; a stored
    error is raised again."""
    return WORKER.lookup(result_key(what, trace_key, params))


def remember(what: str, trace_key: str, params: Any, value: Any) -> None:
    """Keep ``value`` for these in the worker's shared store (e.g. a note that an analysis
    cannot run on this trace, shared by every session)."""
    WORKER.store.put(result_key(what, trace_key, params), value)
