"""The ``.nntrace`` file: write atomically, read as untrusted input.

A trace file is one zip archive (so that it uploads and downloads as one thing)::

    manifest.json                       format, version, meta, layers, epochs, inventory
    tables/neurons.parquet              epoch, layer, neuron + one float32 column per metric
    tables/history.parquet              one row per epoch
    tables/steps.parquet                per-step statistics (optional)
    tensors/probe.safetensors           probe inputs x and labels y (optional)
    tensors/final_weights.safetensors   the final state_dict
    tensors/epoch_<n>.safetensors       per recorded epoch: activations, logits, predictions,
                                        weights/<key> when kept

Reading never unpickles anything and never extracts to paths named by the file. It checks the
archive (entry names, count, sizes, compression ratio: :mod:`nn_tracing.store_archive`), then
the manifest, then every table's schema and row count and every tensor's header (dtype, shape,
byte length) against the manifest (:mod:`nn_tracing.store_checks`), then every part against
every other (probe, activations, logits, predictions, weights, history, config:
:mod:`nn_tracing.store_shapes`), before any large allocation. Every problem raises
:class:`TraceFormatError` with a message meant for a person. Per-epoch tensors are read when
first asked for, and their values (predictions within the classes) checked then.

This module is the public face: writing (:func:`save_trace`, :func:`trace_to_bytes`) and
reading (:func:`load_trace`, :func:`read_manifest`); the format's constants and limits are
importable from here too. Both readers also take a run directory (the same content one file per
part, written while training: :mod:`nn_tracing.rundir`), checked by the same code.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import pandas as pd

from .store_archive import MAX_COMPRESSION_RATIO as MAX_COMPRESSION_RATIO
from .store_archive import MAX_ENTRIES as MAX_ENTRIES
from .store_archive import (
    MAX_MANIFEST_BYTES,
    MAX_TRACE_BYTES,
    TraceFormatError,
    _Archive,
    _check_start,
    _fail,
    _source_bytes,
)
from .store_checks import (
    _SAFETENSORS_DTYPES,
    FORMAT_NAME,
    FORMAT_VERSION,
    STATUSES,
    _check_inventory,
    _check_tensor_files,
    _load_tensors,
    _neuron_metrics,
    _parse_epochs,
    _parse_layers,
    _parse_manifest,
    _read_table,
)
from .store_checks import LAYER_KINDS as LAYER_KINDS
from .store_checks import MAX_NEURONS as MAX_NEURONS
from .store_checks import MAX_SAFETENSORS_HEADER as MAX_SAFETENSORS_HEADER
from .trace import HISTORY_COLUMNS, METRICS, STEP_COLUMNS, LayerInfo, NetworkTrace

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_TRACE_BYTES",
    "TraceFormatError",
    "load_trace",
    "read_manifest",
    "save_trace",
    "trace_to_bytes",
]

_NUMPY_TO_ST = {v: k for k, v in _SAFETENSORS_DTYPES.items()}


# --------------------------------------------------------------------------- writing


def _st_dtype(array: np.ndarray) -> str:
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    try:
        return _NUMPY_TO_ST[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"cannot store an array of dtype {array.dtype} in a trace") from None


def _safetensors_bytes(tensors: Mapping[str, np.ndarray]) -> tuple[bytes, dict[str, Any]]:
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    inventory = {k: {"dtype": _st_dtype(v), "shape": list(v.shape)} for k, v in arrays.items()}
    return save(arrays), inventory


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # nthreads=1: no thread pool, so a run can still be saved while the interpreter exits
    table = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def _neurons_frame(trace: NetworkTrace) -> pd.DataFrame:
    epochs = trace.epochs
    n = trace.n_neurons
    values = (
        np.concatenate([trace.metrics_at(e) for e in epochs])
        if epochs
        else np.zeros((0, len(METRICS)), np.float32)
    )
    layers = trace.neuron_layers()
    frame = pd.DataFrame(
        {
            "epoch": np.repeat(np.asarray(epochs, dtype=np.int32), n),
            "layer": pd.Categorical(np.tile(layers, len(epochs)), categories=trace.layer_names()),
            "neuron": np.tile(np.arange(n, dtype=np.int32), len(epochs)),
        }
    )
    for i, name in enumerate(METRICS):
        frame[name] = values[:, i].astype(np.float32)
    return frame


def _json_ready(value: Any) -> Any:
    """Replace non-finite floats (not valid JSON) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return _json_ready(value.item())
    return value


def _write(trace: NetworkTrace, target: BinaryIO) -> None:
    entries: list[tuple[str, bytes]] = []
    tables: dict[str, Any] = {}
    tensors: dict[str, Any] = {}

    def add_table(name: str, frame: pd.DataFrame) -> None:
        entry = f"tables/{name}.parquet"
        entries.append((entry, _parquet_bytes(frame)))
        tables[name] = {"entry": entry, "rows": len(frame), "columns": list(frame.columns)}

    def add_tensors(entry: str, arrays: Mapping[str, np.ndarray]) -> None:
        data, inventory = _safetensors_bytes(arrays)
        entries.append((entry, data))
        tensors[entry] = inventory

    add_table("neurons", _neurons_frame(trace))
    history = trace.history.reset_index(drop=True)
    add_table("history", history[["epoch", *HISTORY_COLUMNS, "recorded"]])
    if trace.steps is not None and len(trace.steps):
        add_table("steps", trace.steps[["step", "epoch", "layer", *STEP_COLUMNS]])
    if trace.probe is not None:
        add_tensors("tensors/probe.safetensors", {"x": trace.probe[0], "y": trace.probe[1]})
    if trace.final_weights:
        add_tensors("tensors/final_weights.safetensors", trace.final_weights)
    for epoch in trace.epochs:
        arrays = trace.epoch_tensors(epoch)
        if arrays:
            add_tensors(f"tensors/epoch_{epoch}.safetensors", arrays)

    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "layers": [info.to_dict() for info in trace.layers],
        "epochs": trace.epochs,
        "metrics": list(METRICS),
        "tables": tables,
        "tensors": tensors,
        "meta": _json_ready(trace.meta),
    }
    manifest_bytes = json.dumps(manifest, indent=1, allow_nan=False).encode()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("manifest.json", manifest_bytes, compress_type=zipfile.ZIP_DEFLATED)
        for name, data in entries:
            # Parquet is compressed already; safetensors stays stored so one epoch reads fast.
            zf.writestr(name, data)


def save_trace(trace: NetworkTrace, path: str | os.PathLike) -> Path:
    """Write ``trace`` to ``path`` atomically (a temporary file, then a rename).

    Returns the path written. A reader never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            _write(trace, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a trace is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def trace_to_bytes(trace: NetworkTrace) -> bytes:
    """The ``.nntrace`` file of ``trace`` as bytes (for downloads)."""
    buffer = io.BytesIO()
    _write(trace, buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------- reading


def read_manifest(source: str | os.PathLike | bytes | IO[bytes]) -> dict[str, Any]:
    """Only the validated manifest of a trace file or run directory (fast: no table is read)."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        from .rundir import read_run_manifest

        return read_run_manifest(source)
    data, handle, _ = _source_bytes(source, MAX_TRACE_BYTES, hash_file=False)
    try:
        _check_start(data, handle)
        archive = _Archive(data, handle, MAX_TRACE_BYTES)
        try:
            if "manifest.json" not in archive.infos:
                raise _fail("the archive has no manifest.json; it is not a .nntrace file")
            return _parse_manifest(archive.read("manifest.json", MAX_MANIFEST_BYTES))
        finally:
            archive.close()
    finally:
        if handle is not None:
            handle.close()


def load_trace(
    source: str | os.PathLike | bytes | IO[bytes], *, max_bytes: int = MAX_TRACE_BYTES
) -> NetworkTrace:
    """Read a ``.nntrace`` file from a path, bytes or a binary file object.

    Everything is validated before use (see the module docstring); any problem raises
    :class:`TraceFormatError` with a specific message. Per-epoch tensors are read on demand.
    A path to a directory is read as a run directory (:mod:`nn_tracing.rundir`), with the
    same checks and limits.
    """
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        from .rundir import load_run_directory

        return load_run_directory(source, max_bytes=max_bytes)
    data, handle, digest = _source_bytes(source, max_bytes)
    try:
        return _load(data, handle, digest, max_bytes)
    except BaseException:
        if handle is not None:
            handle.close()
        raise


def _load(data: bytes | None, handle: BinaryIO | None, digest: str, max_bytes: int) -> NetworkTrace:
    _check_start(data, handle)
    archive = _Archive(data, handle, max_bytes)
    if "manifest.json" not in archive.infos:
        raise _fail("the archive has no manifest.json; it is not a .nntrace file")
    if archive.infos["manifest.json"].file_size > MAX_MANIFEST_BYTES:
        raise _fail("manifest.json is larger than a manifest can be")
    manifest = _parse_manifest(archive.read("manifest.json"))
    layers = _parse_layers(manifest["layers"])
    epochs = _parse_epochs(manifest["epochs"])
    _check_inventory(archive, manifest)
    neurons = _read_table(archive, manifest, "neurons")
    history = _read_table(archive, manifest, "history")
    assert neurons is not None and history is not None
    steps = _read_table(archive, manifest, "steps")
    return _assemble(archive, manifest, layers, epochs, (neurons, history, steps), digest)


def _assemble(
    archive: Any,
    manifest: dict[str, Any],
    layers: list[LayerInfo],
    epochs: list[int],
    tables: tuple[pd.DataFrame | Mapping[int, np.ndarray], pd.DataFrame, pd.DataFrame | None],
    digest: str,
    query: Any = None,
) -> NetworkTrace:
    """The trace from a parsed manifest and its read tables, whatever the container.

    ``archive`` is the zip's :class:`_Archive` or a run directory's reader (``infos``,
    ``read``, ``read_head``, ``max_bytes``); ``tables`` are the neurons, history and steps
    tables (steps ``None`` when absent); the neurons table may come as a mapping ``epoch ->
    metrics`` read on demand (a run directory's, checked as it is read, with ``query`` over
    its parts). Every part is checked against every other here.
    """
    neurons, history, steps = tables
    if isinstance(neurons, pd.DataFrame):
        epoch_metrics: Mapping[int, np.ndarray] = _neuron_metrics(neurons, layers, epochs)
    else:
        epoch_metrics = neurons
    history["epoch"] = history["epoch"].astype("int64")
    if steps is not None:
        steps["layer"] = steps["layer"].astype(str)

    present = _check_tensor_files(archive, manifest, epoch_metrics)
    meta = manifest["meta"]
    if meta.get("status", "complete") not in STATUSES:
        raise _fail(f"the trace's status {meta.get('status')!r} is not one nn_tracing knows")
    # every part against every other (shapes from the inventory: no tensor is read for it)
    from .store_shapes import check_epoch_values, check_labels, check_trace_shapes

    rules = check_trace_shapes(layers, epochs, meta, manifest["tensors"], history, steps)

    probe = None
    if "tensors/probe.safetensors" in manifest["tensors"]:
        probe_arrays = _load_tensors(archive, manifest, "tensors/probe.safetensors")
        check_labels(probe_arrays["y"], rules)
        probe = (probe_arrays["x"], probe_arrays["y"])
    final_weights = {}
    if "tensors/final_weights.safetensors" in manifest["tensors"]:
        final_weights = _load_tensors(archive, manifest, "tensors/final_weights.safetensors")

    def load_epoch(epoch: int) -> dict[str, np.ndarray]:
        if epoch not in present:
            return {}
        entry = f"tensors/epoch_{epoch}.safetensors"
        arrays = _load_tensors(archive, manifest, entry)
        check_epoch_values(entry, arrays, rules)
        return arrays

    return NetworkTrace(
        layers=layers,
        epoch_metrics=epoch_metrics,
        meta=meta,
        history=history,
        steps=steps,
        probe=probe,
        epoch_tensors=load_epoch,
        final_weights=final_weights,
        digest=digest,
        query=query,
    )
