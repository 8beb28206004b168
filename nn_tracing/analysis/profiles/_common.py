"""What every profile module shares: the error an analysis raises when it cannot run on a
trace (:class:`ProfileUnavailable`), class names, inputs in the dataset's own units
(:func:`destandardise`), and the checked reads of a neuron, its probe labels and its probe
activations."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...timeaxis import time_key
from ...trace import LayerInfo, NetworkTrace

__all__ = ["ProfileUnavailable", "class_names", "destandardise"]


class ProfileUnavailable(ValueError):
    """An analysis that cannot run on this trace; the message says why, for a person."""


def _dataset(trace: NetworkTrace) -> dict[str, Any]:
    dataset = trace.meta.get("dataset")
    return dataset if isinstance(dataset, dict) else {}


def class_names(trace: NetworkTrace, labels: np.ndarray) -> list[str]:
    """The name of each integer label (:meth:`NetworkTrace.class_name`).

    Parameters
    ----------
    labels : integer array of shape (n,)

    Returns
    -------
    list of n names
    """
    return [trace.class_name(i) for i in np.asarray(labels).tolist()]


def destandardise(trace: NetworkTrace, x: np.ndarray) -> np.ndarray:
    """Inputs in the dataset's own units: ``x * feature_scale + feature_mean``.

    The built-in datasets are standardised with the training split's statistics, which the
    trace keeps in ``meta["dataset"]``; without them (a custom model) ``x`` is returned as is.

    Parameters
    ----------
    x : array of shape (n, n_features), as the model sees it

    Returns
    -------
    float64 array of shape (n, n_features)
    """
    x = np.asarray(x, dtype=np.float64)
    dataset = _dataset(trace)
    mean, scale = dataset.get("feature_mean"), dataset.get("feature_scale")
    if (
        isinstance(mean, list)
        and isinstance(scale, list)
        and len(mean) == len(scale) == x.shape[-1]
    ):
        mean_, scale_ = np.asarray(mean, np.float64), np.asarray(scale, np.float64)
        raw = x * scale_ + mean_
        # standardised inputs are float32 (7 significant digits): round away the noise that
        # would turn a pixel value of 0 into -1.8e-07
        magnitude = np.maximum(np.abs(raw), np.abs(mean_) + np.abs(scale_))
        magnitude = np.where(np.isfinite(magnitude) & (magnitude > 0), magnitude, 1.0)
        factor = 10.0 ** (6 - np.floor(np.log10(magnitude)))  # 7 significant digits
        return np.round(raw * factor) / factor + 0.0
    return x


def _labels(trace: NetworkTrace) -> np.ndarray:
    """The probe labels as integers; :class:`ProfileUnavailable` without a probe or classes."""
    if trace.probe is None:
        raise ProfileUnavailable(
            "this trace has no probe set (its statistics were streamed over training batches), "
            "so there are no per-sample activations to analyse"
        )
    y = np.asarray(trace.probe[1])
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or np.all(np.equal(np.mod(y, 1), 0))):
        raise ProfileUnavailable("the probe labels are not classes (integers)")
    return y.astype(np.int64)


def _activations(trace: NetworkTrace, neuron_id: int, epoch: int) -> np.ndarray:
    """The neuron's probe activations at ``epoch``, float64 array of shape (n_probe,)."""
    _check_neuron(trace, neuron_id)
    acts = trace.probe_activations(epoch)
    if acts is None or trace.probe is None:
        raise ProfileUnavailable(f"this trace keeps no probe activations at {time_key(epoch)}")
    return np.asarray(acts[:, neuron_id], dtype=np.float64)


def _check_neuron(trace: NetworkTrace, neuron_id: int) -> LayerInfo:
    return trace.layer_of(int(neuron_id))
