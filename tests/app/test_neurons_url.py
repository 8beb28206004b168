"""The Neurons page's settings in the address bar: besides ``neuron=`` (the neuron and its
epoch), the open tab, the top samples' number and end and the health table's filters go into
the URL, and a new session opened with that URL shows the same controls and the same tab."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from apptest_support import assert_healthy
from streamlit.proto.Block_pb2 import Block as BlockProto
from streamlit.testing.v1 import AppTest

import nn_tracing as nt
from nn_tracing.analysis import neuron_health
from nn_tracing.ui import state

EPOCH_KEY = state.epoch_key(state.NEURON_EPOCH, "run:tiny")
TABS = [
    "Over training",
    "Inputs and outputs",
    "What it responds to",
    "Health of every neuron",
    "Its data",
]


def _opened_with(app: Callable[[], AppTest], params: dict[str, str]) -> AppTest:
    at = app()
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def _open_tab(at: AppTest) -> str:
    """The label of the tab the page opens (the tab container's selected index)."""
    pending = [at.main]
    while pending:
        node = pending.pop()
        proto = getattr(node, "proto", None)
        if isinstance(proto, BlockProto) and proto.HasField("tab_container"):
            return TABS[proto.tab_container.default_tab_index]
        pending.extend(getattr(node, "children", {}).values())
    raise AssertionError("no tabs on the page")


def _widgets(at: AppTest) -> dict[str, object]:
    return {
        "neuron": at.selectbox(key=state.NEURON_PICK).value,
        "epoch": at.select_slider(key=EPOCH_KEY).value,
        "tab": _open_tab(at),
        "top": at.slider(key=state.NEURON_TOP_K).value,
        "top_order": at.radio(key=state.NEURON_TOP_ORDER).value,
        "layers": at.multiselect(key=state.NEURON_HEALTH_LAYERS).value,
        "flags": at.multiselect(key=state.NEURON_HEALTH_FLAGS).value,
    }


def _params(at: AppTest) -> dict[str, str]:
    return {key: at.query_params[key] for key in at.query_params}


def test_a_link_to_a_neuron_opens_the_first_tab_with_the_defaults(
    app: Callable[[], AppTest],
) -> None:
    at = _opened_with(app, {"trace": "tiny", "neuron": "E_3/L_hidden_2/n_12"})
    assert_healthy(at)
    assert _widgets(at) == {
        "neuron": "E_3/L_hidden_2/n_12",
        "epoch": 3,
        "tab": "Over training",
        "top": 12,
        "top_order": "most active",
        "layers": [],
        "flags": [],
    }
    assert _params(at) == {"trace": "tiny", "neuron": "E_3/L_hidden_2/n_12"}


def test_every_control_goes_into_the_url_and_a_new_session_restores_it(
    app: Callable[[], AppTest], tiny_trace_file: Path
) -> None:
    at = _opened_with(app, {"trace": "tiny", "neuron": "E_3/L_hidden_2/n_12"})
    at.session_state[state.NEURON_TAB] = "Health of every neuron"  # AppTest cannot click a tab
    at.run()
    at.slider(key=state.NEURON_TOP_K).set_value(24).run()
    at.radio(key=state.NEURON_TOP_ORDER).set_value("least active").run()
    at.multiselect(key=state.NEURON_HEALTH_LAYERS).set_value(["hidden_2", "output"]).run()
    at.multiselect(key=state.NEURON_HEALTH_FLAGS).set_value(["dead"]).run()
    at.select_slider(key=EPOCH_KEY).set_value(1).run()
    assert_healthy(at)
    params = _params(at)
    assert params == {
        "trace": "tiny",
        "neuron": "E_1/L_hidden_2/n_12",
        "tab": "Health of every neuron",
        "top": "24",
        "top_order": "least active",
        "layers": "hidden_2,output",
        "flags": "dead",
    }
    chosen = _widgets(at)
    assert chosen["tab"] == "Health of every neuron"

    shared = _opened_with(app, params)
    assert_healthy(shared)
    assert _widgets(shared) == chosen
    assert _params(shared) == params
    # what the settings draw: the top samples from the least active end, 24 of them
    top = next(d.value for d in shared.dataframe if "probe_index" in d.value)
    assert len(top) == 24 and top["activation"].is_monotonic_increasing
    shown = next(d for d in shared.dataframe if d.key and "health_table" in d.key).value
    trace = nt.load_trace(tiny_trace_file)
    dead = neuron_health(trace).flags["dead"][trace.epochs.index(1)]
    kept = np.arange(trace.layer("hidden_2").first_id, trace.n_neurons)  # hidden_2, output
    expected = kept[dead[kept]].tolist()
    assert sorted(shown["neuron"]) == expected and expected  # E_1 has dead neurons there

    # back to a default: the parameter leaves the URL, the others stay
    shared.radio(key=state.NEURON_TOP_ORDER).set_value("most active").run()
    assert "top_order" not in shared.query_params and shared.query_params["top"] == "24"


def test_bad_values_in_the_url_fall_back_to_the_defaults(app: Callable[[], AppTest]) -> None:
    at = _opened_with(
        app,
        {
            "trace": "tiny",
            "neuron": "E_2/L_hidden_1/n_4",
            "tab": "Nope",
            "top": "5",
            "top_order": "middle",
            "layers": "hidden_9",
            "flags": "saturated",  # a ReLU network cannot saturate: not offered
        },
    )
    assert_healthy(at)
    widgets = _widgets(at)
    assert widgets["tab"] == "Over training" and widgets["top"] == 12
    assert widgets["top_order"] == "most active"
    assert widgets["layers"] == [] and widgets["flags"] == []
    assert _params(at) == {"trace": "tiny", "neuron": "E_2/L_hidden_1/n_4"}
