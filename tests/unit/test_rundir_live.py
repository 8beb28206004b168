"""Who writes a run directory, and whether it lives (nn_tracing/rundir_live.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nn_tracing.rundir_live import (
    GONE_SECONDS,
    STALL_SECONDS,
    WRITER_FILE,
    Heartbeat,
    liveness,
    process_start,
    read_writer,
    this_machine,
)


def _edit(directory: Path, **changes) -> None:
    path = directory / WRITER_FILE
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _ended_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_process_start_tells_a_live_process_from_an_ended_one():
    assert process_start(os.getpid()) not in (None, 0)
    assert process_start(_ended_pid()) is None


def test_a_heartbeat_is_rate_limited_and_carries_progress(tmp_path):
    beat = Heartbeat(tmp_path, interval=60)
    assert beat.beat(epoch=1, loss=0.5) is True
    assert beat.beat(epoch=2) is False  # within the interval
    assert read_writer(tmp_path).progress == {"epoch": 1, "loss": 0.5}
    assert beat.beat(force=True, epoch=2, step=7) is True
    info = read_writer(tmp_path)
    assert info is not None and info.pid == os.getpid()
    assert (info.host, info.boot_id) == this_machine()
    assert info.progress == {"epoch": 2, "loss": 0.5, "step": 7}
    assert not [p for p in tmp_path.iterdir() if p.name != WRITER_FILE]  # no temporary left


def test_a_non_finite_progress_value_is_dropped_not_written(tmp_path):
    """A diverged loss (inf, nan) cannot go into JSON: the heartbeat leaves it out."""
    beat = Heartbeat(tmp_path)
    beat.beat(force=True, epoch=1, loss=0.5)
    assert beat.beat(force=True, epoch=2, loss=float("inf"), eta=float("nan")) is True
    assert read_writer(tmp_path).progress == {"epoch": 2}


def test_live_stalled_interrupted_and_finished_on_this_machine(tmp_path):
    Heartbeat(tmp_path).beat(force=True)
    now = time.time()
    assert liveness(tmp_path, "running", 3, now).state == "live"
    assert liveness(tmp_path, "complete", 3, now).state == "finished"
    stalled = liveness(tmp_path, "running", 3, now + STALL_SECONDS + 5)
    assert stalled.state == "stalled" and "E_3" in stalled.detail
    _edit(tmp_path, pid=_ended_pid())
    gone = liveness(tmp_path, "running", 3, now)
    assert gone.state == "interrupted" and "E_3" in gone.detail and "gone" in gone.detail


def test_a_reused_pid_is_not_the_writer(tmp_path):
    Heartbeat(tmp_path).beat(force=True)
    info = read_writer(tmp_path)
    assert info is not None
    _edit(tmp_path, proc_start=info.proc_start + 1)  # same pid, another process
    assert liveness(tmp_path, "running", 0).state == "interrupted"


def test_a_writer_on_another_machine_is_judged_by_its_heartbeat(tmp_path):
    Heartbeat(tmp_path).beat(force=True)
    _edit(tmp_path, host="elsewhere", pid=_ended_pid())
    now = time.time()
    assert liveness(tmp_path, "running", 1, now).state == "live"
    assert liveness(tmp_path, "running", 1, now + STALL_SECONDS + 1).state == "stalled"
    assert liveness(tmp_path, "running", 1, now + GONE_SECONDS + 1).state == "interrupted"


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        json.dumps({"pid": -1, "host": "h", "started": 0, "heartbeat": 0}).encode(),
        json.dumps({"pid": 1, "host": 5, "started": 0, "heartbeat": 0}).encode(),
        json.dumps({"pid": 1, "host": "h", "started": "x", "heartbeat": 0}).encode(),
        b"{" + b" " * 70000 + b"}",
    ],
)
def test_a_bad_writer_file_counts_as_no_writer(tmp_path, content):
    (tmp_path / WRITER_FILE).write_bytes(content)
    assert read_writer(tmp_path) is None
    assert liveness(tmp_path, "running", 2).state == "interrupted"


def test_a_writer_file_that_is_a_symlink_is_not_followed(tmp_path):
    Heartbeat(tmp_path / "real").beat(force=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / WRITER_FILE).symlink_to(tmp_path / "real" / WRITER_FILE)
    assert read_writer(tmp_path / "run") is None


def test_bad_progress_fields_are_dropped(tmp_path):
    Heartbeat(tmp_path).beat(force=True)
    _edit(tmp_path, progress={"epoch": "3", "loss": 0.25, "step": True, "evil": [1] * 10})
    info = read_writer(tmp_path)
    assert info is not None and info.progress == {"loss": 0.25}
