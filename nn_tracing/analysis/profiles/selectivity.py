"""Class selectivity (Morcos et al. 2018): the index, its shuffled-label null, and the
neuron's index at every recorded epoch against that null."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...progress import Progress, reporter
from ...timeaxis import time_key
from ...trace import NetworkTrace
from ._common import _check_neuron, _labels, class_names

__all__ = ["class_selectivity", "selectivity_null", "selectivity_over_epochs"]


def _class_codes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    classes, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes.reshape(-1), classes.size


def _selectivity_from_means(means: np.ndarray, low: float) -> np.ndarray:
    """The index from class means (..., K) and the neuron's minimum activation."""
    shifted = means - min(low, 0.0)
    top = shifted.max(axis=-1)
    rest = (shifted.sum(axis=-1) - top) / (shifted.shape[-1] - 1)
    denom = top + rest
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 1e-12, (top - rest) / np.where(denom > 1e-12, denom, 1.0), np.nan)


def class_selectivity(activations: np.ndarray, labels: np.ndarray) -> float:
    """The class selectivity index of one neuron (Morcos et al. 2018), as the tracer defines it.

    ``(μmax − μrest) / (μmax + μrest)`` over the class-mean activations, where ``μrest`` is the
    mean of the other classes' means; class means are measured from ``min(0, lowest
    activation)`` so that the index stays in [0, 1] for activations that go negative.

    Parameters
    ----------
    activations : array of shape (n_samples,)
    labels : integer array of shape (n_samples,)

    Returns
    -------
    The index; NaN with fewer than two classes or when every shifted class mean is 0.
    """
    acts = np.asarray(activations, dtype=np.float64)
    codes, n_classes = _class_codes(labels)
    if n_classes < 2:
        return float("nan")
    counts = np.bincount(codes, minlength=n_classes)
    means = np.bincount(codes, weights=acts, minlength=n_classes) / counts
    return float(_selectivity_from_means(means, float(acts.min())))


def selectivity_null(
    activations: np.ndarray,
    labels: np.ndarray,
    n_permutations: int = 200,
    random_state: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """The selectivity index under shuffled labels: what a neuron with these activations
    reaches by chance, the class sizes kept.

    Parameters
    ----------
    activations : array of shape (n_samples,)
    labels : integer array of shape (n_samples,)
    n_permutations : number of label permutations
    random_state : seed or generator

    Returns
    -------
    array of shape (n_permutations,); NaN where the index is undefined.
    """
    acts = np.asarray(activations, dtype=np.float64)
    codes, n_classes = _class_codes(labels)
    if n_classes < 2 or n_permutations < 1:
        return np.full(max(n_permutations, 0), np.nan)
    rng = np.random.default_rng(random_state)
    # one independent shuffle per row; shuffling the activations against fixed labels is
    # shuffling the labels
    shuffled = rng.permuted(np.broadcast_to(acts, (n_permutations, acts.size)), axis=1)
    flat = (np.arange(n_permutations)[:, None] * n_classes + codes[None, :]).ravel()
    sums = np.bincount(flat, weights=shuffled.ravel(), minlength=n_permutations * n_classes)
    counts = np.bincount(codes, minlength=n_classes)
    means = sums.reshape(n_permutations, n_classes) / counts[None, :]
    return _selectivity_from_means(means, float(acts.min()))


def _spread_epochs(epochs: list[int], max_epochs: int, include: list[int]) -> list[int]:
    if len(epochs) <= max_epochs:
        return list(epochs)
    picks = np.unique(np.round(np.linspace(0, len(epochs) - 1, max_epochs)).astype(int))
    chosen = {epochs[i] for i in picks} | {e for e in include if e in epochs}
    return sorted(chosen)


def selectivity_over_epochs(
    trace: NetworkTrace,
    neuron_id: int,
    *,
    n_permutations: int = 200,
    max_epochs: int = 30,
    include: list[int] | None = None,
    random_state: int = 0,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The neuron's class selectivity index at every recorded epoch, against a shuffled-label
    null.

    The index is the recorded ``selectivity`` metric. At up to ``max_epochs`` recorded epochs
    (spread evenly, always the first and last and those in ``include``) the probe activations
    are read and the index is recomputed under ``n_permutations`` shuffles of the probe labels:
    the band a neuron with the same activations reaches by chance. Each epoch's shuffles are
    seeded by ``(random_state, epoch)``, so a value does not depend on which epochs were tested.

    Returns
    -------
    DataFrame with one row per recorded epoch: ``epoch``, ``selectivity``, ``observed`` (the
    index recomputed from the probe activations; NaN where not tested), ``preferred_class``
    (the class with the highest mean activation), ``null_p05``, ``null_median``, ``null_p95``,
    ``p_value`` (``(1 + #null ≥ observed) / (1 + n_permutations)``), ``tested``.

    Raises
    ------
    ProfileUnavailable
        Without a probe set or class labels.
    """
    _check_neuron(trace, neuron_id)
    labels = _labels(trace)
    epochs = trace.epochs
    tested = _spread_epochs(epochs, max_epochs, include or [])
    recorded = trace.metric("selectivity")[:, neuron_id].astype(np.float64)
    n_epochs = len(epochs)
    observed = np.full(n_epochs, np.nan)
    bands = np.full((n_epochs, 3), np.nan)
    p_values = np.full(n_epochs, np.nan)
    preferred = [""] * n_epochs
    was_tested = np.zeros(n_epochs, dtype=bool)
    codes, n_classes = _class_codes(labels)
    counts = np.bincount(codes, minlength=n_classes)
    names = class_names(trace, np.unique(labels))
    report = reporter(progress, len(tested))
    for done, epoch in enumerate(tested, start=1):
        acts = trace.probe_activations(epoch)
        if acts is not None:
            values = np.asarray(acts[:, neuron_id], dtype=np.float64)
            row = epochs.index(epoch)
            observed[row] = class_selectivity(values, labels)
            null = selectivity_null(values, labels, n_permutations, [random_state, epoch])
            finite = null[np.isfinite(null)]
            means = np.bincount(codes, weights=values, minlength=n_classes) / counts
            preferred[row] = names[int(means.argmax())]
            was_tested[row] = True
            if finite.size:
                bands[row] = np.percentile(finite, [5, 50, 95])
                if np.isfinite(observed[row]):
                    beaten = np.sum(finite >= observed[row] - 1e-12)
                    p_values[row] = (1 + beaten) / (1 + finite.size)
        report(done, f"shuffled-label null at {time_key(epoch)}")
    return pd.DataFrame(
        {
            "epoch": epochs,
            "selectivity": recorded,
            "observed": observed,
            "preferred_class": preferred,
            "null_p05": bands[:, 0],
            "null_median": bands[:, 1],
            "null_p95": bands[:, 2],
            "p_value": p_values,
            "tested": was_tested,
        }
    )
