"""The built-in small CNN (``TrainConfig(model="cnn")``), for image datasets.

``(Conv2d → activation [→ dropout]) × k → adaptive average pool → flatten → Linear``, an
:class:`torch.nn.Sequential` whose children are named ``conv_1``, ``act_1``, …, ``pool``,
``flatten``, ``output``: its traced layers are ``conv_1 … conv_k`` (one neuron per channel,
statistics pooled over positions) and ``output``, so signatures read ``E_3/L_conv_1/n_12``.
The convolutions pad to keep the image size (odd kernels); the pool brings every image to a
``pool × pool`` grid, so the output layer's width does not depend on the image size.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from .model_entry import cnn_options

__all__ = ["CNN", "cnn_layer_sizes", "cnn_state_shapes"]


class CNN(nn.Sequential):
    """A small convolutional network.

    Parameters
    ----------
    input_shape
        ``(channels, height, width)`` of one image.
    n_classes
        Number of logits.
    channels
        Output channels of each convolution (``conv_1 … conv_k``).
    kernel_size
        Odd kernel size of every convolution (padding keeps the image size).
    pool
        Side of the grid the last convolution's maps are averaged to.
    activation, dropout
        The non-linearity after every convolution (a module of
        :data:`nn_tracing.models.ACTIVATION_MODULES`) and the dropout after it (0: none).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        n_classes: int,
        channels: Sequence[int] = (8, 16),
        kernel_size: int = 3,
        pool: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        from .models import ACTIVATION_MODULES

        if len(input_shape) != 3:
            raise ValueError(
                f"the built-in CNN needs images (channels, height, width), not inputs of shape "
                f"{tuple(input_shape)}"
            )
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width = int(input_shape[0])
        for i, out in enumerate(channels, start=1):
            layers[f"conv_{i}"] = nn.Conv2d(width, out, kernel_size, padding=kernel_size // 2)
            layers[f"act_{i}"] = ACTIVATION_MODULES[activation]()
            if dropout > 0:
                layers[f"dropout_{i}"] = nn.Dropout(dropout)
            width = out
        layers["pool"] = nn.AdaptiveAvgPool2d(pool)
        layers["flatten"] = nn.Flatten()
        layers["output"] = nn.Linear(width * pool * pool, n_classes)
        super().__init__(layers)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.n_classes = n_classes
        self.channels = tuple(channels)
        self.kernel_size = kernel_size
        self.pool_size = pool
        self.activation = activation
        self.dropout = dropout


def cnn_state_shapes(
    input_shape: Sequence[int], n_classes: int, kwargs: Mapping[str, Any] | None
) -> dict[str, tuple[int, ...]]:
    """The ``state_dict`` shapes of the CNN ``kwargs`` describes (computed, not built)."""
    options = cnn_options(kwargs)
    k = options["kernel_size"]
    shapes: dict[str, tuple[int, ...]] = {}
    width = int(input_shape[0])
    for i, out in enumerate(options["channels"], start=1):
        shapes[f"conv_{i}.weight"] = (out, width, k, k)
        shapes[f"conv_{i}.bias"] = (out,)
        width = out
    shapes["output.weight"] = (n_classes, width * options["pool"] ** 2)
    shapes["output.bias"] = (n_classes,)
    return shapes


def cnn_layer_sizes(
    input_shape: Sequence[int], n_classes: int, kwargs: Mapping[str, Any] | None
) -> list[tuple[int, int, int]]:
    """``(neurons, values per sample, parameters)`` of every traced layer (the convolutions,
    then ``output``), for estimates: a convolution's values are channels × height × width."""
    shapes = cnn_state_shapes(input_shape, n_classes, kwargs)
    positions = int(input_shape[1]) * int(input_shape[2])
    sizes = []
    for name in [key[: -len(".weight")] for key in shapes if key.endswith(".weight")]:
        weight, bias = shapes[f"{name}.weight"], shapes[f"{name}.bias"]
        values = weight[0] * (positions if name != "output" else 1)
        sizes.append((weight[0], values, math.prod(weight) + math.prod(bias)))
    return sizes
