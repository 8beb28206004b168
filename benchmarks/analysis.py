"""How long the analysis pages' computations take on traces of 1k, 5k and 20k neurons.

Each section is a callable ``section(args) -> list[dict]`` in :data:`SECTIONS`; every row it
returns is one measurement (``section``, ``neurons``, ``what``, ``median_s``, ``runs``,
``note``). The Clusters page's section is here; the Dynamics page's lives in
``benchmarks/analysis_hmm.py`` (``run(args) -> list[dict]``) and joins when that module exists.

The traces are real: a tanh MLP of 8 hidden layers (125, 625 or 2500 neurons each) trained
for two epochs on ``make_classification`` with a probe set of 512 samples (tanh, so that no
neuron is dead and every one is placed), so a neuron's probe activations are ≈500-dimensional
(reduced to 50 principal components before t-SNE and UMAP, as the page does). The machine is
shared: every figure is the median of several runs (a single run for anything above 20 s), and
the load average is printed with the table.

    .venv/bin/python benchmarks/analysis.py                       # 1k, 5k, 20k neurons
    .venv/bin/python benchmarks/analysis.py --sizes 1000 --repeats 3
    .venv/bin/python benchmarks/analysis.py --json results.json --cache runs-bench/
    .venv/bin/python benchmarks/analysis.py --only clusters --null-versions 20
    .venv/bin/python benchmarks/analysis.py --only chance --sizes 5000 --before main

``--only chance`` measures the test against chance (P = ``--null-versions`` of shuffled and
untrained versions, k-means with k = 8; the page's default is P = 19) and t-SNE side by side:
the code at ``--before`` (a git ref, exported with ``git archive``) and this tree, each in a
fresh process on the same cached trace, one after the other; wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Row = dict[str, Any]
Section = Callable[[argparse.Namespace], list[Row]]

DEPTH = 8
#: Above this, one run is enough (and repeats would take minutes).
SLOW_SECONDS = 20.0


def load() -> str:
    """The load average (1, 5, 15 minutes), as ``uptime`` prints it."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, int, Any]:
    """Median seconds of ``fn()`` over up to ``repeats`` runs (one run if it is slow)."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
        if times[-1] > SLOW_SECONDS:
            break
    return statistics.median(times), len(times), result


def build_trace(n_neurons: int, cache: Path | None) -> Any:
    """A real trace with ``n_neurons`` hidden neurons (8 layers), trained for two epochs."""
    import nn_tracing as nt

    width = n_neurons // DEPTH
    path = (cache / f"mlp-tanh-{DEPTH}x{width}.nntrace") if cache else None
    if path is not None and path.exists():
        return nt.load_trace(path)
    config = nt.TrainConfig(
        dataset="classification",
        hidden_sizes=(width,) * DEPTH,
        epochs=2,
        batch_size=256,
        n_samples=2000,
        probe_size=512,
        activation="tanh",  # no dead neurons: every neuron is placed on the map
        lr=1e-3,
        seed=0,
    )
    started = time.perf_counter()
    trace = nt.train(config).trace
    print(f"  trained {DEPTH}×{width} in {time.perf_counter() - started:.0f} s", flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        nt.save_trace(trace, path)
        return nt.load_trace(path)
    return trace


_COLD_UMAP = """
import time
started = time.perf_counter()
from nn_tracing.analysis import numba_guard
umap = numba_guard.umap_module()
imported = time.perf_counter() - started
import numpy as np
X = np.random.default_rng(0).normal(size=({rows}, 50)).astype(np.float32)
started = time.perf_counter()
umap.UMAP().fit_transform(X)
first = time.perf_counter() - started
started = time.perf_counter()
umap.UMAP().fit_transform(X)
print(imported, first, time.perf_counter() - started)
"""

_WARM_UP = """
import time
from nn_tracing.analysis import numba_guard
started = time.perf_counter()
steps = numba_guard.warm_up()
print(time.perf_counter() - started)
"""


def _python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1200
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout.strip().splitlines()[-1]


def umap_compilation(args: argparse.Namespace) -> list[Row]:
    """UMAP's first fit in a fresh process (numba JIT), with the compilation cache in place,
    and the background warm-up that pays it once per server."""
    rows: list[Row] = []
    for n in (1000, 5000):
        imported, first, second = (float(v) for v in _python(_COLD_UMAP.format(rows=n)).split())
        rows += [
            {
                "section": "clusters",
                "neurons": n,
                "what": "UMAP: import umap in a fresh process (numba cache warm)",
                "median_s": imported,
                "runs": 1,
                "note": f"load {load()}",
            },
            {
                "section": "clusters",
                "neurons": n,
                "what": "UMAP: first fit in a fresh process (JIT) / second fit",
                "median_s": first,
                "runs": 1,
                "note": f"second fit {second:.1f} s; load {load()}",
            },
        ]
    seconds = float(_python(_WARM_UP))
    rows.append(
        {
            "section": "clusters",
            "neurons": 0,
            "what": "UMAP: background warm-up at server start (import + fits of 300 and 4200)",
            "median_s": seconds,
            "runs": 1,
            "note": f"load {load()}",
        }
    )
    return rows


def clusters(args: argparse.Namespace) -> list[Row]:
    """The Clusters page: features, each projector, each clusterer, the test, the joint map."""
    from nn_tracing.analysis import numba_guard

    numba_guard.warm_up()  # a server warms UMAP up at start; the cold cost is measured apart
    rows: list[Row] = []
    for n in args.sizes:
        print(f"clusters: {n} neurons (load {load()})", flush=True)
        rows += _clusters_at(n, args)
    return rows


def _clusters_at(n: int, args: argparse.Namespace) -> list[Row]:
    from nn_tracing.analysis import baselines, embedding

    trace = build_trace(n, args.cache)
    spec = embedding.FeatureSpec(
        "activations", layers=tuple(f"hidden_{i + 1}" for i in range(DEPTH))
    )
    rows: list[Row] = []

    def row(what: str, seconds: float, runs: int, note: str = "") -> None:
        rows.append(
            {
                "section": "clusters",
                "neurons": n,
                "what": what,
                "median_s": seconds,
                "runs": runs,
                "note": (note + "; " if note else "") + f"load {load()}",
            }
        )
        print(f"  {what:<62} {seconds:8.2f} s  (n={runs})", flush=True)

    seconds, runs, features = timed(lambda: embedding.neuron_features(trace, spec), args.repeats)
    X = features.values
    row(
        f"features: probe activations of {features.n_rows} placed neurons ({X.shape[1]}-D)",
        seconds,
        runs,
        f"{len(features.excluded)} constant (dead) neurons listed",
    )
    projections = [
        ("PCA", {"method": "pca"}),
        ("t-SNE, scikit-learn", {"method": "tsne", "tsne_backend": "sklearn"}),
        ("t-SNE, openTSNE", {"method": "tsne", "tsne_backend": "opentsne"}),
        ("UMAP (unseeded, warm)", {"method": "umap"}),
        ("UMAP (random_state=0: one thread, warm)", {"method": "umap", "random_state": 0}),
    ]
    coords = None
    for label, params in projections:
        if "scikit-learn" in label and n > args.max_sklearn_tsne:
            continue
        repeats = args.repeats if params["method"] == "pca" else max(1, args.repeats // 2)
        seconds, runs, fitted = timed(
            lambda p=params: embedding.NeuronProjector(**p).fit(X), repeats
        )
        if label.startswith("UMAP (unseeded"):
            coords = fitted.embedding_
        threads = getattr(fitted, "n_jobs_", None)
        row(f"projection: {label}", seconds, runs, f"{threads} thread(s)" if threads else "")
    clusterers = [
        ("k-means (k=8) on the features", {"method": "kmeans", "n_clusters": 8}, X),
        ("HDBSCAN on the 2-D map", {"method": "hdbscan"}, coords),
        ("HDBSCAN on the features", {"method": "hdbscan"}, X),
        (
            "agglomerative (ward, k=8) on the features",
            {"method": "agglomerative", "n_clusters": 8},
            X,
        ),
    ]
    for label, params, data in clusterers:
        if data is None or ("HDBSCAN on the features" in label and n > args.max_hdbscan_features):
            continue
        seconds, runs, fitted = timed(
            lambda p=params, d=data: embedding.NeuronClusterer(**p).fit(d), args.repeats
        )
        row(f"clustering: {label}", seconds, runs, "; ".join(fitted.notes_))
    labels = embedding.NeuronClusterer("kmeans", n_clusters=8).fit(X).labels_
    seconds, runs, _ = timed(lambda: embedding.silhouette(X, labels), args.repeats)
    row(f"exact silhouette of every neuron ({X.shape[1]}-D, k=8)", seconds, runs)
    # the test refits and rescores every null version: above 5k neurons P is capped (the
    # page shows its estimate before it starts); the figure scales linearly with P
    permutations = args.permutations if n <= 5000 else min(args.permutations, 5)
    for nulls in (("shuffled",), ("shuffled", "untrained")):
        test = baselines.ChanceTest(permutations, nulls=nulls, random_state=0)
        clusterer = embedding.NeuronClusterer("kmeans", n_clusters=8)
        seconds, runs, _ = timed(lambda t=test, c=clusterer: t.fit(features, c, trace=trace), 1)
        row(
            f"test against chance: k-means, P={permutations}, {' + '.join(nulls)}",
            seconds,
            runs,
            f"scored on {test.n_rows_} of {test.n_rows_total_} neurons",
        )
    if n * len(trace.epochs) <= 20000:
        seconds, runs, joint = timed(
            lambda: embedding.joint_embedding(
                trace, spec, embedding.NeuronProjector("umap"), max_points=20000
            ),
            1,
        )
        row(f"joint UMAP of {len(joint.frame)} (neuron, epoch) points", seconds, runs)
    return rows


_CHANCE = """
import json, sys, time
from nn_tracing import load_trace
from nn_tracing.analysis import baselines, embedding
trace = load_trace({path!r})
spec = embedding.FeatureSpec("activations", layers={layers!r})
features = embedding.neuron_features(trace, spec)
# warm up (imports, the first fits): the first variant timed must not pay for them
embedding.NeuronClusterer("kmeans", n_clusters=8).fit(features.values)
baselines.untrained_features(trace, features, seed=99_999)
out = {{}}
started, cpu = time.perf_counter(), time.process_time()
embedding.NeuronProjector("tsne", tsne_backend="opentsne").fit(features.values)
out["t-SNE (openTSNE) of the probe activations"] = {{"seconds": time.perf_counter() - started,
                                                     "cpu": time.process_time() - cpu}}
for label, kwargs in {variants!r}:
    try:
        test = baselines.ChanceTest({permutations}, random_state=0, **kwargs)
    except TypeError:  # the code before: no such parameter
        continue
    kept = sys.modules.get("nn_tracing.analysis.untrained", baselines)  # moved there
    getattr(kept, "_untrained_cache", {{}}).clear()  # no untrained network measured yet
    started, cpu = time.perf_counter(), time.process_time()
    test.fit(features, embedding.NeuronClusterer("kmeans", n_clusters=8), trace=trace)
    drawn = sum(r.n_permutations for r in test.results_.values())
    out[label] = {{"seconds": time.perf_counter() - started, "drawn": drawn,
                  "cpu": time.process_time() - cpu,
                  "verdict": " ".join(r.name + (" beaten" if r.significant else " not beaten")
                                      for r in test.results_.values())}}
print(json.dumps(out))
"""


def _tree_at(ref: str) -> Path:
    """The package as it was at git ``ref``, exported into a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="nnt-before-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "nn_tracing"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def _chance_in(tree: Path, code: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(  # in the tree: ``-c`` puts the working directory first on sys.path
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        cwd=tree,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def chance(args: argparse.Namespace) -> list[Row]:
    """The test against chance and t-SNE, before (``--before``) and now, side by side."""
    before = _tree_at(args.before)
    rows: list[Row] = []
    for n in args.sizes:
        trace_path = args.cache / f"mlp-tanh-{DEPTH}x{n // DEPTH}.nntrace"
        build_trace(n, args.cache)  # trained once, cached
        code = _CHANCE.format(
            path=str(trace_path.resolve()),  # the processes run in the trees
            layers=tuple(f"hidden_{i + 1}" for i in range(DEPTH)),
            permutations=args.permutations,
            variants=[
                (f"test against chance, P={args.permutations}, shuffled + untrained", {}),
                *(
                    [
                        (
                            f"test against chance, P={args.permutations}, every version drawn",
                            {"sequential": False},
                        )
                    ]
                    if args.every_version
                    else []
                ),
            ],
        )
        print(f"chance: {n} neurons, before ({args.before}) (load {load()})", flush=True)
        old = _chance_in(before, code)
        print(f"chance: {n} neurons, now (load {load()})", flush=True)
        new = _chance_in(ROOT, code)
        for what, now in new.items():
            then = old.get(what, {})
            note = f"before ({args.before}): " + (
                f"{then['seconds']:.1f} s" if then else "not measured (no such option)"
            )
            if then:
                note += f", now/before {now['seconds'] / then['seconds']:.2f}"
            if "cpu" in now:  # CPU seconds of all the process's threads: less load-bound
                note += f"; CPU {then.get('cpu', float('nan')):.1f} → {now['cpu']:.1f} s"
            if "drawn" in now:
                note += f"; versions drawn {then.get('drawn', '–')} → {now['drawn']}"
                note += f"; {now['verdict']}"
            rows.append(
                {
                    "section": "chance",
                    "neurons": n,
                    "what": what,
                    "median_s": now["seconds"],
                    "runs": 1,
                    "note": note + f"; load {load()}",
                }
            )
            print(f"  {what:<62} {note}; now {now['seconds']:.1f} s", flush=True)
    return rows


def _hmm_module() -> Any:
    """``benchmarks/analysis_hmm.py`` (the Dynamics page's section), if it exists."""
    path = Path(__file__).with_name("analysis_hmm.py")
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("analysis_hmm", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module if hasattr(module, "run") else None


def _as_row(row: Row) -> Row:
    """A row of another section in this table's columns (the Dynamics section reports
    ``analysis``, ``size``, ``seconds``, ``runs`` (every timing), ``goal_s``, ``detail``,
    ``load``)."""
    if "section" in row:
        return row
    runs = row.get("runs", 1)
    goal = row.get("goal_s")
    note = "; ".join(
        part
        for part in (
            str(row.get("detail", "")),
            f"goal ≤ {goal:g} s" if isinstance(goal, (int, float)) else "",
            f"load {row['load']:.2f}" if isinstance(row.get("load"), (int, float)) else "",
        )
        if part
    )
    return {
        "section": "dynamics",
        "neurons": row.get("size", ""),
        "what": row.get("analysis", ""),
        "median_s": float(row.get("seconds", float("nan"))),
        "runs": len(runs) if isinstance(runs, list) else runs,
        "note": note,
    }


#: The sections, in order; each returns its measurements as rows.
SECTIONS: list[Section] = [clusters, umap_compilation]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--repeats", type=int, default=5, help="runs per fast measurement")
    parser.add_argument("--null-versions", type=int, default=50, help="P of the chance test")
    parser.add_argument("--max-sklearn-tsne", type=int, default=20000)
    parser.add_argument("--max-hdbscan-features", type=int, default=20000)
    parser.add_argument("--cache", type=Path, help="keep the trained traces in this folder")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--only", choices=["clusters", "umap", "hmm", "chance"], action="append")
    parser.add_argument("--before", default="main", help="git ref of --only chance's 'before'")
    parser.add_argument(
        "--every-version", action="store_true", help="--only chance: also sequential=False"
    )
    args, rest = parser.parse_known_args(argv)
    args.permutations = args.null_versions
    if args.cache is None:
        args.cache = Path(tempfile.mkdtemp(prefix="nnt-bench-traces-"))

    sections: dict[str, Section] = {
        "clusters": clusters,
        "umap": umap_compilation,
        "chance": chance,
    }
    hmm = _hmm_module()
    if hmm is not None:  # its own options (see benchmarks/analysis_hmm.py) come after ours
        own = argparse.ArgumentParser(add_help=False)
        if hasattr(hmm, "add_arguments"):
            hmm.add_arguments(own)
        hmm_args, rest = own.parse_known_args(rest)
        hmm_args.repeats = args.repeats

        def dynamics(_: argparse.Namespace) -> list[Row]:
            return [_as_row(row) for row in hmm.run(hmm_args)]

        sections["hmm"] = dynamics
        SECTIONS.append(dynamics)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    chosen = [sections[name] for name in args.only if name in sections] if args.only else SECTIONS
    print(f"load average at start: {load()}; {os.cpu_count()} CPUs", flush=True)
    rows: list[Row] = []
    for section in chosen:
        rows += [_as_row(row) for row in section(args)]
    print(f"\nload average at end: {load()}")
    print("\n| section | neurons | what | median | runs | note |\n|---|---:|---|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['section']} | {r['neurons'] or '–'} | {r['what']} | {r['median_s']:.2f} s "
            f"| {r['runs']} | {r.get('note', '')} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
