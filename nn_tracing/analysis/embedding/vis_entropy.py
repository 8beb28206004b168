"""Visualisation entropy (Gigante et al., NeurIPS 2019, M-PHATE §5): how spread out, how
heterogeneous, the hidden units are on an M-PHATE map of a run.

The paper's measure is the Shannon entropy (in bits) of a 10 × 10 histogram of the map's points
over its bounding box: every (neuron, epoch) of the run at once. Its claim: runs whose hidden
units stay more heterogeneous over training (higher entropy) generalise better — without
validation data. :func:`visualisation_entropy` is that number; :func:`entropy_by_epoch` the same
histogram entropy of each epoch's points on the shared bins (to see when it builds up);
:func:`run_visualisation_entropy` makes the M-PHATE map of a trace and scores it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...progress import Progress
from ...trace import NetworkTrace
from .features import FeatureSpec
from .joint import JointEmbedding

__all__ = [
    "VisualisationEntropy",
    "entropy_by_epoch",
    "run_visualisation_entropy",
    "visualisation_entropy",
]


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum()) if p.size else 0.0


def visualisation_entropy(
    coords: np.ndarray, bins: int = 10, extent: tuple[float, float, float, float] | None = None
) -> float:
    """Shannon entropy in bits of a ``bins`` × ``bins`` histogram of the points ``coords``
    (array of shape (n, 2)) over ``extent`` ``(x_min, x_max, y_min, y_max)`` (default: their
    bounding box). 0 for one occupied cell; at most ``log2(bins²)`` (6.64 bits for 10 × 10).

    >>> visualisation_entropy(np.array([[0.0, 0.0], [1.0, 1.0]]))
    1.0
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] < 2 or coords.shape[0] == 0:
        raise ValueError("visualisation_entropy needs points of shape (n, 2), n ≥ 1")
    if extent is None:
        extent = (
            float(coords[:, 0].min()),
            float(coords[:, 0].max()),
            float(coords[:, 1].min()),
            float(coords[:, 1].max()),
        )
    x0, x1, y0, y1 = extent
    ranges = [(x0, x1 if x1 > x0 else x0 + 1.0), (y0, y1 if y1 > y0 else y0 + 1.0)]
    counts, _, _ = np.histogram2d(coords[:, 0], coords[:, 1], bins=bins, range=ranges)
    return _entropy(counts)


def entropy_by_epoch(frame: pd.DataFrame, bins: int = 10) -> pd.Series:
    """The histogram entropy of each epoch's points (``frame``: ``epoch``, ``x``, ``y``) on the
    bins of the whole map, as a Series indexed by epoch."""
    coords = frame[["x", "y"]].to_numpy(dtype=np.float64)
    extent = (
        float(coords[:, 0].min()),
        float(coords[:, 0].max()),
        float(coords[:, 1].min()),
        float(coords[:, 1].max()),
    )
    return pd.Series(
        {
            int(epoch): visualisation_entropy(group[["x", "y"]].to_numpy(), bins, extent)
            for epoch, group in frame.groupby("epoch", sort=True)
        },
        name="visualisation_entropy",
    )


@dataclass(frozen=True)
class VisualisationEntropy:
    """A run's visualisation entropy.

    Attributes
    ----------
    score : the entropy of the whole M-PHATE map, in bits
    by_epoch : the entropy of each epoch's points, Series indexed by epoch
    embedding : the M-PHATE map it was measured on
    """

    score: float
    by_epoch: pd.Series
    embedding: JointEmbedding


def run_visualisation_entropy(
    trace: NetworkTrace,
    spec: FeatureSpec | None = None,
    *,
    bins: int = 10,
    max_points: int = 20000,
    random_state: int = 0,
    embedding: JointEmbedding | None = None,
    progress: Progress | None = None,
) -> VisualisationEntropy:
    """The visualisation entropy of a run: its M-PHATE map (of ``spec``, default the hidden
    layers' probe activations, as in the paper; or ``embedding`` when given) scored by
    :func:`visualisation_entropy`."""
    if embedding is None:
        from .through_time import map_through_time

        if spec is None:
            hidden = [layer.name for layer in trace.layers if layer.name not in ("input", "output")]
            spec = FeatureSpec("activations", layers=tuple(hidden))
        embedding = map_through_time(
            trace,
            spec,
            "mphate",
            params={"random_state": random_state},
            max_points=max_points,
            progress=progress,
        )
    coords = embedding.frame[["x", "y"]].to_numpy(dtype=np.float64)
    return VisualisationEntropy(
        score=visualisation_entropy(coords, bins),
        by_epoch=entropy_by_epoch(embedding.frame, bins),
        embedding=embedding,
    )
