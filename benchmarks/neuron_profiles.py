"""What one neuron's profile costs: every computation of the Neurons page, timed on two traces.

* a wide trace: an MLP with 4 hidden layers of ``--width`` neurons on ``make_classification``
  (20 features), every one of ``--epochs`` epochs recorded, weights kept;
* a 2-D trace: moons, hidden (64, 64), the same epochs, weights kept (for the activation
  field).

Each trace is saved and loaded again, so that per-epoch tensors are read from the file as the
app reads them. "cold" is the first call on a freshly loaded trace (it reads the epochs it
needs); "warm" the median of ``--repeats`` calls on another neuron of the same trace (the
epochs it needs are no longer all cached: the trace keeps four).

    .venv/bin/python benchmarks/neuron_profiles.py
    .venv/bin/python benchmarks/neuron_profiles.py --width 512 --epochs 30 --probe 512
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _train(path: Path, **config: Any) -> None:
    import nn_tracing as nt

    run = nt.train(nt.TrainConfig(keep_weights=True, seed=0, **config))
    assert run.trace is not None
    nt.save_trace(run.trace, path)


def _time(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _report(label: str, calls: list[Callable[[], Any]]) -> None:
    cold = _time(calls[0])
    warm = [_time(call) for call in calls[1:]]
    print(
        f"  {label:<42} cold {cold * 1000:8.1f} ms   warm median "
        f"{statistics.median(warm) * 1000:8.1f} ms (n={len(warm)})"
    )


def _bench(name: str, path: Path, repeats: int) -> None:
    import nn_tracing as nt
    from nn_tracing.analysis import neuron_health, profiles

    trace = nt.load_trace(path)
    hidden = trace.layers[2]  # the second hidden layer
    neurons = [hidden.first_id + i for i in range(repeats + 1)]
    last = trace.epochs[-1]
    print(
        f"{name} trace: {trace.n_neurons} neurons, {len(trace.epochs)} recorded epochs, "
        f"probe {trace.probe[0].shape[0]}, {path.stat().st_size / 2**20:.0f} MiB"
    )

    def each(compute: Callable[[int], Any]) -> list[Callable[[], Any]]:
        return [lambda n=n: compute(n) for n in neurons]

    def top_and_enrichment(n: int) -> Any:
        return profiles.class_enrichment(trace, profiles.top_activating(trace, n, last))

    _report("health of every neuron (neuron_health)", [lambda: neuron_health(trace)] * 3)
    _report("metric_history (with layer bands)", each(lambda n: profiles.metric_history(trace, n)))
    _report(
        "incoming_weights at the last epoch",
        each(lambda n: profiles.incoming_weights(trace, n, last)),
    )
    _report(
        "strongest_connections, k=5", each(lambda n: profiles.strongest_connections(trace, n, last))
    )
    _report(
        "incoming_weight_history (every epoch)",
        each(lambda n: profiles.incoming_weight_history(trace, n)),
    )
    _report(
        "class_distributions",
        each(lambda n: profiles.class_distributions(trace, n, last)),
    )
    _report(
        "selectivity_over_epochs (200 shuffles, ≤30)",
        each(lambda n: profiles.selectivity_over_epochs(trace, n)),
    )
    _report("top_activating k=12 + class_enrichment", each(top_and_enrichment))
    if profiles.field_epochs(trace):
        _report(
            "activation_field 60×60 at the last epoch",
            each(lambda n: profiles.activation_field(trace, n, last)),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024, help="neurons per hidden layer")
    parser.add_argument("--epochs", type=int, default=50, help="recorded epochs besides E_0")
    parser.add_argument("--probe", type=int, default=256, help="probe samples")
    parser.add_argument("--repeats", type=int, default=5, help="warm calls per measurement")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="nnt-profiles-") as tmp:
        wide_path, plane_path = Path(tmp) / "wide.nntrace", Path(tmp) / "plane.nntrace"
        _train(
            wide_path,
            dataset="classification",
            hidden_sizes=(args.width,) * 4,
            epochs=args.epochs,
            batch_size=512,
            n_samples=1400,
            probe_size=args.probe,
            lr=1e-3,
        )
        _train(
            plane_path,
            dataset="moons",
            hidden_sizes=(64, 64),
            epochs=args.epochs,
            n_samples=2000,
            probe_size=args.probe,
        )
        for name, path in (("wide", wide_path), ("2-D", plane_path)):
            _bench(name, path, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
