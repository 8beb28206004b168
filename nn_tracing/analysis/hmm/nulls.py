"""The shuffled-time null of the HMMs: is there temporal structure at all?

:func:`shuffled_time_test` refits a :class:`~nn_tracing.analysis.hmm.StateModel` on copies of
the sequences with time shuffled within each sequence and compares log-likelihoods
(:class:`TimeShuffleTest`, an exact permutation p-value). The test is sequential (Besag &
Clifford 1991, :mod:`nn_tracing.analysis.sequential`): it stops refitting once enough shuffled
copies fit as well as the real order that p cannot reach 0.05.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._renamed import renamed_keyword
from ...progress import Progress, reporter
from ..sequential import SequentialCount
from ._em import check_sequences
from .states import StateModel

__all__ = ["TimeShuffleTest", "shuffled_time_test"]


@dataclass(frozen=True)
class TimeShuffleTest:
    """Is there temporal structure at all? The fitted HMM's log-likelihood on the real
    sequences against the same sequences with time shuffled within each sequence.

    Each shuffled set is refitted with the same procedure as the real one (same k, same
    initialisation and restarts), so under "no temporal order" the real sequences are one more
    draw from the null and the p-value ``(1 + #{null ≥ real}) / (1 + n)`` is exact. Refitting
    stops early (Besag & Clifford) once ``h`` copies fit at least as well: ``null`` then holds
    the :attr:`n_drawn` refits made and the p-value is ``h / n_drawn``.
    """

    n_states: int
    n_permutations: int
    loglik: float
    null: np.ndarray = field(repr=False)
    p_value: float
    n_obs: int

    @property
    def n_drawn(self) -> int:
        """Shuffled copies refitted (fewer than ``n_permutations`` when the test stopped)."""
        return int(self.null.size)

    @property
    def n_shuffles(self) -> int:
        """The old name of :attr:`n_permutations` (deprecated)."""
        warnings.warn(
            "TimeShuffleTest.n_shuffles is deprecated: use n_permutations",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.n_permutations

    @property
    def gain_per_obs(self) -> float:
        """Real minus median null log-likelihood, per observation (nats)."""
        return float((self.loglik - np.median(self.null)) / max(self.n_obs, 1))

    @property
    def smallest_p(self) -> float:
        """The smallest p-value this many shuffles can give, ``1 / (n_permutations + 1)``."""
        return 1.0 / (self.n_permutations + 1)

    def describe(self) -> str:
        if self.p_value <= 0.05:
            verdict = "temporal structure beyond chance"
        elif self.p_value <= self.smallest_p + 1e-12:
            verdict = (
                f"the real order beats every shuffle, but {self.n_permutations} shuffles cannot "
                "give p ≤ 0.05: run more"
            )
        else:
            verdict = "no evidence of temporal structure: read no map into these states"
        floor = " (the smallest possible)" if self.p_value <= self.smallest_p + 1e-12 else ""
        copies = (
            f"{self.n_drawn} time-shuffled copies (of at most {self.n_permutations}: the test "
            "stopped once the verdict was decided)"
            if self.n_drawn < self.n_permutations
            else f"{self.n_permutations} time-shuffled copies"
        )
        return (
            f"{self.n_states}-state HMM: log-likelihood {self.loglik:.1f} on the real order vs "
            f"median {np.median(self.null):.1f} on {copies} "
            f"(gain {self.gain_per_obs:.3f} nats per observation); p = {self.p_value:.3g}"
            f"{floor} — {verdict}."
        )


def shuffled_time_test(
    X: np.ndarray,
    lengths: Sequence[int] | np.ndarray | None,
    n_states: int,
    *,
    n_permutations: int = 19,
    random_state: int | None = 0,
    progress: Progress | None = None,
    sequential: bool = True,
    **model_params: Any,
) -> TimeShuffleTest:
    """Permutation test of temporal structure (see :class:`TimeShuffleTest`).

    Parameters
    ----------
    X, lengths : the sequences, as for :meth:`StateModel.fit`
    n_states : k of the HMM (at least 2: a 1-state model does not see order)
    n_permutations : refits on shuffled copies; the smallest p is ``1 / (n_permutations + 1)``
        (``n_shuffles``, its old name, is still accepted)
    sequential : stop once the p-value cannot reach 0.05 (Besag & Clifford); ``False``: refit
        all ``n_permutations``
    model_params : further :class:`StateModel` parameters (``n_restarts``, ``engine``, …)
    """
    if "n_shuffles" in model_params:
        old = {"n_shuffles": model_params.pop("n_shuffles")}
        n_permutations = renamed_keyword(
            old, "n_shuffles", "n_permutations", n_permutations, "shuffled_time_test"
        )
    if n_states < 2:
        raise ValueError("the shuffled-time test needs at least 2 states")
    seqs = check_sequences(X, lengths)
    rng = np.random.default_rng(random_state)
    params = {k: v for k, v in model_params.items() if k not in ("n_states", "k_range")}
    params["random_state"] = random_state

    def fitted(values: np.ndarray) -> float:
        return (
            StateModel(n_states, **params)
            .fit(values, seqs.lengths)
            .selection_["log_likelihood"]
            .iloc[0]
        )

    report = reporter(progress, n_permutations + 1)
    report(0, "fitting the real sequences")
    real = fitted(seqs.X)
    count = SequentialCount(int(n_permutations), 0.05, sequential=sequential)
    null: list[float] = []
    while not count.stopped:
        i = count.drawn
        report(i + 1, f"time-shuffled copy {i + 1} of at most {n_permutations}")
        # one random key per observation, sorted within each sequence: every sequence shuffled
        keys = rng.random(seqs.n_obs) + seqs.seq_index
        null.append(fitted(seqs.X[np.argsort(keys, kind="stable")]))
        count.add(null[-1], real)
    report(n_permutations + 1, "done")
    return TimeShuffleTest(
        int(n_states), int(n_permutations), float(real), np.asarray(null), count.p_value, seqs.n_obs
    )
