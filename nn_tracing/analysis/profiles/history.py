"""A neuron's metrics over time: every metric at every recorded epoch against its layer's
median and interquartile band."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...trace import METRICS, NetworkTrace
from ._common import _check_neuron

__all__ = ["layer_bands", "metric_history"]


def layer_bands(trace: NetworkTrace, layer: str) -> np.ndarray:
    """25th, 50th and 75th percentile of every metric over a layer's neurons, per epoch.

    Returns
    -------
    array of shape (len(METRICS), n_epochs, 3); NaN where no neuron has a value.
    """
    info = trace.layer(layer)
    if trace.query is not None:  # a run directory: DuckDB over its parts, one pass
        return trace.query.layer_bands(trace.layer_names().index(layer))
    out = np.full((len(METRICS), len(trace.epochs), 3), np.nan)
    for m, name in enumerate(METRICS):
        block = trace.metric(name)[:, info.first_id : info.last_id + 1].astype(np.float64)
        finite_rows = np.isfinite(block).any(axis=1)
        if finite_rows.any():
            with np.errstate(all="ignore"):
                q = np.nanpercentile(block[finite_rows], [25, 50, 75], axis=1)
            out[m, finite_rows] = q.T
    return out


def metric_history(
    trace: NetworkTrace,
    neuron_id: int,
    bands: np.ndarray | None = None,
    *,
    percentiles: bool = True,
) -> pd.DataFrame:
    """Every metric of one neuron at every recorded epoch, against its layer.

    Parameters
    ----------
    neuron_id : global id
    bands : the layer's :func:`layer_bands` (computed when not given)
    percentiles : with ``False``, no ``percentile`` column (on a run directory it is a pass
        over the layer's rows at every epoch, the larger part of a big trace's profile: a page
        draws the profile without it first)

    Returns
    -------
    DataFrame with one row per (metric, epoch): ``epoch``, ``metric``, ``value``, ``p25``,
    ``median``, ``p75`` (the layer's quartiles) and ``percentile`` (share of the layer's
    neurons with a smaller value, ties counted half, in [0, 1]; NaN where undefined).
    """
    info = _check_neuron(trace, neuron_id)
    if bands is None:
        bands = layer_bands(trace, info.name)
    epochs = np.asarray(trace.epochs)
    values, ranks = _own_values(trace, neuron_id, percentiles=percentiles)
    parts = []
    for m, name in enumerate(METRICS):
        columns = {
            "epoch": epochs,
            "metric": name,
            "value": values[m],
            "p25": bands[m, :, 0],
            "median": bands[m, :, 1],
            "p75": bands[m, :, 2],
        }
        if ranks is not None:
            columns["percentile"] = ranks[m]
        parts.append(pd.DataFrame(columns))
    return pd.concat(parts, ignore_index=True)


def _own_values(
    trace: NetworkTrace, neuron_id: int, *, percentiles: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """The neuron's value of every metric at every epoch and (with ``percentiles``) its
    percentile in its layer, two arrays of shape (len(METRICS), n_epochs)."""
    info = trace.layer_of(neuron_id)
    if trace.query is not None:  # a run directory: DuckDB, without loading the layer
        rows = trace.neuron_history(neuron_id)
        values = rows[list(METRICS)].to_numpy(np.float64).T
        if not percentiles:
            return values, None
        index = trace.layer_names().index(info.name)
        return values, trace.query.neuron_percentiles(neuron_id, index, own=rows)
    values = np.full((len(METRICS), len(trace.epochs)), np.nan)
    ranks = np.full_like(values, np.nan) if percentiles else None
    for m, name in enumerate(METRICS):
        block = trace.layer_metric(name, info.name)
        values[m] = block[:, neuron_id - info.first_id]
        if ranks is not None:  # the layer's whole block only when percentiles are asked for
            ranks[m] = _percentile_in_layer(block.astype(np.float64), values[m])
    return values, ranks


def _percentile_in_layer(block: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Per epoch (row of ``block``), the mid-rank percentile of ``own`` among the layer's
    finite values; NaN where ``own`` is not finite."""
    finite = np.isfinite(block)
    with np.errstate(invalid="ignore"):
        below = ((block < own[:, None]) & finite).sum(axis=1)
        equal = ((block == own[:, None]) & finite).sum(axis=1)
        percentile = (below + 0.5 * equal) / finite.sum(axis=1)
    return np.where(np.isfinite(own), percentile, np.nan)
