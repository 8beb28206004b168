"""τ-dormant neurons and contribution utility (nn_tracing.analysis.dormancy) against their
definitions written out in numpy over real networks' probe activations and weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nn_tracing import MLP, NetworkTrace, TraceableNN, load_trace, train
from nn_tracing.analysis.dormancy import (
    DEFINITIONS,
    DORMANT_TAUS,
    contribution_utility,
    dormancy,
    dormant_scores,
    outgoing_abs_weights,
)
from nn_tracing.data import prepare_data
from nn_tracing.rundir import RunWriter
from nn_tracing.views.findings import overview_findings
from tests.conftest import TINY_CONFIG


def _brute_scores(trace: NetworkTrace) -> dict[str, np.ndarray]:
    """Sokar et al.'s score with loops: mean |h| over the probe / the layer's average."""
    out = {}
    for info in trace.layers[1:-1]:
        rows = []
        for epoch in trace.epochs:
            acts = trace.probe_activations(epoch).astype(np.float64)
            mean_abs = [np.mean(np.abs(acts[:, i])) for i in info.ids]
            average = sum(mean_abs) / len(mean_abs)
            rows.append([m / average if average > 0 else 0.0 for m in mean_abs])
        out[info.name] = np.array(rows)
    return out


def test_scores_divide_by_the_layers_average_and_a_silent_layer_is_all_dormant() -> None:
    scores = dormant_scores(np.array([[0.0, 1.0, 3.0], [0.0, 0.0, 0.0], [1.0, np.nan, 1.0]]))
    assert np.allclose(scores[0], [0.0, 0.75, 2.25])
    assert scores[1].tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(scores[2]).all()


def test_a_relu_traces_scores_are_exact_from_its_statistics(tiny_trace_file: Path) -> None:
    trace = load_trace(tiny_trace_file)
    result = dormancy(trace)
    expected = _brute_scores(trace)
    assert set(result.sources.values()) == {"exact: no neuron changes sign (|act_mean|)"}
    for name, scores in expected.items():
        assert np.allclose(result.scores[name], scores, rtol=1e-5, atol=1e-7)
    counts = result.counts()
    assert len(counts) == len(trace.epochs) * 2 * len(DORMANT_TAUS)
    for row in counts.itertuples():
        e = trace.epochs.index(row.epoch)
        assert row.n_dormant == int((expected[row.layer][e] <= row.tau).sum())
        assert row.fraction == row.n_dormant / row.n_neurons
    last = result.at(trace.epochs[-1], 0.1)
    assert last["layer"].tolist() == ["hidden_1", "hidden_2"]
    assert last["n_dormant"].tolist() == [
        int((expected[name][-1] <= 0.1).sum()) for name in ("hidden_1", "hidden_2")
    ]
    total = sum(last["n_dormant"]) / sum(last["n_neurons"])
    assert result.fraction(trace.epochs[-1], 0.1) == total


def test_a_tanh_traces_scores_come_from_its_kept_probe_activations(tanh_trace_file: Path) -> None:
    trace = load_trace(tanh_trace_file)
    result = dormancy(trace)
    assert set(result.sources.values()) == {"exact: kept probe activations"}
    for name, scores in _brute_scores(trace).items():
        assert np.allclose(result.scores[name], scores, rtol=1e-5, atol=1e-7)


def test_a_subset_of_kept_samples_is_called_an_estimate() -> None:
    run = train(TINY_CONFIG.replace(activation="tanh", epochs=1, activation_samples=16))
    result = dormancy(run.trace)
    assert not result.exact
    assert all("16 of 64 probe samples kept" in s for s in result.sources.values())


def test_a_run_directory_is_read_through_duckdb_with_the_same_counts(
    tiny_trace_file: Path, tmp_path: Path
) -> None:
    trace = load_trace(tiny_trace_file)
    writer = RunWriter(tmp_path / "run", trace)
    for epoch in trace.epochs:
        writer.write_epoch(epoch)
    writer.close()
    loaded = load_trace(tmp_path / "run")
    assert loaded.query is not None
    on_disk, in_memory = dormancy(loaded).counts(), dormancy(trace).counts()
    assert on_disk.equals(in_memory)


# -- a neuron made dormant at a known epoch, weights kept -----------------------------------------
KILL_FROM = 3


@pytest.fixture(scope="module")
def planted() -> NetworkTrace:
    """A tiny ReLU MLP trained in our own loop; neuron n_2 (hidden_1's first) is silenced by a
    bias of -100 from E_3 on; weights kept at every epoch."""
    data = prepare_data(TINY_CONFIG)
    torch.manual_seed(0)
    net = MLP(2, (8, 8), 2, "relu")
    probe = (torch.from_numpy(data.X_probe), torch.from_numpy(data.y_probe))
    model = TraceableNN(net, probe=probe, loss_fn=F.cross_entropy, keep_weights=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    for epoch in range(1, 6):
        model.start_epoch(epoch)
        for start in range(0, len(x), 64):
            loss = F.cross_entropy(model(x[start : start + 64]), y[start : start + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch >= KILL_FROM:
            with torch.no_grad():
                net.hidden_1.bias[0] = -100.0
        model.end_epoch(epoch, train_loss=loss.item())
    return model.finish()


def test_dormant_since_is_the_start_of_the_last_unbroken_run(planted: NetworkTrace) -> None:
    result = dormancy(planted)
    brute = _brute_scores(planted)
    for tau in DORMANT_TAUS:
        since = result.dormant_since(tau)
        expected = {}
        for info in planted.layers[1:-1]:
            for col, neuron in enumerate(info.ids):
                start = None
                for e in range(len(planted.epochs) - 1, -1, -1):
                    if brute[info.name][e, col] > tau:
                        break
                    start = planted.epochs[e]
                if start is not None:
                    expected[neuron] = start
        assert dict(zip(since["neuron"], since["since"], strict=True)) == expected
    assert brute["hidden_1"][KILL_FROM - 1, 0] > 0.1  # awake before the bias was forced
    assert (
        dict(zip(result.dormant_since(0.0)["neuron"], result.dormant_since(0.0)["since"]))[2]
        == KILL_FROM
    )


def test_contribution_utility_is_mean_abs_activation_times_outgoing_weights(
    planted: NetworkTrace,
) -> None:
    for epoch in planted.epochs:
        result = contribution_utility(planted, epoch)
        assert result.weights_epoch == epoch and "weights of" in result.note
        acts = planted.probe_activations(epoch).astype(np.float64)
        weights = planted.weights(epoch)
        expected = np.full(planted.n_neurons, np.nan)
        for info, reader in (("hidden_1", "hidden_2"), ("hidden_2", "output")):
            layer = planted.layer(info)
            w = weights[f"{reader}.weight"].astype(np.float64)
            for col, neuron in enumerate(layer.ids):
                outgoing = sum(abs(w[k, col]) for k in range(w.shape[0]))
                expected[neuron] = np.mean(np.abs(acts[:, neuron])) * outgoing
        assert np.allclose(result.values, expected, rtol=1e-5, equal_nan=True)
        assert (result.values[2] == 0.0) == (epoch >= KILL_FROM)


def test_utility_without_kept_weights_says_the_final_weights_stand_in(
    tiny_trace_file: Path,
) -> None:
    trace = load_trace(tiny_trace_file)
    result = contribution_utility(trace, 0)
    assert result.weights_epoch == trace.epochs[-1]
    assert "final weights" in result.note


def test_outgoing_weights_of_a_channel_sum_over_its_kernel_and_a_flatten() -> None:
    rng = np.random.default_rng(0)
    conv = rng.standard_normal((5, 3, 2, 2))
    expected = [
        sum(abs(conv[o, c, i, j]) for o in range(5) for i in range(2) for j in range(2))
        for c in range(3)
    ]
    assert np.allclose(outgoing_abs_weights(conv, 3), expected)
    flat = rng.standard_normal((4, 3 * 6))  # 3 channels of 6 positions, channel-major
    expected = [np.abs(flat[:, c * 6 : (c + 1) * 6]).sum() for c in range(3)]
    assert np.allclose(outgoing_abs_weights(flat, 3), expected)
    assert outgoing_abs_weights(rng.standard_normal((4, 7)), 3) is None


def test_the_definitions_cite_their_papers() -> None:
    assert "Sokar et al., ICML 2023" in DEFINITIONS["dormant"]
    assert "Dohare et al., Nature 2024" in DEFINITIONS["utility"]


def test_flags_over_global_ids_feed_the_overviews_finding(planted: NetworkTrace) -> None:
    """Dormancy.flags places each hidden layer's mask at its neurons' global ids; the
    Overview's finding then counts hidden neurons only and dates the silenced one."""
    result = dormancy(planted)
    brute = _brute_scores(planted)
    flags, applies = result.flags(0.0, planted.n_neurons)
    hidden = [info for info in planted.layers[1:-1]]
    assert applies.sum() == sum(info.n_neurons for info in hidden)
    assert not applies[planted.layers[0].ids].any() and not applies[planted.layers[-1].ids].any()
    for info in hidden:
        np.testing.assert_array_equal(flags[:, list(info.ids)], brute[info.name] <= 0.0)
    found = overview_findings(planted, None, dormant=flags, dormant_applies=applies)
    text = found[0].text.replace("\\", "")
    n_dormant = int(flags[-1].sum())
    verb = "is" if n_dormant == 1 else "are"
    assert text.startswith(f"**{n_dormant} of 16 hidden neurons {verb} dormant** at E_5")
    since = result.dormant_since(0.0)["since"]
    assert max(since) == KILL_FROM  # the silenced neuron is the last to fall asleep
    assert f"all since E_{KILL_FROM} (the first since E_{min(since)})" in text
