"""The neuron the Neurons page opens on without a link: on a real run whose first hidden neuron
(n_2) is planted dead, the page opens on the non-dormant neuron of the first hidden layer with
the highest contribution utility at the last epoch — computed here from the kept probe
activations and the final weights with loops of our own — and says why; a link's neuron wins."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from apptest_support import assert_healthy, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import MLP, NetworkTrace, TraceableNN, TrainConfig, save_trace
from nn_tracing.data import prepare_data
from nn_tracing.ui import state
from nn_tracing.views.neurons import first_neuron

PAGE = "pages/neurons.py"
DATA = TrainConfig(dataset="moons", n_samples=300, probe_size=64, seed=0)
DEAD = 2  # global id of hidden_1's first neuron (inputs are n_0 and n_1)


def _planted_dead() -> NetworkTrace:
    """A tiny ReLU MLP trained in our own loop, hidden_1's first neuron dead throughout."""
    data = prepare_data(DATA)
    torch.manual_seed(0)
    net = MLP(2, (8, 8), 2, "relu")
    probe = (torch.from_numpy(data.X_probe), torch.from_numpy(data.y_probe))
    model = TraceableNN(net, probe=probe, loss_fn=F.cross_entropy, keep_weights=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    for epoch in range(1, 5):
        model.start_epoch(epoch)
        with torch.no_grad():
            net.hidden_1.bias[DEAD - 2] = -100.0  # never active on any input
        for start in range(0, len(x), 64):
            loss = F.cross_entropy(model(x[start : start + 64]), y[start : start + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.end_epoch(epoch, train_loss=loss.item())
    return model.finish()


@pytest.fixture(scope="module")
def planted() -> NetworkTrace:
    return _planted_dead()


def _reference(trace: NetworkTrace) -> int:
    """The stated rule, written out: mean |h| on the probe at the last epoch, dormant score
    against the layer's average (τ = 0.025), utility = mean |h| × Σ |outgoing weights|."""
    epoch = trace.epochs[-1]
    acts = trace.probe_activations(epoch).astype(np.float64)
    weights = trace.weights(epoch)
    hidden_1, hidden_2 = trace.layers[1], trace.layers[2]
    outgoing = np.asarray(weights[hidden_2.weight_key], dtype=np.float64)  # (out, in)
    best, best_utility = None, -1.0
    ids = range(hidden_1.first_id, hidden_1.last_id + 1)
    layer_mean = np.mean([np.abs(acts[:, i]).mean() for i in ids])
    for column, i in enumerate(ids):
        mean_abs = np.abs(acts[:, i]).mean()
        if mean_abs / layer_mean <= 0.025:
            continue
        utility = mean_abs * np.abs(outgoing[:, column]).sum()
        if utility > best_utility:
            best, best_utility = i, utility
    assert best is not None
    return best


def test_the_first_neuron_is_the_liveliest_not_a_dead_one(planted: NetworkTrace) -> None:
    last = planted.epochs[-1]
    acts = planted.probe_activations(last)
    assert (acts[:, DEAD] == 0).all()  # the planted neuron is dead on the whole probe
    neuron, why = first_neuron(planted)
    assert neuron == _reference(planted) != DEAD
    assert why is not None and f"n_{neuron}" in why and "contribution utility" in why


def _page(app: Callable[[], AppTest], params: dict[str, str]) -> AppTest:
    at = app()
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    return at.switch_page(PAGE).run()


def test_the_page_opens_on_it_and_says_why_and_a_link_wins(
    app: Callable[[], AppTest], runs_dir: Path, planted: NetworkTrace
) -> None:
    save_trace(planted, runs_dir / "planted.nntrace")
    expected = _reference(planted)
    at = _page(app, {"trace": "planted"})
    assert_healthy(at)
    last = planted.epochs[-1]
    assert at.session_state[state.NEURON_PICK] == f"E_{last}/L_hidden_1/n_{expected}"
    captions = texts(at.caption)
    assert f"Opened on **n_{expected}**" in captions and "not dormant" in captions
    at.run()  # a rerun (the neuron now in the URL) keeps saying why
    assert f"Opened on **n_{expected}**" in texts(at.caption)

    linked = _page(app, {"trace": "planted", "neuron": f"E_{last}/L_hidden_1/n_{DEAD}"})
    assert_healthy(linked)
    assert linked.session_state[state.NEURON_PICK] == f"E_{last}/L_hidden_1/n_{DEAD}"
    assert "Opened on" not in texts(linked.caption)
