"""Neuron health: dead, saturated and gradient-starved neurons at every recorded epoch.

Three flags, each defined on the fixed probe set so that epochs compare:

* **dead** — the neuron is never active on the probe: ``act_max <= 0`` (equivalently
  ``act_active == 0``). Defined for hidden layers whose activation is a rectifier (ReLU and its
  relatives, :data:`RECTIFIERS`), where a neuron that never fires passes no gradient back.
* **saturated** — for a bounded activation (tanh, sigmoid, …; :data:`BOUNDED`), the neuron sits
  near a bound for most probe samples: on more than ``saturation_share`` (50 %) of them its
  activation's slope is below ``saturation_slope`` (5 %) of the activation's largest slope. For
  tanh that is ``|a| > 0.975``; for the sigmoid ``a < 0.013`` or ``a > 0.987``. Needs the probe
  activations of each epoch.
* **gradient-starved** — the norm of the probe-loss gradient with respect to the neuron's
  incoming weights is below ``starved_ratio`` (1 %) of the median of its layer at that epoch —
  a hundred times weaker than a typical neuron of the same layer. A layer whose median is 0
  flags its neurons with exactly zero gradient. Defined for every layer with incoming weights.

Where a flag is not defined (the input layer, the output logits, an activation it does not
apply to) the neuron counts neither as flagged nor in the denominator. Nothing here imports
Streamlit; all arrays are NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..trace import LayerInfo, NetworkTrace

__all__ = [
    "BOUNDED",
    "FLAGS",
    "RECTIFIERS",
    "HealthThresholds",
    "NeuronHealth",
    "dead_mask",
    "neuron_health",
    "saturation_share",
    "starved_mask",
]

#: The flags, in display order.
FLAGS: tuple[str, ...] = ("dead", "saturated", "starved")
FLAG_TITLES: dict[str, str] = {
    "dead": "dead",
    "saturated": "saturated",
    "starved": "gradient-starved",
}

#: Activations (``LayerInfo.activation``, a module class name) for which "dead" is defined.
RECTIFIERS: frozenset[str] = frozenset(
    {
        "ReLU",
        "ReLU6",
        "LeakyReLU",
        "PReLU",
        "ELU",
        "SELU",
        "CELU",
        "GELU",
        "SiLU",
        "Mish",
        "Hardswish",
    }
)


def _tanh_slope(a: np.ndarray) -> np.ndarray:
    return 1.0 - a * a


def _sigmoid_slope(a: np.ndarray) -> np.ndarray:
    return 4.0 * a * (1.0 - a)


def _softsign_slope(a: np.ndarray) -> np.ndarray:
    return (1.0 - np.abs(a)) ** 2


def _hardtanh_slope(a: np.ndarray) -> np.ndarray:
    return (np.abs(a) < 1.0 - 1e-6).astype(np.float32)


def _hardsigmoid_slope(a: np.ndarray) -> np.ndarray:
    return ((a > 1e-6) & (a < 1.0 - 1e-6)).astype(np.float32)


#: Bounded activations and their slope as a function of the output, scaled to a maximum of 1.
BOUNDED: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Tanh": _tanh_slope,
    "Sigmoid": _sigmoid_slope,
    "Softsign": _softsign_slope,
    "Hardtanh": _hardtanh_slope,
    "Hardsigmoid": _hardsigmoid_slope,
}


@dataclass(frozen=True)
class HealthThresholds:
    """The thresholds of the three flags (see the module docstring)."""

    saturation_slope: float = 0.05
    saturation_share: float = 0.5
    starved_ratio: float = 0.01

    def describe(self) -> dict[str, str]:
        """A sentence per flag that states its definition with these thresholds."""
        return {
            "dead": "never active on the probe set (act_max ≤ 0); rectifier layers only",
            "saturated": (
                f"slope of the activation below {self.saturation_slope:.0%} of its maximum on "
                f"more than {self.saturation_share:.0%} of probe samples (tanh: |a| > "
                f"{np.sqrt(1 - self.saturation_slope):.3f}); bounded activations only"
            ),
            "starved": (
                f"gradient norm below {self.starved_ratio:.0%} of its layer's median at that "
                "epoch; layers with weights only"
            ),
        }


def _columns(layers: list[LayerInfo]) -> tuple[np.ndarray, list[slice]]:
    """The layer index of every neuron, shape (n_neurons,), and each layer's slice."""
    codes = np.concatenate([np.full(info.n_neurons, i) for i, info in enumerate(layers)])
    slices = [slice(info.first_id, info.last_id + 1) for info in layers]
    return codes, slices


def _rectifier_columns(layers: list[LayerInfo], n_neurons: int) -> np.ndarray:
    applies = np.zeros(n_neurons, dtype=bool)
    for info in layers:
        if info.activation in RECTIFIERS:
            applies[info.first_id : info.last_id + 1] = True
    return applies


def dead_mask(act_max: np.ndarray, applies: np.ndarray) -> np.ndarray:
    """Dead neurons: ``act_max <= 0`` where the flag applies.

    Parameters
    ----------
    act_max : array of shape (n_epochs, n_neurons)
    applies : bool array of shape (n_neurons,)

    Returns
    -------
    bool array of shape (n_epochs, n_neurons); NaN counts as not dead.
    """
    with np.errstate(invalid="ignore"):
        return (act_max <= 0) & applies[None, :]


def starved_mask(
    grad_norm: np.ndarray, layer_slices: list[slice], ratio: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient-starved neurons: below ``ratio`` × their layer's median gradient norm.

    Parameters
    ----------
    grad_norm : array of shape (n_epochs, n_neurons)
    layer_slices : the neuron columns of each layer
    ratio : the threshold relative to the layer median

    Returns
    -------
    ``(mask, thresholds)``: bool array of shape (n_epochs, n_neurons), and the threshold
    used, array of shape (n_epochs, n_layers) (NaN where the layer has no gradient).
    """
    mask = np.zeros(grad_norm.shape, dtype=bool)
    thresholds = np.full((grad_norm.shape[0], len(layer_slices)), np.nan)
    for j, columns in enumerate(layer_slices):
        block = grad_norm[:, columns]
        finite = np.isfinite(block)
        if not finite.any():
            continue
        with np.errstate(all="ignore"):
            median = np.nanmedian(np.where(finite, block, np.nan), axis=1)
        limit = ratio * median
        thresholds[:, j] = limit
        with np.errstate(invalid="ignore"):
            below = np.where((median > 0)[:, None], block < limit[:, None], block <= 0)
        mask[:, columns] = below & finite
    return mask, thresholds


def saturation_share(
    activations: np.ndarray, layers: list[LayerInfo], slope: float = 0.05
) -> np.ndarray:
    """Share of probe samples on which each neuron is saturated.

    Parameters
    ----------
    activations : array of shape (n_probe, n_neurons), one recorded epoch
    layers : the trace's layers (their ``activation`` picks the slope function)
    slope : saturated where the activation's slope is below this share of its maximum

    Returns
    -------
    float array of shape (n_neurons,), NaN where the activation is not bounded.
    """
    share = np.full(activations.shape[1], np.nan)
    for info in layers:
        slope_of = BOUNDED.get(info.activation or "")
        if slope_of is None:
            continue
        columns = slice(info.first_id, info.last_id + 1)
        values = activations[:, columns].astype(np.float64, copy=False)
        share[columns] = (slope_of(values) < slope).mean(axis=0)
    return share


@dataclass
class NeuronHealth:
    """The three flags of every neuron at every recorded epoch.

    Attributes
    ----------
    epochs : the recorded epochs, in order
    layers : the trace's layers
    flags : ``{flag: bool array of shape (n_epochs, n_neurons)}``
    applies : ``{flag: bool array of shape (n_neurons,)}``, where the flag is defined
    saturation : share of saturated probe samples, array of shape (n_epochs, n_neurons)
        (NaN where not defined or where the epoch has no probe activations)
    thresholds : the thresholds used
    """

    epochs: list[int]
    layers: list[LayerInfo]
    flags: dict[str, np.ndarray]
    applies: dict[str, np.ndarray]
    saturation: np.ndarray
    thresholds: HealthThresholds = field(default_factory=HealthThresholds)

    def counts(self) -> pd.DataFrame:
        """Flagged neurons per layer, flag and epoch.

        Columns: ``epoch``, ``layer``, ``flag``, ``count``, ``n_neurons`` (neurons where the
        flag is defined), ``share``; only (layer, flag) pairs where the flag is defined.
        """
        rows = []
        for flag in FLAGS:
            mask, applies = self.flags[flag], self.applies[flag]
            for info in self.layers:
                columns = slice(info.first_id, info.last_id + 1)
                n_defined = int(applies[columns].sum())
                if n_defined == 0:
                    continue
                counts = mask[:, columns].sum(axis=1)
                for epoch, count in zip(self.epochs, counts, strict=True):
                    rows.append((epoch, info.name, flag, int(count), n_defined))
        frame = pd.DataFrame(rows, columns=["epoch", "layer", "flag", "count", "n_neurons"])
        frame["share"] = frame["count"] / frame["n_neurons"].clip(lower=1)
        return frame

    def totals(self, epoch: int) -> dict[str, int]:
        """Flagged neurons of the whole network at ``epoch``, per flag."""
        row = self.epochs.index(epoch)
        return {flag: int(self.flags[flag][row].sum()) for flag in FLAGS}

    def flagged(self, epoch: int) -> pd.DataFrame:
        """The neurons flagged at ``epoch``: ``neuron``, ``layer`` and one bool column per flag."""
        row = self.epochs.index(epoch)
        any_flag = np.zeros(self.flags[FLAGS[0]].shape[1], dtype=bool)
        for flag in FLAGS:
            any_flag |= self.flags[flag][row]
        ids = np.flatnonzero(any_flag)
        codes, _ = _columns(self.layers)
        names = np.array([info.name for info in self.layers], dtype=object)
        frame = pd.DataFrame({"neuron": ids, "layer": names[codes[ids]]})
        for flag in FLAGS:
            frame[flag] = self.flags[flag][row][ids]
        return frame

    def of_neuron(self, neuron_id: int) -> pd.DataFrame:
        """One neuron's flags over the epochs (``epoch`` + a bool column per flag)."""
        frame = pd.DataFrame({"epoch": self.epochs})
        for flag in FLAGS:
            frame[flag] = self.flags[flag][:, neuron_id]
        return frame


def neuron_health(
    trace: NetworkTrace,
    thresholds: HealthThresholds | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> NeuronHealth:
    """Compute the three flags for every neuron of ``trace`` at every recorded epoch.

    The saturation flag reads each epoch's probe activations (one epoch at a time) and only
    when some layer has a bounded activation; ``progress(done, total)`` is called after each.
    """
    thresholds = thresholds or HealthThresholds()
    layers = trace.layers
    epochs = trace.epochs
    n = trace.n_neurons
    _, slices = _columns(layers)

    dead_applies = _rectifier_columns(layers, n)
    dead = dead_mask(trace.metric("act_max"), dead_applies)

    grad = trace.metric("grad_norm")
    starved_applies = np.zeros(n, dtype=bool)
    for info, columns in zip(layers, slices, strict=True):
        if info.kind != "input" and np.isfinite(grad[:, columns]).any():
            starved_applies[columns] = True
    starved, _ = starved_mask(grad, slices, thresholds.starved_ratio)
    starved &= starved_applies[None, :]

    saturated_applies = np.zeros(n, dtype=bool)
    for info, columns in zip(layers, slices, strict=True):
        if info.activation in BOUNDED:
            saturated_applies[columns] = True
    saturation = np.full((len(epochs), n), np.nan)
    if saturated_applies.any():
        for row, epoch in enumerate(epochs):
            acts = trace.probe_activations(epoch)
            if acts is not None and acts.ndim == 2 and acts.shape[1] == n:
                saturation[row] = saturation_share(acts, layers, thresholds.saturation_slope)
            if progress is not None:
                progress(row + 1, len(epochs))
    with np.errstate(invalid="ignore"):
        saturated = (saturation > thresholds.saturation_share) & saturated_applies[None, :]

    return NeuronHealth(
        epochs=list(epochs),
        layers=list(layers),
        flags={"dead": dead, "saturated": saturated, "starved": starved},
        applies={"dead": dead_applies, "saturated": saturated_applies, "starved": starved_applies},
        saturation=saturation,
        thresholds=thresholds,
    )
