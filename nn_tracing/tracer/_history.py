"""The tracer's history: one row per epoch of the values training reports beside the metrics
(losses, accuracies, the learning rate; :data:`~nn_tracing.trace.HISTORY_COLUMNS`), checked
as they come and laid out as the trace's ``history`` frame."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..trace import HISTORY_COLUMNS

__all__ = ["checked_history", "history_frame"]


def checked_history(values: Mapping[str, Any]) -> dict[str, float]:
    """History values as floats; ``ValueError`` for a column the history does not have."""
    unknown = sorted(set(values) - set(HISTORY_COLUMNS))
    if unknown:
        raise ValueError(
            f"unknown history column(s) {unknown}; known: {', '.join(HISTORY_COLUMNS)}"
        )
    return {k: float(v) for k, v in values.items()}


def history_frame(
    history: Mapping[int, Mapping[str, Any]], recorded: Mapping[int, Any]
) -> pd.DataFrame:
    """One row per epoch: ``epoch``, the :data:`HISTORY_COLUMNS` and ``recorded``."""
    rows = []
    for epoch in sorted(history):
        values = history[epoch]
        row: dict[str, Any] = {"epoch": epoch}
        for column in HISTORY_COLUMNS:
            row[column] = float(values.get(column, math.nan))
        row["recorded"] = bool(values.get("recorded", epoch in recorded))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["epoch", *HISTORY_COLUMNS, "recorded"])
    frame["epoch"] = frame["epoch"].astype("int64")
    for column in HISTORY_COLUMNS:
        frame[column] = frame[column].astype("float64")
    frame["recorded"] = frame["recorded"].astype("bool")
    return frame
