"""One neuron's health flags over training, without the whole trace's matrices.

:func:`~nn_tracing.analysis.health.neuron_health` flags every neuron at every recorded epoch:
on a trace of 100k neurons × 100 epochs that is four metric matrices of 10M cells (seconds).
The Neurons page's health line needs one neuron's flags only: :func:`neuron_flags` computes
them from that neuron's history (one query) and two figures of its layer — the median
gradient norm at every recorded epoch (starved) and the median weight norm at the first
recorded epoch (exploding), over the layer's finite values — with the same definitions and
thresholds (the module docstring of :mod:`nn_tracing.analysis.health`), so it gives the same
flags as ``neuron_health(trace).of_neuron(neuron)`` (:func:`flags_of` reads those).

On a run directory the layer's medians are DuckDB quantiles over its Parquet parts
(:meth:`~nn_tracing.trace_query.NeuronQuery.layer_quantiles`); on a trace in memory, NumPy
over the layer's columns. The saturation flag (bounded activations only) reads each recorded
epoch's probe activations, as the whole-trace computation does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..trace import LayerInfo, NetworkTrace
from .health import (
    BOUNDED,
    FLAGS,
    RECTIFIERS,
    HealthThresholds,
    NeuronHealth,
    saturation_share,
    sustained,
)

__all__ = ["LayerReferences", "NeuronFlags", "flags_of", "layer_references", "neuron_flags"]


@dataclass(frozen=True)
class NeuronFlags:
    """One neuron's four flags at every recorded epoch.

    Attributes
    ----------
    neuron : its global id
    history : ``epoch`` and one bool column per flag (False where the flag does not apply),
        one row per recorded epoch — as :meth:`NeuronHealth.of_neuron`
    applies : ``{flag: bool}``, whether the flag is defined for this neuron
    thresholds : the thresholds used
    """

    neuron: int
    history: pd.DataFrame
    applies: dict[str, bool]
    thresholds: HealthThresholds = field(default_factory=HealthThresholds)


@dataclass(frozen=True)
class LayerReferences:
    """What one neuron's flags compare it with in its layer (the same for each of its
    neurons: computed once per layer).

    Attributes
    ----------
    layer : the layer's name
    grad_median : median gradient norm over the layer's finite values at every recorded
        epoch, shape (n_epochs,), NaN where none
    grad_count : how many finite gradient norms the layer has at each epoch
    w_norm_first : median incoming-weight norm over the layer's finite values at the first
        recorded epoch (NaN where none)
    w_norm_count : how many finite weight norms the layer has at the first recorded epoch
    """

    layer: str
    grad_median: np.ndarray
    grad_count: np.ndarray
    w_norm_first: float
    w_norm_count: int


def layer_references(trace: NetworkTrace, layer: str) -> LayerReferences:
    """The medians of ``layer`` that its neurons' starved and exploding flags need: two
    queries of the layer (on a run directory, DuckDB quantiles over the parts)."""
    info = trace.layer(layer)
    grad_median, grad_count = _layer_medians(trace, info, "grad_norm", trace.epochs)
    w_median, w_count = _layer_medians(trace, info, "w_norm", trace.epochs[:1])
    return LayerReferences(
        layer=info.name,
        grad_median=grad_median,
        grad_count=grad_count,
        w_norm_first=float(w_median[0]) if len(w_median) else float("nan"),
        w_norm_count=int(w_count[0]) if len(w_count) else 0,
    )


def flags_of(health: NeuronHealth, neuron: int) -> NeuronFlags:
    """The flags of ``neuron`` in the whole trace's ``health``."""
    return NeuronFlags(
        neuron=int(neuron),
        history=health.of_neuron(neuron),
        applies={flag: bool(health.applies[flag][neuron]) for flag in FLAGS},
        thresholds=health.thresholds,
    )


def _layer_medians(
    trace: NetworkTrace, info: LayerInfo, metric: str, epochs: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The median of ``metric`` over the layer's finite values at each of ``epochs``, and
    how many finite values it had: arrays of shape (len(epochs),); the median NaN where none."""
    if trace.query is not None:
        return trace.query.layer_medians(metric, trace.layers.index(info), epochs)
    positions = [trace.epochs.index(e) for e in epochs]
    block = trace.layer_metric(metric, info.name)[positions]
    if metric == "w_norm":  # as exploding_mask: in float64
        block = block.astype(np.float64)
    finite = np.isfinite(block)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # epochs where the layer has none
        median = np.nanmedian(np.where(finite, block, np.nan), axis=1)
    return median, finite.sum(axis=1)


def _starved(
    info: LayerInfo, own: np.ndarray, references: LayerReferences, thresholds: HealthThresholds
) -> tuple[np.ndarray, bool]:
    """Gradient-starved at each epoch (see :func:`~nn_tracing.analysis.health.starved_mask`
    and :func:`~nn_tracing.analysis.health.sustained`), and whether the flag applies."""
    median = references.grad_median
    applies = info.kind != "input" and bool((references.grad_count > 0).any())
    if not applies:
        return np.zeros(len(own), dtype=bool), False
    limit = thresholds.starved_ratio * median
    with np.errstate(invalid="ignore"):
        below = np.where(median > 0, own < limit, own <= 0) & np.isfinite(own)
    return sustained(below[:, None], thresholds.starved_epochs)[:, 0], True


def _exploding(
    info: LayerInfo, own: np.ndarray, references: LayerReferences, thresholds: HealthThresholds
) -> tuple[np.ndarray, bool]:
    """Exploding at each epoch (see :func:`~nn_tracing.analysis.health.exploding_mask`), and
    whether the flag applies."""
    own = own.astype(np.float64)
    n_epochs = len(own)
    if info.kind == "input" or n_epochs == 0:
        return np.zeros(n_epochs, dtype=bool), False
    if references.w_norm_count == 0:  # no weights at the first recorded epoch
        return np.zeros(n_epochs, dtype=bool), False
    reference = np.fmax(np.fmax(own[0], references.w_norm_first), 1e-12)
    with np.errstate(all="ignore"):
        ratio = own / reference
        rising = np.zeros(n_epochs, dtype=bool)
        rising[1:] = own[1:] > own[:-1]
        big = ratio >= thresholds.exploding_factor
    still_growing = np.zeros(n_epochs, dtype=bool)
    if n_epochs > 1:
        still_growing[1:] = sustained(rising[1:, None], thresholds.exploding_epochs)[:, 0]
    return (big & still_growing) | ~np.isfinite(own), True


def _saturated(
    trace: NetworkTrace, info: LayerInfo, neuron: int, thresholds: HealthThresholds
) -> tuple[np.ndarray, bool]:
    """Saturated at each epoch (see :func:`~nn_tracing.analysis.health.saturation_share`),
    and whether the flag applies: reads each epoch's probe activations."""
    flags = np.zeros(len(trace.epochs), dtype=bool)
    if info.activation not in BOUNDED:
        return flags, False
    alone = [LayerInfo(info.name, info.kind, 1, 0, activation=info.activation)]
    for row, epoch in enumerate(trace.epochs):
        acts = trace.probe_activations(epoch)
        if acts is None or acts.ndim != 2 or acts.shape[1] != trace.n_neurons:
            continue
        share = saturation_share(acts[:, neuron : neuron + 1], alone, thresholds.saturation_slope)
        flags[row] = bool(share[0] > thresholds.saturation_share)
    return flags, True


def neuron_flags(
    trace: NetworkTrace,
    neuron: int,
    thresholds: HealthThresholds | None = None,
    references: LayerReferences | None = None,
) -> NeuronFlags:
    """The four flags of global neuron ``neuron`` at every recorded epoch (the same as
    ``neuron_health(trace, thresholds)``'s for that neuron), from its history and its
    layer's medians only (``references``: its layer's :func:`layer_references`, computed
    when not given)."""
    thresholds = thresholds or HealthThresholds()
    info = trace.layer_of(neuron)
    if references is None or references.layer != info.name:
        references = layer_references(trace, info.name)
    own = trace.neuron_history(neuron)
    with np.errstate(invalid="ignore"):
        dead = own["act_max"].to_numpy() <= 0
    dead_applies = info.activation in RECTIFIERS
    grad, w_norm = own["grad_norm"].to_numpy(), own["w_norm"].to_numpy()
    starved, starved_applies = _starved(info, grad, references, thresholds)
    exploding, exploding_applies = _exploding(info, w_norm, references, thresholds)
    saturated, saturated_applies = _saturated(trace, info, neuron, thresholds)
    history = pd.DataFrame({"epoch": list(trace.epochs)})
    history["dead"] = dead & dead_applies
    history["saturated"] = saturated
    history["starved"] = starved
    history["exploding"] = exploding
    return NeuronFlags(
        neuron=int(neuron),
        history=history,
        applies={
            "dead": dead_applies,
            "saturated": saturated_applies,
            "starved": starved_applies,
            "exploding": exploding_applies,
        },
        thresholds=thresholds,
    )
