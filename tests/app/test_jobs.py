"""Background training jobs (nn_tracing.jobs): progress snapshots, saving, failures, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from nn_tracing import TrainConfig, load_trace
from nn_tracing.jobs import JobLimitError, TrainingJob, get_job, start_job

TINY = TrainConfig(dataset="moons", hidden_sizes=(4,), epochs=3, n_samples=200, probe_size=32)


def test_a_job_reports_progress_and_saves_its_trace_atomically(tmp_path: Path) -> None:
    job = start_job(TINY, tmp_path, name="unit")
    assert get_job(job.job_id) is job
    assert job.join(120)
    snap = job.snapshot()
    assert snap.done and snap.state == "finished" and snap.status == "complete"
    assert snap.epoch == 3 and snap.fraction == 1.0 and snap.remaining == 0.0
    assert snap.recorded_epochs == (0, 1, 2, 3)
    assert snap.trace_version >= 4
    assert snap.saved_path == tmp_path / "unit.nntrace"
    assert [p.name for p in tmp_path.iterdir()] == ["unit.nntrace"]  # no temporary left over
    assert load_trace(snap.saved_path).epochs == [0, 1, 2, 3]
    assert job.live_trace is not None and job.live_trace.status == "complete"


def test_a_diverged_run_is_saved_and_labelled(tmp_path: Path) -> None:
    config = TINY.replace(lr=1e6, optimizer="sgd", epochs=50)
    job = TrainingJob(config, tmp_path, name="boom").start()
    assert job.join(120)
    snap = job.snapshot()
    assert snap.status == "diverged" and snap.saved_name == "boom-diverged"
    assert "loss became" in snap.message
    assert load_trace(snap.saved_path).status == "diverged"


def test_a_failing_run_reports_its_error_instead_of_raising(tmp_path: Path) -> None:
    config = TINY.replace(device="cuda")  # no CUDA here: train() raises ValueError
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    job = TrainingJob(config, tmp_path).start()
    assert job.join(60)
    snap = job.snapshot()
    assert snap.state == "failed" and "CUDA" in (snap.error or "")
    assert list(tmp_path.iterdir()) == []


def test_the_number_of_concurrent_runs_is_bounded(tmp_path: Path) -> None:
    long = TINY.replace(epochs=100_000)
    first = start_job(long, tmp_path, name="a", max_running=1)
    try:
        with pytest.raises(JobLimitError, match="limit is 1"):
            start_job(long, tmp_path, name="b", max_running=1)
    finally:
        first.stop()
        assert first.join(60)
    assert first.snapshot().status == "stopped"
