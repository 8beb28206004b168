"""Aligned UMAP through time (umap-learn's ``AlignedUMAP``; NeuroMapper, VIS 2022): one UMAP
per epoch, each tied to the next by the identity on the neurons both hold, so a neuron moves
from one epoch's map to the next only as far as its neighbourhood changed.

A neuron whose features are identical to its features at the previous embedded epoch keeps its
point: after the fit, each run of identical rows (:func:`~.joint.unchanged_runs`) is drawn at
the mean of the points the fit gave its rows (:func:`hold_runs`). This is the limit of the
alignment penalty for that neuron: the penalty is quadratic in the distance between a neuron's
points at neighbouring epochs, and an infinitely stiff tie makes them one point, which a
quadratic compromise puts at their mean. Its features did not change, so the map must not show
it moving. Its neighbours may still move around it, so aligned UMAP shows a neuron whose
*neighbourhood* changed moving even when its own features changed only a little (the page's
noise floor of nearly unchanged neurons says how far).

The epochs' rows share one feature space (wide rows are reduced to :data:`PCA_FIRST` principal
components fitted on every row at once). The fit runs under the process-wide numba lock
(:mod:`nn_tracing.analysis.numba_guard`).
"""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator

from ...progress import Progress, no_progress
from .. import numba_guard
from ..cost import PCA_FIRST
from .joint import unchanged_runs

__all__ = ["AlignedProjector", "epoch_slices", "hold_runs"]


def epoch_slices(
    neuron_ids: np.ndarray, epochs: np.ndarray
) -> tuple[list[int], list[np.ndarray], list[dict[int, int]]]:
    """The rows of each epoch (ascending) and the relations between consecutive epochs.

    Returns
    -------
    (epochs, rows, relations): ``rows[t]`` the row indices of epoch ``epochs[t]``;
    ``relations[t]`` maps a position in ``rows[t]`` to the position of the same neuron in
    ``rows[t + 1]`` (neurons in both only).
    """
    neuron_ids, epochs = np.asarray(neuron_ids), np.asarray(epochs)
    order = sorted({int(e) for e in epochs.tolist()})
    rows = [np.flatnonzero(epochs == e) for e in order]
    relations = []
    for here, there in itertools.pairwise(rows):
        position = {int(n): i for i, n in enumerate(neuron_ids[there].tolist())}
        relations.append(
            {
                i: position[int(n)]
                for i, n in enumerate(neuron_ids[here].tolist())
                if int(n) in position
            }
        )
    return order, rows, relations


def hold_runs(points: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Every row of a run at the mean of its run's ``points`` (n_rows, d); ``runs`` of shape
    (n_rows,) numbers the runs 0..n_runs-1. Returns an array of the shape of ``points``.

    >>> hold_runs(np.array([[0.0, 0.0], [2.0, 4.0], [5.0, 5.0]]), np.array([0, 0, 1])).tolist()
    [[1.0, 2.0], [1.0, 2.0], [5.0, 5.0]]
    """
    points = np.asarray(points)
    sums = np.zeros((int(runs.max(initial=-1)) + 1, points.shape[1]), dtype=np.float64)
    np.add.at(sums, runs, points)
    counts = np.bincount(runs, minlength=sums.shape[0])
    return (sums / np.maximum(counts, 1)[:, None])[runs].astype(points.dtype)


class AlignedProjector(BaseEstimator):
    """Aligned UMAP of (neuron, epoch) rows: one map per epoch, aligned on the neurons.

    Parameters
    ----------
    n_neighbors, min_dist, metric
        UMAP's, per epoch (``n_neighbors`` lowered to the smallest epoch's neurons − 1).
    alignment_regularisation
        How strongly a neuron is held to its place in the neighbouring epochs' maps.
    alignment_window_size
        How many epochs either side the alignment reaches.
    n_epochs
        UMAP's optimisation epochs.
    random_state
        Seed (``None`` means 0: the aligned fit is always seeded).
    pca_first
        Rows wider than this are reduced to this many principal components first.

    Attributes
    ----------
    embedding_ : array of shape (n_rows, 2), float32, in the input's row order; the rows of a
        neuron's run of identical features share one point
    n_held_ : rows that repeat their neuron's previous row (held at their run's point)
    backend_ : ``umap-learn (AlignedUMAP)``
    seconds_ : wall time of ``fit``
    notes_ : adjustments made, in sentences
    """

    def __init__(
        self,
        *,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        metric: str = "euclidean",
        alignment_regularisation: float = 0.01,
        alignment_window_size: int = 3,
        n_epochs: int = 200,
        random_state: int | None = None,
        pca_first: int = PCA_FIRST,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.alignment_regularisation = alignment_regularisation
        self.alignment_window_size = alignment_window_size
        self.n_epochs = n_epochs
        self.random_state = random_state
        self.pca_first = pca_first

    def fit(
        self,
        X: np.ndarray,
        neuron_ids: np.ndarray,
        epochs: np.ndarray,
        progress: Progress | None = None,
    ) -> AlignedProjector:
        """Fit on rows ``X`` (n_rows, n_features), one per (``neuron_ids``, ``epochs``)."""
        say = progress or no_progress
        started = time.perf_counter()
        self.notes_: list[str] = []
        runs = unchanged_runs(X, neuron_ids, epochs)
        X = np.asarray(X, dtype=np.float32)
        seed = 0 if self.random_state is None else int(self.random_state)
        if self.pca_first and X.shape[1] > self.pca_first < X.shape[0]:
            from sklearn.decomposition import PCA

            say(0.02, f"reducing {X.shape[1]} features to {self.pca_first} by PCA")
            X = PCA(self.pca_first, random_state=seed).fit_transform(X).astype(np.float32)
            self.notes_.append(
                f"features reduced to their first {self.pca_first} principal components "
                "before aligned UMAP"
            )
        _, rows, relations = epoch_slices(neuron_ids, epochs)
        smallest = min(r.size for r in rows)
        if smallest < 4:
            raise ValueError(
                f"aligned UMAP needs at least 4 neurons at every epoch; one has {smallest}"
            )
        n_neighbors = int(min(max(self.n_neighbors, 2), smallest - 1))
        if n_neighbors < self.n_neighbors:
            self.notes_.append(f"n_neighbors lowered from {self.n_neighbors} to {n_neighbors}")
        umap = numba_guard.umap_module()
        model = umap.AlignedUMAP(
            n_neighbors=n_neighbors,
            min_dist=float(self.min_dist),
            metric=self.metric,
            alignment_regularisation=float(self.alignment_regularisation),
            alignment_window_size=int(self.alignment_window_size),
            n_epochs=int(self.n_epochs),
            random_state=seed,
            init="spectral" if smallest > 20 else "random",
        )
        say(0.1, f"aligned UMAP of {len(rows)} epochs × up to {max(r.size for r in rows)} neurons")
        with numba_guard.numba_section(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            model.fit([X[r] for r in rows], relations=relations)
        embedding = np.zeros((X.shape[0], 2), dtype=np.float32)
        for r, coords in zip(rows, model.embeddings_, strict=True):
            embedding[r] = np.asarray(coords, dtype=np.float32)[:, :2]
        # an unchanged neuron stays put: each run of identical rows at one point
        self.n_held_ = int(runs.size - np.unique(runs).size)
        if self.n_held_:
            self.notes_.append(
                f"{self.n_held_} (neuron, epoch) row(s) repeat the neuron's previous epoch "
                "exactly: each such run is drawn at one point (the mean of the fit's)"
            )
            embedding = hold_runs(embedding, runs)
        self.embedding_ = embedding
        self.backend_ = "umap-learn (AlignedUMAP)"
        self.seconds_ = time.perf_counter() - started
        say(1.0, "done")
        return self

    def fit_transform(
        self,
        X: np.ndarray,
        neuron_ids: np.ndarray,
        epochs: np.ndarray,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Fit and return ``embedding_``, array of shape (n_rows, 2)."""
        return self.fit(X, neuron_ids, epochs, progress).embedding_
