"""Attribution and the breadcrumb trail against ground truth.

* planted features: the class depends on input features 0 and 1 only → the trail ends there;
* a hand-built network whose one "key" hidden neuron carries the class → it ranks first by
  every method (and ablating it drops accuracy to chance, ablating any other does not);
* gradient × activation of a trained MLP equals the NumPy chain rule; integrated gradients
  and conductance are complete (they sum to F(x) − F(0)); Captum's ablation equals our batched
  ablation; the hook points read exactly the trace's probe activations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nn_tracing import TraceableNN, TrainConfig, attach_model, load_trace, train
from nn_tracing.analysis.attribution import (
    METHODS,
    attribute,
    attribution_frame,
    attribution_history,
    breadcrumb_trail,
    method_agreement,
    neuron_attributions,
    spearman,
)
from nn_tracing.analysis.intervention import ablate, batched_logits
from nn_tracing.analysis.neuron_model import NeuronModel

# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted_trace(tmp_path_factory: pytest.TempPathFactory):
    """A trained MLP on 6 features whose class is sign(x0 + x1): features 2–5 are noise."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    frame["label"] = (X[:, 0] + X[:, 1] > 0).astype(int)
    path = tmp_path_factory.mktemp("planted") / "planted.csv"
    frame.to_csv(path, index=False)
    config = TrainConfig(
        dataset="csv",
        csv_path=str(path),
        label_column="label",
        hidden_sizes=(8, 8),
        epochs=10,
        probe_size=150,
        seed=0,
    )
    run = train(config)
    assert run.trace is not None
    return run.trace


@pytest.fixture(scope="module")
def kept_trace():
    """A tiny trained ReLU MLP on moons that kept its weights at every recorded epoch."""
    config = TrainConfig(
        dataset="moons",
        hidden_sizes=(8, 8),
        epochs=4,
        n_samples=300,
        probe_size=64,
        seed=0,
        keep_weights=True,
    )
    run = train(config)
    assert run.trace is not None
    return run.trace


def key_network() -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """4 inputs → 6 tanh neurons → 2 logits. Hidden neuron 0 is ``tanh(4 x0)`` and alone
    decides the class (its outgoing weights are +2 / −2); neurons 1–5 read the noise features
    and add the same amount to both logits. The class is ``x0 > 0``."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    with torch.no_grad():
        hidden, out = net[0], net[2]
        hidden.weight.copy_(torch.randn(6, 4))
        hidden.weight[:, 0] = 0.0
        hidden.weight[0] = torch.tensor([4.0, 0.0, 0.0, 0.0])
        hidden.bias.copy_(torch.full((6,), 0.3))
        hidden.bias[0] = 0.0
        out.weight.copy_(torch.full((2, 6), 0.25))
        out.weight[:, 0] = torch.tensor([-2.0, 2.0])
        out.bias.zero_()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(240, 4, generator=generator)
    y = (x[:, 0] > 0).long()
    return net, x, y


@pytest.fixture(scope="module")
def key_trace():
    """The hand-built network traced (custom model: layers ``0`` and ``2``) and attached."""
    net, x, y = key_network()
    tracer = TraceableNN(net, probe=(x, y), epoch_intervals=-1, num_epochs=1)
    trace = tracer.finish()
    attach_model(trace, net)
    return trace


# -- the hook points -----------------------------------------------------------------------------


def test_hook_points_read_the_traces_probe_activations(kept_trace) -> None:
    for epoch in kept_trace.epochs:
        model = NeuronModel.from_trace(kept_trace, epoch)
        x = kept_trace.probe[0]
        np.testing.assert_array_equal(
            model.activations(x).numpy(), kept_trace.probe_activations(epoch)
        )
        np.testing.assert_array_equal(model.logits(x).numpy(), kept_trace.logits(epoch))


def test_epochs_with_weights_follow_keep_weights(kept_trace, tiny_trace_file: Path) -> None:
    assert kept_trace.epochs_with_weights == kept_trace.epochs
    tiny = load_trace(tiny_trace_file)
    assert tiny.epochs_with_weights == [tiny.epochs[-1]]
    with pytest.raises(ValueError, match="keep_weights"):
        NeuronModel.from_trace(tiny, 0)


def test_a_custom_model_without_its_module_says_how_to_attach_it() -> None:
    net, x, y = key_network()
    trace = TraceableNN(net, probe=(x, y), epoch_intervals=-1, num_epochs=1).finish()
    with pytest.raises(ValueError, match="attach_model"):
        NeuronModel.from_trace(trace)


# -- ground truth: planted features ----------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
def test_the_trail_ends_at_the_two_planted_features(planted_trace, method: str) -> None:
    assert planted_trace.history["val_acc"].iloc[-1] > 0.9
    model = NeuronModel.from_trace(planted_trace)
    for target in (0, 1):
        result = attribute(planted_trace, target_class=target, method=method, model=model)
        trail = breadcrumb_trail(model, result, planted_trace.probe[0], k=2)
        assert set(trail.neurons("input")) == {0, 1}
        scores = np.abs(result.scores[:6])
        # the planted features stand far above every noise feature
        assert scores[[0, 1]].min() > 4 * scores[2:].max()
        # and the trail reaches them from the output through every hidden layer
        assert list(trail.nodes["layer"].unique()) == ["output", "hidden_2", "hidden_1", "input"]
        assert set(trail.edges["source"]) >= {0, 1}


# -- ground truth: one key neuron ------------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("objective", ["logit", "margin"])
def test_the_key_neuron_ranks_first_by_every_method(key_trace, method: str, objective) -> None:
    hidden = key_trace.layer("0")
    key = hidden.first_id
    model = NeuronModel.from_trace(key_trace, objective=objective)
    for target in (0, 1, None):
        result = attribute(key_trace, target_class=target, method=method, model=model)
        assert result.top("0", 1)[0] == key, (target, result.scores[hidden.ids.start :])
        # the key neuron carries (nearly) all of its layer's attribution
        frame = result.frame().set_index("neuron")
        assert frame.loc[key, "share"] > 0.5
    # the input feature the key neuron reads ranks first among the inputs
    result = attribute(key_trace, target_class=1, method=method, model=model)
    assert result.top("input", 1)[0] == 0


def test_ablating_the_key_neuron_drops_accuracy_to_chance_and_no_other_does(key_trace) -> None:
    model = NeuronModel.from_trace(key_trace)
    x, y = key_trace.probe
    hidden = key_trace.layer("0")
    intact = ablate(model, x, y, [])
    assert intact.accuracy_after == 1.0
    chance = np.bincount(y).max() / len(y)
    knocked_out = ablate(model, x, y, [hidden.first_id])
    assert knocked_out.accuracy_after == pytest.approx(chance, abs=0.06)
    assert knocked_out.accuracy_after <= 0.56
    for neuron in list(hidden.ids)[1:]:
        assert ablate(model, x, y, [neuron]).accuracy_after == 1.0
        assert ablate(model, x, y, [neuron], fill="mean").accuracy_after == 1.0


# -- against independent references ----------------------------------------------------------------


def _relu_mlp_numpy(weights: dict[str, np.ndarray], x: np.ndarray):
    z1 = x @ weights["hidden_1.weight"].T + weights["hidden_1.bias"]
    a1 = np.maximum(z1, 0)
    z2 = a1 @ weights["hidden_2.weight"].T + weights["hidden_2.bias"]
    a2 = np.maximum(z2, 0)
    return z1, a1, z2, a2


def test_gradient_times_activation_equals_the_numpy_chain_rule(kept_trace) -> None:
    epoch = kept_trace.epochs[-1]
    weights = {k: v.astype(np.float64) for k, v in kept_trace.weights(epoch).items()}
    x = kept_trace.probe[0].astype(np.float64)
    z1, a1, z2, a2 = _relu_mlp_numpy(weights, x)
    w3 = weights["output.weight"]
    model = NeuronModel.from_trace(kept_trace, epoch)
    for c in (0, 1):
        got = neuron_attributions(model, kept_trace.probe[0], c, "grad_x_act")
        grad_a2 = np.broadcast_to(w3[c], a2.shape)  # d logit_c / d a2
        grad_a1 = (grad_a2 * (z2 > 0)) @ weights["hidden_2.weight"]
        grad_x = (grad_a1 * (z1 > 0)) @ weights["hidden_1.weight"]
        layers = {info.name: info for info in kept_trace.layers}
        for name, expected in (("input", grad_x * x), ("hidden_1", grad_a1 * a1)):
            info = layers[name]
            np.testing.assert_allclose(
                got[:, info.first_id : info.last_id + 1], expected, rtol=1e-4, atol=1e-6
            )
        info = layers["hidden_2"]
        np.testing.assert_allclose(
            got[:, info.first_id : info.last_id + 1], grad_a2 * a2, rtol=1e-4, atol=1e-6
        )
        assert np.isnan(got[:, layers["output"].first_id :]).all()


@pytest.mark.parametrize("method", ["integrated_gradients", "conductance"])
def test_path_methods_are_complete(kept_trace, method: str) -> None:
    """Each layer's attributions sum to F(x) − F(0) for integrated gradients at the input and
    for conductance at every layer (what flows through a layer is all there is)."""
    model = NeuronModel.from_trace(kept_trace)
    x = torch.as_tensor(kept_trace.probe[0][:16])
    got = neuron_attributions(model, x, 1, method, n_steps=256)
    expected = (model.logits(x)[:, 1] - model.logits(torch.zeros_like(x))[:, 1]).numpy()
    layers = kept_trace.layers[:-1] if method == "conductance" else kept_trace.layers[:1]
    for info in layers:
        total = got[:, info.first_id : info.last_id + 1].sum(1)
        np.testing.assert_allclose(total, expected, atol=2e-3, err_msg=info.name)


def test_captum_ablation_equals_our_batched_ablation(kept_trace) -> None:
    model = NeuronModel.from_trace(kept_trace)
    x = kept_trace.probe[0]
    got = neuron_attributions(model, x, 0, "ablation")
    hidden = [i for info in kept_trace.layers[:-1] for i in info.ids]
    logits = batched_logits(model, x, [[]] + [[i] for i in hidden])
    expected = logits[0, :, 0][None, :] - logits[1:, :, 0]  # (n_neurons, n_samples)
    np.testing.assert_allclose(got[:, hidden], expected.T, atol=1e-5)


def test_the_trails_flows_are_weight_times_activation_times_attribution(kept_trace) -> None:
    epoch = kept_trace.epochs[-1]
    model = NeuronModel.from_trace(kept_trace, epoch)
    result = attribute(kept_trace, epoch=epoch, target_class=1, method="grad_x_act", model=model)
    trail = breadcrumb_trail(model, result, kept_trace.probe[0], k=3)
    weights = {k: v.astype(np.float64) for k, v in kept_trace.weights(epoch).items()}
    x = kept_trace.probe[0][result.samples].astype(np.float64)
    _, a1, _, a2 = _relu_mlp_numpy(weights, x)
    output = kept_trace.layer("output")
    hidden_1, hidden_2 = kept_trace.layer("hidden_1"), kept_trace.layer("hidden_2")
    edges = trail.edges.set_index(["source", "target"])
    root = output.first_id + 1
    for u in trail.neurons("hidden_2"):
        j = u - hidden_2.first_id
        expected = weights["output.weight"][1, j] * a2[:, j].mean()
        assert edges.loc[(u, root), "flow"] == pytest.approx(expected, rel=1e-6)
        # into the root, the flow is the neuron's gradient × activation
        assert edges.loc[(u, root), "flow"] == pytest.approx(result.scores[u], rel=1e-4)
    for u in trail.neurons("hidden_1"):
        for v in trail.neurons("hidden_2"):
            i, j = u - hidden_1.first_id, v - hidden_2.first_id
            expected = (
                weights["hidden_2.weight"][j, i] * a1[:, i] * result.per_sample[:, v]
            ).mean()
            assert edges.loc[(u, v), "flow"] == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert len(trail.nodes) == 1 + 3 + 3 + 2
    assert trail.nodes.groupby("layer")["rank"].min().eq(1).all()


def test_one_sample_is_explained_for_its_prediction(kept_trace) -> None:
    model = NeuronModel.from_trace(kept_trace)
    predicted = int(model.logits(kept_trace.probe[0][5:6]).argmax(1)[0])
    result = attribute(kept_trace, sample=5, model=model)
    assert result.target_class == predicted
    assert result.samples.tolist() == [5]
    assert result.per_sample.shape == (1, kept_trace.n_neurons)


def test_since_when_matches_attribution_at_each_epoch(kept_trace) -> None:
    neurons = [kept_trace.layer("hidden_2").first_id, kept_trace.layer("hidden_2").first_id + 1]
    history = attribution_history(kept_trace, neurons, target_class=0)
    assert sorted(history["epoch"].unique()) == kept_trace.epochs
    for epoch in (kept_trace.epochs[0], kept_trace.epochs[-1]):
        direct = attribute(kept_trace, epoch=epoch, target_class=0)
        rows = history[history["epoch"] == epoch].set_index("neuron")
        for n in neurons:
            assert rows.loc[n, "score"] == pytest.approx(direct.scores[n])
            assert rows.loc[n, "signature"] == f"E_{epoch}/L_hidden_2/n_{n}"


def test_method_agreement_and_spearman() -> None:
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == pytest.approx(1)
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-1)
    assert np.isnan(spearman(np.array([1.0, 2, 3]), np.array([1.0, 1, 1])))
    net, x, y = key_network()
    trace = TraceableNN(net, probe=(x, y), epoch_intervals=-1, num_epochs=1).finish()
    attach_model(trace, net)
    model = NeuronModel.from_trace(trace)
    results = {m: attribute(trace, target_class=1, method=m, model=model) for m in METHODS}
    table = method_agreement(results)
    assert set(table["layer"]) == {"input", "0"}
    assert len(table) == 2 * 6  # two layers, six pairs of four methods
    assert table.loc[table["layer"] == "0", "top_match"].all()


def test_attribution_frame_orchestrates_epochs_classes_and_methods(kept_trace) -> None:
    epochs = kept_trace.epochs[-2:]
    frame = attribution_frame(
        kept_trace, epochs=epochs, methods=("grad_x_act", "ablation"), classes=None
    )
    n_attributed = kept_trace.n_neurons - kept_trace.layer("output").n_neurons
    assert len(frame) == len(epochs) * 2 * 2 * n_attributed
    assert set(frame["class"]) == {0, 1} and set(frame["epoch"]) == set(epochs)
    direct = attribute(kept_trace, epoch=epochs[0], target_class=1, method="ablation")
    rows = frame[(frame["epoch"] == epochs[0]) & (frame["class"] == 1)]
    rows = rows[rows["method"] == "ablation"].set_index("neuron")
    np.testing.assert_allclose(rows["score"].sort_index(), direct.scores[:n_attributed])


# -- convolutions: channels are neurons ---------------------------------------------------------


class _ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.conv(x)).mean((2, 3)))


def test_convolution_channels_are_attributed_and_ablated_whole() -> None:
    torch.manual_seed(0)
    net = _ConvNet()
    x, y = torch.randn(24, 2, 5, 5), torch.randint(0, 3, (24,))
    trace = TraceableNN(net, probe=(x, y), epoch_intervals=-1, num_epochs=1).finish()
    attach_model(trace, net)
    model = NeuronModel.from_trace(trace)
    np.testing.assert_allclose(
        model.activations(x).numpy(), trace.probe_activations(0), rtol=1e-5, atol=1e-6
    )
    conv = trace.layer("conv")
    for method in METHODS:
        got = neuron_attributions(model, x, 2, method)
        assert np.isfinite(got[:, : conv.last_id + 1]).all(), method
    # Captum's channel ablation is our whole-channel ablation
    got = neuron_attributions(model, x, 2, "ablation")
    logits = batched_logits(model, x, [[]] + [[i] for i in conv.ids])
    expected = (logits[0, :, 2][None, :] - logits[1:, :, 2]).T
    np.testing.assert_allclose(got[:, conv.first_id : conv.last_id + 1], expected, atol=1e-5)
    # gradient × activation of a channel sums over its positions: d logit / d channel map
    xg = x.clone()
    with torch.no_grad():
        maps = net.act(net.conv(xg))
    maps.requires_grad_(True)
    net.head(maps.mean((2, 3)))[:, 2].sum().backward()
    reference = (maps.grad * maps).sum((2, 3)).detach().numpy()
    got = neuron_attributions(model, x, 2, "grad_x_act")
    np.testing.assert_allclose(got[:, conv.first_id : conv.last_id + 1], reference, atol=1e-6)


# -- the same on a GPU ---------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", list(METHODS))
def test_attribution_on_cuda_equals_cpu(kept_trace, method: str) -> None:
    cpu = NeuronModel.from_trace(kept_trace)
    gpu = NeuronModel.from_trace(kept_trace, device="cuda")
    assert gpu.device.type == "cuda"
    a = attribute(kept_trace, target_class=1, method=method, model=cpu)
    b = attribute(kept_trace, target_class=1, method=method, model=gpu)
    np.testing.assert_allclose(b.per_sample, a.per_sample, rtol=1e-4, atol=1e-5)
    trail_cpu = breadcrumb_trail(cpu, a, kept_trace.probe[0], k=3)
    trail_gpu = breadcrumb_trail(gpu, b, kept_trace.probe[0], k=3)
    assert trail_cpu.neurons() == trail_gpu.neurons()
