"""Model builders with seed-style layer names.

The built-in MLP is an :class:`torch.nn.Sequential` whose children are named ``hidden_1``,
``act_1``, (``dropout_1``), ..., ``output``, so its traced layers are ``hidden_1 … hidden_k``
and ``output`` and its ``state_dict`` keys read ``hidden_1.weight`` and so on.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from .config import ACTIVATIONS, TrainConfig

__all__ = ["ACTIVATION_MODULES", "MLP", "build_model"]

ACTIVATION_MODULES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


class MLP(nn.Sequential):
    """A multi-layer perceptron: ``(Linear → activation [→ dropout]) × k → Linear``.

    Parameters
    ----------
    n_inputs, hidden_sizes, n_outputs
        Input width, hidden widths, number of classes (logits).
    activation
        One of ``relu tanh gelu sigmoid leaky_relu``.
    dropout
        Dropout probability after each hidden activation; 0 adds no dropout module.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden_sizes: Sequence[int],
        n_outputs: int,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        if activation not in ACTIVATION_MODULES:
            raise ValueError(f"activation={activation!r}: choose one of {', '.join(ACTIVATIONS)}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width = n_inputs
        for i, size in enumerate(hidden_sizes, start=1):
            layers[f"hidden_{i}"] = nn.Linear(width, size)
            layers[f"act_{i}"] = ACTIVATION_MODULES[activation]()
            if dropout > 0:
                layers[f"dropout_{i}"] = nn.Dropout(dropout)
            width = size
        layers["output"] = nn.Linear(width, n_outputs)
        super().__init__(layers)
        self.n_inputs = n_inputs
        self.hidden_sizes = tuple(hidden_sizes)
        self.n_outputs = n_outputs
        self.activation = activation
        self.dropout = dropout


def build_model(config: TrainConfig, n_inputs: int, n_outputs: int) -> MLP:
    """The MLP that ``config`` describes, initialised from ``config.seed``.

    The global torch RNG is seeded here and nowhere else during set-up, so the same config
    gives the same initial weights.
    """
    torch.manual_seed(config.seed)
    return MLP(n_inputs, config.hidden_sizes, n_outputs, config.activation, config.dropout)
