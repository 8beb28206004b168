"""A run directory written by a background thread, so that training does not wait on the disk.

:class:`BackgroundRunWriter` has the interface of :class:`~nn_tracing.rundir.RunWriter`
(``write_epoch``, ``close``, ``epochs``, ``closed``, ``heartbeat``) and writes the same files
with the same guarantees, because one writing thread runs a ``RunWriter``: every file of an
epoch is written to a temporary name, fsynced and renamed, and only then is the manifest that
names them replaced. A reader never sees half an epoch; a killed run keeps every epoch whose
manifest was written. What a killed run may lose, beyond ``RunWriter``, are the epochs handed
over but not written yet (at most ``max_pending`` + 1 hand-overs).

* :meth:`~BackgroundRunWriter.write_epoch` (and ``write_epochs``, several at once) returns at
  once: the training thread only checks the epochs and queues them with the trace they
  belong to. It blocks while ``max_pending`` hand-overs already wait, so memory stays
  bounded. The trace handed over must not change afterwards (``TraceableNN.network_trace``
  is a new snapshot at every call, whose recorded arrays never change).
* :attr:`~BackgroundRunWriter.epochs` lists the epochs whose manifest was written,
  :attr:`~BackgroundRunWriter.queued` the epochs handed over (written or not).
* An error of the writing thread (a full disk, a read-only folder) is raised — the same
  exception — by the next ``write_epoch``, ``flush`` or ``close``; nothing handed over after
  it is written, and the manifest keeps the last epoch written before it.
* :meth:`~BackgroundRunWriter.due` says whether :data:`WRITE_INTERVAL` has passed since the
  last hand-over. A caller that takes a snapshot of the trace only when it is due
  (``train(out=...)``) writes the epochs of a fast run a few at a time — each epoch still in
  its own files, the manifest replaced once for them — and at once those of a run whose
  recorded epochs are further apart. ``write_epoch`` itself never waits.
* :meth:`~BackgroundRunWriter.flush` waits until everything handed over is written;
  :meth:`~BackgroundRunWriter.close` waits too, and leaves the final status in the manifest.
  :meth:`~BackgroundRunWriter.abandon` (after an error in training) waits for what was handed
  over and stops, the status left ``running`` (read as ``interrupted`` once the process ends).
* At interpreter exit, every writer still open is flushed (as by ``abandon``).

The writing thread also writes an epoch's files *together* (:class:`_StagedRunWriter`,
:func:`_write_together`): all of them and the new manifest to temporary files, fsynced at once
(a few threads, so that the file system commits them in one go rather than one after the
other), the files renamed and each folder they changed fsynced once, and only then the
manifest renamed into place. Same guarantees, three waits for the disk per epoch instead of
one or two per file.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import math
import os
import queue
import re
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .rundir import RunWriter, _fsync_directory
from .rundir_live import FINAL_STATUSES, Heartbeat
from .store import _st_dtype
from .trace import NetworkTrace

__all__ = ["BackgroundRunWriter"]

#: Hand-overs that may wait for the writing thread before ``write_epoch`` blocks.
MAX_PENDING = 2
#: Seconds between two hand-overs that :meth:`BackgroundRunWriter.due` asks for (as often as
#: the heartbeat: a fast run's directory is brought up to date once a second).
WRITE_INTERVAL = 1.0


class _WritingThread:
    """One daemon thread that runs the jobs it is given, in order; the first error stops the
    rest (they are skipped) and is kept in :attr:`error`."""

    def __init__(self, name: str, max_pending: int) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=max_pending)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self.error is None:
                    job()
            except BaseException as exc:  # kept, and raised in the thread that hands over work
                self.error = exc
            finally:
                self._jobs.task_done()

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job`` (blocks while the queue is full)."""
        self._jobs.put(job)

    def offer(self, job: Callable[[], None]) -> bool:
        """Queue ``job`` if there is room; returns whether it was queued."""
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    def wait(self) -> None:
        """Until every job queued so far has run (or been skipped after an error)."""
        self._jobs.join()

    def stop(self) -> None:
        """Run what is queued, then end the thread."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()


#: Threads that fsync an epoch's files at once.
FSYNC_THREADS = 4


def _each(pool: ThreadPoolExecutor, fn: Callable[[Any], Any], items: Iterable[Any]) -> None:
    """``fn`` on every item at once: the first in this thread, the others in ``pool``'s (or
    here too if the pool no longer takes work, as at interpreter exit). Raises the first
    error, once every call has ended."""
    items = list(items)
    futures, here = [], items[:1]
    errors: list[BaseException] = []
    for item in items[1:]:
        try:
            futures.append(pool.submit(fn, item))
        except RuntimeError:  # the pool is shut down
            here.append(item)
    for item in here:
        try:
            fn(item)
        except BaseException as exc:
            errors.append(exc)
    for future in futures:
        try:
            future.result()
        except BaseException as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def _made_for(path: Path) -> set[Path]:
    """Make the folder of ``path``; returns the folders whose entries changed for it (the
    parent of every folder made), to be fsynced."""
    missing = []
    folder = path.parent
    while not folder.is_dir() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
    return {d.parent for d in missing}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _close_all(staged: list[tuple[int, str, Path]]) -> None:
    """Close the descriptors of ``staged`` (each once: they are marked closed with -1)."""
    for i, (fd, tmp, path) in enumerate(staged):
        if fd >= 0:
            staged[i] = (-1, tmp, path)
            with contextlib.suppress(OSError):
                os.close(fd)


#: What a staged file holds: its bytes, or arrays that safetensors writes itself.
Staged = bytes | dict[str, np.ndarray]


def _as_os_error(error: Exception, path: str) -> OSError:
    """``error`` of safetensors (``... I/O error: No space left on device (os error 28)``) as
    the ``OSError`` it reports, so that a full disk reads the same whoever wrote."""
    if isinstance(error, OSError):
        return error
    found = re.search(r"os error (\d+)", str(error))
    code = int(found.group(1)) if found else errno.EIO
    return OSError(code, os.strerror(code), path)


def _write_staged(staged: list[tuple[int, str, Path]], data: Staged) -> None:
    """``data`` into the last temporary file of ``staged`` (its descriptor is replaced if the
    file is). Arrays are written by safetensors from their own memory, without the
    interpreter lock (its ``save`` holds it while it copies them into bytes)."""
    fd, tmp, path = staged[-1]
    if isinstance(data, bytes):
        _write_all(fd, data)
    else:
        from safetensors.numpy import save_file

        staged[-1] = (-1, tmp, path)
        os.close(fd)
        try:
            save_file(data, tmp)  # a new file at tmp
        except Exception as exc:  # safetensors reports a failed write as its own error
            raise _as_os_error(exc, tmp) from exc
        fd = os.open(tmp, os.O_RDONLY)
        staged[-1] = (fd, tmp, path)
    os.fchmod(fd, 0o644)


def _write_together(
    files: list[tuple[Path, Staged]],
    manifest: tuple[Path, bytes],
    pool: ThreadPoolExecutor,
    *,
    durable: bool,
) -> None:
    """Every ``(path, data)`` of ``files`` complete and durable at ``path``, and then the
    ``manifest`` that names them, in three steps instead of a wait for each file:

    1. every file and the manifest written to temporary files, all fsynced at once;
    2. the files renamed into place, and every folder whose entries changed (the files',
       and the parent of each folder made) fsynced at once;
    3. the manifest renamed into place — and its folder fsynced if ``durable`` (the final
       manifest). A ``running`` manifest whose rename a power cut loses leaves the one
       before, whose files are all durable: the run is complete up to that epoch.
    """
    folders: set[Path] = set()
    staged: list[tuple[int, str, Path]] = []
    renamed = 0
    try:
        for path, data in [*files, manifest]:
            folders |= _made_for(path)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            staged.append((fd, tmp, path))
            _write_staged(staged, data)
        _each(pool, os.fsync, [fd for fd, _, _ in staged])
        _close_all(staged)
        for _, tmp, path in staged[:-1]:
            os.replace(tmp, path)
            renamed += 1
            folders.add(path.parent)
        _each(pool, _fsync_directory, folders)
        os.replace(staged[-1][1], manifest[0])
        renamed += 1
    except BaseException:
        _close_all(staged)
        for _, tmp, _ in staged[renamed:]:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    if durable:
        _fsync_directory(manifest[0].parent)


class _QuietHeartbeat(Heartbeat):
    """A :class:`~nn_tracing.rundir_live.Heartbeat` that says nothing while :attr:`quiet`
    (while its writer holds a manifest back, the beat after each epoch would only say what
    the one after the manifest says)."""

    quiet = False

    @classmethod
    def taking_over(cls, heartbeat: Heartbeat) -> _QuietHeartbeat:
        quiet = cls(heartbeat.directory, heartbeat.interval)
        quiet.info, quiet._last = heartbeat.info, heartbeat._last
        return quiet

    def beat(self, *, force: bool = False, **progress: Any) -> bool:
        return False if self.quiet else super().beat(force=force, **progress)


class _StagedRunWriter(RunWriter):
    """A :class:`~nn_tracing.rundir.RunWriter` that keeps the files of an epoch (and the
    probe set) and writes them with the manifest that names them (:func:`_write_together`)."""

    def __init__(self, directory: str | os.PathLike, trace: NetworkTrace) -> None:
        self._staged: list[tuple[Path, Staged]] = []
        #: Whether a ``running`` manifest waits (its files kept) for the next one.
        self.hold_manifest = False
        self._pool = ThreadPoolExecutor(FSYNC_THREADS - 1, thread_name_prefix="nn_tracing fsync")
        try:
            super().__init__(directory, trace)
        except BaseException:
            self._pool.shutdown()
            raise
        self.heartbeat = self._quiet = _QuietHeartbeat.taking_over(self.heartbeat)

    def hold(self, held: bool) -> None:
        """Whether ``running`` manifests (and the heartbeat after each epoch) wait for the
        next manifest, the files they would name kept for it."""
        self.hold_manifest = self._quiet.quiet = held

    def _write_file(self, entry: str, data: bytes) -> None:
        self._staged.append((self.directory / entry, data))

    def _write_tensors(self, name: str, arrays: Mapping[str, np.ndarray]) -> None:
        """As ``RunWriter``'s, but the arrays are kept, not their bytes: safetensors writes
        them when the epoch is committed (the same file, byte for byte)."""
        entry = f"tensors/{name}.safetensors"
        contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        self._staged.append((self.directory / entry, contiguous))
        self._tensors[entry] = {
            k: {"dtype": _st_dtype(v), "shape": list(v.shape)} for k, v in contiguous.items()
        }

    def _write_manifest(self, status: str) -> None:
        if self.hold_manifest and status == "running":
            return
        files, self._staged = self._staged, []
        manifest = (self.directory / "manifest.json", self._manifest_bytes(status))
        _write_together(files, manifest, self._pool, durable=status != "running")
        self.in_manifest = list(self.epochs)

    def shutdown(self) -> None:
        """End the fsync threads."""
        self._pool.shutdown()


#: Writers not closed yet, flushed at interpreter exit.
_OPEN: weakref.WeakSet[BackgroundRunWriter] = weakref.WeakSet()


@atexit.register
def _flush_open_writers() -> None:
    for writer in list(_OPEN):
        with contextlib.suppress(Exception):
            writer.abandon()


class BackgroundRunWriter:
    """Write ``trace`` to the run directory ``directory`` from a background thread.

    Parameters
    ----------
    directory
        The run directory; created if missing. It must not hold a run already.
    trace
        The trace so far (e.g. ``TraceableNN.network_trace``); its probe set is written with
        the first manifest. Set :attr:`trace` to a newer snapshot before each
        :meth:`write_epoch` (or pass it there).
    max_pending
        Hand-overs that may wait for the writing thread before :meth:`write_epoch` blocks.
    interval
        Seconds between two hand-overs that :meth:`due` asks for (default
        :data:`WRITE_INTERVAL`, read when the writer is made; 0: every time).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        trace: NetworkTrace,
        *,
        max_pending: int = MAX_PENDING,
        interval: float | None = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending={max_pending}: at least one epoch must be able to wait")
        self._writer = _StagedRunWriter(directory, trace)  # the writing thread's only
        self.directory = self._writer.directory
        self.trace = trace
        self.queued: list[int] = []
        self.closed = False
        self.interval = WRITE_INTERVAL if interval is None else interval
        self._handed_at = -math.inf
        self._beat_at = -math.inf
        self._beat_queued = False
        self._progress: dict[str, Any] = {}
        self._thread = _WritingThread(f"nn_tracing run writer {self.directory.name}", max_pending)
        _OPEN.add(self)

    def due(self) -> bool:
        """Whether :attr:`interval` seconds have passed since the last :meth:`write_epoch`."""
        return time.monotonic() - self._handed_at >= self.interval

    @property
    def heartbeat(self) -> Heartbeat:
        """Keeps ``writer.json`` fresh (see :class:`~nn_tracing.rundir_live.Heartbeat`); the
        writing thread beats after every manifest. From the training thread, use
        :meth:`beat`."""
        return self._writer.heartbeat

    def beat(self, *, force: bool = False, **progress: Any) -> None:
        """Have the writing thread refresh ``writer.json`` with ``progress`` — at most every
        ``heartbeat.interval`` seconds unless ``force`` (as
        :meth:`~nn_tracing.rundir_live.Heartbeat.beat`). Never waits for the disk: while a
        heartbeat waits for the thread, later progress joins it (and a heartbeat that finds
        no room in the queue is dropped: the next one carries newer progress). Progress too
        soon for a heartbeat is kept for the next one, and the last is written with the final
        manifest."""
        if self.closed:
            return
        # a heartbeat is JSON without NaN: a loss not known yet is left out
        self._progress.update(
            (k, v) for k, v in progress.items() if not isinstance(v, float) or math.isfinite(v)
        )
        now = time.monotonic()
        if not force and now - self._beat_at < self.heartbeat.interval:
            return
        self._beat_at = now
        if not self._beat_queued:
            self._beat_queued = self._thread.offer(self._beat)

    def _beat(self) -> None:
        self._beat_queued = False
        progress, self._progress = self._progress, {}
        self._writer.heartbeat.beat(force=True, **progress)

    @property
    def epochs(self) -> list[int]:
        """The epochs whose manifest was written, ascending."""
        return list(self._writer.in_manifest)

    @property
    def error(self) -> BaseException | None:
        """The error that stopped the writing thread, if any."""
        return self._thread.error

    def _raise_error(self) -> None:
        if self._thread.error is not None:
            raise self._thread.error

    def write_epoch(self, epoch: int, trace: NetworkTrace | None = None) -> None:
        """Hand recorded ``epoch`` of ``trace`` (default :attr:`trace`) to the writing thread:
        its files, then the manifest that names them. Raises the writing thread's error, if
        one happened since the last call."""
        self.write_epochs([epoch], trace)

    def write_epochs(self, epochs: Sequence[int], trace: NetworkTrace | None = None) -> None:
        """Hand recorded ``epochs`` of ``trace`` (default :attr:`trace`) to the writing thread
        at once: each epoch's files, then one manifest that names them all."""
        if self.closed:
            raise RuntimeError("the run directory is closed")
        self._raise_error()
        trace = self.trace if trace is None else trace
        last = self.queued[-1] if self.queued else None
        for epoch in epochs:
            if epoch not in trace.epochs:
                raise ValueError(f"epoch {epoch} is not recorded in the trace")
            if last is not None and epoch <= last:
                raise ValueError(f"epoch {epoch} is not after the last written ({last})")
            last = epoch
        if not epochs:
            return
        self.queued.extend(epochs)
        self._thread.submit(partial(self._write_epochs, trace, list(epochs)))
        self._handed_at = time.monotonic()

    def _write_epochs(self, trace: NetworkTrace, epochs: list[int]) -> None:
        writer = self._writer
        writer.trace = trace
        try:
            for i, epoch in enumerate(epochs):
                writer.hold(i < len(epochs) - 1)
                writer.write_epoch(epoch)
        finally:
            writer.hold(False)

    def flush(self) -> None:
        """Wait until every epoch handed over is written (its manifest too); raise the
        writing thread's error if there was one."""
        self._thread.wait()
        self._raise_error()

    def close(self, status: str | None = None) -> None:
        """Write every epoch not written yet, the rest of the history and steps, the final
        weights, and the manifest with ``status`` (default: the trace's own); wait for it
        all. Raises the writing thread's error if there was one (the writer is closed all
        the same)."""
        if self.closed:
            return
        trace = self.trace
        final = status or trace.status
        if final not in FINAL_STATUSES:
            raise ValueError(f"status={final!r}: a run ends complete, stopped or diverged")
        last = self.queued[-1] if self.queued else -1
        self.queued.extend(epoch for epoch in trace.epochs if epoch > last)
        self._thread.submit(partial(self._close, trace, final))
        self._end()
        self._raise_error()

    def _close(self, trace: NetworkTrace, status: str) -> None:
        writer = self._writer
        writer.trace = trace
        # the epochs close adds share the final manifest (and the heartbeat after it)
        writer.hold(True)
        try:
            writer.close(status)
        finally:
            writer.hold(False)
        progress, self._progress = self._progress, {}
        with contextlib.suppress(OSError):  # the run is complete; a lost heartbeat only ages
            writer.heartbeat.beat(force=True, **progress)

    def abandon(self) -> None:
        """Stop without a final status (after an error in training): wait for what was
        handed over, end the thread. The manifest says ``running``; once this process is
        gone the run reads as ``interrupted``. Errors of the writing thread are not raised
        (:attr:`error` keeps them)."""
        if not self.closed:
            self._end()

    def _end(self) -> None:
        self.closed = True
        _OPEN.discard(self)
        self._thread.stop()
        self._writer.shutdown()
