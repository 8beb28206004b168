"""Does a fitted training map show structure, or does it pretend? :func:`map_structure`.

An HMM always returns states, even when there are no phases to find. Three signs that its
states are not phases of training, each given as a reason in words:

* **No temporal structure beyond chance** — the shuffled-time test
  (:class:`~nn_tracing.analysis.hmm.TimeShuffleTest`) does not reject at ``alpha``.
* **The criterion wants more states than were tried** — BIC (or AIC) is lowest at the largest
  k fitted: the data keep paying for more states, as a smooth drift does when each state
  covers a slice of it, and the k in use says more about the search range than the run.
* **States slice a smooth drift into blocks** — the features move about as much from one
  epoch to the next inside a state as at a switch between states (the *switch contrast*, the
  median step at a switch over the median step within a state, is below ``min_contrast``):
  the boundaries are arbitrary cuts of a trend, not jumps between phases.

EM that did not converge is a fourth reason (its states may still move). The verdict,
:class:`MapStructure`, says "little structure" when any reason holds, and the page says so
before it draws the map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .nulls import TimeShuffleTest
from .states import choose_k

if TYPE_CHECKING:
    from .training_map import TrainingMap

__all__ = ["MIN_SWITCH_CONTRAST", "MapStructure", "map_structure", "switch_contrast"]

#: A switch between states must move the features this many times more than a typical step
#: within a state to count as a jump between phases.
MIN_SWITCH_CONTRAST = 3.0


@dataclass(frozen=True)
class MapStructure:
    """The verdict on a fitted map: ``little`` when any of ``reasons`` holds.

    ``contrast`` is :func:`switch_contrast` (NaN with one state or no switch); ``best_k`` the
    k the criterion prefers and ``largest_k`` the largest k fitted.
    """

    little: bool
    reasons: tuple[str, ...]
    contrast: float
    best_k: int
    largest_k: int

    def headline(self) -> str:
        """One sentence for the top of the page."""
        if not self.little:
            return (
                "The states look like phases: temporal structure beyond chance, the criterion "
                "settles inside the range of k tried, and switches are jumps "
                f"({self.contrast:.1f}× a typical step within a state)."
            )
        return "Little structure: read this map with care — " + "; ".join(self.reasons) + "."


def switch_contrast(z: np.ndarray, lengths: Sequence[int], states: np.ndarray) -> float:
    """The median step of the features at a switch of state over the median step within a
    state (Euclidean norm of consecutive differences, within each sequence).

    Parameters
    ----------
    z : array of shape (n_obs, n_features), the standardised features fitted
    lengths : the length of each sequence (their sum is ``n_obs``)
    states : array of shape (n_obs,), the Viterbi path

    Returns
    -------
    float; NaN when there is no switch or no step within a state.
    """
    z = np.asarray(z, dtype=np.float64)
    states = np.asarray(states)
    ends = np.cumsum(lengths)
    same_sequence = np.ones(max(len(z) - 1, 0), dtype=bool)
    same_sequence[(ends[:-1] - 1).astype(int)] = False
    steps = np.linalg.norm(np.diff(z, axis=0), axis=1)[same_sequence]
    switched = (states[1:] != states[:-1])[same_sequence]
    if not switched.any() or switched.all():
        return float("nan")
    within = float(np.median(steps[~switched]))
    at_switch = float(np.median(steps[switched]))
    return at_switch / within if within > 0 else float("inf")


def _k_reason(selection: pd.DataFrame, criterion: str) -> tuple[int, int, str | None]:
    fitted = selection[selection["restarts"] > 0]
    largest = int(fitted["k"].max())
    best = choose_k(selection, criterion)
    if best == largest and largest > 1:
        limit = (
            f"the largest k the run's length allows ({largest})"
            if int(selection["k"].max()) > largest
            else f"the largest k tried ({largest})"
        )
        return (
            best,
            largest,
            f"{criterion.upper()} is lowest at {limit}: the data ask for more states than "
            "could be fitted, as a smooth drift does",
        )
    return best, largest, None


def map_structure(
    fitted: TrainingMap,
    *,
    alpha: float = 0.05,
    min_contrast: float = MIN_SWITCH_CONTRAST,
    time_test: TimeShuffleTest | None = None,
) -> MapStructure:
    """The verdict on ``fitted`` (a fitted :class:`~nn_tracing.analysis.hmm.TrainingMap`).

    ``time_test`` defaults to the map's own (``fitted.time_test_``); without one, that reason
    is not judged.
    """
    test = time_test if time_test is not None else fitted.time_test_
    reasons: list[str] = []
    if test is not None and test.p_value > alpha:
        reasons.append(
            f"time-shuffled copies fit about as well (p = {test.p_value:.2g}), so the order "
            "of the states is not distinguishable from chance"
        )
    best, largest, k_reason = _k_reason(fitted.selection_, str(fitted.criterion))
    if k_reason:
        reasons.append(k_reason)
    states = fitted.path_["state"].to_numpy()
    contrast = switch_contrast(fitted.z_, fitted.lengths_, states)
    if np.isfinite(contrast) and contrast < min_contrast:
        word = fitted.time_column_
        reasons.append(
            f"the states slice a smooth drift into blocks: a switch moves the features only "
            f"{contrast:.1f}× as much as a typical step from {word} to {word} within a state"
        )
    elif not np.isfinite(contrast) and fitted.n_states_ == 1:
        reasons.append("one state: the run is never in a different regime")
    note = fitted.state_model_.convergence_note()
    if note:
        reasons.append(note.rstrip("."))
    return MapStructure(
        little=bool(reasons),
        reasons=tuple(reasons),
        contrast=contrast,
        best_k=best,
        largest_k=largest,
    )
