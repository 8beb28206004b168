"""Neuron health flags (nn_tracing.analysis.health): definitions checked on known arrays and
on real traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nn_tracing import LayerInfo, load_trace
from nn_tracing.analysis.health import (
    HealthThresholds,
    dead_mask,
    neuron_health,
    saturation_share,
    starved_mask,
)


def test_dead_is_never_active_on_the_probe_where_the_flag_applies() -> None:
    act_max = np.array([[0.5, 0.0, -1.0, np.nan], [0.0, 2.0, -1.0, -3.0]])
    applies = np.array([True, True, True, False])
    assert dead_mask(act_max, applies).tolist() == [
        [False, True, True, False],
        [True, False, True, False],
    ]


def test_starved_is_below_one_percent_of_the_layer_median() -> None:
    grad = np.array([[1.0, 1.0, 1.0, 0.009, 0.011, 5.0, 0.0, 0.0]])
    mask, limits = starved_mask(grad, [slice(0, 5), slice(5, 6), slice(6, 8)], ratio=0.01)
    assert mask.tolist() == [[False, False, False, True, False, False, True, True]]
    assert limits[0].tolist() == [0.01, 0.05, 0.0]


def test_saturation_counts_probe_samples_near_the_bounds() -> None:
    layers = [
        LayerInfo("input", "input", 1, 0),
        LayerInfo("h", "linear", 2, 1, activation="Tanh"),
        LayerInfo("s", "linear", 1, 3, activation="Sigmoid"),
        LayerInfo("r", "linear", 1, 4, activation="ReLU"),
    ]
    acts = np.array(
        [
            [0.0, 0.99, 0.1, 0.999, 5.0],
            [0.0, -0.99, 0.2, 0.5, 0.0],
            [0.0, 0.98, 0.3, 0.001, 1.0],
            [0.0, 0.5, 0.99, 0.6, 2.0],
        ]
    )
    share = saturation_share(acts, layers, slope=0.05)
    assert np.isnan(share[0]) and np.isnan(share[4])
    assert share[1:4].tolist() == [0.75, 0.25, 0.5]  # column 2: only 0.99 is saturated


def test_a_relu_trace_has_dead_and_starved_flags_but_no_saturation(tiny_trace_file: Path) -> None:
    trace = load_trace(tiny_trace_file)
    health = neuron_health(trace)
    hidden = slice(trace.layer("hidden_1").first_id, trace.layer("hidden_2").last_id + 1)
    assert health.applies["dead"][hidden].all() and not health.applies["dead"][:2].any()
    assert not health.applies["saturated"].any()
    assert health.applies["starved"][2:].all() and not health.applies["starved"][:2].any()
    act_max = trace.metric("act_max")
    assert (health.flags["dead"][:, hidden] == (act_max[:, hidden] <= 0)).all()
    counts = health.counts()
    assert set(counts["flag"]) == {"dead", "starved"}
    assert set(counts["layer"]) == {"hidden_1", "hidden_2", "output"}
    assert (counts["count"] <= counts["n_neurons"]).all()


def test_a_saturating_tanh_trace_is_flagged_from_its_probe_activations(
    tanh_trace_file: Path,
) -> None:
    trace = load_trace(tanh_trace_file)
    seen: list[tuple[int, int]] = []
    health = neuron_health(trace, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(trace.epochs), len(trace.epochs))
    last = trace.epochs[-1]
    acts = trace.probe_activations(last)
    expected = (np.abs(acts) > np.sqrt(0.95)).mean(axis=0) > 0.5
    hidden = health.applies["saturated"]
    assert (health.flags["saturated"][-1][hidden] == expected[hidden]).all()
    assert not health.applies["dead"].any()
    assert health.totals(last)["saturated"] == int(expected[hidden].sum()) > 0


def test_thresholds_state_their_definitions() -> None:
    described = HealthThresholds().describe()
    assert "act_max ≤ 0" in described["dead"]
    assert "1% of its layer's median" in described["starved"]
    assert "|a| > 0.975" in described["saturated"]
