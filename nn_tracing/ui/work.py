"""Analyses that take a while: one worker thread per server, a shared store of results.

The Clusters and Dynamics pages fit models that take seconds to minutes (t-SNE, UMAP, HMMs,
permutation tests). They run here:

* **One worker for the whole server** (:data:`_EXECUTOR`): analyses run one at a time. On two
  cores parallel fits only slow each other down, and numba-backed code (UMAP) must not run
  twice at once (see :mod:`nn_tracing.analysis.numba_guard`).
* **A job outlives its session's rerun**: the page polls the job and draws its progress bar; a
  rerun, a page switch or a closed tab does not cancel it, and its result is stored.
* **Results are shared** by every session of the server, keyed by (what, the trace's digest,
  the parameters) — two colleagues who open the same view compute it once. The store is an
  LRU bounded in entries and in the bytes of the arrays it holds.
* **Long work waits for a click**: above :data:`AUTO_SECONDS` of estimated time the page shows
  the estimate and a button instead of starting.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import streamlit as st

from ..progress import Progress
from . import state
from .text import fmt_duration

__all__ = ["AUTO_SECONDS", "Progress", "compute", "keep", "key", "stored"]

#: Work estimated to take longer than this waits for a click.
AUTO_SECONDS = 15.0  # the demo trace's test against chance (≈11 s) runs without a click
_STORE_LIMIT = 1_500_000_000  # bytes of arrays kept (features of large traces are big)
_STORE_ENTRIES = 96

T = TypeVar("T")

_STORE: OrderedDict[str, Any] = OrderedDict()
_STORE_BYTES: dict[str, int] = {}
_STORE_LOCK = threading.Lock()


def _nbytes(value: Any) -> int:
    """Bytes of the arrays ``value`` holds (itself, or its attributes one level down)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(deep=False).sum())
    total = 1024
    for attribute in getattr(value, "__dict__", {}).values():
        if isinstance(attribute, np.ndarray):
            total += int(attribute.nbytes)
        elif isinstance(attribute, pd.DataFrame):
            total += int(attribute.memory_usage(deep=False).sum())
    return total


def key(what: str, trace_key: str, params: Any) -> str:
    """The store key of ``what`` computed on the trace ``trace_key`` with ``params``."""
    blob = json.dumps(params, sort_keys=True, default=str)
    return f"{what}:{trace_key}:{hashlib.sha1(blob.encode()).hexdigest()[:20]}"


def stored(name: str) -> Any:
    """The stored result under key ``name``, or ``None``."""
    with _STORE_LOCK:
        if name in _STORE:
            _STORE.move_to_end(name)
            return _STORE[name]
    return None


def keep(name: str, value: Any) -> None:
    """Store ``value`` under key ``name`` (the least recently used go first when full)."""
    with _STORE_LOCK:
        _STORE[name] = value
        _STORE_BYTES[name] = _nbytes(value)
        while len(_STORE) > _STORE_ENTRIES or (
            sum(_STORE_BYTES.values()) > _STORE_LIMIT and len(_STORE) > 1
        ):
            old, _ = _STORE.popitem(last=False)
            _STORE_BYTES.pop(old, None)


@dataclass
class _Job:
    """A computation on the analysis worker: its future and how far it is."""

    label: str
    fraction: float = 0.0
    text: str = "queued behind another analysis on this server"
    started: float | None = None
    future: Future[Any] | None = None

    def update(self, fraction: float, text: str) -> None:
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        self.text = text


_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nn_tracing-analysis")
_JOBS: dict[str, _Job] = {}


def _submit(name: str, label: str, run: Callable[[Progress], Any]) -> _Job:
    """The job computing ``name``: the one in flight, or a new one on the analysis worker."""
    job = _Job(label)

    def work() -> Any:
        job.started = time.perf_counter()
        job.update(0.0, "starting")
        try:
            result = run(job.update)
            keep(name, result)
            return result
        finally:
            with _STORE_LOCK:
                _JOBS.pop(name, None)

    with _STORE_LOCK:
        running = _JOBS.get(name)
        if running is not None:
            return running
        if name in _STORE:  # finished between the caller's look-up and now
            job.future = Future()
            job.future.set_result(_STORE[name])
            return job
        _JOBS[name] = job
        job.future = _EXECUTOR.submit(work)
    return job


def compute(
    name: str,
    run: Callable[[Progress], T],
    *,
    label: str,
    estimate: float = 0.0,
    button: str | None = None,
    button_key: str | None = None,
) -> T | None:
    """The stored result under ``name``, computing ``run(progress)`` on the analysis worker
    (with a progress bar on the page) when missing.

    Work estimated above :data:`AUTO_SECONDS` waits for a click on a button (``button_key``)
    that shows the estimate; ``None`` until then. Errors raised by ``run`` pass to the caller,
    which says what happened in place.
    """
    found = stored(name)
    if found is not None:
        return found  # type: ignore[no-any-return]
    if estimate > AUTO_SECONDS:
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
            args=(asked, name),
        )
        if state.get(asked) != name:  # asked for this computation, not an earlier one
            return None
    job = _submit(name, label, run)
    bar = st.progress(0.0, text=label)
    try:
        assert job.future is not None
        while not job.future.done():
            elapsed = f" ({fmt_duration(time.perf_counter() - job.started)})" if job.started else ""
            bar.progress(job.fraction, text=f"{label}: {job.text}{elapsed}")
            time.sleep(0.25)
    finally:
        bar.empty()
    return job.future.result()  # type: ignore[no-any-return]
