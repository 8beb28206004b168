"""Decision entropy (nn_tracing.analysis.entropy): entropies and mutual information against hand
computations and brute force, the permutation null, Benjamini–Hochberg, entropy rates."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from nn_tracing import LayerInfo, NetworkTrace, load_trace
from nn_tracing.analysis.entropy import (
    DecisionEntropy,
    benjamini_hochberg,
    discretize,
    entropy_bits,
    entropy_rate,
    information_terms,
    permutation_mi,
    quantile_edges,
    stationary_distribution,
)
from nn_tracing.trace import METRICS


def brute_mi(a: np.ndarray, y: np.ndarray) -> float:
    """I(A; Y) in bits from the definition, one pair at a time."""
    n = len(a)
    joint, pa, py = Counter(zip(a.tolist(), y.tolist())), Counter(a.tolist()), Counter(y.tolist())
    return sum(
        c / n * np.log2((c / n) / ((pa[x] / n) * (py[z] / n))) for (x, z), c in joint.items()
    )


def test_entropy_and_information_match_a_hand_computation() -> None:
    # (A, Y): (0, 0) twice, (0, 1) once, (1, 1) once
    codes = np.array([[0], [0], [0], [1]])
    labels = np.array([0, 0, 1, 1])
    terms = information_terms(codes, labels, n_bins=2, n_classes=2)
    h = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))  # 0.8113 bits
    # H(A | Y) = ½ · H(A | Y=0) + ½ · H(A | Y=1) = ½ · 0 + ½ · 1
    assert terms["entropy"][0] == pytest.approx(h)
    assert terms["conditional"][0] == pytest.approx(0.5)
    assert terms["mi"][0] == pytest.approx(h - 0.5)
    assert float(entropy_bits(np.array([0.5, 0.25, 0.25]))) == pytest.approx(1.5)
    assert float(entropy_bits(np.array([1.0, 0.0]))) == 0.0


def test_information_agrees_with_brute_force_for_many_bins_and_classes() -> None:
    rng = np.random.default_rng(0)
    for n_classes in (1, 2, 3, 7):
        for n_bins in (2, 5):
            acts = rng.normal(size=(150, 6))
            labels = rng.integers(0, n_classes, 150)
            acts[:, 0] += labels  # one informative neuron
            codes = discretize(acts, quantile_edges(acts, n_bins))
            terms = information_terms(codes, labels, n_bins, n_classes)
            expected = [brute_mi(codes[:, j], labels) for j in range(6)]
            assert np.allclose(terms["mi"], expected, atol=1e-12)
            h = [float(entropy_bits(np.bincount(codes[:, j]) / 150)) for j in range(6)]
            assert np.allclose(terms["entropy"], h)


def test_the_permutation_null_is_the_mi_of_the_permuted_labels() -> None:
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(80, 5))
    labels = rng.integers(0, 3, 80)
    codes = discretize(acts, quantile_edges(acts, 4))
    perms = np.argsort(rng.random((6, 80)), axis=1)
    observed, null = permutation_mi(codes, labels, 4, 3, perms)
    assert null.shape == (5, 6)
    for j in range(5):
        assert observed[j] == pytest.approx(brute_mi(codes[:, j], labels))
        assert np.allclose(null[j], [brute_mi(codes[:, j], labels[p]) for p in perms])


def test_bins_are_chosen_on_the_first_activations_and_kept() -> None:
    first = np.array([[0.0], [1.0], [2.0], [3.0]])
    edges = quantile_edges(first, 2)
    assert edges.tolist() == [[1.5]]
    later = np.array([[-5.0], [1.4], [1.6], [99.0]])
    assert discretize(later, edges)[:, 0].tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="at least 2 bins"):
        quantile_edges(first, 1)


def test_benjamini_hochberg_matches_a_hand_example_and_scipy() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5])
    reject, q = benjamini_hochberg(p, 0.05)
    # thresholds i·α/m: 0.0125, 0.025, 0.0375, 0.05 — only the smallest p is below its own
    assert reject.tolist() == [True, False, False, False]
    assert q == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    rng = np.random.default_rng(2)
    many = rng.random((7, 9)) ** 3
    _, q = benjamini_hochberg(many)
    assert np.allclose(q.reshape(-1), stats.false_discovery_control(many.reshape(-1)))
    with_nan = np.array([0.001, np.nan, 0.2])
    reject, q = benjamini_hochberg(with_nan)
    assert reject.tolist() == [True, False, False] and np.isnan(q[1])
    assert q[0] == pytest.approx(0.002)  # two tests, not three


def test_entropy_rate_of_known_chains() -> None:
    transmat = np.array([[0.9, 0.1], [0.5, 0.5]])
    pi = stationary_distribution(transmat)
    assert pi == pytest.approx([5 / 6, 1 / 6])
    h_row = -(0.9 * np.log2(0.9) + 0.1 * np.log2(0.1))
    assert entropy_rate(transmat) == pytest.approx(5 / 6 * h_row + 1 / 6 * 1.0)
    assert entropy_rate(np.full((4, 4), 0.25)) == pytest.approx(2.0)
    assert entropy_rate(np.eye(3), np.full(3, 1 / 3)) == 0.0


def _synthetic_trace(n_samples: int = 300, n_classes: int = 3, seed: int = 0) -> NetworkTrace:
    """A trace built by hand: neuron 2 copies the label at every epoch, neuron 3 is noise,
    neuron 4 copies the label from epoch 2 on; the network predicts the true label."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_samples // n_classes)
    layers = [
        LayerInfo("input", "input", 2, 0),
        LayerInfo("hidden_1", "linear", 3, 2, activation="ReLU", weight_key="h.weight"),
    ]
    tensors = {}
    for epoch in range(4):
        acts = rng.normal(size=(labels.size, 5))
        acts[:, 2] = labels + 0.01 * rng.normal(size=labels.size)
        if epoch >= 2:
            acts[:, 4] = labels + 0.01 * rng.normal(size=labels.size)
        tensors[epoch] = {"activations": acts.astype(np.float32), "predictions": labels}
    metrics = {e: np.zeros((5, len(METRICS)), dtype=np.float32) for e in range(4)}
    return NetworkTrace(
        layers,
        metrics,
        {"status": "complete"},
        probe=(np.zeros((labels.size, 2), dtype=np.float32), labels),
        epoch_tensors=tensors,
    )


def test_a_label_copying_neuron_carries_the_class_entropy_and_noise_is_not_significant() -> None:
    trace = _synthetic_trace()
    seen: list[float] = []
    result = DecisionEntropy(n_bins=3, n_permutations=99, random_state=0).fit(
        trace, progress=lambda fraction, _: seen.append(fraction)
    )
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0]  # before each of the 4 epochs, then done
    assert result.neuron_ids_.tolist() == [2, 3, 4]
    copier, noise, late = 0, 1, 2
    assert result.mi_predicted_[:, copier] == pytest.approx(np.log2(3))  # = H(class)
    assert result.mi_true_[:, copier] == pytest.approx(np.log2(3))
    assert result.conditional_predicted_[:, copier] == pytest.approx(0.0, abs=1e-12)
    assert result.significant_[:, copier].all()
    assert not result.significant_[:, noise].any()  # independent: not significant after FDR
    assert result.significant_[:, late].tolist() == [False, False, True, True]
    assert result.significant_since_.tolist() == [0, -1, 2]
    assert result.pvalues_[:, copier] == pytest.approx(1 / 100)
    # the noise neuron's MI is the plug-in bias, which the null reproduces
    assert np.abs(result.mi_predicted_[:, noise] - result.null_mean_[:, noise]).max() < 0.02
    table = result.ranking(3)
    assert table["neuron"].tolist()[:2] == [2, 4] and table["significant"].tolist()[:2] == [
        True,
        True,
    ]
    summary = result.layer_summary()
    assert summary["n_significant"].tolist() == [1, 1, 2, 2]


def test_decision_entropy_on_a_real_trace(tiny_trace_file: Path) -> None:
    trace = load_trace(tiny_trace_file)
    result = DecisionEntropy(n_bins=4, n_permutations=20, binning="epoch").fit(trace)
    n = sum(i.n_neurons for i in trace.layers if i.kind != "input")
    assert result.entropy_.shape == (len(trace.epochs), n)
    last = trace.epochs[-1]
    acts = trace.probe_activations(last)[:, result.neuron_ids_]
    codes = discretize(acts, quantile_edges(acts, 4))
    predicted = trace.predictions(last)
    assert np.allclose(
        result.mi_predicted_[-1], [brute_mi(codes[:, j], predicted) for j in range(n)]
    )
    assert np.all(result.mi_true_ <= result.entropy_ + 1e-12)
    assert "20 label permutations" in result.describe()


def test_a_trace_without_a_probe_is_refused_with_a_reason() -> None:
    trace = _synthetic_trace()
    trace.probe = None
    with pytest.raises(ValueError, match="without one"):
        DecisionEntropy().fit(trace)
    with pytest.raises(ValueError, match="label="):
        DecisionEntropy(label="guessed").fit(_synthetic_trace())
