"""Decision entropy: is a neuron less random when the network decides — against chance?

For every neuron at every recorded epoch, its activation on the probe set is discretised into
quantile bins (chosen once, on the untrained network ``E_0``, so that epochs compare on the same
grid), and measured in bits:

* ``H(A)`` — the entropy of the binned activation;
* ``H(A | predicted)`` and ``H(A | true)`` — its conditional entropy given the class the network
  predicts and given the true class;
* ``I(A; Y) = H(A) − H(A | Y)`` — the mutual information with either label.

A neuron "more ordered when the network decides" has ``H(A | predicted)`` below ``H(A)``, i.e.
positive mutual information with the decision. Plug-in mutual information is biased upward
(≈ ``(B − 1)(C − 1) / (2 S ln 2)`` bits for B bins, C classes and S samples), so it is judged
against a **null of label permutations**: the same P permutations of the labels are applied to
every neuron at once (one matrix product per block of neurons, no Python loop over neurons or
permutations), the p-value is ``(1 + #{null ≥ observed}) / (1 + P)``, and the
Benjamini–Hochberg procedure controls the false-discovery rate over every test reported.

Also here: the entropy of probability vectors and the entropy rate of a Markov chain, used by
:mod:`nn_tracing.analysis.hmm`. Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import xlogy
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..progress import Progress, reporter
from ..timeaxis import time_key, time_word
from ..trace import NetworkTrace

__all__ = [
    "LABELS",
    "DecisionEntropy",
    "benjamini_hochberg",
    "discretize",
    "entropy_bits",
    "entropy_rate",
    "information_terms",
    "permutation_mi",
    "quantile_edges",
    "stationary_distribution",
]

#: Which label a decision-entropy test is about.
LABELS: tuple[str, ...] = ("predicted", "true")

_LN2 = float(np.log(2.0))
#: Bytes a block of the permutation product may take (joint counts of a block of neurons).
_BLOCK_BYTES = 64 * 2**20


# -- entropies ----------------------------------------------------------------------------------
def entropy_bits(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in bits of probability vectors along ``axis`` (``0 log 0 = 0``).

    Parameters
    ----------
    p : array of shape (..., n, ...), non-negative, summing to 1 along ``axis``

    Returns
    -------
    array with ``axis`` removed.

    >>> float(entropy_bits(np.array([0.5, 0.5])))
    1.0
    """
    p = np.asarray(p, dtype=np.float64)
    return -xlogy(p, p).sum(axis=axis) / _LN2


def stationary_distribution(transmat: np.ndarray) -> np.ndarray:
    """The stationary distribution ``π = π A`` of a transition matrix.

    Parameters
    ----------
    transmat : array of shape (k, k), rows summing to 1

    Returns
    -------
    array of shape (k,): the left eigenvector of eigenvalue 1, normalised to sum to 1. For a
    reducible chain with several closed classes this is one of its stationary distributions.
    """
    transmat = np.asarray(transmat, dtype=np.float64)
    values, vectors = np.linalg.eig(transmat.T)
    vector = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    vector = np.abs(vector)
    return vector / vector.sum()


def entropy_rate(transmat: np.ndarray, stationary: np.ndarray | None = None) -> float:
    """Entropy rate of a Markov chain in bits per step: ``H = −Σ_i π_i Σ_j A_ij log2 A_ij``.

    0 for a chain that never moves (or moves deterministically); ``log2 k`` for a chain that
    jumps uniformly at random between ``k`` states.

    Parameters
    ----------
    transmat : array of shape (k, k), rows summing to 1
    stationary : array of shape (k,), optional; by default :func:`stationary_distribution`
    """
    transmat = np.asarray(transmat, dtype=np.float64)
    pi = stationary_distribution(transmat) if stationary is None else np.asarray(stationary)
    return float(np.dot(pi, entropy_bits(transmat, axis=1)))


# -- discretisation -----------------------------------------------------------------------------
def quantile_edges(activations: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner bin edges at the quantiles ``1/B, …, (B−1)/B`` of each neuron's activations.

    Parameters
    ----------
    activations : array of shape (n_samples, n_neurons)
    n_bins : B ≥ 2

    Returns
    -------
    array of shape (n_neurons, n_bins − 1), ascending per neuron (repeated edges leave bins
    empty: a neuron that is constant at ``E_0`` has all its samples in one bin).
    """
    if n_bins < 2:
        raise ValueError(f"n_bins={n_bins}: need at least 2 bins")
    levels = np.arange(1, n_bins) / n_bins
    return np.quantile(np.asarray(activations, dtype=np.float64), levels, axis=0).T


def discretize(activations: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of every activation: the number of a neuron's edges strictly below it.

    Parameters
    ----------
    activations : array of shape (n_samples, n_neurons)
    edges : array of shape (n_neurons, n_bins − 1), ascending per neuron

    Returns
    -------
    int array of shape (n_samples, n_neurons), values in ``0 … n_bins − 1``.
    """
    acts = np.asarray(activations, dtype=np.float64)
    codes = np.zeros(acts.shape, dtype=np.int16)
    for j in range(edges.shape[1]):  # B − 1 array operations over every sample and neuron
        codes += acts > edges[:, j]
    return codes


# -- information --------------------------------------------------------------------------------
def _sum_nlogn(counts: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    return xlogy(counts, counts).sum(axis=axis)


def information_terms(
    codes: np.ndarray, labels: np.ndarray, n_bins: int, n_classes: int
) -> dict[str, np.ndarray]:
    """Entropy, conditional entropy and mutual information (bits) of every neuron, exactly.

    Parameters
    ----------
    codes : int array of shape (n_samples, n_neurons), bins in ``0 … n_bins − 1``
    labels : int array of shape (n_samples,), classes in ``0 … n_classes − 1``

    Returns
    -------
    ``{"entropy": H(A), "conditional": H(A | Y), "mi": I(A; Y)}``, arrays of shape
    (n_neurons,), computed from the joint counts with the plug-in estimator.
    """
    entropy = _entropy_of_codes(codes, n_bins)
    mi = _mi_columns(codes, np.asarray(labels)[:, None], n_bins, n_classes)[:, 0]
    return {"entropy": entropy, "conditional": entropy - mi, "mi": mi}


def _entropy_of_codes(codes: np.ndarray, n_bins: int) -> np.ndarray:
    """H(A) in bits of every column of ``codes`` (S, N): B array operations."""
    n = codes.shape[0]
    counts = np.stack([(codes == b).sum(axis=0) for b in range(n_bins)], axis=1)
    return (np.log(n) - _sum_nlogn(counts.astype(np.float64), (1,)) / n) / _LN2


def _mi_columns(
    codes: np.ndarray, label_columns: np.ndarray, n_bins: int, n_classes: int
) -> np.ndarray:
    """I(A; Y) in bits of every neuron (column of ``codes``, (S, N)) with every label column
    (``label_columns``, (S, P)): returns (N, P).

    The joint counts of a block of neurons with every label column are one matrix product of
    the one-hot codes (S, n·(B − 1)) with the one-hot labels (S, P·(C − 1)) — no Python loop
    over neurons or label columns. The last bin and the last class are left out of the
    product and recovered from the margins (the bin counts of each neuron, the class counts of
    each column), which saves a factor ``B·C / ((B − 1)(C − 1))`` of the work. Blocks keep the
    one-hot codes and the counts under 64 MiB each.
    """
    n_samples, n_neurons = codes.shape
    n_columns = label_columns.shape[1]
    b1, c1 = n_bins - 1, max(n_classes - 1, 1)
    one_hot_labels = np.equal(label_columns[:, :, None], np.arange(c1)).astype(np.float32)
    one_hot_labels = one_hot_labels.reshape(n_samples, n_columns * c1)
    class_counts = np.stack(
        [(label_columns == c).sum(axis=0) for c in range(n_classes)], axis=1
    ).astype(np.float64)  # (P, C)
    per_neuron = b1 * max(n_columns * c1 * 8, n_samples * 4)
    block = max(1, _BLOCK_BYTES // max(per_neuron, 1))
    out = np.empty((n_neurons, n_columns))
    for start in range(0, n_neurons, block):
        part = codes[:, start : start + block]
        width = part.shape[1]
        bin_counts = np.stack([(part == b).sum(axis=0) for b in range(n_bins)], axis=1)
        joint = np.empty((width, n_bins, n_columns, n_classes))
        if b1 > 0 and n_classes > 1:
            one_hot_codes = np.equal(part[:, :, None], np.arange(b1, dtype=part.dtype))
            one_hot_codes = one_hot_codes.astype(np.float32).reshape(n_samples, width * b1)
            # float32 sums of 0/1 are exact below 2**24 samples
            product = one_hot_codes.T @ one_hot_labels
            joint[:, :b1, :, :c1] = product.reshape(width, b1, n_columns, c1)
        else:
            joint[:, :b1, :, :c1] = 0.0
        if n_classes > 1:  # the last class from each bin's total
            joint[:, :b1, :, c1] = bin_counts[:, :b1, None] - joint[:, :b1, :, :c1].sum(axis=3)
        else:
            joint[:, :b1, :, 0] = bin_counts[:, :b1, None]
        # the last bin from each class's total
        joint[:, b1, :, :] = class_counts[None, :, :] - joint[:, :b1, :, :].sum(axis=1)
        mi = (
            _sum_nlogn(joint, (1, 3))
            + n_samples * np.log(n_samples)
            - _sum_nlogn(bin_counts.astype(np.float64), (1,))[:, None]
            - _sum_nlogn(class_counts, (1,))[None, :]
        ) / (n_samples * _LN2)
        out[start : start + width] = np.maximum(mi, 0.0)  # rounding can leave −1e-16
    return out


def permutation_mi(
    codes: np.ndarray,
    labels: np.ndarray,
    n_bins: int,
    n_classes: int,
    permutations: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Observed mutual information and its permutation null, for every neuron.

    Parameters
    ----------
    codes : int array of shape (n_samples, n_neurons)
    labels : int array of shape (n_samples,)
    permutations : int array of shape (n_permutations, n_samples), each row a permutation of
        the sample indices; the same permutations serve every neuron

    Returns
    -------
    ``(observed, null)``: arrays of shape (n_neurons,) and (n_neurons, n_permutations), bits.
    """
    labels = np.asarray(labels)
    columns = np.concatenate([labels[:, None], labels[permutations.T]], axis=1)  # (S, 1 + P)
    out = _mi_columns(codes, columns, n_bins, n_classes)
    return out[:, 0], out[:, 1:]


def benjamini_hochberg(pvalues: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg false-discovery-rate control over every finite p-value given.

    Parameters
    ----------
    pvalues : array of any shape; NaN entries are not tests (never rejected, q = NaN)
    alpha : the false-discovery rate

    Returns
    -------
    ``(reject, qvalues)`` of the same shape: whether each test is a discovery, and its
    BH-adjusted p-value (the smallest FDR at which it would be one).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.reshape(-1)
    tested = np.flatnonzero(np.isfinite(flat))
    q = np.full(flat.shape, np.nan)
    reject = np.zeros(flat.shape, dtype=bool)
    m = tested.size
    if m:
        order = tested[np.argsort(flat[tested], kind="stable")]
        ranked = flat[order] * m / np.arange(1, m + 1)
        adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
        q[order] = np.minimum(adjusted, 1.0)
        reject[order] = q[order] <= alpha
    return reject.reshape(p.shape), q.reshape(p.shape)


#: What :class:`DecisionEntropy` measures at every (epoch, neuron).
_TERMS: tuple[str, ...] = (
    "entropy",
    "conditional_predicted",
    "conditional_true",
    "mi_predicted",
    "mi_true",
    "null_mean",
    "null_q95",
    "pvalues",
    "gtest",
)


@dataclass(frozen=True)
class _ProbeLabels:
    """What decision entropy reads from a trace besides the activations: the neurons measured,
    the true and predicted labels, and the first epoch's activations (for the bins)."""

    labels_true: np.ndarray
    ids: np.ndarray
    layers: np.ndarray
    first: np.ndarray
    predictions: list[np.ndarray | None]
    n_samples: int
    n_classes: int

    @classmethod
    def of(cls, trace: NetworkTrace, layers: Sequence[str] | None) -> _ProbeLabels:
        """Read them from ``trace`` (``layers``: default every layer but ``input``); a
        :class:`ValueError` for a person when the trace has no probe set or activations."""
        if trace.probe is None:
            raise ValueError(
                "decision entropy needs the probe set: this trace was recorded without one "
                "(statistics streamed over training batches), so there are no per-sample "
                "activations to discretise"
            )
        labels_true = np.asarray(trace.probe[1]).astype(np.int64).reshape(-1)
        names = layers or [i.name for i in trace.layers if i.kind != "input"]
        infos = [trace.layer(name) for name in names]
        ids = np.concatenate([np.asarray(info.ids) for info in infos])
        layer_of = np.concatenate([[info.name] * info.n_neurons for info in infos])
        epochs = trace.epochs
        first = trace.probe_activations(epochs[0])
        if first is None:
            raise ValueError(
                "decision entropy needs probe activations, and this trace keeps none at "
                + time_key(epochs[0])
            )
        predictions = [trace.predictions(e) for e in epochs]
        n_classes = int(
            max(
                labels_true.max(initial=0),
                *(int(p.max(initial=0)) for p in predictions if p is not None),
            )
            + 1
        )
        return cls(labels_true, ids, layer_of, first, predictions, first.shape[0], n_classes)


# -- the estimator ------------------------------------------------------------------------------
class DecisionEntropy(BaseEstimator):
    """Entropy and mutual information of every neuron's activation with the decision.

    Parameters
    ----------
    n_bins
        Quantile bins per neuron (B).
    binning
        ``"E_0"``: each neuron's bins are the quantiles of its activations on the untrained
        network, used at every epoch (an activation that moves outside its ``E_0`` range falls
        in an end bin, so ``H(A)`` also falls when a neuron's scale changes); ``"epoch"``:
        quantiles at each epoch (``H(A)`` stays near ``log2 B`` and only the information
        about the class moves).
    label
        The label the permutation test is about: ``"predicted"`` (the network's decision) or
        ``"true"``. Both mutual informations are always computed.
    n_permutations
        P label permutations for the null (the same for every neuron and epoch).
    alpha
        False-discovery rate of the Benjamini–Hochberg correction.
    fdr
        ``"all"``: one correction over every (epoch, neuron) test; ``"epoch"``: one per epoch.
    layers
        Layers to test (default: every layer but ``input``).
    random_state
        Seeds the permutations.

    Attributes
    ----------
    epochs_ : list of the recorded epochs, length E
    neuron_ids_ : array of shape (N,), global ids of the neurons measured
    layers_ : array of shape (N,), their layer names
    entropy_, conditional_predicted_, conditional_true_ : arrays of shape (E, N), bits
    mi_predicted_, mi_true_ : arrays of shape (E, N), bits
    null_mean_, null_q95_ : arrays of shape (E, N): mean and 95th percentile of the null MI
        of the tested label
    pvalues_, qvalues_ : arrays of shape (E, N): permutation p-values and BH q-values
    gtest_pvalues_ : array of shape (E, N): the asymptotic G-test p-value (χ² with
        (B' − 1)(C' − 1) degrees of freedom, B', C' the bins and classes that occur), a
        second opinion below the permutation resolution ``1 / (P + 1)``
    significant_ : bool array of shape (E, N)
    significant_since_ : int array of shape (N,): the first epoch from which the neuron is
        significant at every later recorded epoch, −1 if it is not significant at the last
    n_classes_ : int
    """

    def __init__(
        self,
        n_bins: int = 8,
        *,
        binning: str = "E_0",
        label: str = "predicted",
        n_permutations: int = 100,
        alpha: float = 0.05,
        fdr: str = "all",
        layers: Sequence[str] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.n_bins = n_bins
        self.binning = binning
        self.label = label
        self.n_permutations = n_permutations
        self.alpha = alpha
        self.fdr = fdr
        self.layers = layers
        self.random_state = random_state

    def _check(self) -> None:
        if not isinstance(self.n_bins, int) or not 2 <= self.n_bins <= 64:
            raise ValueError(f"n_bins={self.n_bins!r}: use between 2 and 64 bins")
        if self.binning not in ("E_0", "epoch"):
            raise ValueError(f"binning={self.binning!r}: use 'E_0' or 'epoch'")
        if self.label not in LABELS:
            raise ValueError(f"label={self.label!r}: use one of {LABELS}")
        if self.fdr not in ("all", "epoch"):
            raise ValueError(f"fdr={self.fdr!r}: use 'all' or 'epoch'")
        if not isinstance(self.n_permutations, int) or self.n_permutations < 1:
            raise ValueError(f"n_permutations={self.n_permutations!r}: use at least 1")

    def fit(self, trace: NetworkTrace, progress: Progress | None = None) -> DecisionEntropy:
        """Measure every recorded epoch of ``trace``.

        Raises :class:`ValueError` with a message for a person when the trace has no probe
        set or no probe activations (statistics streamed over training batches).
        """
        self._check()
        probe = _ProbeLabels.of(trace, self.layers)
        epochs = trace.epochs
        rng = np.random.default_rng(self.random_state)
        permutations = np.argsort(rng.random((self.n_permutations, probe.n_samples)), axis=1)
        arrays = {name: np.full((len(epochs), probe.ids.size), np.nan) for name in _TERMS}
        edges = (
            quantile_edges(probe.first[:, probe.ids], self.n_bins)
            if self.binning == "E_0"
            else None
        )
        report = reporter(progress, len(epochs))
        for row, epoch in enumerate(epochs):
            report(row, f"E_{epoch}: binning and {self.n_permutations} label permutations")
            acts = trace.probe_activations(epoch)
            predicted = probe.predictions[row]
            if acts is None or predicted is None:
                continue
            terms = self._terms(acts[:, probe.ids], predicted, probe, permutations, edges)
            for name, values in terms.items():
                arrays[name][row] = values
        report(len(epochs), "done")
        if self.fdr == "all":
            significant, qvalues = benjamini_hochberg(arrays["pvalues"], self.alpha)
        else:
            pairs = [benjamini_hochberg(p, self.alpha) for p in arrays["pvalues"]]
            significant = np.stack([r for r, _ in pairs])
            qvalues = np.stack([q for _, q in pairs])
        self.epochs_ = list(epochs)
        self.neuron_ids_ = probe.ids
        self.layers_ = probe.layers
        self.n_classes_ = probe.n_classes
        self.n_samples_ = probe.n_samples
        self.entropy_ = arrays["entropy"]
        self.conditional_predicted_ = arrays["conditional_predicted"]
        self.conditional_true_ = arrays["conditional_true"]
        self.mi_predicted_ = arrays["mi_predicted"]
        self.mi_true_ = arrays["mi_true"]
        self.null_mean_ = arrays["null_mean"]
        self.null_q95_ = arrays["null_q95"]
        self.pvalues_ = arrays["pvalues"]
        self.gtest_pvalues_ = arrays["gtest"]
        self.qvalues_ = qvalues
        self.significant_ = significant
        self.significant_since_ = _since(significant, np.asarray(epochs))
        return self

    def _terms(
        self,
        acts: np.ndarray,
        predicted: np.ndarray,
        probe: _ProbeLabels,
        permutations: np.ndarray,
        edges: np.ndarray | None,
    ) -> dict[str, np.ndarray]:
        """Every term of :data:`_TERMS` at one epoch: arrays of shape (N,).

        ``acts``: the measured neurons' probe activations, shape (n_samples, N);
        ``permutations``: the label permutations of the null, shape (P, n_samples).
        """
        bins = edges if edges is not None else quantile_edges(acts, self.n_bins)
        codes = discretize(acts, bins)
        predicted = np.asarray(predicted).astype(np.int64).reshape(-1)
        labels_true = probe.labels_true
        tested = predicted if self.label == "predicted" else labels_true
        # one pass: both labels, then the P permutations of the tested one
        columns = np.concatenate(
            [predicted[:, None], labels_true[:, None], tested[permutations.T]], axis=1
        )
        mi = _mi_columns(codes, columns, self.n_bins, probe.n_classes)
        entropy = _entropy_of_codes(codes, self.n_bins)
        observed, null = mi[:, 0 if self.label == "predicted" else 1], mi[:, 2:]
        exceed = (null >= observed[:, None] - 1e-12).sum(axis=1)
        return {
            "entropy": entropy,
            "mi_predicted": mi[:, 0],
            "mi_true": mi[:, 1],
            "conditional_predicted": entropy - mi[:, 0],
            "conditional_true": entropy - mi[:, 1],
            "pvalues": (1.0 + exceed) / (1.0 + self.n_permutations),
            "null_mean": null.mean(axis=1),
            "null_q95": np.quantile(null, 0.95, axis=1),
            "gtest": _gtest(codes, tested, observed, probe.n_samples, probe.n_classes),
        }

    # -- views -------------------------------------------------------------------------------
    @property
    def tested_mi_(self) -> np.ndarray:
        """The mutual information the test is about, shape (E, N)."""
        check_is_fitted(self)
        return self.mi_predicted_ if self.label == "predicted" else self.mi_true_

    def ranking(self, epoch: int) -> pd.DataFrame:
        """One row per neuron at ``epoch``, most informative first.

        Columns: ``neuron``, ``layer``, ``H``, ``H|predicted``, ``H|true``, ``MI predicted``,
        ``MI true``, ``MI above null`` (observed minus the null mean), ``MI at E_0``,
        ``H|<label> change since E_0`` (negative: less random given the label than the untrained
        network was), ``p``, ``q``, ``G-test p``, ``significant``, ``significant since`` (epoch
        or ``None``).
        """
        check_is_fitted(self)
        row = self.epochs_.index(epoch)
        tested = self.tested_mi_
        conditional = (
            self.conditional_predicted_ if self.label == "predicted" else self.conditional_true_
        )
        frame = pd.DataFrame(
            {
                "neuron": self.neuron_ids_,
                "layer": self.layers_,
                "H": self.entropy_[row],
                "H|predicted": self.conditional_predicted_[row],
                "H|true": self.conditional_true_[row],
                "MI predicted": self.mi_predicted_[row],
                "MI true": self.mi_true_[row],
                "MI above null": tested[row] - self.null_mean_[row],
                "MI at E_0": tested[0],
                f"H|{self.label} change since E_0": conditional[row] - conditional[0],
                "p": self.pvalues_[row],
                "q": self.qvalues_[row],
                "G-test p": self.gtest_pvalues_[row],
                "significant": self.significant_[row],
                "significant since": [int(e) if e >= 0 else None for e in self.significant_since_],
            }
        )
        return frame.sort_values(
            ["significant", "MI above null"], ascending=[False, False], kind="stable"
        ).reset_index(drop=True)

    def layer_summary(self) -> pd.DataFrame:
        """Per layer and epoch: quartiles of the tested MI, the median null 95th percentile,
        and the number and share of significant neurons (long form, one row per pair)."""
        check_is_fitted(self)
        rows = []
        tested = self.tested_mi_
        for layer in dict.fromkeys(self.layers_):
            cols = self.layers_ == layer
            for row, epoch in enumerate(self.epochs_):
                values = tested[row, cols]
                finite = values[np.isfinite(values)]
                if finite.size == 0:
                    continue
                q1, median, q3 = np.quantile(finite, [0.25, 0.5, 0.75])
                n_sig = int(self.significant_[row, cols].sum())
                rows.append(
                    {
                        "layer": layer,
                        "epoch": epoch,
                        "q1": q1,
                        "median": median,
                        "q3": q3,
                        "null_q95": float(np.nanmedian(self.null_q95_[row, cols])),
                        "entropy": float(np.nanmedian(self.entropy_[row, cols])),
                        "conditional": float(
                            np.nanmedian(
                                (
                                    self.conditional_predicted_
                                    if self.label == "predicted"
                                    else self.conditional_true_
                                )[row, cols]
                            )
                        ),
                        "n_significant": n_sig,
                        "n_neurons": int(cols.sum()),
                        "share_significant": n_sig / max(int(cols.sum()), 1),
                    }
                )
        return pd.DataFrame(rows)

    def describe(self) -> str:
        """One sentence on the test as run."""
        check_is_fitted(self)
        return (
            f"{self.n_bins} quantile bins per neuron chosen "
            f"{'on ' + time_key(0) if self.binning == 'E_0' else 'at each ' + time_word()}; "
            "mutual information "
            f"with the {self.label} class against {self.n_permutations} label permutations "
            f"(smallest possible p = {1 / (self.n_permutations + 1):.3g}); Benjamini–Hochberg "
            f"FDR {self.alpha:g} over "
            + (
                f"every {time_word()} and neuron at once"
                if self.fdr == "all"
                else "each " + time_word()
            )
            + "; "
            f"{self.n_samples_} probe samples, {self.n_classes_} classes."
        )


def _gtest(
    codes: np.ndarray, labels: np.ndarray, mi_bits: np.ndarray, n_samples: int, n_classes: int
) -> np.ndarray:
    """Asymptotic G-test p-values: ``G = 2 S I ln 2 ~ χ²((B' − 1)(C' − 1))``."""
    n_bins = int(codes.max(initial=0)) + 1
    occupied = np.zeros((codes.shape[1], n_bins), dtype=bool)
    occupied[np.arange(codes.shape[1])[None, :], codes] = True
    bins_used = occupied.sum(axis=1)
    classes_used = int((np.bincount(labels, minlength=n_classes) > 0).sum())
    dof = (bins_used - 1) * (classes_used - 1)
    statistic = 2.0 * n_samples * mi_bits * _LN2
    with np.errstate(invalid="ignore"):
        p = stats.chi2.sf(statistic, np.maximum(dof, 1))
    return np.where(dof > 0, p, 1.0)


def _since(significant: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """For each column, the first epoch of the final run of significant rows (−1 if the last
    row is not significant)."""
    n_rows, n_cols = significant.shape
    out = np.full(n_cols, -1, dtype=np.int64)
    if n_rows == 0:
        return out
    # rows from the end that are all significant: reversed cumulative product
    tail = np.cumprod(significant[::-1], axis=0)[::-1].astype(bool)
    has = tail[-1] if n_rows else np.zeros(n_cols, dtype=bool)
    first_row = np.argmax(tail, axis=0)
    out[has] = epochs[first_row[has]]
    return out
