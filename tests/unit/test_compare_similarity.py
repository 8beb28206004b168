"""Linear CKA, SVCCA and PWCCA against brute-force references and their known invariances."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import sqrtm
from scipy.stats import ortho_group

from nn_tracing.analysis.compare import (
    canonical_correlations,
    cka_matrix,
    linear_cka,
    permutation_null,
    pwcca,
    svcca,
)


def brute_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA from its definition: HSIC of the Gram matrices with an explicit centring matrix."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h))

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def brute_cca(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical correlations and x's canonical weights from the covariance matrices:
    the singular values of Sxx^-1/2 Sxy Syy^-1/2."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = xc.T @ xc, yc.T @ yc, xc.T @ yc
    wx = np.real(np.linalg.inv(sqrtm(sxx)))
    wy = np.real(np.linalg.inv(sqrtm(syy)))
    u, s, _ = np.linalg.svd(wx @ sxy @ wy)
    return s, wx @ u


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_cka_equals_the_hsic_definition(rng):
    x = rng.standard_normal((40, 6))
    y = x @ rng.standard_normal((6, 3)) + rng.standard_normal((40, 3))
    assert linear_cka(x, y) == pytest.approx(brute_cka(x, y), rel=1e-10)


def test_cka_of_a_representation_with_itself_is_one(rng):
    x = rng.standard_normal((30, 5))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling(rng):
    x = rng.standard_normal((50, 8))
    y = np.tanh(x @ rng.standard_normal((8, 8)))
    q = ortho_group.rvs(8, random_state=1)
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x, 7.5 * y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(3 * x @ q + 2.0, y) == pytest.approx(base, abs=1e-10)  # offsets centre out
    # but not to a general invertible map: the check above can fail
    stretch = np.diag(np.linspace(0.1, 10, 8))
    assert abs(linear_cka(x @ stretch, y) - base) > 1e-3


def test_cka_matrix_equals_pairwise_cka_and_its_permutations(rng):
    left = [rng.standard_normal((64, w)) for w in (3, 5, 2)]
    right = [left[0] @ rng.standard_normal((3, 4)), rng.standard_normal((64, 6))]
    matrix = cka_matrix(left, right)
    expected = np.array([[linear_cka(a, b) for b in right] for a in left])
    np.testing.assert_allclose(matrix, expected, atol=1e-5)
    order = rng.permutation(64)
    shuffled = cka_matrix(left, right, order)
    expected = np.array([[linear_cka(a, b[order]) for b in right] for a in left])
    np.testing.assert_allclose(shuffled, expected, atol=1e-5)


def test_cka_of_a_constant_side_is_nan(rng):
    assert np.isnan(linear_cka(rng.standard_normal((10, 2)), np.ones((10, 3))))


def test_canonical_correlations_equal_the_covariance_formula(rng):
    x = rng.standard_normal((200, 4))
    y = x[:, :2] @ rng.standard_normal((2, 3)) + 0.5 * rng.standard_normal((200, 3))
    expected, _ = brute_cca(x, y)
    np.testing.assert_allclose(canonical_correlations(x, y), expected[:3], atol=1e-10)


def test_svcca_of_a_layer_with_an_invertible_linear_transform_of_itself_is_one(rng):
    x = rng.standard_normal((300, 10))
    a = rng.standard_normal((10, 10)) + 3 * np.eye(10)  # invertible
    assert svcca(x, x @ a, keep=1.0) == pytest.approx(1.0, abs=1e-8)
    # a layer of low effective rank: the 99 % subspace is the same on both sides
    low = rng.standard_normal((300, 4)) @ rng.standard_normal((4, 20))
    low += 1e-4 * rng.standard_normal(low.shape)
    b = rng.standard_normal((20, 20)) + 4 * np.eye(20)
    assert svcca(low, low @ b) == pytest.approx(1.0, abs=1e-3)
    # CKA is not invariant to that map: the two measures differ where they should
    assert linear_cka(x, x @ np.diag(np.linspace(0.1, 10, 10))) < 0.99


def test_svcca_and_pwcca_are_low_for_independent_activations(rng):
    x, y = rng.standard_normal((2000, 5)), rng.standard_normal((2000, 5))
    assert svcca(x, y) < 0.1
    assert pwcca(x, y) < 0.1


def test_pwcca_equals_its_definition_on_a_tiny_case(rng):
    x = rng.standard_normal((100, 3))
    y = np.column_stack([x[:, 0] + 0.1 * rng.standard_normal(100), rng.standard_normal((100, 2))])
    rho, weights = brute_cca(x, y)
    xc = x - x.mean(0)
    h = xc @ weights
    h /= np.linalg.norm(h, axis=0)
    alpha = np.abs(h.T @ xc).sum(axis=1)
    expected = float((alpha / alpha.sum()) @ rho)
    assert pwcca(x, y) == pytest.approx(expected, rel=1e-8)
    assert pwcca(x, x) == pytest.approx(1.0, abs=1e-10)


def test_the_permutation_null_sits_below_a_real_similarity(rng):
    x = rng.standard_normal((256, 6))
    y = np.maximum(x @ rng.standard_normal((6, 8)), 0)
    null = permutation_null(x, y, "cka", n_permutations=20, random_state=0)
    assert null.shape == (20,)
    assert linear_cka(x, y) > 0.5 > np.quantile(null, 0.95)


def test_a_similarity_refuses_different_samples(rng):
    with pytest.raises(ValueError, match="same probe samples"):
        linear_cka(rng.standard_normal((10, 2)), rng.standard_normal((11, 2)))


def test_wide_layers_take_the_gram_path_and_agree_with_the_definition(rng):
    from nn_tracing.analysis.compare.similarity import _gram_cheaper

    x = rng.standard_normal((20, 50))
    y = np.maximum(x @ rng.standard_normal((50, 40)), 0)
    assert _gram_cheaper(20, 50, 40) and not _gram_cheaper(200, 5, 4)
    assert linear_cka(x, y) == pytest.approx(brute_cka(x, y), rel=1e-10)
    null = permutation_null(x, y, "cka", n_permutations=4, random_state=3)
    orders = np.random.default_rng(3)
    expected = [linear_cka(x, y[orders.permutation(20)]) for _ in range(4)]
    np.testing.assert_allclose(null, expected, rtol=1e-10)
