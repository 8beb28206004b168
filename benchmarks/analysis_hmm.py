"""How fast the Dynamics page's analyses answer: the shared neuron-level HMM and decision entropy.

Times, on synthetic traces built in memory (no training, so that only the analysis is timed):

* the neuron-level HMM (:class:`~nn_tracing.analysis.hmm.NeuronHMM`: six features per neuron,
  one shared Gaussian HMM fitted with ``lengths``, k = 2…8 chosen by BIC, then every neuron's
  Viterbi path) for 1000 and 5000 neurons × 50 recorded epochs — goals ≤ 3 s and ≤ 15 s;
* decision entropy (:class:`~nn_tracing.analysis.entropy.DecisionEntropy`: 8 quantile bins,
  mutual information with the decision against 100 label permutations, FDR) for 5000 neurons
  at one recorded epoch, with 2 and with 10 classes — goal ≤ 5 s.

The trajectories have planted structure (each neuron switches regime at its own epoch), so the
HMM's EM does real work. Each figure is the median of ``--repeats`` runs, after one warm-up.

    .venv/bin/python benchmarks/analysis_hmm.py              # prints a table
    .venv/bin/python benchmarks/analysis_hmm.py --repeats 5 --neurons 1000 5000

``run(args)`` returns the rows (dicts) for ``benchmarks/analysis.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nn_tracing.analysis.entropy import DecisionEntropy  # noqa: E402
from nn_tracing.analysis.hmm import NeuronHMM  # noqa: E402
from nn_tracing.trace import METRICS, LayerInfo, NetworkTrace  # noqa: E402

__all__ = ["add_arguments", "run", "synthetic_trace"]

HMM_GOALS = {1000: 3.0, 5000: 15.0}
ENTROPY_GOAL = 5.0


def synthetic_trace(
    n_neurons: int,
    n_epochs: int,
    *,
    n_probe: int = 0,
    n_classes: int = 2,
    seed: int = 0,
) -> NetworkTrace:
    """A trace of ``n_neurons`` hidden neurons in 4 layers (plus 20 inputs) and ``n_epochs``
    recorded epochs: metrics that drift, with a regime switch at a random epoch per neuron;
    with ``n_probe``, probe activations of which a third carry the class."""
    rng = np.random.default_rng(seed)
    n_inputs = 20
    width = n_neurons // 4
    layers = [LayerInfo("input", "input", n_inputs, 0)]
    first = n_inputs
    for i in range(4):
        n = width if i < 3 else n_neurons - 3 * width
        layers.append(
            LayerInfo(
                f"hidden_{i + 1}",
                "linear",
                n,
                first,
                activation="ReLU",
                weight_key=f"hidden_{i + 1}.weight",
                bias_key=f"hidden_{i + 1}.bias",
                fan_in=64,
            )
        )
        first += n
    total = first
    switch = rng.integers(n_epochs // 5, max(4 * n_epochs // 5, n_epochs // 5 + 1), size=total)
    column = {name: j for j, name in enumerate(METRICS)}
    metrics = {}
    for e in range(n_epochs):
        after = (e >= switch).astype(np.float64)
        values = np.full((total, len(METRICS)), np.nan)
        values[:, column["act_mean"]] = 0.5 + 0.8 * after + 0.2 * rng.normal(size=total)
        values[:, column["act_std"]] = np.exp(0.3 * rng.normal(size=total) - 0.5 * after)
        values[:, column["act_active"]] = np.clip(
            0.5 + 0.3 * after + 0.1 * rng.normal(size=total), 0, 1
        )
        values[:, column["w_norm"]] = 1.0 + 0.02 * e + 0.05 * rng.normal(size=total)
        values[:, column["grad_norm"]] = np.exp(-1.0 - 1.5 * after + 0.3 * rng.normal(size=total))
        values[:, column["selectivity"]] = np.clip(
            0.2 + 0.4 * after + 0.1 * rng.normal(size=total), 0, 1
        )
        values[:n_inputs] = np.nan
        metrics[e] = values.astype(np.float32)
    probe = None
    tensors: dict[int, dict[str, np.ndarray]] = {}
    if n_probe:
        labels = rng.integers(0, n_classes, n_probe)
        for e in range(n_epochs):
            acts = rng.normal(size=(n_probe, total)).astype(np.float32)
            informative = slice(n_inputs, n_inputs + (total - n_inputs) // 3)
            acts[:, informative] += labels[:, None].astype(np.float32)
            tensors[e] = {"activations": acts, "predictions": labels}
        probe = (np.zeros((n_probe, n_inputs), dtype=np.float32), labels)
    return NetworkTrace(layers, metrics, {"status": "complete"}, probe=probe, epoch_tensors=tensors)


def _timed(fn: Any, repeats: int) -> tuple[float, list[float], Any]:
    fn()  # warm-up: imports, first allocations
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options (``benchmarks/analysis.py`` adds them to its own)."""
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure")
    parser.add_argument(
        "--neurons", type=int, nargs="+", default=[1000, 5000], help="HMM sizes (neurons)"
    )
    parser.add_argument("--hmm-epochs", type=int, default=50, help="recorded epochs")
    parser.add_argument("--entropy-neurons", type=int, default=5000)
    parser.add_argument("--probe", type=int, default=1024, help="probe samples")
    parser.add_argument("--permutations", type=int, default=100)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every analysis; one dict per figure: ``analysis``, ``size``, ``seconds`` (median),
    ``runs`` (every timing), ``goal_s``, ``detail``, ``load`` (1-minute load average before)."""
    repeats = int(getattr(args, "repeats", 3))
    rows: list[dict[str, Any]] = []
    epochs = int(getattr(args, "hmm_epochs", 50))
    for n in getattr(args, "neurons", [1000, 5000]):
        trace = synthetic_trace(n, epochs)
        load = os.getloadavg()[0]
        seconds, times, model = _timed(lambda t=trace: NeuronHMM().fit(t), repeats)
        rows.append(
            {
                "analysis": "neuron-level HMM, BIC over k = 2…8",
                "size": f"{n} neurons × {epochs} epochs",
                "seconds": seconds,
                "runs": times,
                "goal_s": HMM_GOALS.get(n),
                "detail": f"k = {model.n_states_}, EM converged: {model.converged_}, engine "
                f"{model.state_model_.engine_}, {int(model.selection_['iterations'].sum())} EM "
                "iterations in all",
                "load": load,
            }
        )
    n = int(getattr(args, "entropy_neurons", 5000))
    probe = int(getattr(args, "probe", 1024))
    permutations = int(getattr(args, "permutations", 100))
    for classes in (2, 10):
        trace = synthetic_trace(n, 1, n_probe=probe, n_classes=classes)
        load = os.getloadavg()[0]
        seconds, times, result = _timed(
            lambda t=trace: DecisionEntropy(n_permutations=permutations).fit(t), repeats
        )
        rows.append(
            {
                "analysis": f"decision entropy, {permutations} permutations, one epoch",
                "size": f"{n} neurons, {probe} probe samples, {classes} classes",
                "seconds": seconds,
                "runs": times,
                "goal_s": ENTROPY_GOAL,
                "detail": f"{int(result.significant_.sum())} significant of {n}",
                "load": load,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    print(
        f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}, "
        f"{os.cpu_count()} CPUs"
    )
    rows = run(args)
    print(f"{'analysis':<52} {'size':<44} {'median s':>9} {'goal s':>7}  runs / detail")
    for row in rows:
        goal = f"{row['goal_s']:.0f}" if row["goal_s"] else "–"
        runs = ", ".join(f"{t:.2f}" for t in row["runs"])
        print(
            f"{row['analysis']:<52} {row['size']:<44} {row['seconds']:>9.2f} {goal:>7}  "
            f"[{runs}] load {row['load']:.2f}; {row['detail']}"
        )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
