"""Structured pruning: remove the least important hidden neurons, against removing random ones.

:func:`prune_model` builds a smaller copy of a chain of Linear layers (:func:`prunable`) with
the given neurons taken out — new, narrower ``nn.Linear`` layers — and :class:`Pruning` removes
the ``k`` least important neurons of each hidden layer, compares with ``k`` random ones and
draws accuracy against ``k``. Writing the pruned model to files is :mod:`nn_tracing.export`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ...progress import Progress, no_progress
from ...trace import LayerInfo
from ...tracer import logits_of
from ..neuron_model import NeuronModel
from .ablation import (
    _as_tensor,
    _fill_values,
    _reduce_sets,
    batched_logits,
    layer_importance,
)
from .chain import prunable
from .curves import _grid

__all__ = ["Pruning", "count_parameters", "prune_model"]


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (every element of every parameter tensor)."""
    return int(sum(p.numel() for p in module.parameters()))


def prune_model(
    model: NeuronModel,
    remove: Sequence[int],
    *,
    fill: torch.Tensor | None = None,
) -> nn.Module:
    """A copy of the model with the neurons ``remove`` (global ids of hidden layers) taken out.

    Each pruned layer becomes a new ``nn.Linear`` with fewer outputs and the next layer one
    with fewer inputs. With ``fill`` (tensor of shape (n_neurons,), e.g. the mean activations)
    the removed neurons' constant contribution ``W[:, j] · fill[j]`` is folded into the next
    layer's bias, so the pruned model equals the mean-ablated one; without it, the zero-ablated
    one. Raises :class:`ValueError` when :func:`prunable` says why not.
    """
    reason = prunable(model)
    if reason is not None:
        raise ValueError(reason)
    removed = {int(n) for n in remove}
    hidden = model.layers[1:-1]
    allowed = {i for info in hidden for i in info.ids}
    outside = sorted(removed - allowed)
    if outside:
        raise ValueError(f"only hidden neurons can be pruned; n_{outside[0]} is not one")
    module = model.plain_copy()
    keep_prev: torch.Tensor | None = None  # kept input columns of the current layer
    new_sizes = []
    for index, info in enumerate(model.layers[1:], start=1):
        old: nn.Linear = getattr(module, info.module)
        weight = old.weight.detach()
        bias = old.bias.detach() if old.bias is not None else None
        if keep_prev is not None:
            previous = model.layers[index - 1]
            dropped = torch.tensor(
                [j for j in range(previous.n_neurons) if previous.first_id + j in removed],
                dtype=torch.long,
            )
            if fill is not None and dropped.numel():
                folded = weight[:, dropped] @ fill[previous.first_id + dropped].to(weight)
                bias = folded if bias is None else bias + folded
            weight = weight[:, keep_prev]
        if info is model.layers[-1]:
            keep_rows = torch.arange(info.n_neurons)
        else:
            keep_rows = torch.tensor(
                [j for j in range(info.n_neurons) if info.first_id + j not in removed],
                dtype=torch.long,
            )
            if keep_rows.numel() == 0:
                raise ValueError(f"pruning would remove every neuron of {info.name}")
            new_sizes.append(int(keep_rows.numel()))
        weight = weight[keep_rows]
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        new = new.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            new.weight.copy_(weight)
            if bias is not None:
                new.bias.copy_(bias[keep_rows])
        setattr(module, info.module, new)
        keep_prev = keep_rows
    if hasattr(module, "hidden_sizes"):
        module.hidden_sizes = tuple(new_sizes)
    return module.eval()


class Pruning(BaseEstimator):
    """Remove the ``k`` least important neurons of every hidden layer; compare with random.

    Parameters
    ----------
    k
        Neurons removed per hidden layer: one int for every layer or ``{layer: k}``; each
        layer keeps at least one neuron.
    method
        Attribution method of the importance (mean |attribution| to each sample's class).
    fill
        ``"zero"`` removes the neurons; ``"mean"`` also folds their mean activation into the
        next layer's bias.
    n_repeats
        Random prunings (k random neurons per layer) for the band.
    n_points
        Values of k (0 … the largest allowed) on the accuracy-against-k curve.
    random_state
        Seeds the random prunings.

    Attributes
    ----------
    removed_ : ``{layer: [global ids]}`` the neurons removed
    pruned_ : the pruned ``nn.Module`` (new ``nn.Linear`` layers of the smaller sizes)
    sizes_before_, sizes_after_ : hidden widths
    accuracy_before_, accuracy_after_ : probe accuracy of the model and of the pruned model
    ablated_accuracy_ : probe accuracy of the model with the removed neurons ablated (the
        pruned model's, up to float rounding)
    parameters_before_, parameters_after_ : exact parameter counts
    random_accuracy_ : array of shape (n_repeats,), accuracy after random prunings of the
        same sizes (same parameter count)
    max_output_difference_ : largest |difference| between the pruned model's outputs and the
        ablated model's on the probe (a check; float rounding only)
    curve_ : frame: ``k``, ``accuracy`` (least important first), ``random_mean``,
        ``random_low``, ``random_high`` (5th and 95th percentiles), ``parameters``
    importance_ : array of shape (n_neurons,)
    """

    def __init__(
        self,
        k: int | Mapping[str, int] = 1,
        *,
        method: str = "grad_x_act",
        fill: str = "zero",
        n_repeats: int = 20,
        n_points: int = 9,
        random_state: int | None = 0,
    ) -> None:
        self.k = k
        self.method = method
        self.fill = fill
        self.n_repeats = n_repeats
        self.n_points = n_points
        self.random_state = random_state

    def _k_for(self, layer: str, width: int) -> int:
        k = self.k.get(layer, 0) if isinstance(self.k, Mapping) else int(self.k)
        if k < 0:
            raise ValueError(f"k={k} for {layer}: remove zero or more neurons")
        return min(k, width - 1)

    def fit(
        self,
        model: NeuronModel,
        x: torch.Tensor | np.ndarray,
        y: torch.Tensor | np.ndarray,
        *,
        importance: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> Pruning:
        """Prune on the probe ``(x, y)``; ``importance`` (array of shape (n_neurons,), by
        global id) defaults to :func:`layer_importance` of every hidden neuron."""
        report = progress or no_progress
        reason = prunable(model)
        if reason is not None:
            raise ValueError(reason)
        rng = np.random.default_rng(self.random_state)
        x = _as_tensor(x, model)
        y = torch.as_tensor(y).long().to(model.device)
        hidden = model.layers[1:-1]
        if importance is None:
            report(0.0, "importance of every hidden neuron")
            importance = layer_importance(
                model, x, y, method=self.method, layers=[h.name for h in hidden]
            )
        self.importance_ = np.asarray(importance, dtype=np.float64)
        fill = _fill_values(model, x, self.fill, None)

        counts = {info.name: self._k_for(info.name, info.n_neurons) for info in hidden}
        chosen = [n for info in hidden for n in _least(self.importance_, info, counts[info.name])]
        self.removed_ = {
            info.name: [n for n in chosen if info.first_id <= n <= info.last_id] for info in hidden
        }
        # the curve: k per layer from 0 to the largest allowed, same k in every layer
        max_k = min(info.n_neurons - 1 for info in hidden)
        grid = _grid(max_k, self.n_points)
        sets: list[list[int]] = [[], chosen]
        sets += [
            _random_set(hidden, rng, lambda info: counts[info.name]) for _ in range(self.n_repeats)
        ]
        curve_start = len(sets)
        sets += [
            [n for info in hidden for n in _least(self.importance_, info, int(kk))] for kk in grid
        ]
        random_curve_start = len(sets)
        for _ in range(self.n_repeats):
            sets += [_random_set(hidden, rng, lambda info, kk=kk: int(kk)) for kk in grid]
        accuracy, _ = _reduce_sets(model, x, y, sets, fill, 32768, report, "pruning")

        report(0.95, "building the pruned model")
        self.pruned_ = prune_model(model, chosen, fill=fill)
        self.max_output_difference_ = _output_difference(
            model, self.pruned_, x, chosen, self.fill, fill
        )
        self.sizes_before_ = [info.n_neurons for info in hidden]
        self.sizes_after_ = [info.n_neurons - counts[info.name] for info in hidden]
        self.accuracy_before_ = float(accuracy[0])
        self.accuracy_after_ = float(
            (_plain_logits(self.pruned_, x).argmax(1) == y).double().mean()
        )
        self.ablated_accuracy_ = float(accuracy[1])
        self.random_accuracy_ = accuracy[2:curve_start].copy()
        self.parameters_before_ = count_parameters(model.model)
        self.parameters_after_ = count_parameters(self.pruned_)
        self.curve_ = self._curve_frame(
            model,
            grid,
            accuracy[curve_start:random_curve_start],
            accuracy[random_curve_start:].reshape(max(self.n_repeats, 1), -1),
        )
        report(1.0, "pruning: done")
        return self

    def _curve_frame(
        self,
        model: NeuronModel,
        grid: np.ndarray,
        accuracy: np.ndarray,
        random_block: np.ndarray,
    ) -> pd.DataFrame:
        """:attr:`curve_`: for each ``k`` of ``grid``, the accuracy of pruning the ``k`` least
        important neurons of every layer (``accuracy``, shape (n_k,)) and of random prunings
        (``random_block``, shape (n_repeats, n_k)), and the parameter count."""
        rows = []
        for j, kk in enumerate(grid):
            sizes = [info.n_neurons - int(kk) for info in model.layers[1:-1]]
            randoms = random_block[:, j] if self.n_repeats else np.array([np.nan])
            rows.append(
                (
                    int(kk),
                    float(accuracy[j]),
                    float(np.mean(randoms)),
                    float(np.percentile(randoms, 5)),
                    float(np.percentile(randoms, 95)),
                    _mlp_parameters(model, sizes),
                )
            )
        return pd.DataFrame(
            rows,
            columns=["k", "accuracy", "random_mean", "random_low", "random_high", "parameters"],
        )

    @property
    def parameters_saved_(self) -> int:
        check_is_fitted(self)
        return self.parameters_before_ - self.parameters_after_


def _plain_logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The logits of a plain module (no hooks) on ``x``, in inference mode."""
    module.eval()
    with torch.no_grad():
        return logits_of(module(x))


def _mlp_parameters(model: NeuronModel, hidden_sizes: Sequence[int]) -> int:
    """Parameters of the model's chain of Linear layers with these hidden widths."""
    widths = [model.layers[0].n_neurons, *hidden_sizes, model.layers[-1].n_neurons]
    modules = dict(model.model.named_modules())
    total = 0
    for info, n_in, n_out in zip(model.layers[1:], widths[:-1], widths[1:], strict=True):
        has_bias = getattr(modules[info.module], "bias", None) is not None
        total += n_in * n_out + (n_out if has_bias else 0)
    return total


def _least(importance: np.ndarray, info: LayerInfo, count: int) -> list[int]:
    """The ``count`` least important neurons of a layer (global ids; NaN counts as most)."""
    block = importance[info.first_id : info.last_id + 1]
    block = np.where(np.isfinite(block), block, np.inf)
    return [int(info.first_id + j) for j in np.argsort(block, kind="stable")[:count]]


def _random_set(
    hidden: Sequence[LayerInfo], rng: np.random.Generator, count_for: Callable[[LayerInfo], int]
) -> list[int]:
    """``count_for(layer)`` random neurons of each hidden layer (global ids)."""
    out: list[int] = []
    for info in hidden:
        out += [
            int(info.first_id + j)
            for j in rng.choice(info.n_neurons, size=count_for(info), replace=False)
        ]
    return out


def _output_difference(
    model: NeuronModel,
    pruned: nn.Module,
    x: torch.Tensor,
    removed: list[int],
    fill: str,
    means: torch.Tensor | None,
) -> float:
    """Largest |difference| between the pruned module's outputs (as ``model.objective``
    scores) and the ablated model's on ``x``: float rounding when the pruning is right."""
    with torch.no_grad():
        pruned_logits = _plain_logits(pruned, x)
        ablated = batched_logits(model, x, [removed], fill=fill, means=means)[0]
    if model.objective == "margin":
        k_out = pruned_logits.shape[1]
        pruned_logits = (k_out * pruned_logits - pruned_logits.sum(1, keepdim=True)) / max(
            k_out - 1, 1
        )
    return float(np.abs(pruned_logits.cpu().numpy() - ablated).max())
