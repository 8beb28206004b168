"""What each step costs as a trace grows: 10k, 100k and 1M neurons.

For each size, in a fresh subprocess (so that its peak RSS is that size's alone): a synthetic
run directory written through the writer (:mod:`nn_tracing.synthetic`; the time of one
epoch's ``write_epoch``, values made beforehand), opening it, the Overview's query (layer ×
epoch quartiles of ``act_mean``), one neuron's profile (its layer's bands, then the neuron
against them), and packing it into a ``.nntrace`` zip (``nn-tracing pack``: the zip is read and
written whole). Then a real model of ≥ 100k neurons (an MLP 20 → 100 000 → 2 on
``make_classification``) trained for a few epochs with and without tracing to a run directory:
the overhead and the size.

    .venv/bin/python benchmarks/scale.py                          # 10k, 100k, 1M × 21 epochs
    .venv/bin/python benchmarks/scale.py --sizes 10000,100000 --epochs 11 --no-model

Prints one Markdown table (medians; the machine's load before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


class _LastEpoch(Mapping[int, np.ndarray]):
    """A synthetic trace's metrics with the last epoch asked for kept, so that the writer's
    time excludes making the values."""

    def __init__(self, source: Mapping[int, np.ndarray]) -> None:
        self.source, self.kept = source, (None, None)

    def __getitem__(self, epoch: int) -> np.ndarray:
        if self.kept[0] != epoch:
            self.kept = (epoch, self.source[epoch])
        return self.kept[1]  # type: ignore[return-value]

    def __iter__(self) -> Iterator[int]:
        return iter(self.source)

    def __len__(self) -> int:
        return len(self.source)


def _write(run: Path, neurons: int, epochs: int) -> list[float]:
    """The run written epoch by epoch; seconds of each ``write_epoch``."""
    from big_trace import layer_sizes

    from nn_tracing.rundir import RunWriter
    from nn_tracing.synthetic import synthetic_trace
    from nn_tracing.trace import NetworkTrace

    made = synthetic_trace(layer_sizes(neurons), epochs)
    trace = NetworkTrace(
        made.layers, _LastEpoch(made._epoch_metrics), made.meta, history=made.history
    )
    writer = RunWriter(run, trace)
    times = []
    for epoch in trace.epochs:
        trace.metrics_at(epoch)  # made before the clock starts
        started = time.perf_counter()
        writer.write_epoch(epoch)
        times.append(time.perf_counter() - started)
    writer.close("complete")
    return times


def one_size(neurons: int, epochs: int, directory: Path) -> dict[str, float]:
    """Every step at one size (run in its own process)."""
    import nn_tracing as nt
    from nn_tracing.analysis.profiles import layer_bands, metric_history
    from nn_tracing.viz import layer_epoch_frame

    run = directory / f"n{neurons}"
    figures: dict[str, float] = {}
    figures["write one epoch"] = statistics.median(_write(run, neurons, epochs))
    opens = []
    for _ in range(3):
        started = time.perf_counter()
        trace = nt.load_trace(run)
        opens.append(time.perf_counter() - started)
    figures["open"] = statistics.median(opens)
    started = time.perf_counter()
    layer_epoch_frame(trace, "act_mean")
    figures["overview query"] = time.perf_counter() - started
    info = trace.layers[1]
    started = time.perf_counter()
    bands = layer_bands(trace, info.name)
    figures["layer bands"] = time.perf_counter() - started
    profile = []
    for k in range(3):
        started = time.perf_counter()
        metric_history(trace, info.first_id + 17 * (k + 1), bands)
        profile.append(time.perf_counter() - started)
    figures["neuron profile"] = statistics.median(profile)
    figures["run directory MiB"] = (
        sum(p.stat().st_size for p in run.rglob("*") if p.is_file()) / 2**20
    )
    figures["peak RSS before pack MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    packed = nt.save_trace(nt.load_trace(run), directory / f"n{neurons}.nntrace")
    figures["pack to zip"] = time.perf_counter() - started
    figures["zip MiB"] = packed.stat().st_size / 2**20
    figures["peak RSS MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def model_overhead(directory: Path, epochs: int) -> dict[str, float]:
    """An MLP 20 → 100 000 → 2 (``make_classification``, 4 000 samples, Adam, batch 256)
    trained ``epochs`` epochs in a plain loop, then the same loop through ``TraceableNN``
    writing a run directory (every epoch recorded, a probe of 128): seconds, the size."""
    import torch
    from sklearn.datasets import make_classification
    from torch import nn

    import nn_tracing as nt

    X, y = make_classification(n_samples=4000, n_features=20, n_informative=10, random_state=0)
    x_all, y_all = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    probe = (x_all[:128], y_all[:128])

    def loop(log_dir: Path | None) -> float:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(20, 100_000), nn.ReLU(), nn.Linear(100_000, 2))
        model: nn.Module = net
        if log_dir is not None:
            model = nt.TraceableNN(
                net, example_input=x_all[:2], probe=probe, num_epochs=epochs, log_dir=log_dir
            )
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        started = time.perf_counter()
        for epoch in range(1, epochs + 1):
            if log_dir is not None:
                model.start_epoch(epoch)  # type: ignore[operator]
            for start in range(0, len(x_all), 256):
                loss = nn.functional.cross_entropy(
                    model(x_all[start : start + 256]), y_all[start : start + 256]
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if log_dir is not None:
                model.end_epoch(epoch, train_loss=loss.item())  # type: ignore[operator]
        if log_dir is not None:
            model.finish()  # type: ignore[operator]
        return time.perf_counter() - started

    untraced = loop(None)
    run = directory / "model"
    traced = loop(run)
    size = sum(p.stat().st_size for p in run.rglob("*") if p.is_file()) / 2**20
    return {"untraced s": untraced, "traced s": traced, "run directory MiB": size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--epochs", type=int, default=21, help="recorded epochs, E_0 included")
    parser.add_argument("--model-epochs", type=int, default=3)
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--no-sizes", action="store_true", help="only the model")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_size(args.one, args.epochs, args.dir)))
        return 0
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared)")
    sizes = [] if args.no_sizes else [int(s) for s in args.sizes.split(",")]
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="nnt-scale-") as tmp:
        for neurons in sizes:
            command = [
                sys.executable,
                __file__,
                "--one",
                str(neurons),
                "--epochs",
                str(args.epochs),
            ]
            done = subprocess.run(
                [*command, "--dir", tmp], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                print(f"{neurons:,} neurons: failed\n{done.stderr[-2000:]}")
                continue
            results[neurons] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{neurons:,} neurons done", flush=True)
            for leftover in Path(tmp).iterdir():  # the next size gets the disk
                if leftover.is_dir():
                    subprocess.run(["rm", "-rf", str(leftover)], check=True)
                else:
                    leftover.unlink()
        steps = list(next(iter(results.values()))) if results else []
        if steps:
            print(f"\n{args.epochs} recorded epochs; seconds unless noted")
            print("| step | " + " | ".join(f"{n:,} neurons" for n in results) + " |")
            print("|---|" + "---:|" * len(results))
        for step in steps:
            cells = [f"{results[n][step]:.3g}" for n in results]
            print(f"| {step} | " + " | ".join(cells) + " |")
        if not args.no_model:
            model = model_overhead(Path(tmp), args.model_epochs)
            ratio = model["traced s"] / model["untraced s"]
            print(
                f"\nMLP 20 → 100 000 → 2 (100 022 neurons), {args.model_epochs} epochs, every "
                f"epoch and E_0 recorded, probe 128, own loop via TraceableNN(log_dir=): "
                f"untraced {model['untraced s']:.1f} s, traced into "
                f"a run directory {model['traced s']:.1f} s ({ratio:.2f}×); run directory "
                f"{model['run directory MiB']:.0f} MiB"
            )
    print(f"machine load after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
