"""The joint embedding: every (neuron, epoch) in one map, so a slider over epochs moves the
neurons through one fixed space.

Only the *unique* feature rows are projected, then mapped back to every row that holds them
(:func:`project_unique`): a neuron whose features did not change between two epochs sits on
the very same point at both, in every method (t-SNE and UMAP would otherwise pull identical
rows apart). The sliced methods keep the same promise per neuron: :func:`unchanged_runs`
groups a neuron's consecutive epochs with identical features, and aligned UMAP and M-PHATE
give each group one point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...progress import Progress
from ...trace import NetworkTrace
from .faithfulness import Faithfulness
from .features import FeatureError, FeatureSpec, NeuronFeatures, neuron_features
from .projection import NeuronProjector

__all__ = [
    "JointEmbedding",
    "joint_embedding",
    "project_unique",
    "thin_epochs",
    "time_features",
    "unchanged_runs",
]


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
    method : the map's method (``pca``, ``tsne``, ``umap``, ``aligned_umap``, ``mphate``)
    faithfulness : how faithful the map is (k-NN preservation, noise floor), when measured
    """

    frame: pd.DataFrame
    epochs: list[int]
    excluded: pd.DataFrame
    notes: list[str]
    backend: str
    seconds: float
    method: str = ""
    faithfulness: Faithfulness | None = None


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


def time_features(
    trace: NetworkTrace,
    spec: FeatureSpec,
    *,
    epochs: Sequence[int] | None = None,
    max_points: int = 20000,
) -> tuple[NeuronFeatures, list[int], list[str]]:
    """The feature rows of every (neuron, epoch) to map through time: (features, the epochs
    kept, notes). Epochs are thinned out evenly (:func:`thin_epochs`) so that
    (neurons × epochs) stays within ``max_points``."""
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
    return neuron_features(trace, resolved, epochs=thinned), thinned, notes


def project_unique(
    projector: NeuronProjector, values: np.ndarray, progress: Progress | None = None
) -> tuple[np.ndarray, list[str]]:
    """Project the unique rows of ``values`` (n_rows, n_features) and map them back: identical
    rows get identical points. Returns (coordinates of shape (n_rows, 2), notes)."""
    unique, inverse = np.unique(values, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    if unique.shape[0] == values.shape[0] or unique.shape[0] < 5:
        return projector.fit_transform(values, progress), []
    coords = projector.fit_transform(unique, progress)[inverse]
    note = (
        f"{values.shape[0] - unique.shape[0]} (neuron, epoch) row(s) repeat another row exactly "
        "and share its point"
    )
    return coords, [note]


def unchanged_runs(values: np.ndarray, neuron_ids: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """The run of each row: a neuron's rows at consecutive embedded epochs whose features are
    identical (bit for bit) form one run; every other row is a run of its own.

    Returns
    -------
    array of shape (n_rows,), int64: the run of each row, numbered 0..n_runs-1 in the order of
    (neuron, epoch); a run's first row is the earliest epoch of that stretch.

    >>> unchanged_runs(np.array([[1.0], [1.0], [2.0], [1.0]]), np.zeros(4), np.arange(4)).tolist()
    [0, 0, 1, 2]
    """
    values, neuron_ids = np.asarray(values), np.asarray(neuron_ids)
    order = np.lexsort((np.asarray(epochs), neuron_ids))
    ordered = values[order]
    same = (neuron_ids[order][1:] == neuron_ids[order][:-1]) & (
        ordered[1:] == ordered[:-1]
    ).reshape(len(order) - 1, -1).all(axis=1)
    starts = np.concatenate([[True], ~same]) if len(order) else np.zeros(0, bool)
    runs = np.empty(len(order), dtype=np.int64)
    runs[order] = np.cumsum(starts) - 1
    return runs


def frame_of(features: NeuronFeatures, coords: np.ndarray) -> pd.DataFrame:
    """The map's rows: ``neuron``, ``layer``, ``epoch``, ``signature``, ``x``, ``y``."""
    return pd.DataFrame(
        {
            "neuron": features.neuron_ids,
            "layer": features.layers,
            "epoch": features.epochs,
            "signature": features.signatures(),
            "x": coords[:, 0],
            "y": coords[:, 1],
        }
    )


def joint_embedding(
    trace: NetworkTrace,
    spec: FeatureSpec,
    projector: NeuronProjector,
    *,
    epochs: Sequence[int] | None = None,
    max_points: int = 20000,
    progress: Progress | None = None,
) -> JointEmbedding:
    """Embed every (neuron, epoch) of a per-epoch feature set in one space.

    Parameters
    ----------
    trace, spec
        The trace and a per-epoch feature set (``spec.epoch`` is ignored).
    projector
        How to project (fitted here on the unique stacked rows).
    epochs
        Epochs to embed (default: every recorded one), thinned out evenly so that
        (neurons × epochs) stays within ``max_points``.
    progress
        ``progress(fraction, what)`` while the projector fits.
    """
    features, thinned, notes = time_features(trace, spec, epochs=epochs, max_points=max_points)
    coords, unique_notes = project_unique(projector, features.values, progress)
    return JointEmbedding(
        frame=frame_of(features, coords),
        epochs=thinned,
        excluded=features.excluded,
        notes=notes + features.notes + unique_notes + projector.notes_,
        backend=projector.backend_,
        seconds=projector.seconds_,
        method=projector.method,
    )
