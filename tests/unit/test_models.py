"""Rebuilding a traced model: the built-in MLP from its config, a custom one once attached."""

import numpy as np
import pytest
import torch
from torch import nn

import nn_tracing as nt
from nn_tracing import TraceableNN


@pytest.fixture(scope="module")
def kept():
    cfg = nt.TrainConfig(
        dataset="blobs",
        hidden_sizes=(6, 5),
        epochs=3,
        n_samples=300,
        probe_size=40,
        keep_weights=True,
        activation="tanh",
    )
    return nt.train(cfg).trace


def test_the_rebuilt_model_reproduces_the_recorded_logits_at_every_epoch(kept):
    x = torch.from_numpy(kept.probe[0])
    for epoch in kept.epochs:
        model = nt.model_from_trace(kept, epoch)
        assert not model.training
        with torch.no_grad():
            logits = model(x).numpy()
        np.testing.assert_allclose(logits, kept.logits(epoch), rtol=1e-5, atol=1e-6)


def test_activations_match_the_probe_activations(kept):
    model = TraceableNN(nt.model_from_trace(kept, 2), example_input=torch.zeros(2, 2))
    acts = model.activations(torch.from_numpy(kept.probe[0])).numpy()
    np.testing.assert_allclose(acts, kept.probe_activations(2), rtol=1e-5, atol=1e-6)


def test_without_kept_weights_only_the_final_model_exists():
    trace = nt.train(nt.TrainConfig(dataset="iris", hidden_sizes=(4,), epochs=2)).trace
    final = nt.model_from_trace(trace)
    assert torch.equal(
        final.hidden_1.weight, torch.from_numpy(trace.final_weights["hidden_1.weight"])
    )
    assert nt.model_from_trace(trace, 2) is not None
    with pytest.raises(ValueError, match="keep_weights"):
        nt.model_from_trace(trace, 1)


def test_custom_models_must_be_attached():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    model = TraceableNN(net, probe=(x, y))
    trace = model.finish()
    with pytest.raises(ValueError, match="attach_model"):
        nt.model_from_trace(trace)
    with pytest.raises(ValueError, match="does not match"):
        nt.attach_model(trace, nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)))
    nt.attach_model(trace, nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    rebuilt = nt.model_from_trace(trace)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))
