"""A training run's run directory, written as it goes: by ``train(out=…)`` and by
``TraceableNN(log_dir=…)`` alike.

:class:`RunLog` wraps a :class:`~nn_tracing.rundir_async.BackgroundRunWriter` (a
:class:`~nn_tracing.rundir.RunWriter` run by a background thread) with what a training loop
needs: the writer made at the first write (the trace's probe set and ``E_0`` are known by
then), every recorded epoch not yet handed over added at each :meth:`RunLog.sync` (which may
wait until they are on disk, or not: :meth:`RunLog.due` says when a caller that does not wait
should hand over, once a second), a heartbeat cheap enough to check on every training step
(``time.monotonic() >= log.next_beat`` before :meth:`RunLog.beat`), the final status and
weights at :meth:`RunLog.close` — and what happens when the disk refuses a write (full,
read-only, no permission: :class:`~nn_tracing.rundir.RunWriteError`). Epochs handed over
together share one manifest, so a failed write loses them together: the error names the first
epoch the directory lacks and the epochs it keeps.

* ``on_write_error="stop"`` (the default): the error is raised, once, by the call that
  handed the epoch over if it waits, by the next one otherwise; the caller's training stops
  there. The epochs already written stay readable.
* ``on_write_error="continue"``: one :class:`RunWriteWarning`, and training goes on without
  writing the directory again (the trace in memory keeps recording).

Either way, nothing more is written to the directory after a failed write but, if the disk
still takes it, its manifest with status ``stopped`` and the error as the status message (on a
disk that refuses even that, the run reads as ``interrupted`` once its process has ended).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .rundir import RunWriteError, _write_atomic
from .trace import NetworkTrace

if TYPE_CHECKING:
    from .rundir_async import BackgroundRunWriter
    from .tracer import TraceableNN

__all__ = ["WRITE_ERROR_POLICIES", "RunLog", "RunWriteWarning"]

#: What a run does when its run directory cannot be written.
WRITE_ERROR_POLICIES = ("stop", "continue")


class RunWriteWarning(RuntimeWarning):
    """A run directory could not be written and training went on without it
    (``on_write_error="continue"``)."""


class RunLog:
    """The run directory ``directory`` of one training run, written as the run records, by a
    background thread (:class:`~nn_tracing.rundir_async.BackgroundRunWriter`).

    Parameters
    ----------
    directory
        The run directory; it must not hold a run already (``FileExistsError`` at the first
        write otherwise).
    on_write_error
        ``"stop"`` raises :class:`~nn_tracing.rundir.RunWriteError`; ``"continue"`` warns
        once (:class:`RunWriteWarning`) and writes nothing more.
    """

    def __init__(self, directory: str | os.PathLike, *, on_write_error: str = "stop") -> None:
        if on_write_error not in WRITE_ERROR_POLICIES:
            raise ValueError(
                f"on_write_error={on_write_error!r}: use one of {', '.join(WRITE_ERROR_POLICIES)}"
            )
        self.directory = Path(directory)
        self.on_write_error = on_write_error
        self.writer: BackgroundRunWriter | None = None
        #: The write error that ended the writing, if one did.
        self.error: RunWriteError | None = None
        #: ``time.monotonic()`` before which :meth:`beat` would write no heartbeat (a caller
        #: on the hot path compares the clock with it before calling).
        self.next_beat = 0.0

    @property
    def writing(self) -> bool:
        """Whether the directory is still being written (no error, not closed)."""
        return self.error is None and not (self.writer is not None and self.writer.closed)

    @property
    def last_handed(self) -> int:
        """The last epoch handed to the writer (written or on its way), ``-1`` before any."""
        if self.writer is None or not self.writer.queued:
            return -1
        return self.writer.queued[-1]

    def due(self) -> bool:
        """Whether the epochs recorded since the last :meth:`sync` should be handed over now
        (:meth:`~nn_tracing.rundir_async.BackgroundRunWriter.due`: at most once a second),
        so that a caller takes a snapshot of its trace only then."""
        return self.writing and (self.writer is None or self.writer.due())

    def open(self, trace: NetworkTrace) -> None:
        """Make the directory (heartbeat) if not done yet; no epoch is written."""
        if self.writer is None and self.error is None:
            from .rundir_async import BackgroundRunWriter

            try:
                self.writer = BackgroundRunWriter(self.directory, trace)
            except RunWriteError as exc:
                self._failed(exc)

    def sync(self, trace: NetworkTrace, *, wait: bool = False) -> None:
        """Hand over every epoch of ``trace`` not handed over yet (each with its history
        rows); with ``wait``, return once they are on disk. An error of an earlier write is
        raised (or warned) here."""
        self.open(trace)
        writer = self.writer
        if writer is None or not self.writing:
            return
        try:
            self._hand_over(trace)
            if wait:
                writer.flush()
        except OSError as exc:
            self._failed(self._as_write_error(exc, trace))

    def close(self, trace: NetworkTrace, status: str | None = None) -> None:
        """Write the rest of the run (epochs, history, final weights) and its final status
        (default: the trace's); returns once it is on disk."""
        self.open(trace)
        writer = self.writer
        if writer is None or not self.writing:
            return
        writer.trace = trace
        try:
            writer.close(status)
        except OSError as exc:
            self._failed(self._as_write_error(exc, trace))
        self.next_beat = math.inf

    def abandon(self, tracer: TraceableNN | None) -> None:
        """After an error in training: the epochs ``tracer`` recorded are handed over and
        written, and no final status (the run reads as ``interrupted`` once its process has
        ended). Write errors are not raised."""
        writer = self.writer
        if writer is None or not self.writing:
            return
        if tracer is not None:
            with contextlib.suppress(Exception):
                self._hand_over(tracer.network_trace)
        writer.abandon()
        self.next_beat = math.inf

    def beat(self, *, force: bool = False, **progress: Any) -> None:
        """Have the writer refresh the heartbeat (``writer.json``) with ``progress``, at most
        every :data:`~nn_tracing.rundir_live.HEARTBEAT_SECONDS` unless ``force``; never waits
        for the disk. A heartbeat that cannot be written is let go: it only makes the writer
        look older."""
        writer = self.writer
        if writer is None or not self.writing:
            return
        self.next_beat = time.monotonic() + writer.heartbeat.interval
        writer.beat(force=force, **progress)

    def _hand_over(self, trace: NetworkTrace) -> None:
        """The epochs of ``trace`` not handed to the writer yet, handed over."""
        assert self.writer is not None
        self.writer.trace = trace
        self.writer.write_epochs([e for e in trace.epochs if e > self.last_handed])

    def _as_write_error(self, error: OSError, trace: NetworkTrace) -> RunWriteError:
        """``error`` as a :class:`RunWriteError` (one that is not names the first epoch the
        directory lacks)."""
        if isinstance(error, RunWriteError):
            return error
        kept = list(self.writer.epochs) if self.writer is not None else []
        missing = [e for e in trace.epochs if not kept or e > kept[-1]]
        wrapped = RunWriteError(self.directory, missing[0] if missing else None, kept, error)
        wrapped.__cause__ = error
        return wrapped

    def _failed(self, error: RunWriteError) -> None:
        self.error = error
        self.next_beat = math.inf
        if self.writer is not None:
            self.writer.abandon()  # its thread skips what is left, and ends
        _mark_stopped(self.directory, error)
        if self.on_write_error == "stop":
            raise error
        warnings.warn(
            f"{error}; training goes on without writing it", RunWriteWarning, stacklevel=4
        )


def _mark_stopped(directory: Path, error: RunWriteError) -> None:
    """If the disk still takes it, the last manifest again with status ``stopped`` and the
    error as its message (the epochs it lists do not change)."""
    path = directory / "manifest.json"
    with contextlib.suppress(OSError, ValueError, LookupError, TypeError, AttributeError):
        manifest = json.loads(path.read_bytes())
        meta = manifest["meta"]
        if meta.get("status") != "running":
            return
        meta["status"] = "stopped"
        meta["status_message"] = f"the run directory stopped being written: {error}"
        data = json.dumps(manifest, indent=1, allow_nan=False).encode()
        _write_atomic(path, data)
