"""When things happened (nn_tracing.analysis.milestones) against brute-force references on
planted curves and flags."""

from __future__ import annotations

import numpy as np
import pytest

from nn_tracing.analysis.milestones import RISE_SHARE, flagged_since, plateau_index


def brute_plateau(values: np.ndarray, tolerance: float) -> int | None:
    """The first index from which every later finite value is within ``tolerance`` of the
    best, by trying every index in turn; ``None`` when only the last point qualifies."""
    finite = [i for i, v in enumerate(values) if np.isfinite(v)]
    if len(finite) < 2:
        return None
    best = max(values[i] for i in finite)
    for i in finite:
        if all(values[j] >= best - tolerance for j in finite if j >= i):
            return None if i == finite[-1] else i
    return None


def planted_curve(n: int, start: int, rng: np.random.Generator) -> np.ndarray:
    """An accuracy rising from 0.5 to 0.95 by index ``start``, then flat with noise below
    half the tolerance."""
    rise = np.linspace(0.5, 0.95, start + 1)
    flat = 0.95 + rng.uniform(-0.005, 0.005, size=n - start - 1)
    return np.concatenate([rise, flat])


@pytest.mark.parametrize("start", [1, 4, 9, 17])
def test_a_planted_plateau_is_found_where_it_starts(start: int) -> None:
    rng = np.random.default_rng(start)
    values = planted_curve(25, start, rng)
    tolerance = RISE_SHARE * (values.max() - values.min())
    # the rise's step is 0.45 / start: larger than the tolerance, so the plateau starts at
    # ``start`` or one step before it when that step lands within the band
    expected = brute_plateau(values, tolerance)
    assert plateau_index(values) == expected
    assert expected in (start, start - 1)


def test_plateau_index_equals_brute_force_on_random_curves() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 30))
        values = np.cumsum(rng.normal(0.02, 0.05, size=n))
        values[rng.random(n) < 0.1] = np.nan
        tolerance = float(rng.choice([0.0, 0.01, 0.05, 0.2]))
        assert plateau_index(values, tolerance=tolerance) == brute_plateau(values, tolerance)


def test_a_curve_still_rising_at_its_end_has_no_plateau() -> None:
    assert plateau_index(np.linspace(0.1, 0.9, 20)) is None
    assert plateau_index(np.array([0.5])) is None
    assert plateau_index(np.array([0.5, 0.5, 0.5])) == 0


def brute_since(flags: np.ndarray) -> list[int]:
    out = []
    for column in flags.T:
        if not column[-1]:
            out.append(-1)
            continue
        i = len(column) - 1
        while i > 0 and column[i - 1]:
            i -= 1
        out.append(i)
    return out


def test_flagged_since_equals_brute_force() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        flags = rng.random((int(rng.integers(1, 12)), int(rng.integers(1, 9)))) < 0.6
        assert flagged_since(flags).tolist() == brute_since(flags)


def test_flagged_since_a_planted_death() -> None:
    flags = np.zeros((10, 4), dtype=bool)
    flags[6:, 0] = True  # dead from epoch index 6 on
    flags[2:4, 1] = True  # dead for a while, then revived
    flags[2:4, 2] = flags[7:, 2] = True  # revived, then dead again from 7
    flags[:, 3] = True  # dead from the start
    assert flagged_since(flags).tolist() == [6, -1, 7, 0]
    with pytest.raises(ValueError, match="2-D"):
        flagged_since(np.zeros(3, dtype=bool))
