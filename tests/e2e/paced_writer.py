"""A separate process that writes a run directory epoch by epoch, when its test says so.

``python tests/e2e/paced_writer.py TRACE RUN_DIR`` re-records the trace file ``TRACE`` into
the run directory ``RUN_DIR`` with :class:`~nn_tracing.rundir.RunWriter`, as a training
script would: ``E_0`` and the next epoch at once, then one more epoch for each ``next`` line
on its standard input, and ``close`` closes the run (status ``complete``) and exits. After
each epoch it prints one JSON line, ``{"epoch": E, "n_recorded": k, "written": t}``, where
``t`` is the time (seconds since the epoch) of the manifest's last write, read from its
modification time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nn_tracing import load_trace
from nn_tracing.rundir import RunWriter


def _report(writer: RunWriter, directory: Path) -> None:
    written = (directory / "manifest.json").stat().st_mtime_ns / 1e9
    line = {"epoch": writer.epochs[-1], "n_recorded": len(writer.epochs), "written": written}
    print(json.dumps(line), flush=True)


def main(trace_file: str, run_dir: str) -> None:
    trace = load_trace(trace_file)
    directory = Path(run_dir)
    writer = RunWriter(directory, trace)
    epochs = iter(trace.epochs)
    for _ in range(2):
        writer.write_epoch(next(epochs))
    _report(writer, directory)
    for command in sys.stdin:
        if command.strip() == "close":
            writer.close("complete")
            print(json.dumps({"closed": True}), flush=True)
            return
        writer.write_epoch(next(epochs))
        _report(writer, directory)


if __name__ == "__main__":
    main(*sys.argv[1:3])
