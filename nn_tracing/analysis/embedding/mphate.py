"""M-PHATE (Gigante et al., NeurIPS 2019, "Visualizing the PHATE of neural networks"): one map of
every (neuron, epoch), made from a *multislice* graph and embedded with PHATE.

The graph has a node per (epoch, neuron) row. Its affinities (:func:`multislice_affinity`):

* **within an epoch** (intraslice), an α-decaying k-NN kernel between the neurons of that epoch:
  ``exp(-(d(i, j) / σ_i) ** decay)``, where ``σ_i`` is the distance from neuron ``i`` to its
  ``knn``-th nearest neuron of the same epoch (an adaptive bandwidth), symmetrised as the mean
  of ``K`` and ``Kᵀ``;
* **across epochs** (interslice), each neuron linked *only to itself* at every other epoch, with
  a Gaussian weight on how far its features moved: ``exp(-(d(τ, υ) / ε) ** 2)``, with one fixed
  bandwidth ``ε`` for the whole graph: the mean over the neurons of the median over their epochs
  of the distance to their ``interslice_knn``-th nearest own point (clamped to the epochs
  there are);
* nothing else: no edge between two different neurons at two different epochs.

Every row is z-scored over its own features first (the paper's normalisation), and rows wider
than ``n_pca`` features are reduced to ``n_pca`` principal components. Affinities below
``threshold`` are dropped, so the matrix is sparse (``scipy.sparse``): within an epoch at most
``knn_max`` neighbours per neuron, across epochs at most ``n_epochs`` per row.

:class:`MultisliceEmbedder` embeds that matrix with the maintained ``phate`` package
(``knn_dist="precomputed_affinity"``, the paper's ``gamma=0`` square-root potential). The
kernel here is our own, written from the paper; the unmaintained ``m-phate`` package is not
used.

**Unchanged neurons are one node.** A neuron whose features are identical at consecutive epochs
has copies in the graph joined by across-epoch weight ``exp(0) = 1``, the strongest there is;
PHATE would still place the copies apart (each copy has its own epoch's neighbours). The
embedder merges each such run of copies (:func:`~.joint.unchanged_runs`) into one node: the
graph's quotient ``Pᵀ K P`` (:func:`collapse_runs`; ``P`` the rows × runs indicator), which sums
the copies' edges. Its random walk is the paper's walk with the copies lumped into one state
(stepping from the merged node is the copies' steps, averaged by their degrees; stepping into it
is the sum of stepping into any copy), and the merged node gets one point, drawn at every epoch
of its run: identical features, identical points. Without identical rows the graph is the
paper's, unchanged.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from ...progress import Progress, no_progress
from ..cost import available_threads
from .joint import unchanged_runs

__all__ = [
    "MultisliceEmbedder",
    "collapse_runs",
    "interslice_bandwidth",
    "multislice_affinity",
    "row_zscore",
]


def row_zscore(values: np.ndarray) -> np.ndarray:
    """Each row minus its mean, divided by its standard deviation (a constant row becomes 0).

    >>> row_zscore(np.array([[1.0, 3.0], [2.0, 2.0]])).tolist()
    [[-1.0, 1.0], [0.0, 0.0]]
    """
    values = np.asarray(values, dtype=np.float64)
    centred = values - values.mean(axis=1, keepdims=True)
    spread = centred.std(axis=1, keepdims=True)
    return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0)


def _slices(keys: np.ndarray) -> list[np.ndarray]:
    """Row indices grouped by ``keys`` (each group in row order)."""
    order = np.argsort(keys, kind="stable")
    _, starts = np.unique(keys[order], return_index=True)
    return np.split(order, starts[1:])


def _intraslice(
    X: np.ndarray, rows: np.ndarray, knn: int, decay: float, knn_max: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed α-decay affinities among ``rows`` (one epoch): (from, to, weight), self excluded."""
    m = rows.size
    if m < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    k = min(knn, m - 1)
    search = min(m, max(knn_max, k) + 1)
    distances, neighbours = NearestNeighbors(n_neighbors=search).fit(X[rows]).kneighbors(X[rows])
    # the row itself comes first (ties with duplicates are harmless: distance 0 either way)
    own = neighbours == np.arange(m)[:, None]
    distances = np.where(own, np.inf, distances)
    sigma = np.sort(distances, axis=1)[:, k - 1]
    scale = float(np.max(distances[np.isfinite(distances)], initial=0.0)) or 1.0
    sigma = np.maximum(sigma, 1e-12 * scale)  # duplicates: affinity 1 to the copies only
    with np.errstate(over="ignore"):
        weights = np.exp(-((distances / sigma[:, None]) ** decay))
    keep = ~own & (weights >= threshold)
    sources = np.broadcast_to(rows[:, None], neighbours.shape)[keep]
    return sources, rows[neighbours[keep]], weights[keep]


def interslice_bandwidth(X: np.ndarray, groups: list[np.ndarray], interslice_knn: int) -> float:
    """The fixed across-epoch bandwidth ``ε``: the mean over the neurons (``groups``: each
    neuron's rows) of the median, over its rows, of the distance to its ``interslice_knn``-th
    nearest own row (clamped to the rows it has). 1.0 when no neuron moved at all."""
    per_neuron = []
    for rows in groups:
        if rows.size < 2:
            continue
        block = X[rows]
        distances = np.sqrt(np.maximum(_squared_distances(block), 0.0))
        k = min(interslice_knn, rows.size - 1)
        per_neuron.append(float(np.median(np.sort(distances, axis=1)[:, k])))
    bandwidth = float(np.mean(per_neuron)) if per_neuron else 0.0
    return bandwidth if bandwidth > 0 else 1.0


def _squared_distances(block: np.ndarray) -> np.ndarray:
    norms = np.einsum("ij,ij->i", block, block)
    return norms[:, None] + norms[None, :] - 2.0 * block @ block.T


def _interslice(
    X: np.ndarray, groups: list[np.ndarray], bandwidth: float, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian affinities between each neuron's own rows (self excluded): (from, to, weight)."""
    sources, targets, weights = [], [], []
    for rows in groups:
        if rows.size < 2:
            continue
        squared = np.maximum(_squared_distances(X[rows]), 0.0)
        affinity = np.exp(-squared / bandwidth**2)
        np.fill_diagonal(affinity, 0.0)
        i, j = np.nonzero(affinity >= threshold)
        sources.append(rows[i])
        targets.append(rows[j])
        weights.append(affinity[i, j])
    if not sources:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(sources), np.concatenate(targets), np.concatenate(weights)


def multislice_affinity(
    values: np.ndarray,
    neuron_ids: np.ndarray,
    epochs: np.ndarray,
    *,
    knn: int = 2,
    decay: float = 5.0,
    interslice_knn: int = 25,
    knn_max: int = 30,
    threshold: float = 1e-4,
    normalise: bool = True,
) -> sparse.csr_matrix:
    """The multislice affinity over the rows (one per (neuron, epoch)).

    Parameters
    ----------
    values
        Feature rows, array of shape (n_rows, n_features) (z-scored per row here when
        ``normalise``; reduce wide rows beforehand).
    neuron_ids, epochs
        The neuron and the epoch of each row, arrays of shape (n_rows,); a neuron has at most
        one row per epoch.
    knn, decay
        The within-epoch kernel: bandwidth = distance to the ``knn``-th nearest neuron of the
        same epoch, tail exponent ``decay`` (the paper's 2 and 5).
    interslice_knn
        The across-epoch bandwidth's neighbour rank (the paper's 25).
    knn_max
        Most neighbours searched per neuron within an epoch (bounds memory).
    threshold
        Affinities below it are left out.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_rows, n_rows): symmetric, 1 on the diagonal.
    """
    X = row_zscore(values) if normalise else np.asarray(values, dtype=np.float64)
    neuron_ids, epochs = np.asarray(neuron_ids), np.asarray(epochs)
    n = X.shape[0]
    if not n == neuron_ids.size == epochs.size:
        raise ValueError("values, neuron_ids and epochs need one entry per row")
    pairs = neuron_ids.astype(np.int64) * (int(epochs.max(initial=0)) + 1) + epochs
    if np.unique(pairs).size != n:
        raise ValueError("a neuron has more than one row at some epoch")
    parts = [_intraslice(X, rows, knn, decay, knn_max, threshold) for rows in _slices(epochs)]
    intra = sparse.coo_matrix(
        (
            np.concatenate([p[2] for p in parts]),
            (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])),
        ),
        shape=(n, n),
    ).tocsr()
    intra = (intra + intra.T) / 2.0
    groups = _slices(neuron_ids)
    bandwidth = interslice_bandwidth(X, groups, interslice_knn)
    src, dst, weight = _interslice(X, groups, bandwidth, threshold)
    inter = sparse.coo_matrix((weight, (src, dst)), shape=(n, n)).tocsr()
    affinity = (intra + inter + sparse.identity(n, format="csr")).tocsr()
    affinity.eliminate_zeros()
    return affinity


def collapse_runs(affinity: sparse.spmatrix, runs: np.ndarray) -> sparse.csr_matrix:
    """The quotient of a row affinity over runs: ``Pᵀ K P`` with ``P`` the (n_rows, n_runs)
    indicator of each row's run (``runs``, array of shape (n_rows,)), so the edge between two
    runs is the sum of the edges between their rows. Symmetric when ``affinity`` is.

    >>> K = sparse.csr_matrix(np.array([[1.0, 1.0, 0.5], [1.0, 1.0, 0.2], [0.5, 0.2, 1.0]]))
    >>> collapse_runs(K, np.array([0, 0, 1])).toarray().tolist()
    [[4.0, 0.7], [0.7, 1.0]]
    """
    runs = np.asarray(runs, dtype=np.int64)
    n_runs = int(runs.max(initial=-1)) + 1
    indicator = sparse.csr_matrix(
        (np.ones(runs.size), (np.arange(runs.size), runs)), shape=(runs.size, n_runs)
    )
    return (indicator.T @ affinity @ indicator).tocsr()


class MultisliceEmbedder(BaseEstimator):
    """M-PHATE: the multislice graph of (neuron, epoch) rows embedded with PHATE.

    Parameters
    ----------
    n_components
        Output dimensions.
    knn, decay, interslice_knn, knn_max
        The kernel's (:func:`multislice_affinity`).
    n_pca
        Rows wider than this are reduced to this many principal components first.
    n_landmark
        PHATE's landmarks (fewer rows: exact).
    t
        PHATE's diffusion time (``"auto"``: the knee of the von Neumann entropy).
    random_state
        Seed (``None`` means 0).

    Attributes
    ----------
    embedding_ : array of shape (n_rows, n_components), float32
    affinity_ : the multislice affinity over the runs of identical rows (one node per run:
        :func:`collapse_runs`), scipy.sparse.csr_matrix (n_runs, n_runs)
    runs_ : the node of each row, array of shape (n_rows,)
    optimal_t_ : the diffusion time PHATE used
    backend_ : ``phate``
    seconds_ : wall time of ``fit``
    notes_ : adjustments made, in sentences
    """

    def __init__(
        self,
        n_components: int = 2,
        *,
        knn: int = 2,
        decay: float = 5.0,
        interslice_knn: int = 25,
        knn_max: int = 30,
        n_pca: int = 100,
        n_landmark: int = 2000,
        t: int | str = "auto",
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.knn = knn
        self.decay = decay
        self.interslice_knn = interslice_knn
        self.knn_max = knn_max
        self.n_pca = n_pca
        self.n_landmark = n_landmark
        self.t = t
        self.random_state = random_state

    def fit(
        self,
        X: np.ndarray,
        neuron_ids: np.ndarray,
        epochs: np.ndarray,
        progress: Progress | None = None,
    ) -> MultisliceEmbedder:
        """Fit on rows ``X`` (n_rows, n_features), one per (``neuron_ids``, ``epochs``)."""
        import phate

        say = progress or no_progress
        started = time.perf_counter()
        self.notes_: list[str] = []
        seed = 0 if self.random_state is None else int(self.random_state)
        self.runs_ = unchanged_runs(X, neuron_ids, epochs)
        rows = row_zscore(X)
        if self.n_pca and rows.shape[1] > self.n_pca < rows.shape[0]:
            from sklearn.decomposition import PCA

            say(0.05, f"reducing {rows.shape[1]} features to {self.n_pca} by PCA")
            # the covariance route: exact and fast for rows ≫ features (randomized SVD is not)
            solver = "covariance_eigh" if rows.shape[1] <= 1000 else "auto"
            rows = PCA(self.n_pca, svd_solver=solver, random_state=seed).fit_transform(rows)
            self.notes_.append(
                f"rows z-scored, then reduced to {self.n_pca} principal components for M-PHATE"
            )
        say(0.15, f"multislice graph of {rows.shape[0]} (neuron, epoch) rows")
        affinity = multislice_affinity(
            rows,
            neuron_ids,
            epochs,
            knn=self.knn,
            decay=self.decay,
            interslice_knn=self.interslice_knn,
            knn_max=self.knn_max,
            normalise=False,
        )
        n_nodes = int(self.runs_.max(initial=-1)) + 1
        self.affinity_ = affinity
        if n_nodes < rows.shape[0]:
            self.affinity_ = collapse_runs(affinity, self.runs_)
            self.notes_.append(
                f"{rows.shape[0] - n_nodes} (neuron, epoch) row(s) repeat the neuron's previous "
                "epoch exactly: each such run is one node of the graph and one point"
            )
        say(0.4, "PHATE: diffusion potential and MDS")
        model = phate.PHATE(
            n_components=self.n_components,
            knn_dist="precomputed_affinity",
            gamma=0,
            t=self.t,
            n_landmark=self.n_landmark if n_nodes > self.n_landmark else None,
            random_state=seed,
            n_jobs=1,
            verbose=0,
        )
        # BLAS threads beyond the free cores only fight each other (the SVDs and k-means inside)
        with threadpool_limits(available_threads()):
            # a copy: PHATE (graphtools) edits the matrix it is given
            embedding = model.fit_transform(self.affinity_.copy())
        embedding = np.asarray(embedding, dtype=np.float32)
        # one point per node: a run's point at every one of its rows
        self.embedding_ = embedding[self.runs_] if n_nodes < rows.shape[0] else embedding
        self.optimal_t_ = model.optimal_t if self.t == "auto" else self.t
        self.backend_ = "phate"
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
        """Fit and return ``embedding_``, array of shape (n_rows, n_components)."""
        return self.fit(X, neuron_ids, epochs, progress).embedding_
