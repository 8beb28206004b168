"""Training from the sidebar: validation next to the field, a real run in a child process to
the end, Stop, a crashing run, and two sessions training at once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import assert_healthy, shown_charts, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import jobs, load_trace
from nn_tracing.runs import find_run
from nn_tracing.ui import state

FIELD = state.FORM_FIELD


def _fill_tiny(at: AppTest, **overrides: object) -> None:
    values: dict[str, object] = {
        "hidden": "6, 4",
        "epochs": 3,
        "n_samples": 300,
        "probe_size": 64,
        "batch_size": 64,
    }
    values.update(overrides)
    for field, value in values.items():
        key = FIELD + field
        widget = (
            at.sidebar.text_input(key=key)
            if isinstance(value, str)
            else at.sidebar.number_input(key=key)
        )
        widget.set_value(value)


def _run_button(at: AppTest):
    return next(b for b in at.sidebar.button if b.label == "Run training")


def _job(at: AppTest) -> jobs.TrainingJob | None:
    """The session's newest run (from the job registry, where the app finds it)."""
    if state.OWNER not in at.session_state:
        return None
    started = jobs.jobs_of(at.session_state[state.OWNER])
    return started[-1] if started else None


def _finish(at: AppTest, timeout: float = 120) -> jobs.JobSnapshot:
    job = _job(at)
    assert job is not None
    assert job.join(timeout), "the training job did not finish in time"
    at.run()  # the sidebar notices the end and keeps showing the run's trace
    return job.snapshot()


def _shown_after_the_end(at: AppTest, job: jobs.TrainingJob, name: str) -> None:
    """Assert that the session still shows run ``name`` after it ended: by its name in the
    runs folder (its run directory), as any saved run."""
    assert find_run(name) is not None and job.snapshot().saved_name == name
    assert at.session_state[state.ACTIVE_TRACE] == f"run:{name}"
    assert at.query_params["trace"] == name


def _wait_for_epochs(job: jobs.TrainingJob, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(job.snapshot().recorded_epochs) < n:
        assert time.monotonic() < deadline, f"fewer than {n} epochs recorded in {timeout} s"
        assert not job.snapshot().done, job.snapshot()
        time.sleep(0.05)


def test_a_sidebar_run_trains_in_the_background_and_becomes_active(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    at = app().run()
    _fill_tiny(at, record_value="2")
    at.sidebar.selectbox(key=FIELD + "record_mode").set_value("nth")
    _run_button(at).click().run()
    assert_healthy(at)
    assert _job(at) is not None
    assert at.session_state[state.ACTIVE_TRACE].startswith("job:")
    job = _job(at)
    assert job is not None and job.pid != os.getpid()  # a process of its own
    snap = _finish(at)
    assert snap.state == "finished" and snap.status == "complete"
    assert_healthy(at)
    name = snap.saved_name
    assert name is not None and snap.saved_path == runs_dir / name
    _shown_after_the_end(at, job, name)
    trace = load_trace(runs_dir / name)  # the run directory is the trace: no file beside it
    assert trace.epochs == [0, 2, 3] and trace.status == "complete"
    assert trace.meta["config"]["hidden_sizes"] == [6, 4]
    assert not (runs_dir / f"{name}.nntrace").exists()
    assert "finished" in texts(at.sidebar.success)
    assert shown_charts(at)


def test_invalid_fields_are_refused_next_to_the_field_and_nothing_starts(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    at = app().run()
    _fill_tiny(at, hidden="8, x")
    _run_button(at).click().run()
    assert "'x' is not a whole number" in texts(at.sidebar.error)
    _fill_tiny(at, epochs=0)
    _run_button(at).click().run()
    errors = at.session_state[state.FORM_ERRORS]
    assert errors == {"epochs": "must be between 1 and 100000"}
    _fill_tiny(at, record_value="1, 9")
    at.sidebar.selectbox(key=FIELD + "record_mode").set_value("list")
    _run_button(at).click().run()
    assert "record_value" in at.session_state[state.FORM_ERRORS]
    assert "only 3 epochs" in at.session_state[state.FORM_ERRORS]["record_value"]
    assert _job(at) is None
    assert [p.name for p in runs_dir.iterdir()] == ["tiny.nntrace"]
    assert_healthy(at)


def test_every_invalid_field_is_reported_at_once(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    at = app().run()
    # four wrong fields, one submit: a width that does not parse, and three out of range
    _fill_tiny(at, hidden="8, x", epochs=0, probe_size=0, batch_size=0)
    _run_button(at).click().run()
    errors = at.session_state[state.FORM_ERRORS]
    assert errors == {
        "hidden": "'x' is not a whole number",
        "epochs": "must be between 1 and 100000",
        "batch_size": errors["batch_size"],
        "probe_size": errors["probe_size"],
    }
    assert errors["batch_size"].startswith("must be between 1 and")
    assert errors["probe_size"].startswith("must be between 2 and")
    shown = texts(at.sidebar.error)
    for message in errors.values():
        assert message in shown
    assert _job(at) is None
    # a record list past the last epoch is said, but not when the epochs are wrong too (the
    # list is checked against the default then, which says nothing of the user's run)
    at.sidebar.selectbox(key=FIELD + "record_mode").set_value("list")
    _fill_tiny(at, epochs=0, record_value="1, 9")
    _run_button(at).click().run()
    assert set(at.session_state[state.FORM_ERRORS]) == {"epochs"}
    assert_healthy(at)


def test_stop_saves_the_trace_so_far_labelled_stopped(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    at = app().run()
    _fill_tiny(at, epochs=100_000, name="long")
    _run_button(at).click().run()
    assert "has started" in texts(at.main.info) or "Training now" in texts(at.main.info)
    job = _job(at)
    assert job is not None
    deadline = time.monotonic() + 60
    while job.live_trace is None and time.monotonic() < deadline:
        time.sleep(0.05)
    at.run()  # the page draws the run while it trains, through its run directory
    assert_healthy(at)
    assert at.session_state[state.ACTIVE_TRACE] == "run:long"
    assert "Training now" in texts(at.main.info)
    assert at.sidebar.get("progress")
    at.sidebar.button(key=f"nnt.stop.{job.job_id}").click().run()
    snap = _finish(at)
    assert snap.status == "stopped" and snap.state == "finished"
    assert snap.saved_name == "long"
    trace = load_trace(runs_dir / "long")
    assert trace.status == "stopped" and trace.meta["partial_epoch"] == trace.epochs[-1]
    assert "stop_requested_at" in trace.meta
    assert "stopped" in texts(at.sidebar.warning)
    _shown_after_the_end(at, job, "long")
    assert "Stopped before the end" in texts(at.main.warning)
    assert_healthy(at)


def test_a_crashing_run_leaves_the_app_up_and_keeps_its_epochs(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    """kill -9 of a sidebar run's process: the app stays healthy, says the run failed, and
    the run's directory keeps every epoch recorded before."""
    at = app().run()
    _fill_tiny(at, epochs=100_000, n_samples=2000, name="crash")
    _run_button(at).click().run()
    job = _job(at)
    assert job is not None and job.pid is not None
    _wait_for_epochs(job, 3)
    os.kill(job.pid, signal.SIGKILL)
    snap = _finish(at)
    assert_healthy(at)
    assert snap.state == "failed" and snap.status == "interrupted"
    assert len(snap.recorded_epochs) >= 3
    failed = texts(at.sidebar.error)
    assert "Training crash failed" in failed and "SIGKILL" in failed
    assert f"keeps the {len(snap.recorded_epochs)} epochs it recorded" in failed
    trace = load_trace(runs_dir / "crash")
    assert trace.status == "interrupted" and tuple(trace.epochs) == snap.recorded_epochs
    _shown_after_the_end(at, job, "crash")
    at.run()
    assert_healthy(at)


def test_two_sessions_train_at_once_without_disturbing_each_other(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    first, second = app().run(), app().run()
    _fill_tiny(first, hidden="5", name="first")
    _fill_tiny(second, hidden="7, 7", name="second")
    _run_button(first).click().run()
    _run_button(second).click().run()
    assert _job(first) is not _job(second)
    jobs_ = _job(first), _job(second)
    assert jobs_[0] is not None and jobs_[1] is not None and jobs_[0].pid != jobs_[1].pid
    one, two = _finish(first), _finish(second)
    assert (one.saved_name, two.saved_name) == ("first", "second")
    _shown_after_the_end(first, jobs_[0], "first")
    _shown_after_the_end(second, jobs_[1], "second")
    assert load_trace(runs_dir / "first").meta["config"]["hidden_sizes"] == [5]
    assert load_trace(runs_dir / "second").meta["config"]["hidden_sizes"] == [7, 7]


def test_the_form_can_take_the_settings_of_the_active_trace(app: Callable[[], AppTest]) -> None:
    at = app().run()
    at.sidebar.button(key="nnt.form.load").click().run()
    assert at.sidebar.text_input(key=FIELD + "hidden").value == "8, 8"
    assert at.sidebar.number_input(key=FIELD + "epochs").value == 4
    assert at.sidebar.number_input(key=FIELD + "probe_size").value == 64
    assert at.sidebar.selectbox(key=FIELD + "record_mode").value == "every"
    assert_healthy(at)


def test_a_run_over_the_servers_memory_budget_is_refused_with_the_knob_to_turn(
    app: Callable[[], AppTest], runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What got a shared server OOM-killed: 8192 neurons, a 65536-sample probe, 400k samples,
    every epoch recorded. Refused before anything is allocated, with the figures."""
    monkeypatch.setenv("NN_TRACING_MEMORY_BUDGET", "4GiB")
    at = app().run()
    assert "4.0 GiB of memory together" in texts(at.sidebar.caption)
    _fill_tiny(at, hidden="8192", probe_size=65536, n_samples=400_000, epochs=30)
    _run_button(at).click().run()
    refused = texts(at.sidebar.error)
    assert "GiB of memory at its peak" in refused and "lower probe_size" in refused
    assert "4.0 GiB" in refused
    assert _job(at) is None
    assert [p.name for p in runs_dir.iterdir()] == ["tiny.nntrace"]
    assert_healthy(at)
