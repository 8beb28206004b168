"""A neuron's weights: incoming and outgoing at one epoch, incoming over the epochs with kept
weights, and a first-layer neuron's incoming weights as the image it looks at; which layer
feeds which (:func:`source_layer`, :func:`target_layer`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...progress import Progress, reporter
from ...timeaxis import time_key, time_word
from ...trace import LayerInfo, NetworkTrace, signature_column
from ._common import ProfileUnavailable, _check_neuron, _dataset

__all__ = [
    "incoming_weight_history",
    "incoming_weight_image",
    "incoming_weights",
    "outgoing_weights",
    "source_layer",
    "target_layer",
]


def _weights_at(trace: NetworkTrace, epoch: int) -> dict[str, np.ndarray]:
    weights = trace.weights(epoch)
    if weights is None:
        kept = trace.epochs_with_weights
        where = ", ".join(time_key(e) for e in kept) if kept else "no epoch"
        raise ProfileUnavailable(
            f"this trace has no weights at {time_key(epoch)} (it holds them at {where}); train "
            "with keep_weights=True (--keep-weights) to keep them at every recorded "
            f"{time_word()}"
        )
    return weights


def source_layer(trace: NetworkTrace, layer: str) -> LayerInfo | None:
    """The layer whose neurons feed ``layer``: the previous traced layer, when ``layer`` is a
    Linear layer whose fan-in equals that layer's width; otherwise ``None`` (unknown)."""
    names = trace.layer_names()
    index = names.index(trace.layer(layer).name)
    info = trace.layers[index]
    if index == 0 or info.kind != "linear" or info.weight_key is None:
        return None
    previous = trace.layers[index - 1]
    return previous if info.fan_in == previous.n_neurons else None


def target_layer(trace: NetworkTrace, layer: str) -> LayerInfo | None:
    """The layer that ``layer``'s neurons feed: the next traced layer, when its sources are
    ``layer`` (see :func:`source_layer`); otherwise ``None``."""
    names = trace.layer_names()
    index = names.index(trace.layer(layer).name)
    if index + 1 >= len(trace.layers):
        return None
    following = trace.layers[index + 1]
    source = source_layer(trace, following.name)
    return following if source is not None and source.name == layer else None


def _incoming_row(
    trace: NetworkTrace, weights: dict[str, np.ndarray], info: LayerInfo, neuron_id: int
) -> np.ndarray:
    if info.weight_key is None or info.weight_key not in weights:
        raise ProfileUnavailable(f"the weights of L_{info.name} are not in the trace")
    w = np.asarray(weights[info.weight_key])
    return w.reshape(w.shape[0], -1)[neuron_id - info.first_id].astype(np.float64)


def _no_incoming(info: LayerInfo) -> ProfileUnavailable:
    if info.kind == "input":
        return ProfileUnavailable(
            f"L_{info.name} holds the input features: they have no incoming weights"
        )
    return ProfileUnavailable(f"L_{info.name} has no weight in the trace")


def incoming_weights(trace: NetworkTrace, neuron_id: int, epoch: int) -> pd.DataFrame:
    """The neuron's incoming weights at ``epoch`` (kept weights, or the final ones).

    Returns
    -------
    DataFrame with one row per incoming weight (fan-in order): ``index``, ``source`` (global
    id of the source neuron, -1 when the sources are unknown), ``source_layer``, ``signature``
    (the source's, ``""`` when unknown), ``label`` (feature name for input features,
    ``n_<id>`` or ``w[<index>]``), ``weight``, ``abs_weight``, ``weight_e0`` (at the first
    recorded epoch when its weights were kept, else NaN), ``epoch``.

    Raises
    ------
    ProfileUnavailable
        For input features, or when the trace has no weights at ``epoch``.
    """
    info = _check_neuron(trace, neuron_id)
    if info.kind == "input" or info.weight_key is None:
        raise _no_incoming(info)
    row = _incoming_row(trace, _weights_at(trace, epoch), info, neuron_id)
    first = trace.epochs[0]
    initial = np.full(row.shape, np.nan)
    if first != epoch and first in trace.epochs_with_weights:
        initial = _incoming_row(trace, _weights_at(trace, first), info, neuron_id)
    elif first == epoch:
        initial = row.copy()
    source = source_layer(trace, info.name)
    index = np.arange(row.size)
    if source is not None:
        ids = source.first_id + index
        signatures = signature_column(epoch, source.name, ids)
        if source.kind == "input":
            names = trace.feature_names
            labels = [f"{names[i]} (n_{ids[i]})" for i in index]
        else:
            labels = [f"n_{i}" for i in ids]
        source_name = source.name
    else:
        ids = np.full(row.size, -1)
        signatures = [""] * row.size
        labels = [f"w[{i}]" for i in index]
        source_name = ""
    return pd.DataFrame(
        {
            "index": index,
            "source": ids.astype(np.int64),
            "source_layer": source_name,
            "signature": signatures,
            "label": labels,
            "weight": row,
            "abs_weight": np.abs(row),
            "weight_e0": initial,
            "epoch": epoch,
        }
    )


def incoming_weight_image(trace: NetworkTrace, neuron_id: int, epoch: int) -> np.ndarray:
    """A first-layer neuron's incoming weights as the image its inputs come from.

    For an image dataset (``meta["dataset"]["image_shape"]``, e.g. ``digits``: 8×8), the
    weights from the input pixels, reshaped row-major as the pixels are.

    Returns
    -------
    float64 array of shape ``image_shape`` (e.g. (8, 8))

    Raises
    ------
    ProfileUnavailable
        When the dataset is not an image dataset or the neuron's inputs are not the pixels.
    """
    info = _check_neuron(trace, neuron_id)
    shape = _dataset(trace).get("image_shape")
    if not isinstance(shape, list) or not shape:
        raise ProfileUnavailable("the dataset is not an image dataset")
    source = source_layer(trace, info.name) if info.kind != "input" else None
    if source is None or source.kind != "input" or int(np.prod(shape)) != source.n_neurons:
        raise ProfileUnavailable(
            f"L_{info.name}'s inputs are not the image's pixels; only the first hidden layer "
            "looks at the image directly"
        )
    row = _incoming_row(trace, _weights_at(trace, epoch), info, neuron_id)
    return row.reshape([int(s) for s in shape])


def incoming_weight_history(
    trace: NetworkTrace,
    neuron_id: int,
    *,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The neuron's incoming weights at every recorded epoch whose weights were kept.

    Reads each of those epochs' tensors once; ``progress(fraction, message)`` after each.

    Returns
    -------
    Long DataFrame, one row per (epoch, incoming weight): the columns of
    :func:`incoming_weights`.

    Raises
    ------
    ProfileUnavailable
        When fewer than two recorded epochs have weights (a run without ``keep_weights``).
    """
    info = _check_neuron(trace, neuron_id)
    if info.kind == "input" or info.weight_key is None:
        raise _no_incoming(info)
    epochs = trace.epochs_with_weights
    if len(epochs) < 2:
        raise ProfileUnavailable(
            "this run kept the weights only at the end; train with keep_weights=True "
            "(--keep-weights) to see the incoming weights change over the recorded epochs"
        )
    parts = []
    report = reporter(progress, len(epochs))
    for done, epoch in enumerate(epochs, start=1):
        parts.append(incoming_weights(trace, neuron_id, epoch))
        report(done, f"incoming weights at {time_key(epoch)}")
    return pd.concat(parts, ignore_index=True)


def outgoing_weights(trace: NetworkTrace, neuron_id: int, epoch: int) -> pd.DataFrame:
    """The weights from this neuron to the next layer's neurons at ``epoch``.

    Returns
    -------
    DataFrame with one row per target neuron: ``target`` (global id), ``target_layer``,
    ``signature``, ``weight``, ``abs_weight``, ``weight_e0`` (NaN when the first recorded
    epoch's weights were not kept), ``epoch``.

    Raises
    ------
    ProfileUnavailable
        For the last traced layer (its outputs are the logits), when the next layer's inputs
        are not this layer's neurons, or without weights at ``epoch``.
    """
    info = _check_neuron(trace, neuron_id)
    target = target_layer(trace, info.name)
    if target is None:
        names = trace.layer_names()
        index = names.index(info.name)
        if index + 1 >= len(names):
            raise ProfileUnavailable(
                f"L_{info.name} is the last traced layer: its outputs are the logits, which feed "
                "the loss rather than another neuron"
            )
        following = trace.layers[index + 1]
        raise ProfileUnavailable(
            f"the next traced layer, L_{following.name}, has a fan-in of {following.fan_in}, "
            f"not L_{info.name}'s width {info.n_neurons}: its inputs are not these neurons"
        )

    def column(weights: dict[str, np.ndarray]) -> np.ndarray:
        if target.weight_key is None or target.weight_key not in weights:
            raise ProfileUnavailable(f"the weights of L_{target.name} are not in the trace")
        w = np.asarray(weights[target.weight_key])
        return w.reshape(w.shape[0], -1)[:, neuron_id - info.first_id].astype(np.float64)

    values = column(_weights_at(trace, epoch))
    first = trace.epochs[0]
    initial = np.full(values.shape, np.nan)
    if first in trace.epochs_with_weights:
        initial = column(_weights_at(trace, first))
    ids = np.arange(target.first_id, target.last_id + 1)
    return pd.DataFrame(
        {
            "target": ids.astype(np.int64),
            "target_layer": target.name,
            "signature": signature_column(epoch, target.name, ids),
            "weight": values,
            "abs_weight": np.abs(values),
            "weight_e0": initial,
            "epoch": epoch,
        }
    )
