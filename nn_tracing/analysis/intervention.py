"""Test attribution by changing the network: ablation, ablation curves, pruning, intervention.

Every claim that a neuron matters is checked here by removing it and measuring what changes on
the probe set — against the same removal of random neurons (the null).

* :func:`batched_logits` — the outputs with each of many ablation sets applied: one forward
  pass per set over the whole probe, many sets per pass (the batch holds one copy of the
  probe per set, each with its own mask on the hook points).
* :func:`ablate` — zero or mean-replace any set of neurons: an :class:`AblationResult` with
  the change in accuracy per class, in the class logits and in the confusion matrix, and the
  probe samples whose prediction flipped.
* :func:`trail_check` — ablate the breadcrumb trail's neurons of each layer against random
  sets of the same size (an empirical p-value).
* :class:`AblationCurves` — accuracy against the number of a layer's neurons ablated, in order
  of attribution, reverse attribution, class selectivity and at random (mean and band over
  repeats), with the rank correlation of selectivity and single-neuron ablation effect
  (Morcos et al. 2018).
* :func:`prune_model` / :class:`Pruning` — structured pruning: the k least important neurons of
  each hidden layer are removed (new, smaller ``nn.Linear`` layers), against k random ones;
  :func:`pruned_files` and :func:`pruned_trace` give the pruned model's safetensors, its config
  and its trace on the probe set.
* :func:`intervene` — clamp or scale a neuron's activation, or edit one weight: accuracy, the
  predictions that flip, every neuron's activation before and after, and for 2-D inputs the
  decision boundary before and after.

Nothing here imports Streamlit.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..tracer import ACTIVATION_TYPES
from .attribution import Trail, neuron_attributions, spearman
from .neuron_model import NeuronModel, edits_from_sets

if TYPE_CHECKING:
    from ..trace import NetworkTrace

__all__ = [
    "FILLS",
    "INTERVENTIONS",
    "ORDERS",
    "AblationCurves",
    "AblationResult",
    "DecisionBoundary",
    "Intervention",
    "InterventionResult",
    "Pruning",
    "ablate",
    "batched_logits",
    "count_parameters",
    "decision_grid",
    "hidden_layers",
    "intervene",
    "layer_importance",
    "neuron_means",
    "prunable",
    "prune_model",
    "pruned_config",
    "pruned_files",
    "pruned_trace",
    "selectivity_sentence",
    "trail_check",
]

#: What an ablated neuron is replaced by.
FILLS: dict[str, str] = {
    "zero": "zero",
    "mean": "its mean activation on the probe set",
}
#: Orders of an ablation curve.
ORDERS: dict[str, str] = {
    "attribution": "most important first (mean |attribution| to each sample's own class)",
    "reverse": "least important first",
    "selectivity": "most class-selective first",
    "random": "random order",
}
#: Kinds of intervention.
INTERVENTIONS: dict[str, str] = {
    "clamp": "set a neuron's activation to a value",
    "scale": "multiply a neuron's activation by a factor",
    "weight": "set one incoming weight of a neuron",
}

Progress = Callable[[float, str], None]


def _noop(fraction: float, message: str) -> None:
    return None


def _as_tensor(x: torch.Tensor | np.ndarray, model: NeuronModel) -> torch.Tensor:
    return torch.as_tensor(x).to(model.device)


def hidden_layers(model: NeuronModel) -> list[str]:
    """Names of the layers between the input and the output logits."""
    return [info.name for info in model.layers[1:-1]]


def neuron_means(model: NeuronModel, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Every neuron's mean activation on ``x``: tensor of shape (n_neurons,)."""
    return model.activations(_as_tensor(x, model)).mean(0)


def _fill_values(
    model: NeuronModel, x: torch.Tensor, fill: str, means: torch.Tensor | None
) -> torch.Tensor | None:
    if fill not in FILLS:
        raise ValueError(f"fill={fill!r}: use one of {', '.join(FILLS)}")
    if fill == "zero":
        return None
    return means if means is not None else neuron_means(model, x)


def _iter_chunks(
    model: NeuronModel,
    x: torch.Tensor,
    sets: Sequence[Sequence[int]],
    fill: torch.Tensor | None,
    max_rows: int,
    fast: bool = True,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """``(set indices, outputs of shape (len(indices), B, K))`` per forward batch.

    With ``fast`` and a chain of Linear layers (:func:`prunable`), the sets that touch one
    layer only take the short way (:class:`_ChainAblation`); the others run the whole network
    with one mask per set on the hook points.
    """
    order = list(range(len(sets)))
    chain = _ChainAblation.of(model, x, fill) if fast else None
    if chain is not None:
        by_layer: dict[int, list[int]] = {}
        general = []
        for s in order:
            layer = chain.layer_of_set(sets[s])
            if layer is None:
                general.append(s)
            else:
                by_layer.setdefault(layer, []).append(s)
        for layer, members in by_layer.items():
            yield from chain.run(layer, [(s, sets[s]) for s in members], max_rows)
        order = general
    n = x.shape[0]
    per_pass = max(1, max_rows // max(n, 1))
    for start in range(0, len(order), per_pass):
        indices = order[start : start + per_pass]
        edits = edits_from_sets(model, [sets[s] for s in indices], fill=fill)
        with torch.no_grad():
            if per_pass == 1:  # the probe alone fills a pass: one set, the probe in chunks
                with model.edited(edits, n_sets=1):
                    out = model.logits(x, chunk_size=max_rows)
                yield indices, out[None]
                continue
            repeated = x.repeat(len(indices), *([1] * (x.dim() - 1)))
            with model.edited(edits, n_sets=len(indices)):
                out = model(repeated)
            yield indices, out.reshape(len(indices), n, -1)


class _ChainAblation:
    """Ablation of one layer's neurons in a chain of Linear layers, without re-running it all.

    Ablating neurons ``S`` of layer ``i`` (activations ``a``, replaced by ``f``) changes only
    the pre-activation of the next Linear layer, by a low-rank update::

        z' = z + (f_S − a_S) · W[:, S]ᵀ

    so one forward pass on the probe gives ``a`` and ``z`` for every layer, and each set
    costs that update plus the rest of the chain after the next Linear layer — instead of a
    whole forward pass. The result equals the hook-point ablation to float rounding (tested).
    """

    def __init__(
        self,
        model: NeuronModel,
        children: list[nn.Module],
        consumers: list[int],
        activations: list[torch.Tensor],
        pre: list[torch.Tensor],
        fill: torch.Tensor | None,
    ) -> None:
        self.model = model
        self.children = children
        self.consumers = consumers  # child index of the Linear that reads traced layer i
        self.activations = activations  # a_i: (B, N_i) per traced layer but the output
        self.pre = pre  # z_{i+1}: (B, N_{i+1}), the consumer's output
        self.fill = fill

    @classmethod
    def of(
        cls, model: NeuronModel, x: torch.Tensor, fill: torch.Tensor | None
    ) -> _ChainAblation | None:
        if x.dim() != 2 or prunable(model) is not None:
            return None
        children = list(model.model.children())
        names = [name for name, _ in model.model.named_children()]
        consumers = [names.index(info.module) for info in model.layers[1:]]
        captured: dict[int, torch.Tensor] = {}
        handles = [
            children[c].register_forward_hook(
                lambda m, i, o, c=c: captured.__setitem__(c, o.detach())
            )
            for c in consumers
        ]
        try:
            with torch.no_grad():
                acts = model.activations(x)
                model(x)
        finally:
            for handle in handles:
                handle.remove()
        layers = model.layers
        activations = [acts[:, info.first_id : info.last_id + 1] for info in layers[:-1]]
        pre = [captured[c] for c in consumers]
        return cls(model, children, consumers, activations, pre, fill)

    def layer_of_set(self, ids: Sequence[int]) -> int | None:
        """The traced layer (index, not the output) all of a set's neurons are in, or None."""
        if not ids:
            return None
        first = self.model.layer_of(int(ids[0]))
        index = self.model.layers.index(first)
        if index == len(self.model.layers) - 1:
            return None
        if all(first.first_id <= int(n) <= first.last_id for n in ids):
            return index
        return None

    def run(
        self, layer: int, members: list[tuple[int, Sequence[int]]], max_rows: int
    ) -> Iterator[tuple[list[int], torch.Tensor]]:
        info = self.model.layers[layer]
        consumer = self.children[self.consumers[layer]]
        weight = consumer.weight.detach()  # (N_next, N_i)
        a = self.activations[layer]  # (B, N_i)
        z = self.pre[layer]  # (B, N_next)
        n = a.shape[0]
        fill = (
            self.fill[info.first_id : info.last_id + 1].to(a)
            if self.fill is not None
            else torch.zeros(info.n_neurons, device=a.device, dtype=a.dtype)
        )
        # one zero column more: the index that pads a short set to its chunk's longest
        difference = torch.cat([fill[None, :] - a, a.new_zeros(n, 1)], dim=1)  # (B, N_i + 1)
        weight = torch.cat([weight, weight.new_zeros(weight.shape[0], 1)], dim=1)
        suffix = self.children[self.consumers[layer] + 1 :]
        per_pass = max(1, max_rows // max(n, 1))
        members = sorted(members, key=lambda member: len(member[1]))  # similar sizes together
        with torch.no_grad():
            for start in range(0, len(members), per_pass):
                chunk = members[start : start + per_pass]
                width = max(len(ids) for _, ids in chunk)
                index = torch.full((len(chunk), width), info.n_neurons, dtype=torch.long)
                for row, (_, ids) in enumerate(chunk):
                    unique = sorted({int(i) for i in ids})
                    index[row, : len(unique)] = torch.as_tensor(unique) - info.first_id
                index = index.to(a.device)
                # z'_s = z + Σ_{j ∈ S_s} (f_j − a_j) W[:, j]: only the set's own columns,
                # written once into a contiguous (sets, B, N_next) block
                columns = difference[:, index].permute(1, 0, 2)  # (s, B, m)
                rows = weight[:, index].permute(1, 2, 0)  # (s, m, N_next)
                out = torch.baddbmm(z.expand(len(chunk), *z.shape), columns, rows)
                out = out.view(len(chunk) * n, -1)
                self.model._calls.clear()
                for module in suffix:
                    out = module(out)
                out = self.model.score(out)
                yield [s for s, _ in chunk], out.reshape(len(chunk), n, -1)


def batched_logits(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    sets: Sequence[Sequence[int]],
    *,
    fill: str = "zero",
    means: torch.Tensor | None = None,
    max_rows: int = 32768,
    fast: bool = True,
    progress: Progress | None = None,
) -> np.ndarray:
    """The outputs on ``x`` with each set of neurons ablated.

    Parameters
    ----------
    sets
        ``n_sets`` collections of global neuron ids (an empty set: the intact network).
    fill
        ``"zero"`` or ``"mean"`` (the neuron's mean activation on ``x``, or ``means``).
    max_rows
        Rows per forward pass: ``max_rows // n_samples`` sets share one pass.
    fast
        In a chain of Linear layers, ablate a set confined to one layer by a low-rank update
        of the next layer's input (see :class:`_ChainAblation`); ``False`` runs every set
        through the whole network.

    Returns
    -------
    array of shape (n_sets, n_samples, n_classes), float32.
    """
    report = progress or _noop
    x = _as_tensor(x, model)
    values = _fill_values(model, x, fill, means)
    out = np.empty((len(sets), x.shape[0], model.layers[-1].n_neurons), dtype=np.float32)
    done = 0
    for indices, logits in _iter_chunks(model, x, sets, values, max_rows, fast):
        out[indices] = logits.cpu().numpy()
        done += len(indices)
        report(done / max(len(sets), 1), f"ablation sets: {done} of {len(sets)}")
    return out


def _reduce_sets(
    model: NeuronModel,
    x: torch.Tensor,
    y: torch.Tensor,
    sets: Sequence[Sequence[int]],
    fill: torch.Tensor | None,
    max_rows: int,
    progress: Progress,
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and mean cross-entropy on ``(x, y)`` for each set: two arrays (n_sets,)."""
    accuracy = np.empty(len(sets))
    loss = np.empty(len(sets))
    done = 0
    for indices, logits in _iter_chunks(model, x, sets, fill, max_rows):
        s = logits.shape[0]
        flat = logits.reshape(-1, logits.shape[-1])
        target = y.repeat(s)
        accuracy[indices] = (flat.argmax(1) == target).double().reshape(s, -1).mean(1).cpu().numpy()
        loss[indices] = (
            F.cross_entropy(flat, target, reduction="none").reshape(s, -1).mean(1).cpu().numpy()
        )
        done += s
        progress(done / max(len(sets), 1), f"{what}: {done} of {len(sets)} sets")
    return accuracy, loss


# -- one ablation --------------------------------------------------------------------------------
@dataclass(frozen=True)
class AblationResult:
    """What ablating a set of neurons changes on the probe set.

    Attributes
    ----------
    neurons : the ablated global ids
    fill : ``"zero"`` or ``"mean"``
    labels : array of shape (n_samples,)
    logits_before, logits_after : arrays of shape (n_samples, n_classes)
    class_names : names of the classes
    """

    neurons: tuple[int, ...]
    fill: str
    labels: np.ndarray
    logits_before: np.ndarray
    logits_after: np.ndarray
    class_names: tuple[str, ...]

    @property
    def predictions_before(self) -> np.ndarray:
        return self.logits_before.argmax(1)

    @property
    def predictions_after(self) -> np.ndarray:
        return self.logits_after.argmax(1)

    @property
    def accuracy_before(self) -> float:
        return float((self.predictions_before == self.labels).mean())

    @property
    def accuracy_after(self) -> float:
        return float((self.predictions_after == self.labels).mean())

    @property
    def flipped(self) -> np.ndarray:
        """Probe indices whose prediction changed."""
        return np.flatnonzero(self.predictions_before != self.predictions_after)

    def confusion(self, after: bool = True) -> np.ndarray:
        """Confusion matrix (n_classes, n_classes): rows true class, columns predicted."""
        k = self.logits_before.shape[1]
        predicted = self.predictions_after if after else self.predictions_before
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (self.labels, predicted), 1)
        return matrix

    def per_class(self) -> pd.DataFrame:
        """Per class: ``n`` samples, accuracy before/after/change, and the mean logit of the
        class on its own samples and on all samples, before/after/change."""
        rows = []
        for c, name in enumerate(self.class_names):
            own = self.labels == c
            n = int(own.sum())
            before = (self.predictions_before[own] == c).mean() if n else np.nan
            after = (self.predictions_after[own] == c).mean() if n else np.nan
            own_before = self.logits_before[own, c].mean() if n else np.nan
            own_after = self.logits_after[own, c].mean() if n else np.nan
            all_before = self.logits_before[:, c].mean()
            all_after = self.logits_after[:, c].mean()
            rows.append(
                (
                    name,
                    n,
                    before,
                    after,
                    after - before,
                    own_before,
                    own_after,
                    own_after - own_before,
                    all_before,
                    all_after,
                    all_after - all_before,
                )
            )
        return pd.DataFrame(
            rows,
            columns=[
                "class",
                "n",
                "accuracy_before",
                "accuracy_after",
                "accuracy_change",
                "logit_own_before",
                "logit_own_after",
                "logit_own_change",
                "logit_all_before",
                "logit_all_after",
                "logit_all_change",
            ],
        )

    def flipped_frame(self) -> pd.DataFrame:
        """The samples whose prediction flipped: ``sample``, ``label``, ``before``, ``after``
        (class names), ``correct_before``, ``correct_after``."""
        idx = self.flipped
        names = np.asarray(self.class_names, dtype=object)
        return pd.DataFrame(
            {
                "sample": idx,
                "label": names[self.labels[idx]],
                "before": names[self.predictions_before[idx]],
                "after": names[self.predictions_after[idx]],
                "correct_before": self.predictions_before[idx] == self.labels[idx],
                "correct_after": self.predictions_after[idx] == self.labels[idx],
            }
        )


def _class_names(model: NeuronModel, class_names: Sequence[str] | None) -> tuple[str, ...]:
    k = model.layers[-1].n_neurons
    if class_names is not None and len(class_names) == k:
        return tuple(str(c) for c in class_names)
    return tuple(str(c) for c in range(k))


def ablate(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    neurons: Sequence[int],
    *,
    fill: str = "zero",
    means: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
) -> AblationResult:
    """Zero (or mean-replace) ``neurons`` (global ids) and compare the outputs on ``(x, y)``."""
    x = _as_tensor(x, model)
    logits = batched_logits(model, x, [[], list(neurons)], fill=fill, means=means)
    return AblationResult(
        neurons=tuple(int(n) for n in neurons),
        fill=fill,
        labels=np.asarray(torch.as_tensor(y).cpu(), dtype=np.int64),
        logits_before=logits[0],
        logits_after=logits[1],
        class_names=_class_names(model, class_names),
    )


def layer_importance(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    *,
    method: str = "grad_x_act",
    layers: Sequence[str] | None = None,
    n_steps: int = 32,
    progress: Progress | None = None,
) -> np.ndarray:
    """Importance of every neuron: mean |attribution| to each sample's own class.

    Returns
    -------
    array of shape (n_neurons,); NaN for layers not computed (the output by default).
    """
    values = neuron_attributions(
        model,
        _as_tensor(x, model),
        torch.as_tensor(y).long(),
        method,
        layers=layers,
        n_steps=n_steps,
        progress=progress,
    )
    return np.abs(values).mean(0)


# -- the trail against random sets ---------------------------------------------------------------
def trail_check(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    trail: Trail,
    *,
    n_repeats: int = 50,
    fill: str = "zero",
    random_state: int | None = 0,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Ablate the trail's neurons of each layer, and as many random neurons of that layer.

    The drop is measured on the trail's target: the mean score (``model.objective`` of the
    target class) over the trail's samples, and their accuracy.

    Returns
    -------
    One row per layer: ``layer``, ``k``, ``score_before``, ``trail_drop`` (of the score),
    ``random_drop_mean``, ``random_drop_p95``, ``p_value`` (share of random sets, counting the
    trail's own, whose drop is at least the trail's: ``(1 + #) / (1 + n_repeats)``),
    ``accuracy_trail``, ``accuracy_random_mean``, ``accuracy_before``.
    """
    rng = np.random.default_rng(random_state)
    attribution = trail.attribution
    target = int(attribution.target_class)  # type: ignore[arg-type]
    samples = attribution.samples
    xs = _as_tensor(x, model)[torch.as_tensor(samples)]
    ys = np.asarray(torch.as_tensor(y).cpu())[samples]
    sets: list[list[int]] = [[]]
    layout: list[tuple[str, int, int]] = []
    for info in model.layers[:-1]:
        ids = trail.neurons(info.name)
        if not ids:
            continue
        start = len(sets)
        sets.append(ids)
        for _ in range(n_repeats):
            sets.append(
                list(info.first_id + rng.choice(info.n_neurons, size=len(ids), replace=False))
            )
        layout.append((info.name, len(ids), start))
    means = neuron_means(model, x) if fill == "mean" else None
    logits = batched_logits(model, xs, sets, fill=fill, means=means, progress=progress)
    score = logits[:, :, target].mean(1)  # (n_sets,)
    accuracy = (logits.argmax(2) == ys[None, :]).mean(1)
    rows = []
    for name, k, start in layout:
        drop = score[0] - score[start]
        random_drops = score[0] - score[start + 1 : start + 1 + n_repeats]
        rows.append(
            (
                name,
                k,
                float(score[0]),
                float(drop),
                float(random_drops.mean()) if n_repeats else np.nan,
                float(np.percentile(random_drops, 95)) if n_repeats else np.nan,
                float((1 + np.sum(random_drops >= drop)) / (1 + n_repeats)),
                float(accuracy[start]),
                float(accuracy[start + 1 : start + 1 + n_repeats].mean()) if n_repeats else np.nan,
                float(accuracy[0]),
            )
        )
    return pd.DataFrame(
        rows,
        columns=[
            "layer",
            "k",
            "score_before",
            "trail_drop",
            "random_drop_mean",
            "random_drop_p95",
            "p_value",
            "accuracy_trail",
            "accuracy_random_mean",
            "accuracy_before",
        ],
    )


# -- ablation curves -----------------------------------------------------------------------------
def _grid(n: int, n_points: int) -> np.ndarray:
    """Up to ``n_points`` distinct counts from 0 to ``n``, both included."""
    return np.unique(np.round(np.linspace(0, n, max(2, min(n_points, n + 1)))).astype(int))


def _permutation_p(a: np.ndarray, b: np.ndarray, rho: float, n_permutations: int, rng) -> float:
    """Two-sided permutation p-value of a Spearman correlation (shuffled pairing)."""
    ra = pd.Series(a).rank().to_numpy()
    rb = pd.Series(b).rank().to_numpy()
    ra = (ra - ra.mean()) / ra.std()
    rb = (rb - rb.mean()) / rb.std()
    shuffled = rb[np.argsort(rng.random((n_permutations, rb.size)), axis=1)]
    null = shuffled @ ra / ra.size
    return float((1 + np.sum(np.abs(null) >= abs(rho) - 1e-12)) / (1 + n_permutations))


def selectivity_sentence(
    rho: float, p_value: float, n: int, n_permutations: int, n_undefined: int = 0
) -> str:
    """Whether selectivity predicts importance here, in one sentence.

    ``n`` neurons entered the correlation; ``n_undefined`` more had no defined selectivity
    (dead neurons) and were left out.
    """
    left_out = (
        f"; {n_undefined} neuron{'s' if n_undefined != 1 else ''} without a defined "
        "selectivity left out"
        if n_undefined
        else ""
    )
    if not np.isfinite(rho):
        return (
            "Selectivity cannot be compared with importance here: the single-neuron ablation "
            "effects or the selectivities are constant, or fewer than three neurons have both"
            f"{left_out}."
        )
    stats = (
        f"Spearman ρ = {rho:+.2f} over {n} neurons, permutation p = {p_value:.3f} from "
        f"{n_permutations} shuffles{left_out}"
    )
    if p_value >= 0.05:
        return (
            "Selectivity does not predict importance here: a neuron's class selectivity and the "
            "rise in probe loss when it alone is ablated are not related beyond chance "
            f"({stats})."
        )
    if rho > 0:
        return (
            "Selectivity predicts importance here: the more class-selective a neuron, the more "
            f"the probe loss rises when it alone is ablated ({stats})."
        )
    return (
        "Selectivity predicts importance here, inversely: the more class-selective a neuron, "
        f"the less its ablation hurts — as Morcos et al. (2018) found ({stats})."
    )


class AblationCurves:
    """Accuracy against the number of a layer's neurons ablated, in four orders.

    Parameters
    ----------
    layer
        The layer whose neurons are ablated.
    orders
        Any of :data:`ORDERS`.
    n_repeats
        Random orders drawn for the random curve (its mean and band).
    n_points
        Counts of ablated neurons evaluated, evenly spaced from 0 to the layer's width.
    fill
        ``"zero"`` or ``"mean"``.
    method
        The attribution method of the importance order (see ``attribution.METHODS``).
    n_permutations
        Shuffles for the p-value of the selectivity–effect correlation.
    band
        The percentiles of the random band.
    random_state
        Seeds the random orders and the permutations.

    Attributes
    ----------
    k_ : array of shape (n_k,), the counts evaluated
    curves_ : long frame: ``order``, ``k``, ``accuracy``, ``low``, ``high`` (the band; equal to
        ``accuracy`` for the deterministic orders) and ``std``
    importance_, selectivity_ : arrays of shape (width,)
    single_accuracy_drop_, single_loss_rise_ : arrays of shape (width,): the effect of
        ablating each neuron alone
    correlation_ : dict with ``rho``, ``p_value``, ``n``, ``accuracy_rho`` and ``sentence``
    neurons_ : frame, one row per neuron: ``neuron``, ``importance``, ``selectivity``,
        ``accuracy_drop``, ``loss_rise``
    accuracy_before_ : float
    """

    def __init__(
        self,
        layer: str,
        *,
        orders: Sequence[str] = tuple(ORDERS),
        n_repeats: int = 20,
        n_points: int = 17,
        fill: str = "zero",
        method: str = "grad_x_act",
        n_permutations: int = 2000,
        band: tuple[float, float] = (5.0, 95.0),
        random_state: int | None = 0,
    ) -> None:
        self.layer = layer
        self.orders = orders
        self.n_repeats = n_repeats
        self.n_points = n_points
        self.fill = fill
        self.method = method
        self.n_permutations = n_permutations
        self.band = band
        self.random_state = random_state

    def fit(
        self,
        model: NeuronModel,
        x: torch.Tensor | np.ndarray,
        y: torch.Tensor | np.ndarray,
        *,
        importance: np.ndarray | None = None,
        selectivity: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> AblationCurves:
        """Compute the curves on the probe ``(x, y)``.

        ``importance`` and ``selectivity`` (arrays of shape (n_neurons,), by global id)
        default to :func:`layer_importance` and the class selectivity index of the
        activations on ``x`` (the trace's definition).
        """
        from ..tracer import class_selectivity

        report = progress or _noop
        unknown = sorted(set(self.orders) - set(ORDERS))
        if unknown:
            raise ValueError(f"unknown orders {unknown}; use {', '.join(ORDERS)}")
        rng = np.random.default_rng(self.random_state)
        info = model.layer(self.layer)
        x = _as_tensor(x, model)
        y = torch.as_tensor(y).long().to(model.device)
        width = info.n_neurons
        ids = np.arange(info.first_id, info.last_id + 1)
        if importance is None:
            report(0.0, f"importance of the neurons of {info.name}")
            importance = layer_importance(model, x, y, method=self.method, layers=[info.name])
        activations = model.activations(x)
        if selectivity is None:
            selectivity = class_selectivity(activations, y).cpu().numpy()
        means = activations.mean(0)
        fill = _fill_values(model, x, self.fill, means)
        self.importance_ = np.asarray(importance, dtype=np.float64)[ids]
        self.selectivity_ = np.asarray(selectivity, dtype=np.float64)[ids]
        k = _grid(width, self.n_points)
        self.k_ = k

        orderings: dict[str, np.ndarray] = {}
        key_importance = np.where(np.isfinite(self.importance_), self.importance_, -np.inf)
        if "attribution" in self.orders:
            orderings["attribution"] = np.argsort(-key_importance, kind="stable")
        if "reverse" in self.orders:
            orderings["reverse"] = np.argsort(key_importance, kind="stable")
        if "selectivity" in self.orders:
            key = np.where(np.isfinite(self.selectivity_), self.selectivity_, -np.inf)
            orderings["selectivity"] = np.argsort(-key, kind="stable")
        random_orders = (
            [rng.permutation(width) for _ in range(self.n_repeats)]
            if "random" in self.orders
            else []
        )
        sets: list[list[int]] = [[]]
        singles_start = len(sets)
        sets += [[int(i)] for i in ids]
        starts: dict[str, int] = {}
        for name, order in orderings.items():
            starts[name] = len(sets)
            sets += [list(ids[order[:kk]]) for kk in k]
        random_start = len(sets)
        for order in random_orders:
            sets += [list(ids[order[:kk]]) for kk in k]
        accuracy, loss = _reduce_sets(
            model, x, y, sets, fill, 32768, report, f"ablating neurons of {info.name}"
        )
        self.accuracy_before_ = float(accuracy[0])
        self.single_accuracy_drop_ = accuracy[0] - accuracy[singles_start : singles_start + width]
        self.single_loss_rise_ = loss[singles_start : singles_start + width] - loss[0]

        rows = []
        for name, start in starts.items():
            for j, kk in enumerate(k):
                a = float(accuracy[start + j])
                rows.append((name, int(kk), a, a, a, 0.0))
        if random_orders:
            block = accuracy[random_start:].reshape(len(random_orders), len(k))
            low, high = np.percentile(block, self.band, axis=0)
            for j, kk in enumerate(k):
                rows.append(
                    (
                        "random",
                        int(kk),
                        float(block[:, j].mean()),
                        float(low[j]),
                        float(high[j]),
                        float(block[:, j].std()),
                    )
                )
        self.curves_ = pd.DataFrame(rows, columns=["order", "k", "accuracy", "low", "high", "std"])

        keep = np.isfinite(self.selectivity_) & np.isfinite(self.single_loss_rise_)
        rho = spearman(self.selectivity_[keep], self.single_loss_rise_[keep])
        p = (
            _permutation_p(
                self.selectivity_[keep],
                self.single_loss_rise_[keep],
                rho,
                self.n_permutations,
                rng,
            )
            if np.isfinite(rho)
            else float("nan")
        )
        n = int(keep.sum())
        self.correlation_ = {
            "rho": rho,
            "p_value": p,
            "n": n,
            "n_permutations": self.n_permutations,
            "accuracy_rho": spearman(self.selectivity_, self.single_accuracy_drop_),
            "sentence": selectivity_sentence(
                rho, p, n, self.n_permutations, int(np.isfinite(self.single_loss_rise_).sum()) - n
            ),
        }
        self.neurons_ = pd.DataFrame(
            {
                "neuron": ids,
                "importance": self.importance_,
                "selectivity": self.selectivity_,
                "accuracy_drop": self.single_accuracy_drop_,
                "loss_rise": self.single_loss_rise_,
            }
        )
        report(1.0, "ablation curves: done")
        return self


# -- pruning -------------------------------------------------------------------------------------
_ELEMENTWISE = (*ACTIVATION_TYPES, nn.Dropout, nn.Identity)


def prunable(model: NeuronModel) -> str | None:
    """``None`` when structured pruning applies to this model, else the reason it does not.

    Pruning needs an ``nn.Sequential`` (the built-in MLP is one) of ``Linear`` layers and
    element-wise modules (activations, dropout), whose traced layers are all its Linear layers
    in order, each reading the previous one's neurons.
    """
    module = model.model
    if not isinstance(module, nn.Sequential):
        return (
            f"structured pruning needs an nn.Sequential of Linear layers and activations (the "
            f"built-in MLP is one); this model is a {type(module).__name__}"
        )
    linears = []
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            linears.append(name)
        elif not isinstance(child, _ELEMENTWISE):
            return (
                f"structured pruning needs Linear layers and element-wise modules only; "
                f"{name!r} is a {type(child).__name__}"
            )
    traced = [info.module for info in model.layers[1:]]
    if traced != linears:
        return "the traced layers are not the model's Linear layers in order"
    for up, down in zip(model.layers[1:-1], model.layers[2:], strict=True):
        if down.fan_in != up.n_neurons:
            return f"{down.name} does not read the {up.n_neurons} neurons of {up.name}"
    if len(model.layers) < 3:
        return "the model has no hidden layer to prune"
    return None


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


class Pruning:
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
        report = progress or _noop
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

        def least(info, count: int) -> list[int]:
            block = self.importance_[info.first_id : info.last_id + 1]
            block = np.where(np.isfinite(block), block, np.inf)
            return [int(info.first_id + j) for j in np.argsort(block, kind="stable")[:count]]

        def random_set(count_for: Callable[[Any], int]) -> list[int]:
            out: list[int] = []
            for info in hidden:
                out += [
                    int(info.first_id + j)
                    for j in rng.choice(info.n_neurons, size=count_for(info), replace=False)
                ]
            return out

        counts = {info.name: self._k_for(info.name, info.n_neurons) for info in hidden}
        chosen = [n for info in hidden for n in least(info, counts[info.name])]
        self.removed_ = {
            info.name: [n for n in chosen if info.first_id <= n <= info.last_id] for info in hidden
        }
        # the curve: k per layer from 0 to the largest allowed, same k in every layer
        max_k = min(info.n_neurons - 1 for info in hidden)
        grid = _grid(max_k, self.n_points)
        sets: list[list[int]] = [[], chosen]
        sets += [random_set(lambda info: counts[info.name]) for _ in range(self.n_repeats)]
        curve_start = len(sets)
        sets += [[n for info in hidden for n in least(info, int(kk))] for kk in grid]
        random_curve_start = len(sets)
        for _ in range(self.n_repeats):
            sets += [random_set(lambda info, kk=kk: int(kk)) for kk in grid]
        accuracy, _ = _reduce_sets(model, x, y, sets, fill, 32768, report, "pruning")

        report(0.95, "building the pruned model")
        self.pruned_ = prune_model(model, chosen, fill=fill)
        with torch.no_grad():
            pruned_logits = _plain_logits(self.pruned_, x)
            ablated = batched_logits(model, x, [chosen], fill=self.fill, means=fill)[0]
        if model.objective == "margin":
            k_out = pruned_logits.shape[1]
            pruned_logits = (k_out * pruned_logits - pruned_logits.sum(1, keepdim=True)) / max(
                k_out - 1, 1
            )
        self.max_output_difference_ = float(np.abs(pruned_logits.cpu().numpy() - ablated).max())
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
        rows = []
        random_block = accuracy[random_curve_start:].reshape(max(self.n_repeats, 1), -1)
        for j, kk in enumerate(grid):
            sizes = [info.n_neurons - int(kk) for info in hidden]
            randoms = random_block[:, j] if self.n_repeats else np.array([np.nan])
            rows.append(
                (
                    int(kk),
                    float(accuracy[curve_start + j]),
                    float(np.mean(randoms)),
                    float(np.percentile(randoms, 5)),
                    float(np.percentile(randoms, 95)),
                    _mlp_parameters(model, sizes),
                )
            )
        self.curve_ = pd.DataFrame(
            rows,
            columns=["k", "accuracy", "random_mean", "random_low", "random_high", "parameters"],
        )
        report(1.0, "pruning: done")
        return self

    @property
    def parameters_saved_(self) -> int:
        return self.parameters_before_ - self.parameters_after_


def _plain_logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from ..tracer import logits_of

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


def pruned_config(
    trace: NetworkTrace,
    pruning: Pruning,
    *,
    epoch: int | None,
) -> dict[str, Any]:
    """A JSON-ready description of a pruned built-in MLP: architecture, the run's config with
    the new hidden sizes, where it came from and what was removed."""
    config = trace.meta.get("config") if isinstance(trace.meta.get("config"), dict) else None
    dataset = trace.meta.get("dataset") if isinstance(trace.meta.get("dataset"), dict) else {}
    module = pruning.pruned_
    architecture = {
        "class": type(module).__name__,
        "n_inputs": trace.layers[0].n_neurons,
        "hidden_sizes": list(pruning.sizes_after_),
        "n_outputs": trace.layers[-1].n_neurons,
        "activation": getattr(module, "activation", None),
        "dropout": getattr(module, "dropout", None),
    }
    train_config = dict(config) if config else None
    if train_config is not None:
        train_config["hidden_sizes"] = list(pruning.sizes_after_)
    return {
        "format": "nn_tracing.pruned_model",
        "format_version": 1,
        "architecture": architecture,
        "train_config": train_config,
        "dataset": {k: v for k, v in dataset.items() if k not in ("feature_mean", "feature_scale")},
        "source": {"trace_digest": trace.digest, "epoch": epoch},
        "removed": {layer: ids for layer, ids in pruning.removed_.items()},
        "fill": pruning.fill,
        "probe_accuracy_before": pruning.accuracy_before_,
        "probe_accuracy_after": pruning.accuracy_after_,
        "n_parameters_before": pruning.parameters_before_,
        "n_parameters_after": pruning.parameters_after_,
        "load": "nn_tracing.MLP(n_inputs, hidden_sizes, n_outputs, activation, dropout)"
        ".load_state_dict(safetensors.torch.load_file(path))",
    }


def pruned_files(module: nn.Module, config: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The pruned model as safetensors (the config JSON in its metadata too) and the config.

    Returns
    -------
    ``(safetensors bytes, JSON bytes)``
    """
    from safetensors.torch import save

    text = json.dumps(config, indent=2, default=_json_default)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return save(tensors, metadata={"nn_tracing_config": text}), text.encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def pruned_trace(
    module: nn.Module,
    trace: NetworkTrace,
    config: Mapping[str, Any],
) -> NetworkTrace:
    """The pruned model traced on the source trace's probe set (one recorded epoch, ``E_0``,
    which here is the pruned model — not an untrained one; ``meta["pruned_from"]`` says so).

    A pruned built-in MLP stays rebuildable: its trace carries the config with the new hidden
    sizes, so the app can attribute, ablate and prune it again.
    """
    from ..tracer import TraceableNN

    assert trace.probe is not None
    x, y = trace.probe
    builtin = bool((trace.meta.get("model") or {}).get("builtin")) and isinstance(module, nn.Module)
    meta: dict[str, Any] = {
        "dataset": trace.meta.get("dataset"),
        "model": {
            "class": type(module).__name__,
            "builtin": builtin and config.get("train_config") is not None,
            "architecture": "pruned "
            + "-".join(str(s) for s in config["architecture"]["hidden_sizes"]),
        },
        "pruned_from": {
            **dict(config.get("source") or {}),
            "removed": config.get("removed"),
            "fill": config.get("fill"),
            "note": "E_0 of this trace is the pruned model, not an untrained network",
        },
    }
    if config.get("train_config") is not None:
        meta["config"] = dict(config["train_config"])
    tracer = TraceableNN(
        copy.deepcopy(module),
        probe=(torch.as_tensor(x), torch.as_tensor(y)),
        epoch_intervals=-1,
        num_epochs=1,
        meta=meta,
    )
    return tracer.finish()


# -- intervention --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Intervention:
    """One change to the network.

    ``kind`` is ``"clamp"`` (``neuron``'s activation := ``value``), ``"scale"``
    (activation × ``value``) or ``"weight"`` (the weight from input ``column`` to neuron
    ``row`` of ``layer`` := ``value``).
    """

    kind: str
    value: float
    neuron: int | None = None
    layer: str | None = None
    row: int | None = None
    column: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in INTERVENTIONS:
            raise ValueError(f"kind={self.kind!r}: use one of {', '.join(INTERVENTIONS)}")
        if self.kind in ("clamp", "scale") and self.neuron is None:
            raise ValueError(f"a {self.kind} intervention needs neuron=")
        if self.kind == "weight" and (
            self.layer is None or self.row is None or self.column is None
        ):
            raise ValueError("a weight intervention needs layer=, row= and column=")
        if not np.isfinite(self.value):
            raise ValueError(f"value={self.value!r} must be finite")

    def describe(self, epoch: int | None = None) -> str:
        e = epoch if epoch is not None else -1
        if self.kind == "clamp":
            return f"clamp n_{self.neuron} to {self.value:g}"
        if self.kind == "scale":
            return f"scale n_{self.neuron} by {self.value:g}"
        return f"set weight [{self.row}, {self.column}] of E_{e}/L_{self.layer} to {self.value:g}"


@dataclass(frozen=True)
class DecisionBoundary:
    """Predictions on a grid over a 2-D input plane, before and after a change.

    ``xs`` and ``ys`` (arrays of shape (resolution,)) span the plane; ``before`` and
    ``after`` are arrays of shape (resolution * resolution,) — the predicted class at
    ``(xs[i % resolution], ys[i // resolution])`` — and ``confidence_before`` /
    ``confidence_after`` the softmax probability of that class.
    """

    xs: np.ndarray
    ys: np.ndarray
    before: np.ndarray
    after: np.ndarray
    confidence_before: np.ndarray
    confidence_after: np.ndarray

    @property
    def changed_share(self) -> float:
        """Share of the plane whose predicted class changed."""
        return float((self.before != self.after).mean())


@dataclass(frozen=True)
class InterventionResult:
    """What an intervention changes on the probe set.

    Attributes
    ----------
    intervention : the change
    labels : array of shape (n_samples,)
    logits_before, logits_after : arrays of shape (n_samples, n_classes)
    activations_before, activations_after : arrays of shape (n_samples, n_neurons)
    old_value : the weight's value before a weight edit (``None`` otherwise)
    boundary : the decision boundary for 2-D inputs (``None`` otherwise)
    """

    intervention: Intervention
    labels: np.ndarray
    logits_before: np.ndarray
    logits_after: np.ndarray
    activations_before: np.ndarray = field(repr=False)
    activations_after: np.ndarray = field(repr=False)
    old_value: float | None = None
    boundary: DecisionBoundary | None = None

    @property
    def accuracy_before(self) -> float:
        return float((self.logits_before.argmax(1) == self.labels).mean())

    @property
    def accuracy_after(self) -> float:
        return float((self.logits_after.argmax(1) == self.labels).mean())

    @property
    def flipped(self) -> np.ndarray:
        return np.flatnonzero(self.logits_before.argmax(1) != self.logits_after.argmax(1))

    def changed_neurons(self, tolerance: float = 1e-6) -> np.ndarray:
        """Global ids whose activation changed by more than ``tolerance`` on some sample."""
        delta = np.abs(self.activations_after - self.activations_before).max(0)
        return np.flatnonzero(delta > tolerance)

    def layer_changes(self, layers: Sequence[Any]) -> pd.DataFrame:
        """Per layer: ``layer``, ``changed`` neurons, ``max_abs_change``, ``mean_abs_change``."""
        delta = np.abs(self.activations_after - self.activations_before)
        rows = []
        for info in layers:
            block = delta[:, info.first_id : info.last_id + 1]
            rows.append(
                (
                    info.name,
                    int((block.max(0) > 1e-6).sum()),
                    float(block.max()),
                    float(block.mean()),
                )
            )
        return pd.DataFrame(rows, columns=["layer", "changed", "max_abs_change", "mean_abs_change"])

    def comparison(self, class_names: Sequence[str] | None = None) -> AblationResult:
        """The before/after outputs as an :class:`AblationResult` (per-class accuracy and
        logits, confusion matrices, flipped samples)."""
        k = self.logits_before.shape[1]
        names = (
            tuple(str(c) for c in class_names)
            if class_names is not None and len(class_names) == k
            else tuple(str(c) for c in range(k))
        )
        neurons = (self.intervention.neuron,) if self.intervention.neuron is not None else ()
        return AblationResult(
            neurons=tuple(int(n) for n in neurons),
            fill=self.intervention.kind,
            labels=self.labels,
            logits_before=self.logits_before,
            logits_after=self.logits_after,
            class_names=names,
        )

    def flipped_frame(self, class_names: Sequence[str] | None = None) -> pd.DataFrame:
        """The samples whose prediction flipped (see :meth:`AblationResult.flipped_frame`)."""
        return self.comparison(class_names).flipped_frame()


def decision_grid(
    x: np.ndarray, resolution: int = 40, margin: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grid over the plane of 2-D inputs ``x`` (array (n, 2)), ``margin`` of the range wider.

    Returns
    -------
    ``xs`` (resolution,), ``ys`` (resolution,), ``points`` (resolution², 2) float32, row-major
    (x varies fastest).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError("a decision boundary needs 2-D inputs")
    low, high = x.min(0), x.max(0)
    pad = (high - low) * margin + 1e-6
    xs = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    ys = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


@contextmanager
def _applied(model: NeuronModel, intervention: Intervention) -> Iterator[float | None]:
    if intervention.kind == "weight":
        with model.weight_edited(
            str(intervention.layer),
            int(intervention.row),  # type: ignore[arg-type]
            int(intervention.column),  # type: ignore[arg-type]
            float(intervention.value),
        ) as old:
            yield old
        return
    neuron = int(intervention.neuron)  # type: ignore[arg-type]
    info = model.layer_of(neuron)
    mul = torch.ones(1, info.n_neurons)
    add = torch.zeros(1, info.n_neurons)
    j = neuron - info.first_id
    if intervention.kind == "clamp":
        mul[0, j] = 0.0
        add[0, j] = float(intervention.value)
    else:
        mul[0, j] = float(intervention.value)
    with model.edited({info.name: (mul, add)}):
        yield None


def intervene(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    intervention: Intervention,
    *,
    boundary_resolution: int = 40,
) -> InterventionResult:
    """Apply ``intervention`` and report what changes on ``(x, y)``.

    For 2-D inputs the decision boundary is evaluated on a ``boundary_resolution`` grid
    over the probe's range (see :func:`decision_grid`), before and after.
    """
    x = _as_tensor(x, model)
    logits_before = model.logits(x).cpu().numpy()
    acts_before = model.activations(x).cpu().numpy()
    grid = None
    if x.dim() == 2 and x.shape[1] == 2 and boundary_resolution > 1:
        grid = decision_grid(x.cpu().numpy(), boundary_resolution)
        grid_before = torch.softmax(model.logits(grid[2]), 1).cpu().numpy()
    with _applied(model, intervention) as old:
        logits_after = model.logits(x).cpu().numpy()
        acts_after = model.activations(x).cpu().numpy()
        grid_after = torch.softmax(model.logits(grid[2]), 1).cpu().numpy() if grid else None
    boundary = None
    if grid is not None and grid_after is not None:
        boundary = DecisionBoundary(
            xs=grid[0],
            ys=grid[1],
            before=grid_before.argmax(1),
            after=grid_after.argmax(1),
            confidence_before=grid_before.max(1),
            confidence_after=grid_after.max(1),
        )
    return InterventionResult(
        intervention=intervention,
        labels=np.asarray(torch.as_tensor(y).cpu(), dtype=np.int64),
        logits_before=logits_before,
        logits_after=logits_after,
        activations_before=acts_before,
        activations_after=acts_after,
        old_value=old,
        boundary=boundary,
    )
