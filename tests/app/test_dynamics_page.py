"""The Dynamics page through the real entrypoint: one fixture trace, two seeds of one
configuration fitted jointly, training more seeds from the page, and its controls."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import assert_healthy, chart_rows, shown_charts, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import TrainConfig, jobs, load_trace, save_trace, train
from nn_tracing.runs import find_run
from nn_tracing.ui import state

PAGE = "pages/dynamics.py"


@pytest.fixture(scope="module")
def second_seed(tmp_path_factory: pytest.TempPathFactory, tiny_trace_file: Path) -> Path:
    """The fixture trace's configuration with seed 1."""
    config = TrainConfig.from_dict(load_trace(tiny_trace_file).meta["config"])
    run = train(config.replace(seed=1))
    assert run.trace is not None
    return save_trace(run.trace, tmp_path_factory.mktemp("seeds") / "tiny-seed1.nntrace")


def open_page(app: Callable[[], AppTest]) -> AppTest:
    """The Dynamics page on the fixture trace ``tiny``."""
    at = app()
    at.query_params["trace"] = "tiny"
    at.run()
    at.switch_page(PAGE).run()
    return at


def test_the_page_draws_every_section_on_one_trace(app: Callable[[], AppTest]) -> None:
    at = open_page(app)
    assert_healthy(at)
    assert at.title[0].value == "Dynamics"
    # one tab per section, the verdict of each first and its details folded
    assert [t.label for t in at.tabs] == [
        "Training map of the network",
        "Neuron-level latent states",
        "Decision entropy",
    ]
    # five recorded epochs: too few for phases, and the page says so before the map, which
    # it folds away
    verdicts = [*at.tabs[0].warning, *at.tabs[0].success]
    assert len(verdicts) == 1 and texts(verdicts).startswith("Little structure")
    assert "not distinguishable from chance" in texts(verdicts)
    assert [e.label for e in at.tabs[0].expander][:3] == [
        "The map drawn anyway (read it with the warning above)",
        "Settings: runs of this configuration, features, number of states",
        "How the map was fitted: k chosen, posteriors and their entropy",
    ]
    assert "No other run of this configuration" in texts(at.main.info)
    assert len(at.get("graphviz_chart")) == 1
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "digraph training_map" in dot and "S0" in dot
    # selection, states along the curve, posteriors, their entropy; neuron selection and
    # raster; MI per layer and share significant
    assert len(shown_charts(at)) == 8
    labels = [m.label for m in at.metric]
    assert "p, shuffled time" in labels and "Entropy rate (bits/epoch)" in labels
    captions = texts(at.caption)
    assert "Fitted on 1 run (tiny)" in captions
    assert "100 label permutations" in texts(at.main.info)
    assert "more ordered than chance at E_4" in captions


def test_two_seeds_of_one_configuration_are_fitted_jointly(
    app: Callable[[], AppTest], runs_dir: Path, second_seed: Path
) -> None:
    shutil.copy(second_seed, runs_dir / "tiny-seed1.nntrace")
    at = open_page(app)
    assert_healthy(at)
    picker = at.multiselect(key=state.epoch_key(state.DYNAMICS_RUNS, "run:tiny"))
    assert picker.options == ["tiny-seed1 (seed 1)"] and picker.value == ["tiny-seed1"]
    assert "Fitted on 2 runs (tiny, tiny-seed1)" in texts(at.caption)
    assert "Detours and each run's convergence" in [e.label for e in at.expander]
    convergence = [d.value for d in at.dataframe if "convergence_epoch" in d.value.columns]
    assert convergence and convergence[0]["run"].tolist() == ["tiny", "tiny-seed1"]
    # leaving the other run out fits this one alone
    picker.set_value([]).run()
    assert_healthy(at)
    assert "Fitted on 1 run (tiny)" in texts(at.caption)


def test_more_seeds_train_in_the_background_and_join_the_fit(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    at = open_page(app)
    at.number_input(key=state.DYNAMICS_SEED_COUNT).set_value(1).run()
    at.button(key=state.DYNAMICS_SEED_BUTTON).click().run()
    job_ids = at.session_state[state.DYNAMICS_SEED_JOBS]
    assert len(job_ids) == 1
    job = jobs.get_job(job_ids[0])
    assert job is not None and job.config.seed == 1  # the first seed not taken
    assert job.join(120)
    assert job.snapshot().status == "complete"
    at.run()  # the panel sees the run finished and asks for one full rerun
    at.run()
    assert_healthy(at)
    assert load_trace(runs_dir / "tiny-seed1").meta["config"]["seed"] == 1  # its run directory
    assert "trained and saved" in texts(at.main.success)
    # the new run (a run directory) joins the fit
    assert find_run("tiny-seed1") == runs_dir / "tiny-seed1"
    picker = at.multiselect(key=state.epoch_key(state.DYNAMICS_RUNS, "run:tiny"))
    assert picker.options == ["tiny-seed1 (seed 1)"]


def test_seeds_trained_here_join_the_fit_in_the_same_session(
    app: Callable[[], AppTest], runs_dir: Path, second_seed: Path
) -> None:
    shutil.copy(second_seed, runs_dir / "tiny-seed1.nntrace")
    at = open_page(app)
    picker_key = state.epoch_key(state.DYNAMICS_RUNS, "run:tiny")
    at.multiselect(key=picker_key).set_value([]).run()  # the user leaves seed 1 out
    at.number_input(key=state.DYNAMICS_SEED_COUNT).set_value(1).run()
    at.button(key=state.DYNAMICS_SEED_BUTTON).click().run()
    job = jobs.get_job(at.session_state[state.DYNAMICS_SEED_JOBS][0])
    assert job is not None and job.config.seed == 2 and job.join(120)
    at.run()  # the panel sees the run finished and asks for one full rerun
    at.run()
    assert_healthy(at)
    picker = at.multiselect(key=picker_key)
    assert picker.options == ["tiny-seed1 (seed 1)", "tiny-seed2 (seed 2)"]
    # the new run is ticked at once, no reload; the run the user left out stays out
    assert picker.value == ["tiny-seed2"]
    assert "Fitted on 2 runs (tiny, tiny-seed2)" in texts(at.caption)


def test_the_controls_redraw_their_section(app: Callable[[], AppTest]) -> None:
    at = open_page(app)
    at.selectbox(key=state.DYNAMICS_MAP_K).set_value(2).run()
    assert_healthy(at)
    at.radio(key=state.DYNAMICS_MAP_CURVE).set_value("weight_norm").run()
    at.selectbox(key=state.DYNAMICS_NEURON_K).set_value(3).run()
    assert_healthy(at)
    assert any(m.label == "States" and m.value == "3" for m in at.metric)
    at.radio(key=state.DYNAMICS_NEURON_ORDER).set_value("path").run()
    at.selectbox(key=state.DYNAMICS_ENTROPY_LABEL).set_value("true").run()
    at.selectbox(key=state.DYNAMICS_ENTROPY_BINNING).set_value("epoch").run()
    assert_healthy(at)
    assert "with the true class" in texts(at.main.info)
    at.select_slider(key=state.epoch_key(state.DYNAMICS_ENTROPY_EPOCH, "run:tiny")).set_value(
        2
    ).run()
    assert "Neurons at E_2" in texts(at.markdown)
    at.button(key=state.DYNAMICS_NEURON_TEST_BUTTON).click().run()
    assert_healthy(at)
    assert sum(m.label == "p, shuffled time" for m in at.metric) == 2


def test_a_trace_without_steps_or_a_probe_says_so_in_place(
    app: Callable[[], AppTest], runs_dir: Path, tiny_trace_file: Path
) -> None:
    trace = load_trace(tiny_trace_file)
    trace.probe = None
    save_trace(trace, runs_dir / "zz-no-probe.nntrace")
    at = app()
    at.query_params["trace"] = "zz-no-probe"
    at.run()
    at.switch_page(PAGE).run()
    assert_healthy(at)
    assert at.session_state[state.ACTIVE_TRACE] == "run:zz-no-probe"
    assert "recorded without a probe" in texts(at.main.info)
    assert at.radio(key=state.DYNAMICS_SEQUENCE).disabled  # no per-step table
    assert len(at.get("graphviz_chart")) == 1  # the rest of the page works


@pytest.fixture(scope="module")
def smooth_run(tmp_path_factory: pytest.TempPathFactory, tiny_trace_file: Path) -> Path:
    """The fixture's configuration trained for 40 epochs: smooth trends."""
    config = TrainConfig.from_dict(load_trace(tiny_trace_file).meta["config"])
    run = train(config.replace(epochs=40))
    assert run.trace is not None
    return save_trace(run.trace, tmp_path_factory.mktemp("smooth") / "smooth.nntrace")


def test_bic_at_the_largest_k_tried_offers_the_next_range(
    app: Callable[[], AppTest], runs_dir: Path, smooth_run: Path
) -> None:
    shutil.copy(smooth_run, runs_dir / "smooth.nntrace")
    at = app()
    at.query_params["trace"] = "smooth"
    at.query_params["kmax"] = "2"
    at.run()
    at.switch_page(PAGE).run()
    assert_healthy(at)
    notes = texts(at.main.info)
    assert "BIC chose k = 2, the largest k tried (1–2)" in notes
    assert "Fit k up to 4 to see whether BIC turns back up." in notes
    at.button(key=f"{state.DYNAMICS_MAP_KMAX}:more").click().run()
    assert_healthy(at)
    assert at.session_state[state.DYNAMICS_MAP_KMAX] == 4
    assert "the largest k tried (1–2)" not in texts(at.main.info)
    assert at.query_params["kmax"] == "4"  # the wider range is in the address bar
    # the map was refitted over k = 1…4: its selection chart (the one from k = 1: the neuron
    # model starts at 2) has BIC at every k up to 4
    charts = [
        {int(row["k"]) for row in chart_rows(chart) if row.get("criterion") == "BIC"}
        for chart in shown_charts(at)
    ]
    assert [ks for ks in charts if 1 in ks] == [{1, 2, 3, 4}]
