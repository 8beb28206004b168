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
archive (entry names, count, sizes, compression ratio), then the manifest, then every table's
schema and row count and every tensor's header (dtype, shape, byte length) against the
manifest, then every part against every other (probe, activations, logits, predictions,
weights, history, config: :mod:`nn_tracing.store_shapes`), before any large allocation. Every
problem raises :class:`TraceFormatError` with a message meant for a person. Per-epoch tensors
are read when first asked for, and their values (predictions within the classes) checked then.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import pandas as pd

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

FORMAT_NAME = "nntrace"
FORMAT_VERSION = 1
#: Default bound on the total uncompressed size of a trace file.
MAX_TRACE_BYTES = 4 * 2**30
MAX_MANIFEST_BYTES = 32 * 2**20
MAX_ENTRIES = 20_000
MAX_COMPRESSION_RATIO = 200
MAX_SAFETENSORS_HEADER = 16 * 2**20
MAX_NEURONS = 50_000_000
LAYER_KINDS = ("input", "linear", "conv1d", "conv2d")
STATUSES = ("complete", "stopped", "diverged", "running")

_ENTRY_PATTERNS = (
    re.compile(r"^manifest\.json$"),
    re.compile(r"^tables/(neurons|history|steps)\.parquet$"),
    re.compile(r"^tensors/(probe|final_weights)\.safetensors$"),
    re.compile(r"^tensors/epoch_(0|[1-9][0-9]{0,8})\.safetensors$"),
)
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".bin", ".joblib", ".npy", ".npz")
_SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NUMPY_TO_ST = {v: k for k, v in _SAFETENSORS_DTYPES.items()}


class TraceFormatError(ValueError):
    """A trace file that cannot be read; the message says why, for a person."""


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


def _fail(message: str) -> TraceFormatError:
    return TraceFormatError(message)


def _check_entry_name(name: str) -> None:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise _fail(f"the archive names an absolute path ({name!r}); refusing to read it")
    parts = re.split(r"[\\/]", name)
    if ".." in parts:
        raise _fail(f"the archive names a path outside itself ({name!r}); refusing to read it")
    if name.lower().endswith(_PICKLE_SUFFIXES) or name.endswith("data.pkl"):
        raise _fail(
            f"the file contains {name!r}, a pickle or other executable format; nn_tracing never "
            "unpickles trace files (is this a torch.save checkpoint rather than a .nntrace?)"
        )
    if not any(p.match(name) for p in _ENTRY_PATTERNS):
        raise _fail(f"the archive holds an entry that a .nntrace file does not have: {name!r}")


class _Archive:
    """A validated zip archive: bounded, named entries read into memory on demand."""

    def __init__(self, data: bytes | None, handle: BinaryIO | None, max_bytes: int) -> None:
        # One ZipFile over the bytes or over a file handle held open for the trace's life:
        # replacing the file on disk later cannot change what a loaded trace reads.
        self.max_bytes = max_bytes
        self._handle = handle
        self._zip = self._make_zip(data, handle)
        infos = self._zip.infolist()
        if len(infos) > MAX_ENTRIES:
            raise _fail(f"the archive has {len(infos)} entries; a trace has at most {MAX_ENTRIES}")
        self.infos: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            _check_entry_name(info.filename)
            if info.filename in self.infos:
                raise _fail(f"the archive holds {info.filename!r} twice")
            if info.is_dir():
                raise _fail(f"the archive holds a directory entry {info.filename!r}")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _fail(f"{info.filename!r} uses a compression method nn_tracing does not read")
            if (
                info.compress_type == zipfile.ZIP_DEFLATED
                and info.file_size > 2**20
                and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1)
            ):
                raise _fail(
                    f"{info.filename!r} would expand {info.file_size // max(info.compress_size, 1)}"
                    "-fold; refusing to read a possible zip bomb"
                )
            total += info.file_size
            self.infos[info.filename] = info
        if total > max_bytes:
            raise _fail(
                f"the trace would take {total / 2**20:.0f} MiB uncompressed, over the limit of "
                f"{max_bytes / 2**20:.0f} MiB"
            )

    def close(self) -> None:
        self._zip.close()
        if self._handle is not None:
            self._handle.close()

    @contextlib.contextmanager
    def _open(self) -> Iterator[zipfile.ZipFile]:
        yield self._zip  # ZipFile reads are thread-safe on one instance (a shared-file lock)

    @staticmethod
    def _make_zip(data: bytes | None, handle: BinaryIO | None) -> zipfile.ZipFile:
        try:
            if handle is not None:
                handle.seek(0)
                return zipfile.ZipFile(handle)
            return zipfile.ZipFile(io.BytesIO(data))  # type: ignore[arg-type]
        except zipfile.BadZipFile as exc:
            raise _fail(
                f"the file is not a .nntrace (zip) archive or it is truncated: {exc}"
            ) from None
        except OSError as exc:
            raise _fail(f"the file cannot be read: {exc}") from None
        except Exception as exc:  # NotImplementedError, UnicodeDecodeError, ... for odd headers
            raise _fail(f"the file is a damaged or unsupported zip archive: {exc}") from None

    def read(self, name: str, limit: int | None = None) -> bytes:
        info = self.infos[name]
        size_limit = min(info.file_size, limit) if limit is not None else info.file_size
        try:
            with self._open() as zf, zf.open(info) as handle:
                data = handle.read(size_limit + 1)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise _fail(f"{name!r} is truncated or corrupted: {exc}") from None
        except Exception as exc:  # zlib.error and friends
            raise _fail(f"{name!r} cannot be decompressed: {exc}") from None
        if limit is None and len(data) != info.file_size:
            raise _fail(f"{name!r} is not the size the archive says; the file is corrupted")
        return data[:size_limit]

    def read_head(self, name: str, n: int) -> bytes:
        try:
            with self._open() as zf, zf.open(self.infos[name]) as handle:
                return handle.read(n)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise _fail(f"{name!r} is truncated or corrupted: {exc}") from None
        except Exception as exc:
            raise _fail(f"{name!r} cannot be decompressed: {exc}") from None


def _looks_like_pickle(head: bytes) -> bool:
    return head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6)


def _parse_manifest(raw: bytes) -> dict[str, Any]:
    if _looks_like_pickle(raw[:2]):
        raise _fail("manifest.json is a pickle; nn_tracing never unpickles trace files")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also int()'s digit limit
        raise _fail(f"manifest.json is not valid JSON: {exc}") from None
    except RecursionError:
        raise _fail("manifest.json is not valid JSON: it is nested too deeply") from None
    if not isinstance(manifest, dict):
        raise _fail("manifest.json must hold a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        raise _fail(
            f"manifest.json says format {manifest.get('format')!r}; a trace says {FORMAT_NAME!r}"
        )
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(f"manifest.json has no valid format_version (got {version!r})")
    if version > FORMAT_VERSION:
        raise _fail(
            f"this trace uses format version {version}, written by a newer nn_tracing; this "
            f"version reads up to format version {FORMAT_VERSION}: upgrade nn_tracing to open it"
        )
    for key, kind in (
        ("layers", list),
        ("epochs", list),
        ("tables", dict),
        ("tensors", dict),
        ("meta", dict),
        ("metrics", list),
    ):
        if not isinstance(manifest.get(key), kind):
            raise _fail(f"manifest.json lacks {key!r} (a JSON {kind.__name__})")
    if list(manifest["metrics"]) != list(METRICS):
        raise _fail(
            f"manifest.json lists metrics {manifest['metrics']}; this version expects "
            f"{list(METRICS)}"
        )
    return manifest


def _parse_layers(raw: list[Any]) -> list[LayerInfo]:
    fields = set(LayerInfo.__dataclass_fields__)
    layers: list[LayerInfo] = []
    expected_first = 0
    for i, item in enumerate(raw):
        _check_layer(i, item, fields, expected_first)
        expected_first += item["n_neurons"]
        layers.append(LayerInfo.from_dict(item))
    if not layers or layers[0].kind != "input":
        raise _fail("the first layer of a trace must be the input layer")
    names = [info.name for info in layers]
    if len(set(names)) != len(names):
        raise _fail("layer names in manifest.json are not unique")
    if expected_first > MAX_NEURONS:
        raise _fail(f"the trace claims {expected_first} neurons, over the limit of {MAX_NEURONS}")
    return layers


def _check_layer(i: int, item: Any, fields: set[str], expected_first: int) -> None:
    """Layer ``i`` of the manifest: its keys, name, kind, counts, ids and strings."""
    if not isinstance(item, dict) or set(item) != fields:
        raise _fail(f"layer {i} in manifest.json must have exactly the keys {sorted(fields)}")
    name, kind = item["name"], item["kind"]
    if not isinstance(name, str) or not 0 < len(name) <= 200 or "/" in name:
        raise _fail(f"layer {i} has an invalid name {name!r}")
    if kind not in LAYER_KINDS:
        raise _fail(f"layer {name!r} has unknown kind {kind!r}")
    for key in ("n_neurons", "first_id", "fan_in"):
        value = item[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _fail(f"layer {name!r}: {key} must be a non-negative integer")
    if item["n_neurons"] < 1:
        raise _fail(f"layer {name!r} has no neurons")
    if item["first_id"] != expected_first:
        raise _fail(
            f"layer {name!r} starts at n_{item['first_id']}, expected n_{expected_first}: "
            "neuron ids must be contiguous"
        )
    for key in ("activation", "weight_key", "bias_key"):
        if item[key] is not None and not (isinstance(item[key], str) and len(item[key]) < 500):
            raise _fail(f"layer {name!r}: {key} must be a short string or null")
    if not isinstance(item["module"], str) or len(item["module"]) > 500:
        raise _fail(f"layer {name!r}: module must be a short string")


def _parse_epochs(raw: list[Any]) -> list[int]:
    if not raw:
        raise _fail("the trace records no epoch")
    for value in raw:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**9:
            raise _fail(f"manifest.json lists an invalid epoch {value!r}")
    if raw != sorted(set(raw)):
        raise _fail("manifest.json must list epochs once each, ascending")
    return list(raw)


_TABLE_SCHEMAS: dict[str, dict[str, str]] = {
    "neurons": {
        "epoch": "int",
        "layer": "string",
        "neuron": "int",
        **dict.fromkeys(METRICS, "float32"),
    },
    "history": {
        "epoch": "int",
        **dict.fromkeys(HISTORY_COLUMNS, "float"),
        "recorded": "bool",
    },
    "steps": {
        "step": "int",
        "epoch": "int",
        "layer": "string",
        **dict.fromkeys(STEP_COLUMNS, "float"),
    },
}


def _type_matches(arrow_type: Any, wanted: str) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if wanted == "int":
        return pa.types.is_integer(arrow_type)
    if wanted == "float32":
        return pa.types.is_float32(arrow_type)
    if wanted == "float":
        return pa.types.is_floating(arrow_type)
    if wanted == "bool":
        return pa.types.is_boolean(arrow_type)
    if wanted == "string":
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    return False


def _read_table(archive: _Archive, manifest: dict[str, Any], name: str) -> pd.DataFrame | None:
    """Table ``name`` as a DataFrame (``None`` when the trace has none), validated against the
    manifest and :data:`_TABLE_SCHEMAS` before it is read."""
    spec = manifest["tables"].get(name)
    if spec is None:
        return None
    entry, rows = _table_entry(archive, name, spec)
    data = archive.read(entry)
    if _looks_like_pickle(data[:2]):
        raise _fail(f"{entry} is a pickle; nn_tracing never unpickles trace files")
    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise _fail(f"{entry} is not a Parquet file")
    handle, metadata, schema = _parquet_file(data, entry)
    _check_table_schema(name, entry, spec, schema)
    if metadata.num_rows != rows:
        raise _fail(f"table {name!r} has {metadata.num_rows} rows but the manifest says {rows}")
    uncompressed = sum(
        metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)
    )
    if uncompressed > archive.max_bytes:
        raise _fail(f"table {name!r} would expand to {uncompressed} bytes, over the limit")
    try:
        table = handle.read()
    except Exception as exc:
        raise _fail(f"{entry} cannot be read: {exc}") from None
    for column, wanted in _TABLE_SCHEMAS[name].items():
        if wanted not in ("float", "float32") and table.column(column).null_count:
            raise _fail(f"table {name!r}: column {column!r} has missing values")
    try:
        frame = table.replace_schema_metadata(None).to_pandas()
    except Exception as exc:
        raise _fail(f"{entry} cannot be read: {exc}") from None
    if len(frame) != rows:
        raise _fail(f"table {name!r} has {len(frame)} rows but the manifest says {rows}")
    return frame


def _table_entry(archive: _Archive, name: str, spec: Any) -> tuple[str, int]:
    """The archive entry of table ``name`` and its row count, as the manifest describes it."""
    if not isinstance(spec, dict) or set(spec) != {"entry", "rows", "columns"}:
        raise _fail(f"manifest.json describes table {name!r} badly")
    entry = f"tables/{name}.parquet"
    if spec["entry"] != entry:
        raise _fail(f"table {name!r} must live in {entry!r}")
    if entry not in archive.infos:
        raise _fail(f"the table {name!r} ({entry}) is missing from the archive")
    rows = spec["rows"]
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise _fail(f"table {name!r}: rows must be a non-negative integer")
    return entry, rows


def _parquet_file(data: bytes, entry: str) -> tuple[Any, Any, Any]:
    """A ``pyarrow.parquet.ParquetFile`` over ``data``, its metadata and its Arrow schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(pa.BufferReader(data))
        return handle, handle.metadata, handle.schema_arrow
    except Exception as exc:  # pyarrow raises several types for bad files
        raise _fail(f"{entry} is not a readable Parquet file: {exc}") from None


def _check_table_schema(name: str, entry: str, spec: dict[str, Any], schema: Any) -> None:
    """The Parquet schema of table ``name`` against :data:`_TABLE_SCHEMAS` and the manifest."""
    expected = _TABLE_SCHEMAS[name]
    columns = list(schema.names)
    if columns == list(expected) and spec["columns"] != list(expected):
        raise _fail(f"manifest.json lists other columns for table {name!r} than {entry} holds")
    if columns != list(expected):
        missing = [c for c in expected if c not in columns]
        extra = [c for c in columns if c not in expected]
        raise _fail(
            f"table {name!r} has the wrong columns"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unexpected: {', '.join(extra)}" if extra else "")
            + ("" if missing or extra else "; they are out of order")
        )
    for column, wanted in expected.items():
        arrow_type = schema.field(column).type
        if not _type_matches(arrow_type, wanted):
            raise _fail(f"table {name!r}: column {column!r} is {arrow_type}, expected {wanted}")


def _check_tensor_entry(archive: _Archive, entry: str, expected: Any) -> None:
    """Validate a safetensors entry's header against the manifest without reading its data."""
    if entry not in archive.infos:
        raise _fail(f"the tensor file {entry} is missing from the archive")
    if not isinstance(expected, dict) or not expected or len(expected) > 10_000:
        raise _fail(f"manifest.json describes {entry} badly")
    size = archive.infos[entry].file_size
    header_len, header = _safetensors_header(archive, entry, size)
    if set(header) != set(expected):
        missing = sorted(set(expected) - set(header))[:5]
        extra = sorted(set(header) - set(expected))[:5]
        raise _fail(
            f"{entry} does not hold the tensors the manifest lists (missing {missing}, "
            f"unexpected {extra})"
        )
    end = 0
    for key, info in header.items():
        end = max(end, _tensor_end(entry, key, info, expected[key], archive.max_bytes))
    if 8 + header_len + end != size:
        raise _fail(f"{entry} is {size} bytes but its header describes {8 + header_len + end}")


def _safetensors_header(archive: _Archive, entry: str, size: int) -> tuple[int, dict[str, Any]]:
    """The length and the tensors (``__metadata__`` left out) of a safetensors header."""
    head = archive.read_head(entry, 8)
    if _looks_like_pickle(head[:2]):
        raise _fail(f"{entry} is a pickle; nn_tracing never unpickles trace files")
    if len(head) < 8:
        raise _fail(f"{entry} is truncated")
    (header_len,) = struct.unpack("<Q", head)
    if header_len > MAX_SAFETENSORS_HEADER or 8 + header_len > size:
        raise _fail(f"{entry} has an impossible header length; it is not a safetensors file")
    raw = archive.read_head(entry, 8 + header_len)[8:]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # ValueError: int()'s digit limit
        raise _fail(f"{entry} has an unreadable header; it is not a safetensors file") from None
    if not isinstance(header, dict):
        raise _fail(f"{entry} has an invalid header")
    header.pop("__metadata__", None)
    return header_len, header


def _tensor_end(entry: str, key: str, info: Any, want: Any, max_bytes: int) -> int:
    """Tensor ``key``'s header entry against the manifest's; the end of its bytes."""
    if not isinstance(info, dict) or not isinstance(want, dict):
        raise _fail(f"{entry}: tensor {key!r} is described badly")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in _SAFETENSORS_DTYPES:
        raise _fail(f"{entry}: tensor {key!r} has dtype {dtype!r}, which traces do not use")
    if (
        not isinstance(shape, list)
        or len(shape) > 8
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise _fail(f"{entry}: tensor {key!r} has an invalid shape {shape!r}")
    if want.get("dtype") != dtype or want.get("shape") != shape:
        raise _fail(
            f"{entry}: tensor {key!r} is {dtype}{shape} but the manifest says "
            f"{want.get('dtype')}{want.get('shape')}"
        )
    n_bytes = math.prod(shape) * _SAFETENSORS_DTYPES[dtype].itemsize
    if n_bytes > max_bytes:
        raise _fail(f"{entry}: tensor {key!r} is larger than the limit")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or offsets[1] - offsets[0] != n_bytes
        or offsets[0] < 0
    ):
        raise _fail(f"{entry}: tensor {key!r} has byte offsets that disagree with its shape")
    return int(offsets[1])


def _load_tensors(archive: _Archive, manifest: dict[str, Any], entry: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    data = archive.read(entry)
    try:
        tensors = load(data)
    except Exception as exc:
        raise _fail(f"{entry} cannot be read as safetensors: {exc}") from None
    # safetensors returns its tensors in no fixed order; keep the writer's (the manifest's)
    order = list(manifest["tensors"][entry])
    if set(order) != set(tensors):
        raise _fail(f"{entry} does not hold the tensors the manifest lists")
    return {key: tensors[key] for key in order}


def _source_bytes(
    source: Any, max_bytes: int, *, hash_file: bool = True
) -> tuple[bytes | None, BinaryIO | None, str]:
    """Return (data, handle, digest) for a path, bytes or a binary file object.

    A path is opened once and its handle returned (``data`` is then ``None``); the digest is
    computed from that same handle.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise _fail(f"the file is larger than the limit of {max_bytes / 2**20:.0f} MiB")
        return data, None, hashlib.sha256(data).hexdigest()
    if isinstance(source, (str, os.PathLike)):
        handle, digest = _open_path(Path(source), max_bytes, hash_file=hash_file)
        return None, handle, digest
    if hasattr(source, "read"):
        data = source.read(max_bytes + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise _fail("the file object must be opened in binary mode")
        if len(data) > max_bytes:
            raise _fail(f"the file is larger than the limit of {max_bytes / 2**20:.0f} MiB")
        return bytes(data), None, hashlib.sha256(data).hexdigest()
    raise TypeError(f"load_trace takes a path, bytes or a binary file, not {type(source).__name__}")


def _open_path(path: Path, max_bytes: int, *, hash_file: bool) -> tuple[BinaryIO, str]:
    """The open file at ``path`` and the sha256 of its bytes (of nothing unless ``hash_file``)."""
    if not path.exists():
        raise _fail(f"no such file: {str(path)!r}")
    if not path.is_file():
        raise _fail(f"{str(path)!r} is not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise _fail(f"{path.name} is larger than the limit of {max_bytes / 2**20:.0f} MiB")
    digest = hashlib.sha256()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise _fail(f"{path.name} cannot be read: {exc}") from None
    try:
        if hash_file:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
    except OSError as exc:
        handle.close()
        raise _fail(f"{path.name} cannot be read: {exc}") from None
    return handle, digest.hexdigest()


def _check_start(data: bytes | None, handle: BinaryIO | None) -> None:
    """Name the common wrong files (empty, pickle, not a zip) before zipfile looks at them."""
    if data is not None:
        head = data[:2]
    else:
        assert handle is not None
        try:
            handle.seek(0)
            head = handle.read(2)
        except OSError as exc:
            raise _fail(f"the file cannot be read: {exc}") from None
    if not head:
        raise _fail("the file is empty (0 bytes); it is not a .nntrace file")
    if head != b"PK":
        if _looks_like_pickle(head):
            raise _fail("this is a pickle file, not a .nntrace; nn_tracing never unpickles files")
        raise _fail("the file is not a .nntrace archive (it does not start like a zip file)")


def read_manifest(source: str | os.PathLike | bytes | IO[bytes]) -> dict[str, Any]:
    """Only the validated manifest of a trace file (fast: no table is read)."""
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
    """
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

    epoch_metrics = _read_neurons(archive, manifest, layers, epochs)

    history = _read_table(archive, manifest, "history")
    assert history is not None
    history["epoch"] = history["epoch"].astype("int64")
    steps = _read_table(archive, manifest, "steps")
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
    )


def _check_inventory(archive: _Archive, manifest: dict[str, Any]) -> None:
    """The tables the manifest lists (the required ones, no unknown one) and no entry in the
    archive that the manifest does not list."""
    for required in ("neurons", "history"):
        if required not in manifest["tables"]:
            raise _fail(f"the manifest lists no {required!r} table")
    unknown = sorted(set(manifest["tables"]) - set(_TABLE_SCHEMAS))
    if unknown:
        raise _fail(f"the manifest lists unknown tables: {', '.join(unknown)}")
    listed = {"manifest.json"} | {f"tables/{t}.parquet" for t in manifest["tables"]}
    listed |= set(manifest["tensors"])
    extra = sorted(set(archive.infos) - listed)
    if extra:
        raise _fail(f"the archive holds entries the manifest does not list: {', '.join(extra[:5])}")


def _check_tensor_files(
    archive: _Archive, manifest: dict[str, Any], epoch_metrics: dict[int, np.ndarray]
) -> set[int]:
    """Every tensor file's header against the manifest; the epochs that have a tensor file."""
    present: set[int] = set()
    for entry, inventory in manifest["tensors"].items():
        if not isinstance(entry, str) or not any(p.match(entry) for p in _ENTRY_PATTERNS[2:]):
            raise _fail(f"the manifest lists an unknown tensor file {entry!r}")
        _check_tensor_entry(archive, entry, inventory)
        match = _ENTRY_PATTERNS[3].match(entry)
        if match and int(match.group(1)) not in epoch_metrics:
            raise _fail(f"{entry} belongs to an epoch the trace does not record")
        if match:
            present.add(int(match.group(1)))
    return present


def _read_neurons(
    archive: _Archive, manifest: dict[str, Any], layers: list[LayerInfo], epochs: list[int]
) -> dict[int, np.ndarray]:
    """The neurons table, checked row by row against the layers and epochs: ``{epoch: array
    of shape (n_neurons, len(METRICS))}``."""
    n_neurons = sum(info.n_neurons for info in layers)
    neurons = _read_table(archive, manifest, "neurons")
    assert neurons is not None
    expected_rows = len(epochs) * n_neurons
    if len(neurons) != expected_rows:
        raise _fail(
            f"the neurons table has {len(neurons)} rows; {len(epochs)} epochs × {n_neurons} "
            f"neurons make {expected_rows}"
        )
    epoch_col = neurons["epoch"].to_numpy()
    neuron_col = neurons["neuron"].to_numpy()
    if not (
        np.array_equal(epoch_col, np.repeat(np.asarray(epochs), n_neurons))
        and np.array_equal(neuron_col, np.tile(np.arange(n_neurons), len(epochs)))
    ):
        raise _fail("the neurons table's epoch and neuron columns disagree with the manifest")
    layer_names = np.concatenate([[info.name] * info.n_neurons for info in layers])
    if not np.array_equal(
        neurons["layer"].astype(str).to_numpy(), np.tile(layer_names, len(epochs))
    ):
        raise _fail("the neurons table's layer column disagrees with the manifest's layers")
    values = neurons[list(METRICS)].to_numpy(dtype=np.float32)
    epoch_metrics = {
        epoch: values[i * n_neurons : (i + 1) * n_neurons] for i, epoch in enumerate(epochs)
    }
    return epoch_metrics
