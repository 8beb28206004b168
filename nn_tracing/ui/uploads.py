"""The upload folder: where uploaded traces wait, bounded in size and emptied of unused files.

An uploaded trace is written to disk (never held in memory beyond Streamlit's own copy),
validated there by :func:`~nn_tracing.store.load_trace`, and kept as ``<sha256>.nntrace`` in
the server's upload folder — ``$NN_TRACING_UPLOAD_DIR``, else a private folder of the server's
user in the system's temporary folder. Anyone who can reach the server can upload, so the
folder is bounded:

* **Size.** Uploads together take at most ``$NN_TRACING_UPLOAD_LIMIT`` — a size (``2GiB``,
  ``500MiB``, ``3e9``), a share of the free disk (``25%``; the disk the folder is on, counting
  what uploads hold now as free), or ``off``. By default :data:`DEFAULT_LIMIT` or half the free
  disk, whichever is smaller. A new upload first evicts uploads no session holds, then older
  uploads of the same session; if it still does not fit it is refused with a message that
  says so.
* **Sessions.** A session holds the uploads it made or opened. It lets go when Streamlit no
  longer knows it as connected (the tab was closed) and :data:`GRACE_SECONDS` have passed
  since it last used the upload (a reload or a dropped connection comes back within that),
  or when it has not used the upload for ``$NN_TRACING_UPLOAD_KEEP_HOURS`` hours (default
  :data:`DEFAULT_KEEP_HOURS`) even while connected. Uploads nobody holds are deleted by the
  next sweep: before every upload, and at most once a minute from any session's run.
* **Server start.** The first run of the app shell in a server process empties the folder: the
  sessions that held those files ended with the previous process. (Two servers must not
  share one upload folder.)

Only files named the way this module names them are ever deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from ..budget import parse_size
from ..estimate import format_bytes

__all__ = [
    "DEFAULT_KEEP_HOURS",
    "DEFAULT_LIMIT",
    "GRACE_SECONDS",
    "KEEP_HOURS_ENV",
    "LIMIT_ENV",
    "UPLOAD_DIR_ENV",
    "UploadRefused",
    "clean_folder",
    "hold",
    "keep",
    "size_of",
    "sweep",
    "tidy",
    "upload_dir",
    "upload_limit",
    "upload_path",
    "write_upload",
]

logger = logging.getLogger("nn_tracing.ui")

UPLOAD_DIR_ENV = "NN_TRACING_UPLOAD_DIR"
LIMIT_ENV = "NN_TRACING_UPLOAD_LIMIT"
KEEP_HOURS_ENV = "NN_TRACING_UPLOAD_KEEP_HOURS"
#: Default bound of the upload folder (and never more than half the free disk).
DEFAULT_LIMIT = 2 * 2**30
#: Default hours an upload is kept after its last use, even while its session is connected.
DEFAULT_KEEP_HOURS = 24.0
#: Seconds an upload stays held after its session last used it, connected or not.
GRACE_SECONDS = 600.0
#: Seconds between two sweeps started by page runs.
SWEEP_EVERY_SECONDS = 60.0
#: Age (seconds) after which a temporary file of an upload that never finished is removed.
STALE_TEMP_SECONDS = 3600.0

_UPLOAD_NAME = re.compile(r"[0-9a-f]{64}\.nntrace")
_TEMP_PREFIX = ".upload-"
_TEMP_NAME = re.compile(r"\.upload-[A-Za-z0-9_]+\.tmp")

_lock = threading.Lock()
#: digest -> {holder (the app's session id): (Streamlit session id, time of last use)}
_holders: dict[str, dict[str, tuple[str | None, float]]] = {}
_started = False
_last_sweep = 0.0
_private_dir: Path | None = None


class UploadRefused(Exception):
    """An upload does not fit in the upload folder; the message says why, for the user."""


# -- where --------------------------------------------------------------------------------------
def _own_private(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def upload_dir() -> Path:
    """The upload folder (created if needed): ``$NN_TRACING_UPLOAD_DIR``, else
    ``<temp>/nn_tracing-uploads-<uid>`` (mode 0700), or a fresh private folder when that name
    is taken by someone else or is a symbolic link."""
    global _private_dir
    configured = os.environ.get(UPLOAD_DIR_ENV, "").strip()
    if configured:
        base = Path(configured).expanduser()
        base.mkdir(parents=True, exist_ok=True)
        return base
    if _private_dir is not None and _own_private(_private_dir):
        return _private_dir
    shared = Path(tempfile.gettempdir()) / f"nn_tracing-uploads-{os.getuid()}"
    with contextlib.suppress(OSError):
        shared.mkdir(mode=0o700, exist_ok=True)
    if _own_private(shared):
        _private_dir = shared
    else:
        _private_dir = Path(tempfile.mkdtemp(prefix="nn_tracing-uploads-"))
    return _private_dir


def upload_path(digest: str) -> Path:
    """The file of the upload ``digest`` (it may not exist)."""
    return upload_dir() / f"{digest}.nntrace"


def _files(directory: Path) -> list[tuple[Path, os.stat_result]]:
    """The uploads of ``directory`` with their stat, named as this module names them."""
    out = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        if _UPLOAD_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                out.append((Path(entry.path), entry.stat(follow_symlinks=False)))
            except OSError:
                continue
    return out


# -- the bound ----------------------------------------------------------------------------------
def upload_limit(directory: Path | None = None) -> tuple[int | None, str]:
    """The bound of the upload folder in bytes (``None``: no bound) and how it is set."""
    directory = directory or upload_dir()
    held = sum(info.st_size for _, info in _files(directory))
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        free = DEFAULT_LIMIT * 2
    available = free + held
    configured = os.environ.get(LIMIT_ENV, "").strip()
    if configured:
        try:
            return parse_size(configured, available), f"{LIMIT_ENV}={configured}"
        except ValueError:
            logger.warning("%s=%r is not a size; using the default bound", LIMIT_ENV, configured)
    limit = min(DEFAULT_LIMIT, available // 2)
    return limit, f"{LIMIT_ENV} unset: {format_bytes(DEFAULT_LIMIT)} or half the free disk"


def _keep_seconds() -> float:
    configured = os.environ.get(KEEP_HOURS_ENV, "").strip()
    try:
        hours = float(configured) if configured else DEFAULT_KEEP_HOURS
    except ValueError:
        hours = DEFAULT_KEEP_HOURS
    return max(hours, 0.0) * 3600.0


# -- who holds what -----------------------------------------------------------------------------
def _session_alive(streamlit_session: str | None) -> bool:
    """Whether Streamlit knows the session as connected (``True`` when there is no server to
    ask, as under ``AppTest``: then only the clock lets go of uploads)."""
    from streamlit import runtime

    if streamlit_session is None or not runtime.exists():
        return True
    return runtime.get_instance().is_active_session(streamlit_session)


def _streamlit_session() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def hold(digest: str, holder: str, now: float | None = None) -> None:
    """Record that the session ``holder`` uses the upload ``digest`` now."""
    with _lock:
        _holders.setdefault(digest, {})[holder] = (_streamlit_session(), now or time.time())


def _held_by(digest: str, now: float) -> set[str]:
    """The holders that still hold ``digest`` at ``now`` (call with the lock held)."""
    keep = _keep_seconds()
    out = set()
    for holder, (session, used) in _holders.get(digest, {}).items():
        idle = now - used
        if idle < GRACE_SECONDS or (idle < keep and _session_alive(session)):
            out.add(holder)
    return out


def _last_use(digest: str, info: os.stat_result) -> float:
    uses = [used for _, used in _holders.get(digest, {}).values()]
    return max(uses, default=info.st_mtime)


# -- sweeping -----------------------------------------------------------------------------------
def _remove(path: Path) -> int:
    try:
        size = path.lstat().st_size
        path.unlink()
    except OSError:
        return 0
    return size


def sweep(now: float | None = None) -> int:
    """Delete the uploads no session holds and stale temporary files; return bytes freed."""
    global _last_sweep
    now = now or time.time()
    directory = upload_dir()
    freed = 0
    with _lock:
        _last_sweep = now
        for path, _ in _files(directory):
            digest = path.name.removesuffix(".nntrace")
            if not _held_by(digest, now):
                freed += _remove(path)
                _holders.pop(digest, None)
        for digest in [d for d in _holders if not upload_path(d).exists()]:
            _holders.pop(digest, None)
    try:
        temps = [e for e in os.scandir(directory) if _TEMP_NAME.fullmatch(e.name)]
    except OSError:
        temps = []
    for entry in temps:
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS:
                freed += _remove(Path(entry.path))
        except OSError:
            continue
    return freed


def clean_folder() -> int:
    """Delete every upload and temporary upload file of the folder; return how many."""
    directory = upload_dir()
    count = 0
    with _lock:
        _holders.clear()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return 0
        for entry in entries:
            if _UPLOAD_NAME.fullmatch(entry.name) or _TEMP_NAME.fullmatch(entry.name):
                _remove(Path(entry.path))
                count += 1
    return count


def tidy(now: float | None = None) -> None:
    """Called on every run of the app shell: empty the folder on the first run in this
    process (server start), then sweep at most once every :data:`SWEEP_EVERY_SECONDS`."""
    global _started
    now = now or time.time()
    try:
        if not _started:
            with _lock:
                first, _started = not _started, True
            if first:
                removed = clean_folder()
                if removed:
                    logger.info("server start: removed %d files of an earlier server", removed)
                return
        if now - _last_sweep >= SWEEP_EVERY_SECONDS:
            sweep(now)
    except OSError:  # the folder cannot be made or read: uploads will say so themselves
        logger.warning("could not tidy the upload folder", exc_info=True)


# -- storing ------------------------------------------------------------------------------------
def _make_room(size: int, holder: str, now: float, *, evict: bool) -> None:
    """Make sure ``size`` more bytes fit (evicting when ``evict``), else raise
    :class:`UploadRefused`. Call with the lock held."""
    directory = upload_dir()
    limit, source = upload_limit(directory)
    if limit is None:
        return
    if size > limit:
        raise UploadRefused(
            f"the file ({format_bytes(size)}) is larger than this server's space for uploads "
            f"({format_bytes(limit)}, {source})."
        )
    files = _files(directory)
    used = sum(info.st_size for _, info in files)
    if used + size <= limit:
        return
    evictable = []
    for path, info in files:
        digest = path.name.removesuffix(".nntrace")
        holders = _held_by(digest, now)
        if not holders or holders == {holder}:
            evictable.append((bool(holders), _last_use(digest, info), path, info.st_size))
    evictable.sort()  # uploads nobody holds first, then this session's own, oldest first
    need = used + size - limit
    if sum(item[3] for item in evictable) < need:
        raise UploadRefused(
            f"this server's space for uploads is full ({format_bytes(used)} of "
            f"{format_bytes(limit)} held by open sessions, {source}). Try again later, or "
            "ask the server's owner to raise it."
        )
    if not evict:
        return
    for _, _, path, file_size in evictable:
        if need <= 0:
            break
        need -= _remove(path) or file_size
        _holders.pop(path.name.removesuffix(".nntrace"), None)


def size_of(data: bytes | IO[bytes]) -> int:
    """Bytes in ``data`` (from its current position, for a file)."""
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    size = getattr(data, "size", None)
    if isinstance(size, int):
        return size
    position = data.tell()
    end = data.seek(0, os.SEEK_END)
    data.seek(position)
    return end - position


def write_upload(data: bytes | IO[bytes], holder: str) -> tuple[Path, int]:
    """Write an upload to a temporary file of the upload folder; return it and its size.

    Raises :class:`UploadRefused` (before anything is written) when the file cannot fit even
    after every eviction allowed, and ``OSError`` when it cannot be written. The caller
    validates the file and then keeps it with :func:`keep` (or deletes it).
    """
    size = size_of(data)
    now = time.time()
    sweep(now)
    with _lock:
        _make_room(size, holder, now, evict=False)
    fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".tmp", dir=upload_dir())
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, (bytes, bytearray)):
                out.write(data)
            else:
                data.seek(0)
                shutil.copyfileobj(data, out, 2**20)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), size


def keep(tmp: Path, digest: str, holder: str) -> Path:
    """Keep a validated upload under its digest (evicting what it needs); return its path.

    Raises :class:`UploadRefused` when it does not fit (``tmp`` is then deleted).
    """
    target = upload_path(digest)
    now = time.time()
    with _lock:
        try:
            if not target.exists():
                _make_room(tmp.stat().st_size, holder, now, evict=True)
                os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        _holders.setdefault(digest, {})[holder] = (_streamlit_session(), now)
    return target
