"""Recycling dormant neurons (ReDo; nn_tracing.analysis.intervention.recycling) on a real network
trained with a learning rate high enough to silence most of a layer, checked against a numpy
forward pass written out from the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nn_tracing import NetworkTrace, TrainConfig, train
from nn_tracing.analysis.intervention import recycle_dormant
from nn_tracing.analysis.neuron_model import NeuronModel

#: digits (64 inputs) with lr 0.3: most of hidden_2 dies within two epochs (deterministic).
CONFIG = TrainConfig(
    dataset="digits", hidden_sizes=(16, 16), epochs=2, probe_size=128, seed=0, lr=0.3
)


@pytest.fixture(scope="module")
def trace() -> NetworkTrace:
    run = train(CONFIG)
    assert run.trace is not None
    return run.trace


def _numpy_forward(state: dict[str, np.ndarray], x: np.ndarray) -> tuple[list, np.ndarray]:
    """Hidden activations (ReLU) and logits of the MLP, in float64."""
    h, hidden = x.astype(np.float64), []
    for name in ("hidden_1", "hidden_2"):
        h = np.maximum(h @ state[f"{name}.weight"].T + state[f"{name}.bias"], 0.0)
        hidden.append(h)
    return hidden, h @ state["output.weight"].T + state["output.bias"]


def _numpy_dormant(h: np.ndarray, tau: float) -> np.ndarray:
    mean_abs = np.abs(h).mean(axis=0)
    average = mean_abs.mean()
    scores = mean_abs / average if average > 0 else np.zeros_like(mean_abs)
    return np.flatnonzero(scores <= tau)


def _state(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().double().numpy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("tau", [0.0, 0.1])
def test_recycling_wakes_dormant_neurons(trace: NetworkTrace, tau: float) -> None:
    model = NeuronModel.from_trace(trace)
    x, y = trace.probe
    before_state = _state(model.plain_copy())
    hidden, logits = _numpy_forward(before_state, x)
    expected = {name: _numpy_dormant(h, tau) for name, h in zip(("hidden_1", "hidden_2"), hidden)}
    assert len(expected["hidden_2"]) >= 8  # the high learning rate silenced most of the layer

    result = recycle_dormant(model, x, y, tau=tau, seed=7)

    first = {"hidden_1": 2 + 64 - 2, "hidden_2": 64 + 16}  # global id of each layer's n_0
    for name, rows in expected.items():
        assert result.recycled[name] == [first[name] + int(r) for r in rows]
        assert result.dormant_before[name] == len(rows)
    assert np.allclose(result.logits_before, logits, atol=1e-4)
    after_state = _state(result.module)
    after_hidden, after_logits = _numpy_forward(after_state, x)
    # at the moment of recycling the network computes the same function on the probe …
    assert np.allclose(after_logits, logits, atol=1e-4)
    assert np.allclose(result.logits_after, after_logits, atol=1e-4)
    # … and almost no neuron is dormant any more
    for name, h in zip(("hidden_1", "hidden_2"), after_hidden, strict=True):
        assert result.dormant_after[name] == len(_numpy_dormant(h, tau))
    assert result.fraction("after") <= 0.05 < result.fraction("before")
    # the model the caller passed in is unchanged
    assert all(np.array_equal(v, before_state[k]) for k, v in _state(model.plain_copy()).items())


def test_incoming_weights_are_the_layers_seeded_initialiser_and_outgoing_are_zero(
    trace: NetworkTrace,
) -> None:
    model = NeuronModel.from_trace(trace)
    x, y = trace.probe
    before = _state(model.plain_copy())
    result = recycle_dormant(model, x, y, tau=0.0, seed=7)
    after = _state(result.module)
    rows = np.asarray(result.recycled["hidden_2"]) - (64 + 16)
    others = np.setdiff1d(np.arange(16), rows)
    with torch.random.fork_rng():
        torch.manual_seed(7 + 2)  # hidden_2 is the second hidden layer
        fresh = nn.Linear(16, 16)
    assert np.array_equal(
        after["hidden_2.weight"][rows], fresh.weight.detach().double().numpy()[rows]
    )
    assert np.array_equal(after["hidden_2.bias"][rows], fresh.bias.detach().double().numpy()[rows])
    assert np.array_equal(after["hidden_2.weight"][others], before["hidden_2.weight"][others])
    assert (after["output.weight"][:, rows] == 0).all()
    assert np.array_equal(after["output.weight"][:, others], before["output.weight"][:, others])
    again = recycle_dormant(model, x, y, tau=0.0, seed=7)
    assert all(np.array_equal(v, after[k]) for k, v in _state(again.module).items())


def test_a_negative_tau_is_refused(trace: NetworkTrace) -> None:
    model = NeuronModel.from_trace(trace)
    with pytest.raises(ValueError, match="tau"):
        recycle_dormant(model, trace.probe[0], tau=-0.1)
