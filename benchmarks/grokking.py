"""Grokking on this machine: the ``grokking`` preset, its key epochs, and what the analyses see.

Trains :func:`nn_tracing.presets.preset_config` ``("grokking")`` (modular addition mod 59, 40 %
of the pairs, MLP 256 relu, full-batch AdamW, weight decay 2), traced, and prints

* the key epochs of the curves: training accuracy first 100 %, validation accuracy first over
  50 % and over 95 %, and the wall time;
* the training map (:class:`~nn_tracing.analysis.hmm.TrainingMap`, as the Dynamics page fits it)
  on the recorded epochs, k by BIC: its states in time order with their first and last epochs,
  on the default features (Hu et al.'s weight statistics) and on the weight norm with the
  training and validation accuracy, and its states read as phases
  (:func:`~nn_tracing.analysis.hmm.read_phases`, what the Dynamics page shows before the map):
  each phase with its first epoch, each phase boundary beside the jump in the accuracies near it;
* the Fourier structure of the hidden neurons at the last epoch
  (:func:`~nn_tracing.analysis.fourier.layer_frequencies`): how many have one dominant
  frequency (share of power > 0.5) and the most common frequencies.

Nothing is written into the repository: the trace goes where ``--out`` says (default: a
temporary folder, removed at the end, unless ``--keep``).

    .venv/bin/python benchmarks/grokking.py                    # the full preset
    .venv/bin/python benchmarks/grokking.py --epochs 1500      # shorter
    .venv/bin/python benchmarks/grokking.py --out /tmp/grok.nntrace --keep
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nn_tracing as nt  # noqa: E402
from nn_tracing.analysis.fourier import layer_frequencies  # noqa: E402
from nn_tracing.analysis.hmm import TrainingMap, read_phases  # noqa: E402
from nn_tracing.presets import preset_config  # noqa: E402


def first_epoch(history: pd.DataFrame, column: str, threshold: float) -> int | None:
    """The first epoch at which ``column`` reaches ``threshold`` (``None``: never)."""
    rows = history[history[column] >= threshold]
    return int(rows["epoch"].iloc[0]) if len(rows) else None


def key_epochs(trace: nt.NetworkTrace) -> dict[str, int | None]:
    history = trace.history
    return {
        "train acc 100 %": first_epoch(history, "train_acc", 1.0),
        "val acc > 50 %": first_epoch(history, "val_acc", 0.5 + 1e-9),
        "val acc > 95 %": first_epoch(history, "val_acc", 0.95 + 1e-9),
    }


def print_map(trace: nt.NetworkTrace, features: list[str] | None) -> None:
    t0 = time.perf_counter()
    fitted = TrainingMap(features, n_permutations=0).fit(trace)
    seconds = time.perf_counter() - t0
    print(
        f"\ntraining map ({', '.join(fitted.feature_names_)}): k = {fitted.n_states_} "
        f"in {seconds:.1f} s"
    )
    path = fitted.path_
    change = np.flatnonzero(np.diff(path["state"].to_numpy()) != 0)
    starts = [0, *(change + 1)]
    for i, start in enumerate(starts):
        end = (starts[i + 1] if i + 1 < len(starts) else len(path)) - 1
        row, last = path.iloc[start], path.iloc[end]
        print(
            f"  {row['label']:>4}  E_{int(row['epoch']):>5} … E_{int(last['epoch']):>5}  "
            f"val acc {row['val_acc']:.2f} → {last['val_acc']:.2f}, "
            f"weight norm {row['weight_norm']:.1f} → {last['weight_norm']:.1f}"
        )
    print_phases(trace, fitted)


def print_phases(trace: nt.NetworkTrace, fitted: TrainingMap) -> None:
    """The map's states read as phases, and each phase boundary beside its jump."""
    reading = read_phases(fitted.path_, trace.history, chance=1 / len(trace.class_names))
    print(f"  {reading.headline()}")
    for row in reading.phases.itertuples(index=False):
        print(f"    {row.phase:<13} E_{row.first:>5} … E_{row.last:>5}  ({row.states})")
    for edge in reading.boundaries[reading.boundaries["phase_change"]].itertuples(index=False):
        print(
            f"    boundary E_{edge.before}/E_{edge.time}: nearest jump {edge.jump_curve} "
            f"{edge.jump_change:+.3f} at E_{int(edge.jump_time)}, {int(edge.distance)} epochs away"
        )


def print_fourier(trace: nt.NetworkTrace) -> None:
    epoch = trace.epochs[-1]
    frame = layer_frequencies(trace, epoch)
    hidden = frame[frame["layer"] == "hidden_1"]
    strong = hidden[hidden["share"] > 0.5]
    common = strong["frequency"].value_counts().head(6)
    print(
        f"\nFourier at E_{epoch}: {len(strong)} of {len(hidden)} hidden neurons have one "
        f"dominant frequency (share > 0.5); median share {hidden['share'].median():.2f}; most "
        f"common: {', '.join(f'k={k} ({n})' for k, n in common.items())}"
    )
    e0 = layer_frequencies(trace, 0)
    e0_hidden = e0[e0["layer"] == "hidden_1"]
    print(f"  at E_0 (untrained): median share {e0_hidden['share'].median():.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="shorter than the preset's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="a .nntrace file or run directory to write")
    parser.add_argument("--keep", action="store_true", help="keep --out (default: removed)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    config = preset_config("grokking", **({"epochs": args.epochs} if args.epochs else {}))
    print(
        f"preset grokking: {config.dataset} p={config.modulus}, "
        f"{config.modular_train_fraction:.0%} of the pairs, {config.architecture}, "
        f"{config.optimizer} lr {config.lr:g} wd {config.weight_decay:g}, {config.epochs} "
        f"epochs, {len(nt.recorded_epochs(config.epoch_intervals, config.epochs))} recorded; "
        f"{args.threads} torch thread(s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "grokking.nntrace"
        t0 = time.perf_counter()
        run = nt.train(config, out=out if out.suffix != ".nntrace" else None)
        seconds = time.perf_counter() - t0
        if out.suffix == ".nntrace":
            nt.save_trace(run.trace, out)
        trace = run.trace
        print(f"\ntrained in {seconds:.0f} s (the machine may be shared: see the load below)")
        for name, epoch in key_epochs(trace).items():
            where = f"E_{epoch}" if epoch is not None else "never"
            print(f"  {name:<16} {where}")
        final = trace.history.iloc[-1]
        print(
            f"  final: train acc {final['train_acc']:.3f}, val acc {final['val_acc']:.3f}, "
            f"val loss {final['val_loss']:.3f}"
        )
        print_map(trace, None)  # the Dynamics page's default: Hu et al.'s weight statistics
        print_map(trace, ["l2", "train_acc", "val_acc"])  # the weight norm and the accuracies
        print_fourier(trace)
        print(f"\nload average: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
        if args.out and args.keep:
            print(f"trace kept at {out}")
        elif args.out:
            import shutil

            shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
