"""How fast the app re-renders a large trace: page switches and epoch-slider moves.

Builds a trace of an MLP with 4 hidden layers of 1024 neurons recorded at 50 epochs (plus
E_0) by training it briefly on random data (``make_classification``), saves it to a temporary
runs folder, and drives the real app (``streamlit_app.py``) with Streamlit's AppTest: the
server-side time of a full script run, which is what a rerun costs before the browser draws.

    .venv/bin/python benchmarks/app_render.py            # prints a table of medians
    .venv/bin/python benchmarks/app_render.py --repeats 9 --width 1024 --epochs 50

Reported: the first run (cold: reads the file, computes and caches every frame), then the
medians of page switches and of slider moves to epochs not seen yet (new brain-scan frame)
and to epochs seen before (cache hits only).
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


def build_trace(path: Path, width: int, epochs: int, probe: int) -> float:
    """Train the 4×``width`` MLP for ``epochs`` epochs, recording every one; returns seconds."""
    import nn_tracing as nt

    config = nt.TrainConfig(
        dataset="classification",
        hidden_sizes=(width,) * 4,
        epochs=epochs,
        batch_size=512,
        n_samples=1400,
        probe_size=probe,
        lr=1e-3,
        seed=0,
    )
    started = time.perf_counter()
    run = nt.train(config)
    assert run.trace is not None
    nt.save_trace(run.trace, path)
    return time.perf_counter() - started


def timed_run(at, timeout: float = 600) -> float:
    started = time.perf_counter()
    at.run(timeout=timeout)
    elapsed = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"the app raised: {[e.value for e in at.exception]}")
    return elapsed


def measure(at, key: str, epochs: list[int], repeats: int) -> dict[str, list[float]]:
    """Seconds of each measured script run: the cold first runs, page switches, and the
    Overview's epoch slider (``key``) on epochs not seen before and seen before."""
    timings: dict[str, list[float]] = {
        "cold": [timed_run(at)],
        "neurons_cold": [timed_run(at.switch_page("pages/neurons.py"))],
    }
    timed_run(at.switch_page("pages/overview.py"))
    timings["overview"], timings["neurons"] = [], []
    for _ in range(repeats):
        timings["neurons"].append(timed_run(at.switch_page("pages/neurons.py")))
        timings["overview"].append(timed_run(at.switch_page("pages/overview.py")))
    fresh_epochs = epochs[1 : 1 + repeats]
    timings["first_visit"], timings["revisit"] = [], []
    for epoch in fresh_epochs:
        at.select_slider(key=key).set_value(epoch)
        timings["first_visit"].append(timed_run(at))
    for epoch in fresh_epochs:
        at.select_slider(key=key).set_value(epoch)
        timings["revisit"].append(timed_run(at))
    return timings


def show(label: str, values: list[float]) -> None:
    print(
        f"  {label:<44} median {statistics.median(values) * 1000:7.0f} ms   "
        f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, n={len(values)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024, help="neurons per hidden layer")
    parser.add_argument("--epochs", type=int, default=50, help="recorded epochs besides E_0")
    parser.add_argument("--probe", type=int, default=256, help="probe samples")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement")
    parser.add_argument("--trace", type=Path, help="use this trace file instead of training")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="nnt-bench-") as tmp:
        runs = Path(tmp) / "runs"
        runs.mkdir()
        target = runs / "bench.nntrace"
        if args.trace:
            target.write_bytes(args.trace.read_bytes())
            print(f"trace: {args.trace}")
        else:
            seconds = build_trace(target, args.width, args.epochs, args.probe)
            print(f"built the trace in {seconds:.1f} s")
        os.environ["NN_TRACING_RUNS_DIR"] = str(runs)
        os.environ["NN_TRACING_UPLOAD_DIR"] = str(Path(tmp) / "uploads")

        from streamlit.testing.v1 import AppTest

        import nn_tracing as nt
        from nn_tracing.ui import state

        trace = nt.load_trace(target)
        size_mb = target.stat().st_size / 2**20
        layers = ", ".join(f"{info.name} {info.n_neurons}" for info in trace.layers)
        print(
            f"trace: {trace.n_neurons} neurons ({layers}), {len(trace.epochs)} recorded epochs, "
            f"{len(trace.frame):,} frame rows, {size_mb:.0f} MiB"
        )
        del trace

        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600)
        key = state.epoch_key(state.OVERVIEW_EPOCH, "run:bench")
        timings = measure(at, key, nt.load_trace(target).epochs, args.repeats)

    print("server-side script run time (AppTest), this machine:")
    show("first run, Overview (cold: load + compute)", timings["cold"])
    show("first visit, Neurons (cold)", timings["neurons_cold"])
    show("switch to Overview (cached)", timings["overview"])
    show("switch to Neurons (cached)", timings["neurons"])
    show("epoch slider, epoch not seen before", timings["first_visit"])
    show("epoch slider, epoch seen before (cached)", timings["revisit"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
