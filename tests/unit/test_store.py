"""The ``.nntrace`` file format (``nn_tracing.store``): exact, safe, atomic.

* A trace made by real training survives ``save_trace`` / ``load_trace`` bit for bit, from a
  path, from bytes and from a binary file object.
* Every kind of malformed or hostile file raises :class:`TraceFormatError` with a message that
  says what is wrong; the malformed files are built by rewriting a valid file's zip entries.
* ``save_trace`` is atomic: a failed write leaves the old file and no temporary file behind.
* Loading bad files leaves the process able to load good ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import random
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from safetensors.numpy import save as safetensors_save

import nn_tracing
from nn_tracing import store, store_archive
from nn_tracing.store import (
    FORMAT_VERSION,
    TraceFormatError,
    load_trace,
    read_manifest,
    save_trace,
    trace_to_bytes,
)
from nn_tracing.trace import NetworkTrace

PROBE = "tensors/probe.safetensors"
FINAL = "tensors/final_weights.safetensors"
NEURONS = "tables/neurons.parquet"
HISTORY = "tables/history.parquet"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def trace() -> NetworkTrace:
    run = nn_tracing.train(
        nn_tracing.TrainConfig(
            dataset="moons",
            hidden_sizes=(8, 8),
            epochs=4,
            epoch_intervals=2,
            keep_weights=True,
            drop_batches=False,
            n_samples=300,
            probe_size=64,
        )
    )
    assert run.trace is not None
    return run.trace


@pytest.fixture(scope="module")
def valid(trace: NetworkTrace) -> bytes:
    """The trace's file as bytes: the starting point of every malformed file below."""
    return trace_to_bytes(trace)


# --------------------------------------------------------------------------- helpers


def entries(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    """The entries of a zip file, in order, with their contents."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info, zf.read(info)) for info in zf.infolist()]


def entry(data: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read(name)


def build(items: Iterable[tuple[str | zipfile.ZipInfo, bytes]], **kwargs: Any) -> bytes:
    """A zip file holding ``items`` in order (duplicate names allowed)."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(out, "w", **kwargs) as zf:
            for name, blob in items:
                zf.writestr(name, blob)
    return out.getvalue()


def rewrite(
    data: bytes,
    replace: Mapping[str, bytes] | None = None,
    drop: Iterable[str] = (),
    add: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None = None,
) -> bytes:
    """``data`` with some entries replaced, dropped or added (compression kept per entry)."""
    replace = dict(replace or {})
    drop = set(drop)
    added = list(add.items()) if isinstance(add, Mapping) else list(add or [])
    kept = [
        (info, replace.get(info.filename, blob))
        for info, blob in entries(data)
        if info.filename not in drop
    ]
    return build([*kept, *added])


def manifest_of(data: bytes) -> dict[str, Any]:
    return json.loads(entry(data, "manifest.json"))


def edit_manifest(data: bytes, edit: Callable[[dict[str, Any]], Any]) -> bytes:
    """``data`` with its manifest changed in place by ``edit`` (whose result is ignored)."""
    manifest = manifest_of(data)
    edit(manifest)
    return replace_manifest(data, json.dumps(manifest).encode())


def replace_manifest(data: bytes, raw: bytes) -> bytes:
    """``data`` with ``raw`` as its manifest."""
    return rewrite(data, replace={"manifest.json": raw})


def table_of(data: bytes, name: str) -> pa.Table:
    return pq.read_table(io.BytesIO(entry(data, f"tables/{name}.parquet")))


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def with_table(data: bytes, name: str, table: pa.Table, sync_manifest: bool = True) -> bytes:
    """``data`` with table ``name`` replaced; the manifest follows its columns and rows unless
    ``sync_manifest`` is false (so that only the intended disagreement remains)."""
    data = rewrite(data, replace={f"tables/{name}.parquet": parquet_bytes(table)})
    if not sync_manifest:
        return data

    def sync(manifest: dict[str, Any]) -> None:
        manifest["tables"][name]["columns"] = table.column_names
        manifest["tables"][name]["rows"] = table.num_rows

    return edit_manifest(data, sync)


def with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, values)


def safetensors_raw(header: dict[str, Any] | bytes, payload: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + payload


def split_safetensors(blob: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def patch_central(data: bytes, name: str, offset: int, fmt: str, value: int) -> bytes:
    """``data`` with one field of ``name``'s central-directory record overwritten."""
    out = bytearray(data)
    position = out.find(b"PK\x01\x02")
    while position >= 0:
        name_len = struct.unpack_from("<H", out, position + 28)[0]
        if out[position + 46 : position + 46 + name_len] == name.encode():
            struct.pack_into(fmt, out, position + offset, value)
            return bytes(out)
        position = out.find(b"PK\x01\x02", position + 4)
    raise AssertionError(f"{name} has no central-directory record")


def load_everything(source: Any, **kwargs: Any) -> NetworkTrace:
    """Load a trace and touch every lazily read part of it."""
    loaded = load_trace(source, **kwargs)
    for epoch in loaded.epochs:
        loaded.epoch_tensors(epoch)
    _ = loaded.frame
    return loaded


def assert_same_trace(loaded: NetworkTrace, original: NetworkTrace) -> None:
    pd.testing.assert_frame_equal(loaded.frame, original.frame)
    pd.testing.assert_frame_equal(loaded.history, original.history)
    assert original.steps is not None
    assert loaded.steps is not None
    pd.testing.assert_frame_equal(loaded.steps, original.steps)

    assert original.probe is not None
    assert loaded.probe is not None
    for got, want in zip(loaded.probe, original.probe, strict=True):
        assert_bitwise_equal(got, want)

    assert loaded.epochs == original.epochs
    for epoch in original.epochs:
        got, want = loaded.epoch_tensors(epoch), original.epoch_tensors(epoch)
        assert list(got) == list(want)
        for key in want:
            assert_bitwise_equal(got[key], want[key])
        assert_bitwise_equal(loaded.metrics_at(epoch), original.metrics_at(epoch))

    assert list(loaded.final_weights) == list(original.final_weights)  # state_dict order
    for key, want in original.final_weights.items():
        assert_bitwise_equal(loaded.final_weights[key], want)

    assert loaded.meta == original.meta
    assert loaded.layers == original.layers
    assert loaded.neural_index == original.neural_index


def assert_bitwise_equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()


# --------------------------------------------------------------------------- round trip


def test_fixture_trace_exercises_every_part_of_the_format(trace: NetworkTrace) -> None:
    assert trace.epochs == [0, 2, 4]
    assert trace.steps is not None and len(trace.steps) > 0
    assert trace.probe is not None
    assert trace.final_weights
    for epoch in trace.epochs:
        keys = set(trace.epoch_tensors(epoch))
        assert {"activations", "logits", "predictions"} <= keys
        assert any(k.startswith("weights/") for k in keys)


@pytest.mark.parametrize("kind", ["path", "str", "bytes", "bytearray", "file object"])
def test_round_trip_is_exact(trace: NetworkTrace, tmp_path: Path, kind: str) -> None:
    path = save_trace(trace, tmp_path / "run.nntrace")
    assert path == tmp_path / "run.nntrace"
    if kind == "path":
        loaded = load_trace(path)
    elif kind == "str":
        loaded = load_trace(str(path))
    elif kind == "bytes":
        loaded = load_trace(path.read_bytes())
    elif kind == "bytearray":
        loaded = load_trace(bytearray(path.read_bytes()))
    else:
        with path.open("rb") as handle:
            loaded = load_trace(handle)
    assert_same_trace(loaded, trace)
    assert loaded.digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_trace_to_bytes_is_what_save_trace_writes(
    trace: NetworkTrace, valid: bytes, tmp_path: Path
) -> None:
    path = save_trace(trace, tmp_path / "run.nntrace")
    on_disk = {info.filename: blob for info, blob in entries(path.read_bytes())}
    in_memory = {info.filename: blob for info, blob in entries(valid)}
    assert on_disk == in_memory
    assert_same_trace(load_trace(valid), trace)
    assert_same_trace(load_trace(path), load_trace(valid))


def test_a_loaded_trace_saves_to_the_same_file(trace: NetworkTrace, valid: bytes) -> None:
    again = trace_to_bytes(load_trace(valid))
    assert {i.filename: b for i, b in entries(again)} == {i.filename: b for i, b in entries(valid)}
    assert_same_trace(load_trace(again), trace)


def test_read_manifest_of_a_valid_file(trace: NetworkTrace, valid: bytes) -> None:
    manifest = read_manifest(valid)
    assert manifest["format"] == "nntrace"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["epochs"] == trace.epochs
    assert set(manifest["tables"]) == {"neurons", "history", "steps"}


def test_file_layout(valid: bytes) -> None:
    names = [info.filename for info, _ in entries(valid)]
    assert names[0] == "manifest.json"
    assert {NEURONS, HISTORY, "tables/steps.parquet", PROBE, FINAL} <= set(names)
    assert {f"tensors/epoch_{e}.safetensors" for e in (0, 2, 4)} <= set(names)
    for name in names:
        assert ".." not in name and not name.startswith("/")


# --------------------------------------------------------------------------- not a trace


def test_random_bytes_are_not_a_trace(tmp_path: Path) -> None:
    junk = b"\x00\x01" + random.Random(0).randbytes(4094)
    with pytest.raises(TraceFormatError, match="does not start like a zip file"):
        load_trace(junk)
    (tmp_path / "junk.nntrace").write_bytes(junk)
    with pytest.raises(TraceFormatError, match="does not start like a zip file"):
        load_trace(tmp_path / "junk.nntrace")


def test_text_file_is_not_a_trace(tmp_path: Path) -> None:
    path = tmp_path / "notes.nntrace"
    path.write_text("epoch,loss\n0,0.69\n1,0.52\n")
    with pytest.raises(TraceFormatError, match="does not start like a zip file"):
        load_trace(path)


@pytest.mark.parametrize("kind", ["bytes", "path", "file object"])
def test_empty_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "empty.nntrace"
    path.write_bytes(b"")
    source: Any = {"bytes": b"", "path": path, "file object": io.BytesIO()}[kind]
    with pytest.raises(TraceFormatError, match=r"empty \(0 bytes\)"):
        load_trace(source)


def test_file_cut_in_half(valid: bytes, tmp_path: Path) -> None:
    half = valid[: len(valid) // 2]
    with pytest.raises(TraceFormatError, match="truncated"):
        load_trace(half)
    (tmp_path / "half.nntrace").write_bytes(half)
    with pytest.raises(TraceFormatError, match="truncated"):
        load_trace(tmp_path / "half.nntrace")


@pytest.mark.parametrize("cut", [1, 5, 21, 22, 100])
def test_file_missing_its_last_bytes(valid: bytes, cut: int) -> None:
    with pytest.raises(TraceFormatError, match="truncated"):
        load_trace(valid[:-cut])


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="no such file"):
        load_trace(tmp_path / "nothing.nntrace")


def test_directory_is_not_a_trace(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="is not a file"):
        load_trace(tmp_path)


def test_text_mode_file_object(tmp_path: Path) -> None:
    path = tmp_path / "run.nntrace"
    path.write_text("hello")
    with path.open() as handle, pytest.raises(TraceFormatError, match="binary mode"):
        load_trace(handle)


def test_other_zip_archive(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match=r"does not have: 'hello\.txt'"):
        load_trace(build([("hello.txt", b"hello")]))


# --------------------------------------------------------------------------- the manifest


def test_manifest_missing(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match=r"no manifest\.json"):
        load_trace(rewrite(valid, drop=["manifest.json"]))


@pytest.mark.parametrize("raw", [b"{format: nntrace", b"", b"\xff\xfe\x00not utf-8"])
def test_manifest_not_json(valid: bytes, raw: bytes) -> None:
    with pytest.raises(TraceFormatError, match=r"manifest\.json is not valid JSON"):
        load_trace(replace_manifest(valid, raw))


def test_manifest_nested_too_deeply(valid: bytes) -> None:
    # json.loads raises RecursionError here, which must not escape as such
    with pytest.raises(TraceFormatError, match="nested too deeply"):
        load_trace(replace_manifest(valid, b"[" * 100_000))


@pytest.mark.parametrize("value", [[1, 2], "nntrace", 1, None])
def test_manifest_json_but_not_an_object(valid: bytes, value: Any) -> None:
    with pytest.raises(TraceFormatError, match="must hold a JSON object"):
        load_trace(replace_manifest(valid, json.dumps(value).encode()))


def test_manifest_with_a_number_too_long_to_read(valid: bytes) -> None:
    # json.loads raised int()'s ValueError (4300 digits at most), not a TraceFormatError
    raw = json.dumps(manifest_of(valid)).replace('"epochs": [', '"epochs": [' + "7" * 5000 + ", ")
    with pytest.raises(TraceFormatError, match=r"manifest\.json is not valid JSON"):
        load_trace(replace_manifest(valid, raw.encode()))


def test_safetensors_header_with_a_number_too_long_to_read(valid: bytes) -> None:
    header, payload = split_safetensors(entry(valid, PROBE))
    raw = json.dumps(header).replace('"shape": [', '"shape": [' + "7" * 5000 + ", ", 1)
    with pytest.raises(TraceFormatError, match=f"{PROBE} has an unreadable header"):
        load_trace(rewrite(valid, replace={PROBE: safetensors_raw(raw.encode(), payload)}))


def test_manifest_wrong_format_name(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match="says format 'tensorboard'"):
        load_trace(edit_manifest(valid, lambda m: m.update(format="tensorboard")))


def test_manifest_without_format_version(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match="no valid format_version"):
        load_trace(edit_manifest(valid, lambda m: m.pop("format_version")))


@pytest.mark.parametrize("version", ["1", 0, True, 1.0])
def test_manifest_invalid_format_version(valid: bytes, version: Any) -> None:
    with pytest.raises(TraceFormatError, match="no valid format_version"):
        load_trace(edit_manifest(valid, lambda m: m.update(format_version=version)))


def test_manifest_newer_format_version(valid: bytes) -> None:
    data = edit_manifest(valid, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(TraceFormatError, match="written by a newer nn_tracing") as info:
        load_trace(data)
    assert f"version {FORMAT_VERSION + 1}" in str(info.value)
    with pytest.raises(TraceFormatError, match="newer nn_tracing"):
        read_manifest(data)


@pytest.mark.parametrize("key", ["layers", "epochs", "tables", "tensors", "meta", "metrics"])
def test_manifest_lacks_a_key(valid: bytes, key: str) -> None:
    with pytest.raises(TraceFormatError, match=f"manifest.json lacks '{key}'"):
        load_trace(edit_manifest(valid, lambda m: m.pop(key)))


def test_manifest_other_metrics(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match="lists metrics"):
        load_trace(edit_manifest(valid, lambda m: m["metrics"].reverse()))


def test_layer_ids_not_contiguous(valid: bytes) -> None:
    def gap(manifest: dict[str, Any]) -> None:
        manifest["layers"][2]["first_id"] += 1

    with pytest.raises(TraceFormatError, match="neuron ids must be contiguous"):
        load_trace(edit_manifest(valid, gap))


def test_first_layer_not_input(valid: bytes) -> None:
    def no_input(manifest: dict[str, Any]) -> None:
        layers = manifest["layers"][1:]
        first = 0
        for layer in layers:
            layer["first_id"] = first
            first += layer["n_neurons"]
        manifest["layers"] = layers

    with pytest.raises(TraceFormatError, match="first layer of a trace must be the input layer"):
        load_trace(edit_manifest(valid, no_input))


def test_layer_with_unknown_kind(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match="unknown kind 'lstm'"):
        load_trace(edit_manifest(valid, lambda m: m["layers"][1].update(kind="lstm")))


def test_layer_with_extra_key(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match=r"layer 1 in manifest\.json must have exactly"):
        load_trace(edit_manifest(valid, lambda m: m["layers"][1].update(code="print(1)")))


def test_duplicate_layer_names(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match="not unique"):
        load_trace(edit_manifest(valid, lambda m: m["layers"][2].update(name="hidden_1")))


@pytest.mark.parametrize(
    ("epochs", "message"),
    [([], "records no epoch"), ([2, 0, 4], "ascending"), ([0, -2, 4], "invalid epoch -2")],
)
def test_manifest_bad_epochs(valid: bytes, epochs: list[int], message: str) -> None:
    with pytest.raises(TraceFormatError, match=message):
        load_trace(edit_manifest(valid, lambda m: m.update(epochs=epochs)))


def test_unknown_status(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match="status 'pwned' is not one nn_tracing knows"):
        load_trace(edit_manifest(valid, lambda m: m["meta"].update(status="pwned")))


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize("table", ["neurons", "history"])
def test_required_table_missing(valid: bytes, table: str) -> None:
    data = edit_manifest(valid, lambda m: m["tables"].pop(table))
    data = rewrite(data, drop=[f"tables/{table}.parquet"])
    with pytest.raises(TraceFormatError, match=f"lists no '{table}' table"):
        load_trace(data)


@pytest.mark.parametrize("table", ["neurons", "history", "steps"])
def test_listed_table_missing_from_archive(valid: bytes, table: str) -> None:
    with pytest.raises(TraceFormatError, match=f"table '{table}'.* is missing from the archive"):
        load_trace(rewrite(valid, drop=[f"tables/{table}.parquet"]))


def test_unknown_table_in_manifest(valid: bytes) -> None:
    def extra(manifest: dict[str, Any]) -> None:
        manifest["tables"]["secrets"] = dict(manifest["tables"]["history"])

    with pytest.raises(TraceFormatError, match="unknown tables: secrets"):
        load_trace(edit_manifest(valid, extra))


def test_unknown_table_entry(valid: bytes) -> None:
    data = rewrite(valid, add={"tables/secrets.parquet": entry(valid, HISTORY)})
    with pytest.raises(TraceFormatError, match=r"does not have: 'tables/secrets\.parquet'"):
        load_trace(data)


def test_extra_unlisted_entry(valid: bytes) -> None:
    # the name is one a trace may hold, but the manifest does not list it
    data = rewrite(valid, add={"tensors/epoch_3.safetensors": entry(valid, PROBE)})
    with pytest.raises(TraceFormatError, match=r"does not list: tensors/epoch_3\.safetensors"):
        load_trace(data)


def test_extra_entry_of_unknown_name(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match=r"does not have: 'README\.txt'"):
        load_trace(rewrite(valid, add={"README.txt": b"hello"}))


def test_table_in_the_wrong_entry(valid: bytes) -> None:
    data = edit_manifest(valid, lambda m: m["tables"]["history"].update(entry=NEURONS))
    with pytest.raises(TraceFormatError, match=r"must live in 'tables/history\.parquet'"):
        load_trace(data)


@pytest.mark.parametrize("sync_manifest", [True, False])
def test_table_missing_a_column(valid: bytes, sync_manifest: bool) -> None:
    table = table_of(valid, "neurons").drop_columns(["w_drift"])
    with pytest.raises(TraceFormatError, match="'neurons' has the wrong columns; missing: w_drift"):
        load_trace(with_table(valid, "neurons", table, sync_manifest))


@pytest.mark.parametrize("sync_manifest", [True, False])
def test_table_with_an_extra_column(valid: bytes, sync_manifest: bool) -> None:
    table = table_of(valid, "history")
    table = table.append_column("payload", pa.array(["x"] * table.num_rows))
    with pytest.raises(TraceFormatError, match="wrong columns; unexpected: payload"):
        load_trace(with_table(valid, "history", table, sync_manifest))


def test_table_columns_out_of_order(valid: bytes) -> None:
    table = table_of(valid, "history")
    names = table.column_names
    table = table.select([names[1], names[0], *names[2:]])
    with pytest.raises(TraceFormatError, match="wrong columns; they are out of order"):
        load_trace(with_table(valid, "history", table))


def test_manifest_columns_disagree_with_table(valid: bytes) -> None:
    data = edit_manifest(valid, lambda m: m["tables"]["history"]["columns"].pop())
    with pytest.raises(TraceFormatError, match="lists other columns for table 'history' than"):
        load_trace(data)


def test_float64_metric_column(valid: bytes) -> None:
    table = table_of(valid, "neurons")
    table = with_column(table, "w_mean", table["w_mean"].cast(pa.float64()))
    with pytest.raises(TraceFormatError, match="column 'w_mean' is double, expected float32"):
        load_trace(with_table(valid, "neurons", table))


@pytest.mark.parametrize("table_name", ["neurons", "history"])
def test_string_epoch_column(valid: bytes, table_name: str) -> None:
    table = table_of(valid, table_name)
    table = with_column(table, "epoch", table["epoch"].cast(pa.string()))
    with pytest.raises(
        TraceFormatError, match=f"'{table_name}': column 'epoch' is string, expected int"
    ):
        load_trace(with_table(valid, table_name, table))


def test_integer_layer_column(valid: bytes) -> None:
    table = table_of(valid, "neurons")
    table = with_column(table, "layer", pa.array(np.zeros(table.num_rows, np.int32)))
    with pytest.raises(TraceFormatError, match="column 'layer' is int32, expected string"):
        load_trace(with_table(valid, "neurons", table))


def test_integer_recorded_column(valid: bytes) -> None:
    table = table_of(valid, "history")
    table = with_column(table, "recorded", table["recorded"].cast(pa.int8()))
    with pytest.raises(TraceFormatError, match="column 'recorded' is int8, expected bool"):
        load_trace(with_table(valid, "history", table))


def test_missing_values_in_an_integer_column(valid: bytes) -> None:
    # pandas turns a null into NaN and the integer cast failed with a pandas error before
    table = table_of(valid, "history")
    epochs = table["epoch"].to_pylist()
    epochs[1] = None
    table = with_column(table, "epoch", pa.array(epochs, pa.int64()))
    with pytest.raises(TraceFormatError, match="column 'epoch' has missing values"):
        load_trace(with_table(valid, "history", table))


def test_hostile_pandas_metadata_is_ignored(trace: NetworkTrace, valid: bytes) -> None:
    # pandas metadata that moves 'epoch' into the index made loading fail with a KeyError
    table = table_of(valid, "neurons")
    pandas_meta = json.loads(table.schema.metadata[b"pandas"])
    pandas_meta["index_columns"] = ["epoch"]
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    loaded = load_trace(with_table(valid, "neurons", table))
    pd.testing.assert_frame_equal(loaded.frame, trace.frame)


@pytest.mark.parametrize("delta", [1, -1])
def test_row_count_disagrees_with_manifest(valid: bytes, delta: int) -> None:
    rows = manifest_of(valid)["tables"]["history"]["rows"]
    data = edit_manifest(valid, lambda m: m["tables"]["history"].update(rows=rows + delta))
    with pytest.raises(
        TraceFormatError, match=f"'history' has {rows} rows but the manifest says {rows + delta}"
    ):
        load_trace(data)


def test_negative_row_count(valid: bytes) -> None:
    data = edit_manifest(valid, lambda m: m["tables"]["history"].update(rows=-1))
    with pytest.raises(TraceFormatError, match="rows must be a non-negative integer"):
        load_trace(data)


def test_neurons_rows_disagree_with_layers_and_epochs(valid: bytes) -> None:
    table = table_of(valid, "neurons")
    table = table.slice(0, table.num_rows - 1)
    with pytest.raises(TraceFormatError, match=r"3 epochs × 20 neurons make 60"):
        load_trace(with_table(valid, "neurons", table))


def test_neurons_epoch_column_disagrees_with_manifest(valid: bytes) -> None:
    table = table_of(valid, "neurons")
    epochs = table["epoch"].to_numpy().copy()
    epochs[-1] = 3
    table = with_column(table, "epoch", pa.array(epochs))
    with pytest.raises(TraceFormatError, match="epoch and neuron columns disagree"):
        load_trace(with_table(valid, "neurons", table))


def test_neurons_layer_column_disagrees_with_manifest(valid: bytes) -> None:
    table = table_of(valid, "neurons")
    layers = table["layer"].to_pylist()
    layers[0] = "output"
    table = with_column(table, "layer", pa.array(layers))
    with pytest.raises(TraceFormatError, match="layer column disagrees"):
        load_trace(with_table(valid, "neurons", table))


def test_table_that_is_not_parquet(valid: bytes) -> None:
    data = rewrite(valid, replace={HISTORY: b"epoch,loss\n0,1.0\n"})
    with pytest.raises(TraceFormatError, match=r"tables/history\.parquet is not a Parquet file"):
        load_trace(data)


def test_table_with_corrupt_parquet(valid: bytes) -> None:
    blob = entry(valid, HISTORY)
    damaged = blob[:4] + b"\x00" * (len(blob) - 8) + blob[-4:]
    with pytest.raises(TraceFormatError, match="not a readable Parquet file"):
        load_trace(rewrite(valid, replace={HISTORY: damaged}))


# --------------------------------------------------------------------------- tensors


def test_tensor_shape_disagrees_with_manifest(valid: bytes) -> None:
    data = edit_manifest(valid, lambda m: m["tensors"][PROBE]["x"].update(shape=[65, 2]))
    with pytest.raises(
        TraceFormatError, match=r"tensor 'x' is F32\[64, 2\] but the manifest says F32\[65, 2\]"
    ):
        load_trace(data)


def test_tensor_dtype_disagrees_with_manifest(valid: bytes) -> None:
    data = edit_manifest(valid, lambda m: m["tensors"][PROBE]["x"].update(dtype="F64"))
    with pytest.raises(TraceFormatError, match=r"'x' is F32\[64, 2\] but the manifest says F64"):
        load_trace(data)


def test_tensor_file_holds_another_dtype(trace: NetworkTrace, valid: bytes) -> None:
    assert trace.probe is not None
    x, y = trace.probe
    blob = safetensors_save({"x": x.astype(np.float64), "y": y})
    with pytest.raises(TraceFormatError, match=r"'x' is F64\[64, 2\] but the manifest says F32"):
        load_trace(rewrite(valid, replace={PROBE: blob}))


def test_tensor_file_holds_other_tensors(trace: NetworkTrace, valid: bytes) -> None:
    assert trace.probe is not None
    blob = safetensors_save({"x": trace.probe[0], "labels": trace.probe[1]})
    with pytest.raises(TraceFormatError, match="does not hold the tensors the manifest lists"):
        load_trace(rewrite(valid, replace={PROBE: blob}))


def test_tensor_with_a_dtype_traces_do_not_use(valid: bytes) -> None:
    header, payload = split_safetensors(entry(valid, PROBE))
    header["x"]["dtype"] = "F8_E4M3"
    data = edit_manifest(valid, lambda m: m["tensors"][PROBE]["x"].update(dtype="F8_E4M3"))
    data = rewrite(data, replace={PROBE: safetensors_raw(header, payload)})
    with pytest.raises(TraceFormatError, match="dtype 'F8_E4M3', which traces do not use"):
        load_trace(data)


@pytest.mark.parametrize(
    "garbage", [b"\xff\xfe not json at all", b'{"x": ', b"[" * 50_000], ids=["bytes", "cut", "deep"]
)
def test_safetensors_header_is_garbage(valid: bytes, garbage: bytes) -> None:
    blob = safetensors_raw(garbage, b"\x00" * 64)
    with pytest.raises(TraceFormatError, match=f"{PROBE} has an unreadable header"):
        load_trace(rewrite(valid, replace={PROBE: blob}))


def test_safetensors_header_not_an_object(valid: bytes) -> None:
    blob = safetensors_raw(b"[1, 2, 3]", b"")
    with pytest.raises(TraceFormatError, match=f"{PROBE} has an invalid header"):
        load_trace(rewrite(valid, replace={PROBE: blob}))


@pytest.mark.parametrize("length", [2**60, 10_000])
def test_safetensors_impossible_header_length(valid: bytes, length: int) -> None:
    blob = struct.pack("<Q", length) + b"{}"
    with pytest.raises(TraceFormatError, match="impossible header length"):
        load_trace(rewrite(valid, replace={PROBE: blob}))


def test_safetensors_shorter_than_its_header_length(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match=f"{PROBE} is truncated"):
        load_trace(rewrite(valid, replace={PROBE: b"\x10\x00"}))


def test_safetensors_offsets_disagree_with_shape(valid: bytes) -> None:
    header, payload = split_safetensors(entry(valid, PROBE))
    header["x"]["data_offsets"][1] -= 4
    with pytest.raises(TraceFormatError, match="byte offsets that disagree with its shape"):
        load_trace(rewrite(valid, replace={PROBE: safetensors_raw(header, payload)}))


def test_safetensors_with_trailing_bytes(valid: bytes) -> None:
    blob = entry(valid, PROBE) + b"\x00" * 16
    with pytest.raises(TraceFormatError, match=r"is \d+ bytes but its header describes \d+"):
        load_trace(rewrite(valid, replace={PROBE: blob}))


@pytest.mark.parametrize("shape", [[10**400], [10**300, 10**300], [2**40, 2**40]])
def test_tensor_with_an_enormous_shape(valid: bytes, shape: list[int]) -> None:
    # shapes beyond float64 made np.prod overflow (OverflowError) before the size check
    header, payload = split_safetensors(entry(valid, PROBE))
    header["x"]["shape"] = shape
    data = edit_manifest(valid, lambda m: m["tensors"][PROBE]["x"].update(shape=shape))
    data = rewrite(data, replace={PROBE: safetensors_raw(header, payload)})
    with pytest.raises(TraceFormatError, match="tensor 'x' is larger than the limit"):
        load_trace(data)


def test_probe_without_a_sample_axis(valid: bytes) -> None:
    # 0-d arrays made len() raise TypeError
    blob = safetensors_save({"x": np.array(1.0, np.float32), "y": np.array(1, np.int64)})

    def scalars(manifest: dict[str, Any]) -> None:
        manifest["tensors"][PROBE] = {
            "x": {"dtype": "F32", "shape": []},
            "y": {"dtype": "I64", "shape": []},
        }

    data = rewrite(edit_manifest(valid, scalars), replace={PROBE: blob})
    with pytest.raises(TraceFormatError, match="x and y with one row per sample"):
        load_trace(data)


def test_listed_tensor_file_missing_from_archive(valid: bytes) -> None:
    name = "tensors/epoch_2.safetensors"
    with pytest.raises(TraceFormatError, match=f"the tensor file {name} is missing"):
        load_trace(rewrite(valid, drop=[name]))


def test_tensor_file_of_an_unrecorded_epoch(valid: bytes) -> None:
    source = "tensors/epoch_2.safetensors"
    name = "tensors/epoch_3.safetensors"
    data = edit_manifest(valid, lambda m: m["tensors"].update({name: m["tensors"][source]}))
    data = rewrite(data, add={name: entry(valid, source)})
    with pytest.raises(TraceFormatError, match="belongs to an epoch the trace does not record"):
        load_trace(data)


def test_tensor_file_the_format_does_not_have(valid: bytes) -> None:
    data = edit_manifest(
        valid, lambda m: m["tensors"].update({"tables/history.parquet": m["tensors"][PROBE]})
    )
    with pytest.raises(TraceFormatError, match=r"unknown tensor file 'tables/history\.parquet'"):
        load_trace(data)


def test_epoch_file_with_an_unexpected_tensor(trace: NetworkTrace, valid: bytes) -> None:
    name = "tensors/epoch_2.safetensors"
    tensors = dict(trace.epoch_tensors(2))
    tensors["payload"] = np.zeros(3, np.float32)
    blob = safetensors_save(tensors)
    data = edit_manifest(
        valid, lambda m: m["tensors"][name].update(payload={"dtype": "F32", "shape": [3]})
    )
    with pytest.raises(TraceFormatError, match="holds an unexpected tensor 'payload'"):
        load_trace(rewrite(data, replace={name: blob}))


def test_activations_with_the_wrong_number_of_neurons(trace: NetworkTrace, valid: bytes) -> None:
    name = "tensors/epoch_2.safetensors"
    tensors = dict(trace.epoch_tensors(2))
    tensors["activations"] = tensors["activations"][:, :-1].copy()
    shape = list(tensors["activations"].shape)
    data = edit_manifest(valid, lambda m: m["tensors"][name]["activations"].update(shape=shape))
    with pytest.raises(TraceFormatError, match=r"one column per neuron \(20\)"):
        load_trace(rewrite(data, replace={name: safetensors_save(tensors)}))


def test_corrupt_epoch_tensors_fail_when_read(valid: bytes) -> None:
    # epoch tensors are read on demand; a damaged one fails then, with a TraceFormatError
    name = "tensors/epoch_4.safetensors"
    infos = {info.filename: info for info, _ in entries(valid)}
    info = infos[name]
    assert info.compress_type == zipfile.ZIP_STORED
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = bytearray(valid)
    damaged[data_start + info.file_size - 3] ^= 0xFF  # a byte of tensor data, not of the header
    loaded = load_trace(bytes(damaged))
    loaded.epoch_tensors(0)
    with pytest.raises(TraceFormatError, match=f"'{name}' is truncated or corrupted.*CRC"):
        loaded.epoch_tensors(4)


# --------------------------------------------------------------------------- the archive


@pytest.mark.parametrize(
    "name", ["../evil.txt", "tensors/../../evil.txt", "..\\evil.txt", "tables/../../../etc/x"]
)
def test_zip_slip(valid: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(TraceFormatError, match="names a path outside itself"):
        load_trace(rewrite(valid, add={name: b"owned"}))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"]


@pytest.mark.parametrize("name", ["/etc/passwd", "\\windows\\evil.txt", "C:/evil.txt", "c:evil"])
def test_absolute_entry_name(valid: bytes, name: str) -> None:
    with pytest.raises(TraceFormatError, match="names an absolute path"):
        load_trace(rewrite(valid, add={name: b"root::0:0"}))


def test_duplicate_entry_names(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match=r"holds 'tables/history\.parquet' twice"):
        load_trace(rewrite(valid, add=[(HISTORY, entry(valid, HISTORY))]))


def test_duplicate_manifest(valid: bytes) -> None:
    evil = json.dumps({**manifest_of(valid), "format_version": 99}).encode()
    with pytest.raises(TraceFormatError, match=r"holds 'manifest\.json' twice"):
        load_trace(rewrite(valid, add=[("manifest.json", evil)]))


def test_too_many_entries(valid: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_archive, "MAX_ENTRIES", 5)
    with pytest.raises(TraceFormatError, match=r"has 9 entries; a trace has at most 5"):
        load_trace(valid)


def test_unsupported_compression_method(valid: bytes) -> None:
    items = [(HISTORY if info.filename == HISTORY else info, blob) for info, blob in entries(valid)]
    data = build(items, compression=zipfile.ZIP_BZIP2)
    with pytest.raises(TraceFormatError, match="uses a compression method nn_tracing does not"):
        load_trace(data)


def test_total_uncompressed_size_over_the_limit(valid: bytes) -> None:
    # a small file whose entries declare more than max_bytes once expanded
    padding = zipfile.ZipInfo("tensors/epoch_3.safetensors")
    padding.compress_type = zipfile.ZIP_DEFLATED
    # 1 MiB of zeros: about 1 KiB in the file, and not compressed enough to look like a bomb
    data = build([*entries(valid), (padding, bytes(2**20))])
    assert len(data) < 256 * 2**10
    with pytest.raises(TraceFormatError, match="MiB uncompressed, over the limit"):
        load_trace(data, max_bytes=2**19)


def test_valid_file_over_a_small_limit(valid: bytes, tmp_path: Path) -> None:
    # the file itself is within max_bytes, what it expands to is not (the manifest is deflated)
    expanded = sum(info.file_size for info, _ in entries(valid))
    assert expanded > len(valid)
    with pytest.raises(TraceFormatError, match="uncompressed, over the limit"):
        load_trace(valid, max_bytes=len(valid))
    path = tmp_path / "run.nntrace"
    path.write_bytes(valid)
    with pytest.raises(TraceFormatError, match="larger than the limit"):
        load_trace(path, max_bytes=len(valid) - 1)
    with pytest.raises(TraceFormatError, match="larger than the limit"):
        load_trace(valid, max_bytes=len(valid) - 1)
    with pytest.raises(TraceFormatError, match="larger than the limit"):
        load_trace(io.BytesIO(valid), max_bytes=len(valid) - 1)
    assert load_trace(valid, max_bytes=expanded).epochs == [0, 2, 4]


def test_deflate_bomb(valid: bytes) -> None:
    bomb = zipfile.ZipInfo("tensors/epoch_3.safetensors")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    data = build([*entries(valid), (bomb, bytes(50 * 2**20))])
    assert len(data) < len(valid) + 2**20
    with pytest.raises(TraceFormatError, match="-fold; refusing to read a possible zip bomb"):
        load_trace(data)


def test_forged_uncompressed_size(valid: bytes) -> None:
    # the central directory claims 4 GiB for a small entry: over the default limit
    data = patch_central(valid, HISTORY, 24, "<I", 2**32 - 1)
    with pytest.raises(TraceFormatError, match="uncompressed, over the limit of 4096 MiB"):
        load_trace(data)


def test_forged_small_uncompressed_size(valid: bytes) -> None:
    # the central directory claims fewer bytes than the entry holds
    size = len(entry(valid, HISTORY))
    data = patch_central(valid, HISTORY, 24, "<I", size - 100)
    with pytest.raises(TraceFormatError, match=r"history\.parquet' is truncated or corrupted: Bad"):
        load_trace(data)


def test_unsupported_zip_version(valid: bytes) -> None:
    # zipfile raises NotImplementedError for this, which must not escape as such
    data = patch_central(valid, HISTORY, 6, "<H", 92)
    with pytest.raises(TraceFormatError, match="damaged or unsupported zip archive"):
        load_trace(data)


def test_entry_name_that_is_not_utf8(valid: bytes) -> None:
    # zipfile raises UnicodeDecodeError for this, which must not escape as such
    data = patch_central(valid, HISTORY, 8, "<H", 0x800)
    data = data.replace(HISTORY.encode(), b"\xfftables/history.parque", 2)
    with pytest.raises(TraceFormatError, match="damaged or unsupported zip archive"):
        load_trace(data)


# --------------------------------------------------------------------------- pickles


HARMLESS_PICKLE = pickle.dumps({"hello": [1, 2, 3]}, protocol=pickle.HIGHEST_PROTOCOL)


@pytest.mark.parametrize("name", ["data.pkl", "archive/data.pkl", "tensors/model.pt", "x.npy"])
def test_pickle_entry(valid: bytes, name: str) -> None:
    with pytest.raises(TraceFormatError, match="a pickle or other executable format"):
        load_trace(rewrite(valid, add={name: HARMLESS_PICKLE}))


@pytest.mark.parametrize("name", [NEURONS, HISTORY])
def test_pickle_under_a_table_name(valid: bytes, name: str) -> None:
    with pytest.raises(TraceFormatError, match=f"{name} is a pickle"):
        load_trace(rewrite(valid, replace={name: HARMLESS_PICKLE}))


@pytest.mark.parametrize("name", [PROBE, FINAL, "tensors/epoch_2.safetensors"])
def test_pickle_under_a_tensor_name(valid: bytes, name: str) -> None:
    with pytest.raises(TraceFormatError, match=f"{name} is a pickle"):
        load_trace(rewrite(valid, replace={name: HARMLESS_PICKLE}))


def test_pickle_as_manifest(valid: bytes) -> None:
    with pytest.raises(TraceFormatError, match=r"manifest\.json is a pickle"):
        load_trace(rewrite(valid, replace={"manifest.json": HARMLESS_PICKLE}))


@pytest.mark.parametrize("kind", ["bytes", "path", "file object"])
def test_whole_file_is_a_pickle(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "run.nntrace"
    path.write_bytes(HARMLESS_PICKLE)
    sources = {"bytes": HARMLESS_PICKLE, "path": path, "file object": io.BytesIO(HARMLESS_PICKLE)}
    with pytest.raises(TraceFormatError, match=r"this is a pickle file, not a \.nntrace"):
        load_trace(sources[kind])
    with pytest.raises(TraceFormatError, match="pickle file"):
        read_manifest(path)


@pytest.mark.parametrize("source", ["bytes", "path"])
def test_torch_checkpoint(tmp_path: Path, source: str) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(3, 2), "step": 7}, path)
    data = path.read_bytes() if source == "bytes" else path
    with pytest.raises(TraceFormatError, match=r"is this a torch\.save checkpoint"):
        load_trace(data)


def test_legacy_torch_checkpoint(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(3, 2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(TraceFormatError, match="this is a pickle file"):
        load_trace(path)


def test_nothing_is_unpickled(valid: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("load_trace unpickled something")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    for name in [NEURONS, PROBE, "manifest.json"]:
        with pytest.raises(TraceFormatError, match="pickle"):
            load_trace(rewrite(valid, replace={name: HARMLESS_PICKLE}))
    load_everything(valid)


# --------------------------------------------------------------------------- fuzzing


def test_damaged_files_raise_only_trace_format_errors(valid: bytes) -> None:
    """Truncations and flipped bytes anywhere: a TraceFormatError or a loaded trace, nothing
    else (a flipped byte in a timestamp or a float can leave a loadable file)."""
    rng = random.Random(1234)
    cases = [valid[:n] for n in range(0, len(valid), 1999)]
    for _ in range(60):
        damaged = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        cases.append(bytes(damaged))
    for data in cases:
        with contextlib.suppress(TraceFormatError):
            load_everything(data)


def test_damaged_entries_raise_only_trace_format_errors(valid: bytes) -> None:
    """Entries damaged inside an intact zip (so that the CRC matches)."""
    rng = random.Random(99)
    items = entries(valid)
    for _ in range(60):
        index = rng.randrange(len(items))
        blob = bytearray(items[index][1])
        if rng.random() < 0.3:
            blob = blob[: rng.randrange(len(blob))]
        else:
            span = 256 if rng.random() < 0.6 else len(blob)
            for _ in range(rng.randint(1, 3)):
                blob[rng.randrange(min(span, len(blob)))] = rng.randrange(256)
        damaged = build([*items[:index], (items[index][0], bytes(blob)), *items[index + 1 :]])
        with contextlib.suppress(TraceFormatError):
            load_everything(damaged)


# --------------------------------------------------------------------------- process state


def _open_fds() -> int | None:
    fd_dir = Path("/proc/self/fd")
    return len(os.listdir(fd_dir)) if fd_dir.is_dir() else None


def test_bad_files_leave_the_process_able_to_load_good_ones(
    trace: NetworkTrace, valid: bytes, tmp_path: Path
) -> None:
    good = save_trace(trace, tmp_path / "good.nntrace")
    bad_files = {
        "half": valid[: len(valid) // 2],
        "pickle": HARMLESS_PICKLE,
        "slip": rewrite(valid, add={"../evil.txt": b"x"}),
        "bomb": build(
            [*entries(valid), ("tensors/epoch_3.safetensors", bytes(4 * 2**20))],
            compression=zipfile.ZIP_DEFLATED,
        ),
        "newer": edit_manifest(valid, lambda m: m.update(format_version=FORMAT_VERSION + 1)),
        "bad table": rewrite(valid, replace={NEURONS: b"PAR1" + b"\x00" * 64 + b"PAR1"}),
        "bad tensor": rewrite(valid, replace={PROBE: safetensors_raw(b"{", b"")}),
        "not json": replace_manifest(valid, b"[" * 100_000),
    }
    for name, data in bad_files.items():
        (tmp_path / f"{name}.nntrace").write_bytes(data)

    fds_before = _open_fds()
    for _ in range(3):
        for name, data in bad_files.items():
            with pytest.raises(TraceFormatError):
                load_trace(tmp_path / f"{name}.nntrace")
            with pytest.raises(TraceFormatError):
                load_trace(data)
    assert _open_fds() == fds_before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{name}.nntrace" for name in bad_files] + ["good.nntrace"]
    )
    assert_same_trace(load_trace(good), trace)
    assert_same_trace(load_trace(valid), trace)


# --------------------------------------------------------------------------- atomic writes


def _failing_write(written: bytes = b"PK\x03\x04half a trace", error: BaseException | None = None):
    def write(trace: NetworkTrace, target: Any) -> None:
        target.write(written)
        target.flush()
        raise error if error is not None else OSError("disk full")

    return write


def test_save_replaces_an_existing_file(trace: NetworkTrace, tmp_path: Path) -> None:
    path = tmp_path / "run.nntrace"
    path.write_bytes(b"an older trace")
    save_trace(trace, path)
    assert_same_trace(load_trace(path), trace)
    assert [p.name for p in tmp_path.iterdir()] == ["run.nntrace"]


def test_save_creates_missing_directories(trace: NetworkTrace, tmp_path: Path) -> None:
    path = save_trace(trace, tmp_path / "a" / "b" / "run.nntrace")
    assert path.is_file()
    assert load_trace(path).epochs == trace.epochs


def test_save_writes_a_temporary_file_beside_the_target(
    trace: NetworkTrace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.nntrace"
    old = b"an older trace"
    path.write_bytes(old)
    seen: list[tuple[list[str], bytes]] = []
    real_write = store._write

    def spying_write(trace: NetworkTrace, target: Any) -> None:
        real_write(trace, target)
        # mid-save: the target still holds the old file, the new one is a temporary beside it
        seen.append((sorted(p.name for p in tmp_path.iterdir()), path.read_bytes()))

    monkeypatch.setattr(store, "_write", spying_write)
    save_trace(trace, path)
    ((names, contents_during),) = seen
    assert contents_during == old
    assert len(names) == 2 and "run.nntrace" in names
    temporary = next(n for n in names if n != "run.nntrace")
    assert temporary.startswith(".run.nntrace.") and temporary.endswith(".tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["run.nntrace"]
    assert_same_trace(load_trace(path), trace)


@pytest.mark.parametrize(
    "error",
    [OSError("disk full"), RuntimeError("boom"), KeyboardInterrupt()],
    ids=lambda error: type(error).__name__,
)
def test_failed_write_keeps_the_old_file(
    trace: NetworkTrace,
    valid: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
) -> None:
    path = tmp_path / "run.nntrace"
    path.write_bytes(valid)
    before = path.stat()
    monkeypatch.setattr(store, "_write", _failing_write(error=error))
    with pytest.raises(type(error)):
        save_trace(trace, path)
    assert path.read_bytes() == valid
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert path.stat().st_ino == before.st_ino
    assert [p.name for p in tmp_path.iterdir()] == ["run.nntrace"]
    monkeypatch.undo()
    assert_same_trace(load_trace(path), trace)


def test_failed_write_to_a_new_path_leaves_nothing(
    trace: NetworkTrace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "_write", _failing_write())
    with pytest.raises(OSError, match="disk full"):
        save_trace(trace, tmp_path / "run.nntrace")
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_keeps_the_old_file(
    trace: NetworkTrace, valid: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.nntrace"
    path.write_bytes(valid)

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError("cross-device link")

    monkeypatch.setattr(store.os, "replace", failing_replace)
    with pytest.raises(OSError, match="cross-device link"):
        save_trace(trace, path)
    monkeypatch.undo()
    assert path.read_bytes() == valid
    assert [p.name for p in tmp_path.iterdir()] == ["run.nntrace"]


def test_a_loaded_trace_keeps_reading_its_own_file_after_the_path_is_replaced(tmp_path):
    cfg = nn_tracing.TrainConfig(
        dataset="iris", hidden_sizes=(3,), epochs=2, probe_size=20, batch_size=32
    )
    first = nn_tracing.train(cfg).trace
    second = nn_tracing.train(cfg.replace(seed=9)).trace
    path = nn_tracing.save_trace(first, tmp_path / "t.nntrace")
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    loaded = nn_tracing.load_trace(path)
    nn_tracing.save_trace(second, path)  # atomically replaces the file on disk
    acts = loaded.probe_activations(2)  # read lazily, after the replacement
    assert np.array_equal(acts, first.probe_activations(2))
    assert not np.array_equal(acts, second.probe_activations(2))
