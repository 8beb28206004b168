"""Representational similarity of two layers on the same probe samples: linear CKA, SVCCA
and PWCCA, and their permutation baselines.

Every function takes activation matrices of shape ``(n_samples, n_neurons)`` whose rows are
the same probe samples in the same order (two runs on one probe set, or one layer at two
epochs), and returns a similarity in [0, 1]:

* **linear CKA** (Kornblith et al. 2019): ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``
  on column-centred activations. Invariant to orthogonal transforms and isotropic scaling of
  either side, not to any invertible linear map.
* **SVCCA** (Raghu et al. 2017): each side reduced by SVD to the directions that explain
  ``keep`` (99 %) of its variance, then the mean canonical correlation between the two
  reduced subspaces. Invariant to any invertible linear map that keeps the subspace.
* **PWCCA** (Morcos et al. 2018): the canonical correlations weighted by how much of the
  first side's neurons each canonical direction accounts for.

Canonical correlations are the singular values of ``Qx^T Qy``, with ``Qx`` and ``Qy``
orthonormal bases of the two centred column spaces (Björck & Golub 1973). CCA needs many more
samples than directions: with as many directions as samples every correlation is 1. The
permutation baseline (:func:`permutation_null`, rows of one side shuffled) shows what a
similarity is worth on these shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "SIMILARITIES",
    "canonical_correlations",
    "cka_matrix",
    "linear_cka",
    "permutation_null",
    "pwcca",
    "similarity",
    "svcca",
]

#: Fraction of the variance SVCCA keeps of each side (Raghu et al.: 0.99).
SVCCA_KEEP = 0.99
#: Singular values below this fraction of the largest are treated as zero (rank tolerance).
RANK_TOLERANCE = 1e-6


def _centred(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"activations must be (n_samples, n_neurons), not shape {values.shape}")
    return values - values.mean(axis=0, keepdims=True)


def _check_pair(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"the two sides hold {x.shape[0]} and {y.shape[0]} samples: a similarity needs the "
            "same probe samples on both"
        )
    if x.shape[0] < 2:
        raise ValueError("a similarity needs at least two probe samples")


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of ``x`` (n, p) and ``y`` (n, q); NaN when either side is constant.

    >>> rng = np.random.default_rng(0)
    >>> a = rng.standard_normal((50, 4))
    >>> round(linear_cka(a, 3 * a), 6)
    1.0
    """
    _check_pair(x, y)
    return _cka_of(x, y)(None)


def _gram_cheaper(n: int, p: int, q: int) -> bool:
    """Whether CKA costs less through the samples' Gram matrices (n × n) than through the
    neurons' cross-covariances: wide layers on few samples."""
    return n * (p + q) < p * q + p * p + q * q


def _cka_of(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray | None], float]:
    """CKA of ``x`` with ``y``'s rows in a given order (``None``: as they are), the work that
    does not depend on the order done once: through the Gram matrices for wide layers, whose
    rows and columns a permutation only reorders, or through the neurons for narrow ones."""
    xc, yc = _centred(x), _centred(y)
    n, p, q = xc.shape[0], xc.shape[1], yc.shape[1]
    if _gram_cheaper(n, p, q):
        kx, ky = xc @ xc.T, yc @ yc.T
        norms = np.linalg.norm(kx) * np.linalg.norm(ky)

        def by_gram(order: np.ndarray | None) -> float:
            k = ky if order is None else ky[np.ix_(order, order)]
            return float(np.sum(kx * k) / norms) if norms > 0 else float("nan")

        return by_gram
    norms = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)

    def by_neurons(order: np.ndarray | None) -> float:
        other = yc if order is None else yc[order]
        return float(np.linalg.norm(other.T @ xc) ** 2 / norms) if norms > 0 else float("nan")

    return by_neurons


def _basis(centred: np.ndarray, keep: float | None) -> tuple[np.ndarray, np.ndarray]:
    """An orthonormal basis of the column space (n, k), and its singular values: the
    directions above the rank tolerance, or (``keep``) the fewest that explain that share of
    the variance."""
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    if s.size == 0 or s[0] <= 0:
        return u[:, :0], s[:0]
    k = int(np.sum(s > RANK_TOLERANCE * s[0]))
    if keep is not None and keep < 1:
        share = np.cumsum(s[:k] ** 2) / np.sum(s[:k] ** 2)
        k = min(k, int(np.searchsorted(share, keep - 1e-12) + 1))
    return u[:, :k], s[:k]


def canonical_correlations(x: np.ndarray, y: np.ndarray, keep: float | None = None) -> np.ndarray:
    """The canonical correlations of ``x`` (n, p) and ``y`` (n, q), descending: array of
    shape (min(kx, ky),), where k is each side's rank (or, with ``keep``, the directions that
    explain that share of its variance — SVCCA's reduction)."""
    _check_pair(x, y)
    qx, _ = _basis(_centred(x), keep)
    qy, _ = _basis(_centred(y), keep)
    if qx.shape[1] == 0 or qy.shape[1] == 0:
        return np.zeros(0)
    return np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0.0, 1.0)


def svcca(x: np.ndarray, y: np.ndarray, keep: float = SVCCA_KEEP) -> float:
    """SVCCA: the mean canonical correlation after keeping ``keep`` of each side's variance
    (NaN when a side is constant)."""
    rho = canonical_correlations(x, y, keep)
    return float(rho.mean()) if rho.size else float("nan")


def pwcca(x: np.ndarray, y: np.ndarray) -> float:
    """PWCCA (Morcos et al. 2018): canonical correlations weighted by ``x``'s neurons.

    The weight of canonical direction ``h_i`` (a unit vector over the samples, in ``x``'s
    column space) is ``sum_j |<h_i, x_j>|`` over ``x``'s centred neurons ``x_j``, normalised
    to sum to 1. Not symmetric: ``pwcca(x, y)`` weights by ``x``.
    """
    _check_pair(x, y)
    xc = _centred(x)
    qx, _ = _basis(xc, None)
    qy, _ = _basis(_centred(y), None)
    if qx.shape[1] == 0 or qy.shape[1] == 0:
        return float("nan")
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    directions = qx @ u[:, : rho.size]  # (n, k): the canonical variates on x's side
    weights = np.abs(directions.T @ xc).sum(axis=1)
    total = weights.sum()
    if total <= 0:
        return float("nan")
    return float(np.clip(rho, 0.0, 1.0) @ (weights / total))


#: The similarities by name.
SIMILARITIES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "cka": linear_cka,
    "svcca": svcca,
    "pwcca": pwcca,
}


def similarity(x: np.ndarray, y: np.ndarray, method: str = "cka") -> float:
    """``method`` (``"cka"``, ``"svcca"`` or ``"pwcca"``) of ``x`` and ``y``."""
    if method not in SIMILARITIES:
        raise ValueError(f"method={method!r}: use one of {', '.join(SIMILARITIES)}")
    return SIMILARITIES[method](x, y)


def permutation_null(
    x: np.ndarray,
    y: np.ndarray,
    method: str = "cka",
    n_permutations: int = 20,
    random_state: int = 0,
) -> np.ndarray:
    """The similarity of ``x`` with ``y`` whose rows (probe samples) are shuffled, once per
    permutation: array of shape (n_permutations,). What the similarity reaches by chance on
    these shapes (CCA in particular is inflated when samples are few)."""
    rng = np.random.default_rng(random_state)
    orders = [rng.permutation(y.shape[0]) for _ in range(n_permutations)]
    if method == "cka":
        _check_pair(x, y)
        cka = _cka_of(x, y)
        return np.array([cka(order) for order in orders])
    return np.array([similarity(x, y[order], method) for order in orders])


def _side_by_side(reps: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Centred representations side by side, (n, sum of widths), float32; where each starts;
    and each one's ``||Xc^T Xc||_F`` (float32 products, summed in float64)."""
    centred = [np.ascontiguousarray(_centred(r), dtype=np.float32) for r in reps]
    norms = np.array([np.sqrt(np.sum(np.square(c.T @ c, dtype=np.float64))) for c in centred])
    starts = np.cumsum([0, *(c.shape[1] for c in centred[:-1])]).tolist()
    return np.concatenate(centred, axis=1), starts, norms


def cka_matrix(
    left: Sequence[np.ndarray], right: Sequence[np.ndarray], row_order: np.ndarray | None = None
) -> np.ndarray:
    """Linear CKA of every representation of ``left`` with every one of ``right``: array of
    shape (len(left), len(right)), NaN where a side is constant.

    One matrix product over the centred representations side by side (the cross-covariance
    of every pair at once), then each block's squared Frobenius norm. ``row_order``: a
    permutation of the samples applied to ``right`` (the permutation baseline).
    """
    if not left or not right:
        return np.zeros((len(left), len(right)))
    for rep in [*left, *right]:
        _check_pair(left[0], rep)
    a, a_starts, a_norms = _side_by_side(left)
    b, b_starts, b_norms = _side_by_side(right)
    if row_order is not None:
        b = b[row_order]
    squared = np.square(a.T @ b, dtype=np.float64)  # (sum p, sum q): every pair's cross-covariance
    rows = np.add.reduceat(squared, a_starts, axis=0)
    blocks = np.add.reduceat(rows, b_starts, axis=1)
    norms = np.outer(a_norms, b_norms)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, blocks / norms, np.nan)
