"""Neuron health: dead, saturated, gradient-starved and exploding neurons, every recorded epoch.

Four flags, each defined on the fixed probe set (or the incoming weights) so that epochs compare:

* **dead** — the neuron is never active on the probe: ``act_max <= 0`` (equivalently
  ``act_active == 0``). Defined for hidden layers whose activation is a rectifier (ReLU and its
  relatives, :data:`RECTIFIERS`), where a neuron that never fires passes no gradient back.
* **saturated** — for a bounded activation (tanh, sigmoid, …; :data:`BOUNDED`), the neuron sits
  near a bound for most probe samples: on more than ``saturation_share`` (50 %) of them its
  activation's slope is below ``saturation_slope`` (5 %) of the activation's largest slope. For
  tanh that is ``|a| > 0.975``; for the sigmoid ``a < 0.013`` or ``a > 0.987``. Needs the probe
  activations of each epoch.
* **gradient-starved** — the norm of the probe-loss gradient with respect to the neuron's
  incoming weights is below ``starved_ratio`` (1 %) of the median of its layer — a hundred
  times weaker than a typical neuron of the same layer — at each of the last
  ``starved_epochs`` (3) recorded epochs up to this one (at the start of a trace, at every
  recorded epoch so far). A layer whose median is 0 counts its neurons with exactly zero
  gradient. Defined for every layer with incoming weights.
* **exploding** — the norm of the incoming weights is at least ``exploding_factor`` (10) times
  its reference at ``E_0`` (the larger of its own ``E_0`` norm and its layer's median ``E_0``
  norm, so that a neuron initialised near zero is not flagged for ordinary growth) *and* it
  grew at each of the last ``exploding_epochs`` (3) recorded epochs (every step so far at the
  start of a trace): weights still growing, far beyond where they started. A non-finite norm
  (NaN or infinite weights: a run that diverged) is exploding too. Defined for every layer with
  incoming weights.

Where a flag is not defined (the input layer, the output logits, an activation it does not
apply to) the neuron counts neither as flagged nor in the denominator. Nothing here imports
Streamlit; all arrays are NumPy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..progress import Progress, reporter
from ..timeaxis import time_key
from ..trace import LayerInfo, NetworkTrace, signature_column

__all__ = [
    "BOUNDED",
    "FLAGS",
    "FLAG_TITLES",
    "HEALTHY",
    "HEALTH_LABELS",
    "NOT_DEFINED",
    "RECTIFIERS",
    "HealthThresholds",
    "NeuronHealth",
    "dead_mask",
    "exploding_mask",
    "neuron_health",
    "saturation_share",
    "starved_mask",
    "sustained",
]

#: The flags, in display order.
FLAGS: tuple[str, ...] = ("dead", "saturated", "starved", "exploding")
FLAG_TITLES: dict[str, str] = {
    "dead": "dead",
    "saturated": "saturated",
    "starved": "gradient-starved",
    "exploding": "exploding",
}
#: The label of a neuron that carries no flag, and of one where no flag is defined.
HEALTHY = "healthy"
NOT_DEFINED = "n/a"
#: Every label :meth:`NeuronHealth.labels` gives, in legend order (the flags in precedence).
HEALTH_LABELS: tuple[str, ...] = (*(FLAG_TITLES[f] for f in FLAGS), HEALTHY, NOT_DEFINED)

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
    """The thresholds of the four flags (see the module docstring)."""

    saturation_slope: float = 0.05
    saturation_share: float = 0.5
    starved_ratio: float = 0.01
    starved_epochs: int = 3
    exploding_factor: float = 10.0
    exploding_epochs: int = 3

    def __post_init__(self) -> None:
        for name in ("starved_epochs", "exploding_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        for name in ("saturation_slope", "saturation_share", "starved_ratio"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name}={value!r} must be in (0, 1)")
        if not self.exploding_factor > 1:
            raise ValueError(f"exploding_factor={self.exploding_factor!r} must be above 1")

    def describe(self) -> dict[str, str]:
        """A sentence per flag that states its definition with these thresholds."""
        k_starved, k_exploding = self.starved_epochs, self.exploding_epochs
        return {
            "dead": "never active on the probe set (act_max ≤ 0); rectifier layers only",
            "saturated": (
                f"slope of the activation below {self.saturation_slope:.0%} of its maximum on "
                f"more than {self.saturation_share:.0%} of probe samples (tanh: |a| > "
                f"{np.sqrt(1 - self.saturation_slope):.3f}); bounded activations only"
            ),
            "starved": (
                f"gradient norm below {self.starved_ratio:.0%} of its layer's median at each "
                f"of the last {k_starved} recorded epochs (every recorded epoch so far when "
                "fewer); layers with weights only"
            ),
            "exploding": (
                f"incoming-weight norm at least {self.exploding_factor:g}× its E_0 norm (or its "
                f"layer's median E_0 norm, if larger) and still growing at each of the last "
                f"{k_exploding} recorded epochs — or not finite; layers with weights only"
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
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # epochs where the layer has none
            median = np.nanmedian(np.where(finite, block, np.nan), axis=1)
        limit = ratio * median
        thresholds[:, j] = limit
        with np.errstate(invalid="ignore"):
            below = np.where((median > 0)[:, None], block < limit[:, None], block <= 0)
        mask[:, columns] = below & finite
    return mask, thresholds


def sustained(mask: np.ndarray, epochs: int) -> np.ndarray:
    """Where ``mask`` has held at each of the last ``epochs`` rows up to and including this one.

    At the start (row ``i < epochs - 1``) every row so far must hold.

    Parameters
    ----------
    mask : bool array of shape (n_epochs, n_neurons)
    epochs : the window length, at least 1

    Returns
    -------
    bool array of shape (n_epochs, n_neurons)

    Examples
    --------
    >>> sustained(np.array([[True], [True], [False], [True], [True], [True]]), 2)[:, 0].tolist()
    [True, True, False, False, True, True]
    """
    mask = np.asarray(mask, dtype=bool)
    run = np.zeros(mask.shape, dtype=np.int32)  # consecutive True rows ending here
    for row in range(mask.shape[0]):
        previous = run[row - 1] if row else 0
        run[row] = np.where(mask[row], previous + 1, 0)
    needed = np.minimum(np.arange(mask.shape[0]) + 1, epochs)
    return run >= needed[:, None]


def exploding_mask(
    w_norm: np.ndarray,
    layer_slices: list[slice],
    factor: float = 10.0,
    epochs: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Exploding neurons: incoming-weight norm ``factor`` × its reference and still growing.

    The reference of a neuron is the larger of its own norm at the first recorded epoch
    (``E_0``) and its layer's median norm there. A neuron is exploding at a recorded epoch when
    its norm is at least ``factor`` × the reference and it grew at each of the last ``epochs``
    steps between recorded epochs (every step so far at the start; never at the first recorded
    epoch), or when its norm is not finite.

    Parameters
    ----------
    w_norm : array of shape (n_epochs, n_neurons)
    layer_slices : the neuron columns of each layer
    factor : growth over the reference that counts as exploding (> 1)
    epochs : consecutive growing steps required

    Returns
    -------
    ``(mask, growth)``: bool array of shape (n_epochs, n_neurons) (columns of layers without
    weights are False) and the norm over its reference, float array of the same shape (NaN
    where the neuron has no weights).
    """
    w_norm = np.asarray(w_norm)
    n_epochs = w_norm.shape[0]
    growth = np.full(w_norm.shape, np.nan, dtype=np.float32)
    mask = np.zeros(w_norm.shape, dtype=bool)
    if n_epochs == 0:
        return mask, growth
    for columns in layer_slices:
        block = w_norm[:, columns].astype(np.float64)  # one layer at a time
        first = block[0]
        if not np.isfinite(first).any():  # no weights (the input layer)
            continue
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            layer_median = np.nanmedian(np.where(np.isfinite(first), first, np.nan))
            reference = np.fmax(np.fmax(first, layer_median), 1e-12)
            ratio = block / reference[None, :]
            rising = np.zeros(block.shape, dtype=bool)
            rising[1:] = block[1:] > block[:-1]
        # growth at each of the last `epochs` steps: steps are rows 1.., so shift by one row
        steps = sustained(rising[1:], epochs) if n_epochs > 1 else np.zeros((0, block.shape[1]))
        still_growing = np.zeros(block.shape, dtype=bool)
        still_growing[1:] = steps
        with np.errstate(invalid="ignore"):
            big = ratio >= factor
        growth[:, columns] = ratio
        mask[:, columns] = (big & still_growing) | ~np.isfinite(block)
    return mask, growth


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
    """The four flags of every neuron at every recorded epoch, and the values behind them.

    Attributes
    ----------
    epochs : the recorded epochs, in order
    layers : the trace's layers
    flags : ``{flag: bool array of shape (n_epochs, n_neurons)}``
    applies : ``{flag: bool array of shape (n_neurons,)}``, where the flag is defined
    saturation : share of saturated probe samples, array of shape (n_epochs, n_neurons)
        (NaN where not defined or where the epoch has no probe activations)
    grad_ratio : gradient norm over its layer's median at that epoch, array of shape
        (n_epochs, n_neurons) (NaN where not defined)
    w_growth : incoming-weight norm over its ``E_0`` reference (see :func:`exploding_mask`),
        array of shape (n_epochs, n_neurons) (NaN where not defined)
    act_active : fraction of probe samples with activation > 0, shape (n_epochs, n_neurons)
    thresholds : the thresholds used
    """

    epochs: list[int]
    layers: list[LayerInfo]
    flags: dict[str, np.ndarray]
    applies: dict[str, np.ndarray]
    saturation: np.ndarray
    grad_ratio: np.ndarray
    w_growth: np.ndarray
    act_active: np.ndarray
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

    def table(self, epoch: int) -> pd.DataFrame:
        """Every neuron at ``epoch``: its flags and the values behind them.

        Columns: ``signature``, ``layer``, ``neuron``, one nullable-boolean column per flag
        (``<NA>`` where the flag is not defined for the neuron), ``n_flags``, ``act_active``,
        ``saturation``, ``grad_ratio`` and ``w_growth`` (see the attributes). One row per
        neuron, in id order.
        """
        row = self.epochs.index(epoch)
        codes, _ = _columns(self.layers)
        names = np.array([info.name for info in self.layers], dtype=object)
        ids = np.arange(codes.size)
        layer_of = names[codes]
        frame = pd.DataFrame(
            {
                "signature": signature_column(epoch, layer_of, ids),
                "layer": layer_of,
                "neuron": ids,
            }
        )
        n_flags = np.zeros(ids.size, dtype=np.int64)
        for flag in FLAGS:
            values = self.flags[flag][row]
            n_flags += values
            column = pd.array(values, dtype="boolean")
            column[~self.applies[flag]] = pd.NA
            frame[flag] = column
        frame["n_flags"] = n_flags
        frame["act_active"] = self.act_active[row].astype(np.float64)
        frame["saturation"] = self.saturation[row]
        frame["grad_ratio"] = self.grad_ratio[row]
        frame["w_growth"] = self.w_growth[row]
        return frame

    def labels(self, epoch: int, neuron_ids: np.ndarray | None = None) -> np.ndarray:
        """One label per neuron at ``epoch``: the title of its first flag in :data:`FLAGS`
        order (a dead neuron that is also starved is "dead"), :data:`HEALTHY` when it carries
        none, :data:`NOT_DEFINED` where no flag is defined for it (the input layer).

        Parameters
        ----------
        epoch : a recorded epoch
        neuron_ids : int array of shape (n,), global neuron ids (default: every neuron)

        Returns
        -------
        object array of shape (n,) of labels from :data:`HEALTH_LABELS`.
        """
        row = self.epochs.index(epoch)
        if neuron_ids is None:
            neuron_ids = np.arange(self.flags[FLAGS[0]].shape[1])
        labels = np.full(len(neuron_ids), HEALTHY, dtype=object)
        applies = np.zeros(len(neuron_ids), dtype=bool)
        for flag in reversed(FLAGS):  # the first flag in FLAGS is written last: it wins
            applies |= self.applies[flag][neuron_ids]
            labels[self.flags[flag][row][neuron_ids]] = FLAG_TITLES[flag]
        labels[~applies] = NOT_DEFINED
        return labels

    def of_neuron(self, neuron_id: int) -> pd.DataFrame:
        """One neuron's flags over the epochs (``epoch`` + a bool column per flag)."""
        frame = pd.DataFrame({"epoch": self.epochs})
        for flag in FLAGS:
            frame[flag] = self.flags[flag][:, neuron_id]
        return frame


def _grad_ratio(grad_norm: np.ndarray, layer_slices: list[slice]) -> np.ndarray:
    """Gradient norm over its layer's median at each epoch, shape (n_epochs, n_neurons)."""
    ratio = np.full(grad_norm.shape, np.nan, dtype=np.float32)
    for columns in layer_slices:
        block = grad_norm[:, columns].astype(np.float64)
        if not np.isfinite(block).any():
            continue
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # epochs where the layer has none
            median = np.nanmedian(np.where(np.isfinite(block), block, np.nan), axis=1)
            ratio[:, columns] = block / median[:, None]
    return ratio


def _metric_matrices(trace: NetworkTrace, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``{name: trace.metric(name)}``; from a run directory, in one pass over its parts."""
    if trace.query is not None and trace.epochs:
        return trace.query.metric_matrices(names)
    return {name: trace.metric(name) for name in names}


def neuron_health(
    trace: NetworkTrace,
    thresholds: HealthThresholds | None = None,
    *,
    progress: Progress | None = None,
) -> NeuronHealth:
    """Compute the four flags for every neuron of ``trace`` at every recorded epoch.

    The saturation flag reads each epoch's probe activations (one epoch at a time) and only
    when some layer has a bounded activation; ``progress(fraction, message)`` is called after
    each.
    """
    thresholds = thresholds or HealthThresholds()
    layers = trace.layers
    epochs = trace.epochs
    n = trace.n_neurons
    _, slices = _columns(layers)

    dead_applies = _rectifier_columns(layers, n)
    matrices = _metric_matrices(trace, ("act_max", "grad_norm", "w_norm", "act_active"))
    dead = dead_mask(matrices["act_max"], dead_applies)

    grad = matrices["grad_norm"]
    starved_applies = np.zeros(n, dtype=bool)
    for info, columns in zip(layers, slices, strict=True):
        if info.kind != "input" and np.isfinite(grad[:, columns]).any():
            starved_applies[columns] = True
    below, _ = starved_mask(grad, slices, thresholds.starved_ratio)
    starved = sustained(below, thresholds.starved_epochs) & starved_applies[None, :]
    grad_ratio = _grad_ratio(grad, slices)
    grad_ratio[:, ~starved_applies] = np.nan

    w_norm = matrices["w_norm"]
    exploding_applies = np.zeros(n, dtype=bool)
    for info, columns in zip(layers, slices, strict=True):
        if info.kind != "input" and w_norm.shape[0] and np.isfinite(w_norm[0, columns]).any():
            exploding_applies[columns] = True
    exploding, w_growth = exploding_mask(
        w_norm, slices, thresholds.exploding_factor, thresholds.exploding_epochs
    )
    exploding &= exploding_applies[None, :]
    w_growth[:, ~exploding_applies] = np.nan

    saturated_applies = np.zeros(n, dtype=bool)
    for info, columns in zip(layers, slices, strict=True):
        if info.activation in BOUNDED:
            saturated_applies[columns] = True
    saturation = np.full((len(epochs), n), np.nan, dtype=np.float32)
    if saturated_applies.any():
        report = reporter(progress, len(epochs))
        for row, epoch in enumerate(epochs):
            acts = trace.probe_activations(epoch)
            if acts is not None and acts.ndim == 2 and acts.shape[1] == n:
                saturation[row] = saturation_share(acts, layers, thresholds.saturation_slope)
            report(row + 1, f"saturation at {time_key(epoch)}")
    with np.errstate(invalid="ignore"):
        saturated = (saturation > thresholds.saturation_share) & saturated_applies[None, :]

    return NeuronHealth(
        epochs=list(epochs),
        layers=list(layers),
        flags={"dead": dead, "saturated": saturated, "starved": starved, "exploding": exploding},
        applies={
            "dead": dead_applies,
            "saturated": saturated_applies,
            "starved": starved_applies,
            "exploding": exploding_applies,
        },
        saturation=saturation,
        grad_ratio=grad_ratio,
        w_growth=w_growth,
        act_active=matrices["act_active"].astype(np.float64),
        thresholds=thresholds,
    )
