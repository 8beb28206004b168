"""What the Breadcrumbs page costs: attribution, batched ablation, curves, pruning, intervention.

A trace of an MLP with ``--depth`` hidden layers of ``--width`` ReLU neurons on
``make_classification`` (20 features, 2 classes), ``--probe`` probe samples, weights kept, is
saved and loaded again (as the app reads it). Every figure is the median of ``--repeats``
calls after one warm-up call. The batched ablation is compared with the same sets run one
per forward pass (``max_rows`` = the probe size) and with Captum's ``LayerFeatureAblation``
(which ablates one neuron per set too, several per pass), on the same single-neuron sets.

    .venv/bin/python benchmarks/breadcrumbs.py
    .venv/bin/python benchmarks/breadcrumbs.py --width 512 --depth 2 --probe 1024
    .venv/bin/python benchmarks/breadcrumbs.py --device cuda
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median_ms(call: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up (results come back to the
    host, so a GPU's work is finished when a call returns)."""
    call()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _ablation_section(model: Any, x: Any, hidden: Any, repeats: int) -> None:
    """Ablating each neuron of layer ``hidden`` alone: the batched engine's paths against one
    set per pass and against Captum, and whether their outputs agree."""
    import numpy as np

    from nn_tracing.analysis.attribution import neuron_attributions
    from nn_tracing.analysis.intervention import batched_logits

    n = x.shape[0]
    sets = [[i] for i in hidden.ids]
    print(f"ablating each of the {len(sets)} neurons of {hidden.name} alone ({n} samples):")
    low_rank = _median_ms(lambda: batched_logits(model, x, sets), repeats)
    batched = _median_ms(lambda: batched_logits(model, x, sets, fast=False), repeats)
    single = _median_ms(lambda: batched_logits(model, x, sets, max_rows=n, fast=False), repeats)
    captum = _median_ms(
        lambda: neuron_attributions(model, x, 1, "ablation", layers=[hidden.name]), repeats
    )
    reference = batched_logits(model, x, sets, max_rows=n, fast=False)
    same = np.allclose(batched_logits(model, x, sets), reference, atol=1e-4) and np.allclose(
        batched_logits(model, x, sets, fast=False), reference, atol=1e-4
    )

    def rate(ms: float) -> str:
        return f"{ms:9.1f} ms  ({len(sets) / ms * 1000:8.0f} sets/s)"

    print(
        f"  low-rank update of the next layer (default)   {rate(low_rank)}\n"
        f"  whole network, 32768 rows a pass              {rate(batched)}\n"
        f"  whole network, one set per pass               {rate(single)}\n"
        f"  Captum LayerFeatureAblation (one class only)  {rate(captum)}\n"
        f"  outputs equal: {same}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--probe", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)

    import torch

    import nn_tracing as nt
    from nn_tracing.analysis.attribution import METHODS, attribute, breadcrumb_trail
    from nn_tracing.analysis.intervention import (
        AblationCurves,
        Intervention,
        Pruning,
        intervene,
        trail_check,
    )
    from nn_tracing.analysis.neuron_model import NeuronModel

    if args.threads:
        torch.set_num_threads(args.threads)
    where = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; torch "
        f"{torch.__version__}; {where}"
    )
    config = nt.TrainConfig(
        dataset="classification",
        hidden_sizes=(args.width,) * args.depth,
        epochs=2,
        n_samples=max(2000, 4 * args.probe),
        probe_size=args.probe,
        keep_weights=True,
        seed=0,
    )
    with tempfile.TemporaryDirectory() as folder:
        run = nt.train(config)
        assert run.trace is not None
        path = nt.save_trace(run.trace, Path(folder) / "bench.nntrace")
        trace = nt.load_trace(path)
        x, y = trace.probe
        model = NeuronModel.from_trace(trace, device=args.device)
        hidden = trace.layers[1]
        n = len(y)
        print(
            f"MLP 20 → {' → '.join([str(args.width)] * args.depth)} → 2, probe {n} samples, "
            f"{trace.n_neurons} neurons"
        )

        print("attribution of class 1 over its probe samples, every layer:")
        for method in METHODS:
            ms = _median_ms(
                lambda method=method: attribute(trace, target_class=1, method=method, model=model),
                args.repeats,
            )
            print(f"  {method:<22} {ms:9.1f} ms")

        _ablation_section(model, x, hidden, args.repeats)

        ms = _median_ms(
            lambda: AblationCurves(hidden.name, n_repeats=20).fit(model, x, y), args.repeats
        )
        print(f"ablation curves of {hidden.name} (4 orders, 20 random, 17 points): {ms:9.1f} ms")
        ms = _median_ms(
            lambda: Pruning(k=args.width // 4, n_repeats=20).fit(model, x, y), args.repeats
        )
        print(f"pruning {args.width // 4} per layer against 20 random prunings:      {ms:9.1f} ms")
        result = attribute(trace, target_class=1, model=model)
        ms = _median_ms(lambda: breadcrumb_trail(model, result, x, k=5), args.repeats)
        print(f"breadcrumb trail (k = 5):                                 {ms:9.1f} ms")
        trail = breadcrumb_trail(model, result, x, k=5)
        ms = _median_ms(lambda: trail_check(model, x, y, trail, n_repeats=50), args.repeats)
        print(f"trail against 50 random sets per layer:                   {ms:9.1f} ms")
        neuron = hidden.first_id
        ms = _median_ms(
            lambda: intervene(model, x, y, Intervention("clamp", 3.0, neuron=neuron)),
            args.repeats,
        )
        print(f"clamp one neuron (activations of every neuron, before/after): {ms:6.1f} ms")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
