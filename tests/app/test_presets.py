"""The sidebar's preset choice: loading ``grokking`` fills every field of the training form
with the preset's config (checked against :func:`nn_tracing.presets.preset_config`)."""

from __future__ import annotations

from collections.abc import Callable

from apptest_support import assert_healthy, texts
from streamlit.testing.v1 import AppTest

from nn_tracing.presets import preset_config
from nn_tracing.ui import state
from nn_tracing.ui.training_form import DEFAULTS, config_from_form

FIELD = state.FORM_FIELD


def test_loading_the_grokking_preset_fills_the_form(app: Callable[[], AppTest]) -> None:
    at = app().run()
    at.sidebar.selectbox(key=state.FORM_PRESET).set_value("grokking")
    at.sidebar.button(key=state.FORM_PRESET_LOAD).click().run()
    assert_healthy(at)
    assert at.sidebar.selectbox(key=FIELD + "dataset").value == "modular_add"
    assert at.sidebar.text_input(key=FIELD + "hidden").value == "256"
    assert at.sidebar.selectbox(key=FIELD + "optimizer").value == "adamw"
    assert at.sidebar.number_input(key=FIELD + "weight_decay").value == 2.0
    assert at.sidebar.number_input(key=FIELD + "modulus").value == 59
    assert at.sidebar.number_input(key=FIELD + "modular_train_fraction").value == 0.4
    assert at.sidebar.selectbox(key=FIELD + "record_mode").value == "list"
    # what the form would run is the preset itself
    values = {field: at.session_state[FIELD + field] for field in DEFAULTS}
    config, errors = config_from_form(values)
    assert not errors and config == preset_config("grokking")
    assert "235 recorded epochs" in texts(at.sidebar.caption)
