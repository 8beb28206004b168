"""Structured pruning of convolution channels: a smaller network without them, tested against
ablation and against pruning random channels.

:func:`prune_channels` builds a copy of the model in which the chosen channels of its ``Conv2d``
layers are really gone — each pruned convolution is a new ``nn.Conv2d`` with fewer output
channels, and the layer that reads it a new one with fewer inputs: a ``Conv2d`` with fewer input
channels, or a ``Linear`` with the channel's columns removed (after ``Flatten``, the ``h × w``
columns of each removed channel; after global pooling, one column). A ``BatchNorm2d`` between the
convolution and the channel's activation loses the same channels; after the activation only
modules that keep a zero channel zero may run (activations with f(0) = 0, pooling, dropout,
flatten), so the pruned model computes exactly what the model with those channels ablated to
zero computes (tested).

:func:`channel_pruning` removes the ``k`` least important channels of one layer and measures
accuracy and parameters, against ``k`` random channels. Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...progress import Progress, no_progress
from ...tracer import logits_of
from ..channels import leaf_calls
from ..neuron_model import NeuronModel
from .ablation import _as_tensor, _reduce_sets, batched_logits, layer_importance
from .pruning import count_parameters

__all__ = ["ChannelPruningResult", "channel_pruning", "prune_channels"]

#: Modules that may run between a pruned channel's activation and the layer that reads it:
#: each maps a zero channel to a zero channel (or, for Flatten, to zero columns).
_ZERO_PRESERVING = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Tanh,
    nn.Softsign,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.Flatten,
)


@dataclass(frozen=True)
class _Reader:
    """Who reads a conv layer's channels: the ``module`` (a Conv2d or Linear) with ``columns``
    inputs per channel, and the BatchNorm2d layers between the convolution and the channel's
    activation (sliced with it)."""

    module: str
    columns: int
    norms: tuple[str, ...]


def _reader(calls: list[tuple[str, nn.Module, Any]], conv: str, site: str) -> _Reader:
    """The :class:`_Reader` of ``conv``'s channels, whose activation comes out of ``site``."""
    names = [name for name, _, _ in calls]
    if names.count(conv) != 1:
        raise ValueError(f"channel pruning needs {conv!r} to run once per forward pass")
    start = names.index(conv)
    n_channels = calls[start][2].shape[1]
    previous = calls[start][2]  # the input of the module being looked at, in a chain
    norms: list[str] = []
    before_site = site != conv
    for name, module, output in calls[start + 1 :]:
        if isinstance(module, nn.Conv2d):
            if module.in_channels != n_channels or module.groups != 1:
                break
            return _Reader(name, 1, tuple(norms))
        if isinstance(module, nn.Linear):
            width = previous.shape[-1] if previous.dim() == 2 else -1
            if width != module.in_features or width % n_channels:
                break
            return _Reader(name, width // n_channels, tuple(norms))
        if before_site and isinstance(module, nn.BatchNorm2d):
            norms.append(name)
        elif not isinstance(module, _ZERO_PRESERVING):
            raise ValueError(
                f"channel pruning needs the layer after {conv!r} to read its channels directly "
                f"(through BatchNorm before the activation, then activations, pooling, dropout "
                f"or flatten); {name!r} is a {type(module).__name__}"
            )
        before_site = before_site and name != site
        previous = output
    raise ValueError(f"no Conv2d or Linear layer reads the {n_channels} channels of {conv!r}")


def _new_norm(old: nn.BatchNorm2d, keep: torch.Tensor) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(
        int(keep.numel()),
        eps=old.eps,
        momentum=old.momentum,
        affine=old.affine,
        track_running_stats=old.track_running_stats,
    )
    state = {
        key: value[keep.to(value.device)] if value.dim() == 1 else value
        for key, value in old.state_dict().items()
    }
    new.load_state_dict(state)
    device = next((value.device for value in state.values()), torch.device("cpu"))
    return new.to(device).eval()


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def _new_conv(old: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    new = nn.Conv2d(
        weight.shape[1],
        weight.shape[0],
        old.kernel_size,  # type: ignore[arg-type]
        stride=old.stride,  # type: ignore[arg-type]
        padding=old.padding,  # type: ignore[arg-type]
        dilation=old.dilation,  # type: ignore[arg-type]
        bias=bias is not None,
        padding_mode=old.padding_mode,
    ).to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def _new_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    new = new.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def prune_channels(
    model: NeuronModel, remove: Sequence[int], x: torch.Tensor | np.ndarray
) -> nn.Module:
    """A copy of the model without the channels ``remove`` (global ids of conv2d channels).

    ``x`` (a batch of inputs, one sample is enough) is run once to find which module reads each
    pruned layer. Raises :class:`ValueError` for ids that are not conv2d channels, a layer that
    would lose every channel, or a model whose pruned layer is not read directly by a Conv2d or
    Linear layer.
    """
    x = _as_tensor(x, model)
    by_layer: dict[str, list[int]] = {}
    for neuron in sorted({int(n) for n in remove}):
        info = model.layer_of(neuron)
        if info.kind != "conv2d":
            raise ValueError(f"n_{neuron} is a neuron of L_{info.name}, not a conv2d channel")
        by_layer.setdefault(info.name, []).append(neuron - info.first_id)
    calls = leaf_calls(model, x)
    module = model.plain_copy()
    for layer, dropped in by_layer.items():
        info = model.layer(layer)
        keep = torch.tensor([c for c in range(info.n_neurons) if c not in set(dropped)])
        if keep.numel() == 0:
            raise ValueError(f"pruning would remove every channel of L_{layer}")
        site = model._sites[model.layers.index(info) - 1].module
        reader = _reader(calls, info.module, site)
        consumer, columns = reader.module, reader.columns
        for norm in reader.norms:
            _set_module(module, norm, _new_norm(module.get_submodule(norm), keep))
        conv: nn.Conv2d = module.get_submodule(info.module)  # type: ignore[assignment]
        bias = conv.bias.detach()[keep] if conv.bias is not None else None
        _set_module(module, info.module, _new_conv(conv, conv.weight.detach()[keep], bias))
        target = module.get_submodule(consumer)
        weight = target.weight.detach()
        target_bias = target.bias.detach() if target.bias is not None else None
        if isinstance(target, nn.Conv2d):
            _set_module(module, consumer, _new_conv(target, weight[:, keep], target_bias))
        else:
            kept_columns = (keep[:, None] * columns + torch.arange(columns)[None, :]).reshape(-1)
            _set_module(module, consumer, _new_linear(weight[:, kept_columns], target_bias))
    return module.eval()


@dataclass(frozen=True)
class ChannelPruningResult:
    """What removing channels of one conv layer did on the probe set.

    Attributes
    ----------
    layer : the pruned layer
    removed : global ids of the removed channels (least important first)
    importance : array of shape (n_channels,), mean |attribution| of each channel
    accuracy_before, accuracy_after : probe accuracy of the model and of the pruned model
    ablated_accuracy : probe accuracy with the removed channels ablated to zero
    random_accuracy : array of shape (n_repeats,), accuracy with as many random channels ablated
    parameters_before, parameters_after : exact parameter counts
    max_output_difference : largest |logit difference| between the pruned and the ablated
        model on the probe (float rounding when the pruning is right)
    pruned : the pruned ``nn.Module``
    """

    layer: str
    removed: tuple[int, ...]
    importance: np.ndarray
    accuracy_before: float
    accuracy_after: float
    ablated_accuracy: float
    random_accuracy: np.ndarray
    parameters_before: int
    parameters_after: int
    max_output_difference: float
    pruned: nn.Module


def channel_pruning(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    layer: str,
    k: int,
    *,
    method: str = "grad_x_act",
    n_repeats: int = 20,
    random_state: int | None = 0,
    progress: Progress | None = None,
) -> ChannelPruningResult:
    """Remove the ``k`` least important channels of ``layer`` (mean |attribution| to each
    sample's class, by ``method``) and compare with removing ``k`` random channels."""
    report = progress or no_progress
    info = model.layer(layer)
    if info.kind != "conv2d":
        raise ValueError(f"L_{layer} is a {info.kind} layer; choose a conv2d layer")
    if not 1 <= k < info.n_neurons:
        raise ValueError(f"k={k}: remove 1 … {info.n_neurons - 1} of L_{layer}'s channels")
    x = _as_tensor(x, model)
    y_t = torch.as_tensor(y).long().to(model.device)
    report(0.0, f"importance of L_{layer}'s channels")
    importance = layer_importance(model, x, y_t, method=method, layers=[layer])
    block = importance[info.first_id : info.last_id + 1]
    order = np.argsort(np.where(np.isfinite(block), block, np.inf), kind="stable")
    removed = [int(info.first_id + j) for j in order[:k]]
    rng = np.random.default_rng(random_state)
    randoms = [
        [int(info.first_id + j) for j in rng.choice(info.n_neurons, size=k, replace=False)]
        for _ in range(n_repeats)
    ]
    accuracy, _ = _reduce_sets(
        model, x, y_t, [[], removed, *randoms], None, 32768, report, "channel pruning"
    )
    report(0.9, "building the pruned model")
    pruned = prune_channels(model, removed, x)
    with torch.no_grad():
        pruned_logits = logits_of(pruned(x))
    ablated = batched_logits(model, x, [removed])[0]
    scores = model.score(pruned_logits).cpu().numpy()
    report(1.0, "channel pruning: done")
    return ChannelPruningResult(
        layer=info.name,
        removed=tuple(removed),
        importance=block.copy(),
        accuracy_before=float(accuracy[0]),
        accuracy_after=float((pruned_logits.argmax(1) == y_t).double().mean()),
        ablated_accuracy=float(accuracy[1]),
        random_accuracy=accuracy[2:].copy(),
        parameters_before=count_parameters(model.model),
        parameters_after=count_parameters(pruned),
        max_output_difference=float(np.abs(scores - ablated).max()),
        pruned=pruned,
    )
