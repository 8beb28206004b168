"""Standardising features before a projection, a clustering or an HMM: one vocabulary, one code.

Every analysis that z-scores features names *where* each feature is standardised with one of
:data:`MODES`, and does it with :func:`zscore`; features (or neurons) that do not vary are found
with :func:`constant_columns` (and :func:`constant_rows`) and left out with a note, never
divided by zero.

========  ======================================================================
``none``    raw values
``global``  each feature z-scored over every row at once (all neurons, epochs, runs)
``layer``   each feature z-scored within each layer
``run``     each feature z-scored within each run
``neuron``  z-scored within each neuron, over its own values
========  ======================================================================

Older names stay accepted where they were public parameters (:data:`ALIASES`): ``column``
(the embedding's ``scale``) and ``pooled`` (the training map's ``standardize``) both mean
``global``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

__all__ = ["ALIASES", "MODES", "canonical_mode", "constant_columns", "constant_rows", "zscore"]

#: Where each feature is standardised.
MODES: dict[str, str] = {
    "none": "raw values",
    "global": "each feature z-scored over every row at once",
    "layer": "each feature z-scored within each layer",
    "run": "each feature z-scored within each run",
    "neuron": "z-scored within each neuron, over its own values",
}
#: Older names of modes, still accepted.
ALIASES: dict[str, str] = {"column": "global", "pooled": "global"}


def canonical_mode(value: Any, allowed: Collection[str], parameter: str) -> str:
    """The :data:`MODES` name of ``value`` (an alias becomes its mode).

    Raises :class:`ValueError` naming ``parameter`` and the ``allowed`` modes otherwise.

    >>> canonical_mode("pooled", ("global", "run"), "standardize")
    'global'
    >>> canonical_mode("layers", ("layer", "global", "neuron"), "standardize")
    Traceback (most recent call last):
    ValueError: standardize='layers': use 'layer', 'global' or 'neuron'
    """
    mode = ALIASES.get(value, value) if isinstance(value, str) else value
    if mode not in allowed:
        names = [repr(m) for m in allowed]
        choices = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
        raise ValueError(f"{parameter}={value!r}: use {choices}")
    return str(mode)


def zscore(
    values: np.ndarray,
    axis: int | tuple[int, ...],
    groups: Sequence[Any] | None = None,
) -> np.ndarray:
    """``values`` z-scored along ``axis``, separately within each group of rows.

    Parameters
    ----------
    values
        Array of shape (n_rows, ...).
    axis
        The axes the mean and standard deviation are taken over (``0``: over the rows of a
        group, i.e. per feature; ``1``: within each row).
    groups
        Row selections (boolean masks or slices along axis 0), each standardised on its own;
        ``None``: the whole array at once. Rows in no group are returned unchanged.

    Returns
    -------
    A new array of the shape and dtype of ``values``. A spread of 0 leaves the values centred,
    not divided.
    """
    out = values.copy(order="K")  # the same memory layout: the same sums, bit for bit
    for group in [slice(None)] if groups is None else groups:
        block = out[group]
        mean = block.mean(axis=axis, keepdims=True)
        std = block.std(axis=axis, keepdims=True)
        out[group] = (block - mean) / np.where(std > 0, std, 1.0)
    return out


def constant_columns(
    values: np.ndarray, tolerance: float = 1e-12, rows: np.ndarray | None = None
) -> np.ndarray:
    """Which columns of ``values`` (n_rows, n_features) do not vary: their standard deviation
    over the rows is not above ``tolerance`` (an undefined one counts as constant).

    ``rows``: a boolean mask of the rows to measure (the others, and NaN, are ignored).

    Returns
    -------
    bool array of shape (n_features,)
    """
    if rows is None:
        spread = values.std(axis=0)
    else:
        with np.errstate(all="ignore"):
            spread = np.nanstd(np.where(rows[:, None], values, np.nan), axis=0)
    return ~(spread > tolerance)


def constant_rows(values: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """Which rows of ``values`` (n_rows, n_features; finite) are constant: their range is at
    most ``rtol`` times their largest absolute value.

    Returns
    -------
    bool array of shape (n_rows,)
    """
    span = np.ptp(values, axis=1)
    size = np.max(np.abs(values), axis=1)
    return span <= rtol * np.maximum(size, 1e-12)
