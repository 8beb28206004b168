"""The Overview page's settings in the address bar: every control goes into the URL, and a new
session opened with that URL shows the same controls (and what they draw)."""

from __future__ import annotations

from collections.abc import Callable

from apptest_support import assert_healthy
from streamlit.testing.v1 import AppTest

from nn_tracing.ui import state

EPOCH_KEY = state.epoch_key(state.OVERVIEW_EPOCH, "run:tiny")


def _widgets(at: AppTest) -> dict[str, object]:
    return {
        "metric": at.selectbox(key=state.OVERVIEW_METRIC).value,
        "epoch": at.select_slider(key=EPOCH_KEY).value,
        "order": at.radio(key=state.OVERVIEW_ORDER).value,
        "percentile": at.toggle(key=state.OVERVIEW_PERCENTILE).value,
        "layer": at.selectbox(key=state.OVERVIEW_DETAIL_LAYER).value,
    }


def _opened_with(app: Callable[[], AppTest], params: dict[str, str]) -> AppTest:
    at = app()
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def test_the_page_at_its_defaults_links_with_the_trace_alone(app: Callable[[], AppTest]) -> None:
    at = app().run()
    assert_healthy(at)
    assert dict(at.query_params) == {"trace": "tiny"}
    assert _widgets(at) == {
        "metric": "act_mean",
        "epoch": 4,
        "order": "id",
        "percentile": False,
        "layer": "hidden_1",
    }


def test_every_control_goes_into_the_url_and_a_new_session_restores_it(
    app: Callable[[], AppTest],
) -> None:
    at = app().run()
    at.selectbox(key=state.OVERVIEW_METRIC).set_value("grad_norm").run()
    at.select_slider(key=EPOCH_KEY).set_value(2).run()
    at.radio(key=state.OVERVIEW_ORDER).set_value("value").run()
    at.toggle(key=state.OVERVIEW_PERCENTILE).set_value(True).run()
    at.selectbox(key=state.OVERVIEW_DETAIL_LAYER).set_value("hidden_2").run()
    assert_healthy(at)
    params = {key: at.query_params[key] for key in at.query_params}
    assert params == {
        "trace": "tiny",
        "metric": "grad_norm",
        "epoch": "2",
        "order": "value",
        "percentile": "1",
        "layer": "hidden_2",
    }
    chosen = _widgets(at)

    shared = _opened_with(app, params)
    assert_healthy(shared)
    assert _widgets(shared) == chosen
    assert any(m.label == "Dead at E_2" for m in shared.metric)  # what the epoch draws
    assert {key: shared.query_params[key] for key in shared.query_params} == params

    # back to a default: the parameter leaves the URL
    shared.toggle(key=state.OVERVIEW_PERCENTILE).set_value(False).run()
    assert "percentile" not in shared.query_params and shared.query_params["epoch"] == "2"


def test_bad_values_in_the_url_fall_back_to_the_defaults(app: Callable[[], AppTest]) -> None:
    at = _opened_with(
        app,
        {"trace": "tiny", "metric": "nope", "epoch": "99", "order": "x", "layer": "../x"},
    )
    assert_healthy(at)
    assert _widgets(at) == {
        "metric": "act_mean",
        "epoch": 4,
        "order": "id",
        "percentile": False,
        "layer": "hidden_1",
    }
    assert dict(at.query_params) == {"trace": "tiny"}
