"""Distributed tracing (nn_tracing/tracer/_distributed.py) under a real ``torchrun``.

Two launches of two CPU processes (gloo): examples/ddp_train.py itself, and a driver script
that runs the other scenarios (untraced DDP, streaming without a probe, one merge of uneven
shards, what rank 1 keeps, FSDP2). Every trace is compared with a single-process run of the
same model, probe and batches (gradient accumulation over the ranks' batches, which is what DDP
computes), and the merge with NumPy over the concatenated shards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nn_tracing as nt

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ddp_train.py"
MODELS = Path(__file__).with_name("distributed_models.py")
WORLD_SIZE = 2
SHARDS = (37, 64)  # the uneven merge: rank 0's rows, rank 1's rows
BUDGET = 60_000  # max_trace_bytes of scenario 8: met within 12 epochs on rank 0's directory

DRIVER = r"""
import json, sys, traceback
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import nn_tracing as nt
from nn_tracing.tracer._distributed import (
    put_accumulator, resolve_collective, state_arrays, take_accumulator,
)
from nn_tracing.tracer._stats import Accumulator

ex_path, base, models_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]


def load(name, path):
    spec = __import__("importlib.util").util.spec_from_file_location(name, path)
    module = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ex, models = load("ddp_train", ex_path), load("distributed_models", models_path)
torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()


def save(name, arrays):
    if rank == 0:
        np.savez(base / name, **arrays)


# 1. DDP without the tracer: the weights a traced run must end with
save("untraced.npz", state_arrays(ex.train(None, trace=False)))

# 2. streaming over every rank's batches (no probe)
save("stream_weights.npz", state_arrays(ex.train(str(base / "stream"), probe=False)))

# 3. one merge of uneven shards: rows [0, 37) on rank 0, [37, 101) on rank 1
generator = torch.Generator().manual_seed(7)
data = 1000.0 + torch.randn(101, 5, generator=generator, dtype=torch.float64).float()
labels = torch.randint(0, 3, (101,), generator=generator)
mine = slice(0, 37) if rank == 0 else slice(37, 101)
acc = Accumulator()
acc.add(data[mine][:, None, :], keep_pooled=False)
sums, maxima = {}, {}
put_accumulator(sums, maxima, "x", acc, 5, torch.device("cpu"))
onehot = (labels[mine, None] == torch.arange(3)[None, :]).double()
sums["class_sums"] = onehot.T @ data[mine].double()
sums["class_counts"] = onehot.sum(0)
sums, maxima = resolve_collective().merge(sums, maxima)
stats = take_accumulator(sums, maxima, "x").stats()
np.savez(base / f"merge_rank{rank}.npz", **{k: v.numpy() for k, v in stats.items()},
         class_sums=sums["class_sums"].numpy(), class_counts=sums["class_counts"].numpy())

# 4. what each rank keeps: the same merged metrics; rank 0 alone writes and keeps tensors
x, y, xp, yp = ex.make_data()
tracer = nt.TraceableNN(DistributedDataParallel(ex.make_model()), probe=(xp, yp),
                        log_dir=base / "ranks" / str(rank))
tracer.start_epoch(1)
tracer.end_epoch(1, force=True)
trace = tracer.finish()
np.savez(base / f"rank{rank}_metrics.npz", metrics=trace.frame.to_numpy(),
         tensors=np.array([len(trace.epoch_tensors(e)) for e in trace.epochs]))

# 5. FSDP2: each rank holds whole output neurons
try:
    from torch.distributed.fsdp import fully_shard

    def sharded():
        net = ex.make_model()
        for module in net:
            if isinstance(module, torch.nn.Linear):
                fully_shard(module)
        return fully_shard(net)

    def fsdp_train(out, probe=True):
        net = sharded()
        model = net if out is None else nt.TraceableNN(
            net, example_input=x[:2], probe=(xp, yp) if probe else None, num_epochs=2,
            log_dir=out)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in (1, 2):
            if out is not None:
                model.start_epoch(epoch)
            for xb, yb in ex.rank_batches(x, y, epoch, rank, 2, 16):
                loss = F.cross_entropy(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if out is not None:
                model.end_epoch(epoch)
        if out is not None:
            model.finish()
        return state_arrays(net)

    save("fsdp_untraced.npz", fsdp_train(None))
    save("fsdp_traced.npz", fsdp_train(str(base / "fsdp")))
    save("fsdp_streamed.npz", fsdp_train(str(base / "fsdp_stream"), probe=False))
except Exception:
    if rank == 0:
        (base / "fsdp_error.txt").write_text(traceback.format_exc())

# 6. a convolution (positions, a conv input) and a regression (float targets), DDP, untrained
for name, probe in models.probes().items():
    tracer = nt.TraceableNN(DistributedDataParallel(models.MODELS[name]()), probe=probe,
                            log_dir=base / name)
    tracer.start_epoch(1)
    tracer.end_epoch(1, force=True)
    tracer.finish()

# 7. a probe that differs between the ranks is refused on every rank
try:
    nt.TraceableNN(DistributedDataParallel(ex.make_model()), probe=(xp + rank, yp))
except ValueError as error:
    (base / f"refused_rank{rank}.txt").write_text(str(error))

# 8. kept samples in float16 under a trace budget: rank 0 (which measures the run directory it
# writes) decides when recording stops, and every rank stops there
import warnings

tracer = nt.TraceableNN(DistributedDataParallel(ex.make_model()), probe=(xp, yp),
                        activation_samples=10, activation_dtype="float16",
                        max_trace_bytes=int(sys.argv[4]), log_dir=base / "budget" / str(rank))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for epoch in range(1, 13):
        tracer.start_epoch(epoch)
        tracer.end_epoch(epoch, force=True)
trace = tracer.finish()
(base / f"budget_rank{rank}.json").write_text(json.dumps(
    {"stopped": tracer.recording_stopped, "epochs": trace.epochs,
     "counted": tracer._budget.fixed_bytes + sum(tracer._budget.epoch_bytes.values())}))
dist.destroy_process_group()
"""


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ddp_train", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _torchrun(script: Path, *args: str) -> None:
    """``torchrun --nproc_per_node 2`` on this checkout, CPU and gloo; fails with the log."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "CUDA_VISIBLE_DEVICES": "",
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    result = subprocess.run(
        [*command, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both launches' outputs: ``ddp/`` (the example's run directory), ``ddp.npz`` and the
    driver's files."""
    base = tmp_path_factory.mktemp("distributed")
    _torchrun(EXAMPLE, "--out", str(base / "ddp"), "--save-weights", str(base / "ddp.npz"))
    driver = base / "driver.py"
    driver.write_text(DRIVER)
    _torchrun(driver, str(EXAMPLE), str(base), str(MODELS), str(BUDGET))
    return base


def _single_process(probe: bool, epochs: int = 3) -> tuple[nt.NetworkTrace, torch.nn.Module]:
    """The same training in one process: each step sums the gradients of every rank's batch
    and divides by the number of ranks (DDP's average); the tracer sees every batch."""
    ex = _example()
    x, y, xp, yp = ex.make_data()
    net = ex.make_model()
    model = nt.TraceableNN(
        net, example_input=x[:2], probe=(xp, yp) if probe else None, num_epochs=epochs
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(1, epochs + 1):
        model.start_epoch(epoch)
        ranks = [ex.rank_batches(x, y, epoch, r, WORLD_SIZE, 16) for r in range(WORLD_SIZE)]
        for step in zip(*ranks, strict=True):
            optimizer.zero_grad()
            for xb, yb in step:
                F.cross_entropy(model(xb), yb).backward()
            for parameter in model.parameters():
                parameter.grad /= WORLD_SIZE
            optimizer.step()
        model.end_epoch(epoch)
    return model.finish(), net


def _assert_same_trace(run: nt.NetworkTrace, single: nt.NetworkTrace) -> None:
    """Every metric of every recorded epoch, the probe tensors and the probe history."""
    assert run.epochs == single.epochs
    assert run.frame.index.equals(single.frame.index)
    assert list(run.frame.columns) == list(single.frame.columns)
    for column in run.frame.columns:
        np.testing.assert_allclose(
            run.frame[column].to_numpy(np.float64),
            single.frame[column].to_numpy(np.float64),
            rtol=1e-5,
            atol=1e-6,
            err_msg=column,
        )
    for epoch in run.epochs:
        ours, theirs = run.epoch_tensors(epoch), single.epoch_tensors(epoch)
        assert sorted(ours) == sorted(theirs)
        for name in theirs:
            np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6)
    columns = ["epoch", "probe_loss", "probe_acc", "recorded"]
    for column in columns:
        np.testing.assert_allclose(
            run.history[column].to_numpy(np.float64),
            single.history[column].to_numpy(np.float64),
            rtol=1e-5,
            atol=1e-7,
            err_msg=column,
        )


def _state(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in net.state_dict().items()}


def test_ddp_probe_trace_equals_the_single_process_trace(runs: Path) -> None:
    run = nt.load_trace(runs / "ddp")
    single, net = _single_process(probe=True)
    assert run.meta["distributed"] == {"world_size": 2, "rank": 0, "backend": "gloo"}
    assert run.meta["statistics_source"] == "probe" and run.meta["n_probe"] == 101
    assert not np.isnan(run.frame.loc[1, "grad_norm"].drop("input", level="layer")).any()
    assert run.probe_activations(3).shape == (101, run.frame.loc[3].shape[0])
    _assert_same_trace(run, single)
    final = dict(np.load(runs / "ddp.npz"))
    for key, value in _state(net).items():
        np.testing.assert_allclose(final[key], value, rtol=1e-6, atol=1e-7)


def test_tracing_does_not_change_the_ddp_weights(runs: Path) -> None:
    traced, untraced = np.load(runs / "ddp.npz"), np.load(runs / "untraced.npz")
    assert sorted(traced.files) == sorted(untraced.files) == sorted(_state(_example().make_model()))
    for key in traced.files:
        assert np.array_equal(traced[key], untraced[key]), key
    streamed = np.load(runs / "stream_weights.npz")
    for key in traced.files:
        assert np.array_equal(streamed[key], untraced[key]), key


def test_ddp_streaming_trace_equals_the_single_process_trace(runs: Path) -> None:
    run = nt.load_trace(runs / "stream")
    single, _ = _single_process(probe=False)
    assert run.meta["statistics_source"] == "training batches"
    assert not np.isnan(run.frame.loc[2, "act_std"]).any()
    _assert_same_trace(run, single)
    # rank 0's batches alone would give other statistics: the ranks' batches were merged
    ex = _example()
    x, y, _, _ = ex.make_data()
    mine = torch.cat([xb for xb, _ in ex.rank_batches(x, y, 1, 0, WORLD_SIZE, 16)])
    assert not np.allclose(run.frame.loc[(1, "input"), "act_mean"], mine.mean(0).numpy())


def test_uneven_shards_merge_like_numpy_over_all_rows(runs: Path) -> None:
    generator = torch.Generator().manual_seed(7)
    data = 1000.0 + torch.randn(101, 5, generator=generator, dtype=torch.float64).float()
    labels = torch.randint(0, 3, (101,), generator=generator)
    assert SHARDS == (37, 101 - 37)
    values = data.numpy().astype(np.float64)
    onehot = labels.numpy()[:, None] == np.arange(3)[None, :]
    for rank in range(WORLD_SIZE):
        merged = np.load(runs / f"merge_rank{rank}.npz")
        np.testing.assert_allclose(merged["act_mean"], values.mean(0), rtol=1e-12)
        np.testing.assert_allclose(merged["act_std"], values.std(0), rtol=1e-8)
        np.testing.assert_array_equal(merged["act_min"], values.min(0))
        np.testing.assert_array_equal(merged["act_max"], values.max(0))
        np.testing.assert_array_equal(merged["act_active"], (values > 0).mean(0))
        np.testing.assert_allclose(merged["class_sums"], onehot.T @ values, rtol=1e-12)
        np.testing.assert_array_equal(merged["class_counts"], onehot.sum(0))


def test_every_rank_has_the_merged_metrics_and_only_rank_0_writes(runs: Path) -> None:
    rank0, rank1 = np.load(runs / "rank0_metrics.npz"), np.load(runs / "rank1_metrics.npz")
    np.testing.assert_array_equal(rank0["metrics"], rank1["metrics"])
    assert list(rank0["tensors"]) == [3, 3] and list(rank1["tensors"]) == [0, 0]
    assert sorted(p.name for p in (runs / "ranks").iterdir()) == ["0"]
    assert nt.load_trace(runs / "ranks" / "0").epochs == [0, 1]


def test_fsdp2_trace_equals_the_unsharded_trace(runs: Path) -> None:
    error = runs / "fsdp_error.txt"
    if error.exists():
        text = error.read_text()
        if "ImportError" in text or "ModuleNotFoundError" in text:
            pytest.skip(f"FSDP2 (fully_shard) is not in this PyTorch: {text.splitlines()[-1]}")
        pytest.fail(text)
    run = nt.load_trace(runs / "fsdp")
    single, net = _single_process(probe=True, epochs=2)
    assert run.meta["model"]["class"] == "FSDPSequential"
    assert list(run.frame.columns) == list(single.frame.columns)
    _assert_same_trace(run, single)
    traced, untraced = np.load(runs / "fsdp_traced.npz"), np.load(runs / "fsdp_untraced.npz")
    for key in traced.files:
        assert np.array_equal(traced[key], untraced[key]), key
    for key, value in _state(net).items():
        np.testing.assert_allclose(traced[key], value, rtol=1e-5, atol=1e-6)
    assert json.loads((runs / "fsdp" / "manifest.json").read_text())["meta"]["distributed"]


def test_fsdp2_streaming_trace_equals_the_unsharded_trace(runs: Path) -> None:
    if (runs / "fsdp_error.txt").exists():
        pytest.skip("FSDP2 did not run (see test_fsdp2_trace_equals_the_unsharded_trace)")
    run = nt.load_trace(runs / "fsdp_stream")
    single, _ = _single_process(probe=False, epochs=2)
    assert not np.isnan(run.frame.loc[2, "grad_norm"].drop("input", level="layer")).any()
    _assert_same_trace(run, single)
    streamed, untraced = np.load(runs / "fsdp_streamed.npz"), np.load(runs / "fsdp_untraced.npz")
    for key in streamed.files:
        assert np.array_equal(streamed[key], untraced[key]), key


@pytest.mark.parametrize("name", ["conv", "regression"])
def test_conv_and_regression_probes_merge_like_one_process(runs: Path, name: str) -> None:
    spec = importlib.util.spec_from_file_location("distributed_models", MODELS)
    assert spec is not None and spec.loader is not None
    models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)
    model = nt.TraceableNN(models.MODELS[name](), probe=models.probes()[name])
    model.start_epoch(1)
    model.end_epoch(1, force=True)
    single, run = model.finish(), nt.load_trace(runs / name)
    _assert_same_trace(run, single)
    if name == "conv":  # statistics over every position, not the per-sample means
        assert run.frame.loc[(1, "0"), "act_std"].to_numpy().min() > 0
    else:
        assert np.isnan(run.history["probe_acc"]).all()


def test_a_probe_that_differs_between_ranks_is_refused_on_every_rank(runs: Path) -> None:
    for rank in range(WORLD_SIZE):
        assert "different probe sets" in (runs / f"refused_rank{rank}.txt").read_text()


def test_a_trace_budget_stops_every_rank_at_rank_0s_epoch(runs: Path) -> None:
    """Rank 0 measures the run directory it writes, so it would stop before rank 1 (which
    only counts): every rank takes rank 0's decision, or rank 1 would wait in a collective."""
    rank0 = json.loads((runs / "budget_rank0.json").read_text())
    rank1 = json.loads((runs / "budget_rank1.json").read_text())
    assert rank0["stopped"] is not None and 1 <= rank0["stopped"] <= 12
    assert rank1["stopped"] == rank0["stopped"]
    assert rank0["epochs"] == rank1["epochs"] == list(range(rank0["stopped"]))
    assert rank1["counted"] < BUDGET  # rank 1 alone would have gone on
    run = nt.load_trace(runs / "budget" / "0")
    assert run.epochs == rank0["epochs"]
    assert run.meta["budget"]["recording_stopped"]["epoch"] == rank0["stopped"]
    stored = run.epoch_tensors(run.epochs[-1])["activations"]
    assert stored.shape[0] == 10 and stored.dtype == np.float16
