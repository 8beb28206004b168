"""The run directory written from a background thread (nn_tracing/rundir_async.py)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nn_tracing import NetworkTrace, TraceFormatError, load_trace, read_manifest, train
from nn_tracing.rundir import RunWriteError, RunWriter
from nn_tracing.rundir_async import BackgroundRunWriter
from nn_tracing.rundir_live import read_writer
from tests.conftest import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trace() -> NetworkTrace:
    """A real run that records every other epoch, keeps weights and the per-step table."""
    config = TINY_CONFIG.replace(epochs=5, epoch_intervals=2, keep_weights=True, drop_batches=False)
    run = train(config)
    assert run.trace is not None
    return run.trace


def _files(directory: Path) -> dict[str, int]:
    """Every file of a run directory but the heartbeat, with its size."""
    return {
        str(path.relative_to(directory)): path.stat().st_size
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != "writer.json"
    }


def _manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def _wait_for_error(writer: BackgroundRunWriter) -> None:
    deadline = time.monotonic() + 30
    while writer.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.error is not None


def test_close_leaves_everything_written_as_the_synchronous_writer_does(tmp_path, trace):
    writer = RunWriter(tmp_path / "sync", trace)
    for epoch in trace.epochs:
        writer.write_epoch(epoch)
    writer.close()

    background = BackgroundRunWriter(tmp_path / "async", trace)
    for epoch in trace.epochs:
        background.write_epoch(epoch)
    assert background.queued == trace.epochs
    background.close()
    assert background.closed and background.epochs == trace.epochs

    assert _files(tmp_path / "async") == _files(tmp_path / "sync")
    for path in (tmp_path / "sync").rglob("*.safetensors"):  # the same bytes
        assert (tmp_path / "async" / path.relative_to(tmp_path / "sync")).read_bytes() == (
            path.read_bytes()
        )
    manifest = _manifest(tmp_path / "async")
    assert manifest["epochs"] == trace.epochs and manifest["meta"]["status"] == trace.status
    assert manifest["tables"] == _manifest(tmp_path / "sync")["tables"]
    loaded, reference = load_trace(tmp_path / "async"), load_trace(tmp_path / "sync")
    pd.testing.assert_frame_equal(loaded.frame, trace.frame)
    pd.testing.assert_frame_equal(loaded.history, reference.history)
    pd.testing.assert_frame_equal(loaded.steps, reference.steps)
    for epoch in trace.epochs:
        for key, value in trace.epoch_tensors(epoch).items():
            np.testing.assert_array_equal(loaded.epoch_tensors(epoch)[key], value)
    for key, value in trace.final_weights.items():
        np.testing.assert_array_equal(loaded.final_weights[key], value)
    assert not [p for p in (tmp_path / "async").rglob("*.tmp")]  # no temporary file left


def test_flush_waits_until_the_manifest_names_every_epoch_handed_over(tmp_path, trace):
    writer = BackgroundRunWriter(tmp_path / "run", trace)
    writer.write_epoch(0)
    writer.write_epoch(2)
    writer.flush()
    assert writer.epochs == [0, 2] and _manifest(tmp_path / "run")["epochs"] == [0, 2]
    assert read_manifest(tmp_path / "run")["meta"]["status"] == "running"
    writer.close("stopped")
    assert load_trace(tmp_path / "run").status == "stopped"


def test_several_epochs_handed_over_at_once_share_a_manifest(tmp_path, trace):
    writer = BackgroundRunWriter(tmp_path / "run", trace, interval=3600)
    assert writer.due()
    writer.write_epochs([0, 2])
    assert not writer.due()  # train(out=) then waits before the next snapshot
    writer.flush()
    assert writer.epochs == [0, 2] and _manifest(tmp_path / "run")["epochs"] == [0, 2]
    writer.close()
    assert load_trace(tmp_path / "run").epochs == trace.epochs
    every_time = BackgroundRunWriter(tmp_path / "other", trace, interval=0)
    every_time.write_epoch(0)
    assert every_time.due()
    every_time.close()


def test_epochs_are_checked_when_handed_over(tmp_path, trace):
    writer = BackgroundRunWriter(tmp_path / "run", trace)
    writer.write_epoch(2)
    with pytest.raises(ValueError, match="not after"):
        writer.write_epoch(0)
    with pytest.raises(ValueError, match="not recorded"):
        writer.write_epoch(3)
    with pytest.raises(ValueError, match="running"):
        writer.close("running")
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.write_epoch(4)


def test_a_write_error_in_the_background_surfaces_at_the_next_call(tmp_path, trace):
    directory = tmp_path / "run"
    writer = BackgroundRunWriter(directory, trace)
    writer.write_epoch(0)
    writer.flush()
    # a file where the next epoch's folder must go: a real OSError in the writing thread
    (directory / "neurons").joinpath("epoch=2").write_bytes(b"")
    writer.write_epoch(2)  # handed over: returns before the thread fails
    _wait_for_error(writer)
    with pytest.raises(RunWriteError, match=r"cannot write epoch E_2 .*keeps E_0$") as caught:
        writer.write_epoch(4)
    assert caught.value.errno == errno.EEXIST
    with pytest.raises(RunWriteError):
        writer.close()
    assert writer.closed
    # nothing after the error was written; the run keeps the epoch written before it
    assert _manifest(directory)["epochs"] == [0] and writer.epochs == [0]
    assert load_trace(directory).epochs == [0]
    assert not [p for p in directory.rglob("*.tmp")]


def test_a_write_error_is_raised_by_close_at_the_latest(tmp_path, trace):
    directory = tmp_path / "run"
    writer = BackgroundRunWriter(directory, trace)
    (directory / "neurons").write_bytes(b"")  # no folder can be made for any epoch
    writer.write_epoch(0)
    with pytest.raises(OSError):
        writer.close()
    assert not (directory / "manifest.json").exists()


def test_train_hands_over_what_it_recorded_before_an_error(tmp_path):
    """An error in training (here: in the progress callback, after epoch 3) leaves every
    epoch recorded before it in the run directory, which stays "running"."""

    def fail_after_epoch_three(p) -> None:
        if p.epoch == 3 and p.epoch_done:
            raise RuntimeError("the user's callback failed")

    config = TINY_CONFIG.replace(epochs=6)
    with pytest.raises(RuntimeError, match="callback failed"):
        train(config, progress=fail_after_epoch_three, out=tmp_path / "run")
    manifest = _manifest(tmp_path / "run")
    assert manifest["epochs"] == [0, 1, 2, 3] and manifest["meta"]["status"] == "running"
    reference = train(config.replace(epochs=3)).trace
    loaded = load_trace(tmp_path / "run")
    pd.testing.assert_frame_equal(loaded.frame, reference.frame)


_TRAIN_SCRIPT = """
import sys
import nn_tracing as nt
from nn_tracing import rundir_async
rundir_async.WRITE_INTERVAL = 0.0  # every epoch handed over as it is recorded
config = nt.TrainConfig(dataset="moons", hidden_sizes=(16, 16), epochs=12, n_samples=1000,
                        probe_size=64, batch_size=32, seed=0, keep_weights=True)
nt.train(config, out=sys.argv[1])
"""


def _load_while_written(directory: Path, process: subprocess.Popen) -> list[list[int]]:
    """Load the run directory over and over while ``process`` writes it; every load must
    succeed (once there is a manifest). Returns the epochs each load saw."""
    seen: list[list[int]] = []
    while process.poll() is None:
        if not (directory / "manifest.json").exists():
            time.sleep(0.005)
            continue
        loaded = load_trace(directory)  # raises TraceFormatError on any missing/partial file
        assert loaded.epochs == list(range(len(loaded.epochs)))
        assert loaded.history["epoch"].max() >= loaded.epochs[-1]
        loaded.epoch_tensors(loaded.epochs[-1])  # the newest epoch's tensors read in full
        seen.append(loaded.epochs)
    return seen


def test_a_reader_never_sees_a_manifest_naming_a_missing_or_incomplete_file(tmp_path):
    directory = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-c", _TRAIN_SCRIPT, str(directory)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        seen = _load_while_written(directory, process)
    except (AssertionError, TraceFormatError):
        process.kill()
        raise
    finally:
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()
    # the reader saw the run grow: several states while it was written, each a prefix
    assert len({len(epochs) for epochs in seen}) >= 3, seen
    final = load_trace(directory)
    assert final.status == "complete" and final.epochs == list(range(13))
    assert all(epochs == final.epochs[: len(epochs)] for epochs in seen)


_EXIT_SCRIPT = """
import sys
import nn_tracing as nt
from nn_tracing.rundir_async import BackgroundRunWriter
from nn_tracing.rundir_live import read_writer
config = nt.TrainConfig(dataset="moons", hidden_sizes=(8,), epochs=6, n_samples=300,
                        probe_size=64, seed=0)
trace = nt.train(config).trace
writer = BackgroundRunWriter(sys.argv[1], trace)
for epoch in trace.epochs:
    writer.write_epoch(epoch)
# no close: the interpreter exits with epochs still queued
"""


def test_epochs_handed_over_are_written_when_the_interpreter_exits(tmp_path):
    directory = tmp_path / "run"
    subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT, str(directory)], cwd=ROOT, check=True, timeout=300
    )
    manifest = _manifest(directory)
    assert manifest["epochs"] == list(range(7)) and manifest["meta"]["status"] == "running"
    loaded = load_trace(directory)
    assert loaded.status == "interrupted" and loaded.epochs == list(range(7))
    assert not [p for p in directory.rglob("*.tmp")]


def test_the_heartbeat_is_written_by_the_writing_thread(tmp_path, trace):
    writer = BackgroundRunWriter(tmp_path / "run", trace)
    writer.beat(force=True, epoch=3, step=5, loss=float("nan"))  # a loss not known yet
    writer.flush()
    assert read_writer(tmp_path / "run").progress == {"epoch": 3, "step": 5}
    writer.beat(epoch=4)  # within a second of the last: kept for the next heartbeat
    writer.flush()
    assert read_writer(tmp_path / "run").progress == {"epoch": 3, "step": 5}
    writer.beat(force=True, loss=0.25)
    writer.flush()
    assert read_writer(tmp_path / "run").progress == {"epoch": 4, "step": 5, "loss": 0.25}
    writer.write_epochs([0, 2])  # the thread beats after the manifest, with its last epoch
    writer.flush()
    assert read_writer(tmp_path / "run").progress == {"epoch": 2, "step": 5, "loss": 0.25}
    writer.close()


def test_the_last_progress_is_written_with_the_final_manifest(tmp_path, trace):
    writer = BackgroundRunWriter(tmp_path / "run", trace)
    writer.beat(force=True, epoch=1)
    writer.flush()
    writer.beat(epoch=trace.epochs[-1], step=9)  # too soon for a heartbeat of its own
    writer.close()
    assert read_writer(tmp_path / "run").progress == {"epoch": trace.epochs[-1], "step": 9}
