"""A stopped server exits promptly: at interpreter exit, the objects alive are frozen
(``gc.freeze``), so the teardown's collections do not walk the heap of torch and Streamlit
(``nn_tracing.ui.app.freeze_heap_at_exit``). Run in real interpreters, which really exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import atexit, gc
# registered before the hook, so it runs after it (exit handlers run last in, first out)
atexit.register(lambda: print("at-exit", gc.get_freeze_count(), flush=True))
import torch  # a server's heap: torch, Streamlit and the app
from nn_tracing.ui import app
registered = atexit._ncallbacks()
app.freeze_heap_at_exit()
app.freeze_heap_at_exit()  # idempotent: the shell calls it on every run
print("hooks", atexit._ncallbacks() - registered, flush=True)
print("before-exit", gc.get_freeze_count(), len(gc.get_objects()), flush=True)
"""


def run_child() -> dict[str, list[int]]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return {
        label: [int(value) for value in values]
        for label, *values in (line.split() for line in result.stdout.splitlines())
    }


def test_the_heap_alive_at_exit_is_frozen_once_the_exit_handlers_start() -> None:
    seen = run_child()
    assert seen["hooks"] == [1]  # one hook, however often the shell asks
    frozen_before, tracked = seen["before-exit"]
    assert frozen_before == 0  # nothing is frozen while the server serves
    (frozen_at_exit,) = seen["at-exit"]
    # what the collector tracked just before exit (torch's and Streamlit's objects: tens of
    # thousands) is in the permanent generation when the teardown starts
    assert tracked > 10_000
    assert frozen_at_exit >= 0.9 * tracked
