"""The run directory (nn_tracing/rundir.py): written epoch by epoch, read like a .nntrace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nn_tracing import NetworkTrace, TraceFormatError, load_trace, read_manifest, train
from nn_tracing.cli import main
from nn_tracing.rundir import RunWriter
from tests.conftest import TINY_CONFIG


@pytest.fixture(scope="module")
def trace() -> NetworkTrace:
    """A real run that records every other epoch, keeps weights and the per-step table."""
    config = TINY_CONFIG.replace(epochs=5, epoch_intervals=2, keep_weights=True, drop_batches=False)
    run = train(config)
    assert run.trace is not None
    return run.trace


def _write(directory: Path, trace: NetworkTrace, epochs: list[int] | None = None) -> RunWriter:
    """The run written epoch by epoch; closed unless only ``epochs`` are to be written."""
    writer = RunWriter(directory, trace)
    for epoch in trace.epochs if epochs is None else epochs:
        writer.write_epoch(epoch)
    if epochs is None:
        writer.close()
    return writer


def _writer_gone(directory: Path) -> None:
    """Make ``writer.json`` name a process that has ended (as after a ``kill -9``)."""
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    path = directory / "writer.json"
    data = json.loads(path.read_text())
    data["pid"] = int(ended.stdout)
    path.write_text(json.dumps(data))


def _assert_same(loaded: NetworkTrace, trace: NetworkTrace) -> None:
    pd.testing.assert_frame_equal(loaded.frame, trace.frame)
    pd.testing.assert_frame_equal(loaded.history, trace.history)
    assert loaded.steps is not None and trace.steps is not None
    pd.testing.assert_frame_equal(
        loaded.steps.reset_index(drop=True), trace.steps.reset_index(drop=True), check_dtype=False
    )
    assert loaded.layers == trace.layers
    assert loaded.meta == json.loads(json.dumps(loaded.meta))
    assert loaded.meta["status"] == trace.meta["status"]
    assert loaded.probe is not None and trace.probe is not None
    for got, want in zip(loaded.probe, trace.probe):
        np.testing.assert_array_equal(got, want)
    assert loaded.final_weights.keys() == trace.final_weights.keys()
    for key, value in trace.final_weights.items():
        np.testing.assert_array_equal(loaded.final_weights[key], value)
    for epoch in trace.epochs:
        want = trace.epoch_tensors(epoch)
        got = loaded.epoch_tensors(epoch)
        assert list(got) == list(want)
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value)


def test_a_run_written_epoch_by_epoch_loads_as_the_trace_in_memory(tmp_path, trace):
    _write(tmp_path / "run", trace)
    loaded = load_trace(tmp_path / "run")
    assert loaded.epochs == trace.epochs == [0, 2, 4, 5]
    _assert_same(loaded, trace)


def test_a_writer_that_never_closed_reads_as_interrupted_with_its_epochs(tmp_path, trace):
    _write(tmp_path / "run", trace, epochs=[0, 2])
    assert load_trace(tmp_path / "run").status == "running"  # its writer (this test) lives
    _writer_gone(tmp_path / "run")
    loaded = load_trace(str(tmp_path / "run"))
    assert loaded.status == "interrupted"
    assert loaded.epochs == [0, 2]
    assert "E_2" in loaded.meta["status_message"]
    assert loaded.history["epoch"].tolist() == [0, 1, 2]
    assert loaded.final_weights == {}
    np.testing.assert_array_equal(loaded.metrics_at(2), trace.metrics_at(2))
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["meta"]["status"] == "running"


def test_an_epoch_written_before_its_manifest_is_ignored(tmp_path, trace):
    run = tmp_path / "run"
    _write(run, trace, epochs=[0])
    manifest = (run / "manifest.json").read_bytes()
    _write(tmp_path / "later", trace, epochs=[0, 2])
    for part in ("neurons/epoch=2", "history/epoch=1", "history/epoch=2"):
        (run / part).mkdir(parents=True)
        os.replace(tmp_path / "later" / part / "part.parquet", run / part / "part.parquet")
    os.replace(tmp_path / "later/tensors/epoch_2.safetensors", run / "tensors/epoch_2.safetensors")
    (run / "neurons/epoch=4").mkdir()
    (run / "neurons/epoch=4/part.parquet").write_bytes(b"half an epoch")
    assert (run / "manifest.json").read_bytes() == manifest
    loaded = load_trace(run)
    assert loaded.epochs == [0]
    assert loaded.history["epoch"].tolist() == [0]


def test_the_manifest_is_replaced_only_with_complete_files(tmp_path, trace):
    writer = _write(tmp_path / "run", trace, epochs=[0])
    listed = json.loads((tmp_path / "run/manifest.json").read_text())
    assert listed["epochs"] == [0]
    writer.write_epoch(2)
    listed = json.loads((tmp_path / "run/manifest.json").read_text())
    assert listed["epochs"] == [0, 2]
    assert not list((tmp_path / "run").rglob("*.tmp"))
    with pytest.raises(ValueError, match="not after"):
        writer.write_epoch(2)


def _edit_manifest(run: Path, edit) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    edit(manifest)
    (run / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "name",
    ["../x.safetensors", "tensors/../../x.safetensors", "/etc/passwd", "tensors/evil.pkl"],
)
def test_a_manifest_naming_a_path_outside_is_refused(tmp_path, trace, name):
    run = tmp_path / "run"
    _write(run, trace)
    _edit_manifest(run, lambda m: m["tensors"].__setitem__(name, {"x": {}}))
    with pytest.raises(TraceFormatError, match=r"outside|absolute|does not have"):
        load_trace(run)


def test_a_symlink_leading_out_of_the_run_directory_is_refused(tmp_path, trace):
    run = tmp_path / "run"
    _write(run, trace)
    outside = tmp_path / "outside.safetensors"
    os.replace(run / "tensors/epoch_2.safetensors", outside)
    (run / "tensors/epoch_2.safetensors").symlink_to(outside)
    with pytest.raises(TraceFormatError, match="symlink"):
        load_trace(run)


def test_a_symlinked_partition_folder_is_refused(tmp_path, trace):
    run = tmp_path / "run"
    _write(run, trace)
    os.replace(run / "neurons/epoch=2", tmp_path / "elsewhere")
    (run / "neurons/epoch=2").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(TraceFormatError, match="symlink"):
        load_trace(run)


def test_a_run_directory_has_the_zips_limits_and_checks(tmp_path, trace):
    run = tmp_path / "run"
    _write(run, trace)
    with pytest.raises(TraceFormatError, match="over the limit"):
        load_trace(run, max_bytes=1000)
    (run / "neurons/epoch=2/part.parquet").write_bytes(b"\x80\x04pickled")
    with pytest.raises(TraceFormatError, match="pickle"):
        load_trace(run)


def test_an_empty_directory_is_not_a_trace(tmp_path):
    with pytest.raises(TraceFormatError, match=r"manifest\.json"):
        load_trace(tmp_path)


def test_a_run_directory_is_written_once(tmp_path, trace):
    _write(tmp_path / "run", trace)
    with pytest.raises(FileExistsError):
        RunWriter(tmp_path / "run", trace)


def test_pack_makes_a_trace_file_equal_to_the_directory(tmp_path, trace, capsys):
    _write(tmp_path / "run", trace)
    assert main(["pack", str(tmp_path / "run")]) == 0
    packed = load_trace(tmp_path / "run.nntrace")
    _assert_same(packed, trace)
    assert main(["pack", str(tmp_path / "run"), "--out", str(tmp_path / "x.nntrace")]) == 0
    assert (tmp_path / "x.nntrace").is_file()


def test_pack_of_an_interrupted_run_keeps_its_status(tmp_path, trace):
    _write(tmp_path / "run", trace, epochs=[0, 2])
    _writer_gone(tmp_path / "run")
    assert main(["pack", str(tmp_path / "run")]) == 0
    packed = load_trace(tmp_path / "run.nntrace")
    assert packed.status == "interrupted" and packed.epochs == [0, 2]


@pytest.mark.parametrize("what", ["missing", "not-a-run"])
def test_pack_errors_are_one_line_and_exit_2(tmp_path, capsys, what):
    target = tmp_path / "nothing"
    if what == "not-a-run":
        target.mkdir()
    assert main(["pack", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nn-tracing: error:") and err.count("\n") == 1


def test_the_tables_read_in_place_as_hive_partitioned_datasets(tmp_path, trace):
    import pyarrow.dataset as ds

    _write(tmp_path / "run", trace)
    neurons = ds.dataset(tmp_path / "run/neurons", partitioning="hive").to_table().to_pandas()
    assert sorted(neurons["epoch"].unique().tolist()) == trace.epochs
    assert len(neurons) == len(trace.frame)
    at_two = neurons[neurons["epoch"] == 2].sort_values("neuron")
    np.testing.assert_array_equal(at_two["act_mean"].to_numpy(), trace.metric("act_mean")[1])
    history = pd.read_parquet(tmp_path / "run/history", partitioning="hive")
    assert sorted(history["epoch"].tolist()) == trace.history["epoch"].tolist()


def test_train_writes_its_run_directory_as_it_goes(tmp_path):
    seen: list[list[int]] = []

    def on_trace(trace: NetworkTrace) -> None:
        seen.append(json.loads((tmp_path / "run/manifest.json").read_text())["epochs"])

    config = TINY_CONFIG.replace(epochs=3, keep_weights=True)
    run = train(config, out=tmp_path / "run", on_trace=on_trace)
    assert run.trace is not None
    assert seen[:3] == [[0], [0, 1], [0, 1, 2]]
    loaded = load_trace(tmp_path / "run")
    assert loaded.status == "complete" and loaded.epochs == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(loaded.frame, run.trace.frame)
    pd.testing.assert_frame_equal(loaded.history, run.trace.history)
    for key, value in run.trace.final_weights.items():
        np.testing.assert_array_equal(loaded.final_weights[key], value)


def test_a_training_run_killed_after_two_epochs_loads_as_interrupted(tmp_path):
    def crash_at_epoch_two(trace: NetworkTrace) -> None:
        if trace.epochs[-1] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TINY_CONFIG, out=tmp_path / "run", on_trace=crash_at_epoch_two)
    _writer_gone(tmp_path / "run")
    loaded = load_trace(tmp_path / "run")
    assert loaded.status == "interrupted" and loaded.epochs == [0, 1, 2]
    assert loaded.meta["status_message"].endswith("E_2")
    assert loaded.history["epoch"].tolist() == [0, 1, 2]


def test_the_digest_is_stable_and_changes_when_an_epoch_is_added(tmp_path, trace):
    writer = _write(tmp_path / "run", trace, epochs=[0])
    first = load_trace(tmp_path / "run").digest
    assert load_trace(tmp_path / "run").digest == first
    writer.write_epoch(2)
    assert load_trace(tmp_path / "run").digest != first


def test_a_zip_manifest_in_a_directory_is_not_a_run_directory(tmp_path, trace):
    _write(tmp_path / "run", trace)
    _edit_manifest(tmp_path / "run", lambda m: m.pop("layout"))
    with pytest.raises(TraceFormatError, match="layout"):
        load_trace(tmp_path / "run")


def test_read_manifest_reads_a_run_directory_without_its_tables(tmp_path, trace):
    writer = _write(tmp_path / "run", trace, epochs=[0, 2])
    assert read_manifest(tmp_path / "run")["meta"]["status"] == "running"
    _writer_gone(tmp_path / "run")
    manifest = read_manifest(tmp_path / "run")
    assert manifest["epochs"] == [0, 2] and manifest["meta"]["status"] == "interrupted"
    writer.close()
    assert read_manifest(tmp_path / "run")["meta"]["status"] == trace.status


def test_the_train_command_writes_a_run_directory_too(tmp_path, capsys):
    args = ["train", "--dataset", "moons", "--hidden", "4", "--epochs", "2", "--n-samples", "200"]
    args += ["--quiet", "--out", str(tmp_path / "x.nntrace"), "--run-dir", str(tmp_path / "x")]
    assert main(args) == 0
    from_dir, from_file = load_trace(tmp_path / "x"), load_trace(tmp_path / "x.nntrace")
    assert from_dir.status == "complete"
    pd.testing.assert_frame_equal(from_dir.frame, from_file.frame)
    assert main(args) == 2
    assert "holds a run already" in capsys.readouterr().err


def test_close_takes_only_a_final_status(tmp_path, trace):
    writer = _write(tmp_path / "run", trace, epochs=[0])
    with pytest.raises(ValueError, match="running"):
        writer.close("running")
    writer.close("stopped")
    assert load_trace(tmp_path / "run").status == "stopped"
    with pytest.raises(RuntimeError, match="closed"):
        writer.write_epoch(5)
