"""Health over training: dead, saturated and gradient-starved neurons per layer and epoch."""

from __future__ import annotations

import altair as alt
import pandas as pd

from ..analysis.health import FLAG_TITLES, FLAGS, NeuronHealth
from ..timeaxis import time_key, time_word
from ..trace import format_signature
from .common import INTEGER_AXIS
from .palette import REFERENCE

__all__ = ["health_chart", "health_frame"]


def health_frame(health: NeuronHealth, max_examples: int = 3) -> pd.DataFrame:
    """Counts per epoch, layer and flag (see :meth:`NeuronHealth.counts`), plus ``signature``
    (the first flagged neuron, or ``E_<epoch>/L_<layer>`` when none) and ``examples``."""
    counts = health.counts()
    if counts.empty:
        return counts.assign(signature=pd.Series(dtype=str), examples=pd.Series(dtype=str))
    rows = {epoch: i for i, epoch in enumerate(health.epochs)}
    layers = {info.name: info for info in health.layers}
    firsts, examples = [], []
    for epoch, layer, flag in zip(counts["epoch"], counts["layer"], counts["flag"], strict=True):
        info = layers[layer]
        mask = health.flags[flag][rows[epoch], info.first_id : info.last_id + 1]
        ids = info.first_id + mask.nonzero()[0][: max_examples + 1]
        firsts.append(
            format_signature(epoch, layer, int(ids[0]))
            if ids.size
            else f"{time_key(epoch)}/L_{layer}"
        )
        shown = ", ".join(f"n_{i}" for i in ids[:max_examples])
        examples.append(shown + (", …" if ids.size > max_examples else "") if ids.size else "—")
    return counts.assign(signature=firsts, examples=examples)


def health_chart(
    frame: pd.DataFrame, layers: list[str], selected_epoch: int | None = None
) -> alt.HConcatChart | None:
    """One panel per flag that is defined for this network: count per layer over epochs (the
    panels share the page's width, so that the row and its legend fit without clipping)."""
    defined = [flag for flag in FLAGS if (frame["flag"] == flag).any()]
    width = min(200, 780 // max(len(defined), 1) - 55)
    panels = []
    for flag in defined:
        data = frame[frame["flag"] == flag]
        x = alt.X(
            "epoch:Q", title=time_word(), scale=alt.Scale(nice=False), axis=alt.Axis(**INTEGER_AXIS)
        )
        y = alt.Y(
            "count:Q", title="neurons", scale=alt.Scale(domainMin=0), axis=alt.Axis(**INTEGER_AXIS)
        )
        color = alt.Color("layer:N", sort=layers, title="layer")
        tooltip = [
            alt.Tooltip("signature:N", title="signature"),
            alt.Tooltip("layer:N"),
            alt.Tooltip("count:Q", title=FLAG_TITLES[flag]),
            alt.Tooltip("share:Q", title="share of layer", format=".1%"),
            alt.Tooltip("examples:N", title="neurons"),
        ]
        base = alt.Chart(data)
        parts: list[alt.Chart] = [
            base.mark_line(point=True).encode(x=x, y=y, color=color, tooltip=tooltip)
        ]
        if selected_epoch is not None:
            marker = pd.DataFrame({"epoch": [selected_epoch]})
            parts.append(
                alt.Chart(marker)
                .mark_rule(color=REFERENCE, strokeDash=[4, 3])
                .encode(x=alt.X("epoch:Q", title=time_word()))
            )
        panels.append(
            alt.layer(*parts).properties(title=FLAG_TITLES[flag], width=width, height=180)
        )
    if not panels:
        return None
    return alt.hconcat(*panels).resolve_scale(color="shared")
