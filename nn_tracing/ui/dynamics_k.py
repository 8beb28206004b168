"""The Dynamics page's range of k: when BIC (or AIC) chooses the largest k tried, say that it
sits at the boundary and offer the next range (the sentence is
:func:`nn_tracing.views.dynamics.k_boundary`'s)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ..views import dynamics as view
from . import state
from .text import md_escape

__all__ = ["k_boundary_note", "k_max_setting"]


def k_max_setting(key: str, default: int | None) -> int:
    """The largest k to fit: the URL's, the one a boundary button asked for, or ``default``."""
    value = state.get(key)
    if not (isinstance(value, int) and 2 <= value <= view.MAX_K):
        state.put(key, default)
    return int(state.get(key))


def k_boundary_note(
    selection: pd.DataFrame, params: view.MapParams | view.NeuronParams, key: str
) -> None:
    """When the criterion chose the largest k tried: say so, and offer a button that fits the
    next range (it sets ``key``, the largest k)."""
    if params.k not in ("bic", "aic"):
        return
    boundary = view.k_boundary(selection, params.criterion, params.k_max)
    if boundary is None:
        return
    st.info(md_escape(boundary.sentence, 600), icon=":material/straighten:")
    if boundary.next_k_max is not None:
        st.button(
            f"Fit k up to {boundary.next_k_max}",
            key=f"{key}:more",
            on_click=state.put,
            args=(key, boundary.next_k_max),
        )
