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
  on the process-wide :data:`nn_tracing.work.WORKER` (a ``short`` lane for jobs estimated
  under a few seconds, a ``long`` lane for the rest, each one job at a time), shows a
  progress bar while it runs — and while it waits, its place in the queue and when it should
  start — and its result is shared by every session.

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
from ..work import WORKER, Job, JobSnapshot, result_key
from . import state
from .text import fmt_duration

__all__ = ["AUTO_SECONDS", "computed", "queue_text", "recall", "remember", "run_analysis"]

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
    short: bool = False,
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
        returns ``None`` until the user clicks it. ``None``: start at once. It also picks the
        worker's lane (under :data:`nn_tracing.work.SHORT_SECONDS`: the short lane).
    short
        Run in the short lane whatever the estimate (work known to be quick, e.g. a neuron's
        profile): it never waits behind a long analysis.

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
    job = WORKER.submit(key, label, fn, estimate=estimate, lane="short" if short else None)
    _wait(job, label)
    result = job.result()
    WORKER.store.note(what, trace_key, params)  # what the findings read (ui.findings)
    return result  # type: ignore[no-any-return]


def _wait(job: Job, label: str) -> None:
    """Poll ``job`` until it ends, with a progress bar (its place in the queue while it
    waits); then, if it had to wait, say so under it."""
    bar = st.progress(0.0, text=label)
    first: JobSnapshot | None = None
    queued = 0.0
    asked = time.perf_counter()
    try:
        while not job.done:
            now = job.snapshot()
            if now.elapsed is None:
                # behind another job, not merely about to be picked up by an idle lane
                if now.ahead is not None or (now.position or 1) > 1:
                    first, queued = first or now, time.perf_counter() - asked
                bar.progress(0.0, text=f"{label}: {queue_text(now)}")
            else:
                text = f"{label}: {now.message} ({fmt_duration(now.elapsed)})"
                bar.progress(now.fraction, text=text)
            time.sleep(POLL_SECONDS)
    finally:
        bar.empty()
    if first is not None:
        st.caption(
            f"{label} waited about {fmt_duration(queued)} in the queue: when asked, it was "
            f"{queue_text(first)}."
        )


def queue_text(snapshot: JobSnapshot) -> str:
    """Where a queued job stands, e.g. "2nd in line for long analyses, behind Testing the
    clusters…; starts in about 1:20"."""
    if snapshot.position is None:
        return "starting"
    ordinal = {1: "1st", 2: "2nd", 3: "3rd"}.get(snapshot.position, f"{snapshot.position}th")
    behind = f", behind {snapshot.ahead}" if snapshot.ahead else ""
    when = (
        f"starts in about {fmt_duration(snapshot.starts_in)}"
        if snapshot.starts_in is not None
        else "its start time is unknown (a job ahead has no estimate)"
    )
    return f"{ordinal} in line for {snapshot.lane} analyses on this server{behind}; {when}"


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
