"""When things happened in a trace: the epoch a curve plateaued, the epoch since which a flag
has held without a break.

Both are descriptive (no claim against chance): a plateau is where a curve stopped improving
by more than a tolerance, and "dead since ``E_k``" is where a neuron's last unbroken run of a
flag began. The findings of the pages (:mod:`nn_tracing.views.findings`) say them in words.

>>> import numpy as np
>>> plateau_index(np.array([0.5, 0.8, 0.9, 0.95, 0.951, 0.949]), tolerance=0.01)
3
>>> plateau_index(np.array([0.5, 0.7, 0.9, 0.97, 0.98, 0.972]))  # 5 % of the rise: 0.024
3
>>> flagged_since(np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)).tolist()
[3, 2]
"""

from __future__ import annotations

import numpy as np

__all__ = ["RISE_SHARE", "flagged_since", "plateau_index"]


#: The default tolerance of :func:`plateau_index`, as a share of the curve's rise.
RISE_SHARE = 0.05


def plateau_index(values: np.ndarray, *, tolerance: float | None = None) -> int | None:
    """The index from which a rising curve stays within ``tolerance`` of its best value.

    Parameters
    ----------
    values
        Array of shape (n_points,): a curve that training raises (an accuracy), in time
        order. NaN points are ignored.
    tolerance
        How far below its best the curve may go and still count as on the plateau;
        ``None``: :data:`RISE_SHARE` of its rise (best minus lowest value), so that the noise
        of a validation curve near its top does not hide its plateau.

    Returns
    -------
    The smallest index ``i`` such that every finite value from ``i`` on is at least
    ``max(values) - tolerance``; ``None`` when the curve has fewer than two finite points,
    when only its last point is on the plateau (it was still rising when training ended) or
    when it ends below it (it fell off).
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.sum() < 2:
        return None
    if tolerance is None:
        tolerance = RISE_SHARE * float(np.nanmax(values) - np.nanmin(values))
    level = np.nanmax(values) - tolerance
    below = finite & (values < level)
    # the first finite point after the last one below the plateau
    after = int(np.flatnonzero(below)[-1]) + 1 if below.any() else 0
    on = np.flatnonzero(finite[after:]) + after
    if on.size == 0:  # it ends below its best: it fell off its plateau
        return None
    start, last = int(on[0]), int(np.flatnonzero(finite)[-1])
    return None if start >= last else start


def flagged_since(flags: np.ndarray) -> np.ndarray:
    """For each column, the index where its last unbroken run of ``True`` began.

    Parameters
    ----------
    flags
        Bool array of shape (n_epochs, n_neurons): a flag of every neuron at every recorded
        epoch (:attr:`~nn_tracing.analysis.health.NeuronHealth.flags` ``[flag]``, or a
        dormancy mask of the same shape).

    Returns
    -------
    Int array of shape (n_neurons,): the epoch index since which the neuron has carried the
    flag at every recorded epoch up to the last; ``-1`` for a neuron without the flag at the
    last epoch.
    """
    flags = np.asarray(flags, dtype=bool)
    if flags.ndim != 2:
        raise ValueError(f"flags must be 2-D (epochs, neurons), got shape {flags.shape}")
    n_epochs = flags.shape[0]
    if n_epochs == 0:
        return np.full(flags.shape[1], -1, dtype=np.int64)
    # the last epoch index without the flag, per neuron (-1 when flagged throughout)
    off = ~flags
    last_off = np.where(off.any(axis=0), n_epochs - 1 - np.argmax(off[::-1], axis=0), -1)
    since = last_off + 1
    return np.where(flags[-1], since, -1).astype(np.int64)
