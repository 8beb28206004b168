"""Full-batch training on a step schedule: thousands of steps, a few hundred recorded, in the app.

Full-batch training makes one optimizer step per epoch, so a run of 3000 epochs is 3000 steps.
This trains the same network three times — untraced, traced on a step schedule (``log:10``:
steps 1, 2, 4, 8, then every 10th and the last: 305 recorded points) and traced on the
equivalent epoch schedule (every 10th epoch: 301 points) — and then drives the real app
(``streamlit_app.py``) with Streamlit's AppTest on each trace: the server-side time of a
script run (the first, cold, after a warm-up run on another trace has paid the imports; page
switches; the step slider), side by side.

    .venv/bin/python benchmarks/step_trace.py                  # ~2-4 minutes
    .venv/bin/python benchmarks/step_trace.py --epochs 1000 --schedule log:25 --repeats 3

The machine's load is printed with the figures: on a shared machine they are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def config(epochs: int, **schedule: object):
    """A full-batch run of ``epochs`` epochs (= steps) of a small MLP on ``moons``."""
    import nn_tracing as nt

    return nt.TrainConfig(
        dataset="moons",
        hidden_sizes=(32, 32),
        epochs=epochs,
        batch_size=4096,  # above the 1500 training samples: one step per epoch
        n_samples=2000,
        probe_size=256,
        lr=0.01,
        seed=0,
        **schedule,
    )


def train_and_save(cfg, path: Path | None) -> tuple[float, object]:
    """Seconds to train (and save, with ``path``), and the run."""
    import nn_tracing as nt

    started = time.perf_counter()
    run = nt.train(cfg, traced=path is not None)
    if path is not None:
        nt.save_trace(run.trace, path)
    return time.perf_counter() - started, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3000, help="full-batch epochs (= steps)")
    parser.add_argument("--schedule", default="log:10", help="the step schedule")
    parser.add_argument("--every", type=int, default=10, help="the epoch schedule beside it")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared machine two threads contend badly for a small MLP)",
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="nnt-steps-") as tmp:
        runs = Path(tmp) / "runs"
        runs.mkdir()
        os.environ["NN_TRACING_RUNS_DIR"] = str(runs)
        os.environ["NN_TRACING_UPLOAD_DIR"] = str(Path(tmp) / "uploads")
        untraced, _ = train_and_save(config(args.epochs), None)
        step_s, step_run = train_and_save(
            config(args.epochs, step_intervals=args.schedule), runs / "steps.nntrace"
        )
        epoch_s, epoch_run = train_and_save(
            config(args.epochs, epoch_intervals=args.every), runs / "epochs.nntrace"
        )
        print(
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, "
            f"{args.threads} torch thread(s)"
        )
        print(f"training {args.epochs} full-batch epochs (= steps), MLP 32-32 on moons:")
        print(f"  untraced                                  {untraced:7.1f} s")
        for name, seconds, run, path in (
            (f"steps {args.schedule}", step_s, step_run, runs / "steps.nntrace"),
            (f"epochs every {args.every}", epoch_s, epoch_run, runs / "epochs.nntrace"),
        ):
            trace = run.trace
            recording = trace.meta["timings"]["trace_seconds"]
            print(
                f"  traced, {name:<20} {len(trace.epochs):4d} points  {seconds:7.1f} s "
                f"({seconds / untraced:.2f}×; recording {recording:.1f} s), "
                f"{len(trace.history)} history rows, file "
                f"{path.stat().st_size / 2**20:.1f} MiB"
            )
        figures = {}
        from app_render import measure, show
        from streamlit.testing.v1 import AppTest

        from nn_tracing.ui import state

        # imports and Streamlit's first script run, on a trace not measured
        nt_small = config(20, step_intervals="log")
        train_and_save(nt_small, runs / "warm-up.nntrace")
        warm = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600)
        warm.query_params["trace"] = "warm-up"
        warm.run()
        warm.switch_page("pages/neurons.py").run()
        for ref, run in (("steps", step_run), ("epochs", epoch_run)):
            at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600)
            at.query_params["trace"] = ref
            key = state.epoch_key(state.OVERVIEW_EPOCH, f"run:{ref}")
            figures[ref] = measure(at, key, run.trace.epochs, args.repeats)
    print("server-side script run time (AppTest), this machine:")
    for ref in figures:
        print(f" {ref} trace:")
        for label, what in (
            ("first run, Overview (cold: load + compute)", "cold"),
            ("first visit, Neurons (cold)", "neurons_cold"),
            ("switch to Overview (cached)", "overview"),
            ("switch to Neurons (cached)", "neurons"),
            ("slider, a point not seen before", "first_visit"),
            ("slider, a point seen before (cached)", "revisit"),
        ):
            show(label, figures[ref][what])
    print(" steps / epochs (medians):")
    for what in ("cold", "neurons_cold", "overview", "neurons", "first_visit", "revisit"):
        ratio = statistics.median(figures["steps"][what]) / statistics.median(
            figures["epochs"][what]
        )
        print(f"  {what:<14} {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
