"""Run directories in the runs folder (nn_tracing/runs.py): listed beside trace files with
their writer's liveness, opened by name, and deleted or renamed only inside the folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nn_tracing import NetworkTrace, load_trace
from nn_tracing.rundir import RunWriter
from nn_tracing.rundir_live import STALL_SECONDS, WRITER_FILE, Heartbeat
from nn_tracing.runs import (
    RunRefused,
    delete_run,
    find_run,
    list_runs,
    name_problem,
    new_run_directory,
    new_run_path,
    read_entry,
    refresh_entry,
    rename_run,
    run_paths,
)


@pytest.fixture(scope="module")
def trace(tiny_trace_file: Path) -> NetworkTrace:
    """A recorded run (E_0 … E_4), written again epoch by epoch by the tests."""
    return load_trace(tiny_trace_file)


def _running(directory: Path, trace: NetworkTrace, n_epochs: int) -> RunWriter:
    """A run directory whose writer (this process) has written its first ``n_epochs``."""
    writer = RunWriter(directory, trace)
    for epoch in trace.epochs[:n_epochs]:
        writer.write_epoch(epoch)
    return writer


def _edit_writer(directory: Path, **changes: object) -> None:
    path = directory / WRITER_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _writer_gone(directory: Path) -> None:
    """Make ``writer.json`` name a process that has ended (as after a ``kill -9``)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    _edit_writer(directory, pid=int(done.stdout))


def _entries(runs: Path) -> dict[str, object]:
    return {entry.name: entry for entry in list_runs(runs)}


# -- listing -------------------------------------------------------------------------------------
def test_a_run_directory_is_listed_with_its_writer_alive(runs_dir: Path, trace) -> None:
    writer = _running(runs_dir / "growing", trace, 2)
    entry = _entries(runs_dir)["growing"]
    assert (entry.kind, entry.n_recorded, entry.last_epoch, entry.status) == (
        "directory",
        2,
        trace.epochs[1],
        "running",
    )
    assert entry.readable and entry.state == "live" and entry.writing
    assert entry.mark().startswith(f"● live · E_{trace.epochs[1]} · ")
    assert entry.since_write is not None and 0 <= entry.since_write < 60
    assert entry.dataset == "moons" and entry.architecture == "MLP 8-8 relu"
    on_disk = sum(p.stat().st_size for p in (runs_dir / "growing").rglob("*") if p.is_file())
    assert 0 < entry.size <= on_disk  # the files the manifest names (writer.json aside)
    assert find_run("growing", runs_dir) == runs_dir / "growing"
    assert load_trace(find_run("growing", runs_dir)).epochs == trace.epochs[:2]
    writer.close()
    done = read_entry(runs_dir / "growing")
    assert (done.state, done.status, done.writing, done.mark()) == (
        "finished",
        "complete",
        False,
        "",
    )
    assert done.n_recorded == len(trace.epochs)
    assert "live" in entry.describe() and "live" not in done.describe()


def test_a_started_run_without_an_epoch_is_listed_as_starting(runs_dir: Path) -> None:
    Heartbeat(runs_dir / "fresh").beat(force=True)
    entry = _entries(runs_dir)["fresh"]
    assert entry.starting and not entry.readable and entry.writing
    assert entry.mark() == "● starting (no epoch yet)"
    _writer_gone(runs_dir / "fresh")
    gone = read_entry(runs_dir / "fresh")
    assert gone.starting and not gone.writing and gone.mark() == "interrupted before E_0"


def test_stalled_and_interrupted_writers_are_told_apart(runs_dir: Path, trace) -> None:
    _running(runs_dir / "run", trace, 3)
    last = trace.epochs[2]
    stalled = refresh_entry(read_entry(runs_dir / "run"), now=time.time() + STALL_SECONDS + 5)
    assert stalled.state == "stalled" and stalled.writing and stalled.status == "running"
    assert stalled.mark(now=time.time() + 125).startswith(f"stalled · E_{last} · 2 min ago")
    _writer_gone(runs_dir / "run")
    gone = read_entry(runs_dir / "run")
    assert (gone.state, gone.status, gone.writing) == ("interrupted", "interrupted", False)
    assert gone.mark() == f"interrupted · E_{last}" and "gone" in gone.detail


def test_refresh_rechecks_the_writer_without_reading_the_manifest(runs_dir: Path, trace) -> None:
    _running(runs_dir / "run", trace, 2)
    cached = read_entry(runs_dir / "run")
    assert cached.state == "live"
    _writer_gone(runs_dir / "run")
    (runs_dir / "run" / "manifest.json").write_text("not a manifest any more")
    again = refresh_entry(cached)
    assert (again.state, again.status, again.n_recorded) == ("interrupted", "interrupted", 2)
    assert read_entry(runs_dir / "run").error is not None  # a fresh read sees the bad manifest


def test_listing_reads_manifests_not_tables(runs_dir: Path, trace) -> None:
    _running(runs_dir / "run", trace, 2).close()
    shutil.rmtree(runs_dir / "run" / "neurons")
    entry = _entries(runs_dir)["run"]
    assert entry.readable and entry.n_recorded == len(trace.epochs)


def test_only_real_visible_run_folders_are_runs(runs_dir: Path, tmp_path: Path, trace) -> None:
    _running(runs_dir / "real", trace, 1).close()
    outside = tmp_path / "outside"
    _running(outside, trace, 1).close()
    (runs_dir / "linked").symlink_to(outside)  # a link to a folder is never followed
    (runs_dir / "inner-link").symlink_to(runs_dir / "real")
    shutil.copytree(runs_dir / "real", runs_dir / ".hidden")
    shutil.copytree(runs_dir / "real", runs_dir / "named.nntrace")
    (runs_dir / "plain-folder").mkdir()
    (runs_dir / "manifest-link").mkdir()
    (runs_dir / "manifest-link" / "manifest.json").symlink_to(outside / "manifest.json")
    assert sorted(_entries(runs_dir)) == ["real", "tiny"]
    for name in ("linked", "inner-link", ".hidden", "named.nntrace", "plain-folder"):
        assert find_run(name, runs_dir) is None, name
    assert find_run("manifest-link", runs_dir) is None


def test_a_directory_wins_over_a_file_of_the_same_name(runs_dir: Path, trace) -> None:
    _running(runs_dir / "tiny", trace, 2)
    assert find_run("tiny", runs_dir) == runs_dir / "tiny"
    assert run_paths(runs_dir) == [runs_dir / "tiny"]
    entry = _entries(runs_dir)["tiny"]
    assert entry.kind == "directory" and entry.n_recorded == 2


def test_new_names_are_free_as_a_file_and_as_a_directory(runs_dir: Path) -> None:
    (runs_dir / "x").mkdir()
    (runs_dir / "tiny-2").mkdir()
    assert new_run_path("x", runs_dir).name == "x-2.nntrace"
    assert new_run_path("tiny", runs_dir).name == "tiny-3.nntrace"
    made = new_run_directory("tiny", runs_dir)
    assert made == runs_dir / "tiny-3" and made.is_dir() and not any(made.iterdir())
    assert new_run_directory("tiny", runs_dir) == runs_dir / "tiny-4"
    assert new_run_directory("../evil name", runs_dir) == runs_dir / "evil-name"


# -- delete --------------------------------------------------------------------------------------
def test_delete_removes_files_and_directories(runs_dir: Path, trace) -> None:
    _running(runs_dir / "done", trace, 2).close()
    assert delete_run("done", runs_dir) == runs_dir / "done"
    assert delete_run("tiny", runs_dir) == runs_dir / "tiny.nntrace"
    assert list(runs_dir.iterdir()) == []  # nothing left, not even a hidden temporary


def test_delete_never_reaches_outside_the_folder(runs_dir: Path, tmp_path: Path, trace) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(runs_dir / "tiny.nntrace", outside / "secret.nntrace")
    _running(outside / "run", trace, 1).close()
    (runs_dir / "leak.nntrace").symlink_to(outside / "secret.nntrace")
    (runs_dir / "linked").symlink_to(outside / "run")
    (runs_dir / "alias.nntrace").symlink_to("tiny.nntrace")
    # a run directory holding links that lead out: removed as links, targets untouched
    _running(runs_dir / "trap", trace, 1).close()
    (runs_dir / "trap" / "to-file").symlink_to(outside / "secret.nntrace")
    (runs_dir / "trap" / "to-folder").symlink_to(outside / "run")
    for name in ("leak", "linked", "../outside/secret", str(outside / "run"), ".", ""):
        with pytest.raises(RunRefused, match="no run named"):
            delete_run(name, runs_dir)
    assert delete_run("alias", runs_dir) == runs_dir / "alias.nntrace"
    assert (runs_dir / "tiny.nntrace").is_file()  # the link's target stays
    delete_run("trap", runs_dir)
    assert not os.path.lexists(runs_dir / "trap")
    assert load_trace(outside / "secret.nntrace").epochs == trace.epochs
    assert load_trace(outside / "run").epochs == trace.epochs
    assert (runs_dir / "leak.nntrace").is_symlink() and (runs_dir / "linked").is_symlink()


def test_a_run_whose_writer_lives_is_neither_deleted_nor_renamed(runs_dir: Path, trace) -> None:
    _running(runs_dir / "busy", trace, 2)
    with pytest.raises(RunRefused, match=r"being written.*stop its training first"):
        delete_run("busy", runs_dir)
    with pytest.raises(RunRefused, match="being written"):
        rename_run("busy", "other", runs_dir)
    _edit_writer(runs_dir / "busy", heartbeat=time.time() - STALL_SECONDS - 5)
    with pytest.raises(RunRefused, match="being written"):  # stalled: its process lives
        delete_run("busy", runs_dir)
    assert load_trace(runs_dir / "busy").epochs == trace.epochs[:2]
    _writer_gone(runs_dir / "busy")  # interrupted: housekeeping may go ahead
    assert rename_run("busy", "was busy", runs_dir) == runs_dir / "was busy"
    delete_run("was busy", runs_dir)
    assert sorted(p.name for p in runs_dir.iterdir()) == ["tiny.nntrace"]


# -- rename --------------------------------------------------------------------------------------
def test_rename_files_directories_and_links(runs_dir: Path, trace) -> None:
    _running(runs_dir / "folder", trace, 1).close()
    (runs_dir / "alias.nntrace").symlink_to("tiny.nntrace")
    assert rename_run("tiny", "renamed file", runs_dir) == runs_dir / "renamed file.nntrace"
    assert rename_run("folder", "ünï folder", runs_dir) == runs_dir / "ünï folder"
    assert load_trace(runs_dir / "ünï folder").epochs == trace.epochs
    assert load_trace(find_run("renamed file", runs_dir)).epochs == trace.epochs
    (runs_dir / "alias.nntrace").unlink()
    (runs_dir / "alias.nntrace").symlink_to("renamed file.nntrace")
    moved = rename_run("alias", "alias2", runs_dir)
    assert moved.is_symlink() and os.readlink(moved) == "renamed file.nntrace"
    assert sorted(_entries(runs_dir)) == ["alias2", "renamed file", "ünï folder"]


def test_rename_refuses_names_in_use_and_bad_names(runs_dir: Path, trace) -> None:
    _running(runs_dir / "folder", trace, 1).close()
    (runs_dir / "stray-file").write_text("not a run, but the name is taken")
    for taken in ("folder", "stray-file", "tiny"):
        with pytest.raises(RunRefused, match=r"exists already|already has that name"):
            rename_run("tiny", taken, runs_dir)
    with pytest.raises(RunRefused, match="exists already"):
        rename_run("folder", "tiny", runs_dir)  # tiny.nntrace holds the name
    bad = ["", "  ", " pad", "a/b", "..", ".hidden", "x.nntrace", "tab\there", "rtl\u202e"]
    for name in [*bad, "x" * 201]:
        assert name_problem(name) is not None, ascii(name)
        with pytest.raises(RunRefused, match="cannot be a run's name"):
            rename_run("tiny", name, runs_dir)
    with pytest.raises(RunRefused, match="no run named"):
        rename_run("missing", "fine", runs_dir)
    assert name_problem("my run (lr 0.1) ünï 🧠") is None
    assert sorted(p.name for p in runs_dir.iterdir()) == ["folder", "stray-file", "tiny.nntrace"]
