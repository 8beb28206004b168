"""Ablation, ablation curves, pruning and intervention against NumPy brute force.

The reference is a NumPy forward pass of the trained ReLU MLP in which activations are
replaced by hand; the batched ablation (many sets per forward pass) must equal it set by set.
Pruning must equal ablation to float tolerance and its parameter count must be exact;
clamping a neuron must change exactly the values downstream of it.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from nn_tracing import MLP, TraceableNN, TrainConfig, load_trace, save_trace, train
from nn_tracing.analysis.attribution import attribute, breadcrumb_trail
from nn_tracing.analysis.intervention import (
    AblationCurves,
    Intervention,
    Pruning,
    ablate,
    batched_logits,
    count_parameters,
    decision_grid,
    intervene,
    prunable,
    prune_model,
    selectivity_sentence,
    trail_check,
)
from nn_tracing.analysis.neuron_model import NeuronModel
from nn_tracing.export import pruned_config, pruned_files, pruned_trace


@pytest.fixture(scope="module")
def trace():
    """A tiny trained ReLU MLP (2 → 8 → 8 → 2) on moons, probe of 64."""
    config = TrainConfig(
        dataset="moons", hidden_sizes=(8, 8), epochs=4, n_samples=300, probe_size=64, seed=0
    )
    run = train(config)
    assert run.trace is not None
    return run.trace


@pytest.fixture(scope="module")
def model(trace) -> NeuronModel:
    return NeuronModel.from_trace(trace)


def _weights(trace) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float64) for k, v in trace.final_weights.items()}


def forward_numpy(
    trace,
    x: np.ndarray,
    replace: dict[int, np.ndarray | float] | None = None,
    weights: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and every neuron's activation, with ``{global id: value}`` replaced by hand."""
    w = weights or _weights(trace)
    replace = replace or {}
    layers = {info.name: info for info in trace.layers}
    a = x.astype(np.float64).copy()

    def apply(values: np.ndarray, info) -> np.ndarray:
        for neuron, value in replace.items():
            if info.first_id <= neuron <= info.last_id:
                values[:, neuron - info.first_id] = value
        return values

    acts = [apply(a, layers["input"])]
    for name in ("hidden_1", "hidden_2"):
        a = np.maximum(acts[-1] @ w[f"{name}.weight"].T + w[f"{name}.bias"], 0)
        acts.append(apply(a, layers[name]))
    logits = apply(acts[-1] @ w["output.weight"].T + w["output.bias"], layers["output"])
    acts.append(logits)
    return logits, np.concatenate(acts, axis=1)


# -- batched ablation ----------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("max_rows", [32768, 200, 40])
def test_batched_ablation_equals_brute_force_set_by_set(
    trace, model, max_rows: int, fast: bool
) -> None:
    """Many sets per pass (32768 rows), a few (200: three sets), and one set per pass with
    the probe in chunks (40 < 64 samples) all give the brute-force outputs — through the
    whole network with masks, and (``fast``) by the low-rank update of sets in one layer."""
    x = trace.probe[0]
    rng = np.random.default_rng(0)
    sets = [[], [2], [0, 1], [3, 5, 11], [10, 12, 17], [17, 10], [4, 4], list(range(2, 10))]
    sets += [sorted(rng.choice(np.arange(0, 18), size=4, replace=False).tolist()) for _ in range(9)]
    sets += [[int(i)] for i in rng.choice(np.arange(2, 18), size=6, replace=False)]
    got = batched_logits(model, x, sets, max_rows=max_rows, fast=fast)
    assert got.shape == (len(sets), 64, 2)
    for s, ids in enumerate(sets):
        expected, _ = forward_numpy(trace, x, dict.fromkeys(ids, 0.0))
        np.testing.assert_allclose(got[s], expected, rtol=1e-5, atol=1e-5, err_msg=str(ids))


def test_mean_replacement_uses_each_neurons_probe_mean(trace, model) -> None:
    x = trace.probe[0]
    _, acts = forward_numpy(trace, x)
    means = acts.mean(0)
    for ids in ([3, 12, 13], [12, 13], [0], [5, 6, 7]):  # across layers, and within one
        for fast in (True, False):
            got = batched_logits(model, x, [ids], fill="mean", fast=fast)[0]
            expected, _ = forward_numpy(trace, x, {i: means[i] for i in ids})
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=str(ids))


def test_ablation_result_counts_classes_confusion_and_flips(trace, model) -> None:
    x, y = trace.probe
    ids = [10, 11, 12, 13]
    result = ablate(model, x, y, ids, class_names=["left", "right"])
    before, _ = forward_numpy(trace, x)
    after, _ = forward_numpy(trace, x, dict.fromkeys(ids, 0.0))
    pb, pa = before.argmax(1), after.argmax(1)
    assert result.accuracy_before == pytest.approx((pb == y).mean())
    assert result.accuracy_after == pytest.approx((pa == y).mean())
    assert result.flipped.tolist() == np.flatnonzero(pb != pa).tolist()
    confusion = np.zeros((2, 2), dtype=int)
    for t, p in zip(y, pa, strict=True):
        confusion[t, p] += 1
    np.testing.assert_array_equal(result.confusion(after=True), confusion)
    assert result.confusion(after=False).sum() == len(y)
    table = result.per_class().set_index("class")
    for c, name in enumerate(["left", "right"]):
        own = y == c
        assert table.loc[name, "n"] == own.sum()
        assert table.loc[name, "accuracy_after"] == pytest.approx((pa[own] == c).mean())
        assert table.loc[name, "logit_own_change"] == pytest.approx(
            after[own, c].mean() - before[own, c].mean(), abs=1e-5
        )
        assert table.loc[name, "logit_all_change"] == pytest.approx(
            after[:, c].mean() - before[:, c].mean(), abs=1e-5
        )
    flips = result.flipped_frame()
    assert len(flips) == len(result.flipped)
    assert set(flips["before"]) | set(flips["after"]) <= {"left", "right"}


def test_trail_check_compares_the_trail_with_random_sets(trace, model) -> None:
    result = attribute(trace, target_class=1, model=model)
    trail = breadcrumb_trail(model, result, trace.probe[0], k=3)
    table = trail_check(model, *trace.probe, trail, n_repeats=30).set_index("layer")
    assert list(table.index) == ["input", "hidden_1", "hidden_2"]
    x, _ = trace.probe
    xs = x[result.samples]
    before, _ = forward_numpy(trace, xs)
    for layer in ("hidden_1", "hidden_2"):
        after, _ = forward_numpy(trace, xs, dict.fromkeys(trail.neurons(layer), 0.0))
        expected = before[:, 1].mean() - after[:, 1].mean()
        assert table.loc[layer, "trail_drop"] == pytest.approx(expected, abs=1e-5)
        assert 1 / 31 <= table.loc[layer, "p_value"] <= 1


# -- ablation curves -----------------------------------------------------------------------------


def test_ablation_curves_start_intact_and_end_with_the_layer_gone(trace, model) -> None:
    x, y = trace.probe
    curves = AblationCurves("hidden_1", n_repeats=8, n_points=9).fit(model, x, y)
    frame = curves.curves_
    assert set(frame["order"]) == {"attribution", "reverse", "selectivity", "random"}
    assert curves.k_.tolist() == list(range(9))
    logits, _ = forward_numpy(trace, x)
    intact = (logits.argmax(1) == y).mean()
    gone, _ = forward_numpy(trace, x, dict.fromkeys(range(2, 10), 0.0))
    for order, rows in frame.groupby("order"):
        rows = rows.set_index("k")
        assert rows.loc[0, "accuracy"] == pytest.approx(intact), order
        assert rows.loc[8, "accuracy"] == pytest.approx((gone.argmax(1) == y).mean()), order
    random = frame[frame["order"] == "random"]
    assert (random["low"] <= random["accuracy"] + 1e-12).all()
    assert (random["accuracy"] <= random["high"] + 1e-12).all()
    # one neuron ablated "by attribution" is the most important one
    first = 2 + int(np.argmax(curves.importance_))
    one, _ = forward_numpy(trace, x, {first: 0.0})
    row = frame[(frame["order"] == "attribution") & (frame["k"] == 1)]
    assert row["accuracy"].iloc[0] == pytest.approx((one.argmax(1) == y).mean())
    # single-neuron effects are brute-force ablations
    for j in range(8):
        single, _ = forward_numpy(trace, x, {2 + j: 0.0})
        drop = intact - (single.argmax(1) == y).mean()
        assert curves.single_accuracy_drop_[j] == pytest.approx(drop)


def test_selectivity_correlation_finds_a_planted_relation(trace, model) -> None:
    x, y = trace.probe
    first = AblationCurves("hidden_2", n_repeats=2).fit(model, x, y)
    rise = first.single_loss_rise_
    assert np.isfinite(rise).all() and np.ptp(rise) > 0
    selectivity = np.full(trace.n_neurons, np.nan)
    ids = list(trace.layer("hidden_2").ids)
    selectivity[ids] = rise  # selectivity that is importance itself
    same = AblationCurves("hidden_2", n_repeats=2).fit(model, x, y, selectivity=selectivity)
    assert same.correlation_["rho"] == pytest.approx(1.0)
    assert same.correlation_["p_value"] < 0.01
    assert same.correlation_["sentence"].startswith("Selectivity predicts importance here:")
    selectivity[ids] = -rise
    inverse = AblationCurves("hidden_2", n_repeats=2).fit(model, x, y, selectivity=selectivity)
    assert inverse.correlation_["rho"] == pytest.approx(-1.0)
    assert "inversely" in inverse.correlation_["sentence"]
    assert "does not predict" in selectivity_sentence(0.1, 0.6, 8, 2000)
    assert "cannot be compared" in selectivity_sentence(float("nan"), float("nan"), 2, 2000)


# -- pruning -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fill", ["zero", "mean"])
def test_pruned_model_equals_the_ablated_model(trace, model, fill: str) -> None:
    x = torch.as_tensor(trace.probe[0])
    remove = [2, 5, 9, 11, 16]
    means = model.activations(x).mean(0)
    pruned = prune_model(model, remove, fill=means if fill == "mean" else None)
    assert [m.out_features for m in pruned if isinstance(m, nn.Linear)] == [5, 6, 2]
    assert [m.in_features for m in pruned if isinstance(m, nn.Linear)] == [2, 5, 6]
    ablated = batched_logits(model, x, [remove], fill=fill, means=means)[0]
    with torch.no_grad():
        np.testing.assert_allclose(pruned(x).numpy(), ablated, rtol=1e-5, atol=1e-6)
    # exact parameter count: (2·5 + 5) + (5·6 + 6) + (6·2 + 2)
    assert count_parameters(pruned) == 15 + 36 + 14
    assert count_parameters(model.model) == (2 * 8 + 8) + (8 * 8 + 8) + (8 * 2 + 2)
    assert isinstance(pruned, MLP) and pruned.hidden_sizes == (5, 6)


def test_pruning_against_random_pruning(trace, model) -> None:
    x, y = trace.probe
    pruning = Pruning(k={"hidden_1": 3, "hidden_2": 2}, n_repeats=12, n_points=5).fit(model, x, y)
    assert {k: len(v) for k, v in pruning.removed_.items()} == {"hidden_1": 3, "hidden_2": 2}
    # the least important by mean |gradient × activation| to each sample's class
    for layer, removed in pruning.removed_.items():
        info = trace.layer(layer)
        block = pruning.importance_[info.first_id : info.last_id + 1]
        kept = [i for i in info.ids if i not in removed]
        assert block[np.array(removed) - info.first_id].max() <= pruning.importance_[kept].min()
    assert pruning.sizes_after_ == [5, 6]
    assert pruning.parameters_before_ == 24 + 72 + 18
    assert pruning.parameters_after_ == (2 * 5 + 5) + (5 * 6 + 6) + (6 * 2 + 2)
    assert pruning.parameters_saved_ == pruning.parameters_before_ - pruning.parameters_after_
    assert pruning.max_output_difference_ < 1e-5
    assert pruning.accuracy_after_ == pytest.approx(pruning.ablated_accuracy_)
    removed = [n for ids in pruning.removed_.values() for n in ids]
    after, _ = forward_numpy(trace, x, dict.fromkeys(removed, 0.0))
    assert pruning.accuracy_after_ == pytest.approx((after.argmax(1) == y).mean())
    assert pruning.random_accuracy_.shape == (12,)
    curve = pruning.curve_.set_index("k")
    assert curve.loc[0, "accuracy"] == pytest.approx(pruning.accuracy_before_)
    assert curve.loc[0, "parameters"] == pruning.parameters_before_
    assert curve.loc[7, "parameters"] == (2 + 1) + (1 + 1) + (2 + 2)


def test_pruned_model_files_and_trace_round_trip(trace, model, tmp_path) -> None:
    x, y = trace.probe
    pruning = Pruning(k=3, n_repeats=2).fit(model, x, y)
    config = pruned_config(trace, pruning, epoch=trace.epochs[-1])
    weights, text = pruned_files(pruning.pruned_, config)
    described = json.loads(text)
    architecture = described["architecture"]
    assert architecture["hidden_sizes"] == [5, 5]
    assert described["n_parameters_after"] == pruning.parameters_after_
    rebuilt = MLP(
        architecture["n_inputs"],
        architecture["hidden_sizes"],
        architecture["n_outputs"],
        architecture["activation"],
        architecture["dropout"],
    )
    rebuilt.load_state_dict(load_safetensors(weights))
    xt = torch.as_tensor(x)
    with torch.no_grad():
        np.testing.assert_array_equal(rebuilt(xt).numpy(), pruning.pruned_(xt).numpy())
    small = pruned_trace(pruning.pruned_, trace, config)
    path = save_trace(small, tmp_path / "pruned.nntrace")
    loaded = load_trace(path)
    assert loaded.epochs == [0]
    assert [info.n_neurons for info in loaded.layers] == [2, 5, 5, 2]
    assert loaded.meta["pruned_from"]["removed"] == pruning.removed_
    again = NeuronModel.from_trace(loaded)  # a pruned built-in MLP stays rebuildable
    np.testing.assert_allclose(again.logits(x).numpy(), loaded.logits(0), atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.logits(0), pruning.pruned_(xt).numpy(), atol=1e-6)
    assert io.BytesIO(weights).getbuffer().nbytes > 0


def test_models_that_are_not_chains_say_why_they_cannot_be_pruned() -> None:
    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 4)
            self.b = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.a(x)))

    x = torch.randn(10, 3)
    tracer = TraceableNN(Skip(), probe=(x, torch.randint(0, 2, (10,))), epoch_intervals=-1)
    trace = tracer.finish()
    neuron_model = NeuronModel(Skip(), trace.layers, x)
    assert "nn.Sequential" in prunable(neuron_model)
    with pytest.raises(ValueError, match=r"nn\.Sequential"):
        prune_model(neuron_model, [3])
    normed = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 2))
    trace = TraceableNN(normed, probe=(x, torch.randint(0, 2, (10,))), epoch_intervals=-1)
    assert "LayerNorm" in prunable(NeuronModel(normed, trace.finish().layers, x))


# -- intervention --------------------------------------------------------------------------------


def test_clamping_a_neuron_changes_exactly_what_is_downstream(trace, model) -> None:
    x, y = trace.probe
    neuron = 4  # hidden_1, index 2
    result = intervene(model, x, y, Intervention("clamp", 2.5, neuron=neuron))
    _, before = forward_numpy(trace, x)
    logits, after = forward_numpy(trace, x, {neuron: 2.5})
    np.testing.assert_allclose(result.activations_before, before, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.activations_after, after, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.logits_after, logits, rtol=1e-5, atol=1e-5)
    # upstream and the neuron's own layer-mates do not move; the neuron is the value
    np.testing.assert_array_equal(result.activations_after[:, :4], result.activations_before[:, :4])
    np.testing.assert_array_equal(
        result.activations_after[:, 5:10], result.activations_before[:, 5:10]
    )
    assert (result.activations_after[:, neuron] == 2.5).all()
    # downstream: exactly the neurons the clamp reaches through non-zero weights
    w2 = _weights(trace)["hidden_2.weight"]
    changed = set(result.changed_neurons().tolist())
    reaches = {10 + j for j in range(8) if w2[j, 2] != 0}
    assert neuron in changed
    assert changed - {neuron} <= reaches | {18, 19}
    assert changed & set(range(10, 18))
    assert (
        result.flipped.tolist()
        == np.flatnonzero(before[:, 18:].argmax(1) != logits.argmax(1)).tolist()
    )


def test_scaling_and_weight_edits_match_the_reference_and_are_undone(trace, model) -> None:
    x, y = trace.probe
    untouched = model.logits(x).numpy()
    scaled = intervene(model, x, y, Intervention("scale", -3.0, neuron=12))
    _, acts = forward_numpy(trace, x)
    reference, _ = forward_numpy(trace, x, {12: acts[:, 12] * -3.0})
    np.testing.assert_allclose(scaled.logits_after, reference, rtol=1e-5, atol=1e-5)
    edited = intervene(model, x, y, Intervention("weight", 4.0, layer="hidden_2", row=3, column=6))
    weights = _weights(trace)
    assert edited.old_value == pytest.approx(weights["hidden_2.weight"][3, 6])
    weights["hidden_2.weight"][3, 6] = 4.0
    reference, ref_acts = forward_numpy(trace, x, weights=weights)
    np.testing.assert_allclose(edited.logits_after, reference, rtol=1e-5, atol=1e-5)
    assert edited.changed_neurons().tolist() == [
        n for n in (13, 18, 19) if np.abs(ref_acts[:, n] - acts[:, n]).max() > 1e-6
    ]
    # the model is as it was
    np.testing.assert_array_equal(model.logits(x).numpy(), untouched)
    with pytest.raises(ValueError, match="outside"):
        intervene(model, x, y, Intervention("weight", 1.0, layer="hidden_2", row=8, column=0))


def test_decision_boundary_before_and_after(trace, model) -> None:
    x, y = trace.probe
    result = intervene(model, x, y, Intervention("clamp", 6.0, neuron=12), boundary_resolution=30)
    boundary = result.boundary
    assert boundary is not None
    xs, ys, points = decision_grid(x, 30)
    assert points.shape == (900, 2)
    np.testing.assert_array_equal(boundary.xs, xs)
    before, _ = forward_numpy(trace, points)
    after, _ = forward_numpy(trace, points, {12: 6.0})
    np.testing.assert_array_equal(boundary.before, before.argmax(1))
    np.testing.assert_array_equal(boundary.after, after.argmax(1))
    assert boundary.changed_share == pytest.approx((before.argmax(1) != after.argmax(1)).mean())
    # the grid covers the probe
    assert xs.min() < x[:, 0].min() and xs.max() > x[:, 0].max()
    assert ys.min() < x[:, 1].min() and ys.max() > x[:, 1].max()
    with pytest.raises(ValueError, match="finite"):
        Intervention("clamp", float("nan"), neuron=3)


def test_the_pruned_model_is_a_plain_network(trace, model) -> None:
    """No hook of the wrapper survives in the pruned copy: it pickles, and edits installed on
    the wrapper do not reach it."""
    import pickle

    pruned = prune_model(model, [2, 11])
    assert all(not m._forward_hooks for m in pruned.modules())
    x = torch.as_tensor(trace.probe[0])
    with torch.no_grad():
        expected = pruned(x)
    edits = {"hidden_2": (torch.zeros(1, 8), torch.full((1, 8), 9.0))}
    with model.edited(edits), torch.no_grad():
        np.testing.assert_array_equal(pruned(x).numpy(), expected.numpy())
    again = pickle.loads(pickle.dumps(pruned))
    with torch.no_grad():
        np.testing.assert_array_equal(again(x).numpy(), expected.numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ablation_pruning_and_intervention_on_cuda_equal_cpu(trace, model) -> None:
    gpu = NeuronModel.from_trace(trace, device="cuda")
    x, y = trace.probe
    sets = [[], [2], [3, 11, 12], list(range(10, 18))]
    np.testing.assert_allclose(
        batched_logits(gpu, x, sets, fill="mean"),
        batched_logits(model, x, sets, fill="mean"),
        rtol=1e-4,
        atol=1e-5,
    )
    pruning = Pruning(k=3, n_repeats=4, fill="mean").fit(gpu, x, y)
    assert pruning.max_output_difference_ < 1e-4
    assert next(pruning.pruned_.parameters()).device.type == "cuda"
    reference = Pruning(k=3, n_repeats=4, fill="mean").fit(model, x, y)
    assert pruning.removed_ == reference.removed_
    assert pruning.accuracy_after_ == pytest.approx(reference.accuracy_after_)
    config = pruned_config(trace, pruning, epoch=None)
    assert pruned_trace(pruning.pruned_, trace, config).epochs == [0]
    a = intervene(gpu, x, y, Intervention("clamp", 2.5, neuron=4))
    b = intervene(model, x, y, Intervention("clamp", 2.5, neuron=4))
    np.testing.assert_allclose(a.activations_after, b.activations_after, rtol=1e-4, atol=1e-5)
    assert a.boundary is not None and b.boundary is not None
    assert (a.boundary.after != b.boundary.after).mean() < 0.01
    curves = AblationCurves("hidden_1", n_repeats=4).fit(gpu, x, y)
    assert np.isfinite(curves.curves_["accuracy"]).all()


def test_the_low_rank_ablation_keeps_the_margin_objective(trace) -> None:
    margin = NeuronModel.from_trace(trace, objective="margin")
    x = trace.probe[0]
    sets = [[2], [10, 11], [0], list(range(10, 18))]
    fast = batched_logits(margin, x, sets, fast=True)
    slow = batched_logits(margin, x, sets, fast=False)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)
    logits, _ = forward_numpy(trace, x, {2: 0.0})
    np.testing.assert_allclose(fast[0, :, 1], logits[:, 1] - logits[:, 0], rtol=1e-5, atol=1e-5)
