"""Links to a neuron: the Neurons page opened on one neuron through its deep link.

A click on a neuron in any chart, or a row of a neuron table, lands here. A leaf module: the
shell, the charts and every page import it, and it imports no page.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from .. import viz
from .traces import ActiveTrace

__all__ = ["NEURONS_PAGE", "open_neuron", "open_picked", "picked_point"]

NEURONS_PAGE = "pages/neurons.py"


def open_neuron(trace_name: str | None, signature: str) -> None:
    """Switch to the Neurons page on ``signature`` (a deep link another browser can open)."""
    params = {"neuron": signature}
    if trace_name:
        params["trace"] = trace_name
    st.switch_page(NEURONS_PAGE, query_params=params)


def picked_point(event: Any, name: str) -> dict[str, Any] | None:
    """The first point of selection ``name`` in a chart event, if any."""
    selection = getattr(event, "selection", None) or {}
    points = selection.get(name) if isinstance(selection, dict) else None
    if isinstance(points, list) and points and isinstance(points[0], dict):
        return points[0]
    return None


def open_picked(active: ActiveTrace, event: Any) -> None:
    """Open the neuron a chart's click picked (selection :data:`nn_tracing.viz.PICK`, whose
    points carry ``epoch`` and ``neuron``); nothing when the event picked none."""
    point = picked_point(event, viz.PICK)
    if point is None or "neuron" not in point:
        return
    try:
        epoch, neuron = int(point["epoch"]), int(point["neuron"])
        signature = active.trace.signature(epoch, neuron)
    except (KeyError, TypeError, ValueError):
        return
    open_neuron(active.name, signature)
