"""Analyses that take a while: one worker thread per process and a shared store of results.

The app's slow analyses (projections, clusterings, HMM fits, tests against chance, Captum
attribution over epochs, ablation curves, pruning…) run here, beside the training jobs of
:mod:`nn_tracing.jobs`. Nothing here imports Streamlit: the app draws the progress bar through
one helper (``run_analysis``, in the app's ``compute`` module); a script can use the worker.

* **One worker for the whole process** (:data:`WORKER`), with two lanes: ``short`` for jobs
  estimated under :data:`SHORT_SECONDS` (a PCA, a neuron's profile) and ``long`` for the
  rest (tests against chance, t-SNE, HMM fits…, and any job without an estimate). Each lane
  runs its jobs one at a time, in the order they came, so a short job never waits behind a
  long one, and at most two analyses run at once (two cores: more would only slow each other
  down; numba-backed code (UMAP) is serialised by :mod:`nn_tracing.analysis.numba_guard`).
* **A queued job knows its place**: :meth:`Job.snapshot` gives its position in its lane
  (1: next to start) and an estimate of when it starts — the running job's remaining time
  (from its progress, or its estimate) plus the estimates of the jobs ahead.
* **A job outlives its caller**: whoever submitted it may stop waiting (a rerun, a page
  switch, a closed tab); the job runs on and its result is stored. Asking again for the same
  key while it runs joins the job in flight instead of starting another.
* **Results are shared**, keyed by :func:`result_key` ``(what, trace digest, parameters)`` —
  two users who open the same view compute it once. The :class:`ResultStore` is an LRU
  bounded in entries and in the bytes of the arrays it holds. Stored results are shared
  between callers: never modify one.
* **Errors are results**: a computation that raised an :class:`Exception` is stored as
  :class:`Failed`, and everyone who asks for it gets the same exception again — a failing
  analysis is not recomputed on every rerun.
* **Progress is a snapshot**: the computation reports ``progress(fraction, message)``; a
  reader takes :meth:`Job.snapshot` at any time without blocking the work.

>>> from nn_tracing.work import WORKER, result_key
>>> key = result_key("square", "demo", {"x": 3})
>>> WORKER.run(key, "Squaring", lambda progress: 3 * 3)
9
>>> WORKER.lookup(key)
9
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import numpy as np
import pandas as pd

from .progress import Progress

__all__ = [
    "SHORT_SECONDS",
    "WORKER",
    "AnalysisWorker",
    "Failed",
    "Job",
    "JobSnapshot",
    "ResultStore",
    "result_key",
]

T = TypeVar("T")

#: Bytes of arrays the process-wide store keeps (features of large traces are big).
STORE_BYTES = 1_500_000_000
#: Entries the process-wide store keeps.
STORE_ENTRIES = 96
#: Most (what, trace) pairs whose latest parameters the store remembers (see ``note``).
LATEST_ENTRIES = 1024
#: Jobs estimated to take less than this (seconds) run in the ``short`` lane.
SHORT_SECONDS = 5.0
#: The lanes, in the order a page lists them.
LANES = ("short", "long")


def result_key(what: str, trace_key: str, params: Any) -> str:
    """The store key of ``what`` computed on the trace ``trace_key`` with ``params``.

    Parameters
    ----------
    what
        The kind of analysis (``"projection"``, ``"attribution"``…).
    trace_key
        The trace's sha256 digest (``live:<job>:<version>`` for a run still training); several
        traces' keys joined when an analysis reads more than one.
    params
        Anything JSON can write (values it cannot are written with ``str``).
    """
    blob = json.dumps(params, sort_keys=True, default=str)
    return f"{what}:{trace_key}:{hashlib.sha1(blob.encode()).hexdigest()[:20]}"


@dataclass(frozen=True)
class Failed:
    """The stored outcome of a computation that raised ``error``."""

    error: Exception
    traceback: TracebackType | None

    def raise_again(self) -> NoReturn:
        """Raise the stored exception (with its original traceback, which does not grow)."""
        raise self.error.with_traceback(self.traceback)


def _nbytes(value: Any) -> int:
    """Bytes of the arrays (and byte strings) ``value`` holds: itself, or its attributes one
    level down; 1 KiB for anything else."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(deep=False).sum())
    if isinstance(value, bytes):
        return len(value)
    total = 1024
    for attribute in getattr(value, "__dict__", {}).values():
        if isinstance(attribute, (np.ndarray, pd.DataFrame, bytes)):
            total += _nbytes(attribute)
    return total


class ResultStore:
    """A thread-safe LRU of results, bounded in entries and in bytes of arrays.

    Parameters
    ----------
    max_entries
        Most results kept; the least recently used goes first.
    max_bytes
        Most bytes of arrays kept (see ``_nbytes``); one result larger than this is still
        kept, alone.
    """

    def __init__(self, *, max_entries: int = STORE_ENTRIES, max_bytes: int = STORE_BYTES) -> None:
        self.max_entries = int(max_entries)
        self.max_bytes = int(max_bytes)
        self._values: OrderedDict[str, Any] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._latest: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        """The value under ``key`` (a :class:`Failed` for an error), or ``None``; marks it as
        recently used."""
        with self._lock:
            if key not in self._values:
                return None
            self._values.move_to_end(key)
            return self._values[key]

    def put(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used when full."""
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            self._sizes[key] = _nbytes(value)
            while len(self._values) > self.max_entries or (
                sum(self._sizes.values()) > self.max_bytes and len(self._values) > 1
            ):
                old, _ = self._values.popitem(last=False)
                self._sizes.pop(old, None)

    def note(self, what: str, trace_key: str, params: Any) -> None:
        """Remember that ``what`` on ``trace_key`` was last asked for with ``params`` (what
        :meth:`latest` answers: the pages' findings read the analysis a visitor ran last)."""
        with self._lock:
            self._latest[(what, trace_key)] = params
            self._latest.move_to_end((what, trace_key))
            while len(self._latest) > LATEST_ENTRIES:
                self._latest.popitem(last=False)

    def latest(self, what: str, trace_key: str) -> tuple[Any, Any] | None:
        """``(params, result)`` of the ``what`` on ``trace_key`` asked for last (see
        :meth:`note`), or ``None``: never asked, dropped from the store, or an error."""
        with self._lock:
            params = self._latest.get((what, trace_key))
        if params is None:
            return None
        value = self.get(result_key(what, trace_key, params))
        return None if value is None or isinstance(value, Failed) else (params, value)

    def latest_among(self, what: str, trace_key: str) -> tuple[Any, Any] | None:
        """Like :meth:`latest`, for an analysis that may have run on several traces at once
        (its key: their keys joined by commas, e.g. a training map fitted on seeds): the one
        asked for last among those that include ``trace_key``."""
        with self._lock:
            keys = [
                key
                for (name, key) in reversed(self._latest)
                if name == what and trace_key in key.split(",")
            ]
        for key in keys:
            found = self.latest(what, key)
            if found is not None:
                return found
        return None

    def clear(self) -> None:
        """Forget every result."""
        with self._lock:
            self._values.clear()
            self._sizes.clear()
            self._latest.clear()

    @property
    def nbytes(self) -> int:
        """Bytes of arrays held now."""
        with self._lock:
            return sum(self._sizes.values())

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._values

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


@dataclass(frozen=True)
class JobSnapshot:
    """How far a job is, at one instant.

    ``elapsed`` is ``None`` while the job waits in its lane's queue; ``position`` is then its
    place in the queue (1: next to start; ``None`` once it runs) and ``starts_in`` the
    estimated seconds until it starts (``None``: unknown, a job ahead has no estimate).
    """

    label: str
    fraction: float
    message: str
    elapsed: float | None
    done: bool
    lane: str = "long"
    position: int | None = None
    starts_in: float | None = None
    ahead: str | None = None


class Job:
    """One computation on the worker: its future and how far it is.

    :meth:`update` is the :data:`~nn_tracing.progress.Progress` callback the computation
    receives. ``estimate`` is the expected seconds (``None``: unknown).
    """

    def __init__(
        self, key: str, label: str, *, estimate: float | None = None, lane: _Lane | None = None
    ) -> None:
        self.key = key
        self.label = label
        self.estimate = estimate
        self.future: Future[Any] = Future()
        self._fraction = 0.0
        self._message = "queued behind another analysis on this server"
        self._started: float | None = None
        self._lock = threading.Lock()
        self._lane = lane

    def update(self, fraction: float, message: str) -> None:
        """Report progress: ``fraction`` in [0, 1] (clipped) and what is being done."""
        with self._lock:
            self._fraction = min(max(float(fraction), 0.0), 1.0)
            self._message = str(message)

    def _start(self) -> None:
        with self._lock:
            self._started = time.perf_counter()
        self.update(0.0, "starting")

    def remaining(self) -> float | None:
        """Estimated seconds until the job ends: from its progress once it has some (elapsed
        × (1 − f) / f), else its estimate less the time it has run; ``None``: unknown."""
        with self._lock:
            started, fraction = self._started, self._fraction
        if self.future.done():
            return 0.0
        if started is None:
            return self.estimate
        elapsed = time.perf_counter() - started
        if fraction >= 0.05:
            return elapsed * (1.0 - fraction) / fraction
        if self.estimate is None:
            return None
        return max(self.estimate - elapsed, 0.0)

    def snapshot(self) -> JobSnapshot:
        """How far the job is now (never blocks the work for long)."""
        position, starts_in, ahead = (None, None, None)
        if self._lane is not None:
            position, starts_in, ahead = self._lane.place(self)
        with self._lock:
            elapsed = None if self._started is None else time.perf_counter() - self._started
            return JobSnapshot(
                self.label,
                self._fraction,
                self._message,
                elapsed,
                self.future.done(),
                self._lane.name if self._lane is not None else "long",
                position if elapsed is None else None,
                starts_in if elapsed is None else None,
                ahead if elapsed is None else None,
            )

    @property
    def done(self) -> bool:
        """Whether the job has ended (with a result or an error)."""
        return self.future.done()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job (at most ``timeout`` seconds) and return its result; its error is
        raised again. ``TimeoutError`` when it is still running."""
        value = self.future.result(timeout)
        if isinstance(value, Failed):
            value.raise_again()
        return value


class _Lane:
    """One thread that runs its jobs one at a time, in order, and knows who waits where."""

    def __init__(self, name: str, prefix: str) -> None:
        self.name = name
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{prefix}-{name}")
        self.queue: list[Job] = []
        self.running: Job | None = None
        self.lock = threading.Lock()

    def enqueue(self, job: Job) -> None:
        with self.lock:
            self.queue.append(job)

    def starting(self, job: Job) -> None:
        with self.lock:
            if job in self.queue:
                self.queue.remove(job)
            self.running = job

    def finished(self, job: Job) -> None:
        with self.lock:
            if self.running is job:
                self.running = None

    def place(self, job: Job) -> tuple[int | None, float | None, str | None]:
        """``job``'s position in the queue (1: next), the seconds until it starts (``None``:
        unknown), and the label of the job running ahead of it."""
        with self.lock:
            if job not in self.queue:
                return None, None, None
            index = self.queue.index(job)
            ahead, running = list(self.queue[:index]), self.running
        waits = [running.remaining() if running is not None else 0.0]
        waits += [other.estimate for other in ahead]
        starts_in = None if any(w is None for w in waits) else float(sum(waits))  # type: ignore[arg-type]
        return index + 1, starts_in, running.label if running is not None else None

    def jobs(self) -> list[Job]:
        with self.lock:
            return ([self.running] if self.running is not None else []) + list(self.queue)


class AnalysisWorker:
    """Two lanes of analyses (``short`` and ``long``), each one at a time, and every outcome
    kept in :attr:`store`.

    Parameters
    ----------
    store
        Where results (and errors, as :class:`Failed`) go; a new :class:`ResultStore` by
        default.
    name
        The lanes' thread name prefix (it shows in profilers and thread dumps).
    short_seconds
        Jobs estimated under this many seconds run in the ``short`` lane.
    """

    def __init__(
        self,
        store: ResultStore | None = None,
        *,
        name: str = "nn_tracing-analysis",
        short_seconds: float = SHORT_SECONDS,
    ) -> None:
        self.store = store if store is not None else ResultStore()
        self.short_seconds = float(short_seconds)
        self._lanes = {lane: _Lane(lane, name) for lane in LANES}
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def lane_of(self, estimate: float | None) -> str:
        """``short`` for a job estimated under :attr:`short_seconds`, else ``long`` (also for a
        job without an estimate)."""
        return "short" if estimate is not None and estimate < self.short_seconds else "long"

    def jobs(self, lane: str | None = None) -> list[Job]:
        """The jobs in flight (``lane``'s, or every lane's): the running one first, then the
        queue in order."""
        names = [lane] if lane is not None else list(LANES)
        return [job for name in names for job in self._lanes[name].jobs()]

    def lookup(self, key: str) -> Any:
        """The stored result under ``key``, or ``None`` when there is none; a stored error is
        raised again."""
        value = self.store.get(key)
        if isinstance(value, Failed):
            value.raise_again()
        return value

    def running(self, key: str) -> Job | None:
        """The job computing ``key`` now (queued or running), if any."""
        with self._lock:
            return self._jobs.get(key)

    def submit(
        self,
        key: str,
        label: str,
        fn: Callable[[Progress], Any],
        *,
        estimate: float | None = None,
        lane: str | None = None,
    ) -> Job:
        """The job that computes ``fn(progress)`` for ``key``: the one already in flight, one
        already done (a stored result), or a new one queued in its lane.

        ``estimate`` is the expected seconds (it picks the lane, see :meth:`lane_of`, and tells
        the jobs queued behind when they start); ``lane`` forces one (``short`` for work known
        to be quick, e.g. a neuron's profile). ``fn`` must not touch Streamlit (it runs in
        another thread) and must not modify what it reads; its result is stored under ``key``
        — an :class:`Exception` it raises too, as :class:`Failed`.
        """
        chosen = self._lanes[lane if lane is not None else self.lane_of(estimate)]
        store = self.store
        with self._lock:
            running = self._jobs.get(key)
            if running is not None:
                return running
            job = Job(key, label, estimate=estimate, lane=chosen)
            if key in store:  # computed between the caller's look-up and now
                job.future.set_result(store.get(key))
                return job
            self._jobs[key] = job
            chosen.enqueue(job)
        # the caller's context goes with the job: labels it formats use the caller's time
        # axis (nn_tracing.timeaxis), as the page that asked for it does
        chosen.executor.submit(contextvars.copy_context().run, self._run, job, store, fn)
        return job

    def run(
        self,
        key: str,
        label: str,
        fn: Callable[[Progress], T],
        *,
        estimate: float | None = None,
        lane: str | None = None,
    ) -> T:
        """:meth:`submit` and wait: the result (stored or computed), or its error raised."""
        found = self.lookup(key)
        if found is not None:
            return found  # type: ignore[no-any-return]
        job = self.submit(key, label, fn, estimate=estimate, lane=lane)
        return job.result()  # type: ignore[no-any-return]

    def _run(self, job: Job, store: ResultStore, fn: Callable[[Progress], Any]) -> None:
        lane = job._lane
        assert lane is not None
        lane.starting(job)
        job._start()
        outcome: Any
        try:
            outcome = fn(job.update)
        except Exception as exc:
            outcome = Failed(exc, exc.__traceback__)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: not a result
            with self._lock:
                self._jobs.pop(job.key, None)
            lane.finished(job)
            job.future.set_exception(exc)
            raise
        store.put(job.key, outcome)
        with self._lock:
            self._jobs.pop(job.key, None)
        lane.finished(job)
        job.future.set_result(outcome)


#: The process-wide worker and its store, shared by every session of the app.
WORKER = AnalysisWorker()
