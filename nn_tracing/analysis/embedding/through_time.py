"""Maps through time: every (neuron, epoch) placed by one of five methods, with how faithful
the map is.

:func:`map_through_time` builds the rows (:func:`~.joint.time_features`), places them with

* ``pca``, ``tsne``, ``umap`` — one joint projection of the unique rows
  (:func:`~.joint.project_unique`);
* ``aligned_umap`` — one UMAP per epoch aligned on the neurons (:mod:`.aligned`);
* ``mphate`` — M-PHATE's multislice graph embedded with PHATE (:mod:`.mphate`);

and measures the map's faithfulness (:mod:`.faithfulness`: k-NN preservation within and across
epochs, the noise floor). ``params`` may hold any method's parameters: each method takes the
ones it knows, so one dictionary of settings serves all five.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...progress import Progress
from ...trace import NetworkTrace
from .aligned import AlignedProjector
from .faithfulness import DEFAULT_K, faithfulness
from .features import FeatureSpec, NeuronFeatures
from .joint import JointEmbedding, frame_of, project_unique, time_features
from .mphate import MultisliceEmbedder
from .projection import NeuronProjector

__all__ = ["TIME_MAPS", "map_through_time", "time_map_seconds"]

#: Seconds per (neuron, epoch) row and a fixed start of the sliced methods, on two shared
#: cores (benchmarks/maps_through_time.py); aligned UMAP adds its one-time compilation.
_SLICED_COST = {"aligned_umap": (2.0, 1.8e-2), "mphate": (4.0, 9e-4)}
#: AlignedUMAP's own numba compilation, paid once per process (measured ≈25 s on two cores).
ALIGNED_JIT_SECONDS = 25.0
_ALIGNED_RAN = [False]

#: The methods of a map through time, and their names in words.
TIME_MAPS: dict[str, str] = {
    "pca": "joint PCA",
    "tsne": "joint t-SNE",
    "umap": "joint UMAP",
    "aligned_umap": "aligned UMAP",
    "mphate": "M-PHATE",
}


def _known(estimator: type, params: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``params`` that ``estimator`` takes."""
    names = estimator._get_param_names()  # type: ignore[attr-defined]
    return {k: v for k, v in params.items() if k in names and k != "method"}


def _place(
    method: str, params: dict[str, Any], features: NeuronFeatures, progress: Progress | None
) -> tuple[np.ndarray, list[str], str, float]:
    """Place the rows: (coordinates (n_rows, 2), notes, backend, seconds)."""
    if method in ("pca", "tsne", "umap"):
        projector = NeuronProjector(method, **_known(NeuronProjector, params))
        coords, notes = project_unique(projector, features.values, progress)
        return coords, notes + projector.notes_, projector.backend_, projector.seconds_
    cls = AlignedProjector if method == "aligned_umap" else MultisliceEmbedder
    model = cls(**_known(cls, params))
    coords = model.fit_transform(features.values, features.neuron_ids, features.epochs, progress)
    if method == "aligned_umap":
        _ALIGNED_RAN[0] = True
    return coords, list(model.notes_), model.backend_, model.seconds_


def time_map_seconds(method: str, n_rows: int) -> float:
    """A rough estimate of the seconds aligned UMAP or M-PHATE take on ``n_rows`` rows."""
    start, per_row = _SLICED_COST[method]
    seconds = start + per_row * float(n_rows)
    if method == "aligned_umap" and not _ALIGNED_RAN[0]:
        seconds += ALIGNED_JIT_SECONDS
    return seconds


def map_through_time(
    trace: NetworkTrace,
    spec: FeatureSpec,
    method: str = "mphate",
    *,
    params: dict[str, Any] | None = None,
    epochs: Sequence[int] | None = None,
    max_points: int = 20000,
    k: int = DEFAULT_K,
    progress: Progress | None = None,
) -> JointEmbedding:
    """Place every (neuron, epoch) of a per-epoch feature set on one map, and say how faithful
    the map is (``faithfulness``).

    Parameters
    ----------
    trace, spec
        The trace and a per-epoch feature set (``spec.epoch`` is ignored).
    method
        One of :data:`TIME_MAPS`.
    params
        The method's parameters (others are ignored), e.g. ``{"random_state": 0}``.
    epochs, max_points
        Epochs to map (default: every recorded one), thinned out evenly so that
        (neurons × epochs) stays within ``max_points``.
    k
        Neighbourhood size of the k-NN preservation scores.

    >>> import nn_tracing as nt  # doctest: +SKIP
    >>> from nn_tracing.analysis import embedding as emb  # doctest: +SKIP
    >>> spec = emb.FeatureSpec("activations")  # doctest: +SKIP
    >>> m = emb.map_through_time(run.trace, spec, "mphate")  # doctest: +SKIP
    >>> m.faithfulness.sentence()  # doctest: +SKIP
    """
    if method not in TIME_MAPS:
        raise ValueError(f"method={method!r}: use one of {', '.join(TIME_MAPS)}")
    features, thinned, notes = time_features(trace, spec, epochs=epochs, max_points=max_points)
    coords, placed_notes, backend, seconds = _place(method, dict(params or {}), features, progress)
    measured = faithfulness(features.values, coords, features.neuron_ids, features.epochs, k)
    return JointEmbedding(
        frame=frame_of(features, coords),
        epochs=thinned,
        excluded=features.excluded,
        notes=notes + features.notes + placed_notes,
        backend=backend,
        seconds=seconds,
        method=method,
        faithfulness=measured,
    )
