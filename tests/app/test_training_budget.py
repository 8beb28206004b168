"""The sidebar form's storage knobs and trace budget: the estimate they give, a refusal shown
as a message (never a traceback), and a run that keeps what the knobs say."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from apptest_support import assert_healthy, shown_charts, texts
from streamlit.testing.v1 import AppTest
from test_pages import PAGES

from nn_tracing import TrainConfig, jobs, load_trace
from nn_tracing.estimate import estimate_run, format_bytes
from nn_tracing.ui import state
from nn_tracing.ui.training_form import DEFAULTS, estimate_lines

FIELD = state.FORM_FIELD
BIG = {"hidden": "256, 256", "epochs": 20, "probe_size": 400, "n_samples": 2000}


def _fill(at: AppTest, **values: object) -> None:
    for field, value in values.items():
        key = FIELD + field
        if isinstance(value, bool):
            at.sidebar.checkbox(key=key).set_value(value)
        elif isinstance(value, str) and field in ("on_budget", "dataset", "record_mode"):
            at.sidebar.selectbox(key=key).set_value(value)
        elif isinstance(value, str):
            at.sidebar.text_input(key=key).set_value(value)
        else:
            at.sidebar.number_input(key=key).set_value(value)


def _run_button(at: AppTest):
    return next(b for b in at.sidebar.button if b.label == "Run training")


def _owner_jobs(at: AppTest) -> list[jobs.TrainingJob]:
    if state.OWNER not in at.session_state:
        return []
    return jobs.jobs_of(at.session_state[state.OWNER])


def test_the_estimate_under_the_form_follows_the_knobs(app: Callable[[], AppTest]) -> None:
    at = app().run()
    _fill(at, **BIG, activation_samples=100, float16=True)
    _run_button(at).click().run()  # a submit commits the fields (the run itself is tiny)
    config = TrainConfig(
        dataset="moons",
        hidden_sizes=(256, 256),
        epochs=20,
        probe_size=400,
        activation_samples=100,
        activation_dtype="float16",
    )
    estimate = estimate_run(config)
    shown = texts(at.sidebar.caption)
    assert f"a run directory of {format_bytes(estimate.rundir_bytes)}" in shown
    assert "activations of 100 of" in shown and "float16" in shown
    assert "21 recorded epochs" in shown
    for job in _owner_jobs(at):
        job.join(120)
    assert_healthy(at)


def test_a_run_over_its_trace_budget_is_refused_with_the_knobs_not_a_traceback(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    before = sorted(p.name for p in runs_dir.iterdir())
    at = app().run()
    _fill(at, **BIG, max_trace_mib=1.0)
    _run_button(at).click().run()
    refused = texts(at.sidebar.error)
    assert "over max_trace_bytes (1.0 MiB)" in refused
    assert "activation_dtype='float16' →" in refused and "activation_samples=" in refused
    assert "on_budget='adapt'" in refused
    # the same message under the form, before any submit, from the fields as they stand
    assert "over max_trace_bytes (1.0 MiB)" in texts(at.sidebar.warning)
    assert not at.exception
    assert _owner_jobs(at) == []
    assert sorted(p.name for p in runs_dir.iterdir()) == before
    assert_healthy(at)


def test_an_adapted_run_trains_and_keeps_what_the_plan_says(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    at = app().run()
    values = {"hidden": "64", "epochs": 3, "probe_size": 200, "n_samples": 800}
    config = TrainConfig(
        dataset="moons", hidden_sizes=(64,), epochs=3, probe_size=200, n_samples=800
    )
    mib = round(estimate_run(config).rundir_bytes * 0.6 / 2**20, 3)
    _fill(at, **values, max_trace_mib=mib, on_budget="adapt")
    _run_button(at).click().run()
    assert "the run was adapted: activation_dtype='float16'" in texts(at.sidebar.caption)
    (job,) = _owner_jobs(at)
    assert job.join(120)
    trace = load_trace(job.run_dir)
    assert trace.meta["budget"]["adapted"]["activation_dtype"] == "float16"
    assert trace.epoch_tensors(3)["activations"].dtype == np.float16
    at.run()
    assert_healthy(at)


def test_estimate_lines_of_the_default_form_fit_and_of_a_bad_field_say_nothing() -> None:
    line, refusal = estimate_lines(DEFAULTS)
    assert line.startswith("Estimate: about ") and refusal == ""
    assert estimate_lines({**DEFAULTS, "hidden": "sixteen"}) == ("", "")
    # the default MLP (moons, 16-16): 2 + 16 + 16 + 2 neurons, 20 with one hidden layer traced
    assert "36 neurons" in line
    selected, _ = estimate_lines({**DEFAULTS, "traced": "hidden_2"})
    assert "20 neurons" in selected
    assert estimate_lines({**DEFAULTS, "traced": "hidden_5"}) == ("", "")


@pytest.fixture
def half_trace(runs_dir: Path) -> str:
    """A run directory that keeps 24 of 64 probe samples, float16, with weights kept."""
    from nn_tracing import train

    config = TrainConfig(
        dataset="moons",
        hidden_sizes=(8, 8),
        epochs=4,
        n_samples=300,
        probe_size=64,
        activation_samples=24,
        activation_dtype="float16",
        keep_weights=True,
    )
    run = train(config, out=runs_dir / "half")
    assert run.trace.epoch_tensors(4)["activations"].dtype == np.float16
    return "half"


@pytest.fixture
def selected_trace(runs_dir: Path) -> str:
    """A run that traces one of its three hidden layers (hidden_2), weights kept."""
    from nn_tracing import train

    config = TrainConfig(
        dataset="moons",
        hidden_sizes=(8, 6, 8),
        epochs=4,
        n_samples=300,
        probe_size=64,
        traced_layers=("hidden_2",),
        keep_weights=True,
    )
    run = train(config, out=runs_dir / "selected")
    assert run.trace.layer_names() == ["input", "hidden_2", "output"]
    return "selected"


@pytest.mark.parametrize("kind", ["half", "selected"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_reads_a_float16_trace_of_kept_samples_and_a_layer_selection(
    app: Callable[[], AppTest], request: pytest.FixtureRequest, page: str, kind: str
) -> None:
    name = request.getfixturevalue(f"{kind}_trace")
    at = app()
    at.query_params["trace"] = name
    at.run()
    at.switch_page(page).run()
    assert_healthy(at)
    assert shown_charts(at), f"{page} draws no chart"
    assert at.query_params["trace"] == name


def test_a_neurons_profile_of_a_float16_trace_has_every_section(
    app: Callable[[], AppTest], half_trace: str
) -> None:
    at = app()
    at.query_params["trace"] = half_trace
    at.query_params["neuron"] = "E_3/L_hidden_2/n_12"
    at.run()
    assert_healthy(at)
    assert at.selectbox(key=state.NEURON_PICK).value == "E_3/L_hidden_2/n_12"
    assert len(shown_charts(at)) >= 4
