"""Project neurons' feature rows to two dimensions: PCA, t-SNE or UMAP.

:class:`NeuronProjector` runs t-SNE on scikit-learn below :data:`OPENTSNE_FROM` rows and on
openTSNE above; UMAP through :func:`nn_tracing.analysis.numba_guard.fit_umap` (under the
process-wide numba lock). Wide features are first reduced to :data:`PCA_FIRST` principal
components (standard practice for t-SNE and UMAP).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from ...progress import Progress, no_progress
from .. import numba_guard
from ..cost import OPENTSNE_FROM, PCA_FIRST, available_threads
from .features import _check_rows

__all__ = ["PROJECTORS", "NeuronProjector"]

PROJECTORS: dict[str, str] = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def _clamped(progress: Progress | None) -> Progress | None:
    """``progress`` with the fraction clamped to [0, 1] (``None`` stays ``None``)."""
    if progress is None:
        return None
    return lambda fraction, what: progress(min(max(fraction, 0.0), 1.0), what)


class NeuronProjector(BaseEstimator):
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

    def fit(self, X: np.ndarray, progress: Progress | None = None) -> NeuronProjector:
        """Fit on feature rows ``X`` of shape (n_rows, n_features); ``progress(fraction, what)``
        while fitting (not kept on the fitted projector)."""
        report = _clamped(progress)
        say = report or no_progress
        if self.method not in PROJECTORS:
            raise ValueError(f"method={self.method!r}: use one of {', '.join(PROJECTORS)}")
        X = _check_rows(X, 5, PROJECTORS[self.method])
        started = time.perf_counter()
        self.notes_: list[str] = []
        self.explained_variance_ratio_ = np.zeros(0)
        self.perplexity_ = float("nan")
        seed = 0 if self.random_state is None else int(self.random_state)
        if self.method == "pca":
            self.embedding_ = self._pca(X, seed, say)
        else:
            if self.pca_first and X.shape[1] > self.pca_first < X.shape[0]:
                from sklearn.decomposition import PCA

                say(0.02, f"reducing {X.shape[1]} features to {self.pca_first} by PCA")
                X = PCA(self.pca_first, random_state=seed).fit_transform(X).astype(np.float32)
                self.notes_.append(
                    f"features reduced to their first {self.pca_first} principal components "
                    f"before {PROJECTORS[self.method]}"
                )
            self.embedding_ = (
                self._tsne(X, seed, report) if self.method == "tsne" else self._umap(X, say)
            )
        self.embedding_ = np.asarray(self.embedding_, dtype=np.float32)
        self.seconds_ = time.perf_counter() - started
        say(1.0, "done")
        return self

    def fit_transform(self, X: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Fit and return ``embedding_``, array of shape (n_rows, n_components)."""
        return self.fit(X, progress).embedding_

    def _pca(self, X: np.ndarray, seed: int, report: Progress) -> np.ndarray:
        from sklearn.decomposition import PCA

        report(0.1, "PCA")
        shown = min(10, X.shape[0], X.shape[1])
        model = PCA(max(shown, self.n_components), random_state=seed).fit(X)
        self.explained_variance_ratio_ = model.explained_variance_ratio_[:shown].copy()
        self.backend_ = "sklearn"
        coords = model.transform(X)[:, : self.n_components]
        if coords.shape[1] < self.n_components:  # a single feature: pad
            coords = np.pad(coords, ((0, 0), (0, self.n_components - coords.shape[1])))
        return coords

    def _tsne(self, X: np.ndarray, seed: int, report: Progress | None) -> np.ndarray:
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
            return self._opentsne(X, perplexity, seed, report)
        if backend != "sklearn":
            raise ValueError(f"tsne_backend={self.tsne_backend!r}: auto, sklearn or opentsne")
        from sklearn.manifold import TSNE

        (report or no_progress)(0.1, f"t-SNE (scikit-learn) on {n} rows")
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

    def _opentsne(
        self, X: np.ndarray, perplexity: float, seed: int, report: Progress | None
    ) -> np.ndarray:
        from openTSNE import TSNE

        self.backend_ = "openTSNE"
        total = 750  # 250 early-exaggeration + 500 iterations (openTSNE's defaults)
        done = [0]

        def callback(iteration: int, error: float, embedding: Any) -> bool:
            done[0] += 10
            if report is not None:
                report(0.1 + 0.9 * done[0] / total, f"t-SNE (openTSNE) on {X.shape[0]} rows")
            return False

        if report is not None:
            report(0.05, f"t-SNE (openTSNE): nearest neighbours of {X.shape[0]} rows")
        model = TSNE(
            n_components=self.n_components,
            perplexity=perplexity,
            metric=self.metric,
            initialization="pca",
            # Barnes-Hut below 10 000 rows, FFT above (openTSNE's advice; measured at 5000 rows:
            # 24 s vs 42 s for the 500 main iterations on one thread)
            negative_gradient_method="bh" if X.shape[0] < 10000 else "fft",
            # exact nearest neighbours below 10 000 rows: faster than Annoy's approximate ones
            # there (5000 rows of 50 PCs: 1.2 s vs 3.6 s on two loaded cores) and exact, so the
            # affinities are t-SNE's own; Annoy above (benchmarks/analysis.py --only chance)
            neighbors="exact" if X.shape[0] < 10000 else "annoy",
            random_state=seed,
            n_jobs=self._threads(),
            verbose=False,
            callbacks=callback if report is not None else None,
            callbacks_every_iters=10,
        )
        return np.asarray(model.fit(X))

    def _umap(self, X: np.ndarray, report: Progress) -> np.ndarray:
        n = X.shape[0]
        self.backend_ = "umap-learn"
        n_neighbors = int(min(max(self.n_neighbors, 2), n - 1))
        if n_neighbors < self.n_neighbors:
            self.notes_.append(f"n_neighbors lowered from {self.n_neighbors} to {n_neighbors}")
        seeded = self.random_state is not None
        return numba_guard.fit_umap(
            X,
            n_components=self.n_components,
            n_neighbors=n_neighbors,
            min_dist=float(self.min_dist),
            metric=self.metric,
            random_state=int(self.random_state) if seeded else None,
            n_jobs=1 if seeded else (self.n_jobs or -1),
            n_epochs=self.n_epochs,
            progress=report,
        )
