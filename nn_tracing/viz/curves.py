"""Training curves: loss and accuracy per epoch from ``trace.history``, recorded epochs marked."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ..timeaxis import time_prefix, time_word
from .common import INTEGER_AXIS

__all__ = ["curves_frame", "training_curves_chart"]

_SPLITS = {"train": "train", "val": "validation", "probe": "probe"}


def curves_frame(history: pd.DataFrame) -> pd.DataFrame:
    """``history`` in long form: ``epoch``, ``quantity`` (loss / accuracy), ``split``,
    ``value``, ``recorded`` and ``signature`` (``E_<epoch>``); rows without a value dropped.

    When the probe set is the whole validation split (their curves are identical) the two
    are one split, ``"validation = probe"``."""
    rows = []
    recorded = (
        history["recorded"].astype(bool)
        if "recorded" in history
        else pd.Series(False, index=history.index)
    )
    for quantity, suffix in (("loss", "loss"), ("accuracy", "acc")):
        for prefix, split in _SPLITS.items():
            column = f"{prefix}_{suffix}"
            if column not in history:
                continue
            part = pd.DataFrame(
                {
                    "epoch": history["epoch"].astype("int64"),
                    "quantity": quantity,
                    "split": split,
                    "value": history[column].astype("float64"),
                    "recorded": recorded.to_numpy(),
                }
            )
            rows.append(part)
    if not rows:
        return pd.DataFrame(columns=["epoch", "quantity", "split", "value", "recorded"])
    frame = pd.concat(rows, ignore_index=True).dropna(subset=["value"])
    probe, val = frame[frame["split"] == "probe"], frame[frame["split"] == "validation"]
    same = len(probe) == len(val) and np.allclose(
        probe["value"].to_numpy(), val["value"].to_numpy(), equal_nan=True
    )
    if same and len(probe):  # the probe is the whole validation split: one line, not two
        frame = frame[frame["split"] != "probe"].reset_index(drop=True)
        frame["split"] = frame["split"].replace("validation", "validation = probe")
    frame["signature"] = time_prefix() + frame["epoch"].astype(str)
    frame["recorded_label"] = frame["recorded"].map({True: "yes", False: "no"})
    return frame


def training_curves_chart(frame: pd.DataFrame, quantity: str) -> alt.LayerChart:
    """Loss (or accuracy) per epoch for each split; filled points on recorded epochs."""
    data = frame[frame["quantity"] == quantity]
    x = alt.X(
        "epoch:Q", title=time_word(), scale=alt.Scale(nice=False), axis=alt.Axis(**INTEGER_AXIS)
    )
    y = alt.Y(
        "value:Q",
        title=quantity,
        scale=alt.Scale(
            zero=False, type="log" if quantity == "loss" and (data["value"] > 0).all() else "linear"
        ),
    )
    color = alt.Color("split:N", title=None, sort=[*_SPLITS.values(), "validation = probe"])
    tooltip = [
        alt.Tooltip("signature:N", title=time_word()),
        alt.Tooltip("split:N"),
        alt.Tooltip("value:Q", title=quantity, format=".4f"),
        alt.Tooltip("recorded_label:N", title="recorded"),
    ]
    base = alt.Chart(data)
    line = base.mark_line().encode(x=x, y=y, color=color, tooltip=tooltip)
    points = (
        base.transform_filter("datum.recorded")
        .mark_point(filled=True, size=28)
        .encode(x=x, y=y, color=color, tooltip=tooltip)
    )
    title = alt.Title(
        f"{quantity} per {time_word()}",
        subtitle=f"points: the recorded {time_word(plural=True)}",
        anchor="start",
    )
    return alt.layer(line, points).properties(title=title, height=220)
