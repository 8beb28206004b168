"""Modular arithmetic, the grokking datasets: every pair ``(a, b)`` of residues mod ``p``.

Power et al. (2022) found that small networks trained on a fraction of such a table first
memorise it and only much later generalise to the held-out pairs ("grokking"); Nanda et al.
(2023) showed that the network that generalises computes with a few Fourier frequencies of the
residues. Two operations are built in (:data:`MODULAR_DATASETS`): ``a + b mod p`` and
``a - b mod p`` (both keep the Fourier structure in the residues themselves).

Each of the ``p²`` pairs is one sample; its label is the result, ``0 … p-1``. Inputs are

* **one-hot** (``embedding_dim=0``, the default): ``2p`` features named ``a=0 … a=p-1`` and
  ``b=0 … b=p-1``, exactly one of each half set. A first ``Linear`` layer on them *is* a learned
  embedding of ``a`` plus one of ``b`` (its columns are the embedding vectors), so the built-in
  MLP learns embeddings without a model change;
* **a fixed random embedding** (``embedding_dim=d > 0``): each residue is a seeded Gaussian
  vector of length ``d`` (unit norm on average), the same for ``a`` and ``b``; features
  ``a_e0 … a_e{d-1}`` and ``b_e0 …``. The network cannot change it; it is there to show
  grokking with inputs that carry no one-hot identity.

The features are used as they are (not standardised; see :func:`nn_tracing.data.prepare_data`):
the split keeps ``train_fraction`` of the pairs (stratified by result) for training and holds
out the rest as validation, and the probe set is drawn from the held-out pairs, so every page
shows the network on pairs it never trained on.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MAX_MODULUS",
    "MODULAR_DATASETS",
    "decode_pairs",
    "embedding_matrix",
    "is_modular",
    "modular_dataset_arrays",
    "modular_feature_names",
    "modular_result",
]

MODULAR_DATASETS: dict[str, str] = {
    "modular_add": "(a + b) mod p for every pair of residues (grokking), one-hot a and b",
    "modular_sub": "(a - b) mod p for every pair of residues (grokking), one-hot a and b",
}
#: The largest modulus: p² samples of 2p features stay small (40k × 400).
MAX_MODULUS = 200


def is_modular(dataset: str) -> bool:
    """Whether ``dataset`` names one of the modular arithmetic datasets."""
    return dataset in MODULAR_DATASETS


def modular_result(dataset: str, a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    """The label of each pair: ``(a + b) mod p`` or ``(a - b) mod p``."""
    if dataset == "modular_add":
        return np.mod(a + b, p)
    if dataset == "modular_sub":
        return np.mod(a - b, p)
    raise ValueError(f"{dataset!r} is not a modular dataset; choose {', '.join(MODULAR_DATASETS)}")


def embedding_matrix(p: int, embedding_dim: int, seed: int) -> np.ndarray:
    """The fixed random embedding of the residues: array of shape (p, embedding_dim), float32,
    each entry N(0, 1/embedding_dim), seeded by ``seed``."""
    rng = np.random.default_rng([seed, p, embedding_dim])
    return (rng.standard_normal((p, embedding_dim)) / np.sqrt(embedding_dim)).astype(np.float32)


def modular_feature_names(p: int, embedding_dim: int = 0) -> tuple[str, ...]:
    """``a=0 … a=p-1, b=0 … b=p-1`` (one-hot) or ``a_e0 …, b_e0 …`` (embedded)."""
    if embedding_dim == 0:
        return (*(f"a={i}" for i in range(p)), *(f"b={i}" for i in range(p)))
    return (*(f"a_e{i}" for i in range(embedding_dim)), *(f"b_e{i}" for i in range(embedding_dim)))


def modular_dataset_arrays(
    dataset: str, p: int, embedding_dim: int = 0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of every pair, in the order ``a`` major, ``b`` minor.

    Returns ``X`` of shape (p², 2p) or (p², 2·embedding_dim), float32, and ``y`` of shape
    (p²,), int64: sample ``i`` is the pair ``(i // p, i % p)``.
    """
    if not 2 <= p <= MAX_MODULUS:
        raise ValueError(f"modulus={p}: must be between 2 and {MAX_MODULUS}")
    a, b = np.divmod(np.arange(p * p), p)
    y = modular_result(dataset, a, b, p).astype(np.int64)
    if embedding_dim == 0:
        X = np.zeros((p * p, 2 * p), dtype=np.float32)
        X[np.arange(p * p), a] = 1.0
        X[np.arange(p * p), p + b] = 1.0
        return X, y
    table = embedding_matrix(p, embedding_dim, seed)
    return np.concatenate([table[a], table[b]], axis=1), y


def decode_pairs(
    X: np.ndarray, p: int, embedding_dim: int = 0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The residues ``(a, b)`` of each row of modular inputs ``X`` (shape (n, 2p) one-hot, or
    (n, 2·embedding_dim) embedded): the hot feature of each half, or the nearest embedding
    vector. Raises :class:`ValueError` when ``X`` does not have that width."""
    X = np.asarray(X, dtype=np.float64)
    half = p if embedding_dim == 0 else embedding_dim
    if X.ndim != 2 or X.shape[1] != 2 * half:
        raise ValueError(
            f"inputs of shape {X.shape} are not modular inputs with p={p} "
            f"({'one-hot' if embedding_dim == 0 else f'embedding {embedding_dim}'})"
        )
    left, right = X[:, :half], X[:, half:]
    if embedding_dim == 0:
        return left.argmax(axis=1), right.argmax(axis=1)
    table = embedding_matrix(p, embedding_dim, seed).astype(np.float64)

    def nearest(part: np.ndarray) -> np.ndarray:
        d2 = (part**2).sum(1)[:, None] - 2 * part @ table.T + (table**2).sum(1)[None, :]
        return d2.argmin(axis=1)

    return nearest(left), nearest(right)
