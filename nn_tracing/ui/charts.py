"""Showing an Altair chart: one call that sizes the element and wires a click selection."""

from __future__ import annotations

from typing import Any

import altair as alt
import streamlit as st

from .. import viz

__all__ = ["show_chart"]


def show_chart(
    chart: alt.TopLevelMixin,
    *,
    select: str | None = None,
    key: str | None = None,
    width: str = "stretch",
) -> Any:
    """``st.altair_chart`` sized to the chart's content; with ``select`` (a selection
    parameter's name) a click reruns the page and the returned event holds the selection."""
    options: dict[str, Any] = {"width": width, "height": viz.element_height(chart)}
    if select is not None:
        options.update(on_select="rerun", selection_mode=select, key=key)
    return st.altair_chart(chart, **options)
