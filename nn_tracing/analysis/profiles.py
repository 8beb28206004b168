"""One neuron's profile: everything the Neurons page computes, as pure functions over a trace.

* **Over time** — :func:`metric_history`: every metric of the neuron at every recorded epoch
  against its layer's median and interquartile band (:func:`layer_bands`).
* **Inputs and outputs** — :func:`incoming_weights`, :func:`outgoing_weights`,
  :func:`strongest_connections` (with the neuron signatures at both ends and where each weight
  stands among all weights of its matrix), :func:`incoming_weight_history` (every epoch with
  kept weights) and :func:`incoming_weight_image` (the first layer of an image dataset, e.g.
  ``digits``: its 64 incoming weights as the 8×8 image they look at). A Linear layer's sources
  are the previous traced layer's neurons when its fan-in equals that layer's width
  (:func:`source_layer`); otherwise the weights are listed by position only.
* **Responses on the probe set** — :func:`probe_responses`, :func:`class_distributions`,
  :func:`selectivity_over_epochs` (the class selectivity index of Morcos et al. (2018) at every
  recorded epoch, against a label-permutation null: the same activations with the probe labels
  shuffled), :func:`top_activating` (the probe samples it responds to most, with their feature
  values in the dataset's own units, labels and predictions) and :func:`class_enrichment`
  (whether a class is over-represented among them, against the hypergeometric null).
* **Activation field** — :func:`activation_field`: for 2-D inputs, the neuron's activation over
  the input plane, computed by rebuilding the traced model at that epoch
  (:func:`nn_tracing.models.model_from_trace`) and running it through
  :meth:`nn_tracing.TraceableNN.activations`, so the definition is the trace's own. Weights exist
  at every recorded epoch when the run kept them, and at the final epoch otherwise
  (:func:`field_epochs`).

Nothing here imports Streamlit. An analysis that cannot run on a trace (no probe set, no
weights at that epoch, a custom model that was not attached, inputs that are not 2-D) raises
:class:`ProfileUnavailable` with a message meant for a person.

Examples
--------
>>> import nn_tracing as nt                                          # doctest: +SKIP
>>> from nn_tracing.analysis import profiles                         # doctest: +SKIP
>>> trace = nt.load_trace("runs/moons.nntrace")                      # doctest: +SKIP
>>> profiles.top_activating(trace, 5, epoch=60, k=8)                 # doctest: +SKIP
>>> profiles.selectivity_over_epochs(trace, 5, n_permutations=500)   # doctest: +SKIP
>>> field = profiles.activation_field(trace, 5, epoch=60)           # doctest: +SKIP
>>> field.values.shape                                               # doctest: +SKIP
(60, 60)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..progress import Progress, reporter
from ..trace import METRICS, LayerInfo, NetworkTrace, signature_column

__all__ = [
    "TOP_COLUMNS",
    "ActivationField",
    "ProfileUnavailable",
    "activation_field",
    "class_distributions",
    "class_enrichment",
    "class_names",
    "class_selectivity",
    "destandardise",
    "field_epochs",
    "incoming_weight_history",
    "incoming_weight_image",
    "incoming_weights",
    "layer_bands",
    "metric_history",
    "outgoing_weights",
    "probe_responses",
    "selectivity_null",
    "selectivity_over_epochs",
    "source_layer",
    "strongest_connections",
    "target_layer",
    "top_activating",
]


class ProfileUnavailable(ValueError):
    """An analysis that cannot run on this trace; the message says why, for a person."""


# -- the dataset -------------------------------------------------------------------------------
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
        raise ProfileUnavailable(f"this trace keeps no probe activations at E_{epoch}")
    return np.asarray(acts[:, neuron_id], dtype=np.float64)


def _check_neuron(trace: NetworkTrace, neuron_id: int) -> LayerInfo:
    return trace.layer_of(int(neuron_id))


# -- metrics over time -------------------------------------------------------------------------
def layer_bands(trace: NetworkTrace, layer: str) -> np.ndarray:
    """25th, 50th and 75th percentile of every metric over a layer's neurons, per epoch.

    Returns
    -------
    array of shape (len(METRICS), n_epochs, 3); NaN where no neuron has a value.
    """
    info = trace.layer(layer)
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
    trace: NetworkTrace, neuron_id: int, bands: np.ndarray | None = None
) -> pd.DataFrame:
    """Every metric of one neuron at every recorded epoch, against its layer.

    Parameters
    ----------
    neuron_id : global id
    bands : the layer's :func:`layer_bands` (computed when not given)

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
    parts = []
    for m, name in enumerate(METRICS):
        block = trace.metric(name)[:, info.first_id : info.last_id + 1].astype(np.float64)
        own = block[:, neuron_id - info.first_id]
        finite = np.isfinite(block)
        with np.errstate(invalid="ignore"):
            below = ((block < own[:, None]) & finite).sum(axis=1)
            equal = ((block == own[:, None]) & finite).sum(axis=1)
            percentile = (below + 0.5 * equal) / finite.sum(axis=1)
        percentile = np.where(np.isfinite(own), percentile, np.nan)
        parts.append(
            pd.DataFrame(
                {
                    "epoch": epochs,
                    "metric": name,
                    "value": own,
                    "p25": bands[m, :, 0],
                    "median": bands[m, :, 1],
                    "p75": bands[m, :, 2],
                    "percentile": percentile,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


# -- weights -----------------------------------------------------------------------------------
def _weights_at(trace: NetworkTrace, epoch: int) -> dict[str, np.ndarray]:
    weights = trace.weights(epoch)
    if weights is None:
        kept = trace.epochs_with_weights
        where = ", ".join(f"E_{e}" for e in kept) if kept else "no epoch"
        raise ProfileUnavailable(
            f"this trace has no weights at E_{epoch} (it holds them at {where}); train with "
            "keep_weights=True (--keep-weights) to keep them at every recorded epoch"
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
        report(done, f"incoming weights at E_{epoch}")
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


def _abs_percentile(matrix: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of the entries of ``matrix`` whose magnitude is below each ``|value|``."""
    magnitudes = np.sort(np.abs(np.asarray(matrix, dtype=np.float64)).ravel())
    return np.searchsorted(magnitudes, np.abs(values), side="left") / max(magnitudes.size, 1)


def strongest_connections(
    trace: NetworkTrace, neuron_id: int, epoch: int, k: int = 5
) -> pd.DataFrame:
    """The ``k`` largest incoming and ``k`` largest outgoing weights by magnitude, with the
    signature of the neuron at the other end.

    Each weight's ``matrix_percentile`` says where its magnitude stands among all weights of
    the same weight matrix (the reference: a "strongest" connection at the 60th percentile of
    its matrix is not strong). Incoming weights whose sources are unknown (see
    :func:`source_layer`) are left out.

    Returns
    -------
    DataFrame: ``direction`` (``in`` or ``out``), ``rank`` (1 = largest), ``neuron`` (the other
    end's id), ``layer``, ``signature``, ``weight``, ``abs_weight``, ``matrix_percentile``,
    ``weight_e0``, ``epoch``; empty when the neuron has neither known sources nor targets.

    Raises
    ------
    ProfileUnavailable
        Without weights at ``epoch``.
    """
    info = _check_neuron(trace, neuron_id)
    weights = _weights_at(trace, epoch)
    parts = []
    if info.kind != "input" and info.weight_key is not None:
        incoming = incoming_weights(trace, neuron_id, epoch)
        incoming = incoming[incoming["source"] >= 0]
        if len(incoming):
            top = incoming.sort_values(["abs_weight", "index"], ascending=[False, True]).head(k)
            parts.append(
                pd.DataFrame(
                    {
                        "direction": "in",
                        "rank": np.arange(1, len(top) + 1),
                        "neuron": top["source"].to_numpy(),
                        "layer": top["source_layer"].to_numpy(),
                        "signature": top["signature"].to_numpy(),
                        "weight": top["weight"].to_numpy(),
                        "abs_weight": top["abs_weight"].to_numpy(),
                        "matrix_percentile": _abs_percentile(
                            weights[info.weight_key], top["weight"].to_numpy()
                        ),
                        "weight_e0": top["weight_e0"].to_numpy(),
                    }
                )
            )
    target = target_layer(trace, info.name)
    if target is not None and target.weight_key is not None:
        outgoing = outgoing_weights(trace, neuron_id, epoch)
        top = outgoing.sort_values(["abs_weight", "target"], ascending=[False, True]).head(k)
        parts.append(
            pd.DataFrame(
                {
                    "direction": "out",
                    "rank": np.arange(1, len(top) + 1),
                    "neuron": top["target"].to_numpy(),
                    "layer": top["target_layer"].to_numpy(),
                    "signature": top["signature"].to_numpy(),
                    "weight": top["weight"].to_numpy(),
                    "abs_weight": top["abs_weight"].to_numpy(),
                    "matrix_percentile": _abs_percentile(
                        weights[target.weight_key], top["weight"].to_numpy()
                    ),
                    "weight_e0": top["weight_e0"].to_numpy(),
                }
            )
        )
    columns = [
        "direction",
        "rank",
        "neuron",
        "layer",
        "signature",
        "weight",
        "abs_weight",
        "matrix_percentile",
        "weight_e0",
    ]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    frame["epoch"] = epoch
    return frame


# -- responses on the probe set ----------------------------------------------------------------
def probe_responses(trace: NetworkTrace, neuron_id: int, epoch: int) -> pd.DataFrame:
    """The neuron's activation on every probe sample at ``epoch``, with labels and predictions.

    Returns
    -------
    DataFrame with one row per probe sample: ``probe_index``, ``activation``, ``label``,
    ``class``, ``prediction`` (nullable integer: ``<NA>`` when the trace keeps none),
    ``predicted_class``, ``correct`` (nullable boolean).
    """
    acts = _activations(trace, neuron_id, epoch)
    labels = _labels(trace)
    predictions = trace.predictions(epoch)
    if predictions is None and trace.logits(epoch) is not None:
        predictions = np.asarray(trace.logits(epoch)).argmax(axis=1)
    frame = pd.DataFrame(
        {
            "probe_index": np.arange(acts.size),
            "activation": acts,
            "label": labels,
            "class": class_names(trace, labels),
        }
    )
    if predictions is not None and len(predictions) == acts.size:
        predicted = np.asarray(predictions).astype(np.int64)
        frame["prediction"] = pd.array(predicted, dtype="Int64")
        frame["predicted_class"] = class_names(trace, predicted)
        frame["correct"] = pd.array(predicted == labels, dtype="boolean")
    else:
        frame["prediction"] = pd.array([pd.NA] * acts.size, dtype="Int64")
        frame["predicted_class"] = ""
        frame["correct"] = pd.array([pd.NA] * acts.size, dtype="boolean")
    return frame


def class_distributions(trace: NetworkTrace, neuron_id: int, epoch: int) -> pd.DataFrame:
    """Summary of the neuron's probe activations per class at ``epoch`` (box-plot statistics).

    Returns
    -------
    DataFrame with one row per class present in the probe, in label order: ``label``,
    ``class``, ``n``, ``mean``, ``std`` (ddof=0), ``min``, ``q1``, ``median``, ``q3``, ``max``,
    ``whisker_low`` and ``whisker_high`` (the most extreme activations within 1.5 × IQR of the
    quartiles: Tukey's whiskers), ``active`` (share of the class's samples with activation > 0).
    """
    acts = _activations(trace, neuron_id, epoch)
    labels = _labels(trace)
    rows = []
    for label in np.unique(labels):
        values = acts[labels == label]
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        iqr = q3 - q1
        inside = values[(values >= q1 - 1.5 * iqr) & (values <= q3 + 1.5 * iqr)]
        rows.append(
            {
                "label": int(label),
                "n": int(values.size),
                "mean": float(values.mean()),
                "std": float(values.std()),
                "min": float(values.min()),
                "q1": float(q1),
                "median": float(median),
                "q3": float(q3),
                "max": float(values.max()),
                "whisker_low": float(inside.min()),
                "whisker_high": float(inside.max()),
                "active": float((values > 0).mean()),
            }
        )
    columns = ["label", "n", "mean", "std", "min", "q1", "median", "q3", "max"]
    columns += ["whisker_low", "whisker_high", "active"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.insert(1, "class", class_names(trace, frame["label"].to_numpy()))
    return frame


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
        report(done, f"shuffled-label null at E_{epoch}")
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


#: The columns of :func:`top_activating` before the feature columns.
TOP_COLUMNS: tuple[str, ...] = (
    "rank",
    "probe_index",
    "activation",
    "label",
    "class",
    "prediction",
    "predicted_class",
    "correct",
)


def top_activating(
    trace: NetworkTrace, neuron_id: int, epoch: int, k: int = 12, *, largest: bool = True
) -> pd.DataFrame:
    """The probe samples on which the neuron is most (or least) active at ``epoch``.

    Ties are broken by probe index; NaN activations are left out.

    Returns
    -------
    DataFrame of at most ``k`` rows, strongest first: ``rank``, ``probe_index``,
    ``activation``, ``label``, ``class``, ``prediction``, ``predicted_class``, ``correct``,
    then one column per input feature with the sample's value in the dataset's own units
    (de-standardised with ``meta["dataset"]["feature_mean"/"feature_scale"]``), named by the
    feature (``feature <name>`` where a name is one of :data:`TOP_COLUMNS`).
    """
    responses = probe_responses(trace, neuron_id, epoch)
    acts = responses["activation"].to_numpy()
    keep = np.flatnonzero(np.isfinite(acts))
    key = -acts[keep] if largest else acts[keep]
    order = keep[np.lexsort((keep, key))][: max(int(k), 0)]
    top = responses.iloc[order].reset_index(drop=True)
    top.insert(0, "rank", np.arange(1, len(top) + 1))
    assert trace.probe is not None
    raw = destandardise(trace, np.asarray(trace.probe[0])[order].reshape(len(order), -1))
    names = [f"feature {n}" if n in TOP_COLUMNS else n for n in trace.feature_names]
    if raw.shape[1] == len(names):
        features = pd.DataFrame(raw, columns=names)
        top = pd.concat([top, features], axis=1)
    return top


def class_enrichment(trace: NetworkTrace, top: pd.DataFrame) -> pd.DataFrame:
    """Whether a class is over-represented among the top-activating samples.

    For each class: how many of the ``len(top)`` samples belong to it, how many a random draw
    of that many probe samples would hold on average, and the hypergeometric probability of
    drawing at least that many by chance (one-sided), also Bonferroni-adjusted over classes.

    Parameters
    ----------
    top : a :func:`top_activating` frame (its ``label`` column)

    Returns
    -------
    DataFrame with one row per class of the probe, most over-represented first: ``label``,
    ``class``, ``in_top``, ``expected``, ``probe_share``, ``p_value``, ``p_adjusted``.
    """
    from scipy.stats import hypergeom

    labels = _labels(trace)
    classes, counts = np.unique(labels, return_counts=True)
    n_top = len(top)
    in_top = np.array([(top["label"].to_numpy() == c).sum() for c in classes])
    p_values = hypergeom.sf(in_top - 1, labels.size, counts, n_top) if n_top else np.ones(0)
    frame = pd.DataFrame(
        {
            "label": classes.astype(np.int64),
            "class": class_names(trace, classes),
            "in_top": in_top.astype(np.int64),
            "expected": n_top * counts / labels.size,
            "probe_share": counts / labels.size,
            "p_value": p_values if n_top else np.ones(classes.size),
        }
    )
    frame["p_adjusted"] = np.minimum(frame["p_value"] * classes.size, 1.0)
    ratio = frame["in_top"] / frame["expected"].clip(lower=1e-12)
    return (
        frame.assign(_ratio=ratio)
        .sort_values(["_ratio", "label"], ascending=[False, True], ignore_index=True)
        .drop(columns="_ratio")
    )


# -- the activation field ----------------------------------------------------------------------
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
    from ..models import model_from_trace
    from ..store import TraceFormatError

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

    from ..tracer import TraceableNN

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
