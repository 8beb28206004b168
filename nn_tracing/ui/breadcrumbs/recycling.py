"""The Intervention tab's "recycle dormant neurons" (ReDo, Sokar et al. 2023): τ chosen, the
dormant share and the outputs before and after, a table per layer, and the recycled model's
weights and config to download. The computation is :mod:`nn_tracing.views.recycling`'s."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ...analysis.dormancy import DEFAULT_TAU, DORMANT_TAUS
from ...views.breadcrumbs import Target
from ...views.recycling import recycling_metrics, recycling_sentence
from .. import state
from ..text import md_escape
from ..traces import ActiveTrace
from .widgets import ensure, model_downloads, show_metrics
from .work import recycling_of

__all__ = ["recycle_section"]


def recycle_section(active: ActiveTrace, target: Target, chosen: dict[str, Any]) -> None:
    """Draw the τ control and what recycling the τ-dormant neurons does; τ goes into
    ``chosen``."""
    ensure(state.BREADCRUMBS_RECYCLE_TAU, lambda v: v in DORMANT_TAUS, DEFAULT_TAU)
    tau = float(
        st.segmented_control(
            "Recycle neurons dormant at",
            DORMANT_TAUS,
            key=state.BREADCRUMBS_RECYCLE_TAU,
            format_func=lambda t: f"τ = {t:g}",
            required=True,
            help="τ-dormant: mean |activation| on the probe over the layer's average ≤ τ.",
        )
    )
    chosen["recycle_tau"] = tau
    done = recycling_of(active, target.epoch, tau)
    show_metrics(recycling_metrics(done), 4)
    st.markdown(recycling_sentence(done))
    st.dataframe(
        done.table,
        hide_index=True,
        column_config={
            "share before": st.column_config.NumberColumn(format="percent"),
            "share after": st.column_config.NumberColumn(format="percent"),
        },
    )
    recycled = [f"n_{i}" for ids in done.recycled.values() for i in ids]
    if recycled:
        st.caption("Recycled: " + md_escape(", ".join(recycled), 1500))
    stem = f"{active.name or 'trace'}-recycled"
    model_downloads(
        st.columns(2),
        stem,
        "Recycled",
        done.weights,
        done.config,
        (state.BREADCRUMBS_RECYCLE_DOWNLOAD_WEIGHTS, state.BREADCRUMBS_RECYCLE_DOWNLOAD_CONFIG),
    )
