"""train(): traced runs equal untraced ones, determinism, divergence, stop, progress."""

import threading

import numpy as np
import pandas as pd
import pytest
import torch

import nn_tracing as nt
from nn_tracing.stopping import StopRequest

TINY = dict(hidden_sizes=(8, 8), epochs=4, n_samples=300, probe_size=64, batch_size=32)


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
        ),
    ],
)
def test_traced_and_untraced_runs_end_with_bitwise_identical_weights(device):
    cfg = nt.TrainConfig(
        dataset="moons", dropout=0.2, drop_batches=False, keep_weights=True, device=device, **TINY
    )
    plain = nt.train(cfg, traced=False)
    traced = nt.train(cfg)
    assert plain.trace is None
    a, b = plain.model.state_dict(), traced.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_gives_an_identical_trace():
    cfg = nt.TrainConfig(dataset="iris", epoch_intervals=2, **TINY)
    one, two = nt.train(cfg).trace, nt.train(cfg).trace
    pd.testing.assert_frame_equal(one.frame, two.frame)
    cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "probe_loss"]
    pd.testing.assert_frame_equal(one.history[cols], two.history[cols])
    for epoch in one.epochs:
        for key, value in one.epoch_tensors(epoch).items():
            assert np.array_equal(value, two.epoch_tensors(epoch)[key]), (epoch, key)
    other = nt.train(cfg.replace(seed=1)).trace
    assert not np.array_equal(one.metrics_at(4), other.metrics_at(4))


def test_multiclass_digits_records_every_metric():
    cfg = nt.TrainConfig(dataset="digits", hidden_sizes=(16,), epochs=2, probe_size=100)
    trace = nt.train(cfg).trace
    assert trace.neural_index == {"input": (0, 63), "hidden_1": (64, 79), "output": (80, 89)}
    assert trace.logits(2).shape == (100, 10)
    assert trace.meta["dataset"]["image_shape"] == [8, 8]
    hidden = trace.frame.xs("hidden_1", level="layer")
    assert hidden.notna().loc[2].all().all()  # every column filled for hidden neurons at E_2
    assert trace.history["val_acc"].iloc[-1] > 0.5


def test_a_huge_learning_rate_diverges_and_keeps_the_trace(tmp_path):
    cfg = nt.TrainConfig(
        dataset="moons",
        optimizer="sgd",
        lr=1e3,
        activation="leaky_relu",
        hidden_sizes=(8, 8),
        epochs=30,
        n_samples=300,
        drop_batches=False,
    )
    run = nt.train(cfg)
    trace = run.trace
    assert trace.status == "diverged"
    epoch = trace.meta["diverged_epoch"]
    assert f"epoch {epoch}" in trace.meta["status_message"]
    assert 0 in trace.epochs and max(trace.epochs) < epoch
    assert trace.steps is not None and trace.steps["epoch"].max() == epoch  # kept up to there
    path = nt.save_trace(trace, tmp_path / "diverged.nntrace")
    again = nt.load_trace(path)
    assert again.status == "diverged"
    pd.testing.assert_frame_equal(again.frame, trace.frame)


def test_a_stop_request_ends_after_the_current_batch_and_records_the_partial_epoch(tmp_path):
    stop = threading.Event()
    steps = []

    def progress(p: nt.Progress) -> None:
        steps.append(p)
        if p.epoch == 2 and not p.epoch_done:
            stop.set()

    cfg = nt.TrainConfig(
        dataset="moons", epoch_intervals=-1, hidden_sizes=(8,), epochs=50, n_samples=2000
    )
    run = nt.train(cfg, progress=progress, stop=stop, progress_every=0.0)
    trace = run.trace
    assert trace.status == "stopped"
    assert trace.meta["stopped_epoch"] == 2 == trace.meta["partial_epoch"]
    assert trace.epochs == [0, 2]
    assert steps[-1].status == "stopped"
    assert nt.load_trace(nt.save_trace(trace, tmp_path / "s.nntrace")).status == "stopped"


def test_a_stop_request_records_where_it_came_and_where_training_stopped():
    """A StopRequest set after batch 5 of epoch 2 (from the progress report that follows it):
    training stops after the next batch, and the trace names both places."""
    stop = StopRequest()

    def progress(p: nt.Progress) -> None:
        if (p.epoch, p.step) == (2, 5) and not p.epoch_done:
            stop.set()

    cfg = nt.TrainConfig(
        dataset="moons", epoch_intervals=-1, hidden_sizes=(8,), epochs=50, n_samples=2000
    )
    trace = nt.train(cfg, progress=progress, stop=stop, progress_every=0.0).trace
    assert stop.requested_at == (2, 5)
    assert trace.meta["stop_requested_at"] == {"epoch": 2, "step": 5}
    assert (trace.meta["stopped_epoch"], trace.meta["stopped_step"]) == (2, 6)
    assert trace.meta["status_message"] == "stopped by the user at epoch 2, step 6"
    assert trace.status == "stopped" and trace.epochs == [0, 2]


def test_progress_reports_every_epoch_and_a_final_status():
    seen = []
    nt.train(nt.TrainConfig(dataset="iris", **TINY), progress=seen.append)
    done = [p.epoch for p in seen if p.epoch_done and p.status == "running"]
    assert done == [1, 2, 3, 4]
    assert seen[-1].status == "complete" and seen[-1].fraction == 1.0 and seen[-1].eta == 0.0


def test_history_columns_and_recorded_flags():
    trace = nt.train(nt.TrainConfig(dataset="wine", epoch_intervals=[1, 3], **TINY)).trace
    history = trace.history
    assert list(history["epoch"]) == [0, 1, 2, 3, 4]
    assert list(history["recorded"]) == [True, True, False, True, False]
    assert history[["train_loss", "val_loss", "val_acc", "lr"]].notna().all().all()
    assert history.loc[history["recorded"], "probe_acc"].notna().all()
    assert trace.meta["final_weights_epoch"] == 4
    assert trace.weights(3) is None and trace.weights(1) is None


@pytest.mark.parametrize("probe_size", [20, 64], ids=["probe within val", "probe = val"])
def test_validation_shares_the_probe_forward_and_equals_a_numpy_evaluation(monkeypatch, probe_size):
    """On a recorded epoch the probe's rows of the validation split are not run again (their
    loss and accuracy come from the record), and the history's val_loss / val_acc still equal
    a float64 numpy forward over every validation row (dropout off, as in eval mode). Wine's
    validation split is 44 rows: a probe of 64 is all of it."""
    from nn_tracing import training

    cfg = nt.TrainConfig(
        dataset="wine", dropout=0.2, epoch_intervals=[1, 3], keep_weights=True, **TINY
    ).replace(probe_size=probe_size)
    rows_run: list[int] = []
    evaluate_sums = training._evaluate_sums

    def counted(model, X, y):
        rows_run.append(int(X.shape[0]))
        return evaluate_sums(model, X, y)

    monkeypatch.setattr(training, "_evaluate_sums", counted)
    trace = nt.train(cfg).trace
    data = nt.prepare_data(cfg)
    n_val, n_probe = data.X_val.shape[0], data.X_probe.shape[0]
    assert n_probe == min(probe_size, n_val)
    n0 = min(data.X_train.shape[0], training._E0_TRAIN_ROWS)
    # E_0: the train share, then the validation; epochs 1-4: the validation
    shared = [n_val - n_probe] if n_probe < n_val else []  # nothing left to run
    expected = [n0, *shared, *shared, n_val, *shared, n_val]
    assert rows_run == expected

    history = trace.history.set_index("epoch")
    X, y = data.X_val.astype(np.float64), data.y_val
    for epoch in (0, 1, 3):
        weights = trace.weights(epoch)
        h = X
        for name in ("hidden_1", "hidden_2"):
            h = np.maximum(h @ weights[f"{name}.weight"].T + weights[f"{name}.bias"], 0.0)
        logits = h @ weights["output.weight"].T + weights["output.bias"]
        shifted = logits - logits.max(1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        loss = -log_p[np.arange(len(y)), y].mean()
        acc = (logits.argmax(1) == y).mean()
        assert history.loc[epoch, "val_loss"] == pytest.approx(loss, rel=1e-5)
        assert history.loc[epoch, "val_acc"] == pytest.approx(acc, abs=1e-12)
