"""How faithful a map through time is: k-NN preservation (as in M-PHATE) and the noise floor.

Given the feature rows of (neuron, epoch) pairs and where a map put them:

* **within-epoch k-NN preservation** (the M-PHATE paper's *intraslice* neighbour preservation):
  for every row, the share of its ``k`` nearest neurons *of the same epoch* in feature space
  that are also among its ``k`` nearest of the same epoch on the map, averaged over the rows;
* **across-epoch k-NN preservation** (*interslice*): for every row, the share of its ``k``
  nearest rows *of the same neuron* (its other epochs) in feature space that are also among its
  ``k`` nearest of that neuron on the map; ``k`` is clamped to one less than the other epochs a
  neuron has (with every other epoch a neighbour the score would be 1 whatever the map);
* the **noise floor**: how far, as a share of the map's extent (the longer side of its bounding
  box), neurons move between consecutive embedded epochs when their features did not change at
  all. A faithful map keeps them still; any motion of the other neurons below this floor is
  not evidence of change. Every method here draws identical rows of a neuron at one point, so
  this floor is 0 by construction wherever it can be measured; it checks that promise;
* the **near floor**: the same for the steps in which a neuron's features changed, but by at
  most :data:`NEAR_TOLERANCE` (1 %) of the typical distance between two neurons of one epoch
  (the root-mean-square distance, :func:`feature_scale`). Those neurons barely changed, so how
  far the map moves them is its jitter: a step on the map no longer than this floor is not
  evidence that a neuron changed more than that. Unlike the exact floor it is not 0 by
  construction.

Ties in distance are broken by row order in the exact search (wide features, and maps of up to
512 points per group); a larger map's neighbours come from a k-d tree, whose ties fall as they
may.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors

__all__ = [
    "DEFAULT_K",
    "NEAR_TOLERANCE",
    "Faithfulness",
    "across_epoch_preservation",
    "faithfulness",
    "feature_scale",
    "feature_steps",
    "steps",
    "within_epoch_preservation",
]

#: The neighbourhood size of the preservation scores (the paper's k = 10).
DEFAULT_K = 10
#: A step is "nearly unchanged" when a neuron's features moved by more than 0 and at most this
#: share of the root-mean-square distance between two neurons of one epoch.
NEAR_TOLERANCE = 0.01


@dataclass(frozen=True)
class Faithfulness:
    """How faithful one map through time is.

    Attributes
    ----------
    k : the neighbourhood size asked for
    within_epoch : mean within-epoch k-NN preservation, in [0, 1] (NaN: too few neurons)
    across_epoch : mean across-epoch k-NN preservation, in [0, 1] (NaN: too few epochs)
    across_k : the k the across-epoch score used (clamped by the epochs there are)
    noise_floor : most any unchanged neuron moved in one step, as a share of the map's extent
        (NaN: no neuron kept its features between two embedded epochs)
    noise_floor_95 : the 95th percentile of those steps (robust to one outlier)
    n_unchanged : (neuron, step) pairs whose features did not change
    moving_median : median step of the neurons whose features changed beyond the near
        tolerance (the nearly unchanged ones are the near floor's), as a share of the extent
    n_moving : (neuron, step) pairs whose features changed beyond the near tolerance
    near_floor_95 : the 95th percentile of the steps of nearly unchanged neurons (features
        moved by at most ``near_tolerance`` of the typical distance between two neurons), as a
        share of the map's extent (NaN: no such step)
    n_near : (neuron, step) pairs nearly unchanged
    near_tolerance : the share that counts as nearly unchanged
    """

    k: int
    within_epoch: float
    across_epoch: float
    across_k: int
    noise_floor: float
    noise_floor_95: float
    n_unchanged: int
    moving_median: float
    n_moving: int
    near_floor_95: float = float("nan")
    n_near: int = 0
    near_tolerance: float = NEAR_TOLERANCE

    def sentence(self) -> str:
        """The faithfulness in words, for beside the map."""
        parts = []
        if self.n_unchanged:
            parts.append(
                f"Neurons whose features did not change moved at most "
                f"{100 * self.noise_floor:.1f} % of the map (95 % of {self.n_unchanged} such "
                f"steps less than {100 * self.noise_floor_95:.1f} %)"
            )
        else:
            parts.append(
                "No neuron kept its features unchanged between two epochs, so this map's noise "
                "floor cannot be measured"
            )
        if self.n_near:
            parts.append(
                f"neurons whose features changed by less than {100 * self.near_tolerance:g} % "
                f"of the typical distance between two neurons moved up to "
                f"{100 * self.near_floor_95:.1f} % (95th percentile of {self.n_near} such steps: "
                "the map's jitter)"
            )
        if self.n_moving:
            more = " more than that" if self.n_near else ""
            parts.append(
                f"the neurons whose features changed{more} moved a median "
                f"{100 * self.moving_median:.1f} % per step"
            )
        scores = []
        if np.isfinite(self.within_epoch):
            scores.append(f"{100 * self.within_epoch:.0f} % within an epoch")
        if np.isfinite(self.across_epoch):
            scores.append(f"{100 * self.across_epoch:.0f} % across epochs (k = {self.across_k})")
        text = "; ".join(parts) + "."
        if scores:
            text += f" Nearest neighbours kept (k = {self.k}): {', '.join(scores)}."
        return text


def _nearest_k(distances: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` smallest entries of ``distances`` (n, m), ties at the k-th value taken
    in column order: their column indices, array of shape (n, k) (as sets; O(n·m))."""
    kth = np.partition(distances, k - 1, axis=1)[:, k - 1 : k]
    less = distances < kth
    equal = distances == kth
    chosen = less | equal
    tied = np.flatnonzero(chosen.sum(axis=1) > k)  # more ties at the k-th value than room
    if tied.size:
        room = k - less[tied].sum(axis=1, keepdims=True)
        chosen[tied] = less[tied] | (equal[tied] & (np.cumsum(equal[tied], axis=1) <= room))
    return np.nonzero(chosen)[1].reshape(distances.shape[0], k)


def _knn_sets(points: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's ``k`` nearest other rows, array of shape (n, k) (stable ties)."""
    # wide rows in float32 (half the time of the product); the 2-D map's in float64
    points = np.asarray(points, dtype=np.float32 if points.shape[1] > 8 else np.float64)
    n = points.shape[0]
    if n <= 4096 and not (points.shape[1] <= 3 and n > 512):  # a map's points: a k-d tree
        norms = np.einsum("ij,ij->i", points, points)
        distances = np.maximum(norms[:, None] + norms[None, :] - 2.0 * points @ points.T, 0.0)
        np.fill_diagonal(distances, np.inf)
        return _nearest_k(distances, k)
    search = NearestNeighbors(n_neighbors=k + 1).fit(points)
    neighbours = search.kneighbors(points, return_distance=False)
    own = neighbours == np.arange(n)[:, None]
    # drop the row itself (or the last one, when a duplicate pushed it out)
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
    keep = np.ones_like(own)
    keep[np.arange(n), drop] = False
    return neighbours[keep].reshape(n, k)


def _overlap(high: np.ndarray, low: np.ndarray, k: int) -> np.ndarray:
    """Share of each row's ``k`` neighbours in ``high`` that are also in ``low`` (per row)."""
    a, b = _knn_sets(high, k), _knn_sets(low, k)
    return (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1) / k


def _groups(keys: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(keys, kind="stable")
    _, starts = np.unique(keys[order], return_index=True)
    return np.split(order, starts[1:])


def within_epoch_preservation(
    values: np.ndarray, coords: np.ndarray, epochs: np.ndarray, k: int = DEFAULT_K
) -> float:
    """Mean within-epoch k-NN preservation over the rows (``k`` clamped to the neurons of an
    epoch minus one; NaN when no epoch has two neurons)."""
    scores = []
    for rows in _groups(np.asarray(epochs)):
        kk = min(k, rows.size - 1)
        if kk < 1:
            continue
        scores.append(_overlap(np.asarray(values)[rows], np.asarray(coords)[rows], kk))
    return float(np.concatenate(scores).mean()) if scores else float("nan")


def across_epoch_preservation(
    values: np.ndarray, coords: np.ndarray, neuron_ids: np.ndarray, k: int = DEFAULT_K
) -> tuple[float, int]:
    """Mean across-epoch k-NN preservation over the rows, and the ``k`` used: the smaller of
    ``k`` and one less than the fewest other epochs a neuron has (NaN, 0 below three epochs)."""
    groups = [g for g in _groups(np.asarray(neuron_ids)) if g.size >= 3]
    if not groups:
        return float("nan"), 0
    kk = min(k, min(g.size for g in groups) - 2)
    scores = [_overlap(np.asarray(values)[g], np.asarray(coords)[g], kk) for g in groups]
    return float(np.concatenate(scores).mean()), kk


def _consecutive(neuron_ids: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every neuron's steps as (row before, row after), in (neuron, epoch) order."""
    order = np.lexsort((np.asarray(epochs), np.asarray(neuron_ids)))
    same_neuron = np.asarray(neuron_ids)[order][1:] == np.asarray(neuron_ids)[order][:-1]
    return order[:-1][same_neuron], order[1:][same_neuron]


def feature_steps(values: np.ndarray, neuron_ids: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """How far each neuron's features moved between its consecutive embedded epochs (Euclidean),
    array of shape (n_steps,), in the order of :func:`steps`."""
    values = np.asarray(values, dtype=np.float64)
    first, second = _consecutive(neuron_ids, epochs)
    return np.linalg.norm(values[second] - values[first], axis=1)


def feature_scale(values: np.ndarray, epochs: np.ndarray) -> float:
    """The root-mean-square distance between two neurons of one epoch, over the epochs
    (``sqrt(2 ×`` the mean squared distance to the epoch's centroid)); 0 when all are equal."""
    values = np.asarray(values, dtype=np.float64)
    squared, count = 0.0, 0
    for rows in _groups(np.asarray(epochs)):
        block = values[rows]
        squared += float(((block - block.mean(axis=0)) ** 2).sum())
        count += rows.size
    return float(np.sqrt(2.0 * squared / count)) if count else 0.0


def steps(
    values: np.ndarray, coords: np.ndarray, neuron_ids: np.ndarray, epochs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every neuron's steps between its consecutive embedded epochs: (distance moved on the map,
    whether its features stayed exactly the same), two arrays of shape (n_steps,)."""
    values, coords = np.asarray(values), np.asarray(coords, dtype=np.float64)
    first, second = _consecutive(neuron_ids, epochs)
    moved = np.linalg.norm(coords[second] - coords[first], axis=1)
    unchanged = (values[second] == values[first]).all(axis=1)
    return moved, unchanged


def faithfulness(
    values: np.ndarray,
    coords: np.ndarray,
    neuron_ids: np.ndarray,
    epochs: np.ndarray,
    k: int = DEFAULT_K,
    near_tolerance: float = NEAR_TOLERANCE,
) -> Faithfulness:
    """The faithfulness of a map through time.

    Parameters
    ----------
    values
        The feature rows the map was made from, array of shape (n_rows, n_features).
    coords
        Where the map put them, array of shape (n_rows, 2).
    neuron_ids, epochs
        The neuron and epoch of each row, arrays of shape (n_rows,).
    k
        Neighbourhood size of the preservation scores.
    near_tolerance
        A step whose features moved by at most this share of :func:`feature_scale` (and more
        than 0) counts as nearly unchanged.
    """
    values = np.asarray(values)
    coords = np.asarray(coords, dtype=np.float64)
    extent = float(np.ptp(coords, axis=0).max()) if len(coords) else 0.0
    extent = extent or 1.0
    moved, unchanged = steps(values, coords, neuron_ids, epochs)
    changed_by = feature_steps(values, neuron_ids, epochs)
    barely = ~unchanged & (changed_by <= near_tolerance * feature_scale(values, epochs))
    still, near = moved[unchanged] / extent, moved[barely] / extent
    going = moved[~unchanged & ~barely] / extent
    across, across_k = across_epoch_preservation(values, coords, neuron_ids, k)
    return Faithfulness(
        k=k,
        within_epoch=within_epoch_preservation(values, coords, epochs, k),
        across_epoch=across,
        across_k=across_k,
        noise_floor=float(still.max()) if still.size else float("nan"),
        noise_floor_95=float(np.percentile(still, 95)) if still.size else float("nan"),
        n_unchanged=int(still.size),
        moving_median=float(np.median(going)) if going.size else float("nan"),
        n_moving=int(going.size),
        near_floor_95=float(np.percentile(near, 95)) if near.size else float("nan"),
        n_near=int(near.size),
        near_tolerance=float(near_tolerance),
    )
