"""Model builders with seed-style layer names.

The built-in MLP is an :class:`torch.nn.Sequential` whose children are named ``hidden_1``,
``act_1``, (``dropout_1``), ..., ``output``, so its traced layers are ``hidden_1 … hidden_k``
and ``output`` and its ``state_dict`` keys read ``hidden_1.weight`` and so on.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .config import ACTIVATIONS, TrainConfig

if TYPE_CHECKING:
    from .trace import NetworkTrace

__all__ = [
    "ACTIVATION_MODULES",
    "MAX_BUILD_PARAMETERS",
    "MLP",
    "attach_model",
    "build_model",
    "check_buildable",
    "model_from_trace",
]

#: The most parameters a model rebuilt from a trace may have (about 1 GiB of float32 weights):
#: :func:`check_buildable` refuses larger ones before anything is allocated.
MAX_BUILD_PARAMETERS = 2**28

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


def check_buildable(trace: NetworkTrace, weights: Mapping[str, np.ndarray] | None = None) -> int:
    """Check, before anything is allocated, that the built-in MLP ``trace``'s config describes
    is the model of its stored weights and small enough to build; return its parameter count.

    Every builder of a trace's model calls it first — :func:`model_from_trace` (and through it
    :meth:`nn_tracing.analysis.neuron_model.NeuronModel.from_trace`) and
    :func:`nn_tracing.analysis.baselines.fresh_initialisation`: a config is untrusted input,
    and one that claims 16 layers of 8192 would otherwise allocate a billion parameters before
    the stored weights were compared.

    Parameters
    ----------
    trace
        A trace of the built-in MLP (``meta["model"]["builtin"]``).
    weights
        The stored ``state_dict`` to compare with (default: the final weights).

    Raises
    ------
    TraceFormatError
        The config names no architecture, or one whose parameter shapes differ from the
        stored weights' (counts computed from the config, not from a built model).
    ValueError
        No stored weights, or more than :data:`MAX_BUILD_PARAMETERS` parameters.
    """
    from .store import TraceFormatError
    from .store_shapes import describe_sizes, mlp_architecture, mlp_state_shapes

    architecture = mlp_architecture(trace.meta)
    if architecture is None:
        raise TraceFormatError(
            "the trace's config cannot rebuild its model: its meta names no built-in MLP with "
            "config.hidden_sizes, dataset.n_features and dataset.n_classes"
        )
    expected = mlp_state_shapes(*architecture)
    n_expected = sum(math.prod(shape) for shape in expected.values())
    stored = trace.final_weights if weights is None else weights
    if not stored:
        raise ValueError("this trace holds no weights to rebuild its model from")
    shapes = {key: tuple(np.shape(value)) for key, value in stored.items()}
    if shapes != expected:
        n_stored = sum(math.prod(shape) for shape in shapes.values())
        differ = [k for k in expected if shapes.get(k) != expected[k]] or sorted(shapes)[:1]
        key = differ[0]
        n_features, hidden, n_classes = architecture
        raise TraceFormatError(
            f"the trace's config describes an MLP "
            f"{describe_sizes([n_features, *hidden, n_classes])} of {n_expected:,} parameters, "
            f"but its stored weights hold {n_stored:,} ({key}: "
            f"{expected.get(key, 'absent')} in the config, {shapes.get(key, 'absent')} stored)"
        )
    if n_expected > MAX_BUILD_PARAMETERS:
        raise ValueError(
            f"the trace's model has {n_expected:,} parameters, over the limit of "
            f"{MAX_BUILD_PARAMETERS:,} that nn_tracing rebuilds "
            "(nn_tracing.models.MAX_BUILD_PARAMETERS)"
        )
    return n_expected


def model_from_trace(trace: NetworkTrace, epoch: int | None = None) -> nn.Module:
    """The traced model with its weights at ``epoch`` (default: the end of training), in eval mode.

    Works for traces of the built-in MLP (rebuilt from ``meta["config"]``) and for traces that
    a module was attached to with :func:`attach_model`. Weights exist for the final state
    always and for every recorded epoch when the run kept them (``keep_weights``).

    Raises
    ------
    ValueError
        With the reason: no weights at that epoch, a custom model that was not attached, or
        a model too large to rebuild.
    TraceFormatError
        The config does not describe the stored weights (checked before building, by
        :func:`check_buildable`).
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
        check_buildable(trace, weights)
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
