"""The run directory: a trace written epoch by epoch while training, crash-safe.

A run directory (``runs/<name>/``) holds the same content as a ``.nntrace`` zip, one file per
part, so that a training run can add each recorded epoch as it goes::

    manifest.json                            format, version, meta, layers, epochs, inventory
    neurons/epoch=<E>/part.parquet           the neuron table's rows of recorded epoch E
    history/epoch=<e>/part.parquet           the history row of trained epoch e
    steps/epoch=<e>/part.parquet             per-step statistics of epoch e (optional)
    tensors/probe.safetensors                probe inputs x and labels y (optional)
    tensors/epoch_<E>.safetensors            activations, logits, predictions (, weights/<key>)
    tensors/final_weights.safetensors        the final state_dict (written by ``close``)
    writer.json                              who writes the run, and its heartbeat

The tables are Hive-partitioned by ``epoch`` (the column lives in the path, not in the part),
so DuckDB, Spark and pandas (``pyarrow.dataset``) read them in place. Every file is written to
a temporary name, fsynced and renamed, its directory fsynced, and only then is
``manifest.json`` replaced the same way with the epoch added: a reader never sees half an
epoch, and a killed writer leaves every epoch whose manifest was written. A manifest whose
status is still ``running`` is read as ``running`` while its writer lives and as
``interrupted`` once it is gone (``writer.json``, :mod:`nn_tracing.rundir_live`), the last
complete epoch named.

Reading treats the directory as untrusted input, with the checks of the zip
(:mod:`nn_tracing.store_checks`, :mod:`nn_tracing.store_shapes`): it opens only the files the
manifest names, at paths built from validated names, never through a symlink or ``..``,
within the same limits on count and size. Files the manifest does not name are ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .rundir_live import Heartbeat, liveness
from .rundir_parts import EpochMetrics, check_part_footer
from .store import _assemble, _json_ready, _safetensors_bytes
from .store_archive import (
    _ENTRY_PATTERNS,
    MAX_ENTRIES,
    MAX_MANIFEST_BYTES,
    MAX_TRACE_BYTES,
    _fail,
)
from .store_checks import (
    _TABLE_SCHEMAS,
    FORMAT_NAME,
    FORMAT_VERSION,
    _neuron_metrics,
    _parse_epochs,
    _parse_layers,
    _parse_manifest,
    _read_table,
)
from .timeaxis import axis_of, time_key
from .trace import METRICS, LayerInfo, NetworkTrace
from .trace_query import NeuronQuery

__all__ = ["LAYOUT", "RunWriteError", "RunWriter", "load_run_directory", "read_run_manifest"]

#: The ``layout`` a run directory's manifest names (a zip's manifest has none).
LAYOUT = "run-directory"
_TABLES = ("neurons", "history", "steps")
_EPOCH_KEY = re.compile(r"^(0|[1-9][0-9]{0,8})$")
#: The columns of a table's part: the table's, less ``epoch`` (it is the partition).
_PART_SCHEMAS: dict[str, dict[str, str]] = {
    name: {k: v for k, v in _TABLE_SCHEMAS[name].items() if k != "epoch"} for name in _TABLES
}


def _part_name(table: str, epoch: int) -> str:
    return f"{table}/epoch={epoch}/part.parquet"


# --------------------------------------------------------------------------- writing


def _epochs_text(epochs: list[int] | tuple[int, ...]) -> str:
    if not epochs:
        return "no epoch"
    if len(epochs) == 1:
        return f"E_{epochs[0]}"
    return f"E_{epochs[0]}…E_{epochs[-1]}"


class RunWriteError(OSError):
    """A run directory could not be written: a full disk, a read-only folder, no permission,
    any ``OSError`` of the file system.

    The message names the directory, what could not be written and the epochs kept::

        cannot write epoch E_5 to runs/x: No space left on device; the run keeps E_0…E_4

    Attributes
    ----------
    directory
        The run directory.
    epoch
        The recorded epoch that could not be written; ``None`` when the end of the run (the
        final weights and status) could not.
    kept
        The epochs the directory's manifest lists: they load (the run reads as
        ``interrupted`` once its writer is gone).
    errno, strerror
        Those of the error that caused it (``errno.ENOSPC``, ``errno.EROFS``, …).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        epoch: int | None,
        kept: list[int] | tuple[int, ...],
        cause: OSError,
    ) -> None:
        what = f"epoch E_{epoch}" if epoch is not None else "the end of the run"
        reason = cause.strerror or str(cause) or type(cause).__name__
        self.message = (
            f"cannot write {what} to {directory}: {reason}; the run keeps {_epochs_text(kept)}"
        )
        super().__init__(self.message)
        self.errno, self.strerror = cause.errno, cause.strerror
        self.directory = Path(directory)
        self.epoch = epoch
        self.kept = tuple(kept)

    def __str__(self) -> str:
        return self.message


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


#: Rows per Parquet row group of a part. One neuron's history reads one row of every part,
#: and DuckDB skips the row groups that cannot hold it: with 16 384 rows a group, the history
#: of a neuron of a 100k-neuron trace reads 1/7 of each part (127 → 72 ms over 101 parts,
#: docs/performance.md); whole-part scans stay within noise of one group a part.
PART_ROW_GROUP = 16_384


def _part_bytes(table: Any) -> bytes:
    """A table part as Parquet bytes. Snappy, not the zip's zstd: a part is small and written
    while training waits, and zstd costs ~3× the time for ~6 % less."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = pa.BufferOutputStream()
    # dictionary encoding only for the layer names, and no min/max statistics: a part is one
    # epoch, read whole or by row position; both would cost more time than they save
    dictionary = [name for name in ("layer",) if name in table.column_names]
    pq.write_table(
        table,
        buffer,
        compression="snappy",
        use_dictionary=dictionary,
        write_statistics=False,
        row_group_size=PART_ROW_GROUP,
    )
    return buffer.getvalue().to_pybytes()


def _write_atomic(path: Path, data: bytes) -> None:
    """``data`` at ``path``: a temporary file, fsync, rename, then the directory fsynced (and
    the parent of every directory made for it, so that the new entries are durable too)."""
    if not path.parent.is_dir():
        made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        for directory in reversed(made):
            _fsync_directory(directory.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


class RunWriter:
    """Write ``trace`` to the run directory ``directory`` as its epochs are recorded.

    The probe set is written at once; :meth:`write_epoch` adds one recorded epoch (its neuron
    rows, its tensors and the history rows up to it) and then replaces the manifest;
    :meth:`close` writes what is left (unwritten epochs, history, final weights) and the final
    status. Until then the manifest says ``running``. A write that fails raises
    :class:`RunWriteError` (the epochs written before stay readable); the epoch may be written
    again.

    Parameters
    ----------
    directory
        The run directory; created if missing. It must not hold a run already.
    trace
        The trace being filled (e.g. ``TraceableNN.network_trace``); read, never changed.
    """

    def __init__(self, directory: str | os.PathLike, trace: NetworkTrace) -> None:
        self.directory = Path(directory)
        self.trace = trace
        if (self.directory / "manifest.json").exists():
            raise FileExistsError(f"{str(self.directory)!r} holds a run already")
        #: Keeps ``writer.json`` fresh: readers tell a live run from a dead one by it.
        self.heartbeat = Heartbeat(self.directory)
        #: The epochs written (their manifest may wait, in a subclass that holds it).
        self.epochs: list[int] = []
        #: The epochs the manifest on disk lists.
        self.in_manifest: list[int] = []
        self.closed = False
        self._tables: dict[str, dict[str, Any]] = {}
        self._tensors: dict[str, Any] = {}
        self._written: dict[str, set[int]] = {name: set() for name in _TABLES}
        self._layout_columns: list[Any] | None = None
        self._columns_cache: dict[str, tuple[Any, ...]] = {}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.heartbeat.beat(force=True)
            if trace.probe is not None:
                self._write_tensors("probe", {"x": trace.probe[0], "y": trace.probe[1]})
        except OSError as exc:
            first = trace.epochs[0] if trace.epochs else None
            raise RunWriteError(self.directory, first, [], exc) from exc

    def _write_file(self, entry: str, data: bytes) -> None:
        """File ``entry`` (a part or tensors), complete and durable. A subclass may defer it
        as long as it is done before the next manifest names it
        (:class:`~nn_tracing.rundir_async.BackgroundRunWriter` writes an epoch's files
        together)."""
        _write_atomic(self.directory / entry, data)

    def _write_tensors(self, name: str, arrays: Mapping[str, np.ndarray]) -> None:
        entry = f"tensors/{name}.safetensors"
        data, inventory = _safetensors_bytes(arrays)
        self._write_file(entry, data)
        self._tensors[entry] = inventory

    def _write_part(self, table: str, epoch: int, part: Any) -> None:
        """Part ``epoch`` of ``table`` from ``part``, a ``pyarrow.Table`` of the part's
        columns in :data:`_PART_SCHEMAS` order."""
        self._write_file(_part_name(table, epoch), _part_bytes(part))
        spec = self._tables.setdefault(table, {"columns": list(part.column_names), "parts": {}})
        spec["parts"][str(epoch)] = part.num_rows
        self._written[table].add(epoch)

    def _neurons_part(self, epoch: int) -> Any:
        """The neuron rows of ``epoch`` as a ``pyarrow.Table`` (no pandas on the way: the
        layer and neuron columns are built once, the metrics are the trace's own arrays)."""
        import pyarrow as pa

        if self._layout_columns is None:
            trace = self.trace
            codes = np.concatenate(
                [np.full(info.n_neurons, i, dtype=np.int32) for i, info in enumerate(trace.layers)]
            )
            layer = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(trace.layer_names()))
            self._layout_columns = [layer, pa.array(np.arange(trace.n_neurons, dtype=np.int32))]
        values = self.trace.metrics_at(epoch)
        metrics = [
            pa.array(np.ascontiguousarray(values[:, i], dtype=np.float32))
            for i in range(len(METRICS))
        ]
        return pa.Table.from_arrays(
            [*self._layout_columns, *metrics], names=list(_PART_SCHEMAS["neurons"])
        )

    def _write_rows(self, table: str, frame: pd.DataFrame | None, up_to: int | None) -> None:
        """The rows of ``frame`` of each epoch not written yet (up to ``up_to``), one part
        per epoch."""
        if frame is None or not len(frame):
            return
        import pyarrow as pa

        epochs, present, columns = self._row_columns(table, frame)
        todo = [
            epoch
            for epoch in present
            if epoch not in self._written[table] and (up_to is None or epoch <= up_to)
        ]
        for epoch in todo:
            rows = epochs == epoch
            part = pa.Table.from_arrays(
                [pa.array(values[rows]) for values in columns.values()], names=list(columns)
            )
            self._write_part(table, int(epoch), part)

    def _row_columns(
        self, table: str, frame: pd.DataFrame
    ) -> tuple[np.ndarray, list[int], dict[str, np.ndarray]]:
        """``frame``'s epoch of each row, its epochs, and its part columns as arrays (kept
        while the same frame comes back, as for several epochs written from one trace)."""
        cached = self._columns_cache.get(table)
        if cached is None or cached[0] is not frame:
            epochs = frame["epoch"].to_numpy()
            columns = {name: frame[name].to_numpy() for name in _PART_SCHEMAS[table]}
            cached = (frame, epochs, np.unique(epochs).tolist(), columns)
            self._columns_cache[table] = cached
        return cached[1], cached[2], cached[3]

    def write_epoch(self, epoch: int) -> None:
        """Add recorded ``epoch``: its files first, then the manifest that names them."""
        if self.closed:
            raise RuntimeError("the run directory is closed")
        if epoch not in self.trace.epochs:
            raise ValueError(f"epoch {epoch} is not recorded in the trace")
        if self.epochs and epoch <= self.epochs[-1]:
            raise ValueError(f"epoch {epoch} is not after the last written ({self.epochs[-1]})")
        try:
            self._write_part("neurons", epoch, self._neurons_part(epoch))
            arrays = self.trace.epoch_tensors(epoch)
            if arrays:
                self._write_tensors(f"epoch_{epoch}", arrays)
            self._write_rows("history", self.trace.history, epoch)
            self._write_rows("steps", self.trace.steps, epoch)
            self.epochs.append(epoch)
            self._write_manifest("running")
        except OSError as exc:
            raise self._write_error(exc, epoch) from exc
        with contextlib.suppress(OSError):  # the epoch is kept; a lost heartbeat only ages
            self.heartbeat.beat(force=True, epoch=epoch)

    def close(self, status: str | None = None) -> None:
        """Write every epoch not written yet, the rest of the history and steps, the final
        weights, and the manifest with ``status`` (default: the trace's own)."""
        if self.closed:
            return
        final = status or self.trace.status
        if final not in ("complete", "stopped", "diverged"):
            raise ValueError(f"status={final!r}: a run ends complete, stopped or diverged")
        for epoch in self.trace.epochs:
            if not self.epochs or epoch > self.epochs[-1]:
                self.write_epoch(epoch)
        try:
            self._write_rows("history", self.trace.history, None)
            self._write_rows("steps", self.trace.steps, None)
            if self.trace.final_weights:
                self._write_tensors("final_weights", self.trace.final_weights)
            self._write_manifest(final)
        except OSError as exc:
            raise self._write_error(exc, None) from exc
        self.closed = True

    def _write_error(self, error: OSError, epoch: int | None) -> RunWriteError:
        """``error`` as a :class:`RunWriteError` naming the first epoch the manifest on disk
        lacks (``epoch``'s, or one written before whose manifest waited); the writer is set
        back to that manifest, so that those epochs may be written again."""
        pending = [e for e in [*self.epochs, epoch] if e is not None and e not in self.in_manifest]
        for table in _TABLES:
            self._written[table] -= set(pending)
            for e in pending:
                self._tables.get(table, {}).get("parts", {}).pop(str(e), None)
        for e in pending:
            self._tensors.pop(f"tensors/epoch_{e}.safetensors", None)
        self.epochs = list(self.in_manifest)
        return RunWriteError(
            self.directory, pending[0] if pending else epoch, self.in_manifest, error
        )

    def _write_manifest(self, status: str) -> None:
        _write_atomic(self.directory / "manifest.json", self._manifest_bytes(status))
        self.in_manifest = list(self.epochs)

    def _manifest_bytes(self, status: str) -> bytes:
        """The manifest naming every file written so far, with ``status``."""
        tables = {name: spec for name, spec in self._tables.items()}
        tables.setdefault("history", {"columns": list(_PART_SCHEMAS["history"]), "parts": {}})
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "layout": LAYOUT,
            "layers": [info.to_dict() for info in self.trace.layers],
            "epochs": list(self.epochs),
            "metrics": list(METRICS),
            "tables": tables,
            "tensors": dict(self._tensors),
            "meta": _json_ready({**self.trace.meta, "status": status}),
        }
        # one line: without indent, json uses its C encoder (the manifest grows with the run)
        return json.dumps(manifest, allow_nan=False).encode()


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _FileInfo:
    """What the checks need to know of a file before reading it."""

    file_size: int


class _DirArchive:
    """The files of a run directory that its manifest names, read like zip entries.

    Every name is checked (one of the names a run directory has, no ``..``), every path is
    walked component by component and refused if any is a symlink or not a regular file, and
    the count and total size are bounded, before anything is read.
    """

    def __init__(
        self, root: Path, max_bytes: int, infos: dict[str, _FileInfo], paths: dict[str, Path]
    ) -> None:
        self.root, self.max_bytes = root, max_bytes
        self.infos, self._paths = infos, paths

    @classmethod
    def open(cls, root: Path, names: list[str], max_bytes: int) -> _DirArchive:
        """The files ``names`` of ``root``, each checked, within the limits."""
        if len(names) > MAX_ENTRIES:
            raise _fail(f"the manifest names {len(names)} files; a trace has at most {MAX_ENTRIES}")
        infos: dict[str, _FileInfo] = {}
        paths: dict[str, Path] = {}
        total = 0
        for name in names:
            path = _safe_path(root, name)
            size = path.lstat().st_size
            total += size
            infos[name], paths[name] = _FileInfo(size), path
        if total > max_bytes:
            raise _fail(
                f"the trace would take {total / 2**20:.0f} MiB, over the limit of "
                f"{max_bytes / 2**20:.0f} MiB"
            )
        return cls(root, max_bytes, infos, paths)

    def alias(self, alias: str, name: str) -> _DirArchive:
        """A view in which file ``name`` is entry ``alias`` (a part read as a whole table)."""
        return _DirArchive(
            self.root, self.max_bytes, {alias: self.infos[name]}, {alias: self._paths[name]}
        )

    def path(self, name: str) -> Path:
        """The checked path of file ``name``."""
        return self._paths[name]

    def read_head(self, name: str, n: int) -> bytes:
        return _read_head(self._paths[name], name, n)

    def fingerprint(self) -> bytes:
        """Where the files are and their sizes and times: part of a run directory's digest."""
        stats = [(name, self._paths[name].lstat()) for name in sorted(self._paths)]
        lines = [f"{n} {st.st_size} {st.st_mtime_ns}" for n, st in stats]
        return "\n".join([str(self.root.resolve()), *lines]).encode()

    def read(self, name: str, limit: int | None = None) -> bytes:
        size = self.infos[name].file_size
        data = self.read_head(name, min(size, limit) if limit is not None else size + 1)
        if limit is None and len(data) != size:
            raise _fail(f"{name} changed size while it was read; the run directory is damaged")
        return data

    def close(self) -> None:
        """Nothing is held open between reads."""


def _read_head(path: Path, name: str, n: int) -> bytes:
    """The first ``n`` bytes of the file at ``path`` (never through a symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            return handle.read(n)
    except OSError as exc:
        raise _fail(f"{name} cannot be read: {exc}") from None


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise _fail(f"the manifest names an invalid file {name!r}")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise _fail(f"the manifest names an absolute path ({name!r}); refusing to read it")
    if ".." in re.split(r"[\\/]", name):
        raise _fail(f"the manifest names a path outside the run directory ({name!r})")
    part = re.match(r"^(neurons|history|steps)/epoch=(0|[1-9][0-9]{0,8})/part\.parquet$", name)
    if not part and not any(p.match(name) for p in _ENTRY_PATTERNS[2:]):
        raise _fail(f"the manifest names a file a run directory does not have: {name!r}")
    return name


def _safe_path(root: Path, name: str) -> Path:
    """``root / name``, refused if any component is a symlink or the file is not regular."""
    path = root
    for component in _check_name(name).split("/"):
        path = path / component
        try:
            mode = path.lstat().st_mode
        except OSError:
            raise _fail(f"{name} is missing from the run directory") from None
        if stat.S_ISLNK(mode):
            raise _fail(f"{name} in the run directory is a symlink; refusing to follow it")
    if not stat.S_ISREG(mode):
        raise _fail(f"{name} in the run directory is not a regular file")
    return path


def _parse_parts(manifest: dict[str, Any], epochs: list[int]) -> dict[str, dict[int, int]]:
    """``{table: {epoch: rows}}`` from the manifest's tables, each checked."""
    tables = manifest["tables"]
    unknown = sorted(set(tables) - set(_TABLES))
    if unknown:
        raise _fail(f"the manifest lists unknown tables: {', '.join(map(str, unknown))}")
    parsed: dict[str, dict[int, int]] = {}
    for name, spec in tables.items():
        if not isinstance(spec, dict) or set(spec) != {"columns", "parts"}:
            raise _fail(f"manifest.json describes table {name!r} badly")
        if spec["columns"] != list(_PART_SCHEMAS[name]) or not isinstance(spec["parts"], dict):
            raise _fail(f"manifest.json lists other columns for table {name!r} than it has")
        parts: dict[int, int] = {}
        for key, rows in spec["parts"].items():
            if not _EPOCH_KEY.match(key):
                raise _fail(f"table {name!r} has a part for an invalid epoch {key!r}")
            if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
                raise _fail(f"table {name!r}: rows must be a non-negative integer")
            parts[int(key)] = rows
        parsed[name] = dict(sorted(parts.items()))
    for required in ("neurons", "history"):
        if required not in parsed:
            raise _fail(f"the manifest lists no {required!r} table")
    if list(parsed["neurons"]) != epochs:
        raise _fail("the neurons table's parts are not the epochs the manifest lists")
    return parsed


def _read_parts(archive: _DirArchive, name: str, parts: dict[int, int]) -> pd.DataFrame:
    """Table ``name`` from its parts, each validated as a table, ``epoch`` put back."""
    frames = []
    for epoch, rows in parts.items():
        alias = f"tables/{name}.parquet"
        view = archive.alias(alias, _part_name(name, epoch))
        spec = {"entry": alias, "rows": rows, "columns": list(_PART_SCHEMAS[name])}
        frame = _read_table(view, {"tables": {name: spec}}, name, _PART_SCHEMAS[name])
        assert frame is not None
        frame.insert(0, "epoch", np.full(len(frame), epoch, dtype=np.int64))
        frames.append(frame)
    columns = list(_TABLE_SCHEMAS[name])
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns})
    frame = pd.concat(frames, ignore_index=True)
    if "layer" in frame:
        frame["layer"] = frame["layer"].astype(str)
    return frame[columns]


def _open_neurons(
    archive: _DirArchive, parts: dict[int, int], layers: list[LayerInfo]
) -> tuple[EpochMetrics, NeuronQuery]:
    """The neuron parts opened, not read: every footer checked (schema, one row per neuron,
    size), each epoch's metrics read on first use and checked row by row then, and DuckDB
    over the checked files for questions over every epoch (:mod:`nn_tracing.trace_query`)."""
    n_neurons = sum(info.n_neurons for info in layers)
    columns = _PART_SCHEMAS["neurons"]
    paths: dict[int, Path] = {}
    for epoch, rows in parts.items():
        entry = _part_name("neurons", epoch)
        if rows != n_neurons:
            raise _fail(f"{entry} has {rows} rows in the manifest; the trace has {n_neurons}")
        paths[epoch] = archive.path(entry)
        check_part_footer(paths[epoch], entry, n_neurons, columns, archive.max_bytes)

    def load(epoch: int) -> np.ndarray:
        frame = _read_parts(archive, "neurons", {epoch: n_neurons})
        return _neuron_metrics(frame, layers, [epoch])[epoch]

    return EpochMetrics(list(parts), load), NeuronQuery(paths, layers)


def load_run_directory(
    directory: str | os.PathLike, *, max_bytes: int = MAX_TRACE_BYTES
) -> NetworkTrace:
    """Read a run directory (see the module docstring) as a :class:`NetworkTrace`.

    Nothing large is read: the neuron parts' footers are checked (schema, rows, size) and
    each epoch's metrics are read when first asked for (``trace.metrics_at``), checked row by
    row then; ``trace.query`` (:class:`~nn_tracing.trace_query.NeuronQuery`) answers
    questions over every epoch with DuckDB over the same files, and ``trace.frame`` reads
    them all on first use (for traces that fit in memory). History, steps, the probe set and
    the final weights are read at once, epoch tensors when asked for. Only the epochs the
    manifest lists are read. A run whose writer never closed (status
    ``running`` in the manifest) is reported as ``interrupted``, its last complete epoch named
    in ``meta["status_message"]``. Any problem raises :class:`~nn_tracing.TraceFormatError`.
    """
    root = Path(directory)
    manifest_raw = _read_manifest_bytes(root)
    manifest = _parse_run_manifest(manifest_raw)
    layers = _parse_layers(manifest["layers"])
    epochs = _parse_epochs(manifest["epochs"])
    parts = _parse_parts(manifest, epochs)
    names = [_part_name(t, e) for t, table in parts.items() for e in table]
    names += [_check_name(entry) for entry in manifest["tensors"]]
    archive = _DirArchive.open(root, names, max_bytes)
    metrics, query = _open_neurons(archive, parts["neurons"], layers)
    tables = {name: _read_parts(archive, name, p) for name, p in parts.items() if name != "neurons"}
    # the manifest changes with every epoch; the files' sizes and times with any rewrite
    digest = hashlib.sha256(manifest_raw + b"\0" + archive.fingerprint()).hexdigest()
    trace = _assemble(
        archive,
        manifest,
        layers,
        epochs,
        (metrics, tables["history"], tables.get("steps")),
        digest,
        query=query,
    )
    _mark_interrupted(trace.meta, epochs, root)
    return trace


def read_run_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """Only the validated manifest of a run directory (fast: no table is read), its status
    reported as :func:`load_run_directory` reports it."""
    root = Path(directory)
    manifest = _parse_run_manifest(_read_manifest_bytes(root))
    _mark_interrupted(manifest["meta"], _parse_epochs(manifest["epochs"]), root)
    return manifest


def _parse_run_manifest(raw: bytes) -> dict[str, Any]:
    """The manifest checked as a zip's is, and as a run directory's; ``layout`` left out."""
    manifest = _parse_manifest(raw)
    if manifest.get("layout") != LAYOUT:
        raise _fail(f"manifest.json of a run directory must say layout {LAYOUT!r}")
    return {k: v for k, v in manifest.items() if k != "layout"}


def _mark_interrupted(meta: dict[str, Any], epochs: list[int], root: Path) -> None:
    """A run whose writer never closed (``running`` in the file) and is gone is
    ``interrupted``; one whose writer lives stays ``running`` (see
    :func:`~nn_tracing.rundir_live.liveness`)."""
    if meta.get("status") != "running":
        return
    alive = liveness(root, "running", epochs[-1] if epochs else None)
    if alive.state == "interrupted":
        meta["status"] = "interrupted"
        meta["status_message"] = (
            f"the run was interrupted (its writer never finished: {alive.detail}); the last "
            f"complete {axis_of(meta)} is {time_key(epochs[-1], axis_of(meta))}"
        )
    elif alive.state == "stalled":
        meta["status_message"] = f"the run is stalled: {alive.detail}"


def _read_manifest_bytes(root: Path) -> bytes:
    path = root / "manifest.json"
    try:
        mode = path.lstat().st_mode
    except OSError:
        raise _fail(
            f"{str(root)!r} is not a file, nor a run directory with a manifest.json (or its "
            "run has not recorded an epoch yet)"
        ) from None
    if stat.S_ISLNK(mode) or not stat.S_ISREG(mode):
        raise _fail("manifest.json of the run directory is not a regular file")
    raw = _read_head(path, "manifest.json", MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _fail("manifest.json is larger than a manifest can be")
    return raw
