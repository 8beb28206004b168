"""What the Compare page costs: neurons matched across runs, and CKA of every layer pair over
training.

1. **Matching** two layers of ``--neurons`` neurons on ``--samples`` probe samples: the
   correlation of every pair (one matrix product of the standardised activations) and the
   Hungarian assignment on the full ``neurons × neurons`` matrix
   (:func:`scipy.optimize.linear_sum_assignment`), for a second run that is the first with its
   neurons permuted and noised (the assignment finds a clear optimum) and for an independent
   second run (no structure: the assignment's hard case). A permutation of the null costs one
   more matching.
2. **CKA of every layer pair of two runs at every epoch**: two synthetic runs of ``--layers``
   traced layers of ``--width`` ReLU neurons recorded at ``--epochs`` epochs on ``--samples``
   probe samples, in memory as :class:`~nn_tracing.NetworkTrace` s, through
   :func:`~nn_tracing.analysis.compare.layer_similarity_over_epochs` (the stored activations
   read, every pair's CKA from one product per epoch).

Every figure is the median of ``--repeats`` calls after one warm-up call.

    .venv/bin/python benchmarks/compare.py
    .venv/bin/python benchmarks/compare.py --neurons 1024 --width 256
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median_s(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _relu_layer(rng: np.random.Generator, samples: int, neurons: int) -> np.ndarray:
    """ReLU activations with shared structure (a 256-dimensional latent), float32."""
    latent = rng.standard_normal((samples, 256)).astype(np.float32)
    weights = rng.standard_normal((256, neurons)).astype(np.float32) / 16
    return np.maximum(latent @ weights, 0)


def matching_section(args: argparse.Namespace) -> None:
    from nn_tracing.analysis.compare import NeuronMatching, correlation_matrix, match_neurons

    rng = np.random.default_rng(0)
    x = _relu_layer(rng, args.samples, args.neurons)
    perm = rng.permutation(args.neurons)
    planted = x[:, perm] + 0.5 * x.std() * rng.standard_normal(x.shape).astype(np.float32)
    independent = _relu_layer(rng, args.samples, args.neurons)
    print(f"Matching: {args.neurons} × {args.neurons} neurons on {args.samples} probe samples")
    for label, y in (("permuted + noise", planted), ("independent", independent)):
        corr = correlation_matrix(x, y)
        t_corr = _median_s(lambda y=y: correlation_matrix(x, y), args.repeats)
        t_match = _median_s(lambda corr=corr: match_neurons(corr), args.repeats)
        partner, _ = match_neurons(corr)
        right = float(np.mean(partner == np.argsort(perm))) if y is planted else float("nan")
        print(
            f"  {label:18s} correlation {t_corr:6.2f} s   assignment {t_match:6.2f} s   "
            f"total {t_corr + t_match:6.2f} s"
            + (f"   planted partners recovered {right:.1%}" if y is planted else "")
        )
    fit_time = _median_s(
        lambda: NeuronMatching(n_permutations=1).fit(x, planted), max(1, args.repeats // 2)
    )
    share = NeuronMatching(n_permutations=1).fit(x, planted).universal_share_
    print(
        f"  NeuronMatching.fit (matching + 1 permutation of the null): {fit_time:.2f} s; "
        f"universal share {share:.1%}"
    )


def _run(layer_sizes: list[int], epochs: int, samples: int, seed: int) -> Any:
    """A synthetic run: an MLP whose weights drift from their start, recorded at ``epochs``."""
    from nn_tracing.synthetic import synthetic_layers
    from nn_tracing.trace import METRICS, NetworkTrace

    rng = np.random.default_rng(seed)
    x = np.random.default_rng(99).standard_normal((samples, layer_sizes[0])).astype(np.float32)
    start = [
        rng.standard_normal((a, b)).astype(np.float32) / np.sqrt(a)
        for a, b in itertools.pairwise(layer_sizes)
    ]
    drift = [rng.standard_normal(w.shape).astype(np.float32) / np.sqrt(w.shape[0]) for w in start]
    tensors, metrics = {}, {}
    n_neurons = sum(layer_sizes)
    for epoch in range(epochs):
        h, parts = x, [x]
        for i, (w0, d) in enumerate(zip(start, drift, strict=True)):
            h = h @ (w0 + (epoch / max(epochs - 1, 1)) * d)
            h = h if i == len(start) - 1 else np.maximum(h, 0)
            parts.append(h)
        tensors[epoch] = {"activations": np.concatenate(parts, axis=1)}
        metrics[epoch] = np.zeros((n_neurons, len(METRICS)), dtype=np.float32)
    labels = np.zeros(samples, dtype=np.int64)
    return NetworkTrace(
        synthetic_layers(layer_sizes), metrics, {}, probe=(x, labels), epoch_tensors=tensors
    )


def cka_section(args: argparse.Namespace) -> None:
    from nn_tracing.analysis.compare import RunPair, layer_similarity_over_epochs

    sizes = [32, *[args.width] * (args.layers - 1), 10]
    a = _run(sizes, args.epochs, args.samples, seed=1)
    b = _run(sizes, args.epochs, args.samples, seed=2)
    pair = RunPair(a, b)
    seconds = _median_s(lambda: layer_similarity_over_epochs(pair), args.repeats)
    result = layer_similarity_over_epochs(pair)
    print(
        f"CKA of every layer pair of two runs: {args.layers} layers ({args.layers - 1} × "
        f"{args.width} ReLU + 10 outputs) × {args.epochs} epochs, {args.samples} probe samples "
        f"→ {result.shape[0] * result.shape[1] * result.shape[2]} CKAs in {seconds:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--neurons", type=int, default=4096)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import threadpoolctl

    print(f"BLAS threads: {threadpoolctl.threadpool_info()[0].get('num_threads', '?')}")
    matching_section(args)
    cka_section(args)


if __name__ == "__main__":
    main()
