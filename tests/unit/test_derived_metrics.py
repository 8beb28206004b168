"""Metrics pages colour by (nn_tracing.analysis.derived_metrics): the recorded ones and the
derived contribution utility, read one way by the brain scan, its views over time and the
Clusters page's colours — checked against the utility written out from weights and activations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nn_tracing import NetworkTrace, TrainConfig, load_trace, train
from nn_tracing.analysis.derived_metrics import COLOUR_METRICS, metric_at, metric_over_time
from nn_tracing.trace import METRICS
from nn_tracing.views import clusters as cluster_views
from nn_tracing.viz import brain_scan_frame, layer_epoch_frame, metric_title, neuron_epoch_frame


@pytest.fixture(scope="module")
def trace() -> NetworkTrace:
    config = TrainConfig(
        dataset="moons",
        hidden_sizes=(8, 6),
        epochs=3,
        n_samples=300,
        probe_size=64,
        seed=1,
        keep_weights=True,
    )
    return train(config).trace


def _utility(trace: NetworkTrace, epoch: int) -> np.ndarray:
    """Dohare et al.'s utility with loops over the kept weights and probe activations."""
    acts = trace.probe_activations(epoch).astype(np.float64)
    weights = trace.weights(epoch)
    out = np.full(trace.n_neurons, np.nan)
    for layer, reader in (("hidden_1", "hidden_2"), ("hidden_2", "output")):
        w = weights[f"{reader}.weight"]
        for col, neuron in enumerate(trace.layer(layer).ids):
            out[neuron] = np.abs(acts[:, neuron]).mean() * np.abs(w[:, col]).sum()
    return out


def test_utility_is_one_of_the_colour_metrics_and_says_what_it_is() -> None:
    assert COLOUR_METRICS[: len(METRICS)] == METRICS and "utility" in COLOUR_METRICS
    assert "Dohare et al. 2024" in metric_title("utility")
    with pytest.raises(KeyError, match="no metric"):
        metric_at(None, 0, "nope")  # type: ignore[arg-type]


def test_the_brain_scan_and_its_views_over_time_show_the_utility(trace: NetworkTrace) -> None:
    expected = np.stack([_utility(trace, e) for e in trace.epochs])
    assert np.allclose(metric_over_time(trace, "utility"), expected, rtol=1e-5, equal_nan=True)
    last = trace.epochs[-1]
    scan = brain_scan_frame(trace, last, "utility").frame
    assert np.allclose(
        scan["value"].to_numpy(), expected[-1][scan["neuron"].to_numpy()], equal_nan=True
    )
    layers = layer_epoch_frame(trace, "utility").set_index(["layer", "epoch"])
    block = expected[:, trace.layer("hidden_2").first_id : trace.layer("hidden_2").last_id + 1]
    for e, epoch in enumerate(trace.epochs):
        assert np.isclose(layers.loc[("hidden_2", epoch), "median"], np.median(block[e]))
    cells = neuron_epoch_frame(trace, "hidden_1", "utility")
    assert np.allclose(
        cells["value"], expected[cells["epoch"].map(trace.epochs.index), cells["neuron"]]
    )


def test_clusters_colour_points_by_utility_at_the_chosen_epoch(trace: NetworkTrace) -> None:
    ids = np.arange(2, 16)
    layers = trace.neuron_layers()[ids]
    coloring = cluster_views.point_colors(trace, ids, layers, None, "metric", "utility", 1)
    assert np.allclose(coloring.values.to_numpy(), _utility(trace, 1)[ids])


def test_a_recorded_metric_reads_as_the_frame_does(tiny_trace_file: Path) -> None:
    trace = load_trace(tiny_trace_file)
    frame = trace.frame["w_norm"].unstack(["layer", "neuron"]).to_numpy()
    assert np.array_equal(
        metric_over_time(trace, "w_norm"), frame.astype(np.float64), equal_nan=True
    )
    assert np.array_equal(metric_at(trace, 2, "w_norm"), frame[2], equal_nan=True)
