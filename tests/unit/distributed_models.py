"""Models and probes that tests/unit/test_distributed.py traces on two ranks and in one process:
a convolution (statistics over positions, a conv input) and a regression (float targets)."""

from __future__ import annotations

import torch
from torch import nn


def conv_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)
    )


def regression_model() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(8, 6), nn.GELU(), nn.Linear(6, 2))


def probes() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{name: (x, y)}`` with 23 samples each (12 and 11 per rank)."""
    generator = torch.Generator().manual_seed(3)
    x_conv = torch.randn(23, 2, 5, 5, generator=generator)
    y_conv = torch.randint(0, 3, (23,), generator=generator)
    x_reg = torch.randn(23, 8, generator=generator)
    y_reg = torch.randn(23, 2, generator=generator)
    return {"conv": (x_conv, y_conv), "regression": (x_reg, y_reg)}


MODELS = {"conv": conv_model, "regression": regression_model}
