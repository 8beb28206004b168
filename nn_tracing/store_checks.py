"""What a ``.nntrace`` archive must hold: the manifest, the tables and the tensors, checked.

The manifest first (format, version, layers, epochs, the inventory of tables and tensors), then
every table's Parquet schema and row count, and every safetensors header (dtype, shape, byte
offsets) against the manifest, before any large allocation. The neurons table is checked row by
row against the layers and epochs. Each problem raises
:class:`~nn_tracing.store.TraceFormatError` with a message meant for a person. How the parts
fit one another (probe, activations, logits, weights, history) is
:mod:`nn_tracing.store_shapes`; the archive itself is :mod:`nn_tracing.store_archive`.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import pandas as pd

from .store_archive import _ENTRY_PATTERNS, _Archive, _fail, _looks_like_pickle
from .timeaxis import AXES
from .trace import HISTORY_COLUMNS, METRICS, STEP_COLUMNS, LayerInfo

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LAYER_KINDS",
    "MAX_NEURONS",
    "MAX_SAFETENSORS_HEADER",
    "STATUSES",
]

FORMAT_NAME = "nntrace"
FORMAT_VERSION = 1
MAX_SAFETENSORS_HEADER = 16 * 2**20
MAX_NEURONS = 50_000_000
LAYER_KINDS = ("input", "linear", "conv1d", "conv2d")
STATUSES = ("complete", "stopped", "diverged", "running", "interrupted")

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
    axis = manifest["meta"].get("axis")
    if axis is not None and axis not in AXES:
        raise _fail(
            f"manifest.json's meta says axis {axis!r}; a trace counts time in {' or '.join(AXES)}"
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


def _read_table(
    archive: _Archive,
    manifest: dict[str, Any],
    name: str,
    schema: dict[str, str] | None = None,
) -> pd.DataFrame | None:
    """Table ``name`` as a DataFrame (``None`` when the trace has none), validated against the
    manifest and ``schema`` (default: :data:`_TABLE_SCHEMAS` of ``name``) before it is read.

    ``archive`` is anything with ``infos`` (entry -> object with ``file_size``), ``read``,
    ``read_head`` and ``max_bytes``: the zip's :class:`_Archive` or a run directory's.
    """
    schema = _TABLE_SCHEMAS[name] if schema is None else schema
    spec = manifest["tables"].get(name)
    if spec is None:
        return None
    entry, rows = _table_entry(archive, name, spec)
    data = archive.read(entry)
    if _looks_like_pickle(data[:2]):
        raise _fail(f"{entry} is a pickle; nn_tracing never unpickles trace files")
    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise _fail(f"{entry} is not a Parquet file")
    handle, metadata, arrow_schema = _parquet_file(data, entry)
    _check_table_schema(name, entry, spec, arrow_schema, schema)
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
    for column, wanted in schema.items():
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


def _check_table_schema(
    name: str, entry: str, spec: dict[str, Any], schema: Any, expected: dict[str, str]
) -> None:
    """The Parquet schema of table ``name`` against ``expected`` and the manifest."""
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
    neurons = _read_table(archive, manifest, "neurons")
    assert neurons is not None
    return _neuron_metrics(neurons, layers, epochs)


def _neuron_metrics(
    neurons: pd.DataFrame, layers: list[LayerInfo], epochs: list[int]
) -> dict[int, np.ndarray]:
    """The neurons table (read from either container), checked row by row against the layers
    and epochs: ``{epoch: array of shape (n_neurons, len(METRICS))}``."""
    n_neurons = sum(info.n_neurons for info in layers)
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
