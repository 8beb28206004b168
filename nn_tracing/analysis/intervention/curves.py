"""Ablation curves: accuracy against the number of a layer's neurons ablated.

:class:`AblationCurves` ablates a layer's neurons in order of attribution, reverse attribution,
class selectivity and at random (mean and band over repeats), and asks whether class
selectivity predicts a neuron's importance: the rank correlation of selectivity with the
effect of ablating the neuron alone, with a permutation p-value (Morcos et al. 2018);
:func:`selectivity_sentence` says the answer in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator

from ...progress import Progress, no_progress
from ...tracer import class_selectivity
from ..attribution import spearman
from ..neuron_model import NeuronModel
from .ablation import _as_tensor, _fill_values, _reduce_sets, layer_importance

__all__ = ["ORDERS", "AblationCurves", "selectivity_sentence"]

#: Orders of an ablation curve.
ORDERS: dict[str, str] = {
    "attribution": "most important first (mean |attribution| to each sample's own class)",
    "reverse": "least important first",
    "selectivity": "most class-selective first",
    "random": "random order",
}


def _grid(n: int, n_points: int) -> np.ndarray:
    """Up to ``n_points`` distinct counts from 0 to ``n``, both included."""
    return np.unique(np.round(np.linspace(0, n, max(2, min(n_points, n + 1)))).astype(int))


def _permutation_p(
    a: np.ndarray, b: np.ndarray, rho: float, n_permutations: int, rng: np.random.Generator
) -> float:
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


class AblationCurves(BaseEstimator):
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
        report = progress or no_progress
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

        orderings, random_orders = self._orderings(width, rng)
        # the intact network, each neuron alone, then every order's prefixes of k neurons
        singles_start = 1
        sets: list[list[int]] = [[], *([int(i)] for i in ids)]
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
        random_block = (
            accuracy[random_start:].reshape(len(random_orders), len(k)) if random_orders else None
        )
        self.curves_ = self._curves_frame(accuracy, starts, random_block)
        self.correlation_ = self._correlation(rng)
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

    def _orderings(
        self, width: int, rng: np.random.Generator
    ) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
        """The deterministic orders asked for (``{order: permutation of range(width)}``, NaN
        last) and ``n_repeats`` random permutations when ``"random"`` is asked for."""
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
        return orderings, random_orders

    def _curves_frame(
        self, accuracy: np.ndarray, starts: dict[str, int], random_block: np.ndarray | None
    ) -> pd.DataFrame:
        """:attr:`curves_` from the accuracy of every set: each deterministic order's block
        starts at ``starts[order]``; ``random_block`` (n_repeats, n_k) gives the band."""
        rows = []
        for name, start in starts.items():
            for j, kk in enumerate(self.k_):
                a = float(accuracy[start + j])
                rows.append((name, int(kk), a, a, a, 0.0))
        if random_block is not None:
            low, high = np.percentile(random_block, self.band, axis=0)
            for j, kk in enumerate(self.k_):
                rows.append(
                    (
                        "random",
                        int(kk),
                        float(random_block[:, j].mean()),
                        float(low[j]),
                        float(high[j]),
                        float(random_block[:, j].std()),
                    )
                )
        return pd.DataFrame(rows, columns=["order", "k", "accuracy", "low", "high", "std"])

    def _correlation(self, rng: np.random.Generator) -> dict[str, Any]:
        """:attr:`correlation_`: selectivity against the single-neuron loss rise, over the
        neurons where both are defined, with its permutation p-value and sentence."""
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
        return {
            "rho": rho,
            "p_value": p,
            "n": n,
            "n_permutations": self.n_permutations,
            "accuracy_rho": spearman(self.selectivity_, self.single_accuracy_drop_),
            "sentence": selectivity_sentence(
                rho, p, n, self.n_permutations, int(np.isfinite(self.single_loss_rise_).sum()) - n
            ),
        }
