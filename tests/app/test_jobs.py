"""Training jobs (nn_tracing.jobs): a child process per run, followed through its run directory
— progress, the trace as it grows, how it ended, stop, crashes, limits, names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nn_tracing import TrainConfig, load_trace
from nn_tracing.jobs import JobLimitError, TrainingJob, get_job, start_job
from nn_tracing.runs import new_run_directory, new_run_path

TINY = TrainConfig(dataset="moons", hidden_sizes=(4,), epochs=3, n_samples=200, probe_size=32)
#: 1875 batches per epoch (15000 training samples / 8): a stop lands inside an epoch.
MANY_BATCHES = TrainConfig(
    dataset="moons",
    hidden_sizes=(8,),
    epochs=50,
    n_samples=20000,
    batch_size=8,
    probe_size=64,
    epoch_intervals=-1,
)
ROOT = Path(__file__).resolve().parents[2]


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_job_trains_in_a_child_process_into_its_run_directory(tmp_path: Path) -> None:
    job = start_job(TINY, tmp_path, name="unit")
    assert get_job(job.job_id) is job
    assert job.pid is not None and job.pid != os.getpid()
    assert job.join(120)
    snap = job.snapshot()
    assert snap.done and snap.state == "finished" and snap.status == "complete"
    assert snap.exit_code == 0 and snap.error is None
    assert snap.epoch == 3 and snap.fraction == 1.0 and snap.remaining == 0.0
    assert snap.recorded_epochs == (0, 1, 2, 3)
    assert snap.trace_version == 0  # nobody has loaded the trace yet
    assert snap.saved_path == tmp_path / "unit" and snap.saved_name == "unit"
    assert [p.name for p in tmp_path.iterdir()] == ["unit"]  # the directory is the trace
    trace = load_trace(snap.saved_path)
    assert trace.epochs == [0, 1, 2, 3] and trace.status == "complete"
    # the child trained exactly this config (it read it from the run's folder)
    assert TrainConfig.from_dict(trace.meta["config"]) == TINY
    assert TrainConfig.from_dict(json.loads((tmp_path / "unit/config.json").read_text())) == TINY
    assert "saved" in (tmp_path / "unit/train.log").read_text()
    live = job.live_trace
    assert live is not None and live.status == "complete" and live.epochs == [0, 1, 2, 3]
    assert job.snapshot().trace_version == 5  # one per recorded epoch, one for the end
    assert job.live_trace is live  # not loaded again: the manifest did not change


def test_the_live_trace_grows_with_the_manifest(tmp_path: Path) -> None:
    job = start_job(TINY.replace(epochs=400, n_samples=2000), tmp_path, name="grow")
    try:
        _wait(lambda: len(job.snapshot().recorded_epochs) >= 2, 120, "two recorded epochs")
        first = job.live_trace
        assert first is not None and first.status == "running"
        version = job.snapshot().trace_version
        assert version == len(first.epochs)  # the version of the trace given
        _wait(lambda: job.live_trace is not first, 60, "the trace loaded again")
        later = job.live_trace
        assert later is not None and job.snapshot().trace_version == len(later.epochs) > version
        assert later.epochs[: len(first.epochs)] == first.epochs
        assert len(later.epochs) > len(first.epochs)
        snap = job.snapshot()
        assert snap.state == "running" and snap.epochs == 400 and snap.epoch >= 1
        assert snap.remaining is not None and snap.elapsed > 0
    finally:
        job.stop()
        assert job.join(60)
    assert job.snapshot().status == "stopped"


def test_a_diverged_run_is_kept_and_labelled(tmp_path: Path) -> None:
    config = TINY.replace(lr=1e6, optimizer="sgd", epochs=50)
    job = TrainingJob(config, tmp_path, name="boom").start()
    assert job.join(120)
    snap = job.snapshot()
    assert snap.state == "finished" and snap.status == "diverged" and snap.exit_code == 3
    assert snap.saved_name == "boom"
    assert "loss became" in snap.message
    assert load_trace(snap.saved_path).status == "diverged"


def test_a_failing_run_reports_its_error_line_and_leaves_nothing(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = TINY.replace(device="cuda")  # no CUDA here: the child exits with an error
    job = TrainingJob(config, tmp_path).start()
    assert job.join(120)
    snap = job.snapshot()
    assert snap.state == "failed" and snap.exit_code == 2
    assert snap.error is not None and "CUDA" in snap.error
    assert "Traceback" not in snap.error and "nn-tracing: error" not in snap.error
    assert snap.saved_path is None
    assert list(tmp_path.iterdir()) == []  # its config and log went with it


def test_a_killed_child_leaves_its_epochs_and_reads_as_interrupted(tmp_path: Path) -> None:
    """kill -9 of the training process: the server's job says so, and the run directory keeps
    every epoch recorded before."""
    job = start_job(TINY.replace(epochs=400, n_samples=2000), tmp_path, name="crash")
    _wait(lambda: len(job.snapshot().recorded_epochs) >= 3, 120, "three recorded epochs")
    assert job.pid is not None
    os.kill(job.pid, signal.SIGKILL)
    assert job.join(30)
    snap = job.snapshot()
    assert snap.state == "failed" and snap.status == "interrupted"
    assert snap.exit_code == -signal.SIGKILL
    assert "SIGKILL" in (snap.error or "") and f"E_{snap.recorded_epochs[-1]}" in snap.error
    assert snap.saved_name == "crash" and len(snap.recorded_epochs) >= 3
    trace = job.live_trace
    assert trace is not None and trace.status == "interrupted"
    assert tuple(trace.epochs) == snap.recorded_epochs
    assert load_trace(tmp_path / "crash").epochs == trace.epochs


def test_stop_takes_effect_within_one_batch(tmp_path: Path) -> None:
    job = start_job(MANY_BATCHES, tmp_path, name="stop")
    # (the heartbeat shows the epoch at least at every epoch's end; a stop at a random time
    # falls inside one of the 1875 batches of an epoch, or between two epochs)
    _wait(lambda: job.snapshot().epoch >= 2, 120, "the run in its second epoch")
    job.stop()
    assert job.snapshot().stop_requested
    assert job.join(60)
    snap = job.snapshot()
    assert snap.state == "finished" and snap.status == "stopped" and snap.exit_code == 130
    trace = load_trace(snap.saved_path)
    asked, stopped = trace.meta["stop_requested_at"], trace.meta["stopped_epoch"]
    gap = (stopped - asked["epoch"]) * 1875 + trace.meta["stopped_step"] - asked["step"]
    assert 0 <= gap <= 1, trace.meta
    assert trace.epochs == [0, stopped] and trace.meta["partial_epoch"] == stopped


def test_runs_outlive_the_process_that_started_them(tmp_path: Path) -> None:
    """No exit hook stops or waits for the children: a process that starts a run and exits at
    once leaves the run training to its end."""
    code = (
        "import sys; from pathlib import Path; from nn_tracing import TrainConfig; "
        "from nn_tracing.jobs import start_job; "
        f"job = start_job(TrainConfig.from_dict({TINY.to_dict()!r}), Path(sys.argv[1]), "
        "name='orphan'); print(job.pid)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert started.returncode == 0, started.stderr
    _wait(
        lambda: (
            (tmp_path / "orphan/manifest.json").exists()
            and load_trace(tmp_path / "orphan").status == "complete"
        ),
        120,
        "the orphaned run to complete",
    )
    assert load_trace(tmp_path / "orphan").epochs == [0, 1, 2, 3]


def test_the_number_of_concurrent_runs_is_bounded(tmp_path: Path) -> None:
    long = TINY.replace(epochs=100_000)
    first = start_job(long, tmp_path, name="a", max_running=1)
    try:
        with pytest.raises(JobLimitError, match="limit is 1"):
            start_job(long, tmp_path, name="b", max_running=1)
        assert not (tmp_path / "b").exists()
    finally:
        first.stop()
        assert first.join(60)
    assert first.snapshot().status == "stopped"


def test_a_new_run_takes_a_name_no_run_holds(tmp_path: Path) -> None:
    (tmp_path / "x.nntrace").write_bytes(b"")
    (tmp_path / "x-2").mkdir()
    made = new_run_directory("x", tmp_path)
    assert made == tmp_path / "x-3" and made.is_dir()
    assert new_run_path("x", tmp_path) == tmp_path / "x-4.nntrace"
    (tmp_path / "y").mkdir()  # a run directory holds the name of a trace file too
    assert new_run_path("y", tmp_path) == tmp_path / "y-2.nntrace"
    assert new_run_directory("y", tmp_path) == tmp_path / "y-2"
