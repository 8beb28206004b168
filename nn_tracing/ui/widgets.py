"""Widgets several pages share. A leaf module: pages import it, it imports no page."""

from __future__ import annotations

import streamlit as st

from ..timeaxis import time_key, time_word
from . import state

__all__ = ["epoch_picker"]


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
