"""Runs side by side: training curves on one axis, each layer's metric distribution over
time, and what differs between the runs' configurations.

Traces of different configurations are allowed: curves are joined on each run's own time
axis (epochs, or optimizer steps for a step trace; :mod:`nn_tracing.timeaxis`), a per-step
curve comes from the per-step table where a run recorded one (``drop_batches=False``), and
per-layer quantiles come from DuckDB over a run directory's parts when the trace has them
(:attr:`~nn_tracing.NetworkTrace.query`) or from the neuron table in memory otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...config import TrainConfig
from ...trace import METRICS, NetworkTrace

__all__ = [
    "CURVE_QUANTITIES",
    "config_differences",
    "layer_quantile_bands",
    "smooth",
    "training_curves",
]

#: The curves a run can show: ``{name: (history column per split, step-table column)}``.
CURVE_QUANTITIES: dict[str, dict[str, str]] = {
    "loss": {"train": "train_loss", "validation": "val_loss", "probe": "probe_loss"},
    "accuracy": {"train": "train_acc", "validation": "val_acc", "probe": "probe_acc"},
}


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """An exponential moving average with TensorBoard's debiasing (``weight`` in [0, 1): 0
    leaves the values as they are); NaN values are skipped and stay NaN.

    >>> smooth(np.array([1.0, 3.0]), 0.5).round(4).tolist()
    [1.0, 2.3333]
    """
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight {weight!r} must be in [0, 1)")
    values = np.asarray(values, dtype=np.float64)
    out = np.full_like(values, np.nan)
    last, count = 0.0, 0
    for i, value in enumerate(values):
        if not np.isfinite(value):
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        out[i] = last / (1 - weight**count)
    return out


def _history_curves(name: str, trace: NetworkTrace, quantity: str) -> list[pd.DataFrame]:
    history = trace.history
    out = []
    for split, column in CURVE_QUANTITIES[quantity].items():
        if column not in history or history[column].isna().all():
            continue
        out.append(
            pd.DataFrame(
                {
                    "run": name,
                    "split": split,
                    "time": history["epoch"].to_numpy(np.int64),
                    "value": history[column].to_numpy(np.float64),
                }
            )
        )
    return out


def _step_curve(name: str, trace: NetworkTrace) -> list[pd.DataFrame]:
    steps = trace.steps
    if steps is None or not len(steps) or "loss" not in steps:
        return []
    per_step = steps.groupby("step", sort=True)["loss"].first()
    return [
        pd.DataFrame(
            {
                "run": name,
                "split": "train (per step)",
                "time": per_step.index.to_numpy(np.int64),
                "value": per_step.to_numpy(np.float64),
            }
        )
    ]


def training_curves(
    traces: Mapping[str, NetworkTrace],
    quantity: str = "loss",
    *,
    smoothing: float = 0.0,
    per_step: bool = False,
) -> pd.DataFrame:
    """Every run's curves of ``quantity`` (``"loss"`` or ``"accuracy"``) in one long frame.

    Parameters
    ----------
    traces
        ``{run name: trace}``.
    smoothing
        Exponential-moving-average weight applied to each curve (:func:`smooth`).
    per_step
        The training loss per optimizer step from each run's per-step table (runs without one
        are left out); otherwise each run's history on its own axis.

    Returns
    -------
    DataFrame with ``run``, ``split``, ``time`` (epoch or step number), ``axis`` (the run's
    axis word), ``value`` (smoothed) and ``raw`` (as recorded); NaN rows dropped.
    """
    if quantity not in CURVE_QUANTITIES:
        raise ValueError(f"quantity={quantity!r}: use one of {', '.join(CURVE_QUANTITIES)}")
    parts = []
    for name, trace in traces.items():
        found = (
            _step_curve(name, trace)
            if per_step and quantity == "loss"
            else ([] if per_step else _history_curves(name, trace, quantity))
        )
        for part in found:
            part["axis"] = "step" if per_step else trace.axis
            part["raw"] = part["value"]
            part["value"] = smooth(part["raw"].to_numpy(), smoothing)
            parts.append(part)
    columns = ["run", "split", "time", "axis", "value", "raw"]
    if not parts:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(parts, ignore_index=True)[columns]
    return frame.dropna(subset=["raw"]).reset_index(drop=True)


def _quantiles_in_memory(trace: NetworkTrace, metric: str, qs: Sequence[float]) -> np.ndarray:
    """(n_layers, n_epochs, len(qs) + 1): quantiles over each layer's finite values, count."""
    values = trace.metric(metric).astype(np.float64)  # (n_epochs, n_neurons)
    out = np.full((len(trace.layers), values.shape[0], len(qs) + 1), np.nan)
    for l_index, info in enumerate(trace.layers):
        block = values[:, info.first_id : info.last_id + 1]
        finite = np.isfinite(block)
        out[l_index, :, -1] = finite.sum(axis=1)
        rows = finite.any(axis=1)
        if rows.any():
            with np.errstate(all="ignore"):
                out[l_index, rows, :-1] = np.nanquantile(block[rows], qs, axis=1).T
    return out


def layer_quantile_bands(
    trace: NetworkTrace, metric: str, quantiles: Sequence[float] = (0.1, 0.5, 0.9)
) -> pd.DataFrame:
    """Quantiles of ``metric`` over each layer's neurons at every recorded epoch.

    Returns
    -------
    DataFrame with ``layer``, ``time``, ``n`` (finite values) and ``q0``, ``q1``, … one
    column per quantile (linear interpolation, as :func:`numpy.quantile`); NaN where a layer
    has no finite value.
    """
    if metric not in METRICS:
        raise KeyError(f"no metric {metric!r}; metrics: {', '.join(METRICS)}")
    qs = [float(q) for q in quantiles]
    epochs = trace.epochs
    if trace.query is not None:
        found = trace.query.layer_quantiles(metric, qs)
        frame = pd.DataFrame(
            {
                "layer": [trace.layers[i].name for i in found["layer_index"]],
                "time": np.asarray(epochs, dtype=np.int64)[found["group"].to_numpy()],
                "n": found["n"].to_numpy(np.int64),
            }
        )
        for i in range(len(qs)):
            frame[f"q{i}"] = found[f"q{i}"].to_numpy(np.float64)
        return frame
    values = _quantiles_in_memory(trace, metric, qs)
    rows = []
    for l_index, info in enumerate(trace.layers):
        part = pd.DataFrame(
            {
                "layer": info.name,
                "time": np.asarray(epochs, dtype=np.int64),
                "n": values[l_index, :, -1].astype(np.int64),
            }
        )
        for i in range(len(qs)):
            part[f"q{i}"] = values[l_index, :, i]
        rows.append(part)
    return pd.concat(rows, ignore_index=True)


def _filled_config(trace: NetworkTrace) -> dict[str, Any] | None:
    config = trace.meta.get("config")
    if not isinstance(config, dict):
        return None
    return {**TrainConfig().to_dict(), **config}


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def config_differences(traces: Mapping[str, NetworkTrace]) -> pd.DataFrame:
    """What differs between the runs: one row per setting whose value is not the same in
    every run, one column per run (values as text; ``"—"`` where a run's trace carries no
    configuration, a custom model's). Also the time axis and the layer widths."""
    rows: dict[str, dict[str, str]] = {}
    configs = {name: _filled_config(trace) for name, trace in traces.items()}
    fields = sorted({key for c in configs.values() if c for key in c})
    for field in fields:
        rows[field] = {
            name: (_shown(config.get(field)) if config is not None else "—")
            for name, config in configs.items()
        }
    rows["time axis"] = {name: trace.axis for name, trace in traces.items()}
    rows["layer widths"] = {
        name: ", ".join(f"{i.name} {i.n_neurons}" for i in trace.layers[1:])
        for name, trace in traces.items()
    }
    differing = {k: v for k, v in rows.items() if len(set(v.values())) > 1}
    frame = pd.DataFrame.from_dict(differing, orient="index", columns=list(traces))
    frame.index.name = "setting"
    return frame.reset_index()
