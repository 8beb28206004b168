"""Every page on a step trace (``meta["axis"] == "step"``): keys, signatures, slider labels and
axis titles say "step" (``S_<n>``), never an epoch key (``E_<n>``) or an "epoch" axis."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import assert_healthy, chart_rows, shown_charts
from streamlit.testing.v1 import AppTest
from test_pages import PAGES

import nn_tracing as nt
from nn_tracing.timeaxis import current_axis, using_axis
from nn_tracing.ui import state

#: full-batch (one step per epoch), recorded on log-spaced steps then every 4th: 0 1 2 4 8 12
STEPS = nt.TrainConfig(
    dataset="moons",
    hidden_sizes=(8, 8),
    epochs=12,
    batch_size=4096,
    n_samples=300,
    probe_size=64,
    seed=0,
    lr=0.05,
    step_intervals="log:4",
)
EPOCH_KEY = re.compile(r"\bE_[0-9]")


@pytest.fixture(scope="module")
def step_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trace = nt.train(STEPS).trace
    assert trace.axis == "step" and trace.epochs == [0, 1, 2, 4, 8, 12]
    return nt.save_trace(trace, tmp_path_factory.mktemp("t") / "steps.nntrace")


def _words(at: AppTest) -> str:
    """What the page says: text elements, widget labels and options, metric labels."""
    parts: list[str] = []
    for kind in ("markdown", "caption", "info", "warning", "header", "subheader", "title"):
        parts += [str(e.value) for e in at.get(kind)]
    parts += [m.label for m in at.metric]
    for kind in ("select_slider", "selectbox", "slider", "radio", "multiselect"):
        for widget in at.get(kind):
            parts.append(str(widget.label))
            parts += [str(option) for option in getattr(widget, "options", [])]
    return "\n".join(parts)


def _axis_titles(spec: object) -> list[str]:
    """Every ``title`` of every axis encoding (x, y) in a Vega-Lite spec."""
    found: list[str] = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key in ("x", "y", "x2") and isinstance(value, dict) and "title" in value:
                found.append(str(value["title"]))
            found += _axis_titles(value)
    elif isinstance(spec, list):
        for item in spec:
            found += _axis_titles(item)
    return found


@pytest.mark.parametrize("page", PAGES)
def test_every_page_speaks_of_steps(
    app: Callable[[], AppTest], runs_dir: Path, step_file: Path, page: str
) -> None:
    shutil.copy(step_file, runs_dir / "steps.nntrace")
    at = app()
    at.query_params["trace"] = "steps"
    at.run()
    at.switch_page(page).run()
    assert_healthy(at)
    assert at.session_state[state.ACTIVE_TRACE] == "run:steps"
    words = _words(at)
    assert not EPOCH_KEY.search(words), EPOCH_KEY.findall(words)
    charts = shown_charts(at)
    assert charts, f"{page} draws no chart"
    for chart in charts:
        spec = json.loads(chart.proto.spec)
        titles = _axis_titles(spec)
        assert "epoch" not in [t.lower() for t in titles], titles
        rows = " ".join(str(row.get("signature", "")) for row in chart_rows(chart))
        assert not EPOCH_KEY.search(rows), EPOCH_KEY.findall(rows)[:3]
    # the page's axis stays with the page's script thread: nothing leaks into this one
    assert current_axis() == "epoch"
    if page == "pages/overview.py":
        slider = at.select_slider(key=state.epoch_key(state.OVERVIEW_EPOCH, "run:steps"))
        assert slider.label == "Step"
        assert "S_12" in slider.options or 12 in slider.options


def test_a_deep_link_opens_a_neuron_at_a_step_and_refuses_an_epoch_signature(
    app: Callable[[], AppTest], runs_dir: Path, step_file: Path
) -> None:
    shutil.copy(step_file, runs_dir / "steps.nntrace")
    at = app()
    at.query_params["trace"] = "steps"
    at.query_params["neuron"] = "S_4/L_hidden_1/n_3"
    at.run()
    assert_healthy(at)
    assert at.query_params["neuron"] == "S_4/L_hidden_1/n_3"
    assert "S_4/L_hidden_1/n_3" in _words(at)
    wrong = app()
    wrong.query_params["trace"] = "steps"
    wrong.query_params["neuron"] = "E_4/L_hidden_1/n_3"
    wrong.run()
    assert_healthy(wrong)
    assert "names an epoch, but this trace counts steps" in _words(wrong)
    assert not EPOCH_KEY.search(wrong.query_params["neuron"])


def test_the_url_says_step_on_a_step_trace_and_still_opens_an_epoch_link(
    app: Callable[[], AppTest], runs_dir: Path, step_file: Path
) -> None:
    shutil.copy(step_file, runs_dir / "steps.nntrace")
    key = state.epoch_key(state.OVERVIEW_EPOCH, "run:steps")
    at = app()
    at.query_params["trace"] = "steps"
    at.run()
    with using_axis("step"):  # the slider's labels (S_4) are formatted on the step axis
        at.select_slider(key=key).set_value(4).run()
    assert_healthy(at)
    params = {name: at.query_params[name] for name in at.query_params}
    assert params == {"trace": "steps", "step": "4"}  # never epoch= on a step trace

    shared = app()
    for name, value in params.items():
        shared.query_params[name] = value
    shared.run()
    assert_healthy(shared)
    assert shared.select_slider(key=key).value == 4
    assert {name: shared.query_params[name] for name in shared.query_params} == params

    old = app()  # a link written before step traces said step=
    old.query_params["trace"] = "steps"
    old.query_params["epoch"] = "2"
    old.run()
    assert_healthy(old)
    assert old.select_slider(key=key).value == 2
    assert {name: old.query_params[name] for name in old.query_params} == {
        "trace": "steps",
        "step": "2",
    }
