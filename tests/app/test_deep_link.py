"""Deep links: ``?trace=<name>&neuron=E_<e>/L_<layer>/n_<id>`` opens the same view anywhere."""

from __future__ import annotations

from collections.abc import Callable

from apptest_support import assert_healthy, shown_charts, texts
from streamlit.testing.v1 import AppTest

from nn_tracing.ui import state


def _linked(app: Callable[[], AppTest], **params: str) -> AppTest:
    at = app()
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def test_a_deep_link_opens_the_neurons_page_on_that_neuron(app: Callable[[], AppTest]) -> None:
    at = _linked(app, trace="tiny", neuron="E_3/L_hidden_2/n_12")
    assert_healthy(at)
    assert at.title[0].value == "Neurons"
    assert at.selectbox(key=state.NEURON_PICK).value == "E_3/L_hidden_2/n_12"
    assert at.query_params == {"trace": "tiny", "neuron": "E_3/L_hidden_2/n_12"}
    assert "E_3/L_hidden_2/n_12" in [t.value for t in at.text]
    assert len(shown_charts(at)) >= 2  # metrics over training, probe activations, ...


def test_picking_another_neuron_or_epoch_keeps_the_link_in_sync(
    app: Callable[[], AppTest],
) -> None:
    at = _linked(app, trace="tiny", neuron="E_3/L_hidden_2/n_12")
    at.selectbox(key=state.NEURON_PICK).set_value("E_3/L_hidden_1/n_4").run()
    assert at.query_params["neuron"] == "E_3/L_hidden_1/n_4"
    at.select_slider(key=state.epoch_key(state.NEURON_EPOCH, "run:tiny")).set_value(1).run()
    assert at.query_params["neuron"] == "E_1/L_hidden_1/n_4"
    assert at.selectbox(key=state.NEURON_PICK).value == "E_1/L_hidden_1/n_4"
    assert_healthy(at)


def test_a_link_to_a_neuron_that_does_not_exist_falls_back_with_a_notice(
    app: Callable[[], AppTest],
) -> None:
    at = _linked(app, trace="tiny", neuron="E_99/L_hidden_7/n_5000")
    assert not at.exception
    notice = texts(at.main.warning)
    assert "not a neuron of this trace" in notice and "E_99 was not recorded" in notice
    assert at.query_params["neuron"] == "E_4/L_hidden_1/n_2"


def test_a_link_to_an_unknown_trace_says_so_and_shows_another(
    app: Callable[[], AppTest],
) -> None:
    at = _linked(app, trace="no-such-run")
    assert not at.exception
    assert "no-such-run" in texts(at.sidebar.warning)
    assert at.query_params["trace"] == "tiny"


def test_a_trace_name_cannot_reach_outside_the_runs_folder(app: Callable[[], AppTest]) -> None:
    at = _linked(app, trace="../../etc/passwd")
    assert not at.exception
    assert at.session_state[state.ACTIVE_TRACE] == "run:tiny"
