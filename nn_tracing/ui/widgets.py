"""Widgets several pages share. A leaf module: pages import it, it imports no page."""

from __future__ import annotations

import streamlit as st

from ..analysis.health import HealthThresholds
from ..timeaxis import time_key, time_word
from ..views.health import flag_definitions
from . import state

__all__ = ["epoch_picker", "health_definitions"]

#: The label of the one place that says what the health flags mean (on every page that
#: shows them).
HEALTH_HELP = "What dead, saturated, gradient-starved and exploding mean"


def health_definitions(thresholds: HealthThresholds) -> None:
    """The health flags' definitions, written once (:func:`~nn_tracing.views.health.
    flag_definitions`) and shown the same way wherever flags are: folded in a popover, so
    that they do not fill the page."""
    with st.popover(HEALTH_HELP, icon=":material/help:"):
        st.markdown(flag_definitions(thresholds).replace(" · ", "\n\n"))


def epoch_picker(label: str, epochs: list[int], key: str, *, follow_latest: bool = False) -> int:
    """A slider over the recorded epochs (shown as ``E_<n>``); returns the chosen epoch.

    The value is kept per trace (``key``) and reset to the last epoch when it is not one of
    ``epochs``. With ``follow_latest``, a slider left at the last epoch moves on as new epochs
    arrive (a live run).
    """
    last_key = key + ":last"
    current = state.get(key)
    if current not in epochs or (follow_latest and current == state.get(last_key)):
        state.put(key, epochs[-1])
    state.put(last_key, epochs[-1])
    if len(epochs) == 1:
        st.caption(f"{label}: {time_key(epochs[0])} (the only recorded {time_word()})")
        return epochs[0]
    return int(st.select_slider(label, options=epochs, key=key, format_func=time_key))
