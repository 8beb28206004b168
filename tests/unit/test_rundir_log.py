"""Writing a run directory as training goes (nn_tracing/rundir_log.py): a disk that refuses a
write, and ``TraceableNN(log_dir=…)`` in a hand-written loop.

Write failures are real where this machine allows it (a tiny tmpfs that fills up, a tmpfs
remounted read-only, each in a private mount namespace; skipped where mounting is not allowed)
and always injected at the OS boundary (``os.replace`` / ``os.fsync`` raising ``ENOSPC``,
``EROFS`` or ``EACCES``).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nn_tracing
from nn_tracing import (
    NetworkTrace,
    RunWriteError,
    TraceableNN,
    TraceFormatError,
    load_trace,
    rundir_async,
)
from nn_tracing import train as train_run
from nn_tracing.cli import main
from nn_tracing.rundir import RunWriter
from nn_tracing.rundir_live import read_writer
from nn_tracing.rundir_log import RunLog, RunWriteWarning
from tests.conftest import ROOT, TINY_CONFIG
from tests.unit.test_rundir import _writer_gone

CONFIG = TINY_CONFIG.replace(epochs=5, keep_weights=True)


@pytest.fixture(scope="module")
def reference() -> NetworkTrace:
    """The same run, trained without a run directory."""
    run = train_run(CONFIG)
    assert run.trace is not None
    return run.trace


@pytest.fixture(autouse=True)
def every_epoch_written_alone(monkeypatch):
    """``train(out=…)`` hands each recorded epoch over alone (as a run whose epochs are more
    than a second apart does), so that a failed write names one epoch exactly; the hand-over
    of several at once is tested on its own below."""
    monkeypatch.setattr(rundir_async, "WRITE_INTERVAL", 0.0)


def _refuse(monkeypatch, directory: Path, code: int, *, at: str = "", from_then_on: bool = False):
    """``os.replace`` into ``directory`` raises ``OSError(code)`` for the file whose path
    ends with ``at`` (every file if ``at`` is empty), and, ``from_then_on``, for every file
    after it too (a disk that is full from then on)."""
    real = os.replace
    full = {"now": False}

    def replace(src, dst, *args, **kwargs):
        target = os.fspath(dst)
        if target.startswith(str(directory)) and (full["now"] or target.endswith(at)):
            full["now"] = from_then_on
            raise OSError(code, os.strerror(code), target)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def _assert_epochs_equal(loaded: NetworkTrace, reference: NetworkTrace) -> None:
    for epoch in loaded.epochs:
        np.testing.assert_array_equal(loaded.metrics_at(epoch), reference.metrics_at(epoch))
    want = reference.history[reference.history["epoch"] <= loaded.epochs[-1]]
    pd.testing.assert_frame_equal(
        loaded.history.drop(columns="seconds"),
        want.drop(columns="seconds").reset_index(drop=True),
    )


# -- the error -------------------------------------------------------------------------------
def test_a_run_write_error_names_the_directory_the_epoch_and_the_epochs_kept():
    cause = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "runs/x/tensors/epoch_5.safetensors")
    error = RunWriteError("runs/x", 5, [0, 1, 2, 3, 4], cause)
    assert str(error) == (
        "cannot write epoch E_5 to runs/x: No space left on device; the run keeps E_0…E_4"
    )
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert (error.epoch, error.kept, error.directory) == (5, (0, 1, 2, 3, 4), Path("runs/x"))
    assert nn_tracing.RunWriteError is RunWriteError
    first = RunWriteError("runs/x", 0, [], OSError(errno.EROFS, os.strerror(errno.EROFS)))
    assert str(first).endswith("E_0 to runs/x: Read-only file system; the run keeps no epoch")
    end = RunWriteError("runs/x", None, [0], PermissionError("denied"))
    assert str(end) == "cannot write the end of the run to runs/x: denied; the run keeps E_0"


def test_on_write_error_takes_stop_or_continue(tmp_path):
    with pytest.raises(ValueError, match="on_write_error='ignore'"):
        RunLog(tmp_path / "run", on_write_error="ignore")


# -- train(out=…) on a disk that refuses ------------------------------------------------------
def test_a_full_disk_stops_training_with_one_error_and_keeps_the_epochs_written(
    tmp_path, monkeypatch, reference
):
    run_dir = tmp_path / "run"
    _refuse(monkeypatch, run_dir, errno.ENOSPC, at="tensors/epoch_3.safetensors")
    with pytest.raises(RunWriteError) as caught:
        train_run(CONFIG, out=run_dir)
    assert str(caught.value) == (
        f"cannot write epoch E_3 to {run_dir}: No space left on device; the run keeps E_0…E_2"
    )
    assert caught.value.errno == errno.ENOSPC
    # training stopped there: nothing of a later epoch, no temporary file left behind
    assert not list(run_dir.glob("*/epoch=4*")) and not list(run_dir.rglob("*.tmp"))
    loaded = load_trace(run_dir)
    assert loaded.epochs == [0, 1, 2]
    assert loaded.status == "stopped"  # the manifest still took its status
    assert str(caught.value) in loaded.meta["status_message"]
    _assert_epochs_equal(loaded, reference)


def test_epochs_handed_over_together_are_lost_together_and_the_error_says_which(
    tmp_path, monkeypatch, reference
):
    # E_0 handed over alone, then E_1…E_5 together at the end
    monkeypatch.setattr(rundir_async, "WRITE_INTERVAL", 3600.0)
    run_dir = tmp_path / "run"
    _refuse(monkeypatch, run_dir, errno.ENOSPC, at="tensors/epoch_3.safetensors")
    with pytest.raises(RunWriteError) as caught:
        train_run(CONFIG, out=run_dir)
    assert str(caught.value) == (
        f"cannot write epoch E_1 to {run_dir}: No space left on device; the run keeps E_0"
    )
    loaded = load_trace(run_dir)
    assert loaded.epochs == [0] and loaded.status == "stopped"
    assert not list(run_dir.rglob("*.tmp"))
    _assert_epochs_equal(loaded, reference)


def test_a_folder_turned_read_only_keeps_the_epochs_written_and_reads_interrupted(
    tmp_path, monkeypatch, reference
):
    run_dir = tmp_path / "run"
    real, files = os.fsync, {"n": 0}

    def fsync(fd):  # every file's fsync after the 9th: the folder became read-only
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            files["n"] += 1
        if files["n"] > 9:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(RunWriteError, match="Read-only file system") as caught:
        train_run(CONFIG, out=run_dir)
    error = caught.value
    assert error.kept and error.epoch == error.kept[-1] + 1
    monkeypatch.undo()
    _writer_gone(run_dir)  # the manifest could not take a status: the process's end tells
    loaded = load_trace(run_dir)
    assert loaded.epochs == list(error.kept) and loaded.status == "interrupted"
    assert loaded.meta["status_message"].endswith(f"E_{error.kept[-1]}")
    _assert_epochs_equal(loaded, reference)


def test_a_folder_that_cannot_be_written_at_all_fails_before_the_first_epoch(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _refuse(monkeypatch, run_dir, errno.EACCES)
    with pytest.raises(RunWriteError) as caught:
        train_run(CONFIG, out=run_dir)
    assert str(caught.value) == (
        f"cannot write epoch E_0 to {run_dir}: Permission denied; the run keeps no epoch"
    )
    with pytest.raises(TraceFormatError):
        load_trace(run_dir)


def test_continue_warns_once_and_trains_on_untraced_to_disk(tmp_path, monkeypatch, reference):
    run_dir = tmp_path / "run"
    _refuse(
        monkeypatch, run_dir, errno.ENOSPC, at="neurons/epoch=2/part.parquet", from_then_on=True
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train_run(CONFIG, out=run_dir, on_write_error="continue")
    written = [w for w in caught if issubclass(w.category, RunWriteWarning)]
    assert len(written) == 1
    assert str(written[0].message) == (
        f"cannot write epoch E_2 to {run_dir}: No space left on device; the run keeps E_0…E_1;"
        " training goes on without writing it"
    )
    assert run.trace is not None and run.trace.status == "complete"
    pd.testing.assert_frame_equal(run.trace.frame, reference.frame)  # the trace in memory: whole
    monkeypatch.undo()
    _writer_gone(run_dir)
    loaded = load_trace(run_dir)
    assert loaded.epochs == [0, 1] and loaded.status == "interrupted"
    _assert_epochs_equal(loaded, reference)


def test_an_os_error_the_writer_raises_itself_is_named_like_any_write_error(tmp_path, monkeypatch):
    """As from a writer that writes in the background and reports at its next call."""
    real = RunWriter.write_epoch

    def write_epoch(self, epoch):
        if epoch == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(self, epoch)

    monkeypatch.setattr(RunWriter, "write_epoch", write_epoch)
    with pytest.raises(RunWriteError) as caught:
        train_run(CONFIG, out=tmp_path / "run")
    assert str(caught.value) == (
        f"cannot write epoch E_2 to {tmp_path / 'run'}: Input/output error; the run keeps E_0…E_1"
    )
    assert isinstance(caught.value.__cause__, OSError)


# -- the command ---------------------------------------------------------------------------------
TRAIN_ARGS = ["train", "--dataset", "moons", "--hidden", "8", "8", "--epochs", "4"]
TRAIN_ARGS += ["--n-samples", "300", "--probe-size", "64", "--seed", "0", "--quiet"]


def test_the_train_command_prints_a_write_error_as_one_line_and_exits_4(
    tmp_path, monkeypatch, capsys
):
    run_dir = tmp_path / "run"
    _refuse(monkeypatch, run_dir, errno.ENOSPC, at="manifest.json")
    args = [*TRAIN_ARGS, "--out", str(tmp_path / "x.nntrace"), "--run-dir", str(run_dir)]
    assert main(args) == 4
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"nn-tracing: error: cannot write epoch E_0 to {run_dir}: No space left on device; "
        "the run keeps no epoch"
    ]


def test_the_train_command_can_train_on_after_a_write_error(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    _refuse(monkeypatch, run_dir, errno.ENOSPC, at="tensors/epoch_2.safetensors")
    out = tmp_path / "x.nntrace"
    args = [*TRAIN_ARGS, "--out", str(out), "--run-dir", str(run_dir)]
    assert main([*args, "--on-write-error", "continue"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"nn-tracing: warning: cannot write epoch E_2 to {run_dir}: No space left on device; "
        "the run keeps E_0…E_1; training goes on without writing it"
    ]
    assert load_trace(out).epochs == [0, 1, 2, 3, 4]
    assert load_trace(run_dir).epochs == [0, 1]


# -- real faults: a tmpfs in a private mount namespace ------------------------------------------
def _can_mount(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    point = tmp_path / "probe-mount"
    point.mkdir()
    script = f"mount -t tmpfs -o size=64k tmpfs {point} && mount -o remount,ro {point}"
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
    )
    return done.returncode == 0


def _train_on_tmpfs(tmp_path: Path, mount: str, before: str = "") -> tuple[int, str, Path]:
    """The train command writing its run directory to a fresh tmpfs (``mount`` options),
    in a private mount namespace; ``before`` runs in the background first. Returns the exit
    code, stderr and a copy of the run directory taken after the command ended."""
    if not _can_mount(tmp_path):
        pytest.skip("this machine does not let a test mount a tmpfs (unshare --mount)")
    point, out = tmp_path / "mnt", tmp_path / "out"
    point.mkdir()
    out.mkdir()
    args = [*TRAIN_ARGS, "--epochs", "60", "--keep-weights", "--out", str(out / "x.nntrace")]
    args += ["--run-dir", str(point / "run")]
    command = " ".join([sys.executable, "-m", "nn_tracing.cli", *args])
    script = textwrap.dedent(
        f"""
        mount -t tmpfs -o {mount} tmpfs {point} || exit 97
        {before}
        {command} 2> {out}/stderr
        echo $? > {out}/rc
        [ -n "$!" ] && kill $! 2>/dev/null
        wait
        cp -a {point}/run {out}/run
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return int((out / "rc").read_text()), (out / "stderr").read_text(), out / "run"


def _check_stopped_run(code: int, stderr: str, copy: Path, reason: str) -> None:
    assert code == 4, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    found = re.fullmatch(
        rf"nn-tracing: error: cannot write epoch E_(\d+) to \S+/run: {reason}; "
        r"the run keeps E_0(?:…E_(\d+))?",  # a fast run's epochs go a few at a time
        lines[0],
    )
    assert found, lines[0]
    failed, last = int(found.group(1)), int(found.group(2) or 0)
    assert failed == last + 1
    loaded = load_trace(copy)  # its writer has ended: interrupted, unless it could say stopped
    assert loaded.epochs == list(range(last + 1))
    assert loaded.status in ("interrupted", "stopped")
    assert f"E_{last}" in loaded.meta["status_message"]


def test_a_real_full_disk_stops_the_train_command_and_keeps_the_epochs(tmp_path):
    # ~30 pages: the probe, the manifest and about three epochs fit, the fourth does not
    code, stderr, copy = _train_on_tmpfs(tmp_path, "size=120k")
    _check_stopped_run(code, stderr, copy, "No space left on device")


def test_a_real_folder_turned_read_only_stops_the_train_command(tmp_path):
    point = tmp_path / "mnt"
    remount = (  # once E_0 is written (a file busy for writing refuses a remount)
        f"(until [ -e '{point}/run/manifest.json' ]; do sleep 0.005; done; "
        f"until mount -o remount,ro {point} 2>/dev/null; do sleep 0.005; done) &"
    )
    code, stderr, copy = _train_on_tmpfs(tmp_path, "size=8m", before=remount)
    _check_stopped_run(code, stderr, copy, "Read-only file system")


# -- TraceableNN(log_dir=…): any script, one line -----------------------------------------------
def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 4, generator=generator)
    return x, (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()


def _loop(model: TraceableNN, epochs: range, after_epoch=None) -> None:
    """A hand-written training loop: mini-batches, history given to end_epoch."""
    x, y = _data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    for epoch in epochs:
        model.start_epoch(epoch)
        for start in range(0, len(x), 32):
            loss = F.cross_entropy(model(x[start : start + 32]), y[start : start + 32])
            model.log_step(loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.end_epoch(epoch, train_loss=loss.item(), lr=0.2)
        if after_epoch is not None:
            after_epoch(epoch)


def _model(log_dir: Path | None, **kwargs) -> TraceableNN:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = _data(1)
    return TraceableNN(net, probe=(x, y), log_dir=log_dir, **kwargs)


def test_traceable_nn_with_log_dir_writes_the_run_as_it_trains(tmp_path):
    run_dir = tmp_path / "runs" / "my-run"
    model = _model(run_dir, epoch_intervals=2, keep_weights=True, drop_batches=False)
    seen: dict[int, list[int]] = {}

    def look(epoch: int) -> None:
        seen[epoch] = load_trace(run_dir).epochs
        assert load_trace(run_dir).status == "running"  # its writer (this process) lives
        assert read_writer(run_dir).progress["epoch"] == epoch

    _loop(model, range(1, 6), after_epoch=look)
    assert seen == {1: [0], 2: [0, 2], 3: [0, 2], 4: [0, 2, 4], 5: [0, 2, 4]}
    trace = model.finish()
    loaded = load_trace(run_dir)
    memory = model.network_trace
    assert loaded.status == trace.status == "complete" and loaded.epochs == memory.epochs
    pd.testing.assert_frame_equal(loaded.frame, memory.frame)
    pd.testing.assert_frame_equal(loaded.history, memory.history)
    assert loaded.steps is not None and memory.steps is not None
    pd.testing.assert_frame_equal(loaded.steps, memory.steps, check_dtype=False)
    for epoch in memory.epochs:
        for key, value in memory.epoch_tensors(epoch).items():
            np.testing.assert_array_equal(loaded.epoch_tensors(epoch)[key], value)
    for key, value in memory.final_weights.items():
        np.testing.assert_array_equal(loaded.final_weights[key], value)


def test_traceable_nn_log_dir_refuses_a_folder_that_holds_a_run(tmp_path):
    model = _model(tmp_path / "run")
    _loop(model, range(1, 2))
    model.finish()
    with pytest.raises(FileExistsError, match="holds a run already"):
        _model(tmp_path / "run")


def test_traceable_nn_stops_or_goes_on_when_its_log_dir_cannot_be_written(tmp_path, monkeypatch):
    stopped = _model(tmp_path / "stop")
    _refuse(monkeypatch, tmp_path / "stop", errno.ENOSPC, at="epoch_2.safetensors")
    with pytest.raises(RunWriteError, match=r"cannot write epoch E_2 .* keeps E_0…E_1"):
        _loop(stopped, range(1, 4))
    assert stopped.recorded_epochs == [0, 1, 2]  # the trace in memory has the epoch
    assert load_trace(tmp_path / "stop").epochs == [0, 1]

    going = _model(tmp_path / "go", on_write_error="continue")
    _refuse(monkeypatch, tmp_path / "go", errno.ENOSPC, at="epoch_2.safetensors")
    with pytest.warns(RunWriteWarning, match="cannot write epoch E_2") as caught:
        _loop(going, range(1, 4))
        trace = going.finish()
    assert len([w for w in caught if w.category is RunWriteWarning]) == 1
    assert trace.epochs == [0, 1, 2, 3]
    assert load_trace(tmp_path / "go").epochs == [0, 1]


SCRIPT = """
import os, sys, torch, torch.nn.functional as F
from torch import nn
from nn_tracing import TraceableNN

torch.set_num_threads(1)
torch.manual_seed(0)
x = torch.randn(96, 4)
y = (x[:, 0] > 0).long()
model = TraceableNN(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), probe=(x, y),
                    log_dir=sys.argv[1])
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(1, int(sys.argv[2]) + 1):
    model.start_epoch(epoch)
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    model.end_epoch(epoch, train_loss=loss.item())
print("trained", flush=True)
if sys.argv[3] == "wait":
    sys.stdin.readline()  # until killed
# and never model.finish()
"""


@pytest.mark.parametrize("end", ["killed", "exits-without-finish"])
def test_a_script_with_log_dir_that_dies_reads_as_interrupted_with_its_epochs(tmp_path, end):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    run_dir = tmp_path / "runs" / "mine"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    wait = "wait" if end == "killed" else "exit"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run_dir), "3", wait],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "trained\n"
    if end == "killed":
        assert load_trace(run_dir).status == "running"  # alive, between two epochs
        proc.kill()
    proc.wait(timeout=60)
    loaded = load_trace(run_dir)
    assert loaded.status == "interrupted" and loaded.epochs == [0, 1, 2, 3]
    assert loaded.meta["status_message"].endswith("the last complete epoch is E_3")
    assert loaded.history["train_loss"].notna().tolist() == [False, True, True, True]
