"""The Breadcrumbs page's address bar is a link to what it shows: every control changed in one
session is in the URL, and a new session opened on that URL shows the same controls (and the
same results: the ablation curves and the pruning are computed again)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from apptest_support import assert_healthy, shown_charts, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import TrainConfig, load_trace, save_trace, train
from nn_tracing.ui import state

PAGE = "pages/breadcrumbs.py"
ABLATE = state.epoch_key(state.BREADCRUMBS_ABLATE, "run:tiny")


def _open(app: Callable[[], AppTest], **params: str) -> AppTest:
    """A new session on the page, the URL holding ``params`` (``trace=tiny`` unless given)."""
    at = app()
    at.query_params["trace"] = "tiny"
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(PAGE).run()
    assert_healthy(at)
    return at


def _link(at: AppTest) -> dict[str, str]:
    """The URL's query parameters, as a link carries them."""
    return {key: str(value) for key, value in at.query_params.items()}


def _tab(at: AppTest, name: str) -> AppTest:
    at.session_state[state.BREADCRUMBS_TAB] = name
    at.run()
    assert_healthy(at)
    return at


def test_the_controls_above_the_tabs_and_the_first_tab_travel_in_the_link(
    app: Callable[[], AppTest],
) -> None:
    at = _open(app)
    at.selectbox(key=state.BREADCRUMBS_METHOD).set_value("integrated_gradients").run()
    at.radio(key=state.BREADCRUMBS_OBJECTIVE).set_value("margin").run()
    at.session_state[state.BREADCRUMBS_MODE] = "one probe sample"
    at.run()
    at.number_input(key=state.BREADCRUMBS_SAMPLE).set_value(7).run()
    at.selectbox(key=state.BREADCRUMBS_CLASS).set_value(1).run()
    at.slider(key=state.BREADCRUMBS_K).set_value(3).run()
    at.toggle(key=state.BREADCRUMBS_COMPARE).set_value(True).run()
    assert_healthy(at)
    link = _link(at)
    assert link == {
        "trace": "tiny",
        "tab": "Attribution & trail",
        "method": "integrated_gradients",
        "explain": "one probe sample",
        "class": "1",
        "sample": "7",
        "score": "margin",
        "k": "3",
        "compare": "1",
    }  # one model state only: no epoch

    shared = _open(app, **link)
    assert shared.selectbox(key=state.BREADCRUMBS_METHOD).value == "integrated_gradients"
    assert shared.radio(key=state.BREADCRUMBS_OBJECTIVE).value == "margin"
    assert shared.session_state[state.BREADCRUMBS_MODE] == "one probe sample"
    assert shared.number_input(key=state.BREADCRUMBS_SAMPLE).value == 7
    assert shared.selectbox(key=state.BREADCRUMBS_CLASS).value == 1
    assert shared.slider(key=state.BREADCRUMBS_K).value == 3
    assert shared.toggle(key=state.BREADCRUMBS_COMPARE).value is True
    assert "of class 1 for probe sample 7" in texts(shared.markdown)
    assert "by integrated gradients" in texts(shared.markdown)
    assert len(shared.main.dataframe[-1].value) == 3 * 6  # the methods compared
    assert _link(shared) == link


def test_the_ablation_tab_and_its_curves_travel_in_the_link(app: Callable[[], AppTest]) -> None:
    at = _tab(_open(app), "Ablation")
    at.multiselect(key=ABLATE).set_value([10, 11, 12]).run()
    at.radio(key=state.BREADCRUMBS_ABLATE_FILL).set_value("mean").run()
    at.selectbox(key=state.BREADCRUMBS_CURVES_LAYER).set_value("hidden_2").run()
    at.slider(key=state.BREADCRUMBS_REPEATS).set_value(10).run()
    at.radio(key=state.BREADCRUMBS_CURVES_FILL).set_value("mean").run()
    at.button(key=state.BREADCRUMBS_CURVES_BUTTON).click().run()
    assert_healthy(at)
    charts = len(shown_charts(at))
    assert charts == 3  # confusion, the curves, selectivity against effect
    link = _link(at)
    assert {k: v for k, v in link.items() if k not in ("trace", "method", "class", "k")} == {
        "tab": "Ablation",
        "explain": "a class",
        "score": "logit",
        "ablate": "10,11,12",
        "ablate_fill": "mean",
        "curves_layer": "hidden_2",
        "curves_n": "10",
        "curves_fill": "mean",
        "curves": "1",
    }

    shared = _open(app, **link)
    assert shared.session_state[state.BREADCRUMBS_TAB] == "Ablation"
    assert shared.multiselect(key=ABLATE).value == [10, 11, 12]
    assert shared.radio(key=state.BREADCRUMBS_ABLATE_FILL).value == "mean"
    assert shared.selectbox(key=state.BREADCRUMBS_CURVES_LAYER).value == "hidden_2"
    assert shared.slider(key=state.BREADCRUMBS_REPEATS).value == 10
    assert shared.radio(key=state.BREADCRUMBS_CURVES_FILL).value == "mean"
    assert len(shown_charts(shared)) == charts  # the curves shown again
    assert _link(shared) == link
    # changing a curve setting hides the curves until Compute, and the link says so
    shared.slider(key=state.BREADCRUMBS_REPEATS).set_value(12).run()
    assert "curves" not in _link(shared) and _link(shared)["curves_n"] == "12"


def test_the_pruning_tab_travels_in_the_link(app: Callable[[], AppTest]) -> None:
    at = _tab(_open(app), "Pruning")
    at.number_input(key=f"{state.BREADCRUMBS_PRUNE_K}:hidden_1").set_value(3)
    at.number_input(key=f"{state.BREADCRUMBS_PRUNE_K}:hidden_2").set_value(2)
    at.radio(key=state.BREADCRUMBS_PRUNE_FILL).set_value("mean")
    at.slider(key=state.BREADCRUMBS_PRUNE_REPEATS).set_value(10)
    at.button(key=state.BREADCRUMBS_PRUNE_BUTTON).click().run()
    assert_healthy(at)
    widths = [m.value for m in at.metric if m.label == "Hidden widths"]
    assert widths == ["5 · 6"]
    link = _link(at)
    assert link["tab"] == "Pruning"
    assert (link["prune"], link["prune_fill"], link["prune_n"], link["pruned"]) == (
        "3,2",
        "mean",
        "10",
        "1",
    )
    assert "ablate_fill" not in link and "curves_n" not in link  # other tabs' settings

    shared = _open(app, **link)
    assert shared.number_input(key=f"{state.BREADCRUMBS_PRUNE_K}:hidden_1").value == 3
    assert shared.number_input(key=f"{state.BREADCRUMBS_PRUNE_K}:hidden_2").value == 2
    assert shared.radio(key=state.BREADCRUMBS_PRUNE_FILL).value == "mean"
    assert shared.slider(key=state.BREADCRUMBS_PRUNE_REPEATS).value == 10
    assert [m.value for m in shared.metric if m.label == "Hidden widths"] == widths
    assert _link(shared) == link


@pytest.mark.parametrize("kind", ["clamp", "weight"])
def test_the_intervention_tab_travels_in_the_link(app: Callable[[], AppTest], kind: str) -> None:
    at = _tab(_open(app), "Intervention")
    if kind == "clamp":
        at.selectbox(key=state.BREADCRUMBS_NEURON).set_value(12).run()
        value_key = f"{state.BREADCRUMBS_VALUE}:clamp:12"
        expected = {"change": "clamp", "unit": "12", "value": "10.0"}
    else:
        at.session_state[state.BREADCRUMBS_KIND] = "weight"
        at.run()
        at.selectbox(key=state.BREADCRUMBS_WEIGHT_LAYER).set_value("hidden_2").run()
        at.selectbox(key=f"{state.BREADCRUMBS_WEIGHT_ROW}:hidden_2").set_value(11).run()
        at.selectbox(key=f"{state.BREADCRUMBS_WEIGHT_COLUMN}:hidden_2").set_value(4).run()
        value_key = f"{state.BREADCRUMBS_VALUE}:weight:hidden_2:1:4"
        expected = {
            "change": "weight",
            "w_layer": "hidden_2",
            "w_row": "11",
            "w_col": "4",
            "value": "10.0",
        }
    at.number_input(key=value_key).set_value(10.0).run()
    assert_healthy(at)
    link = _link(at)
    assert {k: link.get(k) for k in expected} == expected
    accuracy = [m.value for m in at.metric if m.label == "Probe accuracy"]

    shared = _open(app, **link)
    assert shared.session_state[state.BREADCRUMBS_KIND] == kind
    assert shared.number_input(key=value_key).value == 10.0
    if kind == "clamp":
        assert shared.selectbox(key=state.BREADCRUMBS_NEURON).value == 12
    else:
        assert shared.selectbox(key=state.BREADCRUMBS_WEIGHT_LAYER).value == "hidden_2"
        assert shared.selectbox(key=f"{state.BREADCRUMBS_WEIGHT_ROW}:hidden_2").value == 11
        assert shared.selectbox(key=f"{state.BREADCRUMBS_WEIGHT_COLUMN}:hidden_2").value == 4
    assert [m.value for m in shared.metric if m.label == "Probe accuracy"] == accuracy
    assert _link(shared) == link


def test_the_model_state_travels_in_the_link(app: Callable[[], AppTest], runs_dir: Path) -> None:
    config = TrainConfig(
        dataset="moons", hidden_sizes=(8, 8), epochs=4, n_samples=300, probe_size=64, seed=0,
        keep_weights=True,
    )  # fmt: skip
    run = train(config)
    assert run.trace is not None
    save_trace(run.trace, runs_dir / "kept.nntrace")
    at = _open(app, trace="kept")
    key = state.epoch_key(state.BREADCRUMBS_EPOCH, "run:kept")
    at.select_slider(key=key).set_value(2).run()
    assert_healthy(at)
    assert _link(at)["epoch"] == "2"
    shared = _open(app, **_link(at))
    assert shared.select_slider(key=key).value == 2
    assert "at E_2" in texts(shared.markdown)


def test_bad_values_in_a_link_fall_back_to_the_defaults(
    app: Callable[[], AppTest], tiny_trace_file: Path
) -> None:
    # one sample starts at the first the network gets wrong (from the recorded outputs)
    trace = load_trace(tiny_trace_file)
    output = trace.layers[-1]
    logits = trace.probe_activations(trace.epochs[-1])[:, output.first_id : output.last_id + 1]
    wrong = np.flatnonzero(logits.argmax(axis=1) != np.asarray(trace.probe[1]))
    first = int(wrong[0]) if wrong.size else 0
    at = _open(
        app, tab="Nope", method="magic", k="99", sample="-3", explain="one probe sample",
        curves_n="100000", prune="1,2,3,4", value="nan", unit="9999",
    )  # fmt: skip
    assert at.session_state[state.BREADCRUMBS_TAB] == "Attribution & trail"
    assert at.selectbox(key=state.BREADCRUMBS_METHOD).value == "grad_x_act"
    assert at.slider(key=state.BREADCRUMBS_K).value == 4
    assert at.number_input(key=state.BREADCRUMBS_SAMPLE).value == first
    link = _link(at)
    assert link["tab"] == "Attribution & trail" and link["k"] == "4"
    assert link["sample"] == str(first)
    for tab in ("Ablation", "Pruning", "Intervention"):  # nothing stale breaks a tab
        _tab(at, tab)
