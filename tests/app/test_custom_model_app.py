"""Your own model in the app: a trace trained by the CLI from an entry point
(tests/unit/custom_models.py) is rebuilt and attributed on the Breadcrumbs page when
NN_TRACING_MODELS allows it; an uploaded trace naming ``os:system`` or a module never imported
(``model_canary``) is explained, and nothing is imported or run; the training form refuses an
entry point the server does not allow, next to the field."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import assert_healthy, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import jobs, load_trace, save_trace
from nn_tracing.model_entry import ENV_VAR
from nn_tracing.ui import state
from nn_tracing.ui.training_form import DEFAULTS, config_from_form

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "tests" / "unit"
PAGE = "pages/breadcrumbs.py"


@pytest.fixture(scope="module")
def own_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``nn-tracing train --model custom_models:make_net`` on iris, in a subprocess."""
    out = tmp_path_factory.mktemp("own") / "own.nntrace"
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(UNIT)])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nn_tracing",
            "train",
            "--dataset",
            "iris",
            "--epochs",
            "3",
            "--probe-size",
            "24",
            "--model",
            "custom_models:make_net",
            "--model-kwargs",
            '{"width": 6}',
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return out


def _breadcrumbs(app: Callable[[], AppTest], trace: str) -> AppTest:
    at = app()
    at.query_params["trace"] = trace
    at.run()
    at.switch_page(PAGE).run()
    return at


def test_an_allowed_entry_point_is_rebuilt_and_attributed(
    app: Callable[[], AppTest], runs_dir: Path, own_trace: Path, monkeypatch
) -> None:
    monkeypatch.setenv(ENV_VAR, "custom_models:*")
    monkeypatch.syspath_prepend(str(UNIT))
    (runs_dir / "own.nntrace").write_bytes(own_trace.read_bytes())
    at = _breadcrumbs(app, "own")
    assert_healthy(at)
    assert not at.warning, texts(at.warning)
    assert at.get("graphviz_chart"), "no trail graph"
    table = at.main.dataframe[0].value
    assert set(table["layer"]) <= {"head", "body", "input"} and "body" in set(table["layer"])
    assert table["signature"].str.match(r"E_3/L_(body|input)/n_\d+").all()


@pytest.mark.parametrize("entry", ["os:system", "model_canary:make_net"])
def test_an_uploaded_trace_naming_code_imports_and_runs_nothing(
    app: Callable[[], AppTest], runs_dir: Path, own_trace: Path, tmp_path: Path, monkeypatch, entry
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("NN_TRACING_CANARY_IMPORTED", raising=False)
    trace = load_trace(own_trace)
    trace.meta["config"]["model"] = entry
    trace.meta["model"].update(name=entry, entry_point=entry)
    data = save_trace(trace, tmp_path / "hostile.nntrace").read_bytes()
    at = app().run()
    at.sidebar.file_uploader(key=state.UPLOADER).set_value(
        ("hostile.nntrace", data, "application/octet-stream")
    )
    at.run()
    assert at.session_state[state.ACTIVE_TRACE].startswith("upload:")
    at.switch_page(PAGE).run()
    assert_healthy(at)
    shown = texts(at.warning)
    assert entry in shown and "nothing was imported" in shown and ENV_VAR in shown
    assert not at.get("graphviz_chart")
    for other in ("pages/neurons.py", "pages/clusters.py"):
        at.switch_page(other).run()
        assert not at.exception, [e.value for e in at.exception]
    assert "model_canary" not in sys.modules
    assert "NN_TRACING_CANARY_IMPORTED" not in os.environ


def test_the_form_refuses_an_entry_point_the_server_does_not_allow(monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    values = {**DEFAULTS, "dataset": "iris", "model": "entry", "entry_point": "model_canary:make"}
    config, errors = config_from_form(values)
    assert config is None and ENV_VAR in errors["entry_point"]
    assert "model_canary" not in sys.modules
    assert (
        "package.module:factory"
        in config_from_form({**values, "entry_point": " "})[1]["entry_point"]
    )
    bad_json = config_from_form({**values, "model": "cnn", "model_kwargs": "{channels: 8"})[1]
    assert "not valid JSON" in bad_json["model_kwargs"]
    config, errors = config_from_form(
        {**values, "dataset": "digits", "model": "cnn", "model_kwargs": '{"channels": [4]}'}
    )
    assert errors == {} and config is not None and config.architecture == "CNN 4 k3 relu"
    config, errors = config_from_form({**values, "model": "cnn"})  # iris: no images
    assert "image dataset" in errors["model"]
    monkeypatch.setenv(ENV_VAR, "model_canary:*")
    config, errors = config_from_form(values)
    assert errors == {} and config is not None and config.model == "model_canary:make"
    assert "model_canary" not in sys.modules  # allowed, but nothing is imported to validate


def test_the_sidebar_trains_an_allowed_entry_point_in_a_child_process(
    app: Callable[[], AppTest], runs_dir: Path, monkeypatch
) -> None:
    """The child (``nn-tracing train --require-allowed-model``) has the server's environment:
    the allow-list and the path where the user's module lives."""
    monkeypatch.setenv(ENV_VAR, "custom_models:make_net")
    monkeypatch.setenv("PYTHONPATH", str(UNIT))
    monkeypatch.syspath_prepend(str(UNIT))  # the server sizes the model for its estimate
    at = app().run()
    field = state.FORM_FIELD
    at.sidebar.selectbox(key=field + "dataset").set_value("iris")
    at.sidebar.selectbox(key=field + "model").set_value("entry")
    at.sidebar.text_input(key=field + "entry_point").set_value("custom_models:make_net")
    at.sidebar.text_input(key=field + "model_kwargs").set_value('{"width": 5}')
    at.sidebar.number_input(key=field + "epochs").set_value(2)
    next(b for b in at.sidebar.button if b.label == "Run training").click().run()
    assert_healthy(at)
    job = jobs.jobs_of(at.session_state[state.OWNER])[-1]
    assert job.join(300), "the training job did not finish in time"
    snap = job.snapshot()
    assert snap.state == "finished" and snap.status == "complete", snap
    assert "12 neurons" in texts(at.sidebar.caption)  # the estimate: iris 4 + 5 + 3
    trace = load_trace(runs_dir / str(snap.saved_name))
    assert trace.meta["model"]["entry_point"] == "custom_models:make_net"
    assert trace.layers[1].name == "body" and trace.layers[1].n_neurons == 5
