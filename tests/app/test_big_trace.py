"""The Overview and Neurons pages on a run directory large enough that they answer from DuckDB
(nn_tracing/trace_query.py) instead of a loaded frame: the numbers they show against the
whole frame computed apart (pandas/NumPy)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from apptest_support import assert_healthy, chart_rows, shown_charts
from streamlit.testing.v1 import AppTest

import nn_tracing as nt
from nn_tracing.synthetic import write_synthetic_run
from nn_tracing.trace import METRICS

SIZES = [20, 3000, 2000, 6, 10]
EPOCHS = 30


@pytest.fixture
def wide(runs_dir: Path) -> nt.NetworkTrace:
    """``runs/wide/``: 5 036 neurons × 30 recorded epochs, written through the writer; the
    trace loaded whole (its frame built) as the reference."""
    write_synthetic_run(runs_dir / "wide", SIZES, EPOCHS)
    trace = nt.load_trace(runs_dir / "wide")
    trace.frame  # noqa: B018 — the reference reads every part
    return trace


def _spec_rows(at: AppTest, title: str) -> list[dict]:
    for chart in shown_charts(at):
        spec = json.loads(chart.proto.spec)
        text = spec.get("title", {})
        text = text.get("text", "") if isinstance(text, dict) else str(text)
        if text == title:
            return chart_rows(chart)
    raise AssertionError(f"no chart titled {title!r}")


def test_the_overview_of_a_large_run_directory_shows_the_frames_numbers(
    app: Callable[[], AppTest], wide: nt.NetworkTrace
) -> None:
    at = app()
    at.query_params["trace"] = "wide"
    at.run()
    assert_healthy(at)
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Hidden neurons"] == f"{3000 + 2000 + 6:,}"
    assert tiles["Recorded epochs"] == str(EPOCHS)
    flat = wide.frame.reset_index()
    rows = [r for r in _spec_rows(at, "act_mean by layer over training") if "median" in r]
    assert len(rows) == len(SIZES) * EPOCHS
    for row in rows:
        cell = flat.loc[(flat["layer"] == row["layer"]) & (flat["epoch"] == row["epoch"])]
        values = cell["act_mean"].to_numpy(np.float64)
        p25, median, p75 = np.percentile(values[np.isfinite(values)], [25, 50, 75])
        assert row["median"] == pytest.approx(median, rel=1e-9)
        assert (row["p25"], row["p75"]) == pytest.approx((p25, p75), rel=1e-9)
    # the brain scan at the last epoch: hidden_1's cells are means of runs of its neurons
    scan = _spec_rows(at, f"act_mean at E_{EPOCHS - 1}")
    cells = [r for r in scan if r.get("layer") == "hidden_1"]
    values = wide.metrics_at(EPOCHS - 1)[20:3020, METRICS.index("act_mean")].astype(np.float64)
    assert sum(r["n"] for r in cells) == 3000
    total = sum(r["value"] * r["n"] for r in cells)
    assert total == pytest.approx(float(values.sum()), rel=1e-6, abs=1e-6)


def test_a_neurons_profile_in_a_large_run_directory_matches_the_frame(
    app: Callable[[], AppTest], wide: nt.NetworkTrace
) -> None:
    neuron = 20 + 1234
    at = app()
    at.query_params["trace"] = "wide"
    at.query_params["neuron"] = f"E_{EPOCHS - 1}/L_hidden_1/n_{neuron}"
    at.run()
    assert_healthy(at)
    want = wide.frame.xs(neuron, level="neuron")
    rows = next(d.value for d in at.dataframe if "signature" in d.value and "w_norm" in d.value)
    assert rows["epoch"].tolist() == list(range(EPOCHS))
    np.testing.assert_array_equal(
        rows[list(METRICS)].to_numpy(np.float32), want[list(METRICS)].to_numpy()
    )
    history = [r for r in chart_rows(shown_charts(at)[0]) if r.get("metric") == "w_norm"]
    block = wide.frame.xs("hidden_1", level="layer")["w_norm"].unstack().to_numpy(np.float64)
    own = block[:, neuron - 20]
    for row in history:
        epoch_values = block[row["epoch"]]
        assert row["value"] == pytest.approx(own[row["epoch"]], rel=1e-6)
        assert row["median"] == pytest.approx(np.median(epoch_values), rel=1e-9)
        share = (np.sum(epoch_values < own[row["epoch"]]) + 0.5) / epoch_values.size
        assert row["percentile"] == pytest.approx(share, rel=1e-9)


def test_the_clusters_page_says_what_it_loads_and_maps_a_stated_sample(
    app: Callable[[], AppTest], wide: nt.NetworkTrace
) -> None:
    from apptest_support import texts

    at = app()
    at.query_params["trace"] = "wide"
    for key, value in {"features": "trajectory", "max_neurons": "800", "perms": "5"}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("pages/clusters.py").run()
    assert_healthy(at)
    assert at.number_input(key="nnt.clusters.max_neurons").value == 800
    captions = texts(at.caption)
    assert "Loads 800 neurons × 30 features" in captions
    assert "a random sample (seed 0) of the 5,016 neurons" in captions
    titles = [json.loads(c.proto.spec).get("title") for c in shown_charts(at)]
    texts_ = [t.get("text", "") if isinstance(t, dict) else str(t or "") for t in titles]
    title = next(t for t in texts_ if t.startswith("PCA of "))
    # the sample the caption states, less the neurons whose trajectory is constant (dead)
    from nn_tracing.analysis.sampling import sample_neurons

    sample = sample_neurons(np.arange(20, wide.n_neurons), 800)
    act_mean = wide.metric("act_mean")[:, sample.ids]
    placeable = int((act_mean.std(axis=0) > 0).sum())
    assert 700 < placeable < 800
    assert title == f"PCA of {placeable} neurons", title


def test_the_dynamics_page_says_what_its_neuron_model_loads_and_samples(
    app: Callable[[], AppTest], wide: nt.NetworkTrace
) -> None:
    from apptest_support import texts

    at = app()
    at.query_params["trace"] = "wide"
    at.query_params["nmax"] = "500"
    at.query_params["nfeatures"] = "w_norm,act_std"
    at.run()
    at.switch_page("pages/dynamics.py").run()
    assert_healthy(at)
    captions = texts(at.caption)
    assert "Loads 500 neurons × 30 epochs × 2 features (0.2 MiB as float64)" in captions
    assert "a random sample (seed 0) of the 5,016 neurons" in captions


def test_a_neuron_page_over_ten_thousand_neurons_draws_the_open_tab_only(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    """Above ``LAZY_NEURONS`` the Neurons page draws its open tab only (the profile first)
    and the neuron's health line from its own flags; another tab is drawn when opened."""
    from apptest_support import texts

    from nn_tracing.analysis import neuron_health
    from nn_tracing.ui import neurons, state
    from nn_tracing.views.health import neuron_health_line

    sizes = [20, 6000, 5000, 10]
    assert sum(sizes) > neurons.LAZY_NEURONS
    write_synthetic_run(runs_dir / "lazy", sizes, 6)
    neuron = 20 + 6000 + 17
    at = app()
    at.query_params["trace"] = "lazy"
    at.query_params["neuron"] = f"E_5/L_hidden_2/n_{neuron}"
    at.run()
    assert_healthy(at)
    charts = shown_charts(at)
    assert len(charts) == 1  # the metrics over training; no weights, responses, table
    metrics = {r["metric"] for r in chart_rows(charts[0]) if "metric" in r}
    assert {"w_norm", "act_mean"} <= metrics
    assert "Blue: n_" + str(neuron) in texts(at.caption)
    assert not any(d.key and d.key.startswith(state.NEURON_HEALTH_TABLE) for d in at.dataframe)
    trace = nt.load_trace(runs_dir / "lazy")
    # drawn first alone, then redrawn in place against its layer (median, percentiles)
    block = trace.layer_metric("act_mean", "hidden_2").astype(np.float64)
    own = block[:, neuron - 20 - 6000]
    rows = [r for r in chart_rows(charts[0]) if r.get("metric") == "act_mean"]
    assert len(rows) == 6
    for row in rows:
        values = block[row["epoch"]]
        want = np.sum(values < own[row["epoch"]]) + 0.5 * np.sum(values == own[row["epoch"]])
        assert row["percentile"] == pytest.approx(want / values.size, rel=1e-9)
        assert row["median"] == pytest.approx(np.median(values), rel=1e-9)
    health = neuron_health(trace)
    assert neuron_health_line(health, neuron, 5) in texts(at.markdown)
    at.session_state[state.NEURON_TAB] = "Health of every neuron"  # AppTest cannot click
    at.run()
    assert_healthy(at)
    assert not shown_charts(at)  # the profile is not drawn behind the other tab
    table = next(d for d in at.dataframe if d.key and d.key.startswith(state.NEURON_HEALTH_TABLE))
    dead = set(np.flatnonzero(health.flags["dead"][health.epochs.index(5)]).tolist())
    shown = table.value
    assert len(shown) == 5_000 and set(shown.loc[shown["dead"].fillna(False), "neuron"]) <= dead
    assert neuron_health_line(health, neuron, 5) in texts(at.markdown)


def test_the_overviews_findings_above_the_picker_are_written_after_the_page_and_complete(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    """Above PICKER_MAX neurons the findings box waits for the page (its first chart must not
    wait for the health the findings need), then says what it found; the app's own health
    flags are drawn when asked (a toggle), and then the dead neurons are counted against the
    frame's own flags."""
    from nn_tracing.analysis.health import neuron_health
    from nn_tracing.views.neurons import PICKER_MAX

    sizes = [20, PICKER_MAX // 2 + 10, PICKER_MAX // 2 + 10, 10]
    write_synthetic_run(runs_dir / "huge", sizes, 4)
    at = app()
    at.query_params["trace"] = "huge"
    at.run(timeout=120)
    assert_healthy(at)
    # the session's first look: the summary and the curves; the rest waits for the browser
    captions = " ".join(c.value for c in at.caption)
    assert "appear here once the page below is drawn" in captions
    assert "drawn next, once this page is shown" in captions
    titles = [json.loads(chart.proto.spec).get("title", {}) for chart in shown_charts(at)]
    assert len(titles) == 2 and not any("at E_" in str(title) for title in titles)  # the curves
    at.run(timeout=120)  # the browser's poll: a full rerun draws the rest
    assert_healthy(at)
    shown = " ".join(m.value for m in at.markdown)
    captions = " ".join(c.value for c in at.caption)
    assert "appear here once the page below is drawn" not in captions
    assert "drawn next, once this page is shown" not in captions
    health = neuron_health(nt.load_trace(runs_dir / "huge"))
    hidden = health.applies["dead"]
    n_dead = int((health.flags["dead"][-1] & hidden).sum())
    n_hidden = int(hidden.sum())
    expected = (
        f"{n_dead} of {n_hidden} hidden neurons {'is' if n_dead == 1 else 'are'} dead"
        if n_dead
        else f"None of the {n_hidden}"
    )
    assert expected not in shown.replace("\\", "")  # the app's own flags: when asked
    assert "dormant at E_3" in shown
    from nn_tracing.ui import state

    at.toggle(key=state.OVERVIEW_OWN_HEALTH).set_value(True).run(timeout=120)
    assert_healthy(at)
    shown = " ".join(m.value for m in at.markdown)
    assert expected in shown.replace("\\", "")
    assert "Flagged at E_3" in shown
