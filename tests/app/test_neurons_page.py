"""The Neurons page through the real entrypoint: a neuron opened by the query parameter, by a
row of the health table and by a click on a chart; the digits image charts, the moons
activation field, and traces on which an analysis cannot run."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from apptest_support import assert_healthy, chart_rows, shown_charts, texts
from streamlit.testing.v1 import AppTest
from torch import nn

import nn_tracing as nt
from nn_tracing.analysis import neuron_health
from nn_tracing.ui import state

TINY = nt.TrainConfig(
    dataset="moons", hidden_sizes=(8, 8), epochs=4, n_samples=300, probe_size=64, seed=0
)


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = nt.TrainConfig(dataset="digits", hidden_sizes=(8,), epochs=2, probe_size=64, seed=0)
    return nt.save_trace(nt.train(config).trace, tmp_path_factory.mktemp("t") / "digits.nntrace")


@pytest.fixture(scope="module")
def kept_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trace = nt.train(TINY.replace(keep_weights=True)).trace
    return nt.save_trace(trace, tmp_path_factory.mktemp("t") / "kept.nntrace")


@pytest.fixture(scope="module")
def custom_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom module traced without a probe (statistics streamed over training batches)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3))
    x, y = torch.randn(64, 2), torch.randint(0, 3, (64,))
    model = nt.TraceableNN(net, example_input=x[:2], epoch_intervals=[1, 2], num_epochs=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in (1, 2):
        model.start_epoch(epoch)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.end_epoch(epoch, train_loss=loss.item())
    return nt.save_trace(model.finish(), tmp_path_factory.mktemp("t") / "custom.nntrace")


def _open(app: Callable[[], AppTest], trace: str, neuron: str) -> AppTest:
    at = app()
    at.query_params["trace"] = trace
    at.query_params["neuron"] = neuron
    return at.run()


def _specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in shown_charts(at)]


def _title(spec: dict) -> str:
    title = spec.get("title")
    return title.get("text", "") if isinstance(title, dict) else str(title or "")


def _titles(at: AppTest) -> list[str]:
    return [_title(spec) for spec in _specs(at)]


def _health_table(at: AppTest):
    return next(d for d in at.dataframe if d.key and d.key.startswith(state.NEURON_HEALTH_TABLE))


def test_the_query_parameter_opens_the_neuron_with_every_section(
    app: Callable[[], AppTest],
) -> None:
    at = _open(app, "tiny", "E_3/L_hidden_2/n_12")
    assert_healthy(at)
    assert at.selectbox(key=state.NEURON_PICK).value == "E_3/L_hidden_2/n_12"
    assert [t.label for t in at.tabs] == [
        "Over training",
        "Inputs and outputs",
        "What it responds to",
        "Health of every neuron",
        "Its data",
    ]
    titles = _titles(at)
    for title in (
        "Incoming weights",
        "Strongest connections",
        "Activation by class on the probe set",
        "Class selectivity over training",
        "Activation field",
    ):
        assert title in titles
    assert len(titles) == 6  # and the metrics' small multiples (a facet without a title)
    assert "Health at E_3" in texts(at.markdown)
    # this run kept only its final weights: the page says whose weights it shows
    notes = texts(at.main.info)
    assert "kept its weights only at E_4" in notes and "kept them only at E_4" in notes
    labels = [b.label for b in at.get("download_button")]
    assert "Its rows (CSV)" in labels and "Its probe activations at E_3 (CSV)" in labels
    rows = next(d.value for d in at.dataframe if "signature" in d.value and "w_norm" in d.value)
    assert rows["signature"].tolist() == [f"E_{e}/L_hidden_2/n_12" for e in range(5)]
    top = next(d.value for d in at.dataframe if "probe_index" in d.value)
    assert len(top) == 12 and top["activation"].is_monotonic_decreasing
    at.radio(key=state.NEURON_TOP_ORDER).set_value("least active").run()
    least = next(d.value for d in at.dataframe if "probe_index" in d.value)
    assert least["activation"].is_monotonic_increasing
    assert_healthy(at)


def test_a_row_selected_in_the_health_table_opens_that_neuron(
    app: Callable[[], AppTest],
) -> None:
    at = _open(app, "tiny", "E_3/L_hidden_2/n_12")
    table = _health_table(at)
    view = table.value
    assert len(view) == 20 and set(view["neuron"]) == set(range(20))
    row = int(np.flatnonzero(view["neuron"].to_numpy() == 7)[0])
    at.session_state[table.key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert_healthy(at)
    assert at.query_params["neuron"] == "E_3/L_hidden_1/n_7"
    assert at.selectbox(key=state.NEURON_PICK).value == "E_3/L_hidden_1/n_7"
    assert _health_table(at).key != table.key  # a new table: the selection does not linger


def test_the_health_table_filters_by_layer_and_by_flag(
    app: Callable[[], AppTest], tiny_trace_file: Path
) -> None:
    at = _open(app, "tiny", "E_4/L_hidden_1/n_2")
    at.multiselect(key=state.NEURON_HEALTH_LAYERS).set_value(["hidden_2"]).run()
    view = _health_table(at).value
    assert set(view["layer"]) == {"hidden_2"} and len(view) == 8
    at.multiselect(key=state.NEURON_HEALTH_LAYERS).set_value([]).run()
    at.multiselect(key=state.NEURON_HEALTH_FLAGS).set_value(["starved", "dead"]).run()
    view = _health_table(at).value
    health = neuron_health(nt.load_trace(tiny_trace_file))
    row = health.epochs.index(4)
    expected = np.flatnonzero(health.flags["starved"][row] | health.flags["dead"][row])
    assert sorted(view["neuron"]) == expected.tolist()
    assert "saturated" not in view  # a ReLU network cannot saturate: no empty column
    assert_healthy(at)


def test_connections_and_sources_are_clickable_neurons_at_the_pages_epoch(
    app: Callable[[], AppTest],
) -> None:
    """AppTest cannot click a chart: check the wiring the Overview's click handler reads (a
    ``pick`` selection on ``neuron`` and ``epoch``, rows carrying the other end's id)."""
    at = _open(app, "tiny", "E_3/L_hidden_2/n_12")
    charts = {chart.proto.id: chart for chart in shown_charts(at)}
    for base, expected in (
        (state.NEURON_CONNECTIONS_CHART, set(range(2, 10)) | {18, 19}),
        (state.NEURON_WEIGHTS_CHART, set(range(2, 10))),
    ):
        key = f"{base}:12:3"  # a new chart per neuron and epoch: a click never lingers
        chart = next(chart for chart_id, chart in charts.items() if key in chart_id)
        assert list(chart.proto.selection_mode) == ["pick"]
        spec = json.loads(chart.proto.spec)
        params = json.dumps(spec.get("params", [])) + json.dumps(spec.get("layer", []))
        assert '"name": "pick"' in params and '"fields": ["neuron", "epoch"]' in params
        rows = [row for row in chart_rows(chart) if "neuron" in row]
        assert {row["neuron"] for row in rows} <= expected and rows
        assert {row["epoch"] for row in rows} == {3}  # opens at the page's epoch, not E_4's
        assert all(row["signature"].startswith("E_4/") for row in rows)  # the weights' epoch


def test_digits_show_a_first_layer_neurons_weights_and_top_samples_as_images(
    app: Callable[[], AppTest], runs_dir: Path, digits_file: Path
) -> None:
    shutil.copy(digits_file, runs_dir / "digits.nntrace")
    at = _open(app, "digits", "E_2/L_hidden_1/n_66")
    assert_healthy(at)
    charts = {_title(json.loads(chart.proto.spec)): chart for chart in shown_charts(at)}
    pixels = chart_rows(charts["Incoming weights as an image"])
    assert len(pixels) == 64 and {p["signature"] for p in pixels} == {
        f"E_2/L_input/n_{i}" for i in range(64)
    }
    samples = chart_rows(charts["The 12 most active probe samples of E_2/L_hidden_1/n_66"])
    assert len(samples) == 12 * 64 and {s["value"] for s in samples} <= set(range(17))
    specs = charts
    assert "Activation field" not in specs  # 64 inputs: no plane to draw
    # a hidden neuron of the last layer has no image (its inputs are not the pixels)
    at = _open(app, "digits", "E_2/L_output/n_72")
    assert_healthy(at)
    assert "Incoming weights as an image" not in _titles(at)


def test_moons_with_kept_weights_show_the_field_and_weight_history_at_any_epoch(
    app: Callable[[], AppTest], runs_dir: Path, kept_file: Path
) -> None:
    shutil.copy(kept_file, runs_dir / "kept.nntrace")
    at = _open(app, "kept", "E_1/L_hidden_1/n_4")
    assert_healthy(at)
    assert "kept" not in texts(at.main.info)  # weights at every epoch: no fallback notice
    charts = {_title(json.loads(chart.proto.spec)): chart for chart in shown_charts(at)}
    assert "Incoming weights over training" in charts
    field = charts["Activation field"]
    assert "E_1/L_hidden_1/n_4 at E_1" in json.loads(field.proto.spec)["title"]["subtitle"][0]
    rows = chart_rows(field)
    assert sum("x0" in row for row in rows) == 60 * 60  # the grid
    assert sum("px" in row for row in rows) == 64  # the probe points
    assert "Check: at the probe points" in texts(at.caption)


def test_a_custom_probeless_trace_says_in_place_what_cannot_be_shown(
    app: Callable[[], AppTest], runs_dir: Path, custom_file: Path
) -> None:
    shutil.copy(custom_file, runs_dir / "custom.nntrace")
    at = _open(app, "custom", "E_2/L_0/n_3")
    assert_healthy(at)
    notes = texts(at.main.info)
    assert "no probe set" in notes  # per-class responses, selectivity, top samples
    assert "attach_model" in notes  # the activation field of a custom model
    titles = _titles(at)
    assert "Incoming weights" in titles and "Strongest connections" in titles
