"""Background training jobs: a thread per run, a stop event and a progress snapshot.

A :class:`TrainingJob` runs :func:`~nn_tracing.training.train` in a daemon thread, so that a
run outlives the page (or the browser tab) that started it. The thread publishes a
:class:`JobSnapshot` (epoch k of n, loss, elapsed and remaining time, the recorded epochs) and
the trace recorded so far; readers take a snapshot under a lock and never block training. When
training ends — complete, stopped by :meth:`TrainingJob.stop`, or diverged — the trace is saved
atomically to the runs folder under a name that says how it ended.

Jobs are kept in a process-wide registry by id (:func:`start_job`, :func:`get_job`), so a
Streamlit session needs to remember only the id. Nothing here imports Streamlit.
"""

from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401 (registers its exit hook before ours: see below)
import logging
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from .budget import MemoryBudget, admit, server_budget
from .config import TrainConfig
from .estimate import RunEstimate, estimate_run
from .runs import new_run_path, runs_dir, safe_stem
from .store import save_trace
from .trace import NetworkTrace
from .training import TrainingProgress, train

__all__ = [
    "MAX_RUNNING_JOBS",
    "JobLimitError",
    "JobSnapshot",
    "TrainingJob",
    "get_job",
    "jobs_of",
    "memory_in_use",
    "running_jobs",
    "start_job",
]

logger = logging.getLogger(__name__)

#: Runs that may train at once in one process (each takes CPU from the others).
MAX_RUNNING_JOBS = 4
#: Finished jobs kept in the registry (their snapshots stay readable for late readers).
MAX_FINISHED_JOBS = 64
#: Torch intra-op threads while jobs train. The MLPs trained from the app are small: one
#: thread each is far faster than several fighting over the cores (measured on a 2-core CPU
#: machine: a 32x32 MLP on moons trained ~60x faster with 1 thread than with 2 while other
#: work ran), and concurrent runs then share the cores instead of spinning.
JOB_THREADS = 1


class JobLimitError(RuntimeError):
    """Too many runs are training in this process; the message says how many."""


@dataclass(frozen=True)
class JobSnapshot:
    """What a job is doing, at one instant.

    ``state`` is ``starting``, ``running``, ``saving``, ``finished`` or ``failed``;
    ``status`` is the trace's: ``running``, then ``complete``, ``stopped`` or ``diverged``.
    ``trace_version`` counts the traces published so far (it grows with every recorded epoch).
    """

    job_id: str
    config: TrainConfig
    state: str = "starting"
    status: str = "running"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    loss: float = float("nan")
    fraction: float = 0.0
    elapsed: float = 0.0
    remaining: float | None = None
    recorded_epochs: tuple[int, ...] = ()
    trace_version: int = 0
    message: str = ""
    saved_path: Path | None = None
    error: str | None = None
    stop_requested: bool = False

    @property
    def done(self) -> bool:
        """Whether the job has ended (its trace saved, or failed)."""
        return self.state in ("finished", "failed")

    @property
    def saved_name(self) -> str | None:
        """The run name of the saved trace (its file stem)."""
        return self.saved_path.stem if self.saved_path is not None else None


class TrainingJob:
    """One training run in a background thread.

    Parameters
    ----------
    config
        The run's settings (already validated: it is a :class:`TrainConfig`).
    directory
        Where the finished trace is saved (default :func:`~nn_tracing.runs.runs_dir`).
    name
        Stem of the file name; by default ``<dataset>-<widths>-<activation>-<time>``.
        A run that did not complete gets ``-stopped`` or ``-diverged`` appended.
    owner
        Who started it (the app passes its session id), so that whoever started a run can
        find it again from the registry alone (:func:`jobs_of`).
    """

    def __init__(
        self,
        config: TrainConfig,
        directory: Path | None = None,
        name: str | None = None,
        owner: str | None = None,
    ) -> None:
        self.job_id = uuid.uuid4().hex[:12]
        self.config = config
        self.owner = owner
        #: What the run was estimated to take before it started (see :mod:`nn_tracing.budget`).
        self.estimate: RunEstimate = estimate_run(config)
        #: Set once the owner has taken notice that the run ended (see :meth:`acknowledge_end`).
        self.end_acknowledged = False
        #: Set when the owner no longer wants to see the run (see :meth:`dismiss`).
        self.dismissed = False
        self.directory = directory or runs_dir()
        widths = "x".join(str(w) for w in config.hidden_sizes)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.name = (
            safe_stem(name) if name else (f"{config.dataset}-{widths}-{config.activation}-{stamp}")
        )
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._snapshot = JobSnapshot(job_id=self.job_id, config=config, epochs=config.epochs)
        self._live_trace: NetworkTrace | None = None
        self._started = 0.0
        self._last_progress_at = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"nn-tracing-job-{self.job_id}", daemon=True
        )

    # -- control ---------------------------------------------------------------------------
    def start(self) -> TrainingJob:
        """Start the thread; returns ``self``."""
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask training to stop after the current batch; the trace so far is saved."""
        self._stop.set()
        with self._lock:
            self._snapshot = replace(self._snapshot, stop_requested=True)

    def acknowledge_end(self) -> bool:
        """Mark the end of the run as noticed; returns whether it was noticed just now
        (``False`` while it runs, or when it was noticed before)."""
        with self._lock:
            if not self._snapshot.done or self.end_acknowledged:
                return False
            self.end_acknowledged = True
            return True

    def dismiss(self) -> None:
        """Hide the run from its owner's list (it keeps running if it was)."""
        self.dismissed = True

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the job to end; returns whether it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- reading ---------------------------------------------------------------------------
    def snapshot(self) -> JobSnapshot:
        """The latest progress, with elapsed and remaining time brought up to now."""
        with self._lock:
            snap = self._snapshot
        if snap.done or not self._started:
            return snap
        now = time.monotonic()
        since_report = now - self._last_progress_at if self._last_progress_at else 0.0
        remaining = None if snap.remaining is None else max(snap.remaining - since_report, 0.0)
        return replace(snap, elapsed=now - self._started, remaining=remaining)

    @property
    def live_trace(self) -> NetworkTrace | None:
        """The trace recorded so far (``None`` before ``E_0`` is measured)."""
        with self._lock:
            return self._live_trace

    # -- the thread ------------------------------------------------------------------------
    def _publish(self, **changes: object) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, **changes)  # type: ignore[arg-type]

    def _on_progress(self, progress: TrainingProgress) -> None:
        self._last_progress_at = time.monotonic()
        self._publish(
            state="running",
            epoch=progress.epoch,
            epochs=progress.epochs,
            step=progress.step,
            steps_per_epoch=progress.steps_per_epoch,
            loss=progress.loss,
            fraction=progress.fraction,
            remaining=progress.eta,
            recorded_epochs=tuple(progress.recorded_epochs),
            message=progress.message,
        )

    def _on_trace(self, trace: NetworkTrace) -> None:
        with self._lock:
            self._live_trace = trace
            self._snapshot = replace(
                self._snapshot,
                trace_version=self._snapshot.trace_version + 1,
                recorded_epochs=tuple(trace.epochs),
            )

    def _run(self) -> None:
        try:
            import torch

            torch.set_num_threads(JOB_THREADS)  # process-wide: see JOB_THREADS
            run = train(
                self.config,
                progress=self._on_progress,
                stop=self._stop,
                progress_every=0.2,
                on_trace=self._on_trace,
            )
            trace = run.trace
            assert trace is not None
            self._publish(state="saving", status=trace.status)
            suffix = "" if trace.status == "complete" else f"-{trace.status}"
            path = save_trace(trace, new_run_path(self.name + suffix, self.directory))
            with self._lock:
                self._live_trace = trace
                self._snapshot = replace(
                    self._snapshot,
                    state="finished",
                    status=trace.status,
                    message=str(trace.meta.get("status_message") or ""),
                    saved_path=path,
                    recorded_epochs=tuple(trace.epochs),
                    trace_version=self._snapshot.trace_version + 1,
                    elapsed=time.monotonic() - self._started,
                    remaining=0.0,
                    fraction=1.0 if trace.status == "complete" else self._snapshot.fraction,
                )
        except Exception as exc:  # reported to the user through the snapshot
            logger.exception("training job %s failed", self.job_id)
            self._publish(
                state="failed",
                error=f"{type(exc).__name__}: {exc}",
                elapsed=time.monotonic() - self._started,
                remaining=None,
            )


_registry: dict[str, TrainingJob] = {}
_registry_lock = threading.Lock()


def running_jobs() -> list[TrainingJob]:
    """Jobs of this process that have not ended."""
    with _registry_lock:
        jobs = list(_registry.values())
    return [job for job in jobs if not job.snapshot().done]


def start_job(
    config: TrainConfig,
    directory: Path | None = None,
    name: str | None = None,
    *,
    owner: str | None = None,
    max_running: int = MAX_RUNNING_JOBS,
    budget: MemoryBudget | None = None,
) -> TrainingJob:
    """Start a :class:`TrainingJob` and register it; returns the job.

    Raises :class:`JobLimitError` when ``max_running`` jobs are training already, and
    :class:`~nn_tracing.estimate.RunTooLarge` when the run's estimated peak memory, with that
    of the runs training now, is over ``budget`` (default :func:`~nn_tracing.budget.server_budget`)
    or its trace over the runs folder's free disk; the message gives the figures and the
    setting to lower.
    """
    with _registry_lock:
        active = [job for job in _registry.values() if not job.snapshot().done]
        if len(active) >= max_running:
            raise JobLimitError(
                f"{len(active)} runs are training on this server already (the limit is "
                f"{max_running}); wait for one to finish or stop one"
            )
        job = TrainingJob(config, directory, name, owner)
        admit(
            job.estimate,
            [other.estimate for other in active],
            budget if budget is not None else server_budget(),
            job.directory,
        )
        finished = [job_id for job_id, job in _registry.items() if job.snapshot().done]
        for job_id in finished[: max(len(finished) - MAX_FINISHED_JOBS + 1, 0)]:
            del _registry[job_id]
        _registry[job.job_id] = job
    return job.start()


def jobs_of(owner: str) -> list[TrainingJob]:
    """The jobs ``owner`` started and has not dismissed, oldest first (running or ended)."""
    with _registry_lock:
        jobs = list(_registry.values())
    return [job for job in jobs if job.owner == owner and not job.dismissed]


def memory_in_use() -> int:
    """Estimated peak memory of the runs training now (what the budget counts)."""
    return sum(job.estimate.peak_bytes for job in running_jobs())


def get_job(job_id: str | None) -> TrainingJob | None:
    """The job with this id, or ``None`` (unknown, or long finished and forgotten)."""
    if not job_id:
        return None
    with _registry_lock:
        return _registry.get(job_id)


def _stop_running_jobs(timeout: float = 30.0) -> None:
    """When the server stops (Ctrl-C, SIGTERM), stop every run and wait until each has saved
    its trace as ``stopped`` instead of dying inside a torch call."""
    running = running_jobs()
    for job in running:
        job.stop()
    deadline = time.monotonic() + timeout
    for job in running:
        job.join(max(deadline - time.monotonic(), 0.0))


def _register_exit_hook() -> None:
    """Run :func:`_stop_running_jobs` before the interpreter starts tearing down.

    Plain ``atexit`` handlers run too late: by then ``threading`` has told every
    ``concurrent.futures`` pool to refuse work ("cannot schedule new futures after interpreter
    shutdown"), and saving a trace may use one (pyarrow converts wide frames in a pool).
    ``threading``'s own exit hooks run first, newest first, so ours — registered after
    ``concurrent.futures.thread`` is imported — runs while pools still take work. Where that
    private hook does not exist, ``atexit`` is the fallback.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - CPython has had it since 3.9
        atexit.register(_stop_running_jobs)
        return
    register(_stop_running_jobs)


_register_exit_hook()
