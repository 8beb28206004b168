"""Measure what tracing costs: ``nn-tracing bench`` and ``benchmarks/overhead.py``.

The standard workload is ``make_classification(n_samples=20000, n_features=20,
n_informative=10, random_state=0)``, an MLP 20→128→128→2 (ReLU), Adam lr 1e-3, batch 64,
10 epochs, one torch thread and a probe of 1024 samples; the wide workload is the same with
hidden layers of 512×512. The cnn workload is the built-in CNN (``model="cnn"``: conv 8, conv
16, 3×3, ReLU, average pool to 2×2, linear) on as many generated ``bars`` images (16×16, 4
classes), with the same batch, optimiser, epochs and probe; only the library variants run on it
(the bench-loop reference points are written for the MLP). ``--workload`` picks workloads.

Every variant runs once per repetition, round-robin (the order rotates from one repetition to
the next), so that noise from the rest of the machine hits all variants alike. Only the
training call is timed: the data are prepared once, beforehand.

Two baselines:

* ``untraced`` — ``nn_tracing.train(cfg, traced=False)``; the library variants (every epoch,
  ``epoch_intervals=-1``, ``drop_batches=False``) are ``nn_tracing.train(cfg)`` and their
  ratios are to it — except ``every epoch, written to a run directory``
  (``train(cfg, out=<a fresh folder each repetition>)``), whose ratio is to the in-memory
  ``every epoch``: what writing as it goes adds.
* ``untraced (bench loop)`` — a copy of ``train``'s loop in this module; the reference points
  (TensorBoard histograms once per epoch, hooks copying every batch's activations to the host)
  add their work to that loop and their ratios are to it.

Goals (printed PASS/MISS; a miss never makes the exit status non-zero): recording every epoch
costs ≤ 1.05× untraced on the standard workload (and less on the wide one) and on the cnn one,
``drop_batches=False`` costs ≤ 1.3×, and writing every epoch to a run directory as it goes
costs ≤ 1.02× recording it in memory (standard workload).

The storage table gives, per workload, the every-epoch trace's ``.nntrace`` size and the
seconds to save and load it, and the run directory that training wrote: its size (the sum of
its files), its file count, its size against the zip of the same trace, and its load time.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig
from .data import Dataset, DataSplits, _finish, prepare_data
from .models import build_model
from .training import _evaluate, make_optimizer, train

__all__ = ["GOALS", "main"]

STANDARD_HIDDEN = (128, 128)
WIDE_HIDDEN = (512, 512)
#: The workloads, in the order of the table (``--workload`` picks some).
WORKLOADS = ("standard", "wide", "cnn")
PROBE_SIZE = 1024
FULL = {"samples": 20_000, "epochs": 10, "repeats": 5}
QUICK = {"samples": 2_000, "epochs": 2, "repeats": 2}

BASE_TRAIN = "untraced"
BASE_LOOP = "untraced (bench loop)"
EVERY = "every epoch"
LAST_ONLY = "epoch_intervals=-1"
STEPS = "every epoch, drop_batches=False"
RUNDIR = "every epoch, written to a run directory"
TENSORBOARD = "TensorBoard add_histogram / epoch"
HOST_COPY = "hooks copy every batch to host"
#: Every variant, in the order of the table.
VARIANTS = (BASE_TRAIN, EVERY, RUNDIR, LAST_ONLY, STEPS, BASE_LOOP, TENSORBOARD, HOST_COPY)

#: (workload, variant, limit, description); judged on the ratio of medians.
GOALS: tuple[tuple[str, str, float, str], ...] = (
    ("standard", EVERY, 1.05, "every-epoch recording ≤ 1.05× untraced"),
    ("wide", EVERY, 1.05, "every-epoch recording ≤ 1.05× untraced (and less than standard)"),
    ("standard", STEPS, 1.3, "drop_batches=False ≤ 1.3× untraced"),
    ("wide", STEPS, 1.3, "drop_batches=False ≤ 1.3× untraced"),
    ("standard", RUNDIR, 1.02, "writing every epoch to a run directory ≤ 1.02× in memory"),
    ("cnn", EVERY, 1.05, "CNN: every-epoch recording ≤ 1.05× untraced"),
)


# --------------------------------------------------------------------------- set-up


def _dataset(n_samples: int) -> Dataset:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n_samples, n_features=20, n_informative=10, random_state=0)
    return _finish(
        "classification",
        X,
        y,
        description=f"make_classification({n_samples}, 20 features, 10 informative)",
    )


def _cnn_config(base: TrainConfig) -> TrainConfig:
    """The cnn workload: the built-in CNN (default channels 8, 16) on ``bars``, with the
    standard workload's samples, epochs, batch, optimiser and probe."""
    return base.replace(dataset="bars", model="cnn", hidden_sizes=STANDARD_HIDDEN)


def _config(hidden: tuple[int, ...], epochs: int, n_samples: int) -> TrainConfig:
    return TrainConfig(
        dataset="classification",
        hidden_sizes=hidden,
        activation="relu",
        epochs=epochs,
        batch_size=64,
        lr=1e-3,
        optimizer="adam",
        seed=0,
        n_samples=n_samples,
        probe_size=PROBE_SIZE,
        epoch_intervals=None,
        drop_batches=True,
        device="cpu",
    )


# --------------------------------------------------------------------------- the bench loop


def _activation_modules(module: nn.Module) -> dict[str, nn.Module]:
    """The modules whose outputs are the traced neurons: each activation and the last Linear."""
    named = list(module.named_children())
    out = {name: sub for name, sub in named if name.startswith("act_")}
    linears = [(name, sub) for name, sub in named if isinstance(sub, nn.Linear)]
    if linears:
        out[linears[-1][0]] = linears[-1][1]
    return out


class _Extra:
    """Work a reference point adds to the bench loop (default: nothing)."""

    def start(self, module: nn.Module, data: DataSplits) -> None:
        pass

    def start_epoch(self, epoch: int) -> None:
        pass

    def end_epoch(self, epoch: int) -> None:
        pass

    def close(self) -> None:
        pass


class _TensorBoard(_Extra):
    """``add_histogram`` of every layer's probe activations and every parameter, per epoch."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir

    def start(self, module: nn.Module, data: DataSplits) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.module = module
        self.probe = torch.from_numpy(data.X_probe)
        self.writer = SummaryWriter(log_dir=self.logdir)
        self.captured: dict[str, torch.Tensor] = {}
        self.handles = []
        for name, sub in _activation_modules(module).items():

            def hook(mod: nn.Module, inputs: Any, output: Any, name: str = name) -> None:
                if self.capturing:
                    self.captured[name] = output.detach()

            self.handles.append(sub.register_forward_hook(hook))
        self.capturing = False

    def end_epoch(self, epoch: int) -> None:
        was_training = self.module.training
        self.module.eval()
        self.capturing = True
        try:
            with torch.no_grad():
                self.module(self.probe)
        finally:
            self.capturing = False
            self.module.train(was_training)
        for name, values in self.captured.items():
            self.writer.add_histogram(f"activations/{name}", values, epoch)
        for name, param in self.module.named_parameters():
            self.writer.add_histogram(f"parameters/{name}", param.detach(), epoch)
        self.captured.clear()

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.writer.close()


class _HostCopy(_Extra):
    """Forward hooks that copy every training batch's activations to the host."""

    def start(self, module: nn.Module, data: DataSplits) -> None:
        self.kept: dict[str, list[torch.Tensor]] = {}
        self.handles = []
        for name, sub in _activation_modules(module).items():
            kept = self.kept.setdefault(name, [])

            def hook(mod: nn.Module, inputs: Any, output: Any, kept=kept) -> None:
                if mod.training:
                    # .cpu() alone does not copy a CPU tensor; copy=True makes it a real copy
                    kept.append(output.detach().to("cpu", copy=True))

            self.handles.append(sub.register_forward_hook(hook))

    def start_epoch(self, epoch: int) -> None:
        for kept in self.kept.values():
            kept.clear()

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.kept.clear()


def _bench_loop(config: TrainConfig, data: DataSplits, extra: _Extra | None = None) -> nn.Module:
    """``train(config, traced=False)``'s loop (same batches, Adam, loss, per-batch
    ``loss.item()``, per-epoch validation), plus ``extra``'s work."""
    extra = extra or _Extra()
    device = torch.device(config.device)
    module = build_model(config, data.dataset.n_features, data.dataset.n_classes).to(device)
    X = torch.from_numpy(data.X_train).to(device)
    y = torch.from_numpy(data.y_train).to(device)
    X_val = torch.from_numpy(data.X_val).to(device)
    y_val = torch.from_numpy(data.y_val).to(device)
    order = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(config, module.parameters())
    extra.start(module, data)
    n = X.shape[0]
    bs = config.batch_size
    steps_per_epoch = math.ceil(n / bs)
    try:
        for epoch in range(1, config.epochs + 1):
            extra.start_epoch(epoch)
            module.train()
            perm = torch.randperm(n, generator=order).to(device)
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            seen = 0
            for step in range(steps_per_epoch):
                idx = perm[step * bs : (step + 1) * bs]
                xb, yb = X[idx], y[idx]
                logits = module(xb)
                loss = F.cross_entropy(logits, yb)
                last_loss = loss.item()
                if not math.isfinite(last_loss):
                    raise RuntimeError(f"the bench loop diverged at epoch {epoch}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach().to(torch.float64) * xb.shape[0]
                correct += (logits.detach().argmax(1) == yb).sum()
                seen += xb.shape[0]
            history = {"lr": float(optimizer.param_groups[0]["lr"])}
            if seen:
                history["train_loss"] = float(loss_sum) / seen
                history["train_acc"] = int(correct) / seen
            history["val_loss"], history["val_acc"] = _evaluate(module, X_val, y_val)
            extra.end_epoch(epoch)
    finally:
        extra.close()
    return module


# --------------------------------------------------------------------------- variants


@dataclass
class _Variant:
    workload: str
    name: str
    baseline: str
    run: Callable[[], Any]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.workload, self.name)


@dataclass
class _Written:
    """What the run-directory variant returns: the run and the folder it wrote."""

    trace: Any
    directory: Path


def _variants(
    workload: str, config: TrainConfig, data: DataSplits, tensorboard: bool, tmp: Path
) -> list[_Variant]:
    def traced(**changes: Any) -> Callable[[], Any]:
        cfg = config.replace(**changes)
        return lambda: train(cfg, data=data)

    def written() -> _Written:
        directory = Path(tempfile.mkdtemp(prefix=f"run-{workload}-", dir=tmp))
        return _Written(train(config, data=data, out=directory).trace, directory)

    untraced = _Variant(
        workload, BASE_TRAIN, BASE_TRAIN, lambda: train(config, traced=False, data=data)
    )
    if config.model != "mlp":  # the library variants only
        return [
            untraced,
            _Variant(workload, EVERY, BASE_TRAIN, traced(epoch_intervals=None)),
            _Variant(workload, LAST_ONLY, BASE_TRAIN, traced(epoch_intervals=-1)),
            _Variant(workload, STEPS, BASE_TRAIN, traced(epoch_intervals=None, drop_batches=False)),
        ]
    out = [
        untraced,
        _Variant(workload, EVERY, BASE_TRAIN, traced(epoch_intervals=None)),
        _Variant(workload, RUNDIR, EVERY, written),
        _Variant(workload, LAST_ONLY, BASE_TRAIN, traced(epoch_intervals=-1)),
        _Variant(workload, STEPS, BASE_TRAIN, traced(epoch_intervals=None, drop_batches=False)),
        _Variant(workload, BASE_LOOP, BASE_LOOP, lambda: _bench_loop(config, data)),
    ]
    if tensorboard:
        counter = iter(range(1_000_000))

        def run_tensorboard() -> Any:
            logdir = tmp / f"tb-{workload}-{next(counter)}"
            return _bench_loop(config, data, _TensorBoard(str(logdir)))

        out.append(_Variant(workload, TENSORBOARD, BASE_LOOP, run_tensorboard))
    out.append(
        _Variant(workload, HOST_COPY, BASE_LOOP, lambda: _bench_loop(config, data, _HostCopy()))
    )
    return out


def _select(variants: list[_Variant], only: Sequence[str] | None) -> list[_Variant]:
    """The variants named in ``only`` and the baselines they are compared with (all when
    ``only`` is empty)."""
    if not only:
        return variants
    by_name = {v.name: v for v in variants}
    keep: set[str] = set()
    for name in only:
        while name in by_name and name not in keep:
            keep.add(name)
            name = by_name[name].baseline
    return [v for v in variants if v.name in keep]


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    gc.collect()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    return wall, time.process_time() - cpu0, result


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _storage(trace: Any, tmp: Path) -> dict[str, float]:
    """Size of the trace file, and the seconds to save it, load it and build ``frame``."""
    from .store import load_trace, save_trace

    path = tmp / "every-epoch.nntrace"
    gc.collect()
    t0 = time.perf_counter()
    save_trace(trace, path)
    save_s = time.perf_counter() - t0
    size = path.stat().st_size
    gc.collect()
    t0 = time.perf_counter()
    loaded = load_trace(path)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = loaded.frame
    frame_s = time.perf_counter() - t0
    rows = len(frame)
    del loaded, frame
    path.unlink()
    return {"bytes": size, "save_s": save_s, "load_s": load_s, "frame_s": frame_s, "rows": rows}


def _directory_storage(written: _Written, tmp: Path) -> dict[str, float]:
    """Size of the run directory (the sum of its files) and of the ``.nntrace`` zip of the
    same trace, and the seconds to load the directory; the directory is then removed."""
    from .store import load_trace, save_trace

    sizes = [
        os.lstat(os.path.join(root, name)).st_size
        for root, _, names in os.walk(written.directory)
        for name in names
    ]
    zipped = tmp / "run-directory.nntrace"
    save_trace(written.trace, zipped)
    zip_size = zipped.stat().st_size
    zipped.unlink()
    gc.collect()
    t0 = time.perf_counter()
    load_trace(written.directory)
    load_s = time.perf_counter() - t0
    shutil.rmtree(written.directory)
    return {
        "dir_bytes": sum(sizes),
        "dir_files": len(sizes),
        "dir_zip_bytes": zip_size,
        "dir_load_s": load_s,
    }


# --------------------------------------------------------------------------- report


def _json_ready(value: Any) -> Any:
    """Tuples to lists, numpy scalars to floats, NaN to None (valid JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt_ratio(value: float) -> str:
    return f"{value:.3f}×" if math.isfinite(value) else "n/a"


def _summaries(variants: list[_Variant]) -> dict[tuple[str, str], dict[str, Any]]:
    by_key = {v.key: v for v in variants}
    out = {}
    for v in variants:
        base = by_key[(v.workload, v.baseline)]
        med, base_med = _median(v.wall), _median(base.wall)
        per_rep = [a / b for a, b in zip(v.wall, base.wall) if b > 0]
        cpu_ratio = _median(v.cpu) / _median(base.cpu) if _median(base.cpu) > 0 else math.nan
        out[v.key] = {
            "workload": v.workload,
            "variant": v.name,
            "baseline": v.baseline,
            "median_s": med,
            "ratio": med / base_med if base_med > 0 else math.nan,
            "per_rep_ratio": _median(per_rep),
            "best_s": min(v.wall) if v.wall else math.nan,
            "best_ratio": min(v.wall) / min(base.wall)
            if v.wall and min(base.wall) > 0
            else math.nan,
            "cpu_median_s": _median(v.cpu),
            "cpu_ratio": cpu_ratio,
            "wall_s": list(v.wall),
            "cpu_s": list(v.cpu),
        }
    return out


def _goal_results(summary: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    for workload, variant, limit, text in GOALS:
        row = summary.get((workload, variant))
        if row is None:
            continue
        ratio = row["ratio"]
        ok = math.isfinite(ratio) and ratio <= limit
        if workload == "wide" and variant == EVERY:
            standard = summary.get(("standard", EVERY))
            if standard is not None:
                ok = ok and ratio <= standard["ratio"]
        results.append(
            {
                "workload": workload,
                "variant": variant,
                "limit": limit,
                "goal": text,
                "ratio": ratio,
                "per_rep_ratio": row["per_rep_ratio"],
                "result": "PASS" if ok else "MISS",
            }
        )
    return results


def _table(
    summary: dict[tuple[str, str], dict[str, Any]], goals: list[dict[str, Any]]
) -> list[str]:
    marks = {(g["workload"], g["variant"]): f"{g['result']} (≤ {g['limit']}×)" for g in goals}
    lines = [
        "| workload | variant | median s | ratio | per-rep ratio | best-of ratio | CPU ratio | "
        "baseline | goal |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for key, row in summary.items():
        lines.append(
            f"| {row['workload']} | {row['variant']} | {row['median_s']:.3f} | "
            f"{_fmt_ratio(row['ratio'])} | {_fmt_ratio(row['per_rep_ratio'])} | "
            f"{_fmt_ratio(row['best_ratio'])} | {_fmt_ratio(row['cpu_ratio'])} | "
            f"{row['baseline']} | {marks.get(key, '')} |"
        )
    return lines


def _storage_table(storage: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        "| workload | every-epoch trace | rows | save s | load s | frame s | run directory | "
        "files | directory / zip | directory load s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload, row in storage.items():
        directory = ["n/a"] * 4
        if "dir_bytes" in row:
            directory = [
                f"{row['dir_bytes'] / 2**20:.2f} MiB ({int(row['dir_bytes'])} B)",
                str(int(row["dir_files"])),
                _fmt_ratio(row["dir_bytes"] / row["dir_zip_bytes"]),
                f"{row['dir_load_s']:.3f}",
            ]
        lines.append(
            f"| {workload} | {row['bytes'] / 2**20:.2f} MiB ({int(row['bytes'])} B) | "
            f"{int(row['rows'])} | {row['save_s']:.3f} | {row['load_s']:.3f} | "
            f"{row['frame_s']:.4f} | {' | '.join(directory)} |"
        )
    return lines


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/overhead.py",
        description="Time training with and without tracing, interleaved, in one process.",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help=f"repetitions (default {FULL['repeats']})"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help=f"epochs per run (default {FULL['epochs']})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK['samples']} samples, at most {QUICK['epochs']} epochs and "
        f"{QUICK['repeats']} repetitions",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    parser.add_argument("--samples", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-wide", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--workload",
        action="append",
        choices=WORKLOADS,
        help="measure only this workload (standard: MLP 128-128, wide: MLP 512-512, cnn: the "
        "built-in CNN on bars images); repeatable; default all",
    )
    parser.add_argument(
        "--variant",
        action="append",
        metavar="NAME",
        help="measure only this variant (and the baselines it is compared with); repeatable",
    )
    return parser


def _settings(args: argparse.Namespace) -> tuple[int, int, int]:
    if args.quick:
        # caps, so that `nn-tracing bench --quick` (which always passes its own --repeats and
        # --epochs) stays quick
        repeats = min(args.repeats or QUICK["repeats"], QUICK["repeats"])
        epochs = min(args.epochs or QUICK["epochs"], QUICK["epochs"])
        samples = args.samples or QUICK["samples"]
    else:
        repeats = args.repeats or FULL["repeats"]
        epochs = args.epochs or FULL["epochs"]
        samples = args.samples or FULL["samples"]
    return repeats, epochs, samples


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the tables; return 0 (a missed goal is not an error)."""
    parser = _parser()
    args = parser.parse_args(argv)
    repeats, epochs, samples = _settings(args)
    if repeats < 1 or epochs < 1 or samples < 100:
        parser.error("--repeats and --epochs must be ≥ 1 (and --samples ≥ 100)")
    unknown = sorted(set(args.variant or ()) - set(VARIANTS))
    if unknown:
        parser.error(f"no variant {unknown[0]!r}; variants: {', '.join(VARIANTS)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(args, repeats, epochs, samples)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, repeats: int, epochs: int, samples: int) -> int:
    tensorboard = _announce(args, repeats, epochs, samples)
    base = _config(STANDARD_HIDDEN, epochs, samples)
    workloads = _workloads(args, base, samples)
    variants, storage_runs = _measure(workloads, repeats, tensorboard, args.variant)
    summary = _summaries(variants)
    goals = _goal_results(summary)
    storage = {
        w: {k: _median([r[k] for r in runs]) for k in runs[0]}
        for w, runs in storage_runs.items()
        if runs
    }
    _print_results(summary, goals, storage, workloads, tensorboard)
    if args.json:
        payload = {
            "settings": {
                "samples": samples,
                "epochs": epochs,
                "repeats": repeats,
                "probe_size": PROBE_SIZE,
                "threads": 1,
                "torch": torch.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "quick": bool(args.quick),
                "tensorboard": tensorboard,
            },
            "variants": list(summary.values()),
            "storage": storage,
            "storage_runs": storage_runs,
            "goals": goals,
        }
        Path(args.json).write_text(json.dumps(_json_ready(payload), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _chosen(args: argparse.Namespace) -> list[str]:
    """The workloads to measure, in table order (``--workload``, less ``--no-wide``)."""
    return [
        w
        for w in WORKLOADS
        if w in (args.workload or WORKLOADS) and not (args.no_wide and w == "wide")
    ]


def _workloads(
    args: argparse.Namespace, base: TrainConfig, samples: int
) -> dict[str, tuple[TrainConfig, DataSplits]]:
    """The chosen workloads' configs and data (each dataset prepared once)."""
    out: dict[str, tuple[TrainConfig, DataSplits]] = {}
    tabular = None
    for workload in _chosen(args):
        if workload == "cnn":
            config = _cnn_config(base)
            out[workload] = (config, prepare_data(config))
            continue
        tabular = tabular or prepare_data(base, dataset=_dataset(samples))
        hidden = STANDARD_HIDDEN if workload == "standard" else WIDE_HIDDEN
        out[workload] = (base.replace(hidden_sizes=hidden), tabular)
    return out


def _announce(args: argparse.Namespace, repeats: int, epochs: int, samples: int) -> bool:
    """Print what is measured; returns whether the TensorBoard reference can run."""
    cnn = "; cnn: the built-in CNN on as many bars images" if "cnn" in _chosen(args) else ""
    print(
        f"nn_tracing overhead benchmark ({', '.join(_chosen(args))}): "
        f"make_classification({samples}×20){cnn}, batch 64, "
        f"{epochs} epochs, Adam lr 1e-3, probe {PROBE_SIZE}, torch {torch.__version__} "
        f"with {torch.get_num_threads()} thread, {repeats} repetitions interleaved "
        f"({platform.machine()}, {os.cpu_count()} CPUs)",
        flush=True,
    )
    if not args.quick and repeats < FULL["repeats"]:
        print(f"note: {repeats} repetitions; the figures to quote need at least 5", flush=True)
    try:
        importlib.import_module("torch.utils.tensorboard")
    except ImportError as exc:
        print(
            f"note: TensorBoard reference skipped (torch.utils.tensorboard is not importable: "
            f"{exc}); install it with `pip install tensorboard`",
            flush=True,
        )
        return False
    return True


def _measure(
    workloads: dict[str, tuple[TrainConfig, DataSplits]],
    repeats: int,
    tensorboard: bool,
    only: Sequence[str] | None = None,
) -> tuple[list[_Variant], dict[str, list[dict[str, float]]]]:
    """Run every variant (or those named in ``only``, with their baselines) ``repeats``
    times, interleaved (after one warm-up run each); returns the variants with their timings
    and the storage figures of each repetition."""
    with tempfile.TemporaryDirectory(prefix="nn-tracing-bench-") as tmpname:
        tmp = Path(tmpname)
        variants: list[_Variant] = []
        for workload, (config, data) in workloads.items():
            every = _variants(workload, config, data, tensorboard, tmp)
            variants += _select(every, only)

        # warm-up: one short run of every variant (first-call costs, lazy imports)
        for workload, (config, data) in workloads.items():
            warm = config.replace(epochs=1)
            for v in _select(_variants(workload, warm, data, tensorboard, tmp), only):
                result = v.run()
                if isinstance(result, _Written):
                    shutil.rmtree(result.directory)

        storage_runs: dict[str, list[dict[str, float]]] = {w: [] for w in workloads}
        started = time.perf_counter()
        for rep in range(repeats):
            shift = rep % len(variants)
            order = variants[shift:] + variants[:shift]
            traces: dict[str, Any] = {}
            written: dict[str, _Written] = {}
            for v in order:
                wall, cpu, result = _timed(v.run)
                v.wall.append(wall)
                v.cpu.append(cpu)
                if v.name == EVERY:
                    traces[v.workload] = result.trace
                elif v.name == RUNDIR:
                    written[v.workload] = result
                del result
            for workload, trace in traces.items():
                row = _storage(trace, tmp)
                if workload in written:
                    row.update(_directory_storage(written.pop(workload), tmp))
                storage_runs[workload].append(row)
            traces.clear()
            elapsed = time.perf_counter() - started
            print(f"  repetition {rep + 1}/{repeats} done ({elapsed:.0f} s)", flush=True)
    return variants, storage_runs


def _print_results(
    summary: dict[tuple[str, str], dict[str, Any]],
    goals: list[dict[str, Any]],
    storage: dict[str, dict[str, float]],
    workloads: dict[str, tuple[TrainConfig, DataSplits]],
    tensorboard: bool,
) -> None:
    """The timing table, the baselines' sanity check, the storage table and the goals."""
    print()
    print("\n".join(_table(summary, goals)))
    print()
    print(
        f"ratio = median wall time / median of its baseline; per-rep ratio = median over "
        f"repetitions of the ratio within a repetition; best-of ratio = fastest run / fastest "
        f"baseline run (least disturbed by other load); CPU ratio = ratio on process CPU time. "
        f"Baselines: `{BASE_TRAIN}` = nn_tracing.train(cfg, traced=False) for the "
        f"library variants; `{BASE_LOOP}` = the same loop written in bench.py for the "
        f"reference points. standard = MLP 20-128-128-2, wide = MLP 20-512-512-2, cnn = the "
        f"built-in CNN 8-16 (3×3, pool 2×2) on bars images of 16×16."
    )
    for workload in workloads:
        if (workload, BASE_LOOP) not in summary:
            continue
        a, b = summary[(workload, BASE_LOOP)], summary[(workload, BASE_TRAIN)]
        print(
            f"sanity ({workload}): the two baselines run the same loop; bench loop / train() = "
            f"{_fmt_ratio(a['median_s'] / b['median_s'])} by medians, "
            f"{_fmt_ratio(a['best_s'] / b['best_s'])} best-of (far from 1× = a noisy machine)"
        )
    if not tensorboard:
        print("TensorBoard reference: skipped (tensorboard is not installed).")
    print()
    print("\n".join(_storage_table(storage)))
    print()
    print("Goals (judged on the ratio of medians; a MISS does not fail the run):")
    for g in goals:
        print(
            f"  {g['result']}  {g['workload']:<8} {g['goal']}: {_fmt_ratio(g['ratio'])} "
            f"(per-rep {_fmt_ratio(g['per_rep_ratio'])})"
        )
