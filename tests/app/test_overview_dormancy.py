"""The Overview's neuron-health headline: τ-dormant neurons per layer over training, τ chosen,
the chart's numbers those of nn_tracing.analysis.dormancy on the same trace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from apptest_support import assert_healthy, chart_rows, shown_charts, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import load_trace
from nn_tracing.ui import state


def _dormancy_chart(at: AppTest) -> list[dict]:
    charts = [c for c in shown_charts(at) if "dormant neurons per layer" in c.proto.spec]
    assert len(charts) == 1
    return chart_rows(charts[0])


def _brute_force_fractions(trace, tau: float) -> dict[tuple[int, str], float]:
    """Sokar et al.'s score written out over the kept probe activations (every sample kept)."""
    out = {}
    for epoch in trace.epochs:
        acts = trace.probe_activations(epoch)
        for info in trace.layers[1:-1]:
            mean_abs = np.abs(acts[:, info.first_id : info.last_id + 1]).mean(0)
            average = mean_abs.mean()
            score = mean_abs / average if average > 0 else np.zeros_like(mean_abs)
            out[(epoch, info.name)] = float((score <= tau).mean())
    return out


def test_overview_headlines_tau_dormant_neurons_and_tau_can_be_changed(
    app: Callable[[], AppTest], tiny_trace_file: Path
) -> None:
    at = app().run()
    assert_healthy(at)
    trace = load_trace(tiny_trace_file)
    for tau in (0.025, 0.1):
        if tau != 0.025:
            at.button_group(key=state.OVERVIEW_DORMANT_TAU).set_value(tau).run()
            assert_healthy(at)
            assert at.query_params["tau"] == str(tau)
        rows = [r for r in _dormancy_chart(at) if "fraction" in r]
        expected = _brute_force_fractions(trace, tau)
        assert {(r["epoch"], r["layer"]) for r in rows} == set(expected)
        for row in rows:
            assert row["fraction"] == expected[(row["epoch"], row["layer"])]
            assert row["signature"].startswith(f"E_{row['epoch']}/L_{row['layer']}")
    labels = [m.label for m in at.metric]
    assert "hidden_1 at E_4" in labels and "hidden_2 at E_4" in labels
    assert "Sokar et al., ICML 2023" in texts(at.caption)
    # our own thresholds are kept, folded
    assert any(e.label.startswith("Dead, saturated") for e in at.expander)
    assert any(label.startswith("Dead at E_4") for label in labels)


def test_the_brain_scan_colours_by_contribution_utility(
    app: Callable[[], AppTest], tiny_trace_file: Path
) -> None:
    from nn_tracing.analysis.dormancy import contribution_utility

    at = app().run()
    at.selectbox(key=state.OVERVIEW_METRIC).set_value("utility").run()
    assert_healthy(at)
    assert at.query_params["metric"] == "utility"
    trace = load_trace(tiny_trace_file)
    expected = contribution_utility(trace, trace.epochs[-1]).values
    scans = [c for c in shown_charts(at) if '"color"' in c.proto.spec]
    rows = [r for c in scans for r in chart_rows(c) if "neuron" in r and "layer" in r]
    hidden = [r for r in rows if r["layer"].startswith("hidden")]
    assert hidden
    for row in hidden:
        assert np.isclose(row["value"], expected[row["neuron"]], rtol=1e-5)
    at.select_slider(key=state.epoch_key(state.OVERVIEW_EPOCH, "run:tiny")).set_value(2).run()
    assert_healthy(at)
    assert "the final weights (E_4) stand in for them" in texts(at.caption)
