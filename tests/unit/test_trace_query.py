"""DuckDB over a run directory's neuron parts (nn_tracing/trace_query.py), and opening a run
directory without reading them (nn_tracing/rundir_parts.py): answers against pandas/NumPy
brute force on a real trace, bytes read at open, hostile parts."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nn_tracing import NetworkTrace, TraceFormatError, load_trace, train
from nn_tracing.analysis.profiles import layer_bands, metric_history
from nn_tracing.rundir import RunWriter
from nn_tracing.synthetic import write_synthetic_run
from nn_tracing.trace import METRICS
from nn_tracing.views.neurons import neuron_rows
from nn_tracing.viz import layer_epoch_frame, neuron_epoch_frame
from tests.conftest import TINY_CONFIG


@pytest.fixture(scope="module")
def trace() -> NetworkTrace:
    """A real run (ReLU: many equal values, NaN weight statistics of the inputs), with
    ``act_mean`` rounded to one decimal so that many neurons of a layer tie."""
    run = train(TINY_CONFIG.replace(epochs=6, hidden_sizes=(16, 12)))
    real = run.trace
    assert real is not None
    column = METRICS.index("act_mean")
    metrics = {}
    for epoch in real.epochs:
        values = real.metrics_at(epoch).copy()
        values[:, column] = np.round(values[:, column], 1)
        metrics[epoch] = values
    tensors = {epoch: real.epoch_tensors(epoch) for epoch in real.epochs}
    return NetworkTrace(
        real.layers,
        metrics,
        real.meta,
        history=real.history,
        steps=real.steps,
        probe=real.probe,
        epoch_tensors=tensors,
        final_weights=real.final_weights,
    )


@pytest.fixture(scope="module")
def run(trace: NetworkTrace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("q") / "run"
    writer = RunWriter(directory, trace)
    for epoch in trace.epochs:
        writer.write_epoch(epoch)
    writer.close()
    return directory


def _copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def _flat(trace: NetworkTrace) -> pd.DataFrame:
    return trace.frame.reset_index()


def test_layer_quantiles_equal_numpy_per_layer_and_epoch(run, trace):
    loaded = load_trace(run)
    flat = _flat(trace)
    for metric in ("act_mean", "w_norm", "act_min", "act_active"):
        got = loaded.query.layer_quantiles(metric)
        for row in got.itertuples():
            layer = trace.layers[row.layer_index].name
            epoch = trace.epochs[row.group]
            values = flat.loc[(flat["layer"] == layer) & (flat["epoch"] == epoch), metric]
            finite = values.to_numpy(np.float64)
            finite = finite[np.isfinite(finite)]
            assert row.n == finite.size, (metric, layer, epoch)
            if finite.size:
                want = np.percentile(finite, [25, 50, 75])
                np.testing.assert_allclose([row.q0, row.q1, row.q2], want, rtol=1e-12)
            else:
                assert np.isnan([row.q0, row.q1, row.q2]).all()


def test_layer_quantiles_over_groups_of_epochs(run, trace):
    loaded = load_trace(run)
    groups = [trace.epochs[:3], trace.epochs[3:]]
    got = loaded.query.layer_quantiles("act_mean", (0.5,), epoch_groups=groups)
    flat = _flat(trace)
    for row in got.itertuples():
        layer = trace.layers[row.layer_index].name
        cell = flat.loc[(flat["layer"] == layer) & flat["epoch"].isin(groups[row.group])]
        assert row.q0 == pytest.approx(np.median(cell["act_mean"].to_numpy(np.float64)))


def test_a_neurons_history_an_epoch_slice_and_a_metric_matrix_equal_the_frame(run, trace):
    loaded = load_trace(run)
    frame = trace.frame
    for neuron in (0, 3, 20, trace.n_neurons - 1):
        history = loaded.query.neuron_history(neuron)
        want = frame.xs(neuron, level="neuron").reset_index()
        assert history["epoch"].tolist() == trace.epochs
        np.testing.assert_array_equal(
            history[list(METRICS)].to_numpy(), want[list(METRICS)].to_numpy()
        )
    for epoch in trace.epochs:
        np.testing.assert_array_equal(loaded.query.epoch_slice(epoch), trace.metrics_at(epoch))
        np.testing.assert_array_equal(
            loaded.query.epoch_slice(epoch, 5, 9), trace.metrics_at(epoch)[5:10]
        )
    for metric in METRICS:
        np.testing.assert_array_equal(loaded.metric(metric), trace.metric(metric))
        np.testing.assert_array_equal(
            loaded.layer_metric(metric, "hidden_1"), trace.metric(metric)[:, 2:18]
        )
    for metric in ("grad_norm", "w_norm"):  # the input layer's are NaN: no median
        block = trace.metric(metric).astype(np.float64)
        for index, info in enumerate(trace.layers):
            values = block[:, info.first_id : info.last_id + 1]
            median, counts = loaded.query.layer_medians(metric, index)
            finite = np.isfinite(values)
            assert counts.tolist() == finite.sum(axis=1).tolist()
            for row, values_at in enumerate(values):
                kept = values_at[np.isfinite(values_at)]
                want = np.median(kept) if kept.size else np.nan
                np.testing.assert_allclose(median[row], want, rtol=1e-12)
        first = loaded.query.layer_medians(metric, 1, trace.epochs[:1])[0]
        assert first.shape == (1,) and first[0] == pytest.approx(np.median(block[0, 2:18]))
    several = loaded.query.metric_matrices(["act_max", "grad_norm", "act_max"], 3, 20)
    assert list(several) == ["act_max", "grad_norm"]  # once each, in the order asked
    for metric, matrix in several.items():
        np.testing.assert_array_equal(matrix, trace.metric(metric)[:, 3:21])


def test_grid_positions_reshape_rows_in_order_and_place_any_others():
    """Rows that are every (epoch, neuron) cell in row-major order are reshaped (no scatter);
    rows out of order, or missing, go to their cells, like a scatter by (file, neuron)."""
    from nn_tracing.trace_query import _grid_positions

    shape, first = (3, 4), 7
    files = np.repeat(np.arange(3, dtype=np.int32), 4)
    neurons = np.tile(np.arange(first, first + 4, dtype=np.int32), 3)
    assert _grid_positions(files, neurons, first, shape) is None
    order = np.random.default_rng(0).permutation(12)[:10]  # shuffled, two rows missing
    flat = _grid_positions(files[order], neurons[order], first, shape)
    want = np.full(shape, np.nan)
    want[files[order], neurons[order] - first] = order
    got = np.full(shape, np.nan)
    got.reshape(-1)[flat] = order
    np.testing.assert_array_equal(got, want)
    swapped = neurons.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # every cell, but two out of order
    assert _grid_positions(files, swapped, first, shape) is not None


def test_percentiles_and_bands_in_the_layer_count_ties_half(run, trace):
    loaded = load_trace(run)
    for layer in ("hidden_1", "hidden_2", "input"):
        np.testing.assert_allclose(layer_bands(loaded, layer), layer_bands(trace, layer))
        info = trace.layer(layer)
        block = trace.layer_metric("act_mean", layer).astype(np.float64)
        for neuron in (info.first_id, info.last_id):
            got = loaded.query.neuron_percentiles(neuron, trace.layer_names().index(layer))
            own = block[:, neuron - info.first_id]
            want = [
                (np.sum(row < v) + 0.5 * np.sum(row == v)) / row.size
                for row, v in zip(block, own, strict=True)
            ]
            np.testing.assert_allclose(got[METRICS.index("act_mean")], want)
    hidden = trace.layer_metric("act_mean", "hidden_1")
    assert (hidden == hidden[:, :1]).sum() > 2 * hidden.shape[0]  # the rounding made ties
    pd.testing.assert_frame_equal(metric_history(loaded, 7), metric_history(trace, 7))


def test_the_pages_frames_are_the_same_from_disk_and_from_memory(run, trace):
    loaded = load_trace(run)
    for metric in ("act_mean", "grad_norm"):
        pd.testing.assert_frame_equal(
            layer_epoch_frame(loaded, metric), layer_epoch_frame(trace, metric)
        )
        for order in ("id", "value"):
            pd.testing.assert_frame_equal(
                neuron_epoch_frame(loaded, "hidden_1", metric, order=order),
                neuron_epoch_frame(trace, "hidden_1", metric, order=order),
            )
    pd.testing.assert_frame_equal(neuron_rows(loaded, 9), neuron_rows(trace, 9))
    assert loaded._frame is None  # none of it built the whole frame


def test_opening_a_run_directory_reads_none_of_its_neuron_parts(tmp_path):
    run = write_synthetic_run(tmp_path / "big", [50, 3000, 3000, 10], 30)
    parts = sum(p.stat().st_size for p in run.glob("neurons/epoch=*/part.parquet"))
    assert len(list(run.glob("neurons/epoch=*/part.parquet"))) == 30
    io = Path("/proc/self/io")
    if not io.exists():
        pytest.skip("needs Linux's /proc/self/io to count the bytes read")

    def read_bytes() -> int:
        lines = io.read_text().splitlines()
        return int(next(line for line in lines if line.startswith("rchar")).split()[1])

    load_trace(run)  # the modules it imports are read once
    before = read_bytes()
    trace = load_trace(run)
    opened = read_bytes() - before
    assert parts > 5 * 2**20
    # the manifest, the history parts and each neuron part's footer (a few KiB however
    # many neurons): not the parts themselves
    assert opened < 30 * 16 * 2**10 + 128 * 2**10, (opened, parts)
    assert opened < parts / 20, (opened, parts)
    assert trace._epoch_metrics.loads == 0 and trace._frame is None
    trace.metrics_at(3)
    assert trace._epoch_metrics.loads == 1
    assert trace.frame.shape == (30 * 6060, len(METRICS))  # a trace that fits still loads


def _rewrite_part(run: Path, epoch: int, table: pa.Table) -> None:
    pq.write_table(table, run / f"neurons/epoch={epoch}/part.parquet")


def test_a_part_with_other_columns_is_refused_at_open(run, tmp_path):
    copy = _copy(run, tmp_path)
    table = pq.read_table(copy / "neurons/epoch=2/part.parquet")
    _rewrite_part(copy, 2, table.drop_columns(["w_mean"]))
    with pytest.raises(TraceFormatError, match="wrong columns"):
        load_trace(copy)
    as_double = table.set_column(
        table.schema.get_field_index("w_mean"), "w_mean", table["w_mean"].cast(pa.float64())
    )
    _rewrite_part(copy, 2, as_double)
    with pytest.raises(TraceFormatError, match="expected float32"):
        load_trace(copy)


def test_a_part_with_other_rows_is_refused_at_open(run, tmp_path):
    copy = _copy(run, tmp_path)
    table = pq.read_table(copy / "neurons/epoch=2/part.parquet")
    _rewrite_part(copy, 2, table.slice(0, 10))
    with pytest.raises(TraceFormatError, match="rows"):
        load_trace(copy)
    copy2 = _copy(run, tmp_path / "b")
    manifest = json.loads((copy2 / "manifest.json").read_text())
    manifest["tables"]["neurons"]["parts"]["2"] = 10
    (copy2 / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TraceFormatError, match="rows"):
        load_trace(copy2)


def test_a_part_whose_ids_lie_is_refused_when_read_and_never_trusted_by_queries(
    run, trace, tmp_path
):
    copy = _copy(run, tmp_path)
    table = pq.read_table(copy / "neurons/epoch=2/part.parquet")
    ids = table["neuron"].to_numpy()[::-1].copy()
    _rewrite_part(copy, 2, table.set_column(1, "neuron", pa.array(ids)))
    loaded = load_trace(copy)  # the footer is fine
    np.testing.assert_array_equal(loaded.query.epoch_slice(2), trace.metrics_at(2))
    with pytest.raises(TraceFormatError, match="disagree"):
        loaded.metrics_at(2)


def test_a_part_with_damaged_pages_fails_its_query_with_a_clear_error(run, tmp_path):
    copy = _copy(run, tmp_path)
    path = copy / "neurons/epoch=2/part.parquet"
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    for i in range(8, len(data) - footer - 16, 7):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    loaded = load_trace(copy)
    with pytest.raises(TraceFormatError, match="cannot be queried"):
        loaded.query.neuron_history(3)


def test_duckdb_reads_only_the_checked_parts_and_cannot_be_reopened(run, tmp_path):
    loaded = load_trace(run)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), other)
    con = loaded.query._con
    with pytest.raises(duckdb.PermissionException):
        con.execute(f"SELECT * FROM read_parquet('{other}')").fetchall()
    with pytest.raises(duckdb.PermissionException):
        con.execute(f"SELECT * FROM read_csv('{run / 'manifest.json'}')").fetchall()
    with pytest.raises(duckdb.Error, match="configuration"):
        con.execute("SET enable_external_access = true")
    with pytest.raises(duckdb.Error):
        con.execute("INSTALL httpfs")
    assert sorted(loaded.query.files) == sorted(
        str(run / f"neurons/epoch={e}/part.parquet") for e in loaded.epochs
    )


def test_quantiles_asked_a_few_epochs_at_a_time_are_the_same(run, trace, monkeypatch):
    loaded = load_trace(run)
    whole_bands = loaded.query.layer_bands(1)
    whole = loaded.query.layer_quantiles("act_mean", epoch_groups=[[0, 1], [2, 3], [4, 5, 6]])
    monkeypatch.setattr("nn_tracing.trace_query.QUANTILE_BYTES", 1)  # one group per query
    assert len(loaded.query._chunks(8, [[0, 1], [2], [3]])) == 3
    np.testing.assert_array_equal(loaded.query.layer_bands(1), whole_bands)
    chunked = loaded.query.layer_quantiles("act_mean", epoch_groups=[[0, 1], [2, 3], [4, 5, 6]])
    pd.testing.assert_frame_equal(chunked, whole)


def test_binned_means_equal_numpys_over_the_metric_matrix(run, trace):
    """DuckDB's means of runs of neurons against NumPy's of the whole matrix (NaN skipped:
    the inputs have no weight statistics; a run of only NaN stays NaN)."""
    from nn_tracing.viz.common import binned_means

    query = load_trace(run).query
    assert query is not None
    for metric in ("act_mean", "w_norm", "grad_norm"):
        for first, last, size in ((0, trace.n_neurons - 1, 3), (2, 17, 4), (5, 5, 2)):
            whole = trace.metric(metric)[:, first : last + 1].astype(np.float64)
            np.testing.assert_allclose(
                query.binned_means(metric, first, last, size),
                binned_means(whole, size),
                rtol=1e-12,
                equal_nan=True,
            )


@pytest.mark.parametrize("order", ["id", "value"])
def test_one_layers_binned_rows_are_the_same_from_disk_and_from_memory(tmp_path, order):
    from nn_tracing.synthetic import synthetic_trace

    sizes, epochs = [4, 50, 3], 6
    loaded = load_trace(write_synthetic_run(tmp_path / "run", sizes, epochs))
    memory = synthetic_trace(sizes, epochs)
    layer = memory.layer_names()[1]
    for metric in ("act_mean", "w_norm"):
        disk = neuron_epoch_frame(loaded, layer, metric, order=order, budget=60)
        assert disk.attrs["row_size"] > 1  # 50 neurons in 16 rows of 4
        pd.testing.assert_frame_equal(
            disk, neuron_epoch_frame(memory, layer, metric, order=order, budget=60), rtol=1e-12
        )
    assert loaded._frame is None


def test_a_neurons_history_is_read_once_and_handed_out_as_copies(run, trace):
    """A page asks for one neuron's history several times in a run: the query keeps the last
    few, and what it hands out can be changed without changing what it keeps."""
    loaded = load_trace(run)
    first = loaded.query.neuron_history(7)
    calls = []
    fetch = loaded.query._fetch
    loaded.query._fetch = lambda *a, **k: calls.append(a) or fetch(*a, **k)
    first["act_mean"] = -1.0
    again = loaded.query.neuron_history(7)
    assert calls == []  # not read again
    want = trace.neuron_history(7).drop(columns="layer")
    pd.testing.assert_frame_equal(again, want, check_dtype=False)
    loaded.query.neuron_history(8)
    assert len(calls) == 1


def test_parts_in_several_row_groups_answer_every_query_the_same(trace, tmp_path, monkeypatch):
    """Parts are written in row groups (``rundir.PART_ROW_GROUP``) so that one neuron's
    history skips the groups that cannot hold it; with groups of 7 rows, every query reads
    what the trace in memory holds, neurons on both sides of a group's edge included."""
    import pyarrow.parquet as pq

    from nn_tracing import rundir

    monkeypatch.setattr(rundir, "PART_ROW_GROUP", 7)
    directory = tmp_path / "grouped"
    writer = RunWriter(directory, trace)
    for epoch in trace.epochs:
        writer.write_epoch(epoch)
    writer.close()
    part = pq.ParquetFile(directory / "neurons" / f"epoch={trace.epochs[-1]}" / "part.parquet")
    groups = part.metadata.num_row_groups
    assert groups == -(-trace.n_neurons // 7) and part.metadata.row_group(0).num_rows == 7
    loaded = load_trace(directory)
    frame = trace.frame
    for neuron in (0, 6, 7, 13, 14, trace.n_neurons - 1):
        history = loaded.query.neuron_history(neuron)
        want = frame.xs(neuron, level="neuron").reset_index()
        np.testing.assert_array_equal(
            history[list(METRICS)].to_numpy(), want[list(METRICS)].to_numpy()
        )
    for epoch in trace.epochs:
        np.testing.assert_array_equal(
            loaded.query.epoch_slice(epoch, 5, 16), trace.metrics_at(epoch)[5:17]
        )
    info = trace.layer("hidden_1")
    index = trace.layer_names().index("hidden_1")
    values = trace.metric("act_mean").astype(np.float64)[:, info.first_id : info.last_id + 1]
    shares = loaded.query.neuron_percentiles(info.first_id + 8, index)[METRICS.index("act_mean")]
    own = values[:, 8:9]
    np.testing.assert_allclose(
        shares, ((values < own).sum(1) + 0.5 * (values == own).sum(1)) / values.shape[1]
    )


def test_open_queries_are_closed_at_the_interpreters_exit(run, tmp_path):
    """DuckDB databases are not left to the interpreter's teardown (duckdb#13904: it can hang
    the exit): every open query is closed by an ``atexit`` hook, and a process that opened
    several run directories exits promptly."""
    import subprocess
    import sys

    from nn_tracing import trace_query

    queries = [load_trace(run).query for _ in range(2)]
    assert all(q in trace_query._OPEN for q in queries)
    trace_query._close_open_queries()
    assert not any(q in trace_query._OPEN for q in queries)
    for query in queries:
        with pytest.raises(Exception, match=r"(?i)closed"):
            query.neuron_history(0)
    # atexit runs its hooks last registered first: this one, registered before nn_tracing is
    # imported, runs after the module's own hook
    script = (
        "import atexit, sys\n"
        "left = lambda: len(sys.modules['nn_tracing.trace_query']._OPEN)\n"
        "atexit.register(lambda: print('open at exit:', left()))\n"
        "import nn_tracing as nt\n"
        f"traces = [nt.load_trace({str(run)!r}) for _ in range(4)]\n"
        "print('open before:', sum(t.query.neuron_history(1) is not None for t in traces))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "open before: 4" in done.stdout and "open at exit: 0" in done.stdout
