"""How long each map through time takes, and how faithful it is, at the demo's size and at
≈2k neurons × 20 epochs.

The traces are real: ``demo`` is the app's demo run (moons, 24 + 24 ReLU hidden neurons,
30 epochs, a 256-sample probe: 50 neurons × 31 epochs); ``large`` a tanh MLP of 1000 + 1000
hidden neurons trained for 19 epochs on moons (2002 neurons × 20 epochs = 40 040 rows, above
the page's 20 000-point cap, so mapped here with ``max_points`` raised). Every method maps the
probe activations of every non-input layer (reduced to 50 principal components first where
the method does so) and measures its faithfulness (included in the time). The machine is
shared: each figure is the median of ``--repeats`` runs (one run at ``large``), the load
average is printed, and the first aligned-UMAP fit pays numba's compilation (a warm-up fit
runs first so that the figures do not include it).

    .venv/bin/python benchmarks/maps_through_time.py                   # demo and large
    .venv/bin/python benchmarks/maps_through_time.py --sizes demo --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from nn_tracing import TrainConfig, train
from nn_tracing.analysis.embedding import TIME_MAPS, FeatureSpec, map_through_time
from nn_tracing.runs import DEMO_CONFIG

SIZES = {
    "demo": DEMO_CONFIG,
    "large": TrainConfig(
        dataset="moons",
        hidden_sizes=(1000, 1000),
        activation="tanh",
        epochs=19,
        batch_size=64,
        lr=0.01,
        seed=0,
        n_samples=1000,
        probe_size=256,
    ),
}


def _warm_up() -> None:
    """One tiny aligned-UMAP and UMAP fit, so numba's compilation is not timed."""
    tiny = train(TrainConfig(dataset="moons", hidden_sizes=(30,), epochs=2, probe_size=64))
    for method in ("umap", "aligned_umap"):
        map_through_time(tiny.trace, FeatureSpec("activations"), method)


def measure(size: str, repeats: int) -> list[dict]:
    run = train(SIZES[size])
    trace = run.trace
    spec = FeatureSpec("activations")
    rows = []
    for method in TIME_MAPS:
        seconds, found = [], None
        for _ in range(repeats):
            started = time.perf_counter()
            found = map_through_time(
                trace, spec, method, params={"random_state": 0}, max_points=50_000
            )
            seconds.append(time.perf_counter() - started)
        assert found is not None and found.faithfulness is not None
        quality = found.faithfulness
        rows.append(
            {
                "size": size,
                "rows": len(found.frame),
                "method": TIME_MAPS[method],
                "median_s": statistics.median(seconds),
                "runs": repeats,
                "noise_floor_%": 100 * quality.noise_floor,
                "unchanged": quality.n_unchanged,
                "near_floor_%": 100 * quality.near_floor_95,
                "near": quality.n_near,
                "moving_median_%": 100 * quality.moving_median,
                "knn_within_%": 100 * quality.within_epoch,
                "knn_across_%": 100 * quality.across_epoch,
            }
        )
        print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict) -> str:
    def pct(value: float) -> str:
        return "    n/a" if not np.isfinite(value) else f"{value:6.1f}%"

    return (
        f"{row['size']:<6} {row['rows']:>6} {row['method']:<13} {row['median_s']:8.2f} s "
        f"(×{row['runs']})  floor {pct(row['noise_floor_%'])} over {row['unchanged']:>5} still "
        f"steps; near {pct(row['near_floor_%'])} over {row['near']:>5} steps; "
        f"moving {pct(row['moving_median_%'])}; k-NN within {pct(row['knn_within_%'])} "
        f"across {pct(row['knn_across_%'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="demo,large")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores, shared)")
    _warm_up()
    for size in args.sizes.split(","):
        measure(size, args.repeats if size != "large" else 1)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
