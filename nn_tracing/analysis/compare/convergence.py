"""Representations over training: every layer of run A against every layer of run B at an
epoch, and each layer against its own final representation over the recorded epochs.

Raghu et al. (2017) found that lower layers converge to their final representation earlier
than higher ones ("bottom-up" learning); :func:`convergence_order` says whether a run agrees.
Every similarity comes with a permutation baseline: the same similarity with one side's probe
samples shuffled (:func:`~nn_tracing.analysis.compare.similarity.permutation_null`), whose
95th percentile is the level a similarity must pass to mean something on these shapes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...progress import Progress
from ...trace import NetworkTrace
from .probes import CompareUnavailable, RunPair
from .similarity import SIMILARITIES, cka_matrix, permutation_null, similarity

__all__ = [
    "NULL_QUANTILE",
    "convergence_order",
    "convergence_to_final",
    "layer_similarity",
    "layer_similarity_over_epochs",
]

#: The quantile of the permutation null drawn as the baseline.
NULL_QUANTILE = 0.95


def _noop(fraction: float, message: str = "") -> None:
    """No progress to report."""


def _check_method(method: str) -> None:
    if method not in SIMILARITIES:
        raise ValueError(f"method={method!r}: use one of {', '.join(SIMILARITIES)}")


def _pairwise(
    left: list[np.ndarray], right: list[np.ndarray], method: str, order: np.ndarray | None
) -> np.ndarray:
    if method == "cka":
        return cka_matrix(left, right, order)
    out = np.empty((len(left), len(right)))
    for i, x in enumerate(left):
        for j, y in enumerate(right):
            out[i, j] = similarity(x, y if order is None else y[order], method)
    return out


def layer_similarity(
    pair: RunPair,
    epoch_a: int,
    epoch_b: int | None = None,
    *,
    method: str = "cka",
    n_permutations: int = 10,
    random_state: int = 0,
) -> pd.DataFrame:
    """Every layer of A at ``epoch_a`` against every layer of B at ``epoch_b`` (default:
    the same epoch), on A's probe samples.

    Returns
    -------
    DataFrame with one row per (layer_a, layer_b): ``layer_a``, ``layer_b``, ``similarity``
    and ``null`` (the :data:`NULL_QUANTILE` of ``n_permutations`` row-shuffled copies).
    """
    _check_method(method)
    left, right = pair.layers_at(epoch_a, epoch_b)
    observed = _pairwise(left, right, method, None)
    rng = np.random.default_rng(random_state)
    n = left[0].shape[0]
    nulls = (
        np.stack(
            [_pairwise(left, right, method, rng.permutation(n)) for _ in range(n_permutations)]
        )
        if n_permutations
        else np.full((1, *observed.shape), np.nan)
    )
    with np.errstate(all="ignore"):
        null = np.nanquantile(nulls, NULL_QUANTILE, axis=0)
    names_a = [i.name for i in pair.a.layers[1:]]
    names_b = [i.name for i in pair.b.layers[1:]]
    return pd.DataFrame(
        {
            "layer_a": np.repeat(names_a, len(names_b)),
            "layer_b": np.tile(names_b, len(names_a)),
            "similarity": observed.ravel(),
            "null": null.ravel(),
        }
    )


def layer_similarity_over_epochs(pair: RunPair, method: str = "cka") -> np.ndarray:
    """Every layer pair's similarity at every epoch both runs recorded: array of shape
    (n_epochs, n_layers_a, n_layers_b), epochs as :attr:`RunPair.common_epochs`."""
    _check_method(method)
    epochs = pair.common_epochs
    if not epochs:
        raise CompareUnavailable("the two runs recorded no epoch in common")
    return np.stack([_pairwise(*pair.layers_at(e), method, None) for e in epochs])


def _layer(trace: NetworkTrace, name: str, epoch: int) -> np.ndarray:
    acts = trace.probe_activations(epoch)
    if acts is None:
        raise CompareUnavailable(f"no probe activations stored at {trace.time_key(epoch)}")
    info = trace.layer(name)
    return acts[:, info.first_id : info.last_id + 1]


def convergence_to_final(
    trace: NetworkTrace,
    *,
    method: str = "cka",
    n_permutations: int = 10,
    random_state: int = 0,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Each layer's similarity with its own representation at the last recorded epoch, at
    every recorded epoch.

    Returns
    -------
    DataFrame with ``layer``, ``depth`` (1 for the first traced layer after the input),
    ``time``, ``similarity`` and ``null`` (the final representation against the layer at
    that epoch with its samples shuffled, :data:`NULL_QUANTILE` of ``n_permutations``).
    """
    _check_method(method)
    if trace.probe is None:
        raise CompareUnavailable("the trace has no probe set: no fixed samples to compare on")
    progress = progress or _noop
    final = trace.epochs[-1]
    rows = []
    layers = trace.layers[1:]
    for depth, info in enumerate(layers, start=1):
        target = _layer(trace, info.name, final)
        for i, epoch in enumerate(trace.epochs):
            progress(
                ((depth - 1) * len(trace.epochs) + i) / (len(layers) * len(trace.epochs)),
                f"{info.name} at {trace.time_key(epoch)}",
            )
            current = _layer(trace, info.name, epoch)
            null = permutation_null(target, current, method, n_permutations, random_state + i)
            with np.errstate(all="ignore"):
                level = float(np.nanquantile(null, NULL_QUANTILE)) if null.size else np.nan
            rows.append((info.name, depth, epoch, similarity(target, current, method), level))
    return pd.DataFrame(rows, columns=["layer", "depth", "time", "similarity", "null"])


def convergence_order(frame: pd.DataFrame, threshold: float = 0.9) -> tuple[pd.DataFrame, str]:
    """When each layer converged — the first recorded epoch from which its similarity with
    its final representation stays at or above ``threshold`` — and whether lower layers
    converged earlier.

    Parameters
    ----------
    frame
        :func:`convergence_to_final`'s result.

    Returns
    -------
    A frame (``layer``, ``depth``, ``converged``) and a sentence.
    """
    rows = []
    for (layer, depth), part in frame.groupby(["layer", "depth"], sort=False):
        part = part.sort_values("time")
        below = (part["similarity"].to_numpy() < threshold).nonzero()[0]
        times = part["time"].to_numpy()
        converged = int(times[below[-1] + 1]) if below.size else int(times[0])
        rows.append((layer, int(depth), converged))
    order = pd.DataFrame(rows, columns=["layer", "depth", "converged"]).sort_values("depth")
    if len(order) < 2:
        return order, "One traced layer: no order of convergence to read."
    times = order["converged"].to_numpy()
    steps = np.diff(times)
    if np.all(steps >= 0) and np.any(steps > 0):
        verdict = "Yes: lower layers reached their final representation earlier (bottom-up)."
    elif np.all(steps == 0):
        verdict = "Every layer converged at the same recorded epoch: no order to read."
    elif np.all(steps <= 0):
        verdict = "No: higher layers converged earlier than lower ones (top-down)."
    else:
        verdict = "Partly: the layers did not converge in order of depth."
    return order, f"{verdict} (similarity ≥ {threshold:g} with the final representation)"
