"""The Breadcrumbs page's recycling view (nn_tracing.views.recycling): its downloads are the
recycled network, which computes the same outputs on the probe as the trace's at τ = 0."""

from __future__ import annotations

import json

import numpy as np
import torch
from safetensors.torch import load

from nn_tracing import MLP, TrainConfig, train
from nn_tracing.analysis.neuron_model import NeuronModel
from nn_tracing.views.breadcrumbs import FINAL
from nn_tracing.views.recycling import recycle, recycling_metrics, recycling_sentence


def test_the_recycled_model_downloads_and_computes_the_same_outputs() -> None:
    config = TrainConfig(
        dataset="moons",
        hidden_sizes=(8, 8),
        epochs=4,
        n_samples=300,
        probe_size=64,
        seed=0,
        lr=0.5,
    )
    trace = train(config).trace
    done = recycle(trace, FINAL, 0.0)
    described = json.loads(done.config)
    assert described["recycled"] == done.recycled and described["tau"] == 0.0
    assert described["train_config"]["hidden_sizes"] == [8, 8]
    net = MLP(2, (8, 8), 2, "relu")
    net.load_state_dict(load(done.weights))
    x = torch.as_tensor(trace.probe[0])
    with torch.no_grad():
        recycled = net(x).numpy()
    original = NeuronModel.from_trace(trace).logits(x).numpy()
    assert np.allclose(recycled, original, atol=1e-5)
    final = trace.final_weights
    rows = [i - 2 for i in done.recycled["hidden_1"]]
    assert rows and not np.array_equal(
        net.hidden_1.weight.detach().numpy()[rows], final["hidden_1.weight"][rows]
    )
    assert (net.hidden_2.weight.detach().numpy()[:, rows] == 0).all()
    labels = [m.label for m in recycling_metrics(done)]
    assert labels == [
        "τ-dormant (τ = 0)",
        "Neurons recycled",
        "Largest output change",
        "Probe accuracy",
    ]
    assert "unchanged" in recycling_sentence(done)
