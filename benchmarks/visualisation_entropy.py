"""M-PHATE's claim on our runs: does the visualisation entropy of a run's hidden units track how
well it generalises, without validation data?

Trains the same MLP on ``digits`` (two hidden layers of 32 ReLU neurons, Adam, 20 epochs, a
small training split so that regularisation matters) under different regularisation — weight
decay 0, 1e-3, 1e-2, 1e-1 and dropout 0.3, 0.6 — maps each run's hidden units through time with
M-PHATE (probe activations of both hidden layers, 64 neurons × 21 epochs) and prints, per run,
the visualisation entropy (bits, of a 10 × 10 histogram of the map; Gigante et al. 2019 §5),
the final validation accuracy, and the paper's "memorisation error" (final validation loss −
training loss); then the Spearman rank correlation of the entropy with each over the runs.
Whatever it shows: a handful of runs is weak evidence either way.

    .venv/bin/python benchmarks/visualisation_entropy.py
    .venv/bin/python benchmarks/visualisation_entropy.py --seeds 0,1 --dataset digits
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

from nn_tracing import TrainConfig, train
from nn_tracing.analysis.embedding import run_visualisation_entropy

#: (name, weight decay, dropout) of each run.
REGIMES = [
    ("none", 0.0, 0.0),
    ("wd 1e-3", 1e-3, 0.0),
    ("wd 1e-2", 1e-2, 0.0),
    ("wd 1e-1", 1e-1, 0.0),
    ("dropout 0.3", 0.0, 0.3),
    ("dropout 0.6", 0.0, 0.6),
]


def one_run(dataset: str, weight_decay: float, dropout: float, seed: int) -> dict:
    config = TrainConfig(
        dataset=dataset,
        hidden_sizes=(32, 32),
        activation="relu",
        dropout=dropout,
        weight_decay=weight_decay,
        epochs=20,
        lr=1e-2,
        seed=seed,
        val_fraction=0.5,
        probe_size=128,
    )
    run = train(config)
    started = time.perf_counter()
    found = run_visualisation_entropy(run.trace, random_state=seed)
    last = run.trace.history.iloc[-1]
    return {
        "entropy": found.score,
        "val_acc": float(last["val_acc"]),
        "train_acc": float(last["train_acc"]),
        "memorisation": float(last["val_loss"] - last["train_loss"]),
        "rows": len(found.embedding.frame),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    rows = []
    print(
        f"{'regularisation':<14} {'seed':>4} {'entropy':>8} {'val acc':>8} {'train acc':>9} "
        f"{'val−train loss':>14} {'rows':>6} {'M-PHATE s':>9}"
    )
    for seed in (int(s) for s in args.seeds.split(",")):
        for name, weight_decay, dropout in REGIMES:
            row = one_run(args.dataset, weight_decay, dropout, seed) | {"name": name}
            rows.append(row)
            print(
                f"{name:<14} {seed:>4} {row['entropy']:8.3f} {row['val_acc']:8.3f} "
                f"{row['train_acc']:9.3f} {row['memorisation']:14.3f} {row['rows']:>6} "
                f"{row['seconds']:9.1f}",
                flush=True,
            )
    entropy = np.array([r["entropy"] for r in rows])
    for what, label in (("val_acc", "validation accuracy"), ("memorisation", "val − train loss")):
        rho, p = spearmanr(entropy, [r[what] for r in rows])
        print(f"Spearman ρ(entropy, {label}) = {rho:+.2f} (p = {p:.2f}, {len(rows)} runs)")


if __name__ == "__main__":
    main()
