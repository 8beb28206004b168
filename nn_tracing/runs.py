"""The runs folder: where traces are kept, a fast catalogue of them, and the demo trace.

The folder is ``runs/`` (relative to the working directory) unless the environment variable
``NN_TRACING_RUNS_DIR`` names another. Listing reads only each file's manifest
(:func:`~nn_tracing.store.read_manifest`), so it stays fast however large the traces are. A
trace is named by its file stem (``runs/moons-demo.nntrace`` is ``moons-demo``), whatever
characters the stem holds: every file the folder lists opens by its name. A name is shown (and
put in a deep link's ``trace=`` parameter) as :func:`display_name`, which spells control,
format and other invisible characters as visible escapes (``\\n``, ``\\u202e``);
:func:`parse_display_name` reads such a spelling back. Only files inside the folder open: no
separators, no hidden files, no symbolic link that leads out of it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .store import TraceFormatError, read_manifest, save_trace

__all__ = [
    "DEMO_CONFIG",
    "DEMO_NAME",
    "RUNS_DIR_ENV",
    "TRACE_SUFFIX",
    "RunEntry",
    "display_name",
    "ensure_demo_trace",
    "find_run",
    "import_trace_file",
    "list_runs",
    "new_run_dir",
    "new_run_path",
    "parse_display_name",
    "read_entry",
    "run_files",
    "runs_dir",
    "safe_stem",
]

RUNS_DIR_ENV = "NN_TRACING_RUNS_DIR"
TRACE_SUFFIX = ".nntrace"
DEMO_NAME = "demo-moons"
#: The demo run made on first start: small enough to train in a few seconds on a laptop CPU,
#: large enough (and with a learning rate high enough) that some ReLU neurons die.
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
)

_STEM_OK = re.compile(r"[^A-Za-z0-9._-]+")
_demo_lock = threading.Lock()


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
    """One trace file in the runs folder, described from its manifest.

    ``error`` is set (and the other descriptive fields are ``None``) when the file cannot be
    read; such entries are listed so that the user sees them, but cannot be opened.
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

    @property
    def readable(self) -> bool:
        return self.error is None

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

    def describe(self) -> str:
        """One line: dataset, architecture, epochs, status, date."""
        if self.error is not None:
            return "unreadable"
        epochs = f"{self.epochs} ep" if self.epochs is not None else "? ep"
        return (
            f"{self.dataset or '?'} · {self.architecture or '?'} · {epochs} "
            f"({self.n_recorded} recorded) · {self.status or '?'} · {self.date}"
        )


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


def read_entry(path: Path, stat: os.stat_result | None = None) -> RunEntry:
    """Describe one trace file from its manifest (a bad file gives an entry with ``error``)."""
    stat = stat or path.stat()
    base = {"name": path.stem, "path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        manifest = read_manifest(path)
    except (TraceFormatError, OSError) as exc:
        return RunEntry(**base, error=str(exc))
    meta = manifest["meta"]
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), dict) else {}
    epochs = config.get("epochs", meta.get("num_epochs"))
    layers = [layer for layer in manifest["layers"] if isinstance(layer, dict)]
    return RunEntry(
        **base,
        dataset=str(dataset.get("name") or config.get("dataset") or "custom"),
        architecture=_architecture(manifest),
        n_recorded=len(manifest["epochs"]),
        epochs=int(epochs) if isinstance(epochs, int) and not isinstance(epochs, bool) else None,
        status=str(meta.get("status", "complete")),
        created=str(meta["created"]) if isinstance(meta.get("created"), str) else None,
        n_neurons=sum(int(layer.get("n_neurons", 0)) for layer in layers),
    )


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


def run_files(directory: Path | None = None) -> list[Path]:
    """The ``*.nntrace`` files of ``directory`` (default :func:`runs_dir`), unsorted.

    Hidden files (the temporary files of an atomic write) are left out, and so are symbolic
    links that lead out of the folder. Every file listed opens by its stem
    (:func:`find_run`).
    """
    directory = directory or runs_dir()
    try:
        if not directory.is_dir():
            return []
        return [p for p in directory.iterdir() if _is_trace_file(p, directory)]
    except OSError:
        return []


def list_runs(directory: Path | None = None) -> list[RunEntry]:
    """Every trace in ``directory`` (default :func:`runs_dir`), newest first."""
    entries = [read_entry(p) for p in run_files(directory)]
    return sorted(entries, key=lambda e: (e.mtime_ns, e.name), reverse=True)


def find_run(name: str, directory: Path | None = None) -> Path | None:
    """The file of the trace named ``name`` (its file stem) in the runs folder, or ``None``.

    Any name that :func:`run_files` lists resolves, whatever its characters (spaces, other
    scripts, quotes, control characters). Nothing outside the folder does: a name holding a
    separator or a NUL, a hidden file, or a symbolic link that leads out of the folder gives
    ``None``.
    """
    if not isinstance(name, str) or not name or name.startswith("."):
        return None
    if "/" in name or os.sep in name or "\0" in name:
        return None
    root = directory or runs_dir()
    path = root / f"{name}{TRACE_SUFFIX}"
    if path.parent != root or path.name != f"{name}{TRACE_SUFFIX}":
        return None
    return path if _is_trace_file(path, root) else None


def _name_taken(directory: Path, name: str) -> bool:
    """Whether run ``name`` exists in ``directory``: as ``<name>.nntrace`` or ``<name>/`` (or
    anything else under either name, a broken symbolic link included)."""
    return any(os.path.lexists(directory / entry) for entry in (name, f"{name}{TRACE_SUFFIX}"))


def _free_names(stem: str) -> Iterator[str]:
    """``stem``, ``stem-2``, ``stem-3`` …"""
    yield stem
    counter = 2
    while True:
        yield f"{stem}-{counter}"
        counter += 1


def new_run_path(stem: str, directory: Path | None = None) -> Path:
    """A path in the runs folder for a new trace, ``<stem>.nntrace`` or ``<stem>-2.nntrace`` …
    whose name no run holds (neither a trace file nor a run directory).

    The folder is created if needed. The name is only reserved once the file is written, so
    callers write promptly (and atomically, with :func:`~nn_tracing.store.save_trace`).
    """
    directory = directory or runs_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = next(n for n in _free_names(safe_stem(stem)) if not _name_taken(directory, n))
    return directory / f"{name}{TRACE_SUFFIX}"


def new_run_dir(stem: str, directory: Path | None = None) -> Path:
    """A new, empty run directory in the runs folder, ``<stem>/`` or ``<stem>-2/`` …, whose
    name no run holds (neither a trace file nor a run directory); returns its path.

    The directory is made here (``mkdir``, which fails if it exists), so the name is reserved
    at once, even against another process choosing a name at the same moment.
    """
    directory = directory or runs_dir()
    directory.mkdir(parents=True, exist_ok=True)
    for name in _free_names(safe_stem(stem)):
        if _name_taken(directory, name):
            continue
        try:
            (directory / name).mkdir()
        except FileExistsError:
            continue
        return directory / name
    raise AssertionError("unreachable")  # pragma: no cover - _free_names never ends


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
    """Train and save the demo trace if the runs folder holds no trace; return its path.

    Returns ``None`` when the folder already holds a trace. Safe to call from several threads
    at once (one trains, the others wait and then find its file).
    """
    from .training import train

    directory = directory or runs_dir()
    with _demo_lock:
        if run_files(directory):
            return None
        run = train(DEMO_CONFIG)
        assert run.trace is not None
        run.trace.meta["demo"] = True
        return save_trace(run.trace, new_run_path(DEMO_NAME, directory))
