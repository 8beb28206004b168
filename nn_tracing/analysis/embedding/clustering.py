"""Cluster neurons' feature rows, and score a partition (exact silhouette, variance explained).

:class:`NeuronClusterer` runs k-means, HDBSCAN or agglomerative clustering, on the features
(the default) or on the 2-D map; ``score_`` is the algorithm's own quality score and
``silhouette_`` the silhouette (exact, over every neuron: :func:`silhouette`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ..cost import AGGLOMERATIVE_MAX, PCA_FIRST
from .features import _check_rows

__all__ = [
    "CLUSTERERS",
    "SCORE_NAMES",
    "NeuronClusterer",
    "partition_scores",
    "silhouette",
    "variance_explained",
]

CLUSTERERS: dict[str, str] = {
    "kmeans": "k-means",
    "hdbscan": "HDBSCAN",
    "agglomerative": "agglomerative",
}


#: Rows per block of the exact silhouette's distance matrix (1024² float64: 8 MB).
SILHOUETTE_BLOCK = 1024


def silhouette(X: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of the labelled rows (label ``-1``, noise, left out), exactly, over every
    row — the same value as scikit-learn's ``silhouette_score`` without sampling.

    Euclidean distances are computed in square blocks of :data:`SILHOUETTE_BLOCK` rows, each
    pair of blocks once (the distance matrix is symmetric: a block serves its rows and, as its
    transpose, the other block's), and summed per cluster by a product with the labels' one-hot
    matrix: O(N²·d / 2) time, memory ≈8 MB per block at any size; ≈2× faster than every block
    row against every row (benchmarks/analysis.py). A row alone in its cluster scores 0 (as in
    scikit-learn). NaN when fewer than two clusters remain, or when every row is its own cluster.
    """
    labels = np.asarray(labels)
    mask = labels >= 0
    X = np.asarray(X, dtype=np.float64)[mask]
    labels = labels[mask]
    clusters, labels, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    n, k = labels.size, clusters.size
    if k < 2 or k >= n:
        return float("nan")
    onehot = np.zeros((n, k))
    onehot[np.arange(n), labels] = 1.0
    squared = np.einsum("ij,ij->i", X, X)
    sums = np.zeros((n, k))  # each row's summed distance to every cluster
    starts = list(range(0, n, SILHOUETTE_BLOCK))
    for a, first in enumerate(starts):
        rows = slice(first, min(first + SILHOUETTE_BLOCK, n))
        for other in starts[a:]:
            cols = slice(other, min(other + SILHOUETTE_BLOCK, n))
            d2 = squared[rows, None] + squared[None, cols] - 2.0 * (X[rows] @ X[cols].T)
            np.maximum(d2, 0.0, out=d2)
            distance = np.sqrt(d2, out=d2)
            if other == first:
                np.fill_diagonal(distance, 0.0)
            sums[rows] += distance @ onehot[cols]
            if other != first:
                sums[cols] += distance.T @ onehot[rows]
    own = sizes[labels]
    a_own = sums[np.arange(n), labels] / np.maximum(own - 1, 1)
    means = sums / sizes[None, :]
    means[np.arange(n), labels] = np.inf
    b_nearest = means.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b_nearest - a_own) / np.maximum(a_own, b_nearest)
    s[(own == 1) | ~np.isfinite(s)] = 0.0
    return float(s.sum() / n)


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


class NeuronClusterer(BaseEstimator):
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

    def clone(self, **changes: Any) -> NeuronClusterer:
        """A new, unfitted clusterer with these parameters (and ``changes``)."""
        return type(self)(**{**self.get_params(deep=False), **changes})

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
