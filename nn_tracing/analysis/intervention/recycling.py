"""Recycle dormant neurons (ReDo, Sokar et al., ICML 2023).

For each τ-dormant hidden neuron (its mean |activation| on the probe over its layer's average
is at most τ, :mod:`nn_tracing.analysis.dormancy`), :func:`recycle_dormant` re-initialises its
incoming weights and bias with its layer's own initialiser (the module's ``reset_parameters``,
seeded) and sets its outgoing weights — the next traced layer's weights that read it — to 0.
The network's outputs do not change at that moment (nothing reads the recycled neuron yet),
and the neuron is no longer dormant: it can learn again.

The model is copied; the caller's model is never changed. Mean |activation| is measured
over every probe sample and every position (a convolution channel's), as Sokar et al. do.
Nothing here imports Streamlit.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...trace import LayerInfo
from ...tracer._stats import as_positions
from ..dormancy import DEFAULT_TAU, dormant_scores
from ..neuron_model import NeuronModel

__all__ = ["Recycling", "mean_abs_activations", "recycle_dormant"]


def mean_abs_activations(model: NeuronModel, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Every neuron's mean |activation| over the samples (and positions) of ``x``: float64
    array of shape (n_neurons,), input features first."""
    x = torch.as_tensor(x).to(model.device)
    sums = [torch.zeros(info.n_neurons, dtype=torch.float64) for info in model.layers]
    handles = []
    for i, point in enumerate(model.points):

        def keep(mod: nn.Module, inputs: Any, output: torch.Tensor, i: int = i) -> None:
            values = as_positions(output, mod.feature_dim)
            sums[i] += values.abs().to(torch.float64).mean(1).sum(0).cpu()

        handles.append(point.register_forward_hook(keep))
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], 8192):
                model(x[start : start + 8192])
    finally:
        for handle in handles:
            handle.remove()
    return (torch.cat(sums) / max(x.shape[0], 1)).numpy()


def _dormant_ids(mean_abs: np.ndarray, info: LayerInfo, tau: float) -> np.ndarray:
    """Indices within ``info`` of its τ-dormant neurons."""
    scores = dormant_scores(mean_abs[info.first_id : info.last_id + 1])
    return np.flatnonzero(scores <= tau)


@dataclass(frozen=True)
class Recycling:
    """What recycling did, measured on the probe.

    Attributes
    ----------
    tau, seed : the threshold and the seed of the re-initialisation
    layers : the hidden layers (name and neuron count), in order
    recycled : ``{layer: global ids of the neurons recycled}``
    dormant_before, dormant_after : ``{layer: τ-dormant neurons on the probe}`` (counts)
    logits_before, logits_after : float32 arrays (n_samples, n_outputs)
    accuracy_before, accuracy_after : probe accuracy (NaN without class labels)
    module : the recycled network (a copy; plain ``nn.Module`` without hooks)
    """

    tau: float
    seed: int
    layers: list[tuple[str, int]]
    recycled: dict[str, list[int]]
    dormant_before: dict[str, int]
    dormant_after: dict[str, int]
    logits_before: np.ndarray = field(repr=False)
    logits_after: np.ndarray = field(repr=False)
    accuracy_before: float
    accuracy_after: float
    module: nn.Module = field(repr=False, compare=False)

    @property
    def n_recycled(self) -> int:
        return sum(len(ids) for ids in self.recycled.values())

    @property
    def max_output_change(self) -> float:
        """The largest absolute change of any output on any probe sample."""
        if self.logits_before.size == 0:
            return 0.0
        return float(np.abs(self.logits_after - self.logits_before).max())

    def fraction(self, when: str) -> float:
        """The share of every hidden neuron that is τ-dormant ``"before"`` or ``"after"``."""
        if when not in ("before", "after"):
            raise ValueError(f"when={when!r}: use 'before' or 'after'")
        counts = self.dormant_before if when == "before" else self.dormant_after
        total = sum(n for _, n in self.layers)
        return sum(counts.values()) / total if total else float("nan")

    def table(self) -> pd.DataFrame:
        """One row per hidden layer: ``layer``, ``neurons``, ``dormant before``,
        ``recycled``, ``dormant after`` and the two shares."""
        rows = [
            {
                "layer": name,
                "neurons": n,
                "dormant before": self.dormant_before[name],
                "recycled": len(self.recycled[name]),
                "dormant after": self.dormant_after[name],
                "share before": self.dormant_before[name] / n,
                "share after": self.dormant_after[name] / n,
            }
            for name, n in self.layers
        ]
        return pd.DataFrame(rows)


def _parameter(module: nn.Module, key: str | None) -> nn.Parameter | None:
    return dict(module.named_parameters()).get(key) if key else None


def _reinitialise(module: nn.Module, info: LayerInfo, rows: np.ndarray, seed: int) -> None:
    """Rows ``rows`` of ``info``'s weight (and bias) := a fresh, seeded initialisation of the
    module that owns them (its ``reset_parameters``)."""
    owner_name = (info.weight_key or "").rpartition(".")[0]
    owner = dict(module.named_modules()).get(owner_name)
    weight = _parameter(module, info.weight_key)
    if owner is None or weight is None or not hasattr(owner, "reset_parameters"):
        raise ValueError(f"layer {info.name!r} has no module with an initialiser to recycle")
    fresh = copy.deepcopy(owner)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh.reset_parameters()
    index = torch.as_tensor(rows, dtype=torch.long, device=weight.device)
    with torch.no_grad():
        weight[index] = fresh.weight.detach()[index].to(weight)
        bias = _parameter(module, info.bias_key)
        if bias is not None and getattr(fresh, "bias", None) is not None:
            bias[index] = fresh.bias.detach()[index].to(bias)


def _zero_outgoing(module: nn.Module, info: LayerInfo, reader: LayerInfo, rows: np.ndarray) -> None:
    """The weights of ``reader`` that read neurons ``rows`` of ``info`` := 0."""
    weight = _parameter(module, reader.weight_key)
    n = info.n_neurons
    if weight is None or weight.dim() < 2:
        raise ValueError(f"layer {reader.name!r} has no weights reading {info.name!r}")
    index = torch.as_tensor(rows, dtype=torch.long, device=weight.device)
    with torch.no_grad():
        if weight.shape[1] == n:
            weight[:, index] = 0
        elif weight.dim() == 2 and weight.shape[1] % n == 0:  # a flatten: channel-major
            weight.view(weight.shape[0], n, -1)[:, index, :] = 0
        else:
            raise ValueError(
                f"layer {reader.name!r} reads {weight.shape[1]} inputs, not the {n} neurons "
                f"of {info.name!r}: recycling needs a chain of layers"
            )


def _accuracy(logits: np.ndarray, y: np.ndarray | None) -> float:
    if y is None or logits.ndim != 2 or np.asarray(y).ndim != 1:
        return float("nan")
    return float((logits.argmax(1) == np.asarray(y)).mean())


def recycle_dormant(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    y: np.ndarray | None = None,
    *,
    tau: float = DEFAULT_TAU,
    seed: int = 0,
) -> Recycling:
    """Recycle every τ-dormant hidden neuron of ``model`` (dormant on the probe ``x``).

    Parameters
    ----------
    model : the network (not changed: a copy is recycled)
    x : probe inputs, shape (n_samples, ...); y : optional class labels (n_samples,)
    tau : the dormancy threshold; seed : seeds the re-initialisation (layer ``i`` uses
        ``seed + i``)

    Raises
    ------
    ValueError
        When a hidden layer's weights cannot be re-initialised or its readers found (a model
        that is not a chain of layers).
    """
    if not np.isfinite(tau) or tau < 0:
        raise ValueError(f"tau={tau!r} must be a finite number ≥ 0")
    hidden = model.layers[1:-1]
    before = mean_abs_activations(model, x)
    logits_before = model.logits(x).cpu().numpy()
    module = model.plain_copy()
    recycled: dict[str, list[int]] = {}
    dormant_before: dict[str, int] = {}
    chosen = {}
    for i, info in enumerate(hidden, start=1):
        rows = _dormant_ids(before, info, tau)
        chosen[info.name] = rows
        dormant_before[info.name] = len(rows)
        recycled[info.name] = [info.first_id + int(r) for r in rows]
        if len(rows):
            _reinitialise(module, info, rows, seed + i)
    for info, reader in zip(hidden, model.layers[2:], strict=False):
        if len(chosen[info.name]):
            _zero_outgoing(module, info, reader, chosen[info.name])
    after_model = NeuronModel(
        module, model.layers, torch.as_tensor(x)[:2], objective=model.objective
    )
    after = mean_abs_activations(after_model, x)
    logits_after = after_model.logits(x).cpu().numpy()
    return Recycling(
        tau=float(tau),
        seed=int(seed),
        layers=[(info.name, info.n_neurons) for info in hidden],
        recycled=recycled,
        dormant_before=dormant_before,
        dormant_after={info.name: len(_dormant_ids(after, info, tau)) for info in hidden},
        logits_before=logits_before,
        logits_after=logits_after,
        accuracy_before=_accuracy(logits_before, y),
        accuracy_after=_accuracy(logits_after, y),
        module=module,
    )
