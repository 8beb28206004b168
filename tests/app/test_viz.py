"""Chart builders (nn_tracing.viz): signatures in every tooltip, the mark budget, binning."""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import numpy as np
import pytest

from nn_tracing import load_trace
from nn_tracing.analysis import neuron_health
from nn_tracing.viz import (
    brain_scan_chart,
    brain_scan_frame,
    curves_frame,
    element_height,
    health_chart,
    health_frame,
    layer_epoch_chart,
    layer_epoch_frame,
    layer_quantiles,
    neuron_epoch_chart,
    neuron_epoch_frame,
    neuron_history_chart,
    neuron_history_frame,
    training_curves_chart,
)
from nn_tracing.viz.common import binned_means
from nn_tracing.viz.neuron import even_columns


@pytest.fixture(scope="module")
def trace(tiny_trace_file: Path):
    return load_trace(tiny_trace_file)


def _tooltips(chart: alt.TopLevelMixin) -> list[str]:
    spec = json.dumps(chart.to_dict())
    return [f for f in ("signature",) if f'"field": "{f}"' in spec]


def test_every_chart_has_a_signature_tooltip(trace) -> None:
    health = neuron_health(trace)
    charts = [
        brain_scan_chart(brain_scan_frame(trace, 4, "act_mean")),
        layer_epoch_chart(layer_epoch_frame(trace, "grad_norm"), "grad_norm", trace.layer_names()),
        neuron_epoch_chart(neuron_epoch_frame(trace, "hidden_1", "w_norm"), "w_norm"),
        health_chart(health_frame(health), trace.layer_names(), 2),
        training_curves_chart(curves_frame(trace.history), "loss"),
        neuron_history_chart(neuron_history_frame(trace, 3, layer_quantiles(trace, "hidden_1"), 4)),
    ]
    for chart in charts:
        assert _tooltips(chart) == ["signature"]
        assert element_height(chart) > 100


def test_brain_scan_has_one_cell_per_neuron_under_the_budget(trace) -> None:
    scan = brain_scan_frame(trace, 4, "act_max", order="value")
    frame = scan.frame
    assert not scan.binned and len(frame) == trace.n_neurons
    assert sorted(frame["neuron"]) == list(range(trace.n_neurons))
    assert frame.loc[frame["neuron"] == 5, "signature"].item() == "E_4/L_hidden_1/n_5"
    hidden = frame[frame["layer"] == "hidden_1"]["value"].to_numpy()
    assert (np.diff(hidden[np.isfinite(hidden)]) >= 0).all()  # ordered by value


def test_brain_scan_bins_above_the_budget_and_says_so(trace) -> None:
    scan = brain_scan_frame(trace, 4, "act_mean", budget=6)
    assert scan.binned and scan.bin_size == 4 and len(scan.frame) <= 6 + len(trace.layers)
    assert scan.frame["n"].sum() == trace.n_neurons
    subtitle = brain_scan_chart(scan).to_dict()["title"]["subtitle"]
    assert any("binned" in line and "mark budget" in line for line in subtitle)
    hidden = scan.frame[scan.frame["layer"] == "hidden_1"]
    assert hidden["neurons"].iloc[0] == "E_4/L_hidden_1/n_2 … n_5 (4 neurons)"
    expected = np.nanmean(trace.metrics_at(4)[2:6, 7])  # act_mean of n_2 … n_5
    assert hidden["value"].iloc[0] == pytest.approx(expected)


def test_layer_by_epoch_and_neuron_by_epoch_respect_the_budget(trace) -> None:
    frame = neuron_epoch_frame(trace, "hidden_1", "act_mean", budget=20)
    assert len(frame) <= 20 + 16
    assert frame.attrs["row_size"] * frame.attrs["epoch_size"] > 1
    medians = layer_epoch_frame(trace, "act_mean")
    row = medians[(medians["layer"] == "hidden_2") & (medians["epoch"] == 4)].iloc[0]
    values = trace.metrics_at(4)[trace.layer("hidden_2").first_id :][:8, 7]
    assert row["median"] == pytest.approx(np.median(values))
    assert row["signature"] == "E_4/L_hidden_2"


def test_binned_means_ignore_nan_and_keep_short_tails() -> None:
    values = np.array([1.0, 3.0, np.nan, np.nan, 5.0])
    assert binned_means(values, 2).tolist()[:1] == [2.0]
    assert np.isnan(binned_means(values, 2)[1]) and binned_means(values, 2)[2] == 5.0


def test_a_neurons_small_multiples_fill_an_even_grid(trace) -> None:
    frame = neuron_history_frame(trace, 3, layer_quantiles(trace, "hidden_1"), 4)
    chart = neuron_history_chart(frame)
    n_panels = len(chart.facet.to_dict()["sort"])
    columns = chart.columns
    assert n_panels % columns == 0 or n_panels % columns >= columns - 2  # at most 2 gaps
    assert columns == even_columns(n_panels)
    spec = chart.to_dict()
    # every panel keeps the same room for its y labels, so that the columns line up
    assert spec["spec"]["layer"][0]["encoding"]["y"]["axis"]["minExtent"] == 44
    # every panel draws its own epoch axis (a shared one sits at the grid's foot, under the
    # empty cells of a short last row), on one shared epoch scale
    assert spec["resolve"]["axis"] == {"x": "independent"}
    assert "x" not in spec["resolve"].get("scale", {})
    # no tall gap below: the element is no taller than its rows, headers and axes need
    rows = -(-n_panels // columns)
    assert element_height(chart) <= rows * (100 + 22 + 24 + 30) + 36
