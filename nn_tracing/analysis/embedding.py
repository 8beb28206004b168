"""A meta-model of the neurons: describe each neuron by features, project, cluster, summarise.

The pieces, each usable on its own (scikit-learn style: parameters in ``__init__``, ``fit``
returns ``self``, learned attributes end in ``_``, randomness through ``random_state``):

* :class:`FeatureSpec` and :func:`neuron_features` — what describes a neuron (the feature set):

  ``trajectory``  a metric over the recorded epochs (an epoch range), raw or z-scored per neuron;
  ``metrics``     several metrics at one epoch, each standardised over the neurons;
  ``response``    the mean activation per class on the probe set (the response profile);
  ``activations`` the activation on every probe sample (the neuron as a point in sample space);
  ``weights``     the incoming weights (one layer; needs weights kept at that epoch).

  Neurons whose features are undefined (NaN) or constant (a dead ReLU's activations) cannot be
  placed; they are listed in ``NeuronFeatures.excluded`` with the reason, never dropped
  silently. The per-epoch feature sets can be built at several epochs at once: one row per
  (neuron, epoch), scaled together, for the joint embedding behind the epoch slider
  (:func:`joint_embedding`).
* :class:`NeuronProjector` — PCA, t-SNE (scikit-learn below :data:`OPENTSNE_FROM` rows,
  openTSNE above) or UMAP to two dimensions; wide features are first reduced to
  :data:`PCA_FIRST` principal components (standard practice for t-SNE and UMAP).
* :class:`NeuronClusterer` — k-means, HDBSCAN or agglomerative clustering, on the features (the
  default) or on the 2-D map; ``score_`` is the algorithm's own quality score and
  ``silhouette_`` the silhouette (exact, over every neuron).
* :func:`cluster_summary` — per cluster: size, layers represented, the mean feature profile and
  the most typical neurons (closest to the centroid).

Whether the clusters are more than chance is :mod:`nn_tracing.analysis.baselines`.

>>> import nn_tracing as nt
>>> from nn_tracing.analysis import embedding as emb
>>> features = emb.neuron_features(trace, emb.FeatureSpec("activations"))  # doctest: +SKIP
>>> xy = emb.NeuronProjector("umap").fit_transform(features.values)  # doctest: +SKIP
>>> clusters = emb.NeuronClusterer("kmeans", n_clusters=4).fit(features.values)  # doctest: +SKIP
>>> emb.cluster_summary(features, clusters.labels_).table  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ..trace import METRICS, NetworkTrace
from . import numba_guard

__all__ = [
    "CLUSTERERS",
    "DEFAULT_METRICS",
    "DEFAULT_SCALE",
    "FEATURE_SETS",
    "OPENTSNE_FROM",
    "PCA_FIRST",
    "PER_EPOCH",
    "PROJECTORS",
    "SCALES",
    "ClusterSummary",
    "FeatureError",
    "FeatureSpec",
    "JointEmbedding",
    "NeuronClusterer",
    "NeuronFeatures",
    "NeuronProjector",
    "available_threads",
    "cluster_summary",
    "estimate_seconds",
    "joint_embedding",
    "neuron_features",
    "partition_scores",
    "silhouette",
    "silhouette_seconds",
    "variance_explained",
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
#: How features are scaled before projecting and clustering.
SCALES: dict[str, str] = {
    "none": "raw values",
    "neuron": "z-scored per neuron (its shape, not its size)",
    "column": "each feature standardised over the neurons",
}
DEFAULT_SCALE: dict[str, str] = {
    "trajectory": "neuron",
    "metrics": "column",
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
PROJECTORS: dict[str, str] = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
CLUSTERERS: dict[str, str] = {
    "kmeans": "k-means",
    "hdbscan": "HDBSCAN",
    "agglomerative": "agglomerative",
}
#: Features wider than this are reduced to this many principal components before t-SNE/UMAP.
PCA_FIRST = 50
#: From this many rows on, t-SNE runs on openTSNE (FFT-accelerated, parallel), below on
#: scikit-learn (faster to start on small inputs). Measured: benchmarks/analysis.py.
OPENTSNE_FROM = 1000
#: Below this many rows UMAP gets exact nearest neighbours from scikit-learn (see
#: ``NeuronProjector._umap``); above, its own approximate search (pynndescent).
UMAP_EXACT_BELOW = 4096
#: Agglomerative clustering needs O(N²) memory (3 GB at 20k neurons): above this many rows it
#: clusters a random sample and gives every other row the cluster of the nearest centroid.
AGGLOMERATIVE_MAX = 5000

Progress = Callable[[float, str], None]


class FeatureError(ValueError):
    """A feature set that cannot be built from this trace; the message says why."""


# -- features ---------------------------------------------------------------------------------
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
        One of :data:`SCALES`; ``"auto"`` picks :data:`DEFAULT_SCALE` for the kind.
    """

    kind: str = "activations"
    layers: tuple[str, ...] = ()
    epoch: int | None = None
    metric: str = "act_mean"
    epoch_range: tuple[int, int] | None = None
    metrics: tuple[str, ...] = DEFAULT_METRICS
    scale: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_SETS:
            raise FeatureError(
                f"feature set {self.kind!r} does not exist; use one of {', '.join(FEATURE_SETS)}"
            )
        if self.scale != "auto" and self.scale not in SCALES:
            raise FeatureError(f"scale {self.scale!r}: use auto or one of {', '.join(SCALES)}")
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
                    f"{', '.join('E_' + str(e) for e in epochs)}"
                )
            epoch_range = None
        else:
            first, last = epoch_range if epoch_range is not None else (epochs[0], epochs[-1])
            inside = [e for e in epochs if first <= e <= last]
            if len(inside) < 2:
                raise FeatureError(
                    f"a trajectory needs at least two recorded epochs; E_{first}…E_{last} "
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
            span = f"E_{self.epoch_range[0]}…E_{self.epoch_range[1]}" if self.epoch_range else ""
            return f"{self.metric} over {span or 'every recorded epoch'} ({scale}); {where}"
        when = f"at E_{self.epoch}" if self.epoch is not None else "at the last epoch"
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
        }


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

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    def signatures(self) -> list[str]:
        """``E_<epoch>/L_<layer>/n_<id>`` of every row."""
        return [
            f"E_{e}/L_{layer}/n_{i}"
            for e, layer, i in zip(self.epochs, self.layers, self.neuron_ids, strict=True)
        ]

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
    classes = np.unique(y)
    dataset = trace.meta.get("dataset") if isinstance(trace.meta.get("dataset"), dict) else {}
    names = dataset.get("class_names") if isinstance(dataset.get("class_names"), list) else None
    labels = [
        str(names[c]) if names is not None and 0 <= c < len(names) else f"class {c}"
        for c in classes
    ]
    return y, labels


def _activations(trace: NetworkTrace, epoch: int) -> np.ndarray:
    acts = trace.probe_activations(epoch)
    if acts is None:
        raise FeatureError(
            f"this trace keeps no probe activations at E_{epoch}"
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
                f"this trace has no weights at E_{epoch}: the run kept only the final weights"
                + (f" (E_{final})" if final is not None else "")
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
    if scale == "column" and block.shape[0]:
        with np.errstate(all="ignore"):
            std = np.nanstd(np.where(ok[:, None], block, np.nan), axis=0)
        constant = ~(std > 1e-12)
        if constant.all():
            raise FeatureError("every feature is constant over these neurons: nothing to compare")
        if constant.any():
            dropped = [c for c, k in zip(names, constant, strict=True) if k]
            notes.append(f"left out feature(s) constant over every neuron: {', '.join(dropped)}")
            keep_columns[np.flatnonzero(keep_columns)[constant]] = False
            block = block[:, ~constant]
    elif block.shape[1]:
        filled = np.where(finite, block, 0.0)
        span = np.ptp(filled, axis=1)
        size = np.max(np.abs(filled), axis=1)
        constant = ok & (span <= 1e-9 * np.maximum(size, 1e-12))
        for row in np.flatnonzero(constant):
            value = block[row, 0]
            reasons[row] = (
                "constant at 0 (dead: never active)"
                if value == 0
                else f"constant features ({value:.3g} everywhere)"
            )
        ok &= ~constant
    values = block.copy()
    kept = values[ok]
    if scale == "neuron" and kept.size:
        mean = kept.mean(axis=1, keepdims=True)
        std = kept.std(axis=1, keepdims=True)
        values[ok] = (kept - mean) / np.where(std > 0, std, 1.0)
    elif scale == "column" and kept.size:
        mean = kept.mean(axis=0, keepdims=True)
        std = kept.std(axis=0, keepdims=True)
        values[ok] = (kept - mean) / np.where(std > 0, std, 1.0)
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
        epochs instead of one row per neuron at ``spec.epoch``; ``column`` scaling then pools
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
    if spec.kind == "trajectory":
        assert spec.epoch_range is not None
        first, last = spec.epoch_range
        chosen = [i for i, e in enumerate(trace.epochs) if first <= e <= last]
        block = trace.metric(spec.metric)[chosen][:, ids].T.astype(np.float64)
        columns = [f"E_{trace.epochs[i]}" for i in chosen]
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
            "signature": [
                f"E_{row_epochs[r]}/L_{row_layers[r]}/n_{row_ids[r]}" for r in excluded_rows
            ],
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
    )


# -- projection -------------------------------------------------------------------------------
def _check_rows(X: np.ndarray, minimum: int, what: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"{what} needs a 2-D array (rows × features), got shape {X.shape}")
    if X.shape[0] < minimum:
        raise ValueError(f"{what} needs at least {minimum} neurons; there are {X.shape[0]}")
    if not np.isfinite(X).all():
        raise ValueError(f"{what}: the features hold NaN or infinite values")
    return X


class NeuronProjector:
    """Project feature rows to two dimensions with PCA, t-SNE or UMAP.

    Parameters
    ----------
    method
        ``pca``, ``tsne`` or ``umap``.
    n_components
        Output dimensions (2 for the map).
    perplexity
        t-SNE's effective number of neighbours; lowered to ``(n - 1) / 3`` for few rows.
    n_neighbors, min_dist, metric
        UMAP's neighbourhood size, tightness of packing, and distance (``euclidean``,
        ``cosine``, ``correlation``, ``manhattan``; t-SNE takes ``euclidean`` and ``cosine``).
    random_state
        Seed. ``None`` for UMAP runs it on every core (1.4–1.9× faster than seeded, which forces
        one thread, but the layout changes from run to run); PCA and t-SNE are always seeded
        (``None`` means 0).
    n_jobs
        Threads for t-SNE and unseeded UMAP; ``None`` picks them from the machine's load
        (:func:`available_threads`).
    n_epochs
        UMAP's optimisation epochs: 200 (umap-learn's own choice above 10 000 rows; below it
        picks 500, which takes twice as long for a layout that differs little).
    tsne_backend
        ``auto`` (openTSNE from :data:`OPENTSNE_FROM` rows), ``sklearn`` or ``opentsne``.
    pca_first
        Features wider than this are reduced to this many principal components before t-SNE
        and UMAP (``0``: never).
    progress
        ``progress(fraction, what)`` while fitting.

    Attributes
    ----------
    embedding_ : array of shape (n_rows, n_components), float32
    explained_variance_ratio_ : PCA only: share of variance of each of the first (up to 10)
        components, array of shape (n_shown,)
    backend_ : what ran (``sklearn``, ``openTSNE``, ``umap-learn``)
    perplexity_ : the perplexity t-SNE used
    n_jobs_ : t-SNE only: the threads it ran on
    seconds_ : wall time of ``fit``
    notes_ : adjustments made (perplexity lowered, PCA first), in sentences
    """

    def __init__(
        self,
        method: str = "pca",
        *,
        n_components: int = 2,
        perplexity: float = 30.0,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        metric: str = "euclidean",
        random_state: int | None = None,
        n_jobs: int | None = None,
        n_epochs: int = 200,
        tsne_backend: str = "auto",
        pca_first: int = PCA_FIRST,
        progress: Progress | None = None,
    ) -> None:
        self.method = method
        self.n_components = n_components
        self.perplexity = perplexity
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.n_epochs = n_epochs
        self.tsne_backend = tsne_backend
        self.pca_first = pca_first
        self.progress = progress

    def get_params(self) -> dict[str, Any]:
        keys = ("method", "n_components", "perplexity", "n_neighbors", "min_dist", "metric")
        keys += ("random_state", "n_jobs", "n_epochs", "tsne_backend", "pca_first")
        return {key: getattr(self, key) for key in keys}

    def _report(self, fraction: float, what: str) -> None:
        if self.progress is not None:
            self.progress(min(max(fraction, 0.0), 1.0), what)

    def fit(self, X: np.ndarray) -> NeuronProjector:
        """Fit on feature rows ``X`` of shape (n_rows, n_features)."""
        if self.method not in PROJECTORS:
            raise ValueError(f"method={self.method!r}: use one of {', '.join(PROJECTORS)}")
        X = _check_rows(X, 5, PROJECTORS[self.method])
        started = time.perf_counter()
        self.notes_: list[str] = []
        self.explained_variance_ratio_ = np.zeros(0)
        self.perplexity_ = float("nan")
        seed = 0 if self.random_state is None else int(self.random_state)
        if self.method == "pca":
            self.embedding_ = self._pca(X, seed)
        else:
            if self.pca_first and X.shape[1] > self.pca_first < X.shape[0]:
                from sklearn.decomposition import PCA

                self._report(0.02, f"reducing {X.shape[1]} features to {self.pca_first} by PCA")
                X = PCA(self.pca_first, random_state=seed).fit_transform(X).astype(np.float32)
                self.notes_.append(
                    f"features reduced to their first {self.pca_first} principal components "
                    f"before {PROJECTORS[self.method]}"
                )
            self.embedding_ = self._tsne(X, seed) if self.method == "tsne" else self._umap(X)
        self.embedding_ = np.asarray(self.embedding_, dtype=np.float32)
        self.seconds_ = time.perf_counter() - started
        self._report(1.0, "done")
        return self

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """Fit and return ``embedding_``, array of shape (n_rows, n_components)."""
        return self.fit(X).embedding_

    def _pca(self, X: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.decomposition import PCA

        self._report(0.1, "PCA")
        shown = min(10, X.shape[0], X.shape[1])
        model = PCA(max(shown, self.n_components), random_state=seed).fit(X)
        self.explained_variance_ratio_ = model.explained_variance_ratio_[:shown].copy()
        self.backend_ = "sklearn"
        coords = model.transform(X)[:, : self.n_components]
        if coords.shape[1] < self.n_components:  # a single feature: pad
            coords = np.pad(coords, ((0, 0), (0, self.n_components - coords.shape[1])))
        return coords

    def _tsne(self, X: np.ndarray, seed: int) -> np.ndarray:
        n = X.shape[0]
        perplexity = float(min(self.perplexity, max(1.0, (n - 1) / 3.0)))
        if perplexity < self.perplexity:
            self.notes_.append(
                f"perplexity lowered from {self.perplexity:g} to {perplexity:.3g} for {n} rows"
            )
        self.perplexity_ = perplexity
        if self.metric not in ("euclidean", "cosine"):
            raise ValueError(f"t-SNE takes metric euclidean or cosine, not {self.metric!r}")
        backend = self.tsne_backend
        if backend == "auto":
            backend = "opentsne" if n >= OPENTSNE_FROM else "sklearn"
        if backend == "opentsne":
            return self._opentsne(X, perplexity, seed)
        if backend != "sklearn":
            raise ValueError(f"tsne_backend={self.tsne_backend!r}: auto, sklearn or opentsne")
        from sklearn.manifold import TSNE

        self._report(0.1, f"t-SNE (scikit-learn) on {n} rows")
        self.backend_ = "sklearn"
        threads = self._threads()
        model = TSNE(
            n_components=self.n_components,
            perplexity=perplexity,
            metric=self.metric,
            init="pca",
            learning_rate="auto",
            random_state=seed,
            n_jobs=threads,
        )
        # its gradient runs on OpenMP threads whatever n_jobs says: limit them too
        with threadpool_limits(threads, user_api="openmp"):
            return model.fit_transform(X)

    def _threads(self) -> int:
        self.n_jobs_ = int(self.n_jobs) if self.n_jobs else available_threads()
        return self.n_jobs_

    def _opentsne(self, X: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
        from openTSNE import TSNE

        self.backend_ = "openTSNE"
        total = 750  # 250 early-exaggeration + 500 iterations (openTSNE's defaults)
        done = [0]

        def callback(iteration: int, error: float, embedding: Any) -> bool:
            done[0] += 10
            self._report(0.1 + 0.9 * done[0] / total, f"t-SNE (openTSNE) on {X.shape[0]} rows")
            return False

        self._report(0.05, f"t-SNE (openTSNE): nearest neighbours of {X.shape[0]} rows")
        model = TSNE(
            n_components=self.n_components,
            perplexity=perplexity,
            metric=self.metric,
            initialization="pca",
            # Barnes-Hut below 10 000 rows, FFT above (openTSNE's advice; measured at 5000 rows:
            # 24 s vs 42 s for the 500 main iterations on one thread)
            negative_gradient_method="bh" if X.shape[0] < 10000 else "fft",
            random_state=seed,
            n_jobs=self._threads(),
            verbose=False,
            callbacks=callback if self.progress is not None else None,
            callbacks_every_iters=10,
        )
        return np.asarray(model.fit(X))

    def _umap(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        umap = numba_guard.umap_module()
        self.backend_ = "umap-learn"
        n_neighbors = int(min(max(self.n_neighbors, 2), n - 1))
        if n_neighbors < self.n_neighbors:
            self.notes_.append(f"n_neighbors lowered from {self.n_neighbors} to {n_neighbors}")
        seeded = self.random_state is not None
        precomputed = (None, None, None)
        if n < UMAP_EXACT_BELOW:
            # umap-learn computes exact neighbours below 4096 rows by calling its numba distance
            # once per pair from Python (through scikit-learn's pairwise_distances): 50–110 s at
            # 3800 rows. scikit-learn's vectorised search finds the same neighbours in
            # milliseconds; UMAP takes them as they are.
            from sklearn.neighbors import NearestNeighbors

            self._report(0.12, f"exact nearest neighbours of {n} rows")
            search = NearestNeighbors(n_neighbors=n_neighbors, metric=self.metric).fit(X)
            distances, indices = search.kneighbors(X)
            precomputed = (indices.astype(np.int32), distances.astype(np.float32), None)
        model = umap.UMAP(
            n_components=self.n_components,
            n_neighbors=n_neighbors,
            min_dist=float(self.min_dist),
            metric=self.metric,
            random_state=int(self.random_state) if seeded else None,
            n_jobs=1 if seeded else (self.n_jobs or -1),
            n_epochs=self.n_epochs,
            # a spectral start fails on tiny or disconnected graphs; a random start is robust
            init="spectral" if n > 20 else "random",
            precomputed_knn=precomputed,
        )
        status = numba_guard.warm_up_status()
        waiting = (
            "waiting for UMAP's one-time compilation to finish"
            if (status.state == "running")
            else f"UMAP on {n} rows"
        )
        self._report(0.1, waiting)
        with numba_guard.numba_section(), warnings.catch_warnings():
            # without a search index UMAP cannot transform new rows, which is not needed here
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
            self._report(0.15, f"UMAP on {n} rows")
            return model.fit_transform(X)


def _own_running_threads() -> int:
    """Threads of this process running right now (Linux ``/proc/self/task``), at least 1 (the
    caller). OpenMP and BLAS threads keep spinning for a while after a parallel region: they
    are ours, not another process's load."""
    running = 0
    try:
        for task in os.scandir("/proc/self/task"):
            try:
                with open(os.path.join(task.path, "stat")) as handle:
                    state = handle.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            running += state == "R"
    except OSError:
        return 1
    return max(running, 1)


def _running_elsewhere(samples: int = 5) -> float | None:
    """Threads of other processes running right now (Linux ``/proc/loadavg`` minus this
    process's running threads; the median of a few samples 10 ms apart), or ``None`` where that
    cannot be read."""
    counts = []
    try:
        for _ in range(samples):
            with open("/proc/loadavg") as handle:
                running = int(handle.read().split()[3].split("/")[0])
            counts.append(max(running - _own_running_threads(), 0))
            time.sleep(0.01)
    except (OSError, ValueError, IndexError):
        return None
    return float(np.median(counts))


def available_threads(max_threads: int = 2) -> int:
    """Threads worth using now: the cores that nothing else is running on (at least one).

    On a shared two-core machine, OpenMP threads that spin-wait for a core another process
    holds make t-SNE much slower than one thread (measured at 5000 rows with one other process
    busy: openTSNE 54 s on two threads, 34 s on one; scikit-learn's t-SNE of 1000 rows 41 s vs
    9.7 s at a load of 3.4), while on an idle machine two threads are ≈1.5× faster than one.
    """
    cores = os.cpu_count() or 1
    others = _running_elsewhere()
    if others is None:
        try:
            others = max(os.getloadavg()[0] - 1.0, 0.0)  # the 1-minute load includes us
        except OSError:
            others = 0.0
    return int(max(1, min(max_threads, cores - round(others))))


# -- clustering -------------------------------------------------------------------------------
def silhouette(X: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of the labelled rows (label ``-1``, noise, left out), exactly, over every
    row — the same value as scikit-learn's ``silhouette_score`` without sampling.

    Euclidean distances are computed in blocks of rows (memory stays ≈64 MB at any size) and
    summed per cluster with ``np.add.reduceat`` over rows sorted by cluster: O(N²·d) time,
    ≈1 s for 20 000 rows of 50 features on two cores (benchmarks/analysis.py). A row alone in
    its cluster scores 0 (as in scikit-learn). NaN when fewer than two clusters remain, or
    when every row is its own cluster.
    """
    labels = np.asarray(labels)
    mask = labels >= 0
    X = np.asarray(X, dtype=np.float64)[mask]
    labels = labels[mask]
    clusters, labels, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    n, k = labels.size, clusters.size
    if k < 2 or k >= n:
        return float("nan")
    order = np.argsort(labels, kind="stable")
    X, labels = X[order], labels[order]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    squared = np.einsum("ij,ij->i", X, X)
    block = max(1, min(n, 8_000_000 // max(n, 1)))
    total = 0.0
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        d2 = squared[rows, None] + squared[None, :] - 2.0 * (X[rows] @ X.T)
        np.maximum(d2, 0.0, out=d2)
        distance = np.sqrt(d2, out=d2)
        own = labels[rows]
        distance[np.arange(distance.shape[0]), np.arange(rows.start, rows.stop)] = 0.0
        sums = np.add.reduceat(distance, starts, axis=1)  # (block, k)
        own_size = sizes[own]
        a = sums[np.arange(own.size), own] / np.maximum(own_size - 1, 1)
        means = sums / sizes[None, :]
        means[np.arange(own.size), own] = np.inf
        b = means.min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = (b - a) / np.maximum(a, b)
        s[(own_size == 1) | ~np.isfinite(s)] = 0.0
        total += float(s.sum())
    return total / n


def variance_explained(X: np.ndarray, labels: np.ndarray) -> float:
    """Share of the total variance between clusters: ``1 − within / total`` sums of squares
    (what k-means and Ward maximise), over the labelled rows; NaN with fewer than 2 clusters."""
    labels = np.asarray(labels)
    mask = labels >= 0
    X = np.asarray(X, dtype=np.float64)[mask]
    labels = labels[mask]
    if np.unique(labels).size < 2:
        return float("nan")
    total = float(((X - X.mean(axis=0)) ** 2).sum())
    if total <= 0:
        return float("nan")
    within = 0.0
    for c in np.unique(labels):
        members = X[labels == c]
        within += float(((members - members.mean(axis=0)) ** 2).sum())
    return 1.0 - within / total


SCORE_NAMES: dict[str, str] = {
    "kmeans": "variance explained",
    "agglomerative": "variance explained",
    "hdbscan": "mean membership",
}


class NeuronClusterer:
    """Cluster feature rows (or the 2-D map) with k-means, HDBSCAN or agglomerative clustering.

    Parameters
    ----------
    method
        ``kmeans``, ``hdbscan`` or ``agglomerative``.
    n_clusters
        k of k-means and agglomerative clustering.
    min_cluster_size, min_samples
        HDBSCAN's smallest cluster (``None``: 5, or 1 % of the rows if larger) and its
        neighbourhood for core distances (``None``: as ``min_cluster_size``).
    linkage
        Agglomerative linkage: ``ward``, ``average``, ``complete`` or ``single``.
    random_state
        Seed of k-means and of the sample of large agglomerative fits.
    max_agglomerative
        Above this many rows agglomerative clustering fits a random sample of this size and
        gives every other row the cluster of its nearest centroid (O(N²) memory otherwise).
    pca_first
        Features wider than this are clustered on their first ``pca_first`` principal
        components (HDBSCAN's neighbour search degrades to brute force in high dimensions: 406 s
        for 20 000 neurons × 500 features, measured; k-means and agglomerative clustering of
        5000 neurons × 500 probe activations take 2.5 s and 15 s on all columns). The scores
        (``silhouette_``, ``score_``) are always computed on the full features; ``0``: never.

    Attributes
    ----------
    labels_ : cluster of each row, array of shape (n_rows,); ``-1`` is HDBSCAN's noise.
        Clusters are numbered by size, largest first.
    n_clusters_ : clusters found (noise not counted)
    probabilities_ : strength of each row's membership, array of shape (n_rows,) (HDBSCAN; 1
        for the other methods, 0 for noise)
    centers_ : mean of each cluster, array of shape (n_clusters_, n_features)
    score_, score_name_ : the algorithm's own quality score — ``variance explained`` (k-means,
        agglomerative: between-cluster share of the variance) or ``mean membership`` (HDBSCAN:
        mean membership strength, noise counting 0)
    silhouette_ : mean silhouette (noise left out; NaN with fewer than 2 clusters)
    notes_ : adjustments made, in sentences
    """

    def __init__(
        self,
        method: str = "kmeans",
        *,
        n_clusters: int = 4,
        min_cluster_size: int | None = None,
        min_samples: int | None = None,
        linkage: str = "ward",
        random_state: int | None = 0,
        max_agglomerative: int = AGGLOMERATIVE_MAX,
        pca_first: int = PCA_FIRST,
    ) -> None:
        self.method = method
        self.n_clusters = n_clusters
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.linkage = linkage
        self.random_state = random_state
        self.max_agglomerative = max_agglomerative
        self.pca_first = pca_first

    def get_params(self) -> dict[str, Any]:
        keys = ("method", "n_clusters", "min_cluster_size", "min_samples", "linkage")
        keys += ("random_state", "max_agglomerative", "pca_first")
        return {key: getattr(self, key) for key in keys}

    def clone(self, **changes: Any) -> NeuronClusterer:
        """A new, unfitted clusterer with these parameters (and ``changes``)."""
        return NeuronClusterer(**{**self.get_params(), **changes})

    def fit(self, X: np.ndarray) -> NeuronClusterer:
        """Cluster rows ``X`` of shape (n_rows, n_features)."""
        if self.method not in CLUSTERERS:
            raise ValueError(f"method={self.method!r}: use one of {', '.join(CLUSTERERS)}")
        X = _check_rows(X, 3, CLUSTERERS[self.method])
        n = X.shape[0]
        seed = 0 if self.random_state is None else int(self.random_state)
        self.notes_: list[str] = []
        probabilities = np.ones(n)
        data = X
        if self.pca_first and X.shape[1] > self.pca_first < n:
            from sklearn.decomposition import PCA

            data = PCA(self.pca_first, random_state=seed).fit_transform(X)
            self.notes_.append(
                f"{CLUSTERERS[self.method]} ran on the first {self.pca_first} principal "
                f"components of the {X.shape[1]} features (scores use every feature)"
            )
        if self.method in ("kmeans", "agglomerative"):
            k = int(self.n_clusters)
            if k < 2:
                raise ValueError(f"n_clusters={k}: ask for at least 2 clusters")
            if k >= n:
                raise ValueError(f"n_clusters={k} needs more than {k} neurons; there are {n}")
        if self.method == "kmeans":
            from sklearn.cluster import KMeans

            labels = KMeans(int(self.n_clusters), n_init=4, random_state=seed).fit_predict(data)
        elif self.method == "agglomerative":
            labels = self._agglomerative(data, seed)
        else:
            from sklearn.cluster import HDBSCAN

            size = self.min_cluster_size or max(5, n // 100)
            size = int(min(max(size, 2), n))
            model = HDBSCAN(
                min_cluster_size=size,
                min_samples=self.min_samples or None,
                copy=True,
            ).fit(data)
            labels = model.labels_
            probabilities = np.where(labels >= 0, model.probabilities_, 0.0)
            self.min_cluster_size_ = size
        labels = _relabel_by_size(labels)
        self.labels_ = labels
        self.probabilities_ = probabilities
        found = sorted(set(labels.tolist()) - {-1})
        self.n_clusters_ = len(found)
        self.centers_ = (
            np.stack([X[labels == c].mean(axis=0) for c in found])
            if found
            else np.zeros((0, X.shape[1]), dtype=np.float32)
        )
        self.score_name_ = SCORE_NAMES[self.method]
        scores = partition_scores(X, labels, self.method, probabilities)
        self.score_ = scores["score"]
        self.silhouette_ = scores["silhouette"]
        return self

    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).labels_

    def _agglomerative(self, X: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.cluster import AgglomerativeClustering

        n = X.shape[0]
        model = AgglomerativeClustering(n_clusters=int(self.n_clusters), linkage=self.linkage)
        if n <= self.max_agglomerative:
            return model.fit_predict(X)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, self.max_agglomerative, replace=False))
        sample_labels = model.fit_predict(X[sample])
        centers = np.stack(
            [X[sample][sample_labels == c].mean(axis=0) for c in range(int(self.n_clusters))]
        )
        labels = _nearest(X, centers)
        labels[sample] = sample_labels
        self.notes_.append(
            f"agglomerative clustering fitted a random sample of {self.max_agglomerative} of "
            f"{n} rows (it needs memory quadratic in the rows); the others joined the cluster "
            "with the nearest mean"
        )
        return labels


def _nearest(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest center of each row (chunked, so memory stays small)."""
    out = np.empty(X.shape[0], dtype=np.int64)
    c2 = (centers.astype(np.float64) ** 2).sum(axis=1)
    for start in range(0, X.shape[0], 4096):
        block = X[start : start + 4096].astype(np.float64)
        distance = c2[None, :] - 2 * block @ centers.T.astype(np.float64)
        out[start : start + 4096] = distance.argmin(axis=1)
    return out


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, … by decreasing size (ties by first appearance); -1 stays."""
    labels = np.asarray(labels, dtype=np.int64)
    found = [c for c in dict.fromkeys(labels.tolist()) if c >= 0]
    counts = {c: int((labels == c).sum()) for c in found}
    order = sorted(found, key=lambda c: -counts[c])
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(c, -1) for c in labels.tolist()], dtype=np.int64)


def partition_scores(
    X: np.ndarray,
    labels: np.ndarray,
    method: str,
    probabilities: np.ndarray | None = None,
) -> dict[str, float]:
    """``{"silhouette": …, "score": …}`` of a partition: the silhouette and the score of
    ``method`` (see :class:`NeuronClusterer`). Higher means more clearly separated clusters."""
    labels = np.asarray(labels)
    if method == "hdbscan":
        strength = np.where(labels >= 0, 1.0 if probabilities is None else probabilities, 0.0)
        # a single cluster holding every row separates nothing
        score = float(strength.mean()) if np.unique(labels[labels >= 0]).size >= 2 else 0.0
    else:
        score = variance_explained(X, labels)
    return {
        "silhouette": silhouette(X, labels),
        "score": score,
    }


# -- summaries --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterSummary:
    """What each cluster holds.

    Attributes
    ----------
    table : one row per cluster (noise last): ``cluster``, ``name``, ``size``, ``share``,
        ``layers`` (e.g. ``hidden_1: 12, hidden_2: 3``), ``n_layers``, ``spread`` (mean
        distance of the members to their centroid), ``typical`` (the most typical neuron)
    layer_counts : ``cluster``, ``name``, ``layer``, ``count``
    profiles : the mean feature profile of each cluster, long form: ``cluster``, ``name``,
        ``column``, ``position``, ``mean``, ``p25``, ``p75``
    typical : the most typical neurons of each cluster, nearest to its centroid first:
        ``cluster``, ``name``, ``rank``, ``neuron``, ``layer``, ``epoch``, ``signature``,
        ``distance``
    """

    table: pd.DataFrame
    layer_counts: pd.DataFrame
    profiles: pd.DataFrame
    typical: pd.DataFrame


def cluster_name(cluster: int) -> str:
    """``"C0"``, ``"C1"``, …; ``"noise"`` for -1."""
    return "noise" if cluster < 0 else f"C{cluster}"


def cluster_summary(
    features: NeuronFeatures,
    labels: np.ndarray,
    *,
    n_typical: int = 5,
    profile_values: str = "values",
) -> ClusterSummary:
    """Summarise a partition of ``features``' rows.

    Parameters
    ----------
    features
        The rows that were clustered.
    labels
        Cluster of each row, array of shape (n_rows,) (``-1``: noise).
    n_typical
        Most typical neurons listed per cluster.
    profile_values
        ``values`` (the scaled features the clustering saw) or ``raw`` for the profiles.
    """
    labels = np.asarray(labels)
    if labels.shape[0] != features.n_rows:
        raise ValueError(f"{labels.shape[0]} labels for {features.n_rows} rows")
    X = features.values.astype(np.float64)
    shown = (features.raw if profile_values == "raw" else features.values).astype(np.float64)
    clusters = sorted(set(labels.tolist()), key=lambda c: (c < 0, c))
    signatures = np.array(features.signatures(), dtype=object)
    rows, counts, profiles, typical = [], [], [], []
    for c in clusters:
        members = np.flatnonzero(labels == c)
        name = cluster_name(c)
        center = X[members].mean(axis=0)
        distance = np.sqrt(((X[members] - center) ** 2).sum(axis=1))
        layer_values, layer_counts = np.unique(features.layers[members], return_counts=True)
        order = {n: i for i, n in enumerate(dict.fromkeys(features.layers.tolist()))}
        pairs = sorted(zip(layer_values, layer_counts, strict=True), key=lambda p: order[p[0]])
        closest = members[np.argsort(distance, kind="stable")[:n_typical]]
        rows.append(
            {
                "cluster": c,
                "name": name,
                "size": members.size,
                "share": members.size / max(labels.size, 1),
                "layers": ", ".join(f"{layer}: {count}" for layer, count in pairs),
                "n_layers": len(pairs),
                "spread": float(distance.mean()),
                "typical": signatures[closest[0]] if closest.size else "",
            }
        )
        counts.extend(
            {"cluster": c, "name": name, "layer": layer, "count": int(count)}
            for layer, count in pairs
        )
        block = shown[members]
        p25, p75 = np.percentile(block, [25, 75], axis=0)
        profiles.append(
            pd.DataFrame(
                {
                    "cluster": c,
                    "name": name,
                    "column": features.columns,
                    "position": features.positions,
                    "mean": block.mean(axis=0),
                    "p25": p25,
                    "p75": p75,
                }
            )
        )
        ranked = np.argsort(distance, kind="stable")[:n_typical]
        for rank, index in enumerate(ranked):
            row = members[index]
            typical.append(
                {
                    "cluster": c,
                    "name": name,
                    "rank": rank + 1,
                    "neuron": int(features.neuron_ids[row]),
                    "layer": features.layers[row],
                    "epoch": int(features.epochs[row]),
                    "signature": signatures[row],
                    "distance": float(distance[index]),
                }
            )
    return ClusterSummary(
        table=pd.DataFrame(rows),
        layer_counts=pd.DataFrame(counts, columns=["cluster", "name", "layer", "count"]),
        profiles=pd.concat(profiles, ignore_index=True) if profiles else pd.DataFrame(),
        typical=pd.DataFrame(typical),
    )


# -- through time -----------------------------------------------------------------------------
@dataclass(frozen=True)
class JointEmbedding:
    """Every (neuron, epoch) point in one space, so that a slider over epochs moves the neurons
    in a fixed map.

    Attributes
    ----------
    frame : ``neuron``, ``layer``, ``epoch``, ``signature``, ``x``, ``y``
    epochs : the epochs embedded (evenly thinned out when rows would exceed the budget)
    excluded : (neuron, epoch) rows that could not be placed, with the reason
    notes : adjustments made, in sentences
    backend : what projected, seconds : how long
    """

    frame: pd.DataFrame
    epochs: list[int]
    excluded: pd.DataFrame
    notes: list[str]
    backend: str
    seconds: float


def thin_epochs(epochs: Sequence[int], n_neurons: int, max_points: int) -> list[int]:
    """At most ``max_points // n_neurons`` epochs, evenly spaced, always the first and last.

    >>> thin_epochs([0, 1, 2, 3, 4, 5, 6], 100, 400)
    [0, 2, 4, 6]
    """
    epochs = list(epochs)
    room = max(2, max_points // max(n_neurons, 1))
    if len(epochs) <= room:
        return epochs
    picks = np.unique(np.round(np.linspace(0, len(epochs) - 1, room)).astype(int))
    return [epochs[i] for i in picks]


def joint_embedding(
    trace: NetworkTrace,
    spec: FeatureSpec,
    projector: NeuronProjector,
    *,
    epochs: Sequence[int] | None = None,
    max_points: int = 20000,
) -> JointEmbedding:
    """Embed every (neuron, epoch) of a per-epoch feature set in one space.

    Parameters
    ----------
    trace, spec
        The trace and a per-epoch feature set (``spec.epoch`` is ignored).
    projector
        How to project (fitted here on the stacked rows).
    epochs
        Epochs to embed (default: every recorded one), thinned out evenly so that
        (neurons × epochs) stays within ``max_points``.
    """
    resolved = spec.resolve(trace)
    if not resolved.per_epoch:
        raise FeatureError(
            "the joint embedding needs a per-epoch feature set (metrics, response, activations "
            "or weights); a trajectory already spans the epochs"
        )
    chosen = list(trace.epochs if epochs is None else epochs)
    n_neurons = sum(trace.layer(n).n_neurons for n in resolved.layers)
    thinned = thin_epochs(chosen, n_neurons, max_points)
    notes = []
    if len(thinned) < len(chosen):
        notes.append(
            f"{len(thinned)} of {len(chosen)} epochs embedded (evenly spaced) to keep "
            f"{n_neurons} neurons × epochs within {max_points} points"
        )
    if resolved.kind == "weights":
        kept = [e for e in thinned if trace.weights(e) is not None]
        if len(kept) < 2:
            raise FeatureError(
                "incoming weights were kept at fewer than two epochs: train with "
                "keep_weights=True (--keep-weights) to follow them through time"
            )
        thinned = kept
    features = neuron_features(trace, resolved, epochs=thinned)
    coords = projector.fit_transform(features.values)
    frame = pd.DataFrame(
        {
            "neuron": features.neuron_ids,
            "layer": features.layers,
            "epoch": features.epochs,
            "signature": features.signatures(),
            "x": coords[:, 0],
            "y": coords[:, 1],
        }
    )
    return JointEmbedding(
        frame=frame,
        epochs=thinned,
        excluded=features.excluded,
        notes=notes + features.notes + projector.notes_,
        backend=projector.backend_,
        seconds=projector.seconds_,
    )


# -- how long -----------------------------------------------------------------------------------
#: UMAP's one-time compilation in a process on two cores (MEASURED.md: 8–32 s; measured here:
#: first fit in a fresh process 20–67 s, the background warm-up 62 s; benchmarks/analysis.py)
UMAP_JIT_SECONDS = 60.0
#: Seconds ≈ a + b · n^p per method, measured on two cores (benchmarks/analysis.py).
_COST: dict[str, tuple[float, float, float]] = {
    "pca": (0.02, 2e-6, 1.0),
    "tsne:sklearn": (0.3, 1.25e-3, 1.25),
    "tsne:opentsne": (1.0, 1.45e-3, 1.14),
    "umap": (0.8, 4.5e-4, 1.0),
    "kmeans": (0.05, 5.2e-7, 1.7),  # PCA to 50 components first above 50 features
    "hdbscan": (0.05, 3e-8, 2.0),
    "agglomerative": (0.05, 1.2e-7, 2.0),
}


def estimate_seconds(method: str, n_rows: int, *, n_features: int = 50) -> float:
    """A rough estimate of how long ``method`` (a projector or clusterer) takes on ``n_rows``
    rows on a two-core machine, before it starts (features are reduced to 50 dimensions first
    for t-SNE and UMAP; HDBSCAN grows with the dimension, which is taken into account).

    UMAP's one-time compilation (:data:`UMAP_JIT_SECONDS`) is added while it has not been
    warmed up.
    """
    key = method
    if method == "tsne":
        key = "tsne:opentsne" if n_rows >= OPENTSNE_FROM else "tsne:sklearn"
    if method == "agglomerative":
        n_rows = min(n_rows, AGGLOMERATIVE_MAX)
    a, b, p = _COST[key]
    seconds = a + b * float(n_rows) ** p
    if method == "hdbscan":
        seconds *= max(1.0, min(n_features, PCA_FIRST) / 8.0)
    status = numba_guard.warm_up_status()
    if method == "umap" and status.state == "running":
        seconds += max(5.0, UMAP_JIT_SECONDS - (status.seconds or 0.0))
    elif method == "umap" and status.state != "done":
        seconds += UMAP_JIT_SECONDS
    return float(seconds) if math.isfinite(seconds) else float("inf")


def silhouette_seconds(n_rows: int, n_features: int = 50) -> float:
    """A rough estimate of :func:`silhouette` on two cores: ≈4 s for 20 000 rows × 50
    features (O(N²·d); measured in benchmarks/analysis.py)."""
    return 1.05e-8 * float(n_rows) ** 2 * (0.8 + min(n_features, 4096) / 300.0)
