"""One neuron's profile (nn_tracing.analysis.profiles), checked against numpy on real traces.

Every computation is recomputed independently: weights from the state_dict, selectivity by a
loop over classes, the shuffled-label null by enumerating permutations, the top samples by
argsort, the enrichment p-value by counting combinations, the activation field by a forward
pass written out in numpy.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import nn_tracing as nt
from nn_tracing.analysis import profiles
from nn_tracing.analysis.profiles import ProfileUnavailable
from nn_tracing.data import prepare_data

MOONS = nt.TrainConfig(
    dataset="moons",
    hidden_sizes=(8, 8),
    epochs=4,
    n_samples=300,
    probe_size=64,
    seed=0,
    keep_weights=True,
)
DIGITS = nt.TrainConfig(dataset="digits", hidden_sizes=(8,), epochs=2, probe_size=64, seed=0)


@pytest.fixture(scope="module")
def kept() -> nt.NetworkTrace:
    """A tiny ReLU moons network with its weights kept at every recorded epoch."""
    return nt.train(MOONS).trace


@pytest.fixture(scope="module")
def digits() -> nt.NetworkTrace:
    """A tiny digits network (64 pixel inputs), final weights only."""
    return nt.train(DIGITS).trace


def _layer_ids(trace: nt.NetworkTrace, layer: str) -> range:
    return trace.layer(layer).ids


# -- metrics over time -------------------------------------------------------------------------
def test_metric_history_is_the_frame_against_its_layers_quartiles(kept) -> None:
    neuron = 12
    history = profiles.metric_history(kept, neuron)
    ids = list(_layer_ids(kept, "hidden_2"))
    for metric in ("w_norm", "act_mean", "grad_norm"):
        rows = history[history["metric"] == metric]
        block = kept.metric(metric)[:, ids].astype(np.float64)
        np.testing.assert_array_equal(rows["epoch"], kept.epochs)
        np.testing.assert_allclose(rows["value"], block[:, ids.index(neuron)])
        np.testing.assert_allclose(rows["median"], np.median(block, axis=1))
        np.testing.assert_allclose(rows["p25"], np.percentile(block, 25, axis=1))
        np.testing.assert_allclose(rows["p75"], np.percentile(block, 75, axis=1))
        own = block[:, ids.index(neuron)]
        expected = [
            (np.sum(row < v) + 0.5 * np.sum(row == v)) / row.size
            for row, v in zip(block, own, strict=True)
        ]
        np.testing.assert_allclose(rows["percentile"], expected)
    assert history.loc[history["metric"] == "bias", "value"].notna().all()


# -- weights -----------------------------------------------------------------------------------
def test_incoming_and_outgoing_weights_are_a_row_and_a_column_of_the_weight_matrices(
    kept,
) -> None:
    neuron, epoch = 5, 2  # hidden_1, index 3
    weights = kept.weights(epoch)
    incoming = profiles.incoming_weights(kept, neuron, epoch)
    np.testing.assert_allclose(incoming["weight"], weights["hidden_1.weight"][3])
    np.testing.assert_allclose(incoming["weight_e0"], kept.weights(0)["hidden_1.weight"][3])
    assert incoming["source"].tolist() == [0, 1]  # the input features
    assert incoming["signature"].tolist() == ["E_2/L_input/n_0", "E_2/L_input/n_1"]
    outgoing = profiles.outgoing_weights(kept, neuron, epoch)
    np.testing.assert_allclose(outgoing["weight"], weights["hidden_2.weight"][:, 3])
    assert outgoing["target"].tolist() == list(_layer_ids(kept, "hidden_2"))
    assert outgoing["signature"].iloc[0] == "E_2/L_hidden_2/n_10"
    # a hidden_2 neuron's sources are hidden_1's neurons
    sources = profiles.incoming_weights(kept, 12, epoch)
    assert sources["signature"].tolist() == [f"E_2/L_hidden_1/n_{i}" for i in range(2, 10)]


def test_strongest_connections_are_the_largest_magnitudes_with_their_rank_in_the_matrix(
    kept,
) -> None:
    neuron, epoch, k = 12, 4, 3  # hidden_2, index 2
    weights = kept.weights(epoch)
    frame = profiles.strongest_connections(kept, neuron, epoch, k=k)
    w_in = weights["hidden_2.weight"][2].astype(np.float64)
    w_out = weights["output.weight"][:, 2].astype(np.float64)
    incoming = frame[frame["direction"] == "in"]
    outgoing = frame[frame["direction"] == "out"]
    top_in = np.argsort(-np.abs(w_in), kind="stable")[:k]
    assert incoming["neuron"].tolist() == (2 + top_in).tolist()
    np.testing.assert_allclose(incoming["weight"], w_in[top_in])
    assert outgoing["neuron"].tolist() == (18 + np.argsort(-np.abs(w_out), kind="stable")).tolist()
    matrix = np.abs(weights["hidden_2.weight"]).ravel()
    expected = [np.mean(matrix < abs(w)) for w in w_in[top_in]]
    np.testing.assert_allclose(incoming["matrix_percentile"], expected)
    assert incoming["rank"].tolist() == [1, 2, 3]
    assert set(frame["signature"]) >= {f"E_4/L_hidden_1/n_{2 + i}" for i in top_in}


def test_weight_history_needs_kept_weights_and_the_final_epoch_is_always_there(
    kept, tiny_trace_file: Path
) -> None:
    history = profiles.incoming_weight_history(kept, 12)
    assert sorted(history["epoch"].unique()) == kept.epochs
    last = history[history["epoch"] == 3]
    np.testing.assert_allclose(last["weight"], kept.weights(3)["hidden_2.weight"][2])
    plain = nt.load_trace(tiny_trace_file)
    assert plain.epochs_with_weights == [plain.epochs[-1]]
    with pytest.raises(ProfileUnavailable, match="keep_weights"):
        profiles.incoming_weight_history(plain, 12)
    with pytest.raises(ProfileUnavailable, match="no weights at E_1"):
        profiles.incoming_weights(plain, 12, 1)
    with pytest.raises(ProfileUnavailable, match="no incoming weights"):
        profiles.incoming_weights(plain, 0, plain.epochs[-1])
    with pytest.raises(ProfileUnavailable, match="logits"):
        profiles.outgoing_weights(plain, 18, plain.epochs[-1])


def test_a_digits_first_layer_neuron_shows_its_64_weights_as_the_8x8_image(digits) -> None:
    neuron, epoch = 66, digits.epochs[-1]  # hidden_1, index 2
    image = profiles.incoming_weight_image(digits, neuron, epoch)
    assert image.shape == (8, 8)
    np.testing.assert_allclose(image.ravel(), digits.final_weights["hidden_1.weight"][2])
    # pixel (r, c) is input feature 8r + c, as sklearn lays the digits out
    assert image[3, 5] == pytest.approx(float(digits.final_weights["hidden_1.weight"][2, 29]))
    with pytest.raises(ProfileUnavailable, match="first hidden layer"):
        profiles.incoming_weight_image(digits, 75, epoch)  # an output logit


# -- responses ---------------------------------------------------------------------------------
def test_class_distributions_are_numpys_per_class_statistics(digits) -> None:
    neuron, epoch = 67, digits.epochs[-1]
    summary = profiles.class_distributions(digits, neuron, epoch)
    acts = digits.probe_activations(epoch)[:, neuron].astype(np.float64)
    labels = digits.probe[1]
    assert summary["label"].tolist() == sorted(set(labels.tolist()))
    assert summary["class"].tolist() == [str(c) for c in summary["label"]]
    for row in summary.itertuples():
        values = acts[labels == row.label]
        assert row.n == values.size
        assert row.mean == pytest.approx(values.mean())
        assert row.median == pytest.approx(np.median(values))
        assert row.q1 == pytest.approx(np.percentile(values, 25))
        assert row.q3 == pytest.approx(np.percentile(values, 75))
        iqr = row.q3 - row.q1
        inside = values[(values >= row.q1 - 1.5 * iqr) & (values <= row.q3 + 1.5 * iqr)]
        assert row.whisker_high == pytest.approx(inside.max())
        assert row.active == pytest.approx(np.mean(values > 0))


def _brute_selectivity(acts: np.ndarray, labels: np.ndarray) -> float:
    """Morcos' index as docs/trace.md defines it, one class at a time."""
    low = min(float(acts.min()), 0.0)
    means = [float(np.mean(acts[labels == c])) - low for c in sorted(set(labels.tolist()))]
    top = max(means)
    rest = (sum(means) - top) / (len(means) - 1)
    return (top - rest) / (top + rest) if top + rest > 1e-12 else float("nan")


def test_selectivity_is_the_recorded_metric_and_a_loop_over_classes(digits, kept) -> None:
    for trace in (digits, kept):
        labels = trace.probe[1]
        for epoch in trace.epochs:
            acts = trace.probe_activations(epoch).astype(np.float64)
            recorded = trace.metric("selectivity")[trace.epochs.index(epoch)]
            for neuron in range(trace.layers[1].first_id, trace.n_neurons):
                ours = profiles.class_selectivity(acts[:, neuron], labels)
                brute = _brute_selectivity(acts[:, neuron], labels)
                if np.isnan(brute):
                    assert np.isnan(ours) and np.isnan(recorded[neuron])
                    continue
                assert ours == pytest.approx(brute, abs=1e-9)
                assert ours == pytest.approx(float(recorded[neuron]), abs=2e-5)


def test_the_null_takes_only_values_that_permuting_the_labels_can_reach() -> None:
    acts = np.array([0.0, 0.3, 1.2, 2.0, 0.1, 0.7])
    labels = np.array([0, 0, 1, 1, 2, 2])
    reachable = {
        round(_brute_selectivity(acts, labels[list(p)]), 12)
        for p in itertools.permutations(range(6))
    }
    null = profiles.selectivity_null(acts, labels, n_permutations=300, random_state=1)
    assert null.shape == (300,)
    assert {round(v, 12) for v in null} <= reachable
    assert len({round(v, 12) for v in null}) > 3  # it explores, it does not repeat one value


def test_a_selective_neuron_beats_the_null_and_a_label_blind_one_does_not() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2, 3], 50)
    selective = (labels == 2) * (1.0 + rng.random(200))
    blind = rng.random(200)
    for acts, beats in ((selective, True), (blind, False)):
        observed = profiles.class_selectivity(acts, labels)
        null = profiles.selectivity_null(acts, labels, n_permutations=500, random_state=3)
        p = (1 + np.sum(null >= observed)) / (1 + null.size)
        assert (p < 0.01) if beats else (p > 0.05)
    assert np.all(np.isnan(profiles.selectivity_null(blind, np.zeros(200, int), 5)))


def test_selectivity_over_epochs_spreads_its_tests_and_seeds_each_epoch(kept) -> None:
    full = profiles.selectivity_over_epochs(kept, 12, n_permutations=50)
    assert full["tested"].all()
    np.testing.assert_allclose(full["selectivity"], kept.metric("selectivity")[:, 12])
    np.testing.assert_allclose(full["observed"], full["selectivity"], atol=2e-5)
    assert (full["null_p05"] <= full["null_median"]).all()
    assert (full["null_median"] <= full["null_p95"]).all()
    assert ((full["p_value"] > 0) & (full["p_value"] <= 1)).all()
    seen: list[float] = []
    some = profiles.selectivity_over_epochs(
        kept, 12, n_permutations=50, max_epochs=2, include=[2], progress=lambda f, _: seen.append(f)
    )
    assert some.loc[some["tested"], "epoch"].tolist() == [0, 2, 4]
    assert seen == [1 / 3, 2 / 3, 1.0]  # after each of the 3 tested epochs
    tested = some["tested"].to_numpy()
    columns = ["null_p05", "null_median", "null_p95", "p_value"]
    np.testing.assert_allclose(some.loc[tested, columns], full.loc[tested, columns])
    assert some.loc[~tested, "p_value"].isna().all()


def test_top_activating_samples_are_numpys_argsort_with_features_in_raw_units(kept) -> None:
    neuron, epoch = 4, 3
    acts = kept.probe_activations(epoch)[:, neuron].astype(np.float64)
    top = profiles.top_activating(kept, neuron, epoch, k=7)
    order = np.array(sorted(range(acts.size), key=lambda i: (-acts[i], i))[:7])
    assert top["probe_index"].tolist() == order.tolist()
    np.testing.assert_allclose(top["activation"], acts[order])
    assert top["rank"].tolist() == list(range(1, 8))
    assert top["label"].tolist() == kept.probe[1][order].tolist()
    np.testing.assert_array_equal(top["prediction"], kept.predictions(epoch)[order])
    data = prepare_data(MOONS)  # the splits again, from the config: an independent source
    raw = data.X_probe[order] * data.scale + data.mean
    np.testing.assert_allclose(top[["x0", "x1"]], raw, atol=1e-5)
    least = profiles.top_activating(kept, neuron, epoch, k=5, largest=False)
    assert least["probe_index"].tolist() == sorted(range(acts.size), key=lambda i: (acts[i], i))[:5]


def test_top_digits_are_real_digits_and_their_classes_are_tested_for_enrichment(digits) -> None:
    neuron, epoch = 68, digits.epochs[-1]
    top = profiles.top_activating(digits, neuron, epoch, k=9)
    pixels = top[[f"px_{r}_{c}" for r in range(8) for c in range(8)]].to_numpy()
    original = load_digits().data
    for row, label in zip(pixels, top["label"], strict=True):
        matches = np.flatnonzero(np.all(original == row, axis=1))
        assert matches.size >= 1  # the de-standardised sample is an exact sklearn digit
        assert label in load_digits().target[matches]
    enrichment = profiles.class_enrichment(digits, top)
    labels = digits.probe[1]
    n, n_top = labels.size, len(top)
    for row in enrichment.itertuples():
        n_class = int(np.sum(labels == row.label))
        tail = sum(
            math.comb(n_class, j) * math.comb(n - n_class, n_top - j)
            for j in range(row.in_top, min(n_class, n_top) + 1)
        ) / math.comb(n, n_top)
        assert row.p_value == pytest.approx(tail, rel=1e-9)
        assert row.expected == pytest.approx(n_top * n_class / n)
        assert row.p_adjusted == pytest.approx(min(1.0, tail * len(enrichment)))
    assert enrichment["in_top"].sum() == n_top


# -- the activation field ----------------------------------------------------------------------
def _forward(weights: dict[str, np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """The MLP by hand: every layer's activations for inputs ``x`` of shape (n, 2)."""
    h1 = np.maximum(x @ weights["hidden_1.weight"].T + weights["hidden_1.bias"], 0)
    h2 = np.maximum(h1 @ weights["hidden_2.weight"].T + weights["hidden_2.bias"], 0)
    out = h2 @ weights["output.weight"].T + weights["output.bias"]
    return [x, h1, h2, out]


def test_the_activation_field_is_the_model_run_by_hand_at_every_kept_epoch(kept) -> None:
    mean = np.array(kept.meta["dataset"]["feature_mean"])
    scale = np.array(kept.meta["dataset"]["feature_scale"])
    assert profiles.field_epochs(kept) == kept.epochs
    for epoch, neuron in ((1, 4), (4, 13), (2, 19)):
        field = profiles.activation_field(kept, neuron, epoch, resolution=25)
        assert field.values.shape == (25, 25) and field.epoch == epoch
        weights = {k: v.astype(np.float64) for k, v in kept.weights(epoch).items()}
        for i, j in ((0, 0), (3, 17), (12, 12), (24, 7), (24, 24)):
            point = (np.array([field.x[j], field.y[i]]) - mean) / scale
            layers = _forward(weights, point[None, :])
            by_hand = np.concatenate(layers, axis=1)[0, neuron]
            assert field.values[i, j] == pytest.approx(by_hand, rel=1e-4, abs=1e-5)
        assert field.max_probe_error < 1e-5
        # the grid covers the probe set, in the dataset's own units
        assert field.x[0] < field.probe_x[:, 0].min() and field.x[-1] > field.probe_x[:, 0].max()
        assert field.y[0] < field.probe_x[:, 1].min() and field.y[-1] > field.probe_x[:, 1].max()


def test_without_kept_weights_the_field_exists_at_the_final_epoch_only(
    tiny_trace_file: Path, digits
) -> None:
    plain = nt.load_trace(tiny_trace_file)
    last = plain.epochs[-1]
    assert profiles.field_epochs(plain) == [last]
    assert profiles.activation_field(plain, 5, last, resolution=8).values.shape == (8, 8)
    with pytest.raises(ProfileUnavailable, match="keep_weights"):
        profiles.activation_field(plain, 5, 1)
    assert profiles.field_epochs(digits) == []
    with pytest.raises(ProfileUnavailable, match="2 input features"):
        profiles.activation_field(digits, 66, digits.epochs[-1])


def test_a_custom_model_gets_its_field_once_attached_and_a_probeless_trace_says_why() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3))
    x, y = torch.randn(40, 2), torch.randint(0, 3, (40,))
    model = nt.TraceableNN(net, probe=(x, y), epoch_intervals=[1])
    model.start_epoch(1)
    model.end_epoch(1)
    trace = model.finish()
    with pytest.raises(ProfileUnavailable, match="attach_model"):
        profiles.activation_field(trace, 3, 1)
    nt.attach_model(trace, nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3)))
    field = profiles.activation_field(trace, 3, 1, resolution=10)
    assert field.max_probe_error < 1e-5
    w = net[0].weight.detach().numpy().astype(np.float64)
    b = net[0].bias.detach().numpy().astype(np.float64)
    # no standardisation in a custom trace: the grid is in the model's own input units
    assert field.values[4, 6] == pytest.approx(
        np.tanh(w[1] @ [field.x[6], field.y[4]] + b[1]), rel=1e-5
    )

    streamed = nt.TraceableNN(net, example_input=x[:2], epoch_intervals=[1], num_epochs=1)
    streamed.start_epoch(1)
    streamed(x)
    streamed.end_epoch(1)
    no_probe = streamed.finish()
    for compute in (
        lambda: profiles.probe_responses(no_probe, 3, 1),
        lambda: profiles.selectivity_over_epochs(no_probe, 3),
        lambda: profiles.top_activating(no_probe, 3, 1),
    ):
        with pytest.raises(ProfileUnavailable, match="probe"):
            compute()
