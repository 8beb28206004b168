"""Trace a DistributedDataParallel run: every rank measures its share, rank 0 writes the run.

Runs offline on CPU (the ``gloo`` backend), two processes::

    torchrun --nproc_per_node 2 examples/ddp_train.py --out runs/ddp-demo

then ``make run`` (the app) lists ``runs/ddp-demo`` and ``nn-tracing info runs/ddp-demo`` sums
it up. Every rank wraps the same DDP model in :class:`nn_tracing.TraceableNN` with the same
probe set; each measures its shard of the probe at every recorded epoch, the ranks merge the
statistics (``all_reduce``), and rank 0 writes the run directory. ``--no-probe`` streams the
statistics over every rank's training batches instead.

The functions here are also the test's reference (tests/unit/test_distributed.py), so that this
example keeps working.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import nn_tracing as nt

N_FEATURES, N_CLASSES = 8, 3


def make_data(seed: int = 0, n_train: int = 384, n_probe: int = 101) -> tuple[torch.Tensor, ...]:
    """Three Gaussian blobs in 8 dimensions: ``x_train, y_train, x_probe, y_probe``."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(N_CLASSES, N_FEATURES, generator=generator) * 2
    y = torch.randint(0, N_CLASSES, (n_train + n_probe,), generator=generator)
    x = centres[y] + torch.randn(n_train + n_probe, N_FEATURES, generator=generator)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def make_model(seed: int = 0) -> nn.Module:
    """A small MLP, the same initial weights on every rank."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(N_FEATURES, 16),
        nn.ReLU(),
        nn.Linear(16, 16),
        nn.Tanh(),
        nn.Linear(16, N_CLASSES),
    )


def rank_batches(
    x: torch.Tensor, y: torch.Tensor, epoch: int, rank: int, world_size: int, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's batches of ``epoch``: a shuffle shared by every rank (seeded by the epoch,
    like ``DistributedSampler.set_epoch``), every ``world_size``-th sample from ``rank`` on."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1000 + epoch))
    mine = order[rank::world_size]
    return [
        (x[mine[i : i + batch_size]], y[mine[i : i + batch_size]])
        for i in range(0, len(mine), batch_size)
    ]


def train(
    out: str | None,
    *,
    epochs: int = 3,
    batch_size: int = 16,
    lr: float = 0.1,
    probe: bool = True,
    trace: bool = True,
) -> nn.Module:
    """Train the MLP with DDP on every rank of the default process group; return it.

    With ``trace``, the DDP model is wrapped in :class:`~nn_tracing.TraceableNN` (on every
    rank, with the same arguments); rank 0 writes the run directory ``out``.
    """
    rank, world_size = dist.get_rank(), dist.get_world_size()
    x, y, x_probe, y_probe = make_data()
    net = make_model()
    ddp = DistributedDataParallel(net)
    model: nn.Module = ddp
    if trace:
        model = nt.TraceableNN(
            ddp,
            example_input=x[:2],
            probe=(x_probe, y_probe) if probe else None,
            num_epochs=epochs,
            log_dir=out,
            meta={"example": "examples/ddp_train.py"},
        )
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for epoch in range(1, epochs + 1):
        if trace:
            model.start_epoch(epoch)
        losses = []
        for xb, yb in rank_batches(x, y, epoch, rank, world_size, batch_size):
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if trace:
            model.end_epoch(epoch, train_loss=float(np.mean(losses)))
    if trace:
        model.finish()
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/ddp-demo", help="run directory (rank 0 writes)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-probe", action="store_true", help="stream over training batches")
    parser.add_argument("--no-trace", action="store_true", help="train without TraceableNN")
    parser.add_argument("--save-weights", help="rank 0 saves the final weights here (.npz)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    dist.init_process_group("gloo")
    try:
        net = train(
            None if args.no_trace else args.out,
            epochs=args.epochs,
            probe=not args.no_probe,
            trace=not args.no_trace,
        )
        if args.save_weights and dist.get_rank() == 0:
            state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
            np.savez(args.save_weights, **state)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
