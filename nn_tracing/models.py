"""Model builders with seed-style layer names.

The built-in MLP is an :class:`torch.nn.Sequential` whose children are named ``hidden_1``,
``act_1``, (``dropout_1``), ..., ``output``, so its traced layers are ``hidden_1 … hidden_k``
and ``output`` and its ``state_dict`` keys read ``hidden_1.weight`` and so on.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .config import ACTIVATIONS, TrainConfig

if TYPE_CHECKING:
    from .trace import NetworkTrace

__all__ = ["ACTIVATION_MODULES", "MLP", "attach_model", "build_model", "model_from_trace"]

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


def model_from_trace(trace: NetworkTrace, epoch: int | None = None) -> nn.Module:
    """The traced model with its weights at ``epoch`` (default: the end of training), in eval mode.

    Works for traces of the built-in MLP (rebuilt from ``meta["config"]``) and for traces that
    a module was attached to with :func:`attach_model`. Weights exist for the final state
    always and for every recorded epoch when the run kept them (``keep_weights``).

    Raises
    ------
    ValueError
        With the reason: no weights at that epoch, or a custom model that was not attached.
    """
    import copy

    from .store import TraceFormatError

    final_epoch = trace.meta.get("final_weights_epoch")
    if epoch is None:
        if not trace.final_weights:
            raise ValueError("this trace holds no final weights")
        weights = trace.final_weights
    else:
        weights = trace.weights(epoch)
        if weights is None:
            kept = "kept only the final weights" + (
                f" (epoch {final_epoch})" if final_epoch is not None else ""
            )
            raise ValueError(
                f"this trace has no weights for epoch {epoch}: the run {kept}; train with "
                "keep_weights=True (--keep-weights) to rebuild the model at every recorded epoch"
            )
    template = getattr(trace, "attached_model", None)
    if template is not None:
        module = copy.deepcopy(template)
    else:
        model_meta = trace.meta.get("model") or {}
        config = trace.meta.get("config")
        dataset = trace.meta.get("dataset") or {}
        if not model_meta.get("builtin") or not isinstance(config, dict):
            raise ValueError(
                f"this trace comes from a custom model ({model_meta.get('class', 'unknown')}); "
                "rebuilding it needs the module: nt.attach_model(trace, module) with a module "
                "of the same architecture"
            )
        try:
            cfg = TrainConfig.from_dict(config)
            module = MLP(
                int(dataset["n_features"]),
                cfg.hidden_sizes,
                int(dataset["n_classes"]),
                cfg.activation,
                cfg.dropout,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TraceFormatError(f"the trace's config cannot rebuild its model: {exc}") from None
    state = {key: torch.from_numpy(np.array(value)) for key, value in weights.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights in the trace do not fit the model: {exc}") from None
    return module.eval()


def attach_model(trace: NetworkTrace, module: nn.Module) -> NetworkTrace:
    """Attach the architecture of a custom model to its trace, so it can be rebuilt.

    The module's ``state_dict`` must have the keys and shapes of the trace's final weights
    (its own values are replaced by the trace's whenever the model is rebuilt). Returns the
    trace.
    """
    expected = {k: tuple(v.shape) for k, v in trace.final_weights.items()}
    actual = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    if expected != actual:
        missing = sorted(set(expected) - set(actual))[:5]
        extra = sorted(set(actual) - set(expected))[:5]
        differ = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])[:5]
        raise ValueError(
            "the module does not match the trace's weights"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
            + (f"; other shapes for {differ}" if differ else "")
        )
    trace.attached_model = module  # type: ignore[attr-defined]
    return trace
