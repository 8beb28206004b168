"""The activation field: for 2-D inputs, a neuron's activation over the input plane, from the
traced model rebuilt at an epoch and checked against the activations the trace recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...trace import NetworkTrace
from ._common import ProfileUnavailable, _check_neuron, _labels, destandardise

__all__ = ["ActivationField", "activation_field", "field_epochs"]


@dataclass(frozen=True)
class ActivationField:
    """A neuron's activation over the plane of a 2-D input, at one epoch.

    Attributes
    ----------
    neuron_id, epoch : which neuron, and the epoch of the weights used
    feature_names : the two input features
    x, y : float arrays of shape (resolution,): the grid in the dataset's own units
    values : float array of shape (resolution, resolution): ``values[i, j]`` is the activation
        at ``(x[j], y[i])``
    probe_x : float array of shape (n_probe, 2) in the dataset's units (None without a probe)
    probe_labels : integer array of shape (n_probe,) (None without a probe)
    probe_values : the rebuilt model's activation at each probe point, shape (n_probe,)
    max_probe_error : the largest difference between ``probe_values`` and the activations the
        trace recorded at that epoch (NaN when it has none): the check that the rebuilt model is
        the traced one
    """

    neuron_id: int
    epoch: int
    feature_names: tuple[str, str]
    x: np.ndarray
    y: np.ndarray
    values: np.ndarray
    probe_x: np.ndarray | None
    probe_labels: np.ndarray | None
    probe_values: np.ndarray | None
    max_probe_error: float

    def frame(self) -> pd.DataFrame:
        """The grid in long form: ``x``, ``y``, ``value`` (one row per grid point)."""
        xx, yy = np.meshgrid(self.x, self.y)
        return pd.DataFrame({"x": xx.ravel(), "y": yy.ravel(), "value": self.values.ravel()})


def field_epochs(trace: NetworkTrace) -> list[int]:
    """The recorded epochs at which :func:`activation_field` can run: all of them when the run
    kept its weights, the final one otherwise; none for inputs that are not 2-D."""
    if not trace.layers or trace.layers[0].n_neurons != 2:
        return []
    return trace.epochs_with_weights


def activation_field(
    trace: NetworkTrace,
    neuron_id: int,
    epoch: int,
    *,
    resolution: int = 60,
    margin: float = 0.1,
) -> ActivationField:
    """The neuron's activation over the input plane (2-D inputs), at ``epoch``.

    The traced model is rebuilt with its weights at ``epoch``
    (:func:`~nn_tracing.models.model_from_trace`) and run in inference mode through
    :meth:`~nn_tracing.TraceableNN.activations` on a ``resolution`` × ``resolution`` grid that
    covers the probe set with a ``margin`` (share of its range) on every side, so the value at
    a probe point is the activation the trace recorded there.

    Raises
    ------
    ProfileUnavailable
        For inputs that are not 2-D, without weights at ``epoch``, or for a custom model that
        was not attached (:func:`~nn_tracing.attach_model`).
    """
    from ...models import model_from_trace
    from ...store import TraceFormatError

    _check_neuron(trace, neuron_id)
    n_inputs = trace.layers[0].n_neurons if trace.layers else 0
    if n_inputs != 2:
        raise ProfileUnavailable(
            f"the activation field needs 2 input features; this network has {n_inputs}"
        )
    resolution = int(min(max(resolution, 4), 400))
    try:
        model = model_from_trace(trace, epoch)
    except (ValueError, TraceFormatError) as exc:
        raise ProfileUnavailable(str(exc)) from None

    gx, gy, probe_std = _field_axes(trace, resolution, margin)
    xx, yy = np.meshgrid(gx, gy)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    inputs = grid if probe_std is None else np.concatenate([grid, probe_std])
    column = _rebuilt_activations(trace, model, inputs)[:, neuron_id]
    values = column[: grid.shape[0]].reshape(resolution, resolution)
    probe_values = None if probe_std is None else column[grid.shape[0] :]
    error = float("nan")
    if probe_values is not None:
        recorded = trace.probe_activations(epoch)
        if recorded is not None:
            error = float(np.nanmax(np.abs(probe_values - recorded[:, neuron_id])))
    corners = destandardise(trace, np.stack([gx, gy], axis=1))
    names = trace.feature_names
    labels = None
    if trace.probe is not None:
        try:
            labels = _labels(trace)
        except ProfileUnavailable:
            labels = None
    return ActivationField(
        neuron_id=int(neuron_id),
        epoch=int(epoch),
        feature_names=(names[0], names[1]),
        x=corners[:, 0],
        y=corners[:, 1],
        values=values,
        probe_x=None if probe_std is None else destandardise(trace, probe_std),
        probe_labels=labels,
        probe_values=probe_values,
        max_probe_error=error,
    )


def _field_axes(
    trace: NetworkTrace, resolution: int, margin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The grid's two axes (standardised units, arrays of shape (resolution,)) covering the
    probe set with ``margin`` on every side (``-3 … 3`` without a 2-D probe set), and the
    probe inputs, array of shape (n_probe, 2), or ``None``."""
    probe_std = np.asarray(trace.probe[0], dtype=np.float64) if trace.probe is not None else None
    if probe_std is not None and probe_std.ndim == 2 and probe_std.shape[1] == 2:
        low, high = probe_std.min(axis=0), probe_std.max(axis=0)
    else:
        probe_std = None
        low, high = np.full(2, -3.0), np.full(2, 3.0)
    pad = margin * np.maximum(high - low, 1e-6)
    gx = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    gy = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    return gx, gy, probe_std


def _rebuilt_activations(trace: NetworkTrace, model: Any, inputs: np.ndarray) -> np.ndarray:
    """Every neuron's activation of the rebuilt ``model`` (an ``nn.Module``) on ``inputs``,
    float64 array of shape (n_inputs, n_neurons); refuses a model whose layers differ from the
    trace's."""
    import torch

    from ...tracer import TraceableNN

    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    tensor = torch.from_numpy(inputs).to(dtype)
    traced = TraceableNN(model, example_input=tensor[:2])
    try:
        widths = [info.n_neurons for info in traced.layers]
        if widths != [info.n_neurons for info in trace.layers]:
            raise ProfileUnavailable(
                f"the rebuilt model's layer widths {widths} differ from the trace's"
            )
        acts = traced.activations(tensor).cpu().numpy().astype(np.float64)
    finally:
        traced.remove_hooks()
    if acts.shape[1] != trace.n_neurons:
        raise ProfileUnavailable(
            f"the rebuilt model has {acts.shape[1]} neurons, the trace {trace.n_neurons}"
        )
    return acts
