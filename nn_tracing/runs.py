"""The runs folder: where traces are kept, a fast catalogue of them, and the demo trace.

The folder is ``runs/`` (relative to the working directory) unless the environment variable
``NN_TRACING_RUNS_DIR`` names another. Listing reads only each file's manifest
(:func:`~nn_tracing.store.read_manifest`), so it stays fast however large the traces are. A
trace is named by its file stem (``runs/moons-demo.nntrace`` is ``moons-demo``); that name is
what a deep link's ``trace=`` parameter resolves.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
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
    "ensure_demo_trace",
    "find_run",
    "import_trace_file",
    "list_runs",
    "new_run_path",
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


def run_files(directory: Path | None = None) -> list[Path]:
    """The ``*.nntrace`` files of ``directory`` (default :func:`runs_dir`), unsorted.

    Hidden files (the temporary files of an atomic write) are left out.
    """
    directory = directory or runs_dir()
    if not directory.is_dir():
        return []
    return [
        p
        for p in directory.iterdir()
        if p.suffix == TRACE_SUFFIX and not p.name.startswith(".") and p.is_file()
    ]


def list_runs(directory: Path | None = None) -> list[RunEntry]:
    """Every trace in ``directory`` (default :func:`runs_dir`), newest first."""
    entries = [read_entry(p) for p in run_files(directory)]
    return sorted(entries, key=lambda e: (e.mtime_ns, e.name), reverse=True)


def find_run(name: str, directory: Path | None = None) -> Path | None:
    """The file of the trace named ``name`` in the runs folder, or ``None``.

    Only plain names resolve (no separators, no ``..``): a deep link cannot reach outside
    the folder.
    """
    if not isinstance(name, str) or not name or safe_stem(name) != name:
        return None
    path = (directory or runs_dir()) / f"{name}{TRACE_SUFFIX}"
    return path if path.is_file() else None


def new_run_path(stem: str, directory: Path | None = None) -> Path:
    """A path in the runs folder for a new trace, ``<stem>.nntrace`` or ``<stem>-2.nntrace`` …

    The folder is created if needed. The name is only reserved once the file is written, so
    callers write promptly (and atomically, with :func:`~nn_tracing.store.save_trace`).
    """
    directory = directory or runs_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(stem)
    candidate = directory / f"{stem}{TRACE_SUFFIX}"
    counter = 2
    while candidate.exists():
        candidate = directory / f"{stem}-{counter}{TRACE_SUFFIX}"
        counter += 1
    return candidate


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
