"""How long τ-dormant neurons and recycling take, and what recycling does, on real runs.

* ``dormancy(trace)`` on a real ReLU run (digits, 3 × 256 hidden neurons, 10 epochs, every
  epoch recorded) read three ways: the ``.nntrace`` in memory, the same run's directory through
  DuckDB, and a tanh run (its values from the kept probe activations).
* ``dormancy(trace)`` on a synthetic run directory of 50k neurons × 30 epochs (DuckDB; its
  neurons change sign and keep no activations, so the cost is the statistics' read alone).
* contribution utility at every epoch of the ReLU run directory (the brain scan's views over
  time when they colour by ``utility``; final weights: the run kept no others).
* ``recycle_dormant`` (ReDo) on a digits MLP trained with lr 0.3, which silences most of its
  second hidden layer: dormant shares before and after, largest output change, seconds.

Medians of ``--repeats`` runs; the machine may be shared (the load average is printed).

    .venv/bin/python benchmarks/dormancy.py
    .venv/bin/python benchmarks/dormancy.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import nn_tracing as nt
    from nn_tracing.analysis.derived_metrics import metric_over_time
    from nn_tracing.analysis.dormancy import dormancy
    from nn_tracing.analysis.intervention import recycle_dormant
    from nn_tracing.analysis.neuron_model import NeuronModel
    from nn_tracing.synthetic import write_synthetic_run

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = nt.TrainConfig(
            dataset="digits", hidden_sizes=(256, 256, 256), epochs=10, probe_size=512, seed=0
        )
        relu = nt.train(base, out=Path(tmp) / "relu").trace
        on_disk = nt.load_trace(Path(tmp) / "relu")
        tanh = nt.train(base.replace(activation="tanh")).trace
        n = relu.n_neurons
        for label, trace in (
            ("ReLU .nntrace in memory", relu),
            ("ReLU run directory (DuckDB)", on_disk),
            ("tanh, kept activations", tanh),
        ):
            seconds = _median_seconds(lambda t=trace: dormancy(t), args.repeats)
            last = dormancy(trace).fraction(trace.epochs[-1], 0.025)
            rows.append((label, f"{n:,} × {len(trace.epochs)}", seconds, f"{last:.1%} at τ=0.025"))
        seconds = _median_seconds(lambda: metric_over_time(on_disk, "utility"), args.repeats)
        rows.append(
            ("utility at every epoch, run directory", f"{n:,} × 11", seconds, "final weights")
        )
        write_synthetic_run(Path(tmp) / "big", (20, 20_000, 20_000, 9_970, 10), 30)
        big = nt.load_trace(Path(tmp) / "big")
        seconds = _median_seconds(lambda: dormancy(big), args.repeats)
        rows.append(("synthetic run directory (DuckDB)", f"{big.n_neurons:,} × 30", seconds, ""))

        dead = nt.train(
            nt.TrainConfig(
                dataset="digits", hidden_sizes=(16, 16), epochs=2, probe_size=128, seed=0, lr=0.3
            )
        ).trace
        model = NeuronModel.from_trace(dead)
        x, y = dead.probe
        seconds = _median_seconds(lambda: recycle_dormant(model, x, y, tau=0.0), args.repeats)
        result = recycle_dormant(model, x, y, tau=0.0)
        rows.append(
            (
                "recycle_dormant, τ = 0",
                f"{dead.n_neurons:,} neurons",
                seconds,
                f"dormant {result.fraction('before'):.1%} → {result.fraction('after'):.1%}, "
                f"largest output change {result.max_output_change:.3g}",
            )
        )
    print(f"load average {os.getloadavg()[0]:.2f} (shared machine), medians of {args.repeats}")
    print(f"{'what':40} {'neurons × epochs':18} {'median ms':>10}  note")
    for what, size, seconds, note in rows:
        print(f"{what:40} {size:18} {seconds * 1e3:10.1f}  {note}")


if __name__ == "__main__":
    main()
