"""Neurons matched across runs: correlations, the Hungarian matching against brute force,
a planted permutation recovered, independent activations left unmatched, partner stability."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nn_tracing.analysis.compare import (
    NeuronMatching,
    correlation_matrix,
    match_neurons,
    partner_stability,
    stable_from,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(3)


def test_the_correlation_matrix_equals_numpy_corrcoef(rng):
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 3))
    y[:, 1] = x[:, 2] * 2 + 0.1 * y[:, 1]
    expected = np.corrcoef(x.T, y.T)[:4, 4:]
    np.testing.assert_allclose(correlation_matrix(x, y), expected, atol=1e-5)


def test_a_constant_neuron_correlates_zero(rng):
    x = np.column_stack([rng.standard_normal(20), np.full(20, 3.0)])
    corr = correlation_matrix(x, x)
    assert corr[1].tolist() == [0.0, 0.0] and corr[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_the_matching_maximises_the_total_correlation_as_brute_force_does(rng):
    x = rng.standard_normal((25, 5))
    y = x @ rng.standard_normal((5, 5)) + rng.standard_normal((25, 5))
    corr = correlation_matrix(x, y).astype(np.float64)
    best = max(itertools.permutations(range(5)), key=lambda p: corr[range(5), p].sum())
    partner, matched = match_neurons(corr)
    assert partner.tolist() == list(best)
    np.testing.assert_allclose(matched, corr[range(5), best])


def test_a_wider_other_run_leaves_some_of_its_neurons_unmatched_and_rows_always_matched(rng):
    corr = correlation_matrix(rng.standard_normal((40, 3)), rng.standard_normal((40, 6)))
    partner, matched = match_neurons(corr)
    assert len(set(partner.tolist())) == 3 and np.isfinite(matched).all()
    partner, matched = match_neurons(corr.T)
    assert (partner == -1).sum() == 3 and np.isnan(matched).sum() == 3


def test_a_planted_permutation_of_noisy_neurons_is_recovered_and_universal(rng):
    n, p = 512, 64
    x = np.maximum(rng.standard_normal((n, p)) @ rng.standard_normal((p, p)), 0)
    perm = rng.permutation(p)
    y = x[:, perm] + 0.3 * x.std() * rng.standard_normal((n, p))  # B's neuron j is A's perm[j]
    fit = NeuronMatching(n_permutations=3, random_state=0).fit(x, y)
    assert fit.partner_.tolist() == np.argsort(perm).tolist()
    assert fit.universal_share_ > 0.95
    assert fit.threshold_ < np.nanmin(fit.matched_)
    assert " of 64 matched neurons" in fit.describe()


def test_independent_random_activations_have_almost_no_universal_neuron(rng):
    x, y = rng.standard_normal((512, 64)), rng.standard_normal((512, 64))
    fit = NeuronMatching(n_permutations=5, random_state=1).fit(x, y)
    assert fit.universal_share_ <= 0.05
    assert fit.null_.shape == (5 * 64,)


def test_a_given_null_replaces_the_permutations(rng):
    x = rng.standard_normal((200, 8))
    y = x + 0.1 * rng.standard_normal((200, 8))
    untrained = rng.standard_normal((200, 8))
    fit = NeuronMatching().fit(x, y, null=untrained)
    expected = match_neurons(correlation_matrix(x, untrained))[1]
    np.testing.assert_allclose(fit.null_, expected)
    assert fit.threshold_ == pytest.approx(np.quantile(expected, 0.99))
    assert fit.universal_share_ == 1.0


def test_partners_become_stable_where_the_planted_permutation_stops_changing(rng):
    n, p = 256, 6
    base = rng.standard_normal((n, p))
    final = np.array([2, 0, 1, 5, 3, 4])
    early = np.array([0, 1, 2, 3, 4, 5])
    left, right = [], []
    for order in (early, early, final, final):
        left.append(base)
        y = np.empty_like(base)
        y[:, order] = base  # A's neuron i is B's order[i]
        right.append(y + 0.05 * rng.standard_normal((n, p)))
    partners, matched = partner_stability(left, right)
    assert partners.shape == (4, p) and (matched > 0.9).all()
    assert partners[-1].tolist() == final.tolist()
    since = stable_from(partners, [0, 2, 4, 6])
    changed = early != final
    assert since[changed].tolist() == [4] * int(changed.sum())
    assert since[~changed].tolist() == [0] * int((~changed).sum())


def test_dead_neurons_are_matched_but_left_out_of_the_share(rng):
    x = rng.standard_normal((300, 6))
    x[:, [1, 4]] = 0.0  # dead in A
    y = x + 0.05 * rng.standard_normal(x.shape)
    y[:, 4] = 0.0
    y[:, 2] = 0.0  # dead in B: A's neuron 2 loses its partner's correlation
    fit = NeuronMatching(n_permutations=3).fit(x, y)
    assert sorted(np.flatnonzero(fit.constant_).tolist()) == sorted(
        {1, 4} | {int(i) for i in np.flatnonzero(np.isin(fit.partner_, [2, 4]))}
    )
    assert np.isnan(fit.matched_[fit.constant_]).all()
    assert np.isfinite(fit.matched_[~fit.constant_]).all()
    assert fit.universal_share_ == 1.0 and not fit.universal_[fit.constant_].any()
    assert "constant on the probe" in fit.describe()
