"""Entry-point models for the tests of "your own model" (tests/unit/test_model_entry.py,
tests/app/test_custom_model_app.py): imported by name, as ``custom_models:make_net``, with
tests/unit on ``sys.path`` (or ``PYTHONPATH``)."""

from __future__ import annotations

import math

from torch import nn


class TwoLayerNet(nn.Module):
    """Not an ``nn.Sequential``: flatten, ``body`` (Linear, tanh), ``head`` (Linear)."""

    def __init__(self, n_inputs: int, width: int, n_classes: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.body = nn.Linear(n_inputs, width)
        self.act = nn.Tanh()
        self.head = nn.Linear(width, n_classes)

    def forward(self, x):
        return self.head(self.act(self.body(self.flatten(x))))


def make_net(*, input_shape, n_classes, width=12):
    """The factory convention: keywords ``input_shape`` and ``n_classes``, then the user's."""
    return TwoLayerNet(math.prod(input_shape), width, n_classes)


def make_conv(*, input_shape, n_classes, channels=4):
    """A small convolutional net for image inputs ``(channels, height, width)``."""
    return nn.Sequential(
        nn.Conv2d(input_shape[0], channels, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, n_classes),
    )


def not_a_module(*, input_shape, n_classes):
    return "a string"
