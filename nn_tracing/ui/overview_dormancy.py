"""The Overview's neuron-health headline: τ-dormant neurons per layer over training (Sokar et al.
2023), τ chosen by the user; the page's own dead / saturated / starved flags follow, folded.

What it shows is built by :mod:`nn_tracing.analysis.dormancy` (the scores),
:mod:`nn_tracing.viz.dormancy` (frame and chart) and :mod:`nn_tracing.views.dormancy` (tiles,
caption); this module keeps the widget and the layout.
"""

from __future__ import annotations

import streamlit as st

from ..analysis.dormancy import DEFAULT_TAU, DORMANT_TAUS
from ..views.dormancy import dormancy_caption, dormancy_tiles
from ..viz.dormancy import dormancy_chart
from . import cache, state
from .charts import show_chart
from .traces import ActiveTrace

__all__ = ["dormancy_section"]


def _tau_label(tau: float) -> str:
    return f"τ = {tau:g}"


def dormancy_section(active: ActiveTrace, epoch: int) -> float:
    """Draw the τ-dormant chart, tiles and definition; return the τ chosen."""
    trace = active.trace
    if len(trace.layers) < 3:
        st.info("This network has no hidden layer: dormant neurons are defined for hidden layers.")
        return DEFAULT_TAU
    if state.get(state.OVERVIEW_DORMANT_TAU) not in DORMANT_TAUS:
        state.put(state.OVERVIEW_DORMANT_TAU, DEFAULT_TAU)
    tau = float(
        st.segmented_control(
            "Dormant at",
            DORMANT_TAUS,
            key=state.OVERVIEW_DORMANT_TAU,
            format_func=_tau_label,
            required=True,
            help="A neuron is τ-dormant when its mean |activation| on the probe, divided by "
            "its layer's average, is at most τ.",
        )
    )
    frame = cache.dormancy_counts(active.key, trace)
    tiles = dormancy_tiles(frame, epoch, tau, trace.epochs[0])
    for column, tile in zip(st.columns(max(len(tiles), 1)), tiles, strict=False):
        column.metric(
            tile.label, tile.value, delta=tile.delta, delta_color=tile.delta_color, help=tile.help
        )
    chart = cache.chart(
        "dormancy",
        active.key,
        (tau, epoch),
        lambda: dormancy_chart(frame, tau, trace.layer_names(), epoch),
    )
    show_chart(chart)
    st.caption(dormancy_caption(frame))
    return tau
