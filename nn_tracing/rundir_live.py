"""Who writes a run directory, and whether that writer is still alive.

A process that writes a run directory (:class:`~nn_tracing.rundir.RunWriter`) keeps a small
``writer.json`` beside the manifest, replaced atomically at most every
:data:`HEARTBEAT_SECONDS` while it trains (:class:`Heartbeat`)::

    {"pid": 4242, "host": "lab-07", "boot_id": "…", "proc_start": 123456, "started": 1.7e9,
     "heartbeat": 1.7e9, "progress": {"epoch": 3, "epochs": 30, "step": 12, …}}

A reader tells a live run from a dead one without trusting the writer (:func:`liveness`):

* the manifest's status is final (``complete``, ``stopped``, ``diverged``) → ``finished``;
* the writer is on this machine (same host name and boot id): if no process has its pid and
  start time any more → ``interrupted``; if it has, ``live`` while the heartbeat is younger
  than :data:`STALL_SECONDS`, else ``stalled`` (alive, but not training: paused, swapping,
  stuck in a debugger);
* the writer is on another machine (a shared disk): ``live`` while the heartbeat is young,
  ``stalled`` after :data:`STALL_SECONDS`, ``interrupted`` after :data:`GONE_SECONDS`;
* no ``writer.json`` at all (an old writer, or one that never started): ``interrupted``.

The file is read as untrusted input: bounded size, no symlink, every field type-checked.
Nothing here imports Streamlit or torch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import stat
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "FINAL_STATUSES",
    "GONE_SECONDS",
    "HEARTBEAT_SECONDS",
    "STALL_SECONDS",
    "WRITER_FILE",
    "Heartbeat",
    "Liveness",
    "WriterInfo",
    "liveness",
    "process_start",
    "read_writer",
    "this_machine",
]

WRITER_FILE = "writer.json"
#: Seconds between two heartbeats of a training writer (at most).
HEARTBEAT_SECONDS = 1.0
#: A heartbeat older than this (seconds) marks a writer that lives but does not train.
STALL_SECONDS = 30.0
#: A writer on another machine whose heartbeat is older than this is taken as gone.
GONE_SECONDS = 600.0
#: Statuses a closed writer leaves in the manifest.
FINAL_STATUSES = ("complete", "stopped", "diverged")
_MAX_WRITER_BYTES = 64 * 1024
#: Progress fields a heartbeat may carry, and their types.
_PROGRESS_FIELDS: dict[str, type | tuple[type, ...]] = {
    "epoch": int,
    "epochs": int,
    "step": int,
    "steps_per_epoch": int,
    "loss": (int, float),
    "fraction": (int, float),
    "eta": (int, float),
    "elapsed": (int, float),
    "message": str,
    "stop_requested": bool,
}


def _boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:64]
    return ""


def this_machine() -> tuple[str, str]:
    """``(host name, boot id)`` of this machine (the boot id is empty where unknown)."""
    return socket.gethostname()[:255], _boot_id()


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), or ``None`` if
    there is no such process. Where ``/proc`` is missing, ``0`` for a live pid (the start
    cannot be compared, only the pid)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return _pid_alive_fallback(pid)
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line: starttime
    except (IndexError, ValueError):
        return None


def _pid_alive_fallback(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0
    return 0


@dataclass(frozen=True)
class WriterInfo:
    """The content of a ``writer.json``, validated."""

    pid: int
    host: str
    boot_id: str
    proc_start: int
    started: float
    heartbeat: float
    progress: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "host": self.host,
            "boot_id": self.boot_id,
            "proc_start": self.proc_start,
            "started": self.started,
            "heartbeat": self.heartbeat,
            "progress": dict(self.progress),
        }

    @property
    def on_this_machine(self) -> bool:
        host, boot = this_machine()
        return self.host == host and (not self.boot_id or not boot or self.boot_id == boot)

    def process_alive(self) -> bool:
        """Whether the writing process still exists (only meaningful on this machine)."""
        start = process_start(self.pid)
        return start is not None and (start == self.proc_start or not self.proc_start or not start)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"writer.json: {name} must be a finite number")
    return float(value)


def _parse_writer(raw: bytes) -> WriterInfo:
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("writer.json is not an object")
    pid, proc_start = data.get("pid"), data.get("proc_start", 0)
    for name, value in (("pid", pid), ("proc_start", proc_start)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise ValueError(f"writer.json: {name} must be a non-negative integer")
    host, boot = data.get("host"), data.get("boot_id", "")
    if not isinstance(host, str) or not isinstance(boot, str) or len(host) > 255 or len(boot) > 64:
        raise ValueError("writer.json: host and boot_id must be short strings")
    progress_in = data.get("progress", {})
    if not isinstance(progress_in, dict):
        raise ValueError("writer.json: progress must be an object")
    progress: dict[str, Any] = {}
    for key, kind in _PROGRESS_FIELDS.items():
        value = progress_in.get(key)
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            if isinstance(value, float) and not math.isfinite(value):
                continue
            progress[key] = value[:500] if isinstance(value, str) else value
    return WriterInfo(
        pid=pid,
        host=host,
        boot_id=boot,
        proc_start=proc_start,
        started=_number(data.get("started"), "started"),
        heartbeat=_number(data.get("heartbeat"), "heartbeat"),
        progress=progress,
    )


def read_writer(directory: str | os.PathLike) -> WriterInfo | None:
    """The validated ``writer.json`` of a run directory, or ``None`` if it is missing or bad
    (a bad file is as good as none: the run then reads as not alive)."""
    path = Path(directory) / WRITER_FILE
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(_MAX_WRITER_BYTES + 1)
        if len(raw) > _MAX_WRITER_BYTES:
            return None
        return _parse_writer(raw)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


class Heartbeat:
    """Keeps ``writer.json`` of ``directory`` fresh: who writes it, and how far it is.

    :meth:`beat` replaces the file (temporary file and rename; no fsync: a lost heartbeat
    only makes the writer look older) at most every ``interval`` seconds unless forced.
    """

    def __init__(self, directory: str | os.PathLike, interval: float = HEARTBEAT_SECONDS) -> None:
        self.directory = Path(directory)
        self.interval = interval
        host, boot = this_machine()
        pid = os.getpid()
        self.info = WriterInfo(
            pid=pid,
            host=host,
            boot_id=boot,
            proc_start=process_start(pid) or 0,
            started=time.time(),
            heartbeat=time.time(),
        )
        self._last = -math.inf

    def beat(self, *, force: bool = False, **progress: Any) -> bool:
        """Write the heartbeat with ``progress`` (fields of :data:`_PROGRESS_FIELDS`), unless
        one was written less than ``interval`` seconds ago; returns whether it wrote."""
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return False
        self._last = now
        merged = {**self.info.progress}
        for key, value in progress.items():
            if key not in _PROGRESS_FIELDS or value is None:
                continue
            if isinstance(value, float) and not math.isfinite(value):  # a diverged loss
                merged.pop(key, None)
            else:
                merged[key] = value
        self.info = replace(self.info, heartbeat=time.time(), progress=merged)
        data = json.dumps(self.info.to_dict(), allow_nan=False, default=str).encode()
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".writer.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.directory / WRITER_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return True


@dataclass(frozen=True)
class Liveness:
    """What a run directory's writer is doing, as a reader can tell.

    ``state``: ``live``, ``stalled``, ``interrupted`` or ``finished``. ``last_epoch``: the last
    recorded epoch the manifest lists (``None`` before ``E_0``). ``since_write``: seconds since
    the writer last wrote anything (heartbeat or manifest). ``writer``: its ``writer.json``.
    """

    state: str
    last_epoch: int | None
    since_write: float | None
    detail: str
    writer: WriterInfo | None = None

    @property
    def live(self) -> bool:
        return self.state == "live"

    @property
    def progress(self) -> dict[str, Any]:
        return dict(self.writer.progress) if self.writer is not None else {}


def _mtime(path: Path) -> float | None:
    try:
        return path.lstat().st_mtime
    except OSError:
        return None


def liveness(
    directory: str | os.PathLike,
    status: str | None,
    last_epoch: int | None,
    now: float | None = None,
) -> Liveness:
    """Whether the writer of the run directory ``directory`` is alive (see the module).

    ``status`` is the manifest's raw status (``running`` while the writer has not closed;
    ``None`` when there is no manifest yet), ``last_epoch`` the last epoch it lists.
    """
    root = Path(directory)
    now = time.time() if now is None else now
    writer = read_writer(root)
    stamps = [t for t in (_mtime(root / "manifest.json"),) if t is not None]
    if writer is not None:
        stamps.append(writer.heartbeat)
    since = max(now - max(stamps), 0.0) if stamps else None
    if status in FINAL_STATUSES:
        return Liveness("finished", last_epoch, since, f"the run ended ({status})", writer)
    last = f"E_{last_epoch}" if last_epoch is not None else "no epoch yet"
    if writer is None:
        return Liveness(
            "interrupted", last_epoch, since, f"no writer is known; last complete {last}", None
        )
    age = max(now - writer.heartbeat, 0.0)
    if writer.on_this_machine:
        if not writer.process_alive():
            detail = f"its writer (pid {writer.pid}) is gone; last complete {last}"
            return Liveness("interrupted", last_epoch, since, detail, writer)
        if age > STALL_SECONDS:
            detail = f"pid {writer.pid} lives but has not trained for {age:.0f} s; last {last}"
            return Liveness("stalled", last_epoch, since, detail, writer)
        return Liveness(
            "live", last_epoch, since, f"training (pid {writer.pid}); last {last}", writer
        )
    where = f"pid {writer.pid} on {writer.host}"
    if age > GONE_SECONDS:
        detail = f"no sign of {where} for {age:.0f} s; last complete {last}"
        return Liveness("interrupted", last_epoch, since, detail, writer)
    if age > STALL_SECONDS:
        return Liveness("stalled", last_epoch, since, f"{where}: silent for {age:.0f} s", writer)
    return Liveness("live", last_epoch, since, f"training ({where}); last {last}", writer)
