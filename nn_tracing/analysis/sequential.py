"""Sequential Monte Carlo p-values (Besag & Clifford 1991): stop drawing null versions once
the verdict is decided.

A Monte Carlo test draws null statistics one at a time. Besag & Clifford's sequential test
stops as soon as ``h`` of them are at least as large as the observed one (the p-value is then
``h / l`` after ``l`` draws), or at the maximum ``n`` (then ``(g + 1) / (n + 1)`` with ``g < h``
exceedances, the ordinary permutation p-value). The p-value is valid: ``P(p ≤ a) ≤ a`` under
the null at every value it can take, as for the fixed-``n`` test.

Here ``h`` is chosen so that stopping cannot change the verdict at ``alpha``: the smallest
``h`` with ``h / n > alpha`` (then every stopped p-value is above ``alpha``, and so is the
fixed-``n`` test's, which would see at least ``h`` exceedances), and at least
:data:`MIN_EXCEEDANCES` so that the p-value of a stopped test still says something. A test
that beats chance draws all ``n`` versions (no valid test can stop earlier on that side); a
test that does not usually stops after a handful.

>>> from nn_tracing.analysis.sequential import SequentialCount
>>> count = SequentialCount(n_max=50, alpha=0.05)
>>> count.h
3
>>> for null in [0.9, 0.1, 0.8, 0.7]:
...     count.add(null, observed=0.5)
>>> count.stopped, count.drawn, count.p_value
(True, 4, 0.75)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["MIN_EXCEEDANCES", "SequentialCount", "besag_clifford_p", "stopping_count"]

#: The fewest exceedances a test stops at (the p-value of a stopped test is ``h / l``).
MIN_EXCEEDANCES = 3


def stopping_count(n_max: int, alpha: float, *, minimum: int = MIN_EXCEEDANCES) -> int:
    """``h``: the exceedances after which a test of at most ``n_max`` draws stops — the
    smallest count with ``h / n_max > alpha`` (stopping cannot change the verdict at
    ``alpha``), at least ``minimum``, at most ``n_max``."""
    if n_max < 1:
        raise ValueError(f"n_max={n_max}: draw at least one null version")
    return int(min(n_max, max(minimum, math.floor(alpha * n_max) + 1)))


def besag_clifford_p(at_least: int, drawn: int, n_max: int, h: int) -> float:
    """The sequential p-value: ``h / drawn`` when the test stopped at ``h`` exceedances,
    else ``(at_least + 1) / (n_max + 1)`` (all ``n_max`` drawn)."""
    if at_least >= h:
        return h / drawn
    return (at_least + 1) / (n_max + 1)


@dataclass
class SequentialCount:
    """Counts null statistics as they come and says when to stop.

    Parameters
    ----------
    n_max
        The most null versions to draw (``P``).
    alpha
        The significance level whose verdict stopping must not change.
    h
        Exceedances to stop at; ``None``: :func:`stopping_count`. ``sequential=False`` draws
        all ``n_max`` (``h`` is then larger than ``n_max``).
    """

    n_max: int
    alpha: float = 0.05
    h: int | None = None
    sequential: bool = True
    drawn: int = field(default=0, init=False)
    at_least: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.h is None:
            self.h = stopping_count(self.n_max, self.alpha)
        if self.h < 1:
            raise ValueError(f"h={self.h}: stop at one exceedance or more")
        if not self.sequential:
            self.h = self.n_max + 1

    def add(self, null: float, observed: float) -> None:
        """Count one null statistic (NaN counts as below: a null version without clusters is
        less separated)."""
        self.drawn += 1
        if math.isfinite(null) and null >= observed - 1e-12:
            self.at_least += 1

    @property
    def stopped(self) -> bool:
        """Whether to stop: ``h`` exceedances seen (or every version drawn)."""
        assert self.h is not None
        return self.at_least >= self.h or self.drawn >= self.n_max

    @property
    def stopped_early(self) -> bool:
        """Whether the test stopped before drawing ``n_max`` versions."""
        return self.drawn < self.n_max

    @property
    def p_value(self) -> float:
        """Besag & Clifford's p-value of what was drawn (see :func:`besag_clifford_p`)."""
        assert self.h is not None
        if self.drawn == 0:
            return float("nan")
        if self.at_least < self.h and self.drawn < self.n_max:
            return (self.at_least + 1) / (self.drawn + 1)  # not finished: the running value
        return besag_clifford_p(self.at_least, self.drawn, self.n_max, self.h)
