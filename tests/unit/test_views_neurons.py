"""The Neurons page's builders (nn_tracing.views.neurons) on a tiny trace made by real
training: which neuron a link names, which epoch's weights can be shown, the neuron against
its layer (against scipy's percentile), captions and rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import nn_tracing as nt
from nn_tracing.analysis import profiles
from nn_tracing.trace import METRICS
from nn_tracing.views import neurons as views


@pytest.fixture
def trace(tiny_trace_file: Path) -> nt.NetworkTrace:
    """A fresh copy per test (some tests change its meta)."""
    return nt.load_trace(tiny_trace_file)


def test_a_link_names_a_neuron_or_falls_back_with_a_notice(trace: nt.NetworkTrace) -> None:
    assert views.default_neuron(trace) == 2  # the first neuron past the two inputs
    assert views.resolve_neuron(trace, None) == (4, 2, None)
    assert views.resolve_neuron(trace, "E_3/L_hidden_2/n_12") == (3, 12, None)
    epoch, neuron, notice = views.resolve_neuron(trace, "E_3/L_hidden_1/n_12")
    assert (epoch, neuron) == (3, 2) and "is not a neuron of this trace" in str(notice)
    assert "L_hidden_2 n_10…n_17" in str(notice)
    epoch, neuron, notice = views.resolve_neuron(trace, "E_99/L_hidden_2/n_12")
    assert (epoch, neuron) == (4, 12) and "E_99 was not recorded" in str(notice)
    epoch, neuron, notice = views.resolve_neuron(trace, "not a signature")
    assert (epoch, neuron) == (4, 2) and notice


def test_the_nearest_epoch_prefers_the_earlier_one_on_a_tie() -> None:
    assert views.nearest_epoch(2, [1, 3, 10]) == 1
    assert views.nearest_epoch(7, [1, 3, 10]) == 10
    assert views.nearest_epoch(3, [1, 3, 10]) == 3


def test_a_run_without_kept_weights_shows_its_final_weights_and_says_so(
    trace: nt.NetworkTrace,
) -> None:
    assert trace.epochs_with_weights == [4]
    assert views.weights_epoch(trace, 4) == (4, None)
    epoch, notice = views.weights_epoch(trace, 1)
    assert epoch == 4 and notice is not None
    assert notice.startswith("This run kept its weights only at E_4") and "not E_1's" in notice
    field_epoch, field_notice = views.field_epoch(trace, 2)
    assert field_epoch == 4 and field_notice is not None and "not E_2's" in field_notice


def test_the_neuron_against_its_layer_matches_scipy(trace: nt.NetworkTrace) -> None:
    frame = views.metrics_against_layer(trace, 3, 12)
    assert frame["metric"].tolist() == list(METRICS)
    layer = trace.frame.xs(3, level="epoch").xs("hidden_2", level="layer")
    for _, row in frame.iterrows():
        values = layer[row["metric"]].to_numpy(dtype=np.float64)
        own = values[12 - 10]
        finite = values[np.isfinite(values)]
        if not np.isfinite(own) or finite.size == 0:
            assert np.isnan(row["percentile in layer"])
            continue
        assert row["value"] == pytest.approx(own)
        assert row["layer median"] == pytest.approx(np.median(finite))
        expected = stats.percentileofscore(finite, own, kind="mean")
        assert row["percentile in layer"] == pytest.approx(expected)


def test_the_neurons_rows_are_its_metrics_at_every_recorded_epoch(trace: nt.NetworkTrace) -> None:
    rows = views.neuron_rows(trace, 12)
    assert rows["signature"].tolist() == [f"E_{e}/L_hidden_2/n_12" for e in trace.epochs]
    expected = trace.frame.xs(12, level="neuron")["w_norm"].to_numpy()
    np.testing.assert_array_equal(rows["w_norm"].to_numpy(), expected)
    csv = views.probe_csv(trace, 12, 3).decode()
    assert len(csv.strip().splitlines()) == 1 + trace.meta["n_probe"]


def test_the_connections_table_links_the_other_neuron_at_the_pages_epoch(
    trace: nt.NetworkTrace,
) -> None:
    connections = profiles.strongest_connections(trace, 12, 4, k=5)
    table = views.connections_table(connections, trace, 2, lambda s: f"?neuron={s}")
    assert table.columns.tolist() == [
        "direction",
        "link",
        "weight",
        "matrix_percentile",
        "weight_e0",
    ]
    expected = [f"?neuron={trace.signature(2, int(n))}" for n in connections["neuron"]]
    assert table["link"].tolist() == expected


def test_captions_escape_names_from_the_trace(trace: nt.NetworkTrace) -> None:
    assert "neurons of L_hidden\\_2;" in views.history_caption(trace, 12, 3, "hidden_2")
    assert "Sources: the neurons of L_hidden\\_1 " in views.sources_caption(trace, 12)
    enrichment = pd.DataFrame(
        {
            "class": ["a_b", "c"],
            "in_top": [9, 3],
            "expected": [6.0, 6.0],
            "p_value": [0.01, 0.9],
            "p_adjusted": [0.02, 1.0],
        }
    )
    caption = views.enrichment_caption(enrichment, 12, "most active")
    assert caption is not None and "are class a\\_b" in caption
    assert "more than chance explains" in caption and "over 2 classes" in caption
    assert views.enrichment_caption(enrichment.iloc[:0], 12, "most active") is None


def test_the_selectivity_captions_give_the_verdict_and_the_epochs_tested() -> None:
    selectivity = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "tested": [True, False, True],
            "selectivity": [0.1, 0.2, 0.5],
            "preferred_class": ["x", "y", "z*"],
            "null_median": [0.1, np.nan, 0.1],
            "null_p95": [0.2, np.nan, 0.2],
            "p_value": [0.5, np.nan, 0.01],
        }
    )
    verdict, spread = views.selectivity_captions(selectivity, 2, 200)
    assert verdict.startswith("At E_2: index 0.500, preferring class z\\*")
    assert "above chance (p = 0.01, 200 shuffles)" in verdict
    assert spread == "The null was computed at 2 of 3 recorded epochs, spread evenly."
    assert views.selectivity_captions(selectivity, 1, 200) == [spread]


def test_top_samples_are_images_only_when_the_image_covers_every_input(
    trace: nt.NetworkTrace,
) -> None:
    top = profiles.top_activating(trace, 12, 3, 4)
    features = [c for c in top.columns if c not in profiles.TOP_COLUMNS]
    assert len(features) == 2 and views.top_image_shape(trace, top) is None
    trace.meta["dataset"]["image_shape"] = [1, 2]
    assert views.top_image_shape(trace, top) == ((1, 2), features)
    trace.meta["dataset"]["image_shape"] = [2, 2]
    assert views.top_image_shape(trace, top) is None
    assert views.weight_image_frame(trace, 12, 3, 4) is None  # moons: no image


def test_the_neuron_picker_of_a_large_trace_lists_a_window_and_every_layer(tmp_path):
    from nn_tracing import load_trace as nt_load
    from nn_tracing.synthetic import write_synthetic_run as synthetic_run
    from nn_tracing.views.neurons import PICKER_MAX, PICKER_WINDOW, picker_options

    run = synthetic_run(tmp_path / "wide", [20, 3 * PICKER_MAX, 10], 2)
    trace = nt_load(run)
    options, note = picker_options(trace, 1, 20 + 29_000)
    end = 20 + 3 * PICKER_MAX - 1  # the layer's last neuron
    assert note is not None and f"n_{end}" in note  # the window ends at the layer's end
    assert len(options) == PICKER_WINDOW + 3  # the window, and the first neuron of every layer
    assert options[0] == "E_1/L_input/n_0" and options[-1] == f"E_1/L_output/n_{end + 1}"
    first = end + 1 - PICKER_WINDOW
    assert f"E_1/L_hidden_1/n_{first}" in options and f"E_1/L_hidden_1/n_{first - 1}" not in options
    small, none = picker_options(nt_load(synthetic_run(tmp_path / "s", [4, 8, 2], 2)), 0, 5)
    assert none is None and len(small) == 14
