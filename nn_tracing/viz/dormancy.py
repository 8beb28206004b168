"""τ-dormant neurons per layer over training (Sokar et al. 2023): the Overview's health headline."""

from __future__ import annotations

import altair as alt
import pandas as pd

from ..analysis.dormancy import Dormancy
from ..timeaxis import time_key, time_word
from ..trace import format_signature
from .common import INTEGER_AXIS
from .palette import REFERENCE

__all__ = ["dormancy_chart", "dormancy_frame"]


def dormancy_frame(dormancy: Dormancy, max_examples: int = 3) -> pd.DataFrame:
    """:meth:`Dormancy.counts` plus ``signature`` (the first dormant neuron, or
    ``E_<epoch>/L_<layer>`` when none) and ``examples`` (the first few dormant neurons)."""
    counts = dormancy.counts()
    firsts, examples = {}, {}
    for info in dormancy.layers:
        for tau in dormancy.taus:
            mask = dormancy.mask(info.name, tau)  # (n_epochs, n): once per layer and τ
            for row, epoch in enumerate(dormancy.epochs):
                ids = info.first_id + mask[row].nonzero()[0][: max_examples + 1]
                key = (epoch, info.name, tau)
                firsts[key] = (
                    format_signature(epoch, info.name, int(ids[0]))
                    if ids.size
                    else f"{time_key(epoch)}/L_{info.name}"
                )
                shown = ", ".join(f"n_{i}" for i in ids[:max_examples])
                more = ", …" if ids.size > max_examples else ""
                examples[key] = shown + more if ids.size else "—"
    keys = list(zip(counts["epoch"], counts["layer"], counts["tau"], strict=True))
    return counts.assign(signature=[firsts[k] for k in keys], examples=[examples[k] for k in keys])


def dormancy_chart(
    frame: pd.DataFrame, tau: float, layers: list[str], selected_epoch: int | None = None
) -> alt.LayerChart:
    """The share of each hidden layer's neurons that is τ-dormant, over training, for one τ
    (a row of ``frame`` per epoch and layer at that τ, from :func:`dormancy_frame`)."""
    data = frame[frame["tau"] == tau].astype({"n_dormant": "float64"})
    x = alt.X(
        "epoch:Q", title=time_word(), scale=alt.Scale(nice=False), axis=alt.Axis(**INTEGER_AXIS)
    )
    y = alt.Y(
        "fraction:Q",
        title=f"τ-dormant share (τ = {tau:g})",
        scale=alt.Scale(domain=[0, 1]),
        axis=alt.Axis(format="%"),
    )
    tooltip = [
        alt.Tooltip("signature:N", title="signature"),
        alt.Tooltip("layer:N"),
        alt.Tooltip("epoch:Q", title=time_word()),
        alt.Tooltip("n_dormant:Q", title="dormant", format="d"),
        alt.Tooltip("n_neurons:Q", title="neurons", format="d"),
        alt.Tooltip("fraction:Q", title="share of layer", format=".1%"),
        alt.Tooltip("examples:N", title="dormant neurons"),
        alt.Tooltip("source:N", title="mean |activation|"),
    ]
    parts: list[alt.Chart] = [
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=x,
            y=y,
            color=alt.Color("layer:N", sort=layers, title="layer"),
            tooltip=tooltip,
        )
    ]
    if selected_epoch is not None:
        marker = pd.DataFrame({"epoch": [selected_epoch]})
        parts.append(
            alt.Chart(marker)
            .mark_rule(color=REFERENCE, strokeDash=[4, 3])
            .encode(x=alt.X("epoch:Q", title=time_word()))
        )
    return alt.layer(*parts).properties(
        title=f"τ-dormant neurons per layer (τ = {tau:g})", height=220
    )
