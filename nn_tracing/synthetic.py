"""Synthetic traces of any size, written through the run directory's writer (no training).

For benchmarks and tests of large traces: :func:`write_synthetic_run` writes a run directory
of ``layer_sizes`` neurons recorded at ``n_epochs`` epochs with :class:`~nn_tracing.rundir.
RunWriter`, exactly as a training run writes one, without holding more than one epoch in
memory. The values are seeded and shaped like a trace's: each neuron drifts linearly from
its own start with noise, the input layer has no weight statistics (NaN), ``act_active`` is
a share of a 64-sample probe (many ties), and a fixed 5 % of the hidden neurons are dead
(``act_max``, ``act_mean``, ``act_active`` all 0).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .trace import HISTORY_COLUMNS, METRICS, LayerInfo, NetworkTrace

__all__ = ["synthetic_layers", "synthetic_trace", "write_synthetic_run"]

_WEIGHT_METRICS = ("w_mean", "w_std", "w_norm", "w_absmax", "bias", "w_drift", "grad_norm")
_NON_NEGATIVE = ("w_std", "w_norm", "w_absmax", "w_drift", "grad_norm", "act_std")


def synthetic_layers(layer_sizes: Sequence[int]) -> list[LayerInfo]:
    """``input``, ``hidden_1`` … and ``output`` layers of the given sizes (at least two)."""
    if len(layer_sizes) < 2 or min(layer_sizes) < 1:
        raise ValueError("layer_sizes: at least an input and an output layer, each of ≥ 1")
    layers, first = [], 0
    names = ["input", *(f"hidden_{i}" for i in range(1, len(layer_sizes) - 1)), "output"]
    for i, (name, size) in enumerate(zip(names, layer_sizes, strict=True)):
        fan_in = 0 if i == 0 else int(layer_sizes[i - 1])
        layers.append(
            LayerInfo(
                name=name,
                kind="input" if i == 0 else "linear",
                n_neurons=int(size),
                first_id=first,
                activation=None if i in (0, len(names) - 1) else "ReLU",
                module="" if i == 0 else f"layers.{i - 1}",
                weight_key=None if i == 0 else f"layers.{i - 1}.weight",
                bias_key=None if i == 0 else f"layers.{i - 1}.bias",
                fan_in=fan_in,
            )
        )
        first += int(size)
    return layers


class _Metrics(Mapping[int, np.ndarray]):
    """``{epoch: metrics}`` made on demand from per-neuron starts and drifts (seeded)."""

    def __init__(self, layers: list[LayerInfo], epochs: list[int], seed: int) -> None:
        self._epochs, self._seed = epochs, seed
        n = sum(info.n_neurons for info in layers)
        rng = np.random.default_rng(seed)
        self._start = rng.standard_normal((n, len(METRICS)), dtype=np.float32)
        self._drift = rng.standard_normal((n, len(METRICS)), dtype=np.float32)
        inputs = layers[0].n_neurons
        self._no_weights = np.zeros(n, dtype=bool)
        self._no_weights[:inputs] = True
        hidden = np.arange(inputs, n - layers[-1].n_neurons)
        self._dead = rng.choice(hidden, size=len(hidden) // 20, replace=False)

    def __getitem__(self, epoch: int) -> np.ndarray:
        if epoch not in self._epochs:
            raise KeyError(epoch)
        t = np.float32(epoch / max(self._epochs[-1], 1))
        noise = np.random.default_rng([self._seed, epoch]).standard_normal(
            self._start.shape, dtype=np.float32
        )
        values = self._start + t * self._drift + np.float32(0.1) * noise
        for name in _NON_NEGATIVE:
            values[:, METRICS.index(name)] = np.abs(values[:, METRICS.index(name)])
        active = METRICS.index("act_active")
        values[:, active] = np.round(1 / (1 + np.exp(-values[:, active])) * 64) / 64
        for name in _WEIGHT_METRICS:
            values[self._no_weights, METRICS.index(name)] = np.nan
        for name in ("act_max", "act_mean", "act_active"):
            values[self._dead, METRICS.index(name)] = 0.0
        return values

    def __iter__(self) -> Iterator[int]:
        return iter(self._epochs)

    def __len__(self) -> int:
        return len(self._epochs)


def synthetic_trace(layer_sizes: Sequence[int], n_epochs: int, *, seed: int = 0) -> NetworkTrace:
    """A trace of ``layer_sizes`` neurons recorded at epochs ``0 … n_epochs - 1``, whose
    metrics are made when asked for (one epoch at a time)."""
    layers = synthetic_layers(layer_sizes)
    epochs = list(range(int(n_epochs)))
    decay = np.exp(-np.arange(len(epochs)) / max(len(epochs) / 4, 1))
    history = pd.DataFrame({"epoch": np.asarray(epochs, dtype=np.int64)})
    values = {
        "train_loss": 0.2 + decay,
        "train_acc": 1 - 0.5 * decay,
        "val_loss": 0.25 + decay,
        "val_acc": 0.95 - 0.5 * decay,
        "probe_loss": 0.25 + decay,
        "probe_acc": 0.95 - 0.5 * decay,
        "lr": np.full(len(epochs), 0.01),
        "seconds": np.full(len(epochs), 1.0),
    }
    for column in HISTORY_COLUMNS:
        history[column] = values[column].astype(np.float64)
    history["recorded"] = True
    n_parameters = sum(info.n_neurons * (info.fan_in + 1) for info in layers[1:])
    meta = {
        "status": "running",
        "num_epochs": epochs[-1],
        "model": {"name": "synthetic", "n_parameters": int(n_parameters)},
        "dataset": {"name": "synthetic"},
        "statistics_source": "synthetic",
    }
    return NetworkTrace(layers, _Metrics(layers, epochs, seed), meta, history=history)


def write_synthetic_run(
    directory: str | os.PathLike,
    layer_sizes: Sequence[int],
    n_epochs: int,
    *,
    seed: int = 0,
) -> Path:
    """Write :func:`synthetic_trace` to the run directory ``directory`` epoch by epoch with
    :class:`~nn_tracing.rundir.RunWriter`, then close it ``complete``. Returns the path."""
    from .rundir import RunWriter

    trace = synthetic_trace(layer_sizes, n_epochs, seed=seed)
    writer = RunWriter(directory, trace)
    for epoch in trace.epochs:
        writer.write_epoch(epoch)
    writer.close("complete")
    return Path(directory)
