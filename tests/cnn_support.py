"""A small convolutional network trained for real on the generated ``bars`` images, shared by
the unit and app tests of the convolutional views.

Its layers are named like the built-in CNN's (``conv_1``, ``conv_2``, ``output``); the trace is
made from Python with :class:`~nn_tracing.TraceableNN` (images of shape (N, 1, 16, 16), kept
weights at every recorded epoch), the way a user traces their own module.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nn_tracing import NetworkTrace, TraceableNN, TrainConfig
from nn_tracing.data import prepare_data
from nn_tracing.training import _dataset_meta

#: How the test CNN is trained: bars, 16 × 16, 600 images, 96 probe images, 3 epochs.
BARS_CONFIG = TrainConfig(
    dataset="bars", n_samples=600, probe_size=96, epochs=3, batch_size=32, lr=5e-3, seed=0
)


class SmallCNN(nn.Sequential):
    """``conv_1`` (1 → 6, 3 × 3, padding 1) → ReLU → max-pool 2 → ``conv_2`` (6 → 8, 3 × 3,
    padding 1) → ReLU → max-pool 2 → flatten → ``output`` (8 · 4 · 4 → 4)."""

    def __init__(self, size: int = 16, n_classes: int = 4) -> None:
        side = size // 4
        super().__init__(
            OrderedDict(
                conv_1=nn.Conv2d(1, 6, 3, padding=1),
                act_1=nn.ReLU(),
                pool_1=nn.MaxPool2d(2),
                conv_2=nn.Conv2d(6, 8, 3, padding=1),
                act_2=nn.ReLU(),
                pool_2=nn.MaxPool2d(2),
                flatten=nn.Flatten(),
                output=nn.Linear(8 * side * side, n_classes),
            )
        )


def train_bars_cnn(config: TrainConfig = BARS_CONFIG) -> NetworkTrace:
    """Train :class:`SmallCNN` on ``bars`` for ``config.epochs`` epochs (every epoch recorded,
    weights kept); the model is attached to the trace it returns."""
    data = prepare_data(config)
    images = lambda X: torch.from_numpy(X.reshape(-1, 1, 16, 16))  # noqa: E731
    x_train, y_train = images(data.X_train), torch.from_numpy(data.y_train)
    torch.manual_seed(config.seed)
    net = SmallCNN()
    meta = {"dataset": _dataset_meta(data), "config": {"dataset": "bars"}}
    model = TraceableNN(
        net,
        probe=(images(data.X_probe), torch.from_numpy(data.y_probe)),
        keep_weights=True,
        num_epochs=config.epochs,
        meta=meta,
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(1, config.epochs + 1):
        model.start_epoch(epoch)
        order = torch.randperm(len(y_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimiser.zero_grad()
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        model.end_epoch(epoch, train_loss=total / len(order))
    trace = model.finish()
    from nn_tracing import attach_model

    return attach_model(trace, SmallCNN())


def probe_accuracy(trace: NetworkTrace) -> float:
    """The final recorded epoch's accuracy on the probe."""
    assert trace.probe is not None
    epoch = trace.epochs[-1]
    logits = trace.logits(epoch)
    if logits is None:
        raise AssertionError("the trace has no probe logits")
    return float((np.argmax(logits, 1) == np.asarray(trace.probe[1])).mean())
