"""A step-axis trace end to end: train a tiny network on a step schedule, save it as a zip and
as a run directory, load both (the run directory lazily, through DuckDB), and check the
``S_`` signatures and every value against a reference computed by hand (numpy) from the
weights of an untraced copy trained with the same updates."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nn_tracing import TraceableNN, TraceFormatError, load_trace, save_trace
from nn_tracing.timeaxis import time_key, time_title, time_word, using_axis
from nn_tracing.trace import format_signature, parse_signature, signature_axis

STEPS_PER_EPOCH, EPOCHS = 4, 3
SCHEDULE = "log:5"
#: log-spaced below 5 (1, 2, 4), every 5th (5, 10), and the last (12) recorded by finish()
EXPECTED = [0, 1, 2, 4, 5, 10, 12]


def _data() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    x = torch.randn(16, 3)
    y = (x[:, 0] > 0).long()
    return net, x, y


def _weights(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().astype(np.float64).copy() for k, v in module.state_dict().items()}


def _train(tmp_path: Path):
    """The traced run and, from an untraced copy given the same updates, the weights after
    every step."""
    net, x, y = _data()
    reference = copy.deepcopy(net)
    traced = TraceableNN(net, probe=(x, y), step_intervals=SCHEDULE, log_dir=tmp_path / "run")
    opt = torch.optim.SGD(traced.parameters(), lr=0.5)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.5)
    snapshots = {0: _weights(reference)}
    step = 0
    for epoch in range(1, EPOCHS + 1):
        traced.start_epoch(epoch)
        for batch in range(STEPS_PER_EPOCH):
            xb, yb = x[batch * 4 : batch * 4 + 4], y[batch * 4 : batch * 4 + 4]
            for model, optimizer in ((traced, opt), (reference, ref_opt)):
                loss = F.cross_entropy(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            traced.step()
            step += 1
            snapshots[step] = _weights(reference)
        traced.end_epoch(epoch, train_loss=loss.item())
    return traced.finish(), snapshots, x.numpy().astype(np.float64)


def _reference(weights: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """By hand: the hidden layer's probe activations, its act_mean and w_norm per neuron."""
    hidden = np.maximum(x @ weights["0.weight"].T + weights["0.bias"], 0)
    logits = hidden @ weights["2.weight"].T + weights["2.bias"]
    return {
        "hidden": hidden,
        "logits": logits,
        "act_mean": hidden.mean(0),
        "w_norm": np.linalg.norm(weights["0.weight"], axis=1),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("steps")
    trace, snapshots, x = _train(tmp_path)
    save_trace(trace, tmp_path / "run.nntrace")
    return tmp_path, trace, snapshots, x


def _loaded(trained, which: str):
    tmp_path, trace, _, _ = trained
    if which == "memory":
        return trace
    if which == "zip":
        return load_trace(tmp_path / "run.nntrace")
    return load_trace(tmp_path / "run")  # the run directory, read lazily (DuckDB)


@pytest.mark.parametrize("which", ["memory", "zip", "run directory"])
def test_a_step_trace_records_its_schedule_and_says_its_axis(trained, which: str) -> None:
    trace = _loaded(trained, which)
    assert trace.axis == "step"
    assert trace.meta["axis"] == "step"
    assert trace.meta["step_intervals"] == SCHEDULE
    assert trace.epochs == EXPECTED
    assert trace.keys() == [f"S_{s}" for s in EXPECTED]
    assert trace.signature(10, 4) == "S_10/L_0/n_4"
    if which == "run directory":
        assert trace.query is not None  # questions over every step go to DuckDB


@pytest.mark.parametrize("which", ["memory", "zip", "run directory"])
def test_values_at_the_recorded_steps_equal_the_hand_computed_reference(
    trained, which: str
) -> None:
    _, _, snapshots, x = trained
    trace = _loaded(trained, which)
    first = trace.layer("0").first_id
    act_mean = trace.layer_metric("act_mean", "0")
    w_norm = trace.metric("w_norm")[:, first : first + 5]
    for row, step in enumerate(EXPECTED):
        ref = _reference(snapshots[step], x)
        np.testing.assert_allclose(act_mean[row], ref["act_mean"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(w_norm[row], ref["w_norm"], rtol=1e-5, atol=1e-6)
        acts = trace.probe_activations(step)
        np.testing.assert_allclose(acts[:, first : first + 5], ref["hidden"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(trace.logits(step), ref["logits"], rtol=1e-5, atol=1e-5)
        for i in range(5):
            neuron = trace.neuron(f"S_{step}/L_0/n_{first + i}")
            assert neuron.signature == f"S_{step}/L_0/n_{first + i}"
            assert neuron.act_mean == pytest.approx(ref["act_mean"][i], rel=1e-5, abs=1e-6)
            assert trace[f"S_{step}"]["L_0"][f"n_{first + i}"].w_norm == pytest.approx(
                ref["w_norm"][i], rel=1e-5
            )
    history = trace.neuron_history(first)
    assert history["epoch"].tolist() == EXPECTED  # the time column holds steps
    np.testing.assert_allclose(
        history["act_mean"],
        [_reference(snapshots[s], x)["act_mean"][0] for s in EXPECTED],
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("which", ["memory", "zip", "run directory"])
def test_the_history_is_per_step(trained, which: str) -> None:
    trace = _loaded(trained, which)
    history = trace.history.set_index("epoch")
    # each epoch's train_loss is on the step it ended on; recorded steps carry the probe loss
    assert history["train_loss"].dropna().index.tolist() == [4, 8, 12]
    assert history.loc[history["recorded"]].index.tolist() == EXPECTED
    assert history.loc[EXPECTED, "probe_loss"].notna().all()


@pytest.mark.parametrize("which", ["memory", "zip", "run directory"])
def test_an_epoch_signature_on_a_step_trace_is_a_clear_error(trained, which: str) -> None:
    trace = _loaded(trained, which)
    with pytest.raises(KeyError, match="'E_4' names an epoch, but this trace counts steps"):
        trace["E_4"]
    with pytest.raises(KeyError, match="names an epoch, but this trace counts steps: use S_"):
        trace.neuron("E_4/L_0/n_3")
    with pytest.raises(KeyError, match="step 3 was not recorded; recorded steps: S_0, S_1"):
        trace["S_3"]
    assert "S_4" in trace and "E_4" not in trace


def test_an_epoch_trace_refuses_step_signatures(tiny_trace_file: Path) -> None:
    trace = load_trace(tiny_trace_file)
    assert trace.axis == "epoch"
    assert trace.keys()[0] == "E_0"
    with pytest.raises(KeyError, match="'S_2' names a step, but this trace counts epochs"):
        trace["S_2"]
    assert trace.neuron(trace.signature(2, 3)).signature == "E_2/L_hidden_1/n_3"


def test_a_trace_without_an_axis_is_an_epoch_trace_and_a_bad_axis_is_refused(
    trained, tmp_path: Path
) -> None:
    _, trace, _, _ = trained
    trace.meta.pop("axis")
    try:
        save_trace(trace, tmp_path / "old.nntrace")
    finally:
        trace.meta["axis"] = "step"
    assert load_trace(tmp_path / "old.nntrace").axis == "epoch"
    run = trained[0] / "run"
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in run.rglob("*"):
        target = bad / path.relative_to(run)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.write_bytes(path.read_bytes())
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["meta"]["axis"] = "hour"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TraceFormatError, match="axis 'hour'; a trace counts time in epoch or"):
        load_trace(bad)


def test_signatures_and_labels_come_from_one_place() -> None:
    assert parse_signature("S_1200/L_hidden_1/n_20") == (1200, "hidden_1", 20)
    assert parse_signature("E_30/L_hidden_1/n_20", "epoch") == (30, "hidden_1", 20)
    assert signature_axis("S_1/L_x/n_2") == "step"
    with pytest.raises(KeyError, match="names a step, but this trace counts epochs"):
        parse_signature("S_1/L_x/n_2", "epoch")
    with pytest.raises(KeyError, match="not a neuron signature"):
        parse_signature("T_1/L_x/n_2")
    assert format_signature(3, "hidden_1", 4) == "E_3/L_hidden_1/n_4"
    with using_axis("step"):
        assert format_signature(3, "hidden_1", 4) == "S_3/L_hidden_1/n_4"
        assert (time_key(7), time_word(), time_title(plural=True)) == ("S_7", "step", "Steps")
    assert time_key(7) == "E_7"


def test_step_tracing_refuses_what_cannot_work() -> None:
    net, x, y = _data()
    with pytest.raises(ValueError, match="needs a probe"):
        TraceableNN(net, example_input=x, step_intervals=5)
    with pytest.raises(ValueError, match="epoch_intervals= or step_intervals=, not both"):
        TraceableNN(net, probe=(x, y), epoch_intervals=2, step_intervals=5)
    with pytest.raises(ValueError, match="lists step 50 but num_steps=10"):
        TraceableNN(net, probe=(x, y), step_intervals=[5, 50], num_steps=10)
    epochs = TraceableNN(net, probe=(x, y))
    with pytest.raises(RuntimeError, match="give step_intervals= to record on steps"):
        epochs.step()
    epochs.remove_hooks()
    steps = TraceableNN(net, probe=(x, y), step_intervals=5)
    steps.start_epoch(1)
    with pytest.raises(ValueError, match="call step\\(\\) after every optimizer step"):
        steps.end_epoch(1)
    steps.remove_hooks()
