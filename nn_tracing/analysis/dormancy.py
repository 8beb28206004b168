"""Dormant neurons (Sokar et al., ICML 2023) and contribution utility (Dohare et al., Nature 2024).

* **τ-dormant.** A hidden neuron's score is its mean absolute activation over the probe set
  divided by the average of the same over its layer's neurons,
  ``s_i = mean_x |h_i(x)| / ((1/N) Σ_j mean_x |h_j(x)|)``; the neuron is τ-dormant when
  ``s_i ≤ τ`` (:data:`DORMANT_TAUS`: 0, 0.025 and 0.1). A layer whose every neuron is silent
  (average 0) counts every neuron as dormant.
* **Contribution utility.** ``u_i = mean_x |h_i(x)| × Σ_k |w_{k,i}|``: the neuron's mean
  absolute activation times the absolute weights it sends to the next traced layer (for the
  last hidden layer, the output layer's). A convolution channel sends to every position of the
  next kernel (or of the flattened Linear input): those weights are summed too.

Where mean |activation| comes from. The tracer records ``act_mean``, ``act_min`` and
``act_max`` over the probe. A neuron whose activation does not change sign on the probe
(``act_min ≥ 0`` — every rectifier neuron — or ``act_max ≤ 0``) has
``mean |h| = |act_mean|`` exactly, for dense and convolutional layers alike (the statistics of a
channel are over every sample and position). A neuron that changes sign (tanh, GELU's negative
part) takes its value from the epoch's kept probe activations: exact when the trace keeps every
probe sample in float32 for a dense layer; an estimate when it keeps a subset, float16, or a
channel's per-sample means (``|mean over positions|`` is at most the mean of ``|h|``); NaN when
the epoch kept none. :attr:`Dormancy.sources` says which, per layer.

Over every epoch the neuron table is read one layer and metric at a time through
:meth:`NetworkTrace.layer_metric` (DuckDB over a run directory's parts, never the whole
frame). Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..trace import METRICS, LayerInfo, NetworkTrace

__all__ = [
    "DEFAULT_TAU",
    "DEFINITIONS",
    "DORMANT_TAUS",
    "Dormancy",
    "Utility",
    "contribution_utility",
    "dormancy",
    "dormant_scores",
    "hidden_layers",
    "mean_abs_at",
    "mean_abs_from_stats",
    "outgoing_abs_weights",
]

#: The thresholds τ of Sokar et al. (2023): 0 (silent on the whole probe), 0.025 and 0.1.
DORMANT_TAUS: tuple[float, ...] = (0.0, 0.025, 0.1)
#: The τ the pages show first.
DEFAULT_TAU = 0.025

#: The definitions, in one place, for every page and popover that states them (Markdown).
DEFINITIONS: dict[str, str] = {
    "dormant": (
        "**τ-dormant** (Sokar et al., ICML 2023): a hidden neuron whose mean |activation| over "
        "the probe set, divided by the average of the same over its layer, is at most τ "
        "(τ = 0: never non-zero on the probe; 0.025; 0.1). Dormant neurons pass (almost) "
        "nothing on: the network has lost that capacity."
    ),
    "utility": (
        "**Contribution utility** (Dohare et al., Nature 2024): mean |activation| on the probe "
        "× the sum of the absolute weights the neuron sends to the next layer — how much it "
        "feeds forward. Continual backpropagation re-initialises the lowest-utility neurons."
    ),
    "redo": (
        "**Recycle dormant neurons** (ReDo, Sokar et al., ICML 2023): re-initialise each "
        "τ-dormant neuron's incoming weights and bias with its layer's initialiser and set its "
        "outgoing weights to 0 — the outputs do not change at that moment, and the neuron "
        "can learn again."
    ),
}

#: Per-layer source of mean |activation| (see the module docstring).
_EXACT_STATS = "exact: no neuron changes sign (|act_mean|)"
_EXACT_KEPT = "exact: kept probe activations"
_ESTIMATE = "estimate: kept probe activations ({why})"
_MISSING = "unavailable at some epochs: neurons change sign and no activations were kept"


def hidden_layers(trace: NetworkTrace) -> list[LayerInfo]:
    """The layers a dormant score applies to: every traced layer but the input and the
    output (the last traced layer, whose activations are the logits)."""
    return list(trace.layers[1:-1])


def mean_abs_from_stats(
    act_mean: np.ndarray, act_min: np.ndarray, act_max: np.ndarray
) -> np.ndarray:
    """Mean |activation| where the recorded statistics determine it: ``|act_mean|`` where the
    activation keeps one sign (``act_min ≥ 0`` or ``act_max ≤ 0``), NaN elsewhere. Arrays of
    any one shape; float64 out."""
    mean = np.asarray(act_mean, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        one_sign = (np.asarray(act_min) >= 0) | (np.asarray(act_max) <= 0)
    return np.where(one_sign & np.isfinite(mean), np.abs(mean), np.nan)


def dormant_scores(mean_abs: np.ndarray) -> np.ndarray:
    """Sokar et al.'s score: each neuron's mean |activation| over its layer's average.

    Parameters
    ----------
    mean_abs : array of shape (..., n_neurons of one layer)

    Returns
    -------
    float64 array of the same shape. Where the layer's average is 0 every score is 0 (every
    neuron dormant); where any neuron of the layer is NaN, the whole row is NaN.
    """
    values = np.asarray(mean_abs, dtype=np.float64)
    average = values.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(average > 0, values / np.where(average > 0, average, 1.0), 0.0)
    return np.where(np.isnan(average), np.nan, scores)


def _kept_activation_quality(trace: NetworkTrace, info: LayerInfo) -> str | None:
    """``None`` when kept activations give ``mean |h|`` exactly for ``info``, else why not."""
    meta = trace.meta
    reasons = []
    kept, n_probe = meta.get("activation_samples"), meta.get("n_probe")
    if isinstance(kept, int) and isinstance(n_probe, int) and kept < n_probe:
        reasons.append(f"{kept:,} of {n_probe:,} probe samples kept")
    if meta.get("activation_dtype") == "float16":
        reasons.append("stored as float16")
    if info.kind.startswith("conv"):
        reasons.append("a channel's per-sample mean over positions")
    return "; ".join(reasons) or None


def _fill_from_activations(
    trace: NetworkTrace, infos: list[LayerInfo], values: dict[str, np.ndarray]
) -> set[str]:
    """Fill the NaN of ``values`` (per layer, (n_epochs, n)) from each epoch's kept probe
    activations, reading each epoch once; returns the layers some value is still missing in."""
    missing: set[str] = set()
    for row, epoch in enumerate(trace.epochs):
        gaps = [info for info in infos if np.isnan(values[info.name][row]).any()]
        if not gaps:
            continue
        acts = trace.probe_activations(epoch)
        for info in gaps:
            if acts is None or acts.shape[0] == 0:
                missing.add(info.name)
                continue
            block = np.abs(acts[:, info.first_id : info.last_id + 1].astype(np.float64))
            line = values[info.name][row]
            line[np.isnan(line)] = block.mean(axis=0)[np.isnan(line)]
            if np.isnan(line).any():
                missing.add(info.name)
    return missing


_SIGN_METRICS = ("act_mean", "act_min", "act_max")


def _sign_statistics(
    trace: NetworkTrace, infos: list[LayerInfo]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``act_mean``, ``act_min`` and ``act_max`` of each layer of ``infos`` over time. From a
    run directory, one pass over its parts for the layers' whole range of neurons (the hidden
    layers are contiguous), not one pass per layer and metric."""
    if trace.query is None or not trace.epochs or not infos:
        for info in infos:
            yield tuple(trace.layer_metric(m, info.name) for m in _SIGN_METRICS)
        return
    first = min(info.first_id for info in infos)
    last = max(info.last_id for info in infos)
    block = trace.query.metric_matrices(_SIGN_METRICS, first, last)
    for info in infos:
        columns = slice(info.first_id - first, info.last_id - first + 1)
        yield tuple(block[m][:, columns] for m in _SIGN_METRICS)


def _mean_abs_over_time(
    trace: NetworkTrace, infos: list[LayerInfo]
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Mean |activation| of each layer's neurons at every recorded epoch,
    ``{layer: (n_epochs, n)}``, and where each layer's values come from."""
    values: dict[str, np.ndarray] = {}
    from_stats: dict[str, bool] = {}
    for info, stats in zip(infos, _sign_statistics(trace, infos), strict=True):
        values[info.name] = mean_abs_from_stats(*stats)
        from_stats[info.name] = not np.isnan(values[info.name]).any()
    missing = _fill_from_activations(trace, infos, values)
    sources = {}
    for info in infos:
        why = _kept_activation_quality(trace, info)
        if info.name in missing:
            sources[info.name] = _MISSING
        elif from_stats[info.name]:
            sources[info.name] = _EXACT_STATS
        else:
            sources[info.name] = _EXACT_KEPT if why is None else _ESTIMATE.format(why=why)
    return values, sources


@dataclass(frozen=True)
class Dormancy:
    """τ-dormant neurons of every hidden layer at every recorded epoch.

    Attributes
    ----------
    epochs : the recorded epochs, ascending
    layers : the hidden layers (:func:`hidden_layers`)
    taus : the thresholds counted by :meth:`counts`
    mean_abs : ``{layer: array (n_epochs, n_neurons of the layer)}``, mean |activation|
    scores : ``{layer: array (n_epochs, n)}``, :func:`dormant_scores` of ``mean_abs``
    sources : ``{layer: str}``, where mean |activation| comes from (exact or an estimate)
    """

    epochs: list[int]
    layers: list[LayerInfo]
    taus: tuple[float, ...]
    mean_abs: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    sources: dict[str, str]

    @property
    def exact(self) -> bool:
        """Whether every layer's mean |activation| is exact (not an estimate)."""
        return all(source.startswith("exact") for source in self.sources.values())

    def mask(self, layer: str, tau: float) -> np.ndarray:
        """bool array (n_epochs, n): dormant at τ (a NaN score is not dormant)."""
        with np.errstate(invalid="ignore"):
            return self.scores[layer] <= tau

    def flags(self, tau: float, n_neurons: int) -> tuple[np.ndarray, np.ndarray]:
        """τ-dormant as a flag over the network's global neuron ids, like a health flag:
        ``(dormant, applies)`` — bool arrays of shape (n_epochs, n_neurons) and (n_neurons,),
        ``applies`` true on the hidden neurons a dormant score is defined for."""
        dormant = np.zeros((len(self.epochs), n_neurons), dtype=bool)
        applies = np.zeros(n_neurons, dtype=bool)
        for info in self.layers:
            ids = slice(info.first_id, info.first_id + info.n_neurons)
            dormant[:, ids] = self.mask(info.name, tau)
            applies[ids] = True
        return dormant, applies

    def counts(self) -> pd.DataFrame:
        """One row per (epoch, layer, τ): ``epoch``, ``layer``, ``tau``, ``n_dormant``,
        ``n_neurons``, ``fraction`` (``n_dormant`` ``<NA>`` and ``fraction`` NaN where the
        scores are unknown) and ``source``."""
        rows = []
        for info in self.layers:
            known = ~np.isnan(self.scores[info.name]).any(axis=1)
            for tau in self.taus:
                dormant = self.mask(info.name, tau).sum(axis=1)
                for e, epoch in enumerate(self.epochs):
                    rows.append(
                        (
                            epoch,
                            info.name,
                            tau,
                            int(dormant[e]) if known[e] else pd.NA,
                            info.n_neurons,
                            dormant[e] / info.n_neurons if known[e] else np.nan,
                            self.sources[info.name],
                        )
                    )
        columns = ["epoch", "layer", "tau", "n_dormant", "n_neurons", "fraction", "source"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.astype({"epoch": "int64", "n_dormant": "Int64", "n_neurons": "int64"})

    def at(self, epoch: int, tau: float = DEFAULT_TAU) -> pd.DataFrame:
        """One row per hidden layer at ``epoch``: ``layer``, ``n_dormant``, ``n_neurons``,
        ``fraction`` and ``source`` (a slice of :meth:`counts`, for a sentence or a table)."""
        counts = self.counts()
        rows = counts[(counts["epoch"] == epoch) & (counts["tau"] == float(tau))]
        if rows.empty:
            raise KeyError(f"no counts at epoch {epoch} and τ = {tau:g}; taus: {self.taus}")
        columns = ["layer", "n_dormant", "n_neurons", "fraction", "source"]
        return rows[columns].reset_index(drop=True)

    def fraction(self, epoch: int, tau: float) -> float:
        """The share of every hidden neuron that is τ-dormant at ``epoch`` (NaN if unknown)."""
        row = self.epochs.index(epoch)
        total = sum(info.n_neurons for info in self.layers)
        if total == 0 or any(np.isnan(self.scores[i.name][row]).any() for i in self.layers):
            return float("nan")
        return sum(int(self.mask(i.name, tau)[row].sum()) for i in self.layers) / total

    def dormant_since(self, tau: float) -> pd.DataFrame:
        """The neurons dormant at the last recorded epoch, and since when.

        One row per such neuron: ``neuron`` (global id), ``layer``, ``since`` (the first
        recorded epoch from which it was dormant at every recorded epoch up to the last) and
        ``score`` (its score at the last epoch)."""
        rows = []
        for info in self.layers:
            mask = self.mask(info.name, tau)
            if not len(self.epochs):
                break
            # run of dormant epochs ending at the last one: its length per neuron
            awake = ~mask[::-1]
            run = np.where(awake.any(axis=0), awake.argmax(axis=0), len(self.epochs))
            for j in np.flatnonzero(run > 0):
                since = self.epochs[len(self.epochs) - run[j]]
                rows.append((info.first_id + j, info.name, since, self.scores[info.name][-1, j]))
        return pd.DataFrame(rows, columns=["neuron", "layer", "since", "score"])


def dormancy(trace: NetworkTrace, taus: tuple[float, ...] = DORMANT_TAUS) -> Dormancy:
    """τ-dormant neurons of every hidden layer of ``trace`` at every recorded epoch.

    Example::

        d = dormancy(nt.load_trace("runs/my-run"))
        d.counts().query("tau == 0.025")  # per epoch and layer: n_dormant, fraction, source
        d.dormant_since(0.0)              # the neurons dormant now, and since when

    Raises
    ------
    ValueError
        For no threshold, or one that is negative or not finite.
    """
    taus = tuple(float(t) for t in taus)
    if not taus or any(not np.isfinite(t) or t < 0 for t in taus):
        raise ValueError(f"taus={taus!r}: give one or more finite thresholds ≥ 0")
    infos = hidden_layers(trace)
    mean_abs, sources = _mean_abs_over_time(trace, infos)
    scores = {name: dormant_scores(values) for name, values in mean_abs.items()}
    return Dormancy(list(trace.epochs), infos, taus, mean_abs, scores, sources)


# -- contribution utility -------------------------------------------------------------------------
def outgoing_abs_weights(weight: np.ndarray, n_neurons: int) -> np.ndarray | None:
    """``Σ_k |w_{k,i}|`` for each of the ``n_neurons`` inputs of a consumer's ``weight``
    (shape (out, in, ...) or (out, in × positions) after a flatten), shape (n_neurons,); or
    ``None`` when the weight does not read exactly those neurons."""
    w = np.abs(np.asarray(weight, dtype=np.float64))
    if w.ndim < 2:
        return None
    if w.shape[1] == n_neurons:
        return w.sum(axis=tuple(d for d in range(w.ndim) if d != 1))
    if w.ndim == 2 and n_neurons > 0 and w.shape[1] % n_neurons == 0:
        return w.reshape(w.shape[0], n_neurons, -1).sum(axis=(0, 2))
    return None


@dataclass(frozen=True)
class Utility:
    """Contribution utility of every neuron at one epoch.

    Attributes
    ----------
    values : float64 array (n_neurons,): NaN for the input, the output and any neuron whose
        outgoing weights or mean |activation| are unknown
    weights_epoch : the epoch whose weights were used
    note : how the weights were chosen (kept at the epoch, or the final weights instead)
    """

    values: np.ndarray
    weights_epoch: int | None
    note: str


def _weights_for(trace: NetworkTrace, epoch: int) -> tuple[dict | None, int | None, str]:
    # an epoch without kept weights is not read at all (its file holds the probe activations)
    kept = trace.weights(epoch) if epoch in trace.epochs_with_weights else None
    if kept is not None:
        return kept, epoch, f"weights of {trace.time_key(epoch)}"
    if trace.final_weights:
        final = trace.meta.get("final_weights_epoch")
        where = trace.time_key(final) if isinstance(final, int) else "the end of training"
        return (
            trace.final_weights,
            final if isinstance(final, int) else None,
            f"this run kept no weights at {trace.time_key(epoch)}: the final weights "
            f"({where}) stand in for them",
        )
    return None, None, "this trace holds no weights"


def mean_abs_at(trace: NetworkTrace, epoch: int) -> np.ndarray:
    """Mean |activation| over the probe of every neuron at ``epoch``, float64 array of shape
    (n_neurons,): from the recorded statistics where they determine it, else from the epoch's
    kept probe activations, else NaN (see the module docstring)."""
    metrics = trace.metrics_at(epoch)
    stats = [metrics[:, METRICS.index(m)] for m in ("act_mean", "act_min", "act_max")]
    mean_abs = mean_abs_from_stats(*stats)
    acts = trace.probe_activations(epoch) if np.isnan(mean_abs).any() else None
    if acts is not None and acts.shape[0]:
        gaps = np.isnan(mean_abs)
        mean_abs[gaps] = np.abs(acts.astype(np.float64)).mean(axis=0)[gaps]
    return mean_abs


def contribution_utility(
    trace: NetworkTrace, epoch: int, mean_abs: np.ndarray | None = None
) -> Utility:
    """Dohare et al.'s contribution utility of every hidden neuron at ``epoch``
    (``mean_abs``: :func:`mean_abs_at` of that epoch, when the caller has it already)."""
    values = np.full(trace.n_neurons, np.nan)
    weights, weights_epoch, note = _weights_for(trace, epoch)
    if weights is None:
        return Utility(values, None, note)
    if mean_abs is None:
        mean_abs = mean_abs_at(trace, epoch)
    for info, consumer in zip(trace.layers[1:-1], trace.layers[2:], strict=False):
        weight = weights.get(consumer.weight_key) if consumer.weight_key else None
        out = outgoing_abs_weights(weight, info.n_neurons) if weight is not None else None
        if out is not None:
            ids = slice(info.first_id, info.last_id + 1)
            values[ids] = mean_abs[ids] * out
    return Utility(values, weights_epoch, note)
