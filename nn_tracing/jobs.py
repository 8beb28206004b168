"""Training jobs: a child process per run, followed through the run directory it writes.

A :class:`TrainingJob` starts ``python -m nn_tracing train … --out runs/<name>/``
(:func:`~nn_tracing.run_process.spawn_training`): the run directory *is* the trace, written
epoch by epoch, so a heavy or crashing run cannot take the server down, and the server can
stop and start again without losing it — the child keeps training (or stops gracefully when
asked, :meth:`TrainingJob.stop`), and keeps every epoch it recorded. Nothing waits for the
children when the server exits.

Everything a reader learns of a job comes from that directory, cheaply enough to poll every
second (:meth:`TrainingJob.snapshot`): a ``stat`` of ``manifest.json`` (read again only when it
changed), the writer's heartbeat ``writer.json`` (progress: epoch, step, loss, time left) and
the child's exit code. :attr:`TrainingJob.live_trace` loads the directory only when its
manifest changed.

Jobs are kept in a process-wide registry by id (:func:`start_job`, :func:`get_job`), so a
Streamlit session needs to remember only the id. Nothing here imports Streamlit.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .budget import MemoryBudget, admit, server_budget
from .config import TrainConfig
from .estimate import RunEstimate
from .run_process import CONFIG_FILE, LOG_FILE, STOP_SIGNAL, error_line, spawn_training
from .rundir_live import FINAL_STATUSES, WRITER_FILE, WriterInfo, read_writer
from .runs import new_run_directory, runs_dir, safe_stem
from .store import TraceFormatError
from .timeaxis import time_key
from .trace import NetworkTrace
from .trace_budget import plan_budget

__all__ = [
    "JOB_THREADS",
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

#: Runs that may train at once from one server (each takes CPU from the others).
MAX_RUNNING_JOBS = 4
#: Finished jobs kept in the registry (their snapshots stay readable for late readers).
MAX_FINISHED_JOBS = 64
#: Torch threads of each run's process. The MLPs trained from the app are small: one thread
#: each is far faster than several fighting over the cores (measured on a 2-core CPU machine:
#: a 32x32 MLP on moons trained ~60x faster with 1 thread than with 2 while other work ran),
#: and concurrent runs then share the cores instead of spinning.
JOB_THREADS = 1
#: A live trace is loaded again no sooner than this many times the last load's duration
#: after it: loading a run directory reads every epoch (about 5 ms per recorded epoch of a
#: 132-neuron MLP with a 256-sample probe), so a fast run with many epochs would otherwise keep
#: the server loading. Small traces load in milliseconds and follow every epoch.
RELOAD_PACE = 2.0
#: Exit codes of ``nn-tracing train`` that end a run with its directory closed.
_CLOSED_EXITS = (0, 3, 130)


class JobLimitError(RuntimeError):
    """Too many runs are training in this process; the message says how many."""


@dataclass(frozen=True)
class JobSnapshot:
    """What a job is doing, at one instant.

    ``state`` is ``starting``, ``running``, ``saving`` (the run is closing its directory),
    ``finished`` or ``failed``; ``status`` is the trace's: ``running``, then ``complete``,
    ``stopped`` or ``diverged`` — or ``interrupted`` when the process ended without closing
    its directory (killed, crashed). ``recorded_epochs`` are those on disk now;
    ``trace_version`` is the version of the trace :attr:`TrainingJob.live_trace` gives now (its
    recorded epochs, plus one once the run ended: ``0`` until it is first loaded), so that a
    cache keyed by it always holds that very trace. ``saved_path`` is the run directory once it
    holds a trace.
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
    exit_code: int | None = None

    @property
    def done(self) -> bool:
        """Whether the job has ended (its process has exited)."""
        return self.state in ("finished", "failed")

    @property
    def saved_name(self) -> str | None:
        """The run's name: its directory's name (``None`` while it holds no trace)."""
        return self.saved_path.name if self.saved_path is not None else None


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    """``(mtime_ns, size, inode)`` of ``path`` (not followed if a link), or ``None`` if
    missing: an atomic replace (a new file renamed over it) changes at least its inode."""
    try:
        st = path.lstat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


@dataclass(frozen=True)
class _Manifest:
    """What the job needs of a run directory's manifest."""

    epochs: tuple[int, ...]
    status: str
    message: str


def _read_manifest(run_dir: Path) -> _Manifest | None:
    """The validated manifest's epochs and status (``None`` if missing or unreadable)."""
    from .rundir import read_run_manifest

    try:
        manifest = read_run_manifest(run_dir)
    except (TraceFormatError, OSError):
        return None
    meta = manifest.get("meta") or {}
    return _Manifest(
        tuple(int(e) for e in manifest["epochs"]),
        str(meta.get("status") or "running"),
        str(meta.get("status_message") or ""),
    )


def _exit_description(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"it was killed by {signal.Signals(-code).name}"
        return f"it was killed by signal {-code}"
    return f"it exited with code {code}"


class TrainingJob:
    """One training run in a child process, writing the run directory ``runs/<name>/``.

    Parameters
    ----------
    config
        The run's settings (already validated: it is a :class:`TrainConfig`).
    directory
        The runs folder the run directory is made in (default :func:`~nn_tracing.runs.runs_dir`).
    name
        The run directory's name; by default ``<dataset>-<widths>-<activation>-<time>``. A
        name that a run holds already (a trace file or a run directory) gets ``-2``, ``-3`` …
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
        #: A run over its ``max_trace_bytes`` is refused here (``TraceBudgetExceeded``), or
        #: estimated as adapted (the child process adapts it the same way).
        self.estimate: RunEstimate = plan_budget(config, run_directory=True).estimate
        #: Set once the owner has taken notice that the run ended (see :meth:`acknowledge_end`).
        self.end_acknowledged = False
        #: Set when the owner no longer wants to see the run (see :meth:`dismiss`).
        self.dismissed = False
        self.directory = directory or runs_dir()
        widths = "x".join(str(w) for w in config.hidden_sizes)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        #: The run's name: the run directory's once started (a taken name gets ``-2`` …).
        self.name = (
            safe_stem(name) if name else (f"{config.dataset}-{widths}-{config.activation}-{stamp}")
        )
        #: The run directory (``None`` until :meth:`start`).
        self.run_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._started = 0.0
        self._ended_at: float | None = None
        self._stop_requested = False
        self._error: str | None = None
        self._manifest_key: tuple[int, int, int] | None = None
        self._manifest: _Manifest | None = None
        self._writer_key: tuple[int, int, int] | None = None
        self._writer: WriterInfo | None = None
        self._trace_key: tuple[Any, ...] | None = None
        self._next_load = 0.0
        self._published_version = 0
        self._live_trace: NetworkTrace | None = None

    # -- control ---------------------------------------------------------------------------
    def start(self) -> TrainingJob:
        """Make the run directory and start the child that trains into it; returns ``self``.

        Raises :class:`OSError` when the directory cannot be made or the process started
        (the directory is then removed again).
        """
        run_dir = new_run_directory(self.name, self.directory)
        try:
            self._process = spawn_training(self.config, run_dir, threads=JOB_THREADS)
        except BaseException:
            _remove_empty_run(run_dir)
            raise
        self.run_dir, self.name = run_dir, run_dir.name
        self._started = time.monotonic()
        return self

    @property
    def pid(self) -> int | None:
        """The child's process id (``None`` before :meth:`start`)."""
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        """Whether the child is still running (cheap: no file is read)."""
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Ask the run to stop after the current batch: it records the epoch in progress
        and closes its directory with status ``stopped``.

        A child that is still starting (no heartbeat yet: its stop handler may not be in place)
        is asked as soon as it has started training, from a small thread that waits for it.
        """
        with self._lock:
            if self._stop_requested:
                return
            self._stop_requested = True
        if self._ready():
            self._signal_stop()
        else:
            threading.Thread(
                target=self._stop_when_ready, name=f"nn-tracing-stop-{self.job_id}", daemon=True
            ).start()

    def _ready(self) -> bool:
        """Whether the child trains (its heartbeat exists: its stop handler is in place)."""
        return self.run_dir is not None and (self.run_dir / WRITER_FILE).exists()

    def _signal_stop(self) -> None:
        with self._lock:
            if self.is_running():
                assert self._process is not None
                with contextlib.suppress(ProcessLookupError):
                    # the child is unreaped while poll() says it runs: its pid is still its own
                    self._process.send_signal(STOP_SIGNAL)

    def _stop_when_ready(self, poll: float = 0.05) -> None:
        while self.is_running() and not self._ready():
            time.sleep(poll)
        self._signal_stop()

    def acknowledge_end(self) -> bool:
        """Mark the end of the run as noticed; returns whether it was noticed just now
        (``False`` while it runs, or when it was noticed before)."""
        done = self.snapshot().done
        with self._lock:
            if not done or self.end_acknowledged:
                return False
            self.end_acknowledged = True
            return True

    def dismiss(self) -> None:
        """Hide the run from its owner's list (it keeps running if it was)."""
        self.dismissed = True

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the child to exit; returns whether it has."""
        if self._process is None:
            return False
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    # -- reading ---------------------------------------------------------------------------
    def _refresh(self) -> tuple[int | None, _Manifest | None, WriterInfo | None]:
        """The exit code, manifest and heartbeat, each read again only if it changed."""
        code = self._process.poll() if self._process is not None else None
        run_dir = self.run_dir
        if run_dir is None:
            return code, None, None
        if code is not None and self._ended_at is None:
            self._ended_at = time.monotonic()
        key = _stat_key(run_dir / "manifest.json")
        if key != self._manifest_key:
            self._manifest_key, self._manifest = key, _read_manifest(run_dir)
        key = _stat_key(run_dir / WRITER_FILE)
        if key != self._writer_key:
            self._writer_key, self._writer = key, read_writer(run_dir)
        return code, self._manifest, self._writer

    def snapshot(self) -> JobSnapshot:
        """What the run is doing now, from its directory and its process (cheap: two
        ``stat`` calls, and a small file read when it changed)."""
        with self._lock:
            code, manifest, writer = self._refresh()
            stop_requested = self._stop_requested
            if code is not None and self._error is None:
                self._error = self._failure(code, manifest)
            error = self._error
        snap = JobSnapshot(
            job_id=self.job_id,
            config=self.config,
            epochs=self.config.epochs,
            stop_requested=stop_requested,
            exit_code=code,
            elapsed=self._elapsed(),
        )
        if writer is not None:
            snap = _with_progress(snap, writer)
        if manifest is not None:
            snap = replace(snap, recorded_epochs=manifest.epochs, saved_path=self.run_dir)
        snap = replace(snap, trace_version=self._published_version)
        return _with_state(snap, code, manifest, error)

    def _elapsed(self) -> float:
        if not self._started:
            return 0.0
        end = self._ended_at if self._ended_at is not None else time.monotonic()
        return end - self._started

    def _failure(self, code: int, manifest: _Manifest | None) -> str:
        """``""`` when the run closed its directory; else why it failed, in one line."""
        if code in _CLOSED_EXITS and manifest is not None and manifest.status in FINAL_STATUSES:
            return ""
        assert self.run_dir is not None
        said = error_line(self.run_dir) if code >= 0 else None
        if manifest is None:  # nothing recorded: the log's line is all there is to keep
            _remove_empty_run(self.run_dir)
        if said:
            return said
        what = _exit_description(code)
        if manifest is not None:
            axis = "epoch" if self.config.step_intervals is None else "step"
            return (
                f"the training process ended before the run was closed ({what}); its run "
                f"directory keeps every {axis} recorded before, up to "
                f"{time_key(manifest.epochs[-1], axis)}"
            )
        if self._stop_requested:
            return f"the run was stopped before it recorded anything ({what})"
        return f"the training process ended before it recorded anything ({what})"

    @property
    def live_trace(self) -> NetworkTrace | None:
        """The trace recorded so far, loaded from the run directory (``None`` before ``E_0``
        is recorded). Loaded again only when the manifest changed (at most at the pace
        :data:`RELOAD_PACE` allows while the run trains), and once when the run ended."""
        with self._load_lock:
            snap = self.snapshot()
            key = (self._manifest_key, snap.done)
            if self.run_dir is None or self._manifest_key is None:
                return None
            due = snap.done or self._live_trace is None or time.monotonic() >= self._next_load
            if key != self._trace_key and due:
                started = time.monotonic()
                loaded = self._load()
                took = time.monotonic() - started
                self._next_load = started + took * (1 + RELOAD_PACE)
                if loaded is not None:
                    self._live_trace, self._trace_key = loaded, key
                    self._published_version = _content_version(loaded)
            return self._live_trace

    def _load(self) -> NetworkTrace | None:
        from .store import load_trace

        assert self.run_dir is not None
        try:
            return load_trace(self.run_dir)
        except (TraceFormatError, OSError) as exc:  # keep what was shown; say so in the log
            logger.warning("run directory %s cannot be read now: %s", self.run_dir, exc)
            return None


def _content_version(trace: NetworkTrace) -> int:
    """A version that only a change of a live run's trace changes: its recorded epochs (each
    epoch written adds its rows, tensors and history) and whether the run has ended."""
    return len(trace.epochs) + int(trace.status != "running")


def _with_progress(snap: JobSnapshot, writer: WriterInfo) -> JobSnapshot:
    """``snap`` with the progress of the run's heartbeat (time left brought up to now)."""
    progress = writer.progress
    eta = progress.get("eta")
    remaining = None if eta is None else max(float(eta) - (time.time() - writer.heartbeat), 0.0)
    return replace(
        snap,
        state="running",
        epoch=int(progress.get("epoch", snap.epoch)),
        epochs=int(progress.get("epochs", snap.epochs)),
        step=int(progress.get("step", 0)),
        steps_per_epoch=int(progress.get("steps_per_epoch", 0)),
        loss=float(progress.get("loss", snap.loss)),
        fraction=float(progress.get("fraction", 0.0)),
        remaining=remaining,
        message=str(progress.get("message", "")),
    )


def _with_state(
    snap: JobSnapshot, code: int | None, manifest: _Manifest | None, error: str | None
) -> JobSnapshot:
    """``snap`` with the state and status that the process and the manifest say."""
    if code is None:
        if manifest is not None and manifest.status in FINAL_STATUSES:
            return replace(snap, state="saving", status=manifest.status)
        return snap
    if not error:
        assert manifest is not None
        return replace(
            snap,
            state="finished",
            status=manifest.status,
            message=manifest.message,
            remaining=0.0,
            fraction=1.0 if manifest.status == "complete" else snap.fraction,
        )
    return replace(
        snap,
        state="failed",
        status="interrupted" if manifest is not None else snap.status,
        error=error,
        remaining=None,
    )


def _remove_empty_run(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but what a job put there before its child
    recorded anything (its config, log and heartbeat); anything else keeps it."""
    for name in (CONFIG_FILE, LOG_FILE, WRITER_FILE):
        with contextlib.suppress(OSError):
            (run_dir / name).unlink()
    with contextlib.suppress(OSError):
        run_dir.rmdir()


_registry: dict[str, TrainingJob] = {}
_registry_lock = threading.Lock()


def running_jobs() -> list[TrainingJob]:
    """Jobs of this process whose child is still running."""
    with _registry_lock:
        jobs = list(_registry.values())
    return [job for job in jobs if job.is_running()]


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
    setting to lower. :class:`OSError` when the run directory or the process cannot be made.
    """
    with _registry_lock:
        active = [job for job in _registry.values() if job.is_running()]
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
        job.start()
        finished = [job_id for job_id, job in _registry.items() if not job.is_running()]
        for job_id in finished[: max(len(finished) - MAX_FINISHED_JOBS + 1, 0)]:
            del _registry[job_id]
        _registry[job.job_id] = job
    return job


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
