"""Run directories in the app: live marks in the picker and the runs-folder table, pages of a
run being written, and renaming or deleting runs with a confirmation step."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import assert_healthy, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import NetworkTrace, load_trace
from nn_tracing.rundir import RunWriter
from nn_tracing.rundir_live import WRITER_FILE, Heartbeat
from nn_tracing.ui import state


@pytest.fixture(scope="module")
def trace(tiny_trace_file: Path) -> NetworkTrace:
    return load_trace(tiny_trace_file)


def _writing(directory: Path, trace: NetworkTrace, n_epochs: int) -> RunWriter:
    """A run directory that this (live) process is writing, ``n_epochs`` recorded so far."""
    writer = RunWriter(directory, trace)
    for epoch in trace.epochs[:n_epochs]:
        writer.write_epoch(epoch)
    return writer


def _writer_gone(directory: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    path = directory / WRITER_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), "pid": int(done.stdout)}))


def _table(at: AppTest) -> dict[str, dict]:
    frame = at.sidebar.dataframe[0].value
    return {row["name"]: row for row in frame.to_dict("records")}


def _open(at: AppTest, ref: str) -> AppTest:
    at.sidebar.selectbox(key=state.TRACE_PICKER).set_value(ref).run()
    return at


def _recorded(at: AppTest) -> str:
    return next(m.value for m in at.metric if m.label == "Recorded epochs")


# -- live marks ----------------------------------------------------------------------------------
def test_the_picker_and_the_table_mark_each_run_directory_s_state(
    app: Callable[[], AppTest], runs_dir: Path, trace: NetworkTrace
) -> None:
    _writing(runs_dir / "growing", trace, 2)
    _writing(runs_dir / "crashed", trace, 3)
    _writer_gone(runs_dir / "crashed")
    Heartbeat(runs_dir / "fresh").beat(force=True)
    at = app().run()
    assert_healthy(at)
    options = at.sidebar.selectbox(key=state.TRACE_PICKER).options
    growing = next(o for o in options if o.startswith("growing · "))
    assert growing.startswith(f"growing · ● live · E_{trace.epochs[1]} · ")
    assert "s ago · moons · MLP 8-8 relu" in growing
    crashed = f"crashed · interrupted · E_{trace.epochs[2]} · moons"
    assert any(o.startswith(crashed) for o in options)
    assert not any(o.startswith("fresh") for o in options)  # nothing to open yet
    assert any(o.startswith("tiny · ✓ · moons · MLP 8-8 relu · 4 ep") for o in options)
    table = _table(at)
    assert table["growing"]["kind"] == "folder" and table["growing"]["status"] == "running"
    assert table["growing"]["state"].startswith("● live · E_")
    assert table["crashed"]["status"] == "interrupted"
    assert table["fresh"]["state"] == "● starting (no epoch yet)"
    assert table["fresh"]["status"] == "starting"
    assert (table["tiny"]["kind"], table["tiny"]["state"]) == ("file", "file")


def test_a_live_run_opens_follows_new_epochs_and_stops_following_when_done(
    app: Callable[[], AppTest], runs_dir: Path, trace: NetworkTrace
) -> None:
    writer = _writing(runs_dir / "growing", trace, 2)
    at = _open(app().run(), "run:growing")
    assert_healthy(at)
    assert _recorded(at) == "2"
    follow_caption = "this page follows the run as it is written"
    assert follow_caption in texts(at.main.caption)
    assert any("● live" in c for c in texts(at.main.caption).split(" · "))
    assert "Status" in [m.label for m in at.metric]
    assert next(m.value for m in at.metric if m.label == "Status") == "training"
    writer.write_epoch(trace.epochs[2])  # a new epoch: a new manifest, a new load
    at.run()
    assert _recorded(at) == "3"
    writer.close()  # finished: the page is drawn as it is, nothing polls
    at.run()
    assert_healthy(at)
    assert _recorded(at) == str(len(trace.epochs))
    assert follow_caption not in texts(at.main.caption)
    assert next(m.value for m in at.metric if m.label == "Status") == "complete"


def test_neurons_page_of_a_live_run_follows_it(
    app: Callable[[], AppTest], runs_dir: Path, trace: NetworkTrace
) -> None:
    writer = _writing(runs_dir / "growing", trace, 2)
    at = _open(app().run(), "run:growing")
    at.switch_page("pages/neurons.py").run()
    assert_healthy(at)
    assert "this page follows the run as it is written" in texts(at.main.caption)
    slider = at.select_slider(key=state.epoch_key(state.NEURON_EPOCH, "run:growing"))
    assert list(slider.options) == [f"E_{e}" for e in trace.epochs[:2]]
    writer.write_epoch(trace.epochs[2])
    at.run()
    slider = at.select_slider(key=state.epoch_key(state.NEURON_EPOCH, "run:growing"))
    assert list(slider.options) == [f"E_{e}" for e in trace.epochs[:3]]


def test_other_pages_say_the_run_grows_and_offer_to_load_newer_epochs(
    app: Callable[[], AppTest], runs_dir: Path, trace: NetworkTrace
) -> None:
    writer = _writing(runs_dir / "growing", trace, 2)
    at = _open(app().run(), "run:growing")
    at.switch_page("pages/breadcrumbs.py").run()
    assert_healthy(at)
    note = texts(at.main.info)
    assert "still being written" in note and f"E_0 … E_{trace.epochs[1]}" in note
    assert "this page follows the run" not in texts(at.main.caption)
    writer.write_epoch(trace.epochs[2])
    at.button(key=state.LIVE_REFRESH).click().run()
    assert f"E_0 … E_{trace.epochs[2]}" in texts(at.main.info)


def test_an_interrupted_run_opens_with_its_epochs_and_is_not_followed(
    app: Callable[[], AppTest], runs_dir: Path, trace: NetworkTrace
) -> None:
    _writing(runs_dir / "crashed", trace, 3)
    _writer_gone(runs_dir / "crashed")
    at = _open(app().run(), "run:crashed")
    assert_healthy(at)
    assert _recorded(at) == "3"
    assert "this page follows the run" not in texts(at.main.caption)
    assert "Interrupted" in texts(at.main.warning)


# -- housekeeping --------------------------------------------------------------------------------
def _manage(at: AppTest, ref: str) -> AppTest:
    at.sidebar.selectbox(key=state.RUNS_MANAGED).set_value(ref).run()
    return at


def test_delete_asks_first_and_then_deletes(
    app: Callable[[], AppTest], runs_dir: Path, trace: NetworkTrace
) -> None:
    _writing(runs_dir / "old run", trace, 2).close()
    at = _manage(app().run(), "run:old run")
    at.button(key="nnt.runs.delete").click().run()
    assert "This cannot be undone" in texts(at.sidebar.warning)
    assert (runs_dir / "old run").is_dir()  # asking deletes nothing
    at.button(key="nnt.runs.cancel").click().run()
    assert not at.sidebar.warning and (runs_dir / "old run").is_dir()
    at.button(key="nnt.runs.delete").click().run()
    confirm = at.button(key="nnt.runs.confirm_delete")
    assert confirm.label == "Delete old run for good"
    confirm.click().run()
    assert_healthy(at)
    assert not (runs_dir / "old run").exists()
    assert "Deleted old run." in texts(at.sidebar.success)
    assert "old run" not in _table(at)


def test_deleting_the_active_run_opens_another(app: Callable[[], AppTest], runs_dir: Path) -> None:
    (runs_dir / "other.nntrace").write_bytes((runs_dir / "tiny.nntrace").read_bytes())
    at = _open(app().run(), "run:other")
    _manage(at, "run:other")
    at.button(key="nnt.runs.delete").click().run()
    at.button(key="nnt.runs.confirm_delete").click().run()
    assert_healthy(at)
    assert sorted(p.name for p in runs_dir.iterdir()) == ["tiny.nntrace"]
    assert at.session_state[state.ACTIVE_TRACE] == "run:tiny"


def test_rename_asks_for_a_free_name_and_the_active_trace_follows(
    app: Callable[[], AppTest], runs_dir: Path, trace: NetworkTrace
) -> None:
    _writing(runs_dir / "folder run", trace, 1).close()
    at = _manage(_open(app().run(), "run:tiny"), "run:tiny")
    at.button(key="nnt.runs.rename").click().run()
    assert at.text_input(key=state.RUNS_NEW_NAME).value == "tiny"
    at.text_input(key=state.RUNS_NEW_NAME).set_value("folder run")
    at.button(key="nnt.runs.confirm_rename").click().run()
    assert "exists already" in texts(at.sidebar.error)
    assert (runs_dir / "tiny.nntrace").is_file()
    at.text_input(key=state.RUNS_NEW_NAME).set_value("a/b")
    at.button(key="nnt.runs.confirm_rename").click().run()
    assert "cannot be a run's name" in texts(at.sidebar.error)
    at.text_input(key=state.RUNS_NEW_NAME).set_value("tiny renamed")
    at.button(key="nnt.runs.confirm_rename").click().run()
    assert_healthy(at)
    assert sorted(p.name for p in runs_dir.iterdir()) == ["folder run", "tiny renamed.nntrace"]
    assert at.session_state[state.ACTIVE_TRACE] == "run:tiny renamed"
    assert at.query_params["trace"] == "tiny renamed"
    assert "Renamed tiny to tiny renamed." in texts(at.sidebar.success)


def test_a_run_being_written_cannot_be_renamed_or_deleted(
    app: Callable[[], AppTest], runs_dir: Path, trace: NetworkTrace
) -> None:
    _writing(runs_dir / "busy", trace, 2)
    at = _manage(app().run(), "run:busy")
    assert at.button(key="nnt.runs.delete").disabled
    assert at.button(key="nnt.runs.rename").disabled
    assert "stop its training first" in texts(at.sidebar.caption)
    assert load_trace(runs_dir / "busy").epochs == trace.epochs[:2]


def test_each_version_of_a_run_directory_is_loaded_once_and_only_the_newest_kept(
    runs_dir: Path, trace: NetworkTrace
) -> None:
    from nn_tracing.ui.traces import _RunVersions, run_stamp

    growing, other = runs_dir / "growing", runs_dir / "other"
    writer = _writing(growing, trace, 2)
    _writing(other, trace, 1)
    versions = _RunVersions(max_runs=1)
    first = versions.get(growing, run_stamp(growing))
    assert versions.get(growing, run_stamp(growing)) is first  # same manifest: no new load
    writer.write_epoch(trace.epochs[2])
    second = versions.get(growing, run_stamp(growing))
    assert second is not first and second.epochs == trace.epochs[:3]
    assert first.epochs == trace.epochs[:2]
    versions.get(other, run_stamp(other))  # one run at most: "growing" is dropped
    assert versions.get(growing, run_stamp(growing)) is not second


def test_a_run_training_in_its_own_process_is_stopped_from_the_runs_folder(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    """As after a server restart: a run no session of this server started, stopped from the
    runs folder (confirmed first), ends ``stopped`` with its epochs."""
    from nn_tracing.run_process import spawn_training
    from tests.conftest import TINY_CONFIG

    run_dir = runs_dir / "elsewhere"
    run_dir.mkdir()
    child = spawn_training(TINY_CONFIG.replace(epochs=100_000), run_dir)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "manifest.json").exists():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        at = app().run()
        at.sidebar.selectbox(key=state.RUNS_MANAGED).set_value("run:elsewhere").run()
        assert at.sidebar.button(key="nnt.runs.rename").disabled  # being written
        at.sidebar.button(key="nnt.runs.stop").click().run()
        assert child.poll() is None  # asked first, not stopped yet
        assert "Stop training elsewhere?" in texts(at.sidebar.warning)
        at.sidebar.button(key="nnt.runs.confirm_stop").click().run()
        assert_healthy(at)
        assert "Asked elsewhere to stop" in texts(at.sidebar.success)
        assert child.wait(60) == 130  # the CLI's exit code for a stopped run
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    trace = load_trace(run_dir)
    assert trace.status == "stopped" and "stop_requested_at" in trace.meta
    at.run()
    assert "stopped" in _table(at)["elsewhere"]["status"]
    assert not at.sidebar.button(key="nnt.runs.rename").disabled
