"""How close the estimate of a trace's size is to the real one, for each knob combination.

Trains every case of ``tests/unit/test_estimate_knobs.py`` (and a larger pair) for real,
writing the run directory as it trains and the ``.nntrace`` file after, and prints the estimate
against the bytes on disk, side by side::

    .venv/bin/python benchmarks/estimate_accuracy.py

The run directory is measured as the apparent size of its files (the directories themselves
not counted), the file as its size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nn_tracing as nt
from nn_tracing.estimate import estimate_run
from nn_tracing.tracer._budget import directory_bytes

BASE = {"dataset": "digits", "hidden_sizes": (96, 48), "epochs": 8, "probe_size": 300}
CASES = {
    "all samples, float32, every epoch": {},
    "all samples, float16, every epoch": {"activation_dtype": "float16"},
    "60 samples, float32, every 3rd": {"activation_samples": 60, "epoch_intervals": 3},
    "60 samples, float16, list": {
        "activation_samples": 60,
        "activation_dtype": "float16",
        "epoch_intervals": (1, 2, 8),
    },
    "float16, last, weights kept": {
        "activation_dtype": "float16",
        "epoch_intervals": -1,
        "keep_weights": True,
    },
    "1 of 3 hidden layers traced": {
        "hidden_sizes": (96, 256, 48),
        "traced_layers": ("hidden_2",),
        "epoch_intervals": 2,
    },
    "wide layer, 200 samples": {
        "dataset": "moons",
        "hidden_sizes": (512,),
        "n_samples": 2400,
        "activation_samples": 200,
    },
    "per-step table, 50 samples": {"drop_batches": False, "activation_samples": 50},
    "large: 1024-wide, 30 epochs": {
        "dataset": "classification",
        "hidden_sizes": (1024, 512),
        "epochs": 30,
        "n_samples": 6000,
        "probe_size": 1024,
        "activation_dtype": "float16",
        "epoch_intervals": 2,
    },
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the large case")
    args = parser.parse_args(argv)
    print(
        f"{'case':34s} {'file':>10s} {'estimate':>10s} {'error':>7s}   "
        f"{'run dir':>10s} {'estimate':>10s} {'error':>7s}"
    )
    worst = 0.0
    for name, changes in CASES.items():
        if args.quick and name.startswith("large"):
            continue
        config = nt.TrainConfig(**{**BASE, **changes})
        with tempfile.TemporaryDirectory() as tmp:
            run = nt.train(config, out=Path(tmp) / "run")
            nt.save_trace(run.trace, Path(tmp) / "run.nntrace")
            file_bytes = os.path.getsize(Path(tmp) / "run.nntrace")
            dir_bytes = directory_bytes(Path(tmp) / "run")
        estimate = estimate_run(config)
        file_error = estimate.trace_bytes / file_bytes - 1
        dir_error = estimate.rundir_bytes / dir_bytes - 1
        worst = max(worst, abs(file_error), abs(dir_error))
        print(
            f"{name:34s} {file_bytes:>10,d} {estimate.trace_bytes:>10,d} {file_error:>+7.1%}   "
            f"{dir_bytes:>10,d} {estimate.rundir_bytes:>10,d} {dir_error:>+7.1%}"
        )
    print(f"largest error: {worst:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
