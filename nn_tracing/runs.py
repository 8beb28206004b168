"""The runs folder: where traces are kept, a fast catalogue of them, and the demo trace.

The folder is ``runs/`` (relative to the working directory) unless the environment variable
``NN_TRACING_RUNS_DIR`` names another. It holds two kinds of run:

* **trace files** ``<name>.nntrace`` (the zip: finished, shared, uploaded);
* **run directories** ``<name>/`` (:mod:`nn_tracing.rundir`): written epoch by epoch while a
  process trains, by this app or by any script. A visible sub-folder is a run directory when it
  holds a ``manifest.json``, or only a ``writer.json`` (its writer has started but not recorded
  ``E_0`` yet: listed as *starting*, not openable yet). A symbolic link to a folder is never
  followed, and a folder named ``*.nntrace`` is not a run.

Listing reads only each run's manifest (:func:`~nn_tracing.store.read_manifest`), never a
table, so it stays fast however large the runs are; a run directory's entry also says whether
its writer lives (:func:`~nn_tracing.rundir_live.liveness`: ``live``, ``stalled``,
``interrupted`` or ``finished``), refreshed by :func:`refresh_entry` without reading the
manifest again. A run is named by its file stem (``runs/moons-demo.nntrace`` is
``moons-demo``) or its folder's name, whatever characters it holds: every run the folder lists
opens by its name. When ``x.nntrace`` and ``x/`` both exist (``nn-tracing pack runs/x`` makes
that pair), **the directory wins**: ``x`` names the directory (it may still grow; the file is
its packed copy), the file is not listed, and :func:`new_run_path` / :func:`new_run_directory`
avoid both. A name is shown (and put in a deep link's ``trace=`` parameter) as
:func:`display_name`, which spells control, format and other invisible characters as visible
escapes (``\\n``, ``\\u202e``); :func:`parse_display_name` reads such a spelling back. Only
runs inside the folder open: no separators, no hidden names, no symbolic link that leads out of
it.

Housekeeping (:func:`delete_run`, :func:`rename_run`) acts only on runs the folder lists, by
name, never outside it: a symbolic link is removed as a link (its target is never touched), a
run whose writer lives is refused, and a rename never replaces an existing run.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import unicodedata
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Any

from .config import TrainConfig
from .rundir_live import FINAL_STATUSES, WRITER_FILE, Liveness, liveness
from .store import TraceFormatError, read_manifest
from .timeaxis import axis_of, time_key

__all__ = [
    "DEMO_CONFIG",
    "DEMO_NAME",
    "MANIFEST_FILE",
    "RUNS_DIR_ENV",
    "TRACE_SUFFIX",
    "WRITING_STATES",
    "RunEntry",
    "RunRefused",
    "delete_run",
    "display_name",
    "ensure_demo_trace",
    "find_run",
    "import_trace_file",
    "list_runs",
    "name_problem",
    "new_run_directory",
    "new_run_path",
    "parse_display_name",
    "read_entry",
    "refresh_entry",
    "rename_run",
    "run_directories",
    "run_files",
    "run_name",
    "run_paths",
    "runs_dir",
    "safe_stem",
]

RUNS_DIR_ENV = "NN_TRACING_RUNS_DIR"
TRACE_SUFFIX = ".nntrace"
#: The file that makes a folder of the runs folder a run directory (with ``writer.json``).
MANIFEST_FILE = "manifest.json"
#: Liveness states whose writer may still add epochs: the app follows such a run, and
#: housekeeping refuses to touch it.
WRITING_STATES = ("live", "stalled")
DEMO_NAME = "demo-moons"
#: The demo run made on first start: small enough to train in about a second on a laptop CPU,
#: large enough (and with a learning rate high enough) that some ReLU neurons die; it keeps
#: the weights of every recorded epoch, so every view of every page works on it (the epoch
#: slider of Breadcrumbs, "Since when?", spectral features, the weight heatmaps). Its cost
#: and the second demo (digits): :mod:`nn_tracing.demos`.
DEMO_CONFIG = TrainConfig(
    dataset="moons",
    hidden_sizes=(24, 24),
    activation="relu",
    epochs=30,
    batch_size=64,
    lr=0.03,
    seed=0,
    n_samples=1000,
    probe_size=256,
    keep_weights=True,
)

_STEM_OK = re.compile(r"[^A-Za-z0-9._-]+")


def runs_dir() -> Path:
    """The runs folder: ``$NN_TRACING_RUNS_DIR`` or ``./runs`` (absolute; not created)."""
    configured = os.environ.get(RUNS_DIR_ENV, "").strip()
    return Path(configured or "runs").expanduser().resolve()


def safe_stem(text: str, *, max_length: int = 80) -> str:
    """A file-name stem made from ``text``: letters, digits, ``.``, ``_`` and ``-`` only.

    >>> safe_stem("my run: lr=0.1 / 2")
    'my-run-lr-0.1-2'
    """
    stem = _STEM_OK.sub("-", text).strip("-.")
    if stem.lower().endswith(TRACE_SUFFIX):
        stem = stem[: -len(TRACE_SUFFIX)]
    return stem[:max_length].strip("-.") or "trace"


#: Unicode categories spelled as escapes by :func:`display_name`: controls, format characters
#: (bidirectional overrides, zero-width joiners), surrogates (bytes that are not UTF-8),
#: private-use and unassigned code points, line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPE = re.compile(r"\\(?:([\\nrt])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")


def _spelled(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    category = unicodedata.category(char)
    if category not in _HIDDEN_CATEGORIES and not (category == "Zs" and char != " "):
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def display_name(name: str) -> str:
    r"""``name`` with every character a reader could not see spelled as an escape.

    Backslashes are doubled, so the spelling is one-to-one (:func:`parse_display_name` reads
    it back). Letters of any script, digits, punctuation and plain spaces are kept; control
    characters, bidirectional overrides, zero-width and other invisible characters, other
    kinds of space, and surrogates (a file name whose bytes are not UTF-8) are escaped.

    >>> display_name("my run")
    'my run'
    >>> print(display_name("evil\u202egnp.exe\nx\\y"))
    evil\u202egnp.exe\nx\\y
    """
    return "".join(_spelled(char) for char in name)


def parse_display_name(text: str) -> str | None:
    r"""The name that :func:`display_name` spelled as ``text``; ``None`` if ``text`` holds a
    backslash that starts no escape.

    >>> parse_display_name(r"a\u202eb\\c") == "a\u202eb\\c"
    True
    """
    out: list[str] = []
    position = 0
    for match in _UNESCAPE.finditer(text):
        if "\\" in text[position : match.start()]:
            return None
        out.append(text[position : match.start()])
        short, *codes = match.groups()
        if short is not None:
            out.append({"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}[short])
        else:
            out.append(chr(int(next(c for c in codes if c is not None), 16)))
        position = match.end()
    if "\\" in text[position:]:
        return None
    out.append(text[position:])
    return "".join(out)


@dataclass(frozen=True)
class RunEntry:
    """One run of the runs folder — a trace file or a run directory — described from its
    manifest.

    ``error`` is set (and the other descriptive fields are ``None``) when the run cannot be
    read; such entries are listed so that the user sees them, but cannot be opened. A run
    directory also carries ``liveness``: whether its writer lives, as of the listing
    (:func:`refresh_entry` brings it up to date); a trace file has none.

    Fields
    ------
    kind
        ``"file"`` (``<name>.nntrace``) or ``"directory"`` (``<name>/``).
    size, mtime_ns
        A file's size and modification time; for a directory, the size of the files its
        manifest names and the time its manifest was last written (its last epoch).
    last_epoch
        The last recorded epoch the manifest lists (``None`` before ``E_0``).
    """

    name: str
    path: Path
    size: int
    mtime_ns: int
    dataset: str | None = None
    architecture: str | None = None
    n_recorded: int = 0
    epochs: int | None = None
    status: str | None = None
    created: str | None = None
    n_neurons: int = 0
    error: str | None = None
    kind: str = "file"
    last_epoch: int | None = None
    liveness: Liveness | None = None
    #: what ``last_epoch`` counts: ``"epoch"`` or ``"step"`` (:mod:`nn_tracing.timeaxis`)
    axis: str = "epoch"

    @property
    def is_directory(self) -> bool:
        return self.kind == "directory"

    @property
    def starting(self) -> bool:
        """A run directory whose writer has not recorded ``E_0`` yet (no manifest)."""
        return self.is_directory and self.error is None and self.status is None

    @property
    def readable(self) -> bool:
        """Whether the run opens: it was read without error and has recorded an epoch."""
        return self.error is None and not self.starting

    @property
    def state(self) -> str | None:
        """A run directory's writer: ``live``, ``stalled``, ``interrupted`` or ``finished``
        (:func:`~nn_tracing.rundir_live.liveness`); ``None`` for a file or an unreadable run."""
        return self.liveness.state if self.liveness is not None else None

    @property
    def writing(self) -> bool:
        """Whether its writer may still add epochs (``live`` or ``stalled``): the app follows
        such a run, and :func:`delete_run` / :func:`rename_run` refuse it."""
        return self.state in WRITING_STATES

    @property
    def since_write(self) -> float | None:
        """Seconds since its writer last wrote anything (heartbeat or epoch), at the check."""
        return self.liveness.since_write if self.liveness is not None else None

    @property
    def detail(self) -> str:
        """Its writer's state in a sentence (empty for a file)."""
        return self.liveness.detail if self.liveness is not None else ""

    @property
    def shown_name(self) -> str:
        """The name as the app shows it and a deep link spells it (:func:`display_name`)."""
        return display_name(self.name)

    @property
    def date(self) -> str:
        """``YYYY-MM-DD HH:MM`` from the manifest, else from the file's modification time."""
        if self.created:
            try:
                return datetime.fromisoformat(self.created).astimezone().strftime("%Y-%m-%d %H:%M")
            except ValueError:
                pass
        return datetime.fromtimestamp(self.mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M")

    def mark(self, now: float | None = None) -> str:
        """A run directory's state in a few words — ``● live · E_12 · 3 s ago`` (the last
        epoch, and how long ago it was written), ``stalled · E_12 · 2 min ago``,
        ``interrupted · E_12``, ``● starting`` — or ``""`` (a finished run, a file)."""
        state = self.state
        if state is None or state == "finished":
            return ""
        if self.starting:
            return "● starting (no epoch yet)" if self.writing else "interrupted before E_0"
        epoch = time_key(self.last_epoch, self.axis) if self.last_epoch is not None else "no epoch"
        if state == "interrupted":
            return f"interrupted · {epoch}"
        ago = _ago((time.time() if now is None else now) - self.mtime_ns / 1e9)
        return f"{'● live' if state == 'live' else 'stalled'} · {epoch} · {ago} ago"

    def describe(self) -> str:
        """One line: the live mark (a run directory being written), dataset, architecture,
        epochs, status, date."""
        if self.error is not None:
            return "unreadable"
        if self.starting:
            return self.mark()
        epochs = f"{self.epochs} ep" if self.epochs is not None else "? ep"
        mark = self.mark()
        return (
            (f"{mark} · " if mark else "")
            + f"{self.dataset or '?'} · {self.architecture or '?'} · {epochs} "
            f"({self.n_recorded} recorded) · {self.status or '?'} · {self.date}"
        )


def _ago(seconds: float) -> str:
    """``3 s``, ``4 min``, ``2 h``, ``3 d``."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600:.0f} h"
    return f"{seconds // 86400:.0f} d"


def _architecture(manifest: dict[str, Any]) -> str:
    meta = manifest.get("meta") or {}
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    if isinstance(model.get("architecture"), str):
        return model["architecture"]
    widths = [
        str(layer.get("n_neurons"))
        for layer in manifest.get("layers", [])
        if isinstance(layer, dict) and layer.get("kind") != "input"
    ]
    return f"{model.get('class', 'model')} {'-'.join(widths)}"


def _described(manifest: dict[str, Any]) -> dict[str, Any]:
    """The descriptive fields of an entry, from a validated manifest."""
    meta = manifest["meta"]
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), dict) else {}
    epochs = config.get("epochs", meta.get("num_epochs"))
    layers = [layer for layer in manifest["layers"] if isinstance(layer, dict)]
    recorded = manifest["epochs"]
    return {
        "dataset": str(dataset.get("name") or config.get("dataset") or "custom"),
        "architecture": _architecture(manifest),
        "n_recorded": len(recorded),
        "epochs": int(epochs) if isinstance(epochs, int) and not isinstance(epochs, bool) else None,
        "status": str(meta.get("status", "complete")),
        "created": str(meta["created"]) if isinstance(meta.get("created"), str) else None,
        "n_neurons": sum(int(layer.get("n_neurons", 0)) for layer in layers),
        "last_epoch": int(recorded[-1]) if recorded else None,
        "axis": axis_of(meta),
    }


def read_entry(path: Path, stat: os.stat_result | None = None) -> RunEntry:
    """Describe one run — a trace file or a run directory — from its manifest (a bad one
    gives an entry with ``error``). A run directory's entry says whether its writer lives."""
    if _is_directory(path):
        return _directory_entry(path)
    stat = stat or path.stat()
    base = {"name": run_name(path), "path": path, "size": stat.st_size}
    try:
        manifest = read_manifest(path)
    except (TraceFormatError, OSError) as exc:
        return RunEntry(**base, mtime_ns=stat.st_mtime_ns, error=str(exc))
    return RunEntry(**base, mtime_ns=stat.st_mtime_ns, **_described(manifest))


def _directory_entry(path: Path) -> RunEntry:
    base: dict[str, Any] = {"name": path.name, "path": path, "kind": "directory"}
    try:
        manifest_stat = (path / MANIFEST_FILE).lstat()
    except FileNotFoundError:  # started, no epoch recorded yet
        writer_stat = _lstat(path / WRITER_FILE)
        mtime = writer_stat.st_mtime_ns if writer_stat is not None else 0
        return refresh_entry(RunEntry(**base, size=0, mtime_ns=mtime))
    except OSError as exc:
        return RunEntry(**base, size=0, mtime_ns=0, error=exc.strerror or str(exc))
    base["mtime_ns"] = manifest_stat.st_mtime_ns
    try:
        manifest = read_manifest(path)
    except (TraceFormatError, OSError) as exc:
        return RunEntry(**base, size=manifest_stat.st_size, error=str(exc))
    size = manifest_stat.st_size + _named_files_size(path, manifest)
    return refresh_entry(RunEntry(**base, size=size, **_described(manifest)))


_PART_KEY = re.compile(r"^(0|[1-9][0-9]{0,8})$")
_TENSOR_ENTRY = re.compile(r"^tensors/[A-Za-z0-9_.=-]{1,200}\.safetensors$")


def _named_files_size(root: Path, manifest: dict[str, Any]) -> int:
    """Bytes of the parts and tensors a run directory's manifest names (what exists of them:
    one ``lstat`` each, nothing read)."""
    names: list[str] = []
    tables = manifest.get("tables")
    for table, spec in tables.items() if isinstance(tables, dict) else ():
        parts = spec.get("parts") if isinstance(spec, dict) else None
        if table in ("neurons", "history", "steps") and isinstance(parts, dict):
            names += [f"{table}/epoch={key}/part.parquet" for key in parts if _PART_KEY.match(key)]
    tensors = manifest.get("tensors")
    names += [n for n in (tensors if isinstance(tensors, dict) else ()) if _TENSOR_ENTRY.match(n)]
    total = 0
    for name in names:
        info = _lstat(root / name)
        if info is not None and S_ISREG(info.st_mode):
            total += info.st_size
    return total


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except (OSError, ValueError):
        return None


def refresh_entry(entry: RunEntry, now: float | None = None) -> RunEntry:
    """``entry`` with its writer's liveness checked now (a run directory; a file is returned
    as it is). Reads ``writer.json`` and the manifest's time, not the manifest: an entry
    cached by its manifest's stamp stays true as writers start, stall or die. A run whose
    manifest still says ``running`` reads ``interrupted`` once its writer is gone, and back
    ``running`` while it lives."""
    if not entry.is_directory or entry.error is not None:
        return entry
    if entry.status in FINAL_STATUSES and entry.liveness is not None:
        return entry  # closed by its writer: nothing more to learn
    alive = liveness(entry.path, entry.status, entry.last_epoch, now)
    status = entry.status
    if status is not None and status not in FINAL_STATUSES:
        status = "interrupted" if alive.state == "interrupted" else "running"
    return replace(entry, liveness=alive, status=status)


# -- which paths are runs ------------------------------------------------------------------------
def _is_directory(path: Path) -> bool:
    """A real folder (never a symbolic link to one)."""
    info = _lstat(path)
    return info is not None and S_ISDIR(info.st_mode)


def _is_trace_file(path: Path, root: Path) -> bool:
    """Whether ``path`` is a trace the runs folder ``root`` lists: a visible ``*.nntrace``
    regular file that is, after following symbolic links, still inside ``root``."""
    if path.suffix != TRACE_SUFFIX or path.name.startswith("."):
        return False
    try:
        if not path.is_file():
            return False
        if path.is_symlink():
            return path.resolve(strict=True).is_relative_to(root.resolve(strict=True))
    except (OSError, RuntimeError, ValueError):  # too long, a link loop, not encodable
        return False
    return True


def _is_run_directory(path: Path) -> bool:
    """Whether ``path`` is a run directory the runs folder lists: a visible folder, not a
    symbolic link, not named ``*.nntrace``, holding a ``manifest.json`` or a ``writer.json``
    (regular files, not links)."""
    if path.name.startswith(".") or path.name.endswith(TRACE_SUFFIX) or not _is_directory(path):
        return False
    for marker in (MANIFEST_FILE, WRITER_FILE):
        info = _lstat(path / marker)
        if info is not None and S_ISREG(info.st_mode):
            return True
    return False


def run_name(path: Path) -> str:
    """The name of the run at ``path``: a trace file's stem, a run directory's name."""
    name = path.name
    return name[: -len(TRACE_SUFFIX)] if name.endswith(TRACE_SUFFIX) else name


def _children(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir()) if directory.is_dir() else []
    except OSError:
        return []


def run_files(directory: Path | None = None) -> list[Path]:
    """The ``*.nntrace`` files of ``directory`` (default :func:`runs_dir`), unsorted.

    Hidden files (the temporary files of an atomic write) are left out, and so are symbolic
    links that lead out of the folder. Every file listed opens by its stem
    (:func:`find_run`), unless a run directory of the same name shadows it
    (:func:`run_paths`).
    """
    directory = directory or runs_dir()
    return [p for p in _children(directory) if _is_trace_file(p, directory)]


def run_directories(directory: Path | None = None) -> list[Path]:
    """The run directories of ``directory`` (default :func:`runs_dir`), unsorted: visible
    folders (never a symbolic link) that hold a ``manifest.json`` or a ``writer.json``."""
    return [p for p in _children(directory or runs_dir()) if _is_run_directory(p)]


def run_paths(directory: Path | None = None) -> list[Path]:
    """Every run of ``directory`` (default :func:`runs_dir`), one path per name, unsorted: its
    run directories, and the trace files no run directory of the same name shadows."""
    folders = run_directories(directory)
    names = {p.name for p in folders}
    return folders + [p for p in run_files(directory) if run_name(p) not in names]


def list_runs(directory: Path | None = None) -> list[RunEntry]:
    """Every run in ``directory`` (default :func:`runs_dir`), newest first."""
    entries = [read_entry(p) for p in run_paths(directory)]
    return sorted(entries, key=lambda e: (e.mtime_ns, e.name), reverse=True)


def find_run(name: str, directory: Path | None = None) -> Path | None:
    """The run named ``name`` in the runs folder — its run directory, else its trace file
    (``<name>.nntrace``) — or ``None``.

    Any name that :func:`run_paths` lists resolves, whatever its characters (spaces, other
    scripts, quotes, control characters). Nothing outside the folder does: a name holding a
    separator or a NUL, a hidden name, a symbolic link that leads out of the folder, or a
    symbolic link to a folder gives ``None``.
    """
    if not isinstance(name, str) or not name or name.startswith("."):
        return None
    if "/" in name or os.sep in name or "\0" in name:
        return None
    root = directory or runs_dir()
    folder = root / name
    if folder.parent != root or folder.name != name:
        return None
    if _is_run_directory(folder):
        return folder
    path = root / f"{name}{TRACE_SUFFIX}"
    return path if _is_trace_file(path, root) else None


def _name_taken(root: Path, name: str) -> bool:
    """Whether ``name`` is in use in ``root``: as a folder, a file or a link of that name, or
    as ``<name>.nntrace``."""
    return os.path.lexists(root / name) or os.path.lexists(root / f"{name}{TRACE_SUFFIX}")


def new_run_path(stem: str, directory: Path | None = None) -> Path:
    """A path in the runs folder for a new trace, ``<stem>.nntrace`` or ``<stem>-2.nntrace`` …

    The name is free both as a file and as a run directory. The folder is created if needed.
    The name is only reserved once the file is written, so callers write promptly (and
    atomically, with :func:`~nn_tracing.store.save_trace`).
    """
    directory = directory or runs_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(stem)
    name, counter = stem, 2
    while _name_taken(directory, name):
        name, counter = f"{stem}-{counter}", counter + 1
    return directory / f"{name}{TRACE_SUFFIX}"


def new_run_directory(stem: str, directory: Path | None = None) -> Path:
    """A new, empty run directory in the runs folder, ``<stem>/`` or ``<stem>-2/`` …, created
    (so the name is reserved at once), its name free as a file too. Hand it to
    :class:`~nn_tracing.rundir.RunWriter` (or ``nn-tracing train --out``); the folder lists it
    once its writer has written ``writer.json``, and opens it as ``<name>`` after ``E_0``."""
    directory = directory or runs_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(stem)
    name, counter = stem, 2
    while True:
        if not _name_taken(directory, name):
            try:
                (directory / name).mkdir()
                return directory / name
            except FileExistsError:  # taken in the meantime
                pass
        name, counter = f"{stem}-{counter}", counter + 1


# -- housekeeping ------------------------------------------------------------------------------
class RunRefused(Exception):
    """A delete or rename of a run that the runs folder refuses; the message, meant for a
    person, says why."""


#: The longest name a run may be given, in bytes (room for ``.nntrace`` and the temporary
#: names of atomic writes within a file system's 255).
MAX_NAME_BYTES = 200


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a new run's name (``None``: it can).

    A name is what :func:`find_run` accepts — no separator, not hidden — and, because a
    person types it, no leading or trailing space, no control or invisible character, no
    ``.nntrace`` ending, at most :data:`MAX_NAME_BYTES` bytes.
    """
    if not isinstance(name, str) or not name.strip():
        return "a run needs a name"
    if name != name.strip():
        return "a name may not start or end with a space"
    if name.startswith("."):
        return "a name may not start with a dot (such names are hidden)"
    if "/" in name or os.sep in name or "\0" in name:
        return "a name may not hold a / (runs live in the runs folder itself)"
    if name.endswith(TRACE_SUFFIX):
        return f"leave out the {TRACE_SUFFIX} ending"
    if any(char != "\\" and _spelled(char) != char for char in name):
        return "a name may not hold control or invisible characters"
    try:
        size = len(os.fsencode(name))
    except UnicodeError:
        return "a name must be valid text"
    if size > MAX_NAME_BYTES:
        return f"a name may be at most {MAX_NAME_BYTES} bytes long"
    return None


def _listed(name: str, root: Path) -> Path:
    path = find_run(name, root) if isinstance(name, str) else None
    if path is None:
        raise RunRefused(f"There is no run named {display_name(str(name))} in the runs folder.")
    return path


def _refuse_if_writing(path: Path, doing: str) -> None:
    """Refuse to touch a run directory whose writer lives (or may: stalled)."""
    if not _is_directory(path):
        return
    entry = read_entry(path)
    if entry.writing:
        raise RunRefused(
            f"{display_name(entry.name)} is being written ({entry.detail}): stop its training "
            f"first, then {doing} it."
        )


def delete_run(name: str, directory: Path | None = None) -> Path:
    """Delete the run named ``name`` from the runs folder; returns the path it had.

    Only a run the folder lists (:func:`find_run`) is deleted. A symbolic link is removed as
    a link — its target is never touched. A run directory is first renamed to a hidden name
    (it leaves the listing at once), then removed without following any link inside it. A
    run directory whose writer lives is refused (:class:`RunRefused`), as is a name the
    folder does not list.
    """
    root = directory or runs_dir()
    path = _listed(name, root)
    _refuse_if_writing(path, "delete")
    try:
        if not _is_directory(path):  # a trace file, or a link to one
            path.unlink()
            return path
        hidden = root / f".deleting-{uuid.uuid4().hex}"
        os.rename(path, hidden)
        if _is_directory(hidden):
            shutil.rmtree(hidden)  # never follows a link (and not the folder, had it become one)
        else:
            hidden.unlink()
    except OSError as exc:
        raise RunRefused(
            f"{display_name(name)} could not be deleted: {exc.strerror or exc}"
        ) from None
    return path


def rename_run(name: str, new_name: str, directory: Path | None = None) -> Path:
    """Rename the run ``name`` of the runs folder to ``new_name``; returns its new path.

    Refused (:class:`RunRefused`, with the reason) when the folder does not list ``name``,
    when ``new_name`` is no valid name (:func:`name_problem`) or already names a run, a file
    or a folder (as ``<new_name>`` or ``<new_name>.nntrace``), or when a run directory's
    writer lives. A trace file keeps its ``.nntrace`` ending; a symbolic link is renamed as
    a link. A file is renamed by a hard link and an unlink, which cannot replace a file that
    appeared meanwhile; a folder by one rename after the check.
    """
    root = directory or runs_dir()
    path = _listed(name, root)
    problem = name_problem(new_name)
    if problem is not None:
        raise RunRefused(f"{display_name(str(new_name))} cannot be a run's name: {problem}.")
    if new_name == name:
        raise RunRefused(f"{display_name(name)} already has that name.")
    if _name_taken(root, new_name):
        raise RunRefused(f"A run (or file) named {display_name(new_name)} exists already.")
    _refuse_if_writing(path, "rename")
    folder = _is_directory(path)
    target = root / (new_name if folder else f"{new_name}{TRACE_SUFFIX}")
    try:
        if folder:
            os.rename(path, target)
        else:
            _rename_file(path, target)
    except FileExistsError:
        raise RunRefused(f"A run named {display_name(new_name)} exists already.") from None
    except OSError as exc:
        raise RunRefused(
            f"{display_name(name)} could not be renamed: {exc.strerror or exc}"
        ) from None
    return target


def _rename_file(path: Path, target: Path) -> None:
    """Rename a file (or a link, as a link) without ever replacing ``target``."""
    try:
        os.link(path, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.rename(path, target)
        return
    os.unlink(path)


def import_trace_file(source: Path, stem: str, directory: Path | None = None) -> Path:
    """Copy a (validated) trace file into the runs folder atomically; return its new path."""
    target = new_run_path(stem, directory)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 2**20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def ensure_demo_trace(directory: Path | None = None) -> Path | None:
    """Train and save the demo trace if the runs folder holds no run; return its path.

    Returns ``None`` when the folder already holds a run (a trace file or a run directory).
    Safe to call from several threads at once (one trains, the others wait and then find its
    file). The demos themselves: :mod:`nn_tracing.demos`.
    """
    from .demos import first_demo

    return first_demo(directory)
