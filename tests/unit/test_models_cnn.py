"""The built-in CNN (``TrainConfig(model="cnn")``): config checks, digits as images, layer
names, the trace rebuilt (its outputs equal the stored logits), a lying config refused before
anything is built, and the estimate's counts against the trained model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nn_tracing import TraceFormatError, TrainConfig, load_trace, model_from_trace, train
from nn_tracing.analysis.neuron_model import NeuronModel
from nn_tracing.estimate import estimate_run
from nn_tracing.models_cnn import CNN, cnn_state_shapes
from nn_tracing.trace import NetworkTrace
from nn_tracing.trace_budget import plan_budget

CONFIG = TrainConfig(
    dataset="digits",
    model="cnn",
    model_kwargs={"channels": [3, 5]},
    epochs=2,
    probe_size=40,
    keep_weights=True,
    seed=1,
)


@pytest.fixture(scope="module")
def cnn_trace() -> NetworkTrace:
    run = train(CONFIG)
    assert run.trace is not None
    return run.trace


def test_cnn_config_is_validated() -> None:
    with pytest.raises(ValueError, match="model='cnn': the built-in CNN needs an image dataset"):
        TrainConfig(dataset="moons", model="cnn")
    for kwargs, message in [
        ({"channels": []}, "1 to 4"),
        ({"channels": [8, 0]}, "from 1 to 512"),
        ({"kernel_size": 4}, "odd"),
        ({"pool": 0}, "pool"),
        ({"depth": 3}, "no option 'depth'"),
    ]:
        with pytest.raises(ValueError, match=message):
            TrainConfig(dataset="digits", model="cnn", model_kwargs=kwargs)
    with pytest.raises(ValueError, match="unknown layer 'hidden_1'; choose among conv_1, conv_2"):
        TrainConfig(dataset="digits", model="cnn", traced_layers=("hidden_1",))
    assert CONFIG.architecture == "CNN 3-5 k3 relu"
    assert TrainConfig.from_dict(CONFIG.to_dict()) == CONFIG


def test_the_cnn_sees_digits_as_images_and_names_its_layers(cnn_trace: NetworkTrace) -> None:
    assert cnn_trace.layer_names() == ["input", "conv_1", "conv_2", "output"]
    assert [info.n_neurons for info in cnn_trace.layers] == [1, 3, 5, 10]
    assert cnn_trace.probe[0].shape == (40, 1, 8, 8)
    assert cnn_trace.meta["model"]["name"] == "cnn"
    assert cnn_trace.meta["model"]["input_shape"] == [1, 8, 8]
    assert cnn_trace.meta["model"]["options"] == {"channels": [3, 5], "kernel_size": 3, "pool": 2}
    neuron = cnn_trace.neuron("E_2/L_conv_2/n_6")  # ids: input n_0, conv_1 n_1–n_3, conv_2 n_4–
    assert neuron.layer == "conv_2"
    # a channel's activation is its map averaged over positions, after the ReLU
    model = model_from_trace(cnn_trace, 2)
    with torch.no_grad():
        maps = model.act_2(
            model.conv_2(model.act_1(model.conv_1(torch.as_tensor(cnn_trace.probe[0]))))
        )
    np.testing.assert_allclose(
        cnn_trace.probe_activations(2)[:, 6], maps[:, 2].mean(dim=(1, 2)).numpy(), atol=1e-5
    )


def test_the_rebuilt_cnn_gives_the_stored_logits_at_every_epoch(cnn_trace: NetworkTrace) -> None:
    x = torch.as_tensor(cnn_trace.probe[0])
    for epoch in cnn_trace.epochs:
        model = model_from_trace(cnn_trace, epoch)
        assert isinstance(model, CNN)
        with torch.no_grad():
            np.testing.assert_allclose(
                model(x).numpy(), cnn_trace.logits(epoch), rtol=1e-5, atol=1e-5
            )
    neuron_model = NeuronModel.from_trace(cnn_trace)
    np.testing.assert_allclose(
        neuron_model.activations(x).numpy(),
        cnn_trace.probe_activations(cnn_trace.epochs[-1]),
        rtol=1e-5,
        atol=1e-5,
    )


def test_a_lying_cnn_config_is_refused_before_anything_is_built(cnn_trace: NetworkTrace) -> None:
    from nn_tracing import trace_to_bytes

    trace = load_trace(trace_to_bytes(cnn_trace))
    trace.meta["config"]["model_kwargs"] = {"channels": [512, 512, 512, 512]}
    with pytest.raises(TraceFormatError, match=r"CNN 512-512-512-512 k3 relu .*conv_1.weight"):
        model_from_trace(trace)
    trace.meta["config"]["model_kwargs"] = {"channels": [3, 5]}
    trace.meta["model"]["input_shape"] = [1, 8, 9]
    with pytest.raises(TraceFormatError, match="not the shape of its probe samples"):
        model_from_trace(trace)


def test_the_estimate_counts_the_cnn(cnn_trace: NetworkTrace) -> None:
    estimate = estimate_run(CONFIG)
    assert estimate.n_neurons == cnn_trace.n_neurons == 19
    assert estimate.n_parameters == cnn_trace.meta["model"]["n_parameters"]
    shapes = cnn_state_shapes((1, 8, 8), 10, CONFIG.model_kwargs)
    assert {k: tuple(v.shape) for k, v in cnn_trace.final_weights.items()} == shapes
    wider = estimate_run(CONFIG.replace(model_kwargs={"channels": [30, 50]}))
    assert wider.trace_bytes > estimate.trace_bytes and wider.peak_bytes > estimate.peak_bytes
    assert plan_budget(CONFIG).estimate.n_neurons == 19


def test_a_cnn_traces_only_the_layers_asked_for() -> None:
    run = train(CONFIG.replace(traced_layers=("conv_2",), epochs=1, keep_weights=False))
    assert run.trace is not None
    assert run.trace.layer_names() == ["input", "conv_2", "output"]
    assert estimate_run(run.config).n_neurons == run.trace.n_neurons == 16
    x = torch.as_tensor(run.trace.probe[0])
    with torch.no_grad():
        np.testing.assert_allclose(
            model_from_trace(run.trace)(x).numpy(), run.trace.logits(1), rtol=1e-5, atol=1e-5
        )
