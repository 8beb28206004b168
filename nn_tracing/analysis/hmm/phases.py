"""The training map's states read as phases of training, from the recorded curves.

A training map (:class:`~nn_tracing.analysis.hmm.TrainingMap`) cuts training into states; on a
grokking run (Power et al. 2022; Nanda et al. 2023; Hu et al. 2023) a reader expects four
phases: **memorisation** (training accuracy rises, validation accuracy stays at chance), the
**plateau** (training accuracy ≈ 1, validation flat), the **transition** (validation accuracy
rises) and **clean-up** (the network already generalises; in a transformer the weight norm
falls). :func:`read_phases` names each *span* of the Viterbi path (consecutive recorded points
in one state) by what the accuracies do inside it, with these rules, in order:

========================  =========================================================================
phase                     rule (``train``, ``val``: the accuracies over the span's points)
========================  =========================================================================
memorisation              mean ``train`` < :data:`HIGH`, ``train`` gains ≥ :data:`RISE` (last point
                          minus first), every ``val`` ≤ chance + :data:`NEAR_CHANCE`
plateau                   mean ``train`` ≥ :data:`HIGH`, ``val`` gains < :data:`RISE`, last ``val``
                          < :data:`GENERALISED`
transition                mean ``train`` ≥ :data:`HIGH`, ``val`` gains ≥ :data:`RISE`, first ``val``
                          < :data:`GENERALISED`
clean-up                  mean ``train`` ≥ :data:`HIGH`, first ``val`` ≥ :data:`GENERALISED`
other                     anything else (e.g. both accuracies rising together: no grokking)
========================  =========================================================================

Consecutive spans of the same phase are one phase (the map may cut a smooth transition into
several states; the reading groups them). Each state boundary is set beside the *jump* near it:
over the two spans on either side of the boundary, the recorded interval in which training or
validation accuracy changes most (its later point is the jump's time), and how many epochs lie
between the two. Each accuracy's largest jump over the whole run is reported too. The weight
norm's start and end are reported, never used by a rule (this MLP's weight decay holds it flat
where a transformer's falls).

Descriptive: the thresholds are stated, not fitted, and nothing here is tested against chance.

>>> import pandas as pd
>>> path = pd.DataFrame({"epoch": [0, 1, 2, 3, 4, 5], "state": [0, 0, 1, 1, 2, 2],
...                      "weight_norm": [1.0, 2, 3, 3, 3, 3]})
>>> curves = pd.DataFrame({"epoch": [0, 1, 2, 3, 4, 5],
...                        "train_acc": [0.1, 0.6, 1, 1, 1, 1],
...                        "val_acc": [0.1, 0.1, 0.1, 0.1, 0.5, 0.9]})
>>> reading = read_phases(path, curves, chance=0.1)
>>> reading.phases["phase"].tolist(), reading.phases["first"].tolist()
(['memorisation', 'plateau', 'transition'], [0, 2, 4])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...timeaxis import time_key
from .describe import state_label

__all__ = [
    "GENERALISED",
    "HIGH",
    "NEAR_CHANCE",
    "PHASES",
    "PHASE_RULES",
    "RISE",
    "PhaseReading",
    "read_phases",
]

#: The phases a span can be read as, in the order grokking goes through them.
PHASES: tuple[str, ...] = ("memorisation", "plateau", "transition", "clean-up", "other")
#: Mean training accuracy of a span at which it counts as "at ≈ 1".
HIGH = 0.95
#: The least gain (last point minus first) of an accuracy over a span that counts as rising.
RISE = 0.05
#: How far above chance validation accuracy may go and still count as "at chance".
NEAR_CHANCE = 0.05
#: Validation accuracy from which the network counts as generalising (clean-up).
GENERALISED = 0.9
#: The rules of :func:`read_phases` in words, one per phase (for the page and the docs).
PHASE_RULES: dict[str, str] = {
    "memorisation": f"training accuracy rises (by ≥ {RISE:g}) while validation accuracy stays "
    f"within {NEAR_CHANCE:g} of chance",
    "plateau": f"training accuracy ≈ 1 (mean ≥ {HIGH:g}), validation accuracy flat "
    f"(gains < {RISE:g}) below {GENERALISED:g}",
    "transition": f"training accuracy ≈ 1, validation accuracy rises (by ≥ {RISE:g}) from "
    f"below {GENERALISED:g}",
    "clean-up": f"training accuracy ≈ 1, validation accuracy already ≥ {GENERALISED:g}",
    "other": "none of the above (e.g. both accuracies rising together)",
}
_CURVES = ("train_acc", "val_acc")


@dataclass(frozen=True)
class PhaseReading:
    """The phases of one run's training map (see :func:`read_phases`).

    Attributes
    ----------
    spans : DataFrame, one row per span of the Viterbi path: ``state``, ``label``, ``first``,
        ``last`` (times), ``train_acc_first`` / ``_last`` / ``_mean``, ``val_acc_first`` /
        ``_last`` / ``_max``, ``weight_norm_first`` / ``_last``, ``phase``
    phases : DataFrame, one row per phase (consecutive spans of one phase grouped): ``phase``,
        ``first``, ``last``, ``states`` (labels, comma-separated), the same curve columns,
        ``description`` (in words)
    boundaries : DataFrame, one row per state boundary: ``time`` (the new state's first
        point), ``before`` (the last point of the old), ``phase_change`` (bool), and the jump
        near it (the largest one-interval change of either accuracy over the spans on either
        side): ``jump_curve``, ``jump_time``, ``jump_change``, ``distance``
        (``|time - jump_time|``)
    jumps : DataFrame, one row per accuracy: ``curve``, ``time``, ``change`` (its largest
        change over one recorded interval, signed)
    chance : float — the accuracy of guessing (1 / number of classes)
    time_column : str — ``epoch`` (or ``step``)
    """

    spans: pd.DataFrame
    phases: pd.DataFrame
    boundaries: pd.DataFrame
    jumps: pd.DataFrame
    chance: float
    time_column: str = "epoch"

    @property
    def grokking_like(self) -> bool:
        """Memorisation, then later a plateau or a transition: the order grokking goes in."""
        order = self.phases["phase"].tolist()
        if "memorisation" not in order:
            return False
        after = order[order.index("memorisation") + 1 :]
        return "plateau" in after or "transition" in after

    def headline(self) -> str:
        """The phases in one sentence: each with the time it starts."""
        starts = ", ".join(
            f"{row.phase} from {time_key(int(row.first))}"
            for row in self.phases.itertuples(index=False)
        )
        if self.grokking_like:
            return f"Grokking's phases in the training map: {starts}."
        return (
            "The curves do not go through grokking's phases (memorisation, then a plateau or a "
            f"transition); read from the states: {starts}."
        )


def _span_phase(train: np.ndarray, val: np.ndarray, chance: float) -> str:
    """The phase of one span from its accuracies (the rules of the module docstring)."""
    train_high = float(np.mean(train)) >= HIGH
    train_gain = float(train[-1] - train[0])
    val_gain = float(val[-1] - val[0])
    if not train_high:
        at_chance = float(np.max(val)) <= chance + NEAR_CHANCE
        return "memorisation" if train_gain >= RISE and at_chance else "other"
    if val[0] >= GENERALISED:
        return "clean-up"
    if val_gain >= RISE:
        return "transition"
    return "plateau" if val[-1] < GENERALISED else "other"


def _spans(table: pd.DataFrame, time_column: str, chance: float) -> pd.DataFrame:
    """One row per run of one state along ``table`` (time order), with its phase."""
    states = table["state"].to_numpy()
    starts = np.flatnonzero(np.r_[True, states[1:] != states[:-1]])
    ends = np.r_[starts[1:], len(states)]
    rows = []
    for start, end in zip(starts, ends, strict=True):
        part = table.iloc[start:end]
        train = part["train_acc"].to_numpy(dtype=np.float64)
        val = part["val_acc"].to_numpy(dtype=np.float64)
        norm = part["weight_norm"].to_numpy(dtype=np.float64)
        rows.append(
            {
                "state": int(states[start]),
                "label": state_label(int(states[start])),
                "first": int(part[time_column].iloc[0]),
                "last": int(part[time_column].iloc[-1]),
                "train_acc_first": train[0],
                "train_acc_last": train[-1],
                "train_acc_mean": float(np.mean(train)),
                "val_acc_first": val[0],
                "val_acc_last": val[-1],
                "val_acc_max": float(np.max(val)),
                "weight_norm_first": norm[0],
                "weight_norm_last": norm[-1],
                "phase": _span_phase(train, val, chance),
            }
        )
    return pd.DataFrame(rows)


def _describe(row: pd.Series, chance: float) -> str:
    return (
        f"training accuracy {row.train_acc_first:.2f} → {row.train_acc_last:.2f}, validation "
        f"{row.val_acc_first:.2f} → {row.val_acc_last:.2f} (chance {chance:.2g}), weight norm "
        f"{row.weight_norm_first:.3g} → {row.weight_norm_last:.3g}"
    )


def _grouped(spans: pd.DataFrame, chance: float) -> pd.DataFrame:
    """Consecutive spans of one phase as one row."""
    group = (spans["phase"] != spans["phase"].shift()).cumsum()
    rows = []
    for _, part in spans.groupby(group, sort=True):
        first, last = part.iloc[0], part.iloc[-1]
        labels = list(dict.fromkeys(part["label"]))
        row = pd.Series(
            {
                "phase": first.phase,
                "first": int(first["first"]),
                "last": int(last["last"]),
                "states": ", ".join(labels),
                "train_acc_first": first.train_acc_first,
                "train_acc_last": last.train_acc_last,
                "val_acc_first": first.val_acc_first,
                "val_acc_last": last.val_acc_last,
                "weight_norm_first": first.weight_norm_first,
                "weight_norm_last": last.weight_norm_last,
            }
        )
        row["description"] = _describe(row, chance)
        rows.append(row)
    return pd.DataFrame(rows).reset_index(drop=True)


def _largest_change(table: pd.DataFrame, time_column: str, lo: int, hi: int) -> dict:
    """The largest change of either accuracy over one recorded interval between rows ``lo``
    and ``hi`` (inclusive): ``curve``, ``time`` (the interval's later point), ``change``."""
    times = table[time_column].to_numpy()
    best: dict = {"curve": None, "time": np.nan, "change": np.nan}
    for curve in _CURVES:
        change = np.diff(table[curve].to_numpy(dtype=np.float64)[lo : hi + 1])
        if change.size == 0:
            continue
        at = int(np.argmax(np.abs(change)))
        if best["curve"] is None or abs(change[at]) > abs(best["change"]):
            best = {"curve": curve, "time": int(times[lo + at + 1]), "change": float(change[at])}
    return best


def _jumps(table: pd.DataFrame, time_column: str) -> pd.DataFrame:
    """Each accuracy's largest change over one recorded interval, at the interval's end."""
    rows = []
    for curve in _CURVES:
        single = table[[time_column, curve]].rename(columns={curve: "value"})
        single = single.assign(train_acc=single["value"], val_acc=0.0)  # one curve alone
        best = _largest_change(single, time_column, 0, len(single) - 1)
        if best["curve"] is not None:
            rows.append({**best, "curve": curve})
    return pd.DataFrame(rows, columns=["curve", "time", "change"])


def _boundaries(spans: pd.DataFrame, table: pd.DataFrame, time_column: str) -> pd.DataFrame:
    """Every state boundary beside the jump near it: the largest change of either accuracy
    over the two spans on either side of the boundary."""
    times = table[time_column].to_numpy()
    rows = []
    for i in range(1, len(spans)):
        previous, row = spans.iloc[i - 1], spans.iloc[i]
        lo = int(np.searchsorted(times, previous["first"]))
        hi = int(np.searchsorted(times, row["last"]))
        jump = _largest_change(table, time_column, lo, hi)
        rows.append(
            {
                "time": int(row["first"]),
                "before": int(previous["last"]),
                "phase_change": previous["phase"] != row["phase"],
                "jump_curve": jump["curve"],
                "jump_time": jump["time"],
                "jump_change": jump["change"],
                "distance": abs(jump["time"] - int(row["first"])),
            }
        )
    columns = ["time", "before", "phase_change", "jump_curve", "jump_time", "jump_change"]
    return pd.DataFrame(rows, columns=[*columns, "distance"])


def read_phases(
    path: pd.DataFrame,
    curves: pd.DataFrame,
    *,
    chance: float,
    time_column: str = "epoch",
    run: str | None = None,
) -> PhaseReading:
    """Read a training map's states as phases of training (the rules of the module).

    Parameters
    ----------
    path
        A fitted map's ``path_`` (:class:`~nn_tracing.analysis.hmm.TrainingMap`): ``state``,
        ``weight_norm`` and ``time_column`` per recorded point, and ``run`` when the map was
        fitted on several runs.
    curves
        The run's accuracies per recorded point: ``time_column``, ``train_acc``, ``val_acc``
        (``trace.history``).
    chance
        The accuracy of guessing, 1 / number of classes.
    run
        The run to read when ``path`` holds several (default: its first).

    Raises
    ------
    ValueError
        When the curves lack an accuracy, or fewer than two points of the path have both.
    """
    if run is None and "run" in path:
        run = str(path["run"].iloc[0]) if len(path) else None
    if run is not None and "run" in path:
        path = path[path["run"] == run]
    missing = [c for c in (time_column, *_CURVES) if c not in curves]
    if missing:
        raise ValueError(f"reading phases needs the curves {', '.join(missing)} per recorded point")
    table = path[[time_column, "state", "weight_norm"]].merge(
        curves[[time_column, *_CURVES]].drop_duplicates(time_column), on=time_column, how="left"
    )
    table = table.dropna(subset=list(_CURVES)).sort_values(time_column, kind="stable")
    if len(table) < 2:
        raise ValueError(
            "reading phases needs training and validation accuracy at two or more recorded points"
        )
    table = table.reset_index(drop=True)
    spans = _spans(table, time_column, chance)
    jumps = _jumps(table, time_column)
    return PhaseReading(
        spans=spans,
        phases=_grouped(spans, chance),
        boundaries=_boundaries(spans, table, time_column),
        jumps=jumps,
        chance=float(chance),
        time_column=time_column,
    )
