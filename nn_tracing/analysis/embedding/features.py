"""What describes a neuron: feature sets and the feature rows built from a trace.

* :class:`FeatureSpec` says which feature set, layers, epoch(s) and scaling;
* :func:`neuron_features` builds the rows (:class:`NeuronFeatures`): one per neuron, or one
  per (neuron, epoch) for the joint embedding. Neurons whose features are undefined (NaN) or
  constant (a dead ReLU's activations) cannot be placed: they are listed in
  ``NeuronFeatures.excluded`` with the reason, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ...timeaxis import time_key
from ...trace import METRICS, NetworkTrace, signature_column
from ..sampling import DenseSample, sample_neurons
from ..standardise import ALIASES, constant_columns, constant_rows, zscore

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_SCALE",
    "FEATURE_SETS",
    "PER_EPOCH",
    "SCALES",
    "FeatureError",
    "FeatureSpec",
    "NeuronFeatures",
    "neuron_features",
]

#: The feature sets and what each describes.
FEATURE_SETS: dict[str, str] = {
    "trajectory": "a metric's trajectory over the recorded epochs",
    "metrics": "several metrics at one epoch",
    "response": "mean activation per class on the probe set (response profile)",
    "activations": "activation on every probe sample (the neuron as a point in sample space)",
    "weights": "incoming weights (one layer)",
}
#: Feature sets defined at one epoch (the joint embedding over epochs applies to these).
PER_EPOCH: frozenset[str] = frozenset({"metrics", "response", "activations", "weights"})
#: How features are scaled before projecting and clustering (modes of
#: :mod:`nn_tracing.analysis.standardise`; the old name ``column`` is still accepted).
SCALES: dict[str, str] = {
    "none": "raw values",
    "neuron": "z-scored per neuron (its shape, not its size)",
    "global": "each feature standardised over the neurons",
}
DEFAULT_SCALE: dict[str, str] = {
    "trajectory": "neuron",
    "metrics": "global",
    "response": "none",
    "activations": "neuron",
    "weights": "none",
}
#: The metrics of the ``metrics`` feature set unless chosen otherwise.
DEFAULT_METRICS: tuple[str, ...] = (
    "act_mean",
    "act_std",
    "act_active",
    "selectivity",
    "w_norm",
    "grad_norm",
)


class FeatureError(ValueError):
    """A feature set that cannot be built from this trace; the message says why."""


@dataclass(frozen=True)
class FeatureSpec:
    """What describes a neuron.

    Parameters
    ----------
    kind
        One of :data:`FEATURE_SETS`.
    layers
        Layers whose neurons are described; empty: every layer except ``input`` (for
        ``weights``: the first layer with weights).
    epoch
        The epoch of a per-epoch feature set; ``None``: the last recorded epoch.
    metric
        The metric of ``trajectory``.
    epoch_range
        ``(first, last)`` epochs of ``trajectory`` (inclusive); ``None``: every recorded epoch.
    metrics
        The metrics of ``metrics``.
    scale
        One of :data:`SCALES` (``"column"``, the old name of ``"global"``, becomes
        ``"global"``); ``"auto"`` picks :data:`DEFAULT_SCALE` for the kind.
    max_neurons
        Above this many neurons, a seeded sample of this many is described
        (:func:`~nn_tracing.analysis.sampling.sample_neurons`); ``None``: every neuron.
    """

    kind: str = "activations"
    layers: tuple[str, ...] = ()
    epoch: int | None = None
    metric: str = "act_mean"
    epoch_range: tuple[int, int] | None = None
    metrics: tuple[str, ...] = DEFAULT_METRICS
    scale: str = "auto"
    max_neurons: int | None = None

    def __post_init__(self) -> None:
        if self.max_neurons is not None and (
            not isinstance(self.max_neurons, int) or self.max_neurons < 1
        ):
            raise FeatureError(f"max_neurons={self.max_neurons!r}: take at least one neuron")
        if self.kind not in FEATURE_SETS:
            raise FeatureError(
                f"feature set {self.kind!r} does not exist; use one of {', '.join(FEATURE_SETS)}"
            )
        if self.scale != "auto":
            if ALIASES.get(self.scale, self.scale) not in SCALES:
                raise FeatureError(f"scale {self.scale!r}: use auto or one of {', '.join(SCALES)}")
            object.__setattr__(self, "scale", ALIASES.get(self.scale, self.scale))
        if self.metric not in METRICS:
            raise FeatureError(f"no metric {self.metric!r}; metrics: {', '.join(METRICS)}")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise FeatureError(f"no metric {unknown[0]!r}; metrics: {', '.join(METRICS)}")
        if self.kind == "metrics" and len(self.metrics) < 2:
            raise FeatureError("the 'metrics' feature set needs at least two metrics")

    @property
    def per_epoch(self) -> bool:
        return self.kind in PER_EPOCH

    @property
    def resolved_scale(self) -> str:
        return DEFAULT_SCALE[self.kind] if self.scale == "auto" else self.scale

    def resolve(self, trace: NetworkTrace) -> FeatureSpec:
        """This spec with its defaults made explicit for ``trace`` (layers, epochs, scale).

        Raises :class:`FeatureError` for layers or epochs the trace does not have.
        """
        names = trace.layer_names()
        layers = tuple(self.layers)
        unknown = [name for name in layers if name not in names]
        if unknown:
            raise FeatureError(f"no layer {unknown[0]!r}; layers: {', '.join(names)}")
        if self.kind == "weights":
            weighted = [info.name for info in trace.layers if info.weight_key]
            if not weighted:
                raise FeatureError("no layer of this trace has incoming weights")
            if not layers:
                layers = (weighted[0],)
            if len(layers) != 1:
                raise FeatureError(
                    "incoming weights describe the neurons of one layer only (their lengths "
                    "differ between layers): pick one layer"
                )
            if layers[0] not in weighted:
                raise FeatureError(f"layer {layers[0]!r} has no incoming weights")
        elif not layers:
            layers = tuple(n for n in names if n != "input") or tuple(names)
        layers = tuple(n for n in names if n in layers)  # layer order
        epochs = trace.epochs
        if not epochs:
            raise FeatureError("this trace has no recorded epoch yet")
        epoch = self.epoch
        epoch_range = self.epoch_range
        if self.per_epoch:
            epoch = epochs[-1] if epoch is None else epoch
            if epoch not in epochs:
                raise FeatureError(
                    f"epoch {epoch} was not recorded; recorded: "
                    f"{', '.join(time_key(e) for e in epochs)}"
                )
            epoch_range = None
        else:
            first, last = epoch_range if epoch_range is not None else (epochs[0], epochs[-1])
            inside = [e for e in epochs if first <= e <= last]
            if len(inside) < 2:
                raise FeatureError(
                    "a trajectory needs at least two recorded epochs; "
                    f"{time_key(first)}…{time_key(last)} "
                    f"holds {len(inside)}"
                )
            epoch_range = (inside[0], inside[-1])
            epoch = None
        return replace(
            self, layers=layers, epoch=epoch, epoch_range=epoch_range, scale=self.resolved_scale
        )

    def describe(self) -> str:
        """One line that says what the features are (for captions and reports)."""
        scale = SCALES[self.resolved_scale]
        where = ", ".join(f"L_{n}" for n in self.layers) if self.layers else "every layer"
        if self.kind == "trajectory":
            span = (
                f"{time_key(self.epoch_range[0])}…{time_key(self.epoch_range[1])}"
                if self.epoch_range
                else ""
            )
            return f"{self.metric} over {span or 'every recorded epoch'} ({scale}); {where}"
        when = f"at {time_key(self.epoch)}" if self.epoch is not None else "at the last epoch"
        if self.kind == "metrics":
            return f"{', '.join(self.metrics)} {when} ({scale}); {where}"
        return f"{FEATURE_SETS[self.kind]} {when} ({scale}); {where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "layers": list(self.layers),
            "epoch": self.epoch,
            "metric": self.metric,
            "epoch_range": list(self.epoch_range) if self.epoch_range else None,
            "metrics": list(self.metrics),
            "scale": self.scale,
        } | ({} if self.max_neurons is None else {"max_neurons": self.max_neurons})


@dataclass(frozen=True)
class NeuronFeatures:
    """Feature rows of neurons (or of (neuron, epoch) pairs), ready to project and cluster.

    Attributes
    ----------
    values : array of shape (n_rows, n_features), float32, scaled as ``spec.scale`` says
    raw : the same rows before scaling, array of shape (n_rows, n_features), float32
    neuron_ids : global neuron id of each row, array of shape (n_rows,)
    epochs : epoch of each row, array of shape (n_rows,) (for ``trajectory``: the last epoch
        of the range, whose signature the row carries)
    layers : layer name of each row, array of shape (n_rows,)
    columns : a name per feature (an epoch, a metric, a class, a probe sample, an input)
    positions : x position of each feature in a profile chart, array of shape (n_features,)
    excluded : the rows that could not be placed: ``neuron``, ``layer``, ``epoch``,
        ``signature``, ``reason``
    spec : the resolved :class:`FeatureSpec`
    notes : what was adjusted (columns dropped, ...), in sentences
    sample : the neurons described (all of the chosen layers', or a seeded sample of them:
        ``spec.max_neurons``) and what they take in memory (its ``describe``)
    """

    values: np.ndarray
    raw: np.ndarray
    neuron_ids: np.ndarray
    epochs: np.ndarray
    layers: np.ndarray
    columns: list[str]
    positions: np.ndarray
    excluded: pd.DataFrame
    spec: FeatureSpec
    notes: list[str] = field(default_factory=list)
    sample: DenseSample | None = None

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    def signatures(self) -> list[str]:
        """``E_<epoch>/L_<layer>/n_<id>`` of every row."""
        return signature_column(self.epochs, self.layers, self.neuron_ids)

    def subset(self, rows: np.ndarray) -> NeuronFeatures:
        """The same features for a subset of the rows (an index or boolean mask)."""
        return replace(
            self,
            values=self.values[rows],
            raw=self.raw[rows],
            neuron_ids=self.neuron_ids[rows],
            epochs=self.epochs[rows],
            layers=self.layers[rows],
        )


def _layer_ids(trace: NetworkTrace, layers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    ids = [np.arange(info.first_id, info.last_id + 1) for info in trace.layers]
    names = [np.full(info.n_neurons, info.name, dtype=object) for info in trace.layers]
    keep = [i for i, info in enumerate(trace.layers) if info.name in layers]
    if not keep:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
    return (
        np.concatenate([ids[i] for i in keep]).astype(np.int64),
        np.concatenate([names[i] for i in keep]),
    )


def _probe_labels(trace: NetworkTrace) -> tuple[np.ndarray, list[str]]:
    if trace.probe is None:
        raise FeatureError(
            "this trace has no probe set (its statistics were streamed over training batches), "
            "so it keeps no per-sample activations: use the trajectory or metrics feature sets"
        )
    y = np.asarray(trace.probe[1])
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise FeatureError("the probe labels are not class labels: no per-class profile")
    return y, [trace.class_name(int(c)) for c in np.unique(y)]


def _activations(trace: NetworkTrace, epoch: int) -> np.ndarray:
    acts = trace.probe_activations(epoch)
    if acts is None:
        raise FeatureError(
            f"this trace keeps no probe activations at {time_key(epoch)}"
            + ("" if trace.probe is not None else " (it has no probe set)")
        )
    return acts


def _raw_at(
    trace: NetworkTrace, spec: FeatureSpec, epoch: int, ids: np.ndarray
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Unscaled features of neurons ``ids`` at ``epoch``: (values, column names, positions)."""
    if spec.kind == "metrics":
        columns = [METRICS.index(m) for m in spec.metrics]
        values = trace.metrics_at(epoch)[ids][:, columns].astype(np.float64)
        return values, list(spec.metrics), np.arange(len(columns), dtype=np.float64)
    if spec.kind == "response":
        y, labels = _probe_labels(trace)
        acts = _activations(trace, epoch)[:, ids].astype(np.float64)
        classes = np.unique(y)
        onehot = (y[:, None] == classes[None, :]).astype(np.float64)
        means = (onehot.T @ acts) / onehot.sum(axis=0)[:, None]  # (K, n)
        return means.T, labels, np.arange(len(classes), dtype=np.float64)
    if spec.kind == "activations":
        acts = _activations(trace, epoch)
        if trace.probe is not None and np.issubdtype(np.asarray(trace.probe[1]).dtype, np.integer):
            y, labels = _probe_labels(trace)
            order = np.argsort(y, kind="stable")
            names = dict(zip(np.unique(y), labels, strict=True))
            columns = [f"s_{i} ({names[y[i]]})" for i in order]
        else:
            order = np.arange(acts.shape[0])
            columns = [f"s_{i}" for i in order]
        values = acts[order][:, ids].T.astype(np.float64)
        return values, columns, np.arange(len(order), dtype=np.float64)
    if spec.kind == "weights":
        info = trace.layer(spec.layers[0])
        weights = trace.weights(epoch)
        if weights is None or info.weight_key not in weights:
            final = trace.meta.get("final_weights_epoch")
            raise FeatureError(
                f"this trace has no weights at {time_key(epoch)}: the run kept only the final "
                "weights"
                + (f" ({time_key(final)})" if final is not None else "")
                + "; pick that epoch, or train with keep_weights=True (--keep-weights)"
            )
        matrix = np.asarray(weights[info.weight_key], dtype=np.float64)
        matrix = matrix.reshape(matrix.shape[0], -1)
        values = matrix[ids - info.first_id]
        positions = np.arange(values.shape[1], dtype=np.float64)
        return values, [f"w_{j}" for j in range(values.shape[1])], positions
    raise FeatureError(f"{spec.kind!r} is not a per-epoch feature set")


def _clean(
    raw: np.ndarray, columns: list[str], scale: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """Drop unusable columns, find unusable rows, scale.

    Returns ``(values, keep_rows, keep_columns, reasons, notes)``: ``values`` holds the kept
    columns of every row (scaled where the row is kept), ``keep_columns`` is a mask over
    ``columns``, ``reasons`` has one entry per row (``""`` for a kept row).
    """
    notes: list[str] = []
    keep_columns = np.isfinite(raw).any(axis=0)
    if not keep_columns.all():
        dropped = [c for c, u in zip(columns, keep_columns, strict=True) if not u]
        shown = ", ".join(dropped[:6]) + (", …" if len(dropped) > 6 else "")
        notes.append(f"left out {len(dropped)} feature(s) undefined for every neuron: {shown}")
    names = [c for c, u in zip(columns, keep_columns, strict=True) if u]
    block = raw[:, keep_columns]
    finite = np.isfinite(block)
    reasons = [""] * raw.shape[0]
    bad_rows = ~finite.all(axis=1)
    for row in np.flatnonzero(bad_rows):
        first = names[int(np.flatnonzero(~finite[row])[0])]
        reasons[row] = f"undefined (NaN) feature: {first}"
    ok = ~bad_rows
    if scale == "global" and block.shape[0]:
        constant = constant_columns(block, rows=ok)
        if constant.all():
            raise FeatureError("every feature is constant over these neurons: nothing to compare")
        if constant.any():
            dropped = [c for c, k in zip(names, constant, strict=True) if k]
            notes.append(f"left out feature(s) constant over every neuron: {', '.join(dropped)}")
            keep_columns[np.flatnonzero(keep_columns)[constant]] = False
            block = block[:, ~constant]
    elif block.shape[1]:
        constant = ok & constant_rows(np.where(finite, block, 0.0))
        for row in np.flatnonzero(constant):
            value = block[row, 0]
            reasons[row] = (
                "constant at 0 (dead: never active)"
                if value == 0
                else f"constant features ({value:.3g} everywhere)"
            )
        ok &= ~constant
    values = block.copy()
    if scale in ("neuron", "global") and ok.any() and values.shape[1]:
        values = zscore(values, axis=1 if scale == "neuron" else 0, groups=[ok])
    return values, ok, keep_columns, reasons, notes


def neuron_features(
    trace: NetworkTrace,
    spec: FeatureSpec | None = None,
    *,
    epochs: Sequence[int] | None = None,
) -> NeuronFeatures:
    """Build the feature rows ``spec`` describes.

    Parameters
    ----------
    trace
        The trace.
    spec
        What describes a neuron (default: probe activations at the last epoch).
    epochs
        For a per-epoch feature set, build one row per (neuron, epoch) for each of these
        epochs instead of one row per neuron at ``spec.epoch``; ``global`` scaling then pools
        every epoch, so rows of different epochs share one space.

    Returns
    -------
    NeuronFeatures
        Rows for the neurons that can be placed; the others in ``excluded`` with the reason.

    Raises
    ------
    FeatureError
        The feature set cannot be built from this trace (no probe, no kept weights, ...).
    """
    spec = (spec or FeatureSpec()).resolve(trace)
    ids, layer_names = _layer_ids(trace, spec.layers)
    if ids.size == 0:
        raise FeatureError("no neurons in the chosen layers")
    sample = sample_neurons(ids, spec.max_neurons)
    ids, layer_names = sample.ids, layer_names[sample.positions]
    if spec.kind == "trajectory":
        assert spec.epoch_range is not None
        first, last = spec.epoch_range
        chosen = [i for i, e in enumerate(trace.epochs) if first <= e <= last]
        block = trace.metric(spec.metric)[chosen][:, ids].T.astype(np.float64)
        columns = [time_key(trace.epochs[i]) for i in chosen]
        positions = np.array([trace.epochs[i] for i in chosen], dtype=np.float64)
        raw_rows, row_ids = block, ids
        row_layers = layer_names
        row_epochs = np.full(ids.size, last, dtype=np.int64)
    else:
        assert spec.epoch is not None
        when = [spec.epoch] if epochs is None else list(epochs)
        missing = [e for e in when if e not in trace.epochs]
        if missing:
            raise FeatureError(f"epoch {missing[0]} was not recorded")
        if not when:
            raise FeatureError("no epochs to describe")
        blocks = []
        columns, positions = [], np.zeros(0)
        for e in when:
            block, columns, positions = _raw_at(trace, spec, e, ids)
            blocks.append(block)
        widths = {b.shape[1] for b in blocks}
        if len(widths) != 1:
            raise FeatureError("the features differ in length between epochs")
        raw_rows = np.concatenate(blocks)
        row_ids = np.tile(ids, len(when))
        row_layers = np.tile(layer_names, len(when))
        row_epochs = np.repeat(np.asarray(when, dtype=np.int64), ids.size)
    if raw_rows.shape[1] == 0:
        raise FeatureError("the feature set is empty for these neurons")
    values, ok, keep_columns, reasons, notes = _clean(raw_rows, columns, spec.resolved_scale)
    excluded_rows = np.flatnonzero(~ok)
    excluded = pd.DataFrame(
        {
            "neuron": row_ids[excluded_rows],
            "layer": row_layers[excluded_rows],
            "epoch": row_epochs[excluded_rows],
            "signature": signature_column(
                row_epochs[excluded_rows], row_layers[excluded_rows], row_ids[excluded_rows]
            ),
            "reason": [reasons[r] for r in excluded_rows],
        }
    )
    if len(excluded):
        notes.append(
            f"{len(excluded)} of {len(ok)} {'rows' if epochs is not None else 'neurons'} "
            "cannot be placed (constant or undefined features) and are listed, not drawn"
        )
    return NeuronFeatures(
        values=values[ok].astype(np.float32),
        raw=raw_rows[ok][:, keep_columns].astype(np.float32),
        neuron_ids=row_ids[ok],
        epochs=row_epochs[ok],
        layers=row_layers[ok],
        columns=[c for c, k in zip(columns, keep_columns, strict=True) if k],
        positions=np.asarray(positions, dtype=np.float64)[keep_columns],
        excluded=excluded,
        spec=spec,
        notes=notes,
        sample=sample,
    )


def _check_rows(X: np.ndarray, minimum: int, what: str) -> np.ndarray:
    """``X`` as float32 rows × features, checked: 2-D, at least ``minimum`` rows, finite."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"{what} needs a 2-D array (rows × features), got shape {X.shape}")
    if X.shape[0] < minimum:
        raise ValueError(f"{what} needs at least {minimum} neurons; there are {X.shape[0]}")
    if not np.isfinite(X).all():
        raise ValueError(f"{what}: the features hold NaN or infinite values")
    return X
