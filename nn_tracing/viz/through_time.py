"""The map through time that scrubs in the browser: every (neuron, epoch) point in one Altair
chart, an epoch slider bound to a Vega parameter (:data:`EPOCH_PARAM`), so dragging it moves the
neurons without a rerun of the page; optional trails (each shown neuron's path up to the epoch
on the slider).

Every data frame here is plain pandas; nothing imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from ..timeaxis import time_title
from .clusters import nominal_scale
from .palette import REFERENCE

__all__ = ["EPOCH_PARAM", "scrub_chart", "scrub_frame"]

#: The Vega parameter the slider sets (an epoch, or a step on a step-recorded trace).
EPOCH_PARAM = "at"


def scrub_frame(frame: pd.DataFrame, epochs: Sequence[int]) -> pd.DataFrame:
    """The map's rows (``neuron``, ``layer``, ``epoch``, ``signature``, ``x``, ``y``) with
    ``until``: the next embedded epoch (the last one's: one past it), so that a slider value
    ``v`` shows each neuron at the embedded epoch ``epoch ≤ v < until``."""
    ordered = sorted(int(e) for e in epochs)
    following = dict(zip(ordered, [*ordered[1:], ordered[-1] + 1], strict=True))
    out = frame[["neuron", "layer", "epoch", "signature", "x", "y"]].copy()
    out["until"] = out["epoch"].map(following).astype(np.int64)
    out["x"] = out["x"].astype(np.float64).round(5)
    out["y"] = out["y"].astype(np.float64).round(5)
    return out


def scrub_chart(
    frame: pd.DataFrame,
    epochs: Sequence[int],
    *,
    title: str,
    subtitle: Sequence[str] = (),
    extent: tuple[float, float, float, float],
    trails: Sequence[int] = (),
    axis: str | None = None,
) -> alt.LayerChart:
    """Every neuron at the epoch on the slider, coloured by layer, on fixed axes.

    Parameters
    ----------
    frame
        The map's rows (see :func:`scrub_frame`).
    epochs
        The embedded epochs (the slider runs from the first to the last).
    extent
        Fixed axes ``(x_min, x_max, y_min, y_max)``.
    trails
        Neurons whose path is drawn up to the slider's epoch.
    axis
        ``epoch`` or ``step`` (the slider's label).
    """
    data = scrub_frame(frame, epochs)
    ordered = sorted(int(e) for e in epochs)
    gaps = np.diff(ordered)
    step = int(np.gcd.reduce(gaps)) if gaps.size else 1
    slider = alt.binding_range(
        min=ordered[0], max=ordered[-1], step=max(step, 1), name=f"{time_title(axis)} "
    )
    at = alt.param(name=EPOCH_PARAM, value=ordered[-1], bind=slider)
    layers = sorted(set(data["layer"].astype(str)))
    x = alt.X("x:Q", title=None, scale=alt.Scale(domain=list(extent[:2]), nice=False))
    y = alt.Y("y:Q", title=None, scale=alt.Scale(domain=list(extent[2:]), nice=False))
    base = alt.Chart(data).encode(x=x, y=y)
    points = (
        base.mark_circle(size=40, opacity=0.8)
        .encode(
            color=alt.Color("layer:N", scale=nominal_scale(layers), title="layer"),
            tooltip=["signature:N", "layer:N", "epoch:Q"],
        )
        .transform_filter(f"datum.epoch <= {EPOCH_PARAM} && datum.until > {EPOCH_PARAM}")
        .add_params(at)
    )
    charts: list[alt.Chart] = [points]
    if len(trails):
        chosen = [int(n) for n in trails]
        path = (
            base.mark_line(color=REFERENCE, strokeWidth=1.2, opacity=0.7)
            .encode(detail="neuron:N", order="epoch:Q")
            .transform_filter(alt.FieldOneOfPredicate(field="neuron", oneOf=chosen))
            .transform_filter(f"datum.epoch <= {EPOCH_PARAM}")
        )
        charts.insert(0, path)
    return alt.layer(*charts).properties(
        title=alt.TitleParams(title, subtitle=list(subtitle) or None),
        width="container",
        height=420,
    )
