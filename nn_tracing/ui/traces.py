"""Which trace the session is looking at, where it comes from, and how it is loaded.

A trace is referred to by a short string kept in session state:

* ``run:<name>`` — the run ``<name>`` of the runs folder: the run directory
  ``<runs folder>/<name>/`` (written by any process, perhaps still growing) or else the file
  ``<runs folder>/<name>.nntrace`` (:func:`~nn_tracing.runs.find_run`), whatever characters
  the name holds, spelled as :func:`~nn_tracing.runs.display_name` spells it (invisible
  characters and surrogates escaped, so the reference is safe in widget keys and URLs;
  :func:`run_ref`). The app shows that spelling and a deep link's ``trace=`` carries it;
* ``upload:<digest>`` — a file uploaded in this session, validated by
  :func:`~nn_tracing.store.load_trace` and kept in the server's bounded upload folder
  (:mod:`nn_tracing.ui.uploads`; not in ``runs/`` unless the user saves it there);
* ``job:<id>`` — the session's own run until its run directory has recorded ``E_0``; from
  then on the reference becomes that directory's ``run:<name>``, followed like any live run.

Loaded traces are shared by all sessions: a file through ``st.cache_resource`` keyed by its
path, size and modification time; a run directory by the stamp of its ``manifest.json``
(inode, ``mtime_ns``, size — a new epoch replaces the manifest, so it is a new load), only its
newest version kept (:class:`_RunVersions`). The catalogue caches each run's entry by the same
stamps and checks a run directory's writer on every listing
(:func:`~nn_tracing.runs.refresh_entry`). Every frame derived from a trace is cached with
``st.cache_data`` keyed by the trace's sha256 digest (see :mod:`nn_tracing.ui.cache`).

The server's absolute runs-folder path is shown only to a visitor on the server's own machine;
others see it relative to the working directory, or just its name (:func:`shown_runs_dir`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import streamlit as st

from .. import jobs
from ..runs import (
    MANIFEST_FILE,
    RunEntry,
    display_name,
    find_run,
    import_trace_file,
    parse_display_name,
    read_entry,
    refresh_entry,
    run_paths,
    runs_dir,
    safe_stem,
)
from ..store import TraceFormatError, load_trace
from ..timeaxis import use_axis
from ..trace import NetworkTrace
from . import state, uploads
from .uploads import UPLOAD_DIR_ENV, UploadRefused, upload_dir

__all__ = [
    "UPLOAD_DIR_ENV",
    "ActiveTrace",
    "UploadResult",
    "accept_upload",
    "catalogue",
    "no_trace_message",
    "open_trace",
    "resolve_active",
    "run_ref",
    "save_upload_to_runs",
    "scrub_paths",
    "set_active",
    "shown_runs_dir",
    "sync_trace_param",
    "upload_dir",
]


@dataclass(frozen=True)
class ActiveTrace:
    """The trace a page draws.

    ``key`` identifies its content for caches: the sha256 digest of a file or of a run
    directory's current manifest and files (a new epoch, a new key), or
    ``live:<job>:<version>`` for a run still training in this process. ``name`` is the name a
    deep link uses (``None`` for a job's trace, which has no file yet): for a run, its name as
    :func:`~nn_tracing.runs.display_name` spells it. ``label`` is safe to show as text.
    ``entry`` is the runs folder's entry of a run (``source == "runs"``): for a run directory
    it says whether its writer lives (:attr:`following`).
    """

    ref: str
    label: str
    trace: NetworkTrace
    key: str
    name: str | None
    path: Path | None
    source: str  # "runs", "upload" or "live"
    entry: RunEntry | None = None

    @property
    def following(self) -> bool:
        """A run directory whose writer lives (or may: stalled): it may still grow, so the
        Overview and Neurons pages poll its manifest (:mod:`nn_tracing.ui.follow`)."""
        return self.entry is not None and self.entry.writing

    @property
    def live(self) -> bool:
        """Still being recorded and training: this session's job, or a run directory whose
        writer is live."""
        return self.source == "live" or (self.entry is not None and self.entry.state == "live")


# -- what a visitor may see of the server's folders ----------------------------------------------
_FORWARDED = ("x-forwarded-for", "forwarded", "x-real-ip")


def _visitor_is_local() -> bool:
    """Whether the visitor is on the server's own machine: connected from a loopback address
    (``st.context.ip_address`` is then ``None``), with a ``Host`` header (so a real browser
    session, not a test), and not through a proxy (no forwarding header)."""
    try:
        ip_address = st.context.ip_address
        headers = {key.lower() for key in st.context.headers}
    except Exception:  # no session context
        return False
    return ip_address is None and "host" in headers and not headers & set(_FORWARDED)


def shown_runs_dir() -> str:
    """The runs folder as this visitor may see it: the absolute path on the server's own
    machine; elsewhere its path relative to the working directory, or only its name."""
    folder = runs_dir()
    if _visitor_is_local():
        return str(folder)
    try:
        return str(folder.relative_to(Path.cwd().resolve())) or "."
    except (OSError, ValueError):
        return folder.name or "runs"


def scrub_paths(text: str) -> str:
    """``text`` (e.g. an ``OSError`` message) with the runs and upload folders' absolute
    paths replaced by what :func:`shown_runs_dir` shows and ``<uploads>``."""
    if _visitor_is_local():
        return text
    text = text.replace(str(runs_dir()), shown_runs_dir())
    try:
        return text.replace(str(upload_dir()), "<uploads>")
    except OSError:
        return text


# -- the runs folder ---------------------------------------------------------------------------
def run_ref(name: str) -> str:
    """The reference ``run:<spelling>`` of the run whose file stem is ``name``."""
    return f"run:{display_name(name)}"


# Paths are cache keys as bytes: a file name that is not UTF-8 is a str with surrogates, which
# Streamlit's cache hashing cannot encode.
@st.cache_data(max_entries=2000, show_spinner=False)
def _entry(path: bytes, stamp: tuple[int, int, int]) -> RunEntry:
    return read_entry(Path(os.fsdecode(path)))


def run_stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when a run's content does: a file's (inode, mtime_ns, size); a run
    directory's manifest's (each epoch replaces it); ``None`` when there is none (yet)."""
    target = path / MANIFEST_FILE if path.is_dir() else path
    try:
        info = target.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def run_entry(path: Path) -> RunEntry | None:
    """The runs folder's entry of the run at ``path`` (cached by its stamp, its writer checked
    now); ``None`` if it went away. A run directory without a manifest yet (starting) is
    read as it is, uncached: there is nothing to read but its ``writer.json``."""
    stamp = run_stamp(path)
    if stamp is None:
        return read_entry(path) if path.is_dir() else None
    return refresh_entry(_entry(os.fsencode(path), stamp))


def catalogue() -> list[RunEntry]:
    """The runs in the runs folder — run directories and trace files — newest first
    (manifests cached by their stamp, run directories' writers checked on every call)."""
    entries = [entry for path in run_paths() if (entry := run_entry(path)) is not None]
    return sorted(entries, key=lambda e: (e.mtime_ns, e.name), reverse=True)


@st.cache_resource(max_entries=6, show_spinner="Reading the trace file…")
def _load(path: bytes, mtime_ns: int, size: int) -> NetworkTrace:
    return load_trace(Path(os.fsdecode(path)))


class _RunVersions:
    """The newest loaded version of each run directory, shared by all sessions.

    A run being written makes a new version with every epoch (its manifest's stamp); keeping
    only the newest per directory (and at most ``max_runs`` directories) bounds memory however
    long a run trains. One lock per directory: sessions that ask for the same new version at
    once load it once.
    """

    def __init__(self, max_runs: int = 6) -> None:
        self.max_runs = max_runs
        self._lock = threading.Lock()
        self._loaded: OrderedDict[bytes, tuple[tuple[int, int, int], NetworkTrace]] = OrderedDict()
        self._loading: dict[bytes, threading.Lock] = {}

    def get(self, path: Path, stamp: tuple[int, int, int]) -> NetworkTrace:
        key = os.fsencode(path)
        with self._lock:
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                held = self._loaded.get(key)
                if held is not None and held[0] == stamp:
                    self._loaded.move_to_end(key)
                    return held[1]
            trace = load_trace(path)
            with self._lock:
                self._loaded[key] = (stamp, trace)
                self._loaded.move_to_end(key)
                while len(self._loaded) > self.max_runs:
                    self._loaded.popitem(last=False)
            return trace


_run_versions = _RunVersions()


def load_trace_file(path: Path) -> NetworkTrace:
    """The trace of a file or run directory, loaded once per version (see the module)."""
    if path.is_dir():
        stamp = run_stamp(path)
        if stamp is None:
            raise TraceFormatError("the run has not recorded an epoch yet (no manifest.json)")
        return _run_versions.get(path, stamp)
    stat = path.stat()
    return _load(os.fsencode(path), stat.st_mtime_ns, stat.st_size)


# -- uploads -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class UploadResult:
    """What became of an upload: ``ok`` and a message for the user."""

    ok: bool
    message: str
    ref: str | None = None


def _uploads() -> list[dict[str, str]]:
    return list(state.get(state.UPLOADS, []))


def accept_upload(filename: str, data: bytes | IO[bytes]) -> UploadResult:
    """Validate an uploaded trace and make it the active trace of this session.

    ``data`` (bytes, or a binary file such as Streamlit's ``UploadedFile``) is copied to a
    temporary file of the upload folder and validated there by
    :func:`~nn_tracing.store.load_trace` (never pickle; no second copy in memory). A bad
    file, or one that does not fit in the bounded upload folder
    (:mod:`nn_tracing.ui.uploads`), gives ``ok=False`` and a specific message, and nothing
    else changes. A good one is kept under its digest — not in ``runs/`` — and listed for
    this session only.
    """
    shown = safe_stem(Path(filename or "upload").name)
    holder = state.session_id()
    if uploads.size_of(data) == 0:
        return UploadResult(False, f"{shown}: the file is empty.")
    try:
        tmp, _ = uploads.write_upload(data, holder)
    except UploadRefused as exc:
        return UploadResult(False, f"{shown} was not opened: {exc}")
    except OSError as exc:
        return UploadResult(False, f"{shown}: the upload could not be stored: {_os_problem(exc)}")
    try:
        trace = load_trace(tmp)
        digest, n_neurons, n_epochs = trace.digest or "", trace.n_neurons, len(trace.epochs)
        del trace
    except TraceFormatError as exc:
        tmp.unlink(missing_ok=True)
        return UploadResult(False, f"{shown} is not a trace nn_tracing can open: {exc}")
    try:
        uploads.keep(tmp, digest, holder)
    except UploadRefused as exc:
        return UploadResult(False, f"{shown} was not opened: {exc}")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        return UploadResult(False, f"{shown}: the upload could not be stored: {_os_problem(exc)}")
    listed = [u for u in _uploads() if u["digest"] != digest]
    listed.insert(0, {"digest": digest, "name": shown})
    state.put(state.UPLOADS, listed)
    ref = f"upload:{digest}"
    set_active(ref)
    return UploadResult(
        True,
        f"Opened {shown} ({n_neurons} neurons, {n_epochs} recorded epochs). "
        "It is not in runs/; use 'Save upload to runs/' to keep it there.",
        ref,
    )


def _os_problem(exc: OSError) -> str:
    """What went wrong, without the server's paths."""
    return exc.strerror or scrub_paths(str(exc))


def save_upload_to_runs(digest: str) -> UploadResult:
    """Copy an uploaded trace into the runs folder and make that copy active."""
    name = next((u["name"] for u in _uploads() if u["digest"] == digest), "upload")
    source = uploads.upload_path(digest)
    if not source.is_file():
        return UploadResult(
            False, f"The upload {name} is no longer on the server; upload it again."
        )
    try:
        path = import_trace_file(source, name, runs_dir())
    except OSError as exc:
        return UploadResult(
            False, f"Could not save {name} to {shown_runs_dir()}: {_os_problem(exc)}"
        )
    set_active(run_ref(path.stem))
    return UploadResult(True, f"Saved as {path.name} in the runs folder.", run_ref(path.stem))


# -- the active trace --------------------------------------------------------------------------
def set_active(ref: str) -> None:
    """Make ``ref`` the session's active trace."""
    state.put(state.ACTIVE_TRACE, ref)


class _Unavailable(Exception):
    """The referenced trace cannot be shown; the message says why, for the user."""


def _open(ref: str) -> ActiveTrace | None:
    """Load the trace ``ref`` names (``None`` while a job has recorded nothing yet)."""
    kind, _, ident = ref.partition(":")
    try:
        if kind == "job":
            job = jobs.get_job(ident)
            if job is None:
                raise _Unavailable("The training run this session started is no longer known.")
            handed_over = _job_run(job)
            if handed_over is not None:  # followed through its run directory, like any run
                return handed_over
            trace, snap = job.live_trace, job.snapshot()
            if trace is None:
                return None
            label = f"training: {job.name} ({snap.status if snap.done else 'running'})"
            key = f"live:{ident}:{snap.trace_version}"
            return ActiveTrace(ref, label, trace, key, None, None, "live")
        if kind == "upload":
            name = next((u["name"] for u in _uploads() if u["digest"] == ident), ident[:12])
            path = uploads.upload_path(ident)
            if not path.is_file():
                raise _Unavailable(
                    f"The upload {name} is no longer on the server; upload it again."
                )
            uploads.hold(ident, state.session_id())
            trace = load_trace_file(path)
            label = f"{name} (uploaded)"
            return ActiveTrace(ref, label, trace, trace.digest or ident, name, path, "upload")
        if kind == "run":
            return _open_run(ref, ident)
    except TraceFormatError as exc:
        raise _Unavailable(f"{ident} cannot be opened: {scrub_paths(str(exc))}") from None
    except OSError as exc:
        raise _Unavailable(f"{ident} cannot be read: {_os_problem(exc)}") from None
    raise _Unavailable(f"Unknown trace reference {display_name(ref)}.")


def _job_run(job: jobs.TrainingJob) -> ActiveTrace | None:
    """The run directory of the session's own run, opened as ``run:<name>`` once the runs
    folder lists it with ``E_0`` recorded (``None`` before, or if it cannot be opened)."""
    name = job.snapshot().saved_name
    if name is None or find_run(name) is None:
        return None
    try:
        return _open_run(run_ref(name), display_name(name))
    except _Unavailable:
        return None


def _open_run(ref: str, shown: str) -> ActiveTrace:
    """The run ``shown`` (a name as :func:`~nn_tracing.runs.display_name` spells it) of the
    runs folder: a run directory (perhaps still growing) or a trace file."""
    parsed = parse_display_name(shown)
    path = find_run(parsed) if parsed is not None else None
    if path is None:
        raise _Unavailable(f"The trace {shown} is no longer in {shown_runs_dir()}.")
    entry = run_entry(path)
    if entry is not None and entry.starting:
        raise _Unavailable(
            f"The run {shown} has started but not recorded its first epoch (E_0) yet; it "
            "opens as soon as it has."
        )
    trace = load_trace_file(path)
    return ActiveTrace(ref, shown, trace, trace.digest or shown, shown, path, "runs", entry)


def resolve_active() -> tuple[ActiveTrace | None, str | None]:
    """The active trace, loaded (or ``None``), and a problem to tell the user (or ``None``).

    When nothing is active, or the active trace cannot be opened, the newest run that opens
    becomes active. Never raises for a bad file: the problem names it.
    """
    ref = state.get(state.ACTIVE_TRACE)
    problem = None
    for candidate in _candidates(ref):
        try:
            active = _open(candidate)
        except _Unavailable as exc:
            problem = problem or str(exc)
            continue
        set_active(active.ref if active is not None else candidate)
        use_axis(active.trace if active is not None else None)  # "step" labels for a step trace
        return active, problem
    state.pop(state.ACTIVE_TRACE)
    return None, problem


def _candidates(ref: str | None) -> Iterator[str]:
    """The active reference, then (only if it does not open) every readable run, newest
    first: the folder is listed only when it is needed."""
    if ref:
        yield ref
    for entry in catalogue():
        if entry.readable and run_ref(entry.name) != ref:
            yield run_ref(entry.name)


def starting_job() -> str | None:
    """The name of the session's run when it is active but has recorded nothing yet."""
    ref = state.get(state.ACTIVE_TRACE) or ""
    kind, _, ident = ref.partition(":")
    job = jobs.get_job(ident) if kind == "job" else None
    return job.name if job is not None and job.live_trace is None else None


def no_trace_message() -> str:
    """What a page says when it has no trace to draw."""
    name = starting_job()
    if name:
        return (
            f"Training {name} has started: preparing the data and measuring the untrained "
            "network (E_0). This page fills in as soon as E_0 is recorded."
        )
    return (
        "No trace to show yet. Train a network from the sidebar, or upload a .nntrace file there."
    )


def ref_for_name(name: str) -> str | None:
    """The reference of the trace a deep link's ``trace=<name>`` means, if it exists.

    ``name`` is a run's name as :func:`~nn_tracing.runs.display_name` spells it (a name
    with no invisible character or backslash is spelled as itself; a text that is no valid
    spelling is taken as the name itself), or the name of an upload of this session.
    """
    parsed = parse_display_name(name)
    candidate = name if parsed is None else parsed
    if find_run(candidate) is not None:
        return run_ref(candidate)
    for upload in _uploads():
        if upload["name"] == name:
            return f"upload:{upload['digest']}"
    return None


def sync_trace_param() -> None:
    """Apply a new ``trace=`` query parameter (a deep link) to the session's active trace."""
    requested = st.query_params.get("trace")
    if not requested or requested == state.get(state.APPLIED_TRACE_PARAM):
        return
    state.put(state.APPLIED_TRACE_PARAM, requested)
    ref = ref_for_name(requested)
    if ref is None:
        state.put(
            state.TRACE_MESSAGE,
            (
                "warning",
                f"The link names a trace '{display_name(requested[:200])}' that is not in "
                f"{shown_runs_dir()}; "
                "showing another trace instead. (Uploads are visible only in the session that "
                "uploaded them.)",
            ),
        )
    else:
        set_active(ref)


def publish_trace_param(active: ActiveTrace | None) -> None:
    """Keep ``trace=`` in the URL equal to the active trace's name."""
    name = active.name if active is not None else None
    if name:
        if st.query_params.get("trace") != name:
            st.query_params["trace"] = name
    elif "trace" in st.query_params:
        del st.query_params["trace"]
    state.put(state.APPLIED_TRACE_PARAM, name or st.query_params.get("trace"))


def open_trace(ref: str) -> ActiveTrace:
    """Open the trace ``ref`` names (``run:<name>``, ``upload:<digest>``) without making it
    the active one — the Compare page's other runs. Raises :class:`ValueError` with the
    reason, for the user."""
    try:
        found = _open(ref)
    except _Unavailable as exc:
        raise ValueError(str(exc)) from None
    if found is None:
        raise ValueError("that run has not recorded its first epoch yet")
    return found
