"""The process behind a run directory (nn_tracing.run_process): stop_run signals only the
verified writer, and a child's error line is read from its log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nn_tracing as nt
from nn_tracing.run_process import LOG_FILE, error_line, stop_run, training_command, writer_pid
from nn_tracing.rundir_live import WRITER_FILE, Heartbeat, process_start, read_writer

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
LONG_RUN = ("--dataset", "moons", "--hidden", "8", "--epochs", "100000", "--n-samples", "400",
            "--probe-size", "32", "--every", "50", "--quiet", "--threads", "1")  # fmt: skip


@pytest.fixture
def training(tmp_path: Path):
    """A real ``nn-tracing train --out run/`` process, under way (its heartbeat written)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nn_tracing", "train", *LONG_RUN, "--out", "run/"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while read_writer(tmp_path / "run") is None or not (tmp_path / "run/manifest.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    try:
        yield proc, tmp_path / "run"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_stop_run_stops_the_writer_gracefully(training) -> None:
    proc, run = training
    assert writer_pid(run) == proc.pid
    assert stop_run(run) is True
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    trace = nt.load_trace(run)
    assert trace.status == "stopped" and "stop_requested_at" in trace.meta
    assert stop_run(run) is False  # the run has ended: nothing to stop


def _write_writer(directory: Path, **changes: object) -> None:
    """A ``writer.json`` in ``directory``: this process's heartbeat, with ``changes``."""
    Heartbeat(directory).beat(force=True)
    data = json.loads((directory / WRITER_FILE).read_text())
    data.update(changes)
    (directory / WRITER_FILE).write_text(json.dumps(data))


def test_stop_run_refuses_a_process_that_is_not_nn_tracing_train(tmp_path: Path) -> None:
    """This very test process, named by a writer.json with its true pid and start time: alive
    and the same process, but its command line is pytest, not ``nn-tracing train``."""
    _write_writer(tmp_path)
    assert read_writer(tmp_path).pid == os.getpid()
    assert writer_pid(tmp_path) is None and stop_run(tmp_path) is False


def test_stop_run_refuses_a_training_process_of_another_directory(training, tmp_path) -> None:
    """A copy of a live run's writer.json elsewhere names a real ``nn-tracing train`` process,
    but one that writes another directory."""
    proc, run = training
    other = tmp_path / "copy"
    other.mkdir()
    shutil.copy(run / WRITER_FILE, other / WRITER_FILE)
    assert writer_pid(other) is None and stop_run(other) is False
    assert proc.poll() is None  # untouched


def test_stop_run_refuses_a_reused_pid_or_another_machine(training, tmp_path) -> None:
    proc, run = training
    info = read_writer(run)
    assert info is not None and process_start(proc.pid) == info.proc_start
    for name, changes in {
        "reused": {"proc_start": info.proc_start + 1},  # same pid, another process
        "unknown-start": {"proc_start": 0},
        "elsewhere": {"host": "another-machine"},
    }.items():
        target = tmp_path / name
        shutil.copytree(run, target, ignore=shutil.ignore_patterns("*.tmp"))
        data = {**info.to_dict(), **changes}
        (target / WRITER_FILE).write_text(json.dumps(data))
        assert stop_run(target) is False, name
    assert proc.poll() is None


def test_stop_run_of_a_folder_without_writer_is_false(tmp_path: Path) -> None:
    assert stop_run(tmp_path) is False
    assert stop_run(tmp_path / "missing") is False


def test_the_error_line_is_the_commands_own_line(tmp_path: Path) -> None:
    (tmp_path / LOG_FILE).write_text(
        "warming up\nnn-tracing: error: device='cuda' was asked for but no CUDA device\n"
    )
    assert error_line(tmp_path) == "device='cuda' was asked for but no CUDA device"
    (tmp_path / LOG_FILE).write_text(
        "Traceback (most recent call last):\n  x\nOSError: disk full\n"
    )
    assert error_line(tmp_path) == "OSError: disk full"
    assert error_line(tmp_path / "nowhere") is None


def test_the_child_command_trains_into_its_directory(tmp_path: Path) -> None:
    command = training_command(tmp_path / "run", threads=1)
    assert command[:4] == [sys.executable, "-m", "nn_tracing", "train"]
    assert command[command.index("--out") + 1] == f"{tmp_path / 'run'}{os.sep}"
    assert command[command.index("--threads") + 1] == "1"
