"""``max_trace_bytes``: refused or adapted before a run, recording stopped while it runs."""

import os
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nn_tracing as nt
from nn_tracing.estimate import estimate_run, format_bytes
from nn_tracing.trace_budget import (
    ADAPT_TARGET,
    MIN_KEPT_SAMPLES,
    TraceBudgetExceeded,
    budget_options,
    plan_budget,
)
from nn_tracing.tracer import TraceableNN, TraceBudgetWarning
from nn_tracing.tracer._budget import directory_bytes

# 30 epochs of a 586-neuron MLP on a 400-sample probe: about 20 MiB of activations.
BIG = nt.TrainConfig(dataset="digits", hidden_sizes=(256, 256), probe_size=400, epochs=30)


def test_a_run_within_its_budget_is_unchanged():
    budget = estimate_run(BIG).trace_bytes + 1
    plan = plan_budget(BIG.replace(max_trace_bytes=budget))
    assert plan.config == BIG.replace(max_trace_bytes=budget) and not plan.adapted
    assert plan.describe() == ""


def test_a_refusal_names_each_knob_and_what_it_would_bring_the_trace_to():
    size = estimate_run(BIG).trace_bytes
    limit = size // 3
    with pytest.raises(TraceBudgetExceeded) as info:
        plan_budget(BIG.replace(max_trace_bytes=limit))
    message = str(info.value)
    assert info.value.estimate.trace_bytes == size
    assert f"about {format_bytes(size)}, over max_trace_bytes ({format_bytes(limit)})" in message
    options = dict(budget_options(BIG, limit))
    assert set(options) >= {"activation_dtype='float16'"}
    for name, bytes_ in options.items():
        assert f"{name} → {format_bytes(bytes_)}" in message
    # each option is that knob alone, the largest value that fits
    half = estimate_run(BIG.replace(activation_dtype="float16")).trace_bytes
    assert options["activation_dtype='float16'"] == half and half > limit  # still over
    (kept,) = [k for k in options if k.startswith("activation_samples=")]
    n = int(kept.split("=")[1])
    assert estimate_run(BIG.replace(activation_samples=n)).trace_bytes <= limit
    assert estimate_run(BIG.replace(activation_samples=n + 1)).trace_bytes > limit
    (every,) = [k for k in options if k.startswith("epoch_intervals=")]
    interval = int(every.split("=")[1])
    assert estimate_run(BIG.replace(epoch_intervals=interval)).trace_bytes <= limit
    assert estimate_run(BIG.replace(epoch_intervals=interval - 1)).trace_bytes > limit
    assert "on_budget='adapt'" in message


def test_adapt_lowers_float16_then_samples_then_epochs_in_that_order():
    size = estimate_run(BIG).trace_bytes
    # float16 alone fits a budget of 60 %
    plan = plan_budget(BIG.replace(max_trace_bytes=int(size * 0.6), on_budget="adapt"))
    assert plan.adapted == {"activation_dtype": "float16"}
    # 45 %: float16, then fewer kept samples (still above the floor)
    plan = plan_budget(BIG.replace(max_trace_bytes=int(size * 0.45), on_budget="adapt"))
    assert set(plan.adapted) == {"activation_dtype", "activation_samples"}
    assert MIN_KEPT_SAMPLES <= plan.config.activation_samples < 400
    # a tenth: the floor of kept samples, then fewer recorded epochs
    plan = plan_budget(BIG.replace(max_trace_bytes=size // 10, on_budget="adapt"))
    assert plan.adapted["activation_samples"] == MIN_KEPT_SAMPLES
    assert isinstance(plan.config.epoch_intervals, int) and plan.config.epoch_intervals > 1
    assert plan.estimate.trace_bytes <= plan.config.max_trace_bytes * ADAPT_TARGET
    meta = plan.meta()
    assert meta["adapted"] == plan.adapted and meta["requested_bytes"] == size
    # nothing fits: refused even in adapt mode
    with pytest.raises(TraceBudgetExceeded, match="narrow hidden_sizes or raise the budget"):
        plan_budget(BIG.replace(max_trace_bytes=100_000, on_budget="adapt"))


def test_train_refuses_before_anything_is_made(tmp_path):
    config = BIG.replace(max_trace_bytes=2**20)
    with pytest.raises(TraceBudgetExceeded, match="activation_samples="):
        nt.train(config, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_train_adapts_and_says_so_in_the_trace(tmp_path):
    config = nt.TrainConfig(
        dataset="digits", hidden_sizes=(128,), probe_size=300, epochs=6, on_budget="adapt"
    )
    limit = int(estimate_run(config).rundir_bytes * 0.6)
    run = nt.train(config.replace(max_trace_bytes=limit), out=tmp_path / "run")
    budget = run.trace.meta["budget"]
    assert budget["max_trace_bytes"] == limit and budget["bounds"] == "run directory"
    assert budget["adapted"] == {"activation_dtype": "float16"}
    assert run.config.activation_dtype == "float16" and run.trace.status == "complete"
    assert run.trace.meta["config"]["activation_dtype"] == "float16"
    assert directory_bytes(tmp_path / "run") <= limit
    assert nt.load_trace(tmp_path / "run").meta["budget"]["adapted"] == budget["adapted"]


def test_train_stops_recording_when_the_run_directory_outgrows_the_budget(tmp_path):
    """Something else fills the run directory (or the estimate was short): the tracer measures
    the directory before every recorded epoch and stops before one that would not fit."""
    config = nt.TrainConfig(dataset="digits", hidden_sizes=(64,), probe_size=200, epochs=8)
    limit = estimate_run(config).rundir_bytes + 50_000
    run_dir = tmp_path / "run"

    def grow(trace):
        if trace.epochs[-1] == 3:  # 400 kB that the estimate did not foresee
            (run_dir / "stray.bin").write_bytes(b"\0" * 400_000)

    with pytest.warns(TraceBudgetWarning, match="recording stopped before epoch"):
        run = nt.train(config.replace(max_trace_bytes=limit), out=run_dir, on_trace=grow)
    trace = run.trace
    assert trace.status == "stopped" and trace.meta["stopped_by"] == "max_trace_bytes"
    stopped = trace.meta["budget"]["recording_stopped"]
    assert 3 < stopped["epoch"] <= 8 and trace.epochs[-1] == stopped["epoch"] - 1
    assert "max_trace_bytes" in trace.meta["status_message"]
    assert directory_bytes(run_dir) <= limit
    reloaded = nt.load_trace(run_dir)
    assert reloaded.status == "stopped" and reloaded.epochs == trace.epochs


def _user_loop(model, x, y, epochs):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(1, epochs + 1):
        model.start_epoch(epoch)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.end_epoch(epoch, train_loss=loss.item())
    return model.finish()


def test_traceable_nn_stops_recording_at_its_budget_and_training_goes_on(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(256, 20), torch.randint(0, 4, (256,))

    def make(**kw):
        torch.manual_seed(1)
        net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))
        return TraceableNN(net, probe=(x, y), **kw), net

    unlimited, _ = make()
    full = _user_loop(unlimited, x, y, 10)
    nt.save_trace(full, tmp_path / "full.nntrace")
    limit = os.path.getsize(tmp_path / "full.nntrace") // 2
    model, _ = make(max_trace_bytes=limit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trace = _user_loop(model, x, y, 10)
    budget_warnings = [w for w in caught if issubclass(w.category, TraceBudgetWarning)]
    assert len(budget_warnings) == 1
    stopped = model.recording_stopped
    assert stopped is not None and trace.epochs == list(range(stopped))
    assert trace.meta["budget"]["recording_stopped"]["epoch"] == stopped
    assert trace.meta["budget"]["max_trace_bytes"] == limit
    nt.save_trace(trace, tmp_path / "limited.nntrace")
    assert os.path.getsize(tmp_path / "limited.nntrace") <= limit
    # training went on: the final weights are those of the unlimited run (same seed, same data)
    for key, value in full.final_weights.items():
        assert torch.equal(torch.from_numpy(trace.final_weights[key]), torch.from_numpy(value))
