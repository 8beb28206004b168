"""Every control of the Dynamics page in the address bar: changed controls go into the URL,
and a new session opened with that URL shows the same values (the round trip), per-step
sequences included; a bad value in a link falls back to the default."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import assert_healthy, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import TrainConfig, load_trace, save_trace, train
from nn_tracing.ui import state
from nn_tracing.ui.dynamics import URL, Settings

PAGE = "pages/dynamics.py"
REF = "run:tiny"


@pytest.fixture(scope="module")
def second_seed(tmp_path_factory: pytest.TempPathFactory, tiny_trace_file: Path) -> Path:
    """The fixture trace's configuration with seed 1."""
    config = TrainConfig.from_dict(load_trace(tiny_trace_file).meta["config"])
    run = train(config.replace(seed=1))
    assert run.trace is not None
    return save_trace(run.trace, tmp_path_factory.mktemp("seeds") / "tiny-seed1.nntrace")


@pytest.fixture(scope="module")
def steps_trace(tmp_path_factory: pytest.TempPathFactory, tiny_trace_file: Path) -> Path:
    """The fixture trace's configuration with per-step statistics kept."""
    config = TrainConfig.from_dict(load_trace(tiny_trace_file).meta["config"])
    run = train(config.replace(drop_batches=False))
    assert run.trace is not None
    return save_trace(run.trace, tmp_path_factory.mktemp("steps") / "tiny-steps.nntrace")


def open_page(app: Callable[[], AppTest], params: dict[str, str]) -> AppTest:
    """A new session opened on a link to the Dynamics page with ``params``."""
    at = app()
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(PAGE).run()  # the link opens the Dynamics page itself
    assert_healthy(at)
    return at


def own(at: AppTest) -> dict[str, str]:
    """The Dynamics parameters of the session's URL."""
    return {k: str(v) for k, v in at.query_params.items() if k in URL.names}


#: What the URL says once every control was changed (see :func:`_change_every_control`).
CHANGED = {
    "seed": "3",
    "runs": "tiny-seed1",
    "seq": "epochs",
    "k": "2",
    "restarts": "3",
    "shuffles": "49",
    "zscore": "run",
    "curve": "weight_norm",
    "new_seeds": "2",
    "nlayers": "hidden_1",
    "nstd": "global",
    "nk": "3",
    "order": "path",
    "bins": "4",
    "binning": "epoch",
    "label": "true",
    "perms": "20",
    "alpha": "0.1",
    "fdr": "epoch",
    "epoch": "2",
}


def _change_every_control(at: AppTest) -> None:
    """Set every control of the page to a value other than its default (not yet run)."""
    at.number_input(key=state.DYNAMICS_RANDOM_STATE).set_value(3)
    at.selectbox(key=state.DYNAMICS_MAP_K).set_value("2")
    at.number_input(key=state.DYNAMICS_MAP_RESTARTS).set_value(3)
    at.selectbox(key=state.DYNAMICS_MAP_SHUFFLES).set_value(49)
    at.radio(key=state.DYNAMICS_MAP_STANDARDIZE).set_value("run")
    at.number_input(key=state.DYNAMICS_SEED_COUNT).set_value(2)
    at.multiselect(key=state.DYNAMICS_NEURON_FEATURES).set_value(["act_mean", "act_std"])
    at.multiselect(key=state.epoch_key(state.DYNAMICS_NEURON_LAYERS, REF)).set_value(["hidden_1"])
    at.selectbox(key=state.DYNAMICS_NEURON_STANDARDIZE).set_value("global")
    at.selectbox(key=state.DYNAMICS_NEURON_K).set_value("3")
    at.radio(key=state.DYNAMICS_NEURON_ORDER).set_value("path")
    at.slider(key=state.DYNAMICS_ENTROPY_BINS).set_value(4)
    at.selectbox(key=state.DYNAMICS_ENTROPY_BINNING).set_value("epoch")
    at.selectbox(key=state.DYNAMICS_ENTROPY_LABEL).set_value("true")
    at.selectbox(key=state.DYNAMICS_ENTROPY_PERMUTATIONS).set_value(20)
    at.selectbox(key=state.DYNAMICS_ENTROPY_ALPHA).set_value(0.1)
    at.selectbox(key=state.DYNAMICS_ENTROPY_FDR).set_value("epoch")
    at.select_slider(key=state.epoch_key(state.DYNAMICS_ENTROPY_EPOCH, REF)).set_value(2)


def _assert_every_control_restored(again: AppTest) -> None:
    """The widgets of a new session show what :func:`_change_every_control` set."""
    assert again.number_input(key=state.DYNAMICS_RANDOM_STATE).value == 3
    assert again.multiselect(key=state.epoch_key(state.DYNAMICS_RUNS, REF)).value == ["tiny-seed1"]
    assert again.selectbox(key=state.DYNAMICS_MAP_K).value == "2"
    assert again.number_input(key=state.DYNAMICS_MAP_RESTARTS).value == 3
    assert again.selectbox(key=state.DYNAMICS_MAP_SHUFFLES).value == 49
    assert again.radio(key=state.DYNAMICS_MAP_STANDARDIZE).value == "run"
    assert again.radio(key=state.DYNAMICS_MAP_CURVE).value == "weight_norm"
    assert again.number_input(key=state.DYNAMICS_SEED_COUNT).value == 2
    features = again.multiselect(key=state.DYNAMICS_NEURON_FEATURES).value
    assert set(features) == {"act_mean", "act_std"}
    layers = again.multiselect(key=state.epoch_key(state.DYNAMICS_NEURON_LAYERS, REF))
    assert layers.value == ["hidden_1"]
    assert again.selectbox(key=state.DYNAMICS_NEURON_STANDARDIZE).value == "global"
    assert again.selectbox(key=state.DYNAMICS_NEURON_K).value == "3"
    assert again.radio(key=state.DYNAMICS_NEURON_ORDER).value == "path"
    assert again.slider(key=state.DYNAMICS_ENTROPY_BINS).value == 4
    assert again.selectbox(key=state.DYNAMICS_ENTROPY_BINNING).value == "epoch"
    assert again.selectbox(key=state.DYNAMICS_ENTROPY_LABEL).value == "true"
    assert again.selectbox(key=state.DYNAMICS_ENTROPY_PERMUTATIONS).value == 20
    assert again.selectbox(key=state.DYNAMICS_ENTROPY_ALPHA).value == 0.1
    assert again.selectbox(key=state.DYNAMICS_ENTROPY_FDR).value == "epoch"
    epoch = again.select_slider(key=state.epoch_key(state.DYNAMICS_ENTROPY_EPOCH, REF))
    assert epoch.value == 2
    # and the page shows what the settings say
    assert "Fitted on 2 runs (tiny, tiny-seed1)" in texts(again.caption)
    assert any(m.label == "States" and m.value == "3" for m in again.metric)
    assert "Neurons at E_2" in texts(again.markdown)
    assert "with the true class" in texts(again.main.info)


def test_every_control_goes_into_the_url_and_a_new_session_shows_it(
    app: Callable[[], AppTest], runs_dir: Path, second_seed: Path
) -> None:
    shutil.copy(second_seed, runs_dir / "tiny-seed1.nntrace")
    at = open_page(app, {"trace": "tiny"})
    # the defaults are in the URL from the start
    assert own(at)["k"] == "bic" and own(at)["runs"] == "tiny-seed1" and own(at)["seed"] == "0"
    _change_every_control(at)
    at.run()
    assert_healthy(at)
    at.radio(key=state.DYNAMICS_MAP_CURVE).set_value("weight_norm").run()  # drawn after a fit
    assert_healthy(at)
    url = own(at)
    assert {k: url.get(k) for k in CHANGED} == CHANGED
    assert set(url["nfeatures"].split(",")) == {"act_mean", "act_std"}
    assert "features" in url and "step_features" not in url  # the epochs' features only

    again = open_page(app, {"trace": "tiny", **url})
    assert own(again) == url  # nothing lost, nothing added
    _assert_every_control_restored(again)


def test_an_old_link_with_pooled_runs_opens_them_z_scored_globally(
    app: Callable[[], AppTest], runs_dir: Path, second_seed: Path
) -> None:
    """``zscore=pooled`` (the old name of ``global``) is read as ``global``."""
    shutil.copy(second_seed, runs_dir / "tiny-seed1.nntrace")
    at = open_page(app, {"trace": "tiny", "zscore": "pooled"})
    assert at.radio(key=state.DYNAMICS_MAP_STANDARDIZE).value == "global"
    assert own(at)["zscore"] == "global"


def test_leaving_every_other_run_out_survives_a_link(
    app: Callable[[], AppTest], runs_dir: Path, second_seed: Path
) -> None:
    shutil.copy(second_seed, runs_dir / "tiny-seed1.nntrace")
    at = open_page(app, {"trace": "tiny"})
    at.multiselect(key=state.epoch_key(state.DYNAMICS_RUNS, REF)).set_value([]).run()
    assert_healthy(at)
    url = own(at)
    assert url["runs"] == "" and "zscore" not in url  # one run: nothing to z-score across
    again = open_page(app, {"trace": "tiny", **url})
    assert again.multiselect(key=state.epoch_key(state.DYNAMICS_RUNS, REF)).value == []
    assert "Fitted on 1 run (tiny)" in texts(again.caption)
    assert own(again) == url


def test_a_per_step_map_survives_a_link(
    app: Callable[[], AppTest], runs_dir: Path, steps_trace: Path
) -> None:
    shutil.copy(steps_trace, runs_dir / "tiny-steps.nntrace")
    (runs_dir / "tiny.nntrace").unlink()  # a run without steps: not to be fitted jointly
    ref = "run:tiny-steps"
    at = open_page(app, {"trace": "tiny-steps"})
    at.radio(key=state.DYNAMICS_SEQUENCE).set_value("steps").run()
    assert_healthy(at)
    key = state.epoch_key(state.DYNAMICS_MAP_STEP_FEATURES, ref)
    usable = at.multiselect(key=key).options
    chosen = usable[:2]
    at.multiselect(key=key).set_value(chosen).run()
    assert_healthy(at)
    url = own(at)
    assert url["seq"] == "steps" and "features" not in url
    again = open_page(app, {"trace": "tiny-steps", **url})
    assert again.radio(key=state.DYNAMICS_SEQUENCE).value == "steps"
    assert again.multiselect(key=key).value == at.multiselect(key=key).value
    assert "steps, features from" in texts(again.caption)
    assert own(again) == url


def test_a_bad_value_in_a_link_falls_back_to_the_default(app: Callable[[], AppTest]) -> None:
    at = open_page(
        app,
        {
            "trace": "tiny",
            "k": "99",
            "nlayers": "no_such_layer",
            "perms": "7",
            "alpha": "nan",
            "seq": "steps",  # the trace has no per-step table
            "runs": "not-a-run",
            "epoch": "40",
        },
    )
    defaults = Settings()
    assert at.selectbox(key=state.DYNAMICS_MAP_K).value == defaults.k
    assert at.selectbox(key=state.DYNAMICS_ENTROPY_PERMUTATIONS).value == defaults.permutations
    assert at.selectbox(key=state.DYNAMICS_ENTROPY_ALPHA).value == defaults.alpha
    assert at.radio(key=state.DYNAMICS_SEQUENCE).value == "epochs"
    layers = at.multiselect(key=state.epoch_key(state.DYNAMICS_NEURON_LAYERS, REF)).value
    assert layers == ["hidden_1", "hidden_2", "output"]
    epoch = at.select_slider(key=state.epoch_key(state.DYNAMICS_ENTROPY_EPOCH, REF))
    assert epoch.value == 4
    url = own(at)  # the address bar now says what the page shows
    assert url["k"] == "bic" and url["seq"] == "epochs" and url["epoch"] == "4"
    assert "runs" not in url  # no other run of this configuration: no picker
    assert len(at.get("graphviz_chart")) == 1
