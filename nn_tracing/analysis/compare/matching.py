"""Neurons of one layer matched to the neurons of the same layer in another run (Li et al.
2015, "Convergent learning").

For two runs measured on the same probe samples, :func:`correlation_matrix` is the Pearson
correlation of every neuron of one with every neuron of the other — one matrix product of the
standardised activations, ``Xz^T Yz / n``. :func:`match_neurons` pairs them one to one so that
the total correlation is largest (the Hungarian method,
:func:`scipy.optimize.linear_sum_assignment`), and :class:`NeuronMatching` tests the matched
correlations against a null: the same matching against the other run with its probe samples
permuted (what matching finds among unrelated neurons of these widths), or against any other
activations (the other run's untrained network). A neuron is *universal* when its matched
correlation is above the null's 99th percentile (Gurnee et al. 2024).

:func:`partner_stability` follows the matching through training: at every recorded epoch both
runs have, each neuron's partner; the epoch from which that partner no longer changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "NeuronMatching",
    "correlation_matrix",
    "match_neurons",
    "partner_stability",
    "stable_from",
]

#: The null's quantile above which a matched neuron counts as universal.
UNIVERSAL_QUANTILE = 0.99


def _standardised(values: np.ndarray) -> np.ndarray:
    """Columns z-scored over the rows (ddof 0) in float32; a constant column becomes 0."""
    values = np.asarray(values, dtype=np.float64)
    centred = values - values.mean(axis=0, keepdims=True)
    spread = np.sqrt((centred**2).mean(axis=0, keepdims=True))
    return (centred / np.where(spread > 0, spread, np.inf)).astype(np.float32)


def _constant(values: np.ndarray) -> np.ndarray:
    """Which columns do not vary over the rows: bool array (n_columns,)."""
    values = np.asarray(values)
    return ~(values.max(axis=0) > values.min(axis=0))


def correlation_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of ``x`` (n, p) with every column of ``y`` (n, q):
    array of shape (p, q), float32; 0 where a neuron is constant on the probe.

    >>> a = np.array([[0.0, 1.0], [1.0, 3.0], [2.0, 2.0]])
    >>> correlation_matrix(a, a[:, ::-1]).round(3).tolist()
    [[0.5, 1.0], [1.0, 0.5]]
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"activations of shapes {x.shape} and {y.shape}: a correlation needs the same probe "
            "samples (rows) on both sides"
        )
    if x.shape[0] < 2:
        raise ValueError("a correlation needs at least two probe samples")
    return np.clip(_standardised(x).T @ _standardised(y) / np.float32(x.shape[0]), -1.0, 1.0)


def match_neurons(correlation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one matching of rows to columns that maximises the total correlation.

    Returns
    -------
    partner : int array of shape (p,) — the column matched to each row, -1 for a row left
        unmatched (more rows than columns)
    matched : float array of shape (p,) — each row's correlation with its partner (NaN if none)
    """
    correlation = np.asarray(correlation)
    rows, cols = linear_sum_assignment(correlation, maximize=True)
    partner = np.full(correlation.shape[0], -1, dtype=np.int64)
    partner[rows] = cols
    matched = np.full(correlation.shape[0], np.nan)
    matched[rows] = correlation[rows, cols]
    return partner, matched


@dataclass
class NeuronMatching:
    """Match the neurons of one layer of run A to those of run B, against a null.

    Parameters
    ----------
    n_permutations
        How many times the null matches A against B with B's probe samples permuted.
    quantile
        The null's quantile a universal neuron's matched correlation must exceed.
    random_state
        Seeds the permutations.

    Attributes (after :meth:`fit`)
    ----------
    correlation_ : (p, q) float32 correlations of A's neurons with B's
    partner_ : (p,) B's neuron matched to each of A's (-1: none)
    matched_ : (p,) the matched correlations; NaN where A's neuron or its partner is constant
        on the probe (a dead ReLU: no correlation to speak of)
    constant_ : (p,) bool, the neurons left out of the share for that reason
    null_ : matched correlations of the null, every permutation pooled
    threshold_ : the null's ``quantile``
    universal_ : (p,) bool, matched correlation above the threshold
    """

    n_permutations: int = 5
    quantile: float = UNIVERSAL_QUANTILE
    random_state: int = 0

    def fit(self, x: np.ndarray, y: np.ndarray, null: np.ndarray | None = None) -> NeuronMatching:
        """Match ``x`` (n, p) to ``y`` (n, q); the null is ``y`` with its rows permuted, or,
        given ``null`` (n, q'), matching ``x`` against those activations (e.g. B untrained)."""
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile={self.quantile!r} must be between 0 and 1")
        self.correlation_ = correlation_matrix(x, y)
        self.partner_, self.matched_ = match_neurons(self.correlation_)
        # a neuron constant on the probe (a dead ReLU) has no correlation: matched, not counted
        constant_a, constant_b = _constant(x), _constant(y)
        self.constant_ = constant_a | np.where(
            self.partner_ >= 0, constant_b[np.maximum(self.partner_, 0)], False
        )
        self.matched_[self.constant_] = np.nan
        if null is not None:
            pooled = [match_neurons(correlation_matrix(x, null))[1]]
        else:
            if self.n_permutations < 1:
                raise ValueError("n_permutations must be at least 1 (or pass null=)")
            rng = np.random.default_rng(self.random_state)
            pooled = [
                match_neurons(correlation_matrix(x, y[rng.permutation(y.shape[0])]))[1]
                for _ in range(self.n_permutations)
            ]
        self.null_ = np.concatenate(pooled)
        finite = self.null_[np.isfinite(self.null_)]
        self.threshold_ = float(np.quantile(finite, self.quantile)) if finite.size else np.nan
        self.universal_ = np.nan_to_num(self.matched_, nan=-np.inf) > self.threshold_
        return self

    @property
    def universal_share_(self) -> float:
        """Share of A's matched neurons that are universal."""
        matched = np.isfinite(self.matched_)
        return float(self.universal_[matched].mean()) if matched.any() else float("nan")

    def describe(self) -> str:
        """The result in one sentence."""
        n = int(np.isfinite(self.matched_).sum())
        left_out = int(self.constant_.sum())
        note = (
            f" ({left_out} neuron{'s' if left_out != 1 else ''} constant on the probe, in A or "
            "as its partner, left out)"
            if left_out
            else ""
        )
        return (
            f"{self.universal_.sum()} of {n} matched neurons{note} ({self.universal_share_:.0%}) "
            f"correlate with their partner above the null's {self.quantile:.0%} quantile "
            f"(r > {self.threshold_:.3f}); median matched r {np.nanmedian(self.matched_):.3f}, "
            f"null median {np.nanmedian(self.null_):.3f}."
        )


def partner_stability(
    left: list[np.ndarray], right: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Each of A's neurons' partner at every epoch, and its matched correlation.

    Parameters
    ----------
    left, right
        One layer's probe activations of runs A and B at the same recorded epochs, in order:
        lists of arrays (n, p) and (n, q).

    Returns
    -------
    partners : int array (n_epochs, p), -1 where unmatched
    matched : float array (n_epochs, p)
    """
    if len(left) != len(right):
        raise ValueError("the two runs need activations at the same epochs")
    pairs = [match_neurons(correlation_matrix(a, b)) for a, b in zip(left, right, strict=True)]
    if not pairs:
        return np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0))
    return np.stack([p for p, _ in pairs]), np.stack([m for _, m in pairs])


def stable_from(partners: np.ndarray, epochs: list[int]) -> np.ndarray:
    """For each neuron, the first recorded epoch from which its partner never changes again
    (the partner it has at the last epoch): int array (p,).

    >>> stable_from(np.array([[0, 1], [1, 1], [1, 0]]), [0, 5, 9]).tolist()
    [5, 9]
    """
    partners = np.asarray(partners)
    n_epochs = partners.shape[0]
    same = partners == partners[-1]
    # the last epoch at which the partner differed from the final one, per neuron
    differ = ~same
    last_differ = np.where(differ.any(axis=0), n_epochs - 1 - np.argmax(differ[::-1], axis=0), -1)
    return np.asarray(epochs, dtype=np.int64)[last_differ + 1]
