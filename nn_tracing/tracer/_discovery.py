"""Layer discovery: which layers of a model are traced, where their neurons are read, their ids.

A dry run on an example batch (inference mode, RNG and BatchNorm statistics untouched) records
every module call. The traceable layers — ``Linear``, ``Conv1d`` and ``Conv2d`` — are taken in
the order they run, each with the activation module that consumes its output, possibly through
normalisation or dropout modules; the neuron's activation is that module's output, else the
layer's own. Neurons then get global ids ``n_0 … n_m``, input features first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..trace import LayerInfo
from ._hooks import ForwardHook, hooks, preserved_state
from ._stats import as_positions

__all__ = [
    "ACTIVATION_TYPES",
    "PASSTHROUGH_TYPES",
    "TRACEABLE_TYPES",
    "Layout",
    "TracedLayer",
    "by_source_module",
    "discover",
    "discover_layers",
    "first_tensor",
    "logits_of",
    "module_device",
    "replace_info",
    "traceable_kind",
]

TRACEABLE_TYPES: dict[type[nn.Module], str] = {
    nn.Linear: "linear",
    nn.Conv1d: "conv1d",
    nn.Conv2d: "conv2d",
}
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Softsign,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Tanhshrink,
    nn.LogSigmoid,
)
# modules that may sit between a layer and its activation (element-wise or per-channel)
PASSTHROUGH_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Identity,
)


@dataclass
class TracedLayer:
    """Where a traced layer's neurons live in the module and how to read them."""

    info: LayerInfo
    source_module: str  # qualified name of the module whose output is the activation
    source_call: int  # which call of that module within one forward
    feature_dim: int  # 1 for convolutions, -1 for Linear
    weight: nn.Parameter | None = None
    bias: nn.Parameter | None = None


@dataclass
class Layout:
    """Everything discovery found: the traced layers, numbered, and how to read the input.

    Attributes
    ----------
    layers
        The traced layers in call order, their ``info.first_id`` set.
    input_info
        The ``input`` layer: one neuron per input feature, ids ``0 … n_inputs - 1``.
    input_dim
        The input's feature dimension (1: channels of a convolution's input, -1: last).
    n_neurons
        Inputs and every traced layer's neurons together.
    """

    layers: list[TracedLayer]
    input_info: LayerInfo
    input_dim: int
    n_neurons: int

    @property
    def infos(self) -> list[LayerInfo]:
        """``input`` first, then every traced layer, in id order."""
        return [self.input_info] + [layer.info for layer in self.layers]

    def input_positions(self, x: torch.Tensor) -> torch.Tensor:
        """An input batch as (B, P, N): samples, positions, input features."""
        return as_positions(x, self.input_dim if x.dim() > 2 else -1)


def by_source_module(
    layers: Sequence[TracedLayer],
) -> dict[str, list[tuple[int, TracedLayer]]]:
    """The traced layers grouped by the module whose output they read, with their indices.

    A hook on each of these modules serves every layer that reads it (a shared activation
    module), in first-use order.
    """
    grouped: dict[str, list[tuple[int, TracedLayer]]] = defaultdict(list)
    for index, layer in enumerate(layers):
        grouped[layer.source_module].append((index, layer))
    return grouped


def first_tensor(args: Sequence[Any]) -> torch.Tensor | None:
    """The first tensor among positional arguments, or ``None``."""
    for arg in args:
        if isinstance(arg, torch.Tensor):
            return arg
    return None


def logits_of(output: Any) -> torch.Tensor:
    """The logits in a model's output: the tensor itself, a tuple's first item or ``logits``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, Mapping) and "logits" in output:
        return output["logits"]
    raise TypeError(
        f"the model returned {type(output).__name__}; TraceableNN needs a tensor of logits "
        "(or a tuple whose first element is one)"
    )


def module_device(module: nn.Module) -> torch.device:
    """The device of the module's first parameter (else buffer); CPU if it has neither."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def replace_info(info: LayerInfo, **changes: Any) -> LayerInfo:
    """A copy of ``info`` with ``changes`` (field name: value) applied."""
    data = info.to_dict()
    data.update(changes)
    return LayerInfo.from_dict(data)


def _record_calls(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[tuple[str, nn.Module, int, tuple[Any, ...], Any]]:
    """Run ``module`` once in inference mode: every submodule call, in order.

    Each call is ``(qualified name, module, which call of it, inputs, output)``.
    """
    calls: list[tuple[str, nn.Module, int, tuple[Any, ...], Any]] = []
    counters: dict[str, int] = defaultdict(int)

    def make_hook(name: str) -> ForwardHook:
        def hook(mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            calls.append((name, mod, counters[name], inputs, output))
            counters[name] += 1

        return hook

    forward = [(sub, make_hook(name)) for name, sub in module.named_modules()]
    with hooks(forward), preserved_state(module, module_device(module)), torch.no_grad():
        module(*args, **kwargs)
    return calls


def _traced_layer(
    name: str, mod: nn.Module, kind: str, layer_names: Mapping[str, str] | None
) -> TracedLayer:
    """The :class:`TracedLayer` of a traceable module (ids not yet assigned)."""
    conv = kind.startswith("conv")
    n_neurons = mod.out_channels if conv else mod.out_features  # type: ignore[union-attr]
    prefix = f"{name}." if name else ""
    label = name or type(mod).__name__.lower()
    if layer_names and name in layer_names:
        label = layer_names[name]
    weight = getattr(mod, "weight", None)
    bias = getattr(mod, "bias", None)
    info = LayerInfo(
        name=label,
        kind=kind,
        n_neurons=int(n_neurons),
        first_id=0,
        activation=None,
        module=name,
        weight_key=prefix + "weight" if weight is not None else None,
        bias_key=prefix + "bias" if bias is not None else None,
        fan_in=int(weight[0].numel()) if weight is not None else 0,
    )
    return TracedLayer(info, name, 0, 1 if conv else -1, weight, bias)


def traceable_kind(mod: nn.Module) -> str | None:
    """The module's :data:`TRACEABLE_TYPES` kind, ``None`` if it is not traced.

    The type must match exactly (a subclass may compute something else), except the class that
    FSDP2's ``fully_shard`` swaps in, ``FSDP<Linear>``, which is read as its original class.
    """
    kind = TRACEABLE_TYPES.get(type(mod))
    if kind is None and type(mod).__name__.startswith("FSDP"):
        for base in type(mod).__bases__:
            kind = kind or TRACEABLE_TYPES.get(base)
    return kind


def discover_layers(
    module: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    layer_names: Mapping[str, str] | None,
) -> tuple[list[TracedLayer], int, int]:
    """Dry run: the traced layers in call order, the input width and its feature dim."""
    layers: list[TracedLayer] = []
    tails: dict[int, int] = {}  # id(tensor) -> index into layers
    for name, mod, call, inputs, output in _record_calls(module, args, kwargs):
        kind = traceable_kind(mod)
        if kind is not None and call == 0 and isinstance(output, torch.Tensor):
            tails[id(output)] = len(layers)
            layers.append(_traced_layer(name, mod, kind, layer_names))
            continue
        first = first_tensor(inputs)
        if first is None or id(first) not in tails or not isinstance(output, torch.Tensor):
            continue
        if isinstance(mod, ACTIVATION_TYPES):
            index = tails.pop(id(first))
            layer = layers[index]
            layer.source_module, layer.source_call = name, call
            layer.info = replace_info(layer.info, activation=type(mod).__name__)
        elif isinstance(mod, PASSTHROUGH_TYPES):
            tails[id(output)] = tails.pop(id(first))

    x = first_tensor(args)
    if x is None:
        raise TypeError("example_input must be a tensor (or a tuple whose first item is one)")
    first_conv = bool(layers) and layers[0].feature_dim == 1
    input_dim = 1 if x.dim() == 2 or (x.dim() > 2 and first_conv) else -1
    n_inputs = int(x.shape[input_dim]) if x.dim() > 1 else int(x.shape[0])
    return layers, n_inputs, input_dim


def discover(
    module: nn.Module, args: tuple[Any, ...], layer_names: Mapping[str, str] | None
) -> Layout:
    """Discover the traced layers of ``module`` on ``args`` and give every neuron its id.

    Raises
    ------
    ValueError
        If no traceable layer runs on ``args``, or layer names repeat or include ``input``.
    """
    layers, n_inputs, input_dim = discover_layers(module, args, {}, layer_names)
    if not layers:
        raise ValueError(
            f"{type(module).__name__} has no traceable layer (Linear, Conv1d, Conv2d) "
            "that runs on example_input"
        )
    names = [layer.info.name for layer in layers]
    duplicated = sorted({n for n in names if names.count(n) > 1} | ({"input"} & set(names)))
    if duplicated:
        raise ValueError(f"layer names must be unique and not 'input': {duplicated}")
    first = n_inputs
    for layer in layers:
        layer.info = replace_info(layer.info, first_id=first)
        first += layer.info.n_neurons
    return Layout(layers, LayerInfo("input", "input", n_inputs, 0), input_dim, first)
